"""The REST API and the web page's buttons (both backends): reads, writes that always need the token, CSRF
on the forms, the OpenAPI description checked against real responses, and a recheck or a pause made on the
web reaching a daemon that runs beside it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.pageserver import PageServer
from tests.receivers import free_port
from tests.test_manage import sample_site
from tests.test_pipeline import page
from tests.test_reload import checks, wait_for
from tests.test_review import browser  # noqa: F401  (the Chromium fixture)
from watcher.config import load_config
from watcher.runtime import run_sync
from watcher.scheduler import run_daemon

TOKEN = "api-t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextlib.contextmanager
def serve(store, *, token: str | None, config_path: Path | None):
    import uvicorn

    from watcher.web import create_app

    app = create_app(store, token=token, config_path=str(config_path) if config_path else None)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the web server to start", 20)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def server():
    with PageServer() as s:
        s.route("/a", page("early 2027", stamp="a"))
        s.route("/b", page("late 2026", stamp="b"))
        yield sample_site(s)


def write_config(path: Path, database_url: str, server: PageServer, *, interval_a: str = "1h") -> Path:
    path.write_text(f"""# managed over the API too
[watcher]
database_url = "{database_url}"

[fetch]
autothrottle = false
retries = 0
timeout = "5s"
allow_private = ["{server.allow}"]

[[watch]]
name = "a"
url = "{server.url('/a')}"
interval = "{interval_a}"
jitter = "0s"

[[watch]]
name = "b"   # the second
url = "{server.url('/b')}"
interval = "1h"
""")
    return path


@pytest.fixture
def cfg(tmp_path, database_url, server, store) -> Path:
    path = write_config(tmp_path / "watcher.toml", database_url, server)
    from tests.test_pipeline import cycle

    cycle(store, load_config(path))  # some history to read
    return path


# --------------------------------------------------------------------------- the OpenAPI description


def schema_validator(spec: dict, name: str):
    """A JSON Schema validator for components/schemas/NAME of the served document ($refs resolved in it)."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry = Registry().with_resource("urn:watcher-api", Resource.from_contents(
        {**spec, "$schema": "https://json-schema.org/draft/2020-12/schema"}))
    return Draft202012Validator({"$ref": f"urn:watcher-api#/components/schemas/{name}"}, registry=registry)


def test_openapi_describes_every_route_and_real_responses_match(store, cfg):
    from openapi_spec_validator import validate

    from tests.test_pipeline import cycle
    from watcher.web import create_app

    for _ in range(2):  # two unchanged re-checks: one row that counts them
        cycle(store, load_config(cfg))
    with serve(store, token=None, config_path=cfg) as base:
        spec = httpx.get(base + "/api/v1/openapi.json").json()
        validate(spec)  # a valid OpenAPI 3.1 document
        app = create_app(store, config_path=str(cfg))
        served = {(r.path, m) for r in app.routes if r.path.startswith("/api/") for m in (r.methods or ())
                  if m != "HEAD"}
        described = {(p, m.upper()) for p, ops in spec["paths"].items() for m in ops if m != "parameters"}
        assert served == described
        watches = httpx.get(base + "/api/v1/watches").json()["watches"]
        assert [w["name"] for w in watches] == ["a", "b"]
        for w in watches:
            schema_validator(spec, "Watch").validate(w)
        detail = httpx.get(base + "/api/v1/watches/a").json()
        schema_validator(spec, "WatchDetail").validate(detail)
        run, first = detail["checks"][:2]
        assert (run["outcome"], run["repeats"], first["outcome"], first["repeats"]) == ("unchanged", 2, "baseline", 1)
        assert run["last_at"] > run["at"] and run["label"].startswith("unchanged ×2 (last ")
        assert detail["counts"] == {"baseline": 1, "unchanged": 2} and detail["recheck"] is None
        topics = httpx.get(base + "/api/v1/topics").json()["topics"]
        [topic] = topics
        schema_validator(spec, "TopicSummary").validate(topic)
        release = next(f for f in topic["facts"] if f["kind"] == "release")
        assert release["current"].startswith(("early 2027", "late 2026")) and "127.0.0.1" in release["source"]
        full = httpx.get(base + "/api/v1/topics/" + topic["topic"].replace("#", "%23")).json()
        schema_validator(spec, "Topic").validate(full)
        assert httpx.get(base + "/api/v1/topics/Show%20S2").json()["topic"] == topic["topic"]
        events = httpx.get(base + "/api/v1/events", params={"limit": 5}).json()["events"]
        for e in events:
            schema_validator(spec, "Event").validate(e)
        assert httpx.get(base + "/api/v1/events", params={"limit": 0}).status_code == 400
        assert httpx.get(base + "/api/v1/events", params={"since": "yesterday"}).json()["error"].startswith("since")
        missing = httpx.get(base + "/api/v1/watches/nope")
        assert missing.status_code == 404 and "no watch named 'nope'" in missing.json()["error"]
        schema_validator(spec, "Error").validate(missing.json())


