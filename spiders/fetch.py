"""The fetch stage: one long-lived Scrapy crawler, in-process on the asyncio reactor.

The scheduler calls `Fetcher.fetch(FetchRequest)` as often as it likes; each call hands one request to the
running engine's downloader (`ExecutionEngine.download_async`: every downloader middleware, so Scrapy's
politeness — robots.txt, AutoThrottle, per-domain slots and delays, retries, redirects, size limits — applies
across all watches) and resolves to a FetchOutcome. Nothing raises for a bad fetch: every failure is an
outcome with a reason.

Requests do not go through Scrapy's scheduler, spider middlewares and scraper: nothing here follows links
or yields items, and that round trip was about a fifth of an unchanged re-check's CPU (benchmarks/README.md).
What the scheduler did that a monitor needs, a global bound with per-host fairness, is `Admission`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import scrapy
from scrapy import exceptions as sx
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DontCloseSpider, IgnoreRequest
from scrapy.http import Response
from scrapy.http.request import NO_CALLBACK
from scrapy.settings import Settings
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import error as txerror
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed, ResponseNeverReceived
from w3lib.http import basic_auth_header

from spiders.browser import browser_meta
from spiders.middlewares import OPERATOR_URL, BlockedAddress, PinningResolver, body_hash
from spiders.parsers import parse_feed, parse_html, parse_wordpress_posts
from spiders.settings import HANDLED_STATUSES, scrapy_settings
from watcher.config import FetchConfig
from watcher.errors import DocumentError
from watcher.headers import parse_retry_after
from watcher.records import FetchOutcome, FetchRequest, RawDocument
from watcher.text import display_url

_NON_TEXT_TYPES = ("image/", "audio/", "video/", "application/octet-stream", "application/pdf",
                   "application/zip", "font/")


def parse_for_kind(kind: str, body: bytes, url: str, headers: dict[str, str], max_entries: int | None = None
                   ) -> list[RawDocument]:
    ctype = headers.get("content-type", "").lower()
    if ctype.startswith(_NON_TEXT_TYPES):
        raise DocumentError("not-text", f"{url}: served as {ctype}, not a document")
    if kind == "browser":  # the DOM Chromium rendered, read as any page
        kind = "html"
    if kind == "auto":  # `watcher add` before it knows: what the body is, as `watcher extract` detects it
        from spiders.parsers import detect_format

        detected = detect_format(body, ctype, url)
        kind = detected if detected in ("wordpress", "feed") else "html"
    if kind == "wordpress":
        return parse_wordpress_posts(body, url, max_entries)
    if kind == "feed":
        return parse_feed(body, url, max_entries)
    return [parse_html(body, url, headers)]


def _headers(response: Response) -> dict[str, str]:
    out = {}
    for k, v in response.headers.items():
        if v:
            out[k.decode("latin-1").lower()] = v[-1].decode("latin-1", "replace")
    return out


def _validator(value: str | None, limit: int) -> str | None:
    """A conditional-GET validator worth keeping: a cut or garbled one sent back would be wrong, and without
    one the next fetch is simply a full GET. (The stored Last-Modified column holds 64 characters; a real
    one has 29.)"""
    if value is None or len(value) > limit or not value.isprintable():
        return None
    return value


def outcome_from_response(req: FetchRequest, response: Response, started: float) -> FetchOutcome:
    headers = _headers(response)
    common: dict[str, Any] = {
        "watch": req.watch,
        "url": req.url,
        "http_status": response.status,
        "final_url": response.url,
        "etag": _validator(headers.get("etag"), 1024),
        "last_modified": _validator(headers.get("last-modified"), 64),
        "duration_ms": int((time.monotonic() - started) * 1000),
        "size": len(response.body),
    }
    if response.status == 304:
        return FetchOutcome(status="not_modified", **{**common, "etag": common["etag"] or req.etag,
                                                       "last_modified": common["last_modified"] or req.last_modified})
    if response.status >= 400:
        return FetchOutcome(status="failed", reason=f"http-{response.status}",
                            error=f"HTTP {response.status} from {display_url(response.url)}",
                            retry_after=parse_retry_after(headers.get("retry-after")), **common)
    common["body_hash"] = body_hash(response)
    if req.body_hash is not None and req.body_hash == common["body_hash"]:
        return FetchOutcome(status="same_body", **common)  # the common case of a re-check: skip parsing
    try:
        docs = parse_for_kind(req.kind, response.body, response.url, headers, req.max_entries)
    except DocumentError as e:
        return FetchOutcome(status="failed", reason=e.reason, error=str(e), **common)
    return FetchOutcome(status="ok", documents=tuple(docs), **common)


def failed_from_exception(req: FetchRequest, exc: BaseException, *, http_status: int | None = None,
                          started: float | None = None) -> FetchOutcome:
    """A failed outcome for an exception raised while handling a response: never left unresolved."""
    if isinstance(exc, DocumentError):
        reason, message = exc.reason, str(exc)
    elif isinstance(exc, RecursionError):
        reason, message = "too-deep", f"{display_url(req.url)}: the document is nested too deeply to read"
    elif isinstance(exc, MemoryError):
        reason, message = "too-large", f"{display_url(req.url)}: the document needs too much memory to read"
    else:
        reason = "parse-error"
        message = f"{display_url(req.url)}: cannot read the response: {exc.__class__.__name__}: {exc}"
    return FetchOutcome(watch=req.watch, url=req.url, status="failed", reason=reason, error=message[:2000],
                        http_status=http_status,
                        duration_ms=int((time.monotonic() - started) * 1000) if started is not None else 0)


def _redirect_message(response: Response) -> str:
    location = response.headers.get(b"Location")
    if not location:
        return f"HTTP {response.status} redirect without a Location header; nothing to follow"
    target = display_url(location.decode("latin-1"))
    return f"HTTP {response.status} redirect to {target} not followed: only http and https URLs are"


def _unreadable_response(exc: ResponseFailed | ResponseNeverReceived) -> str:
    reasons = getattr(exc, "reasons", [])
    inner = "; ".join(f"{r.type.__name__}: {r.getErrorMessage()}" for r in reasons) or "no detail"
    where = "before any response" if isinstance(exc, ResponseNeverReceived) else "while reading the response"
    if all(r.check(txerror.ConnectionDone, txerror.ConnectionLost) for r in reasons):
        # Twisted drops the connection itself on a header line over 16 KB, so this is what that looks like too.
        return (f"the connection closed {where} ({inner}): the server hung up mid-response, or sent a "
                "header line over 16 KB")
    return f"the response is malformed ({inner})"


def _browser_failure(exc: Any, *, timed_out: bool) -> tuple[str, str]:
    """A failure inside Chromium (kind = "browser"): Playwright's message, first line, without its call log."""
    text = (getattr(exc, "message", None) or str(exc)).strip()
    first = text.splitlines()[0] if text else "no detail"
    if timed_out:
        return "timeout", f"the browser gave up: {first}"
    if "Executable doesn't exist" in first or "Failed to launch" in first:
        return "browser-unavailable", f"Chromium could not be started ({first}); install it (apt-get install " \
                                      "chromium) or point WATCHER_CHROMIUM at it"
    if "net::ERR_NAME_NOT_RESOLVED" in first:
        return "dns", f"the browser could not resolve the host: {first}"
    if "net::ERR_CONNECTION_REFUSED" in first:
        return "connection-refused", "connection refused"
    return "browser-error", f"the browser could not load the page: {first}"


