"""Helpers every command module uses: config + database from the click context, output."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from watcher.config import Config, load_config
from watcher.text import strip_control

# Piped or redirected output is for other programs (grep, a file, a log): lines are never cut to a terminal's
# 80 columns there. A terminal keeps rich's own width. COLUMNS, when set, wins either way.
PIPED_WIDTH = 10_000


def _width(stream: Any) -> int | None:
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    try:
        return None if stream.isatty() else PIPED_WIDTH
    except (AttributeError, ValueError):
        return PIPED_WIDTH


console = Console(highlight=False, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, width=_width(sys.stderr))


def get_config(ctx: click.Context) -> Config:
    obj = ctx.find_root().obj or {}
    if "config" not in obj:
        obj["config"] = load_config(obj.get("config_path"))
    return obj["config"]


def get_store(ctx: click.Context, *, long_running: bool = False) -> Any:
    """The Store for the configured database, migrated on first use (by a child process for a `long_running`
    command, which then never holds the migration tooling in memory)."""
    from watcher.store import Store

    obj = ctx.find_root().obj
    if "store" not in obj:
        obj["store"] = Store.open(get_config(ctx).database_url, migrate_apart=long_running)
    return obj["store"]


def safe(text: Any) -> str:
    """Scraped text made safe for a rich terminal: no ANSI escapes, no rich markup."""
    return escape(strip_control("" if text is None else str(text)))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def preflight(ctx: click.Context, *, store: Any = None, subscriber: str | None = None) -> None:
    """Before a command that queues or sends alerts: refuse (exit 2, one line) when a secret the config names
    is missing from the environment; with `store`, warn about subscriber topics that match no topic. With
    `subscriber`, only that subscriber's secrets are checked."""
    from watcher.config import check_secrets

    config = get_config(ctx)
    check_secrets(config, [config.subscriber_by_name(subscriber)] if subscriber else None)
    if store is not None:
        warn_about_topics(ctx, store)


def warn_about_topics(ctx: click.Context, store: Any) -> None:
    """Subscriber topics that match no configured watch topic nor any topic in the database, with the closest
    known topic ("did you mean ...?")."""
    from watcher.topic import known_topics, subscriber_topic_warnings

    with store.session() as s:
        known = known_topics(s)
    for warning in subscriber_topic_warnings(get_config(ctx), known):
        err_console.print(f"[yellow]warning:[/yellow] {safe(warning)}", soft_wrap=True)
