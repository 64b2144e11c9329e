"""Scrapy's downloader with its per-domain concurrency limit enforced again.

On the asyncio reactor, Scrapy 2.13+ starts each download as a task and counts it as transferring only
once the task runs; `_process_queue` meanwhile sees the slot still free and starts every queued request of
the domain at once (scrapy/scrapy#6982). `CONCURRENT_REQUESTS_PER_DOMAIN` then bounds nothing, a site
gets up to CONCURRENT_REQUESTS requests together, and since the connection pool keeps only that many idle
connections per host, most requests open a new TCP connection. Here a request counts as transferring
from the moment it is taken off the queue.
"""

from __future__ import annotations

from time import monotonic

from scrapy.core.downloader import Downloader as _ScrapyDownloader
from scrapy.core.downloader import Slot
from scrapy.utils.asyncio import call_later
from scrapy.utils.defer import _schedule_coro


class Downloader(_ScrapyDownloader):
    def _process_queue(self, slot: Slot) -> None:
        # Scrapy 2.19's method, with the transfer counted before the download task is scheduled (its
        # `_download` adds the request to the set again, a no-op, and removes it when done).
        if slot.latercall:
            return
        now = monotonic()
        delay = slot.download_delay()
        if delay:
            penalty = delay - now + slot.lastseen
            if penalty > 0:
                slot.latercall = call_later(penalty, self._latercall, slot)
                return
        while slot.queue and slot.free_transfer_slots() > 0:
            slot.lastseen = now
            request, queue_dfd = slot.queue.popleft()
            slot.transferring.add(request)
            _schedule_coro(self._wait_for_download(slot, request, queue_dfd))
            if delay:
                self._process_queue(slot)
                break
