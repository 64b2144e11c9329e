"""Invariants a database must keep whatever happens to the process or the server (crash and outage tests)."""

from __future__ import annotations

import itertools

from sqlalchemy import func, select

from tests.pageserver import PageServer, Reply
from tests.test_pipeline import PAGE, page
from watcher.store.bookkeeping import check_runs
from watcher.store.models import ChangeEventRow, Check, Fact, Snapshot, Watch

WINDOWS = ["late 2026", "early 2027", "mid 2027", "late 2027", "2028"]


def moving_pages(server: PageServer, count: int) -> str:
    """`count` pages whose release window moves at every fetch; returns their [[watch]] TOML, 1 s apart."""
    for i in range(count):
        counter = itertools.count()
        server.route(f"/p{i}", lambda _, c=counter: page(WINDOWS[next(c) % len(WINDOWS)]))
    return "\n".join(f'[[watch]]\nname = "p{i}"\nurl = "{server.url(f"/p{i}")}"\ninterval = "1s"\njitter = "0s"\n'
                     for i in range(count))


def static_pages(server: PageServer, count: int, prefix: str = "s") -> str:
    """`count` pages that never change (their re-checks are batched bookkeeping); their [[watch]] TOML."""
    for i in range(count):
        body = PAGE.format(window=WINDOWS[i % len(WINDOWS)], stamp="today").replace("Show", f"Quiet{i}")
        server.route(f"/{prefix}{i}", Reply(body=body.encode(), headers={"Content-Type": "text/html"}))
    return "\n".join(f'[[watch]]\nname = "{prefix}{i}"\nurl = "{server.url(f"/{prefix}{i}")}"\ninterval = "1s"\n'
                     f'jitter = "0s"\n' for i in range(count))


def assert_watch_rows_agree(s) -> None:
    """A watch row and its newest check are written in the same transaction (one check's, or a batch's of
    unchanged checks): after any crash the row's last check time and status are those of its newest check
    (its open run when it has one, else its newest row in `checks`)."""
    rows = [(c.watch_id, c.latest_at, c.outcome) for c in check_runs(s)]
    newest = {watch_id: (at, outcome) for watch_id, at, outcome in rows}  # time order: the last one wins
    assert newest, "no checks at all"
    watches = s.execute(select(Watch.id, Watch.name, Watch.last_check_at, Watch.last_status)
                        .where(Watch.id.in_(list(newest)))).all()
    disagree = [w for w in watches if (w.last_check_at, w.last_status) != newest[w.id]]
    assert not disagree, f"watch rows that disagree with their newest check: {disagree[:5]} vs {newest}"[:2000]


def checks_per_watch(store) -> dict[str, int]:
    """How many checks each watch has had, by name (runs of quiet checks count their repeats, the open ones
    included)."""
    with store.session() as s:
        names = dict(s.execute(select(Watch.id, Watch.name)).all())
        out: dict[str, int] = {}
        for c in check_runs(s):
            out[names[c.watch_id]] = out.get(names[c.watch_id], 0) + c.repeats
        return out


def assert_consistent(s) -> None:
    """A snapshot is written with its check, its facts and its events in one transaction: never half;
    an event is stored once."""
    without_check = s.scalar(select(func.count()).select_from(Snapshot).where(
        ~select(Check.id).where(Check.snapshot_id == Snapshot.id).exists()))
    assert without_check == 0, f"{without_check} snapshots without their check"
    without_facts = s.scalar(select(func.count()).select_from(Snapshot).where(
        ~select(Fact.id).where(Fact.snapshot_id == Snapshot.id).exists()))
    assert without_facts == 0, f"{without_facts} snapshots without facts"
    events = s.scalar(select(func.count()).select_from(ChangeEventRow))
    assert events == s.scalar(select(func.count(func.distinct(ChangeEventRow.uid))))
