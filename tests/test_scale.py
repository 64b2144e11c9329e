"""Scale-out with real PostgreSQL and Redis.

- The queue's guarantees on a real Redis: one waiting entry per watch (later due times coalesce), a due
  time claimed once, a job taken over only after its lease, Redis keys that do not grow with due times.
- Per-domain politeness shared through Redis, and robots.txt verdicts cached there with their expiry.
- A due time stored at most once, decided in the check's own transaction (both backends).
- Separate processes: three workers with one domain limited to 2 (the page server never sees more), one
  of them SIGKILLed mid-check (its jobs re-run by the others; no due time stored or alerted twice; only
  the checks it cut short are fetched again); two schedulers (one active), three workers and two senders
  with the active scheduler and a worker killed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import _reset_pg, require_or_skip
from tests.pageserver import PageServer, Reply
from tests.receivers import HookReceiver
from watcher.config import Config, FetchConfig
from watcher.records import FetchRequest
from watcher.runtime import run_sync
from watcher.store import Store
from watcher.store.bookkeeping import check_runs
from watcher.store.models import AlertRow, ChangeEventRow, Check, Snapshot, Watch

WINDOWS = ["late 2026", "early 2027", "mid 2027", "late 2027", "2028"]


def _page(i: int, n: int, *, moving: bool) -> Reply:
    """A release-news page; `moving` ones change their release window at every fetch."""
    window = WINDOWS[n % len(WINDOWS)] if moving else WINDOWS[0]
    body = (f"<html><head><title>Show{i} Season 2 release date</title></head><body><article>"
            f"<h1>Show{i} Season 2 release date</h1><p>Show{i} Season 2 is expected to premiere in "
            f"{window} on Netflix.</p></article></body></html>")
    return Reply(body=body.encode(), headers={"Content-Type": "text/html"})


def _wait_for(condition, seconds: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")


def _need_pg(pg_server_url: str | None) -> str:
    if pg_server_url is None or pg_server_url.startswith("unreachable"):
        require_or_skip(f"scale-out needs PostgreSQL (WATCHER_TEST_DATABASE_URL): {pg_server_url}")
    _reset_pg(pg_server_url)
    return pg_server_url


@pytest.fixture
def redis_db(redis_url):
    """This test run's own Redis database, emptied before and after."""
    import redis

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.flushdb()
    yield r
    r.flushdb()
    r.close()


def _client(redis_url):
    import redis.asyncio as aredis

    return aredis.from_url(redis_url, decode_responses=True)


def _in_loop(redis_url, fn):
    """Run `fn(redis.asyncio client)` on the reactor's loop."""
    import redis.asyncio as aredis

    async def go():
        r = aredis.from_url(redis_url, decode_responses=True)
        try:
            return await fn(r)
        finally:
            await r.aclose()

    return run_sync(go)


# --------------------------------------------------------------------------- the queue on a real Redis


