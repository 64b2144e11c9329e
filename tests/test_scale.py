"""Scale-out with real PostgreSQL and Redis: two schedulers (one active), three workers, two senders as
separate processes. Each watch is fetched at most once per due time, every alert arrives exactly once,
and killing the active scheduler and a worker loses no watch for more than a cycle."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import _reset_pg, require_or_skip
from tests.pageserver import PageServer, Reply
from tests.receivers import HookReceiver
from watcher.store import Store
from watcher.store.models import AlertRow

WATCHES = 100
INTERVAL = 5.0
WINDOWS = ["late 2026", "early 2027", "mid 2027", "late 2027", "2028"]


def _page(i: int, n: int) -> Reply:
    """Every 10th page moves its release window at each fetch (events and alerts); the rest stay put."""
    window = WINDOWS[n % len(WINDOWS)] if i % 10 == 0 else WINDOWS[0]
    body = (f"<html><head><title>Show{i} Season 2 release date</title></head><body><article>"
            f"<h1>Show{i} Season 2 release date</h1><p>Show{i} Season 2 is expected to premiere in "
            f"{window} on Netflix.</p></article></body></html>")
    return Reply(body=body.encode(), headers={"Content-Type": "text/html"})


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_one_scheduler_three_workers_two_senders(pg_server_url, redis_url, tmp_path):
    if pg_server_url is None or pg_server_url.startswith("unreachable"):
        require_or_skip(f"scale-out needs PostgreSQL (WATCHER_TEST_DATABASE_URL): {pg_server_url}")
    _reset_pg(pg_server_url)
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    Store.open(pg_server_url).close()
    hits: dict[int, list[float]] = defaultdict(list)
    lock = threading.Lock()
    hook = HookReceiver()

    def route(i: int):
        def reply(_):
            with lock:
                hits[i].append(time.monotonic())
                n = len(hits[i])
            return _page(i, n)
        return reply

    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    with PageServer() as server:
        for i in range(WATCHES):
            server.route(f"/p{i}", route(i))
        watches = "\n".join(f'[[watch]]\nname = "p{i}"\nurl = "{server.url(f"/p{i}")}"\ninterval = "{INTERVAL}s"\n'
                            f'jitter = "0s"\n' for i in range(WATCHES))
        cfg = tmp_path / "watcher.toml"
        cfg.write_text(f"""
[watcher]
database_url = "{pg_server_url}"
[redis]
url = "{redis_url}"
[fetch]
autothrottle = false
retries = 0
concurrency_per_domain = 8
allow_private = ["{server.allow}"]
[notify]
send_interval = "0.2s"
lease = "30s"
[[subscriber]]
name = "hook"
webhook = "{hook.url}"
{watches}""")

        def start(name: str, *args: str) -> None:
            logs[name] = tmp_path / f"{name}.log"
            procs[name] = subprocess.Popen([sys.executable, "-m", "watcher", "-c", str(cfg), "-v", *args],
                                           stdout=subprocess.DEVNULL, stderr=logs[name].open("w"))

        try:
            started_at = time.monotonic()
            start("scheduler-a", "run", "--role", "scheduler")
            deadline = time.monotonic() + 30
            while "active scheduler" not in logs["scheduler-a"].read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "active scheduler" in logs["scheduler-a"].read_text(), logs["scheduler-a"].read_text()
            start("scheduler-b", "run", "--role", "scheduler")
            for w in ("worker-1", "worker-2", "worker-3"):
                start(w, "worker")
            for s in ("sender-1", "sender-2"):
                start(s, "sender")
            time.sleep(3 * INTERVAL)
            assert "active scheduler" not in logs["scheduler-b"].read_text()  # a standby while a holds the lock
            killed_at = time.monotonic()
            procs["scheduler-a"].send_signal(signal.SIGKILL)
            procs["worker-1"].send_signal(signal.SIGKILL)
            time.sleep(3 * INTERVAL)
            assert "active scheduler" in logs["scheduler-b"].read_text()  # took over
            for name, p in procs.items():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for name, p in procs.items():
                p.wait(30)
            stopped_at = time.monotonic()
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
        # Drain what the senders had not delivered yet.
        subprocess.run([sys.executable, "-m", "watcher", "-c", str(cfg), "sender", "--once"], check=True,
                       capture_output=True, timeout=120, env=os.environ)
    hook.close()

    # Every watch was checked, never twice for one due time: each fetch of a page was made under its own
    # claim of a (watch, due time) pair, and there are no more fetches than due times in the run.
    assert set(hits) == set(range(WATCHES))
    r = redis.Redis.from_url(redis_url)
    due_times = (stopped_at - started_at) / INTERVAL + 1
    for i, times in hits.items():
        claims = len(r.keys(f"watcher:claim:p{i}:*"))
        assert len(times) <= claims, (i, len(times), claims)
        assert len(times) <= due_times, (i, len(times), due_times)
        # Checked again after the kill, and never left for more than one cycle beyond its due time (a
        # check lost with the killed worker or scheduler is made at the next due time).
        assert any(killed_at + 0.5 < t < stopped_at for t in times), (i, times, killed_at)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) < 2 * INTERVAL + 3, (i, gaps)
    # Every alert arrived, exactly once (no sender was killed).
    store = Store.open(pg_server_url)
    with store.session() as s:
        alerts = list(s.scalars(select(AlertRow)))
    store.close()
    assert alerts and {a.status for a in alerts} == {"sent"}
    received = [h.headers["X-Watcher-Event-Id"] for h in hook.hits]
    assert len(received) == len(set(received)) == len(alerts)
