"""Runs of quiet checks (issue 15): consecutive unchanged (or not_modified) checks of a watch with the same
HTTP status share one history row that counts them, kept on the watch row while it goes on (the open run) and
written to `checks` when another kind of check follows; everything that counts or lists checks counts the
repeats and sees the open run. Real databases, both backends."""

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
from watcher.store.bookkeeping import UnchangedCheck, check_runs, write_unchanged
from watcher.store.models import Check, Watch, utcnow


@pytest.fixture
def server():
    with PageServer() as s:
        yield s


def _rows(store, name: str = "p") -> list[tuple]:
    """The watch's history, oldest first: its rows in `checks`, then its open run."""
    with store.session() as s:
        watch_id = s.scalar(select(Watch.id).where(Watch.name == name))
        return [(c.outcome, c.http_status, c.repeats, c.at, c.last_at) for c in check_runs(s, watch_id)]


def _stored_rows(store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(Check))


def test_unchanged_rechecks_extend_one_row_and_a_change_starts_a_new_one(server, store, database_url):
    server.route("/p", page("early 2027"))
    config = make_config(server, database_url, [{"name": "p", "url": server.url("/p")}])
    cycle(store, config)  # baseline
    for _ in range(3):
        assert cycle(store, config).results[0].outcome == "unchanged"
    rows = _rows(store)
    assert [r[:3] for r in rows] == [("baseline", 200, 1), ("unchanged", 200, 3)]
    assert _stored_rows(store) == 1  # the run still going on is on the watch row
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
    assert _stored_rows(store) == 3  # the change wrote the first run to `checks`, before its own row
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
        rows = [(c.outcome, c.http_status, c.repeats, c.at, c.last_at, c.duration_ms) for c in check_runs(s, wid)]
    assert rows[1:] == [("unchanged", 200, 3, at[0], at[2], 12),
                        ("not_modified", 304, 2, at[3], at[4], 14),
                        ("unchanged", 203, 1, at[5], None, 15)]
    assert count(store, Check) == 3  # the last run goes on, on the watch row
    # A batch with one check of another kind than the open run: the run is closed, the check opens one.
    with store.session() as s:
        write_unchanged(s, [_check(wid, rev, at[6], "not_modified", 304, ms=16)])
    with store.session() as s:
        rows = [(c.id is None, c.outcome, c.repeats, c.at) for c in check_runs(s, wid)]
    assert rows[-2:] == [(False, "unchanged", 1, at[5]), (True, "not_modified", 1, at[6])]


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
        [run] = [(c.repeats, c.due) for c in check_runs(s, wid) if c.outcome == "unchanged"]
        assert run == (3, 3000)  # due times 1000, 2000, 3000: three checks stored
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
        rows = [(c.outcome, c.repeats, c.due) for c in check_runs(s)]
        assert rows == [("baseline", 1, 1000), ("unchanged", 3, 4000)]
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
        # An open run: 31 not_modified checks from 90 to 30 minutes ago, 2 a minute: 1 + 29/30 of it in the hour.
        third = Watch(name="y", url="http://example.invalid/y", kind="html", config={},
                      last_check_at=now - dt.timedelta(minutes=30), last_status="not_modified",
                      run_outcome="not_modified", run_http_status=304, run_at=now - dt.timedelta(minutes=90),
                      run_last_at=now - dt.timedelta(minutes=30), run_repeats=31)
        s.add(third)
    section = status_checks(None, store)
    assert section["last_day"] == {"baseline": 1, "unchanged": 121, "failed": 1, "not_modified": 31}
    assert section["last_hour"]["failed"] == 1 and 60 <= section["last_hour"]["unchanged"] <= 61
    assert 15 <= section["last_hour"]["not_modified"] <= 16
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
            # room on each page of watches for the next versions of all its rows at once; none on pages of checks,
            # whose rows are never updated by a check
            options = dict(c.execute(text("SELECT relname, reloptions FROM pg_class WHERE relname IN "
                                          "('checks', 'watches')")).all())
            assert options == {"checks": None, "watches": ["fillfactor=30"]}, options


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
        upgrade(engine, "0008")
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
        assert count(store, Check) == 0  # the watch's newest row was a quiet one: it is the open run (0010)
        with store.session() as s:
            assert [(c.outcome, c.repeats) for c in check_runs(s)] == [("unchanged", 1)]
    finally:
        store.close()