def test_queue_coalesces_claims_once_and_refuses_done_due_times(redis_url, redis_db):
    from watcher.scale import DONE, QUEUED, RUNNING, STREAM, JobQueue

    async def go(r):
        q = JobQueue(r, lease=30)
        await q.ensure_group()
        assert await q.enqueue({"a": 1000, "b": 1000}) == {"queued": 2, "coalesced": 0, "stale": 0}
        # A later due time of a watch whose entry still waits joins that entry: one entry per watch.
        assert await q.enqueue({"a": 2000}) == {"queued": 0, "coalesced": 1, "stale": 0}
        assert await r.xlen(STREAM) == 2
        jobs = {j.watch: j for j in await q.read("w1", 10, block_ms=100)}
        assert {j.due for j in jobs.values()} == {1000}
        status, due, _ = await q.claim(jobs["a"], "w1")
        assert (status, due) == ("ok", 2000)  # claimed for the latest due time it stands for
        # The next due time arrives while a is being checked: queued, but another worker finds it busy.
        assert (await q.enqueue({"a": 3000}))["queued"] == 1
        (again,) = await q.read("w2", 10, block_ms=100)
        status, _, holder = await q.claim(again, "w2")
        assert (status, holder) == ("busy", "w1")
        await q.drop(again)
        jobs["a"].due = 2000
        assert await q.complete(jobs["a"], "w1") is True
        assert await r.hget(DONE, "a") == "2000" and not await r.hexists(RUNNING, "a")
        # A done due time (a second scheduler firing it again) is refused before it reaches the stream.
        assert await q.enqueue({"a": 2000}) == {"queued": 0, "coalesced": 0, "stale": 1}
        # And an entry for a done due time that does reach a worker is refused by the claim.
        await q.enqueue({"a": 4000})
        await r.hset(DONE, "a", 5000)
        (late,) = await q.read("w2", 10, block_ms=100)
        assert (await q.claim(late, "w2"))[0] == "done"
        await q.drop(late)
        # Only b's entry is left: read by w1 but not claimed yet, so it still stands for b's later due times.
        assert await r.xlen(STREAM) == 1 and (await r.hget(QUEUED, "b")).split()[0] == jobs["b"].entry
        assert await q.enqueue({"b": 9000}) == {"queued": 0, "coalesced": 1, "stale": 0}
        assert (await q.claim(jobs["b"], "w1"))[:2] == ("ok", 9000)

    _in_loop(redis_url, go)


def test_a_job_is_taken_over_only_after_its_lease(redis_url, redis_db):
    from watcher.scale import STREAM, JobQueue

    async def go(r):
        q = JobQueue(r, lease=2)
        await q.ensure_group()
        await q.enqueue({"a": 1000})
        (job,) = await q.read("alive", 1, block_ms=100)
        assert (await q.claim(job, "alive"))[0] == "ok"
        # While its holder renews the lease, nobody else can take the job.
        for _ in range(6):
            assert await q.heartbeat("alive", {"kind": "worker"}, [job]) == []
            assert await q.reclaim("other", 5) == []
            await asyncio.sleep(0.5)
        # The holder stops renewing (killed): after the lease another worker takes it over and claims it.
        deadline = time.monotonic() + 30
        taken = []
        while not taken and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            taken = await q.reclaim("other", 5)
        assert [t.entry for t in taken] == [job.entry]
        status, due, _ = await q.claim(taken[0], "other")
        assert (status, due) == ("ok", 1000)
        # The old holder, back from the dead, learns it lost the job; only the new holder's completion
        # counts as its own (the database refuses a second store of the same due time anyway).
        assert await q.heartbeat("alive", {"kind": "worker"}, [job]) == ["a"]
        assert await q.complete(job, "alive") is False
        assert await q.complete(taken[0], "other") is True
        assert (await r.xpending(STREAM, "workers"))["pending"] == 0

    _in_loop(redis_url, go)


def test_redis_keys_do_not_grow_with_due_times(redis_url, redis_db):
    """200 watches through 20 due times each: the key count stays fixed and the stream empties."""
    from watcher.scale import STREAM, JobQueue

    async def go(r):
        q = JobQueue(r, lease=30)
        await q.ensure_group()
        keys_after = []
        for n in range(20):
            await q.enqueue({f"w{i}": 1_000_000 + n * 1000 for i in range(200)})
            jobs = await q.read("w1", 500, block_ms=100)
            assert len(jobs) == 200
            for job in jobs:
                assert (await q.claim(job, "w1"))[0] == "ok"
                assert await q.complete(job, "w1")
            keys_after.append(await r.dbsize())
        assert await r.xlen(STREAM) == 0
        return keys_after

    keys_after = _in_loop(redis_url, go)
    # stream, done; no key per due time (the old design left 4,000 claim keys here).
    assert keys_after == [2] * 20, keys_after


