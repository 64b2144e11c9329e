"""Change events in the store: what the pipeline calls after it stores (or re-sees) a snapshot.

- `record_snapshot`: facts of a new snapshot vs the previous snapshot of the same watch entry ->
  events; a feed or listing entry never seen before (after the watch's first fetch) -> `article_added`;
  the snapshot's facts go to the `facts` table for the topic view; the topic's consensus is re-computed
  and `topic_consensus_changed` raised when every current source comes to agree on a new value.
- `record_unchanged`: an unchanged fetch confirms the events a `confirm: 2` watch left pending.
- `save_events`: insert events once (their uid is unique), returning the rows to alert.

With `confirm: N` (N > 1) an event is stored `pending` and alerted only once the claim has been seen
in N consecutive fetches; a change that flips back before then is `dropped`, and its flip back is not
reported either (the reader never heard of the flicker).

Flap damping (`flap_window`, default 5): an event whose new value is one the same entry already held in
its last `flap_window` snapshots (a fact's value, or for `text_changed` the whole text) is stored
`flapping` and alerted only once the value has been seen on `confirm` more fetches (one more with the
default `confirm = 1`). A page alternating A, B, A, B... alerts once, for the first B: every later change
brings back a value seen just before, and never stays. A flapping event whose value did not hold stays
`flapping` in the history, and its flip back is not reported, as for a dropped pending one. The cost: a
genuine return to a recent value is alerted one fetch later.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.orm import Session

from watcher.codec import decode_document
from watcher.config import WatchConfig
from watcher.describe import FACT_EVENT_TYPES, describe, summarise
from watcher.diff import comparable, diff_documents, event_kind, event_uid, fact_values, unreported_removals
from watcher.document import drop_ignored, drop_ignored_lines
from watcher.extract import RULES_VERSION, extract
from watcher.records import ChangeEvent, Document, Facts, FactSet
from watcher.store.bookkeeping import FLAPPING, held_watches
from watcher.store.models import ChangeEventRow, Check, Fact, Snapshot, Watch, utcnow
from watcher.topic import DEFAULT_STALE_AFTER, consensus_events, topic_label

# Runtime keys in Snapshot.facts. CARRIED: facts carried over from the previous snapshot because their
# evidence is still on the page although extraction missed them this time. RULES: the version of the
# extraction rules that read the snapshot (watcher.extract.RULES_VERSION).
CARRIED = "carried"
RULES = "rules"
_RUNTIME_KEYS = (CARRIED, RULES)


def snapshot_facts(facts: FactSet) -> dict[str, Any]:
    """What a new snapshot stores as its facts: the FactSet and the rules version that produced it."""
    return {**facts.to_json_dict(), RULES: RULES_VERSION}

FACT_KINDS = frozenset({*FACT_EVENT_TYPES, "cast"})

# Event states: `confirmed` ones are alerted; `pending` ones wait for `confirm` sightings, `flapping` ones
# (flap damping) for `confirm` more; a pending one that did not hold becomes `dropped`, a flapping one stays.
HELD = ("pending", FLAPPING)


def load_facts(snapshot: Snapshot) -> FactSet:
    data = {k: v for k, v in (snapshot.facts or {}).items() if k not in _RUNTIME_KEYS}
    return FactSet.model_validate(data)


def reread(previous: Snapshot, doc: Document, watch_config: WatchConfig | None) -> FactSet:
    """The previous snapshot's facts as today's rules read its document.

    A diff must compare like with like: after an upgrade of the extraction rules, facts the old rules
    missed (or got wrong) on an unchanged part of the page would otherwise be reported as changes of the
    page. Stored facts are reused when the same rules produced them, so this costs an extraction only for
    the first change of each entry after an upgrade. `doc` is the previous snapshot's document."""
    if (previous.facts or {}).get(RULES) == RULES_VERSION:
        return load_facts(previous)
    if watch_config is not None and watch_config.ignore:
        doc = drop_ignored(doc, list(watch_config.ignore))
    fetched = previous.fetched_at.date() if previous.fetched_at else None
    topic = watch_config.topic.topic() if watch_config is not None and watch_config.topic else None
    return extract(doc, fallback_date=fetched, topic=topic)


