"""SQLAlchemy 2 models: watch, check, snapshot, fact, change event, subscriber, alert (the outbox).

Schema changes go through Alembic (`watcher/store/migrations`); never edit a released migration.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from watcher.records import ENTRY_KEY_LENGTH, TOPIC_KEY_LENGTH
from watcher.store.types import SafeJSON, SafeString, SafeText

# Deterministic constraint names so migrations work the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use datetime.now(UTC)")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: SafeJSON, list[Any]: SafeJSON}


class Watch(Base):
    __tablename__ = "watches"
    # Every check updates its watch's row (last check time, validators, open run), never an indexed column:
    # with room left on the page that UPDATE is heap-only on PostgreSQL (a new version on the same page, no
    # index entry, the old one reclaimed by page pruning). A batch of quiet checks updates every row of a
    # page at once, so the room is for all of them (migration 0009).
    __table_args__ = {"postgresql_with": {"fillfactor": 30}}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(SafeString(100), unique=True)
    url: Mapped[str] = mapped_column(SafeText)
    kind: Mapped[str] = mapped_column(SafeString(16))
    topic_work: Mapped[str | None] = mapped_column(SafeString(300))
    topic_season: Mapped[int | None] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Fetch state: conditional GET validators and failure tracking.
    etag: Mapped[str | None] = mapped_column(SafeText)
    last_modified: Mapped[str | None] = mapped_column(SafeString(64))
    last_check_at: Mapped[dt.datetime | None] = mapped_column()
    last_status: Mapped[str | None] = mapped_column(SafeString(32))
    last_error: Mapped[str | None] = mapped_column(SafeText)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failure_reported: Mapped[bool] = mapped_column(Boolean, default=False)
    backoff_until: Mapped[dt.datetime | None] = mapped_column()
    # Scale-out: the latest due time (ms since the epoch) whose check is stored. A worker stores a check for
    # a due time only if it is later than this, in the same transaction, so no due time is stored twice.
    due_done: Mapped[int | None] = mapped_column(BigInteger)
    # sha256 of the last body fetched: a byte-identical body is unchanged without being parsed.
    body_hash: Mapped[str | None] = mapped_column(SafeString(64))
    # Bumped by every write that changes what a re-check compares against (a snapshot stored, a failure
    # recorded, a recovery). Batched "unchanged" writes apply only if it still holds the value the check
    # started from, so a process whose cached state went stale never records a change as unchanged.
    state_rev: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The open run: the quiet checks (unchanged or not_modified, one HTTP status) since the watch's newest check
    # row, not yet in `checks`. A quiet check extends it here, in the UPDATE of this row that every check makes
    # anyway (heap-only on PostgreSQL: no new row, no index entry); the next check of another kind writes it to
    # `checks` first (watcher/store/bookkeeping.py). `run_repeats` 0: no open run.
    run_outcome: Mapped[str | None] = mapped_column(SafeString(16))
    run_http_status: Mapped[int | None] = mapped_column(Integer)
    run_at: Mapped[dt.datetime | None] = mapped_column()  # the run's first check
    run_last_at: Mapped[dt.datetime | None] = mapped_column()  # its latest
    run_repeats: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    run_duration_ms: Mapped[int | None] = mapped_column(Integer)  # the latest check's
    run_due: Mapped[int | None] = mapped_column(BigInteger)  # the latest check's due time (scale-out)

    checks: Mapped[list[Check]] = relationship(back_populates="watch", passive_deletes=True)


class Check(Base):
    """One fetch of a watch, or a run of quiet ones: consecutive unchanged (or not_modified) checks of a watch
    with the same outcome and HTTP status share one row, `repeats` of them from `at` (the first) to `last_at`
    (the latest; NULL when the row stands for one check), with the latest one's duration and due time. Any
    other outcome starts a new row. A run still going on is the watch's open run (`Watch.run_*`): it comes here
    when it ends, so a re-check that finds nothing new adds no row (watcher/store/bookkeeping.py), and history
    reads "unchanged ×288" between real events. Readers of history read both (`bookkeeping.check_runs`)."""

    __tablename__ = "checks"
    __table_args__ = (
        Index("ix_checks_watch_id_id", "watch_id", "id"),
        # Only checks that stored a snapshot are ever looked up by it (retention, ON DELETE SET NULL): quiet
        # rows carry no entry.
        Index("ix_checks_snapshot_id", "snapshot_id", postgresql_where=text("snapshot_id IS NOT NULL"),
              sqlite_where=text("snapshot_id IS NOT NULL")),
        # Rows are written once (a run comes here when it has ended) and never updated on the check path:
        # pages are filled whole (PostgreSQL's default fillfactor; 90 before migration 0010).
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    watch_id: Mapped[int] = mapped_column(ForeignKey("watches.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # baseline (the watch's first stored version) | changed | unchanged | not_modified | failed | skipped
    outcome: Mapped[str] = mapped_column(SafeString(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(SafeString(64))
    error: Mapped[str | None] = mapped_column(SafeText)
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id", ondelete="SET NULL"))
    # The due time (ms since the epoch) this check (the latest of a run) served when a scale-out worker made
    # it; else NULL.
    due: Mapped[int | None] = mapped_column(BigInteger)
    # How many checks the row stands for, and when the latest of them was made (NULL: only one, at `at`).
    repeats: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_at: Mapped[dt.datetime | None] = mapped_column()

    @property
    def latest_at(self) -> dt.datetime:
        return self.last_at or self.at

    watch: Mapped[Watch] = relationship(back_populates="checks")


class Snapshot(Base):
    """A stored document version. `content_z` is the zlib-compressed JSON of the normalised document."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_watch_entry", "watch_id", "entry_key", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watch_id: Mapped[int] = mapped_column(ForeignKey("watches.id", ondelete="CASCADE"))
    entry_key: Mapped[str] = mapped_column(SafeString(ENTRY_KEY_LENGTH, key=True), default="")
    fetched_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    content_hash: Mapped[str] = mapped_column(SafeString(64))
    url: Mapped[str] = mapped_column(SafeText)
    title: Mapped[str | None] = mapped_column(SafeText)
    published: Mapped[dt.date | None] = mapped_column(Date)
    modified: Mapped[dt.date | None] = mapped_column(Date)
    topic_key: Mapped[str | None] = mapped_column(SafeString(TOPIC_KEY_LENGTH, key=True), index=True)
    work: Mapped[str | None] = mapped_column(SafeString(300))
    season: Mapped[int | None] = mapped_column(Integer)
    content_z: Mapped[bytes] = mapped_column(LargeBinary)
    facts: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)


