"""The daemon: APScheduler jobs per watch, persisted in the database, clean shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from tests.consistency import checks_per_watch
from tests.pageserver import PageServer, Reply
from tests.test_pipeline import make_config, page
from watcher.config import Config
from watcher.runtime import run_sync
from watcher.scheduler import run_daemon


@pytest.fixture
def server():
    with PageServer() as s:
        yield s


def run_daemon_for(store, config: Config, seconds: float) -> None:
    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_daemon(store, config, stop=stop, sender=False))
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.wait_for(task, timeout=10)

    run_sync(go)




def job_times(store) -> dict[str, float]:
    with store.engine.connect() as c:
        return dict(c.execute(text("SELECT id, next_run_time FROM apscheduler_jobs")).all())


def test_each_watch_runs_on_its_own_interval_and_jobs_persist(server, store, database_url):
    server.route("/a", page("early 2027"))
    server.route("/b", page("late 2026"))
    config = make_config(server, database_url, [
        {"name": "a", "url": server.url("/a"), "interval": "1s", "jitter": "0s"},
        {"name": "b", "url": server.url("/b"), "interval": "1h", "jitter": "0s"}])
    run_daemon_for(store, config, 4.0)
    counts = checks_per_watch(store)
    assert 2 <= counts["a"] <= 6  # every second, never overlapping
    assert counts.get("b", 0) <= 1  # first run lands within its spread, then hourly
    jobs = job_times(store)
    assert set(jobs) == {"watch:a", "watch:b"}
    # Restart with b unchanged and a removed: b keeps its persisted next run time, a's job is gone.
    config2 = make_config(server, database_url, [
        {"name": "b", "url": server.url("/b"), "interval": "1h", "jitter": "0s"}])
    # b's first run is spread over 30 s, so it can fall due during the restart itself; then it runs once.
    due_during_restart = jobs["watch:b"] < time.time() + 3
    run_daemon_for(store, config2, 0.5)
    after = job_times(store)
    assert set(after) == {"watch:b"}
    if due_during_restart:  # it ran once (next run an interval later), or the restart ended first
        assert after["watch:b"] in (pytest.approx(jobs["watch:b"] + 3600, abs=5), jobs["watch:b"])
    else:
        assert after == {"watch:b": jobs["watch:b"]}


def start_daemon(server, tmp_path) -> tuple[subprocess.Popen[str], object]:
    """`watcher run` in a process of its own, on one watch checked every second; returns once it has made
    two checks (the process, and its SQLite file)."""
    server.route("/a", Reply(body=b"<html><body><p>Show Season 2 arrives in 2027.</p></body></html>",
                             headers={"Content-Type": "text/html"}, delay=0.5))
    db = tmp_path / "w.db"
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(f"""
[watcher]
database_url = "sqlite:///{db}"
[fetch]
autothrottle = false
allow_private = ["{server.allow}"]
[[watch]]
name = "a"
url = "{server.url('/a')}"
interval = "1s"
jitter = "0s"
""")
    env = {k: v for k, v in os.environ.items() if k != "WATCHER_DATABASE_URL"}
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "-c", str(cfg), "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(db) as c:
                    if (c.execute("SELECT (SELECT coalesce(sum(repeats), 0) FROM checks) "
                                  "+ (SELECT coalesce(sum(run_repeats), 0) FROM watches)").fetchone()[0] or 0) >= 2:
                        return proc, db
            except sqlite3.OperationalError:
                pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    pytest.fail("the daemon made no checks: " + proc.communicate()[1][-2000:])


@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
                         ids=["sigterm", "sigint-delivered-twice"])
def test_a_stop_signal_stops_the_daemon_cleanly(server, tmp_path, signals):
    # SIGINT twice at once is how GNU `timeout -s INT` (and a kill of the process group) delivers one
    # request: the process and its group are both signalled. It must stop as gracefully as one signal.
    proc, db = start_daemon(server, tmp_path)
    try:
        stopped_at = time.monotonic()
        for i, sig in enumerate(signals):
            if i:
                time.sleep(0.2)  # delivered apart (not merged into one pending signal), within the window
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=15)
        assert time.monotonic() - stopped_at < 8
        assert proc.returncode == 0, err[-2000:]
        assert "Traceback" not in err and "watcher stopping" in err
    finally:
        if proc.poll() is None:
            proc.kill()
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("SELECT count(*) FROM apscheduler_jobs").fetchone()[0] == 1


def _stopping_process(stop_takes: float, teardown: float) -> subprocess.Popen:
    """A process run by `run_sync` as the daemon is: it prints "ready" once the handlers are installed,
    "stopping" when the first stop signal has been handled, then takes `stop_takes` seconds to stop and
    `teardown` seconds after the loop before printing "done" and exiting."""
    script = f"""
