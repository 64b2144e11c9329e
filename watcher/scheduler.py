"""The schedule stage: APScheduler on the reactor's asyncio loop, one job per watch, state in the database.

Jobs live in the `apscheduler_jobs` table, so a restart neither loses runs (a run missed while the daemon
was down happens once at start: coalesce) nor floods them (never more than one). A job whose watch
config (interval/cron/jitter) is unchanged keeps its persisted next run time across restarts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import random
from typing import Any

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from watcher.config import Config, WatchConfig
from watcher.store import Store

log = logging.getLogger(__name__)
JOB_PREFIX = "watch:"
_pipeline: Any = None  # the running daemon's Pipeline; jobs look it up here (only names are persisted)


def make_trigger(w: WatchConfig) -> BaseTrigger:
    jitter = w.jitter.total_seconds()
    if w.interval is not None:
        seconds = w.interval.total_seconds()
        return IntervalTrigger(seconds=seconds, jitter=int(min(jitter, seconds / 2)) or None, timezone=dt.UTC)
    trigger = CronTrigger.from_crontab(w.cron or "", timezone=dt.UTC)
    trigger.jitter = int(jitter) or None
    return trigger


def schedule_signature(w: WatchConfig) -> str:
    raw = f"{w.interval}|{w.cron}|{w.jitter}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


async def run_watch(name: str, sig: str | None = None) -> None:
    """The job function (referenced by name in the job store)."""
    if _pipeline is None:
        log.warning("job for %s fired with no pipeline running", name)
        return
    try:
        await _pipeline.check(name)  # which logs what it found (watcher.pipeline.log_check)
    except asyncio.CancelledError:
        # Shutdown abandons in-flight checks (their transaction either committed or never began); the job
        # ends quietly instead of APScheduler logging the cancellation as a job error.
        log.info("%s: abandoned at shutdown", name)
        return


def create_scheduler(store: Store, *, threaded: bool = False) -> Any:
    """An AsyncIOScheduler on the running loop, or with `threaded` one that wakes in a thread of its own
    (the scale-out scheduler role: its job-store commits, one per due time, never stall the loop)."""
    cls = BackgroundScheduler if threaded else AsyncIOScheduler
    return cls(
        jobstores={"default": SQLAlchemyJobStore(engine=store.engine, tablename="apscheduler_jobs"),
                   "memory": MemoryJobStore()},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=dt.UTC,
    )


RUN_WATCH = "watcher.scheduler:run_watch"


def sync_jobs(scheduler: AsyncIOScheduler, config: Config, *, first_run_spread: float = 30.0,
              func: str = RUN_WATCH) -> dict[str, int]:
    """Make the job store match the config: add new watches, reschedule changed ones, drop removed ones.

    `func` is what a due job does: check the watch here (`run_watch`) or, for the scheduler role of a
    scaled-out deployment, put it on the shared queue (`watcher.scale:enqueue_watch`)."""
    counts = {"kept": 0, "added": 0, "removed": 0}
    wanted = {JOB_PREFIX + w.name: w for w in config.watch if w.enabled}
    for job in scheduler.get_jobs(jobstore="default"):
        if job.id.startswith(JOB_PREFIX) and job.id not in wanted:
            job.remove()
            counts["removed"] += 1
    now = dt.datetime.now(dt.UTC)
    for job_id, w in wanted.items():
        sig = schedule_signature(w)
        job = scheduler.get_job(job_id, jobstore="default")
        if job is not None and job.kwargs.get("sig") == sig and job.func_ref == func:
            counts["kept"] += 1
            continue
        # A new (or rescheduled) watch runs soon, spread out so a big config does not stampede.
        period = w.interval.total_seconds() if w.interval else first_run_spread
        first = now + dt.timedelta(seconds=random.uniform(0, min(first_run_spread, period)))
        scheduler.add_job(func, trigger=make_trigger(w), id=job_id, name=w.name,
                          args=[w.name], kwargs={"sig": sig}, next_run_time=first, replace_existing=True,
                          jobstore="default")
        counts["added"] += 1
    return counts


async def run_daemon(store: Store, config: Config, *, stop: asyncio.Event | None = None,
                     fetcher: Any = None, sender: bool = True, hup: asyncio.Event | None = None,
                     request_poll: float = 2.0) -> None:
    """The long-running daemon: fetcher + scheduler + outbox sender until SIGTERM/SIGINT (or `stop`).

    The config is reloaded when `hup` is set (SIGHUP) and when its file changes (watcher.reload); checks
    asked for on the web page or the API are polled for every `request_poll` seconds (watcher.rechecks)."""
    global _pipeline
    from spiders.fetch import Fetcher
    from watcher.pipeline import Pipeline
    from watcher.reload import ConfigChange, follow_config

    stop = stop or asyncio.Event()
    store.sync_watches(config.watch)
    store.sync_subscribers(config.subscriber)
    fetcher = fetcher or Fetcher(config.fetch)
    await fetcher.start()
    pipeline = Pipeline(store, config, fetcher)
    await pipeline.start()
    _pipeline = pipeline
    scheduler = create_scheduler(store)
    scheduler.start(paused=True)
    counts = sync_jobs(scheduler, config)
    scheduler.resume()
    log.warning("watcher running: %d watches (%s), %d subscribers", len(wanted := [w for w in config.watch
                if w.enabled]), ", ".join(f"{k} {v}" for k, v in counts.items()), len(config.subscriber))
    del wanted

    async def apply(change: ConfigChange) -> None:
        new = change.config
        await asyncio.to_thread(store.sync_watches, new.watch)
        await asyncio.to_thread(store.sync_subscribers, new.subscriber)
        pipeline.config = new
        pipeline.forget(change.added + change.removed + change.changed)
        sync_jobs(scheduler, new)

    from watcher.rechecks import serve_requests

    tasks = [asyncio.ensure_future(follow_config(config, apply, stop, hup)),
             # Rechecks asked for on the web page or the API: now, whatever the backoff.
             asyncio.ensure_future(serve_requests(store, lambda name: pipeline.check(name, honour_backoff=False),
                                                  stop, poll=request_poll))]
    from watcher.retention import retention_loop

    # Retention once a day, with the [retention] of the config in force (a reload changes it).
    tasks.append(asyncio.ensure_future(retention_loop(store, lambda: pipeline.config, stop)))
    if sender:
        from watcher.notify import sender_loop

        tasks.append(asyncio.ensure_future(sender_loop(store, config, stop)))
    try:
        await stop.wait()
    finally:
        log.warning("watcher stopping")
        scheduler.shutdown(wait=False)
        # In-flight checks are abandoned: their transactions either committed or never began (an unchanged
        # one already in the batch is still written by aclose below).
        running = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and
                   getattr(t.get_coro(), "__qualname__", "").startswith(("run_watch", "Pipeline."))]
        for t in running:
            t.cancel()
        await fetcher.close()
        for t in tasks:
            try:
                await asyncio.wait_for(t, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                t.cancel()
        _pipeline = None
        await pipeline.aclose()  # writes the unchanged checks still waiting in the batch


# --------------------------------------------------------------------------- `watcher status`

STATUS_LIMIT = 20  # watches listed by name in the schedule section (the soonest); the rest are counted


def status(config: Config, store: Store) -> dict[str, Any]:
    """The schedule section of `watcher status`: the next run of each watch as the daemon's job store holds
    it (read from `apscheduler_jobs`, without unpickling the jobs), the soonest first; how many are overdue
    (a daemon that is down or behind), and enabled watches that have no job yet (the daemon has not synced
    them: not running, or not reloaded since the edit)."""
    from sqlalchemy import inspect, text

    from watcher.config import format_duration

    now = dt.datetime.now(dt.UTC)
    if not inspect(store.engine).has_table("apscheduler_jobs"):
        return {"jobs": 0, "note": "no schedule stored yet: the daemon (`watcher run`) has not run on this database"}
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, next_run_time FROM apscheduler_jobs WHERE id LIKE :p "
                                 "ORDER BY next_run_time"), {"p": JOB_PREFIX + "%"}).all()
    scheduled = {job_id.removeprefix(JOB_PREFIX): ts for job_id, ts in rows}
    every = {w.name: (f"cron {w.cron}" if w.cron else f"every {format_duration(w.interval)}") for w in config.watch}
    upcoming = []
    overdue = 0
    for name, ts in scheduled.items():
        if ts is None:
            continue
        at = dt.datetime.fromtimestamp(float(ts), dt.UTC)
        seconds = (at - now).total_seconds()
        overdue += seconds < -60  # a minute late: the daemon is not running, or is behind
        if len(upcoming) < STATUS_LIMIT:
            upcoming.append({"watch": name, "next_run": at.isoformat(timespec="seconds"), "in_s": round(seconds),
                             "schedule": every.get(name, "not in the config")})
    missing = sorted(w.name for w in config.watch if w.enabled and w.name not in scheduled)
    return {"jobs": len(scheduled), "overdue": overdue, "next": upcoming, "not_scheduled": missing[:STATUS_LIMIT],
            "not_scheduled_count": len(missing)}
