"""Managing watches from the command line: `watcher add`, `pause`, `resume`, `remove` edit the config file in
place (comments and layout kept) and the result is what the daemon and `watcher check` then use.

Pages come from a real local HTTP server; `watcher check` after an edit stores into each backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import CORPUS
from tests.pageserver import PageServer, Reply
from watcher.cli import cli
from watcher.config import load_config
from watcher.configfile import add_watches_text, remove_watch_text, set_enabled_text

WP_JSON = (CORPUS / "seeds" / "blueroads-wp-post-161.json").read_bytes()

WP_PAGE = """<!doctype html><html lang="en-US"><head><meta charset="UTF-8">
<title>All of Us Are Dead Season 2 – Blue Roads</title>
<link rel="alternate" type="application/rss+xml" title="Blue Roads &raquo; Feed" href="/blog/feed/">
<link rel="alternate" type="application/rss+xml" title="Blue Roads &raquo; Comments Feed" href="/blog/comments/feed/">
<link rel="https://api.w.org/" href="{base}/blog/wp-json/">
<link rel="alternate" title="JSON" type="application/json" href="{base}/blog/wp-json/wp/v2/posts/161">
<link rel='shortlink' href='{base}/blog/?p=161'>
</head><body class="post-template-default single single-post postid-161">
<article><h1>All of Us Are Dead Season 2</h1><p>Rendered for browsers.</p></article></body></html>"""

NEWS_PAGE = """<!doctype html><html><head><title>Show Season 2 release date</title>
<link rel="alternate" type="application/atom+xml" title="Example News" href="/news/atom.xml">
<meta property="article:published_time" content="2026-03-01"></head><body>
<article><h1>Show Season 2 release date</h1>
<p>Show Season 2 is expected to premiere in early 2027 on Netflix, according to the streamer.</p></article>
</body></html>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Example News</title><id>urn:example:news</id>
<updated>2026-03-01T00:00:00Z</updated>
<entry><title>Show Season 2 release date</title><id>urn:example:1</id><link href="{base}/news/show-s2"/>
<updated>2026-03-01T00:00:00Z</updated>
<content type="html">&lt;p&gt;Show Season 2 is expected in early 2027 on Netflix.&lt;/p&gt;</content></entry>
<entry><title>Other Show renewed</title><id>urn:example:2</id><link href="{base}/news/other"/>
<updated>2026-02-01T00:00:00Z</updated>
<content type="html">&lt;p&gt;Other Show has been renewed for a third season.&lt;/p&gt;</content></entry>
</feed>"""

CONFIG = """# My watches. Keep this comment.
[watcher]
database_url = "{db}"   # the database

[fetch]
autothrottle = false
retries = 0
timeout = "5s"
allow_private = ["{allow}"]

# --- watches ---
[[watch]]
name = "existing"     # an old one
url = "{base}/old"
interval = "1h"

