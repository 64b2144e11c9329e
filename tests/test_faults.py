"""Hostile servers, in one cycle beside a good watch: every failure is recorded with its reason, the good
watch still works, encodings decode, and a watch that keeps failing raises one fetch_failed event."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.pageserver import PageServer, Reply
from tests.test_pipeline import count, cycle, make_config, page
from watcher.codec import decode_document
from watcher.config import Config
from watcher.runtime import run_sync
from watcher.store.models import ChangeEventRow, Check, Snapshot, Watch

GOOD = page("early 2027")


def html(text: str, charset: str | None, encoding: str, meta: str = "") -> Reply:
    body = (f"<html><head>{meta}<title>Show Season 2</title></head><body><article><h1>Show Season 2</h1>"
            f"<p>{text}</p></article></body></html>").encode(encoding)
    ctype = "text/html" + (f"; charset={charset}" if charset else "")
    return Reply(body=body, headers={"Content-Type": ctype})


def chunked_flood(handler) -> Reply:
    """A chunked body (no Content-Length to refuse up front) that outgrows max_bytes while it arrives."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b"<p>" + b"x" * 9997
    for _ in range(150):
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    handler.wfile.write(b"0\r\n\r\n")
    raise ConnectionAbortedError("flood over")


def huge_header(handler) -> Reply:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("X-Padding", "a" * 100_000)
    handler.end_headers()
    handler.wfile.write(GOOD.body)
    raise ConnectionAbortedError("sent")


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
    # These used to hang the check for ever (an exception in the spider's response handling).
    "deepjson": ("/wp-json/deep", Reply(body=b"[" * 100_000 + b"]" * 100_000,
                                        headers={"Content-Type": "application/json"}), "too-deep"),
    "retryafter-digit": ("/429-digit", Reply(429, b"slow down", headers={"Retry-After": "\u00b2"}), "http-429"),
    "retryafter-date": ("/503-date", Reply(503, b"later", headers={"Retry-After": "Mon, 99 Foo 99999 99:99:99"}),
                        "http-503"),
    # Used to read "cancelled", "ignored: Ignoring non-200 response" and a Twisted Failure repr.
    "chunked": ("/chunked", chunked_flood, "too-large"),
    "to-file": ("/to-file", Reply(302, b"", headers={"Location": "file:///etc/passwd"}), "bad-redirect"),
    "huge-header": ("/huge-header", huge_header, "bad-response"),
}
KINDS = {"badfeed": "feed", "badjson": "wordpress", "wperror": "wordpress", "wperror200": "wordpress",
         "deepjson": "wordpress"}
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
                  "allow_private": [server.allow, "127.0.0.1:9"],
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
                assert check.outcome == "baseline", name
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
    assert "/etc/passwd not followed" in outcomes["to-file"].error
    assert "max_bytes" in outcomes["chunked"].error

    # Two more cycles (ignoring backoff): each failing watch raises one fetch_failed, not one per check.
    cycle(store, config)
    cycle(store, config, ["error", "gone", "ok"])
    with store.session() as s:
        failed = [e.subject for e in s.scalars(select(ChangeEventRow).where(ChangeEventRow.type == "fetch_failed"))]
        throttled = s.scalars(select(Watch).where(Watch.name == "throttled")).one()
    assert sorted(failed) == sorted(r for r in expected.values() if r is not None)
    assert throttled.backoff_until is not None  # Retry-After honoured in the schedule


# --------------------------------------------------------------------------- every check ends


class FaultyFetchStage:
    """The real fetcher with faults injected between the pipeline and Scrapy, for bugs no server can cause:
    requests of the `lost` watches are never answered (a fetch stage that loses a request), and those of the
    `crashing` watches raise (a bug in the fetch stage)."""

    def __init__(self, fetcher, *, lost=(), crashing=()) -> None:
        self.fetcher, self.lost, self.crashing = fetcher, set(lost), set(crashing)

    async def fetch(self, req):
        if req.watch in self.crashing:
            raise RuntimeError(f"fetch stage bug while fetching {req.watch}")
        if req.watch in self.lost:
            await asyncio.Event().wait()
        return await self.fetcher.fetch(req)


