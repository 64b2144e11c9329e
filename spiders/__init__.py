"""The fetch stage: Scrapy spiders (HTML pages, WordPress REST API) and feeds read with feedparser.

Public entry points: `Fetcher` (long-lived, driven by the scheduler), `fetch_once` (one-shot), and the pure
parsers in `spiders.parsers`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Fetcher", "fetch_many", "fetch_once"]


def __getattr__(name: str) -> Any:
    # Lazy: importing Scrapy (and its reactor machinery) only when fetching.
    if name in __all__:
        from spiders import fetch

        return getattr(fetch, name)
    raise AttributeError(name)
