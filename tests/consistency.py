"""Invariants a database must keep whatever happens to the process or the server (crash and outage tests)."""

from __future__ import annotations

import itertools

from sqlalchemy import func, select

from tests.pageserver import PageServer
from tests.test_pipeline import page
from watcher.store.models import ChangeEventRow, Check, Fact, Snapshot

WINDOWS = ["late 2026", "early 2027", "mid 2027", "late 2027", "2028"]


def moving_pages(server: PageServer, count: int) -> str:
    """`count` pages whose release window moves at every fetch; returns their [[watch]] TOML, 1 s apart."""
    for i in range(count):
        counter = itertools.count()
        server.route(f"/p{i}", lambda _, c=counter: page(WINDOWS[next(c) % len(WINDOWS)]))
    return "\n".join(f'[[watch]]\nname = "p{i}"\nurl = "{server.url(f"/p{i}")}"\ninterval = "1s"\njitter = "0s"\n'
                     for i in range(count))


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
