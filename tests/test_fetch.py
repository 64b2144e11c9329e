"""The fetch stage against a real local server: outcomes and their reasons, politeness settings."""

from __future__ import annotations

import pytest

from spiders.fetch import fetch_many
from tests.conftest import CORPUS
from tests.pageserver import PageServer, Reply
from watcher.config import FetchConfig
from watcher.records import FetchRequest
from watcher.runtime import run_sync

# Every local server of these tests, and port 9 for a refused connection.
FAST = FetchConfig(autothrottle=False, retries=1, timeout="5s", user_agent="watcher-test/1 (+http://example.invalid/contact)",
                   allow_private=["127.0.0.1"])
HTML = b"<html><head><title>Show S2</title><meta property='article:published_time' content='2026-01-05'></head>" \
       b"<body><article><p>Season 2 arrives in early 2027.</p></article></body></html>"


@pytest.fixture
def server():
    with PageServer() as s:
        yield s


def fetch(*reqs: FetchRequest, config: FetchConfig = FAST):
    return run_sync(lambda: fetch_many(config, list(reqs)))


def test_html_wordpress_and_feed_documents(server):
    server.route("/page", Reply(body=HTML, headers={"Content-Type": "text/html; charset=utf-8"}))
    wp = (CORPUS / "seeds" / "blueroads-wp-post-161.json").read_bytes()
    server.route("/wp-json/wp/v2/posts/161", Reply(body=wp, headers={"Content-Type": "application/json"}))
    feed = (b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>"
            b"<item><title>One</title><link>http://e/1</link><guid>g1</guid><description>a</description></item>"
            b"<item><title>Two</title><link>http://e/2</link><description>b</description></item>"
            b"</channel></rss>")
    server.route("/feed", Reply(body=feed, headers={"Content-Type": "application/rss+xml"}))
    page, post, entries = fetch(FetchRequest("p", server.url("/page"), "html"),
                                FetchRequest("w", server.url("/wp-json/wp/v2/posts/161"), "wordpress"),
                                FetchRequest("f", server.url("/feed"), "feed"))
    assert page.status == "ok" and page.documents[0].title == "Show S2"
    assert str(page.documents[0].published) == "2026-01-05"
    doc = post.documents[0]
    assert doc.format == "wordpress-rest-json" and doc.url == "https://blueroads.in/blog/all-of-us-are-dead-season/"
    assert str(doc.published) == "2026-02-23" and "wrapped filming" in doc.body and doc.jsonld
    assert [d.entry_key for d in entries.documents] == ["g1", "http://e/2"]
    # The identifying User-Agent went out with every request.
    assert all("watcher-test/1" in h.get("User-Agent", "") for _, h in server.requests)


def test_conditional_get_turns_304_into_not_modified(server):
    server.route("/page", Reply(body=HTML, headers={"Content-Type": "text/html", "ETag": '"v1"',
                                                    "Last-Modified": "Mon, 05 Jan 2026 10:00:00 GMT"}))
    (first,) = fetch(FetchRequest("p", server.url("/page"), "html"))
    assert first.status == "ok" and first.etag == '"v1"'
    (second,) = fetch(FetchRequest("p", server.url("/page"), "html", etag=first.etag,
                                   last_modified=first.last_modified))
    assert second.status == "not_modified" and second.http_status == 304
    sent = server.requests[-1][1]
    assert sent["If-None-Match"] == '"v1"' and sent["If-Modified-Since"] == "Mon, 05 Jan 2026 10:00:00 GMT"


def test_identical_body_is_not_parsed_again(server):
    server.route("/page", Reply(body=HTML, headers={"Content-Type": "text/html"}))
    (first,) = fetch(FetchRequest("p", server.url("/page"), "html"))
    assert first.status == "ok" and first.body_hash == __import__("hashlib").sha256(HTML).hexdigest()
    (same,) = fetch(FetchRequest("p", server.url("/page"), "html", body_hash=first.body_hash))
    assert same.status == "same_body" and same.documents == () and same.body_hash == first.body_hash
    server.route("/page", Reply(body=HTML.replace(b"early", b"late"), headers={"Content-Type": "text/html"}))
    (moved,) = fetch(FetchRequest("p", server.url("/page"), "html", body_hash=first.body_hash))
    assert moved.status == "ok" and "late 2027" in moved.documents[0].body