def faulty_cycle(store, config, **faults):
    from spiders.fetch import Fetcher
    from watcher.pipeline import Pipeline

    async def go():
        fetcher = Fetcher(config.fetch)
        await fetcher.start()
        pipeline = Pipeline(store, config, FaultyFetchStage(fetcher, **faults))
        try:
            return await pipeline.cycle()
        finally:
            await fetcher.close()
            pipeline.close()

    store.sync_watches(config.watch)
    return run_sync(go)


def test_lost_fetches_end_as_timeout_and_free_their_slots(store, database_url):
    """Four checks whose fetch never answers, with concurrency 1 (four in-flight slots): each ends as `timeout`
    at its deadline and the healthy watch behind them is checked (it used to wait for ever)."""
    with PageServer() as server:
        server.route("/ok", GOOD)
        config = make_config(server, database_url, [{"name": f"lost{i}", "url": server.url(f"/lost{i}")}
                                                    for i in range(4)] + [{"name": "ok", "url": server.url("/ok")}],
                             fetch={"concurrency": 1, "timeout": "1s"})
        report = faulty_cycle(store, config, lost={f"lost{i}" for i in range(4)})
    got = {r.watch: (r.outcome, r.reason) for r in report.results}
    assert got == {**{f"lost{i}": ("failed", "timeout") for i in range(4)}, "ok": ("baseline", None)}
    with store.session() as s:
        reasons = dict(s.execute(select(Watch.name, Check.reason).join(Check)).all())
    assert reasons == {**{f"lost{i}": "timeout" for i in range(4)}, "ok": None}


def test_internal_error_counts_as_a_failure_with_backoff_and_fetch_failed(store, database_url):
    with PageServer() as server:
        server.route("/ok", GOOD)
        config = make_config(server, database_url, [{"name": "buggy", "url": server.url("/ok")}])
        for _ in range(3):
            [result] = faulty_cycle(store, config, crashing={"buggy"}).results
            assert (result.outcome, result.reason) == ("failed", "internal-error")
            assert "fetch stage bug" in result.error
        with store.session() as s:
            w = s.scalars(select(Watch).where(Watch.name == "buggy")).one()
            assert w.consecutive_failures == 3 and w.backoff_until is not None
            assert w.last_error.startswith("internal-error: RuntimeError")
            events = s.scalars(select(ChangeEventRow.subject).where(ChangeEventRow.type == "fetch_failed")).all()
        assert events == ["internal-error"]  # failures_before_event = 2: one event for the episode
        [result] = faulty_cycle(store, config).results  # the bug is gone
        assert result.outcome == "baseline"
    with store.session() as s:
        assert s.scalars(select(ChangeEventRow.type).where(ChangeEventRow.type == "fetch_recovered")).all()


@pytest.mark.slow
def test_processing_over_budget_is_recorded_as_timeout(store, database_url):
    """A feed far too big to process within fetch.processing_budget (800 entries kept, at several ms an entry;
    2 s): it stops at the budget and is recorded as `timeout`, saying how far it got; the batches it stored stay,
    and the next check (with time enough) goes on from there, still as the watch's baseline (no entry of it is
    announced as new). The page checked beside it is unaffected."""
    from benchmarks.bigfeed import rss

    with PageServer() as server:
        server.route("/feed", Reply(body=rss(800), headers={"Content-Type": "application/rss+xml"}))
        server.route("/ok", GOOD)
        watches = [{"name": "feed", "url": server.url("/feed"), "kind": "feed", "max_entries": 800},
                   {"name": "ok", "url": server.url("/ok")}]
        config = make_config(server, database_url, watches, fetch={"processing_budget": "2s"})
        report = cycle(store, config)
        got = {r.watch: r for r in report.results}
        assert (got["feed"].outcome, got["feed"].reason) == ("failed", "timeout"), got["feed"]
        assert "processing_budget" in got["feed"].error
        assert got["ok"].outcome == "baseline", got["ok"]
        stored = count_snapshots(store, "feed")
        assert stored % 50 == 0 and stored < 800  # whole batches
        assert f"{stored} of 800 entries stored" in got["feed"].error

        config = make_config(server, database_url, watches, fetch={"processing_budget": "300s"})
        [result] = cycle(store, config, ["feed"]).results
        assert result.outcome == "baseline", result  # the watch's first complete version
    assert count_snapshots(store, "feed") == 800
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(ChangeEventRow)) == 0  # a baseline: nothing announced


