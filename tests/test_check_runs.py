"""Runs of quiet checks (issue 15): consecutive unchanged (or not_modified) checks of a watch with the same
HTTP status share one `checks` row that counts them; everything that counts or lists checks counts the
repeats. Real databases, both backends."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text

from tests.consistency import assert_watch_rows_agree
from tests.pageserver import PageServer, Reply
from tests.test_pipeline import count, cycle, make_config, page
from watcher.config import Config
from watcher.pipeline import Pipeline
from watcher.review import run_label, status_checks, watch_history
from watcher.runtime import run_sync
from watcher.store.bookkeeping import UnchangedCheck, write_unchanged
from watcher.store.models import Check, Watch, utcnow


@pytest.fixture
def server():
    with PageServer() as s:
        yield s


def _rows(store, name: str = "p") -> list[tuple]:
    with store.session() as s:
        return [(c.outcome, c.http_status, c.repeats, c.at, c.last_at) for c in s.scalars(
            select(Check).join(Watch, Watch.id == Check.watch_id).where(Watch.name == name).order_by(Check.id))]


def test_unchanged_rechecks_extend_one_row_and_a_change_starts_a_new_one(server, store, database_url):
    server.route("/p", page("early 2027"))
    config = make_config(server, database_url, [{"name": "p", "url": server.url("/p")}])
    cycle(store, config)  # baseline
    for _ in range(3):
        assert cycle(store, config).results[0].outcome == "unchanged"
    rows = _rows(store)
    assert [r[:3] for r in rows] == [("baseline", 200, 1), ("unchanged", 200, 3)]
    first, latest = rows[1][3], rows[1][4]
    assert latest > first  # `at` is the first of the run, `last_at` the latest
    with store.session() as s:
        w = s.scalar(select(Watch).where(Watch.name == "p"))
        assert w.last_check_at == latest and w.last_status == "unchanged"
        assert_watch_rows_agree(s)

    server.route("/p", page("late 2027"))
    assert cycle(store, config).results[0].outcome == "changed"
    server.route("/p", page("late 2027"))
    for _ in range(2):
        cycle(store, config)
    rows = _rows(store)
    assert [r[:3] for r in rows] == [("baseline", 200, 1), ("unchanged", 200, 3), ("changed", 200, 1),
                                     ("unchanged", 200, 2)]
    assert rows[1][3] < rows[1][4] <= rows[2][3] <= rows[3][3] < rows[3][4]  # runs do not overlap
    with store.session() as s:
        history = watch_history(s, "p")
        assert history["counts"] == {"baseline": 1, "unchanged": 5, "changed": 1}
        newest = history["checks"][0]
        assert (newest["outcome"], newest["repeats"]) == ("unchanged", 2)
        assert newest["label"].startswith("unchanged ×2 (last ") and newest["last_at"] > newest["at"]
        assert history["checks"][1]["label"] == "changed"
        assert_watch_rows_agree(s)


def test_failures_not_modified_and_another_status_each_start_a_run(server, store, database_url):
    """Only the same quiet outcome with the same HTTP status extends a row: a 304 after 200s starts a run of
    its own, a failure is a row of its own, and the unchanged check after a failure starts a new run."""
    def tagged(etag: str) -> Reply:  # the page server answers a matching If-None-Match with 304
        return Reply(body=page("early 2027").body, headers={"Content-Type": "text/html", "ETag": etag})

    server.route("/p", tagged('"v1"'))
    config = make_config(server, database_url, [{"name": "p", "url": server.url("/p")}])
    cycle(store, config)
    cycle(store, config)
    cycle(store, config)
    server.route("/p", Reply(status=500, body=b"down"))
    cycle(store, config)
    cycle(store, config)
    server.route("/p", tagged('"v2"'))  # a new ETag, same content: 200 and unchanged
    cycle(store, config)
    cycle(store, config)  # 304 again
    assert [r[:3] for r in _rows(store)] == [
        ("baseline", 200, 1), ("not_modified", 304, 2), ("failed", 500, 1), ("failed", 500, 1),
        ("unchanged", 200, 1), ("not_modified", 304, 1)]


def _check(watch_id: int, rev: int, at: dt.datetime, outcome: str = "unchanged", status: int = 200,
           due: int | None = None, ms: int = 10) -> UnchangedCheck:
    return UnchangedCheck(watch_id, rev, at, outcome, status, ms, None, None, "h", due=due)


def _watch(store, name: str = "w") -> tuple[int, int]:
    with store.session() as s:
        w = Watch(name=name, url="http://example.invalid/", kind="html", config={})
        s.add(w)
        s.flush()
        s.add(Check(watch_id=w.id, at=utcnow() - dt.timedelta(hours=3), outcome="baseline", http_status=200))
        return w.id, w.state_rev


def test_a_batch_folds_checks_of_one_watch_into_runs(store):
    """Several checks of one watch in one batch (a short interval): consecutive alike ones become one run;
    the first run extends the watch's newest row when that is a run of the same kind."""
    wid, rev = _watch(store)
    t0 = utcnow() - dt.timedelta(hours=2)
    at = [t0 + dt.timedelta(minutes=i) for i in range(8)]
    with store.session() as s:
        write_unchanged(s, [_check(wid, rev, at[0]), _check(wid, rev, at[1], ms=11)])
    with store.session() as s:
        write_unchanged(s, [_check(wid, rev, at[2], ms=12), _check(wid, rev, at[3], "not_modified", 304),
                            _check(wid, rev, at[4], "not_modified", 304, ms=14),
                            _check(wid, rev, at[5], status=203, ms=15)])
    with store.session() as s:
        rows = s.execute(select(Check.outcome, Check.http_status, Check.repeats, Check.at, Check.last_at,
                                Check.duration_ms).order_by(Check.id)).all()
    assert [tuple(r) for r in rows[1:]] == [("unchanged", 200, 3, at[0], at[2], 12),
                                            ("not_modified", 304, 2, at[3], at[4], 14),
                                            ("unchanged", 203, 1, at[5], None, 15)]


