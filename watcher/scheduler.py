"""The schedule stage: APScheduler, one job per watch, state in the database, under supervision.

Jobs live in the `apscheduler_jobs` table, so a restart neither loses runs (a run missed while the daemon
was down happens once at start: coalesce) nor floods them (never more than one). A job whose watch
config (interval/cron/jitter) is unchanged keeps its persisted next run time across restarts.

Supervision (issue 12). APScheduler 3.x guards only `get_due_jobs` in its wakeup (`_process_jobs`): an
error there is logged at every retry (every `jobstore_retry_interval`, 10 s), but an error of the
`update_job` that stores a due job's next run time, or of `get_next_run_time`, escapes the wakeup. The
AsyncIOScheduler then never re-arms its timer (the wakeup runs in a loop callback: the exception is logged
by asyncio, and no later wakeup is scheduled), and the BackgroundScheduler's thread dies: the scheduler is
dead while the process lives. Its wakeups also ran on the event loop, so a SQLite lock held elsewhere froze
every fetch for the 30 s busy timeout. Hence:

- `SupervisedScheduler` wakes in a thread of its own (job-store calls never stall the loop; jobs that are
  coroutines run on the daemon's loop, `LoopExecutor`), and no exception leaves its wakeup: a job-store
  error is reported once per episode (`HEALTH.job_store_failed/ok`) and the next wakeup comes after a
  backoff (1 s, 2 s ... 60 s). It wakes at least every `MAX_IDLE` seconds, which is its heartbeat.
- `SupervisedJobStore` keeps a due job's new next run time in memory when it cannot be written, and writes
  it before anything else at the next wakeup; until that succeeds no job is looked at (a check could not
  store its result either), so no run is lost or doubled by the outage: a watch due during it runs once
  after (coalesced).
- The watchdog of `run_daemon` replaces a scheduler that stopped waking (its thread ended, or a wakeup or
  the wait for one overran by `watcher.watchdog`); after `MAX_RESTARTS` replacements with no good wakeup
  between them it stops the daemon with exit status 70, for the service manager to restart the process.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import hashlib
import logging
import random
import sys
import threading
import time
from typing import Any

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.executors.base import BaseExecutor, run_coroutine_job, run_job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_STOPPED, SchedulerNotRunningError
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import iscoroutinefunction_partial

from watcher.config import Config, WatchConfig
from watcher.health import HEALTH, is_database_unavailable, utcnow
from watcher.store import Store

log = logging.getLogger(__name__)
JOB_PREFIX = "watch:"
_pipeline: Any = None  # the running daemon's Pipeline; jobs look it up here (only names are persisted)
MAX_IDLE = 30.0  # seconds: the longest a running scheduler sleeps between wakeups (its heartbeat)
MAX_RESTARTS = 3  # watchdog replacements without a good wakeup in between before the process gives up
EXIT_WATCHDOG = 70  # EX_SOFTWARE: the exit status that asks the service manager for a fresh process


class SupervisedJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """The SQLAlchemy job store, made to fail softly inside a scheduler wakeup (see the module docstring).

    Outside a wakeup (adding, removing, listing jobs) errors are raised to the caller as usual."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unsaved: dict[str, Any] = {}  # job id -> job whose new next run time is not written yet
        self.failure: BaseException | None = None  # the first error of the wakeup under way
        self.in_wakeup = False
        # At most this many due jobs are taken per wakeup (None: all); the others stay due in the table, in
        # due order, until the executor has room for them (SupervisedScheduler sets it).
        self.due_limit: int | None = None
        self.held_back = False  # the last wakeup left due jobs in the table

    def begin_wakeup(self) -> None:
        self.failure, self.in_wakeup = None, True
        # Next run times that could not be written: first, or the jobs would be found due again.
        for job_id, job in list(self.unsaved.items()):
            try:
                super().update_job(job)
            except JobLookupError:
                pass  # removed meanwhile (a config reload)
            del self.unsaved[job_id]

    def end_wakeup(self) -> None:
        self.in_wakeup = False

    def get_due_jobs(self, now: dt.datetime) -> list[Any]:
        try:
            if self.due_limit is None:
                self.held_back = False
                return super().get_due_jobs(now)
            jobs = self._due_jobs(now, self.due_limit)
            self.held_back = len(jobs) >= self.due_limit
            return jobs
        except Exception as e:
            if not self.in_wakeup:
                raise
            self.failure = self.failure or e  # reported by the scheduler (APScheduler would log every retry)
            return []

    def _due_jobs(self, now: dt.datetime, limit: int) -> list[Any]:
        """The `limit` soonest due jobs (SQLAlchemyJobStore._get_jobs with a LIMIT)."""
        if limit <= 0:
            return []
        from apscheduler.util import datetime_to_utc_timestamp
        from sqlalchemy import select

        t = self.jobs_t
        query = select(t.c.id, t.c.job_state).where(t.c.next_run_time <= datetime_to_utc_timestamp(now)) \
            .order_by(t.c.next_run_time).limit(limit)
        jobs, failed = [], set()
        with self.engine.begin() as connection:
            for row in connection.execute(query):
                try:
                    jobs.append(self._reconstitute_job(row.job_state))
                except BaseException:
                    self._logger.exception('Unable to restore job "%s" -- removing it', row.id)
                    failed.add(row.id)
            if failed:
                connection.execute(t.delete().where(t.c.id.in_(failed)))
        return jobs

    def update_job(self, job: Any) -> None:
        if not self.in_wakeup:
            super().update_job(job)
            self.unsaved.pop(job.id, None)
            return
        if self.failure is None:
            try:
                super().update_job(job)
                return
            except JobLookupError:
                raise
            except Exception as e:
                self.failure = e
        # Written at the next wakeup; later jobs of this one do not each wait for the database (a 30 s busy
        # timeout apiece on a locked SQLite).
        self.unsaved[job.id] = job

    def get_next_run_time(self) -> dt.datetime | None:
        if self.in_wakeup and self.failure is not None:
            return None  # the scheduler retries after a backoff
        try:
            return super().get_next_run_time()
        except Exception as e:
            if not self.in_wakeup:
                raise
            self.failure = e
            return None


