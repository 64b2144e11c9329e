"""`kind = "browser"` watches: the page rendered by a real headless Chromium, through scrapy-playwright.

Only requests whose meta says `"playwright": True` (what `browser_meta` builds for a browser watch) go to the
browser; every other request takes Scrapy's plain HTTP/1.1 handler (`DownloadHandler` below), so html,
wordpress and feed watches pay nothing. Playwright is imported, and Chromium started, on the first browser
fetch, not when the crawler starts: a daemon without browser watches never runs them.

The egress policy (watcher/egress.py) reaches into the browser as far as it can:
- the start URL goes through the EgressMiddleware like any request (and robots.txt is obeyed as usual);
- every request the page makes that Playwright can route (the navigation, scripts, images, XHR/fetch,
  frames, and navigations a script starts) is resolved and checked here, and aborted when refused;
- the final URL the page ended on, and the address its document came from, are checked again by the
  EgressMiddleware once the response is back (this catches HTTP redirects, which Playwright does not route),
  so nothing from a refused address is stored.
Not covered: Chromium resolves host names itself, so a name that answers differently to Chromium than to the
check a moment before (DNS rebinding) is not pinned as it is for plain fetches; the hops of an HTTP redirect
are requested before the final check refuses them; WebSocket and WebRTC connections are not routed (service
workers are blocked so that none can fetch behind the route).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
import weakref
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
from scrapy.crawler import Crawler
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy_playwright.page import PageMethod

from spiders.middlewares import OPERATOR_URL, STARTED_PUBLIC
from watcher.config import FetchConfig

# scrapy-playwright logs every failed render as a WARNING with a traceback; here a failed render is a check
# outcome with its reason (timeout, blocked-address, ...), logged once by the daemon like any other failure.
logging.getLogger("scrapy-playwright").setLevel(logging.ERROR)

CHROMIUM = os.environ.get("WATCHER_CHROMIUM", "/usr/bin/chromium")
BROWSER_STATE = "watcher_browser"
BROWSER_TIMEOUT = "watcher_browser_timeout"


@dataclass
class _PageState:
    """What the route check of one browser fetch needs, and what it refused."""

    started_public: bool
    # The operator typed the start URL (`watcher add`, `watcher extract`): its own host and port are allowed
    # for the page's requests too, as they are for the first hop of a plain fetch.
    operator_origin: tuple[str, int] | None = None
    refused: list[str] = field(default_factory=list)
    navigation_refused: str | None = None
    deadline: float = 0.0  # time.monotonic() by which the page must be ready


# Page -> its state, filled by the page-init callback (the route hook receives only Playwright's request).
_PAGES: weakref.WeakKeyDictionary[Any, _PageState] = weakref.WeakKeyDictionary()


def _port(parts: Any) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


async def _resolve(host: str) -> str:
    """The address the plain fetches would use (the PinningResolver's cached answer when there is one)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        from twisted.internet import reactor

        return str(await maybe_deferred_to_future(reactor.resolve(host)))  # type: ignore[attr-defined]


async def _init_page(page: Any, request: Request) -> None:
    """scrapy-playwright's `playwright_page_init_callback`: runs before the page navigates."""
    state = _PageState(started_public=request.meta.get(STARTED_PUBLIC) is True,
                       deadline=time.monotonic() + request.meta.get(BROWSER_TIMEOUT, 30.0))
    if request.meta.get(OPERATOR_URL):
        parts = urlsplit(request.url)
        try:
            state.operator_origin = (await _resolve(parts.hostname or ""), _port(parts))
        except Exception:  # unresolvable: nothing to allow
            state.operator_origin = None
    request.meta[BROWSER_STATE] = state
    _PAGES[page] = state


async def _settle(page: Any, wait_for: str | None, timeout: float) -> None:
    """After the load event: wait for the selector (or, without one, for the network to go quiet briefly),
    within what is left of the watch's browser timeout, counted from when the page started to navigate."""
    state = _PAGES.get(page)
    deadline = state.deadline if state is not None and state.deadline else time.monotonic() + timeout
    left_ms = max(1.0, (deadline - time.monotonic()) * 1000)
    from playwright.async_api import TimeoutError as PlaywrightTimeoutError

    if wait_for:
        try:
            await page.wait_for_selector(wait_for, state="attached", timeout=left_ms)
        except PlaywrightTimeoutError:
            raise PlaywrightTimeoutError(f"{wait_for!r} did not appear within {timeout:g}s (browser.wait_for, "
                                         "browser.timeout)") from None
        return
    # No selector: give scripts that fetch their text after `load` a short, bounded moment.
    try:
        await page.wait_for_load_state("networkidle", timeout=min(left_ms, 3000))
    except Exception:  # a page that keeps polling is read as it is now
        return


def browser_meta(*, wait_for: str | None, timeout: float) -> dict[str, Any]:
    """Request meta that sends a request to Chromium: navigate (until `load`), then wait for `wait_for`
    (a CSS selector), all within `timeout` seconds from the start of navigation; the rendered DOM is the
    response body."""
    return {
        "playwright": True,
        "playwright_page_init_callback": _init_page,
        "playwright_page_goto_kwargs": {"wait_until": "load", "timeout": timeout * 1000},
        "playwright_page_methods": [PageMethod(_settle, wait_for, timeout)],
        BROWSER_TIMEOUT: timeout,
        # Retries are for the plain path (a failed render is not retried at once; the watch backs off).
        "dont_retry": True,
    }


def launch_options(fetch: FetchConfig) -> dict[str, Any]:
    args = ["--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-extensions", "--no-first-run", "--mute-audio"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Chromium refuses to start its sandbox as root (containers, CI); run watcher as a user to keep it.
        args.append("--no-sandbox")
    return {"executable_path": CHROMIUM, "headless": True, "args": args,
            "timeout": min(fetch.timeout.total_seconds(), 60) * 1000}


def playwright_settings(fetch: FetchConfig) -> dict[str, Any]:
    return {
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        "PLAYWRIGHT_LAUNCH_OPTIONS": launch_options(fetch),
        # One context for all browser watches; no cookies or storage kept between checks (pages close), no
        # service workers (they would fetch outside the route check), no downloads.
        "PLAYWRIGHT_CONTEXTS": {},
        "PLAYWRIGHT_MAX_CONTEXTS": 1,
        # Chromium pages cost tens of MB each: a few at a time, whatever fetch.concurrency allows plain fetches.
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": min(4, fetch.concurrency),
        "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": fetch.timeout.total_seconds() * 1000,
    }


CONTEXT_KWARGS = {"service_workers": "block", "accept_downloads": False, "java_script_enabled": True}


class DownloadHandler(HTTP11DownloadHandler):
    """The http(s) handler: Scrapy's HTTP/1.1 handler, except that a request marked "playwright" goes to the
    browser handler (spiders/browser_handler.py), made on the first such request. Playwright is not even
    imported before (about 7 MB and 0.2 s per process that never renders a page)."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._crawler = crawler
        self._browser: Any = None

    async def download_request(self, request: Request) -> Response:
        if not request.meta.get("playwright"):
            return await super().download_request(request)
        if self._browser is None:
            from spiders.browser_handler import BrowserDownloadHandler

            self._browser = BrowserDownloadHandler(self._crawler)
        return await self._browser.download_request(request)

    async def close(self) -> None:
        await super().close()
        if self._browser is not None:
            await self._browser.close()