def test_domain_gate_is_shared_by_all_workers(redis_url, redis_db):
    """Three workers' gates, one host limited to 2 with a 50 ms delay: never more than 2 leases at once,
    starts (in Redis time) spaced by the delay; another host is not held up by the first."""
    from watcher.scale import DomainGate

    fetch = FetchConfig(autothrottle=False, domains={"slow.example": {"concurrency": 2, "delay": "0.05s"}},
                        concurrency_per_domain=4)

    async def go(r):
        gates = [DomainGate(_client(redis_url), fetch, owner=f"w{k}") for k in range(3)]
        held, most, grants = 0, 0, []

        async def request(gate, host):
            nonlocal held, most
            lease = await gate.acquire(host)
            if host == "slow.example":
                held += 1
                most = max(most, held)
                grants.append(lease.granted_ms)
            await asyncio.sleep(0.15)  # longer than the delay: the concurrency limit is what holds them back
            if host == "slow.example":
                held -= 1
            await gate.release(lease, latency=0.15, status=200)

        await asyncio.gather(*(request(gates[i % 3], "slow.example") for i in range(24)),
                             *(request(gates[i % 3], "other.example") for i in range(8)))
        for g in gates:
            await g.close()
        return most, sorted(grants)

    most, grants = _in_loop(redis_url, go)
    assert most == 2
    assert len(grants) == 24
    assert min(b - a for a, b in itertools.pairwise(grants)) >= 50


def test_domain_leases_are_renewed_while_held_and_lapse_when_their_worker_dies(redis_url, redis_db):
    from watcher.scale import DOMAIN, DOMAIN_LEASES, DomainGate

    fetch = FetchConfig(autothrottle=False, concurrency_per_domain=2)

    async def go(r):
        alive = DomainGate(_client(redis_url), fetch, "alive", lease=1)
        other = DomainGate(_client(redis_url), fetch, "other", lease=1)
        held = [await alive.acquire("a.example"), await alive.acquire("a.example")]

        async def try_acquire(gate):
            granted, _ = await gate._acquire(keys=[DOMAIN.format(host="a.example"),
                                                   DOMAIN_LEASES.format(host="a.example")],
                                             args=["probe", 2, 0, 0, 1000, 60_000])
            if granted:
                await r.zrem(DOMAIN_LEASES.format(host="a.example"), "probe")
            return bool(granted)

        # Held for three leases' time by a live process: renewed, so nobody else gets in.
        for _ in range(12):
            await asyncio.sleep(0.25)
            assert not await try_acquire(other)
        # The holder dies without releasing (its renewals stop): the domain is free again within a lease.
        await alive.close()
        lease = await asyncio.wait_for(other.acquire("a.example"), timeout=30)
        await other.release(lease)
        await other.close()
        assert len(held) == 2

    _in_loop(redis_url, go)


def test_fetchers_share_domain_limit_and_robots_txt(redis_url, redis_db):
    """Three Fetchers (as in three workers) against one slow host limited to 2: the server never sees more
    than 2 requests at once; robots.txt is fetched once for all, its verdict applies to all, and it is
    fetched again once the verdict expires."""
    from spiders.fetch import Fetcher

    lock = threading.Lock()
    in_flight = [0, 0]

    def slow(_):
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1
        return Reply(body=b"<html><body><p>page</p></body></html>", headers={"Content-Type": "text/html"})

    with PageServer() as server:
        fetch = FetchConfig(autothrottle=False, retries=0, timeout="20s", concurrency_per_domain=8, robots_ttl="3s",
                            domains={"127.0.0.1": {"concurrency": 2}}, allow_private=[server.allow])
        server.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /private\n",
                                          headers={"Content-Type": "text/plain"}))
        for i in range(12):
            server.route(f"/p{i}", slow)
        server.route("/private", slow)

        async def go():
            fetchers = [Fetcher(fetch, WATCHER_REDIS_URL=redis_url, WATCHER_WORKER_ID=f"w{k}") for k in range(3)]
            for f in fetchers:
                await f.start()
            try:
                pages = await asyncio.gather(*(fetchers[i % 3].fetch(FetchRequest(f"p{i}", server.url(f"/p{i}"),
                                                                                  "html")) for i in range(12)))
                private = await asyncio.gather(*(f.fetch(FetchRequest("x", server.url("/private"), "html"))
                                                 for f in fetchers))
                robots_before = server.hits["/robots.txt"]
                # After the verdict's expiry (in Redis and in each process), robots.txt is asked for again.
                deadline = time.monotonic() + 30
                while redis_db.exists("watcher:robots:" + server.base.split("//")[1]) and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                await asyncio.sleep(0.2)
                later = await fetchers[0].fetch(FetchRequest("p0", server.url("/p0"), "html"))
                return pages, private, robots_before, later
            finally:
                for f in fetchers:
                    await f.close()

        pages, private, robots_before, later = run_sync(go)
    assert all(p.status == "ok" for p in pages), [p.error for p in pages]
    assert in_flight[1] == 2
    assert [p.reason for p in private] == ["robots"] * 3
    assert server.hits["/private"] == 0
    assert robots_before == 1
    assert later.status == "ok" and server.hits["/robots.txt"] == 2


