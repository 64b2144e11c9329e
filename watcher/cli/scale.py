"""`watcher worker`: check due watches taken from the shared Redis queue (see watcher/scale.py)."""

from __future__ import annotations

import click

from watcher.cli._common import err_console, get_config, get_store


@click.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Check the watches the active scheduler puts on the Redis queue, until SIGTERM/SIGINT."""
    import asyncio

    from watcher.runtime import reactor_loop, run_sync
    from watcher.scale import run_worker_role

    config, store = get_config(ctx), get_store(ctx, long_running=True)
    store.sync_watches(config.watch)
    if (ctx.find_root().obj or {}).get("log_format") != "json":  # stderr stays one JSON object per line
        err_console.print(f"watcher worker: database {store!r}, queue {config.redis.url}; Ctrl-C to stop")
    stop, hup = asyncio.Event(), asyncio.Event()
    reactor_loop()
    run_sync(lambda: run_worker_role(store, config, stop, hup=hup), stop_on_signal=stop, reload_on_signal=hup)
