"""How facts and change events read: one wording for email, webhook `summary`, Atom, the CLI and the web page.

Pure functions of the JSON values that events and the topic view carry. A release window reads as its
text and its dates ("late 2027 (Sep–Dec 2027)"), a cast change as a sentence ("Roh Yoon-seo: exited",
"Park Ji-hu joins as Nam On-jo (returning)"), never as a dict.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from watcher.records import ChangeEvent

# fact kind -> the event type its changes have (cast has three: added, removed, status changed)
FACT_EVENT_TYPES = {
    "release": "release_changed",
    "renewal": "renewal_changed",
    "production": "production_changed",
    "filming": "filming_changed",
    "trailer": "trailer_changed",
    "platform": "platform_changed",
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NAMES = {name.casefold(): abbr.casefold() for abbr, name in zip(_MONTHS, (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December"), strict=True)}
_MONTH_NAMES["sept"] = "sep"


def event_kind(event: ChangeEvent) -> str:
    """The fact kind an event is about ('release', 'cast', ...), or the event type for other events."""
    if event.type.startswith("cast_"):
        return "cast"
    for kind, type_ in FACT_EVENT_TYPES.items():
        if type_ == event.type:
            return kind
    return event.type


# --------------------------------------------------------------------------- values


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return None


def day_text(day: dt.date) -> str:
    """'5 Mar 2027'."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def window_dates(earliest: dt.date, latest: dt.date) -> str:
    """The dates of a window, as short as they stay exact: '5 Mar 2027', 'Mar 2027', 'Sep–Dec 2027',
    '2027', 'Dec 2026–Feb 2027', '15 Nov–31 Dec 2027'."""
    if earliest == latest:
        return day_text(earliest)
    whole_months = earliest.day == 1 and (latest + dt.timedelta(days=1)).day == 1
    if whole_months:
        first, last = _MONTHS[earliest.month - 1], _MONTHS[latest.month - 1]
        if earliest.year == latest.year:
            if earliest.month == latest.month:
                return f"{first} {latest.year}"
            if (earliest.month, latest.month) == (1, 12):
                return str(latest.year)
            return f"{first}–{last} {latest.year}"
        return f"{first} {earliest.year}–{last} {latest.year}"
    if earliest.year == latest.year:
        return f"{earliest.day} {_MONTHS[earliest.month - 1]}–{day_text(latest)}"
    return f"{day_text(earliest)}–{day_text(latest)}"


def _tokens(text: str) -> set[str]:
    words = re.findall(r"[a-z]+|\d+", text.casefold())
    return {_MONTH_NAMES.get(w, w) for w in words if w not in ("st", "nd", "rd", "th", "of", "the")}


def release_text(value: dict[str, Any]) -> str:
    """'late 2027 (Sep–Dec 2027)'; the dates are left out when the text says them already ('March 2027')."""
    earliest, latest = _date(value.get("earliest")), _date(value.get("latest"))
    dates = window_dates(earliest, latest) if earliest and latest and earliest <= latest else ""
    text = " ".join(str(value.get("text") or "").split())
    if not text:
        out = dates or "unknown"
    elif not dates or _tokens(text) == _tokens(dates):
        out = text
    else:
        out = f"{text} ({dates})"
    return f"officially {out}" if value.get("announced") else out


def _filming_day(value: dict[str, Any], part: str) -> tuple[dt.date | None, str]:
    """A filming date and its text: '23 Jul 2025', or 'Sep 2022' when the source named only the month (the
    stored date is then the month's first day, which the text must not claim)."""
    day = _date(value.get(part))
    if day is None:
        return None, ""
    if value.get(f"{part}_precision") == "month":
        return day, f"{_MONTHS[day.month - 1]} {day.year}"
    return day, day_text(day)


def filming_text(value: dict[str, Any]) -> str:
    (start, start_text), (end, end_text) = _filming_day(value, "start"), _filming_day(value, "end")
    if start and end:
        return f"{start_text} to {end_text}"
    if start:
        return f"started {start_text}"
    return f"wrapped {end_text}" if end else "unknown"


def cast_text(value: dict[str, Any]) -> str:
    """A cast member's part: 'as Nam On-jo (returning)', 'exited (played Choi Nam-ra)', 'new'."""
    status = value.get("status") or "listed"
    character = value.get("character")
    if status == "exited":
        return f"exited (played {character})" if character else "exited"
    if not character:
        return status
    return f"as {character}" if status == "listed" else f"as {character} ({status})"


