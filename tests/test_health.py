"""The supervised scheduler, its watchdog and the daemon's health (watcher.health, watcher/scheduler.py):
job-store errors never end the scheduler's wakeups, a scheduler that stops waking is replaced, and the
health file, `watcher status` and `/healthz` say so. The daemon-level outages (a SQLite write lock held
45 s, PostgreSQL refusing writes) are in tests/test_db_outage.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from tests.pageserver import PageServer
from tests.test_pipeline import make_config, page
from watcher.health import HEALTH, Health, assess, public_view, read_health_file, write_health_file
from watcher.runtime import run_sync
from watcher.scheduler import EXIT_WATCHDOG, create_scheduler, run_daemon
from watcher.store.bookkeeping import check_runs
from watcher.store.db import normalise_url

TICKS: list[float] = []


def tick() -> None:
    """The job of the scheduler tests (referenced by name in the job store)."""
    TICKS.append(time.monotonic())


def wait_for(condition, timeout: float = 120.0, what: str = "condition") -> None:
    """Poll (generously: the machine may be loaded) until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(autouse=True)
def fresh_health():
    HEALTH.reset()
    yield
    HEALTH.reset()


def test_job_store_errors_are_retried_with_backoff_and_logged_once(store, caplog):
    """The job store's table goes away under a running scheduler (every job-store call fails) and comes
    back: the scheduler keeps waking (with backoff), logs the episode once, and runs its job again after."""
    TICKS.clear()
    scheduler = create_scheduler(store)
    scheduler.start()
    try:
        scheduler.add_job("tests.test_health:tick", "interval", seconds=0.3, id="tick", jobstore="default")
        wait_for(lambda: len(TICKS) >= 2, what="the job to run")
        caplog.set_level(logging.WARNING)
        with store.engine.begin() as c:
            c.execute(text("ALTER TABLE apscheduler_jobs RENAME TO apscheduler_jobs_away"))
        wait_for(lambda: HEALTH.job_store.failures >= 3, what="three failed wakeups")
        assert scheduler._thread.is_alive()
        assert scheduler.stalled(60) is None
        assert not HEALTH.snapshot()["job_store"]["ok"]
        stopped = len(TICKS)
        with store.engine.begin() as c:
            c.execute(text("ALTER TABLE apscheduler_jobs_away RENAME TO apscheduler_jobs"))
        wait_for(lambda: HEALTH.job_store.since is None, what="the job store's recovery")
        wait_for(lambda: len(TICKS) > stopped + 1, what="the job to run again")
    finally:
        scheduler.shutdown()
    view = HEALTH.snapshot()["job_store"]
    assert view["ok"] and len(view["outages"]) == 1 and view["outages"][0]["failures"] >= 3
    lines = [r.getMessage() for r in caplog.records if r.name.startswith(("watcher", "apscheduler"))]
    assert sum("job store unavailable" in m for m in lines) == 1, lines
    assert sum("job store available again" in m for m in lines) == 1, lines
    assert not [m for m in lines if "Error getting due jobs" in m]  # APScheduler's every-10-s warning


def with_watchdog(config, seconds: float):
    return config.model_copy(update={"watcher": config.watcher.model_copy(
        update={"watchdog": dt.timedelta(seconds=seconds)})})


def checks_since(store, at: dt.datetime) -> int:
    with store.session() as s:
        # Rows with a check after `at` (a run of quiet checks is one row whose latest check is `last_at`).
        return len([c for c in check_runs(s) if c.latest_at > at])


def _lock_job_store(database_url: str):
    """Another connection that makes the scheduler's job-store calls wait: a SQLite write lock (its update
    of a due job waits the 30 s busy timeout) or, on PostgreSQL, an exclusive lock on the table (every call
    waits until it is released). Returns (connection, release)."""
    if database_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        return lambda: (conn.execute("ROLLBACK"), conn.close())
    engine = create_engine(normalise_url(database_url))
    conn = engine.connect()
    conn.execute(text("LOCK TABLE apscheduler_jobs IN ACCESS EXCLUSIVE MODE"))

    def release() -> None:
        conn.rollback()
        conn.close()
        engine.dispose()
    return release


def _daemon_in_background(store, config):
    """run_daemon on the reactor loop, from a thread; returns (stop, result holder, thread)."""
    from watcher.runtime import reactor_loop

    loop = reactor_loop()
    stop = asyncio.Event()
    result: dict[str, int] = {}

    def go() -> None:
        result["status"] = run_sync(lambda: run_daemon(store, config, stop=stop, sender=False))

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return (lambda: loop.call_soon_threadsafe(stop.set)), result, thread


def test_watchdog_replaces_a_scheduler_stuck_in_the_job_store(store, database_url):
    """A wakeup stuck in a job-store call for longer than the watchdog's margin: the scheduler is replaced,
    the restart is counted, and once the lock is gone the watch is checked again."""
    with PageServer() as server:
        server.route("/a", page("early 2027"))
        config = make_config(server, database_url, [{"name": "a", "url": server.url("/a"), "interval": "1s",
                                                     "jitter": "0s"}])
        config = with_watchdog(config, 4)
        stop, result, thread = _daemon_in_background(store, config)
        release = None
        try:
            wait_for(lambda: HEALTH.last_wakeup is not None and HEALTH.checks, what="the daemon's first check")
            release = _lock_job_store(database_url)
            wait_for(lambda: HEALTH.watchdog_restarts >= 1, what="a watchdog restart")
            release()
            release = None
            back = dt.datetime.now(dt.UTC)
            wait_for(lambda: checks_since(store, back), what="a check after the lock")
        finally:
            if release is not None:
                release()
            stop()
            thread.join(60)
    assert result["status"] == 0
    snap = HEALTH.snapshot()["scheduler"]
    assert snap["watchdog_restarts"] >= 1 and "wakeup has lasted" in snap["last_watchdog_restart"]["problem"]