class Fact(Base):
    """One claim of one snapshot, flattened for the topic timeline (kind + subject -> value)."""

    __tablename__ = "facts"
    __table_args__ = (Index("ix_facts_topic_kind", "topic_key", "kind", "subject"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id", ondelete="CASCADE"), index=True)
    watch_id: Mapped[int] = mapped_column(ForeignKey("watches.id", ondelete="CASCADE"))
    topic_key: Mapped[str | None] = mapped_column(SafeString(TOPIC_KEY_LENGTH, key=True))
    kind: Mapped[str] = mapped_column(SafeString(32))
    subject: Mapped[str] = mapped_column(SafeString(300), default="")
    value: Mapped[Any] = mapped_column(SafeJSON)
    evidence: Mapped[str | None] = mapped_column(SafeText)
    confidence: Mapped[float] = mapped_column(Float, default=0.5)
    published: Mapped[dt.date | None] = mapped_column(Date)
    fetched_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ChangeEventRow(Base):
    """A stored change event. `uid` is stable and unique: storing the same event twice is a no-op.

    `state`: 'confirmed' events are alerted; 'pending' ones wait for confirmation (watch `confirm: 2`);
    'dropped' pending ones were not seen again; 'flapping' ones were held back by flap damping (a change back
    to a recent value: alerted once seen on `confirm` more fetches, else they stay 'flapping').
    """

    __tablename__ = "change_events"
    __table_args__ = (Index("ix_change_events_topic_at", "topic_key", "detected_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(SafeString(64, key=True), unique=True)
    watch_id: Mapped[int | None] = mapped_column(ForeignKey("watches.id", ondelete="CASCADE"), index=True)
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id", ondelete="SET NULL"), index=True)
    topic_key: Mapped[str | None] = mapped_column(SafeString(TOPIC_KEY_LENGTH, key=True))
    type: Mapped[str] = mapped_column(SafeString(40))
    subject: Mapped[str] = mapped_column(SafeString(300), default="")
    old: Mapped[Any] = mapped_column(SafeJSON, nullable=True)
    new: Mapped[Any] = mapped_column(SafeJSON, nullable=True)
    summary: Mapped[str] = mapped_column(SafeText, default="")
    evidence: Mapped[str | None] = mapped_column(SafeText)
    confidence: Mapped[float] = mapped_column(Float, default=1.0)
    source_url: Mapped[str | None] = mapped_column(SafeText)
    detected_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(SafeString(16), default="confirmed")


class Subscriber(Base):
    __tablename__ = "subscribers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(SafeString(100), unique=True)
    kind: Mapped[str] = mapped_column(SafeString(16))
    target: Mapped[str] = mapped_column(SafeText)
    config: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AlertRow(Base):
    """The outbox: one row per message, i.e. per (check, subscriber): the events of one check of a watch
    that pass the subscriber's filters (`alert_events`). `event_id` is the most important of them (the one
    the subject names). `uid` is the idempotency key sent to receivers.

    status: pending -> sending (claimed) -> sent | dead; a failed attempt goes back to pending with
    `next_attempt_at` pushed out by exponential backoff.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("event_id", "subscriber_id", name="uq_alerts_event_subscriber"),
        Index("ix_alerts_status_next", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(SafeString(64, key=True), unique=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("change_events.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(SafeString(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(SafeText)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column()
    claimed_by: Mapped[str | None] = mapped_column(SafeString(100))
    claimed_until: Mapped[dt.datetime | None] = mapped_column()
    digest: Mapped[bool] = mapped_column(Boolean, default=False)

    event: Mapped[ChangeEventRow] = relationship()
    subscriber: Mapped[Subscriber] = relationship()


class AlertEvent(Base):
    """The events one alert carries, in the order the message lists them. An event reaches a subscriber in
    at most one alert (unique event, subscriber)."""

    __tablename__ = "alert_events"
    __table_args__ = (UniqueConstraint("event_id", "subscriber_id", name="uq_alert_events_event_subscriber"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("change_events.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)


CONSENSUS_FACT_LENGTH = 340


class TopicConsensus(Base):
    """The last value every current source of a topic agreed on, per fact (`fact` = 'release:',
    'cast:park ji-hu'). Kept while sources disagree, so a consensus event is raised only when they agree
    on something new, never when they return to what they agreed before."""

    __tablename__ = "topic_consensus"
    __table_args__ = (UniqueConstraint("topic_key", "fact", name="uq_topic_consensus_topic_fact"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_key: Mapped[str] = mapped_column(SafeString(TOPIC_KEY_LENGTH, key=True))
    fact: Mapped[str] = mapped_column(SafeString(CONSENSUS_FACT_LENGTH, key=True))
    value: Mapped[Any] = mapped_column(SafeJSON)
    sources: Mapped[list[Any]] = mapped_column(SafeJSON, default=list)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CheckRequest(Base):
    """A check asked for by hand (web page, API), waiting for the running daemon to carry it out; the web
    process may be another process than the daemon, so the request goes through the database.

    state: pending -> running (claimed by a daemon) -> done (with its outcome) | expired (no daemon took it).
    """

    __tablename__ = "check_requests"
    __table_args__ = (Index("ix_check_requests_state_id", "state", "id"),
                      Index("ix_check_requests_watch_id", "watch", "id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watch: Mapped[str] = mapped_column(SafeString(100))
    requested_by: Mapped[str | None] = mapped_column(SafeString(32))
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(SafeString(16), default="pending")
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    outcome: Mapped[str | None] = mapped_column(SafeString(16))
    error: Mapped[str | None] = mapped_column(SafeText)