# --------------------------------------------------------------------------- writes need the token


WRITES = [("POST", "/api/v1/watches", {"url": "http://127.0.0.1:9/x"}), ("DELETE", "/api/v1/watches/a", None),
          ("POST", "/api/v1/watches/a/pause", None), ("POST", "/api/v1/watches/a/resume", None),
          ("POST", "/api/v1/watches/a/recheck", None)]


def test_writes_are_refused_without_the_token(store, cfg):
    before = cfg.read_text()
    # No token configured (loopback): reads are open, every write is refused.
    with serve(store, token=None, config_path=cfg) as base:
        assert httpx.get(base + "/api/v1/watches").status_code == 200
        for method, path, body in WRITES:
            r = httpx.request(method, base + path, json=body, headers=AUTH)
            assert r.status_code == 403 and "read-only" in r.json()["error"], (method, path)
    # Token configured: reads need it too; writes need it in the Authorization header, nothing else.
    with serve(store, token=TOKEN, config_path=cfg) as base:
        assert httpx.get(base + "/api/v1/watches").status_code == 401
        assert httpx.get(base + "/api/v1/watches", headers=AUTH).status_code == 200
        for method, path, body in WRITES:
            for headers, cookies in (({}, {}), ({"Authorization": "Bearer wrong"}, {}),
                                     ({}, {"watcher_token": TOKEN})):
                r = httpx.request(method, base + path, json=body, headers=headers, cookies=cookies)
                assert r.status_code == 401, (method, path, headers, cookies)
                assert r.headers["www-authenticate"] == "Bearer" and "token" in r.json()["error"]
            r = httpx.request(method, base + path + f"?token={TOKEN}", json=body)
            assert r.status_code == 401, (method, path, "token in the query string")
    assert cfg.read_text() == before
    from sqlalchemy import func, select

    from watcher.store.models import CheckRequest

    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(CheckRequest)) == 0


def test_add_pause_resume_delete_over_the_api(store, cfg, server):
    with serve(store, token=TOKEN, config_path=cfg) as base:
        api = httpx.Client(base_url=base + "/api/v1", headers=AUTH, timeout=60)
        r = api.post("/watches", json={"url": server.url("/blog/all-of-us-are-dead-season-2/"),
                                       "topic": "All of Us Are Dead S2", "interval": "12h"})
        assert r.status_code == 201, r.text
        added = r.json()
        assert added["written"] is True and added["watch"]["kind"] == "wordpress"
        assert added["watch"]["url"] == server.url("/blog/wp-json/wp/v2/posts/161")
        assert added["preview"][0]["facts"]["release"]["text"] == "early 2027"
        spec = api.get("/openapi.json").json()
        schema_validator(spec, "Proposal").validate(added)
        name = added["watch"]["name"]
        assert load_config(cfg).watch_by_name(name).interval.total_seconds() == 12 * 3600
        assert "# managed over the API too" in cfg.read_text() and 'name = "b"   # the second' in cfg.read_text()
        assert name in [w["name"] for w in api.get("/watches").json()["watches"]]  # synced at once
        # The page that links a feed: offered, or taken with use_feed.
        dry = api.post("/watches", json={"url": server.url("/news/show-s2"), "dry_run": True}).json()
        assert dry["written"] is False and dry["watch"]["kind"] == "html"
        assert dry["offered_feeds"][0]["url"] == server.url("/news/atom.xml")
        feed = api.post("/watches", json={"url": server.url("/news/show-s2"), "use_feed": True})
        assert feed.status_code == 201 and feed.json()["watch"]["kind"] == "feed"
        # Refusals, each with its status and a message, the file untouched.
        before = cfg.read_text()
        assert api.post("/watches", json={"url": server.url("/a")}).status_code == 409
        assert api.post("/watches", json={"url": server.url("/news/show-s2"), "name": "a"}).status_code == 409
        unreadable = api.post("/watches", json={"url": server.url("/missing")})
        assert unreadable.status_code == 422 and "could not be read" in unreadable.json()["error"]
        assert api.post("/watches", json={"url": server.url("/x"), "colour": "red"}).status_code == 400
        assert api.post("/watches", json={"url": "ftp://x.org/"}).status_code == 400
        assert api.post("/watches", content=b"url=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
                        ).status_code == 415
        assert api.post("/watches", content=b"{", headers={"Content-Type": "application/json"}).status_code == 400
        assert cfg.read_text() == before
        # Pause, resume, delete.
        paused = api.post("/watches/a/pause").json()
        assert paused == {"watch": paused["watch"], "changed": True} and paused["watch"]["enabled"] is False
        assert load_config(cfg).watch_by_name("a").enabled is False
        assert api.post("/watches/a/pause").json()["changed"] is False
        assert api.post("/watches/a/resume").json()["watch"]["enabled"] is True
        assert "enabled" not in cfg.read_text()
        assert api.delete("/watches/b").json() == {"removed": "b"}
        assert [w.name for w in load_config(cfg).watch] == ["a", name, "127.0.0.1-atom.xml"]
        assert api.post("/watches/b/pause").status_code == 404
        assert api.delete("/watches/b").status_code == 404
        assert api.post("/watches/b/recheck").status_code == 404
        # Reads of the removed watch still show its history, disabled.
        assert api.get("/watches/b").json()["enabled"] is False