@pytest.mark.slow
def test_a_long_feed_check_stopped_half_way_keeps_its_batches(store, database_url):
    """A check of a 250-entry feed cancelled (as at shutdown) once its first batch is stored: whole batches stay,
    no check row claims it ended, and the next check stores the rest as the watch's baseline."""
    from contextlib import suppress

    from benchmarks.bigfeed import rss
    from spiders.fetch import Fetcher
    from watcher.pipeline import Pipeline

    with PageServer() as server:
        server.route("/feed", Reply(body=rss(250), headers={"Content-Type": "application/rss+xml"}))
        config = make_config(server, database_url, [{"name": "feed", "url": server.url("/feed"), "kind": "feed",
                                                     "max_entries": 250}])
        store.sync_watches(config.watch)

        async def stopped_check():
            fetcher = Fetcher(config.fetch)
            await fetcher.start()
            pipeline = Pipeline(store, config, fetcher)
            try:
                await pipeline.start()
                task = asyncio.create_task(pipeline.check("feed"))
                while count_snapshots(store, "feed") < 50 and not task.done():
                    await asyncio.sleep(0.05)
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            finally:
                await fetcher.close()
                await pipeline.aclose()  # a batch being written when cancelled is committed whole

        run_sync(stopped_check)
        stored = count_snapshots(store, "feed")
        assert 50 <= stored < 250 and stored % 50 == 0, stored
        assert count(store, Check) == 0
        [result] = cycle(store, config).results
        assert result.outcome == "baseline", result
    assert count_snapshots(store, "feed") == 250
    assert count(store, ChangeEventRow) == 0  # a baseline: nothing announced


def count_snapshots(store, watch: str) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(Snapshot).join(Watch).where(Watch.name == watch))


def test_a_long_feed_and_listing_keep_their_newest_entries_stored_in_batches(store, database_url):
    """A 3,000-entry feed and a 2,000-post WordPress listing, listed in shuffled order: each keeps its newest
    `max_entries` by date, stored in batches of 50 that each commit (one write time per batch); five newer
    entries later are five `article_added`, and the entries they push out of the window raise nothing."""
    from benchmarks.bigfeed import rss, wordpress_listing

    with PageServer() as server:
        feed = [rss(3000)]
        server.route("/feed", lambda _h: Reply(body=feed[0], headers={"Content-Type": "application/rss+xml"}))
        server.route("/wp-json/wp/v2/posts", Reply(body=wordpress_listing(2000),
                                                   headers={"Content-Type": "application/json"}))
        server.route("/ok", GOOD)
        config = make_config(server, database_url, [
            {"name": "feed", "url": server.url("/feed"), "kind": "feed", "max_entries": 120},
            {"name": "wp", "url": server.url("/wp-json/wp/v2/posts"), "kind": "wordpress", "max_entries": 70},
            {"name": "ok", "url": server.url("/ok")}], fetch={"max_bytes": 5_000_000})
        report = cycle(store, config)
        assert {r.watch: r.outcome for r in report.results} == {"feed": "baseline", "wp": "baseline", "ok": "baseline"}

        def stored(name):
            with store.session() as s:
                return s.execute(select(Snapshot.url, Snapshot.fetched_at).join(Watch).where(Watch.name == name)).all()

        assert sorted(int(u.rsplit("/", 1)[1]) for u, _ in stored("feed")) == list(range(2880, 3000))
        assert sorted(int(u.rsplit("/", 1)[1]) for u, _ in stored("wp")) == list(range(1930, 2000))
        assert len({at for _, at in stored("feed")}) == 3  # 50 + 50 + 20: three transactions
        assert len({at for _, at in stored("wp")}) == 2

        feed[0] = rss(3005)  # five newer entries on top
        cycle(store, config, ["feed"])
    with store.session() as s:
        added = s.scalars(select(ChangeEventRow.subject).where(ChangeEventRow.type == "article_added")).all()
    assert sorted(added) == [f"Show {i} Season 2 news" for i in range(3000, 3005)]
    assert len(stored("feed")) == 125