def classify_failure(failure: Failure, *, max_bytes: int | None = None) -> tuple[str, str]:
    """(reason, message) for a download failure; every reason is a short word a user can look up."""
    exc = failure.value
    msg = str(exc) or exc.__class__.__name__
    low = msg.lower()
    if isinstance(exc, HttpError):  # before IgnoreRequest, its base class
        response = exc.response
        if 300 <= response.status < 400:
            return "bad-redirect", _redirect_message(response)
        return f"http-{response.status}", f"HTTP {response.status} from {display_url(response.url)}"
    if isinstance(exc, BlockedAddress):
        return "blocked-address", msg
    playwright = sys.modules.get("playwright.async_api")  # imported only once a browser watch was fetched
    if playwright is not None and isinstance(exc, playwright.Error):
        return _browser_failure(exc, timed_out=isinstance(exc, playwright.TimeoutError))
    if isinstance(exc, IgnoreRequest):
        if "robots" in low:
            return "robots", "forbidden by robots.txt"
        if "redirect" in low:
            return "redirect-loop", msg
        if "size" in low or "larger" in low:
            return "too-large", msg
        return "ignored", msg
    if isinstance(exc, txerror.DNSLookupError | sx.CannotResolveHostError):
        return "dns", msg
    if isinstance(exc, txerror.ConnectionRefusedError | sx.DownloadConnectionRefusedError):
        return "connection-refused", "connection refused"
    if isinstance(exc, txerror.TimeoutError | txerror.TCPTimedOutError | sx.DownloadTimeoutError) \
            or "took longer than" in low:
        return "timeout", msg
    if "size" in low or "larger than" in low:
        return "too-large", msg
    if isinstance(exc, sx.DownloadCancelledError | asyncio.CancelledError):
        # Scrapy cancels a body that outgrows DOWNLOAD_MAXSIZE while it arrives (no Content-Length to refuse
        # it up front); a shutdown cancels too, but then nobody waits for this outcome any more.
        limit = f" ({max_bytes} bytes)" if max_bytes else ""
        return "too-large", f"the body grew past fetch.max_bytes{limit} while it arrived"
    if isinstance(exc, sx.ResponseDataLossError):
        return "data-loss", msg
    if isinstance(exc, sx.UnsupportedURLSchemeError):
        return "unsupported-scheme", msg
    cause = exc.__cause__  # Scrapy wraps Twisted's ResponseFailed in DownloadFailedError
    for unreadable in (exc, cause):
        if isinstance(unreadable, ResponseFailed | ResponseNeverReceived):
            return "bad-response", _unreadable_response(unreadable)
    if isinstance(exc, sx.DownloadFailedError):
        return "download-failed", msg
    # Anything else came from reading a response a middleware could not make sense of (an undecodable
    # Content-Encoding, a broken gzip stream, ...).
    return "bad-response", f"the response could not be read: {exc.__class__.__name__}: {msg}"


