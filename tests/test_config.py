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
     "watch[0] (a).kind: Input should be 'html', 'wordpress', 'feed' or 'browser'"),
    (GOOD.replace('url = "https://example.org/a"', 'url = "file:///etc/passwd"'), "watch[0] (a).url"),
    (GOOD.replace('interval = "6h"', ''), "give 'interval'"),
    (GOOD.replace('interval = "6h"', 'cron = "61 * * * *"'), "watch[0] (a): cron '61 * * * *'"),
    (GOOD + "\n[[watch]]\nname='a'\nurl='https://e.org'\ninterval='1h'\n", "two watch entries are named 'a'"),
    (GOOD.replace('webhook = "https://example.org/hook"', 'webhook = "ftp://x"'), "subscriber[0] (hook).webhook"),
    (GOOD + "\n[fetch]\ntimeout = 'x'\nbogus = 1\n", "fetch.bogus: unknown key 'bogus'"),
    ("[[watch]\nname=", "TOML syntax error"),
    # Used to pass validation and then fail every check with a traceback.
    (GOOD.replace("https://example.org/a", "https://example.org:99999/a"), "port '99999' is not a port (1-65535)"),
    (GOOD.replace("https://example.org/a", "http://:8080/a"), "'http://:8080/a' has no host name"),
    (GOOD.replace("https://example.org/a", "http://[::1/a"), "is not a valid URL"),
    (GOOD.replace("https://example.org/a", "https://example.org:0/a"), "port 0 is not a port"),
    (GOOD.replace("https://example.org/a", "https://example.org/a b"), "contains spaces"),
    (GOOD + "\n[fetch]\nallow_private = ['localhost:8080']\n", "host names cannot be listed"),
    (GOOD + "\n[fetch]\nallow_private = ['127.0.0.1:70000']\n", "port 70000 is out of range"),
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


def test_credentials_in_a_watch_url_are_refused_and_never_echoed(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD.replace("https://example.org/a", "https://reader:hunter2-pw@example.org/a"))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert "credentials in the URL are refused" in str(e.value)
    assert 'auth = { username = "...", password_env = "VAR" }' in str(e.value)
    assert "hunter2-pw" not in str(e.value) and "reader" not in str(e.value)
    path = write(tmp_path, GOOD.replace('interval = "6h"',
                                        'interval = "6h"\nauth = { username = "reader", password_env = "BLOG_PW" }'))
    config = load_config(path)
    monkeypatch.setenv("BLOG_PW", "hunter2-pw")
    assert config.watch[0].auth.credentials("a") == ("reader", "hunter2-pw")
    from watcher.logs import redact

    assert redact("sent hunter2-pw") == "sent ***"  # read once, redacted everywhere after
