"""The topic view: who claims what about one work/season, across every watch, over time.

Claims are the `facts` rows of the topic's snapshots. For each fact (release, renewal, ..., each cast
member) the view lists every claim in time order (a source repeats only when its value changed),
the current value, and the sources' disagreement when their latest claims differ.

The current value is the newest claim by publication date, then fetch date, among each source's
latest snapshot: what sources say now, the most recently published winning.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from watcher.diff import KIND_ORDER, comparable, describe
from watcher.errors import WatcherError
from watcher.records import ChangeEvent, Topic, name_key
from watcher.store.models import Fact, Snapshot, Watch

VIEW_KINDS = ("release", "previous_release", "renewal", "production", "filming", "platform", "trailer", "cast")


class UnknownTopic(WatcherError):
    exit_code = 2


@dataclass(frozen=True, slots=True)
class Claim:
    watch: str
    source: str
    value: Any
    display: str
    evidence: str
    confidence: float
    published: dt.date | None
    fetched_at: dt.datetime
    snapshot_id: int
    url: str
    subject: str = ""


@dataclass(slots=True)
class FactLine:
    kind: str
    subject: str
    claims: list[Claim] = field(default_factory=list)
    current: Claim | None = None
    disagreement: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class TopicView:
    key: str
    label: str
    lines: list[FactLine] = field(default_factory=list)

    def line(self, kind: str, subject: str = "") -> FactLine | None:
        want = name_key(subject)
        return next((li for li in self.lines if li.kind == kind and name_key(li.subject) == want), None)

    def sources(self) -> list[str]:
        return sorted({c.source for li in self.lines for c in li.claims})


_TOPIC_TEXT = re.compile(r"^(?P<work>.+?)\s*(?:#\s*(?P<hash>\d+)|\s+(?:S|Season\s*)(?P<season>\d+))\s*$", re.I)


def parse_topic(text: str) -> Topic:
    """'All of Us Are Dead S2', 'All of Us Are Dead#2', 'All of Us Are Dead Season 2' -> the work and season."""
    m = _TOPIC_TEXT.match(text.strip())
    if m:
        return Topic(m["work"], int(m["hash"] or m["season"]))
    return Topic(text.strip())


def resolve_topic_key(text: str) -> str:
    """'All of Us Are Dead S2', 'all of us are dead#2', 'All of Us Are Dead Season 2' -> 'all of us are dead#2'."""
    return parse_topic(text).key


def topic_key_of(text: str) -> str:
    """A stored key ('all of us are dead#2') as is; anything a user writes resolved to one."""
    return text if "#" in text and text == text.casefold() else resolve_topic_key(text)


def source_of(url: str) -> str:
    host = urlsplit(url).hostname or url
    return host.removeprefix("www.")


def _claim(fact: Fact, watch: str, url: str) -> Claim:
    return Claim(watch=watch, source=source_of(url), value=fact.value, display=describe(fact.kind, fact.value),
                 evidence=fact.evidence or "", confidence=fact.confidence, published=fact.published,
                 fetched_at=fact.fetched_at, snapshot_id=fact.snapshot_id, url=url, subject=fact.subject)


def _order(claim: Claim) -> tuple[dt.date, dt.datetime, int]:
    return (claim.published or claim.fetched_at.date(), claim.fetched_at, claim.snapshot_id)


def _latest_snapshot_ids(s: Session, topic_key: str, exclude: int | None = None) -> set[int]:
    """The newest snapshot of each (watch, entry) of the topic: what each source says now."""
    q = select(func.max(Snapshot.id)).where(Snapshot.topic_key == topic_key)
    if exclude is not None:
        q = q.where(Snapshot.id != exclude)
    return set(s.scalars(q.group_by(Snapshot.watch_id, Snapshot.entry_key)))


def topic_label(s: Session, topic_key: str) -> str | None:
    row = s.execute(select(Snapshot.work, Snapshot.season).where(Snapshot.topic_key == topic_key)
                    .order_by(Snapshot.id.desc()).limit(1)).first()
    return Topic(row.work, row.season).label() if row and row.work else None


def topic_view(s: Session, key: str) -> TopicView:
    """Every claim of the topic (key as stored, or as a user writes it), grouped per fact."""
    key = topic_key_of(key)
    label = topic_label(s, key)
    if label is None:
        known = ", ".join(sorted(filter(None, s.scalars(select(Snapshot.topic_key).distinct())))) or "none yet"
        raise UnknownTopic(f"no snapshot is about topic {key!r} (known topics: {known})")
    rows = s.execute(select(Fact, Watch.name, Snapshot.url).join(Watch, Fact.watch_id == Watch.id)
                     .join(Snapshot, Fact.snapshot_id == Snapshot.id).where(Fact.topic_key == key)
                     .order_by(Fact.fetched_at, Fact.id)).all()
    latest = _latest_snapshot_ids(s, key)
    lines: dict[tuple[str, str], FactLine] = {}
    last_seen: dict[tuple[str, str, str, str], Any] = {}  # (kind, subject, watch, url) -> comparable
    for fact, watch, url in rows:
        line_key = (fact.kind, name_key(fact.subject))
        line = lines.setdefault(line_key, FactLine(fact.kind, fact.subject))
        claim = _claim(fact, watch, url)
        seen_key = (*line_key, watch, url)
        value = comparable(fact.kind, fact.value)
        if last_seen.get(seen_key, object()) != value:
            line.claims.append(claim)
            last_seen[seen_key] = value
        if fact.snapshot_id in latest:
            line.current = _newer(line.current, claim)
    view = TopicView(key, label, sorted(lines.values(), key=_line_order))
    for line in view.lines:
        line.claims.sort(key=_order)
        line.disagreement = _disagreement(line, latest)
    return view


def _newer(a: Claim | None, b: Claim) -> Claim:
    return b if a is None or _order(b) >= _order(a) else a


def _line_order(line: FactLine) -> tuple[int, str]:
    kind = line.kind if line.kind in VIEW_KINDS else "cast"
    return (VIEW_KINDS.index(kind), name_key(line.subject))


def _disagreement(line: FactLine, latest: set[int]) -> dict[str, str]:
    """source -> display of its latest claim, when the sources' latest claims differ."""
    newest: dict[str, Claim] = {}
    for claim in line.claims:
        if claim.snapshot_id in latest or claim.source not in newest:
            newest[claim.source] = _newer(newest.get(claim.source), claim)
    values = {comparable(line.kind, c.value) for c in newest.values()}
    if len(newest) < 2 or len(values) < 2:
        return {}
    return {source: claim.display for source, claim in sorted(newest.items())}


