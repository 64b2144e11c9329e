"""What a re-check needs to know about each watch, and the batched writes of checks that found no change.

Almost every check of a long-running daemon finds its page unchanged. Deciding that needs only the
watch's validators (ETag, Last-Modified), the hash of the body fetched last time and the content hash of
the latest snapshot of each entry: `load_states` reads them for every watch once, and the pipeline keeps
them in memory. Recording it needs only a few columns of the watch row, its open run of quiet checks
included: `write_unchanged` writes those for a whole batch of checks in one transaction.

Runs of quiet checks: consecutive unchanged (or not_modified) checks of a watch with the same outcome and HTTP
status share one history row. The run still going on is the watch's open run (`Watch.run_*`), extended in the
UPDATE of the watch row that every check makes anyway, so a quiet re-check writes no `checks` row (on PostgreSQL,
a heap-only UPDATE: no new tuple elsewhere, no index entry). A check of another kind first writes the open run
to `checks` (`close_run`), so history rows stay in time order. Readers see both (`check_runs`, `open_run`).
Every writer holds the watch row's lock (the UPDATE of `watches` comes first).

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

from sqlalchemy import BigInteger, Integer, and_, bindparam, case, exists, func, insert, or_, select, union, update
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
_w = _watches.c
_AT = bindparam("w_at", type_=Watch.__table__.c.last_check_at.type)
_OUTCOME = bindparam("w_outcome", type_=_w.last_status.type)
_STATUS = bindparam("w_status", type_=Integer())
_MS = bindparam("w_ms", type_=Integer())
_DUE = bindparam("w_due", type_=BigInteger())
# The open run in the same UPDATE (see `write_unchanged`): a check starts it when there is none, extends it when
# it has the same outcome and HTTP status, and leaves it alone otherwise (`w_run` 0: the batch holds several runs
# of the watch, which are worked out after).
_START = and_(bindparam("w_run", type_=Integer()) == 1, _w.run_outcome.is_(None))
_EXTENDS = and_(bindparam("w_run", type_=Integer()) == 1, _w.run_outcome == _OUTCOME,
                _w.run_http_status.is_not_distinct_from(_STATUS))
_TAKES = or_(_START, _EXTENDS)
_SET = {"last_check_at": _AT, "last_status": _OUTCOME, "last_error": None,
        "etag": bindparam("w_etag"), "last_modified": bindparam("w_last_modified"),
        "body_hash": bindparam("w_body_hash"), "consecutive_failures": 0, "backoff_until": None,
        "run_outcome": case((_START, _OUTCOME), else_=_w.run_outcome),
        "run_http_status": case((_START, _STATUS), else_=_w.run_http_status),
        "run_at": case((_START, _AT), else_=_w.run_at),
        "run_repeats": case((_START, 1), (_EXTENDS, _w.run_repeats + 1), else_=_w.run_repeats),
        "run_last_at": case((_TAKES, _AT), else_=_w.run_last_at),
        "run_duration_ms": case((_TAKES, _MS), else_=_w.run_duration_ms),
        "run_due": case((_TAKES, _DUE), else_=_w.run_due)}
_UPDATE = update(_watches).where(_w.id == bindparam("w_id"), _w.state_rev == bindparam("w_rev")).values(**_SET)
# A check that serves a due time (scale-out workers) also claims it: only if no later one is stored.
_UPDATE_DUE = update(_watches).where(
    _w.id == bindparam("w_id"), _w.state_rev == bindparam("w_rev"),
    or_(_w.due_done.is_(None), _w.due_done < _DUE)).values(**_SET, due_done=_DUE)
_RUN_COLUMNS = ("run_outcome", "run_http_status", "run_at", "run_last_at", "run_repeats", "run_duration_ms", "run_due")
_SET_RUN = update(_watches).where(_w.id == bindparam("w_id")).values(
    **{c: bindparam(f"r_{c}", type_=_w[c].type) for c in _RUN_COLUMNS})


def _params(c: UnchangedCheck, in_sql: bool) -> dict[str, object]:
    return {"w_id": c.watch_id, "w_rev": c.rev, "w_at": c.at, "w_outcome": c.outcome, "w_etag": c.etag,
            "w_last_modified": c.last_modified, "w_body_hash": c.body_hash, "w_due": c.due,
            "w_status": c.http_status, "w_ms": c.duration_ms, "w_run": int(in_sql)}


def write_unchanged(s: Session, checks: list[UnchangedCheck]) -> tuple[list[UnchangedCheck], list[UnchangedCheck]]:
    """Record a batch of unchanged checks in the session's transaction. Returns (stale, done): the checks
    whose watch's `state_rev` moved since they read it, and those whose due time another check stored
    first. Neither writes anything: no watch columns, no check row.

    The UPDATEs come first so the transaction holds the write lock (SQLite) or the row locks (PostgreSQL)
    before it reads revisions back. Checks without a due time (one process checks its watches) go in one
    bulk UPDATE; those with one (scale-out workers) one by one, since each must know whether its claim held.
    The same UPDATE extends (or starts) the watch's open run: a quiet re-check is that one UPDATE. What it
    cannot do in SQL (a run of another outcome to close first, several runs of one watch in the batch) is
    done after reading the rows back: the closed runs go to `checks`, the open one to the watch row.
    """
    if not checks:
        return [], []
    # Per watch in time order, so the newest check's values are the ones left on the row; sorted by id so
    # two processes writing batches take their row locks in the same order.
    ordered = sorted(checks, key=lambda c: (c.watch_id, c.at))
    runs = _runs(ordered)
    in_sql = {watch_id for watch_id, r in runs.items() if len(r) == 1}
    plain = [c for c in ordered if c.due is None]
    conn = s.connection()
    if plain:
        conn.execute(_UPDATE, [_params(c, c.watch_id in in_sql) for c in plain])
    claimed = {id(c) for c in ordered
               if c.due is not None and conn.execute(_UPDATE_DUE, _params(c, c.watch_id in in_sql)).rowcount}
    ids = sorted(runs)
    current: dict[int, Any] = {}
    for i in range(0, len(ids), 500):
        for row in s.execute(select(_w.id, _w.state_rev, *(_w[c] for c in _RUN_COLUMNS))
                             .where(_w.id.in_(ids[i:i + 500]))):
            current[row.id] = row
    stale = [c for c in ordered if c.watch_id not in current or current[c.watch_id].state_rev != c.rev]
    left = {id(c) for c in stale}
    done = [c for c in ordered if c.due is not None and id(c) not in claimed and id(c) not in left]
    left |= {id(c) for c in done}
    fresh = [c for c in ordered if id(c) not in left]
    closed: list[dict[str, Any]] = []
    reopened: list[dict[str, Any]] = []
    for watch_id, watch_runs in _runs(fresh).items():
        row = current[watch_id]
        if watch_id in in_sql and _same_run(row.run_outcome, row.run_http_status, watch_runs[0][0]):
            continue  # the UPDATE extended or started it
        run = _Run.of_row(row)
        for first, last, n in watch_runs:
            if run is not None and run.takes(first):
                run = run.extended(last, n)
            else:
                if run is not None:
                    closed.append(run.check_row(watch_id))
                run = _Run(first.outcome, first.http_status, first.at, last.at, n, last.duration_ms, last.due)
        assert run is not None
        reopened.append({"w_id": watch_id, **{f"r_{k}": v for k, v in run.columns().items()}})
    if closed:
        conn.execute(insert(_checks), closed)
    if reopened:
        conn.execute(_SET_RUN, reopened)
    return stale, done


# Outcomes of a check that found nothing new: consecutive ones of a watch share a row.
QUIET = ("unchanged", "not_modified")

_checks = Check.__table__


@dataclass(frozen=True, slots=True)
class _Run:
    """A run of quiet checks of one watch: what `Watch.run_*` holds."""

    outcome: str
    http_status: int | None
    at: dt.datetime
    last_at: dt.datetime
    repeats: int
    duration_ms: int | None
    due: int | None

    @classmethod
    def of_row(cls, w: Any) -> _Run | None:
        """The open run of a watch row (ORM or Core), None when it has none."""
        if not w.run_repeats or w.run_outcome is None:
            return None
        return cls(w.run_outcome, w.run_http_status, w.run_at, w.run_last_at or w.run_at, w.run_repeats,
                   w.run_duration_ms, w.run_due)

    def takes(self, c: UnchangedCheck) -> bool:
        return _same_run(self.outcome, self.http_status, c)

    def extended(self, last: UnchangedCheck, n: int) -> _Run:
        return _Run(self.outcome, self.http_status, self.at, last.at, self.repeats + n, last.duration_ms, last.due)

    def columns(self) -> dict[str, Any]:
        return {"run_outcome": self.outcome, "run_http_status": self.http_status, "run_at": self.at,
                "run_last_at": self.last_at, "run_repeats": self.repeats, "run_duration_ms": self.duration_ms,
                "run_due": self.due}

    def check_row(self, watch_id: int) -> dict[str, Any]:
        """The run as a row of `checks` (last_at NULL when it stands for one check)."""
        return {"watch_id": watch_id, "at": self.at, "outcome": self.outcome, "http_status": self.http_status,
                "duration_ms": self.duration_ms, "due": self.due, "repeats": self.repeats,
                "last_at": self.last_at if self.repeats > 1 else None}


_NO_RUN: dict[str, Any] = {"run_outcome": None, "run_http_status": None, "run_at": None, "run_last_at": None,
                           "run_repeats": 0, "run_duration_ms": None, "run_due": None}


def _runs(checks: list[UnchangedCheck]) -> dict[int, list[list[Any]]]:
    """Checks (per watch in time order) folded into runs: watch id -> [first check, last check, count]."""
    by_watch: dict[int, list[list[Any]]] = {}
    for c in checks:
        runs = by_watch.setdefault(c.watch_id, [])
        if runs and _same_run(runs[-1][1].outcome, runs[-1][1].http_status, c):
            runs[-1][1] = c
            runs[-1][2] += 1
        else:
            runs.append([c, c, 1])
    return by_watch


def record_quiet(s: Session, w: Watch, check: UnchangedCheck) -> None:
    """One check that found nothing new (a `QUIET` outcome) of a watch whose row this transaction holds: it
    extends the watch's open run, or closes that run (to `checks`) and starts one."""
    run = _Run.of_row(w)
    if run is not None and run.takes(check):
        run = run.extended(check, 1)
    else:
        close_run(s, w)
        run = _Run(check.outcome, check.http_status, check.at, check.at, 1, check.duration_ms, check.due)
    for k, v in run.columns().items():
        setattr(w, k, v)