def test_max_entries_keeps_the_newest_of_any_feed_format():
    """Atom with updated dates, RSS 1.0 (items beside the channel) and a malformed RSS feed lxml cannot read
    (feedparser reads it whole, then it is cut): the newest entries by date, the listed order among equals."""
    from spiders.parsers import parse_feed, parse_wordpress_posts

    atom = ("<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><title>t</title>"
            + "".join(f"<entry><id>urn:e{i}</id><title>E{i}</title><updated>2026-01-{i + 1:02d}T00:00:00Z</updated>"
                      f"<content>Entry {i}</content></entry>" for i in (3, 9, 1, 7, 5))
            + "</feed>").encode()
    assert [d.entry_key for d in parse_feed(atom, "http://e/", 2)] == ["urn:e9", "urn:e7"]
    rdf = ("<?xml version='1.0'?><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#' "
           "xmlns='http://purl.org/rss/1.0/' xmlns:dc='http://purl.org/dc/elements/1.1/'>"
           "<channel rdf:about='http://e/'><title>t</title></channel>"
           + "".join(f"<item rdf:about='http://e/{i}'><title>I{i}</title><link>http://e/{i}</link>"
                     f"<dc:date>2026-02-{i + 1:02d}</dc:date><description>Item {i}</description></item>"
                     for i in (2, 8, 4))
           + "</rdf:RDF>").encode()
    assert sorted(d.url for d in parse_feed(rdf, "http://e/", 2)) == ["http://e/4", "http://e/8"]
    undated = ("<rss version='2.0'><channel><title>t</title>"
               + "".join(f"<item><title>U{i}</title><guid>u{i}</guid><description>Item {i}</description></item>"
                         for i in range(6))
               + "</channel></rss>").encode()
    assert [d.entry_key for d in parse_feed(undated, "http://e/", 3)] == ["u0", "u1", "u2"]
    broken = undated.replace(b"</channel></rss>", b"<item><title>cut off")  # not well-formed
    assert [d.entry_key for d in parse_feed(broken, "http://e/", 3)] == ["u0", "u1", "u2"]
    posts = json.dumps([{"id": i, "date_gmt": f"2026-03-{i + 1:02d}T00:00:00", "content": {"rendered": f"P{i}"},
                         "guid": {"rendered": f"p{i}"}} for i in (1, 5, 3)]).encode()
    assert [d.entry_key for d in parse_wordpress_posts(posts, "http://e/", 2)] == ["p5", "p3"]


# --------------------------------------------------------------------------- generated responses

# Every reason a failed fetch may carry: a user can look each one up; no exception class names, no reprs.
KNOWN_REASON = re.compile(
    r"http-\d{3}|timeout|too-large|too-deep|bad-redirect|bad-response|redirect-loop|data-loss|download-failed|"
    r"not-text|empty-body|binary-content|invalid-json|wordpress-error|wordpress-shape|wordpress-empty|"
    r"malformed-feed|not-a-feed|xml-entities|malformed-html|parse-error|connection-refused|dns|robots|"
    r"blocked-address|unsupported-scheme")
