"""Config reload in a running daemon: SIGHUP and file changes add, remove and pause watches without a restart;
an invalid file is refused with its error and the config in force stays (both backends)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.consistency import checks_per_watch
from tests.pageserver import PageServer
from tests.test_pipeline import page
from watcher.config import load_config
from watcher.runtime import run_sync
from watcher.scheduler import run_daemon
from watcher.store import Store
from watcher.store.models import Watch

DEADLINE = 60.0


def config_text(database_url: str, server: PageServer, names: list[str], *, reload_on_change: bool = True,
                paused: tuple[str, ...] = ()) -> str:
    watches = "".join(f'\n[[watch]]\nname = "{n}"\nurl = "{server.url("/" + n)}"\ninterval = "1s"\njitter = "0s"\n'
                      + ("enabled = false\n" if n in paused else "") for n in names)
    return (f'# reload test\n[watcher]\ndatabase_url = "{database_url}"\n'
            f'reload_on_change = {"true" if reload_on_change else "false"}\n'
            '[fetch]\nautothrottle = false\nretries = 0\ntimeout = "5s"\n'
            f'allow_private = ["{server.allow}"]\n' + watches)


def write(path: Path, text: str) -> None:
    """Replace the file atomically, as an editor or `watcher add` would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


checks = checks_per_watch