# --------------------------------------------------------------------------- the daemon beside the web


@contextlib.contextmanager
def daemon(store, cfg: Path):
    config = load_config(cfg)
    stop = asyncio.Event()
    done = threading.Event()

    def go() -> None:
        try:
            run_sync(lambda: run_daemon(store, config, stop=stop, sender=False, request_poll=0.2))
        finally:
            done.set()

    runner = threading.Thread(target=go, daemon=True)
    runner.start()
    try:
        yield
    finally:
        async def halt() -> None:
            stop.set()

        run_sync(halt)
        assert done.wait(30), "the daemon did not stop"


def test_recheck_and_pause_from_the_web_reach_the_running_daemon(store, cfg, server, database_url, caplog):
    caplog.set_level(logging.WARNING, logger="watcher.reload")
    server.route("/c", page("mid 2027", stamp="c"))
    write_config(cfg, database_url, server, interval_a="1s")
    with cfg.open("a") as f:  # c: every second, the clock that shows a has stopped
        f.write(f'\n[[watch]]\nname = "c"\nurl = "{server.url("/c")}"\ninterval = "1s"\njitter = "0s"\n')
    with serve(store, token=TOKEN, config_path=cfg) as base, daemon(store, cfg):
        api = httpx.Client(base_url=base + "/api/v1", headers=AUTH, timeout=30)
        wait_for(lambda: checks(store).get("b", 0) >= 2, "b's first check under the daemon")  # one from the fixture
        # b is hourly: only a recheck checks it again now.
        before = checks(store)["b"]
        first = api.post("/watches/b/recheck")
        assert first.status_code == 202 and first.json()["created"] is True
        assert first.json()["request"]["state"] in ("pending", "running")
        again = api.post("/watches/b/recheck").json()
        # Asked again before the first ran: the same request comes back; after it ran, a new one.
        assert again["created"] == (again["request"]["id"] != first.json()["request"]["id"])
        latest = again["request"]["id"]
        done = wait_for(lambda: (r := api.get("/watches/b").json()["recheck"]) and r["id"] == latest
                        and r["state"] == "done" and r, "the recheck's outcome")
        assert done["outcome"] == "unchanged" and done["requested_by"] == "api"
        assert checks(store)["b"] == before + (2 if again["created"] else 1)
        # Pause a over the API: the daemon reloads the edited file and stops checking it.
        mark = len(caplog.records)
        assert api.post("/watches/a/pause").status_code == 200
        wait_for(lambda: any("config reloaded" in r.getMessage() and "changed a" in r.getMessage()
                             for r in caplog.records[mark:]), "the daemon to reload the config")
        count, c_count = checks(store)["a"], checks(store)["c"]
        wait_for(lambda: checks(store)["c"] >= c_count + 3, "c to be checked three more times")
        assert checks(store)["a"] <= count + 1  # at most one already under way


# --------------------------------------------------------------------------- the buttons: forms with CSRF


