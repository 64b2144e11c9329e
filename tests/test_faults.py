"""Hostile servers, in one cycle beside a good watch: every failure is recorded with its reason, the good
watch still works, encodings decode, and a watch that keeps failing raises one fetch_failed event."""

from __future__ import annotations

import gzip
import time

import pytest
from sqlalchemy import select

from tests.pageserver import PageServer, Reply
from tests.test_pipeline import cycle, page
from watcher.config import Config
from watcher.store.codec import decode_document
from watcher.store.models import ChangeEventRow, Check, Snapshot, Watch

GOOD = page("early 2027")


def html(text: str, charset: str | None, encoding: str, meta: str = "") -> Reply:
    body = (f"<html><head>{meta}<title>Show Season 2</title></head><body><article><h1>Show Season 2</h1>"
            f"<p>{text}</p></article></body></html>").encode(encoding)
    ctype = "text/html" + (f"; charset={charset}" if charset else "")
    return Reply(body=body, headers={"Content-Type": ctype})


def trickle(handler) -> Reply:
    """Headers at once, then one byte a second: only the download timeout can end it."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for _ in range(30):
        handler.wfile.write(b"<")
        handler.wfile.flush()
        time.sleep(1)
    raise ConnectionAbortedError("trickle over")


CASES: dict[str, tuple[str, Reply | object, str | None]] = {
    # name: (path, reply, expected reason; None = must succeed)
    "ok": ("/ok", GOOD, None),
    "forbidden": ("/403", Reply(403, b"no"), "http-403"),
    "missing": ("/404", Reply(404, b"no"), "http-404"),
    "gone": ("/410", Reply(410, b"gone"), "http-410"),
    "throttled": ("/429", Reply(429, b"slow down", headers={"Retry-After": "120"}), "http-429"),
    "error": ("/500", Reply(500, b"boom"), "http-500"),
    "unavailable": ("/503", Reply(503, b"later"), "http-503"),
    "loop": ("/loop", Reply(302, b"", headers={"Location": "/loop"}), "redirect-loop"),
    "huge": ("/huge", Reply(body=b"<html><body>" + b"x" * 2_000_000 + b"</body></html>"), "too-large"),
    "bomb": ("/bomb", Reply(body=gzip.compress(b"<html><body>" + b"A" * 50_000_000),
                            headers={"Content-Encoding": "gzip", "Content-Type": "text/html"}), "too-large"),
    "trickle": ("/trickle", trickle, "timeout"),
    "binary": ("/binary", Reply(body=b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40,
                                headers={"Content-Type": "text/html"}), "binary-content"),
    "empty": ("/empty", Reply(body=b"", headers={"Content-Type": "text/html"}), "empty-body"),
    "truncated": ("/truncated", Reply(body=GOOD.body[: GOOD.body.index(b"</article>") + 4], headers=GOOD.headers),
                  None),
    "latin1": ("/latin1", html("Pokémon Café Season 2 arrives in early 2027.", "iso-8859-1", "latin-1"), None),
    "sjis": ("/sjis", html("ショー シーズン2 Show Season 2 arrives in early 2027.", "shift_jis", "shift_jis"), None),
    "nocharset": ("/nocharset", html("Crème brûlée Season 2 arrives in early 2027.", None, "latin-1"), None),
    "lying": ("/lying", html("Résumé Season 2 arrives in early 2027.", None, "latin-1",
                             meta='<meta charset="utf-8">'), None),
    "private": ("/private", GOOD, "robots"),
    "badfeed": ("/feed.xml", Reply(body=b"<rss><channel><title>x</title><item><title>a</ite",
                                   headers={"Content-Type": "application/rss+xml"}), "malformed-feed"),
    "badjson": ("/wp-json/bad", Reply(body=b"{not json", headers={"Content-Type": "application/json"}),
                "invalid-json"),
    "wperror": ("/wp-json/err", Reply(404, b'{"code":"rest_post_invalid_id","message":"Invalid post ID."}',
                                      headers={"Content-Type": "application/json"}), "http-404"),
    "wperror200": ("/wp-json/err200", Reply(body=b'{"code":"rest_post_invalid_id","message":"Invalid post ID."}',
                                            headers={"Content-Type": "application/json"}), "wordpress-error"),
}
KINDS = {"badfeed": "feed", "badjson": "wordpress", "wperror": "wordpress", "wperror200": "wordpress"}
EXTERNAL = {"refused": ("http://127.0.0.1:9/x", "connection-refused"),
            "nxdomain": ("http://watcher-test.invalid/x", "dns")}


@pytest.fixture
def hostile():
    with PageServer() as server:
        server.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /private\n"))
        for path, reply, _ in CASES.values():
            server.route(path, reply)
        yield server


def make(server: PageServer, database_url: str) -> Config:
    watches = [{"name": name, "url": server.url(path), "kind": KINDS.get(name, "html")}
               for name, (path, _, _) in CASES.items()]
    watches += [{"name": name, "url": url} for name, (url, _) in EXTERNAL.items()]
    return Config.model_validate({
        "watcher": {"database_url": database_url},
        "fetch": {"autothrottle": False, "retries": 0, "timeout": "4s", "max_bytes": 1_000_000,
                  "failures_before_event": 2, "concurrency_per_domain": 16},
        "watch": [{"interval": "1h", **w} for w in watches],
    })


@pytest.mark.slow
def test_every_hostile_fetch_is_recorded_and_the_rest_keeps_working(hostile, store, database_url):
    config = make(hostile, database_url)
    report = cycle(store, config)
    outcomes = {r.watch: r for r in report.results}
    expected = {name: reason for name, (_, _, reason) in CASES.items()}
    expected.update({name: reason for name, (_, reason) in EXTERNAL.items()})
    got = {name: (r.reason if r.outcome == "failed" else None) for name, r in outcomes.items()}
    assert got == expected, {k: (got[k], outcomes[k].error) for k in got if got[k] != expected[k]}

    with store.session() as s:
        by_name = {w.name: w for w in s.scalars(select(Watch))}
        for name, reason in expected.items():
            w = by_name[name]
            [check] = s.scalars(select(Check).where(Check.watch_id == w.id)).all()
            if reason is None:
                assert check.outcome == "changed", name
            else:
                assert check.outcome == "failed" and check.reason == reason, name
                assert w.last_error and w.last_error.startswith(reason), (name, w.last_error)
        texts = {w.name: decode_document(snap.content_z).text for w in by_name.values()
                 for snap in s.scalars(select(Snapshot).where(Snapshot.watch_id == w.id))}
    assert "Pokémon Café Season 2" in texts["latin1"]
    assert "ショー シーズン2" in texts["sjis"]
    assert "Crème brûlée" in texts["nocharset"]
    assert "Résumé Season 2 arrives in early 2027" in texts["lying"]  # a lying <meta charset> is caught
    assert "early 2027" in texts["truncated"]
    assert outcomes["throttled"].reason == "http-429"

    # Two more cycles (ignoring backoff): each failing watch raises one fetch_failed, not one per check.
    cycle(store, config)
    cycle(store, config, ["error", "gone", "ok"])
    with store.session() as s:
        failed = [e.subject for e in s.scalars(select(ChangeEventRow).where(ChangeEventRow.type == "fetch_failed"))]
        throttled = s.scalars(select(Watch).where(Watch.name == "throttled")).one()
    assert sorted(failed) == sorted(r for r in expected.values() if r is not None)
    assert throttled.backoff_until is not None  # Retry-After honoured in the schedule