# --------------------------------------------------------------------------- at most once per due time


def test_a_due_time_is_stored_once_whoever_checks_it(store, database_url):
    """The pipeline side of the guarantee (both backends): a due time at or before the stored one is not
    fetched; when two workers check the same due time at once (one presumed dead), both fetch but only the
    first to commit stores it: the second's whole transaction rolls back."""
    from spiders.fetch import Fetcher
    from watcher.pipeline import Pipeline

    hits = Counter()
    both_fetching = threading.Barrier(2, timeout=60)
    race = threading.Event()

    def reply(_):
        hits["p"] += 1
        n = hits["p"]
        if race.is_set():
            both_fetching.wait()  # neither answer leaves before both workers have loaded state and fetched
        return _page(0, n, moving=True)

    with PageServer() as server:
        server.route("/p", reply)
        config = Config.model_validate({
            "watcher": {"database_url": database_url},
            "fetch": {"autothrottle": False, "retries": 0, "timeout": "30s", "allow_private": [server.allow]},
            "watch": [{"name": "p", "url": server.url("/p"), "interval": "1h"}]})
        store.sync_watches(config.watch)

        async def go():
            fetchers = [Fetcher(config.fetch), Fetcher(config.fetch)]
            for f in fetchers:
                await f.start()
            one, two = (Pipeline(store, config, f) for f in fetchers)
            try:
                first = await one.check("p", due=5000)
                again = await two.check("p", due=5000)
                older = await two.check("p", due=4000)
                race.set()
                raced = await asyncio.gather(one.check("p", due=6000), two.check("p", due=6000))
                race.clear()
                later = await two.check("p", due=7000)
                return first, again, older, raced, later
            finally:
                for f in fetchers:
                    await f.close()
                one.close()
                two.close()

        first, again, older, raced, later = run_sync(go)
    assert first.outcome == "baseline" and later.outcome == "changed"
    assert (again.outcome, again.reason) == (older.outcome, older.reason) == ("skipped", "already-done")
    assert sorted((r.outcome, r.reason) for r in raced) == [("changed", None), ("skipped", "already-done")]
    assert hits["p"] == 4  # due 5000, 6000 twice (both raced workers fetched), 7000
    with store.session() as s:
        assert sorted(s.scalars(select(Check.due))) == [5000, 6000, 7000]
        assert s.scalar(select(Watch.due_done)) == 7000
        assert s.scalar(select(func.count()).select_from(Snapshot)) == 3


# --------------------------------------------------------------------------- separate processes


class Processes:
    """watcher processes of one test, each logging to its own file; all killed at the end."""

    def __init__(self, cfg: Path, tmp: Path) -> None:
        self.cfg, self.tmp = cfg, tmp
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        self.logs[name] = self.tmp / f"{name}.log"
        # A health file each (`watcher run` writes one), not the default one they would share.
        env = {**os.environ, "WATCHER_HEALTH_FILE": str(self.tmp / f"{name}.health.json")}
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "watcher", "-c", str(self.cfg), "-vv", *args],
            stdout=subprocess.DEVNULL, stderr=self.logs[name].open("w"), env=env)
        return self.procs[name]

    def log(self, name: str) -> str:
        return self.logs[name].read_text()

    def member_id(self, name: str) -> str:
        return f"{socket.gethostname()}:{self.procs[name].pid}"

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            p.wait(60)

    def kill_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)


