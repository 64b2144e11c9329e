"""Fetch-side concerns as Scrapy downloader middlewares (wired by settings, Scrapy style)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware as _ScrapyMetaRefreshMiddleware
from scrapy.downloadermiddlewares.redirect import RedirectMiddleware as _ScrapyRedirectMiddleware
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware as _ScrapyRobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.http.request import NO_CALLBACK
from scrapy.logformatter import LogFormatter
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.python import to_bytes
from twisted.internet import defer
from twisted.internet.base import ThreadedResolver
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IResolverSimple
from zope.interface import implementer

from watcher.egress import EgressPolicy, is_public
from watcher.text import display_url

# request.meta keys (redirects and refreshes copy meta): whether the first hop of this fetch was at a public
# address; whether the operator typed the URL (its first hop is not checked).
STARTED_PUBLIC = "watcher_started_public"
OPERATOR_URL = "watcher_operator_url"


class BlockedAddress(IgnoreRequest):
    """The egress policy refused a request (reason `blocked-address`)."""


@implementer(IResolverSimple)
class PinningResolver(ThreadedResolver):
    """The reactor's resolver while a Fetcher runs: answers are kept for `ttl` seconds, so the address the
    egress middleware checked is the address the connection then uses (a name that resolves to a public
    address for the check and to 127.0.0.1 a moment later gains nothing), and repeat fetches of a site do not
    ask DNS every time. IPv4, with a timeout, like Scrapy's default resolver."""

    def __init__(self, reactor: Any, timeout: float, ttl: float = 300.0, size: int = 10_000) -> None:
        super().__init__(reactor)
        self.timeout, self.ttl, self.size = timeout, ttl, size
        self._cache: OrderedDict[str, tuple[str, float]] = OrderedDict()

    @staticmethod
    def cached(name: str) -> str | None:
        """The installed resolver's fresh answer for `name`, without a Deferred; None when it has none."""
        from twisted.internet import reactor

        resolver = reactor.resolver  # type: ignore[attr-defined]
        if not isinstance(resolver, PinningResolver):
            return None
        hit = resolver._cache.get(name)
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def getHostByName(self, name: str, timeout: Sequence[int] = ()) -> Deferred[str]:
        hit = self._cache.get(name)
        if hit is not None and hit[1] > time.monotonic():
            return defer.succeed(hit[0])
        d = super().getHostByName(name, (self.timeout,))  # type: ignore[arg-type]
        d.addCallback(self._keep, name)
        return d

    def _keep(self, address: str, name: str) -> str:
        self._cache[name] = (address, time.monotonic() + self.ttl)
        self._cache.move_to_end(name)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return address

    @classmethod
    def install(cls, timeout: float) -> None:
        from twisted.internet import reactor

        if not isinstance(reactor.resolver, cls):  # type: ignore[attr-defined]
            reactor.installResolver(cls(reactor, timeout))  # type: ignore[attr-defined]