def test_due_times_of_a_run_are_stored_once(store):
    """Scale-out: a run keeps the newest due time served; the watch row's `due_done` decides, as before, that
    a due time is stored at most once, however many workers served it."""
    wid, rev = _watch(store)
    t0 = utcnow() - dt.timedelta(hours=1)
    for i, due in enumerate([1000, 2000, 2000, 1500, 3000]):
        with store.session() as s:
            stale, done = write_unchanged(s, [_check(wid, rev, t0 + dt.timedelta(seconds=i), due=due)])
            assert stale == []
            assert len(done) == (1 if due in (2000, 1500) and i in (2, 3) else 0)
    with store.session() as s:
        run = s.execute(select(Check.repeats, Check.due).where(Check.outcome == "unchanged")).one()
        assert tuple(run) == (3, 3000)  # due times 1000, 2000, 3000: three checks stored
        assert s.scalar(select(Watch.due_done)) == 3000


def test_two_workers_serving_the_same_due_times_store_each_once(server, store, database_url):
    """Two pipelines (two workers) check an unchanged page for the same due times: each due time is stored
    once (the other's check is skipped as already done) and the run counts each once."""
    server.route("/p", page("early 2027"))
    config = Config.model_validate({
        "watcher": {"database_url": database_url},
        "fetch": {"autothrottle": False, "retries": 0, "timeout": "30s", "allow_private": [server.allow]},
        "watch": [{"name": "p", "url": server.url("/p"), "interval": "1h"}]})
    store.sync_watches(config.watch)

    async def go():
        from spiders.fetch import Fetcher

        fetchers = [Fetcher(config.fetch), Fetcher(config.fetch)]
        for f in fetchers:
            await f.start()
        one, two = (Pipeline(store, config, f, shared=True) for f in fetchers)
        try:
            results = [await one.check("p", due=1000)]
            for due in (2000, 3000, 4000):
                results += [await one.check("p", due=due), await two.check("p", due=due)]
            return results
        finally:
            await one.aclose()
            await two.aclose()
            for f in fetchers:
                await f.close()

    results = run_sync(go)
    outcomes = [(r.outcome, r.reason) for r in results]
    assert outcomes[0] == ("baseline", None)
    assert outcomes[1:] == [("unchanged", None), ("skipped", "already-done")] * 3
    with store.session() as s:
        rows = s.execute(select(Check.outcome, Check.repeats, Check.due).order_by(Check.id)).all()
        assert [tuple(r) for r in rows] == [("baseline", 1, 1000), ("unchanged", 3, 4000)]
        assert s.scalar(select(Watch.due_done)) == 4000


def test_status_counts_the_checks_of_runs_in_each_window(store):
    """`watcher status`: a run counts as its checks, and one reaching into a window from before counts only
    its checks inside (spread evenly between its first and latest)."""
    wid, _ = _watch(store)  # a baseline 3 h ago
    now = utcnow()
    with store.session() as s:
        # 61 checks a minute apart from 2 h ago to 1 h ago... then 60 more up to now: 121 in all, 60 or 61 in
        # the last hour.
        s.add(Check(watch_id=wid, at=now - dt.timedelta(minutes=120), last_at=now - dt.timedelta(seconds=30),
                    outcome="unchanged", http_status=200, repeats=121))
        other = Watch(name="x", url="http://example.invalid/x", kind="html", config={}, last_check_at=now,
                      last_status="failed")
        s.add(other)
        s.flush()
        s.add(Check(watch_id=other.id, at=now - dt.timedelta(minutes=5), outcome="failed", http_status=500))
    section = status_checks(None, store)
    assert section["last_day"] == {"baseline": 1, "unchanged": 121, "failed": 1}
    assert section["last_hour"]["failed"] == 1 and 60 <= section["last_hour"]["unchanged"] <= 61
    assert section["last_check"]["watch"] == "x" and section["last_check"]["outcome"] == "failed"


