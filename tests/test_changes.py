"""Change events through the whole pipeline (real local server, both backends): confirmation,
flicker, noise, the topic view across sources and the `changes` / `topic` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.pageserver import PageServer, Reply
from tests.test_pipeline import cycle, make_config
from watcher.cli import cli
from watcher.store.models import ChangeEventRow
from watcher.topic import topic_view

ARTICLE = """<html><head><title>Show Season 2: release date, cast and news</title>
<meta property="article:published_time" content="{published}"></head><body>
<nav><a href="/">Home</a> <a href="/tv">TV</a></nav>
<article><h1>Show Season 2: release date, cast and news</h1>
<p>Show Season 2 is expected to premiere in {window} on Netflix, according to the streamer.</p>
<p>Filming of the second season began on 3 March 2025 and the season is now in {stage}.</p>
{extra}</article>
<aside><h3>Trending</h3><p>Updated {stamp} minutes ago</p></aside></body></html>"""


class Site:
    """A page whose claims the test edits between cycles."""

    def __init__(self, window: str, published: str = "2026-03-01", stage: str = "post-production") -> None:
        self.window, self.published, self.stage, self.extra, self.stamp = window, published, stage, "", 0

    def __call__(self, _request: object) -> Reply:
        self.stamp += 1  # the sidebar changes on every fetch: boilerplate, never an event
        body = ARTICLE.format(window=self.window, published=self.published, stage=self.stage, extra=self.extra,
                              stamp=self.stamp)
        return Reply(body=body.encode(), headers={"Content-Type": "text/html; charset=utf-8"})


@pytest.fixture
def server():
    with PageServer() as s:
        yield s


TOPIC = {"work": "Show", "season": 2}


def events(store, *, state: str | None = "confirmed") -> list[tuple[str, str, str]]:
    with store.session() as s:
        q = select(ChangeEventRow).order_by(ChangeEventRow.id)
        if state:
            q = q.where(ChangeEventRow.state == state)
        return [(r.type, r.subject, r.summary) for r in s.scalars(q)]


def test_first_snapshot_is_a_baseline_and_a_fact_change_is_one_typed_event(server, store, database_url):
    site = Site("late 2026")
    server.route("/show", site)
    config = make_config(server, database_url, [{"name": "show", "url": server.url("/show"), "topic": TOPIC}])
    cycle(store, config)
    assert events(store) == []
    cycle(store, config)  # only the sidebar changed
    assert events(store) == []
    site.window = "early 2027"
    cycle(store, config)
    assert events(store) == [("release_changed", "", "release early 2027 (Jan–Apr 2027), was late 2026 (Sep–Dec 2026)")]
    cycle(store, config)
    assert len(events(store)) == 1  # seen again: stored once


def test_text_change_without_a_fact_change(server, store, database_url):
    site = Site("early 2027")
    server.route("/show", site)
    config = make_config(server, database_url, [{"name": "show", "url": server.url("/show"), "topic": TOPIC}])
    cycle(store, config)
    site.extra = "<p>The showrunner thanked the fans for their patience in a long interview.</p>"
    cycle(store, config)
    (event,) = events(store)
    assert event[0] == "text_changed"
    with store.session() as s:
        row = s.scalars(select(ChangeEventRow)).one()
        assert "+The showrunner thanked the fans" in row.new["diff"]


def test_confirm_two_alerts_only_after_a_second_sighting(server, store, database_url):
    site = Site("late 2026")
    server.route("/show", site)
    config = make_config(server, database_url,
                         [{"name": "show", "url": server.url("/show"), "topic": TOPIC, "confirm": 2}])
    cycle(store, config)
    site.window = "early 2027"
    cycle(store, config)
    assert events(store) == [] and [e[0] for e in events(store, state="pending")] == ["release_changed"]
    cycle(store, config)  # seen a second time (same content)
    assert [e[0] for e in events(store)] == ["release_changed"]


def test_confirm_two_drops_a_flicker_and_its_reversal(server, store, database_url):
    site = Site("late 2026")
    server.route("/show", site)
    config = make_config(server, database_url,
                         [{"name": "show", "url": server.url("/show"), "topic": TOPIC, "confirm": 2}])
    cycle(store, config)
    site.window = "early 2027"
    cycle(store, config)
    site.window = "late 2026"  # back before anyone was told
    cycle(store, config)
    cycle(store, config)
    assert events(store) == []
    assert [e[0] for e in events(store, state="dropped")] == ["release_changed"]


def test_topic_view_across_sources_and_consensus_event(server, store, database_url):
    older, newer = Site("late 2026", published="2026-03-01"), Site("early 2027", published="2026-05-01")
    server.route("/a", older)
    server.route("/b", newer)
    # Two sources: the same server under two host names.
    url_b = server.url("/b").replace("127.0.0.1", "localhost")
    config = make_config(server, database_url, [
        {"name": "site-a", "url": server.url("/a"), "topic": TOPIC},
        {"name": "site-b", "url": url_b, "topic": TOPIC}])
    cycle(store, config)
    with store.session() as s:
        view = topic_view(s, "Show S2")
        line = view.line("release")
        assert line.current.display == "early 2027 (Jan–Apr 2027)" and line.current.watch == "site-b"
        assert line.disagreement == {"127.0.0.1": "late 2026 (Sep–Dec 2026)", "localhost": "early 2027 (Jan–Apr 2027)"}
        assert view.line("production").disagreement == {}
        assert sorted(view.line("production").sources) == ["127.0.0.1", "localhost"]  # they agree
    assert events(store) == []
    older.window, older.published = "March 2027", "2026-06-01"  # newest publication now says March 2027
    cycle(store, config)
    # Still two values: no consensus event (the topic page shows the disagreement).
    assert [e[0] for e in events(store)] == ["release_changed"]
    assert events(store)[0][2] == "release March 2027, was late 2026 (Sep–Dec 2026)"
    with store.session() as s:
        line = topic_view(s, "show#2").line("release")
        assert [c.display for c in line.claims] == ["late 2026 (Sep–Dec 2026)", "early 2027 (Jan–Apr 2027)",
                                                    "March 2027"]
        assert line.current.display == "March 2027"
        assert line.disagreement == {"127.0.0.1": "March 2027", "localhost": "early 2027 (Jan–Apr 2027)"}
    newer.window, newer.published = "March 2027", "2026-06-02"  # the second source catches up
    cycle(store, config)
    consensus = [e for e in events(store) if e[0] == "topic_consensus_changed"]
    assert consensus == [("topic_consensus_changed", "release",
                          "sources now agree on release: March 2027 after disagreeing — per 127.0.0.1, localhost")]


def test_changes_and_topic_commands(server, store, database_url, tmp_path: Path):
    site = Site("late 2026")
    server.route("/show", site)
    config = make_config(server, database_url, [{"name": "show", "url": server.url("/show"), "topic": TOPIC}])
    cycle(store, config)
    site.window, site.stage = "early 2027", "production"  # "now in production": filming
    cycle(store, config)
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(f'[watcher]\ndatabase_url = "{database_url}"\n')
    runner = CliRunner(env={"WATCHER_DATABASE_URL": None})
    result = runner.invoke(cli, ["-c", str(cfg), "changes", "--topic", "Show S2", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert sorted(e["type"] for e in listed) == ["production_changed", "release_changed"]
    assert all(len(e["event_id"]) == 64 and e["watch"] == "show" for e in listed)
    result = runner.invoke(cli, ["-c", str(cfg), "topic", "Show S2", "--json"], catch_exceptions=False)
    view = json.loads(result.output)
    current = {f["kind"]: f["current"]["display"] for f in view["facts"] if not f["subject"] and f["current"]}
    assert current["release"] == "early 2027 (Jan–Apr 2027)" and current["production"] == "filming"
    result = runner.invoke(cli, ["-c", str(cfg), "topic", "Nothing S9"])
    assert result.exit_code == 2 and "no snapshot is about topic" in result.output
