"""A very long feed or WordPress listing, checked once: time and peak memory of one check.

    .venv/bin/python -m benchmarks.bigfeed --entries 50000                       # RSS feed, SQLite, max_entries 200
    .venv/bin/python -m benchmarks.bigfeed --entries 50000 --max-entries 50000   # every entry (batches of 50)
    .venv/bin/python -m benchmarks.bigfeed --entries 10000 --kind wordpress --backend postgresql

The feed is served by a real local HTTP server (tests/pageserver.py) in this process; the check is
`watcher check`'s own cycle (`run_cycle`) with the default processing pool. Entries are dated one hour apart
and listed in shuffled order, so "newest first" is by date, not by position. Peak RSS: this process's (it
also serves the feed: `rss_mb_before_check` is what it held with the body generated and served, before
checking), and the processing workers' (VmHWM of each, summed). `longest_transaction_s`: the longest
database transaction of the check (BEGIN to COMMIT), which bounds how long it held SQLite's write lock.
The tests use `rss` and `wordpress_listing` to serve their own (smaller) listings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import sys
import tempfile
import time
from email.utils import format_datetime
from typing import Any

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _order(n: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def entry_text(i: int) -> str:
    return (f"Show {i} Season 2 is expected to premiere in early 2027 on Netflix, the studio said. "
            f"Filming of the second season of Show {i} wrapped in March.")


def rss(n: int, *, seed: int = 1, first: int = 0) -> bytes:
    """An RSS 2.0 feed of entries first..first+n-1; entry i is dated BASE + i hours (higher is newer)."""
    items = []
    for i in _order(n, seed):
        i += first
        when = format_datetime(BASE + dt.timedelta(hours=i))
        items.append(f"<item><title>Show {i} Season 2 news</title><link>http://news.example/p/{i}</link>"
                     f"<guid>http://news.example/p/{i}</guid><pubDate>{when}</pubDate>"
                     f"<description>{entry_text(i)}</description></item>")
    return ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>News</title>"
            f"<link>http://news.example/</link>{''.join(items)}</channel></rss>").encode()


def wordpress_listing(n: int, *, seed: int = 1, first: int = 0) -> bytes:
    """A WordPress REST listing (`/wp-json/wp/v2/posts`) of posts first..first+n-1, dated like `rss`."""
    posts = []
    for i in _order(n, seed):
        i += first
        when = (BASE + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%S")
        posts.append({"id": i, "date_gmt": when, "modified_gmt": when, "link": f"http://news.example/p/{i}",
                      "guid": {"rendered": f"http://news.example/?p={i}"},
                      "title": {"rendered": f"Show {i} Season 2 news"},
                      "content": {"rendered": f"<p>{entry_text(i)}</p>"}})
    return json.dumps(posts).encode()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _workers_peak_mb() -> float:
    from benchmarks.cycle import proc_kb
    from watcher.processing import shared_processor

    return sum(proc_kb(pid, "VmHWM") for pid in shared_processor(None).pids()) / 1024


def _time_transactions(engine: Any) -> list[float]:
    """Seconds of every committed transaction on `engine` (from BEGIN to COMMIT: on SQLite the write lock is
    held at most that long)."""
    from sqlalchemy import event

    times: list[float] = []
    began: dict[int, float] = {}

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        began[id(conn)] = time.monotonic()

    @event.listens_for(engine, "commit")
    def _commit(conn: Any) -> None:
        start = began.pop(id(conn), None)
        if start is not None:
            times.append(time.monotonic() - start)

    return times


def run(entries: int, kind: str, max_entries: int, backend: str, postgres: str, budget: str) -> dict[str, Any]:
    from tests.pageserver import PageServer, Reply
    from watcher.config import Config
    from watcher.pipeline import run_cycle
    from watcher.runtime import install_reactor, run_sync
    from watcher.store import Store

    install_reactor()
    body = rss(entries) if kind == "feed" else wordpress_listing(entries)
    ctype = "application/rss+xml" if kind == "feed" else "application/json"
    with tempfile.TemporaryDirectory() as tmp, PageServer() as server:
        server.route("/feed", Reply(body=body, headers={"Content-Type": ctype}))
        url = f"sqlite:///{tmp}/bench.db" if backend == "sqlite" else postgres
        if backend == "postgresql":
            import sqlalchemy as sa

            engine = sa.create_engine(url)
            with engine.begin() as c:
                c.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        config = Config.model_validate({
            "watcher": {"database_url": url},
            "fetch": {"autothrottle": False, "retries": 0, "timeout": "120s", "max_bytes": len(body) + 1024,
                      "allow_private": [server.allow], "max_entries": max_entries, "processing_budget": budget},
            "watch": [{"name": "big", "url": server.url("/feed"), "kind": kind, "interval": "1h"}]})
        store = Store.open(url)
        store.sync_watches(config.watch)
        longest = _time_transactions(store.engine)
        rss_before = _peak_rss_mb()
        started = time.monotonic()
        report = run_sync(lambda: run_cycle(store, config))
        seconds = time.monotonic() - started
        [result] = report.results
        longest_write = max(longest, default=0.0)
        from sqlalchemy import func, select

        from watcher.store.models import Snapshot

        with store.session() as s:
            snapshots = s.scalar(select(func.count()).select_from(Snapshot))
        store.close()
    return {"entries": entries, "kind": kind, "max_entries": max_entries, "backend": backend,
            "body_mb": round(len(body) / 1e6, 1), "seconds": round(seconds, 1), "outcome": result.outcome,
            "reason": result.reason, "snapshots": snapshots,
            "longest_transaction_s": round(longest_write, 2), "transactions": len(longest),
            "peak_rss_mb_checking_process": round(_peak_rss_mb()), "rss_mb_before_check": round(rss_before),
            "peak_rss_mb_processing_workers": round(_workers_peak_mb()), "cores": len(os.sched_getaffinity(0)),
            "load_average": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=50_000)
    ap.add_argument("--kind", choices=["feed", "wordpress"], default="feed")
    ap.add_argument("--max-entries", type=int, default=200)
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/watcher_bench")
    ap.add_argument("--budget", default="60s", help="fetch.processing_budget")
    args = ap.parse_args(argv)
    result = run(args.entries, args.kind, args.max_entries, args.backend, args.postgres, args.budget)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