def test_prune_checks_counts_repeats_and_keeps_a_run_still_going(store):
    wid, _ = _watch(store)  # baseline 3 h ago, no snapshot: prunable
    now = utcnow()
    with store.session() as s:
        s.add(Check(watch_id=wid, at=now - dt.timedelta(hours=2, minutes=50),
                    last_at=now - dt.timedelta(hours=2, minutes=10), outcome="unchanged", http_status=200, repeats=40))
        s.add(Check(watch_id=wid, at=now - dt.timedelta(hours=2), outcome="failed", http_status=500))
        s.add(Check(watch_id=wid, at=now - dt.timedelta(hours=1, minutes=55),
                    last_at=now - dt.timedelta(minutes=1), outcome="unchanged", http_status=200, repeats=114))
    assert store.prune_checks(dt.timedelta(hours=1)) == 1 + 40 + 1
    with store.session() as s:
        assert s.execute(select(Check.outcome, Check.repeats)).all() == [("unchanged", 114)]


def test_run_label():
    at = dt.datetime(2026, 12, 4, 9, 0, tzinfo=dt.UTC)
    assert run_label("changed", 1, at, at) == "changed"
    assert run_label("unchanged", 12, at, at.replace(hour=14, minute=5)) == "unchanged ×12 (last 14:05)"
    assert run_label("unchanged", 288, at, at + dt.timedelta(days=1)) == "unchanged ×288 (last 2026-12-05 09:00)"


def test_quiet_rows_have_no_snapshot_index_entry_and_lookups_by_snapshot_use_it(store):
    """The snapshot_id index is partial (only checks that stored a snapshot), and what looks checks up by
    snapshot (retention's unlinking, the foreign key's ON DELETE SET NULL) can still use it."""
    with store.engine.connect() as c:
        if store.dialect == "sqlite":
            sql = c.execute(text("SELECT sql FROM sqlite_master WHERE name = 'ix_checks_snapshot_id'")).scalar()
            assert "WHERE snapshot_id IS NOT NULL" in sql
            plans = [c.execute(text(f"EXPLAIN QUERY PLAN UPDATE checks SET snapshot_id = NULL WHERE snapshot_id {w}"))
                     .all() for w in ("= 5", "IN (5, 6)")]
            assert all("ix_checks_snapshot_id" in str(p) for p in plans), plans
        else:
            sql = c.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_checks_snapshot_id'")).scalar()
            assert "WHERE (snapshot_id IS NOT NULL)" in sql
            c.execute(text("SET enable_seqscan = off"))  # an empty table: ask whether the index can serve
            plans = [c.execute(text(f"EXPLAIN UPDATE checks SET snapshot_id = NULL WHERE snapshot_id {w}")).all()
                     for w in ("= 5", "= ANY(ARRAY[5, 6])")]
            assert all("ix_checks_snapshot_id" in str(p) for p in plans), plans
            # room on each page for the rows' next versions: a run's row; every row of a page of watches at once
            for table, fillfactor in (("checks", 90), ("watches", 30)):
                options = c.execute(text("SELECT reloptions FROM pg_class WHERE relname = :t"), {"t": table}).scalar()
                assert f"fillfactor={fillfactor}" in options, table


def test_migration_0008_keeps_earlier_checks_as_runs_of_one(database_url):
    """Upgrade from 0007 with history in place: every earlier row stands for one check."""
    import sqlalchemy as sa

    from watcher.store.db import normalise_url, upgrade

    engine = sa.create_engine(normalise_url(database_url))
    try:
        upgrade(engine, "0007")
        with engine.begin() as c:
            c.execute(text("INSERT INTO watches (name, url, kind, config, enabled, created_at, consecutive_failures, "
                           "failure_reported, state_rev) VALUES ('w', 'http://e.invalid/', 'html', '{}', true, "
                           ":at, 0, false, 0)"), {"at": utcnow()})
            c.execute(text("INSERT INTO checks (watch_id, at, outcome, http_status) "
                           "SELECT id, :at, 'unchanged', 200 FROM watches"), {"at": utcnow()})
        upgrade(engine)
        with engine.connect() as c:
            assert c.execute(text("SELECT repeats, last_at FROM checks")).all() == [(1, None)]
        # And back, and up again.
        from alembic import command

        from watcher.store.db import alembic_config

        cfg = alembic_config(database_url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0007")
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM checks")).scalar() == 1
        upgrade(engine)
    finally:
        engine.dispose()
    from watcher.store import Store

    store = Store.open(database_url)
    try:
        assert count(store, Check) == 1
        with store.session() as s:
            assert s.scalar(select(func.sum(Check.repeats))) == 1
    finally:
        store.close()
