"""What an alert says: the subject line, the text and HTML bodies, and the webhook JSON.

Every scraped string (evidence, titles, values) is untrusted: the HTML goes through Jinja2 with
autoescaping, subjects lose control characters (no header injection), links are only http(s).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, select_autoescape

from watcher.config import SubscriberConfig
from watcher.diff import describe, event_kind
from watcher.records import Alert, ChangeEvent
from watcher.text import display_url, shorten, strip_control

_FACT_WORDS = {"release": "release", "renewal": "renewal", "production": "production", "filming": "filming",
               "trailer": "trailer", "platform": "platform"}


@dataclass
class Delivery:
    """One message to one subscriber: a single alert, or a digest of several (grouped by topic)."""

    delivery_id: str
    subscriber: SubscriberConfig
    alerts: list[Alert] = field(default_factory=list)

    @property
    def is_digest(self) -> bool:
        return self.subscriber.mode == "digest"


def digest_id(alert_ids: list[str]) -> str:
    """A digest's id depends only on the alerts it carries, so a resent digest has the same id."""
    return hashlib.sha256("|".join(sorted(alert_ids)).encode()).hexdigest()[:32]


def _line(text: str) -> str:
    return " ".join(strip_control(text).split())


def headline(event: ChangeEvent) -> str:
    """The change in a few words: 'release early 2027 (was 2023)', 'cast: Roh Yoon-seo exited'."""
    kind = event_kind(event)
    if kind in _FACT_WORDS:
        word = _FACT_WORDS[kind]
        if event.new is None:
            return f"{word} no longer stated (was {describe(kind, event.old)})"
        new = describe(kind, event.new)
        return f"{word} {new}" + (f" (was {describe(kind, event.old)})" if event.old is not None else "")
    if kind == "cast":
        if event.type == "cast_added":
            return f"cast: {event.subject} added ({describe('cast', event.new)})"
        if event.type == "cast_removed":
            return f"cast: {event.subject} no longer listed"
        return f"cast: {event.subject} {describe('cast', event.new)} (was {describe('cast', event.old)})"
    if event.type == "topic_consensus_changed":
        return f"sources now agree on {event.summary or event.subject}"
    return event.summary or event.type


def subject_line(alert: Alert) -> str:
    label = alert.topic_label or alert.event.topic or alert.event.watch or "watcher"
    return shorten(_line(f"{label}: {headline(alert.event)}"), 200)


def digest_subject(delivery: Delivery) -> str:
    topics = sorted({a.topic_label or a.event.topic or "other" for a in delivery.alerts})
    n = len(delivery.alerts)
    return shorten(_line(f"watcher digest: {n} change{'s' * (n != 1)} ({', '.join(topics)})"), 200)


def safe_link(url: str | None) -> str | None:
    """Only http(s) links reach an email: a scraped `javascript:` URL is dropped."""
    if url and urlsplit(url).scheme in ("http", "https"):
        return url
    return None


def event_body(alert: Alert) -> dict[str, Any]:
    """The webhook JSON of one alert (DESIGN.md interface), plus a few fields that help receivers."""
    e = alert.event
    return {
        "event_id": alert.alert_id,
        "change_id": e.uid,
        "type": e.type,
        "topic": e.topic,
        "topic_label": alert.topic_label,
        "watch": e.watch,
        "source_url": display_url(e.source_url) or None,
        "subject": e.subject,
        "summary": e.summary,
        "old": e.old,
        "new": e.new,
        "evidence": e.evidence,
        "confidence": e.confidence,
        "detected_at": e.detected_at.isoformat() if e.detected_at else None,
    }


def webhook_body(delivery: Delivery) -> dict[str, Any]:
    if delivery.is_digest:
        return {"event_id": delivery.delivery_id, "type": "digest", "subscriber": delivery.subscriber.name,
                "alerts": [event_body(a) for a in delivery.alerts]}
    return {**event_body(delivery.alerts[0]), "subscriber": delivery.subscriber.name}