NASTY_VALUES = ["\u00b2", "-1", "99999999999999999999999", "1e400", "nan", "Mon, 99 Foo 99999 99:99:99 GMT",
                "gzip", "deflate, br", "chunked", "text/html; charset=utf-7", "application/json", "image/png",
                "application/rss+xml; charset=bogus", "file:///etc/passwd", "javascript:alert(1)", "http://[::1",
                "/loop", "//", "0; url=/", "http://watcher-test.invalid/", "a" * 20_000, ""]
BODIES = [b"", b"[" * 50_000 + b"]" * 50_000, b"{" * 3000, GOOD.body, b"\x1f\x8b\x08garbage", b"\x00" * 500,
          b"<rss><channel><item><title>" * 500, b'{"content": {"rendered": "\\u0000\\ud800"}}', b"<" * 10_000]
HEADER_NAMES = ["Content-Type", "Content-Length", "Content-Encoding", "Transfer-Encoding", "Location",
                "Retry-After", "ETag", "Last-Modified", "Refresh", "X-Junk"]
header_value = st.one_of(st.sampled_from(NASTY_VALUES),
                         st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80))
response_case = st.fixed_dictionaries({
    "status": st.one_of(st.sampled_from([200, 204, 301, 302, 304, 307, 400, 404, 429, 500, 503]),
                        st.integers(100, 999)),
    "headers": st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_value), max_size=5),
    "body": st.one_of(st.sampled_from(BODIES), st.binary(max_size=2000)),
    "kind": st.sampled_from(["html", "wordpress", "feed"]),
})


def _assert_resolved_with_a_reason(outcome) -> None:
    if outcome.status == "failed":
        assert KNOWN_REASON.fullmatch(outcome.reason or ""), (outcome.reason, outcome.error)
        assert outcome.error and "Failure" not in outcome.error and "Traceback" not in outcome.error
    else:
        assert outcome.status in ("ok", "not_modified", "same_body")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=response_case)
def test_spider_response_handling_always_resolves(case) -> None:
    """Whatever a response holds, it becomes an outcome (parsing that raised used to leave the check pending
    for ever), with a reason a user can read."""
    from scrapy.http import Request, Response

    from spiders.fetch import outcome_of
    from watcher.records import FetchRequest

    req = FetchRequest("w", "http://127.0.0.1:1/x", case["kind"])
    headers = [(k, v.encode("latin-1")) for k, v in case["headers"]]
    response = Response(req.url, status=case["status"], headers=headers, body=case["body"], request=Request(req.url))
    _assert_resolved_with_a_reason(outcome_of(req, response, time.monotonic()))


@pytest.fixture(scope="module")
def live_fetcher():
    from spiders.fetch import Fetcher
    from watcher.config import FetchConfig

    with PageServer() as server:
        config = FetchConfig(autothrottle=False, retries=0, timeout="2s", max_bytes=200_000,
                             concurrency_per_domain=8, allow_private=[server.allow])
        fetcher = Fetcher(config)
        run_sync(fetcher.start)
        yield server, fetcher
        run_sync(fetcher.close)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(case=response_case, n=st.uuids())
def test_every_generated_response_resolves_within_the_fetch_deadline(live_fetcher, case, n) -> None:
    """The same responses, raw bytes on a real socket through the running Scrapy engine: every fetch resolves
    within its deadline (timeout × (retries + 2)), as an outcome with a readable reason."""
    from watcher.records import FetchRequest

    server, fetcher = live_fetcher
    head = f"HTTP/1.1 {case['status']} Whatever\r\n".encode() + b"".join(
        f"{k}: ".encode() + v.encode("latin-1") + b"\r\n" for k, v in case["headers"])

    def raw(handler):
        handler.wfile.write(head + b"Connection: close\r\n\r\n" + case["body"])
        handler.wfile.flush()
        raise ConnectionAbortedError("raw response sent")

    path = f"/gen/{n}"
    server.route(path, raw)
    deadline = fetcher.config.fetch_deadline.total_seconds()
    outcome = run_sync(lambda: asyncio.wait_for(fetcher.fetch(FetchRequest("gen", server.url(path), case["kind"])),
                                                deadline + 10))
    _assert_resolved_with_a_reason(outcome)


