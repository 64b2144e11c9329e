"""Column types that make every string safe to store, the same way on SQLite and PostgreSQL.

Scraped text reaches the database in titles, evidence, summaries, errors, keys and JSON. PostgreSQL refuses
a NUL character in text and a value longer than a VARCHAR's length, and both backends' drivers refuse a
lone surrogate (JSON's "\\ud800"); SQLite stores the rest as given. These types clean every bound value
(insert, update and the values compared in WHERE clauses alike) before either backend sees it:
control characters (but tab, newline, carriage return) removed, lone surrogates replaced, lengths cut to
the column's, and keys that identify rows hashed when too long rather than cut (so two long keys that
share a prefix stay two keys). Callers that compare such keys in Python bound them with the same
`watcher.text.safe_key` where they are made.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String, Text, TypeDecorator

from watcher.text import clean_text, safe_key


class SafeString(TypeDecorator[str]):
    """VARCHAR(length): cleaned, then cut to `length` (or, for a `key`, hashed to fit)."""

    impl = String
    cache_ok = True

    def __init__(self, length: int, *, key: bool = False) -> None:
        super().__init__(length)
        self.length = length
        self.key = key

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        if self.key:
            return safe_key(value, self.length)
        return clean_text(value)[: self.length]


class SafeText(TypeDecorator[str]):
    """TEXT: cleaned."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else clean_text(value)


def clean_json(value: Any) -> Any:
    """Every string of a JSON value (keys included) cleaned; other values as they are."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


class SafeJSON(TypeDecorator[Any]):
    """JSON whose strings are cleaned (PostgreSQL's json accepts "\\u0000" but jsonb and text casts do not)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return clean_json(value)
