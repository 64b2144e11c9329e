"""Scale-out on PostgreSQL and Redis: one active scheduler, any number of workers and senders.

- `watcher run --role scheduler` holds a PostgreSQL advisory lock (a standby waits for it). While it holds
  it, APScheduler (jobs in the shared database) fires each watch on its schedule, and `QueueExecutor`
  puts `{watch, due}` on a Redis stream instead of running it; `due` is the job's scheduled time in ms,
  the same for any scheduler that fires that due time.
- `watcher worker` reads the stream through a consumer group, claims the watch for the due time (a Lua
  script on per-watch state), runs the pipeline's check, then acknowledges. A worker renews the leases of
  its jobs every quarter of `redis.lease`; entries of a worker that stopped renewing (killed, frozen, cut
  off) are taken over by another worker with XAUTOCLAIM once idle for the lease, and checked then.
- Per-domain politeness is shared by all workers (`DomainGate`, used by spiders/politeness.py): at most
  the domain's concurrency in flight across all workers, starts spaced by its delay (fixed, or adapted
  to latency as AutoThrottle does), robots.txt verdicts kept in Redis until they expire (`RobotsCache`).
- `watcher sender`: delivers the outbox; claims use `SELECT ... FOR UPDATE SKIP LOCKED`.

At most once per due time: a due time at or before the watch's last done one is refused in Redis, and
the database is the final word: the pipeline stores a check for a due time only if it is later than the
watch's `due_done`, compared in the check's own transaction (pipeline.py), so a worker that was
presumed dead and wakes up, or one killed between its commit and its acknowledgement, never stores a
due time twice.

Redis holds O(watches), never a key per due time:
    watcher:jobs               stream (group "workers"): one entry per outstanding job; XDEL when done
    watcher:queued             hash watch -> "<entry id> <due>": the entry still waiting; a newer due time
                               of the same watch coalesces into it, so the stream never exceeds the watches
    watcher:running            hash watch -> "<due> <worker> <lease end ms> <entry id>"
    watcher:done               hash watch -> last done due time (ms)
    watcher:members            hash id -> JSON of each scheduler and worker; watcher:heartbeats zset id -> ms
    watcher:domain:<host>      hash {next start allowed (ms), current delay (ms)}, expires when idle
    watcher:domain:<host>:leases  zset token -> lease end (ms): the requests in flight to that host
    watcher:robots:<netloc>    the site's robots.txt, expiring with its verdict
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import random
import socket
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from apscheduler.executors.base import BaseExecutor
from sqlalchemy import text

from watcher.config import Config, FetchConfig
from watcher.errors import ConfigError
from watcher.store import Store

log = logging.getLogger(__name__)
LOCK_KEY = 0x77617463  # "watc": the advisory lock of the active scheduler
ENQUEUE_WATCH = "watcher.scale:enqueue_watch"
STREAM = "watcher:jobs"
GROUP = "workers"
QUEUED = "watcher:queued"
RUNNING = "watcher:running"
DONE = "watcher:done"
MEMBERS = "watcher:members"
HEARTBEATS = "watcher:heartbeats"
DOMAIN = "watcher:domain:{host}"
DOMAIN_LEASES = "watcher:domain:{host}:leases"
ROBOTS = "watcher:robots:{netloc}"
MEMBER_FORGET_MS = 3600_000  # a member silent for an hour is dropped from the registry


def due_ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def due_iso(due: int | str | None) -> str | None:
    if due is None:
        return None
    return dt.datetime.fromtimestamp(int(due) / 1000, dt.UTC).isoformat(timespec="seconds")


def member_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --------------------------------------------------------------------------- Lua (atomic per watch / domain)

_LUA_COMMON = r"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function num(x) return string.format('%.0f', x) end
local function split(s)
  local out = {}
  for part in string.gmatch(s, '%S+') do out[#out + 1] = part end
  return out
end
-- Put (watch, due) on the stream unless that due time is done or an entry of the watch still waits
-- (then the later due time coalesces into it). KEYS: stream, queued, done.
local function enqueue(stream, queued, done, watch, due, maxlen)
  local d = redis.call('HGET', done, watch)
  if d and tonumber(d) >= due then return 'stale' end
  local q = redis.call('HGET', queued, watch)
  if q then
    local f = split(q)
    if #redis.call('XRANGE', stream, f[1], f[1]) > 0 then
      if due > tonumber(f[2]) then redis.call('HSET', queued, watch, f[1] .. ' ' .. num(due)) end
      return 'coalesced'
    end
  end
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'watch', watch, 'due', num(due))
  redis.call('HSET', queued, watch, id .. ' ' .. num(due))
  return 'queued'
end
"""

# KEYS: stream, queued, done. ARGV: maxlen, then watch, due pairs. -> {queued, coalesced, stale}
_ENQUEUE = _LUA_COMMON + r"""
local counts = {queued = 0, coalesced = 0, stale = 0}
for i = 2, #ARGV, 2 do
  local r = enqueue(KEYS[1], KEYS[2], KEYS[3], ARGV[i], tonumber(ARGV[i + 1]), ARGV[1])
  counts[r] = counts[r] + 1
end
return {counts.queued, counts.coalesced, counts.stale}
"""