# --------------------------------------------------------------------------- strings from the network


def test_odd_strings_from_the_network_are_stored_on_both_backends(store, database_url):
    """Oddities PostgreSQL refused (each check ended as internal-error there, while SQLite stored them): a NUL
    in a WordPress title and in a feed (`&#0;`), a lone surrogate, a Last-Modified over 64 characters, a guid
    over 500, a work title whose topic key is over 320. Stored on both backends, cleaned the same way, and
    stable: the second fetch of each is unchanged, not a new snapshot."""
    long_work = "Zq" * 200
    post = {"id": 7, "link": "http://e/post", "guid": {"rendered": "http://e/?p=" + "7" * 600},
            "date_gmt": "2026-03-01T10:00:00", "title": {"rendered": "Show\u0000 Season 2\ud800 news"},
            "content": {"rendered": "<p>Show Season 2 arrives in early 2027\u0000 on Netflix.</p>"}}
    feed = ("<?xml version='1.0'?><rss version='2.0'><channel><title>t</title><item><title>Show&#0; Season 2 news"
            "</title><link>http://e/a</link><guid>" + "g" * 700 + "</guid><description>Show Season 2 arrives in "
            "early 2027 &#0; on Netflix.</description></item></channel></rss>")
    long_title = (f"<html><head><title>{long_work} Season 2 release date</title></head><body><article>"
                  f"<h1>{long_work} Season 2 release date</h1><p>{long_work} Season 2 arrives in early 2027 on "
                  "Netflix.</p></article></body></html>")
    with PageServer() as server:
        server.route("/wp-json/wp/v2/posts/7", Reply(body=json.dumps(post).encode(),
                                                     headers={"Content-Type": "application/json"}))
        server.route("/feed", Reply(body=feed.encode(), headers={"Content-Type": "application/rss+xml"}))
        server.route("/lastmod", Reply(body=GOOD.body, headers={"Content-Type": "text/html",
                                                                "Last-Modified": "Mon, 05 Jan 2026 10:00:00 GMT" * 4}))
        server.route("/long", Reply(body=long_title.encode(), headers={"Content-Type": "text/html"}))
        config = make_config(server, database_url, [
            {"name": "wp", "url": server.url("/wp-json/wp/v2/posts/7"), "kind": "wordpress"},
            {"name": "feed", "url": server.url("/feed"), "kind": "feed"},
            {"name": "lastmod", "url": server.url("/lastmod")},
            {"name": "long", "url": server.url("/long")}])
        first = cycle(store, config)
        assert {r.watch: r.outcome for r in first.results} == dict.fromkeys(["wp", "feed", "lastmod", "long"],
                                                                            "baseline"), first.results
        second = cycle(store, config)
        assert {r.outcome for r in second.results} == {"unchanged"}, second.results
    with store.session() as s:
        snaps = {w: snap for snap, w in s.execute(select(Snapshot, Watch.name).join(Watch))}
        assert snaps["wp"].title == "Show Season 2\ufffd news"
        assert "\x00" not in snaps["feed"].title and snaps["feed"].title.startswith("Show")
        for key in (snaps["wp"].entry_key, snaps["feed"].entry_key):
            assert len(key) == 500 and "~" in key  # hashed to fit, not cut
        assert len(snaps["long"].topic_key) == 320 and len(snaps["long"].work) == 300
        assert s.scalars(select(Watch.last_modified).where(Watch.name == "lastmod")).one() is None
        assert s.scalar(select(func.count()).select_from(Check).where(Check.outcome == "failed")) == 0


# --------------------------------------------------------------------------- egress


