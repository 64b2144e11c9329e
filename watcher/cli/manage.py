"""Managing watches without editing the file: add, pause, resume, remove, import, export.

Each command edits the config file in place (comments and layout kept, see watcher.configfile); a running
daemon notices the change within seconds (or at once on SIGHUP) and applies it without a restart.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from watcher.cli._common import console, err_console, print_json, safe
from watcher.config import DEFAULT_CONFIG, Config, format_duration
from watcher.errors import DocumentError, WatcherError
from watcher.logs import redact
from watcher.text import display_url


def takes_effect(config: Config) -> str:
    """How the edit reaches a running daemon, for the message that confirms it."""
    if config.watcher.reload_on_change:
        return "a running daemon applies it within seconds (or at once on SIGHUP)"
    return "reload_on_change is off: send the daemon SIGHUP (kill -HUP PID) to apply it"


def config_file_path(ctx: click.Context) -> Path:
    """The config file this invocation reads and edits (-c, WATCHER_CONFIG, or the default)."""
    obj = ctx.find_root().obj or {}
    return Path(obj.get("config_path") or os.environ.get("WATCHER_CONFIG") or DEFAULT_CONFIG)


def _config_or_empty(ctx: click.Context) -> Config:
    """The current config; an empty one when the file does not exist yet (`add` and `import` create it)."""
    from watcher.cli._common import get_config

    path = config_file_path(ctx)
    if not path.exists():
        return Config().model_copy(update={"source_path": str(path)})
    return get_config(ctx)


def _fail(message: str, code: int) -> None:
    err_console.print(f"[red]error:[/red] {safe(message)}", soft_wrap=True)
    sys.exit(code)


def reports_errors(command: Callable[..., None]) -> Callable[..., None]:
    """A WatcherError (bad name, refused edit, unreadable file) ends the command with its message and exit
    code, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except WatcherError as e:
            _fail(redact(str(e)), e.exit_code)

    return wrapper


# --------------------------------------------------------------------------- add


@click.command()
@click.argument("url")
@click.option("--name", help="Watch name [default: from the URL's host and path].")
@click.option("--topic", help='What the watch is about, e.g. "All of Us Are Dead S2" (overrides detection).')
@click.option("--interval", default=None, help="How often to check, e.g. 6h, 30m [default: 6h].")
@click.option("--cron", default=None, help='Check on a cron schedule instead, e.g. "17 */4 * * *".')
@click.option("--jitter", default=None, help="Random delay added to each run [default: 5m].")
@click.option("--kind", type=click.Choice(["auto", "html", "wordpress", "feed", "browser"]), default="auto",
              show_default=True,
              help="auto: a WordPress post becomes its REST URL, a feed a feed; a page that links a feed is "
                   "offered it. feed: watch the feed the page links. browser: render the page in headless "
                   "Chromium (for pages that write their text with JavaScript).")