class WatchSpider(scrapy.Spider):
    """The crawler's spider: it only stays open, while `Fetcher` hands requests to the engine's downloader.
    It schedules and parses nothing itself."""

    name = "watch"
    # Read by the redirect middleware too: these statuses are answers, not redirects to follow.
    handle_httpstatus_list = HANDLED_STATUSES

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> WatchSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.keep_open, signal=signals.spider_idle)
        return spider

    def keep_open(self, spider: Any = None) -> None:
        raise DontCloseSpider

    async def start(self) -> AsyncIterator[Any]:
        return
        yield  # pragma: no cover - makes this an async generator


def outcome_of(req: FetchRequest, response: Response, started: float) -> FetchOutcome:
    """The outcome of a response, whatever it holds: every exception becomes a failed outcome (a check must
    never be left without one). A status outside 2xx and HANDLED_STATUSES (a redirect that was not followed,
    1xx) fails as Scrapy's HttpErrorMiddleware would have failed it."""
    try:
        if not 200 <= response.status < 300 and response.status not in HANDLED_STATUSES:
            return outcome_from_failure(req, Failure(HttpError(response, "Ignoring non-200 response")),
                                        started=started)
        return outcome_from_response(req, response, started)
    except Exception as e:
        return failed_from_exception(req, e, http_status=response.status, started=started)


def outcome_from_failure(req: FetchRequest, failure: Failure, *, started: float,
                         max_bytes: int | None = None) -> FetchOutcome:
    """The failed outcome of a download that raised (robots.txt, a timeout, a refused connection, ...), with
    the response's status and Retry-After when the failure carries one."""
    try:
        response = getattr(failure.value, "response", None)
        reason, message = classify_failure(failure, max_bytes=max_bytes)
        return FetchOutcome(
            watch=req.watch, url=req.url, status="failed", reason=reason, error=message[:2000],
            http_status=response.status if isinstance(response, Response) else None,
            duration_ms=int((time.monotonic() - started) * 1000),
            retry_after=parse_retry_after(response.headers.get(b"Retry-After", b"").decode("latin-1"))
            if isinstance(response, Response) else None)
    except Exception as e:
        return failed_from_exception(req, e, started=started)


