"""Scrapy settings built from the [fetch] config: polite by default."""

from __future__ import annotations

from typing import Any

from watcher.config import FetchConfig

# Statuses the spider sees itself (classified as failures with their reason) rather than Scrapy dropping them.
HANDLED_STATUSES = [304, *range(400, 600)]


def scrapy_settings(fetch: FetchConfig, **overrides: Any) -> dict[str, Any]:
    """Settings for the in-process crawler. With `WATCHER_REDIS_URL` (a scale-out worker), per-domain
    concurrency and delay, AutoThrottle and robots.txt verdicts are shared by all workers through Redis
    (spiders/politeness.py), so the local delay and AutoThrottle step aside."""
    shared = bool(overrides.get("WATCHER_REDIS_URL"))
    middlewares: dict[str, int | None] = {
        # First of all: a refused address is never asked for robots.txt either.
        "spiders.middlewares.EgressMiddleware": 50,
        "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
        "spiders.middlewares.RobotsTxtMiddleware": 100,
        "spiders.middlewares.ConditionalGetMiddleware": 560,
    }
    if shared:
        # Last before the downloader: a domain lease is held for the transfer only, and every retry and
        # redirect (which come back through the engine) takes its own.
        middlewares["spiders.politeness.SharedPolitenessMiddleware"] = 950
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
        "STATS_DUMP": False,
        "LOGSTATS_INTERVAL": 0,
        "MEMUSAGE_ENABLED": False,
        "DNSCACHE_ENABLED": True,
        "DNS_TIMEOUT": min(fetch.timeout.total_seconds(), 20),
        "HTTPCACHE_ENABLED": False,
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
        # Only http(s): a redirect or refresh can never reach file://, ftp://, s3:// or data: handlers.
        "DOWNLOAD_HANDLERS_BASE": {"http": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler",
                                   "https": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler"},
        "WATCHER_ALLOW_PRIVATE": list(fetch.allow_private),
        "DOWNLOADER_MIDDLEWARES": middlewares,
        "WATCHER_FETCH_CONFIG": fetch,
        "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.DownloaderAwarePriorityQueue",
        # Requests are injected by the scheduler; the spider never runs out of them by itself.
        "CLOSESPIDER_TIMEOUT": 0,
    }
    settings.update(overrides)
    return settings
