"""Core commands: run (the daemon), check (one cycle now), watches, db upgrade."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from watcher.cli._common import (
    console,
    err_console,
    get_config,
    get_store,
    preflight,
    print_json,
    safe,
    warn_about_topics,
)


@click.command()
@click.option("--role", type=click.Choice(["all", "scheduler"]), default="all", show_default=True,
              help="all: one process does everything. scheduler: only put due watches on the Redis queue for "
                   "`watcher worker` processes (one active scheduler, elected by a PostgreSQL lock).")
@click.pass_context
def run(ctx: click.Context, role: str) -> None:
    """Run the daemon: check each watch on its schedule and deliver alerts, until SIGTERM/SIGINT.

    The config is reloaded on SIGHUP and when its file changes: added, removed, paused and changed watches
    take effect without a restart; an invalid file is refused (logged) and the config in force stays."""
    from watcher.runtime import run_sync
    from watcher.scheduler import run_daemon

    config, store = get_config(ctx), get_store(ctx, long_running=True)
    preflight(ctx, store=store)
    if (ctx.find_root().obj or {}).get("log_format") != "json":  # stderr stays one JSON object per line
        err_console.print(f"watcher ({role}): {len(config.watch)} watches, database {store!r}; Ctrl-C to stop")
    import asyncio

    from watcher.health import health_path
    from watcher.runtime import HealthReporter, reactor_loop

    # The events must belong to the reactor's loop; SIGTERM/SIGINT set `stop`, SIGHUP `hup` (see run_sync).
    stop, hup = asyncio.Event(), asyncio.Event()
    loop = reactor_loop()
    settings = config.watcher
    # The health file (watcher status, /healthz); a loop stuck for the watchdog's margin ends the process (70).
    reporter = HealthReporter(health_path(config), interval=settings.health_interval.total_seconds(),
                              stall_exit=settings.watchdog.total_seconds(), loop=loop, role=role)
    with reporter:
        if role == "scheduler":
            from watcher.scale import run_scheduler_role

            run_sync(lambda: run_scheduler_role(store, config, stop, hup=hup), stop_on_signal=stop,
                     reload_on_signal=hup)
            return
        status = run_sync(lambda: run_daemon(store, config, stop=stop, hup=hup), stop_on_signal=stop,
                          reload_on_signal=hup)
    if status:
        sys.exit(status)


@click.command()
@click.argument("watches", nargs=-1)
@click.option("--send", is_flag=True, help="Deliver the alerts the check queued (and any others due) now.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_context
def check(ctx: click.Context, watches: tuple[str, ...], send: bool, as_json: bool) -> None:
    """Check WATCHES (default: all enabled) once now, then print a summary.

    Alerts are queued in the outbox; `watcher run` or `watcher sender` delivers them, or --send right away.
    Exit code 1 when any watch failed.
    """
    from watcher.pipeline import CycleReport, run_cycle
    from watcher.runtime import run_sync

    config, store = get_config(ctx), get_store(ctx)
    for name in watches:
        config.watch_by_name(name)
    preflight(ctx)
    store.sync_watches(config.watch)
    store.sync_subscribers(config.subscriber)
    names = list(watches) or [w.name for w in config.watch if w.enabled]
    progress = Progress(TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, disable=as_json or not err_console.is_terminal, transient=True)

    task = progress.add_task("check", total=len(names))

    async def go() -> CycleReport:
        with progress:
            return await run_cycle(store, config, names, progress=lambda _: progress.advance(task))

    report = run_sync(go)
    warn_about_topics(ctx, store)  # after the check: topics that extraction found count too
    queued = sum(r.alerts for r in report.results)
    outbox = _deliver(store, config) if send else None
    waiting = _pending_alerts(store)
    if as_json:
        print_json({"seconds": round(report.seconds, 3), "alerts_queued": queued, "alerts_pending": waiting,
                    "sent": outbox and {"sent": outbox.sent, "retrying": outbox.retrying, "dead": outbox.dead,
                                        "errors": outbox.errors},
                    "results": [
            {"watch": r.watch, "outcome": r.outcome, "http_status": r.http_status, "reason": r.reason,
             "error": r.error, "snapshots": r.snapshots, "events": r.events, "alerts": r.alerts,
             "duration_ms": r.duration_ms} for r in report.results]})
    else:
        table = Table(title=f"check: {len(report.results)} watches in {report.seconds:.1f}s")
        for col in ("watch", "outcome", "http", "snapshots", "events", "ms", "reason / error"):
            table.add_column(col)
        for r in report.results:
            style = "red" if r.outcome == "failed" else "green" if r.outcome in ("changed", "baseline") else None
            table.add_row(safe(r.watch), r.outcome, str(r.http_status or ""), str(r.snapshots), str(r.events),
                          str(r.duration_ms), safe(r.error or r.reason or ""), style=style)
        console.print(table)
        console.print(_alerts_line(queued, waiting, outbox))
    if report.failed:
        sys.exit(1)


def _deliver(store: Any, config: Any) -> Any:
    from watcher.notify import deliver_due

    return deliver_due(store, config)


def _pending_alerts(store: Any) -> dict[str, int]:
    """Alerts waiting in the outbox: due now (immediate) and waiting for their digest time."""
    from sqlalchemy import func, select

    from watcher.store import AlertRow

    with store.session() as s:
        rows = dict(s.execute(select(AlertRow.digest, func.count()).where(AlertRow.status == "pending")
                              .group_by(AlertRow.digest)).all())
    return {"immediate": rows.get(False, 0), "digest": rows.get(True, 0)}


def _alerts_line(queued: int, waiting: dict[str, int], outbox: Any) -> str:
    """The summary's last line: what happened to the alerts, and what to do about those still waiting."""
    def n(count: int, what: str = "alert") -> str:
        return f"{count} {what}{'s' * (count != 1)}"

    line = f"{n(queued)} queued"
    if outbox is None:
        if waiting["immediate"]:
            if waiting["immediate"] != queued:
                line += f" ({n(waiting['immediate'])} waiting in the outbox)"
            line += "; run `watcher sender --once` or pass --send"
    else:
        line += f", {outbox.sent} sent" + (f", {outbox.retrying} to retry" if outbox.retrying else "") + (
            f", {outbox.dead} failed for good (`watcher alerts --status dead`)" if outbox.dead else "")
        if waiting["immediate"]:
            line += f"; {n(waiting['immediate'])} still waiting (retried later)"
    if waiting["digest"]:
        line += f"; {n(waiting['digest'])} wait for their digest time"
    return line


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def watches(ctx: click.Context, as_json: bool) -> None:
    """List watches with their last check and status."""
    from watcher.review import list_watches

    config, store = get_config(ctx), get_store(ctx)
    store.sync_watches(config.watch)
    with store.session() as s:
        data = list_watches(s)
    if as_json:
        print_json(data)
        return
    table = Table(title=f"{len(data)} watches")
    for col in ("name", "kind", "topic", "schedule", "last check", "status", "error"):
        table.add_column(col)
    for d in data:
        table.add_row(safe(d["name"]), d["kind"], safe(d["topic"] or ""), safe(d["schedule"]),
                      (d["last_check"] or "never")[:19], (d["status"] or "-") + (" (disabled)" if not d["enabled"]
                                                                                else ""),
                      safe((d["last_error"] or "")[:80]), style="red" if d["status"] == "failed" else None)
    console.print(table)


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply pending migrations (the daemon also does this at start)."""
    store = get_store(ctx)
    console.print(f"database {store!r} is at the latest schema")


@db.command("prune")
@click.option("--checks-older-than", "older_than", default=None, metavar="DURATION",
              help="Also delete checks older than this ('90d') that stored no snapshot.")
@click.option("--dry-run", is_flag=True, help="Say what retention would remove; remove nothing.")
@click.option("--vacuum", is_flag=True, help="Then give the space back: SQLite VACUUM (switching the file to "
              "incremental auto-vacuum), PostgreSQL VACUUM ANALYZE.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def db_prune(ctx: click.Context, older_than: str | None, dry_run: bool, vacuum: bool, as_json: bool) -> None:
    """Apply retention ([retention] keep_snapshots / max_age, per watch too) and report the space reclaimed.

    A snapshot that an event, an undelivered alert or the latest state needs is never removed (see
    watcher/retention.py). The daemon does the same once a day."""
    from watcher.config import parse_duration
    from watcher.retention import database_size, describe_rule, prune_snapshots
    from watcher.retention import vacuum as do_vacuum

    age = None
    if older_than is not None:
        try:
            age = parse_duration(older_than)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--checks-older-than") from e
    config, store = get_config(ctx), get_store(ctx)
    report = prune_snapshots(store, config, dry_run=dry_run)
    checks = None
    if age is not None and not dry_run:
        checks = store.prune_checks(age)
    if vacuum and not dry_run:
        do_vacuum(store)
        report.database["vacuumed"] = database_size(store)
    if as_json:
        print_json({**report.to_json(), "dry_run": dry_run, "checks_deleted": checks})
        return
    console.print(f"retention: keep {describe_rule(config.retention)} per watch"
                  + (f" ({sum(w.retention is not None for w in config.watch)} watches have their own)"
                     if any(w.retention is not None for w in config.watch) else ""))
    console.print(("dry run: would have " if dry_run else "") + report.summary(), soft_wrap=True)
    if checks is not None:
        console.print(f"deleted {checks} checks older than {older_than}")
    if "vacuumed" in report.database:
        after = report.database["vacuumed"]
        console.print(f"after vacuum: {after.get('bytes', 0) / 1e6:.2f} MB")
