"""The database goes away mid-cycle: a private PostgreSQL server is stopped and started under a running
daemon. The daemon keeps running, resumes checking once the server is back, and the data stays consistent."""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import require_or_skip
from tests.consistency import assert_consistent, assert_watch_rows_agree, moving_pages, static_pages
from tests.pageserver import PageServer
from tests.receivers import free_port
from watcher.store import Store
from watcher.store.bookkeeping import check_runs
from watcher.store.models import AlertEvent, AlertRow, ChangeEventRow, Snapshot, utcnow


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


@pytest.fixture
def private_pg():
    """A throwaway PostgreSQL cluster on a free port, run as the `postgres` system user (the server refuses
    to run as root), that the test may stop and start without touching the machine's shared server."""
    bindir = _pg_bin()
    if bindir is None or shutil.which("runuser") is None:
        require_or_skip("the database-outage test needs PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    if os.geteuid() != 0:
        require_or_skip("the database-outage test starts a private PostgreSQL as the postgres user: needs root")
    base = Path(tempfile.mkdtemp(prefix="watcher-pg-"))  # pytest's tmp_path is not reachable by postgres
    base.chmod(0o755)
    data = base / "pgdata"
    data.mkdir()
    shutil.chown(data, "postgres")
    port = free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]

    def ctl(*args: str) -> None:
        # -l: the server's output goes to a file, or it would hold our pipe open and pg_ctl never returns
        subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w",
                        "-t", "30", *args], check=True, capture_output=True, timeout=60)

    subprocess.run([*as_pg, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl("-o", options, "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", lambda: ctl("-m", "fast", "stop"), \
            lambda: ctl("-o", options, "start")
    finally:
        subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _checks(url: str) -> int:
    store = Store.open(url, migrate=False)
    try:
        with store.session() as s:
            return sum(c.repeats for c in check_runs(s))
    finally:
        store.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_daemon_survives_postgresql_stop_and_start(private_pg, tmp_path):
    url, stop_db, start_db = private_pg
    Store.open(url).close()  # migrate before the daemon starts
    with PageServer() as server:
        watches = moving_pages(server, 10)
        cfg = tmp_path / "watcher.toml"
        cfg.write_text(f'[watcher]\ndatabase_url = "{url}"\nhealth_file = "{tmp_path / "health.json"}"\n'
                       '[fetch]\nautothrottle = false\nretries = 0\n'
                       f'allow_private = ["{server.allow}"]\n{watches}')
        log = (tmp_path / "daemon.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "watcher", "-c", str(cfg), "run"], stdout=log,
                                stderr=subprocess.STDOUT)
        log_path = tmp_path / "daemon.log"
        try:
            # The outage must come while the daemon runs, not during its start (on a loaded machine its
            # imports alone can take longer than a fixed sleep, and a daemon that cannot reach its
            # database at start exits by design): wait for its first stored check.
            deadline = time.monotonic() + 120
            while _checks(url) == 0 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
            assert _checks(url) > 0, "the daemon stored no check"
            time.sleep(1)
            stop_db()
            time.sleep(4)
            assert proc.poll() is None, "the daemon died with the database"
            start_db()
            back = utcnow()
            # The scheduler retries its job store with backoff (1, 2, 4 ... s); the checks follow.
            _wait(lambda: _checked_since(url, back), "checks after the restart", proc, log_path)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
    output = (tmp_path / "daemon.log").read_text()

    store = Store.open(url)
    try:
        with store.session() as s:
            resumed = len([c for c in check_runs(s) if c.latest_at > back])
            assert resumed > 0, output[-3000:]
            assert_consistent(s)
    finally:
        store.close()


# --------------------------------------------------------------------------- outages the daemon rides out
# The database stays up but refuses writes for a while: a SQLite write lock held by another connection for
# 45 s, PostgreSQL made read-only. The daemon (a subprocess, with `watcher web` beside it for /healthz)
# must keep waking, show the outage in its health file and at /healthz while it lasts, and afterwards resume
# with nothing lost and the recovered episode on record. Every wait polls for its condition (the machine
# may be loaded); nothing is timed.


def _wait(condition, what: str, proc: subprocess.Popen, log_path: Path, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the daemon exited ({proc.returncode}) while waiting for {what}:\n" + \
            log_path.read_text()[-3000:]
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}:\n" + log_path.read_text()[-3000:])


def _healthz(port: int) -> tuple[int, dict] | None:
    import httpx

    try:
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    except httpx.HTTPError:
        return None
    return r.status_code, r.json()


def _episode(data: dict | None, key: str) -> dict:
    return (data or {}).get(key) or {}


def _in_outage(data: dict | None) -> bool:
    return any(_episode(data, k) and not _episode(data, k).get("ok", True) for k in ("database", "job_store"))


def _ride_out(tmp_path: Path, url: str, begin, end, *, hold: float) -> None:
    """Run the daemon on `url`, call `begin()` once it is checking and delivering, keep the outage for at
    least `hold` seconds and until both the health file and /healthz show it, call `end()`, and check the
    recovery and that nothing was lost."""
    from tests.receivers import HookReceiver
    from watcher.health import read_health_file

    hook = HookReceiver()
    health = tmp_path / "health.json"
    env = {k: v for k, v in os.environ.items() if k not in ("WATCHER_DATABASE_URL", "WATCHER_HEALTH_FILE")}
    env["PYTHONUNBUFFERED"] = "1"
    log_path, web_log_path = tmp_path / "daemon.log", tmp_path / "web.log"
    with PageServer() as server:
        watches = moving_pages(server, 5) + "\n" + static_pages(server, 5)
        cfg = tmp_path / "watcher.toml"
        cfg.write_text(f"""
[watcher]
database_url = "{url}"
health_file = "{health}"
health_interval = "1s"
reload_on_change = false
[fetch]
autothrottle = false
retries = 0
allow_private = ["{server.allow}"]
[notify]
send_interval = "0.5s"
lease = "2s"
backoff_base = "1s"
[changes]
# the moving pages cycle through a few windows: with flap damping their changes would be held, not alerted
flap_window = 0
[[subscriber]]
name = "hook"
webhook = "{hook.url}"
{watches}""")
        web_port = free_port()
        with log_path.open("w") as log, web_log_path.open("w") as web_log:
            proc = subprocess.Popen([sys.executable, "-m", "watcher", "-c", str(cfg), "run"], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
            web = subprocess.Popen([sys.executable, "-m", "watcher", "-c", str(cfg), "web", "--port", str(web_port)],
                                   env=env, stdout=web_log, stderr=subprocess.STDOUT)
            try:
                _wait(lambda: len(hook.hits) >= 5 and (read_health_file(health) or {}).get("last_successful_check"),
                      "checks and deliveries before the outage", proc, log_path)
                _wait(lambda: (_healthz(web_port) or (0,))[0] == 200, "a healthy /healthz", proc, log_path)
                before = _stored(url)
                begin()
                began = time.monotonic()
                shown_in_file = shown_at_healthz = None
                while time.monotonic() - began < hold or not (shown_in_file and shown_at_healthz):
                    assert time.monotonic() - began < hold + 240, "the outage never showed:\n" + \
                        log_path.read_text()[-3000:]
                    assert proc.poll() is None, "the daemon died in the outage:\n" + log_path.read_text()[-3000:]
                    data = read_health_file(health)
                    if _in_outage(data):
                        shown_in_file = shown_in_file or data
                        answer = _healthz(web_port)
                        if answer and answer[0] == 503 and _in_outage(answer[1]):
                            shown_at_healthz = shown_at_healthz or answer[1]
                    time.sleep(0.5)
                end()
                ended = utcnow()

                def recovered():
                    data = read_health_file(health) or {}
                    success = _parse_at((data.get("last_successful_check") or {}).get("at"))
                    job_store, database = _episode(data, "job_store"), _episode(data, "database")
                    return (job_store.get("ok") and database.get("ok") and job_store.get("outages")
                            and success is not None and success > ended and data)
                after = _wait(recovered, "the recovery in the health file", proc, log_path)
                healthz = _wait(lambda: (a := _healthz(web_port)) and a[0] == 200 and a[1], "/healthz healthy again",
                                proc, log_path)
                _wait(lambda: _checked_since(url, ended) >= 10, "every watch checked after the outage", proc, log_path)
                _wait(lambda: _undelivered(url) == 0 and len(hook.hits) > before["alerts_sent"],
                      "the outbox drained after the outage", proc, log_path)
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(60) == 0, log_path.read_text()[-3000:]
            finally:
                for p in (proc, web):
                    if p.poll() is None:
                        p.terminate()
                        try:
                            p.wait(20)
                        except subprocess.TimeoutExpired:
                            p.kill()
    hook.close()
    output = log_path.read_text()

    # While it lasted: the episode, with its error, in the file; at /healthz only its kind, and 503.
    assert shown_in_file["state"] == "running"
    assert "job_store" in shown_at_healthz and shown_at_healthz["status"] == "unhealthy"
    assert all("error" not in (shown_at_healthz.get(k) or {}) for k in ("database", "job_store"))
    # After: the recovered episodes on record, each logged once when it began and once when it ended.
    outage = after["job_store"]["outages"][-1]
    assert outage["failures"] >= 1 and outage["seconds"] > 0
    assert healthz["job_store"]["outages"], healthz
    assert output.count("job store unavailable") == len(after["job_store"]["outages"]), output[-3000:]
    assert output.count("job store available again") == len(after["job_store"]["outages"]), output[-3000:]
    assert after["scheduler"]["watchdog_restarts"] == 0
    assert "Traceback" not in output, output[-5000:]

    # Nothing lost: what was stored before is still there, the invariants hold, every event was alerted once
    # and every alert reached the receiver.
    now = _stored(url)
    assert before["snapshots"] <= now["snapshots"] and before["events"] <= now["events"]
    assert len(now["snapshots"]) > len(before["snapshots"])  # and more came after
    store = Store.open(url)
    try:
        with store.session() as s:
            assert_consistent(s)
            assert_watch_rows_agree(s)
            snapshots = s.scalar(select(func.count()).select_from(Snapshot))
            watches_seen = s.scalar(select(func.count(func.distinct(Snapshot.watch_id))))
            changed = s.scalar(select(func.count()).select_from(ChangeEventRow)
                               .where(ChangeEventRow.type == "release_changed"))
            assert changed == snapshots - watches_seen
            events = s.scalar(select(func.count()).select_from(ChangeEventRow))
            listed = list(s.scalars(select(AlertEvent.event_id)))
            assert len(listed) == len(set(listed)) == events
            sent = {a.uid for a in s.scalars(select(AlertRow)) if a.status == "sent"}
    finally:
        store.close()
    received = {h.headers["X-Watcher-Event-Id"] for h in hook.hits}
    assert sent <= received, "alerts marked sent that never arrived"
    print(f"outage: {snapshots} snapshots, {events} events, {len(hook.hits)} deliveries of {len(sent)} alerts; "
          f"job-store outage {outage['seconds']}s with {outage['failures']} failed wakeups; "
          f"database outages {after['database']['outages']}")


def _parse_at(value):

    return dt.datetime.fromisoformat(value) if value else None


def _stored(url: str) -> dict:
    store = Store.open(url, migrate=False)
    try:
        with store.session() as s:
            return {"snapshots": set(s.scalars(select(Snapshot.id))),
                    "events": set(s.scalars(select(ChangeEventRow.uid))),
                    "alerts_sent": s.scalar(select(func.count()).select_from(AlertRow)
                                            .where(AlertRow.status == "sent")) or 0}
    finally:
        store.close()


def _checked_since(url: str, at) -> int:
    """How many watches have a check stored after `at`."""
    store = Store.open(url, migrate=False)
    try:
        with store.session() as s:
            return len({c.watch_id for c in check_runs(s) if c.latest_at > at})
    finally:
        store.close()


def _undelivered(url: str) -> int:
    store = Store.open(url, migrate=False)
    try:
        with store.session() as s:
            pending = s.scalar(select(func.count()).select_from(AlertRow).where(AlertRow.status != "sent")) or 0
            events = s.scalar(select(func.count()).select_from(ChangeEventRow)) or 0
            alerted = s.scalar(select(func.count(func.distinct(AlertEvent.event_id)))) or 0
            return pending + (events - alerted)
    finally:
        store.close()


@pytest.mark.slow
def test_daemon_rides_out_a_sqlite_write_lock_held_45s(tmp_path):
    """Another connection holds SQLite's write lock (BEGIN IMMEDIATE) for 45 s: every write of the daemon
    waits its 30 s busy timeout and fails. The scheduler keeps waking (its due jobs' next run times kept
    until they can be written), the checks fail as database-unavailable, and all resume after."""
    import sqlite3

    db = tmp_path / "watcher.db"
    url = f"sqlite:///{db}"
    Store.open(url).close()
    holder: list[sqlite3.Connection] = []

    def begin() -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=60)
        conn.execute("BEGIN IMMEDIATE")
        holder.append(conn)

    def end() -> None:
        holder[0].execute("ROLLBACK")
        holder[0].close()

    _ride_out(tmp_path, url, begin, end, hold=45)


@pytest.mark.postgres
@pytest.mark.slow
def test_daemon_rides_out_postgresql_refusing_writes(tmp_path, pg_server_url):
    """A private database made read-only (`default_transaction_read_only`) with the daemon's connections
    terminated: new ones can read but every write fails (SQLSTATE 25006), as on a standby after a fail-over.
    The daemon reconnects, keeps waking and shows the outage; once writes are allowed again it resumes."""
    import uuid

    import sqlalchemy as sa

    from watcher.store.db import normalise_url

    if pg_server_url is None or pg_server_url.startswith("unreachable"):
        require_or_skip(f"PostgreSQL tests need WATCHER_TEST_DATABASE_URL ({pg_server_url})")
    base = sa.make_url(normalise_url(pg_server_url))
    name = f"{base.database}_ro_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)

    def terminate(c) -> None:
        c.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d "
                          "AND pid <> pg_backend_pid()"), {"d": name})

    def begin() -> None:
        with admin.connect() as c:
            c.execute(sa.text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
            terminate(c)

    def end() -> None:
        with admin.connect() as c:
            # Connections made meanwhile stay read-only for their life: the daemon finds out at its next write.
            c.execute(sa.text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))

    try:
        Store.open(url).close()
        _ride_out(tmp_path, url, begin, end, hold=20)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
