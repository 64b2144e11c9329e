"""The store stage: SQLAlchemy models, migrations, and the Store facade the other stages use.

Public entry point: `Store.open(url)`. Other stages use `store.session()` and the models in
`watcher.store.models`; they never build engines or touch migrations themselves.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from watcher.codec import decode_document, encode_document
from watcher.config import SubscriberConfig, WatchConfig
from watcher.store.db import open_database, pg_xact_lock, safe_url
from watcher.store.models import (
    AlertEvent,
    AlertRow,
    ChangeEventRow,
    Check,
    Fact,
    Snapshot,
    Subscriber,
    TopicConsensus,
    Watch,
)

__all__ = [
    "AlertEvent",
    "AlertRow",
    "ChangeEventRow",
    "Check",
    "Fact",
    "Snapshot",
    "Store",
    "Subscriber",
    "TopicConsensus",
    "Watch",
    "decode_document",
    "encode_document",
]


# Watches synced from the config per slice (Store.sync_watches).
SYNC_SLICE = 500

# PostgreSQL advisory lock of config syncs ("sync").
_SYNC_LOCK = 0x73796E63


def _serialise_sync(s: Session) -> None:
    """Processes starting together on one PostgreSQL database (a scheduler and its workers) sync the config
    one at a time: each reads which watches exist and inserts the others, so two at once would insert the
    same names and one would die on the unique constraint. Held until the transaction ends."""
    pg_xact_lock(s, _SYNC_LOCK)


class Store:
    def __init__(self, engine: Engine, sessions: sessionmaker[Session]) -> None:
        self.engine = engine
        self.sessions = sessions

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, migrate_apart: bool = False, **engine_kwargs: Any) -> Store:
        """`migrate_apart`: a long-running process migrates a database behind the code in a child process
        (watcher.store.db.upgrade_apart)."""
        engine, sessions = open_database(url, migrate=migrate, migrate_apart=migrate_apart, **engine_kwargs)
        return cls(engine, sessions)

    def __repr__(self) -> str:
        return f"Store({safe_url(str(self.engine.url))})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def recover(self, exc: BaseException) -> None:
        """After an error that says the database is unavailable. A PostgreSQL connection that met a read-only
        server (a standby after fail-over, `default_transaction_read_only`) stays read-only for its life:
        drop the pool so the next attempt connects afresh. SQLite has nothing to reconnect."""
        if self.dialect != "sqlite":
            self.engine.dispose()

    def prune_checks(self, older_than: dt.timedelta) -> int:
        """Delete check rows older than `older_than` that carry no snapshot (unchanged re-checks and
        failures): the bulk of a long-running database. Snapshots, facts, events and alerts are kept, and
        so is every check that stored a snapshot. A run of quiet checks goes when its latest check is older
        (one still going on is kept whole). Returns the number of checks deleted (a run counts its repeats)."""
        cutoff = dt.datetime.now(dt.UTC) - older_than
        old = (func.coalesce(Check.last_at, Check.at) < cutoff, Check.snapshot_id.is_(None))
        with self.session() as s:
            checks = s.scalar(select(func.coalesce(func.sum(Check.repeats), 0)).where(*old))
            s.execute(delete(Check).where(*old))
            return int(checks or 0)

    # ------------------------------------------------------------------ config sync

    def sync_watches(self, configs: list[WatchConfig]) -> dict[str, int]:
        """Upsert watches from config (by name); watches gone from config are disabled, not deleted,
        so their history stays reviewable. Returns name -> id."""
        # In slices of SYNC_SLICE watches, each flushed and let go (one transaction still): with 10,000 watches,
        # loading them all at once held 10,000 ORM objects and their config dicts, and the daemon's memory
        # kept the high-water mark of it (about 20 MB).
        with self.session() as s:
            _serialise_sync(s)
            ids: dict[str, int] = {}
            for i in range(0, len(configs), SYNC_SLICE):
                part = configs[i:i + SYNC_SLICE]
                existing = {w.name: w for w in s.scalars(select(Watch).where(Watch.name.in_({c.name for c in part})))}
                for c in part:
                    w = existing.get(c.name)
                    if w is None:
                        w = Watch(name=c.name)
                        s.add(w)
                        existing[c.name] = w
                    # Keys starting with "_" are runtime state (failure episode), not config: keep them.
                    state = {k: v for k, v in (w.config or {}).items() if k.startswith("_")}
                    if w.url is not None and (w.url != c.url or w.kind != c.kind):
                        # Edited to read another resource: the old one's validators and body hash do not apply,
                        # here or in the memory of a running process (the revision tells it).
                        w.etag = w.last_modified = w.body_hash = None
                        w.state_rev = (w.state_rev or 0) + 1
                    w.url = c.url
                    w.kind = c.kind
                    w.topic_work = c.topic.work if c.topic else None
                    w.topic_season = c.topic.season if c.topic else None
                    w.config = {**c.model_dump(mode="json"), **state}
                    w.enabled = c.enabled
                s.flush()
                ids.update((name, w.id) for name, w in existing.items())
                s.expunge_all()
            gone = [watch_id for name, watch_id in s.execute(select(Watch.name, Watch.id)) if name not in ids]
            for i in range(0, len(gone), SYNC_SLICE):
                for w in s.scalars(select(Watch).where(Watch.id.in_(gone[i:i + SYNC_SLICE]))):
                    w.enabled = False
            s.flush()
            return ids

    def sync_subscribers(self, configs: list[SubscriberConfig]) -> dict[str, int]:
        with self.session() as s:
            _serialise_sync(s)
            existing = {x.name: x for x in s.scalars(select(Subscriber))}
            for c in configs:
                sub = existing.get(c.name)
                if sub is None:
                    sub = Subscriber(name=c.name)
                    s.add(sub)
                    existing[c.name] = sub
                sub.kind = c.kind
                sub.target = c.target
                sub.config = c.model_dump(mode="json")
                sub.enabled = True
            names = {c.name for c in configs}
            for name, sub in existing.items():
                if name not in names:
                    sub.enabled = False
            s.flush()
            return {name: x.id for name, x in existing.items() if name in names}