# KEYS: queued, done, running. ARGV: watch, due, entry, worker, lease ms. -> {status, due, holder}
# ok: the job is this worker's until its lease ends (renewed while it runs); done: that due time (or a
# later one) was done; busy: another live job of the watch runs (a due time that comes while the last one
# is still being checked is skipped, as the single-process scheduler does with max_instances = 1).
_CLAIM = _LUA_COMMON + r"""
local now = now_ms()
local due = tonumber(ARGV[2])
local q = redis.call('HGET', KEYS[1], ARGV[1])
if q then
  local f = split(q)
  if f[1] == ARGV[3] then
    if tonumber(f[2]) > due then due = tonumber(f[2]) end
    redis.call('HDEL', KEYS[1], ARGV[1])
  end
end
local d = redis.call('HGET', KEYS[2], ARGV[1])
if d and tonumber(d) >= due then return {'done', d, ''} end
local r = redis.call('HGET', KEYS[3], ARGV[1])
if r then
  local f = split(r)
  if tonumber(f[3]) > now and not (f[2] == ARGV[4] and f[4] == ARGV[3]) then return {'busy', f[1], f[2]} end
end
local lease_end = num(now + tonumber(ARGV[5]))
redis.call('HSET', KEYS[3], ARGV[1], num(due) .. ' ' .. ARGV[4] .. ' ' .. lease_end .. ' ' .. ARGV[3])
return {'ok', num(due), ARGV[4]}
"""

# KEYS: stream, done, running. ARGV: group, watch, due, worker, entry. -> 1 if the job was still ours
_COMPLETE = _LUA_COMMON + r"""
local d = redis.call('HGET', KEYS[2], ARGV[2])
if not d or tonumber(d) < tonumber(ARGV[3]) then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
local mine = 0
local r = redis.call('HGET', KEYS[3], ARGV[2])
if r then
  local f = split(r)
  if f[2] == ARGV[4] and f[4] == ARGV[5] then redis.call('HDEL', KEYS[3], ARGV[2]); mine = 1 end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[5])
redis.call('XDEL', KEYS[1], ARGV[5])
return mine
"""

# A job given back unfinished (worker stopping): free it and queue its due time again at once.
# KEYS: stream, queued, done, running. ARGV: group, watch, due, worker, entry, maxlen.
_REQUEUE = _LUA_COMMON + r"""
local r = redis.call('HGET', KEYS[4], ARGV[2])
if r then
  local f = split(r)
  if f[2] == ARGV[4] and f[4] == ARGV[5] then redis.call('HDEL', KEYS[4], ARGV[2]) end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[5])
redis.call('XDEL', KEYS[1], ARGV[5])
return enqueue(KEYS[1], KEYS[2], KEYS[3], ARGV[2], tonumber(ARGV[3]), ARGV[6])
"""

# Heartbeat of a member, and lease renewal of a worker's jobs: a job still held gets a new lease end and
# its stream entry's idle time reset (so XAUTOCLAIM leaves it alone); one taken over by another worker is
# reported lost. KEYS: stream, running, members, heartbeats. ARGV: group, id, lease ms, info JSON, then
# watch, entry pairs. -> the watches whose jobs were lost
_RENEW = _LUA_COMMON + r"""
local now = now_ms()
redis.call('ZADD', KEYS[4], now, ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
local lost = {}
for i = 5, #ARGV, 2 do
  local watch, entry = ARGV[i], ARGV[i + 1]
  local r = redis.call('HGET', KEYS[2], watch)
  local f = r and split(r) or {}
  if f[2] == ARGV[2] and f[4] == entry then
    redis.call('HSET', KEYS[2], watch, f[1] .. ' ' .. f[2] .. ' ' .. num(now + tonumber(ARGV[3])) .. ' ' .. entry)
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, entry, 'JUSTID')
  else
    lost[#lost + 1] = watch
  end
end
return lost
"""

# Domain politeness. KEYS: domain state, domain leases. ARGV: token, limit, min delay ms, start delay ms,
# lease ms, idle ms. -> {1, now} granted at now; {0, ms} wait that long (the delay); {0, 0} full (poll)
_ACQUIRE = _LUA_COMMON + r"""
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return {0, 0} end
local nxt = tonumber(redis.call('HGET', KEYS[1], 'next') or '0')
if nxt > now then return {0, nxt - now} end
local delay = tonumber(redis.call('HGET', KEYS[1], 'delay') or ARGV[4])
if delay < tonumber(ARGV[3]) then delay = tonumber(ARGV[3]) end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('HSET', KEYS[1], 'next', num(now + delay), 'delay', num(delay))
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {1, now}
"""

# KEYS: domain leases. ARGV: lease ms, tokens: the leases still held get a new end.
_RENEW_DOMAIN = _LUA_COMMON + r"""
local now = now_ms()
local n = 0
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
    n = n + 1
  end
end
if n > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

# KEYS: domain state, domain leases. ARGV: token, latency ms (-1: none), 1 if HTTP 200, autothrottle (0/1),
# target concurrency, min delay ms, max delay ms. AutoThrottle's rule, shared: the delay moves halfway
# towards latency / target concurrency, and only an HTTP 200 may lower it.
_RELEASE = _LUA_COMMON + r"""
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[4] == '1' and tonumber(ARGV[2]) >= 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  local old = tonumber(redis.call('HGET', KEYS[1], 'delay') or ARGV[6])
  local target = tonumber(ARGV[2]) / tonumber(ARGV[5])
  local new = math.max(target, (old + target) / 2)
  new = math.min(math.max(tonumber(ARGV[6]), new), tonumber(ARGV[7]))
  if ARGV[3] == '1' or new > old then redis.call('HSET', KEYS[1], 'delay', num(new)) end
