"""`watcher status`: how the running deployment is doing, one section per concern.

Each section is a function `(config, store) -> dict` in the module that owns the concern, listed in
SECTIONS; `--json` prints every section under its name, the text form renders each with its renderer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import click
from rich.table import Table

from watcher.cli._common import console, get_config, get_store, print_json, safe

# section name -> "module:function(config, store) -> dict"
SECTIONS: dict[str, str] = {
    "scale": "watcher.scale:status",
}


def collect(config: Any, store: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, target in SECTIONS.items():
        module, _, attr = target.partition(":")
        try:
            out[name] = getattr(importlib.import_module(module), attr)(config, store)
        except Exception as e:  # one broken section must not hide the others
            out[name] = {"error": f"{e.__class__.__name__}: {e}"}
    return out


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print every section as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the state of the deployment: scheduler, workers, queue, per-domain requests in flight."""
    config, store = get_config(ctx), get_store(ctx)
    data = collect(config, store)
    if as_json:
        print_json(data)
        return
    for name, section in data.items():
        RENDERERS.get(name, _render_plain)(name, section)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _render_plain(name: str, section: dict[str, Any]) -> None:
    table = Table(title=name, show_header=False)
    for k, v in section.items():
        table.add_row(safe(k), safe(v))
    console.print(table)


def _render_scale(name: str, s: dict[str, Any]) -> None:
    console.print(f"[bold]scale-out[/] (Redis {safe(s.get('redis'))})")
    if "error" in s:
        console.print(f"  [red]{safe(s['error'])}[/]")
        return
    memory = (s.get("memory_bytes") or 0) / 1e6
    console.print(f"  Redis: {s.get('keys')} keys in this database; server memory {memory:.1f} MB")
    sched = s.get("scheduler") or {}
    active, holder = sched.get("active"), sched.get("lock_holder")
    if active:
        console.print(f"  active scheduler: {safe(active['id'])}, heartbeat {_age(active['heartbeat_age_s'])}, "
                      f"{active.get('queued', 0)} enqueued, {active.get('coalesced', 0)} coalesced")
    else:
        console.print("  active scheduler: [red]none[/] (no `watcher run --role scheduler` holds the lock)")
    if holder and "error" not in holder:
        console.print(f"  PostgreSQL lock held by {safe(holder.get('application'))} ({safe(holder.get('client'))}, "
                      f"backend {holder.get('backend_pid')})")
    for sb in sched.get("standby") or []:
        console.print(f"  standby scheduler: {safe(sb['id'])}, heartbeat {_age(sb['heartbeat_age_s'])}")
    workers = s.get("workers") or []
    if not workers:
        console.print("  workers: none seen in the last hour (start `watcher worker`)")
    table = Table(title=f"{sum(w['alive'] for w in workers)} live workers")
    for col in ("worker", "last heartbeat", "in flight", "checks", "state"):
        table.add_column(col)
    for w in workers:
        table.add_row(safe(w["id"]), _age(w["heartbeat_age_s"]), f"{w.get('in_flight', 0)}/{w.get('capacity', '?')}",
                      str(w.get("checks", 0)), "alive" if w["alive"] else "[red]silent[/]")
    if workers:
        console.print(table)
    q = s.get("queue") or {}
    console.print(f"  queue: {q.get('waiting', 0)} waiting, {q.get('in_progress', 0)} in progress")
    for label, key in (("oldest waiting", "oldest_waiting"), ("oldest in progress", "oldest_in_progress")):
        job = q.get(key)
        if job:
            who = f" on {safe(job['worker'])}" if job.get("worker") else ""
            console.print(f"  {label}: {safe(job['watch'])} due {job['due']}, enqueued {_age(job['age_s'])}{who}")
    domains = s.get("domains") or {}
    if domains:
        table = Table(title="requests in flight per domain")
        for col in ("domain", "in flight", "limit", "delay"):
            table.add_column(col)
        for host, d in domains.items():
            table.add_row(safe(host), str(d["in_flight"]), str(d["limit"]),
                          "" if d["delay_s"] is None else f"{d['delay_s']}s")
        console.print(table)


RENDERERS: dict[str, Callable[[str, dict[str, Any]], None]] = {"scale": _render_scale}