import asyncio, time
from watcher.runtime import run_sync

stop = asyncio.Event()

async def main():
    await asyncio.sleep(0.3)  # run_sync has installed its handlers by now
    print("ready", flush=True)
    await stop.wait()
    print("stopping", flush=True)
    await asyncio.sleep({stop_takes})

run_sync(main, stop_on_signal=stop)
time.sleep({teardown})  # what follows the loop (closing the store, the reactor)
print("done", flush=True)
"""
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_a_second_stop_signal_exits_at_once_but_a_duplicate_does_not():
    proc = _stopping_process(stop_takes=30, teardown=0)
    try:
        assert proc.stdout.readline().strip() == "ready"
        first = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "stopping"  # the first signal's handler has run
        proc.send_signal(signal.SIGINT)  # the same request delivered twice: the stop goes on
        assert time.monotonic() - first < 0.8  # (within the window, or the test proves nothing)
        time.sleep(1.5)
        assert proc.poll() is None
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)  # asked again, later: exit now
        _, err = proc.communicate(timeout=10)
        assert time.monotonic() - asked < 5
        assert proc.returncode == 128 + signal.SIGINT
        assert "SIGINT again during the stop: exiting now" in err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_duplicate_signal_after_a_quick_stop_is_still_absorbed():
    """The CI failure of 5 December: the daemon stopped within 0.2 s, the handlers were put back, and the
    second copy of the SIGINT then hit Python's default handler (exit status -2)."""
    proc = _stopping_process(stop_takes=0, teardown=0.8)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "stopping"  # and stopped at once: the coroutine returns
        time.sleep(0.2)  # run_sync has returned (or is returning): the duplicate lands in the teardown
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err[-2000:]
        assert out.strip() == "done"
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()


_bounded: dict[str, object] = {}


async def _bounded_job(i: int) -> None:
    """A job of test_due_jobs_wait_in_the_job_store_beyond_the_executors_room."""
    state = _bounded
    state["running"] = state.get("running", 0) + 1  # type: ignore[operator]
    state["max_running"] = max(state.get("max_running", 0), state["running"])  # type: ignore[call-overload]
    executor = state["executor"]
    taken = len(executor._pending_futures) + executor.queued()  # type: ignore[attr-defined]
    state["max_taken"] = max(state.get("max_taken", 0), taken)  # type: ignore[call-overload]
    await asyncio.sleep(0.05)
    state["running"] -= 1  # type: ignore[operator]
    state.setdefault("done", []).append(i)  # type: ignore[attr-defined]


def test_due_jobs_wait_in_the_job_store_beyond_the_executors_room(store):
    """Many jobs due at once (a start with thousands of new watches): at most `max_running` run at a time,
    at most as many again wait in the executor's queue, the rest stay in the job store (costing no memory);
    every one runs exactly once."""
    import datetime as dt

    from apscheduler.triggers.interval import IntervalTrigger

    from watcher.runtime import reactor_loop
    from watcher.scheduler import create_scheduler

    _bounded.clear()
    scheduler = create_scheduler(store, loop=reactor_loop(), max_running=2)
    scheduler.start(paused=True)
    _bounded["executor"] = scheduler._executors["default"]
    now = dt.datetime.now(dt.UTC)
    for i in range(12):
        scheduler.add_job("tests.test_scheduler:_bounded_job", trigger=IntervalTrigger(hours=1, timezone=dt.UTC),
                          id=f"watch:w{i}", args=[i], next_run_time=now, jobstore="default")
    scheduler.resume()
    try:
        deadline = time.monotonic() + 60
        while len(_bounded.get("done", [])) < 12 and time.monotonic() < deadline:  # type: ignore[arg-type]
            time.sleep(0.1)
    finally:
        scheduler.shutdown(wait=False)
    assert sorted(_bounded["done"]) == list(range(12))  # type: ignore[arg-type]
    assert _bounded["max_running"] <= 2
    assert _bounded["max_taken"] <= 4
