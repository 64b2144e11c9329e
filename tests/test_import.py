"""`watcher import urlwatch|opml|changedetection` and `watcher export`: files in the formats those tools
write, imported into a config that `watcher check` then runs against a real local server (both backends)."""

from __future__ import annotations

import io
import json
import tomllib
import zipfile
from pathlib import Path
from typing import get_args

import pytest

from tests.pageserver import PageServer
from tests.test_manage import only_added, run, sample_site
from watcher.config import load_config
from watcher.records import WatchKind

# As urlwatch writes it (`urlwatch --edit`): documents separated by ---, filters in both spellings.
URLS_YAML = """\
name: "Show news page"
url: "{base}/news/show-s2"
filter:
  - css: article
  - html2text
  - strip
---
url: "{base}/news/atom.xml"
filter: css:entry,html2text
enabled: false
---
name: Old page
kind: url
url: "{base}/old"
max_tries: 3
---
name: "Home Listing"
command: "ls -al ~"
---
url: "{base}/search.cgi"
data: "q=something"
"""

OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><head><title>My feeds</title></head><body>
<outline text="TV">
  <outline type="rss" text="Example News" title="Example News" xmlUrl="{base}/news/atom.xml" htmlUrl="{base}/"/>
  <outline type="rss" text="Second copy" xmlUrl="{base}/news/atom.xml"/>
