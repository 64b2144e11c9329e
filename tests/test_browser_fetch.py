"""`kind = "browser"` watches: pages rendered by Debian's headless Chromium through scrapy-playwright.

Real Chromium (`/usr/bin/chromium`, or WATCHER_CHROMIUM; `scripts/dev test` installs it) against real local
servers on 127.0.0.1; skipped with the reason when Chromium is absent (failed under WATCHER_REQUIRE_SERVICES).
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from spiders.browser import CHROMIUM
from spiders.fetch import fetch_many
from tests.conftest import require_or_skip
from tests.pageserver import PageServer, Reply
from tests.test_pipeline import cycle, make_config
from watcher.codec import decode_document
from watcher.config import Config, FetchConfig
from watcher.errors import ConfigError
from watcher.records import FetchRequest
from watcher.runtime import run_sync
from watcher.store.models import Snapshot, Watch

# The text exists only once the script has run: a plain fetch sees an empty <article>.
JS_PAGE = b"""<!doctype html><html><head><title>Show Season 2 release date</title>
<meta property="article:published_time" content="2026-03-01"></head><body>
<article id="story"><h1>Show Season 2 release date</h1></article>
<script>
setTimeout(function () {
  var p = document.createElement("p");
  p.id = "release";
  p.textContent = "Show Season 2 is expected to premiere in early 2027 on Netflix, according to the streamer. "
    + "Filming began on 3 March 2025 and the season is now in post-production.";
  document.getElementById("story").appendChild(p);
}, 300);
</script></body></html>"""
TEXT = "premiere in early 2027"


@pytest.fixture
def chromium():
    if not os.path.exists(CHROMIUM):
        require_or_skip(f"browser watches need Chromium at {CHROMIUM} (apt-get install chromium, or set "
                        "WATCHER_CHROMIUM)")


@pytest.fixture
def server():
    with PageServer() as s:
        s.route("/show", Reply(body=JS_PAGE, headers={"Content-Type": "text/html; charset=utf-8"}))
        s.route("/same-page", Reply(body=JS_PAGE, headers={"Content-Type": "text/html; charset=utf-8"}))
        yield s


def fetch(config: FetchConfig, *reqs: FetchRequest):
    return run_sync(lambda: fetch_many(config, list(reqs)))


def fast(*allow: str, **kw) -> FetchConfig:
    return FetchConfig(autothrottle=False, retries=0, timeout=kw.pop("timeout", "15s"), allow_private=list(allow),
                       **kw)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_browser_watch_sees_the_text_a_script_writes_and_a_plain_watch_does_not(server, store, database_url):
    config = make_config(server, database_url, [
        {"name": "rendered", "url": server.url("/show"), "kind": "browser",
         "topic": {"work": "Show", "season": 2}, "browser": {"wait_for": "#release", "timeout": "15s"}},
        {"name": "plain", "url": server.url("/same-page"), "kind": "html",
         "topic": {"work": "Show", "season": 2}},
    ], fetch={"timeout": "15s"})
    report = cycle(store, config)
    assert {r.watch: r.outcome for r in report.results} == {"rendered": "baseline", "plain": "baseline"}, report
    with store.session() as s:
        rows = s.execute(select(Watch.name, Snapshot.facts, Snapshot.content_z)
                         .join(Snapshot, Snapshot.watch_id == Watch.id)).all()
    facts = {name: f["facts"] for name, f, _ in rows}
    text = {name: decode_document(z).text for name, _, z in rows}
    # Only the browser saw the sentence, so only its snapshot has the facts it states.
    assert TEXT in text["rendered"] and TEXT not in text["plain"]
    release = facts["rendered"]["release"]
    assert release["earliest"].startswith("2027-01") and facts["rendered"]["platform"]["value"] == "Netflix"
    assert facts["rendered"]["production"]["value"] == "post-production"
    assert "release" not in facts["plain"] and "platform" not in facts["plain"]
    # A second cycle: the rendered page is the same, so nothing changed (same body, not parsed again).
    again = cycle(store, config, ["rendered"])
    assert [r.outcome for r in again.results] == ["unchanged"], again


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_browser_fetch_outcome_and_plain_fetch_of_the_same_page(server):
    config = fast(server.allow)
    rendered, plain = fetch(config, FetchRequest("r", server.url("/show"), "browser", wait_for="#release"),
                            FetchRequest("p", server.url("/show"), "html"))
    assert rendered.status == "ok" and rendered.http_status == 200, rendered
    # The body is the DOM as the script left it; the plain fetch has only the script that would write it.
    assert '<p id="release">Show Season 2' in rendered.documents[0].body
    assert rendered.documents[0].title == "Show Season 2 release date"
    assert plain.status == "ok" and '<p id="release">' not in plain.documents[0].body
    assert rendered.final_url == server.url("/show")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_wait_for_selector_that_never_appears_times_out_within_the_budget(server):
    (outcome,) = fetch(fast(server.allow, timeout="10s"),
                       FetchRequest("r", server.url("/show"), "browser", wait_for="#never", browser_timeout=2))
    assert outcome.status == "failed" and outcome.reason == "timeout", outcome
    assert "'#never' did not appear within 2s" in outcome.error and outcome.duration_ms < 9000


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_egress_policy_reaches_into_the_browser(server):
    with PageServer() as other:  # another port on 127.0.0.1: not listed, so not reachable
        other.route("/secret", Reply(body=b"<html><body><p>internal</p></body></html>",
                                     headers={"Content-Type": "text/html", "Access-Control-Allow-Origin": "*"}))
        other.route("/pixel.png", Reply(body=b"x", headers={"Content-Type": "image/png"}))
        server.route("/peek", Reply(body=f"""<html><body><article><p id="out">waiting</p></article>