def close_run(s: Session, w: Watch) -> None:
    """Before any other check row of a watch whose row this transaction holds: its open run goes to `checks`
    (so rows stay in time order)."""
    run = _Run.of_row(w)
    if run is None:
        return
    s.execute(insert(_checks), [run.check_row(w.id)])
    for k, v in _NO_RUN.items():
        setattr(w, k, v)


def open_run(w: Watch) -> Check | None:
    """A watch's open run as a check row that is not stored (id None), or None when it has none."""
    run = _Run.of_row(w)
    if run is None:
        return None
    return Check(**run.check_row(w.id))


def check_runs(s: Session, watch_id: int | None = None) -> list[Check]:
    """Every check row (of one watch, or of all) with the open runs, per watch in time order: history as
    readers see it."""
    q = select(Check).order_by(Check.watch_id, Check.id)
    wq = select(Watch).where(Watch.run_repeats > 0)
    if watch_id is not None:
        q, wq = q.where(Check.watch_id == watch_id), wq.where(Watch.id == watch_id)
    rows = list(s.scalars(q))
    runs = [r for r in (open_run(w) for w in s.scalars(wq)) if r is not None]
    return sorted(rows + runs, key=lambda c: (c.watch_id, c.id is None, c.id or 0))


def _same_run(outcome: str | None, http_status: int | None, c: UnchangedCheck) -> bool:
    return outcome in QUIET and outcome == c.outcome and http_status == c.http_status


def bump_rev(watch: Watch) -> None:
    """Mark a write that changes what re-checks compare against (see the module docstring)."""
    watch.state_rev = (watch.state_rev or 0) + 1
