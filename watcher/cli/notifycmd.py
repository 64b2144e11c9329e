"""The outbox from the command line: `watcher alerts`, `watcher alerts retry ID`, `watcher notify test SUB`,
`watcher sender`."""

from __future__ import annotations

import sys

import click

from watcher.cli._common import console, err_console, get_config, get_store, preflight, print_json, safe

STATUSES = ("pending", "sending", "sent", "dead")


@click.group(invoke_without_command=True)
@click.option("--status", type=click.Choice(STATUSES), help="Only alerts in this state.")
@click.option("--subscriber", help="Only alerts for this subscriber.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def alerts(ctx: click.Context, status: str | None, subscriber: str | None, limit: int, as_json: bool) -> None:
    """List alerts in the outbox, newest first (`watcher alerts retry ID` re-queues one)."""
    if ctx.invoked_subcommand is not None:
        return
    from watcher.review import list_alerts

    with get_store(ctx).session() as s:
        rows = list_alerts(s, status=status, subscriber=subscriber, limit=limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no alerts" + (f" with status {status}" if status else ""))
        return
    from rich.table import Table

    table = Table(title="alerts")
    for col in ("id", "created", "subscriber", "status", "tries", "event", "change", "last error"):
        table.add_column(col)
    colours = {"sent": "green", "dead": "red", "sending": "yellow"}
    for r in rows:
        table.add_row(str(r["id"]), r["created_at"][:16], safe(r["subscriber"]), r["status"], str(r["attempts"]),
                      r["event"]["type"] + (f" +{r['events'] - 1}" if r["events"] > 1 else ""),
                      safe(r["event"]["summary"])[:80], safe(r["last_error"] or "")[:80],
                      style=colours.get(r["status"]))
    console.print(table)


@alerts.command("retry")
@click.argument("alert_id")
@click.pass_context
def alerts_retry(ctx: click.Context, alert_id: str) -> None:
    """Re-queue alert ALERT_ID (the id column, or the alert id) for delivery now."""
    from watcher.notify import retry_alert

    row = retry_alert(get_store(ctx), alert_id)
    console.print(f"alert {row.id} re-queued; the sender delivers it on its next pass")


@click.group()
def notify() -> None:
    """Check the notification wiring."""


@notify.command("test")
@click.argument("subscriber")
@click.pass_context
def notify_test(ctx: click.Context, subscriber: str) -> None:
    """Send a sample alert to SUBSCRIBER now (not through the outbox). Exit code 1 when it fails."""
    from watcher.errors import NotifyError
    from watcher.notify import send_test

    config = get_config(ctx)
    sub = config.subscriber_by_name(subscriber)
    preflight(ctx, subscriber=subscriber)
    try:
        delivery = send_test(config, subscriber)
    except NotifyError as e:
        err_console.print(f"[red]failed:[/red] {safe(e)}" + ("" if e.retryable else " (permanent)"))
        sys.exit(1)
    console.print(f"sent a test alert to {safe(sub.name)} ({sub.kind}), id {delivery.delivery_id}")


@click.command()
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the result as JSON.")
@click.pass_context
def sender(ctx: click.Context, once: bool, as_json: bool) -> None:
    """Deliver the outbox: alone (`watcher run` also does this), or as one of several sender processes."""
    from watcher.notify import deliver_due, sender_loop

    config, store = get_config(ctx), get_store(ctx, long_running=not once)
    preflight(ctx, store=store)
    store.sync_subscribers(config.subscriber)
    if once:
        report = deliver_due(store, config)
        if as_json:
            print_json({"sent": report.sent, "retrying": report.retrying, "dead": report.dead,
                        "errors": report.errors})
        else:
            console.print(f"sent {report.sent}, retrying {report.retrying}, dead {report.dead}")
        return
    import asyncio
    import signal

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        err_console.print(f"watcher sender: delivering the outbox of {store!r}; Ctrl-C to stop")
        await sender_loop(store, config, stop)

    asyncio.run(main())
