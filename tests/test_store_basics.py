from watcher.config import SubscriberConfig, WatchConfig
from watcher.records import Document, Table
from watcher.store import Watch, decode_document, encode_document


def test_migrations_create_schema_and_sync_watches(store):
    w = WatchConfig(name="a", url="https://example.org/a", interval="1h", topic={"work": "X", "season": 2})
    ids = store.sync_watches([w])
    assert set(ids) == {"a"}
    store.sync_watches([])  # removed from config: disabled, history kept
    with store.session() as s:
        row = s.get(Watch, ids["a"])
        assert row.enabled is False and row.topic_work == "X" and row.topic_season == 2
    sub = SubscriberConfig(name="m", email="m@example.org")
    assert set(store.sync_subscribers([sub])) == {"m"}


def test_document_codec_round_trip():
    doc = Document(url="u", format="html", title="T", text="hello " * 200,
                   tables=(Table(("Actor", "Role"), (("A", "B"),)),))
    blob = encode_document(doc)
    assert len(blob) < len(doc.text) / 4
    assert decode_document(blob) == doc


def test_prune_deletes_old_checks_without_snapshots_only(store):
    import datetime as dt

    from sqlalchemy import func, select

    from watcher.store import Check, Snapshot

    w = WatchConfig(name="a", url="https://example.org/a", interval="1h")
    wid = store.sync_watches([w])["a"]
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(days=100)
    with store.session() as s:
        snap = Snapshot(watch_id=wid, content_hash="h", url="u", content_z=b"", fetched_at=old)
        s.add(snap)
        s.flush()
        s.add_all([Check(watch_id=wid, at=old, outcome="changed", snapshot_id=snap.id),
                   Check(watch_id=wid, at=old, outcome="unchanged"),
                   Check(watch_id=wid, at=old, outcome="failed", reason="timeout"),
                   Check(watch_id=wid, at=now, outcome="unchanged")])
    assert store.prune_checks(dt.timedelta(days=90)) == 2
    with store.session() as s:
        left = sorted(s.scalars(select(Check.outcome)))
        assert left == ["changed", "unchanged"]
        assert s.scalar(select(func.count()).select_from(Snapshot)) == 1
    assert store.prune_checks(dt.timedelta(days=90)) == 0


def test_models_match_migrations(store):
    """Every model change has its migration: autogenerate finds nothing left to do, on both backends."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from watcher.store.models import Base

    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": lambda o, name, type_, r, c: not (
            type_ == "table" and name == "apscheduler_jobs")})
        assert compare_metadata(context, Base.metadata) == []


def test_upgrade_keeps_queued_alerts_with_their_event(database_url):
    """An alert queued before alerts listed their events (0001) is still delivered with its event."""
    import datetime as dt

    import sqlalchemy as sa

    from watcher.store import AlertEvent, Store
    from watcher.store.db import make_engine, upgrade

    engine = make_engine(database_url)
    upgrade(engine, "0001")
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO watches (id, name, url, kind, config, enabled, created_at, "
                          "consecutive_failures, failure_reported) VALUES (1, 'w', 'https://e.org', 'html', '{}', "
                          ":t, :now, 0, :f)"), {"now": now, "t": True, "f": False})
        c.execute(sa.text("INSERT INTO subscribers (id, name, kind, target, config, enabled, created_at) VALUES "
                          "(1, 's', 'webhook', 'https://e.org/h', '{}', :t, :now)"), {"now": now, "t": True})
        c.execute(sa.text("INSERT INTO change_events (id, uid, watch_id, type, subject, summary, confidence, "
                          "detected_at, state) VALUES (1, 'e1', 1, 'release_changed', '', 's', 1.0, :now, "
                          "'confirmed')"), {"now": now})
        c.execute(sa.text("INSERT INTO alerts (id, uid, event_id, subscriber_id, status, attempts, next_attempt_at, "
                          "created_at, digest) VALUES (1, 'a1', 1, 1, 'pending', 0, :now, :now, :f)"),
                  {"now": now, "f": False})
    engine.dispose()
    store = Store.open(database_url)  # migrates to head
    try:
        with store.session() as s:
            [link] = s.scalars(sa.select(AlertEvent)).all()
            assert (link.alert_id, link.event_id, link.subscriber_id, link.position) == (1, 1, 1, 0)
    finally:
        store.close()