def describe(kind: str, value: Any) -> str:
    """Human text of a fact value, as alerts, the topic view and the CLI show it."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        if kind == "release":
            return release_text(value)
        if kind == "filming":
            return filming_text(value)
        if kind == "cast":
            return cast_text(value)
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if kind == "trailer" and value == "none":
        return "no trailer yet"  # the extracted value "none" means the text says there is none, not unknown
    return str(value)


# --------------------------------------------------------------------------- events

_LABELS = {"release": "release", "renewal": "renewal", "production": "production", "filming": "filming",
           "trailer": "trailer", "platform": "platform"}
# Importance in an alert: what readers care about first (DESIGN: release, renewal, production, cast exits,
# cast additions, text). Consensus follows the fact it is about; failures of fetching come last.
_RANK = {"release_changed": 0, "renewal_changed": 1, "production_changed": 2, "filming_changed": 3,
         "cast_exit": 4, "cast_added": 5, "cast_status_changed": 6, "cast_removed": 6, "trailer_changed": 7,
         "platform_changed": 8, "article_added": 9, "text_changed": 10, "fetch_failed": 11, "fetch_recovered": 11}
_KIND_RANK = {"release": 0, "renewal": 1, "production": 2, "filming": 3, "cast": 5, "trailer": 7, "platform": 8}


def importance(event: ChangeEvent) -> float:
    """Sort key of an event within one alert: lower is more important."""
    if event.type == "topic_consensus_changed":
        kind = (event.subject or "").partition(":")[0]
        return _KIND_RANK.get(kind, 9) + 0.5
    if event.type.startswith("cast_") and isinstance(event.new, dict) and event.new.get("status") == "exited":
        return _RANK["cast_exit"]
    if event.type == "cast_removed":
        return _RANK["cast_exit"] + 0.5
    return _RANK.get(event.type, 12)


def _cast_headline(event: ChangeEvent) -> str:
    name = event.subject
    old = event.old if isinstance(event.old, dict) else {}
    new = event.new if isinstance(event.new, dict) else {}
    if event.type == "cast_removed":
        # 'Kim Byung-chul (Lee Byeong-chan): no longer listed', '... (was returning)': never 'was as ...'
        who = f"{name} ({old['character']})" if old.get("character") and old["character"] != name else name
        was = old.get("status") or "listed"
        return f"{who}: no longer listed" + ("" if was == "listed" else f" (was {was})")
    status, character = new.get("status") or "listed", new.get("character")
    as_role = f" as {character}" if character else ""
    if event.type == "cast_added":
        if status == "exited":
            return f"{name}: exited" + (f" (played {character})" if character else "")
        if status == "unconfirmed":
            return f"{name} may join{as_role} (unconfirmed)"
        return f"{name} joins{as_role or ' the cast'}" + ("" if status == "listed" else f" ({status})")
    old_status, old_character = old.get("status") or "listed", old.get("character")
    if status == old_status and character != old_character:
        return f"{name} now plays {character or 'an unnamed role'} (was {old_character or 'unnamed'})"
    who = f"{name} ({character or old_character})" if character or old_character else name
    return f"{who}: {status} (was {old_status})"


def summarise(event: ChangeEvent, *, short: bool = False) -> str:
    """One line saying what changed. `short` (subject lines) leaves out the dates of release windows:
    'release early 2027 (was 2023)' instead of 'release early 2027 (Jan–Apr 2027), was 2023'."""
    kind = event_kind(event)
    if kind == "cast":
        return _cast_headline(event)
    if kind in _LABELS:
        label = _LABELS[kind]
        text = _short_release if short and kind == "release" else (lambda v: describe(kind, v))
        if event.new is None:
            return f"{label} no longer stated (was {text(event.old)})"
        if event.old is None:  # ', not stated before' as ', was ...' below: no '(Sep–Dec 2027) (...)' pair
            return f"{label} {text(event.new)}" + (" (not stated before)" if short else ", not stated before")
        if short:
            return f"{label} {text(event.new)} (was {text(event.old)})"
        return f"{label} {text(event.new)}, was {text(event.old)}"
    if event.type == "text_changed" and isinstance(event.new, dict):
        added, removed = event.new.get("added", 0), event.new.get("removed", 0)
        return f"text changed ({_lines(added)} added, {_lines(removed)} removed), no fact changed"
    if event.type == "article_added" and isinstance(event.new, dict):
        title = event.new.get("title") or event.subject or event.source_url or "untitled"
        if short:
            return f"new article: {title}"
        facts = event.new.get("facts") or {}
        about = "; ".join(f"{k} {v}" for k, v in facts.items())
        return f"new article: {title}" + (f" — {about}" if about else "")
    return event.summary or event.type


def _short_release(value: dict[str, Any]) -> str:
    """A release window by its words only ('early 2027'), for subject lines."""
    text = str(value.get("text") or "") or release_text(value)
    return f"officially {text}" if value.get("announced") and not text.startswith("officially") else text


def _lines(n: int) -> str:
    return f"{n} line" + ("s" if n != 1 else "")