class Admission:
    """What Scrapy's scheduler did while requests went through it: at most `total` requests in the downloader at
    once (CONCURRENT_REQUESTS), and no host holding more of them than its slot transfers at once (its
    concurrency), so one slow or rate-limited host never fills the downloader while the others wait (the
    scheduler's DownloaderAwarePriorityQueue picked the least busy host for the same reason). A request
    waits for its host's turn before it takes one of the `total`."""

    def __init__(self, total: int, per_host: Callable[[str], int]) -> None:
        self._total = asyncio.Semaphore(total)
        self._per_host = per_host
        self._hosts: dict[str, _HostGate] = {}

    @contextlib.asynccontextmanager
    async def admit(self, host: str) -> AsyncIterator[None]:
        gate = self._hosts.get(host)
        if gate is None:
            gate = self._hosts[host] = _HostGate(asyncio.Semaphore(self._per_host(host)))
        gate.users += 1
        try:
            async with gate.semaphore, self._total:
                yield
        finally:
            gate.users -= 1
            if not gate.users:  # nobody waits for the host: forget it (a daemon meets hosts for months)
                del self._hosts[host]

    def hosts(self) -> int:
        return len(self._hosts)


@dataclass(slots=True)
class _HostGate:
    semaphore: asyncio.Semaphore
    users: int = 0


