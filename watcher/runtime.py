"""One event loop for everything: Twisted's asyncio reactor, so Scrapy and APScheduler share it.

Scrapy's reactor cannot be restarted within a process, so it is installed once and runs for the life of
the process in one thread ("watcher-reactor"); `run_sync` submits a coroutine to its loop and waits.
This lets a CLI command, the daemon and a test session each run any number of crawls in one process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
# uvloop under the reactor where it is installed: its loop schedules the reactor's callbacks, timers and socket
# readiness in C, which is most of what a re-check costs (Scrapy, Twisted and the pipeline all run on it).
EVENT_LOOP = "uvloop.Loop"
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def install_reactor() -> None:
    """Install the asyncio reactor (idempotent); refuses if another reactor is already installed."""
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise RuntimeError(f"a non-asyncio Twisted reactor is installed: {reactor!r}")
        return
    from scrapy.utils.reactor import install_reactor as scrapy_install

    scrapy_install(REACTOR, EVENT_LOOP if _has_uvloop() else None)


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:  # not on every platform (Windows): the standard loop, slower per request
        return False
    return True


def reactor_loop() -> asyncio.AbstractEventLoop:
    """The running reactor's asyncio loop, starting the reactor thread on first use."""
    global _loop
    with _lock:
        if _loop is not None:
            return _loop
        install_reactor()
        from twisted.internet import reactor

        started = threading.Event()
        reactor.callWhenRunning(started.set)
        thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                                  name="watcher-reactor", daemon=True)
        thread.start()
        if not started.wait(30):
            raise RuntimeError("the Twisted reactor did not start")
        _loop = reactor._asyncioEventloop  # type: ignore[attr-defined]
        return _loop


_heap_frozen = False


def freeze_heap() -> None:
    """Once per process, when start-up is done (modules, config, crawler, the watches' state loaded): collect,
    then move every object still alive out of the garbage collector's sight (`gc.freeze`). They live as long
    as the process; without this, each full collection while checks run walks all of them again, which in
    an unchanged re-check cycle was about a fifth of its CPU. Only what exists now is frozen, and once: later
    objects are collected as usual, and nothing frozen that becomes garbage can pile up more than once."""
    global _heap_frozen
    if _heap_frozen:
        return
    import gc

    _heap_frozen = True
    gc.collect()
    gc.freeze()


# A second SIGTERM/SIGINT this soon after the first is taken as the same request delivered twice, not as
# "stop now": GNU `timeout`, and a `kill` of the process group, signal both the process and its group.
DUPLICATE_SIGNAL_WINDOW = 1.0


def exit_now(signum: int) -> None:
    """A second stop signal during a graceful stop: leave at once, with the shell's status for a signal
    (128 + its number), as a SIGKILL would but with a line saying so. Nothing half-written is left behind:
    every check is one transaction, committed or not begun, and the unchanged checks not yet written are
    only lost (their watches are checked again after the restart)."""
    name = signal.Signals(signum).name
    logging.getLogger("watcher").warning(
        "%s again during the stop: exiting now; checks under way are abandoned, unchanged checks not yet "
        "written are lost (they are re-checked after the restart)", name)
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    sys.stderr.flush()
    os._exit(128 + signum)