def test_failures_have_reasons(server):
    server.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /private\n"))
    server.route("/private", Reply(body=HTML))
    server.route("/gone", Reply(410, b"gone"))
    server.route("/busy", Reply(429, b"slow down", headers={"Retry-After": "120"}))
    server.route("/err", Reply(500, b"oops"))
    server.route("/bad.json", Reply(body=b"{not json", headers={"Content-Type": "application/json"}))
    server.route("/wp-error", Reply(body=b'{"code":"rest_post_invalid_id","message":"Invalid post ID."}'))
    outcomes = {o.watch: o for o in fetch(
        FetchRequest("robots", server.url("/private"), "html"),
        FetchRequest("gone", server.url("/gone"), "html"),
        FetchRequest("busy", server.url("/busy"), "html"),
        FetchRequest("err", server.url("/err"), "html"),
        FetchRequest("json", server.url("/bad.json"), "wordpress"),
        FetchRequest("wperr", server.url("/wp-error"), "wordpress"),
        FetchRequest("refused", "http://127.0.0.1:9/", "html"),
    )}
    reasons = {k: o.reason for k, o in outcomes.items()}
    assert reasons == {"robots": "robots", "gone": "http-410", "busy": "http-429", "err": "http-500",
                       "json": "invalid-json", "wperr": "wordpress-error", "refused": "connection-refused"}
    assert all(o.status == "failed" for o in outcomes.values())
    assert outcomes["busy"].retry_after == 120
    assert server.hits["/err"] == 2  # one retry for a 5xx
    assert server.hits["/busy"] == 1  # 429 is not retried at once


def test_size_limit_and_timeout(server):
    server.route("/huge", Reply(body=b"<html><body>" + b"x" * 300_000 + b"</body></html>"))
    server.route("/slow", Reply(body=HTML, delay=3))
    config = FAST.model_copy(update={"max_bytes": 100_000, "timeout": __import__("datetime").timedelta(seconds=1),
                                     "retries": 0})
    huge, slow = fetch(FetchRequest("huge", server.url("/huge"), "html"),
                       FetchRequest("slow", server.url("/slow"), "html"), config=config)
    assert huge.reason == "too-large"
    assert slow.reason == "timeout"


def test_robots_applies_to_every_request_waiting_on_the_first_download(server):
    """Regression: upstream lets all but the first concurrent request through while robots.txt downloads."""
    server.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /private\n", delay=0.3))
    reqs = [FetchRequest(f"p{i}", server.url(f"/private/{i}"), "html") for i in range(6)]
    outcomes = fetch(*reqs)
    assert [o.reason for o in outcomes] == ["robots"] * 6
    assert not any(path.startswith("/private") for path in server.hits)


def test_connections_are_kept_alive_and_reused(server):
    for i in range(40):
        server.route(f"/p{i}", Reply(body=HTML, headers={"Content-Type": "text/html"}))
    config = FAST.model_copy(update={"concurrency_per_domain": 4, "concurrency": 16, "retries": 0})
    outcomes = fetch(*(FetchRequest(f"p{i}", server.url(f"/p{i}"), "html") for i in range(40)), config=config)
    assert {o.status for o in outcomes} == {"ok"}
    requests = sum(server.hits.values())  # the 40 pages and robots.txt
    assert requests == 41
    # HTTP/1.1 keep-alive: at most one connection per concurrent request slot, not one per request.
    assert server.connections <= 4 + 1, (server.connections, requests)


def test_a_site_never_gets_more_than_its_concurrency(server):
    """Politeness: `concurrency_per_domain` bounds the requests one site answers at once, however many
    checks are waiting (Scrapy's own downloader let them all through on the asyncio reactor)."""
    for i in range(12):
        server.route(f"/p{i}", Reply(body=HTML, headers={"Content-Type": "text/html"}, delay=0.2))
    config = FAST.model_copy(update={"concurrency_per_domain": 2, "concurrency": 16, "retries": 0})
    outcomes = fetch(*(FetchRequest(f"p{i}", server.url(f"/p{i}"), "html") for i in range(12)), config=config)
    assert {o.status for o in outcomes} == {"ok"}
    assert server.max_in_flight <= 2, server.max_in_flight