<img src="{other.url('/pixel.png')}">
<script>fetch("{other.url('/secret')}").then(r => r.text()).then(t => {{ document.getElementById("out").id = "x";
  document.body.insertAdjacentHTML("beforeend", "<p id='done'>leaked " + t + "</p>"); }})
  .catch(e => document.body.insertAdjacentHTML("beforeend", "<p id='done'>blocked</p>"));</script>
</body></html>""".encode(), headers={"Content-Type": "text/html"}))
        server.route("/away", Reply(302, b"", headers={"Location": other.url("/secret")}))
        server.route("/go", Reply(body=f"""<html><body><script>location.href = "{other.url('/secret')}";
</script></body></html>""".encode(), headers={"Content-Type": "text/html"}))
        config = fast(server.allow)
        peek, away, go, direct = fetch(
            config,
            FetchRequest("peek", server.url("/peek"), "browser", wait_for="#done"),
            FetchRequest("away", server.url("/away"), "browser"),
            FetchRequest("go", server.url("/go"), "browser"),
            FetchRequest("direct", other.url("/secret"), "browser"))
        # A script's fetch and an image to an address fetch.allow_private does not list never left Chromium.
        assert peek.status == "ok" and "blocked" in peek.documents[0].body and "internal" not in peek.documents[0].body
        assert away.status == "failed" and away.reason == "blocked-address", away  # an HTTP redirect
        assert "led the browser to" in away.error
        assert go.reason == "blocked-address" and "navigated to" in go.error, go  # a script's navigation
        assert direct.reason == "blocked-address", direct  # the start URL, as for any fetch
        # The redirect's target was requested by Chromium before the final check refused it (see the note in
        # spiders/browser.py); the script's fetch, the image and the script navigation never were.
        asked = [path for path, _ in other.requests]
        assert "/pixel.png" not in asked and asked.count("/secret") == 1


def test_browser_options_only_for_browser_watches():
    base = {"name": "w", "url": "https://example.org/", "interval": "1h"}
    Config.model_validate({"watch": [{**base, "kind": "browser", "browser": {"wait_for": "#a .b", "timeout": "20s"}}]})
    with pytest.raises((ConfigError, ValueError), match="kind = \"browser\""):
        Config.model_validate({"watch": [{**base, "kind": "html", "browser": {"wait_for": "#a"}}]})
    with pytest.raises((ConfigError, ValueError), match="not a CSS selector"):
        Config.model_validate({"watch": [{**base, "kind": "browser", "browser": {"wait_for": "##"}}]})


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_fetch_deadline_bounds_a_longer_browser_timeout(server):
    # fetch.timeout 3s, no retries: the deadline is 6s and one timeout of it is kept for robots.txt, so a
    # 60s browser timeout is cut to 3s.
    config = FetchConfig(autothrottle=False, retries=0, timeout="3s", allow_private=[server.allow])
    (outcome,) = fetch(config, FetchRequest("r", server.url("/show"), "browser", wait_for="#never",
                                            browser_timeout=60))
    assert outcome.status == "failed" and outcome.reason == "timeout", outcome
    assert "within 3s" in outcome.error and outcome.duration_ms < config.fetch_deadline.total_seconds() * 1000


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_watcher_add_kind_browser_previews_the_rendered_facts(server, tmp_path):
    from watcher.manage import propose

    config = Config.model_validate({"fetch": {"autothrottle": False, "retries": 0, "timeout": "15s",
                                              "allow_private": [server.allow]}})
    proposal = propose(server.url("/show"), config, kind="browser", topic="Show S2")
    assert proposal.entry["kind"] == "browser" and "Chromium" in proposal.detected
    [preview] = proposal.previews
    assert preview.facts["facts"]["platform"]["value"] == "Netflix", preview.facts


def test_urlwatch_browser_job_keeps_its_css_wait_for(tmp_path):
    from watcher.importers import read_import

    urls = tmp_path / "urls.yaml"
    urls.write_text("name: Studio page\nnavigate: https://studio.example.org/s2\nwait_for: '#release .date'\n"
                    "---\nnavigate: https://studio.example.org/s3\nwait_for: networkidle0\n")
    first, second = read_import("urlwatch", urls)
    assert first.entry["kind"] == "browser" and first.entry["browser"] == {"wait_for": "#release .date"}
    assert "browser" not in second.entry and "wait_for 'networkidle0' not imported" in second.notes


def test_without_chromium_a_browser_watch_fails_with_its_reason_and_plain_ones_do_not(server, monkeypatch):
    monkeypatch.setattr("spiders.browser.CHROMIUM", "/nonexistent/chromium")
    rendered, plain = fetch(fast(server.allow), FetchRequest("r", server.url("/show"), "browser"),
                            FetchRequest("p", server.url("/show"), "html"))
    assert rendered.status == "failed" and rendered.reason == "browser-unavailable", rendered
    assert "apt-get install chromium" in rendered.error and "/nonexistent/chromium" in rendered.error
    assert plain.status == "ok"
