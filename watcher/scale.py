"""Scale-out roles on PostgreSQL and Redis: one active scheduler, any number of workers and senders.

- `watcher run --role scheduler`: holds a PostgreSQL advisory lock (a standby waits for it); while it
  holds it, APScheduler (jobs in the shared database) puts each due watch on the Redis queue as
  `{"watch": name, "slot": n}`, where the slot numbers the watch's due times.
- `watcher worker`: pops due watches and runs the usual check (fetch with its own in-process Scrapy,
  extract, store, diff, outbox). Before fetching, it claims `watcher:claim:<watch>:<slot>` with SET NX,
  so a watch is checked at most once per due time however many workers run and even if a scheduler
  hand-over enqueues it twice.
- `watcher sender`: delivers the outbox; claims use `SELECT ... FOR UPDATE SKIP LOCKED`.

A worker killed mid-check loses that check; the watch comes round again at its next due time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import socket
from typing import Any

from sqlalchemy import text

from watcher.config import Config, WatchConfig
from watcher.errors import ConfigError
from watcher.store import Store

log = logging.getLogger(__name__)
QUEUE = "watcher:due"
CLAIM = "watcher:claim:{watch}:{slot}"
LOCK_KEY = 0x77617463  # "watc": the advisory lock of the active scheduler
ENQUEUE_WATCH = "watcher.scale:enqueue_watch"
_queue: Any = None  # the scheduler role's Redis client; jobs look it up here (only names are persisted)
_config: Config | None = None


def slot_of(w: WatchConfig, now: dt.datetime) -> int:
    """Which due time of the watch `now` falls in: the same for every scheduler that fires it."""
    period = w.interval.total_seconds() if w.interval else 60.0
    return int(now.timestamp() // max(1.0, period))


async def enqueue_watch(name: str, sig: str | None = None) -> None:
    """The scheduler role's job function: the watch is due, put it on the shared queue."""
    if _queue is None or _config is None:
        log.warning("job for %s fired with no queue", name)
        return
    slot = slot_of(_config.watch_by_name(name), dt.datetime.now(dt.UTC))
    await _queue.lpush(QUEUE, json.dumps({"watch": name, "slot": slot}))


class LeaderLock:
    """A session-level PostgreSQL advisory lock on a connection of its own. PostgreSQL releases it when
    that connection ends, so a killed scheduler frees it at once for a standby."""

    def __init__(self, store: Store, key: int = LOCK_KEY) -> None:
        if store.dialect != "postgresql":
            raise ConfigError("--role scheduler needs PostgreSQL (the lock that elects one scheduler)")
        self.store, self.key, self.conn = store, key, None

    def try_acquire(self) -> bool:
        conn = self.store.engine.connect()
        if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar():
            conn.commit()
            self.conn = conn
            return True
        conn.close()
        return False

    def held(self) -> bool:
        if self.conn is None:
            return False
        try:
            self.conn.execute(text("SELECT 1"))
            return True
        except Exception:
            log.warning("lost the scheduler lock's database connection")
            self.conn = None
            return False

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self.conn.close()
            except Exception:  # the connection is gone, and the lock with it
                log.info("scheduler lock released with its connection")
            self.conn = None


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def run_scheduler_role(store: Store, config: Config, stop: asyncio.Event, *, poll: float = 1.0,
                             hup: asyncio.Event | None = None) -> None:
    """Stand by until the lock is ours, then schedule (enqueue) until it is lost or we are stopped.
    A config reload (SIGHUP, file change) re-syncs the jobs of the active scheduler."""
    global _queue, _config
    import redis.asyncio as aredis

    from watcher.reload import ConfigChange, follow_config
    from watcher.scheduler import create_scheduler, sync_jobs

    lock = LeaderLock(store)
    _queue, _config = aredis.from_url(config.redis.url), config
    store.sync_watches(config.watch)
    active: list[Any] = []

    async def apply(change: ConfigChange) -> None:
        global _config
        await asyncio.to_thread(store.sync_watches, change.config.watch)
        _config = change.config
        for scheduler in active:
            sync_jobs(scheduler, change.config, func=ENQUEUE_WATCH)

    follower = asyncio.ensure_future(follow_config(config, apply, stop, hup))
    try:
        while not stop.is_set():
            if not await asyncio.to_thread(lock.try_acquire):
                await _sleep(stop, poll)
                continue
            log.warning("scheduler %s:%d is now the active scheduler", socket.gethostname(), os.getpid())
            scheduler = create_scheduler(store)
            scheduler.start(paused=True)
            sync_jobs(scheduler, _config, func=ENQUEUE_WATCH)
            scheduler.resume()
            active.append(scheduler)
            while not stop.is_set() and await asyncio.to_thread(lock.held):
                await _sleep(stop, poll)
            active.remove(scheduler)
            scheduler.shutdown(wait=False)
            await asyncio.to_thread(lock.release)
    finally:
        follower.cancel()
        await _queue.aclose()
        _queue = None


async def run_worker_role(store: Store, config: Config, stop: asyncio.Event, *, fetcher: Any = None,
                          hup: asyncio.Event | None = None) -> None:
    """Pop due watches and check them, up to `fetch.concurrency` at a time, until stopped. A config reload
    (SIGHUP, file change) changes the watches it knows."""
    import redis.asyncio as aredis

    from spiders.fetch import Fetcher
    from watcher.pipeline import Pipeline
    from watcher.reload import ConfigChange, follow_config

    me = f"{socket.gethostname()}:{os.getpid()}"
    r = aredis.from_url(config.redis.url)
    fetcher = fetcher or Fetcher(config.fetch)
    await fetcher.start()
    pipeline = Pipeline(store, config, fetcher)
    slots = asyncio.Semaphore(config.fetch.concurrency)
    tasks: set[asyncio.Task[Any]] = set()

    async def apply(change: ConfigChange) -> None:
        pipeline.config = change.config

    follower = asyncio.ensure_future(follow_config(config, apply, stop, hup))

    async def check(name: str) -> None:
        try:
            result = await pipeline.check(name)
            log.info("%s: %s", name, result.outcome)
        finally:
            slots.release()

    log.warning("worker %s consuming %s", me, QUEUE)
    try:
        while not stop.is_set():
            await slots.acquire()
            item = await r.brpop([QUEUE], timeout=1)
            if item is None:
                slots.release()
                continue
            job = json.loads(item[1])
            name = job["watch"]
            try:
                pipeline.config.watch_by_name(name)
            except ConfigError:
                slots.release()
                log.warning("queue names unknown watch %r; skipped", name)
                continue
            claimed = await r.set(CLAIM.format(watch=name, slot=job["slot"]), me, nx=True, ex=7 * 86400)
            if not claimed:  # another worker has (or had) this due time
                slots.release()
                continue
            task = asyncio.ensure_future(check(name))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        follower.cancel()
        for t in list(tasks):
            t.cancel()
        await fetcher.close()
        await r.aclose()
        await asyncio.get_running_loop().run_in_executor(None, pipeline.close)
