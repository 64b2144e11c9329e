"""Re-checks at the speed of the wire, without losing anything: unchanged checks are decided from state kept
in memory and written in batches; another process writing the same watches makes that state stale, which
must never turn a change into "unchanged"; the processing pool survives a dead worker (both backends)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import event, func, select

from tests.consistency import assert_watch_rows_agree
from tests.pageserver import PageServer, Reply
from tests.test_pipeline import PAGE, count, cycle, make_config, page
from watcher.pipeline import Pipeline
from watcher.processing import Processor
from watcher.runtime import run_sync
from watcher.store.bookkeeping import check_runs
from watcher.store.models import ChangeEventRow, Check, Snapshot, Watch


@pytest.fixture
def server():
    with PageServer() as s:
        yield s


async def _with_pipeline(store, config, body, **kwargs):
    """Run `body(pipeline)` with a started pipeline of its own (as the daemon has), then close it."""
    from spiders.fetch import Fetcher

    fetcher = Fetcher(config.fetch)
    pipeline = Pipeline(store, config, fetcher, **kwargs)
    await fetcher.start()
    await pipeline.start()
    try:
        return await body(pipeline)
    finally:
        await fetcher.close()
        await pipeline.aclose()


def _statements(store):
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()).upper())

    event.listen(store.engine, "before_cursor_execute", before)
    return seen, lambda: event.remove(store.engine, "before_cursor_execute", before)


def test_unchanged_rechecks_are_one_batch_of_bulk_writes(server, store, database_url):
    watches = 30
    for i in range(watches):
        server.route(f"/p{i}", Reply(body=PAGE.format(window="early 2027", stamp="x").replace("Show", f"Show{i}")
                                     .encode(), headers={"Content-Type": "text/html"}))
    config = make_config(server, database_url, [{"name": f"p{i}", "url": server.url(f"/p{i}")} for i in range(watches)])
    cycle(store, config)  # baseline snapshots
    statements, stop = _statements(store)
    # The batch timer never fires here: only the end of the cycle (nothing else under way) writes the batch.
    report, batches = run_sync(lambda: _with_pipeline(
        store, config, lambda p: _cycle_and_batches(p), batch_seconds=3600))
    stop()
    assert [r.outcome for r in report.results] == ["unchanged"] * watches
    assert batches == 1
    writes = [s for s in statements if s.startswith(("INSERT", "UPDATE", "DELETE"))]
    # One bulk UPDATE of the watch rows, which starts each watch's open run of quiet checks: no check row, no
    # statement per watch.
    assert [w.split()[:2] for w in writes] == [["UPDATE", "WATCHES"]], writes
    assert count(store, Check) == watches and count(store, Snapshot) == watches
    with store.session() as s:
        assert len(check_runs(s)) == 2 * watches
        assert_watch_rows_agree(s)

    # Another unchanged cycle: the same one UPDATE extends each open run; nothing reads `checks`.
    statements, stop = _statements(store)
    report, batches = run_sync(lambda: _with_pipeline(
        store, config, lambda p: _cycle_and_batches(p), batch_seconds=3600))
    stop()
    assert [r.outcome for r in report.results] == ["unchanged"] * watches and batches == 1
    writes = [s for s in statements if s.startswith(("INSERT", "UPDATE", "DELETE"))]
    assert [w.split()[:2] for w in writes] == [["UPDATE", "WATCHES"]], writes
    assert not [s for s in statements if "FROM CHECKS" in s], statements
    assert count(store, Check) == watches
    with store.session() as s:
        assert sum(c.repeats for c in check_runs(s)) == 3 * watches
        assert_watch_rows_agree(s)


async def _cycle_and_batches(pipeline):
    report = await pipeline.cycle()
    await pipeline.batch.aclose()
    return report, pipeline.batch.batches


def test_unchanged_checks_waiting_in_a_batch_are_written_at_shutdown(server, store, database_url):
    server.route("/quick", page("early 2027"))
    server.route("/slow", page("late 2027"))
    config = make_config(server, database_url, [{"name": "quick", "url": server.url("/quick")},
                                                {"name": "slow", "url": server.url("/slow")}])
    cycle(store, config)
    server.route("/slow", Reply(body=b"", delay=30))  # keeps a check under way: no "idle" write

    async def body(pipeline):
        slow = asyncio.ensure_future(pipeline.check("slow"))
        quick = asyncio.ensure_future(pipeline.check("quick"))
        deadline = time.monotonic() + 60
        while len(pipeline.batch) == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert len(pipeline.batch) == 1  # quick's unchanged check waits in the batch
        for t in (slow, quick):  # shutdown abandons the checks under way ...
            t.cancel()
        await asyncio.gather(slow, quick, return_exceptions=True)
        # ... and _with_pipeline's aclose writes the batch.

    run_sync(lambda: _with_pipeline(store, config, body, batch_seconds=3600))
    with store.session() as s:
        names = dict(s.execute(select(Watch.id, Watch.name)).all())
        outcomes = [(names[c.watch_id], c.outcome) for c in check_runs(s)]
    assert sorted(outcomes) == [("quick", "baseline"), ("quick", "unchanged"), ("slow", "baseline")]


@pytest.mark.parametrize("validators", ["body-hash", "etag"])
@pytest.mark.parametrize("shared", [False, True], ids=["daemon", "worker"])
def test_a_change_stored_by_another_process_is_never_taken_for_unchanged(server, store, database_url, tmp_path,
                                                                          validators, shared):
    """A-B-A: this process saw version A; another process (`watcher check` run by hand, another worker)
    stored version B; the page is back to A, byte for byte. This process's memory says "A, unchanged": it
    must find out that the latest snapshot is B and record the change back to A."""
    version = {"window": "late 2026", "etag": '"a"'}

    def reply(_):
        r = page(version["window"])
        if validators == "etag":
            r.headers["ETag"] = version["etag"]
        return r

    server.route("/show", reply)
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(f'[watcher]\ndatabase_url = "{database_url}"\n[fetch]\nautothrottle = false\nretries = 0\n'
                   f'allow_private = ["{server.allow}"]\n'
                   f'[[watch]]\nname = "show"\nurl = "{server.url("/show")}"\ninterval = "1h"\n')
    from watcher.config import load_config

    config = load_config(cfg)
    store.sync_watches(config.watch)

    async def body(pipeline):
        first = await pipeline.check("show")
        version.update(window="early 2027", etag='"b"')
        other = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "watcher", "-c", str(cfg), "check"],
                                        capture_output=True, text=True, timeout=300)
        assert other.returncode == 0, other.stderr
        version.update(window="late 2026", etag='"a"')
        hits = server.hits["/show"]
        third = await pipeline.check("show")
        return first, third, server.hits["/show"] - hits

    first, third, fetches = run_sync(lambda: _with_pipeline(store, config, body, shared=shared))
    assert first.outcome == "baseline"
    assert third.outcome == "changed", third
    if shared:  # a worker checks the revision before it fetches: one fetch, judged against the right state
        assert fetches == 1
    with store.session() as s:
        windows = [f["facts"]["release"]["text"] for f in s.scalars(select(Snapshot.facts).order_by(Snapshot.id))]
        moved = s.execute(select(ChangeEventRow.old, ChangeEventRow.new)
                          .where(ChangeEventRow.type == "release_changed").order_by(ChangeEventRow.id)).all()
    assert windows == ["late 2026", "early 2027", "late 2026"]
    assert [(o["text"], n["text"]) for o, n in moved] == [("late 2026", "early 2027"), ("early 2027", "late 2026")]


def test_processing_workers_killed_under_a_running_pipeline_are_replaced(server, store, database_url):
    for i in range(4):
        server.route(f"/p{i}", Reply(body=PAGE.format(window="early 2027", stamp="x").replace("Show", f"Show{i}")
                                     .encode(), headers={"Content-Type": "text/html"}))
    config = make_config(server, database_url, [{"name": f"p{i}", "url": server.url(f"/p{i}")} for i in range(4)])
    store.sync_watches(config.watch)
    processor = Processor(2)
    killed: set[int] = set()

    async def kill_workers_then_check(pipeline):
        deadline = time.monotonic() + 60
        while len(processor.pids()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        killed.update(processor.pids())
        for pid in killed:  # the workers die (OOM killer, a parser crash) under a running pipeline
            os.kill(pid, signal.SIGKILL)
        return await pipeline.cycle()

    try:
        report = run_sync(lambda: _with_pipeline(store, config, kill_workers_then_check, processor=processor))
        # The jobs of the dead pool were given to a new one: every page processed, nothing failed.
        assert [r.outcome for r in report.results] == ["baseline"] * 4, report.results
        assert len(killed) == 2 and processor.pids() and not killed & set(processor.pids())
    finally:
        processor.close()
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Snapshot)) == 4


def test_held_events_are_tracked_in_memory_and_looked_for_only_when_there_can_be_some(server, store, database_url):
    """A long-lived pipeline knows from its watch state whether a watch has held (pending, flapping) events: a
    change of a watch without any does not look for them, and one that holds its event back is known to."""
    pages = {"plain": ["early 2027"], "careful": ["early 2027"]}
    for name, window in pages.items():
        server.route(f"/{name}", lambda _h, w=window: page(w[0]))
    config = make_config(server, database_url, [
        {"name": "plain", "url": server.url("/plain")},
        {"name": "careful", "url": server.url("/careful"), "confirm": 2}])
    cycle(store, config)  # baselines

    def held_lookups(statements):
        return [s for s in statements if s.startswith("SELECT") and "FROM CHANGE_EVENTS" in s and "STATE" in s]

    async def body(pipeline):
        plain = []
        for window in ("late 2027", "early 2028", "late 2028", "early 2028", "late 2029"):
            pages["plain"][0] = window
            statements, stop = _statements(store)
            result = await pipeline.check("plain")
            stop()
            plain.append((result.outcome, result.events, len(held_lookups(statements))))
        careful = []
        for window in ("late 2027", "early 2028", "late 2028"):
            pages["careful"][0] = window
            careful.append((await pipeline.check("careful")).outcome)
        return plain, careful

    plain, careful = run_sync(lambda: _with_pipeline(store, config, body))
    # Three new values: alerted at once, no look-up. Back to early 2028: held as flapping (the pipeline's state
    # now says so). The next change must settle that held event, so it looks for it.
    assert [(outcome, events) for outcome, events, _ in plain] == [("changed", 1)] * 3 + [("changed", 0),
                                                                                     ("changed", 1)]
    assert [lookups for *_, lookups in plain][:4] == [0, 0, 0, 0] and plain[4][2] > 0, plain
    assert careful == ["changed"] * 3
    with store.session() as s:
        states = s.scalars(select(ChangeEventRow.state).join(Watch).where(Watch.name == "careful")
                           .order_by(ChangeEventRow.id)).all()
    # confirm = 2: each change waits for a second sighting; the next change drops the one before it (known
    # to be pending from the state the previous check left).
    assert states == ["dropped", "dropped", "pending"], states


def test_processing_workers_run_below_the_checking_process_priority():
    """The checking process (fetching, timers, the database) goes first when both want the cores."""
    from watcher.processing import WORKER_NICENESS

    processor = Processor(2)
    try:
        processor.start()
        own = os.getpriority(os.PRIO_PROCESS, 0)

        def priorities() -> list[int]:
            return [os.getpriority(os.PRIO_PROCESS, pid) for pid in processor.pids()]

        deadline = time.monotonic() + 60  # each worker sets its own as it starts (after its imports)
        while priorities() != [own + WORKER_NICENESS] * 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert priorities() == [own + WORKER_NICENESS] * 2
    finally:
        processor.close()
