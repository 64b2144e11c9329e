"""What a re-check needs to know about each watch, and the batched writes of checks that found no change.

Almost every check of a long-running daemon finds its page unchanged. Deciding that needs only the
watch's validators (ETag, Last-Modified), the hash of the body fetched last time and the content hash of
the latest snapshot of each entry: `load_states` reads them for every watch once, and the pipeline keeps
them in memory. Recording it needs a few columns of the watch row and a check: `write_unchanged` writes
those for a whole batch of checks in one transaction.

Runs of quiet checks: when a watch's newest check row is an unchanged (or not_modified) one with the same
outcome and HTTP status, the check extends that row (`repeats` + 1, `last_at`, the latest duration and due
time) instead of adding one; anything else starts a new row (`record_quiet`). A batch costs two reads for the
newest row of each of its watches (`newest_checks`: one step on the `(watch_id, id)` index per watch), one
bulk UPDATE of the rows it extends and one bulk INSERT of the runs it starts. Every writer of check rows
holds the watch row's lock (the UPDATE of `watches` comes first), so the newest row read is still the newest
when it is extended.

Staleness: another process (a second worker, a `watcher check` run by hand) may store a snapshot of a
watch after this process loaded its state. Every write that changes what a re-check compares against
bumps `watches.state_rev`; `write_unchanged` applies a check only where the row still has the revision
the check was decided against and returns the others, which the caller checks again from fresh state.
So a stale cache can cost a second fetch, never a change recorded as "unchanged".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, union, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import BindParameter

from watcher.store.models import ChangeEventRow, Check, Snapshot, Watch

# The state of an event held back by flap damping (watcher/changes.py).
FLAPPING = "flapping"

# Entry hashes are kept in memory only for watches with at most this many entries (a page, a post, a
# short feed); a long feed's would cost kilobytes per watch, so its hashes are read when its body changed.
MAX_CACHED_ENTRIES = 8


@dataclass(slots=True)
class WatchState:
    """A watch as the last check left it: what the next check sends and compares against."""

    watch_id: int
    rev: int
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    # entry_key -> content hash of its latest snapshot; None when not cached (more than MAX_CACHED_ENTRIES).
    hashes: dict[str, str] | None = field(default_factory=dict)
    backoff_until: dt.datetime | None = None
    consecutive_failures: int = 0
    failure_reported: bool = False
    # Events of the latest snapshots wait for confirmation (`confirm` > 1, or held as flapping): re-checks
    # must count sightings.
    pending: bool = False
    # Scale-out: the latest due time stored for the watch (see Pipeline.check).
    due_done: int | None = None

    @property
    def has_snapshot(self) -> bool:
        return self.hashes is None or bool(self.hashes)

    @property
    def batchable(self) -> bool:
        """Whether an unchanged re-check of this watch is pure bookkeeping (no event can come of it)."""
        return not self.failure_reported and not self.pending


@dataclass(frozen=True, slots=True)
class UnchangedCheck:
    """One check that found its watch unchanged, waiting in a batch."""

    watch_id: int
    rev: int  # the state revision the check was decided against
    at: dt.datetime
    outcome: str  # unchanged | not_modified
    http_status: int | None
    duration_ms: int | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    due: int | None = None  # the due time the check served (scale-out workers)


def load_states(s: Session, names: Iterable[str] | None = None) -> dict[str, WatchState]:
    """The re-check state of the named watches (all watches when None), by name, in three queries."""
    wanted = None if names is None else set(names)
    # A long list of names reads everything and filters here: IN lists have backend limits.
    ids = None if wanted is None or len(wanted) > 1000 else wanted
    q = select(Watch.id, Watch.name, Watch.state_rev, Watch.etag, Watch.last_modified, Watch.body_hash,
               Watch.backoff_until, Watch.consecutive_failures, Watch.failure_reported, Watch.due_done)
    if ids is not None:
        q = q.where(Watch.name.in_(ids))
    by_id = {row.id: (row.name, WatchState(row.id, row.state_rev, row.etag, row.last_modified, row.body_hash, {},
                                           row.backoff_until, row.consecutive_failures, bool(row.failure_reported),
                                           due_done=row.due_done))
             for row in s.execute(q) if wanted is None or row.name in wanted}
    latest = select(Snapshot.watch_id, Snapshot.entry_key, func.max(Snapshot.id).label("id")) \
        .group_by(Snapshot.watch_id, Snapshot.entry_key)
    if ids is not None:
        latest = latest.where(Snapshot.watch_id.in_(list(by_id)))
    sub = latest.subquery()
    for watch_id, key, content_hash in s.execute(
            select(Snapshot.watch_id, Snapshot.entry_key, Snapshot.content_hash).join(sub, Snapshot.id == sub.c.id)):
        found = by_id.get(watch_id)
        if found is None or found[1].hashes is None:
            continue
        state = found[1]
        if len(state.hashes) >= MAX_CACHED_ENTRIES:
            state.hashes = None
        else:
            state.hashes[key] = content_hash
    for watch_id in s.scalars(held_watches(None if ids is None else list(by_id))):
        if watch_id in by_id:
            by_id[watch_id][1].pending = True
    return dict(by_id.values())


def held_watches(watch_ids: list[int] | BindParameter[Any] | None = None) -> Any:
    """A query of the ids of watches with held events (pending ones, and flapping ones of an
    entry's latest snapshot: see watcher/changes.py); all watches when None (an expanding bind parameter:
    a statement composed once, given the ids when run)."""
    newer = aliased(Snapshot)
    pending = select(ChangeEventRow.watch_id).where(ChangeEventRow.state == "pending")
    flapping = select(ChangeEventRow.watch_id).join(Snapshot, Snapshot.id == ChangeEventRow.snapshot_id).where(
        ChangeEventRow.state == FLAPPING,
        ~exists().where(and_(newer.watch_id == Snapshot.watch_id, newer.entry_key == Snapshot.entry_key,
                             newer.id > Snapshot.id)))
    if watch_ids is not None:
        pending = pending.where(ChangeEventRow.watch_id.in_(watch_ids))
        flapping = flapping.where(ChangeEventRow.watch_id.in_(watch_ids))
    return select(union(pending, flapping).subquery().c[0])


def latest_hashes(s: Session, watch_id: int) -> dict[str, str]:
    """entry_key -> content hash of the latest snapshot of each entry of one watch."""
    sub = select(Snapshot.entry_key, func.max(Snapshot.id).label("id")).where(Snapshot.watch_id == watch_id) \
        .group_by(Snapshot.entry_key).subquery()
    return {k: h for k, h in s.execute(select(Snapshot.entry_key, Snapshot.content_hash)
                                       .join(sub, Snapshot.id == sub.c.id))}


_watches = Watch.__table__
_SET = {"last_check_at": bindparam("w_at"), "last_status": bindparam("w_outcome"), "last_error": None,
        "etag": bindparam("w_etag"), "last_modified": bindparam("w_last_modified"),
        "body_hash": bindparam("w_body_hash"), "consecutive_failures": 0, "backoff_until": None}
_UPDATE = update(_watches).where(_watches.c.id == bindparam("w_id"), _watches.c.state_rev == bindparam("w_rev")) \
    .values(**_SET)
# A check that serves a due time (scale-out workers) also claims it: only if no later one is stored.
_UPDATE_DUE = update(_watches).where(
    _watches.c.id == bindparam("w_id"), _watches.c.state_rev == bindparam("w_rev"),
    or_(_watches.c.due_done.is_(None), _watches.c.due_done < bindparam("w_due"))) \
    .values(**_SET, due_done=bindparam("w_due"))


def _params(c: UnchangedCheck) -> dict[str, object]:
    return {"w_id": c.watch_id, "w_rev": c.rev, "w_at": c.at, "w_outcome": c.outcome, "w_etag": c.etag,
            "w_last_modified": c.last_modified, "w_body_hash": c.body_hash, "w_due": c.due}


def write_unchanged(s: Session, checks: list[UnchangedCheck]) -> tuple[list[UnchangedCheck], list[UnchangedCheck]]:
    """Record a batch of unchanged checks in the session's transaction. Returns (stale, done): the checks
    whose watch's `state_rev` moved since they read it, and those whose due time another check stored
    first. Neither writes anything: no watch columns, no check row.

    The UPDATEs come first so the transaction holds the write lock (SQLite) or the row locks (PostgreSQL)
    before it reads revisions back. Checks without a due time (one process checks its watches) go in one
    bulk UPDATE; those with one (scale-out workers) one by one, since each must know whether its claim held.
    """
    if not checks:
        return [], []
    # Per watch in time order, so the newest check's values are the ones left on the row; sorted by id so
    # two processes writing batches take their row locks in the same order.
    ordered = sorted(checks, key=lambda c: (c.watch_id, c.at))
    plain = [c for c in ordered if c.due is None]
    conn = s.connection()
    if plain:
        conn.execute(_UPDATE, [_params(c) for c in plain])
    claimed = {id(c) for c in ordered if c.due is not None and conn.execute(_UPDATE_DUE, _params(c)).rowcount}
    ids = sorted({c.watch_id for c in ordered})
    current: dict[int, int] = {}
    for i in range(0, len(ids), 500):
        for watch_id, rev in s.execute(select(Watch.id, Watch.state_rev).where(Watch.id.in_(ids[i:i + 500]))):
            current[watch_id] = rev
    stale = [c for c in ordered if current.get(c.watch_id) != c.rev]
    done = [c for c in ordered if c.due is not None and current.get(c.watch_id) == c.rev and id(c) not in claimed]
    left = {id(c) for c in stale + done}
    fresh = [c for c in ordered if id(c) not in left]
    record_quiet(s, fresh)
    return stale, done


# Outcomes of a check that found nothing new: consecutive ones of a watch share a row.
QUIET = ("unchanged", "not_modified")

_checks = Check.__table__
_EXTEND = update(_checks).where(_checks.c.id == bindparam("c_id")).values(
    repeats=_checks.c.repeats + bindparam("c_n"), last_at=bindparam("c_last"), duration_ms=bindparam("c_ms"),
    due=bindparam("c_due"))


@dataclass(frozen=True, slots=True)
class NewestCheck:
    id: int
    outcome: str
    http_status: int | None


def newest_checks(s: Session, watch_ids: list[int]) -> dict[int, NewestCheck]:
    """The newest check row of each of these watches, by watch id. Two statements per 500 watches: their
    newest ids (one backward step on the (watch_id, id) index per watch, on both backends; a GROUP BY would
    read every row of the watches), then those rows by primary key (in one statement, PostgreSQL's planner
    hashes the whole checks table instead)."""
    newer = aliased(Check)
    out: dict[int, NewestCheck] = {}
    for i in range(0, len(watch_ids), 500):
        chunk = watch_ids[i:i + 500]
        newest = select(func.max(newer.id)).where(newer.watch_id == _watches.c.id).correlate(_watches) \
            .scalar_subquery()
        ids = [n for n in s.scalars(select(newest).select_from(_watches).where(_watches.c.id.in_(chunk)))
               if n is not None]
        if ids:
            for row in s.execute(select(Check.id, Check.watch_id, Check.outcome, Check.http_status)
                                 .where(Check.id.in_(ids))):
                out[row.watch_id] = NewestCheck(row.id, row.outcome, row.http_status)
    return out


def record_quiet(s: Session, checks: list[UnchangedCheck]) -> None:
    """Store checks that found nothing new (`QUIET` outcomes), in the session's transaction, whose caller holds
    the lock of each check's watch row: each extends its watch's newest row when that row is a run of the same
    outcome and HTTP status, else starts a run. Checks of one watch must come in time order."""
    if not checks:
        return
    by_watch: dict[int, list[list[Any]]] = {}  # watch id -> runs as [first check, last check, count]
    for c in checks:
        runs = by_watch.setdefault(c.watch_id, [])
        if runs and _same_run(runs[-1][1].outcome, runs[-1][1].http_status, c):
            runs[-1][1] = c
            runs[-1][2] += 1
        else:
            runs.append([c, c, 1])
    newest = newest_checks(s, sorted(by_watch))
    extend: list[dict[str, Any]] = []
    start: list[dict[str, Any]] = []
    for watch_id, runs in by_watch.items():
        head = newest.get(watch_id)
        if head is not None and _same_run(head.outcome, head.http_status, runs[0][0]):
            _, last, n = runs.pop(0)
            extend.append({"c_id": head.id, "c_n": n, "c_last": last.at, "c_ms": last.duration_ms,
                           "c_due": last.due})
        start += [{"watch_id": watch_id, "at": first.at, "outcome": first.outcome, "http_status": first.http_status,
                   "duration_ms": last.duration_ms, "due": last.due, "repeats": n,
                   "last_at": last.at if n > 1 else None} for first, last, n in runs]
    conn = s.connection()
    if extend:
        conn.execute(_EXTEND, extend)
    if start:
        conn.execute(insert(_checks), start)


def _same_run(outcome: str, http_status: int | None, c: UnchangedCheck) -> bool:
    return outcome in QUIET and outcome == c.outcome and http_status == c.http_status


def bump_rev(watch: Watch) -> None:
    """Mark a write that changes what re-checks compare against (see the module docstring)."""
    watch.state_rev = (watch.state_rev or 0) + 1