def test_the_crawler_runs_only_what_a_monitor_uses(server):
    """The component lists in spiders/settings.py are the whole of what runs: no stats, no item machinery
    or link-following middlewares, the per-response log record switched off."""
    from scrapy.statscollectors import DummyStatsCollector

    from spiders.fetch import Fetcher
    from spiders.settings import DOWNLOADER_MIDDLEWARES, EXTENSIONS, HTTP_PROXY, SPIDER_MIDDLEWARES

    server.route("/page", Reply(body=HTML, headers={"Content-Type": "text/html"}))

    async def go():
        fetcher = Fetcher(FAST)
        await fetcher.start()
        try:
            outcome = await fetcher.fetch(FetchRequest("p", server.url("/page"), "html"))
            engine = fetcher.crawler.engine
            running = {
                "downloader": [type(m).__module__ + "." + type(m).__name__
                               for m in engine.downloader.middleware.middlewares],
                "spider": [type(m).__module__ + "." + type(m).__name__ for m in engine.scraper.spidermw.middlewares],
                "extensions": [type(m).__module__ + "." + type(m).__name__
                               for m in fetcher.crawler.extensions.middlewares],
            }
            return outcome, running, fetcher.crawler.stats, fetcher.crawler.logformatter
        finally:
            await fetcher.close()

    outcome, running, stats, logformatter = run_sync(go)
    assert outcome.status == "ok"
    assert set(running["downloader"]) <= {*DOWNLOADER_MIDDLEWARES, *HTTP_PROXY}  # the proxy one: with a proxy set
    assert "scrapy.downloadermiddlewares.stats.DownloaderStats" not in running["downloader"]
    assert "spiders.middlewares.RequestHeadersMiddleware" in running["downloader"]
    assert set(running["spider"]) <= set(SPIDER_MIDDLEWARES)
    assert set(running["extensions"]) <= set(EXTENSIONS)
    assert isinstance(stats, DummyStatsCollector)
    assert logformatter.crawled(None, None, None) is None


def test_an_unchanged_body_is_hashed_once_and_not_searched_for_a_refresh():
    """The meta-refresh middleware hashes the fetch's body for the spider; a body identical to the stored one
    (the last check's final page) is not searched for a refresh, any other body is; a body replaced after it
    was hashed is hashed again."""
    import hashlib
    from types import SimpleNamespace

    from scrapy import Request
    from scrapy.http import HtmlResponse
    from scrapy.settings import Settings

    from spiders.middlewares import MetaRefreshMiddleware, body_hash

    refresh = b"<html><head><meta http-equiv='refresh' content='0; url=/next'></head></html>"
    digest = hashlib.sha256(refresh).hexdigest()
    mw = MetaRefreshMiddleware(Settings({"METAREFRESH_ENABLED": True, "REDIRECT_ENABLED": True,
                                         "METAREFRESH_MAXDELAY": 100, "REDIRECT_MAX_TIMES": 5}))
    mw.crawler = SimpleNamespace(spider=None)  # only used for a debug log line's extra

    def through(stored: str | None):
        request = Request("http://example.invalid/a",
                          meta={"watcher_request": FetchRequest("w", "http://example.invalid/a", "html",
                                                                body_hash=stored)})
        response = HtmlResponse(request.url, body=refresh, request=request)
        return response, mw.process_response(request, response)

    response, out = through(stored=digest)
    assert out is response and body_hash(response) == digest
    assert body_hash(response.replace(body=b"other")) == hashlib.sha256(b"other").hexdigest()
    _, out = through(stored="0" * 64)
    assert isinstance(out, Request) and out.url == "http://example.invalid/next"
    _, out = through(stored=None)  # a first check: refreshes are followed as ever
    assert isinstance(out, Request)


def test_admission_bounds_the_downloader_and_is_fair_to_hosts():
    """Requests go straight to Scrapy's downloader, so `Admission` does what its scheduler did: at most
    `concurrency` requests in the downloader, none of a host beyond its own concurrency, and a host with a
    long queue does not hold back another host's request."""
    import asyncio

    from spiders.fetch import Admission

    async def go():
        admission = Admission(3, lambda host: 1 if host == "slow.example" else 2)
        now = {"all": 0}
        most: dict[str, int] = {}
        finished: list[str] = []

        async def download(host: str, seconds: float) -> None:
            async with admission.admit(host):
                now["all"] += 1
                now[host] = now.get(host, 0) + 1
                most["all"] = max(most.get("all", 0), now["all"])
                most[host] = max(most.get(host, 0), now[host])
                await asyncio.sleep(seconds)
                now["all"] -= 1
                now[host] -= 1
            finished.append(host)

        jobs = [download("busy.example", 0.05) for _ in range(10)] + [download("slow.example", 0.05)
                                                                       for _ in range(3)]
        jobs.append(download("late.example", 0.0))  # asks last, behind 13 others
        await asyncio.gather(*jobs)
        return admission, most, finished

    admission, most, finished = run_sync(go)
    assert most["all"] == 3 and most["busy.example"] == 2 and most["slow.example"] == 1
    # the last host to ask is not queued behind the busy host's ten: its request takes the third place free
    assert finished.index("late.example") < finished.count("busy.example")
    assert admission.hosts() == 0  # hosts with nothing waiting are forgotten
