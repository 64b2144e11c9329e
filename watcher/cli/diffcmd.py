"""`watcher diff OLD NEW`, `watcher changes`, `watcher topic TOPIC`: what changed, and who claims what."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

from watcher.errors import WatcherError
from watcher.text import display_url, shorten

_DATE = click.DateTime(formats=["%Y-%m-%d"])


def _facts_of(source: str, fmt: str, published: dt.datetime | None) -> tuple[Any, str]:
    from watcher.cli.extract import load_raw
    from watcher.document import normalise
    from watcher.extract import extract

    doc = normalise(load_raw(source, fmt))
    return extract(doc, reference_date=published.date() if published else None), doc.text


@click.command("diff")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option("--format", "fmt", type=click.Choice(["auto", "html", "wordpress", "feed", "text"]), default="auto",
              show_default=True, help="Format of both documents.")
@click.option("--old-published", type=_DATE, help="Reference date of OLD (for 'this year', 'next year').")
@click.option("--new-published", type=_DATE, help="Reference date of NEW.")
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON.")
def diff(old: str, new: str, fmt: str, old_published: dt.datetime | None, new_published: dt.datetime | None,
         as_json: bool) -> None:
    """Compare the facts of two documents (files or URLs) and print the change events.

    Exit code 0 whether or not something changed; 4 when a document cannot be read.
    """
    from watcher.cli._common import console, err_console, print_json, safe
    from watcher.diff import diff_documents

    try:
        old_facts, old_text = _facts_of(old, fmt, old_published)
        new_facts, new_text = _facts_of(new, fmt, new_published)
    except WatcherError as e:
        err_console.print(f"[red]error:[/red] {safe(e)}")
        sys.exit(4)
    events = diff_documents(old_facts.facts, new_facts.facts, old_text, new_text)
    if as_json:
        print_json([e.model_dump(mode="json", exclude_none=True,
                                 exclude={"topic", "watch", "source_url", "detected_at", "uid"}) for e in events])
        return
    if not events:
        console.print("no change")
        return
    from rich.table import Table

    table = Table(title=safe(f"{old} -> {new}"))
    for col in ("event", "change", "evidence"):
        table.add_column(col)
    for e in events:
        table.add_row(e.type, safe(e.summary), safe(e.evidence)[:160])
    console.print(table)


@click.command("changes")
@click.option("--topic", "topic", help="Only this topic ('All of Us Are Dead S2').")
@click.option("--watch", "watch", help="Only this watch.")
@click.option("--since", type=_DATE, help="Only events detected on or after this date.")
@click.option("--type", "types", multiple=True, help="Only these event types (repeatable).")
@click.option("--all", "include_pending", is_flag=True, help="Include pending, dropped and flapping events.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def changes(ctx: click.Context, topic: str | None, watch: str | None, since: dt.datetime | None,
            types: tuple[str, ...], include_pending: bool, limit: int, as_json: bool) -> None:
    """List stored change events, newest first."""
    from watcher.cli._common import console, get_store, print_json, safe
    from watcher.review import list_events

    with get_store(ctx).session() as s:
        data = list_events(s, topic=topic, watch=watch, since=since, types=types,
                           include_pending=include_pending, limit=limit)
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    table = Table(title="change events")
    for col in ("id", "detected", "topic", "watch", "event", "change"):
        table.add_column(col)
    for d in data:
        state = "" if d["state"] == "confirmed" else f" [{d['state']}]"
        table.add_row(str(d["id"]), d["detected_at"][:16], safe(d["topic_label"] or ""), safe(d["watch"] or ""),
                      d["type"] + state, safe(shorten(d["summary"], 120)))
    console.print(table)


def topic_json(view: Any) -> dict[str, Any]:
    """The JSON form of a TopicView (also used by the review commands)."""
    def claim(c: Any) -> dict[str, Any]:
        return {"watch": c.watch, "source": c.source, "value": c.value, "display": c.display,
                "published": c.published.isoformat() if c.published else None,
                "fetched_at": c.fetched_at.isoformat(), "evidence": c.evidence, "confidence": c.confidence,
                "snapshot_id": c.snapshot_id, "url": display_url(c.url)}

    return {"topic": view.key, "label": view.label, "sources": view.sources(), "facts": [
        {"kind": li.kind, "subject": li.subject, "current": claim(li.current) if li.current else None,
         "disagreement": li.disagreement, "agreed_by": sorted(li.sources) if li.agreement else [],
         "sources_now": {src: c.display for src, c in li.sources.items()},
         "stale": {src: c.display for src, c in li.stale.items()},
         "claims": [claim(c) for c in li.claims]} for li in view.lines]}


@click.command("topic")
@click.argument("topic", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def topic(ctx: click.Context, topic: str | None, as_json: bool) -> None:
    """Show a topic's current facts, their sources and disagreements (no TOPIC: list the topics)."""
    from watcher.cli._common import console, err_console, get_config, get_store, print_json, safe
    from watcher.topic import UnknownTopic, list_topics, topic_view

    store = get_store(ctx)
    age = get_config(ctx).topics.stale_after
    try:
        with store.session() as s:
            views = [topic_view(s, topic, stale_after=age)] if topic else list_topics(s, stale_after=age)
    except UnknownTopic as e:
        err_console.print(f"[red]error:[/red] {safe(e)}")
        sys.exit(e.exit_code)
    if as_json:
        print_json(topic_json(views[0]) if topic else [topic_json(v) for v in views])
        return
    if not views:
        console.print("no topics yet: run `watcher check` first")
        return
    from rich.table import Table

    for view in views:
        table = Table(title=safe(f"{view.label} ({', '.join(view.sources())})"))
        for col in ("fact", "current", "source", "published", "sources"):
            table.add_column(col)
        for li in view.lines:
            cur = li.current
            name = li.kind + (f": {li.subject}" if li.subject else "")
            if li.disagreement:
                sources = "disagree: " + "; ".join(f"{src}: {val}" for src, val in li.disagreement.items())
            elif li.agreement:
                sources = f"{len(li.sources)} agree"
            else:
                sources = ""
            if li.stale:
                sources += ("; " if sources else "") + "too old: " + ", ".join(li.stale)
            table.add_row(safe(name), safe(cur.display if cur else "-"), safe(cur.source if cur else ""),
                          str(cur.published or "") if cur else "", safe(sources))
        console.print(table)
