"""What subscribers receive, end to end on real local servers (pages, aiosmtpd, a webhook receiver), on both
backends: one message per check, true consensus, new articles, noise control, config checked up front.

The email and webhook body of the page-update test are written to tests/artifacts/ (the README shows them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import html
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import CORPUS
from tests.pageserver import PageServer, Reply
from tests.receivers import SmtpSink, free_port
from tests.test_changes import Site
from tests.test_pipeline import cycle
from watcher.config import Config, load_config
from watcher.errors import ConfigError
from watcher.notify import deliver_due
from watcher.review import readable_summary
from watcher.store.models import AlertEvent, AlertRow, ChangeEventRow
from watcher.text import shorten
from watcher.topic import subscriber_topic_warnings, topic_view

ARTIFACTS = Path(__file__).parent / "artifacts"
SECRET = "alert-test-secret"
SECRET_ENV = "WATCHER_TEST_ALERT_SECRET"
WEB = "http://watcher.test:8080"
AOUAD = {"work": "All of Us Are Dead", "season": 2}


def make_config(database_url: str, watches: list[dict], subscribers: list[dict], smtp_port: int = 25,
                **extra) -> Config:
    return Config.model_validate({
        "watcher": {"database_url": database_url},
        # The page servers of these tests listen on 127.0.0.1 (localhost resolves there too).
        "fetch": {"autothrottle": False, "retries": 0, "timeout": "5s", "allow_private": ["127.0.0.1"]},
        "notify": {"backoff_base": "1s", "timeout": "5s",
                   "smtp": {"host": "127.0.0.1", "port": smtp_port, "timeout": "5s"}},
        "watch": [{"interval": "1h", **w} for w in watches],
        "subscriber": subscribers, **extra})


def web_site(store, **app_options):
    """`watcher web` over `store` on a real local port (the test_review helper as a context manager)."""
    from tests.test_review import _serve

    return contextlib.contextmanager(_serve)(store, None, **app_options)


def stored_events(store, type_: str | None = None) -> list[ChangeEventRow]:
    with store.session() as s:
        q = select(ChangeEventRow).where(ChangeEventRow.state == "confirmed").order_by(ChangeEventRow.id)
        if type_:
            q = q.where(ChangeEventRow.type == type_)
        rows = list(s.scalars(q))
        s.expunge_all()
        return rows


@pytest.fixture
def server():
    with PageServer() as s:
        yield s


@pytest.fixture
def sink():
    smtp = SmtpSink().start()
    yield smtp
    smtp.stop()


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)


# --------------------------------------------------------------------------- one message per check


def wordpress_versions() -> tuple[bytes, bytes]:
    """The same WordPress post before and after an update: the 2022 article (release '2023', in development),
    then the 2026 one (early 2027, post-production, filming dates and a cast of thirteen)."""
    new = json.loads((CORPUS / "seeds" / "blueroads-wp-post-161.json").read_bytes())
    title, _, body = (CORPUS / "seeds" / "aouad-s2-release-2022.txt").read_text().partition("\n")
    paragraphs = "".join(f"<p>{html.escape(p.strip())}</p>\n" for p in body.split("\n\n") if p.strip())
    old = {k: v for k, v in new.items() if not k.startswith("yoast")}
    old.update(date="2022-04-01T10:00:00", date_gmt="2022-04-01T10:00:00", modified="2022-04-01T10:00:00",
               modified_gmt="2022-04-01T10:00:00", title={"rendered": html.escape(title)},
               content={"rendered": paragraphs, "protected": False})
    return json.dumps(old).encode(), json.dumps(new).encode()


def test_page_update_is_one_email_and_one_webhook_per_subscriber(server, store, database_url, hook, sink,
                                                                 secret):
    versions = iter(wordpress_versions())
    current = {"body": next(versions)}
    server.route("/wp-json/wp/v2/posts/161", lambda _: Reply(body=current["body"],
                                                             headers={"Content-Type": "application/json"}))
    config = make_config(
        database_url,
        [{"name": "blueroads-aouad-s2", "url": server.url("/wp-json/wp/v2/posts/161"), "kind": "wordpress",
          "topic": AOUAD}],
        [{"name": "reader", "email": "reader@example.org", "topics": ["All of Us Are Dead S2"]},
         {"name": "hook", "webhook": hook.url, "secret_env": SECRET_ENV}],
        smtp_port=sink.port, web={"base_url": WEB})
    assert cycle(store, config).results[0].alerts == 0  # the first fetch is the baseline
    current["body"] = next(versions)
    [result] = cycle(store, config).results
    events = stored_events(store)
    n = len(events)
    assert result.outcome == "changed" and result.events == n and n >= 10
    assert result.alerts == 2  # one per subscriber, whatever the number of events
    report = deliver_due(store, config)
    assert (report.sent, report.retrying, report.dead) == (2, 0, 0)
    assert deliver_due(store, config).attempted == 0

    # Exactly one email, listing every event, the most important first.
    [msg] = sink.messages
    subject = msg["Subject"].strip()  # a long subject is folded onto its own line
    assert subject == f"All of Us Are Dead S2: release early 2027 (was 2023) and {n - 1} more changes"
    text = msg.get_body(("plain",)).get_content()
    mail_html = msg.get_body(("html",)).get_content()
    lines = [line.split(". ", 1)[1] for line in text.splitlines() if line[:1].isdigit() and ". " in line]
    # Every event is listed; the cast members the 2026 version no longer lists (its 2022 version named the
    # first season's cast) read as one line naming each of them.
    removed = [e for e in events if e.type == "cast_removed"]
    assert len(removed) >= 4
    [gone] = [line for line in lines if " cast members no longer listed: " in line]
    assert gone.startswith(f"{len(removed)} cast members no longer listed: ")
    assert all(e.subject in gone for e in removed) and "Kim Byung-chul (Lee Byeong-chan)" in gone
    assert "was as " not in text and "no longer listed" not in text.replace(gone, "")
    assert sorted(line for line in lines if line != gone) == sorted(readable_summary(e) for e in events
                                                                    if e.type != "cast_removed")
    assert lines[0] == "release early 2027 (Jan–Apr 2027), was 2023"
    each = [line for line in lines if line != gone]
    types = [next(e.type for e in events if readable_summary(e) == line) for line in each]
    order = ["release_changed", "renewal_changed", "production_changed", "filming_changed"]
    facts_first = [t for t in types if t in order]
    assert facts_first == sorted(facts_first, key=order.index) and types[:len(facts_first)] == facts_first
    exit_at = lines.index("Roh Yoon-seo: exited")
    joins = [i for i, line in enumerate(lines) if " joins " in line]
    assert joins and exit_at < lines.index(gone) < min(joins)  # cast exits, then removals, then additions
    assert "Park Ji-hu joins as Nam On-jo (returning)" in lines
    # A passage is quoted once per message, however many events it is the evidence of.
    quotes = [line.strip() for line in text.splitlines() if line.startswith('   "')]
    assert quotes and len(quotes) == len(set(quotes))
    assert "earliest" not in text and "announced" not in text  # values read as text, never as dicts
    snapshot_link = f"{WEB}/snapshot/"
    assert f"in watcher: {snapshot_link}" in text and f'href="{snapshot_link}' in mail_html
    with store.session() as s:  # the outbox holds one alert per subscriber, listing every event
        for alert in s.scalars(select(AlertRow)):
            listed = s.scalars(select(AlertEvent.event_id).where(AlertEvent.alert_id == alert.id)).all()
            assert sorted(listed) == sorted(e.id for e in events) and alert.status == "sent"

    # Exactly one webhook: the alert id as idempotency key, every event with its own stable id.
    [hit] = hook.hits
    body = json.loads(hit.body)
    assert body["event_id"] == hit.headers["X-Watcher-Event-Id"] != msg["X-Watcher-Event-Id"]
    assert body["version"] == 2 and body["type"] == "alert" and body["subscriber"] == "hook"
    assert body["topic"] == "all of us are dead#2" and body["topic_label"] == "All of Us Are Dead S2"
    assert body["watch"] == "blueroads-aouad-s2" and body["source_url"].startswith("https://blueroads.in/")
    assert body["summary"] == subject and body["link"].startswith(snapshot_link)
    assert body["events"][0]["change_id"] == next(e.uid for e in events if e.type == "release_changed")
    assert sorted(e["change_id"] for e in body["events"]) == sorted(e.uid for e in events)
    assert [e["summary"] for e in body["events"] if e["type"] != "cast_removed"] == each
    assert sorted(e["summary"] for e in body["events"] if e["type"] == "cast_removed") == sorted(
        readable_summary(e) for e in removed)  # the webhook keeps one entry per event
    for event in body["events"]:
        assert {"change_id", "type", "old", "new", "summary", "evidence", "detected_at"} <= set(event)
    release = body["events"][0]
    assert release["old"]["text"] == "2023" and release["new"]["text"] == "early 2027"
    ts = hit.headers["X-Watcher-Timestamp"]
    mac = hmac.new(SECRET.encode(), ts.encode() + b"." + hit.body, hashlib.sha256).hexdigest()
    assert hit.headers["X-Watcher-Signature"] == "sha256=" + mac

    ARTIFACTS.mkdir(exist_ok=True)
    head = "".join(f"{k}: {msg[k].strip()}\n" for k in ("Subject", "From", "To", "Message-ID", "X-Watcher-Event-Id"))
    (ARTIFACTS / "alert-email.txt").write_text(head + "\n" + text)
    hook_head = "".join(f"{k}: {hit.headers[k]}\n" for k in ("Content-Type", "X-Watcher-Event-Id",
                                                            "X-Watcher-Timestamp", "X-Watcher-Signature"))
    (ARTIFACTS / "alert-webhook.txt").write_text(
        f"POST /hook\n{hook_head}\n" + json.dumps(body, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- consensus


def two_sources(server: PageServer, a: Site, b: Site) -> list[dict]:
    server.route("/a", a)
    server.route("/b", b)
    topic = {"work": "Show", "season": 2}
    # 127.0.0.1 and localhost: two hosts, so two sources.
    return [{"name": "site-a", "url": server.url("/a"), "topic": topic},
            {"name": "site-b", "url": server.url("/b").replace("127.0.0.1", "localhost"), "topic": topic}]


def test_consensus_only_when_every_current_source_agrees(server, store, database_url, hook):
    a, b = Site("early 2027", published="2026-03-01"), Site("early 2027", published="2026-03-02")
    config = make_config(database_url, two_sources(server, a, b),
                         [{"name": "fan", "webhook": hook.url, "topics": ["Show S2"]}])
    cycle(store, config)
    assert stored_events(store) == []  # two sources joining a topic: baseline
    a.window, a.published = "late 2027", "2026-06-01"
    cycle(store, config)
    assert [e.type for e in stored_events(store)] == ["release_changed"]  # no consensus: they disagree
    with store.session() as s:
        line = topic_view(s, "Show S2").line("release")
        assert line.disagreement == {"127.0.0.1": "late 2027 (Sep–Dec 2027)", "localhost": "early 2027 (Jan–Apr 2027)"}
        assert line.agreement is None
    b.window, b.published = "late 2027", "2026-06-02"  # the second source catches up
    report = cycle(store, config)
    [consensus] = stored_events(store, "topic_consensus_changed")
    assert consensus.summary == ("sources now agree on release: late 2027 (Sep–Dec 2027), was early 2027 "
                                 "(Jan–Apr 2027) — per 127.0.0.1, localhost")
    assert consensus.new["text"] == "late 2027" and consensus.old["text"] == "early 2027"
    with store.session() as s:
        line = topic_view(s, "Show S2").line("release")
        assert line.disagreement == {} and sorted(line.sources) == ["127.0.0.1", "localhost"]
    # That check of site-b is one alert: its own change and the consensus it made.
    assert sum(r.alerts for r in report.results) == 1
    deliver_due(store, config)
    last = json.loads(hook.hits[-1].body)
    assert [e["type"] for e in last["events"]] == ["release_changed", "topic_consensus_changed"]
    assert last["events"][1]["link"] is None  # no web.base_url configured: no watcher link

    # A source that wanders off and comes back to what everyone agreed on raises no second consensus.
    a.window, a.published = "mid 2027", "2026-07-01"
    cycle(store, config)
    a.window, a.published = "late 2027", "2026-07-02"
    cycle(store, config)
    # Back to a value site-a held two snapshots ago: held as flapping until seen once more (flap damping).
    assert len(stored_events(store, "release_changed")) == 3
    cycle(store, config)
    assert len(stored_events(store, "topic_consensus_changed")) == 1
    assert len(stored_events(store, "release_changed")) == 4


def test_topic_view_takes_each_sources_latest_claim(server, store, database_url):
    """Two pages of one site are two sources; a page that changed only its release still says what it said
    about production, and that (not its oldest claim) is what the topic view compares."""
    a = Site("late 2026", published="2026-03-01", stage="development")
    b = Site("late 2026", published="2026-03-02", stage="post-production")
    server.route("/a", a)
    server.route("/b", b)
    topic = {"work": "Show", "season": 2}
    config = make_config(database_url, [{"name": "site-a", "url": server.url("/a"), "topic": topic},
                                        {"name": "site-b", "url": server.url("/b"), "topic": topic}], [])
    cycle(store, config)
    with store.session() as s:
        line = topic_view(s, "Show S2").line("production")
        assert line.disagreement == {"site-a (127.0.0.1)": "development", "site-b (127.0.0.1)": "post-production"}
    a.stage, a.published = "post-production", "2026-04-01"
    cycle(store, config)
    a.window, a.published = "early 2027", "2026-05-01"  # only the release changes now
    cycle(store, config)
    with store.session() as s:
        view = topic_view(s, "Show S2")
        production = view.line("production")
        assert production.disagreement == {} and production.current.display == "post-production"
        assert sorted(production.sources) == ["site-a (127.0.0.1)", "site-b (127.0.0.1)"]
        # The repeated claim of the latest snapshot is listed (and is the current one).
        assert production.current in production.claims and production.current.published.isoformat() == "2026-05-01"
        assert view.line("release").disagreement == {"site-a (127.0.0.1)": "early 2027 (Jan–Apr 2027)",
                                                     "site-b (127.0.0.1)": "late 2026 (Sep–Dec 2026)"}


def test_stale_claim_is_never_a_disagreement(server, store, database_url):
    old, new = Site("2025", published="2024-01-10"), Site("early 2027", published="2026-05-01")
    config = make_config(database_url, two_sources(server, old, new), [])
    cycle(store, config)
    with store.session() as s:
        view = topic_view(s, "Show S2")  # default topics.stale_after: 180 days before the newest claim
        line = view.line("release")
        assert line.disagreement == {} and line.agreement is None
        assert list(line.stale) == ["127.0.0.1"] and list(line.sources) == ["localhost"]
        assert line.current.display == "early 2027 (Jan–Apr 2027)"
        assert all(not li.disagreement for li in view.lines)
        # With a longer memory the old claim counts again, and so does the disagreement.
        longer = topic_view(s, "Show S2", stale_after=dt.timedelta(days=1000)).line("release")
        assert longer.disagreement == {"127.0.0.1": "2025", "localhost": "early 2027 (Jan–Apr 2027)"}
    new.window, new.published = "mid 2027", "2026-06-01"
    cycle(store, config)
    assert [e.type for e in stored_events(store)] == ["release_changed"]  # one current source: no consensus

    with web_site(store, stale_after=dt.timedelta(days=90)) as site:
        page = httpx.get(f"{site}/topic/show%232").text
    assert "Sources disagree" not in page and "Not counted, too old: 127.0.0.1: 2025 (2024-01-10)" in page


# --------------------------------------------------------------------------- new articles


def feed_body(items: list[tuple[str, str, str]]) -> Reply:
    entries = "".join(f"<item><title>{title}</title><link>http://news.example/{guid}</link><guid>{guid}</guid>"
                      f"<description>{text}</description><pubDate>Mon, 01 Jun 2026 10:00:00 GMT</pubDate></item>"
                      for guid, title, text in items)
    body = f"<?xml version='1.0'?><rss version='2.0'><channel><title>News</title>{entries}</channel></rss>"
    return Reply(body=body.encode(), headers={"Content-Type": "application/rss+xml"})


def test_new_feed_entry_is_one_article_added_per_subscriber(server, store, database_url, hook, tmp_path):
    items = [("a", "Show Season 2 news", "Show Season 2 premieres in March 2027 on Netflix."),
             ("b", "Other Season 3 news", "Other Season 3 is coming in 2028.")]
    server.route("/feed", lambda _: feed_body(items))
    config = make_config(database_url, [{"name": "news", "url": server.url("/feed"), "kind": "feed"}], [
        {"name": "fan", "webhook": hook.url + "/fan", "topics": ["Nightfall S2"]},
        {"name": "wire", "webhook": hook.url + "/wire", "watches": ["news"]},
        {"name": "everything", "webhook": hook.url + "/everything"},
        {"name": "elsewhere", "webhook": hook.url + "/elsewhere", "topics": ["Show S9"]}])
    assert cycle(store, config).results[0].events == 0  # baseline: two entries, no news
    items.append(("c", "Nightfall Season 2 is coming in March 2027",
                  "Nightfall Season 2 will premiere in March 2027 on Netflix, the streamer said. "
                  "Dana Reyes returns as Marta."))
    [result] = cycle(store, config).results
    [article] = stored_events(store, "article_added")
    assert result.alerts == 3
    assert article.topic_key == "nightfall#2" and article.source_url == "http://news.example/c"
    assert article.new["title"] == "Nightfall Season 2 is coming in March 2027"
    # 'will premiere in March 2027 ..., the streamer said' is a set date (extraction's 'announced')
    assert article.new["facts"]["release"] == "officially March 2027" and article.new["facts"]["platform"] == "Netflix"
    assert article.summary.startswith("new article: Nightfall Season 2 is coming in March 2027 — release officially "
                                      "March 2027")
    cycle(store, config)  # seen again: nothing new
    items[2] = (*items[2][:2], items[2][2] + " Filming wrapped in May 2026.")  # updated, not new
    cycle(store, config)
    assert len(stored_events(store, "article_added")) == 1
    deliver_due(store, config)
    articles = [(h.path, json.loads(h.body)) for h in hook.hits
                if any(e["type"] == "article_added" for e in json.loads(h.body)["events"])]
    assert sorted(path for path, _ in articles) == ["/hook/everything", "/hook/fan", "/hook/wire"]
    for _, body in articles:
        assert [e["type"] for e in body["events"]] == ["article_added"]
        assert body["summary"] == "Nightfall S2: new article: Nightfall Season 2 is coming in March 2027"
    assert "/hook/elsewhere" not in {h.path for h in hook.hits}
    # The entry's later update is news for the topic too, as a change of its own.
    later = [json.loads(h.body) for h in hook.hits if h.path == "/hook/fan"][-1]
    assert "filming_changed" in [e["type"] for e in later["events"]]
    assert "article_added" not in [e["type"] for e in later["events"]]

    # `watcher changes` shortens a long summary visibly ('…'), never mid-word without a mark.
    summary = readable_summary(article)
    assert len(summary) > 120
    listing = watcher(write_config(tmp_path, database_url, ""), "changes",
                      env={**os.environ, "COLUMNS": "400"})
    assert listing.returncode == 0, listing.stderr
    assert shorten(summary, 120) in listing.stdout and shorten(summary, 120).endswith("…")


def test_new_wordpress_listing_post_is_an_article(server, store, database_url):
    seed = json.loads((CORPUS / "seeds" / "blueroads-wp-post-161.json").read_bytes())
    posts = [seed]
    server.route("/wp-json/wp/v2/posts", lambda _: Reply(body=json.dumps(posts).encode(),
                                                         headers={"Content-Type": "application/json"}))
    config = make_config(database_url, [{"name": "blog", "url": server.url("/wp-json/wp/v2/posts"),
                                         "kind": "wordpress"}], [])
    cycle(store, config)
    posts.insert(0, {**seed, "id": 162, "guid": {"rendered": "https://blueroads.in/blog/?p=162"},
                     "link": "https://blueroads.in/blog/nightfall-season-2/",
                     "title": {"rendered": "Nightfall Season 2 release date"},
                     "content": {"rendered": "<p>Nightfall Season 2 will premiere in March 2027 on Netflix.</p>"}})
    cycle(store, config)
    [article] = stored_events(store, "article_added")
    assert article.new["url"] == "https://blueroads.in/blog/nightfall-season-2/"
    assert article.topic_key == "nightfall#2"


# --------------------------------------------------------------------------- noise control

NOISY = """<html><head><title>Show Season 2 release date</title></head><body><article>
<h1>Show Season 2 release date</h1>
<p>This article was updated {minutes} minutes ago.</p>
<p>Show Season 2 is expected to premiere in {window} on Netflix.</p>{extra}
</article></body></html>"""


def test_ignore_pattern_suppresses_the_updated_minutes_ago_change(server, store, database_url):
    state = {"minutes": 5, "window": "early 2027", "extra": ""}

    def noisy(_):
        state["minutes"] += 1
        return Reply(body=NOISY.format(**state).encode(), headers={"Content-Type": "text/html"})

    server.route("/page", noisy)
    config = make_config(database_url, [
        {"name": "plain", "url": server.url("/page")},
        {"name": "quiet", "url": server.url("/page"), "ignore": [r"updated \d+ minutes? ago"]},
        {"name": "facts-only", "url": server.url("/page"), "text_changes": False}], [])
    for _ in range(3):
        cycle(store, config)
    by_watch = {}
    with store.session() as s:
        for row in s.scalars(select(ChangeEventRow).where(ChangeEventRow.type == "text_changed")):
            by_watch[row.watch_id] = by_watch.get(row.watch_id, 0) + 1
    report = cycle(store, config)
    outcome = {r.watch: r.outcome for r in report.results}
    assert outcome["quiet"] == "unchanged" and outcome["plain"] == "changed"  # the hash ignores the line too
    texts = stored_events(store, "text_changed")
    watches = {w.id: w.name for w in _watches(store)}
    assert {watches[e.watch_id] for e in texts} == {"plain"}  # noise alerts only where nothing is ignored
    state["window"] = "late 2027"
    cycle(store, config)
    changed = {watches[e.watch_id] for e in stored_events(store, "release_changed")}
    assert changed == {"plain", "quiet", "facts-only"}  # facts still change everywhere
    state["extra"] = "<p>The showrunner thanked fans in a long interview.</p>"
    cycle(store, config)
    latest_text = {watches[e.watch_id] for e in stored_events(store, "text_changed")}
    assert "facts-only" not in latest_text and "quiet" in latest_text


def _watches(store):
    from watcher.store.models import Watch

    with store.session() as s:
        rows = list(s.scalars(select(Watch)))
        s.expunge_all()
        return rows


# --------------------------------------------------------------------------- config checked up front


def write_config(tmp_path: Path, database_url: str, body: str) -> Path:
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(f'[watcher]\ndatabase_url = "{database_url}"\n' + body)
    return cfg


def watcher(cfg: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watcher", "-c", str(cfg), *args], capture_output=True, text=True,
                          timeout=120, env=env if env is not None else os.environ)


def test_missing_secret_stops_run_check_and_notify_test_with_one_line(tmp_path, sqlite_url):
    cfg = write_config(tmp_path, sqlite_url, f"""
