"""`/feed.atom` (change events) and `/calendar.ics` (each topic's current release window)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jinja2 import Environment

from watcher.text import display_url
from watcher.topic import TopicView


def atom_feed(env: Environment, events: list[dict[str, Any]], *, base: str, topic: str | None,
              label: str | None, now: dt.datetime) -> str:
    updated = max((e["detected_at"] for e in events), default=now.isoformat())
    feed_id = f"urn:watcher:events:{topic}" if topic else "urn:watcher:events"
    return env.get_template("feed.atom.xml").render(
        events=events, base=base, feed_id=feed_id, updated=updated,
        title=f"watcher: {label or topic}" if topic else "watcher: all changes",
        self_url=base + (f"/topic/{_quote(topic)}/feed.atom" if topic else "/feed.atom"))


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def release_calendar(topics: list[TopicView]) -> bytes:
    """One all-day event per topic: the exact day when the release date is known to the day, else a
    tentative span over the whole window."""
    from icalendar import Calendar, Event

    cal = Calendar()
    cal.add("prodid", "-//watcher//release windows//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "Release windows")
    stamp = dt.datetime.now(dt.UTC)
    for view in topics:
        line = view.line("release")
        claim = line.current if line else None
        if claim is None:
            continue
        try:
            earliest = dt.date.fromisoformat(claim.value["earliest"])
            latest = dt.date.fromisoformat(claim.value["latest"])
        except (KeyError, TypeError, ValueError):
            continue
        exact = claim.value.get("precision") == "day"
        event = Event()
        event.add("uid", f"{view.key.replace(' ', '-')}@watcher")
        event.add("dtstamp", stamp)
        event.add("summary", f"{view.label} release" + ("" if exact else f": {claim.display}"))
        event.add("dtstart", earliest)
        event.add("dtend", latest + dt.timedelta(days=1))
        event.add("status", "CONFIRMED" if exact and claim.value.get("announced") else "TENTATIVE")
        event.add("transp", "TRANSPARENT")
        url = display_url(claim.url)
        event.add("description", f"{claim.display} — claimed by {claim.source} ({url})\n\n{claim.evidence}")
        event.add("url", url)
        cal.add_component(event)
    return cal.to_ical()
