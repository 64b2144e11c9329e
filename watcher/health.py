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
        self.kind: str | None = None  # the error's class name: what /healthz may show of it
        self.failures = 0
        self.outages: collections.deque[dict[str, Any]] = collections.deque(maxlen=_KEEP_OUTAGES)

    def failed(self, exc: BaseException, where: str) -> float:
        """Record a failure; return the backoff (seconds) before the caller tries again."""
        self.error = f"{where}: {describe(exc)}"
        self.kind = (getattr(exc, "orig", None) or exc).__class__.__name__
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
                             "failures": self.failures, "error": self.error, "kind": self.kind})
        self.since, self.error, self.kind, self.failures = None, None, None, 0

    def view(self) -> dict[str, Any]:
        return {"ok": self.since is None, "since": _iso(self.since), "error": self.error, "kind": self.kind,
                "failures": self.failures, "outages": list(self.outages)}


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
            self.watchdog_last: dict[str, Any] | None = None
            self.loop_heartbeat: dt.datetime | None = None
            self.state = "running"
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
        at = _iso(now)  # once: this runs for every check
        with self.lock:
            self.checks[outcome] += 1
            self.last_check = {"at": at, "watch": watch, "outcome": outcome, "reason": reason}
            if outcome not in ("failed", "skipped"):
                self.last_success = {"at": at, "watch": watch, "outcome": outcome}

    def woke(self, at: dt.datetime, next_wakeup: dt.datetime | None) -> None:
        """A scheduler wakeup that began `at` ended; the next one is due at `next_wakeup`."""
        with self.lock:
            self.last_wakeup, self.next_wakeup = at, next_wakeup

    def watchdog_restarted(self, problem: str) -> None:
        with self.lock:
            self.watchdog_restarts += 1
            self.watchdog_last = {"at": _iso(utcnow()), "problem": problem}

    def beat(self) -> None:
        """The event loop is turning (called on it every second or so)."""
        self.loop_heartbeat = utcnow()

    def set_state(self, state: str) -> None:
        with self.lock:
            self.state = state

    # ------------------------------------------------------------------ views

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "pid": os.getpid(), "role": self.role, "state": self.state, "started_at": _iso(self.started_at),
                "written_at": _iso(utcnow()),
                "loop_heartbeat": _iso(self.loop_heartbeat),
                "scheduler": {"last_wakeup": _iso(self.last_wakeup), "next_wakeup": _iso(self.next_wakeup),
                              "watchdog_restarts": self.watchdog_restarts,
                              "last_watchdog_restart": self.watchdog_last},
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


# ---------------------------------------------------------------------- reading it back (status, /healthz)

HEALTH_FILE_ENV = "WATCHER_HEALTH_FILE"


def health_path(config: Any) -> Path:
    """Where `watcher run` writes its health and `watcher status` / `/healthz` read it: $WATCHER_HEALTH_FILE,
    else `watcher.health_file`, else next to the SQLite database (`var/watcher.db` -> `var/watcher.health.json`),
    else (PostgreSQL) `<watcher.data_dir>/watcher.health.json`."""
    explicit = os.environ.get(HEALTH_FILE_ENV) or config.watcher.health_file
    if explicit:
        return Path(explicit)
    from sqlalchemy import make_url

    from watcher.store.db import normalise_url

    try:
        url = make_url(normalise_url(config.database_url))
    except Exception:
        url = None
    if url is not None and url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        db = Path(url.database)
        return db.with_name(f"{db.stem}.health.json")
    return Path(config.watcher.data_dir) / "watcher.health.json"


def read_health_file(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The last snapshot written, None when there is none; {} when it cannot be read."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _parse(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def limits(config: Any) -> tuple[float, float]:
    """(stale_after, late_after) in seconds: when the file is too old to trust (the daemon is gone or frozen:
    three missed writes and half a minute more), and how late a scheduler wakeup may be (the watchdog margin)."""
    return (3 * config.watcher.health_interval.total_seconds() + 30, config.watcher.watchdog.total_seconds())


def assess(data: dict[str, Any] | None, *, stale_after: float, late_after: float,
           now: dt.datetime | None = None) -> tuple[bool, list[str], float | None]:
    """(healthy, problems, age of the file in seconds) of a health snapshot as read from the file.
    The problems name no error message: they are shown to anyone who can reach /healthz."""
    if data is None:
        return False, ["no health file: `watcher run` has not run with this config (or writes elsewhere)"], None
    now = now or utcnow()
    written = _parse(data.get("written_at"))
    if written is None:
        return False, ["the health file cannot be read"], None
    age = max(0.0, (now - written).total_seconds())
    problems = []
    state = data.get("state") or "running"
    if state != "running":
        problems.append(f"the daemon is {state}")
    elif age > stale_after:
        problems.append(f"the health file was last written {age:.0f}s ago: the daemon is down or frozen")
    for key, what in (("database", "database"), ("job_store", "job store")):
        episode = data.get(key) or {}
        if episode and not episode.get("ok", True):
            problems.append(f"{what} outage since {episode.get('since')} ({episode.get('failures')} failed attempts)")
    beat = _parse(data.get("loop_heartbeat"))
    if beat is not None and (written - beat).total_seconds() > late_after:
        problems.append(f"the event loop has not turned for {(written - beat).total_seconds():.0f}s")
    upcoming = _parse((data.get("scheduler") or {}).get("next_wakeup"))
    if state == "running" and upcoming is not None and (written - upcoming).total_seconds() > late_after:
        problems.append(f"the scheduler's wakeup due {upcoming.isoformat(timespec='seconds')} has not happened")
    return not problems, problems, round(age, 1)


def status(config: Any, store: Any = None) -> dict[str, Any]:
    """The `health` section of `watcher status`: the running daemon's own view (it needs no database)."""
    path = health_path(config)
    data = read_health_file(path)
    stale_after, late_after = limits(config)
    healthy, problems, age = assess(data, stale_after=stale_after, late_after=late_after)
    return {"file": str(path), "healthy": healthy, "problems": problems, "age_s": age, **(data or {})}


def public_view(data: dict[str, Any] | None, *, stale_after: float, late_after: float) -> tuple[bool, dict[str, Any]]:
    """What `/healthz` answers, to anyone (no token): states, times and counts, never an error message (it may
    name a host or a user) nor a watch name."""
    healthy, problems, age = assess(data, stale_after=stale_after, late_after=late_after)
    data = data or {}

    def episode(v: dict[str, Any] | None) -> dict[str, Any] | None:
        if not v:
            return None
        return {"ok": v.get("ok"), "since": v.get("since"), "failures": v.get("failures"), "kind": v.get("kind"),
                "outages": [{k: o.get(k) for k in ("from", "to", "seconds", "failures", "kind")}
                            for o in v.get("outages") or []]}

    sched = data.get("scheduler") or {}
    view = {
        "status": "ok" if healthy else "unhealthy", "problems": problems, "state": data.get("state"),
        "role": data.get("role"), "started_at": data.get("started_at"), "written_at": data.get("written_at"),
        "age_s": age, "loop_heartbeat": data.get("loop_heartbeat"),
        "scheduler": {k: sched.get(k) for k in ("last_wakeup", "next_wakeup", "watchdog_restarts")},
        "last_check_at": (data.get("last_check") or {}).get("at"),
        "last_successful_check_at": (data.get("last_successful_check") or {}).get("at"),
        "checks": data.get("checks"),
        "database": episode(data.get("database")), "job_store": episode(data.get("job_store")),
    }
    return healthy, view