def run_sync(factory: Callable[[], Awaitable[T]], *, stop_on_signal: asyncio.Event | None = None,
             reload_on_signal: asyncio.Event | None = None) -> T:
    """Run `factory()` on the reactor loop and return its result.

    With `stop_on_signal`, SIGTERM/SIGINT set that event (on the loop) instead of interrupting, so the
    coroutine can shut down cleanly; a second signal, a second or more after the first, exits at once
    (`exit_now`), also after the coroutine has returned. With `reload_on_signal`, every SIGHUP sets that
    event (the daemon then reloads its config).
    """
    loop = reactor_loop()

    async def wrapper() -> T:
        return await factory()

    fut: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(wrapper(), loop)
    previous: dict[int, Any] = {}
    first: list[float] = []  # when the stop was asked for (empty: not asked)
    if stop_on_signal is not None and threading.current_thread() is threading.main_thread():

        def handler(signum: int, _frame: Any) -> None:
            now = time.monotonic()
            if not first:
                first.append(now)
                loop.call_soon_threadsafe(stop_on_signal.set)
            elif now - first[0] >= DUPLICATE_SIGNAL_WINDOW:
                exit_now(signum)
            # else: the same request delivered twice (GNU timeout signals the process and its group)

        for s in (signal.SIGTERM, signal.SIGINT):
            previous[s] = signal.signal(s, handler)
    if reload_on_signal is not None and threading.current_thread() is threading.main_thread():
        previous[signal.SIGHUP] = signal.signal(
            signal.SIGHUP, lambda _s, _f: loop.call_soon_threadsafe(reload_on_signal.set))
    try:
        return fut.result()
    except KeyboardInterrupt:
        fut.cancel()
        raise
    finally:
        for s, h in previous.items():
            # Once a stop was asked for, the process is on its way out: the handler stays, so a duplicate
            # arriving after a quick stop (during the teardown that follows) is still absorbed, and a later
            # signal still exits with its line, not with a KeyboardInterrupt from the restored default.
            if not (first and s in (signal.SIGTERM, signal.SIGINT)):
                signal.signal(s, h)


class HealthReporter:
    """What keeps `watcher run`'s health visible from outside (watcher.health): a thread that writes
    HEALTH.snapshot() to the health file every `interval` seconds, and a callback on the event loop that
    beats every second. A thread, so the file keeps being written (and shows it) while the loop is stuck;
    when the loop has not turned for `stall_exit` seconds, nothing inside the process can help any more:
    the reporter logs it, writes the file a last time and exits with status 70, for the service manager
    to start a fresh process (0 disables that)."""

    EXIT_STALLED = 70

    def __init__(self, path: Any, *, interval: float = 5.0, stall_exit: float = 0.0,
                 loop: asyncio.AbstractEventLoop | None = None, role: str = "all") -> None:
        from watcher.health import HEALTH

        self.path, self.interval, self.stall_exit = path, interval, stall_exit
        self.loop = loop or reactor_loop()
        self.health = HEALTH
        HEALTH.reset()
        HEALTH.role = role
        HEALTH.beat()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher-health", daemon=True)
        self._write_failing = False

    def __enter__(self) -> HealthReporter:
        self.loop.call_soon_threadsafe(self._beat)
        self.write()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.health.state == "running":
            error = exc[1] if len(exc) > 1 else None
            self.health.set_state(f"exited on {error.__class__.__name__}" if isinstance(error, Exception)
                                  else "stopped")
        self.write()

    def _beat(self) -> None:
        if not self._stop.is_set():
            self.health.beat()
            self.loop.call_later(1.0, self._beat)

    def write(self) -> None:
        import logging

        from watcher.health import write_health_file

        try:
            write_health_file(self.path, self.health.snapshot())
        except OSError as e:  # a full disk, say: once per episode
            if not self._write_failing:
                logging.getLogger("watcher.health").error("cannot write the health file %s: %s", self.path, e)
            self._write_failing = True
        else:
            self._write_failing = False

    def _run(self) -> None:
        import datetime as dt
        import logging
        import os

        while not self._stop.wait(self.interval):
            beat = self.health.loop_heartbeat
            stalled = (dt.datetime.now(dt.UTC) - beat).total_seconds() if beat else 0.0
            if self.stall_exit and stalled > self.stall_exit:
                logging.getLogger("watcher.health").critical(
                    "the event loop has not turned for %.0fs; exiting with status %d so that the service manager "
                    "starts a fresh process", stalled, self.EXIT_STALLED)
                self.health.set_state(f"exiting ({self.EXIT_STALLED}): the event loop stalled")
                self.write()
                logging.shutdown()
                os._exit(self.EXIT_STALLED)
            self.write()