class EgressMiddleware:
    """Refuse a request whose host resolves to an address `fetch.allow_private` does not allow
    (watcher/egress.py), on every hop: Scrapy sends redirects, meta refreshes and robots.txt requests back
    through the downloader middlewares. The response's peer address is checked again, so nothing fetched
    from a forbidden address is ever stored whatever happened in between."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        # Verdicts by (address, port, after_public): the policy is pure and a daemon asks the same few
        # questions for every request, so each is answered once (bounded: cleared when it grows large).
        self._verdicts: dict[tuple[Any, int, bool], str | None] = {}
        self._literals: dict[str, Any] = {}  # host -> its address, for hosts written as an IP address

    @classmethod
    def from_crawler(cls, crawler: Any) -> EgressMiddleware:
        return cls(EgressPolicy(crawler.settings.getlist("WATCHER_ALLOW_PRIVATE")))

    def process_request(self, request: Request, spider: Any = None) -> Any:
        """Synchronous when the host's address is known (an IP literal, or the PinningResolver's fresh
        answer): a coroutine per request costs more than the check itself. Otherwise the host is resolved
        first (the same resolver the connection then uses)."""
        parts = urlparse_cached(request)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None  # Scrapy refuses those itself (only the http(s) handlers are enabled)
        host = parts.hostname
        address = self._literals.get(host)
        if address is None:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                cached = PinningResolver.cached(host)
                if cached is None:
                    return self._resolve_then_check(request, parts, host)
                address = ipaddress.ip_address(cached)
            else:
                if len(self._literals) > 10_000:
                    self._literals.clear()
                self._literals[host] = address
        self._check_first(request, parts, address)
        return None

    async def _resolve_then_check(self, request: Request, parts: Any, host: str) -> None:
        from twisted.internet import reactor

        address = ipaddress.ip_address(await maybe_deferred_to_future(reactor.resolve(host)))  # type: ignore[attr-defined]
        self._check_first(request, parts, address)

    def _check_first(self, request: Request, parts: Any, address: Any) -> None:
        meta = request.meta
        first_hop = not meta.get("redirect_urls")
        if not (first_hop and meta.get(OPERATOR_URL)):
            self._check(request, address, parts.port or (443 if parts.scheme == "https" else 80))
        if STARTED_PUBLIC not in meta:
            meta[STARTED_PUBLIC] = is_public(address)

    def process_response(self, request: Request, response: Response, spider: Any = None) -> Any:
        peer = getattr(response, "ip_address", None)
        operator_hop = request.meta.get(OPERATOR_URL) and not request.meta.get("redirect_urls")
        if "playwright" in response.flags:
            return self._check_browser(request, response, peer, operator_hop)
        if peer is not None and "proxy" not in request.meta and not operator_hop:
            parts = urlparse_cached(request)
            self._check(request, peer, parts.port or (443 if parts.scheme == "https" else 80))
        return response

    async def _check_browser(self, request: Request, response: Response, peer: Any, operator_hop: Any) -> Response:
        # Chromium followed any redirects itself (Playwright does not route their hops): check where the
        # page ended up, and every hop on the way, before anything from it is kept.
        if not (operator_hop and response.url == request.url):
            for url in [*request.meta.get("redirect_urls", [])[1:], response.url]:
                await self._check_url(request, url, peer if url == response.url else None)
        return response

    async def _check_url(self, request: Request, url: str, peer: Any) -> None:
        from twisted.internet import reactor

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BlockedAddress(f"{display_url(request.url)} led the browser to {display_url(url)}, not an "
                                 "http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = [ipaddress.ip_address(parts.hostname.strip("[]"))]
        except ValueError:
            addresses = [ipaddress.ip_address(await maybe_deferred_to_future(reactor.resolve(parts.hostname)))]  # type: ignore[attr-defined]
        if peer is not None:
            addresses.append(peer)
        for address in addresses:
            refusal = self.policy.refusal(address, port, after_public=request.meta.get(STARTED_PUBLIC) is True)
            if refusal:
                raise BlockedAddress(f"{display_url(request.url)} led the browser to {display_url(url)}, "
                                     f"refused: {refusal}")

    def _check(self, request: Request, address: Any, port: int) -> None:
        key = (address, port, request.meta.get(STARTED_PUBLIC) is True)
        try:
            refusal = self._verdicts[key]
        except KeyError:
            refusal = self.policy.refusal(address, port, after_public=key[2])
            if len(self._verdicts) > 10_000:
                self._verdicts.clear()
            self._verdicts[key] = refusal
        if refusal:
            hop = " (a redirect or refresh)" if request.meta.get("redirect_urls") else ""
            raise BlockedAddress(f"{display_url(request.url)}{hop} refused: {refusal}")

log = logging.getLogger(__name__)


class RequestHeadersMiddleware:
    """What every request carries, set in one pass: Scrapy's default Accept headers, the identifying
    User-Agent, the download timeout, and the conditional-GET validators the watch stored last time
    (If-None-Match / If-Modified-Since; a 304 reaches the spider, it is in handle_httpstatus_list, and counts
    as 'unchanged').

    One middleware instead of Scrapy's DefaultHeaders, UserAgent and DownloadTimeout middlewares and a
    conditional-GET one: every middleware costs a few calls per request through Scrapy's manager, more
    than what each of these does. Same rules as theirs: nothing a request already has is replaced."""

    def __init__(self, headers: list[tuple[bytes, bytes]], timeout: float) -> None:
        self._headers = headers
        self._timeout = timeout

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RequestHeadersMiddleware:
        settings = crawler.settings
        headers = [(to_bytes(k), to_bytes(v)) for k, v in settings["DEFAULT_REQUEST_HEADERS"].items() if v is not None]
        if settings["USER_AGENT"]:
            headers.append((b"User-Agent", to_bytes(settings["USER_AGENT"])))
        return cls(headers, settings.getfloat("DOWNLOAD_TIMEOUT"))

    def process_request(self, request: Request, spider: Any = None) -> None:
        headers, meta = request.headers, request.meta
        for key, value in self._headers:
            if key not in headers:
                headers[key] = value
        if self._timeout and "download_timeout" not in meta:
            meta["download_timeout"] = self._timeout
        etag = meta.get("etag")
        last_modified = meta.get("last_modified")
        if etag and b"If-None-Match" not in headers:
            headers[b"If-None-Match"] = etag
        if last_modified and b"If-Modified-Since" not in headers:
            headers[b"If-Modified-Since"] = last_modified
        return None


# request.meta key: (body, sha256 hex digest of it), set by MetaRefreshMiddleware for the fetch's own requests so
# that the spider hashes no body twice. Keyed by the body object itself (a response has no room for more
# attributes): a body replaced after it was hashed is hashed again.
BODY_HASH = "watcher_body_hash"


def body_hash(response: Response) -> str:
    """sha256 hex digest of the response's body, computed once per body."""
    body = response.body
    known = response.meta.get(BODY_HASH) if response.request is not None else None
    if known is not None and known[0] is body:
        return str(known[1])
    return hashlib.sha256(body).hexdigest()


