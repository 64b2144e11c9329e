"""The topic view: who claims what about one work/season, across every watch, over time.

Claims are the `facts` rows of the topic's snapshots. For each fact (release, renewal, ..., each cast
member) the view lists every claim in time order (a source repeats only when its value changed), and
what each source says *now*: its latest claim, from its latest snapshot, whether or not that claim
repeats an earlier one. A source is a watch (named by its site, or by the watch's name when two watches
share a site). A claim dated `topics.stale_after` before the newest claim about the same fact is stale:
shown, but counted neither as a disagreement nor towards consensus.

- current value: the newest current claim (by publication date, then fetch date);
- disagreement: the current sources' claims, when they differ;
- consensus: every current source that states the fact states the same value (two sources at least).
  `consensus_events` raises `topic_consensus_changed` when sources come to agree on a value other than
  the one they last agreed on (remembered in `topic_consensus`), and never while they disagree.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from watcher.config import Config, TopicsConfig
from watcher.describe import describe
from watcher.diff import KIND_ORDER, comparable
from watcher.errors import WatcherError
from watcher.records import ChangeEvent, Topic, name_key
from watcher.store.db import pg_xact_lock
from watcher.store.models import CONSENSUS_FACT_LENGTH, Fact, Snapshot, TopicConsensus, Watch, utcnow
from watcher.text import safe_key

VIEW_KINDS = ("release", "previous_release", "renewal", "production", "filming", "platform", "trailer", "cast")
DEFAULT_STALE_AFTER: dt.timedelta = TopicsConfig().stale_after
_KIND_WORDS = {"release": "release", "renewal": "renewal", "production": "production", "filming": "filming",
               "platform": "platform", "trailer": "trailer"}


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

    @property
    def dated(self) -> dt.date:
        """When the claim was made: its page's modified/published date, else when it was fetched."""
        return self.published or self.fetched_at.date()


@dataclass(slots=True)
class FactLine:
    kind: str
    subject: str
    claims: list[Claim] = field(default_factory=list)
    current: Claim | None = None
    # What each source says now (its latest claim), and the sources whose latest claim is stale.
    sources: dict[str, Claim] = field(default_factory=dict)
    stale: dict[str, Claim] = field(default_factory=dict)
    disagreement: dict[str, str] = field(default_factory=dict)

    @property
    def agreement(self) -> Claim | None:
        """The newest current claim when two or more current sources state the fact and all agree."""
        if len(self.sources) < 2 or self.disagreement:
            return None
        return self.current


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
    return Topic.normalise_key(text) if "#" in text and text == text.casefold() else resolve_topic_key(text)


def source_of(url: str) -> str:
    host = urlsplit(url).hostname or url
    return host.removeprefix("www.")


def _source_labels(s: Session, topic_key: str) -> dict[str, str]:
    """watch name -> how the topic names it as a source (see `_labels`), for every watch of the topic."""
    return _labels(dict(s.execute(select(Watch.name, Watch.url).where(Watch.id.in_(
        select(Snapshot.watch_id).where(Snapshot.topic_key == topic_key).distinct()))).all()))


def _labels(watch_urls: dict[str, str]) -> dict[str, str]:
    """A source is named by its site, or 'watch (site)' when two watches read the same site (two pages of one
    site are two sources)."""
    hosts = {name: source_of(url) for name, url in watch_urls.items()}
    shared = {h for h in hosts.values() if list(hosts.values()).count(h) > 1}
    return {name: f"{name} ({host})" if host in shared else host for name, host in hosts.items()}


def _claim(fact: Fact, watch: str, url: str, source: str) -> Claim:
    return Claim(watch=watch, source=source, value=fact.value, display=describe(fact.kind, fact.value),
                 evidence=fact.evidence or "", confidence=fact.confidence, published=fact.published,
                 fetched_at=fact.fetched_at, snapshot_id=fact.snapshot_id, url=url, subject=fact.subject)


def _order(claim: Claim) -> tuple[dt.date, dt.datetime, int]:
    return (claim.dated, claim.fetched_at, claim.snapshot_id)


def _newer(a: Claim | None, b: Claim) -> Claim:
    return b if a is None or _order(b) >= _order(a) else a


