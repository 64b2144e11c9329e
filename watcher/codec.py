"""Snapshot content codec: a Document as zlib-compressed JSON (the snapshot's stored text). Free of the store's
imports: processing workers encode the snapshots they extract."""

from __future__ import annotations

import datetime as dt
import json
import zlib
from typing import Any

from watcher.records import Document, ListBlock, Table


def encode_document(doc: Document) -> bytes:
    data: dict[str, Any] = {
        "url": doc.url,
        "final_url": doc.final_url,
        "format": doc.format,
        "title": doc.title,
        "text": doc.text,
        "published": doc.published.isoformat() if doc.published else None,
        "modified": doc.modified.isoformat() if doc.modified else None,
        "entry_key": doc.entry_key,
        "description": doc.description,
        "headings": list(doc.headings),
        "tables": [{"header": list(t.header), "rows": [list(r) for r in t.rows], "caption": t.caption}
                   for t in doc.tables],
        "lists": [{"items": list(b.items), "heading": b.heading, "lead": b.lead} for b in doc.lists],
    }
    return zlib.compress(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(), 6)


def decode_document(blob: bytes) -> Document:
    data = json.loads(zlib.decompress(blob))
    date = dt.date.fromisoformat
    return Document(
        url=data["url"],
        final_url=data.get("final_url"),
        format=data["format"],
        title=data.get("title"),
        text=data["text"],
        published=date(data["published"]) if data.get("published") else None,
        modified=date(data["modified"]) if data.get("modified") else None,
        entry_key=data.get("entry_key", ""),
        description=data.get("description"),
        headings=tuple(data.get("headings", ())),
        tables=tuple(Table(tuple(t["header"]), tuple(tuple(r) for r in t["rows"]), t.get("caption"))
                     for t in data.get("tables", ())),
        lists=tuple(ListBlock(tuple(b["items"]), b.get("heading"), b.get("lead")) for b in data.get("lists", ())),
    )
