"""What an unchanged re-check adds to the database (SQLite, and PostgreSQL before and after VACUUM).

    python -m benchmarks.dbgrowth --pages 1000 --postgres postgresql://postgres@127.0.0.1:5432/watcher_bench
    python -m benchmarks.dbgrowth --pages 1000 --backend sqlite

`benchmarks.cycle` reports `pg_database_size` growth over one unchanged cycle. On PostgreSQL that includes
the superseded version of every watch row the cycle updated (MVCC): dead rows that VACUUM (autovacuum in a
deployment) makes reusable. This runs a baseline cycle, then unchanged cycles, the first without VACUUM and
the next ones each after `VACUUM watches, checks`, and prints the growth of the `checks` table (with its
indexes), the `watches` table and the whole database per re-check: the steady state is the VACUUMed figure.
The database given is wiped (use a scratch one).

On SQLite (a fresh file in a temporary directory) there is no VACUUM step: freed pages are reused by later
writes. The `checks` figure is its table and indexes (the `dbstat` table), the database figure the file after
a WAL checkpoint; the watches figure is the watches table.

Since run-length check history (issue 15) an unchanged re-check adds no `checks` row: it extends its watch's
open run, kept on the watch row it updates anyway (heap-only on PostgreSQL), so every figure, the first
cycle's included, is about 0 on PostgreSQL; SQLite's first cycle grows the watch rows by the run's columns.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from typing import Any

from sqlalchemy import text

from benchmarks.cycle import _reset_pg, config_for, ensure_pg, page_server


def sizes(store: Any) -> tuple[int, int, int]:
    """(checks table with its indexes, watches table with its indexes, whole database) in bytes."""
    from benchmarks.cycle import db_bytes

    with store.engine.connect() as c:
        if store.dialect == "sqlite":
            pages = dict(c.exec_driver_sql(
                "SELECT tbl_name, (SELECT sum(pgsize) FROM dbstat d WHERE d.name IN "
                "(SELECT name FROM sqlite_master m2 WHERE m2.tbl_name = m.tbl_name)) "
                "FROM sqlite_master m WHERE type = 'table' AND tbl_name IN ('checks', 'watches')").all())
            return int(pages["checks"]), int(pages["watches"]), db_bytes(store)
        row = c.execute(text("SELECT pg_total_relation_size('checks'), pg_total_relation_size('watches'), "
                             "pg_database_size(current_database())")).one()
    return int(row[0]), int(row[1]), int(row[2])


def vacuum(store: Any) -> None:
    if store.dialect == "sqlite":
        return  # freed pages are reused as they are
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM watches"))
        c.execute(text("VACUUM checks"))


def measure(url: str, n: int, cycles: int, *, vacuum_between: bool = True) -> None:
    from watcher.pipeline import run_cycle
    from watcher.runtime import run_sync
    from watcher.store import Store

    pg = url.startswith("postgresql")
    vacuums = pg and vacuum_between
    with page_server(n) as base:
        store = Store.open(url)
        config = config_for(base, n, url)
        store.sync_watches(config.watch)
        run_sync(lambda: run_cycle(store, config))  # baseline: a snapshot per page
        before = sizes(store)
        print(f"{store.dialect}, {n} pages:", flush=True)
        for i in range(cycles):
            if i and vacuums:
                vacuum(store)
                before = sizes(store)
            run_sync(lambda: run_cycle(store, config))
            after = sizes(store)
            checks, watches, database = ((a - b) / n for a, b in zip(after, before, strict=True))
            step = ("after VACUUM" if i and vacuums else "no VACUUM") if pg else "no VACUUM needed"
            print(f"unchanged cycle {i + 1} ({step}): checks +{checks:.1f} B, "
                  f"watches +{watches:.1f} B, database +{database:.1f} B per re-check", flush=True)
            if not vacuums:
                before = after
        store.close()
    if pg:
        hot_updates(url)


def hot_updates(url: str) -> None:
    """How many of the UPDATEs of `checks` and `watches` were heap-only (HOT: no new index entries, the old
    version reclaimed by page pruning without VACUUM). Read after the store's connections closed, which
    flushes their statistics."""
    import sqlalchemy as sa

    from watcher.store.db import normalise_url

    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.connect() as c:
            for name, updates, hot in c.execute(text(
                    "SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                    "WHERE relname IN ('checks', 'watches') ORDER BY relname")):
                print(f"{name}: {updates} row updates, {hot} HOT ({100 * hot / max(updates, 1):.0f}%)", flush=True)
    finally:
        engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.dbgrowth", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--cycles", type=int, default=4, help="unchanged cycles (the first without VACUUM)")
    ap.add_argument("--postgres", metavar="URL", help="a scratch database (it is wiped)")
    ap.add_argument("--no-vacuum", action="store_true",
                    help="PostgreSQL: no VACUUM between cycles (what page pruning alone keeps; autovacuum may run)")
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], action="append",
                    help="repeatable; default both with --postgres, else sqlite")
    args = ap.parse_args()
    backends = args.backend or (["sqlite", "postgresql"] if args.postgres else ["sqlite"])
    if "postgresql" in backends and not args.postgres:
        ap.error("--backend postgresql needs --postgres URL")

    from watcher.runtime import install_reactor

    install_reactor()
    for backend in backends:
        if backend == "sqlite":
            tmp = tempfile.mkdtemp(prefix="watcher-dbgrowth-")
            try:
                measure(f"sqlite:///{tmp}/growth.db", args.pages, args.cycles)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            continue
        url = ensure_pg(args.postgres)
        _reset_pg(url)
        try:
            measure(url, args.pages, args.cycles, vacuum_between=not args.no_vacuum)
        finally:
            _reset_pg(url)


if __name__ == "__main__":
    main()
