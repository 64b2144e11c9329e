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