def test_redirect_and_refresh_to_another_loopback_port_need_allow_private(store, database_url):
    """The watched server is allowed; a second local server (another port: an internal service) is reached by a
    302 and by a meta refresh only when fetch.allow_private lists it too."""
    with PageServer() as public, PageServer() as internal:
        internal.route("/admin", page("the internal admin page, mid 2031"))
        public.route("/moved", Reply(302, b"", headers={"Location": internal.url("/admin")}))
        refresh = f'<html><head><meta http-equiv="refresh" content="0; url={internal.url("/admin")}"></head></html>'
        public.route("/refresh", Reply(body=refresh.encode(), headers={"Content-Type": "text/html"}))
        watches = [{"name": "moved", "url": public.url("/moved")}, {"name": "refresh", "url": public.url("/refresh")},
                   {"name": "direct", "url": internal.url("/admin")}]
        config = make_config(public, database_url, watches)  # allow_private = [the watched server only]
        report = cycle(store, config)
        got = {r.watch: (r.outcome, r.reason) for r in report.results}
        assert got == dict.fromkeys(["moved", "refresh", "direct"], ("failed", "blocked-address")), report.results
        errors = {r.watch: r.error for r in report.results}
        assert f"{internal.allow} is a loopback address that fetch.allow_private does not list" in errors["moved"]
        assert "(a redirect or refresh)" in errors["refresh"]
        assert not internal.hits, internal.hits  # not even its robots.txt was asked for

        config = make_config(public, database_url, watches, fetch={"allow_private": [internal.allow]})
        report = cycle(store, config)
        assert {r.watch: r.outcome for r in report.results} == dict.fromkeys(["moved", "refresh", "direct"],
                                                                            "baseline"), report.results
    with store.session() as s:
        texts = {w: decode_document(snap.content_z).text for snap, w in s.execute(select(Snapshot, Watch.name)
                                                                                  .join(Watch))}
    assert all("internal admin page" in texts[w] for w in ("moved", "refresh", "direct"))


def test_a_host_name_is_checked_by_the_address_it_resolves_to(store, database_url):
    with PageServer() as server:
        server.route("/ok", GOOD)
        by_name = server.url("/ok").replace("127.0.0.1", "localhost")
        config = make_config(server, database_url, [{"name": "by-name", "url": by_name}],
                             fetch={"allow_private": []})
        [allowed] = cycle(store, config).results  # localhost resolves to the listed 127.0.0.1:port
        assert allowed.outcome == "baseline", allowed
        config = Config.model_validate({**config.model_dump(), "fetch": {**config.fetch.model_dump(),
                                                                         "allow_private": ["10.0.0.0/8"]}})
        [refused] = cycle(store, config).results
        assert (refused.outcome, refused.reason) == ("failed", "blocked-address"), refused
        assert "127.0.0.1" in refused.error


def test_egress_policy_rules():
    from watcher.egress import EgressPolicy, parse_allow_entry

    policy = EgressPolicy(["127.0.0.1:8080", "10.0.0.0/8", "[::1]:8443"])
    assert policy.refusal("93.184.215.14", 80) is None  # public
    assert policy.refusal("127.0.0.1", 8080) is None
    assert "does not list" in policy.refusal("127.0.0.1", 8081)
    assert policy.refusal("10.1.2.3", 22) is None
    assert policy.refusal("::1", 8443) is None and policy.refusal("::ffff:127.0.0.1", 8080) is None
    for address in ("169.254.169.254", "192.168.1.1", "224.0.0.1", "0.0.0.0", "fe80::1"):
        assert policy.refusal(address, 80), address
    # Once a fetch started at a public address, no hop may lead to a non-public one, listed or not.
    assert "started at a public address" in policy.refusal("10.1.2.3", 80, after_public=True)
    assert policy.refusal("93.184.215.14", 80, after_public=True) is None
    for bad in ("localhost:8080", "127.0.0.1:99999", "10.0.0.0/33", ""):
        with pytest.raises(ValueError):
            parse_allow_entry(bad)


# --------------------------------------------------------------------------- flap damping