def _latest_snapshot_ids(s: Session, topic_key: str) -> set[int]:
    """The newest snapshot of each (watch, entry) of the topic: what each source says now."""
    q = select(func.max(Snapshot.id)).where(Snapshot.topic_key == topic_key)
    return set(s.scalars(q.group_by(Snapshot.watch_id, Snapshot.entry_key)))


def topic_label(s: Session, topic_key: str) -> str | None:
    row = s.execute(select(Snapshot.work, Snapshot.season).where(Snapshot.topic_key == topic_key)
                    .order_by(Snapshot.id.desc()).limit(1)).first()
    return Topic(row.work, row.season).label() if row and row.work else None


def topic_labels(s: Session, keys: set[str | None]) -> dict[str, str]:
    """topic key -> label for each key that has a snapshot (events show labels, not keys)."""
    return {k: label for k in sorted(filter(None, keys)) if (label := topic_label(s, k))}


LineKey = tuple[str, str]


def _settle(line: FactLine, latest: dict[str, Claim], stale_after: dt.timedelta) -> None:
    """Fill in what the sources say now from each source's latest claim."""
    if not latest:
        return
    newest = max(c.dated for c in latest.values())
    for source, claim in sorted(latest.items()):
        if newest - claim.dated > stale_after:
            line.stale[source] = claim
        else:
            line.sources[source] = claim
            line.current = _newer(line.current, claim)
    values = {comparable(line.kind, c.value) for c in line.sources.values()}
    if len(line.sources) >= 2 and len(values) >= 2:
        line.disagreement = {source: c.display for source, c in line.sources.items()}


def _current_claims(s: Session, topic_key: str, labels: dict[str, str]) -> dict[LineKey, dict[str, Claim]]:
    """(kind, subject key) -> source -> that source's latest claim (newest of its latest snapshots)."""
    latest = _latest_snapshot_ids(s, topic_key)
    rows = s.execute(_claims_query(topic_key, latest)).all() if latest else []
    return _by_line(rows, labels)


def _claims_query(topic_key: str, snapshot_ids: set[int]) -> Any:
    return (select(Fact, Watch.name, Snapshot.url, Watch.url).join(Watch, Fact.watch_id == Watch.id)
            .join(Snapshot, Fact.snapshot_id == Snapshot.id)
            .where(Fact.topic_key == topic_key, Fact.snapshot_id.in_(snapshot_ids)))


def _by_line(rows: list[Any], labels: dict[str, str]) -> dict[LineKey, dict[str, Claim]]:
    out: dict[LineKey, dict[str, Claim]] = {}
    for fact, watch, url, _ in rows:
        source = labels.get(watch, watch)
        per_source = out.setdefault((fact.kind, name_key(fact.subject)), {})
        per_source[source] = _newer(per_source.get(source), _claim(fact, watch, url, source))
    return out


def topic_view(s: Session, key: str, *, stale_after: dt.timedelta = DEFAULT_STALE_AFTER) -> TopicView:
    """Every claim of the topic (key as stored, or as a user writes it), grouped per fact."""
    key = topic_key_of(key)
    label = topic_label(s, key)
    if label is None:
        known = ", ".join(sorted(filter(None, s.scalars(select(Snapshot.topic_key).distinct())))) or "none yet"
        raise UnknownTopic(f"no snapshot is about topic {key!r} (known topics: {known})")
    labels = _source_labels(s, key)
    rows = s.execute(select(Fact, Watch.name, Snapshot.url).join(Watch, Fact.watch_id == Watch.id)
                     .join(Snapshot, Fact.snapshot_id == Snapshot.id).where(Fact.topic_key == key)
                     .order_by(Fact.fetched_at, Fact.id)).all()
    lines: dict[LineKey, FactLine] = {}
    last_seen: dict[tuple[str, str, str, str], Any] = {}  # (kind, subject, watch, url) -> comparable
    for fact, watch, url in rows:
        line_key = (fact.kind, name_key(fact.subject))
        line = lines.setdefault(line_key, FactLine(fact.kind, fact.subject))
        seen_key = (*line_key, watch, url)
        value = comparable(fact.kind, fact.value)
        if last_seen.get(seen_key, object()) != value:  # the history shows a source again only on a change
            line.claims.append(_claim(fact, watch, url, labels.get(watch, watch)))
            last_seen[seen_key] = value
    for line_key, latest in _current_claims(s, key, labels).items():
        if line_key in lines:
            line = lines[line_key]
            _settle(line, latest, stale_after)
            # A source's latest claim is shown even when it repeats its previous one: it is what it says now.
            shown = {(c.watch, c.snapshot_id): c for c in line.claims}
            for claim in latest.values():
                if (claim.watch, claim.snapshot_id) not in shown:
                    line.claims.append(shown.setdefault((claim.watch, claim.snapshot_id), claim))
            if line.current is not None:  # the history's own row, so pages can mark it
                line.current = shown[(line.current.watch, line.current.snapshot_id)]
    view = TopicView(key, label, sorted(lines.values(), key=_line_order))
    for line in view.lines:
        line.claims.sort(key=_order)
    return view


