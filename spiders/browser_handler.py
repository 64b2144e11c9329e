"""The browser side of `kind = "browser"` fetches: scrapy-playwright's download handler, adapted.

Made by spiders.browser.DownloadHandler on the first browser request (so Playwright is imported only then).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler

from spiders.browser import _PAGES, BROWSER_STATE, CONTEXT_KWARGS, _PageState, _port, _resolve
from spiders.middlewares import BlockedAddress
from watcher.egress import EgressPolicy
from watcher.text import display_url

log = logging.getLogger(__name__)


class BrowserDownloadHandler(ScrapyPlaywrightDownloadHandler):
    """scrapy-playwright's handler for http(s): lazy start, the egress policy on routed requests, and the
    size limit on the rendered page."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.policy = EgressPolicy(crawler.settings.getlist("WATCHER_ALLOW_PRIVATE"))
        self.maxsize = crawler.settings.getint("DOWNLOAD_MAXSIZE")
        self.abort_request = self._refuse
        self._started = False
        self._start_lock = asyncio.Lock()

    # Upstream starts Playwright (a Node process) when the engine starts; here it starts on the first
    # browser fetch, so watchers without browser watches never run it.
    async def _maybe_launch_in_thread(self) -> None:
        return None

    def _engine_started(self) -> Any:
        return None

    async def _download_request(self, request: Request, spider: Any = None) -> Response:
        async with self._start_lock:
            if not self._started:
                await self._launch()
                self._started = True
        request.meta.setdefault("playwright_context_kwargs", CONTEXT_KWARGS)
        try:
            response = await super()._download_request(request, spider)
        except Exception as e:
            state: _PageState | None = request.meta.get(BROWSER_STATE)
            if state is not None and state.navigation_refused:
                raise BlockedAddress(f"{display_url(request.url)} navigated to {state.navigation_refused}") from e
            raise
        state = request.meta.get(BROWSER_STATE)
        if state is not None and state.navigation_refused:
            # A script sent the page elsewhere and the route check stopped it: what is left is an error page.
            raise BlockedAddress(f"{display_url(request.url)} navigated to {state.navigation_refused}")
        if state is not None and state.refused:
            log.info("browser fetch of %s: %d request(s) of the page refused by the egress policy, first: %s",
                     display_url(request.url), len(state.refused), state.refused[0])
        if self.maxsize and len(response.body) > self.maxsize:
            raise IgnoreRequest(f"the rendered page ({len(response.body)} bytes) is larger than fetch.max_bytes "
                                f"({self.maxsize} bytes)")
        return response

    async def _refuse(self, playwright_request: Any) -> bool:
        """Abort a request of the page that the egress policy refuses (scrapy-playwright's abort hook)."""
        url = playwright_request.url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return parts.scheme not in ("data", "blob", "about")  # no file:, ftp:, chrome: and such
        try:
            page = playwright_request.frame.page
        except Exception:  # a worker's request has no frame: refuse
            return True
        state = _PAGES.get(page) or _PageState(started_public=True)
        try:
            address = await _resolve(parts.hostname or "")
        except Exception:  # unresolvable: Chromium would fail too
            return True
        port = _port(parts)
        if state.operator_origin == (address, port) and not state.started_public:
            return False
        refusal = self.policy.refusal(address, port, after_public=state.started_public)
        if refusal is None:
            return False
        state.refused.append(f"{display_url(url)}: {refusal}")
        if playwright_request.is_navigation_request() and playwright_request.frame.parent_frame is None:
            state.navigation_refused = f"{display_url(url)}, refused: {refusal}"
        return True
