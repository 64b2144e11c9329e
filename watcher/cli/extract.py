"""`watcher extract PATH_OR_URL`: the facts of one document (DESIGN.md schema with --json).

A feed with several entries: the first entry's facts are printed unless --entry N (0-based) picks another.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click

from watcher.errors import DocumentError, WatcherError

_FORMATS = {"auto": "auto", "html": "html", "wordpress": "wordpress", "feed": "feed", "text": "text"}


def load_raw(source: str, fmt: str = "auto", entry: int = 0):
    """Bytes of a local file or URL -> one RawDocument (the lead's parsers); DocumentError if unreadable."""
    from spiders.parsers import parse_body

    if source.startswith(("http://", "https://")):
        from spiders import fetch_once

        kind = fmt if fmt in ("html", "wordpress", "feed") else "html"
        outcome = fetch_once(source, kind, operator_url=True)
        if outcome.status != "ok" or not outcome.documents:
            raise DocumentError(outcome.reason or "fetch-failed", f"{source}: {outcome.error or outcome.reason}")
        docs = list(outcome.documents)
        if kind == "html" and len(docs) == 1 and fmt in ("auto", "text"):
            # fetched as a page; the body may really be WordPress JSON, a feed or plain text: re-read it
            from spiders.parsers import detect_format

            body = docs[0].body.encode()
            detected = "text" if fmt == "text" else detect_format(body, None, source)
            if detected != "html":
                docs = parse_body(body, source, detected)
    else:
        try:
            body = Path(source).read_bytes()
        except OSError as e:
            raise DocumentError("unreadable", f"cannot read {source}: {e.strerror or e}") from e
        docs = parse_body(body, Path(source).resolve().as_uri(), fmt)
    if not docs:
        raise DocumentError("no-documents", f"{source}: no document found")
    if not 0 <= entry < len(docs):
        raise DocumentError("no-such-entry", f"{source}: entry {entry} not found ({len(docs)} entries)")
    return docs[entry]


@click.command("extract")
@click.argument("source", metavar="PATH_OR_URL")
@click.option("--format", "fmt", type=click.Choice(list(_FORMATS)), default="auto", show_default=True)
@click.option("--published", type=click.DateTime(formats=["%Y-%m-%d"]), help="Reference date for relative phrases.")
@click.option("--entry", type=int, default=0, show_default=True, help="Feed entry to extract (0-based).")
@click.option("--json", "as_json", is_flag=True, help="Print the fact set as JSON (DESIGN.md schema).")
def extract(source: str, fmt: str, published: dt.datetime | None, entry: int, as_json: bool) -> None:
    """Print the facts of one document (a file or URL).

    --format auto recognises WordPress REST JSON, feed XML, HTML and plain text. A feed's first entry is
    used unless --entry picks another. Exit code 4 when the input cannot be read.
    """
    from watcher.cli._common import console, err_console, print_json, safe
    from watcher.document import normalise
    from watcher.extract import extract as run_extract

    try:
        raw = load_raw(source, _FORMATS[fmt], entry)
        doc = normalise(raw)
    except WatcherError as e:
        err_console.print(f"[red]error:[/red] {safe(e)}")
        sys.exit(4)
    ref = published.date() if published else None
    facts = run_extract(doc, reference_date=ref)
    if as_json:
        print_json(facts.to_json_dict())
        return
    console.print(facts_table(facts.to_json_dict(), doc.title or source))


def facts_table(data: dict[str, Any], title: str) -> Any:
    """A terminal table of one document's facts (`data` is a FactSet's JSON form); scraped text made safe."""
    from rich.table import Table

    from watcher.cli._common import safe

    table = Table(title=safe(f"{data.get('work') or '?'} season {data.get('season') or '?'} — {title}"))
    for col in ("fact", "value", "confidence", "evidence"):
        table.add_column(col)
    for key, value in data.get("facts", {}).items():
        if key == "cast":
            for actor, c in value.items():
                val = f"{actor} as {c.get('character') or '?'} ({c['status']})"
                table.add_row("cast", safe(val), f"{c['confidence']:.2f}", safe(c.get("evidence", ""))[:120])
            continue
        shown = {k: v for k, v in value.items() if k not in ("evidence", "confidence")}
        if key == "release":
            text = (f"{shown['text']} ({shown['earliest']} – {shown['latest']}, {shown['precision']}"
                    f"{', announced' if shown['announced'] else ''})")
        elif "value" in shown:
            text = shown["value"]
        else:
            text = ", ".join(f"{k} {v}" for k, v in shown.items())
        table.add_row(key, safe(text), f"{value.get('confidence', 0):.2f}",
                      safe(value.get("evidence", ""))[:120])
    return table