def _line_order(line: FactLine) -> tuple[int, str]:
    kind = line.kind if line.kind in VIEW_KINDS else "cast"
    return (VIEW_KINDS.index(kind), name_key(line.subject))


def list_topics(s: Session, *, stale_after: dt.timedelta = DEFAULT_STALE_AFTER) -> list[TopicView]:
    keys = sorted(filter(None, s.scalars(select(Fact.topic_key).distinct())))
    return [topic_view(s, k, stale_after=stale_after) for k in keys]


# --------------------------------------------------------------------------- consensus


def _lines(claims: dict[LineKey, dict[str, Claim]], stale_after: dt.timedelta) -> dict[LineKey, FactLine]:
    out = {}
    for line_key, latest in claims.items():
        line = FactLine(line_key[0], next(iter(latest.values())).subject)
        _settle(line, latest, stale_after)
        out[line_key] = line
    return out


def _before_and_after(s: Session, topic_key: str, changed: Snapshot, stale_after: dt.timedelta, *,
                      with_before: bool = True) -> tuple[dict[LineKey, FactLine], dict[LineKey, FactLine]]:
    """What the topic's sources said just before `changed` was stored, and what they say now: the latest
    snapshots, with `changed` replaced by the previous snapshot of its entry for "before". Two queries.
    Without `with_before` (a baseline, which raises no event), "before" is left empty: one query."""
    latest = _latest_snapshot_ids(s, topic_key)
    previous = s.scalar(select(func.max(Snapshot.id)).where(
        Snapshot.topic_key == topic_key, Snapshot.watch_id == changed.watch_id,
        Snapshot.entry_key == changed.entry_key, Snapshot.id < changed.id)) if with_before else None
    rows = s.execute(_claims_query(topic_key, latest | {previous} if previous else latest)).all()
    labels = _labels({name: url for _, name, _, url in rows})
    after = _by_line([r for r in rows if r[0].snapshot_id in latest], labels)
    if not with_before:
        return {}, _lines(after, stale_after)
    before_ids = (latest - {changed.id}) | ({previous} if previous else set())
    before = _by_line([r for r in rows if r[0].snapshot_id in before_ids], labels)
    return _lines(before, stale_after), _lines(after, stale_after)


# Namespace of the per-topic transaction locks (the two-integer advisory key space, apart from scale.py's).
_TOPIC_LOCKS = 0x746F7063  # "topc"


def _lock_topic(s: Session, topic_key: str) -> None:
    """Serialise consensus per topic on PostgreSQL: two checks of one topic's sources committing at once
    would each miss the other's new claim (and neither see the agreement). Held until the transaction
    ends; SQLite's single writer serialises checks already."""
    digest = hashlib.sha256(topic_key.encode()).digest()
    pg_xact_lock(s, _TOPIC_LOCKS, int.from_bytes(digest[:4], "big", signed=True))


def _fact_label(kind: str, subject: str) -> str:
    return subject or _KIND_WORDS.get(kind, kind)


# Composed once (run for every stored snapshot that has a topic): another watch's snapshot of the topic.
_OTHER_SOURCE = select(Snapshot.id).where(Snapshot.topic_key == bindparam("topic_key"),
                                          Snapshot.watch_id != bindparam("watch_id")).limit(1)


