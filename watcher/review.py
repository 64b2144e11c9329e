"""The review stage: read-only queries over the history, as plain records for the CLI and the web page.

Nothing here writes. Every function takes an open session and returns JSON-ready dicts or dataclasses,
so `--json`, the terminal tables and the HTML templates show the same data.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from watcher.codec import decode_document
from watcher.config import format_duration
from watcher.describe import summarise
from watcher.diff import text_diff
from watcher.errors import WatcherError
from watcher.records import ChangeEvent
from watcher.store.bookkeeping import open_run
from watcher.store.models import AlertEvent, AlertRow, ChangeEventRow, Check, Snapshot, Subscriber, Watch, utcnow
from watcher.text import display_url
from watcher.topic import topic_key_of, topic_labels


class NotFound(WatcherError):
    exit_code = 2


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value else None


# --------------------------------------------------------------------------- watches


def watch_row(w: Watch) -> dict[str, Any]:
    return {"name": w.name, "kind": w.kind, "url": display_url(w.url), "enabled": w.enabled,
            "topic": f"{w.topic_work}" + (f" S{w.topic_season}" if w.topic_season is not None else "")
            if w.topic_work else None,
            # The stored config holds intervals in ISO 8601 ("PT20S"): shown as the config writes them ("20s").
            "schedule": w.config.get("cron") or format_duration(w.config.get("interval")) or None,
            "last_check": _iso(w.last_check_at), "status": w.last_status, "failures": w.consecutive_failures,
            "last_error": w.last_error, "backoff_until": _iso(w.backoff_until)}


def list_watches(s: Session) -> list[dict[str, Any]]:
    return [watch_row(w) for w in s.scalars(select(Watch).order_by(Watch.name))]


def get_watch(s: Session, name: str) -> Watch:
    w = s.scalars(select(Watch).where(Watch.name == name)).first()
    if w is None:
        known = ", ".join(s.scalars(select(Watch.name).order_by(Watch.name))) or "none yet"
        raise NotFound(f"no watch named {name!r} in the database (known: {known})")
    return w


def watch_history(s: Session, name: str, *, limit: int = 50) -> dict[str, Any]:
    """A watch, its latest checks (with failures and their reasons) and its snapshots, newest first."""
    w = get_watch(s, name)
    run = open_run(w)  # the newest: the quiet checks since the newest row
    checks = ([run] if run else []) + list(s.scalars(
        select(Check).where(Check.watch_id == w.id).order_by(Check.at.desc(), Check.id.desc())
        .limit(max(0, limit - (run is not None)))))
    snaps = list(s.scalars(select(Snapshot).where(Snapshot.watch_id == w.id)
                           .order_by(Snapshot.fetched_at.desc(), Snapshot.id.desc()).limit(limit)))
    labels = topic_labels(s, {x.topic_key for x in snaps})
    # Checks, not rows: a run of quiet checks counts as the checks it stands for.
    counts = {k: int(v) for k, v in s.execute(select(Check.outcome, func.sum(Check.repeats))
                                              .where(Check.watch_id == w.id).group_by(Check.outcome))}
    if run:
        counts[run.outcome] = counts.get(run.outcome, 0) + run.repeats
    return {**watch_row(w), "counts": counts,
            "checks": [{"id": c.id, "at": _iso(c.at), "outcome": c.outcome, "http_status": c.http_status,
                        "duration_ms": c.duration_ms, "reason": c.reason, "error": c.error,
                        "snapshot_id": c.snapshot_id, "repeats": c.repeats, "last_at": _iso(c.latest_at),
                        "label": run_label(c.outcome, c.repeats, c.at, c.latest_at)} for c in checks],
            "snapshots": [{"id": x.id, "fetched_at": _iso(x.fetched_at), "url": display_url(x.url), "title": x.title,
                           "entry": x.entry_key, "topic": x.topic_key,
                           "topic_label": labels.get(x.topic_key or "") or x.topic_key, "published": _iso(x.published),
                           "content_hash": x.content_hash[:12]} for x in snaps]}


def run_label(outcome: str, repeats: int, at: dt.datetime, last_at: dt.datetime) -> str:
    """How a check row reads in history: "changed", or for a run of quiet checks "unchanged ×12 (last 14:05)"
    (the date too when the run reaches into another day)."""
    if repeats <= 1:
        return outcome
    last = last_at.strftime("%H:%M" if last_at.date() == at.date() else "%Y-%m-%d %H:%M")
    return f"{outcome} ×{repeats} (last {last})"


# --------------------------------------------------------------------------- snapshots


@dataclass
class SnapshotDetail:
    id: int
    watch: str
    url: str
    title: str | None
    fetched_at: dt.datetime
    published: dt.date | None
    topic: str | None
    text: str
    facts: dict[str, Any]
    previous_id: int | None = None
    next_id: int | None = None
    diff: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    topic_label: str | None = None  # "All of Us Are Dead S2": what pages show (the key is for links)

    def to_json(self, *, with_text: bool = True) -> dict[str, Any]:
        data = {"id": self.id, "watch": self.watch, "url": self.url, "title": self.title,
                "fetched_at": _iso(self.fetched_at), "published": _iso(self.published), "topic": self.topic,
                "topic_label": self.topic_label, "facts": self.facts, "previous_id": self.previous_id,
                "next_id": self.next_id, "diff": self.diff, "events": self.events}
        return {**data, "text": self.text} if with_text else data


def valid_id(s: Session, model: Any, value: int) -> bool:
    """Whether `value` can be an id of `model` at all. Ids from URLs and command lines are checked before any
    query: SQLite cannot bind an integer past 64 bits, and PostgreSQL refuses one past its column's type (32
    bits for INTEGER ids) with an error instead of "no such row"."""
    from sqlalchemy import BigInteger

    column = model.__table__.c.id
    wide = isinstance(column.type, BigInteger) or s.get_bind().dialect.name == "sqlite"
    return 0 < value < (2**63 if wide else 2**31)


def snapshot_detail(s: Session, snapshot_id: int) -> SnapshotDetail:
    snap = s.get(Snapshot, snapshot_id) if valid_id(s, Snapshot, snapshot_id) else None
    if snap is None:
        raise NotFound(f"no snapshot {snapshot_id}")
    watch = s.get(Watch, snap.watch_id)
    same = (Snapshot.watch_id == snap.watch_id, Snapshot.entry_key == snap.entry_key)
    prev = s.scalars(select(Snapshot).where(*same, Snapshot.id < snap.id).order_by(Snapshot.id.desc()).limit(1)).first()
    nxt = s.scalar(select(func.min(Snapshot.id)).where(*same, Snapshot.id > snap.id))
    doc = decode_document(snap.content_z)
    diff = None
    if prev is not None:
        diff = text_diff(decode_document(prev.content_z).text, doc.text, old_label=f"snapshot {prev.id}",
                         new_label=f"snapshot {snap.id}") or ""
    rows = list(s.scalars(select(ChangeEventRow).where(ChangeEventRow.snapshot_id == snap.id)
                          .order_by(ChangeEventRow.id)))
    labels = topic_labels(s, {snap.topic_key, *(e.topic_key for e in rows)})
    events = [event_row(e, watch.name if watch else None, labels) for e in rows]
    return SnapshotDetail(snap.id, watch.name if watch else "?", display_url(snap.url), snap.title, snap.fetched_at,
                          snap.published, snap.topic_key, doc.text, (snap.facts or {}).get("facts", snap.facts or {}),
                          prev.id if prev else None, nxt, diff, events,
                          topic_label=labels.get(snap.topic_key or "") or snap.topic_key)


# --------------------------------------------------------------------------- events and alerts


def readable_summary(e: ChangeEventRow) -> str:
    """The event's summary in today's wording (events stored by older versions read the same way)."""
    return summarise(ChangeEvent(type=e.type, subject=e.subject, old=e.old, new=e.new, summary=e.summary,
                                 source_url=e.source_url))


def event_row(e: ChangeEventRow, watch: str | None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"id": e.id, "event_id": e.uid, "type": e.type, "subject": e.subject, "topic": e.topic_key,
            "topic_label": (labels or {}).get(e.topic_key or "") or e.topic_key,
            "watch": watch, "state": e.state, "detected_at": _iso(e.detected_at), "summary": readable_summary(e),
            "old": e.old, "new": e.new, "evidence": e.evidence, "confidence": e.confidence,
            "source_url": display_url(e.source_url) or None, "snapshot_id": e.snapshot_id}


def list_events(s: Session, *, topic: str | None = None, watch: str | None = None,
                since: dt.datetime | None = None, types: tuple[str, ...] = (), include_pending: bool = False,
                limit: int = 100) -> list[dict[str, Any]]:
    """Stored change events, newest first."""
    q = (select(ChangeEventRow, Watch.name).outerjoin(Watch, ChangeEventRow.watch_id == Watch.id)
         .order_by(ChangeEventRow.detected_at.desc(), ChangeEventRow.id.desc()).limit(limit))
    if topic:
        q = q.where(ChangeEventRow.topic_key == topic_key_of(topic))
    if watch:
        q = q.where(Watch.name == watch)
    if since:
        q = q.where(ChangeEventRow.detected_at >= (since if since.tzinfo else since.replace(tzinfo=dt.UTC)))
    if types:
        q = q.where(ChangeEventRow.type.in_(types))
    if not include_pending:
        q = q.where(ChangeEventRow.state == "confirmed")
    rows = s.execute(q).all()
    labels = topic_labels(s, {e.topic_key for e, _ in rows})
    return [event_row(e, name, labels) for e, name in rows]


def list_alerts(s: Session, *, status: str | None = None, subscriber: str | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
    """Outbox rows, newest first. 'sending' is a pending alert that a sender holds right now."""
    now = utcnow()
    q = (select(AlertRow, ChangeEventRow, Subscriber.name).join(ChangeEventRow, AlertRow.event_id == ChangeEventRow.id)
         .join(Subscriber, AlertRow.subscriber_id == Subscriber.id)
         .order_by(AlertRow.created_at.desc(), AlertRow.id.desc()).limit(limit))
    if status in ("pending", "sending"):
        q = q.where(AlertRow.status == "pending")
    elif status:
        q = q.where(AlertRow.status == status)
    if subscriber:
        q = q.where(Subscriber.name == subscriber)
    rows = s.execute(q).all()
    counts = dict(s.execute(select(AlertEvent.alert_id, func.count()).where(
        AlertEvent.alert_id.in_([a.id for a, _, _ in rows])).group_by(AlertEvent.alert_id)).all())
    labels = topic_labels(s, {e.topic_key for _, e, _ in rows})
    out = []
    for a, e, name in rows:
        shown = "sending" if a.status == "pending" and a.claimed_until and a.claimed_until > now else a.status
        if status and shown != status:
            continue
        out.append({"id": a.id, "alert_id": a.uid, "status": shown, "subscriber": name, "digest": a.digest,
                    "attempts": a.attempts, "next_attempt_at": _iso(a.next_attempt_at) if a.status == "pending"
                    else None, "sent_at": _iso(a.sent_at), "last_error": a.last_error,
                    "created_at": _iso(a.created_at),
                    "events": counts.get(a.id, 1),
                    "event": {"id": e.id, "type": e.type, "topic": e.topic_key,
                              "topic_label": labels.get(e.topic_key or "") or e.topic_key,
                              "summary": readable_summary(e)}})
    return out


# --------------------------------------------------------------------------- `watcher status`


def _first_check_since(s: Session, since: dt.datetime) -> int | None:
    """The id of the first check row started at or after `since` (one past the last row when none is), found
    by bisecting ids on the primary key (checks have no index on `at`, and one on the hottest insert path is
    not worth it for a status page); None when there are no checks."""
    lo, hi = s.execute(select(func.min(Check.id), func.max(Check.id))).one()
    if hi is None:
        return None
    if s.scalar(select(Check.at).where(Check.id == hi)) < since:
        return hi + 1
    while lo < hi:
        mid = (lo + hi) // 2
        at = s.scalar(select(Check.at).where(Check.id >= mid).order_by(Check.id).limit(1))
        if at is not None and at >= since:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _runs_into(s: Session, first: int, since: dt.datetime) -> list[tuple[str, int]]:
    """(outcome, checks) of the runs started before `since` (rows before id `first`) that go on past it: the
    checks of each counted as if evenly spread from its first to its latest. Only a watch's newest row before
    `first` can be such a run (an older one ended where the next row of its watch began), so this reads one
    row per watch, each by a step on the (watch_id, id) index."""
    older = aliased(Check)
    newest = select(func.max(older.id)).where(older.watch_id == Watch.id, older.id < first) \
        .correlate(Watch).scalar_subquery()
    # The ids first, then their rows by primary key (in one statement PostgreSQL hashes the whole table).
    ids = [i for i in s.scalars(select(newest).select_from(Watch)) if i is not None]
    out = []
    for k in range(0, len(ids), 500):
        for outcome, at, last_at, repeats in s.execute(
                select(Check.outcome, Check.at, Check.last_at, Check.repeats)
                .where(Check.id.in_(ids[k:k + 500]), Check.repeats > 1, Check.last_at >= since)):
            out.append((outcome, _checks_since(at, last_at, repeats, since)))
    return out


def _open_runs_since(s: Session, since: dt.datetime) -> list[tuple[str, int]]:
    """(outcome, checks) of the watches' open runs (not in `checks` yet) made since `since`, counted like
    `_runs_into`'s."""
    out = []
    for outcome, at, last_at, repeats in s.execute(
            select(Watch.run_outcome, Watch.run_at, Watch.run_last_at, Watch.run_repeats)
            .where(Watch.run_repeats > 0, Watch.run_last_at >= since)):
        out.append((outcome, _checks_since(at, last_at, repeats, since)))
    return out


