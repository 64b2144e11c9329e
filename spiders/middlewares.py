"""Fetch-side concerns as Scrapy downloader middlewares (wired by settings, Scrapy style)."""

from __future__ import annotations

from typing import Any

from scrapy import Request
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware as _ScrapyRobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred


class BlockedAddress(IgnoreRequest):
    """The egress policy refused a request (reason `blocked-address`)."""


class ConditionalGetMiddleware:
    """Send If-None-Match / If-Modified-Since from the validators the watch stored last time.

    A 304 reaches the spider (it is in handle_httpstatus_list) and counts as 'unchanged'.
    """

    def process_request(self, request: Request, spider: Any = None) -> None:
        etag = request.meta.get("etag")
        last_modified = request.meta.get("last_modified")
        if etag and b"If-None-Match" not in request.headers:
            request.headers[b"If-None-Match"] = etag
        if last_modified and b"If-Modified-Since" not in request.headers:
            request.headers[b"If-Modified-Since"] = last_modified
        return None

    def process_response(self, request: Request, response: Response, spider: Any = None) -> Response:
        return response


class RobotsTxtMiddleware(_ScrapyRobotsTxtMiddleware):
    """Scrapy's robots.txt middleware, safe for many requests waiting on one robots.txt download.

    Upstream awaits the shared per-domain Deferred through `asFuture`, which consumes its result: the
    second and later requests queued while robots.txt downloads see `None` and are let through unchecked.
    Each waiter gets its own relayed Deferred here instead.
    """

    async def robot_parser(self, request: Request) -> Any:
        netloc = urlparse_cached(request).netloc
        pending = self._parsers.get(netloc)
        if isinstance(pending, Deferred):
            waiter: Deferred[Any] = Deferred()

            def relay(result: Any) -> Any:
                waiter.callback(result)
                return result

            pending.addBoth(relay)
            return await maybe_deferred_to_future(waiter)
        return await super().robot_parser(request)