@pytest.mark.postgres
def test_watchdog_gives_up_with_exit_status_70(database_url, store):
    """A scheduler that stays stuck through MAX_RESTARTS replacements: the daemon stops with status 70 (the
    service manager then starts a fresh process). PostgreSQL only: its table lock holds the wakeups for as
    long as it lasts (SQLite's busy timeout ends them after 30 s)."""
    if database_url.startswith("sqlite"):
        pytest.skip("needs a lock that holds job-store reads indefinitely (PostgreSQL)")
    with PageServer() as server:
        server.route("/a", page("early 2027"))
        config = make_config(server, database_url, [{"name": "a", "url": server.url("/a"), "interval": "1s",
                                                     "jitter": "0s"}])
        config = with_watchdog(config, 2)
        stop, result, thread = _daemon_in_background(store, config)
        release = None
        try:
            wait_for(lambda: HEALTH.last_wakeup is not None, what="the daemon's first wakeup")
            release = _lock_job_store(database_url)
            thread.join(180)
            assert not thread.is_alive(), "the watchdog did not give up"
        finally:
            if release is not None:
                release()
            stop()
            thread.join(60)
    assert result["status"] == EXIT_WATCHDOG
    assert HEALTH.watchdog_restarts == 3 and HEALTH.state.startswith("exiting (70)")


# --------------------------------------------------------------------------- health file, status, /healthz


def _snapshot_with_outage() -> dict:
    h = Health()
    h.role = "all"
    h.woke(dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5))
    h.beat()
    from sqlalchemy.exc import OperationalError

    h.database_failed(OperationalError("UPDATE watches", {}, Exception('connection to "db.internal" failed for '
                                                                        'user "secret-user"')), "check of w1")
    return h.snapshot()


def test_healthz_answers_503_during_an_outage_and_shows_no_error_text(tmp_path, sqlite_url):
    import httpx
    import uvicorn

    from tests.receivers import free_port
    from watcher.store import Store
    from watcher.web import create_app

    path = tmp_path / "health.json"
    store = Store.open(sqlite_url)
    app = create_app(store, token="t0ken", health_file=str(path), health_limits=(45, 120))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "the web server to start")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}")
    r = client.get("/healthz")  # no file yet, and no token needed
    assert r.status_code == 503 and "no health file" in r.json()["problems"][0]

    write_health_file(path, _snapshot_with_outage())
    r = client.get("/healthz")
    body = r.json()
    assert r.status_code == 503 and body["status"] == "unhealthy"
    assert body["database"]["ok"] is False and body["database"]["kind"] == "Exception"
    assert "secret-user" not in r.text and "db.internal" not in r.text and "w1" not in r.text

    h = Health()
    h.woke(dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5))
    h.beat()
    write_health_file(path, h.snapshot())
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert client.get("/watches").status_code == 401  # the rest of the site still wants the token

    stale = {**h.snapshot(), "written_at": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()}
    write_health_file(path, stale)
    r = client.get("/healthz")
    assert r.status_code == 503 and "last written" in r.json()["problems"][0]
    client.close()
    server.should_exit = True
    thread.join(10)
    store.close()


def test_assess_flags_a_late_scheduler_and_a_stopped_daemon():
    h = Health()
    now = dt.datetime.now(dt.UTC)
    h.beat()
    h.woke(now - dt.timedelta(minutes=10), now - dt.timedelta(minutes=9))
    ok, problems, _ = assess(h.snapshot(), stale_after=45, late_after=120)
    assert not ok and "has not happened" in problems[0]
    h.woke(now, now + dt.timedelta(seconds=3))
    h.set_state("stopped")
    ok, problems, _ = assess(h.snapshot(), stale_after=45, late_after=120)
    assert not ok and problems == ["the daemon is stopped"]
    ok, view = public_view(None, stale_after=45, late_after=120)
    assert not ok and view["status"] == "unhealthy"


def test_status_shows_the_health_section_even_with_the_database_away(tmp_path, monkeypatch):
    from watcher.cli import cli

    path = tmp_path / "health.json"
    write_health_file(path, _snapshot_with_outage())
    cfg = tmp_path / "watcher.toml"
    # A PostgreSQL server that is not there: the health section still answers, from the file.
    cfg.write_text('[watcher]\ndatabase_url = "postgresql://nobody@127.0.0.1:1/none"\n'
                   f'health_file = "{path}"\n[redis]\nurl = "redis://127.0.0.1:1/0"\n')
    monkeypatch.delenv("WATCHER_DATABASE_URL", raising=False)
    monkeypatch.delenv("WATCHER_HEALTH_FILE", raising=False)
    result = CliRunner().invoke(cli, ["-c", str(cfg), "status", "--json"])
    assert result.exit_code == 0, result.output
    health = json.loads(result.stdout[result.stdout.index("{"):])["health"]
    assert health["healthy"] is False and health["database"]["ok"] is False
    assert health["file"] == str(path)
    text_out = CliRunner().invoke(cli, ["-c", str(cfg), "status"])
    assert "OUTAGE since" in text_out.output and "health" in text_out.output


def test_health_reporter_writes_the_file_and_marks_a_clean_stop(tmp_path):
    from watcher.runtime import HealthReporter, reactor_loop

    path = tmp_path / "h.json"
    with HealthReporter(path, interval=1.0, loop=reactor_loop(), role="all"):
        wait_for(lambda: (read_health_file(path) or {}).get("loop_heartbeat") is not None, 30, "a heartbeat")
        assert read_health_file(path)["state"] == "running"
    assert read_health_file(path)["state"] == "stopped"
