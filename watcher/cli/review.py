"""Reviewing the history: `watcher history WATCH`, `watcher show SNAPSHOT [--diff]`, `watcher timeline TOPIC`,
`watcher web`."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from watcher.cli._common import console, err_console, get_config, get_store, print_json, safe
from watcher.errors import WatcherError
from watcher.text import strip_control


def _fail(e: WatcherError) -> None:
    err_console.print(f"[red]error:[/red] {safe(e)}")
    sys.exit(e.exit_code)


@click.command()
@click.argument("watch")
@click.option("--limit", type=int, default=30, show_default=True, help="Checks and snapshots to show.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def history(ctx: click.Context, watch: str, limit: int, as_json: bool) -> None:
    """Checks, snapshots and failures of one watch, newest first."""
    from watcher.review import NotFound, watch_history

    try:
        with get_store(ctx).session() as s:
            data = watch_history(s, watch, limit=limit)
    except NotFound as e:
        _fail(e)
    if as_json:
        print_json(data)
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(data["counts"].items())) or "no checks yet"
    console.print(f"[bold]{safe(data['name'])}[/bold] {safe(data['url'])}\n"
                  f"status {data['status'] or '-'}, {data['failures']} failures in a row; checks: {counts}")
    if data["last_error"]:
        console.print(f"[red]last error:[/red] {safe(data['last_error'])}")
    checks = Table(title="checks")
    for col in ("at", "outcome", "http", "ms", "snapshot", "reason / error"):
        checks.add_column(col)
    for c in data["checks"]:
        checks.add_row(c["at"][:19], c["label"], str(c["http_status"] or ""), str(c["duration_ms"] or ""),
                       str(c["snapshot_id"] or ""), safe(c["error"] or c["reason"] or "")[:90],
                       style="red" if c["outcome"] == "failed" else "green" if c["outcome"] in ("changed", "baseline")
                       else None)
    console.print(checks)
    snaps = Table(title="snapshots")
    for col in ("id", "fetched", "title", "topic", "hash"):
        snaps.add_column(col)
    for x in data["snapshots"]:
        snaps.add_row(str(x["id"]), x["fetched_at"][:19], safe(x["title"] or x["url"])[:70],
                      safe(x["topic_label"] or ""), x["content_hash"])
    console.print(snaps)


def diff_text(diff: str) -> Text:
    """A unified diff coloured for the terminal; scraped lines are plain text, never markup."""
    out = Text()
    for line in diff.splitlines():
        style = ("bold" if line.startswith(("+++", "---")) else "green" if line.startswith("+")
                 else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else None)
        out.append(strip_control(line), style=style)
        out.append("\n")
    return out


@click.command()
@click.argument("snapshot_id", type=int)
@click.option("--diff", "show_diff", is_flag=True, help="Show the text diff against the previous snapshot.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (with the text and the diff).")
@click.pass_context
def show(ctx: click.Context, snapshot_id: int, show_diff: bool, as_json: bool) -> None:
    """One snapshot: where and when it was fetched, its facts, and its text (or, with --diff, what changed)."""
    from watcher.review import NotFound, snapshot_detail

    try:
        with get_store(ctx).session() as s:
            detail = snapshot_detail(s, snapshot_id)
    except NotFound as e:
        _fail(e)
    if as_json:
        print_json(detail.to_json())
        return
    console.print(f"[bold]snapshot {detail.id}[/bold] of {safe(detail.watch)}, "
                  f"fetched {detail.fetched_at:%Y-%m-%d %H:%M} UTC\n{safe(detail.title or '')}\n{safe(detail.url)}")
    if detail.events:
        console.print("events: " + "; ".join(safe(e["summary"]) for e in detail.events))
    if show_diff:
        if detail.previous_id is None:
            console.print("first snapshot of this watch: nothing to compare with")
        elif not detail.diff:
            console.print(f"same text as snapshot {detail.previous_id} (up to whitespace and order)")
        else:
            console.print(diff_text(detail.diff), soft_wrap=True)
        return
    console.print(Text(strip_control(detail.text)), soft_wrap=True)


@click.command()
@click.argument("topic")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def timeline(ctx: click.Context, topic: str, as_json: bool) -> None:
    """For each fact of TOPIC (release, renewal, production, filming, each cast member): the values
    each source claimed, in order, with dates."""
    from watcher.cli.diffcmd import topic_json
    from watcher.topic import UnknownTopic, topic_view

    try:
        with get_store(ctx).session() as s:
            view = topic_view(s, topic, stale_after=get_config(ctx).topics.stale_after)
    except UnknownTopic as e:
        _fail(e)
    if as_json:
        print_json(topic_json(view))
        return
    table = Table(title=safe(f"{view.label}: timeline"), show_lines=True)
    for col in ("fact", "published", "fetched", "source", "value", "evidence"):
        table.add_column(col)
    for line in view.lines:
        name = line.kind + (f": {line.subject}" if line.subject else "")
        for i, claim in enumerate(line.claims):
            current = claim is line.current
            table.add_row(safe(name) if i == 0 else "", str(claim.published or ""), f"{claim.fetched_at:%Y-%m-%d}",
                          safe(claim.source), safe(claim.display) + (" ◀ now" if current else ""),
                          safe(claim.evidence)[:100], style="bold" if current else None)
    console.print(table)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.pass_context
def web(ctx: click.Context, host: str, port: int) -> None:
    """Serve the review site and the REST API (/api/v1, docs/api.md). Off loopback it requires the token named
    by watcher.web_token_env; writes (API, and the recheck/pause/resume buttons) always do."""
    import uvicorn

    from watcher.web import create_app

    config, store = get_config(ctx), get_store(ctx)
    token = _web_token(config, host)
    from watcher.health import health_path, limits

    app = create_app(store, token=token, stale_after=config.topics.stale_after, config_path=config.source_path,
                     health_file=str(health_path(config)), health_limits=limits(config))
    err_console.print(f"watcher web on http://{host}:{port}/" + (" (token required)" if token else
                      "; read-only: set the token to recheck, pause and resume watches (API writes too)"))
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)


def _web_token(config: Any, host: str) -> str | None:
    import os

    from watcher.errors import ConfigError
    from watcher.web import is_loopback

    token = os.environ.get(config.watcher.web_token_env) or None
    if token is None and not is_loopback(host):
        raise ConfigError(f"watcher web on {host} needs a token: set {config.watcher.web_token_env} "
                          "(or bind to 127.0.0.1)")
    return token