@click.option("--css", default=None, help="Only this part of an HTML page (CSS selector).")
@click.option("--xpath", default=None, help="Only this part of an HTML page (XPath).")
@click.option("--no-fetch", is_flag=True, help="Add without fetching the URL first (needs --kind).")
@click.option("--dry-run", is_flag=True, help="Fetch and show, but do not write the config.")
@click.option("--json", "as_json", is_flag=True, help="Print what was detected and extracted as JSON.")
@click.pass_context
@reports_errors
def add(ctx: click.Context, url: str, name: str | None, topic: str | None, interval: str | None, cron: str | None,
        jitter: str | None, kind: str, css: str | None, xpath: str | None, no_fetch: bool, dry_run: bool,
        as_json: bool) -> None:
    """Add a watch for URL: detect what it is, fetch it once, show the facts it yields, and write the watch
    into the config file (keeping its comments and layout).

    Exit codes: 2 the watch cannot be added as asked (name taken, URL already watched, bad option),
    4 the URL could not be read.
    """
    from watcher.configfile import ConfigFile
    from watcher.manage import propose

    if css and xpath:
        raise click.UsageError("give --css or --xpath, not both")
    scope = {"css": css} if css else {"xpath": xpath} if xpath else None
    config = _config_or_empty(ctx)
    interval = None if cron else (interval or "6h")

    def ask(use_feed: bool) -> Any:
        return propose(url, config, name=name, kind=kind, topic=topic, interval=interval, cron=cron, jitter=jitter,
                       scope=scope, use_feed=use_feed, fetch=not no_fetch)

    try:
        proposal = ask(False)
        feeds = proposal.offered_feeds
        if (feeds and kind == "auto" and proposal.entry["kind"] == "html" and not as_json and not dry_run
                and sys.stdin.isatty() and sys.stdout.isatty()):
            _show(proposal)
            if click.confirm(f"This page links a feed ({safe(display_url(feeds[0]['url']))}). Watch the feed instead?",
                             default=False):
                proposal = ask(True)
    except DocumentError as e:
        if e.reason == "blocked-address":  # the egress policy: only the config can allow a private address
            from urllib.parse import urlsplit

            host = urlsplit(url).netloc.rpartition("@")[2]
            _fail(f'{e}\n(to watch it, list it under [fetch]: allow_private = ["{host}"])', 4)
        _fail(f"{e}\n(add it anyway, unchecked, with --no-fetch --kind html|wordpress|feed)", 4)
    path = config_file_path(ctx)
    written = False
    if not dry_run:
        config = ConfigFile(path).add_watches([proposal.entry])
        written = True
    if as_json:
        print_json({**proposal.to_json(), "config": str(path), "written": written})
        return
    _show(proposal)
    entry = proposal.entry
    schedule = f"cron {entry['cron']}" if entry.get("cron") else f"every {format_duration(entry.get('interval'))}"
    if proposal.offered_feeds and entry["kind"] == "html":
        feeds = ", ".join(safe(display_url(f["url"])) for f in proposal.offered_feeds)
        console.print(f"This page links feeds: {feeds}\n"
                      f"  to watch the feed instead: watcher add {safe(url)} --kind feed", soft_wrap=True)
    if written:
        console.print(f"added watch [bold]{safe(entry['name'])}[/bold] ({entry['kind']}, {schedule}) to "
                      f"{safe(path)}; {takes_effect(config)}", soft_wrap=True)
    else:
        console.print(f"dry run: would add watch {safe(entry['name'])} ({entry['kind']}, {schedule}) to "
                      f"{safe(path)}", soft_wrap=True)


def _show(proposal: Any) -> None:
    from watcher.cli.extract import facts_table

    console.print(f"{safe(proposal.given_url)}: {safe(proposal.detected)}", soft_wrap=True)
    if not proposal.fetched:
        return
    more = f", showing {len(proposal.previews)}" if proposal.documents > len(proposal.previews) else ""
    console.print(f"fetched: HTTP {proposal.http_status}, {proposal.documents} document(s){more}")
    for p in proposal.previews:
        if "error" in p.facts:
            console.print(f"  {safe(p.title or display_url(p.url))}: {safe(p.facts['error'])}")
        elif not p.facts.get("facts"):
            console.print(f"  {safe(p.title or display_url(p.url))}: no facts found yet")
        else:
            console.print(facts_table(p.facts, p.title or display_url(p.url)))


# --------------------------------------------------------------------------- pause, resume, remove


def _set_enabled(ctx: click.Context, name: str, enabled: bool, as_json: bool = False) -> None:
    from watcher.configfile import ConfigFile

    path = config_file_path(ctx)
    before = _config_or_empty(ctx)
    was = before.watch_by_name(name).enabled
    if was == enabled:
        if as_json:
            print_json({"watch": name, "enabled": enabled, "changed": False, "config": str(path)})
            return
        console.print(f"watch {safe(name)} is already {'active' if enabled else 'paused'}")
        return
    config = ConfigFile(path).set_enabled(name, enabled, actor="`watcher pause`")
    if as_json:
        print_json({"watch": name, "enabled": enabled, "changed": True, "config": str(path),
                    "takes_effect": takes_effect(config)})
        return
    state = "resumed" if enabled else "paused"
    console.print(f"{state} watch [bold]{safe(name)}[/bold] in {safe(path)}; {takes_effect(config)}",
                  soft_wrap=True)


_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@click.command()
@click.argument("name")
@_JSON
@click.pass_context
@reports_errors
def pause(ctx: click.Context, name: str, as_json: bool) -> None:
    """Stop checking watch NAME (writes `enabled = false`); its history stays. `watcher resume` undoes it."""
    _set_enabled(ctx, name, False, as_json)