class _NoReferer:
    """No Referer header on a redirect or refresh (Scrapy's RefererMiddleware is not enabled: a monitor
    has no reason to tell the next hop where it came from), and no start-up warning saying so."""

    def handle_referer(self, request: Request, response: Response) -> None:
        request.headers.pop(b"Referer", None)

    def _engine_started(self) -> None:
        return None


class RedirectMiddleware(_NoReferer, _ScrapyRedirectMiddleware):
    """Scrapy's, without Referer handling (`_NoReferer`)."""


class MetaRefreshMiddleware(_NoReferer, _ScrapyMetaRefreshMiddleware):
    """Scrapy's, except that a body byte-identical to the one the watch stored last time is not searched for
    a `<meta http-equiv="refresh">`: that body was the final page of the last check, so it has none to follow,
    and the search decodes the body's text, the costliest step of an unchanged re-check. The body is hashed
    here (after decompression, as the spider would) and the spider reuses the hash."""

    def process_response(self, request: Request, response: Response, spider: Any = None) -> Request | Response:
        req = request.meta.get("watcher_request")
        if req is not None and 200 <= response.status < 400 and response.status != 304:
            body = response.body
            digest = hashlib.sha256(body).hexdigest()
            request.meta[BODY_HASH] = (body, digest)
            if req.body_hash is not None and digest == req.body_hash:
                return response
        return super().process_response(request, response)