def _config(tmp: Path, pg: str, redis_url: str, server: PageServer, hook: HookReceiver, names: list[str], *,
            interval: str, lease: str, fetch: str) -> Path:
    watches = "\n".join(f'[[watch]]\nname = "{n}"\nurl = "{server.url("/" + n)}"\ninterval = "{interval}"\n'
                        f'jitter = "0s"\n' for n in names)
    cfg = tmp / "watcher.toml"
    cfg.write_text(f"""
[watcher]
database_url = "{pg}"
[redis]
url = "{redis_url}"
lease = "{lease}"
[fetch]
autothrottle = false
retries = 0
allow_private = ["{server.allow}"]
{fetch}
[notify]
send_interval = "0.2s"
lease = "30s"
[[subscriber]]
name = "hook"
webhook = "{hook.url}"
{watches}""")
    return cfg


def _checks_by_due(pg: str) -> tuple[dict[str, int], dict[str, int], list[tuple[str, int, int]]]:
    """Per watch, how many worker checks (with a due time) are stored and the latest due time stored; and any
    row's (watch, due) stored in more than one row. A run of quiet checks is one row that counts its checks
    and keeps only the newest due time: `_logged_twice` checks the due times of its checks one by one."""
    store = Store.open(pg)
    try:
        with store.session() as s:
            names = dict(s.execute(select(Watch.id, Watch.name)).all())
            runs = [(names[c.watch_id], c.repeats, c.due) for c in check_runs(s) if c.due is not None]
    finally:
        store.close()
    counts: Counter = Counter()
    for name, n, _ in runs:
        counts[name] += n
    latest = {name: max(due for other, _, due in runs if other == name) for name in counts}
    twice = Counter((name, due) for name, _, due in runs)
    return dict(counts), latest, [(name, due, n) for (name, due), n in twice.items() if n > 1]


STORED = ("baseline", "changed", "unchanged", "not_modified", "failed")


def _logged_twice(procs: Processes, workers: list[str]) -> list[tuple[str, str]]:
    """(watch, due time) that more than one worker check stored, by the workers' own lines for each check
    ("p3 (due 2026-12-04T15:00:05+00:00): unchanged"; `-vv`). A worker killed right after its commit may not
    have logged the check: such a line is missing, never doubled."""
    import re

    seen: Counter = Counter()
    for w in workers:
        for watch, due, outcome in re.findall(r"(\S+) \(due (\S+)\): (\w+)", procs.log(w)):
            if outcome in STORED:
                seen[(watch, due)] += 1
    return [k for k, n in seen.items() if n > 1]