[notify.smtp]
password_env = "WATCHER_TEST_SMTP_PASSWORD"
username = "me"

[[watch]]
name = "a"
url = "http://127.0.0.1:{free_port()}/a"
interval = "1h"

[[subscriber]]
name = "hook"
webhook = "http://127.0.0.1:9/hook"
secret_env = "WATCHER_TEST_HOOK_SECRET"

[[subscriber]]
name = "mail"
email = "me@example.org"
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_TEST_")}
    for args in (["run"], ["check"], ["notify", "test", "hook"], ["sender", "--once"]):
        result = watcher(cfg, *args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.splitlines() == [
            "error: subscriber hook: secret_env names WATCHER_TEST_HOOK_SECRET, which is not set in the environment "
            "(set it, or remove secret_env)"], args
        assert result.stdout == ""
    env["WATCHER_TEST_HOOK_SECRET"] = SECRET
    result = watcher(cfg, "run", env=env)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "subscriber mail: notify.smtp.password_env names WATCHER_TEST_SMTP_PASSWORD" in result.stderr
    # `notify test` checks only the subscriber it tests; a webhook needs no SMTP password.
    result = watcher(cfg, "notify", "test", "hook", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("failed: webhook: ConnectError")


def test_misspelt_keys_and_unknown_topics_get_a_suggestion(tmp_path, sqlite_url):
    base = '[[watch]]\nname = "aouad"\nurl = "https://e.org/a"\ninterval = "1h"\n' \
           'topic = { work = "All of Us Are Dead", season = 2 }\n'
    for text, expected in [
        (base + '[[subscriber]]\nname = "s"\nemail = "a@b.c"\ntopcs = ["x"]\n',
         "subscriber[0] (s).topcs: unknown key 'topcs'; did you mean 'topics'?"),
        (base.replace("interval", "intervall"), "watch[0] (aouad).intervall: unknown key 'intervall'; "
                                                "did you mean 'interval'?"),
        (base + "[notfy]\nmax_attempts = 3\n", "notfy: unknown key 'notfy'; did you mean 'notify'?"),
        (base + '[[subscriber]]\nname = "s"\nemail = "a@b.c"\nevents = ["release_change"]\n',
         "unknown event type 'release_change'; did you mean 'release_changed'?"),
        (base + '[[subscriber]]\nname = "s"\nemail = "a@b.c"\nwatches = ["aoaud"]\n',
         "watches names 'aoaud', which is no watch; did you mean 'aouad'?"),
        (base + 'ignore = ["(unclosed"]\n', "ignore pattern '(unclosed' is not a regular expression"),
    ]:
        cfg = write_config(tmp_path, sqlite_url, text)
        with pytest.raises(ConfigError) as e:
            load_config(cfg)
        assert expected in str(e.value), str(e.value)

    cfg = write_config(tmp_path, sqlite_url, base + '[[subscriber]]\nname = "s"\nemail = "a@b.c"\n'
                                                    'topics = ["All of Us Are Ded S2", "All of Us Are Dead"]\n')
    config = load_config(cfg)
    assert subscriber_topic_warnings(config, {}) == [
        "subscriber s: topic 'All of Us Are Ded S2' matches no watch topic; did you mean 'All of Us Are Dead S2'?"]
    # A topic only extraction found (no watch configures it) counts once the database has seen it.
    assert subscriber_topic_warnings(config, {"all of us are ded#2": "All of Us Are Ded S2"}) == []


def test_check_says_what_waits_and_send_delivers(server, tmp_path, database_url, sink):
    windows = iter(["late 2026", "early 2027", "mid 2027"])
    server.route("/show", lambda _: Reply(body=NOISY.format(minutes=1, window=next(windows), extra="").encode(),
                                          headers={"Content-Type": "text/html"}))
    cfg = write_config(tmp_path, database_url, f"""
[fetch]
autothrottle = false
retries = 0
allow_private = ["{server.allow}"]

[notify.smtp]
host = "127.0.0.1"
port = {sink.port}

[web]
base_url = "{WEB}"

[[watch]]
name = "show"
url = "{server.url('/show')}"
interval = "1h"
ignore = ["updated \\\\d+ minutes ago"]

[[subscriber]]
name = "me"
email = "me@example.org"
topics = ["Show S2", "Shwo S2"]
""")
    first = watcher(cfg, "check")
    assert first.returncode == 0, first.stderr
    assert "warning: subscriber me: topic 'Shwo S2' matches no watch topic; did you mean 'Show S2'?" in \
        " ".join(first.stderr.split())
    assert first.stdout.strip().endswith("0 alerts queued")
    second = watcher(cfg, "check")
    assert second.stdout.strip().endswith("1 alert queued; run `watcher sender --once` or pass --send")
    assert sink.messages == []
    third = watcher(cfg, "check", "--send", "--json")
    data = json.loads(third.stdout)
    assert data["alerts_queued"] == 1 and data["sent"]["sent"] == 2 and data["alerts_pending"]["immediate"] == 0
    subjects = sorted(m["Subject"] for m in sink.messages)
    assert subjects == ["Show S2: release early 2027 (was late 2026)", "Show S2: release mid 2027 (was early 2027)"]
    body = sink.messages[0].get_body(("plain",)).get_content()
    assert f"in watcher: {WEB}/snapshot/" in body
    # The web page the alert links to exists and shows the change.
    from watcher.store import Store

    snapshot = body.split(f"in watcher: {WEB}")[1].split()[0]
    store = Store.open(database_url)
    try:
        with web_site(store) as site:
            page = httpx.get(site + snapshot)
        assert page.status_code == 200 and "release early 2027 (Jan–Apr 2027), was late 2026" in page.text
    finally:
        store.close()


def test_every_event_reads_without_raw_values():
    from watcher.describe import describe, release_text, summarise
    from watcher.records import ChangeEvent

    late = {"text": "late 2027", "earliest": "2027-09-01", "latest": "2027-12-31", "precision": "year-part"}
    assert release_text(late) == "late 2027 (Sep–Dec 2027)"
    assert release_text({"text": "March 5, 2027", "earliest": "2027-03-05", "latest": "2027-03-05",
                         "precision": "day", "announced": True}) == "officially March 5, 2027"
    assert release_text({"text": "winter 2026", "earliest": "2026-12-01", "latest": "2027-02-28",
                         "precision": "year-part"}) == "winter 2026 (Dec 2026–Feb 2027)"
    assert release_text({"text": "the holidays", "earliest": "2026-11-15", "latest": "2026-12-31",
                         "precision": "year-part"}) == "the holidays (15 Nov–31 Dec 2026)"
    assert describe("filming", {"start": "2025-07-23", "end": "2026-02-18"}) == "23 Jul 2025 to 18 Feb 2026"
    cases = [
        (ChangeEvent(type="cast_added", subject="Roh Yoon-seo", new={"status": "exited"}), "Roh Yoon-seo: exited"),
        (ChangeEvent(type="cast_added", subject="Park Ji-hu", new={"status": "returning", "character": "Nam On-jo"}),
         "Park Ji-hu joins as Nam On-jo (returning)"),
        (ChangeEvent(type="cast_status_changed", subject="Cho Yi-hyun",
                     old={"status": "returning", "character": "Choi Nam-ra"},
                     new={"status": "exited", "character": "Choi Nam-ra"}),
         "Cho Yi-hyun (Choi Nam-ra): exited (was returning)"),
        (ChangeEvent(type="cast_removed", subject="Kim Min", old={"status": "new"}),
         "Kim Min: no longer listed (was new)"),
        (ChangeEvent(type="cast_removed", subject="Kim Byung-chul", old={"status": "listed",
                                                                       "character": "Lee Byeong-chan"}),
         "Kim Byung-chul (Lee Byeong-chan): no longer listed"),
        (ChangeEvent(type="release_changed", old=None, new=late),
         "release late 2027 (Sep–Dec 2027), not stated before"),
        (ChangeEvent(type="filming_changed", old={"start": "2022-02-01", "start_precision": "month"},
                     new={"end": "2022-09-01", "end_precision": "month"}),
         "filming wrapped Sep 2022, was started Feb 2022"),
        (ChangeEvent(type="trailer_changed", old="none", new="teaser"), "trailer teaser, was no trailer yet"),
        (ChangeEvent(type="text_changed", new={"diff": "", "added": 1, "removed": 0}),
         "text changed (1 line added, 0 lines removed), no fact changed"),
    ]
    for event, expected in cases:
        assert summarise(event) == expected
    assert summarise(ChangeEvent(type="release_changed", old={**late, "text": "2023", "earliest": "2023-01-01",
                                                              "latest": "2023-12-31"}, new=late),
                     short=True) == "release late 2027 (was 2023)"
    assert summarise(ChangeEvent(type="release_changed", old=None, new=late), short=True) == \
        "release late 2027 (not stated before)"


def test_topic_labels_in_events_and_atom(server, store, database_url):
    site = Site("late 2026")
    server.route("/show", site)
    config = make_config(database_url, [{"name": "show", "url": server.url("/show"), "topic": {"work": "Show",
                                                                                              "season": 2}}], [])
    cycle(store, config)
    site.window = "early 2027"
    cycle(store, config)
    [event] = stored_events(store)
    with web_site(store) as site:
        atom = httpx.get(f"{site}/feed.atom").text
        events_page = httpx.get(f"{site}/events").text
        snapshot_page = httpx.get(f"{site}/snapshot/{event.snapshot_id}").text
        watch_page = httpx.get(f"{site}/watch/show").text
    assert "<title>Show S2: release early 2027 (Jan–Apr 2027), was late 2026 (Sep–Dec 2026)</title>" in atom
    assert ">Show S2</a>" in events_page and "show#2</a>" not in events_page
    assert ">Show S2</a>" in snapshot_page and "show#2</a>" not in snapshot_page  # the page alerts link to
    assert '<td data-label="topic">Show S2</td>' in watch_page and "show#2" not in watch_page  # its snapshots' topic


def test_secret_missing_at_send_time_is_a_failed_delivery_not_a_crash(store, database_url, hook, caplog):
    """`watcher run` refuses to start without it; a sender started otherwise retries, with one clear line."""
    from tests.test_notify import release_event, store_events

    config = make_config(database_url, [{"name": "blueroads", "url": "https://blueroads.in/x", "topic": AOUAD}],
                         [{"name": "hook", "webhook": hook.url, "secret_env": "WATCHER_TEST_UNSET_SECRET"}])
    os.environ.pop("WATCHER_TEST_UNSET_SECRET", None)
    store_events(store, config, release_event())
    report = deliver_due(store, config)
    assert (report.sent, report.retrying) == (0, 1) and hook.hits == []
    assert report.errors == ["subscriber hook: secret_env: environment variable WATCHER_TEST_UNSET_SECRET is not set"]
    assert not any(r.exc_info for r in caplog.records)  # logged as one line, no traceback
