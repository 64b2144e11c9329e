"""Review: the CLI listings and the web site over a history built by real check cycles (both backends).

The browser tests load the pages in Debian's headless Chromium through Playwright (`/usr/bin/chromium`;
`scripts/dev test` installs it). Screenshots of the topic page land in tests/artifacts/ (ignored by git); with
WATCHER_UPDATE_SCREENSHOTS=1 the 1280 px and 390 px ones also replace docs/screenshots/ (committed).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import require_or_skip
from tests.pageserver import PageServer, Reply
from tests.receivers import free_port
from tests.test_pipeline import cycle
from watcher.cli import cli
from watcher.config import Config

ARTIFACTS = Path(__file__).parent / "artifacts"
SCREENSHOTS = Path(__file__).parent.parent / "docs" / "screenshots"
CHROMIUM = os.environ.get("WATCHER_CHROMIUM", "/usr/bin/chromium")
PAYLOAD = "<script>alert('xss')</script><img src=x onerror=\"alert('img')\">"
PAGE = """<html><head><title>Show Season 2 release date</title>
<meta property="article:published_time" content="{published}"></head><body>
<nav><a href="/">Home</a></nav>
<article><h1>Show Season 2 release date</h1>
<p>Show Season 2 is expected to premiere in {window} on Netflix, according to the streamer.</p>
<p>Filming began on 3 March 2025 and the season is now in post-production.</p>
<p>Reader comment quoted by the site: {payload}</p></article></body></html>"""


def page(window: str, published: str, payload: str = "") -> Reply:
    from html import escape

    body = PAGE.format(window=window, published=published, payload=escape(payload))
    return Reply(body=body.encode(), headers={"Content-Type": "text/html"})


@pytest.fixture
def history(store, database_url, tmp_path):
    """Two sources on one topic (127.0.0.1 and localhost are two hosts), one of which moves its window
    twice and quotes a script tag; plus a watch that only fails."""
    with PageServer() as server:
        a_versions = iter([page("late 2026", "2026-03-01"), page("early 2027", "2026-06-01", PAYLOAD)])
        server.route("/a", lambda _: next(a_versions))
        server.route("/b", page("mid 2027", "2026-05-01"))
        server.route("/gone", Reply(410, b"gone"))
        data = {
            "watcher": {"database_url": database_url},
            "fetch": {"autothrottle": False, "retries": 0, "timeout": "5s", "failures_before_event": 2,
                      "allow_private": [server.allow]},
            "watch": [
                {"name": "site-a", "url": server.url("/a"), "interval": "1h"},
                {"name": "site-b", "url": server.url("/b").replace("127.0.0.1", "localhost"), "interval": "1h"},
                {"name": "gone", "url": server.url("/gone"), "interval": "1h"}],
        }
        config = Config.model_validate(data)
        cycle(store, config)
        cycle(store, config, ["site-a", "gone"])
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(f'[watcher]\ndatabase_url = "{database_url}"\n')
    return cfg


def run_cli(cfg: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["-c", str(cfg), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


# --------------------------------------------------------------------------- CLI


def test_timeline_lists_each_sources_values_in_order(history):
    data = json.loads(run_cli(history, "timeline", "Show S2", "--json"))
    release = next(f for f in data["facts"] if f["kind"] == "release")
    claims = [(c["source"], c["display"], c["published"]) for c in release["claims"]]
    assert claims == [("127.0.0.1", "late 2026 (Sep–Dec 2026)", "2026-03-01"),
                      ("localhost", "mid 2027 (May–Aug 2027)", "2026-05-01"),
                      ("127.0.0.1", "early 2027 (Jan–Apr 2027)", "2026-06-01")]
    assert release["current"]["display"] == "early 2027 (Jan–Apr 2027)"  # newest by publication date
    assert release["disagreement"] == {"127.0.0.1": "early 2027 (Jan–Apr 2027)", "localhost": "mid 2027 (May–Aug 2027)"}
    table = run_cli(history, "timeline", "Show S2")
    assert "late 2026" in table and "early 2027" in table and "now" in table


def test_history_shows_checks_snapshots_and_failures(history):
    data = json.loads(run_cli(history, "history", "site-a", "--json"))
    assert [c["outcome"] for c in data["checks"]] == ["changed", "baseline"]
    assert len(data["snapshots"]) == 2 and data["counts"] == {"baseline": 1, "changed": 1}
    gone = json.loads(run_cli(history, "history", "gone", "--json"))
    assert [c["reason"] for c in gone["checks"]] == ["http-410", "http-410"]
    assert gone["status"] == "failed" and gone["failures"] == 2
    result = CliRunner().invoke(cli, ["-c", str(history), "history", "nope"])
    assert result.exit_code == 2 and "no watch named 'nope'" in result.output


def test_show_diff_against_previous_snapshot(history):
    snaps = json.loads(run_cli(history, "history", "site-a", "--json"))["snapshots"]
    newest, oldest = snaps[0]["id"], snaps[1]["id"]
    data = json.loads(run_cli(history, "show", str(newest), "--diff", "--json"))
    assert data["previous_id"] == oldest
    assert "-Show Season 2 is expected to premiere in late 2026" in data["diff"]
    assert "+Show Season 2 is expected to premiere in early 2027" in data["diff"]
    assert any(e["type"] == "release_changed" for e in data["events"])
    text = run_cli(history, "show", str(newest), "--diff")
    assert "+Show Season 2 is expected to premiere in early 2027" in text
    assert "nothing to compare" in run_cli(history, "show", str(oldest), "--diff")
    assert "no snapshot 9223372036854775808" in run_cli(history, "show", "9223372036854775808", code=2)


# --------------------------------------------------------------------------- web over HTTP


@pytest.fixture
def site(history, store):
    yield from _serve(store, token=None)


def _serve(store, token, **app_options):
    import uvicorn

    from watcher.web import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store, token=token, **app_options), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "web server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_pages_escape_scraped_text_and_send_csp(site):
    topic = httpx.get(f"{site}/topic/show%232")
    assert topic.status_code == 200
    csp = topic.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp  # no script may run at all
    assert topic.headers["x-content-type-options"] == "nosniff"
    assert "<svg" in topic.text and "early 2027" in topic.text
    assert "Sources disagree" in topic.text
    snap_ids = [int(p.split('"')[0]) for p in topic.text.split('href="/snapshot/')[1:]]
    for sid in set(snap_ids):
        html = httpx.get(f"{site}/snapshot/{sid}").text
        assert "<script>" not in html and "<img src=x" not in html
    newest = httpx.get(f"{site}/snapshot/{max(snap_ids)}").text
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in newest
    for path in ("/", "/watches", "/watch/gone", "/events", "/alerts", "/alerts?status=dead"):
        r = httpx.get(site + path)
        assert r.status_code == 200, path
        assert "<script" not in r.text
    assert "http-410" in httpx.get(f"{site}/watch/gone").text
    missing = httpx.get(f"{site}/topic/nothing%231")
    assert missing.status_code == 404 and "content-security-policy" in missing.headers
    for snapshot_id in ("0", "9223372036854775807", "9223372036854775808", "99999999999999999999999"):
        r = httpx.get(f"{site}/snapshot/{snapshot_id}")  # ids past 64 bits used to answer 500
        assert r.status_code == 404 and "no snapshot" in r.text, snapshot_id


def test_atom_feed_parses_back(site):
    import feedparser

    for path in ("/feed.atom", "/topic/show%232/feed.atom"):
        raw = httpx.get(site + path)
        assert raw.headers["content-type"].startswith("application/atom+xml")
        feed = feedparser.parse(raw.content)
        assert not feed.bozo, feed.get("bozo_exception")
        titles = [e.title for e in feed.entries]
        # Topics by label, values as text and dates.
        assert "Show S2: release early 2027 (Jan–Apr 2027), was late 2026 (Sep–Dec 2026)" in titles, titles
        assert all(e.id.startswith("urn:watcher:event:") for e in feed.entries)
        script_entry = next(e for e in feed.entries if "early 2027" in e.title)
        assert script_entry.link.startswith("http://127.0.0.1")


def test_calendar_has_tentative_release_span(site):
    from icalendar import Calendar

    cal = Calendar.from_ical(httpx.get(f"{site}/calendar.ics").content)
    [event] = [c for c in cal.walk("VEVENT")]
    assert str(event["summary"]) == "Show S2 release: early 2027 (Jan–Apr 2027)"
    assert event["dtstart"].dt.isoformat() == "2027-01-01"
    assert event["dtend"].dt.isoformat() == "2027-05-01"  # all-day span, end exclusive
    assert str(event["status"]) == "TENTATIVE"


def test_token_required_when_set(history, store):
    gen = _serve(store, token="t0ken-for-tests")
    base = next(gen)
    try:
        assert httpx.get(base + "/").status_code == 401
        assert httpx.get(base + "/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(base + "/", headers={"Authorization": "Bearer t0ken-for-tests"}).status_code == 200
        first = httpx.get(base + "/?token=t0ken-for-tests")
        assert first.status_code == 200 and "watcher_token" in first.headers["set-cookie"]
        assert httpx.get(base + "/watches", cookies={"watcher_token": "t0ken-for-tests"}).status_code == 200
    finally:
        next(gen, None)
    from watcher.cli.review import _web_token

    config = Config.model_validate({})
    with pytest.raises(Exception, match="needs a token"):
        _web_token(config, "0.0.0.0")
    assert _web_token(config, "127.0.0.1") is None


# --------------------------------------------------------------------------- in a real browser


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        require_or_skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                    "--disable-background-networking"])
        yield b
        b.close()


@pytest.mark.browser
def test_browser_topic_page_renders_chart_and_never_runs_scraped_script(site, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 1400})
    dialogs: list[str] = []
    console: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: console.append(m.text))
    page.goto(f"{site}/topic/show%232")
    assert page.locator("h1").inner_text() == "Show S2"
    assert page.locator("svg.chart-wide rect[rx]").count() == 3  # one bar per release claim
    assert "Sources disagree" in page.content()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "topic.png"), full_page=True)

    snapshot_links = page.locator("a[href^='/snapshot/']")
    hrefs = {snapshot_links.nth(i).get_attribute("href") for i in range(snapshot_links.count())}
    for href in sorted(hrefs):
        page.goto(site + href)
        assert page.locator("script").count() == 0
    # The payload is visible as text where it was quoted, and it did nothing.
    assert "<script>alert('xss')</script>" in page.locator("body").inner_text() or any(
        "<script>alert('xss')</script>" in browser_text(page, site + h) for h in hrefs)
    page.wait_for_timeout(300)
    assert dialogs == [] and not [m for m in console if "xss" in m or "img" in m]
    page.close()


def browser_text(page, url: str) -> str:
    page.goto(url)
    return page.locator("body").inner_text()


# --------------------------------------------------------------------------- layout at desktop and phone width

# What the layout checks need, measured by the browser: the page's width against the window's, and the box of
# every text of the chart that is shown (the page draws one per width; CSS hides the other).
MEASURE = """() => {
  const charts = [...document.querySelectorAll("svg.chart")].filter(s => s.getBoundingClientRect().width > 0);
  const box = (r) => [r.left, r.top, r.right, r.bottom];
  return {
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
    charts: charts.map(svg => ({
      box: box(svg.getBoundingClientRect()), width: svg.getAttribute("width"),
      texts: [...svg.querySelectorAll("text")].map(t => [t.textContent, ...box(t.getBoundingClientRect())]),
    })),
  };
}"""


def check_layout(page, what: str) -> dict:
    m = page.evaluate(MEASURE)
    assert m["scrollWidth"] <= m["innerWidth"], f"{what}: the page is {m['scrollWidth']}px wide in a " \
                                                f"{m['innerWidth']}px window"
    for chart in m["charts"]:
        x0, y0, x1, y1 = chart["box"]
        assert x1 <= m["innerWidth"], f"{what}: the chart runs past the window"
        texts = chart["texts"]
        for i, (text, a0, b0, a1, b1) in enumerate(texts):
            assert a1 > a0, f"{what}: {text!r} has no width"
            assert x0 - 0.5 <= a0 and a1 <= x1 + 0.5 and y0 - 0.5 <= b0 and b1 <= y1 + 0.5, \
                f"{what}: {text!r} {a0:.1f}..{a1:.1f} x {b0:.1f}..{b1:.1f} leaves the chart {chart['box']}"
            for other, c0, d0, c1, d1 in texts[i + 1:]:
                apart = a1 <= c0 + 0.5 or c1 <= a0 + 0.5 or b1 <= d0 + 0.5 or d1 <= b0 + 0.5
                assert apart, f"{what}: {text!r} overlaps {other!r}"
    return m


@pytest.mark.browser
def test_browser_topic_page_fits_1280_and_390_and_chart_labels_never_collide(site, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (1280, 390):
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{site}/topic/show%232")
        m = check_layout(page, f"topic page at {width}px")
        [chart] = m["charts"]  # exactly one drawing shows: the wide one, or the one drawn for phones
        assert chart["width"] == ("760" if width == 1280 else "360")
        assert len(chart["texts"]) >= 3 + 2  # the three claims' labels, ticks, caption
        shot = ARTIFACTS / f"topic-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("WATCHER_UPDATE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"topic-{width}.png"), full_page=True)
        for path in ("/", "/watches", "/watch/site-a", "/watch/gone", "/events", "/alerts"):
            page.goto(site + path)
            check_layout(page, f"{path} at {width}px")
        page.close()


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 390])
def test_browser_crowded_charts_keep_labels_apart_and_inside(browser, width):
    """Crowded and edge-hugging timelines (tests/chartcases.py), drawn with the site's template and style."""
    from tests.chartcases import cases
    from watcher.web import _env
    from watcher.web.chart import release_chart

    css = (Path(__file__).parent.parent / "watcher" / "web" / "static" / "style.css").read_text()
    page = browser.new_page(viewport={"width": width, "height": 900})
    for name, view in cases().items():
        html = _env.get_template("topic.html").render(view=view, chart=release_chart(view), events=[])
        html = html.replace('<link rel="stylesheet" href="/static/style.css">', f"<style>{css}</style>")
        page.set_content(html)
        check_layout(page, f"chart {name!r} at {width}px")
    page.close()