def wait_for(condition, what: str, deadline: float = DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def server():
    with PageServer() as s:
        for name in ("a", "b", "c"):
            s.route(f"/{name}", page("early 2027", stamp=name))
        yield s


class Daemon:
    """`watcher run` in a subprocess, its log collected line by line."""

    def __init__(self, cfg: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "WATCHER_DATABASE_URL"}
        self.proc = subprocess.Popen([sys.executable, "-m", "watcher", "-c", str(cfg), "run"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_log(self, pattern: str, *, after: int = 0) -> str:
        rx = re.compile(pattern)

        def found():
            if self.proc.poll() is not None:
                pytest.fail("the daemon exited:\n" + "\n".join(self.lines))
            return next((line for line in self.lines[after:] if rx.search(line)), None)

        return wait_for(found, f"log line {pattern!r}; log so far:\n" + "\n".join(self.lines))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.reader.join(10)


@pytest.mark.slow
def test_sighup_adds_and_removes_watches_in_a_running_daemon(server, database_url, tmp_path):
    cfg = tmp_path / "watcher.toml"
    # File watching off: only SIGHUP can make this daemon read the file again.
    write(cfg, config_text(database_url, server, ["a"], reload_on_change=False))
    daemon = Daemon(cfg)
    store = Store.open(database_url)
    try:
        daemon.wait_log(r"watcher running: 1 watches")
        wait_for(lambda: checks(store).get("a", 0) >= 2, "watch a to be checked")
        write(cfg, config_text(database_url, server, ["b"], reload_on_change=False))
        mark = len(daemon.lines)
        daemon.proc.send_signal(signal.SIGHUP)
        line = daemon.wait_log(r"config reloaded \(SIGHUP\)", after=mark)
        assert "added b" in line and "removed a" in line
        a_at_reload = checks(store).get("a", 0)
        # The new watch is checked; meanwhile the removed one (every second until now) is not any more:
        # at most a check already under way when the reload came finishes.
        wait_for(lambda: checks(store).get("b", 0) >= 4, "the added watch b to be checked")
        assert checks(store)["a"] <= a_at_reload + 1
        assert daemon.proc.poll() is None  # the same process all along: no restart
        assert sum("watcher running" in line for line in daemon.lines) == 1
        with store.session() as s:
            enabled = dict(s.execute(select(Watch.name, Watch.enabled)).all())
        assert enabled == {"a": False, "b": True}  # a's history stays, disabled
    finally:
        daemon.stop()
        store.close()
    assert daemon.proc.returncode == 0, "\n".join(daemon.lines)


@pytest.mark.slow
def test_invalid_config_on_sighup_is_refused_and_the_old_one_stays(server, database_url, tmp_path):
    cfg = tmp_path / "watcher.toml"
    write(cfg, config_text(database_url, server, ["a"], reload_on_change=False))
    daemon = Daemon(cfg)
    store = Store.open(database_url)
    try:
        daemon.wait_log(r"watcher running")
        wait_for(lambda: checks(store).get("a", 0) >= 1, "watch a to be checked")
        broken = config_text(database_url, server, ["a", "b"], reload_on_change=False).replace(
            'name = "b"\n', 'name = "b"\nconfirm = 9\n')
        write(cfg, broken)
        mark = len(daemon.lines)
        daemon.proc.send_signal(signal.SIGHUP)
        line = daemon.wait_log(r"config reload \(SIGHUP\) refused", after=mark)
        assert "confirm" in "\n".join(daemon.lines[mark:])  # the error names the key
        assert "ERROR" in line
        # The old config stays in force: a is still checked, b never is.
        count = checks(store)["a"]
        wait_for(lambda: checks(store)["a"] >= count + 3, "watch a to go on being checked")
        assert "b" not in checks(store)
        # Fixed, it is taken.
        write(cfg, config_text(database_url, server, ["a", "b"], reload_on_change=False))
        mark = len(daemon.lines)
        daemon.proc.send_signal(signal.SIGHUP)
        assert "added b" in daemon.wait_log(r"config reloaded \(SIGHUP\)", after=mark)
        wait_for(lambda: checks(store).get("b", 0) >= 1, "watch b to be checked")
    finally:
        daemon.stop()
        store.close()


def test_file_changes_reload_pause_resume_and_survive_a_bad_edit(server, store, database_url, tmp_path, caplog):
    """In process: the daemon notices the file changing (no signal), pauses and resumes, and ignores a
    broken file until it is fixed."""
    caplog.set_level(logging.WARNING, logger="watcher.reload")
    cfg = tmp_path / "watcher.toml"
    write(cfg, config_text(database_url, server, ["a", "b"]))
    config = load_config(cfg)
    stop = asyncio.Event()
    loop_ready = threading.Event()

    async def go() -> None:
        loop_ready.set()
        await run_daemon(store, config, stop=stop, sender=False)

    def logged(pattern: str, after: int):
        return lambda: next((r.getMessage() for r in caplog.records[after:] if re.search(pattern, r.getMessage())),
                            None)

    runner = threading.Thread(target=lambda: run_sync(go), daemon=True)
    runner.start()
    try:
        loop_ready.wait(30)
        wait_for(lambda: checks(store).get("b", 0) >= 1 and checks(store).get("a", 0) >= 1, "a and b checked")
        mark = len(caplog.records)
        write(cfg, config_text(database_url, server, ["a", "b", "c"], paused=("b",)))
        message = wait_for(logged(r"config reloaded \(file changed\)", mark), "the reload")
        assert "added c" in message and "changed b" in message
        b_paused_at = checks(store)["b"]
        wait_for(lambda: checks(store).get("c", 0) >= 3, "c checked")
        assert checks(store)["b"] <= b_paused_at + 1
        mark = len(caplog.records)
        cfg.write_text("[[watch]\nbroken")  # written in place, not even TOML
        error = wait_for(logged(r"refused", mark), "the refusal")
        assert "TOML syntax error" in error and str(cfg) in error
        count = checks(store)["c"]
        wait_for(lambda: checks(store)["c"] >= count + 2, "c still checked under the old config")
        mark = len(caplog.records)
        write(cfg, config_text(database_url, server, ["b"]))  # b resumed, a and c removed
        message = wait_for(logged(r"config reloaded", mark), "the second reload")
        assert "removed a, c" in message
        count = checks(store)["b"]
        wait_for(lambda: checks(store)["b"] >= count + 2, "b checked again")
    finally:
        run_sync(lambda: _set(stop))
        runner.join(30)


async def _set(event: asyncio.Event) -> None:
    event.set()


def test_restart_only_sections_are_kept_and_reported():
    from watcher.config import Config
    from watcher.reload import compare

    old = Config.model_validate({"fetch": {"user_agent": "old"},
                                 "watch": [{"name": "a", "url": "https://x.org/", "interval": "1h"}]})
    new = Config.model_validate({"fetch": {"user_agent": "new"},
                                 "watch": [{"name": "a", "url": "https://x.org/", "interval": "2h"},
                                           {"name": "b", "url": "https://y.org/", "interval": "1h"}]})
    change = compare(old, new)
    assert change.added == ["b"] and change.changed == ["a"] and change.removed == []
    assert change.restart_needed == ["fetch"]
    assert change.config.fetch.user_agent == "old"  # kept until a restart
    assert [w.name for w in change.config.watch] == ["a", "b"]
    assert change.config.watch_by_name("a").interval.total_seconds() == 7200