def _alerts(pg: str) -> tuple[list[AlertRow], Counter]:
    store = Store.open(pg)
    try:
        with store.session() as s:
            alerts = list(s.scalars(select(AlertRow)))
            per_watch = Counter(name for (name,) in s.execute(
                select(Watch.name).join(ChangeEventRow, ChangeEventRow.watch_id == Watch.id)
                .join(AlertRow, AlertRow.event_id == ChangeEventRow.id)))
    finally:
        store.close()
    return alerts, per_watch


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_three_workers_one_domain_limit_and_a_worker_killed_mid_check(pg_server_url, redis_url, redis_db, tmp_path):
    """Three worker processes, one domain limited to 2, every watch due once. One worker is SIGKILLed while
    the page server is answering one of its checks. The server never sees more than 2 requests at once;
    the killed worker's jobs are taken over by the others when its lease runs out (there is no next due
    time in this test to fall back on); every due time is stored once and alerted once; only checks the
    kill cut short are fetched twice."""
    from watcher.scale import RUNNING, STREAM, JobQueue

    pg = _need_pg(pg_server_url)
    names = [f"p{i}" for i in range(24)]
    lock = threading.Lock()
    hits: Counter = Counter()
    in_flight: set[str] = set()
    most = [0]
    slow = threading.Event()

    def route(i: int):
        def reply(handler):
            name = f"p{i}"
            with lock:
                hits[name] += 1
                n = hits[name]
                in_flight.add(name)
                most[0] = max(most[0], len(in_flight))
            try:
                if slow.is_set():
                    time.sleep(1.0)
                return _page(i, n, moving=True)
            finally:
                with lock:
                    in_flight.discard(name)
        return reply

    hook = HookReceiver()
    procs = None
    with PageServer() as server:
        for i in range(24):
            server.route(f"/p{i}", route(i))
        cfg = _config(tmp_path, pg, redis_url, server, hook, names, interval="1h", lease="6s",
                      fetch='timeout = "30s"\nconcurrency = 8\nconcurrency_per_domain = 8\n'
                            '[fetch.domains."127.0.0.1"]\nconcurrency = 2\n')
        # Baseline: every page stored once, so each worker check below is a change with one alert.
        subprocess.run([sys.executable, "-m", "watcher", "-c", str(cfg), "check"], check=True,
                       capture_output=True, timeout=300)
        baseline = dict(hits)
        most[0] = 0
        slow.set()
        due = int(time.time() * 1000)
        _in_loop(redis_url, lambda r: JobQueue(r, lease=6).ensure_group())
        _in_loop(redis_url, lambda r: JobQueue(r, lease=6).enqueue(dict.fromkeys(names, due)))
        procs = Processes(cfg, tmp_path)
        try:
            for w in ("worker-1", "worker-2", "worker-3"):
                procs.start(w, "worker")
            victim = procs.member_id("worker-1")

            def victim_mid_fetch():
                held = {w for w, v in redis_db.hgetall(RUNNING).items() if v.split()[1] == victim}
                with lock:
                    return held & in_flight

            _wait_for(victim_mid_fetch, 120, "worker-1 to be fetching a page", poll=0.05)
            procs.procs["worker-1"].send_signal(signal.SIGKILL)
            procs.procs["worker-1"].wait(10)
            held_at_kill = {w for w, v in redis_db.hgetall(RUNNING).items() if v.split()[1] == victim}
            assert held_at_kill
            # Every due time gets stored, the killed worker's ones by the other two after its lease.
            _wait_for(lambda: sum(_checks_by_due(pg)[0].values()) >= len(names), 180,
                      "every watch's due time to be stored")
            _wait_for(lambda: redis_db.xlen(STREAM) == 0, 60, "the queue to empty")
            procs.stop()
        finally:
            procs.kill_all()
        subprocess.run([sys.executable, "-m", "watcher", "-c", str(cfg), "sender", "--once"], check=True,
                       capture_output=True, timeout=120)
    hook.close()

    # Never more than the domain's limit at once, across the three workers (and the limit was reached).
    assert most[0] == 2
    # Every due time stored exactly once.
    stored, latest, twice = _checks_by_due(pg)
    assert twice == [] and _logged_twice(procs, ["worker-1", "worker-2", "worker-3"]) == []
    assert stored == dict.fromkeys(names, 1) and latest == dict.fromkeys(names, due)
    # The killed worker's jobs were taken over by the survivors, not left for a next due time.
    takeovers = procs.log("worker-2") + procs.log("worker-3")
    for name in held_at_kill:
        assert f"takes over {name} " in takeovers, (name, held_at_kill)
    # Fetched again only where the kill cut a check short.
    after = {n: hits[n] - baseline.get(n, 0) for n in names}
    assert all(after[n] == 1 for n in names if n not in held_at_kill), after
    assert all(after[n] in (1, 2) for n in held_at_kill), after
    # One alert per watch (one changed due time each), each delivered exactly once.
    alerts, per_watch = _alerts(pg)
    assert per_watch == Counter(dict.fromkeys(names, 1))
    assert {a.status for a in alerts} == {"sent"}
    received = [h.headers["X-Watcher-Event-Id"] for h in hook.hits]
    assert len(received) == len(set(received)) == len(alerts)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_one_scheduler_three_workers_two_senders(pg_server_url, redis_url, redis_db, tmp_path):
    """Two schedulers (one active), three workers, two senders, 100 watches every 5 s, every 10th page
    changing at each fetch. The active scheduler and a worker are SIGKILLed: the standby takes over,
    every watch keeps being checked, no due time is stored twice, every alert arrives exactly once."""
    from watcher.scale import RUNNING

    pg = _need_pg(pg_server_url)
    Store.open(pg).close()
    watches, interval, lease = 100, 5.0, 4.0
    names = [f"p{i}" for i in range(watches)]
    hits: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    hook = HookReceiver()

    def route(i: int):
        def reply(_):
            with lock:
                hits[f"p{i}"].append(time.monotonic())
                n = len(hits[f"p{i}"])
            return _page(i, n, moving=i % 10 == 0)
        return reply

    with PageServer() as server:
        for i in range(watches):
            server.route(f"/p{i}", route(i))
        cfg = _config(tmp_path, pg, redis_url, server, hook, names, interval=f"{interval}s", lease=f"{lease}s",
                      fetch="concurrency_per_domain = 8\n")
        procs = Processes(cfg, tmp_path)
        try:
            started_at = time.monotonic()
            procs.start("scheduler-a", "run", "--role", "scheduler")
            _wait_for(lambda: "active scheduler" in procs.log("scheduler-a"), 60, "scheduler-a to be active")
            procs.start("scheduler-b", "run", "--role", "scheduler")
            for w in ("worker-1", "worker-2", "worker-3"):
                procs.start(w, "worker")
            for s in ("sender-1", "sender-2"):
                procs.start(s, "sender")
            _wait_for(lambda: all("consuming" in procs.log(w) for w in ("worker-1", "worker-2", "worker-3")), 180,
                      "the workers to start")
            time.sleep(3 * interval)
            assert "active scheduler" not in procs.log("scheduler-b")  # a standby while a holds the lock

            def status():
                out = subprocess.run([sys.executable, "-m", "watcher", "-c", str(cfg), "status", "--json"],
                                     capture_output=True, text=True, timeout=60, check=True)
                section = json.loads(out.stdout)["scale"]
                # Three live workers (on a loaded machine a heartbeat can come late: ask again).
                return section if len([w for w in section["workers"] if w["alive"]]) == 3 else None

            section = _wait_for(status, 60, "`watcher status` to show three live workers", poll=1)
            victim = procs.member_id("worker-1")
            killed_at = time.monotonic()
            procs.procs["scheduler-a"].send_signal(signal.SIGKILL)
            procs.procs["worker-1"].send_signal(signal.SIGKILL)
            procs.procs["worker-1"].wait(10)
            held_at_kill = {w for w, v in redis_db.hgetall(RUNNING).items() if v.split()[1] == victim}
            _wait_for(lambda: "active scheduler" in procs.log("scheduler-b"), 60, "scheduler-b to take over")
            time.sleep(3 * interval)
            procs.stop()
            stopped_at = time.monotonic()
        finally:
            procs.kill_all()
        # Drain what the senders had not delivered yet.
        subprocess.run([sys.executable, "-m", "watcher", "-c", str(cfg), "sender", "--once"], check=True,
                       capture_output=True, timeout=120)
    hook.close()

    assert section["scheduler"]["active"]["id"] == procs.member_id("scheduler-a")
    assert section["scheduler"]["lock_holder"]["application"] == f"watcher scheduler {procs.member_id('scheduler-a')}"
    assert [s["id"] for s in section["scheduler"]["standby"]] == [procs.member_id("scheduler-b")]
    assert {w["id"] for w in section["workers"]} == {procs.member_id(f"worker-{k}") for k in (1, 2, 3)}
    assert section["queue"]["waiting"] <= len(names)  # one waiting entry per watch at most
    assert set(section["domains"]) <= {"127.0.0.1"}
    assert set(hits) == set(names)
    stored, _, twice = _checks_by_due(pg)
    # No due time stored twice, across the scheduler hand-over and the kill.
    assert twice == [] and _logged_twice(procs, ["worker-1", "worker-2", "worker-3"]) == []
    due_times = (stopped_at - started_at) / interval + 1
    for name, times in hits.items():
        # A fetch not stored is one the kill cut short: at most one, and only for the killed worker's jobs.
        extra = len(times) - stored[name]
        assert extra == 0 or (extra == 1 and name in held_at_kill), (name, len(times), stored[name])
        # At most one check stored per due time; the cut-short fetch is fetched again for the same due time,
        # so it is not a due time of its own.
        assert stored[name] <= due_times, (name, stored[name], len(times), due_times)
        # Checked again after the kills, and never left long: a due time lost with the scheduler or the
        # worker is made up by the next one or by the takeover after the lease.
        assert any(killed_at + 0.5 < t < stopped_at for t in times), (name, times, killed_at)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) < 2 * interval + lease + 5, (name, gaps)
    # Every alert arrived, exactly once (no sender was killed).
    alerts, _ = _alerts(pg)
    assert alerts and {a.status for a in alerts} == {"sent"}
    received = [h.headers["X-Watcher-Event-Id"] for h in hook.hits]
    assert len(received) == len(set(received)) == len(alerts)