# Subscribers follow; this comment belongs to them.
# [[subscriber]]
# name = "me"
"""


def sample_site(s: PageServer) -> PageServer:
    """A WordPress post page (with its REST JSON), a news page that links an Atom feed, the feed, and /old."""
    s.route("/blog/all-of-us-are-dead-season-2/", lambda _: Reply(
        body=WP_PAGE.format(base=s.base).encode(), headers={"Content-Type": "text/html; charset=UTF-8"}))
    s.route("/blog/wp-json/wp/v2/posts/161", Reply(body=WP_JSON, headers={"Content-Type": "application/json"}))
    s.route("/news/show-s2", Reply(body=NEWS_PAGE.encode(), headers={"Content-Type": "text/html"}))
    s.route("/news/atom.xml", lambda _: Reply(body=ATOM.format(base=s.base).encode(),
                                              headers={"Content-Type": "application/atom+xml"}))
    s.route("/old", Reply(body=NEWS_PAGE.encode(), headers={"Content-Type": "text/html"}))
    return s


@pytest.fixture
def server():
    with PageServer() as s:
        yield sample_site(s)


@pytest.fixture
def cfg(tmp_path, server, database_url) -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(CONFIG.format(db=database_url, base=server.base, allow=server.allow))
    return path


def run(cfg: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["-c", str(cfg), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def only_added(before: str, after: str) -> str:
    """`after` must be `before` with one block of lines inserted (nothing removed or changed); returns it."""
    import difflib

    ops = [op for op in difflib.SequenceMatcher(None, before.splitlines(True), after.splitlines(True),
                                                 autojunk=False).get_opcodes() if op[0] != "equal"]
    assert len(ops) == 1 and ops[0][0] == "insert", ops
    return "".join(after.splitlines(True)[ops[0][3]:ops[0][4]])


def test_add_wordpress_post_watches_its_rest_url_and_keeps_the_file(server, cfg):
    before = cfg.read_text()
    out = json.loads(run(cfg, "add", server.url("/blog/all-of-us-are-dead-season-2/"), "--topic",
                         "All of Us Are Dead S2", "--interval", "6h", "--json"))
    assert out["written"] is True
    assert out["watch"] == {"name": "127.0.0.1-all-of-us-are-dead-season-2",
                            "url": server.url("/blog/wp-json/wp/v2/posts/161"), "kind": "wordpress",
                            "topic": {"work": "All of Us Are Dead", "season": 2}, "interval": "6h"}
    assert out["detected"].startswith("a WordPress post")
    [preview] = out["preview"]
    assert preview["facts"]["release"]["text"] == "early 2027"  # what the corpus seed says
    assert server.hits["/blog/wp-json/wp/v2/posts/161"] == 1
    block = only_added(before, cfg.read_text())
    assert "[[watch]] # added by `watcher add`" in block
    # Inserted after the last watch, before the comments about the subscribers.
    assert cfg.read_text().index(block) < cfg.read_text().index("# Subscribers follow")
    config = load_config(cfg)
    assert [w.name for w in config.watch] == ["existing", "127.0.0.1-all-of-us-are-dead-season-2"]
    # The added watch checks like any other (both backends).
    report = json.loads(run(cfg, "check", "127.0.0.1-all-of-us-are-dead-season-2", "--json"))
    assert report["results"][0]["outcome"] == "baseline"


def test_add_page_that_links_a_feed_offers_it(server, cfg):
    text = run(cfg, "add", server.url("/news/show-s2"), "--name", "show-page")
    assert "This page links feeds: " + server.url("/news/atom.xml") in text
    assert "--kind feed" in text
    assert "early 2027" in text  # the facts it would extract
    assert load_config(cfg).watch_by_name("show-page").kind == "html"
    # Accepting the offer: --kind feed on the page's URL watches the feed it links.
    out = json.loads(run(cfg, "add", server.url("/news/show-s2"), "--kind", "feed", "--json"))
    assert out["watch"]["kind"] == "feed" and out["watch"]["url"] == server.url("/news/atom.xml")
    assert out["watch"]["name"] == "127.0.0.1-atom.xml"
    assert out["documents"] == 2 and [p["document"]["title"] for p in out["preview"]] == [
        "Show Season 2 release date", "Other Show renewed"]
    assert out["preview"][1]["facts"]["renewal"]["value"] == "renewed"


def test_add_refuses_duplicates_and_unreadable_urls_without_touching_the_file(server, cfg):
    before = cfg.read_text()
    assert "already watched as 'existing'" in run(cfg, "add", server.url("/old"), code=2)
    assert "already exists" in run(cfg, "add", server.url("/news/show-s2"), "--name", "existing", code=2)
    missing = run(cfg, "add", server.url("/nothing-here"), code=4)
    assert "http-404" in missing or "404" in missing
    assert "not a duration" in run(cfg, "add", server.url("/news/show-s2"), "--interval", "often", code=2)
    assert cfg.read_text() == before
    dry = run(cfg, "add", server.url("/news/show-s2"), "--dry-run")
    assert "dry run: would add watch 127.0.0.1-show-s2" in dry and cfg.read_text() == before
    # Without fetching, the kind must be given; then nothing is fetched.
    hits = sum(server.hits.values())
    assert "give the kind" in run(cfg, "add", server.url("/later"), "--no-fetch", code=2)
    run(cfg, "add", server.url("/later"), "--no-fetch", "--kind", "html", "--name", "later")
    assert sum(server.hits.values()) == hits
    assert load_config(cfg).watch_by_name("later").url == server.url("/later")


def test_add_creates_a_missing_config(server, tmp_path, database_url):
    cfg = tmp_path / "new" / "watcher.toml"
    cfg.parent.mkdir()
    run(cfg, "add", server.url("/news/show-s2"), "--kind", "html", "--no-fetch", "--name", "first")
    config = load_config(cfg)
    assert [w.name for w in config.watch] == ["first"]
    assert cfg.read_text().startswith("# watcher configuration (created by `watcher add`")


def test_pause_resume_remove_edit_only_their_lines(server, cfg, store, database_url):
    run(cfg, "add", server.url("/news/show-s2"), "--kind", "html", "--name", "show-page", "--no-fetch")
    original = cfg.read_text()
    out = run(cfg, "pause", "existing")
    assert "paused watch existing" in out
    paused = cfg.read_text()
    block = only_added(original, paused)
    assert block.startswith("enabled = false  # paused by `watcher pause`")
    assert load_config(cfg).watch_by_name("existing").enabled is False
    assert "already paused" in run(cfg, "pause", "existing")
    # `watcher check` with no names skips the paused watch; `watcher watches` shows it disabled.
    report = json.loads(run(cfg, "check", "--json"))
    assert [r["watch"] for r in report["results"]] == ["show-page"]
    listing = {w["name"]: w for w in json.loads(run(cfg, "watches", "--json"))}
    assert listing["existing"]["enabled"] is False and listing["show-page"]["enabled"] is True
    run(cfg, "resume", "existing")
    assert cfg.read_text() == original
    run(cfg, "remove", "show-page")
    after = cfg.read_text()
    assert "show-page" not in after
    assert "# Subscribers follow; this comment belongs to them." in after and "# My watches." in after
    assert [w.name for w in load_config(cfg).watch] == ["existing"]
    assert "no watch named 'nope'" in run(cfg, "pause", "nope", code=2)
    assert "no watch named 'nope'" in run(cfg, "remove", "nope", code=2)


# --------------------------------------------------------------------------- the text edits themselves


SAMPLE = Path(__file__).parent.parent / "config" / "watcher.toml"


def test_edits_of_the_sample_config_keep_everything_else():
    text = SAMPLE.read_text()
    added = add_watches_text(text, [{"name": "n", "url": "https://e.org/", "interval": "1h",
                                     "topic": {"work": "W", "season": None}}])
    assert '[[watch]]\nname = "n"' in only_added(text, added)
    assert set_enabled_text(set_enabled_text(text, "blueroads-feed", False), "blueroads-feed", True) == text
    removed = remove_watch_text(text, "whats-on-netflix-kdrama")
    assert "whats-on-netflix" not in removed and "# [[subscriber]]" in removed
    assert removed.count("\n\n\n") == 0
    # The first watch too: everything before it stays.
    first = remove_watch_text(text, "blueroads-aouad-s2")
    assert first.startswith(text[:text.index("[[watch]]")].rstrip("\n"))
    assert "blueroads-aouad-s2" not in first


def test_edits_of_an_inline_watch_array_fall_back_to_tomlkit():
    text = 'watch = [{ name = "a", url = "https://x.org/", interval = "1h" }]  # inline\n'
    added = add_watches_text(text, [{"name": "b", "url": "https://y.org/", "interval": "2h"}])
    import tomllib

    assert [w["name"] for w in tomllib.loads(added)["watch"]] == ["a", "b"]
    paused = set_enabled_text(text, "a", False)
    assert tomllib.loads(paused)["watch"][0]["enabled"] is False
    assert "watch" not in tomllib.loads(remove_watch_text(text, "a"))


def test_an_edit_that_would_break_the_config_is_refused(tmp_path):
    from watcher.configfile import ConfigFile
    from watcher.errors import ConfigError

    cfg = tmp_path / "watcher.toml"
    cfg.write_text('[[watch]]\nname = "a"\nurl = "https://x.org/"\ninterval = "1h"\n')
    before = cfg.read_text()
    with pytest.raises(ConfigError, match="two watch entries are named 'a'"):
        ConfigFile(cfg).add_watches([{"name": "a", "url": "https://y.org/", "interval": "1h"}])
    with pytest.raises(ConfigError, match="interval"):
        ConfigFile(cfg).add_watches([{"name": "b", "url": "https://y.org/"}])
    assert cfg.read_text() == before
    assert list(tmp_path.iterdir()) == [cfg]  # no temporary file left behind


def test_add_asks_at_a_terminal_whether_to_take_the_offered_feed(server, cfg):
    """Run at a terminal (a pseudo-terminal here), `watcher add` shows the page's facts and asks; 'y' takes
    the feed."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    main_fd, sub_fd = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "WATCHER_DATABASE_URL"}
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "-c", str(cfg), "add", server.url("/news/show-s2")],
                            stdin=sub_fd, stdout=sub_fd, stderr=sub_fd, env=env, close_fds=True)
    os.close(sub_fd)
    seen = b""
    try:
        deadline = time.monotonic() + 120
        while b"Watch the feed instead?" not in seen:
            assert time.monotonic() < deadline and proc.poll() is None, seen.decode(errors="replace")
            if select.select([main_fd], [], [], 1)[0]:
                seen += os.read(main_fd, 65536)
        os.write(main_fd, b"y\n")
        while proc.poll() is None or select.select([main_fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(main_fd, 65536) if select.select([main_fd], [], [], 1)[0] else b""
            except OSError:  # the terminal closed with the process
                break
            seen += chunk
        assert proc.wait(60) == 0, seen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main_fd)
    text = seen.decode(errors="replace")
    assert "early 2027" in text  # the page's facts, shown before the question
    assert "added watch" in text
    watch = load_config(cfg).watch[-1]
    assert (watch.kind, watch.url) == ("feed", server.url("/news/atom.xml"))


def test_the_message_says_how_the_daemon_will_take_the_edit(cfg):
    assert "applies it within seconds" in run(cfg, "pause", "existing")
    cfg.write_text(cfg.read_text().replace("[fetch]", "reload_on_change = false\n\n[fetch]"))
    assert "send the daemon SIGHUP" in run(cfg, "resume", "existing")


def test_add_of_a_private_address_the_config_does_not_allow_says_how(server, tmp_path, sqlite_url):
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(f'[watcher]\ndatabase_url = "{sqlite_url}"\n')
    out = run(cfg, "add", server.url("/news/show-s2"), code=4)
    assert f'allow_private = ["{server.allow}"]' in out
    assert "[[watch]]" not in cfg.read_text()
