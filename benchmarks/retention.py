"""Retention on a synthetic history: how long a prune takes and how much space it gives back.

    .venv/bin/python -m benchmarks.retention [--watches 200] [--snapshots 150] [--database-url URL]

Each watch gets `--snapshots` versions of a page (about 4 KB of text each, compressed as stored), spread over
two years; one version in ten carries a fact event, the others a settled `text_changed` event. The prune
uses the default `[retention]` (100 snapshots, 365 days). Prints JSON: rows and bytes removed, seconds,
database size before and after.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from watcher.config import Config
from watcher.records import Document
from watcher.retention import prune_snapshots
from watcher.store import ChangeEventRow, Snapshot, Store, encode_document

WORDS = ("season release cast filming premiere window streamer network trailer renewal studio director "
         "episode finale production schedule announcement report interview casting").split()


def fill(store: Store, watches: int, snapshots: int) -> None:
    config = Config.model_validate({"watch": [{"name": f"w{i}", "url": f"https://example.org/{i}", "interval": "6h"}
                                              for i in range(watches)]})
    ids = store.sync_watches(config.watch)
    rng = random.Random(1)
    now = dt.datetime.now(dt.UTC)
    for name, wid in ids.items():
        with store.session() as s:
            for n in range(snapshots):
                text = " ".join(rng.choice(WORDS) for _ in range(600))
                blob = encode_document(Document(url=f"https://example.org/{name}", format="html", title=name,
                                                text=text))
                at = now - dt.timedelta(days=730 * (snapshots - n) / snapshots)
                sid = s.execute(insert(Snapshot).values(watch_id=wid, content_hash=f"{name}-{n}", url="u",
                                                        content_z=blob, fetched_at=at, facts={})
                                .returning(Snapshot.id)).scalar_one()
                s.add(ChangeEventRow(uid=f"{name}-{n}", watch_id=wid, snapshot_id=sid,
                                     type="release_changed" if n % 10 == 0 else "text_changed", detected_at=at))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watches", type=int, default=200)
    parser.add_argument("--snapshots", type=int, default=150)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file in a temporary directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'retention.db'}"
        store = Store.open(url)
        started = time.monotonic()
        fill(store, args.watches, args.snapshots)
        filled = time.monotonic() - started
        report = prune_snapshots(store, Config())
        out = {"backend": store.dialect, "watches": args.watches, "snapshots_per_watch": args.snapshots,
               "fill_seconds": round(filled, 1), **report.to_json()}
        store.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
