"""The diff stage: typed change events between two fact sets. Pure functions, no I/O.

Every fact is addressed by a key `(kind, subject)`: `("release", "")`, `("renewal", "")`, ...,
`("cast", "Park Ji-hu")`. An event carries the key's old and new *value* (the fact without its
evidence and confidence), so `apply_events(a, diff_facts(a, b))` rebuilds b's values: the property
the tests check. Values compare on what matters to a reader (a release window compares on its
interval, precision and whether it is official, not on its wording), so rewording raises nothing.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from watcher.describe import FACT_EVENT_TYPES, event_kind, summarise
from watcher.records import CastFact, ChangeEvent, Facts, FilmingFact, ReleaseFact, ScalarFact, name_key

FactKey = tuple[str, str]

SCALAR_KINDS = ("renewal", "production", "platform", "trailer")
# Order of events in a diff: what readers care about first.
KIND_ORDER = ("release", "renewal", "production", "filming", "cast", "trailer", "platform")
_TYPES = FACT_EVENT_TYPES
_NOT_VALUE = {"evidence", "confidence"}
TEXT_DIFF_MAX_LINES = 400


# --------------------------------------------------------------------------- fact values


def fact_values(facts: Facts) -> dict[FactKey, Any]:
    """Every stated fact as `(kind, subject) -> JSON value` (evidence and confidence left out)."""
    out: dict[FactKey, Any] = {}
    if facts.release:
        out[("release", "")] = facts.release.model_dump(mode="json", exclude=_NOT_VALUE)
    for kind in SCALAR_KINDS:
        fact = getattr(facts, kind)
        if fact is not None:
            out[(kind, "")] = fact.value
    if facts.filming and (facts.filming.start or facts.filming.end):
        out[("filming", "")] = facts.filming.model_dump(mode="json", exclude=_NOT_VALUE, exclude_none=True)
    for name, cast in facts.cast.items():
        out[("cast", name)] = cast.model_dump(mode="json", exclude=_NOT_VALUE)
    return out


def _evidence(facts: Facts, key: FactKey) -> tuple[str, float]:
    kind, subject = key
    fact = facts.cast.get(subject) if kind == "cast" else getattr(facts, kind)
    return (fact.evidence, fact.confidence) if fact is not None else ("", 0.0)


def comparable(kind: str, value: Any) -> Any:
    """What two values of a kind are compared on; equal comparables mean no event."""
    if value is None:
        return None
    if kind == "release":
        return (value["earliest"], value["latest"], value["precision"], bool(value.get("announced")))
    if kind == "filming":
        return (value.get("start"), value.get("end"))
    if kind == "cast":
        # "Lee Suhyeok" and "Lee Su-hyeok" are one character: spelling noise, not a recast.
        return (value.get("status", "listed"), re.sub(r"\W", "", name_key(value.get("character") or "")))
    return str(value).casefold()


def _cast_index(facts: Facts) -> dict[str, str]:
    """name key (and alias keys) -> the display name used in `facts.cast`."""
    index: dict[str, str] = {}
    for name in facts.cast:
        index.setdefault(name_key(name), name)
    for name, cast in facts.cast.items():
        for alias in cast.aliases:
            index.setdefault(name_key(alias), name)
    return index


def _pair_keys(old: Facts, new: Facts) -> list[tuple[FactKey | None, FactKey | None]]:
    """Pairs of (old key, new key) naming the same fact; cast members pair by name or alias."""
    pairs: list[tuple[FactKey | None, FactKey | None]] = []
    for kind in KIND_ORDER:
        if kind != "cast":
            pairs.append(((kind, ""), (kind, "")))
    old_index = _cast_index(old)
    matched: set[str] = set()
    for name, cast in new.cast.items():
        found = None
        for key in (name_key(name), *map(name_key, cast.aliases)):
            candidate = old_index.get(key)
            if candidate is not None and candidate not in matched:
                found = candidate
                break
        if found is not None:
            matched.add(found)
        pairs.append((("cast", found) if found else None, ("cast", name)))
    pairs.extend((("cast", name), None) for name in old.cast if name not in matched)
    return pairs


# --------------------------------------------------------------------------- the diff


def diff_facts(old: Facts, new: Facts, *, new_text: str | None = None) -> list[ChangeEvent]:
    """Typed events turning `old` into `new`.

    With `new_text`, a fact missing from `new` whose evidence still stands in the new text is not
    reported as removed: the extraction was less sure this time, the page did not change its claim.
    """
    old_values, new_values = fact_values(old), fact_values(new)
    still_there = _Contains(new_text) if new_text is not None else None
    events: list[ChangeEvent] = []
    for old_key, new_key in _pair_keys(old, new):
        kind = (old_key or new_key)[0]  # type: ignore[index]
        before = old_values.get(old_key) if old_key else None
        after = new_values.get(new_key) if new_key else None
        if comparable(kind, before) == comparable(kind, after):
            continue
        if after is None and still_there is not None:
            evidence, _ = _evidence(old, old_key)  # type: ignore[arg-type]
            if evidence and still_there(evidence):
                continue
        source, key = (new, new_key) if after is not None else (old, old_key)
        evidence, confidence = _evidence(source, key)  # type: ignore[arg-type]
        if kind == "cast":
            type_ = "cast_added" if before is None else "cast_removed" if after is None else "cast_status_changed"
            subject = (new_key or old_key)[1]  # type: ignore[index]
        else:
            type_, subject = _TYPES[kind], ""
        event = ChangeEvent(type=type_, subject=subject, old=before, new=after, evidence=evidence,
                            confidence=confidence)
        event.summary = summarise(event)
        events.append(event)
    return events


def unreported_removals(old: Facts, new: Facts, events: list[ChangeEvent]) -> list[FactKey]:
    """Keys of `old` facts that `new` lacks although no event reported them gone (see `diff_facts`)."""
    old_values, new_values = fact_values(old), fact_values(new)
    reported = {(event_kind(e), e.subject) for e in events if e.new is None}
    missing = []
    for old_key, new_key in _pair_keys(old, new):
        if old_key is None or old_key not in old_values or old_key in reported:
            continue
        if new_key is None or new_key not in new_values:
            missing.append(old_key)
    return missing


class _Contains:
    """Whitespace- and case-insensitive substring test against one text."""

    def __init__(self, text: str) -> None:
        self.text = _squash(text)

    def __call__(self, fragment: str) -> bool:
        parts = [p for p in (_squash(x) for x in fragment.split("…")) if p]
        return bool(parts) and all(p in self.text for p in parts)


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


def apply_events(facts: Facts, events: Iterable[ChangeEvent]) -> Facts:
    """`facts` with each event's new value put in place (the inverse check of `diff_facts`)."""
    data: dict[str, Any] = facts.model_dump()
    cast: dict[str, Any] = dict(data["cast"])
    for event in events:
        kind = event_kind(event)
        extra = {"evidence": event.evidence, "confidence": event.confidence}
        if kind == "cast":
            old_name = next((n for n in cast if name_key(n) == name_key(event.subject)), None)
            if old_name is None and isinstance(event.old, dict):
                keys = {name_key(a) for a in event.old.get("aliases", [])}
                old_name = next((n for n in cast if name_key(n) in keys), None)
            if old_name is not None:
                del cast[old_name]
            if event.new is not None:
                cast[event.subject] = CastFact(**event.new, **extra).model_dump()
        elif kind in _TYPES:
            data[kind] = None if event.new is None else _build(kind, event.new, extra)
    data["cast"] = cast
    return Facts.model_validate(data)


