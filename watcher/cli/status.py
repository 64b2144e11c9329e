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

from watcher.cli._common import console, err_console, get_config, get_store, print_json, safe
from watcher.errors import WatcherError

# section name -> "module:function(config, store) -> dict"
SECTIONS: dict[str, str] = {
    "scale": "watcher.scale:status",
    "schedule": "watcher.scheduler:status",
    "checks": "watcher.review:status_checks",
    "outbox": "watcher.notify.outbox:status",
    "health": "watcher.health:status",
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
    """Show the state of the deployment: scheduler, workers, queue, per-domain requests in flight; the
    schedule (next run per watch), the last checks, the outbox and the daemon's health."""
    config = get_config(ctx)
    try:
        store = get_store(ctx)
    except WatcherError as e:  # the database away is exactly when one asks: the sections that can still answer
        err_console.print(f"[yellow]warning:[/yellow] {safe(e)}", soft_wrap=True)
        store = None
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


def _render_health(name: str, h: dict[str, Any]) -> None:
    """The running daemon's own view (its health file): wakeups, checks, outages, watchdog restarts."""
    state = "[green]healthy[/]" if h.get("healthy") else "[red]unhealthy[/]"
    console.print(f"[bold]health[/] of `watcher run` ({safe(h.get('file'))}, written {_age(h.get('age_s'))}): {state}")
    for problem in h.get("problems") or []:
        console.print(f"  [red]{safe(problem)}[/]")
    if not h.get("written_at"):
        return
    sched = h.get("scheduler") or {}
    console.print(f"  pid {h.get('pid')}, role {safe(h.get('role'))}, {safe(h.get('state'))} since "
                  f"{safe(h.get('started_at'))}")
    console.print(f"  scheduler: last wakeup {safe(sched.get('last_wakeup') or 'never')}, next wakeup "
                  f"{safe(sched.get('next_wakeup') or '-')}, watchdog restarts {sched.get('watchdog_restarts', 0)}")
    restart = sched.get("last_watchdog_restart")
    if restart:
        console.print(f"  last watchdog restart: {safe(restart.get('at'))} ({safe(restart.get('problem'))})")
    for label, key in (("last check", "last_check"), ("last successful check", "last_successful_check")):
        c = h.get(key)
        text = (f"{c.get('at')} {c.get('watch')}: {c.get('outcome')}" + (f" ({c['reason']})" if c.get("reason") else "")
                if c else "none yet")
        console.print(f"  {label}: {safe(text)}")
    checks = h.get("checks") or {}
    if checks:
        console.print("  checks since start: " + ", ".join(f"{safe(k)} {v}" for k, v in sorted(checks.items())))
    for key, what in (("database", "database"), ("job_store", "job store")):
        e = h.get(key) or {}
        if not e:
            continue
        now = "ok" if e.get("ok") else f"[red]OUTAGE since {safe(e.get('since'))}[/], {e.get('failures')} failed " \
              f"attempts, last: {safe(e.get('error'))}"
        console.print(f"  {what}: {now}")
        for o in e.get("outages") or []:
            console.print(f"    outage {safe(o.get('from'))} .. {safe(o.get('to'))} ({o.get('seconds')}s, "
                          f"{o.get('failures')} failed attempts; {safe(o.get('error'))})")


def _in(seconds: float) -> str:
    from watcher.config import format_duration

    if seconds >= 0:
        return f"in {format_duration(round(seconds))}"
    return f"[red]{format_duration(round(-seconds))} late[/]"


def _render_schedule(name: str, s: dict[str, Any]) -> None:
    console.print(f"[bold]schedule[/] ({s.get('jobs', 0)} watches scheduled"
                  + (f", [red]{s['overdue']} overdue[/]" if s.get("overdue") else "") + ")")
    if "error" in s or "note" in s:
        console.print(f"  {safe(s.get('error') or s.get('note'))}")
        return
    if s.get("next"):
        table = Table(title=f"next runs (the soonest {len(s['next'])})")
        for col in ("watch", "next run (UTC)", "when", "schedule"):
            table.add_column(col)
        for job in s["next"]:
            table.add_row(safe(job["watch"]), job["next_run"][:19].replace("T", " "), _in(job["in_s"]),
                          safe(job["schedule"]))
        console.print(table)
    if s.get("not_scheduled_count"):
        console.print(f"  {s['not_scheduled_count']} enabled watches have no job yet (the daemon picks them up when "
                      f"it starts or reloads): {safe(', '.join(s['not_scheduled']))}")


def _render_checks(name: str, s: dict[str, Any]) -> None:
    console.print("[bold]checks[/]")
    if "error" in s:
        console.print(f"  [red]{safe(s['error'])}[/]")
        return
    last = s.get("last_check")
    if not last:
        console.print("  no check yet")
        return
    console.print(f"  last check: {safe(last['watch'])} {last['outcome']}, {_age(last['age_s'])} ({last['at'][:19]})")

    def counts(c: dict[str, int]) -> str:
        return ", ".join(f"{n} {k}" for k, n in sorted(c.items(), key=lambda kv: -kv[1])) or "none"

    console.print(f"  last hour: {counts(s.get('last_hour') or {})}")
    console.print(f"  last day: {counts(s.get('last_day') or {})}")
    console.print(f"  watches by their last check: {counts(s.get('watches_by_last_outcome') or {})}")
    if s.get("failing"):
        console.print(f"  [red]failing[/]: {safe(', '.join(s['failing']))}")


def _render_outbox(name: str, s: dict[str, Any]) -> None:
    console.print("[bold]outbox[/]")
    if "error" in s:
        console.print(f"  [red]{safe(s['error'])}[/]")
        return
    oldest = f", the oldest due one waiting {_age(s['oldest_due_age_s'])}" if s.get("oldest_due_age_s") else ""
    console.print(f"  {s['pending']} pending ({s['due_new']} new, {s['retrying']} retrying, {s['digest']} for a "
                  f"digest; {s['sending']} being sent){oldest}")
    dead = f"[red]{s['dead']} dead[/] (`watcher alerts --status dead`)" if s["dead"] else "0 dead"
    console.print(f"  {s['sent_last_day']} sent in the last day, {dead}")


RENDERERS: dict[str, Callable[[str, dict[str, Any]], None]] = {
    "scale": _render_scale,
    "schedule": _render_schedule,
    "checks": _render_checks,
    "outbox": _render_outbox,
    "health": _render_health,
}
