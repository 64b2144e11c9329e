"""The `watcher` command. Each command group lives in its own module and is loaded when used.

Exit codes: 0 success; 1 a command-specific failure (e.g. a check cycle in which some watch failed,
`diff` is not asked to fail); 2 bad usage or invalid config; 3 database unreachable or not migratable;
4 the document or URL given could not be read.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from watcher.errors import WatcherError

# command name -> "module:attribute"; a new command is one line here plus its module.
COMMANDS: dict[str, str] = {
    "run": "watcher.cli.core:run",
    "check": "watcher.cli.core:check",
    "watches": "watcher.cli.core:watches",
    "db": "watcher.cli.core:db",
    "extract": "watcher.cli.extract:extract",
    "diff": "watcher.cli.diffcmd:diff",
    "changes": "watcher.cli.diffcmd:changes",
    "topic": "watcher.cli.diffcmd:topic",
    "alerts": "watcher.cli.notifycmd:alerts",
    "notify": "watcher.cli.notifycmd:notify",
    "sender": "watcher.cli.notifycmd:sender",
    "history": "watcher.cli.review:history",
    "show": "watcher.cli.review:show",
    "timeline": "watcher.cli.review:timeline",
    "web": "watcher.cli.review:web",
    "worker": "watcher.cli.scale:worker",
    "add": "watcher.cli.manage:add",
    "pause": "watcher.cli.manage:pause",
    "resume": "watcher.cli.manage:resume",
    "remove": "watcher.cli.manage:remove",
    "import": "watcher.cli.manage:import_",
    "export": "watcher.cli.manage:export",
    "status": "watcher.cli.status:status",
}

DAEMONS = ("run", "worker", "sender")


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if self._load(n) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:  # command not built yet
                return None
            raise
        return getattr(mod, attr, None)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), default=None,
              envvar="WATCHER_CONFIG", help="Config file [default: config/watcher.toml].")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              envvar="WATCHER_LOG_FORMAT", help="json: one JSON object per line, for log shippers.")
@click.version_option(package_name="watcher")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int, log_format: str) -> None:
    """Watch release-news pages and feeds; extract facts; alert on what changed.

    Exit codes: 0 ok, 1 command failed (e.g. a watch failed in `check`), 2 usage or config error,
    3 database error, 4 input document unreadable.
    """
    from watcher.logs import setup_logging

    # The long-running commands log what they do (one line per finding, event, alert) at the default verbosity.
    setup_logging(verbose, log_format, daemon=ctx.invoked_subcommand in DAEMONS)
    ctx.obj = {"config_path": config_path, "log_format": log_format}


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="watcher", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except WatcherError as e:
        from watcher.logs import redact

        click.echo(f"error: {redact(str(e))}", err=True)
        sys.exit(e.exit_code)
