"""After an upgrade of the extraction rules, a page's next change is compared with its previous version as
today's rules read it: what the new rules find on an unchanged part of the page is no change (both backends)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.pageserver import PageServer, Reply
from tests.test_pipeline import cycle, make_config
from watcher.changes import RULES
from watcher.extract import RULES_VERSION
from watcher.store.models import ChangeEventRow, Snapshot

PAGE = """<html><head><title>Glass Harbour Season 2 release date and cast</title>
<meta property="article:published_time" content="2026-03-01"></head><body><article>
<h1>Glass Harbour Season 2 release date and cast</h1>
<p>Glass Harbour Season 2 is expected to premiere in {window} on Netflix, the streamer said.</p>
<p>Dana Reyes will return as Marta Vell, and Tom Pell joins the cast as Declan Hart.</p>
</article></body></html>"""


@pytest.fixture
def server():
    with PageServer() as s:
        yield s


@pytest.mark.parametrize("stored_rules", ["older-rules", "current"])
def test_facts_new_rules_find_on_an_unchanged_part_are_no_change(server, store, database_url, stored_rules):
    window = ["late 2026"]
    server.route("/gh", lambda _: Reply(body=PAGE.format(window=window[0]).encode(),
                                        headers={"Content-Type": "text/html"}))
    config = make_config(server, database_url, [{"name": "gh", "url": server.url("/gh")}])
    cycle(store, config)
    # What an earlier version of the rules might have stored: one cast member missed.
    with store.session() as s:
        snap = s.scalars(select(Snapshot)).one()
        data = dict(snap.facts)
        assert set(data["facts"]["cast"]) == {"Dana Reyes", "Tom Pell"} and data[RULES] == RULES_VERSION
        data["facts"] = {**data["facts"], "cast": {"Dana Reyes": data["facts"]["cast"]["Dana Reyes"]}}
        data[RULES] = RULES_VERSION if stored_rules == "current" else stored_rules
        snap.facts = data
    window[0] = "early 2027"
    cycle(store, config)
    with store.session() as s:
        events = {(e.type, e.subject) for e in s.scalars(select(ChangeEventRow))}
    assert ("release_changed", "") in events
    if stored_rules == "current":  # stored facts are trusted while the rules that made them are in force
        assert ("cast_added", "Tom Pell") in events
    else:
        assert not any(t.startswith("cast") for t, _ in events), events
