"""Security: secrets never reach output or logs, scraped text cannot drive the terminal, feeds cannot pull
in external entities. (Escaping in email and web pages: test_notify.py and test_review.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pageserver import PageServer, Reply
from tests.receivers import free_port

SECRET = "Sup3r-secret-value-91c7"
DB_PASSWORD = "hunter2-db-password-5e1"


def watcher(cfg: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watcher", "-c", str(cfg), "-vv", *args], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.fixture
def server():
    with PageServer() as s:
        yield s


def test_secrets_never_appear_in_output_logs_or_json(server, tmp_path):
    esc = "\x1b]0;pwned\x07\x1b[2J\x1b[31m"
    body = (f"<html><head><title>Show Season 2 {esc}release</title></head><body><article>"
            f"<h1>Show Season 2</h1><p>Show Season 2 arrives in early 2027.{esc}</p></article></body></html>")
    server.route("/show", Reply(body=body.encode(), headers={"Content-Type": "text/html"}))
    dead = free_port()
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(f"""
[watcher]
database_url = "sqlite:///{tmp_path}/w.db"
[fetch]
autothrottle = false
retries = 0
allow_private = ["{server.allow}"]
[notify.smtp]
host = "127.0.0.1"
port = {dead}
username = "watcher"
password_env = "WATCHER_SMTP_PASSWORD"
[[watch]]
name = "show"
url = "{server.url('/show')}"
interval = "1h"
[[subscriber]]
name = "mail"
email = "me@example.org"
[[subscriber]]
name = "hook"
webhook = "http://127.0.0.1:{dead}/hook"
secret_env = "WATCHER_HOOK_SECRET"
[[subscriber]]
name = "chat"
apprise = "json://127.0.0.1:{dead}/{{secret}}"
secret_env = "WATCHER_HOOK_SECRET"
""")
    env = {**os.environ, "WATCHER_SMTP_PASSWORD": SECRET, "WATCHER_HOOK_SECRET": SECRET}
    outputs = []
    for args in (["check"], ["notify", "test", "mail"], ["notify", "test", "hook"], ["notify", "test", "chat"],
                 ["sender", "--once", "--json"], ["alerts", "--json"], ["alerts"], ["watches", "--json"],
                 ["history", "show"], ["show", "1"], ["show", "1", "--json"], ["topic"], ["timeline", "Show S2"],
                 ["changes", "--all"]):
        result = watcher(cfg, *args, env=env)
        outputs.append((args, result.stdout + result.stderr))
    for args, out in outputs:
        assert SECRET not in out, args
        assert "\x1b" not in out, args  # scraped escape sequences never reach the terminal
    assert "failed" in dict((a[0] + " " + a[-1], o) for a, o in outputs)["notify chat"]

    # A database URL with a password: the error names the database without the password.
    bad = watcher(cfg, "watches", env={**env, "WATCHER_DATABASE_URL":
                                       f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:{dead}/x"})
    assert bad.returncode == 3
    assert DB_PASSWORD not in bad.stdout + bad.stderr and "127.0.0.1" in bad.stderr


def test_feed_with_external_entity_is_refused(server, tmp_path):
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("local-file-contents-7f3")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file://{secret_file}">]>'
           '<rss version="2.0"><channel><title>t</title><item><title>Show Season 2 &x;</title>'
           '<link>http://e/a</link><description>Show Season 2 arrives in 2027 &x;</description></item>'
           '</channel></rss>').encode()
    from spiders.parsers import parse_feed
    from watcher.errors import DocumentError

    with pytest.raises(DocumentError) as e:
        parse_feed(xxe, "http://e/feed")
    assert e.value.reason == "xml-entities"
    assert "local-file-contents" not in str(e.value)


BLOG_PW = "Blog-pw-3f9a7c"  # in a variable whose name says nothing of secrets: redacted because the config read it
LINK_PW = "scraped-pw-81d2"


def test_basic_auth_is_sent_but_its_password_is_never_shown(server, tmp_path):
    import base64

    expected = "Basic " + base64.b64encode(f"reader:{BLOG_PW}".encode()).decode()
    page = (b"<html><head><title>Members Season 2</title></head><body><article><h1>Members Season 2</h1>"
            b"<p>Members Season 2 arrives in early 2027.</p></article></body></html>")
    server.route("/members", lambda h: Reply(body=page, headers={"Content-Type": "text/html"})
                 if h.headers.get("Authorization") == expected else Reply(401, b"who are you?"))
    # A scraped link carrying credentials (a feed entry's link), and a redirect to another server.
    feed = (f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title><item><title>Show Season 2 news"
            f"</title><link>http://editor:{LINK_PW}@news.example/a</link><guid>a</guid><description>Show Season 2 "
            "arrives in early 2027.</description></item></channel></rss>").encode()
    server.route("/feed", Reply(body=feed, headers={"Content-Type": "application/rss+xml"}))
    with PageServer() as other:
        other.route("/landing", Reply(body=page, headers={"Content-Type": "text/html"}))
        server.route("/away", Reply(302, b"", headers={"Location": other.url("/landing")}))
        cfg = tmp_path / "watcher.toml"
        cfg.write_text(f"""
[watcher]
database_url = "sqlite:///{tmp_path}/w.db"
[fetch]
autothrottle = false
retries = 0
allow_private = ["{server.allow}", "{other.allow}"]
[[watch]]
name = "members"
url = "{server.url('/members')}"
interval = "1h"
auth = {{ username = "reader", password_env = "BLOG_PW" }}
[[watch]]
name = "away"
url = "{server.url('/away')}"
interval = "1h"
auth = {{ username = "reader", password_env = "BLOG_PW" }}
[[watch]]
name = "feed"
url = "{server.url('/feed')}"
kind = "feed"
interval = "1h"
""")
        env = {**os.environ, "BLOG_PW": BLOG_PW}
        check = watcher(cfg, "check", "--json", env=env)
        assert check.returncode == 0, check.stdout + check.stderr
        landing_auth = [h.get("Authorization") for path, h in other.requests if path == "/landing"]
    assert landing_auth == [None]  # not forwarded to another host:port
    outputs = [check.stdout + check.stderr]
    for args in (["watches", "--json"], ["watches"], ["history", "members"], ["history", "feed", "--json"],
                 ["show", "1", "--json"], ["changes", "--all", "--json"], ["topic", "Show S2", "--json"]):
        result = watcher(cfg, *args, env=env)
        outputs.append(result.stdout + result.stderr)
    for out in outputs:
        assert BLOG_PW not in out and LINK_PW not in out
    assert "http://news.example/a" in "".join(outputs)  # the scraped link, shown without its credentials

    import httpx

    from tests.test_review import _serve
    from watcher.store import Store

    store = Store.open(f"sqlite:///{tmp_path}/w.db")
    try:
        for site in _serve(store, token=None):  # the web page, its Atom feed and calendar
            pages = [httpx.get(site + p).text for p in ("/", "/watches", "/watch/feed", "/watch/members", "/events",
                                                         "/feed.atom", "/calendar.ics", "/snapshot/1", "/snapshot/2")]
    finally:
        store.close()
    for text in pages:
        assert LINK_PW not in text and BLOG_PW not in text
    assert any("http://news.example/a" in text for text in pages)