def _checks_since(at: dt.datetime, last_at: dt.datetime, repeats: int, since: dt.datetime) -> int:
    """How many of a run's checks (from `at` to `last_at`, latest at or after `since`) were made since `since`,
    as if evenly spread."""
    if at >= since or repeats <= 1:
        return repeats
    step = (last_at - at) / (repeats - 1)
    before = math.ceil((since - at) / step) if step else repeats - 1  # checks of the run before `since`
    return min(repeats, max(1, repeats - before))


def status_checks(config: Any, store: Any) -> dict[str, Any]:
    """The checks section of `watcher status`: the last check, and what the checks found in the last hour and
    the last day, by outcome, and the watches whose last check failed. Ids are only about time-ordered
    (batched writes), so the windows are approximate by the length of one batch (a second)."""
    now = utcnow()
    with store.session() as s:
        # The newest row may be an older run's: the latest check is that of the watch checked last.
        last = s.execute(select(Watch.last_check_at, Watch.last_status, Watch.name)
                         .where(Watch.last_check_at.is_not(None))
                         .order_by(Watch.last_check_at.desc(), Watch.id.desc()).limit(1)).first()
        windows: dict[str, dict[str, int]] = {}
        for label, span in (("last_hour", dt.timedelta(hours=1)), ("last_day", dt.timedelta(days=1))):
            since = now - span
            first = _first_check_since(s, since)
            counts: dict[str, int] = {}
            if first is not None:
                for outcome, n in s.execute(select(Check.outcome, func.sum(Check.repeats))
                                            .where(Check.id >= first).group_by(Check.outcome)):
                    counts[outcome] = int(n)
                for outcome, n in _runs_into(s, first, since):
                    counts[outcome] = counts.get(outcome, 0) + n
            for outcome, n in _open_runs_since(s, since):
                counts[outcome] = counts.get(outcome, 0) + n
            windows[label] = counts
        by_last = dict(s.execute(select(Watch.last_status, func.count()).where(Watch.enabled.is_(True))
                                 .group_by(Watch.last_status)).all())
        failing = list(s.scalars(select(Watch.name).where(Watch.enabled.is_(True), Watch.last_status == "failed")
                                 .order_by(Watch.name).limit(20)))
    return {"last_check": {"at": _iso(last.last_check_at), "age_s": round((now - last.last_check_at).total_seconds()),
                           "watch": last.name, "outcome": last.last_status} if last else None,
            **windows, "watches_by_last_outcome": {(k or "never checked"): v for k, v in by_last.items()},
            "failing": failing}