end
return removed
"""


# --------------------------------------------------------------------------- the queue


@dataclass(slots=True)
class Job:
    entry: str  # the stream entry id
    watch: str
    due: int


class JobQueue:
    """The shared queue of due watches, on a Redis stream with a consumer group."""

    def __init__(self, redis: Any, *, lease: float, maxlen: int = 1_000_000) -> None:
        self.r = redis
        self.lease_ms = int(lease * 1000)
        self.maxlen = maxlen  # a safety cap only: coalescing keeps one waiting entry per watch
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)
        self._complete = redis.register_script(_COMPLETE)
        self._requeue = redis.register_script(_REQUEUE)
        self._renew = redis.register_script(_RENEW)

    async def ensure_group(self) -> None:
        try:
            await self.r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except Exception as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def enqueue(self, due: dict[str, int], *, batch: int = 500) -> dict[str, int]:
        """Queue each watch for its due time; returns how many were queued, coalesced, stale."""
        totals = {"queued": 0, "coalesced": 0, "stale": 0}
        items = list(due.items())
        for i in range(0, len(items), batch):
            args: list[Any] = [self.maxlen]
            for name, when in items[i:i + batch]:
                args += [name, when]
            queued, coalesced, stale = await self._enqueue(keys=[STREAM, QUEUED, DONE], args=args)
            totals["queued"] += queued
            totals["coalesced"] += coalesced
            totals["stale"] += stale
        return totals

    async def read(self, consumer: str, count: int, *, block_ms: int = 1000) -> list[Job]:
        try:
            reply = await self.r.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count, block=block_ms)
        except Exception as e:
            if "NOGROUP" not in str(e):
                raise
            log.warning("the job stream or its group is gone (Redis restarted empty?); creating it again")
            await self.ensure_group()
            return []
        return [job for _stream, entries in reply or [] for job in self._jobs(entries)]

    async def reclaim(self, consumer: str, count: int) -> list[Job]:
        """Entries another worker has not renewed for a lease: that worker is gone; take its jobs."""
        reply = await self.r.xautoclaim(STREAM, GROUP, consumer, self.lease_ms, "0-0", count=count)
        return list(self._jobs(reply[1]))

    @staticmethod
    def _jobs(entries: list[Any]) -> list[Job]:
        out = []
        for entry_id, fields in entries:
            if fields and "watch" in fields and "due" in fields:
                out.append(Job(entry_id, fields["watch"], int(fields["due"])))
        return out

    async def claim(self, job: Job, worker: str) -> tuple[str, int, str]:
        status, due, holder = await self._claim(keys=[QUEUED, DONE, RUNNING],
                                                args=[job.watch, job.due, job.entry, worker, self.lease_ms])
        return status, int(due), holder

    async def complete(self, job: Job, worker: str) -> bool:
        """The due time is done: remember it, acknowledge and delete the entry. False if the job had been
        taken over by another worker in the meantime (that worker's check then stores nothing)."""
        return bool(await self._complete(keys=[STREAM, DONE, RUNNING],
                                         args=[GROUP, job.watch, job.due, worker, job.entry]))

    async def drop(self, job: Job) -> None:
        async with self.r.pipeline(transaction=True) as p:
            p.xack(STREAM, GROUP, job.entry)
            p.xdel(STREAM, job.entry)
            await p.execute()

    async def requeue(self, job: Job, worker: str) -> str:
        return str(await self._requeue(keys=[STREAM, QUEUED, DONE, RUNNING],
                                       args=[GROUP, job.watch, job.due, worker, job.entry, self.maxlen]))

    async def heartbeat(self, member: str, info: dict[str, Any], jobs: list[Job] | None = None) -> list[str]:
        """Record `member` as alive and renew its jobs' leases; returns the watches whose jobs were lost."""
        args: list[Any] = [GROUP, member, self.lease_ms, json.dumps(info)]
        for job in jobs or []:
            args += [job.watch, job.entry]
        return list(await self._renew(keys=[STREAM, RUNNING, MEMBERS, HEARTBEATS], args=args))

    async def forget_departed(self, max_silence_ms: int = MEMBER_FORGET_MS) -> int:
        """Drop members silent for longer than `max_silence_ms` from the registry, and their consumers from
        the group once they hold no entries (bounded Redis over months of restarts)."""
        now_s, now_us = await self.r.time()
        cutoff = now_s * 1000 + now_us // 1000 - max_silence_ms
        gone = await self.r.zrangebyscore(HEARTBEATS, "-inf", cutoff)
        if gone:
            async with self.r.pipeline(transaction=True) as p:
                p.hdel(MEMBERS, *gone)
                p.zrem(HEARTBEATS, *gone)
                await p.execute()
        alive = set(await self.r.zrange(HEARTBEATS, 0, -1))
        with contextlib.suppress(Exception):  # no group yet
            for c in await self.r.xinfo_consumers(STREAM, GROUP):
                if c["name"] not in alive and c["pending"] == 0 and c["idle"] > max_silence_ms:
                    await self.r.xgroup_delconsumer(STREAM, GROUP, c["name"])
        return len(gone)

    async def forget_watches(self, keep: set[str]) -> int:
        """Remove the per-watch state of watches no longer configured (O(watches) stays O(configured))."""
        removed = 0
        for key in (DONE, QUEUED):
            stale = [w for w in await self.r.hkeys(key) if w not in keep]
            for i in range(0, len(stale), 1000):
                removed += await self.r.hdel(key, *stale[i:i + 1000])
        return removed


async def enqueue_watch(name: str, sig: str | None = None) -> None:
    """The job function the scheduler role's jobs reference. `QueueExecutor` enqueues them with their due
    time instead of calling this; it runs only if another executor picks such a job up."""
    log.warning("job for %s fired outside the scheduler role; nothing enqueued", name)


class QueueExecutor(BaseExecutor):  # type: ignore[misc]
    """APScheduler executor of the scheduler role: a due job goes on the shared queue, with its scheduled
    run time as the due time, instead of running here. Enqueues are batched (one script call per few
    hundred watches); while Redis is unreachable they are kept, coalesced per watch, and sent when it
    returns, so an outage costs the checks of its duration and no watch is forgotten."""

    def __init__(self, queue: JobQueue) -> None:
        super().__init__()
        self.queue = queue
        self.pending: dict[str, int] = {}
        self.counts = {"queued": 0, "coalesced": 0, "stale": 0}
        self.last_flush: float | None = None
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def _do_submit_job(self, job: Any, run_times: list[dt.datetime]) -> None:
        # Called in the scheduler's thread: hand over to the loop.
        name, due = job.args[0], due_ms(run_times[-1])  # coalesced misfires: the latest due time
        self._loop.call_soon_threadsafe(self._submit, job.id, name, due)

    def _submit(self, job_id: str, name: str, due: int) -> None:
        self.pending[name] = max(due, self.pending.get(name, due))
        self._wake.set()
        self._run_job_success(job_id, [])

    async def flush_forever(self, stop: asyncio.Event) -> None:
        failing_since: float | None = None
        while not stop.is_set():
            await _wait(self._wake, 1.0)
            self._wake.clear()
            if not self.pending:
                continue
            batch, self.pending = self.pending, {}
            try:
                counts = await self.queue.enqueue(batch)
            except Exception as e:
                for name, due in batch.items():  # keep them for when Redis is back
                    self.pending[name] = max(due, self.pending.get(name, due))
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.error("cannot enqueue %d due watches (Redis: %s); keeping them until it is back",
                              len(batch), e)
                await _sleep(stop, 1.0)
                self._wake.set()
                continue
            if failing_since is not None:
                log.warning("Redis is back after %.0fs; due watches enqueued again", time.monotonic() - failing_since)
                failing_since = None
            for k, v in counts.items():
                self.counts[k] += v
            self.last_flush = time.time()


# --------------------------------------------------------------------------- the scheduler role


async def enqueue_now(queue: JobQueue, name: str) -> None:
    """A check asked for by hand: queued with this moment as its due time (later than any done one, so
    the queue and the pipeline take it; a due time already waiting for the watch is brought forward)."""
    await queue.enqueue({name: due_ms(dt.datetime.now(dt.UTC))})


class LeaderLock:
    """A session-level PostgreSQL advisory lock on a connection of its own. PostgreSQL releases it when
    that connection ends, so a killed scheduler frees it at once for a standby."""

    def __init__(self, store: Store, key: int = LOCK_KEY, *, name: str | None = None) -> None:
        if store.dialect != "postgresql":
            raise ConfigError("--role scheduler needs PostgreSQL (the lock that elects one scheduler)")
        self.store, self.key, self.conn = store, key, None
        self.name = name or member_id()

    def try_acquire(self) -> bool:
        conn = self.store.engine.connect()
        if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar():
            # Named so `watcher status` can show which scheduler PostgreSQL gave the lock to.
            conn.execute(text("SELECT set_config('application_name', :n, false)"),
                         {"n": f"watcher scheduler {self.name}"[:63]})
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


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Wait until `event` is set or `seconds` have passed."""
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
    except TimeoutError:
        pass


_sleep = _wait  # _sleep(stop, s): sleep s seconds unless stopped first


def redis_client(url: str, *, decode: bool = True) -> Any:
    """An asyncio Redis client that retries a command once on a dropped connection (a pooled connection
    is dead after a Redis restart; the retry reconnects)."""
    import redis.asyncio as aredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    return aredis.from_url(url, decode_responses=decode, retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 2),
                           retry_on_error=[RedisConnectionError])


async def run_scheduler_role(store: Store, config: Config, stop: asyncio.Event, *, poll: float = 1.0,
                             hup: asyncio.Event | None = None) -> None:
    """Stand by until the lock is ours, then schedule (enqueue) until it is lost or we are stopped.
    A config reload (SIGHUP, file change) re-syncs the jobs of the active scheduler."""
    from watcher.rechecks import serve_requests
    from watcher.reload import ConfigChange, follow_config
    from watcher.retention import retention_loop
    from watcher.scheduler import create_scheduler, sync_jobs

    me = member_id()
    lock = LeaderLock(store, name=me)
    r = redis_client(config.redis.url)
    queue = JobQueue(r, lease=config.redis.lease.total_seconds(),
                     maxlen=max(10_000, 4 * len(config.watch)))
    store.sync_watches(config.watch)
    current = [config]  # the config in force (a reload replaces it)
    active: list[Any] = []

    async def apply(change: ConfigChange) -> None:
        await asyncio.to_thread(store.sync_watches, change.config.watch)
        current[0] = change.config
        info["watches"] = len(change.config.watch)
        for scheduler in active:
            await asyncio.to_thread(sync_jobs, scheduler, change.config, func=ENQUEUE_WATCH)

    started = time.time()
    info: dict[str, Any] = {"kind": "scheduler", "role": "standby", "host": socket.gethostname(),
                            "pid": os.getpid(), "started": started, "watches": len(config.watch)}
    follower = asyncio.ensure_future(follow_config(config, apply, stop, hup))

    async def beat(executor: QueueExecutor | None) -> None:
        if executor is not None:
            info.update(executor.counts, pending=len(executor.pending), last_enqueue=executor.last_flush)
        try:
            await queue.heartbeat(me, info)
        except Exception as e:  # Redis down: the queue reports it; the heartbeat only informs `status`
            log.debug("scheduler heartbeat failed: %s", e)

    try:
        while not stop.is_set():
            await beat(None)
            if not await asyncio.to_thread(lock.try_acquire):
                await _sleep(stop, poll)
                continue
            log.warning("scheduler %s is now the active scheduler", me)
            info.update(role="active", active_since=time.time())
            with contextlib.suppress(Exception):
                await queue.forget_watches({w.name for w in current[0].watch if w.enabled})
            executor = QueueExecutor(queue)
            flusher = asyncio.ensure_future(executor.flush_forever(stop))
            scheduler = create_scheduler(store)
            scheduler.add_executor(executor, "default")
            scheduler.start(paused=True)
            leading, requests, pruner = asyncio.Event(), None, None
            try:
                await asyncio.to_thread(sync_jobs, scheduler, current[0], func=ENQUEUE_WATCH)
                scheduler.resume()
                active.append(scheduler)
                # Rechecks asked for on the web page or the API: on the queue now, due this moment.
                requests = asyncio.ensure_future(serve_requests(store, lambda name: enqueue_now(queue, name),
                                                                leading))
                # Retention once a day, by the active scheduler only (one pruner per deployment).
                pruner = asyncio.ensure_future(retention_loop(store, lambda: current[0], leading))
                while not stop.is_set() and await asyncio.to_thread(lock.held):
                    await beat(executor)
                    await _sleep(stop, poll)
            finally:
                leading.set()
                if requests is not None:
                    with contextlib.suppress(Exception):
                        await requests
                if pruner is not None:
                    pruner.cancel()  # a prune under way finishes in its thread; its transaction is its own
                if scheduler in active:
                    active.remove(scheduler)
                # Not waiting: with the database gone its thread may be stuck in a job-store call.
                scheduler.shutdown(wait=False)
            await asyncio.sleep(0.1)  # let the executor's last hand-overs reach the loop
            if executor.pending:
                with contextlib.suppress(Exception):
                    await queue.enqueue(executor.pending)
            flusher.cancel()
            await asyncio.to_thread(lock.release)
            info.update(role="standby")
    finally:
        follower.cancel()
        with contextlib.suppress(Exception):
            await r.hdel(MEMBERS, me)
            await r.zrem(HEARTBEATS, me)
        await r.aclose()


# --------------------------------------------------------------------------- the worker role


class Worker:
    """Takes due watches from the queue and checks them, up to `fetch.concurrency` at a time."""

    def __init__(self, store: Store, config: Config, *, fetcher: Any = None, worker_id: str | None = None,
                 grace: float = 10.0) -> None:
        self.store, self.config = store, config
        self.id = worker_id or member_id()
        self.r = redis_client(config.redis.url)
        self.lease = config.redis.lease.total_seconds()
        self.queue = JobQueue(self.r, lease=self.lease, maxlen=max(10_000, 4 * len(config.watch)))
        self.capacity = config.fetch.concurrency
        self.grace = grace
        self.fetcher = fetcher
        self.jobs: dict[str, tuple[Job, asyncio.Task[Any]]] = {}  # entry id -> job and its task
        self.checks = 0
        self.started = time.time()
        self._freed = asyncio.Event()

    def _info(self) -> dict[str, Any]:
        return {"kind": "worker", "host": socket.gethostname(), "pid": os.getpid(), "started": self.started,
                "in_flight": len(self.jobs), "capacity": self.capacity, "checks": self.checks}

    async def run(self, stop: asyncio.Event, hup: asyncio.Event | None = None) -> None:
        """Until stopped. A config reload (SIGHUP, file change) changes the watches this worker knows."""
        from spiders.fetch import Fetcher
        from watcher.pipeline import Pipeline
        from watcher.reload import ConfigChange, follow_config

        if self.fetcher is None:
            self.fetcher = Fetcher(self.config.fetch, WATCHER_REDIS_URL=self.config.redis.url,
                                   WATCHER_WORKER_ID=self.id, WATCHER_LEASE=self.lease)
        await self.fetcher.start()
        # Other workers check the same watches: the pipeline checks each watch's state revision before it
        # fetches (watcher/pipeline.py), so a state this worker kept from an earlier due time is never trusted.
        self.pipeline = Pipeline(self.store, self.config, self.fetcher, shared=True)
        await self.pipeline.start()

        async def apply(change: ConfigChange) -> None:
            self.config = self.pipeline.config = change.config
            self.pipeline.forget(change.added + change.removed + change.changed)

        follower = asyncio.ensure_future(follow_config(self.config, apply, stop, hup))
        await _retry_until(stop, self.queue.ensure_group, "create the job stream")
        await self.queue.heartbeat(self.id, self._info())
        heart = asyncio.ensure_future(self._heartbeat(stop))
        log.warning("worker %s consuming %s (up to %d checks at a time, lease %.0fs)", self.id, STREAM,
                    self.capacity, self.lease)
        failing_since: float | None = None
        next_reclaim = 0.0
        try:
            while not stop.is_set():
                free = self.capacity - len(self.jobs)
                if free <= 0:
                    self._freed.clear()
                    await _wait(self._freed, 1.0)
                    continue
                try:
                    # Jobs of a worker gone silent come first (they are late already), a few times a lease.
                    if time.monotonic() >= next_reclaim:
                        next_reclaim = time.monotonic() + max(0.25, self.lease / 4)
                        for job in await self.queue.reclaim(self.id, free):
                            log.warning("worker %s takes over %s (due %s) from a worker that stopped renewing it",
                                        self.id, job.watch, due_iso(job.due))
                            await self._start(job)
                        free = self.capacity - len(self.jobs)
                        if free <= 0:
                            continue
                    for job in await self.queue.read(self.id, free, block_ms=int(min(1000, self.lease * 250))):
                        await self._start(job)
                except Exception as e:
                    if failing_since is None:
                        failing_since = time.monotonic()
                        log.error("worker %s cannot read the queue (Redis: %s); retrying", self.id, e)
                    await _sleep(stop, 1.0)
                    continue
                if failing_since is not None:
                    log.warning("worker %s: Redis is back after %.0fs", self.id, time.monotonic() - failing_since)
                    failing_since = None
        finally:
            follower.cancel()
            await self._shutdown(heart)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        every = max(0.25, self.lease / 4)
        beats = 0
        while not stop.is_set():
            await _sleep(stop, every)
            if stop.is_set():
                break
            try:
                lost = await self.queue.heartbeat(self.id, self._info(), [j for j, _ in self.jobs.values()])
                for watch in lost:
                    log.warning("worker %s lost its lease on %s (another worker took it over; the database "
                                "stores that due time once)", self.id, watch)
                beats += 1
                if beats % 240 == 1:
                    await self.queue.forget_departed()
            except Exception as e:
                log.debug("worker heartbeat failed: %s", e)

    async def _start(self, job: Job) -> None:
        try:
            self.config.watch_by_name(job.watch)
        except ConfigError:
            log.warning("queue names unknown watch %r (not in this worker's config); dropped", job.watch)
            await self.queue.drop(job)
            return
        status, due, holder = await self.queue.claim(job, self.id)
        if status != "ok":
            log.debug("%s due %s: %s (%s)", job.watch, due_iso(job.due), status, holder or due_iso(due))
            await self.queue.drop(job)
            return
        job.due = due
        task = asyncio.ensure_future(self._run(job))
        self.jobs[job.entry] = (job, task)

    async def _run(self, job: Job) -> None:
        try:
            result = await self.pipeline.check(job.watch, due=job.due)
            self.checks += 1
            # The check's own line (outcome, events) is logged by the pipeline; this one adds the due time.
            log.debug("%s (due %s): %s%s", job.watch, due_iso(job.due), result.outcome,
                     f" ({result.reason})" if result.reason else "")
            try:
                if not await self.queue.complete(job, self.id):
                    log.warning("%s (due %s): done after another worker took it over", job.watch, due_iso(job.due))
            except Exception as e:  # left pending: whoever takes it over finds the due time stored
                log.warning("%s: could not acknowledge (Redis: %s)", job.watch, e)
        finally:
            self.jobs.pop(job.entry, None)
            self._freed.set()

    async def _shutdown(self, heart: asyncio.Future[Any]) -> None:
        """Let running checks finish for a moment, then give the rest back to the queue at once (rather
        than leaving them for the lease to expire)."""
        running = [t for _, t in self.jobs.values()]
        if running:
            log.warning("worker %s stopping: waiting up to %.0fs for %d checks", self.id, self.grace, len(running))
            await asyncio.wait(running, timeout=self.grace)
        for job, task in list(self.jobs.values()):
            task.cancel()
            try:
                await self.queue.requeue(job, self.id)
                log.warning("%s (due %s): given back to the queue", job.watch, due_iso(job.due))
            except Exception as e:
                log.warning("%s: could not give it back (Redis: %s); another worker takes it after the lease",
                            job.watch, e)
        heart.cancel()
        with contextlib.suppress(Exception):
            await self.r.hdel(MEMBERS, self.id)
            await self.r.zrem(HEARTBEATS, self.id)
        if self.fetcher is not None:
            await self.fetcher.close()
        await self.r.aclose()
        if getattr(self, "pipeline", None) is not None:
            await self.pipeline.aclose()  # writes the unchanged checks still waiting in the batch


async def _retry_until(stop: asyncio.Event, fn: Callable[[], Awaitable[Any]], what: str) -> None:
    delay = 0.5
    while not stop.is_set():
        try:
            await fn()
            return
        except Exception as e:
            log.error("cannot %s (%s); retrying in %.0fs", what, e, delay)
            await _sleep(stop, delay)
            delay = min(delay * 2, 10.0)


async def run_worker_role(store: Store, config: Config, stop: asyncio.Event, *, fetcher: Any = None,
                          hup: asyncio.Event | None = None) -> None:
    """Check due watches from the shared queue until stopped."""
    await Worker(store, config, fetcher=fetcher).run(stop, hup)


# --------------------------------------------------------------------------- shared politeness


@dataclass(frozen=True, slots=True)
class DomainLease:
    host: str
    token: str
    granted_ms: int  # Redis time of the grant


class DomainGate:
    """Per-domain politeness shared by every worker: at most the domain's concurrency in flight across all
    of them, and request starts spaced by its delay. The delay is the configured one, or with AutoThrottle
    on, adapted to the site's latency from every worker's responses (Scrapy's rule, kept in Redis).

    `acquire(host)` waits for a lease (requests of one process queue behind one poller per host);
    `release(lease, ...)` gives it back. Leases held are renewed every quarter of `lease` while their
    requests run, so those of a killed worker free the domain within `lease`."""

    def __init__(self, redis: Any, fetch: FetchConfig, owner: str, *, lease: float = 60.0) -> None:
        self.r = redis
        self.fetch = fetch
        self.owner = owner
        self.lease_ms = int(lease * 1000)
        self.idle_ms = 3600_000
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW_DOMAIN)
        self._locks: dict[str, asyncio.Lock] = {}
        self._freed: dict[str, asyncio.Event] = {}
        self._held: dict[str, set[str]] = {}  # host -> tokens of this process's requests in flight
        self._renewer: asyncio.Task[None] | None = None
        self._closed = False

    async def _renew_forever(self) -> None:
        while not self._closed:
            await asyncio.sleep(max(0.25, self.lease_ms / 4000))
            for host, tokens in list(self._held.items()):
                if tokens:
                    try:
                        await self._renew(keys=[DOMAIN_LEASES.format(host=host)], args=[self.lease_ms, *tokens])
                    except Exception as e:  # Redis down: the leases lapse, as a dead worker's do
                        log.debug("could not renew the leases on %s: %s", host, e)

    async def close(self) -> None:
        # The renewer must stop even when the cancellation lands inside a Redis command: the client may turn
        # it into an error the loop survives, and would reconnect for the next renewal. With nothing left to
        # renew and the flag set, the leases still held lapse within a lease, as a dead worker's do.
        self._closed = True
        self._held.clear()
        if self._renewer is not None:
            self._renewer.cancel()
        await self.r.aclose()

    def _limits(self, host: str) -> tuple[int, int, int]:
        """(concurrency, min delay ms, start delay ms)."""
        concurrency, delay = self.fetch.domain_policy(host)
        start = max(delay, 1.0) if self.fetch.autothrottle else delay  # AUTOTHROTTLE_START_DELAY's rule
        return concurrency, int(delay * 1000), int(start * 1000)

    async def acquire(self, host: str) -> DomainLease:
        concurrency, min_delay, start_delay = self._limits(host)
        token = f"{self.owner}/{uuid.uuid4().hex[:12]}"
        keys = [DOMAIN.format(host=host), DOMAIN_LEASES.format(host=host)]
        freed = self._freed.setdefault(host, asyncio.Event())
        poll = 0.01
        async with self._locks.setdefault(host, asyncio.Lock()):
            while True:
                granted, wait_ms = await self._acquire(
                    keys=keys, args=[token, concurrency, min_delay, start_delay, self.lease_ms, self.idle_ms])
                if granted:
                    self._held.setdefault(host, set()).add(token)
                    if self._renewer is None or self._renewer.done():
                        self._renewer = asyncio.ensure_future(self._renew_forever())
                    return DomainLease(host, token, wait_ms)
                if wait_ms > 0:  # the domain's delay: wait exactly that
                    await asyncio.sleep(wait_ms / 1000)
                    continue
                # Full: poll, sooner when a request of this process to the host finishes.
                freed.clear()
                await _wait(freed, poll * (1 + random.random()))
                poll = min(poll * 1.5, 0.1)

    async def release(self, lease: DomainLease, *, latency: float | None = None, status: int | None = None) -> None:
        host, token = lease.host, lease.token
        self._held.get(host, set()).discard(token)
        concurrency, min_delay, _start = self._limits(host)
        await self._release(
            keys=[DOMAIN.format(host=host), DOMAIN_LEASES.format(host=host)],
            args=[token, -1 if latency is None else int(latency * 1000), int(status == 200),
                  int(self.fetch.autothrottle), concurrency, min_delay, 60_000])
        if host in self._freed:
            self._freed[host].set()


class RobotsCache:
    """robots.txt of each site in Redis, kept as long as its verdict is trusted (`fetch.robots_ttl`), so
    the workers together fetch a site's robots.txt once per period, not once each."""

    def __init__(self, redis: Any) -> None:
        self.r = redis  # a client without decode_responses: bodies are bytes

    async def get(self, netloc: str) -> tuple[bytes | None, float] | None:
        """(body, seconds left) if cached; body None means "could not be fetched" (everything allowed)."""
        async with self.r.pipeline(transaction=False) as p:
            p.get(ROBOTS.format(netloc=netloc))
            p.pttl(ROBOTS.format(netloc=netloc))
            value, ttl = await p.execute()
        if value is None or ttl <= 0:
            return None
        return (zlib.decompress(value[1:]) if value[:1] == b"1" else None), ttl / 1000

    async def put(self, netloc: str, body: bytes | None, ttl: float) -> None:
        value = b"0" if body is None else b"1" + zlib.compress(body[:500_000])
        await self.r.set(ROBOTS.format(netloc=netloc), value, px=max(1000, int(ttl * 1000)))

    async def lock(self, netloc: str, seconds: float) -> bool:
        """One worker fetches a site's robots.txt; the others wait for its result."""
        return bool(await self.r.set(ROBOTS.format(netloc=netloc) + ":lock", "1", nx=True,
                                     px=int(seconds * 1000)))

    async def unlock(self, netloc: str) -> None:
        await self.r.delete(ROBOTS.format(netloc=netloc) + ":lock")


# --------------------------------------------------------------------------- `watcher status`


def status(config: Config, store: Store | None = None) -> dict[str, Any]:
    """The scale-out section of `watcher status`: the active scheduler, live workers with their last
    heartbeat, queue depth, oldest waiting and running jobs, in-flight requests per domain."""
    import redis

    from watcher.store.db import safe_url

    out: dict[str, Any] = {"redis": safe_url(config.redis.url)}
    r = redis.Redis.from_url(config.redis.url, decode_responses=True, socket_connect_timeout=3, socket_timeout=5)
    try:
        now_s, now_us = r.time()
    except redis.RedisError as e:
        out["error"] = f"Redis unreachable: {e}"
        return out
    now = now_s * 1000 + now_us // 1000
    lease_ms = int(config.redis.lease.total_seconds() * 1000)
    try:
        mem = r.info("memory")
        out["memory_bytes"], out["keys"] = mem.get("used_memory"), r.dbsize()
        beats = dict(r.zrange(HEARTBEATS, 0, -1, withscores=True))
        members = r.hgetall(MEMBERS)
        schedulers, workers = [], []
        for mid, raw in sorted(members.items()):
            try:
                m = json.loads(raw)
            except ValueError:
                continue
            age = (now - beats[mid]) / 1000 if mid in beats else None
            m = {"id": mid, **m, "last_heartbeat": _iso_ms(beats.get(mid)), "heartbeat_age_s": _round(age)}
            if m.get("kind") == "scheduler":
                m["alive"] = age is not None and age < 10
                schedulers.append(m)
            else:
                m["alive"] = age is not None and age * 1000 < lease_ms
                workers.append(m)
        active = [s for s in schedulers if s["alive"] and s.get("role") == "active"]
        out["scheduler"] = {"active": active[0] if active else None,
                            "standby": [s for s in schedulers if s["alive"] and s.get("role") != "active"],
                            "lock_holder": _lock_holder(store)}
        out["workers"] = workers
        out["queue"] = _queue_status(r, now)
        out["domains"] = _domain_status(r, now, config.fetch)
    except redis.RedisError as e:
        out["error"] = f"Redis: {e}"
    finally:
        r.close()
    return out


def _iso_ms(ms: float | None) -> str | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds")


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-")[0])


def _queue_status(r: Any, now: int) -> dict[str, Any]:
    length = r.xlen(STREAM)
    if not length:
        return {"waiting": 0, "in_progress": 0, "oldest_waiting": None, "oldest_in_progress": None}
    try:
        group = next((g for g in r.xinfo_groups(STREAM) if g["name"] == GROUP), None)
        pending = r.xpending(STREAM, GROUP)
    except Exception:
        group, pending = None, {"pending": 0, "min": None}
    in_progress = int(pending.get("pending") or 0)
    oldest_waiting = None
    last = group["last-delivered-id"] if group else "0-0"
    after = r.xrange(STREAM, min=f"({last}", count=1) if group else r.xrange(STREAM, count=1)
    if after:
        entry_id, fields = after[0]
        # A later due time may have joined the entry while it waited (watcher:queued has the latest).
        marker = (r.hget(QUEUED, fields.get("watch", "")) or "").split()
        due = marker[1] if len(marker) == 2 and marker[0] == entry_id else fields.get("due")
        oldest_waiting = {"watch": fields.get("watch"), "due": due_iso(due),
                          "enqueued": _iso_ms(_entry_ms(entry_id)), "age_s": _round((now - _entry_ms(entry_id)) / 1000)}
    oldest_running = None
    if in_progress and pending.get("min"):
        rows = r.xpending_range(STREAM, GROUP, min=pending["min"], max=pending["min"], count=1)
        entry = r.xrange(STREAM, min=pending["min"], max=pending["min"])
        if rows:
            fields = entry[0][1] if entry else {}
            oldest_running = {"watch": fields.get("watch"), "due": due_iso(fields.get("due")),
                              "worker": rows[0]["consumer"], "enqueued": _iso_ms(_entry_ms(pending["min"])),
                              "age_s": _round((now - _entry_ms(pending["min"])) / 1000)}
    return {"waiting": max(0, length - in_progress), "in_progress": in_progress,
            "oldest_waiting": oldest_waiting, "oldest_in_progress": oldest_running}


def _domain_status(r: Any, now: int, fetch: FetchConfig) -> dict[str, Any]:
    out = {}
    prefix, suffix = DOMAIN_LEASES.split("{host}")
    for key in r.scan_iter(match=DOMAIN_LEASES.format(host="*"), count=1000):
        host = key[len(prefix):-len(suffix)]
        in_flight = r.zcount(key, f"({now}", "+inf")
        if not in_flight:
            continue
        delay = r.hget(DOMAIN.format(host=host), "delay")
        limit, _ = fetch.domain_policy(host)
        out[host] = {"in_flight": in_flight, "limit": limit,
                     "delay_s": None if delay is None else round(int(delay) / 1000, 3)}
    return dict(sorted(out.items()))


def _lock_holder(store: Store | None) -> dict[str, Any] | None:
    """Who PostgreSQL says holds the scheduler lock (the authority, whatever the heartbeats say)."""
    if store is None or store.dialect != "postgresql":
        return None
    try:
        with store.engine.connect() as c:
            row = c.execute(text(
                "SELECT a.pid, a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid = 0 AND l.objid = :k "
                # Advisory locks are per database: another deployment on the same server holds its own.
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"k": LOCK_KEY}).first()
    except Exception as e:
        return {"error": str(e).splitlines()[0]}
    if row is None:
        return None
    return {"backend_pid": row.pid, "application": row.application_name,
            "client": str(row.client_addr) if row.client_addr else "local", "since": row.backend_start.isoformat()}
