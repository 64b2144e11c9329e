"""Which topic a new snapshot is filed under, so one work does not split into several topics.

Extraction names the work and season each version states. Pages are not consistent about it: a version of a
page may drop the season ("Nightfall: release date" after "Nightfall Season 3: release date"), and another site
may write only the work. Here, for a watch with no configured topic:
- a version that names no season, of the same work as the watch's previous version, keeps that version's season;
- a version that names no season, of a work that other sources file under exactly one season, joins that season;
- a version that names a season adopts the earlier versions of the same work filed without one (this watch's
  always, other watches' while it is the only season of the work): their snapshots, fact rows and events move
  to the season's topic, so no orphan topic is left behind, whichever source was read first.
Keys compare through records.work_key, so spellings ('NIGHTFALL', 'The Nightfall') are one work.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from watcher.records import Topic, work_key
from watcher.store.models import ChangeEventRow, Fact, Snapshot

# Composed once (run for every stored snapshot of a season): whether any snapshot is filed under a topic.
_ANY_OF_TOPIC = select(Snapshot.id).where(Snapshot.topic_key == bindparam("topic_key")).limit(1)


def assign_topic(s: Session, watch_id: int, extracted: Topic | None, previous: Snapshot | None) -> Topic | None:
    """The topic to file a new snapshot of this watch under (the watch has no configured topic)."""
    if extracted is None or extracted.season is not None:
        return extracted
    base = work_key(extracted.work)
    if previous is not None and previous.work and previous.season is not None and work_key(previous.work) == base:
        return Topic(extracted.work, previous.season)
    seasons = {key.partition("#")[2] for key in s.scalars(
        select(Snapshot.topic_key).distinct().where(Snapshot.topic_key.like(f"{_escape_like(base)}#%", escape="\\")))
        if key and key.partition("#")[0] == base}
    if len(seasons) == 1 and next(iter(seasons)).isdigit():
        return Topic(extracted.work, int(next(iter(seasons))))
    return extracted


def adopt_orphans(s: Session, watch_id: int, topic: Topic | None) -> int:
    """Move versions of the work filed without a season to the season's topic: this watch's always, other
    watches' too while this is the only season any source files the work under (the rule assign_topic applies
    to later versions, applied to earlier ones, so the result does not depend on which source came first)."""
    if topic is None or topic.season is None:
        return 0
    orphan = Topic(topic.work).key
    # Most works have no orphan: one indexed look-up, before the scan of the work's seasons.
    if s.scalar(_ANY_OF_TOPIC, {"topic_key": orphan}) is None:
        return 0
    seasons = {key for key in s.scalars(select(Snapshot.topic_key).distinct().where(
        Snapshot.topic_key.like(f"{_escape_like(orphan)}#%", escape="\\"))) if key and key.partition("#")[0] == orphan}
    where = Snapshot.topic_key == orphan
    if seasons - {topic.key}:
        where = where & (Snapshot.watch_id == watch_id)
    ids = list(s.scalars(select(Snapshot.id).where(where)))
    if not ids:
        return 0
    s.execute(update(Snapshot).where(Snapshot.id.in_(ids)).values(topic_key=topic.key, season=topic.season))
    s.execute(update(Fact).where(Fact.snapshot_id.in_(ids)).values(topic_key=topic.key))
    s.execute(update(ChangeEventRow).where(ChangeEventRow.snapshot_id.in_(ids)).values(topic_key=topic.key))
    return len(ids)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