class Flapper:
    """A page that alternates between two versions on every fetch (robots.txt is answered apart)."""

    def __init__(self, *versions: Reply) -> None:
        self.versions, self.fetches = versions, 0

    def __call__(self, _handler) -> Reply:
        reply = self.versions[self.fetches % len(self.versions)]
        self.fetches += 1
        return reply


TEXT_A = html("Show Season 2 arrives in early 2027. Tickets for the premiere party are sold out.", "utf-8", "utf-8")
TEXT_B = html("Show Season 2 arrives in early 2027. Tickets for the premiere party are still on sale.",
              "utf-8", "utf-8")


def test_a_page_flapping_between_two_versions_alerts_at_most_once(store, database_url):
    """Pages alternating between two versions on every fetch (a fact, and the text alone), checked 12 times with
    the default confirm = 1: one alert each at most, every later change held back as `flapping`; a page that
    really changes once beside them alerts at the first check that sees it, and a flapping page that settles
    alerts once more (one fetch after it settled, for the value it settled on)."""
    from watcher.store.models import AlertRow

    with PageServer() as server:
        facts = Flapper(page("early 2027"), page("late 2027"))
        text = Flapper(TEXT_A, TEXT_B)
        undamped = Flapper(page("early 2027"), page("late 2027"))
        steady = [page("early 2027")]
        server.route("/undamped", undamped)
        server.route("/facts", facts)
        server.route("/text", text)
        server.route("/steady", lambda _h: steady[0])
        config = Config.model_validate({
            **make_config(server, database_url, [
                {"name": "facts", "url": server.url("/facts")}, {"name": "text", "url": server.url("/text")},
                {"name": "steady", "url": server.url("/steady")},
                {"name": "undamped", "url": server.url("/undamped"), "flap_window": 0},
            ]).model_dump(exclude={"source_path"}),
            "subscriber": [{"name": "hook", "webhook": "http://127.0.0.1:9/hook"}]})
        for n in range(12):
            if n == 5:
                steady[0] = page("late 2027")  # a real change: alerted by this very check
            cycle(store, config)
            if n == 5:
                with store.session() as s:
                    got = s.scalars(select(ChangeEventRow.summary).join(Watch).where(
                        Watch.name == "steady", ChangeEventRow.state == "confirmed")).all()
                assert len(got) == 1 and "late 2027" in got[0], got

        def states(name):
            with store.session() as s:
                return [(e.type, e.state) for e in s.scalars(
                    select(ChangeEventRow).join(Watch).where(Watch.name == name).order_by(ChangeEventRow.id))]

        def alerts():
            with store.session() as s:
                return dict(s.execute(select(Watch.name, func.count(AlertRow.id)).join(
                    ChangeEventRow, ChangeEventRow.watch_id == Watch.id).join(
                    AlertRow, AlertRow.event_id == ChangeEventRow.id).group_by(Watch.name)).all())

        assert facts.fetches == 12 and text.fetches == 12
        for name, kind in (("facts", "release_changed"), ("text", "text_changed")):
            got = states(name)
            assert got[0] == (kind, "confirmed"), got  # the first B: never seen before
            assert [s for _, s in got[1:]] and {s for _, s in got[1:]} == {"flapping"}, got
        assert alerts() == {"facts": 1, "text": 1, "steady": 1, "undamped": 11}  # flap_window = 0: no damping

        # Settling. The fact page settles on the version readers were not told of: held once more as
        # flapping, alerted one fetch later. The text page settles on the one it showed last, which readers
        # were told of with its first change: nothing more to say.
        facts.versions = (facts.versions[0],)
        text.versions = (text.versions[(text.fetches - 1) % 2],)
        cycle(store, config, ["facts", "text"])
        assert alerts()["facts"] == 1
        assert states("facts")[-1] == ("release_changed", "flapping")
        cycle(store, config, ["facts", "text"])
        cycle(store, config, ["facts", "text"])
    assert states("facts")[-1] == ("release_changed", "confirmed")
    assert alerts() == {"facts": 2, "text": 1, "steady": 1, "undamped": 11}
