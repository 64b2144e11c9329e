"""The database goes away mid-cycle: a private PostgreSQL server is stopped and started under a running
daemon. The daemon keeps running, resumes checking once the server is back, and the data stays consistent."""

from __future__ import annotations

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
from tests.consistency import assert_consistent, moving_pages
from tests.pageserver import PageServer
from tests.receivers import free_port
from watcher.store import Store
from watcher.store.models import Check, utcnow


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
            return s.scalar(select(func.count()).select_from(Check)) or 0
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
        cfg.write_text(f'[watcher]\ndatabase_url = "{url}"\n[fetch]\nautothrottle = false\nretries = 0\n'
                       f'allow_private = ["{server.allow}"]\n{watches}')
        log = (tmp_path / "daemon.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "watcher", "-c", str(cfg), "run"], stdout=log,
                                stderr=subprocess.STDOUT)
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
            time.sleep(14)  # APScheduler retries its job store every 10 s
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
    output = (tmp_path / "daemon.log").read_text()

    store = Store.open(url)
    try:
        with store.session() as s:
            resumed = s.scalar(select(func.count()).select_from(Check).where(Check.at > back))
            assert resumed > 0, output[-3000:]
            assert_consistent(s)
    finally:
        store.close()