def _build(kind: str, value: Any, extra: dict[str, Any]) -> dict[str, Any]:
    if kind == "release":
        return ReleaseFact(**value, **extra).model_dump()
    if kind == "filming":
        return FilmingFact(**value, **extra).model_dump()
    return ScalarFact(value=value, **extra).model_dump()


# --------------------------------------------------------------------------- text


def text_diff(old_text: str, new_text: str, *, old_label: str = "old", new_label: str = "new",
              context: int = 2) -> str | None:
    """Unified diff of two main texts, or None when they differ only in whitespace or line order."""
    old_lines = [" ".join(line.split()) for line in old_text.splitlines() if line.strip()]
    new_lines = [" ".join(line.split()) for line in new_text.splitlines() if line.strip()]
    if Counter(old_lines) == Counter(new_lines):  # same paragraphs, maybe reordered: not a change
        return None
    lines = list(difflib.unified_diff(old_lines, new_lines, old_label, new_label, n=context, lineterm=""))
    if len(lines) > TEXT_DIFF_MAX_LINES:
        lines = [*lines[:TEXT_DIFF_MAX_LINES], f"... ({len(lines) - TEXT_DIFF_MAX_LINES} more lines)"]
    return "\n".join(lines)


def text_changed_event(old_text: str, new_text: str) -> ChangeEvent | None:
    """`text_changed` for a text change that moved no fact; None when nothing a reader sees changed."""
    diff = text_diff(old_text, new_text)
    if diff is None:
        return None
    added = sum(1 for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in diff.splitlines() if line.startswith("-") and not line.startswith("---"))
    event = ChangeEvent(type="text_changed", new={"diff": diff, "added": added, "removed": removed}, confidence=1.0)
    event.summary = summarise(event)
    return event


def diff_documents(old: Facts, new: Facts, old_text: str | None = None, new_text: str | None = None
                   ) -> list[ChangeEvent]:
    """Fact events, or a single `text_changed` when the text changed and no fact did."""
    events = diff_facts(old, new, new_text=new_text)
    if not events and old_text is not None and new_text is not None:
        text_event = text_changed_event(old_text, new_text)
        if text_event is not None:
            events.append(text_event)
    return events


def event_uid(*parts: Any) -> str:
    """A stable event id from its identifying parts (JSON-encoded, so types and order matter)."""
    raw = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()
