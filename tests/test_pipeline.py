"""End to end on a real local server: what a check cycle leaves in the database (both backends)."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select

from tests.conftest import CORPUS
from tests.pageserver import PageServer, Reply
from watcher.config import Config
from watcher.pipeline import run_cycle
from watcher.runtime import run_sync
from watcher.store.models import ChangeEventRow, Check, Snapshot, Watch

PAGE = """<html><head><title>Show Season 2 release date</title>
<meta property="article:published_time" content="2026-03-01"></head><body>
<nav><a href="/">Home</a> <a href="/tv">TV</a></nav>
<article><h1>Show Season 2 release date</h1>
<p>Show Season 2 is expected to premiere in {window} on Netflix, according to the streamer.</p>
<p>Filming began on 3 March 2025 and the season is now in post-production.</p></article>
<aside><p>Updated {stamp}</p></aside><footer>(c) Example</footer></body></html>"""


def page(window: str, stamp: str = "today") -> Reply:
    return Reply(body=PAGE.format(window=window, stamp=stamp).encode(), headers={"Content-Type": "text/html"})


def make_config(server: PageServer, database_url: str, watches: list[dict], **extra) -> Config:
    return Config.model_validate({
        "watcher": {"database_url": database_url},
        "fetch": {"autothrottle": False, "retries": 0, "timeout": "5s", "failures_before_event": 2,
                  **extra.get("fetch", {}),
                  "allow_private": [server.allow, *extra.get("fetch", {}).get("allow_private", [])]},
        "watch": [{"interval": "1h", "kind": "html", **w} for w in watches],
    })


def cycle(store, config, names=None):
    store.sync_watches(config.watch)
    store.sync_subscribers(config.subscriber)
    return run_sync(lambda: run_cycle(store, config, names))


def history(store) -> list[str]:
    """The outcomes of every check row, the open runs of quiet checks included, per watch in time order."""
    from watcher.store.bookkeeping import check_runs

    with store.session() as s:
        return [c.outcome for c in check_runs(s)]


def count(store, model, **where):
    with store.session() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return s.scalar(q)


@pytest.fixture
def server():
    with PageServer() as s:
        yield s


def test_changed_page_gives_two_snapshots(server, store, database_url):
    windows = itertools.chain(["late 2026"], itertools.repeat("early 2027"))
    server.route("/show", lambda _: page(next(windows)))
    config = make_config(server, database_url, [{"name": "show", "url": server.url("/show")}])
    first = cycle(store, config)
    second = cycle(store, config)
    assert [r.outcome for r in first.results + second.results] == ["baseline", "changed"]
    assert count(store, Snapshot) == 2 and count(store, Check) == 2
    with store.session() as s:
        snaps = list(s.scalars(select(Snapshot).order_by(Snapshot.id)))
        assert snaps[0].content_hash != snaps[1].content_hash
        assert len(snaps[1].content_z) < len(PAGE)  # stored compressed


def test_unchanged_page_gives_one_snapshot_and_two_checks(server, store, database_url):
    stamps = itertools.count()
    # Only the sidebar changes between fetches: boilerplate, not content.
    server.route("/show", lambda _: page("early 2027", stamp=f"{next(stamps)} minutes ago"))
    config = make_config(server, database_url, [{"name": "show", "url": server.url("/show")}])
    cycle(store, config)
    second = cycle(store, config)
    assert second.results[0].outcome == "unchanged"
    assert count(store, Snapshot) == 1 and history(store) == ["baseline", "unchanged"]


def test_etag_304_counts_as_unchanged(server, store, database_url):
    reply = page("early 2027")
    reply.headers["ETag"] = '"abc"'
    server.route("/show", reply)
    config = make_config(server, database_url, [{"name": "show", "url": server.url("/show")}])
    cycle(store, config)
    second = cycle(store, config)
    assert second.results[0].outcome == "not_modified" and second.results[0].http_status == 304
    assert count(store, Snapshot) == 1 and history(store) == ["baseline", "not_modified"]


def test_wordpress_and_feed_watches(server, store, database_url):
    wp = (CORPUS / "seeds" / "blueroads-wp-post-161.json").read_bytes()
    server.route("/wp-json/wp/v2/posts/161", Reply(body=wp, headers={"Content-Type": "application/json"}))
    items = ["<item><title>A S2 news</title><link>http://e/a</link><guid>a</guid>"
             "<description>A Season 2 premieres in March 2027.</description></item>"]

    def feed(_):
        body = "<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>" + "".join(items) + "</channel></rss>"
        return Reply(body=body.encode(), headers={"Content-Type": "application/rss+xml"})

    server.route("/feed", feed)
    config = make_config(server, database_url, [
        {"name": "wp", "url": server.url("/wp-json/wp/v2/posts/161"), "kind": "wordpress",
         "topic": {"work": "All of Us Are Dead", "season": 2}},
        {"name": "feed", "url": server.url("/feed"), "kind": "feed"}])
    cycle(store, config)
    items.append("<item><title>B S3 news</title><link>http://e/b</link><guid>b</guid>"
                 "<description>B Season 3 is coming in 2028.</description></item>")
    cycle(store, config)
    with store.session() as s:
        wp_snap = s.scalars(select(Snapshot).join(Watch).where(Watch.name == "wp")).one()
        assert wp_snap.topic_key == "all of us are dead#2" and wp_snap.published.isoformat() == "2026-02-23"
        feed_keys = sorted(s.scalars(select(Snapshot.entry_key).join(Watch).where(Watch.name == "feed")))
    assert feed_keys == ["a", "b"]  # one snapshot per entry; entry a unchanged on the second cycle


def test_failures_are_recorded_and_do_not_stop_other_watches(server, store, database_url):
    server.route("/ok", page("early 2027"))
    server.route("/broken", Reply(500, b"boom"))
    config = make_config(server, database_url, [
        {"name": "ok", "url": server.url("/ok")},
        {"name": "broken", "url": server.url("/broken")},
        {"name": "nowhere", "url": "http://127.0.0.1:9/x"}], fetch={"allow_private": ["127.0.0.1:9"]})
    for _ in range(3):
        report = cycle(store, config)
        outcomes = {r.watch: r.outcome for r in report.results}
        assert outcomes["broken"] == "failed" and outcomes["nowhere"] == "failed"
        assert outcomes["ok"] in ("baseline", "changed", "unchanged")
    with store.session() as s:
        broken = s.scalars(select(Watch).where(Watch.name == "broken")).one()
        assert broken.consecutive_failures == 3 and broken.last_error.startswith("http-500")
        assert broken.backoff_until is not None
        reasons = set(s.scalars(select(Check.reason).where(Check.outcome == "failed")))
        assert reasons == {"http-500", "connection-refused"}
        failed_events = s.scalars(select(ChangeEventRow).where(ChangeEventRow.type == "fetch_failed")).all()
    # failures_before_event = 2: one event per failing watch, not one per check
    assert sorted(e.subject for e in failed_events) == ["connection-refused", "http-500"]
    server.route("/broken", page("early 2027"))
    cycle(store, config, ["broken"])
    assert count(store, ChangeEventRow, type="fetch_recovered") == 1
    with store.session() as s:
        broken = s.scalars(select(Watch).where(Watch.name == "broken")).one()
        assert broken.consecutive_failures == 0 and broken.last_status == "baseline"


def test_a_page_without_date_metadata_is_dated_by_its_byline(server, store, database_url):
    body = ("<html><head><title>Glass Harbour Season 2</title></head><body><article><h1>Glass Harbour Season 2</h1>"
            "<p>By Ann Writer | March 3, 2021</p><p>Glass Harbour Season 2 will premiere next year on Netflix, "
            "the streamer said.</p></article></body></html>")
    server.route("/gh", Reply(body=body.encode(), headers={"Content-Type": "text/html"}))
    cycle(store, make_config(server, database_url, [{"name": "gh", "url": server.url("/gh")}]))
    with store.session() as s:
        snap = s.scalars(select(Snapshot)).one()
        assert snap.published.isoformat() == "2021-03-03"
        assert snap.facts["facts"]["release"]["earliest"] == "2022-01-01"  # 'next year' of the article, not of today


def test_entries_known_new_skip_only_what_has_no_snapshot() -> None:
    """A stored snapshot skips the look-up of its entry's previous version only when the watch's current
    entry hashes say there is none: a long key counts as stored in its shortened form, a key that comes
    twice in one check has a previous version the second time, and unknown hashes (a long feed) know nothing."""
    from watcher.pipeline import _new_entries, _revises
    from watcher.processing import Processed
    from watcher.records import ENTRY_KEY_LENGTH, Document
    from watcher.text import safe_key

    def p(key: str) -> Processed:
        return Processed(Document(url="http://x/", format="html", title=None, text="t", entry_key=key), "h", None)

    long_key = "k" * (ENTRY_KEY_LENGTH + 20)
    changed = [p("a"), p("b"), p(long_key), p("d"), p("d")]
    new = _new_entries({"b": "h0", safe_key(long_key, ENTRY_KEY_LENGTH): "h1"}, changed)
    assert new == {"a"}
    assert _revises(changed, new)
    assert _new_entries({}, [p("a"), p("c")]) == {"a", "c"}
    assert not _revises([p("a"), p("c")], frozenset({"a", "c"}))
    assert _new_entries(None, changed) == frozenset()
