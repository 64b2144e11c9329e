"""The daemon's log: one INFO line per check that found something, per event and per alert sent or dead, at
the default verbosity; `--log-format json` writes one JSON object per line (both backends for the daemon)."""

from __future__ import annotations

import json
import logging
import time

import pytest

from tests.pageserver import PageServer
from tests.test_pipeline import page
from tests.test_reload import Daemon, write
from watcher.logs import JsonFormatter, setup_logging
from watcher.pipeline import CheckResult, log_check

SECRET = "s3cret-webhook-key-for-logs"


@pytest.fixture
def server():
    with PageServer() as s:
        yield s


def test_json_log_of_a_running_daemon(server, database_url, tmp_path, hook, monkeypatch):
    version = {"window": "late 2026"}
    server.route("/show", lambda _: page(version["window"]))
    cfg = tmp_path / "watcher.toml"
    write(cfg, f"""[watcher]
database_url = "{database_url}"
[fetch]
autothrottle = false
retries = 0
timeout = "5s"
allow_private = ["{server.allow}", "127.0.0.1"]
[notify]
send_interval = "1s"
[[watch]]
name = "show"
url = "{server.url('/show')}"
interval = "1s"
jitter = "0s"
topic = {{ work = "Show", season = 2 }}
[[subscriber]]
name = "hook"
webhook = "{hook.url}"
secret_env = "WATCHER_TEST_LOG_SECRET"
""")
    monkeypatch.setenv("WATCHER_TEST_LOG_SECRET", SECRET)
    monkeypatch.setenv("WATCHER_LOG_FORMAT", "json")  # as `watcher --log-format json run`
    daemon = Daemon(cfg)
    try:
        daemon.wait_log(r'"outcome": "baseline"')
        time.sleep(2.5)  # some unchanged re-checks: not logged at INFO
        version["window"] = "early 2027"
        daemon.wait_log(r'"what": "alert", "alert_id": "[0-9a-f]+", "status": "sent"')
    finally:
        daemon.stop()
    records = [json.loads(line) for line in daemon.lines if line.strip()]  # every line is one JSON object
    assert daemon.proc.returncode == 0
    checks = [r for r in records if r.get("what") == "check"]
    assert [r["outcome"] for r in checks] == ["baseline", "changed"], checks
    assert checks[0]["watch"] == "show" and checks[0]["level"] == "INFO" and checks[0]["http_status"] == 200
    assert checks[1]["events"] == 1 and checks[1]["alerts"] == 1
    (event,) = [r for r in records if r.get("what") == "event"]
    assert event["event_type"] == "release_changed" and event["summary"].startswith("release early 2027")
    (alert,) = [r for r in records if r.get("what") == "alert"]
    assert alert["subscriber"] == "hook" and alert["channel"] == "webhook" and alert["attempts"] == 1
    assert {"time", "level", "logger", "message"} <= set(alert)
    assert any(r["message"].startswith("watcher running") for r in records)
    assert SECRET not in "\n".join(daemon.lines)


def test_check_lines_by_outcome(caplog):
    with caplog.at_level(logging.INFO, logger="watcher.pipeline"):
        log_check(CheckResult("quiet", "unchanged", 200, duration_ms=5))
        log_check(CheckResult("busy", "failed", 503, reason="http-503", error="Service Unavailable", duration_ms=9))
        log_check(CheckResult("new", "changed", 200, snapshots=1, events=1, alerts=2, duration_ms=7,
                              event_log=[{"event_id": "e1", "event_type": "cast_added", "subject": "Park Ji-hu",
                                          "summary": "cast Park Ji-hu added", "topic": "show#2", "snapshot_id": 3}]))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["check busy: failed: http-503 (HTTP 503, 9 ms)",
                     "check new: changed (HTTP 200, 1 snapshots, 1 events, 2 alerts, 7 ms)",
                     "event cast_added on new: cast Park Ji-hu added"]


def test_json_formatter_carries_fields_and_redacts(monkeypatch):
    monkeypatch.setenv("WATCHER_TEST_TOKEN", "tok-abcdef-123")
    record = logging.LogRecord("watcher.x", logging.WARNING, __file__, 1, "fetch of %s failed: %s", (
        "https://user:pw@example.org/a", "token tok-abcdef-123 refused"), None)
    record.watch, record.error = "a", "bad \x1b[31mred\x1b[0m tok-abcdef-123"
    out = json.loads(JsonFormatter().format(record))
    assert out["message"] == "fetch of https://example.org/a failed: token *** refused"
    assert out["watch"] == "a" and out["error"] == "bad red ***" and out["level"] == "WARNING"


def test_daemons_log_info_by_default_other_commands_do_not():
    try:
        setup_logging(0, "text", daemon=True)
        assert logging.getLogger("watcher.pipeline").isEnabledFor(logging.INFO)
        assert not logging.getLogger("scrapy.core").isEnabledFor(logging.INFO)
        setup_logging(0, "text")
        assert not logging.getLogger("watcher.pipeline").isEnabledFor(logging.INFO)
    finally:
        setup_logging(0, "text")