def _groups(delivery: Delivery) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for a in delivery.alerts:
        e = a.event
        groups.setdefault(a.topic_label or e.topic or "other", []).append({
            "headline": headline(e), "type": e.type, "old": _value(e, e.old), "new": _value(e, e.new),
            "evidence": e.evidence, "link": safe_link(display_url(e.source_url)), "url": display_url(e.source_url),
            "watch": e.watch,
            "detected": e.detected_at.strftime("%Y-%m-%d %H:%M UTC") if e.detected_at else "",
            "diff": (e.new or {}).get("diff") if e.type == "text_changed" and isinstance(e.new, dict) else None,
        })
    return sorted(groups.items())


def _value(event: ChangeEvent, value: Any) -> str:
    if value is None:
        return "—"
    kind = event_kind(event)
    if kind in _FACT_WORDS or kind == "cast":
        return describe(kind, value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items() if k != "diff")
    return str(value)


_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=True,
                   lstrip_blocks=True)

_HTML = _env.from_string("""<!doctype html>
<html><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body style="font-family: sans-serif; max-width: 42em">
<h1 style="font-size: 1.2em">{{ title }}</h1>
{% for topic, items in groups %}
<h2 style="font-size: 1.05em">{{ topic }}</h2>
{% for it in items %}
<div style="margin: 0 0 1.2em 0">
<p><strong>{{ it.headline }}</strong></p>
<table cellpadding="4" style="border-collapse: collapse">
<tr><th align="left">was</th><td><del>{{ it.old }}</del></td></tr>
<tr><th align="left">now</th><td><ins>{{ it.new }}</ins></td></tr>
</table>
{% if it.evidence %}<blockquote style="border-left: 3px solid #999; margin: .5em 0; padding-left: .8em">\
{{ it.evidence }}</blockquote>{% endif %}
{% if it.diff %}<pre style="white-space: pre-wrap">{{ it.diff }}</pre>{% endif %}
<p style="color: #555">{{ it.type }} · {{ it.watch or "" }} · {{ it.detected }}
{% if it.link %} · <a href="{{ it.link }}">source</a>{% elif it.url %} · {{ it.url }}{% endif %}</p>
</div>
{% endfor %}
{% endfor %}
<p style="color: #777; font-size: .85em">Sent by watcher to {{ subscriber }}. Alert id {{ delivery_id }}.</p>
</body></html>
""")


def html_body(delivery: Delivery, title: str) -> str:
    return _HTML.render(title=title, groups=_groups(delivery), subscriber=delivery.subscriber.name,
                        delivery_id=delivery.delivery_id)


def text_body(delivery: Delivery, title: str) -> str:
    lines = [_line(title), ""]
    for topic, items in _groups(delivery):
        if delivery.is_digest:
            lines += [f"== {_line(topic)} ==", ""]
        for it in items:
            lines.append(_line(it["headline"]))
            lines.append(f"  was: {_line(it['old'])}")
            lines.append(f"  now: {_line(it['new'])}")
            if it["evidence"]:
                lines.append(f"  evidence: \"{_line(it['evidence'])}\"")
            if it["diff"]:
                lines += ["", strip_control(it["diff"])]
            if it["url"]:
                lines.append(f"  source: {_line(it['url'])}")
            lines.append(f"  ({it['type']}, {it['detected']})")
            lines.append("")
    lines.append(f"alert id {delivery.delivery_id}")
    return "\n".join(lines) + "\n"


def title_of(delivery: Delivery) -> str:
    return digest_subject(delivery) if delivery.is_digest else subject_line(delivery.alerts[0])


def sample_alert(subscriber: str, now: dt.datetime) -> Alert:
    """The alert `watcher notify test` sends: a realistic change, marked as a test."""
    event = ChangeEvent(
        type="release_changed", subject="release",
        old={"text": "2023", "earliest": "2023-01-01", "latest": "2023-12-31", "precision": "year",
             "announced": False},
        new={"text": "early 2027", "earliest": "2027-01-01", "latest": "2027-04-30", "precision": "year-part",
             "announced": False},
        summary="release window 2023 -> early 2027 (test alert)",
        evidence="Early 2027 is the most realistic window for Season 2. (This is a test alert from watcher.)",
        confidence=0.9, topic="watcher test#1", watch="test", source_url="https://example.org/watcher-test",
        detected_at=now, uid="test-" + now.strftime("%Y%m%dT%H%M%S"))
    return Alert(alert_id=hashlib.sha256(f"{event.uid}|{subscriber}".encode()).hexdigest()[:32],
                 subscriber=subscriber, event=event, topic_label="Watcher Test S1")