def test_form_posts_need_the_csrf_token(store, cfg):
    with serve(store, token=TOKEN, config_path=cfg) as base:
        browser = httpx.Client(base_url=base, follow_redirects=False)
        page_html = browser.get(f"/watch/a?token={TOKEN}").text  # logs in: the cookie is kept
        csrf = re.search(r'name="csrf" value="([^"]+)"', page_html).group(1)
        assert 'action="/watch/a/pause"' in page_html and 'action="/watch/a/recheck"' in page_html
        assert "<script" not in page_html
        before = cfg.read_text()
        for data, headers in (({}, {}), ({"csrf": "1700000000.0000"}, {}),
                              ({"csrf": csrf[:-1] + ("0" if csrf[-1] != "0" else "1")}, {}),
                              ({"csrf": csrf}, {"Origin": "http://evil.example"}),
                              ({"csrf": csrf}, {"Sec-Fetch-Site": "cross-site"})):
            r = browser.post("/watch/a/pause", data=data, headers=headers)
            assert r.status_code == 403, (data, headers)
        assert cfg.read_text() == before
        # Without the cookie the site's token check answers first.
        assert httpx.post(base + "/watch/a/pause", data={"csrf": csrf}).status_code == 401
        r = browser.post("/watch/a/pause", data={"csrf": csrf}, headers={"Origin": base})
        assert r.status_code == 303 and r.headers["location"] == "/watch/a?done=pause"
        assert load_config(cfg).watch_by_name("a").enabled is False
        shown = browser.get("/watch/a?done=pause").text
        assert "Paused:" in shown and 'action="/watch/a/resume"' in shown
        assert browser.post("/watch/a/recheck", data={"csrf": csrf}).status_code == 303
        assert "Recheck requested" in browser.get("/watch/a").text
        assert browser.post("/watch/nope/pause", data={"csrf": csrf}).status_code == 404
        csp = browser.get("/watches").headers["content-security-policy"]
        assert "form-action 'self'" in csp and "script-src" not in csp and "default-src 'none'" in csp
    # A site without a token shows no buttons and takes no form posts.
    with serve(store, token=None, config_path=cfg) as base:
        html = httpx.get(base + "/watch/a").text
        assert "<form" not in html and "Read-only" in html
        assert httpx.post(base + "/watch/a/resume", data={"csrf": csrf}).status_code == 403


def test_csrf_tokens_expire_and_are_bound_to_the_site_token():
    from watcher.web import csrf_token, csrf_valid

    now = 1_800_000_000
    token = csrf_token("secret", now)
    assert csrf_valid("secret", token, now + 60)
    assert not csrf_valid("other", token, now + 60)
    assert not csrf_valid("secret", token, now + 13 * 3600)
    assert not csrf_valid("secret", token, now - 60)
    assert not csrf_valid("secret", "", now) and not csrf_valid("secret", "x.y", now)


@pytest.mark.browser
def test_buttons_in_chromium(store, cfg, browser):  # noqa: F811
    from tests.test_review import ARTIFACTS

    with serve(store, token=TOKEN, config_path=cfg) as base:
        page_ = browser.new_page(viewport={"width": 1280, "height": 900})
        console: list[str] = []
        page_.on("console", lambda m: console.append(m.text))
        page_.goto(f"{base}/watches?token={TOKEN}")
        assert page_.locator("button", has_text="pause").count() == 2
        page_.goto(f"{base}/watch/b")
        page_.click("button:has-text('pause')")
        page_.wait_for_url(re.compile(r".*/watch/b\?done=pause$"))
        assert "Paused:" in page_.locator("p.notice").inner_text()
        assert load_config(cfg).watch_by_name("b").enabled is False
        page_.click("button:has-text('recheck')")
        page_.wait_for_url(re.compile(r".*done=recheck$"))
        assert "Recheck requested" in page_.locator("body").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page_.screenshot(path=str(ARTIFACTS / "watch-actions.png"), full_page=True)
        page_.click("button:has-text('resume')")
        page_.wait_for_url(re.compile(r".*done=resume$"))
        assert load_config(cfg).watch_by_name("b").enabled is True
        assert not [m for m in console if "Content Security Policy" in m or "Refused" in m], console
        page_.close()


def test_openapi_request_schema_is_the_validators():
    from watcher.web.api import NewWatch
    from watcher.web.openapi import openapi_document

    assert openapi_document()["components"]["schemas"]["NewWatch"] == NewWatch.model_json_schema()
    assert json.dumps(openapi_document())  # serialisable as served


