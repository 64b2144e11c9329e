"""Retention (watcher/retention.py) on both backends: what events, alerts and the latest state need stays, the
rest goes with its facts, and the space is reported (and given back on SQLite)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from tests.pageserver import PageServer, Reply
from tests.test_pipeline import cycle
from watcher.cli import cli
from watcher.config import Config, ConfigError, parse_config
from watcher.retention import prune_snapshots, retention_loop
from watcher.review import snapshot_detail
from watcher.store.models import AlertRow, ChangeEventRow, Check, Fact, Snapshot

PAGE = """<html><head><title>Show Season 2 release date</title>
<meta property="article:published_time" content="2026-03-01"></head><body>
<article><h1>Show Season 2 release date</h1>
<p>Show Season 2 is expected to premiere in {window} on Netflix, according to the streamer.</p>
<p>Filming began on 3 March 2025 and the season is now in post-production.</p>
{extra}</article></body></html>"""

WORDS = ("river stone lamp orange quiet window garden yellow paper winter basket ladder copper "
         "meadow thunder pencil harbor candle mirror velvet").split()


class Site:
    def __init__(self) -> None:
        self.window, self.version = "late 2026", 0

    def __call__(self, _request: object) -> Reply:
        # A long paragraph of words that compress poorly, different in every version: each snapshot weighs
        # some kilobytes, so removing a few shows in the database's size.
        rng = random.Random(self.version)
        extra = "".join(f"<p>{' '.join(rng.choice(WORDS) for _ in range(60))}.</p>" for _ in range(40))
        body = PAGE.format(window=self.window, extra=extra)
        return Reply(body=body.encode(), headers={"Content-Type": "text/html; charset=utf-8"})


@pytest.fixture
def server():
    with PageServer() as s:
        yield s


def make_config(server: PageServer, database_url: str, **retention) -> Config:
    return Config.model_validate({
        "watcher": {"database_url": database_url},
        "fetch": {"autothrottle": False, "retries": 0, "timeout": "5s", "allow_private": [server.allow]},
        "retention": retention,
        "watch": [{"name": "show", "url": server.url("/show"), "kind": "html", "interval": "1h",
                   "topic": {"work": "Show", "season": 2}}],
        "subscriber": [{"name": "ops", "webhook": "http://127.0.0.1:9/hook"}],
    })


def snapshot_ids(store) -> list[int]:
    with store.session() as s:
        return list(s.scalars(select(Snapshot.id).order_by(Snapshot.id)))


def test_retention_keeps_what_events_need_and_frees_space(server, store, database_url):
    site = Site()
    server.route("/show", site)
    config = make_config(server, database_url, keep_snapshots=2, max_age="0")
    assert cycle(store, config).results[0].outcome == "baseline"  # snapshot 1: no event
    site.window = "early 2027"
    site.version = 1
    cycle(store, config)  # snapshot 2: release_changed
    for version in range(2, 8):  # snapshots 3..8: text changes only
        site.version = version
        cycle(store, config)
    ids = snapshot_ids(store)
    assert len(ids) == 8
    with store.session() as s:
        by_snapshot = {sid: (t, eid) for eid, sid, t in s.execute(
            select(ChangeEventRow.id, ChangeEventRow.snapshot_id, ChangeEventRow.type))}
        assert by_snapshot[ids[1]][0] == "release_changed"
        assert all(by_snapshot[i][0] == "text_changed" for i in ids[2:])
        # Every alert delivered but the one of snapshot 4's text change, still waiting in the outbox.
        waiting = by_snapshot[ids[3]][1]
        s.execute(update(AlertRow).where(AlertRow.event_id != waiting).values(status="sent"))
        facts_before = s.scalar(select(func.count()).select_from(Fact))
        events_before = s.scalar(select(func.count()).select_from(ChangeEventRow))

    report = prune_snapshots(store, config)

    # Kept: the fact event's snapshot, the one an undelivered alert needs, the latest two (latest state and
    # the one its diff is shown against). Gone: the baseline and the settled text changes.
    kept = [ids[1], ids[3], ids[6], ids[7]]
    assert snapshot_ids(store) == kept
    assert report.snapshots == 4 and report.watches == 1
    assert report.kept_needed == 2  # past keep_snapshots=2 but needed: snapshot 2 and snapshot 4
    assert report.bytes > 4 * 2_000, report
    assert report.checks_unlinked == 4 and report.events_unlinked == 3
    with store.session() as s:
        # Facts of removed snapshots went with them; events stayed, their text diffs with them.
        assert s.scalar(select(func.count()).select_from(Fact).where(Fact.snapshot_id.not_in(kept))) == 0
        assert report.facts == facts_before - s.scalar(select(func.count()).select_from(Fact)) > 0
        assert s.scalar(select(func.count()).select_from(ChangeEventRow)) == events_before
        orphans = list(s.scalars(select(ChangeEventRow).where(ChangeEventRow.snapshot_id.is_(None))))
        assert len(orphans) == 3 and all(e.type == "text_changed" and e.new["diff"] for e in orphans)
        assert s.scalar(select(func.count()).select_from(Check).where(Check.snapshot_id.is_not(None))) == 4
        detail = snapshot_detail(s, ids[1])  # the fact change is still reviewable with its page
        assert [e["type"] for e in detail.events] == ["release_changed"]
    if store.dialect == "sqlite":
        # A new SQLite file is in incremental auto-vacuum mode: the pages came back to the file system.
        before, after = report.database["before"], report.database["after"]
        assert report.database.get("returned") is True
        assert after["bytes"] < before["bytes"] and after["free_bytes"] == 0, report.database
    else:
        assert report.database["after"]["bytes"] > 0

    # The next check still compares against the latest state: a fact change is one event, as before.
    site.window = "summer 2027"
    site.version = 7  # same filler as snapshot 8: only the fact moved
    result = cycle(store, config).results[0]
    assert result.outcome == "changed" and result.events == 1
    assert prune_snapshots(store, config).snapshots == 1  # snapshot 7 left the latest two; nothing needs it


def test_age_and_per_watch_limits_and_the_cli(tmp_path, database_url, store):
    """max_age removes old snapshots, a watch's own retention overrides the global one, `--dry-run` removes
    nothing, and `watcher db prune --json` reports what went."""
    path = tmp_path / "watcher.toml"
    path.write_text(f"""