class LoopExecutor(AsyncIOExecutor):  # type: ignore[misc]
    """Runs jobs on the daemon's event loop, handed over from the scheduler's thread.

    At most `max_running` jobs run at a time (None: no limit); further due jobs wait in a queue, in the order
    they came due, as the job alone. A job that runs costs some kilobytes (its task, coroutines, future,
    the check's state), and a check can only go as fast as the pipeline lets it (`Pipeline.capacity`): at a
    start with 10,000 watches due within the first-run spread, thousands of checks would otherwise wait on
    the loop at once, about 6 KB each."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_running: int | None = None) -> None:
        super().__init__()
        self.loop = loop
        self.max_running = max_running

    def start(self, scheduler: Any, alias: str) -> None:
        BaseExecutor.start(self, scheduler, alias)
        self._eventloop = self.loop
        self._pending_futures: set[Any] = set()
        self._queue: collections.deque[tuple[Any, list[dt.datetime]]] = collections.deque()
        self._closed = False
        self.starved = False  # the scheduler left due jobs in its job store: wake it when room frees

    def _do_submit_job(self, job: Any, run_times: list[dt.datetime]) -> None:
        if self._scheduler.state == STATE_STOPPED:
            return  # a replaced scheduler's wakeup that was stuck and has just returned: its successor runs jobs
        with self._lock:
            if self.max_running is not None and len(self._pending_futures) >= self.max_running:
                self._queue.append((job, run_times))
                return
            self._launch(job, run_times)

    def _launch(self, job: Any, run_times: list[dt.datetime]) -> None:
        """Hand the job to the loop (the caller holds the lock)."""
        def callback(f: Any) -> None:
            with self._lock:
                self._pending_futures.discard(f)
                # The next queued job takes the place, also for a scheduler replaced by the watchdog (its
                # queued jobs have had their next run times stored: dropped, they would be lost).
                if self._queue and not self._closed:
                    self._launch(*self._queue.popleft())
                wake = self.starved and not self._closed and self.room() >= (self.max_running or 0) // 2
                if wake:
                    self.starved = False
            if wake:  # due jobs were left in the job store for want of room: there is some now
                self._scheduler.wakeup()
            if f.cancelled():
                self._run_job_success(job.id, [])
                return
            try:
                events = f.result()
            except BaseException:
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)

        if iscoroutinefunction_partial(job.func):
            coro = run_coroutine_job(job, job._jobstore_alias, run_times, self._logger.name)
        else:
            coro = asyncio.to_thread(run_job, job, job._jobstore_alias, run_times, self._logger.name)
        f = asyncio.run_coroutine_threadsafe(coro, self.loop)
        self._pending_futures.add(f)
        f.add_done_callback(callback)

    def queued(self) -> int:
        """Due jobs waiting for one of the `max_running` places."""
        return len(self._queue)

    def room(self) -> int | None:
        """How many more due jobs to take now (None: no limit): enough to fill the running places and a
        queue as long again; the rest stay due in the job store, costing no memory."""
        if self.max_running is None:
            return None
        with self._lock:
            return max(0, 2 * self.max_running - len(self._pending_futures) - len(self._queue))

    def cancel_all(self) -> None:
        """Drop the queued jobs and cancel those under way (daemon shutdown)."""
        with self._lock:
            self._closed = True
            self._queue.clear()
            pending = list(self._pending_futures)
        for f in pending:
            f.cancel()

    def shutdown(self, wait: bool = True) -> None:
        self.cancel_all()


class SupervisedScheduler(BackgroundScheduler):  # type: ignore[misc]
    """A BackgroundScheduler whose wakeups never raise and are watched (see the module docstring)."""

    def __init__(self, *args: Any, store: Store | None = None, loop: asyncio.AbstractEventLoop | None = None,
                 max_running: int | None = None, **kwargs: Any) -> None:
        self.store = store
        self.loop = loop
        self.max_running = max_running  # jobs running on the loop at a time (LoopExecutor)
        super().__init__(*args, **kwargs)
        self.wakeups = 0  # wakeups that ended well
        self._wakeup_started: float | None = None  # monotonic, while a wakeup is under way
        self._expected: float | None = None  # monotonic: when the next wakeup is due

    def _create_default_executor(self) -> Any:
        if self.loop is None:
            return super()._create_default_executor()
        return LoopExecutor(self.loop, self.max_running)

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        began = self._wakeup_started = time.monotonic()
        at = utcnow()
        try:
            wait = self._supervised_wakeup()
        finally:
            self._wakeup_started = None
        if self.state == STATE_PAUSED:
            self._expected = None
            return wait
        self._expected = time.monotonic() + wait if wait is not None else None
        HEALTH.woke(at, at + dt.timedelta(seconds=time.monotonic() - began + wait) if wait is not None else None)
        return wait

    def _supervised_wakeup(self) -> float | None:
        stores = [s for s in self._jobstores.values() if isinstance(s, SupervisedJobStore)]
        executor = self._executors.get("default")
        room = executor.room() if isinstance(executor, LoopExecutor) else None
        for js in stores:
            js.due_limit = room
        try:
            # One hold of the (re-entrant) lock: a job added or changed from another thread meanwhile is
            # never taken for part of the wakeup.
            with self._jobstores_lock:
                try:
                    for js in stores:
                        js.begin_wakeup()
                    wait = super()._process_jobs()
                finally:
                    for js in stores:
                        js.end_wakeup()
            failure = next((js.failure for js in stores if js.failure is not None), None)
            if failure is not None:
                raise failure
        except Exception as e:
            return self._failed(e)
        HEALTH.job_store_ok()
        self.wakeups += 1
        if self.state == STATE_PAUSED:
            return None
        if isinstance(executor, LoopExecutor) and any(js.held_back for js in stores):
            # Due jobs are left for want of room: the executor wakes this scheduler when it has some
            # (sleeping until the next due time, now past, would spin).
            executor.starved = True
            if executor.room():  # room freed meanwhile, before the flag was up
                return 0.0
            return MAX_IDLE
        return MAX_IDLE if wait is None else min(wait, MAX_IDLE)

    def _failed(self, e: Exception) -> float:
        first = HEALTH.job_store.since is None
        delay = HEALTH.job_store_failed(e, "scheduler wakeup")
        if is_database_unavailable(e):
            if self.store is not None:
                self.store.recover(e)
        elif first:  # not the database being away: a bug, whose traceback is worth a log line (once)
            log.error("scheduler wakeup failed; retrying with backoff", exc_info=e)
        return delay

    def stalled(self, margin: float) -> str | None:
        """Why this scheduler looks stuck, or None: it is not running (stopped, or its start failed), its
        thread ended, a wakeup has lasted longer than `margin` seconds, or the next wakeup is more than
        `margin` seconds late."""
        if self.state == STATE_STOPPED:
            return "the scheduler is not running"
        thread = self._thread
        if thread is None or not thread.is_alive():
            return "the scheduler's thread has ended"
        now = time.monotonic()
        started = self._wakeup_started
        if started is not None:
            return f"a wakeup has lasted {now - started:.0f}s" if now - started > margin else None
        if self.state != STATE_PAUSED and self._expected is not None and now - self._expected > margin:
            return f"no wakeup for {now - self._expected:.0f}s past the expected one"
        return None

    def abandon(self) -> None:
        """Stop this scheduler at once, without waiting for its thread (it may be stuck in a job-store call)
        and leaving the jobs under way running: its replacement takes over."""
        self.state = STATE_STOPPED
        if self._event is not None:
            self._event.set()

    def shutdown(self, wait: bool = True) -> None:
        """With `wait=False`, return at once even when the thread is stuck in a job-store call (the database
        away): executors and job stores are shut down by another thread once that call returns."""
        if wait:
            super().shutdown(wait)
            return
        if self.state == STATE_STOPPED:
            raise SchedulerNotRunningError
        executors = list(self._executors.values())
        for executor in executors:  # jobs under way are cancelled now, not when the job-store lock is free
            if isinstance(executor, LoopExecutor):
                executor.cancel_all()
        self.abandon()

        def finish() -> None:
            with self._executors_lock, self._jobstores_lock:
                for executor in executors:
                    executor.shutdown(False)
                for jobstore in self._jobstores.values():
                    jobstore.shutdown()

        threading.Thread(target=finish, name="APScheduler-shutdown", daemon=True).start()


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


def create_scheduler(store: Store, *, loop: asyncio.AbstractEventLoop | None = None,
                     threaded: bool = True, max_running: int | None = None) -> SupervisedScheduler:
    """A supervised scheduler that wakes in a thread of its own (its job-store commits, one per due time,
    never stall the loop); its jobs run on `loop` (default: the running loop, if any), at most `max_running`
    at a time (LoopExecutor). The scale-out scheduler role adds an executor of its own that puts due watches
    on the shared queue instead. `threaded` is accepted for older callers: every scheduler is threaded now."""
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
    return SupervisedScheduler(
        jobstores={"default": SupervisedJobStore(engine=store.engine, tablename="apscheduler_jobs"),
                   "memory": MemoryJobStore()},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=dt.UTC, store=store, loop=loop, max_running=max_running,
    )


RUN_WATCH = "watcher.scheduler:run_watch"


def sync_jobs(scheduler: Any, config: Config, *, first_run_spread: float = 30.0,
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
                     request_poll: float = 2.0) -> int:
    """The long-running daemon: fetcher + scheduler + outbox sender until SIGTERM/SIGINT (or `stop`).

    The config is reloaded when `hup` is set (SIGHUP) and when its file changes (watcher.reload); checks
    asked for on the web page or the API are polled for every `request_poll` seconds (watcher.rechecks).
    A watchdog replaces a scheduler that stops waking (module docstring). Returns the exit status: 0, or
    EXIT_WATCHDOG when the watchdog gave up."""
    global _pipeline
    from spiders.fetch import Fetcher
    from watcher.memory import limit_arenas
    from watcher.pipeline import Pipeline
    from watcher.reload import ConfigChange, follow_config

    limit_arenas()  # before the database, scheduler and fetch threads start allocating
    stop = stop or asyncio.Event()
    store.sync_watches(config.watch)
    store.sync_subscribers(config.subscriber)
    fetcher = fetcher or Fetcher(config.fetch)
    await fetcher.start()
    from watcher.processing import shared_processor

    # Unless the config sets it, one processing worker per core less one (watcher.processing.default_workers).
    pipeline = Pipeline(store, config, fetcher,
                        processor=shared_processor(config.watcher.process_workers, daemon=True))
    await pipeline.start()
    _pipeline = pipeline
    # Checks beyond what the pipeline lets through at once would only wait on the loop, kilobytes each:
    # twice that many run, as many again wait in the executor's queue, the rest stay due in the job store.
    max_running = 2 * pipeline.capacity
    scheduler = create_scheduler(store, max_running=max_running)
    scheduler.start(paused=True)
    counts = sync_jobs(scheduler, config)
    from watcher.memory import release_memory

    release_memory()  # what loading and syncing the watches freed, before the checks begin
    scheduler.resume()
    schedulers = [scheduler]  # the last one is in charge; earlier ones were replaced by the watchdog
    exit_status = 0
    log.warning("watcher running: %d watches (%s), %d subscribers", len(wanted := [w for w in config.watch
                if w.enabled]), ", ".join(f"{k} {v}" for k, v in counts.items()), len(config.subscriber))
    del wanted

    async def apply(change: ConfigChange) -> None:
        nonlocal config
        new = config = change.config
        await asyncio.to_thread(store.sync_watches, new.watch)
        await asyncio.to_thread(store.sync_subscribers, new.subscriber)
        pipeline.config = new
        pipeline.forget(change.added + change.removed + change.changed)
        # In a thread: it waits for the scheduler's lock, which a wakeup holds during its job-store calls.
        await asyncio.to_thread(sync_jobs, schedulers[-1], new)

    async def watchdog() -> None:
        nonlocal exit_status
        restarts = 0  # replacements since the last good wakeup
        while not stop.is_set():
            margin = config.watcher.watchdog.total_seconds()
            await _sleep(stop, min(5.0, margin / 2))
            current = schedulers[-1]
            problem = None if stop.is_set() else current.stalled(margin)
            if problem is None:
                if current.wakeups:
                    restarts = 0
                continue
            if restarts >= MAX_RESTARTS:
                log.critical("scheduler watchdog: %s, after %d restarts without a good wakeup; stopping with exit "
                             "status %d so that the service manager starts a fresh process", problem, restarts,
                             EXIT_WATCHDOG)
                HEALTH.set_state(f"exiting ({EXIT_WATCHDOG}): the scheduler keeps stalling")
                exit_status = EXIT_WATCHDOG
                stop.set()
                return
            restarts += 1
            log.error("scheduler watchdog: %s; replacing the scheduler (restart %d of at most %d)", problem,
                      restarts, MAX_RESTARTS)
            HEALTH.watchdog_restarted(problem)
            current.abandon()
            fresh = create_scheduler(store, max_running=max_running)
            schedulers.append(fresh)  # even if it fails to start: then it is "not running", replaced next time
            try:
                await _start_in_thread(fresh, timeout=margin)
            except Exception as e:
                from watcher.health import describe

                log.error("scheduler watchdog: the new scheduler did not start (%s)", describe(e))

    from watcher.rechecks import serve_requests

    tasks = [asyncio.ensure_future(follow_config(config, apply, stop, hup)),
             # Rechecks asked for on the web page or the API: now, whatever the backoff.
             asyncio.ensure_future(serve_requests(store, lambda name: pipeline.check(name, honour_backoff=False),
                                                  stop, poll=request_poll)),
             asyncio.ensure_future(watchdog())]
    from watcher.retention import retention_loop

    # Retention once a day, with the [retention] of the config in force (a reload changes it).
    tasks.append(asyncio.ensure_future(retention_loop(store, lambda: pipeline.config, stop)))
    if sender:
        from watcher.notify import sender_loop

        tasks.append(asyncio.ensure_future(sender_loop(store, config, stop)))
    guard: threading.Timer | None = None
    try:
        await stop.wait()
    finally:
        log.warning("watcher stopping")
        if exit_status:
            # A shutdown that hangs (the database away) must not keep the process from exiting.
            import os

            guard = threading.Timer(60, os._exit, args=(exit_status,))
            guard.daemon = True
            guard.start()
        for sched in schedulers:
            if sched is schedulers[-1] and sched.state != STATE_STOPPED:
                sched.shutdown(wait=False)  # returns at once, even with a wakeup stuck in the database
            for executor in list(sched._executors.values()):
                if isinstance(executor, LoopExecutor):
                    executor.cancel_all()
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
        if guard is not None:
            guard.cancel()
    return exit_status


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def _start_in_thread(scheduler: SupervisedScheduler, *, timeout: float) -> None:
    """Start `scheduler` (its job store reads the database) without blocking the loop; give up after
    `timeout` seconds, in which case the scheduler is stopped as soon as its start returns."""
    import concurrent.futures

    lock = threading.Lock()
    flags = {"done": False, "given_up": False}
    fut: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        try:
            scheduler.start()
        except BaseException as e:
            fut.set_exception(e)
            return
        with lock:
            if flags["given_up"]:
                scheduler.abandon()
                return
            flags["done"] = True
        fut.set_result(None)

    threading.Thread(target=run, name="watcher-scheduler-start", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
    except TimeoutError:
        with lock:
            if flags["done"]:
                return
            flags["given_up"] = True
        raise


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