def test_check_requests_are_claimed_once_and_expire(store):
    import datetime as dt

    from sqlalchemy import select, update

    from watcher.rechecks import claim_requests, finish_request, request_check
    from watcher.store.models import CheckRequest

    first, created = request_check(store, "a", by="api")
    assert created and first["state"] == "pending"
    assert request_check(store, "a", by="web") == (first, False)  # one open request per watch
    other, _ = request_check(store, "b", by="web")
    assert claim_requests(store) == [(first["id"], "a"), (other["id"], "b")]
    assert claim_requests(store) == []  # claimed once
    finish_request(store, first["id"], "unchanged")
    again, created = request_check(store, "a", by="api")
    assert created and again["id"] != first["id"]
    # Nobody ran it for over an hour (no daemon, or one that died mid-check): expired, not run late.
    with store.session() as s:
        s.execute(update(CheckRequest).values(requested_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
                  .where(CheckRequest.state.in_(("pending", "running"))))
    assert claim_requests(store) == []
    with store.session() as s:
        states = dict(s.execute(select(CheckRequest.id, CheckRequest.state)).all())
    assert states == {first["id"]: "done", other["id"]: "expired", again["id"]: "expired"}


def test_watcher_web_process_adds_a_watch_over_the_api(server, tmp_path, sqlite_url):
    """`watcher web` as its own process: the API's add fetches through the crawler started there."""
    import os
    import subprocess
    import sys

    cfg = write_config(tmp_path / "watcher.toml", sqlite_url, server)
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if k != "WATCHER_DATABASE_URL"}, "WATCHER_WEB_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "-c", str(cfg), "web", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            assert proc.poll() is None, proc.stderr.read()
            try:
                return httpx.get(base + "/api/v1/watches", headers=AUTH).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, "watcher web to answer")
        for url in (server.url("/news/show-s2"), server.url("/blog/all-of-us-are-dead-season-2/")):
            r = httpx.post(base + "/api/v1/watches", json={"url": url}, headers=AUTH, timeout=60)
            assert r.status_code == 201, r.text
        kinds = {w.name: w.kind for w in load_config(cfg).watch}
        assert kinds == {"a": "html", "b": "html", "127.0.0.1-show-s2": "html",
                         "127.0.0.1-all-of-us-are-dead-season-2": "wordpress"}
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.mark.redis
def test_recheck_in_a_scaled_out_deployment_goes_on_the_workers_queue(pg_server_url, redis_url):
    """With `watcher run --role scheduler` (PostgreSQL lock, Redis stream) the active scheduler takes the
    request and queues the watch due now, for a worker to check."""
    import datetime as dt

    from tests.test_scale import _need_pg
    from watcher.config import Config
    from watcher.rechecks import request_check
    from watcher.scale import JobQueue, redis_client, run_scheduler_role
    from watcher.store import Store

    pg = _need_pg(pg_server_url)
    import redis

    plain = redis.Redis.from_url(redis_url)
    plain.flushdb()
    store = Store.open(pg)
    # Paused: the schedule never queues it, so whatever reaches the queue is the recheck.
    config = Config.model_validate({"watcher": {"database_url": pg}, "redis": {"url": redis_url},
                                    "watch": [{"name": "a", "url": "http://127.0.0.1:9/a", "interval": "1h",
                                               "enabled": False}]})
    stop = asyncio.Event()
    runner = threading.Thread(target=lambda: run_sync(lambda: run_scheduler_role(store, config, stop, poll=0.2)),
                              daemon=True)
    runner.start()
    try:
        asked_at = dt.datetime.now(dt.UTC)
        row, _ = request_check(store, "a", by="api")

        def state():
            from sqlalchemy import select

            from watcher.store.models import CheckRequest

            with store.session() as s:
                return s.scalar(select(CheckRequest.outcome).where(CheckRequest.id == row["id"]))

        assert wait_for(state, "the scheduler to take the request") == "queued"

        async def read() -> list:
            r = redis_client(redis_url)
            try:
                q = JobQueue(r, lease=6)
                await q.ensure_group()
                return await q.read("test", 10, block_ms=100)
            finally:
                await r.aclose()

        [job] = run_sync(read)
        assert job.watch == "a"
        assert asked_at.timestamp() * 1000 - 1000 <= job.due <= time.time() * 1000 + 1000
    finally:
        run_sync(lambda: _set_event(stop))
        runner.join(30)
        store.close()
        plain.flushdb()


async def _set_event(event: asyncio.Event) -> None:
    event.set()
