"""`watcher status`: the schedule (next run per watch, from the job store), the last checks and the outbox
(both backends)."""

from __future__ import annotations

import datetime as dt
import json
import os

from click.testing import CliRunner

from watcher.cli import cli
from watcher.config import load_config
from watcher.scheduler import create_scheduler, sync_jobs
from watcher.store.models import AlertRow, ChangeEventRow, Check, Subscriber, Watch


def test_status_shows_schedule_last_checks_and_outbox(tmp_path, database_url, store):
    cfg = tmp_path / "watcher.toml"
    redis = os.environ.get("WATCHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    cfg.write_text(f"""[watcher]
database_url = "{database_url}"
[redis]
url = "{redis}"
[[watch]]
name = "fast"
url = "https://example.org/fast"
interval = "20s"
[[watch]]
name = "slow"
url = "https://example.org/slow"
interval = "6h"
[[watch]]
name = "daily"
url = "https://example.org/daily"
cron = "0 8 * * *"
[[watch]]
name = "paused"
url = "https://example.org/paused"
interval = "1d"
enabled = false
""")
    runner = CliRunner()
    before = json.loads(runner.invoke(cli, ["-c", str(cfg), "status", "--json"], catch_exceptions=False).output)
    assert before["schedule"] == {"jobs": 0, "note": "no schedule stored yet: the daemon (`watcher run`) has not "
                                                     "run on this database"}
    assert before["checks"]["last_check"] is None and before["outbox"]["pending"] == 0

    config = load_config(cfg)
    ids = store.sync_watches(config.watch)
    scheduler = create_scheduler(store, threaded=True)  # as the daemon stores its jobs
    scheduler.start(paused=True)
    sync_jobs(scheduler, config, first_run_spread=10)
    scheduler.shutdown(wait=False)

    now = dt.datetime.now(dt.UTC)
    with store.session() as s:
        s.add_all([Check(watch_id=ids["fast"], at=now - dt.timedelta(hours=3), outcome="baseline"),
                   Check(watch_id=ids["fast"], at=now - dt.timedelta(minutes=30), outcome="unchanged"),
                   Check(watch_id=ids["slow"], at=now - dt.timedelta(minutes=20), outcome="failed"),
                   Check(watch_id=ids["fast"], at=now - dt.timedelta(seconds=5), outcome="changed")])
        # As a check writes them: the watch row agrees with its newest check (tests/consistency.py).
        for name, status, ago in (("fast", "changed", dt.timedelta(seconds=5)),
                                  ("slow", "failed", dt.timedelta(minutes=20))):
            w = s.get(Watch, ids[name])
            w.last_status, w.last_check_at = status, now - ago
        sub = Subscriber(name="ops", kind="webhook", target="https://hooks.example.org/x")
        s.add(sub)
        s.flush()
        for i, (status, attempts, digest) in enumerate([("pending", 0, False), ("pending", 2, False),
                                                       ("pending", 0, True), ("dead", 8, False), ("sent", 1, False)]):
            event = ChangeEventRow(uid=f"e{i}", watch_id=ids["fast"], type="text_changed")
            s.add(event)
            s.flush()
            s.add(AlertRow(uid=f"a{i}", event_id=event.id, subscriber_id=sub.id, status=status, attempts=attempts,
                           digest=digest, next_attempt_at=now - dt.timedelta(minutes=1),
                           created_at=now - dt.timedelta(minutes=10 - i),
                           sent_at=now if status == "sent" else None))

    out = runner.invoke(cli, ["-c", str(cfg), "status", "--json"], catch_exceptions=False)
    data = json.loads(out.output)
    schedule = data["schedule"]
    assert schedule["jobs"] == 3 and schedule["overdue"] == 0 and schedule["not_scheduled_count"] == 0
    nexts = {j["watch"]: j for j in schedule["next"]}
    assert set(nexts) == {"fast", "slow", "daily"}  # a paused watch has no job
    assert nexts["fast"]["schedule"] == "every 20s" and nexts["slow"]["schedule"] == "every 6h"
    assert nexts["daily"]["schedule"] == "cron 0 8 * * *"
    assert all(j["in_s"] <= 10 for j in schedule["next"])  # new jobs run soon (spread over 10s)
    checks = data["checks"]
    assert checks["last_check"]["watch"] == "fast" and checks["last_check"]["outcome"] == "changed"
    assert checks["last_hour"] == {"unchanged": 1, "failed": 1, "changed": 1}
    assert checks["last_day"] == {"baseline": 1, "unchanged": 1, "failed": 1, "changed": 1}
    assert checks["watches_by_last_outcome"] == {"changed": 1, "failed": 1, "never checked": 1}
    assert checks["failing"] == ["slow"]
    outbox = data["outbox"]
    assert (outbox["pending"], outbox["due_new"], outbox["retrying"], outbox["digest"]) == (3, 1, 1, 1)
    assert outbox["dead"] == 1 and outbox["sent_last_day"] == 1 and outbox["oldest_due_age_s"] >= 590

    text = runner.invoke(cli, ["-c", str(cfg), "status"], catch_exceptions=False).output
    assert "schedule (3 watches scheduled)" in text
    assert "every 20s" in text and "every 6h" in text and "PT" not in text
    assert "last check: fast changed" in text
    assert "last hour: " in text and "1 failed" in text and "failing: slow" in text
    assert "3 pending (1 new, 1 retrying, 1 for a digest; 0 being sent)" in text
    assert "1 sent in the last day, 1 dead" in text