def save_events(s: Session, events: list[ChangeEvent], *, watch_id: int | None, snapshot_id: int | None,
                topic_key: str | None, state: str = "confirmed") -> list[ChangeEventRow]:
    """Insert events whose uid is new; return the inserted rows (an event seen before is a no-op)."""
    if not events:
        return []
    uids = [e.uid or _content_uid(e, watch_id) for e in events]
    existing = set(s.scalars(select(ChangeEventRow.uid).where(ChangeEventRow.uid.in_(uids))))
    rows: list[ChangeEventRow] = []
    for event, uid in zip(events, uids, strict=True):
        if uid in existing:
            continue
        existing.add(uid)
        row = ChangeEventRow(
            uid=uid, watch_id=watch_id, snapshot_id=snapshot_id, topic_key=event.topic or topic_key,
            type=event.type, subject=event.subject[:300], old=event.old, new=event.new, summary=event.summary,
            evidence=event.evidence, confidence=event.confidence, source_url=event.source_url,
            detected_at=event.detected_at or utcnow(), state=state)
        s.add(row)
        rows.append(row)
    if rows and state in HELD:
        s.info[_SAVED_HELD] = True
    s.flush()
    return rows


def _content_uid(event: ChangeEvent, watch_id: int | None) -> str:
    return event_uid(watch_id, event.type, event.subject, event.old, event.new, event.detected_at)


def record_snapshot(s: Session, *, watch: Watch, snapshot: Snapshot, previous: Snapshot | None,
                    confirm: int = 1, watch_config: WatchConfig | None = None,
                    stale_after: dt.timedelta = DEFAULT_STALE_AFTER, first_of_watch: bool | None = None,
                    flap_window: int = 0, held: bool = True) -> list[ChangeEventRow]:
    """Store the events of a new snapshot; return those to alert now (confirmed ones).

    `watch_config` brings the watch's noise control: `ignore` patterns (applied to the previous text too,
    so adding a pattern is not itself a change) and `text_changes = false` (facts only). `first_of_watch`:
    whether the watch had no snapshot before this fetch, when the caller knows (else it is read).
    `flap_window`: how many earlier snapshots of the entry a change is compared with (flap damping; 0: off).
    `held`: whether the watch may have held events (pending or flapping); False when the caller knows it has
    none (`WatchState.pending`), which spares looking for them."""
    new = stored = load_facts(snapshot)  # `stored`: with the facts carried over from the previous version
    to_alert: list[ChangeEventRow] = []
    suppressed: set[tuple[str, str, Any]] = set()
    dropped: list[ChangeEventRow] = []
    seen: list[tuple[str, dict[tuple[str, str], Any]]] | None = None
    if previous is not None and held:
        confirmed, dropped = _settle_held(s, watch, snapshot, previous, new.facts)
        to_alert += confirmed
        # Flicker A -> B -> A: B was never alerted, so neither is the way back to A.
        suppressed = {(event_kind(_as_event(r)), r.subject, _cmp(r, "old")) for r in dropped}
    events: list[ChangeEvent] = []
    baseline = _first_of_watch(s, watch, snapshot) if first_of_watch is None else first_of_watch
    if previous is not None:
        previous_doc = decode_document(previous.content_z)
        old = reread(previous, previous_doc, watch_config)
        old_text, new_text = previous_doc.text, decode_document(snapshot.content_z).text
        if watch_config is not None and watch_config.ignore:
            old_text = drop_ignored_lines(old_text, watch_config.ignore)
        events = diff_documents(old.facts, new.facts, old_text, new_text)
        if _carry_over(snapshot, old.facts, unreported_removals(old.facts, new.facts, events)):
            stored = load_facts(snapshot)
        events = [e for e in events
                  if (event_kind(e), e.subject, comparable(event_kind(e), e.new)) not in suppressed]
        if any(r.type == "text_changed" and r.state == FLAPPING for r in dropped):
            # A flapping text change that did not hold, and the text is back to what it was before it:
            # the reader never heard of that change, nor hears of its undoing.
            seen = _recent_values(s, watch, snapshot, max(flap_window, 2))
            if len(seen) > 1 and seen[1][0] == snapshot.content_hash:
                events = [e for e in events if e.type != "text_changed"]
        if watch_config is not None and not watch_config.text_changes:
            events = [e for e in events if e.type != "text_changed"]
    elif not baseline:
        events.append(_article_added(s, snapshot, new))
    _store_facts(s, watch, snapshot, stored)
    topic_key = snapshot.topic_key
    now = snapshot.fetched_at
    for e in events:
        e.topic, e.watch, e.source_url, e.detected_at = topic_key, watch.name, snapshot.url, now
        e.uid = e.uid or event_uid(watch.id, snapshot.entry_key, snapshot.id, e.type, e.subject)
    if topic_key:
        for e in consensus_events(s, topic_key, changed_by=snapshot, baseline=baseline, stale_after=stale_after):
            e.uid = event_uid("consensus", topic_key, snapshot.id, e.subject, e.type)
            e.detected_at = now
            events.append(e)
    flapping: list[ChangeEvent] = []
    if previous is not None and flap_window > 0 and events:
        window = seen[:flap_window] if seen is not None else _recent_values(s, watch, snapshot, flap_window)
        flapping = [e for e in events if e.type != "topic_consensus_changed" and _seen_before(e, snapshot, window)]
        events = [e for e in events if not any(e is f for f in flapping)]
    state = "pending" if confirm > 1 and previous is not None else "confirmed"
    rows = save_events(s, events, watch_id=watch.id, snapshot_id=snapshot.id, topic_key=topic_key, state=state)
    save_events(s, flapping, watch_id=watch.id, snapshot_id=snapshot.id, topic_key=topic_key, state=FLAPPING)
    if state == "confirmed":
        to_alert += rows
    return to_alert