def list_topics(s: Session) -> list[TopicView]:
    keys = sorted(filter(None, s.scalars(select(Fact.topic_key).distinct())))
    return [topic_view(s, k) for k in keys]


# --------------------------------------------------------------------------- consensus


def current_values(s: Session, topic_key: str, *, exclude_snapshot: int | None = None
                   ) -> tuple[dict[tuple[str, str], Claim], int]:
    """(kind, subject key) -> current claim, and the number of watches contributing."""
    latest = _latest_snapshot_ids(s, topic_key, exclude_snapshot)
    if not latest:
        return {}, 0
    rows = s.execute(select(Fact, Watch.name, Snapshot.url).join(Watch, Fact.watch_id == Watch.id)
                     .join(Snapshot, Fact.snapshot_id == Snapshot.id)
                     .where(Fact.topic_key == topic_key, Fact.snapshot_id.in_(latest))).all()
    current: dict[tuple[str, str], Claim] = {}
    watches = set()
    for fact, watch, url in rows:
        key = (fact.kind, name_key(fact.subject))
        current[key] = _newer(current.get(key), _claim(fact, watch, url))
        watches.add(watch)
    return current, len(watches)


def consensus_events(s: Session, topic_key: str, *, changed_by: Snapshot) -> list[ChangeEvent]:
    """`topic_consensus_changed` for each fact whose current value moved with this snapshot.

    Only where two or more watches feed the topic: with one source the watch's own events say it all.
    A topic's first snapshot sets the baseline and raises nothing.
    """
    before, _ = current_values(s, topic_key, exclude_snapshot=changed_by.id)
    if not before:
        return []
    after, watches = current_values(s, topic_key)
    if watches < 2:
        return []
    events = []
    for key in sorted(set(before) | set(after), key=lambda k: (KIND_ORDER.index(k[0]) if k[0] in KIND_ORDER
                                                              else len(KIND_ORDER), k[1])):
        old, new = before.get(key), after.get(key)
        kind = key[0]
        if comparable(kind, old.value if old else None) == comparable(kind, new.value if new else None):
            continue
        subject = (new or old).subject  # type: ignore[union-attr]
        label = f"{subject}: " if subject else f"{kind}: "
        summary = f"consensus {label}{describe(kind, old.value) if old else 'none'} -> " \
                  f"{describe(kind, new.value) if new else 'none'}" + (f" (per {new.source})" if new else "")
        events.append(ChangeEvent(
            type="topic_consensus_changed", subject=f"{kind}:{subject}" if subject else kind,
            old=old.value if old else None, new=new.value if new else None, summary=summary,
            evidence=new.evidence if new else "", confidence=new.confidence if new else 0.5,
            topic=topic_key, watch=new.watch if new else None, source_url=new.url if new else None))
    return events

