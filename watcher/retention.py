"""Retention: which snapshots history can do without, and removing them (`watcher db prune`, and the daemon
once a day).

`[retention] keep_snapshots = 100, max_age = "365d"` (and per watch, `retention = { ... }`): a snapshot
past the `keep_snapshots` newest of its watch, or fetched more than `max_age` ago, is removed, unless
something still needs it:

- the latest state: the latest snapshot of each entry of the watch (what the next check compares
  against) and the one before it (what the diff of the latest change is shown against);
- events: a snapshot with a fact event (any event but `text_changed`) keeps it, so every fact change
  stays reviewable with the page it was read from; a `text_changed` event carries its diff itself and
  lets its snapshot go once it is settled (not `pending` confirmation) and its alerts are delivered;
- alerts: a snapshot whose events still wait in the outbox (pending or being sent) stays.

Removing a snapshot removes its facts (the topic timeline's rows of that version), unlinks the check that
stored it and the events that point to it (`snapshot_id` set NULL, as the foreign keys do); the check rows and
the events themselves stay. Each watch is pruned in its own short transaction, so a running daemon is held
up for one watch at a time at most.

Space: the bytes reported are those of the removed rows' stored content (compressed text and facts JSON). A
database file does not shrink by itself: SQLite puts the pages on its free list (reused by later writes) and
returns them to the file system with `PRAGMA incremental_vacuum` when the file is in incremental auto-vacuum
mode (new databases are; `watcher db prune --vacuum` switches an older one with a full VACUUM); PostgreSQL's
(auto)vacuum makes the space reusable, only VACUUM FULL returns it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Text, cast, delete, func, select, text, update
from sqlalchemy.orm import Session

from watcher.config import Config, RetentionConfig, format_duration
from watcher.store import Store
from watcher.store.models import AlertEvent, AlertRow, ChangeEventRow, Check, Fact, Snapshot, Watch, utcnow

log = logging.getLogger(__name__)

CHUNK = 500  # ids per IN list (backend limits on bound parameters)
# The latest snapshots of each entry kept whatever the limits: the latest state and the one before it.
LATEST_PER_ENTRY = 2


@dataclass
class PruneReport:
    watches: int = 0  # watches that lost snapshots
    snapshots: int = 0
    facts: int = 0
    checks_unlinked: int = 0
    events_unlinked: int = 0
    bytes: int = 0  # stored content of the removed snapshots (compressed text + facts JSON)
    kept_needed: int = 0  # snapshots past the limits kept because something needs them
    seconds: float = 0.0
    database: dict[str, Any] = field(default_factory=dict)  # sizes before/after (see database_size)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        line = (f"removed {self.snapshots} snapshots of {self.watches} watches ({_mb(self.bytes)} of content), "
                f"{self.facts} facts; unlinked {self.checks_unlinked} checks and {self.events_unlinked} events; "
                f"kept {self.kept_needed} past the limits that events, alerts or the latest state need")
        db = self.database
        if db.get("backend") == "sqlite" and "after" in db:
            after = db["after"]
            line += (f"; database file {_mb(db['before']['bytes'])} -> {_mb(after['bytes'])}, "
                     f"{_mb(after['free_bytes'])} free inside it")
            if after["free_bytes"] and not db.get("returned"):
                line += " (reused by later writes; `watcher db prune --vacuum` gives it back to the file system)"
        elif db.get("backend") == "postgresql" and "after" in db:
            line += (f"; snapshots+facts tables {_mb(db['before']['bytes'])} -> {_mb(db['after']['bytes'])} "
                     "(the space is reused after (auto)vacuum; only VACUUM FULL shrinks the files)")
        return line


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 10_000 else f"{n} bytes"


def describe_rule(rule: RetentionConfig) -> str:
    count = f"the {rule.keep_snapshots} newest snapshots" if rule.keep_snapshots else "every snapshot"
    age = f"of the last {format_duration(rule.max_age)}" if rule.max_age else "whatever its age"
    return f"{count} {age}"


def plan_watch(s: Session, watch_id: int, rule: RetentionConfig, now: dt.datetime) -> tuple[list[int], int]:
    """(snapshot ids to remove, number past the limits kept because needed) for one watch."""
    cutoff = now - rule.max_age if rule.max_age else None
    rows = s.execute(select(Snapshot.id, Snapshot.entry_key, Snapshot.fetched_at)
                     .where(Snapshot.watch_id == watch_id).order_by(Snapshot.id.desc())).all()
    seen: Counter[str] = Counter()
    latest: set[int] = set()
    over: list[int] = []
    for i, (sid, key, at) in enumerate(rows):
        if seen[key] < LATEST_PER_ENTRY:
            latest.add(sid)
        seen[key] += 1
        if (rule.keep_snapshots and i >= rule.keep_snapshots) or (cutoff is not None and at < cutoff):
            over.append(sid)
    candidates = [sid for sid in over if sid not in latest]
    needed = needed_by_events(s, candidates)
    remove = [sid for sid in candidates if sid not in needed]
    return remove, len(over) - len(remove)


def needed_by_events(s: Session, snapshot_ids: list[int]) -> set[int]:
    """The snapshots among `snapshot_ids` that an event or an undelivered alert needs (module docstring)."""
    needed: set[int] = set()
    for i in range(0, len(snapshot_ids), CHUNK):
        chunk = snapshot_ids[i:i + CHUNK]
        events = s.execute(select(ChangeEventRow.id, ChangeEventRow.snapshot_id, ChangeEventRow.type,
                                  ChangeEventRow.state).where(ChangeEventRow.snapshot_id.in_(chunk))).all()
        settled: dict[int, int] = {}
        for event_id, sid, type_, state in events:
            if type_ != "text_changed" or state == "pending":
                needed.add(sid)
            else:
                settled[event_id] = sid
        if not settled:
            continue
        ids = list(settled)
        waiting = set(s.scalars(select(AlertRow.event_id).where(
            AlertRow.event_id.in_(ids), AlertRow.status == "pending")))
        waiting |= set(s.scalars(select(AlertEvent.event_id).join(AlertRow, AlertEvent.alert_id == AlertRow.id)
                                 .where(AlertEvent.event_id.in_(ids), AlertRow.status == "pending")))
        needed |= {settled[e] for e in waiting}
    return needed


def remove_snapshots(s: Session, ids: list[int], report: PruneReport) -> None:
    """Remove these snapshots with their facts; unlink the checks and events that point to them. Done
    explicitly rather than left to the foreign keys' actions, so the counts are known and the result is
    the same whatever the backend enforces."""
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        size = s.scalar(select(func.coalesce(func.sum(func.length(Snapshot.content_z))
                                             + func.sum(func.length(cast(Snapshot.facts, Text))), 0))
                        .where(Snapshot.id.in_(chunk)))
        report.bytes += int(size or 0)
        report.facts += _count(s.execute(delete(Fact).where(Fact.snapshot_id.in_(chunk))))
        report.checks_unlinked += _count(s.execute(update(Check).where(Check.snapshot_id.in_(chunk))
                                                   .values(snapshot_id=None)))
        report.events_unlinked += _count(s.execute(update(ChangeEventRow).where(ChangeEventRow.snapshot_id.in_(chunk))
                                                   .values(snapshot_id=None)))
        report.snapshots += _count(s.execute(delete(Snapshot).where(Snapshot.id.in_(chunk))))


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


def prune_snapshots(store: Store, config: Config, *, now: dt.datetime | None = None,
                    give_back: bool = True, dry_run: bool = False) -> PruneReport:
    """Apply retention to every watch in the database; return what was removed.

    `give_back` (SQLite in incremental auto-vacuum mode): return the freed pages to the file system.
    `dry_run`: the same work in transactions that are rolled back, so the report says what would go."""
    started = time.monotonic()
    now = now or utcnow()
    report = PruneReport(database={"backend": store.dialect, "before": database_size(store)})
    with store.session() as s:
        # Only watches that have snapshots past some limit are read in full.
        stats = s.execute(select(Snapshot.watch_id, Watch.name, func.count(), func.min(Snapshot.fetched_at))
                          .join(Watch, Watch.id == Snapshot.watch_id).group_by(Snapshot.watch_id, Watch.name)).all()
    for watch_id, name, count, oldest in stats:
        rule = config.retention_for(name)
        over_count = rule.keep_snapshots and count > rule.keep_snapshots
        over_age = rule.max_age and oldest is not None and _aware(oldest) < now - rule.max_age
        if not (over_count or over_age):
            continue
        with store.sessions() as s, s.begin():
            remove, kept = plan_watch(s, watch_id, rule, now)
            report.kept_needed += kept
            if remove:
                remove_snapshots(s, remove, report)
                report.watches += 1
            if dry_run:
                s.rollback()
    if dry_run:
        report.database.pop("before", None)
        report.seconds = round(time.monotonic() - started, 3)
        return report
    if give_back and report.snapshots and store.dialect == "sqlite" and sqlite_auto_vacuum(store) == 2:
        incremental_vacuum(store)
        report.database["returned"] = True
    report.database["after"] = database_size(store)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# --------------------------------------------------------------------------- database space


def database_size(store: Store) -> dict[str, int]:
    """SQLite: the file's size and the free pages inside it. PostgreSQL: the snapshots and facts tables with
    their indexes and TOAST (what retention shrinks)."""
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            page = conn.exec_driver_sql("PRAGMA page_size").scalar() or 0
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar() or 0
            free = conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0
            return {"bytes": int(page * pages), "free_bytes": int(page * free)}
        if store.dialect == "postgresql":
            size = conn.execute(text("SELECT pg_total_relation_size('snapshots') + pg_total_relation_size('facts')"))
            return {"bytes": int(size.scalar() or 0)}
    return {}


def sqlite_auto_vacuum(store: Store) -> int:
    """0 none, 1 full, 2 incremental."""
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() or 0)


def incremental_vacuum(store: Store) -> None:
    """Return SQLite's free pages to the file system (incremental auto-vacuum mode), then checkpoint the WAL
    so the main file is truncated now rather than at the next automatic checkpoint."""
    with store.engine.connect() as conn:
        raw = conn.connection.driver_connection
        # Each step of the pragma frees one page, and Python's execute() steps once: executescript() runs it
        # to the end.
        raw.executescript("PRAGMA incremental_vacuum;")
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def vacuum(store: Store) -> None:
    """SQLite: VACUUM, switching the file to incremental auto-vacuum (later prunes then give space back
    without a full VACUUM). PostgreSQL: VACUUM ANALYZE of the pruned tables (space reusable, files keep
    their size; VACUUM FULL would lock the tables, left to the operator)."""
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA auto_vacuum=INCREMENTAL")
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()
        elif store.dialect == "postgresql":
            for table in ("snapshots", "facts", "checks", "change_events"):
                conn.exec_driver_sql(f"VACUUM ANALYZE {table}")


# --------------------------------------------------------------------------- the daemon's daily run


async def retention_loop(store: Store, current: Callable[[], Config], stop: asyncio.Event, *,
                         first_delay: float = 300.0, every: float = 86400.0) -> None:
    """Apply retention `first_delay` seconds after start (not while the first cycle is busy), then every
    `every` seconds until `stop` is set. `current()` is the config in force (reloads change it)."""
    delay = first_delay
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
            return
        except TimeoutError:
            pass
        delay = every
        try:
            report = await asyncio.to_thread(prune_snapshots, store, current())
        except Exception as e:  # retention must never stop the daemon; it tries again tomorrow
            log.warning("retention failed (%s: %s); trying again in %s", e.__class__.__name__, e,
                        format_duration(every))
            continue
        log.info("retention: %s", report.summary(), extra={"retention": report.to_json()})