def _recent_values(s: Session, watch: Watch, snapshot: Snapshot, window: int
                   ) -> list[tuple[str, dict[tuple[str, str], Any]]]:
    """(content hash, fact values) of the entry's last `window` snapshots before `snapshot`, newest first."""
    rows = s.execute(select(Snapshot.content_hash, Snapshot.facts).where(
        Snapshot.watch_id == watch.id, Snapshot.entry_key == snapshot.entry_key, Snapshot.id < snapshot.id)
        .order_by(Snapshot.id.desc()).limit(window)).all()
    out = []
    for content_hash, facts in rows:
        data = {k: v for k, v in (facts or {}).items() if k not in _RUNTIME_KEYS}
        out.append((content_hash, fact_values(FactSet.model_validate(data).facts)))
    return out


def _seen_before(event: ChangeEvent, snapshot: Snapshot, seen: list[tuple[str, dict[tuple[str, str], Any]]]
                 ) -> bool:
    """Whether the event's new value is one the entry held in one of the `seen` snapshots: for a fact, its
    value (absent counts as a value: a cast member gone again); for a text change, the whole text."""
    if event.type == "text_changed":
        return any(h == snapshot.content_hash for h, _ in seen)
    kind = event_kind(event)
    if kind not in FACT_KINDS:
        return False
    wanted = comparable(kind, event.new)
    for _, values in seen:
        held = next((v for (k, subj), v in values.items() if k == kind and _same_subject(subj, event.subject)), None)
        if comparable(kind, held) == wanted:
            return True
    return False


def _article_added(s: Session, snapshot: Snapshot, facts: FactSet) -> ChangeEvent:
    """A feed or listing entry never seen before: its title, link, topic and headline facts. Its uid is the
    entry's, so an entry is announced once, whatever happens to its snapshots later."""
    topic = facts.topic()
    label = (topic_label(s, topic.key) or topic.label()) if topic else None
    headline: dict[str, str] = {}
    for (kind, _), value in fact_values(facts.facts).items():
        if kind != "cast":
            headline[kind] = describe(kind, value)
    if facts.facts.cast:
        headline["cast"] = ", ".join(f"{name} {describe('cast', c.model_dump(mode='json'))}"
                                     for name, c in list(facts.facts.cast.items())[:8])
    doc = decode_document(snapshot.content_z)
    excerpt = doc.description or " ".join(doc.text.split())[:400]
    event = ChangeEvent(
        type="article_added", subject=(snapshot.title or snapshot.url)[:300],
        new={"title": snapshot.title, "url": snapshot.url, "work": facts.work, "season": facts.season,
             "topic": label, "published": snapshot.published.isoformat() if snapshot.published else None,
             "facts": headline},
        evidence=excerpt, confidence=1.0,
        uid=event_uid(snapshot.watch_id, "article_added", snapshot.entry_key))
    event.summary = summarise(event)
    return event


def _first_of_watch(s: Session, watch: Watch, snapshot: Snapshot) -> bool:
    """A watch's first fetch sets its baseline: joining a topic is not news, a new feed entry later is."""
    return s.scalar(select(func.count()).select_from(Snapshot).where(
        Snapshot.watch_id == watch.id, Snapshot.fetched_at < snapshot.fetched_at)) == 0


def record_unchanged(s: Session, *, watch: Watch, snapshot: Snapshot, confirm: int = 1) -> list[ChangeEventRow]:
    """An unchanged fetch of `snapshot`: its pending events seen `confirm` times now, and its flapping ones
    seen on `confirm` fetches after the one that brought them."""
    held = list(s.scalars(select(ChangeEventRow).where(
        ChangeEventRow.watch_id == watch.id, ChangeEventRow.snapshot_id == snapshot.id,
        ChangeEventRow.state.in_(HELD))))
    if not held:
        return []
    # The snapshot's own fetch, the unchanged fetches since, and this one (its check row comes later).
    sightings = 2 + (s.scalar(select(func.sum(Check.repeats)).where(
        Check.watch_id == watch.id, Check.at > snapshot.fetched_at,
        Check.outcome.in_(("unchanged", "not_modified")))) or 0)
    if watch.run_repeats and watch.run_at is not None and watch.run_at > snapshot.fetched_at:
        sightings += watch.run_repeats  # the open run (watcher/store/bookkeeping.py)
    released = [row for row in held if sightings >= confirm + (row.state == FLAPPING)]
    for row in released:
        row.state = "confirmed"
    return released


