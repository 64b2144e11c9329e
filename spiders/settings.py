"""Scrapy settings built from the [fetch] config: polite by default, and trimmed to what a monitor uses.

A monitor sends one request per watch and reads one response; it never follows links, exports items or
needs crawl statistics. Scrapy's defaults carry a middleware or extension for each of those, and some
cost time on every request (the stats middleware renders each response as raw HTTP to count its bytes).
So the component lists below are complete, not additions to Scrapy's defaults: what is not listed is off.
Requests go straight to the downloader (spiders/fetch.py): the scheduler, spider middlewares and scraper
are never used.
"""

from __future__ import annotations

from typing import Any
from urllib.request import getproxies

from spiders.browser import playwright_settings
from watcher.config import FetchConfig

# Statuses that are answers (classified as failures with their reason, or a 304), not redirects to follow.
HANDLED_STATUSES = [304, *range(400, 600)]

_MW = "scrapy.downloadermiddlewares"
BROWSER_HANDLER = "spiders.browser.DownloadHandler"

# Every downloader middleware the fetcher runs, by order. Left out: offsite (no link following), cookies
# (off: a re-check must not depend on session state), stats, HTTP cache, HTTP auth (the Authorization header
# of a watch with `auth` is set on its request; Scrapy's middleware only adds credentials from settings or
# meta, which nothing sets), and Scrapy's DefaultHeaders, UserAgent and DownloadTimeout middlewares, whose work
# RequestHeadersMiddleware does in the same pass as the conditional-GET headers.
DOWNLOADER_MIDDLEWARES: dict[str, int] = {
    # First of all: a refused address is never asked for robots.txt either.
    "spiders.middlewares.EgressMiddleware": 50,
    "spiders.middlewares.RobotsTxtMiddleware": 100,  # politeness; a no-op when obey_robots is false
    "spiders.middlewares.RequestHeadersMiddleware": 400,  # User-Agent, Accept, timeout, If-None-Match...
    f"{_MW}.retry.RetryMiddleware": 550,
    # Skips the search for a refresh in a body identical to the stored one (and hashes it for the spider).
    "spiders.middlewares.MetaRefreshMiddleware": 580,
    f"{_MW}.httpcompression.HttpCompressionMiddleware": 590,
    "spiders.middlewares.RedirectMiddleware": 600,
}
# Only when the environment names a proxy (http_proxy, https_proxy...): without one Scrapy's middleware does
# nothing (no request sets meta["proxy"]), yet costs its calls on every request.
HTTP_PROXY = {f"{_MW}.httpproxy.HttpProxyMiddleware": 750}
# Scale-out workers only. Last before the downloader: a domain lease is held for the transfer only, and
# every retry and redirect (which come back through the engine) takes its own.
SHARED_POLITENESS = {"spiders.politeness.SharedPolitenessMiddleware": 950}

# Spider middlewares: none. Responses never reach the spider (fetch.outcome_of filters statuses as Scrapy's
# HttpErrorMiddleware did); nothing is followed, so no depth, URL length, offsite or Referer ones.
SPIDER_MIDDLEWARES: dict[str, int] = {}

# Extensions: AutoThrottle only (it is itself off unless fetch.autothrottle). No stats, log counters,
# telnet console, memory watchdog, feed exports or close conditions.
EXTENSIONS: dict[str, int] = {"scrapy.extensions.throttle.AutoThrottle": 0}


def scrapy_settings(fetch: FetchConfig, **overrides: Any) -> dict[str, Any]:
    """Settings for the in-process crawler. With `WATCHER_REDIS_URL` (a scale-out worker), per-domain
    concurrency and delay, AutoThrottle and robots.txt verdicts are shared by all workers through Redis
    (spiders/politeness.py), so the local delay and AutoThrottle step aside."""
    shared = bool(overrides.get("WATCHER_REDIS_URL"))
    slots = {}
    for host in fetch.domains:
        concurrency, delay = fetch.domain_policy(host)
        slots[host] = {"concurrency": concurrency, "delay": 0.0 if shared else delay}
    settings: dict[str, Any] = {
        "BOT_NAME": "watcher",
        "USER_AGENT": fetch.user_agent,
        "ROBOTSTXT_OBEY": fetch.obey_robots,
        "ROBOTSTXT_USER_AGENT": fetch.user_agent,
        "CONCURRENT_REQUESTS": fetch.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": fetch.concurrency_per_domain,
        "DOWNLOAD_DELAY": 0.0 if shared else fetch.download_delay.total_seconds(),
        "DOWNLOAD_SLOTS": slots,
        "AUTOTHROTTLE_ENABLED": fetch.autothrottle and not shared,
        "AUTOTHROTTLE_START_DELAY": max(fetch.download_delay.total_seconds(), 1.0),
        "AUTOTHROTTLE_TARGET_CONCURRENCY": float(fetch.concurrency_per_domain),
        "DOWNLOAD_TIMEOUT": fetch.timeout.total_seconds(),
        "DOWNLOAD_MAXSIZE": fetch.max_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "RETRY_ENABLED": fetch.retries > 0,
        "RETRY_TIMES": fetch.retries,
        # 429 is not retried at once: the watch backs off, honouring Retry-After.
        "RETRY_HTTP_CODES": [500, 502, 503, 504, 522, 524, 408],
        "REDIRECT_MAX_TIMES": 10,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_ENABLED": False,
        # One "Crawled (200)" record per response is work even when no handler prints it.
        "LOG_FORMATTER": "spiders.middlewares.QuietLogFormatter",
        "STATS_CLASS": "scrapy.statscollectors.DummyStatsCollector",
        "STATS_DUMP": False,
        "LOGSTATS_INTERVAL": 0,
        "MEMUSAGE_ENABLED": False,
        "DNSCACHE_ENABLED": True,
        "DNS_TIMEOUT": min(fetch.timeout.total_seconds(), 20),
        "HTTPCACHE_ENABLED": False,
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
        # Only http(s): a redirect or refresh can never reach file://, ftp://, s3:// or data: handlers.
        # Scrapy's HTTP/1.1 handler, extended by scrapy-playwright: a request goes to headless Chromium only
        # when its meta says "playwright" (browser watches); the others take the plain HTTP path unchanged.
        "DOWNLOAD_HANDLERS_BASE": {"http": BROWSER_HANDLER, "https": BROWSER_HANDLER},
        **playwright_settings(fetch),
        "WATCHER_ALLOW_PRIVATE": list(fetch.allow_private),
        "DOWNLOADER_MIDDLEWARES_BASE": {**DOWNLOADER_MIDDLEWARES, **(HTTP_PROXY if getproxies() else {}),
                                        **(SHARED_POLITENESS if shared else {})},
        "DOWNLOADER_MIDDLEWARES": {},
        "SPIDER_MIDDLEWARES_BASE": SPIDER_MIDDLEWARES,
        "SPIDER_MIDDLEWARES": {},
        "EXTENSIONS_BASE": EXTENSIONS,
        "EXTENSIONS": {},
        "WATCHER_FETCH_CONFIG": fetch,
        # Scrapy's own, with CONCURRENT_REQUESTS_PER_DOMAIN enforced on the asyncio reactor (see the module).
        "DOWNLOADER": "spiders.downloader.Downloader",
        # Requests come from the pipeline; the spider never runs out of them by itself.
        "CLOSESPIDER_TIMEOUT": 0,
    }
    settings.update(overrides)
    return settings