@pytest.fixture
def private_redis(tmp_path):
    """A throwaway Redis server on a free port (append-only file, so a restart keeps its data) that the test
    may stop and start without touching the machine's shared server."""
    import shutil

    from tests.receivers import free_port

    binary = shutil.which("redis-server")
    if binary is None:
        require_or_skip("the Redis-outage test needs the redis-server binary")
    port, data = free_port(), tmp_path / "redis"
    data.mkdir()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--appendonly", "yes",
            "--save", ""]
    proc: list[subprocess.Popen] = []

    def start() -> None:
        import redis

        proc.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for(lambda: _pings(redis, port), 30, "the private Redis to answer")

    def stop() -> None:
        proc[-1].send_signal(signal.SIGTERM)  # Redis flushes its append-only file and exits
        proc[-1].wait(30)

    start()
    try:
        yield f"redis://127.0.0.1:{port}/0", stop, start
    finally:
        if proc[-1].poll() is None:
            proc[-1].kill()
            proc[-1].wait(10)


def _pings(redis, port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.postgres
@pytest.mark.slow
def test_redis_outage_stops_checks_and_loses_no_watch(pg_server_url, private_redis, tmp_path):
    """Redis goes away under a scheduler and two workers, then comes back: every process keeps running,
    the scheduler keeps the due times it fires meanwhile and hands them over on return, every watch is
    checked again after it, and no due time is stored twice."""
    pg = _need_pg(pg_server_url)
    redis_url, stop_redis, start_redis = private_redis
    names = [f"p{i}" for i in range(10)]
    with PageServer() as server:
        hits: Counter = Counter()
        for i in range(10):
            def reply(_, i=i):
                hits[f"p{i}"] += 1
                return _page(i, hits[f"p{i}"], moving=False)
            server.route(f"/p{i}", reply)
        hook = HookReceiver()
        cfg = _config(tmp_path, pg, redis_url, server, hook, names, interval="2s", lease="4s",
                      fetch="concurrency_per_domain = 4\n")
        procs = Processes(cfg, tmp_path)
        try:
            procs.start("scheduler", "run", "--role", "scheduler")
            for w in ("worker-1", "worker-2"):
                procs.start(w, "worker")
            _wait_for(lambda: set(_checks_by_due(pg)[1]) == set(names), 120, "every watch to be checked")
            stop_redis()
            time.sleep(6)  # three intervals without Redis
            back = max(_checks_by_due(pg)[1].values())  # the latest due time stored so far
            start_redis()
            _wait_for(lambda: all(d > back for d in _checks_by_due(pg)[1].values()), 120,
                      "every watch to be checked again after Redis came back")
            assert all(p.poll() is None for p in procs.procs.values()), "a process died with Redis"
            procs.stop()
        finally:
            procs.kill_all()
    hook.close()
    _, _, twice = _checks_by_due(pg)
    assert twice == [] and _logged_twice(procs, ["worker-1", "worker-2"]) == []
    scheduler_log = procs.log("scheduler")
    assert "keeping them until it is back" in scheduler_log and "Redis is back" in scheduler_log
    assert "cannot read the queue" in procs.log("worker-1") + procs.log("worker-2")
