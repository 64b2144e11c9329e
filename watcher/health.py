"""The health of a running daemon, and how it weathers a database that comes and goes.

One `Health` per process (`HEALTH`): the scheduler, the checks and the outbox sender report to it; the
daemon writes its `snapshot()` to a small JSON file (`watcher.health_file`) every few seconds, which
`watcher status` and the `/healthz` endpoint of `watcher web` read. A file rather than a database row,
because the database being away is exactly when an operator asks.

Database and job-store errors come in episodes: the first error of an episode is logged once, the
recovery once (with how long it lasted); in between, callers retry with `backoff()`.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import os
import random
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("watcher.health")

# SQLSTATE classes that mean "the database cannot serve us right now", not "this statement is wrong":
# 08 connection, 25 read-only/transaction state (a standby after fail-over), 53 out of resources (disk full),
# 57 operator intervention (shutdown), 58 system error.
_UNAVAILABLE_SQLSTATE = ("08", "25", "53", "57", "58")
# Recovered episodes kept for the health view.
_KEEP_OUTAGES = 5


def is_database_unavailable(exc: BaseException) -> bool:
    """True for errors that say the database is away, locked, full or read-only (transient), as opposed to
    a statement the database refuses on its merits (a bug or bad data)."""
    from sqlalchemy import exc as sa

    from watcher.errors import StoreError

    if isinstance(exc, StoreError | sa.OperationalError | sa.InterfaceError | sa.TimeoutError | sa.DisconnectionError):
        return True
    if isinstance(exc, sa.DBAPIError):
        if exc.connection_invalidated:
            return True
        code = getattr(exc.orig, "sqlstate", None) or ""
        return code[:2] in _UNAVAILABLE_SQLSTATE
    return False


def describe(exc: BaseException) -> str:
    """One line naming an error, without SQL or parameters (they may hold scraped text)."""
    from watcher.logs import redact

    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0]
    return redact(f"{orig.__class__.__name__}: {first}"[:300])


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Episode:
    """A run of failures of one dependency (the database, the job store): since when, how often, the last
    error; logged when it starts and when it ends, never in between."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.since: dt.datetime | None = None
        self.error: str | None = None
        self.failures = 0
        self.outages: collections.deque[dict[str, Any]] = collections.deque(maxlen=_KEEP_OUTAGES)

    def failed(self, exc: BaseException, where: str) -> float:
        """Record a failure; return the backoff (seconds) before the caller tries again."""
        self.error = f"{where}: {describe(exc)}"
        self.failures += 1
        if self.since is None:
            self.since = utcnow()
            log.warning("%s unavailable (%s); retrying with backoff, work resumes when it is back",
                        self.what, self.error)
        return backoff(self.failures)

    def ok(self) -> None:
        if self.since is None:
            return
        end = utcnow()
        seconds = (end - self.since).total_seconds()
        log.warning("%s available again after %.0fs (%d failed attempts; last: %s)", self.what, seconds,
                    self.failures, self.error)
        self.outages.append({"from": _iso(self.since), "to": _iso(end), "seconds": round(seconds, 1),
                             "failures": self.failures, "error": self.error})
        self.since, self.error, self.failures = None, None, 0

    def view(self) -> dict[str, Any]:
        return {"ok": self.since is None, "since": _iso(self.since), "error": self.error, "failures": self.failures,
                "outages": list(self.outages)}


def backoff(attempt: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff with jitter: about 1, 2, 4 ... up to `cap` seconds."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return delay * random.uniform(0.8, 1.2)


class Health:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.role: str | None = None
            self.started_at = utcnow()
            self.last_wakeup: dt.datetime | None = None
            self.next_wakeup: dt.datetime | None = None
            self.last_check: dict[str, Any] | None = None
            self.last_success: dict[str, Any] | None = None
            self.checks = collections.Counter[str]()
            self.watchdog_restarts = 0
            self.loop_heartbeat: dt.datetime | None = None
            self.database = Episode("database")
            self.job_store = Episode("job store")

    # ------------------------------------------------------------------ reports

    def database_failed(self, exc: BaseException, where: str) -> float:
        with self.lock:
            return self.database.failed(exc, where)

    def database_ok(self) -> None:
        if self.database.since is None:  # the common case, without taking the lock
            return
        with self.lock:
            self.database.ok()

    def job_store_failed(self, exc: BaseException, where: str) -> float:
        with self.lock:
            return self.job_store.failed(exc, where)

    def job_store_ok(self) -> None:
        if self.job_store.since is None:
            return
        with self.lock:
            self.job_store.ok()

    def checked(self, watch: str, outcome: str, reason: str | None) -> None:
        now = utcnow()
        with self.lock:
            self.checks[outcome] += 1
            self.last_check = {"at": _iso(now), "watch": watch, "outcome": outcome, "reason": reason}
            if outcome != "failed":
                self.last_success = {"at": _iso(now), "watch": watch, "outcome": outcome}

    def woke(self, next_wakeup: dt.datetime | None) -> None:
        with self.lock:
            self.last_wakeup, self.next_wakeup = utcnow(), next_wakeup

    # ------------------------------------------------------------------ views

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "pid": os.getpid(), "role": self.role, "started_at": _iso(self.started_at),
                "written_at": _iso(utcnow()),
                "loop_heartbeat": _iso(self.loop_heartbeat),
                "scheduler": {"last_wakeup": _iso(self.last_wakeup), "next_wakeup": _iso(self.next_wakeup),
                              "watchdog_restarts": self.watchdog_restarts},
                "last_check": self.last_check, "last_successful_check": self.last_success,
                "checks": dict(self.checks),
                "database": self.database.view(), "job_store": self.job_store.view(),
            }


HEALTH = Health()


def write_health_file(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Atomically replace the health file (readers never see half of it)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, p)