[watcher]
database_url = "{database_url}"

[retention]
keep_snapshots = 100
max_age = "30d"

[[watch]]
name = "a"
url = "https://example.org/a"
interval = "1h"

[[watch]]
name = "b"
url = "https://example.org/b"
interval = "1h"
retention = {{ max_age = "1000d" }}
""")
    config = parse_config(path.read_text(), path)
    assert config.retention_for("b").max_age == dt.timedelta(days=1000)
    assert config.retention_for("b").keep_snapshots == 100
    ids = store.sync_watches(config.watch)
    now = dt.datetime.now(dt.UTC)
    with store.session() as s:
        for name in ("a", "b"):
            for days in (400, 300, 200, 100, 1):
                s.add(Snapshot(watch_id=ids[name], content_hash=f"{days}", url="u", content_z=b"x" * 1000,
                               fetched_at=now - dt.timedelta(days=days)))

    runner = CliRunner()
    dry = runner.invoke(cli, ["-c", str(path), "db", "prune", "--dry-run", "--json"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["snapshots"] == 3 and len(snapshot_ids(store)) == 10
    text = runner.invoke(cli, ["-c", str(path), "db", "prune", "--dry-run"], catch_exceptions=False).output
    assert "keep the 100 newest snapshots of the last 30d per watch (1 watches have their own)" in text
    assert "would have removed 3 snapshots of 1 watches" in " ".join(text.split())

    done = runner.invoke(cli, ["-c", str(path), "db", "prune", "--json", "--checks-older-than", "90d"],
                         catch_exceptions=False)
    data = json.loads(done.output)
    # Watch a keeps its newest (latest state) and the one before it, the 100-day-old one; b keeps all.
    assert data["snapshots"] == 3 and data["bytes"] >= 3000 and data["checks_deleted"] == 0
    with store.session() as s:
        left = s.execute(select(Snapshot.watch_id, func.count()).group_by(Snapshot.watch_id)).all()
    assert dict(left) == {ids["a"]: 2, ids["b"]: 5}

    vacuumed = runner.invoke(cli, ["-c", str(path), "db", "prune", "--vacuum"], catch_exceptions=False)
    assert vacuumed.exit_code == 0 and "after vacuum" in vacuumed.output


@pytest.mark.parametrize(("retention", "message"), [
    ({"keep_snapshots": -1}, r"retention\.keep_snapshots: Input should be greater than or equal to 0"),
    ({"max_age": "a year"}, r"retention\.max_age: 'a year' is not a duration"),
    ({"keep_snapshot": 3}, r"retention\.keep_snapshot: unknown key 'keep_snapshot'; did you mean 'keep_snapshots'"),
])
def test_retention_config_is_validated(tmp_path, retention, message):
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in retention.items())
    with pytest.raises(ConfigError, match=r"w\.toml: " + message):
        parse_config(f"[retention]\n{lines}\n", tmp_path / "w.toml")
    with pytest.raises(ConfigError, match=r"watch\[0\] \(a\)\." + message):
        parse_config(f'[[watch]]\nname = "a"\nurl = "https://e.org"\ninterval = "1h"\n'
                     f"retention = {{ {', '.join(f'{k} = {json.dumps(v)}' for k, v in retention.items())} }}\n",
                     tmp_path / "w.toml")


def test_the_daemon_applies_retention_daily(store, caplog):
    config = Config.model_validate({"retention": {"keep_snapshots": 1},
                                    "watch": [{"name": "a", "url": "https://example.org/a", "interval": "1h"}]})
    wid = store.sync_watches(config.watch)["a"]
    with store.session() as s:
        for i in range(4):
            s.add(Snapshot(watch_id=wid, content_hash=str(i), url="u", content_z=b"x" * 100))

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(retention_loop(store, lambda: config, stop, first_delay=0.01, every=3600))
        for _ in range(500):
            if len(snapshot_ids(store)) == 2:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)

    with caplog.at_level(logging.INFO, logger="watcher.retention"):
        asyncio.run(run())
    assert len(snapshot_ids(store)) == 2  # the latest state and the one before it
    (record,) = [r for r in caplog.records if r.name == "watcher.retention"]
    assert record.getMessage().startswith("retention: removed 2 snapshots of 1 watches")
    assert record.retention["snapshots"] == 2