</outline>
<outline text="Local file" type="rss" xmlUrl="file:///etc/passwd"/>
<outline type="link" text="A page" url="{base}/old"/>
</body></opml>"""


def changedetection_zip(base: str, *, legacy: bool = False) -> bytes:
    """A backup as changedetection.io's create_backup writes it: changedetection.json (settings) and one
    <uuid>/watch.json per watch with its history files, or (older) everything in url-watches.json."""
    settings = {"requests": {"time_between_check": {"weeks": None, "days": None, "hours": 3, "minutes": None,
                                                   "seconds": None}},
                "application": {"fetch_backend": "html_requests", "tags": {}}}
    watches = {
        "4f1f8c52-3f5e-4bb9-9c3c-1b7f0d2b6a01": {
            "url": f"{base}/news/show-s2", "title": "Show S2 page", "paused": False,
            "time_between_check": {"weeks": None, "days": None, "hours": None, "minutes": 90, "seconds": None},
            "time_between_check_use_default": False, "include_filters": ["xpath://article"],
            "fetch_backend": "system", "processor": "text_json_diff", "tags": []},
        "9b0c1d3e-7a55-4c2e-8f6a-2d4e5f6a7b02": {
            "url": f"{base}/news/atom.xml", "title": None, "page_title": "Example News", "paused": True,
            "time_between_check": {"weeks": None, "days": None, "hours": None, "minutes": None, "seconds": None},
            "time_between_check_use_default": True, "include_filters": [], "fetch_backend": "html_webdriver"},
        "0c3e2a1b-5d4f-4e6a-9b8c-7d6e5f4a3b03": {"url": "source:" + f"{base}/old", "title": "Old (source view)"},
        "1d2e3f4a-5b6c-4d7e-8f9a-0b1c2d3e4f04": {"url": "file:///etc/hostname", "title": "local file"},
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if legacy:
            zf.writestr("url-watches.json", json.dumps({"watching": watches, "settings": settings}))
        else:
            zf.writestr("changedetection.json", json.dumps({"settings": settings, "app_guid": "test"}))
            for uuid, w in watches.items():
                zf.writestr(f"{uuid}/watch.json", json.dumps(w))
                zf.writestr(f"{uuid}/history.txt", "1700000000,1700000000.txt\n")
                zf.writestr(f"{uuid}/1700000000.txt", "old snapshot text")
        zf.writestr("url-list.txt", "\r\n".join(w["url"] for w in watches.values()))
    return buf.getvalue()


@pytest.fixture
def server():
    with PageServer() as s:
        yield sample_site(s)


@pytest.fixture
def cfg(tmp_path, database_url, server) -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(f'# imports land below\n[watcher]\ndatabase_url = "{database_url}"\n\n'
                    '[fetch]\nautothrottle = false\nretries = 0\ntimeout = "5s"\n'
                    f'allow_private = ["{server.allow}"]\n')
    return path


def test_import_urlwatch_urls_yaml(server, cfg, tmp_path):
    urls = tmp_path / "urls.yaml"
    urls.write_text(URLS_YAML.format(base=server.base))
    before = cfg.read_text()
    out = json.loads(run(cfg, "import", "urlwatch", str(urls), "--json"))
    assert (out["imported"], out["skipped"]) == (3, 2)
    jobs = {j["source"]: j for j in out["jobs"]}
    assert jobs["Home Listing"]["skipped"].startswith("shell command job")
    assert "POST" in jobs[server.url("/search.cgi")]["skipped"]
    page = jobs["Show news page"]
    assert page["watch"] == {"name": "show-news-page", "url": server.url("/news/show-s2"), "kind": "html",
                             "interval": "6h", "scope": {"css": "article"}}
    assert "html2text, strip not imported" in page["notes"][0]
    feed = jobs[server.url("/news/atom.xml")]["watch"]
    assert feed == {"name": "127.0.0.1-atom.xml", "url": server.url("/news/atom.xml"), "kind": "feed",
                    "interval": "6h", "scope": {"css": "entry"}, "enabled": False}
    assert jobs["Old page"]["watch"]["name"] == "old-page"
    block = only_added(before, cfg.read_text())
    assert block.count("[[watch]] # added by `watcher import urlwatch`") == 3
    config = load_config(cfg)
    assert [w.name for w in config.watch] == ["show-news-page", "127.0.0.1-atom.xml", "old-page"]
    # What was imported runs: the disabled feed is not checked, the two pages are.
    report = json.loads(run(cfg, "check", "--json"))
    assert sorted((r["watch"], r["outcome"]) for r in report["results"]) == [
        ("old-page", "baseline"), ("show-news-page", "baseline")]
    # Importing the same file again adds nothing: every URL is already watched.
    again = json.loads(run(cfg, "import", "urlwatch", str(urls), "--json"))
    assert again["imported"] == 0 and again["written"] is False
    assert {j["skipped"] for j in again["jobs"] if j["source"] == "Old page"} == {"already watched as 'old-page'"}


def test_import_opml(server, cfg, tmp_path):
    opml = tmp_path / "feeds.opml"
    opml.write_text(OPML.format(base=server.base))
    text = " ".join(run(cfg, "import", "opml", str(opml)).split())  # wrapped at 80 columns: the path's length varies
    assert "imported 2 watches" in text and "skipped 2" in text
    config = load_config(cfg)
    assert [(w.name, w.kind, w.url) for w in config.watch] == [
        ("example-news", "feed", server.url("/news/atom.xml")), ("a-page", "html", server.url("/old"))]
    out = json.loads(run(cfg, "import", "opml", str(opml), "--dry-run", "--json"))
    reasons = sorted(j["skipped"] for j in out["jobs"])
    assert reasons == ["already watched as 'a-page'", "already watched as 'example-news'",
                       "already watched as 'example-news'", "not an http(s) URL"]
    report = json.loads(run(cfg, "check", "example-news", "--json"))
    assert report["results"][0]["outcome"] == "baseline" and report["results"][0]["snapshots"] == 2


@pytest.mark.parametrize("legacy", [False, True], ids=["watch-json", "url-watches-json"])
def test_import_changedetection_backup(server, cfg, tmp_path, legacy):
    backup = tmp_path / "changedetection-backup-20260101000000.zip"
    backup.write_bytes(changedetection_zip(server.base, legacy=legacy))
    out = json.loads(run(cfg, "import", "changedetection", str(backup), "--json"))
    assert (out["imported"], out["skipped"]) == (3, 1)
    watches = {j["watch"]["name"]: j for j in out["jobs"] if j["watch"]}
    show = watches["show-s2-page"]["watch"]
    assert show == {"name": "show-s2-page", "url": server.url("/news/show-s2"), "kind": "html",
                    "interval": "90m", "scope": {"xpath": "//article"}}
    feed = watches["example-news"]
    assert feed["watch"]["enabled"] is False and feed["watch"]["interval"] == "3h"  # the backup's default
    browser_kind = "browser" in get_args(WatchKind)  # the kind arrives with issue 14's second half
    assert feed["watch"]["kind"] == ("browser" if browser_kind else "html")
    assert browser_kind or "rendered with JavaScript" in feed["notes"][0]
    assert watches["old-source-view"]["watch"]["url"] == server.url("/old")  # 'source:' view prefix dropped
    assert [j["skipped"] for j in out["jobs"] if j["skipped"]] == ["not an http(s) URL"]
    report = json.loads(run(cfg, "check", "show-s2-page", "--json"))
    assert report["results"][0]["outcome"] == "baseline"


def test_import_refuses_files_that_are_not_the_format(cfg, tmp_path):
    before = cfg.read_text()
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    assert "not a changedetection.io backup zip" in run(cfg, "import", "changedetection", str(bad), code=2)
    assert "not an OPML file" in run(cfg, "import", "opml", str(bad), code=2)
    yaml_file = tmp_path / "urls.yaml"
    yaml_file.write_text("url: [unclosed\n")
    assert "not a urlwatch urls.yaml" in run(cfg, "import", "urlwatch", str(yaml_file), code=2)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert "is it a changedetection.io backup" in run(cfg, "import", "changedetection", str(empty), code=2)
    assert cfg.read_text() == before


def test_export_opml_and_toml_round_trip(server, cfg, tmp_path):
    opml = tmp_path / "feeds.opml"
    opml.write_text(OPML.format(base=server.base))
    run(cfg, "import", "opml", str(opml))
    out = tmp_path / "out.opml"
    assert "1 watches that are not feeds are left out" in run(cfg, "export", "--format", "opml", "-o", str(out))
    # Another config takes the feeds back.
    other = tmp_path / "other.toml"
    other.write_text(cfg.read_text().split("[[watch]]")[0])
    assert "imported 1 watches" in run(other, "import", "opml", str(out))
    assert [(w.kind, w.url) for w in load_config(other).watch] == [("feed", server.url("/news/atom.xml"))]
    toml_text = run(cfg, "export")
    assert [w["name"] for w in tomllib.loads(toml_text)["watch"]] == ["example-news", "a-page"]
    assert tomllib.loads(toml_text)["watch"][0]["interval"] == "6h"  # as written, not re-rendered
