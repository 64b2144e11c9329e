"""What an unchanged re-check adds to a PostgreSQL database, before and after VACUUM.

    python -m benchmarks.dbgrowth --pages 1000 --postgres postgresql://postgres@127.0.0.1:5432/watcher_bench

`benchmarks.cycle` reports `pg_database_size` growth over one unchanged cycle. On PostgreSQL that includes
the superseded version of every watch row the cycle updated (MVCC): dead rows that VACUUM (autovacuum in a
deployment) makes reusable. This runs a baseline cycle, then unchanged cycles, the first without VACUUM and
the next ones each after `VACUUM watches, checks`, and prints the growth of the `checks` table (with its
indexes), the `watches` table and the whole database per re-check: the steady state is the VACUUMed figure.
The database given is wiped (use a scratch one).
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import text

from benchmarks.cycle import _reset_pg, config_for, ensure_pg, page_server


def sizes(store: Any) -> tuple[int, int, int]:
    with store.engine.connect() as c:
        row = c.execute(text("SELECT pg_total_relation_size('checks'), pg_total_relation_size('watches'), "
                             "pg_database_size(current_database())")).one()
    return int(row[0]), int(row[1]), int(row[2])


def vacuum(store: Any) -> None:
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM watches"))
        c.execute(text("VACUUM checks"))


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.dbgrowth", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--cycles", type=int, default=4, help="unchanged cycles (the first without VACUUM)")
    ap.add_argument("--postgres", required=True, metavar="URL", help="a scratch database (it is wiped)")
    args = ap.parse_args()

    from watcher.pipeline import run_cycle
    from watcher.runtime import install_reactor, run_sync
    from watcher.store import Store

    install_reactor()
    url = ensure_pg(args.postgres)
    _reset_pg(url)
    n = args.pages
    try:
        with page_server(n) as base:
            store = Store.open(url)
            config = config_for(base, n, url)
            store.sync_watches(config.watch)
            run_sync(lambda: run_cycle(store, config))  # baseline: a snapshot per page
            before = sizes(store)
            for i in range(args.cycles):
                if i:
                    vacuum(store)
                    before = sizes(store)
                run_sync(lambda: run_cycle(store, config))
                after = sizes(store)
                checks, watches, database = ((a - b) / n for a, b in zip(after, before, strict=True))
                print(f"unchanged cycle {i + 1} ({'after VACUUM' if i else 'no VACUUM'}): checks +{checks:.1f} B, "
                      f"watches +{watches:.1f} B, database +{database:.1f} B per re-check", flush=True)
            store.close()
    finally:
        _reset_pg(url)


if __name__ == "__main__":
    main()