def consensus_events(s: Session, topic_key: str, *, changed_by: Snapshot, baseline: bool = False,
                     stale_after: dt.timedelta = DEFAULT_STALE_AFTER) -> list[ChangeEvent]:
    """`topic_consensus_changed` for each fact on which the topic's current sources now agree on a value
    other than the one they last agreed on. While they disagree, nothing (the topic page shows it).

    `baseline` (a watch's first fetch: joining a topic is not news) records agreement without events.
    """
    _lock_topic(s, topic_key)
    if s.scalar(_OTHER_SOURCE, {"topic_key": topic_key, "watch_id": changed_by.watch_id}) is None:
        return []  # one watch is one source: nothing to agree with (the common case, and a cheap one)
    # A baseline records agreement without events: what the sources said before it does not matter.
    before, after = _before_and_after(s, topic_key, changed_by, stale_after, with_before=not baseline)
    stored = {row.fact: row for row in s.scalars(select(TopicConsensus).where(TopicConsensus.topic_key == topic_key))}
    events = []
    for line_key in sorted(after, key=lambda k: (KIND_ORDER.index(k[0]) if k[0] in KIND_ORDER
                                                  else len(KIND_ORDER), k[1])):
        line = after[line_key]
        agreed = line.agreement
        if agreed is None:
            continue
        kind = line.kind
        fact_id = safe_key(f"{kind}:{line_key[1]}", CONSENSUS_FACT_LENGTH)
        sources = sorted(line.sources)
        row = stored.get(fact_id)
        previous = before.get(line_key)
        if row is None:
            row = TopicConsensus(topic_key=topic_key, fact=fact_id, value=agreed.value, sources=sources,
                                 updated_at=utcnow())
            s.add(row)
            earlier = previous.agreement if previous else None
            if earlier is None and not (previous and previous.disagreement):
                continue  # a second source states what the first said: nobody disagreed, nothing to tell
            old = earlier.value if earlier else None
        else:
            old = row.value
            if comparable(kind, old) != comparable(kind, agreed.value) or row.sources != sources:
                # Written only when it moved: every check of the topic would otherwise lock the row.
                row.value, row.sources, row.updated_at = agreed.value, sources, utcnow()
        if comparable(kind, old) == comparable(kind, agreed.value) or baseline:
            continue
        what = _fact_label(kind, line.subject)
        was = f", was {describe(kind, old)}" if old is not None else " after disagreeing"
        events.append(ChangeEvent(
            type="topic_consensus_changed", subject=f"{kind}:{line.subject}" if line.subject else kind,
            old=old, new=agreed.value,
            summary=f"sources now agree on {what}: {describe(kind, agreed.value)}{was} — per {', '.join(sources)}",
            evidence=agreed.evidence, confidence=max(c.confidence for c in line.sources.values()),
            topic=topic_key, watch=agreed.watch, source_url=agreed.url))
    return events


# --------------------------------------------------------------------------- subscriber topics


def subscriber_topic_warnings(config: Config, known: dict[str, str]) -> list[str]:
    """One line per subscriber topic that matches no topic of the configured watches nor any topic seen in
    the database (`known`: key -> label), with the closest label as a suggestion."""
    topics = dict(known)
    for w in config.watch:
        if w.topic is not None:
            topic = w.topic.topic()
            topics.setdefault(topic.key, topic.label())
    if not topics:
        return []  # nothing configured, nothing seen yet: no basis to judge
    warnings = []
    for sub in config.subscriber:
        for wanted in sub.topics:
            key = resolve_topic_key(wanted)
            if any(k == key or k.startswith(key + "#") for k in topics):
                continue
            close = difflib.get_close_matches(key, list(topics), n=1, cutoff=0.6)
            if not close:  # a topic extraction named at length ("When is Stranger Things season three out?")
                work = name_key(parse_topic(wanted).work)
                close = [k for k in sorted(topics) if work and work in name_key(topics[k])][:1]
            hint = f"; did you mean {topics[close[0]]!r}?" if close else ""
            known_text = "" if hint else f" (known topics: {', '.join(sorted(topics.values()))})"
            warnings.append(f"subscriber {sub.name}: topic {wanted!r} matches no watch topic{hint}{known_text}")
    return warnings


def known_topics(s: Session) -> dict[str, str]:
    """Every topic the database has snapshots of: key -> label."""
    rows = s.execute(select(Snapshot.topic_key, Snapshot.work, Snapshot.season).where(Snapshot.topic_key.is_not(None))
                     .group_by(Snapshot.topic_key, Snapshot.work, Snapshot.season)).all()
    return {key: Topic(work, season).label() for key, work, season in rows if work}
