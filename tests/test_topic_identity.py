"""One work is one topic: across spellings, across versions of a page that drop or add the season, and across
sources (real local server, both backends)."""

from __future__ import annotations

import pytest
from sqlalchemy import distinct, select

from tests.pageserver import PageServer, Reply
from tests.test_pipeline import cycle, make_config
from watcher.store.models import ChangeEventRow, Fact, Snapshot

ARTICLE = """<html><head><title>{title}</title></head><body><article><h1>{title}</h1>
<p>{body}</p></article></body></html>"""


def reply(title: str, body: str) -> Reply:
    return Reply(body=ARTICLE.format(title=title, body=body).encode(), headers={"Content-Type": "text/html"})


@pytest.fixture
def server():
    with PageServer() as s:
        yield s


def keys(store, model=Snapshot) -> set[str]:
    with store.session() as s:
        return set(s.scalars(select(distinct(model.topic_key))))


def test_a_version_without_season_keeps_the_watch_topic(server, store, database_url):
    versions = iter([("Nightfall Season 3: release date", "Nightfall returns in early 2027 on Netflix."),
                     ("Nightfall: release date", "Nightfall now returns in late 2027 on Netflix.")])
    current = {}
    server.route("/a", lambda _: reply(*current["a"]))
    config = make_config(server, database_url, [{"name": "a", "url": server.url("/a")}])
    current["a"] = next(versions)
    cycle(store, config)
    current["a"] = next(versions)
    cycle(store, config)
    assert keys(store) == {"nightfall#3"}


def test_a_version_that_adds_the_season_adopts_the_orphan(server, store, database_url):
    versions = iter([("Nightfall: release date", "Nightfall arrives in early 2027 on Netflix."),
                     ("Nightfall Season 3: release date", "Season 3 of Nightfall arrives in late 2027 on Netflix.")])
    current = {}
    server.route("/a", lambda _: reply(*current["a"]))
    config = make_config(server, database_url, [{"name": "a", "url": server.url("/a")}])
    current["a"] = next(versions)
    cycle(store, config)
    assert keys(store) == {"nightfall"}
    current["a"] = next(versions)
    cycle(store, config)
    assert keys(store) == {"nightfall#3"}  # no orphan topic left behind
    assert keys(store, Fact) <= {"nightfall#3"} and keys(store, ChangeEventRow) <= {"nightfall#3", None}


def test_spellings_and_sources_share_one_topic(server, store, database_url):
    server.route("/a", lambda _: reply("NIGHTFALL: Season 3 release date", "Season 3 arrives in 2027 on Netflix."))
    server.route("/b", lambda _: reply("The Nightfall S3 cast", "The Nightfall season 3 adds Dana Reyes."))
    server.route("/c", lambda _: reply("Nightfall: Dana Reyes joins", "Nightfall adds Dana Reyes, who joins the "
                                                                      "cast."))
    config = make_config(server, database_url, [{"name": n, "url": server.url(f"/{n}")} for n in "abc"])
    cycle(store, config)
    assert keys(store) == {"nightfall#3"}


def test_migration_rewrites_stored_keys_to_one_per_work(database_url):
    import datetime as dt

    import sqlalchemy as sa

    from watcher.store.db import make_engine, upgrade

    engine = make_engine(database_url)
    try:
        with engine.begin() as c:  # a database left at the first schema, keys in the old form
            c.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        upgrade(engine, "0004")
        now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO watches (id, name, url, kind, config, enabled, created_at, "
                              "consecutive_failures, failure_reported) VALUES (1, 'w', 'http://x', 'html', '{}', "
                              ":t, :now, 0, :f)"), {"now": now, "t": True, "f": False})
            for i, key in enumerate(["the society#2", "society#2", "cats & dogs"], 1):
                c.execute(sa.text("INSERT INTO snapshots (id, watch_id, entry_key, fetched_at, content_hash, url, "
                                  "topic_key, content_z, facts) VALUES (:i, 1, '', :now, 'h', 'u', :k, :z, '{}')"),
                          {"i": i, "now": now, "k": key, "z": b"x"})
        upgrade(engine)
        with engine.connect() as c:
            got = sorted(r[0] for r in c.execute(sa.text("SELECT topic_key FROM snapshots")))
        assert got == ["cats and dogs", "society#2", "society#2"]
    finally:
        engine.dispose()
