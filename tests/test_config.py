"""Config validation: a bad config fails with the file, the key and what is wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from watcher.cli import cli
from watcher.config import load_config, secret_from_env
from watcher.errors import ConfigError

GOOD = """
[[watch]]
name = "a"
url = "https://example.org/a"
kind = "wordpress"
topic = { work = "Show", season = 2 }
interval = "6h"

[[subscriber]]
name = "hook"
webhook = "https://example.org/hook"
secret_env = "HOOK_SECRET"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "watcher.toml"
    p.write_text(text)
    return p


def test_default_config_is_valid_and_watches_the_seed_post():
    config = load_config(Path(__file__).parents[1] / "config" / "watcher.toml")
    urls = [w.url for w in config.watch]
    assert "https://blueroads.in/blog/wp-json/wp/v2/posts/161" in urls
    assert {w.kind for w in config.watch} == {"wordpress", "feed", "html"}


def test_good_config(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert config.watch[0].interval.total_seconds() == 6 * 3600
    assert config.subscriber[0].kind == "webhook"


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD.replace('interval = "6h"', 'interval = "soon"'),
     "watch[0] (a).interval: Value error, 'soon' is not a duration"),
    (GOOD.replace('kind = "wordpress"', 'kind = "gopher"'),
     "watch[0] (a).kind: Input should be 'html', 'wordpress' or 'feed'"),
    (GOOD.replace('url = "https://example.org/a"', 'url = "file:///etc/passwd"'), "watch[0] (a).url"),
    (GOOD.replace('interval = "6h"', ''), "give 'interval'"),
    (GOOD.replace('interval = "6h"', 'cron = "61 * * * *"'), "watch[0] (a): cron '61 * * * *'"),
    (GOOD + "\n[[watch]]\nname='a'\nurl='https://e.org'\ninterval='1h'\n", "two watch entries are named 'a'"),
    (GOOD.replace('webhook = "https://example.org/hook"', 'webhook = "ftp://x"'), "subscriber[0] (hook).webhook"),
    (GOOD + "\n[fetch]\ntimeout = 'x'\nbogus = 1\n", "fetch.bogus: Extra inputs are not permitted"),
    ("[[watch]\nname=", "TOML syntax error"),
])
def test_bad_config_names_file_key_and_problem(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    message = str(e.value).replace("Value error, ", "")
    assert str(path) in message
    assert expected.replace("Value error, ", "") in message


def test_cli_exits_2_on_bad_config(tmp_path):
    path = write(tmp_path, GOOD.replace('kind = "wordpress"', 'kind = "gopher"'))
    result = subprocess.run([sys.executable, "-m", "watcher", "-c", str(path), "watches"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{path}: watch[0] (a).kind" in result.stderr and "Traceback" not in result.stderr


def test_every_command_has_help():
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0 and "Exit codes" in top.output
    for name in ("run", "check", "watches", "db"):
        assert runner.invoke(cli, [name, "--help"]).exit_code == 0, name


def test_secrets_come_from_the_environment_only(monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s3cr3t-value")
    assert secret_from_env("HOOK_SECRET", "subscriber hook") == "s3cr3t-value"
    monkeypatch.delenv("HOOK_SECRET")
    with pytest.raises(ConfigError, match="HOOK_SECRET is not set"):
        secret_from_env("HOOK_SECRET", "subscriber hook")
