"""CLI output for people and for pipes: durations as the config writes them, a first check shown as
"baseline", tables at full width when piped, `--json` on the commands that change the config."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from watcher.cli import cli
from watcher.cli._common import PIPED_WIDTH, console
from watcher.config import format_duration, load_config
from watcher.store.models import Check

LONG = "a-watch-with-a-name-long-enough-to-be-cut-at-eighty-columns-" + "x" * 40


@pytest.mark.parametrize(("value", "shown"), [
    ("PT20S", "20s"), ("PT6H", "6h"), ("P1D", "1d"), ("P365D", "365d"), (dt.timedelta(minutes=90), "90m"),
    (3725, "1h2m5s"), ("15m", "15m"), (0, "0s"), (None, ""), ("not a duration", "not a duration")])
def test_durations_as_the_config_writes_them(value, shown):
    assert format_duration(value) == shown


def test_watches_and_history_when_piped(tmp_path, database_url, store):
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(f"""[watcher]
database_url = "{database_url}"
[[watch]]
name = "{LONG}"
url = "https://example.org/{'long-path/' * 8}page"
interval = "20s"
[[watch]]
name = "b"
url = "https://example.org/b"
interval = "6h"
""")
    assert console.width == PIPED_WIDTH  # the tests' stdout is not a terminal
    ids = store.sync_watches(load_config(cfg).watch)
    now = dt.datetime.now(dt.UTC)
    with store.session() as s:
        s.add_all([Check(watch_id=ids["b"], at=now - dt.timedelta(hours=6), outcome="baseline"),
                   Check(watch_id=ids["b"], at=now, outcome="changed")])
    runner = CliRunner()
    out = runner.invoke(cli, ["-c", str(cfg), "watches"], catch_exceptions=False).output
    (row,) = [line for line in out.splitlines() if LONG in line]  # one line, not wrapped at 80 columns
    assert "20s" in row and "PT20S" not in out and "6h" in out
    data = json.loads(runner.invoke(cli, ["-c", str(cfg), "watches", "--json"]).output)
    assert {d["name"]: d["schedule"] for d in data} == {LONG: "20s", "b": "6h"}
    history = runner.invoke(cli, ["-c", str(cfg), "history", "b"], catch_exceptions=False).output
    assert "checks: baseline 1, changed 1" in history
    assert [line.split("│")[2].strip() for line in history.splitlines() if "│" in line][:2] == ["changed", "baseline"]


def test_pause_resume_remove_json(tmp_path, sqlite_url):
    cfg = tmp_path / "watcher.toml"
    cfg.write_text(f'[watcher]\ndatabase_url = "{sqlite_url}"\n[[watch]]\nname = "a"\n'
                   'url = "https://example.org/a"\ninterval = "1h"\n')
    runner = CliRunner()

    def run(*args: str) -> dict:
        result = runner.invoke(cli, ["-c", str(cfg), *args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert run("pause", "a")["enabled"] is False and run("pause", "a")["changed"] is False
    assert run("resume", "a") == {"watch": "a", "enabled": True, "changed": True, "config": str(cfg),
                                  "takes_effect": "a running daemon applies it within seconds (or at once on SIGHUP)"}
    assert run("remove", "a")["removed"] is True and "[[watch]]" not in cfg.read_text()