def test_migration_0010_makes_each_watchs_newest_quiet_row_its_open_run_and_back(database_url):
    import sqlalchemy as sa
    from alembic import command

    from watcher.store.db import alembic_config, normalise_url, upgrade

    t = utcnow() - dt.timedelta(hours=5)
    engine = sa.create_engine(normalise_url(database_url))
    try:
        upgrade(engine, "0009")
        with engine.begin() as c:
            for name in ("quiet", "failing"):
                c.execute(text("INSERT INTO watches (name, url, kind, config, enabled, created_at, "
                               "consecutive_failures, failure_reported, state_rev) VALUES (:n, 'http://e.invalid/', "
                               "'html', '{}', true, :at, 0, false, 0)"), {"n": name, "at": t})
            rows = [("quiet", "baseline", 200, 1, None), ("quiet", "unchanged", 200, 3, 2),
                    ("quiet", "changed", 200, 1, None), ("quiet", "not_modified", 304, 7, 4),
                    ("failing", "baseline", 200, 1, None), ("failing", "unchanged", 200, 2, 1),
                    ("failing", "failed", 500, 1, None)]
            for i, (name, outcome, status, repeats, span) in enumerate(rows):
                c.execute(text("INSERT INTO checks (watch_id, at, outcome, http_status, repeats, last_at) "
                               "SELECT id, :at, :o, :st, :r, :last FROM watches WHERE name = :n"),
                          {"n": name, "at": t + dt.timedelta(minutes=10 * i), "o": outcome, "st": status, "r": repeats,
                           "last": None if span is None else t + dt.timedelta(minutes=10 * i + span)})
        upgrade(engine)
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM checks")).scalar() == 6
            runs = dict(c.execute(text("SELECT name, run_repeats FROM watches")).all())
            assert runs == {"quiet": 7, "failing": 0}
        from watcher.store import Store

        store = Store.open(database_url, migrate=False)
        try:
            with store.session() as s:
                history = [(c.outcome, c.repeats, c.last_at) for c in check_runs(s)
                           if c.watch_id == s.scalar(select(Watch.id).where(Watch.name == "quiet"))]
                assert [h[:2] for h in history] == [("baseline", 1), ("unchanged", 3), ("changed", 1),
                                                    ("not_modified", 7)]
                assert history[-1][2] == t + dt.timedelta(minutes=34)
        finally:
            store.close()
        cfg = alembic_config(database_url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0009")
        with engine.connect() as c:
            assert c.execute(text("SELECT outcome, repeats FROM checks ORDER BY id DESC LIMIT 1")).one() == \
                ("not_modified", 7)
            assert c.execute(text("SELECT count(*) FROM checks")).scalar() == 7
        upgrade(engine)
    finally:
        engine.dispose()


def test_quiet_rechecks_add_no_row_and_update_the_watch_row_in_place(store):
    """What makes an unchanged re-check cost no bytes: it writes no `checks` row, only its watch's row, and on
    PostgreSQL that UPDATE is heap-only (no new index entries; the old version is reclaimed on its page)."""
    wids = [_watch(store, f"w{i}")[0] for i in range(20)]
    t0 = utcnow() - dt.timedelta(hours=1)
    for cycle_no in range(3):
        with store.session() as s:
            revs = dict(s.execute(select(Watch.id, Watch.state_rev)).all())
            before = _updates(s)
            write_unchanged(s, [_check(w, revs[w], t0 + dt.timedelta(minutes=cycle_no)) for w in wids])
            if before is not None:
                updated, hot = (a - b for a, b in zip(_updates(s), before, strict=True))
                assert updated == hot == len(wids)  # one heap-only UPDATE per watch, nothing else
        assert _stored_rows(store) == len(wids)  # the baselines only
    with store.session() as s:
        assert {(c.outcome, c.repeats) for c in check_runs(s) if c.id is None} == {("unchanged", 3)}


def _updates(s) -> tuple[int, int] | None:
    """PostgreSQL: (row updates, heap-only ones) of `watches` counted by this backend so far (the current
    transaction's included); None on SQLite."""
    if s.get_bind().dialect.name != "postgresql":
        return None
    return tuple(s.execute(text("SELECT pg_stat_get_xact_tuples_updated('watches'::regclass), "
                                "pg_stat_get_xact_tuples_hot_updated('watches'::regclass)")).one())
