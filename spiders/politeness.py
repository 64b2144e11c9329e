"""Per-domain politeness shared by every scale-out worker, as a Scrapy downloader middleware.

Enabled by spiders/settings.py when the crawler has `WATCHER_REDIS_URL` (the `watcher worker` role). Each
request takes a lease on its host from `watcher.scale.DomainGate` just before the downloader and gives it
back with the response (or the error), so K workers together keep one domain's concurrency and delay;
with AutoThrottle on, every response's latency adjusts the domain's shared delay.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.httpobj import urlparse_cached

log = logging.getLogger(__name__)
LEASE = "watcher_domain_lease"


class SharedPolitenessMiddleware:
    def __init__(self, gate: Any) -> None:
        self.gate = gate
        self._failing_since: float | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SharedPolitenessMiddleware:
        url = crawler.settings.get("WATCHER_REDIS_URL")
        if not url:
            raise NotConfigured
        from watcher.scale import DomainGate, member_id, redis_client

        gate = DomainGate(redis_client(url), crawler.settings["WATCHER_FETCH_CONFIG"],
                          crawler.settings.get("WATCHER_WORKER_ID") or member_id(),
                          lease=crawler.settings.getfloat("WATCHER_LEASE", 60.0))
        mw = cls(gate)
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        return mw

    async def spider_closed(self, spider: Any = None) -> None:
        await self.gate.close()

    async def process_request(self, request: Request, spider: Any = None) -> None:
        host = urlparse_cached(request).hostname or ""
        try:
            lease = await self.gate.acquire(host)
        except Exception as e:
            # Redis unreachable: no new jobs arrive either, so only checks already running go on, within
            # this worker's own Scrapy limits. Say so once per outage.
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.error("shared politeness unavailable (Redis: %s); this worker's own limits apply", e)
            return None
        if self._failing_since is not None:
            log.warning("shared politeness is back after %.0fs", time.monotonic() - self._failing_since)
            self._failing_since = None
        request.meta[LEASE] = lease
        return None

    async def process_response(self, request: Request, response: Response, spider: Any = None) -> Response:
        await self._release(request, response.status)
        return response

    async def process_exception(self, request: Request, exception: Exception, spider: Any = None) -> None:
        await self._release(request, None)
        return None

    async def _release(self, request: Request, status: int | None) -> None:
        lease = request.meta.pop(LEASE, None)  # popped: a retry or redirect copies meta and takes its own
        if lease is None:
            return
        try:
            await self.gate.release(lease, latency=request.meta.get("download_latency"), status=status)
        except Exception as e:  # the lease expires by itself
            log.debug("could not release the lease on %s: %s", lease.host, e)