# Composed once: building this query (a union of two selects over an alias) costs more than running it.
_HELD_EVENTS = held_watches(bindparam("watch_ids", expanding=True)).limit(1)


# Session.info key: the session stored a held event (`save_events`).
_SAVED_HELD = "watcher_saved_held"


def saved_held_events(s: Session) -> bool:
    """Whether this session stored a held (pending or flapping) event: for a watch that had none before the
    transaction, only those can be held after it, so this answers `has_held_events` without a query."""
    return bool(s.info.get(_SAVED_HELD))


def has_held_events(s: Session, watch_id: int) -> bool:
    """Whether events of the watch wait for more sightings: pending ones, or flapping ones of an entry's
    latest snapshot (an older snapshot's flapping events were superseded and stay as history)."""
    return s.scalar(_HELD_EVENTS, {"watch_ids": [watch_id]}) is not None


def _settle_held(s: Session, watch: Watch, snapshot: Snapshot, previous: Snapshot, new: Facts
                 ) -> tuple[list[ChangeEventRow], list[ChangeEventRow]]:
    """A new snapshot after one with pending or flapping events: confirm those whose new value still holds
    (this fetch is one more sighting); the others are dropped (pending) or stay flapping, and returned
    second so that their flip back is not reported."""
    pending = list(s.scalars(select(ChangeEventRow).where(
        ChangeEventRow.watch_id == watch.id, ChangeEventRow.snapshot_id == previous.id,
        ChangeEventRow.state.in_(HELD))))
    values = fact_values(new)
    confirmed, dropped = [], []
    for row in pending:
        kind = event_kind(_as_event(row))
        if row.type == "text_changed" and row.state == FLAPPING:
            holds = False  # the text it came back to changed again: that is the flapping
        elif row.type in ("text_changed", "topic_consensus_changed"):
            holds = True  # the page did change; consensus is re-checked by the new snapshot itself
        else:
            current = next((v for (k, subj), v in values.items() if k == kind and _same_subject(subj, row.subject)),
                           None)
            holds = comparable(kind, current) == _cmp(row, "new")
        if holds:
            row.state = "confirmed"
        elif row.state == "pending":
            row.state = "dropped"
        (confirmed if holds else dropped).append(row)
    return confirmed, dropped


def _same_subject(a: str, b: str) -> bool:
    from watcher.records import name_key

    return name_key(a) == name_key(b)


def _as_event(row: ChangeEventRow) -> ChangeEvent:
    return ChangeEvent(type=row.type, subject=row.subject, old=row.old, new=row.new)


def _cmp(row: ChangeEventRow, side: str) -> Any:
    return comparable(event_kind(_as_event(row)), getattr(row, side))


def _carry_over(snapshot: Snapshot, old: Facts, missing: list[tuple[str, str]]) -> bool:
    """Keep facts that vanished from extraction while their evidence is still on the page (diff_facts
    declined to report them), so the next diff compares against them rather than against a gap. Returns
    whether it carried any."""
    if not missing:
        return False
    data = dict(snapshot.facts)
    facts = dict(data.get("facts", {}))
    old_json = old.model_dump(mode="json", exclude_none=True)
    for kind, subject in missing:
        if kind == "cast":
            facts["cast"] = {**facts.get("cast", {}), subject: old_json["cast"][subject]}
        else:
            facts[kind] = old_json[kind]
    data["facts"] = facts
    data[CARRIED] = sorted(f"{k}:{s}" for k, s in missing)
    snapshot.facts = data
    return True


def _store_facts(s: Session, watch: Watch, snapshot: Snapshot, facts: FactSet) -> None:
    """One `facts` row per claim of the snapshot, for the topic view (topic-less snapshots are skipped).

    A claim is dated by when its text was last stated: the modified date, else the published one."""
    if not snapshot.topic_key:
        return
    evidence = facts.facts
    rows = []
    for (kind, subject), value in fact_values(facts.facts).items():
        fact = evidence.cast.get(subject) if kind == "cast" else getattr(evidence, kind)
        rows.append({"snapshot_id": snapshot.id, "watch_id": watch.id, "topic_key": snapshot.topic_key,
                     "kind": kind, "subject": subject[:300], "value": value, "evidence": fact.evidence,
                     "confidence": fact.confidence, "published": snapshot.modified or snapshot.published,
                     "fetched_at": snapshot.fetched_at or dt.datetime.now(dt.UTC)})
    if rows:
        s.connection().execute(insert(Fact.__table__), rows)  # Core: no ORM bookkeeping for these rows