@click.command()
@click.argument("name")
@_JSON
@click.pass_context
@reports_errors
def resume(ctx: click.Context, name: str, as_json: bool) -> None:
    """Check a paused watch NAME again (removes its `enabled = false`)."""
    _set_enabled(ctx, name, True, as_json)


@click.command()
@click.argument("name")
@_JSON
@click.pass_context
@reports_errors
def remove(ctx: click.Context, name: str, as_json: bool) -> None:
    """Delete watch NAME from the config file. Its history (checks, snapshots, events) stays in the
    database, shown as disabled."""
    from watcher.configfile import ConfigFile

    path = config_file_path(ctx)
    _config_or_empty(ctx).watch_by_name(name)
    config = ConfigFile(path).remove_watch(name)
    if as_json:
        print_json({"watch": name, "removed": True, "config": str(path), "takes_effect": takes_effect(config)})
        return
    console.print(f"removed watch [bold]{safe(name)}[/bold] from {safe(path)}; {takes_effect(config)}",
                  soft_wrap=True)


# --------------------------------------------------------------------------- import, export


@click.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["urlwatch", "opml", "changedetection"]))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--interval", default="6h", show_default=True,
              help="Schedule of the imported watches when the file has none (urlwatch, OPML).")
@click.option("--dry-run", is_flag=True, help="Show what would be imported; do not write the config.")
@click.option("--json", "as_json", is_flag=True, help="Print each job's outcome as JSON.")
@click.pass_context
@reports_errors
def import_(ctx: click.Context, fmt: str, file: Path, interval: str, dry_run: bool, as_json: bool) -> None:
    """Add the watches of another tool: urlwatch's urls.yaml, an OPML subscription list, or a
    changedetection.io backup zip. URLs already watched are skipped, and so is what watcher cannot watch
    (shell jobs, POST requests); each skip and approximation is listed. Kinds are guessed from the URL
    (feeds, WordPress REST URLs); nothing is fetched."""
    from rich.table import Table

    from watcher.configfile import ConfigFile
    from watcher.importers import plan_import, read_import

    path = config_file_path(ctx)
    config = _config_or_empty(ctx)
    candidates = plan_import(read_import(fmt, file, interval=interval), config)
    entries = [c.entry for c in candidates if c.entry is not None]
    if entries and not dry_run:
        config = ConfigFile(path).add_watches(entries, actor=f"`watcher import {fmt}`")
    if as_json:
        print_json({"config": str(path), "written": bool(entries) and not dry_run,
                    "imported": len(entries), "skipped": len(candidates) - len(entries),
                    "jobs": [c.to_json() for c in candidates]})
        return
    table = Table(title=f"{fmt} import from {safe(file)}")
    for col in ("job", "watch", "kind", "url", "notes"):
        table.add_column(col)
    for c in candidates:
        if c.entry is not None:
            table.add_row(safe(c.source), safe(c.entry["name"]), c.entry["kind"], safe(display_url(c.entry["url"])),
                          safe("; ".join(c.notes)) + ("" if c.entry.get("enabled", True) else " (paused)"))
        else:
            table.add_row(safe(c.source), "—", "", "", f"skipped: {safe(c.skipped)}", style="yellow")
    console.print(table)
    verb = "would import" if dry_run else "imported"
    # soft_wrap: a long config path must not break the line where scripts and tests read "skipped N".
    console.print(f"{verb} {len(entries)} watches into {safe(path)}, skipped {len(candidates) - len(entries)}"
                  + ("" if dry_run or not entries else f"; {takes_effect(config)}"), soft_wrap=True)


@click.command()
@click.option("--format", "fmt", type=click.Choice(["opml", "toml"]), default="toml", show_default=True,
              help="opml: the feed watches, for a feed reader. toml: every [[watch]] table as written.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not stdout.")
@click.pass_context
@reports_errors
def export(ctx: click.Context, fmt: str, output: Path | None) -> None:
    """Print the configured watches as OPML (feeds) or TOML (all)."""
    from watcher.cli._common import get_config
    from watcher.importers import export_opml, export_toml

    config = get_config(ctx)
    count = len(config.watch)
    if fmt == "opml":
        text, left_out = export_opml(config)
        count -= left_out
        if left_out:
            err_console.print(f"{left_out} watches that are not feeds are left out of the OPML list")
    else:
        text = export_toml(config_file_path(ctx).read_text(encoding="utf-8"))
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {count} watches to {safe(output)}")
