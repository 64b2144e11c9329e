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