class Fetcher:
    """Owns the running crawler. `await start()`, then `await fetch(req)` any number of times."""

    def __init__(self, config: FetchConfig, **settings_overrides: Any) -> None:
        self.config = config
        self.settings = Settings(scrapy_settings(config, **settings_overrides))
        self.crawler: Crawler | None = None
        self._crawl_task: asyncio.Future[Any] | None = None
        self._opened: asyncio.Future[None] | None = None
        self._pending: set[asyncio.Future[FetchOutcome]] = set()
        self._tasks: set[asyncio.Future[FetchOutcome]] = set()  # (the loop only keeps weak references)
        self._admission = Admission(config.concurrency, lambda host: config.domain_policy(host)[0])

    def _spider_opened(self, spider: Any = None) -> None:
        if self._opened is not None and not self._opened.done():
            self._opened.set_result(None)

    async def start(self) -> None:
        from watcher.runtime import install_reactor

        install_reactor()
        PinningResolver.install(min(self.config.timeout.total_seconds(), 20))
        loop = asyncio.get_running_loop()
        self._opened = loop.create_future()
        self.crawler = Crawler(WatchSpider, self.settings)
        self.crawler.signals.connect(self._spider_opened, signal=signals.spider_opened)
        self._crawl_task = asyncio.ensure_future(self.crawler.crawl_async())
        done, _ = await asyncio.wait({self._opened, self._crawl_task}, return_when=asyncio.FIRST_COMPLETED)
        if self._crawl_task in done:
            self._crawl_task.result()  # raises the start-up error
            raise RuntimeError("the crawler stopped during start-up")

    async def fetch(self, req: FetchRequest) -> FetchOutcome:
        """The outcome of one request; always resolves, at the latest after `FetchConfig.fetch_deadline`."""
        if self.crawler is None or self.crawler.engine is None or self.crawler.spider is None:
            raise RuntimeError("Fetcher.start() was not awaited")
        fut: asyncio.Future[FetchOutcome] = asyncio.get_running_loop().create_future()
        started = time.monotonic()
        deadline = self.config.fetch_deadline.total_seconds()
        meta = {"watcher_request": req, "etag": req.etag, "last_modified": req.last_modified,
                OPERATOR_URL: req.operator_url}
        if req.kind == "browser":
            meta.update(etag=None, last_modified=None)  # a rendered page is compared by its content only
            meta.update(browser_meta(wait_for=req.wait_for, timeout=self.browser_timeout(req)))
        request = scrapy.Request(req.url, callback=NO_CALLBACK, dont_filter=True, meta=meta)
        if req.auth is not None:
            # Scrapy drops the header on a redirect to another scheme, host or port.
            request.headers[b"Authorization"] = basic_auth_header(*req.auth)
        self._pending.add(fut)
        # The deadline: a timer that cancels the future the check waits on, not the download task: Scrapy
        # finishes (or times out) the download itself, and its late outcome finds the future done and is dropped.
        expired: list[bool] = []

        def expire() -> None:
            if not fut.done():
                expired.append(True)
                fut.cancel()

        timer = asyncio.get_running_loop().call_later(deadline, expire)
        try:
            task = asyncio.ensure_future(self._download(request, req, started))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._downloaded, fut))
            return await fut
        except asyncio.CancelledError:
            if expired:
                # The timer fired: Scrapy lost the request or never answered for it (its own timeouts should
                # have fired first). The check ends here; a late answer finds the future cancelled and is dropped.
                return FetchOutcome(
                    watch=req.watch, url=req.url, status="failed", reason="timeout",
                    error=f"no answer within {deadline:.0f}s (fetch.timeout for robots.txt and each of "
                          f"{self.config.retries + 1} attempts)",
                    duration_ms=int((time.monotonic() - started) * 1000))
            raise
        finally:
            timer.cancel()
            self._pending.discard(fut)

    async def _download(self, request: scrapy.Request, req: FetchRequest, started: float) -> FetchOutcome:
        """The request through the downloader (its middlewares, robots.txt, slots, retries and redirects),
        once admitted; its outcome whatever happens (a cancellation aside)."""
        assert self.crawler is not None and self.crawler.engine is not None
        host = urlparse_cached(request).hostname or ""
        async with self._admission.admit(host):
            try:
                response = await self.crawler.engine.download_async(request)
            except Exception as e:
                return outcome_from_failure(req, Failure(e), started=started,
                                            max_bytes=self.settings.getint("DOWNLOAD_MAXSIZE"))
        return outcome_of(req, response, started)

    def _downloaded(self, fut: asyncio.Future[FetchOutcome], task: asyncio.Future[FetchOutcome]) -> None:
        self._tasks.discard(task)
        if fut.done():
            if not task.cancelled():
                task.exception()
            return
        if task.cancelled():
            fut.cancel()
        elif task.exception() is not None:
            fut.set_exception(task.exception())  # type: ignore[arg-type]
        else:
            fut.set_result(task.result())

    def browser_timeout(self, req: FetchRequest) -> float:
        """Seconds the browser may take for `req`: the watch's browser timeout (default fetch.timeout), within
        the fetch deadline less one fetch.timeout kept for robots.txt."""
        wanted = req.browser_timeout or self.config.timeout.total_seconds()
        return min(wanted, (self.config.fetch_deadline - self.config.timeout).total_seconds())

    async def close(self) -> None:
        """Stop the crawler; requests still in flight resolve as failed ('shutdown')."""
        for fut in list(self._pending):
            if not fut.done():
                fut.cancel()
        if self.crawler is not None and self.crawler.crawling:
            try:
                await asyncio.wait_for(self.crawler.stop_async(), timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                pass
        if self._crawl_task is not None and not self._crawl_task.done():
            self._crawl_task.cancel()
        for task in list(self._tasks):  # downloads the stopped engine left unanswered (nobody waits for them)
            task.cancel()


async def fetch_many(config: FetchConfig, requests: list[FetchRequest], **settings: Any) -> list[FetchOutcome]:
    fetcher = Fetcher(config, **settings)
    await fetcher.start()
    try:
        return list(await asyncio.gather(*(fetcher.fetch(r) for r in requests)))
    finally:
        await fetcher.close()


def fetch_once(url: str, kind: str = "html", config: FetchConfig | None = None, *,
               operator_url: bool = False) -> FetchOutcome:
    """Fetch one URL now (for `watcher extract URL` and `watcher diff`); blocking, once per process.
    `operator_url`: the operator typed it, so its own address is fetched whatever fetch.allow_private says."""
    from watcher.runtime import run_sync

    config = config or FetchConfig()
    req = FetchRequest(watch="(adhoc)", url=url, kind=kind, operator_url=operator_url,  # type: ignore[arg-type]
                       max_entries=config.max_entries)
    return run_sync(lambda: fetch_many(config, [req]))[0]