class RobotsTxtMiddleware(_ScrapyRobotsTxtMiddleware):
    """Scrapy's robots.txt middleware, for a daemon that runs for months, possibly as many workers.

    - A verdict expires after `fetch.robots_ttl` (a day by default, as RFC 9309 advises; ten minutes when
      robots.txt could not be fetched), then robots.txt is fetched again. Upstream keeps it for the life of
      the process.
    - With `WATCHER_REDIS_URL` (scale-out workers) the robots.txt of a site is kept in Redis until its
      verdict expires: one worker fetches it, the others read it.
    - Safe for many requests waiting on one download: upstream awaits the shared per-domain Deferred
      through `asFuture`, which consumes its result, so the second and later requests queued while
      robots.txt downloads see `None` and are let through unchecked. Each waiter gets its own relayed
      Deferred here instead.
    """

    ERROR_TTL = 600.0

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        fetch = crawler.settings.get("WATCHER_FETCH_CONFIG")
        self._ttl = fetch.robots_ttl.total_seconds() if fetch is not None else 86400.0
        self._timeout = crawler.settings.getfloat("DOWNLOAD_TIMEOUT", 180.0)
        self._expires: dict[str, float] = {}
        self._shared: Any = None
        url = crawler.settings.get("WATCHER_REDIS_URL")
        if url:
            from watcher.scale import RobotsCache, redis_client

            self._shared = RobotsCache(redis_client(url, decode=False))
            crawler.signals.connect(self._close_shared, signal=signals.spider_closed)

    async def _close_shared(self, spider: Any = None) -> None:
        await self._shared.r.aclose()

    async def robot_parser(self, request: Request) -> Any:
        url = urlparse_cached(request)
        netloc = url.netloc
        cached = self._parsers.get(netloc)
        if isinstance(cached, Deferred):
            waiter: Deferred[Any] = Deferred()

            def relay(result: Any) -> Any:
                waiter.callback(result)
                return result

            cached.addBoth(relay)
            return await maybe_deferred_to_future(waiter)
        if netloc in self._parsers and time.monotonic() < self._expires.get(netloc, 0.0):
            return cached
        pending: Deferred[Any] = Deferred()
        self._parsers[netloc] = pending
        parser, ttl = None, self.ERROR_TTL
        try:
            parser, ttl = await self._load(url.scheme, netloc, request)
        finally:
            self._parsers[netloc] = parser
            self._expires[netloc] = time.monotonic() + ttl
            pending.callback(parser)
        return parser

    async def _load(self, scheme: str, netloc: str, request: Request) -> tuple[Any, float]:
        """(parser or None for "allow all", seconds it may be trusted)."""
        if self._shared is None:
            return await self._download(scheme, netloc, request)
        deadline = time.monotonic() + self._timeout + 10
        locked = False
        while not locked and time.monotonic() < deadline:
            try:
                hit = await self._shared.get(netloc)
                if hit is not None:
                    body, ttl = hit
                    return (None if body is None else self._parse(body)), ttl
                locked = await self._shared.lock(netloc, self._timeout + 10)
            except Exception as e:  # Redis unreachable: this worker fetches robots.txt itself
                log.warning("robots.txt cache unavailable (Redis: %s); fetching %s/robots.txt here", e, netloc)
                return await self._download(scheme, netloc, request)
            if not locked:
                await asyncio.sleep(0.2)  # another worker is fetching it
        try:
            parser, ttl, body = await self._download(scheme, netloc, request, keep_body=True)
            with contextlib.suppress(Exception):
                await self._shared.put(netloc, body, ttl)
            return parser, ttl
        finally:
            if locked:
                with contextlib.suppress(Exception):
                    await self._shared.unlock(netloc)

    async def _download(self, scheme: str, netloc: str, request: Request, *, keep_body: bool = False) -> Any:
        robotsreq = Request(f"{scheme}://{netloc}/robots.txt", priority=self.DOWNLOAD_PRIORITY,
                            meta={"dont_obey_robotstxt": True}, callback=NO_CALLBACK)
        body: bytes | None = None
        try:
            assert self.crawler.engine is not None
            response = await self.crawler.engine.download_async(robotsreq)
            self._stats.inc_value("robotstxt/response_count")
            body = response.body
            # A server error is not a verdict to keep for a day.
            ttl = self._ttl if response.status < 500 else min(self._ttl, self.ERROR_TTL)
            parser = self._parse(body)
            await self.crawler.signals.send_catch_log_async(signal=signals.robots_parsed, robotparser=parser,
                                                            request=request)
        except Exception as e:
            if not isinstance(e, IgnoreRequest):
                log.info("robots.txt of %s could not be fetched (%s); allowing all for %.0fs", netloc, e,
                         min(self._ttl, self.ERROR_TTL))
                self._stats.inc_value(f"robotstxt/exception_count/{type(e)}")
            parser, ttl, body = None, min(self._ttl, self.ERROR_TTL), None
        self._stats.inc_value("robotstxt/request_count")
        return (parser, ttl, body) if keep_body else (parser, ttl)

    def _parse(self, body: bytes) -> Any:
        return build_from_crawler(self._parserimpl, self.crawler, body)


class QuietLogFormatter(LogFormatter):
    """Scrapy's log formatter without the per-response "Crawled (200) <GET ...>" record: a monitor logs
    one line per check itself, and building that record for every response is measurable work."""

    def crawled(self, request: Request, response: Response, spider: Any) -> None:  # type: ignore[override]
        return None
