"""What an alert says: the subject line, the text and HTML bodies, and the webhook JSON.

Every scraped string (evidence, titles, values) is untrusted: the HTML goes through Jinja2 with
autoescaping, subjects lose control characters (no header injection), links are only http(s).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, select_autoescape

from watcher.config import SubscriberConfig
from watcher.describe import summarise
from watcher.records import Alert, ChangeEvent, normalise_name
from watcher.text import display_url, shorten, strip_control

# Version of the webhook body (docs/webhooks.md says what changed between versions).
WEBHOOK_VERSION = 2
EVIDENCE_CHARS = 300
EMAIL_DIFF_LINES = 60


@dataclass
class Delivery:
    """One message to one subscriber: one alert (the events of one check), or a digest of several alerts
    (their events grouped by topic)."""

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


def subject_line(alert: Alert) -> str:
    """'All of Us Are Dead S2: release early 2027 (was 2023) and 15 more changes'."""
    lead = alert.lead
    label = lead.topic_label or lead.topic or lead.watch or "watcher"
    more = len(alert.events) - 1
    tail = f" and {more} more change{'s' * (more != 1)}" if more else ""
    return shorten(_line(f"{label}: {summarise(lead, short=True)}{tail}"), 200)


def digest_subject(delivery: Delivery) -> str:
    events = [e for a in delivery.alerts for e in a.events]
    topics = sorted({e.topic_label or e.topic or e.watch or "other" for e in events})
    n = len(events)
    return shorten(_line(f"watcher digest: {n} change{'s' * (n != 1)} ({', '.join(topics)})"), 200)


def safe_link(url: str | None) -> str | None:
    """Only http(s) links reach an email: a scraped `javascript:` URL is dropped."""
    if url and urlsplit(url).scheme in ("http", "https"):
        return url
    return None


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat() if when else None


def change_body(e: ChangeEvent) -> dict[str, Any]:
    """One event of a webhook body (DESIGN.md: change_id, type, old, new, summary, evidence, detected_at)."""
    return {
        "change_id": e.uid,
        "type": e.type,
        "subject": e.subject,
        "topic": e.topic,
        "topic_label": e.topic_label,
        "watch": e.watch,
        "source_url": display_url(e.source_url) or None,
        "old": e.old,
        "new": e.new,
        "summary": summarise(e),
        "evidence": e.evidence,
        "confidence": e.confidence,
        "detected_at": _iso(e.detected_at),
        "link": e.link,
    }


def alert_body(alert: Alert) -> dict[str, Any]:
    """The webhook JSON of one alert (DESIGN.md interface, version 2): the alert's id, its lead event's
    topic, watch and source, the subject line as `summary`, and every event of the check in `events`."""
    lead = alert.lead
    return {
        "version": WEBHOOK_VERSION,
        "event_id": alert.alert_id,
        "type": "alert",
        "topic": lead.topic,
        "topic_label": lead.topic_label,
        "watch": lead.watch,
        "source_url": display_url(lead.source_url) or None,
        "summary": subject_line(alert),
        "link": lead.link,
        "events": [change_body(e) for e in alert.events],
    }


def webhook_body(delivery: Delivery) -> dict[str, Any]:
    if delivery.is_digest:
        return {"version": WEBHOOK_VERSION, "event_id": delivery.delivery_id, "type": "digest",
                "subscriber": delivery.subscriber.name, "summary": digest_subject(delivery),
                "alerts": [alert_body(a) for a in delivery.alerts]}
    return {**alert_body(delivery.alerts[0]), "subscriber": delivery.subscriber.name}


def _when(e: ChangeEvent) -> str:
    return e.detected_at.strftime("%Y-%m-%d %H:%M UTC") if e.detected_at else ""


def _details(e: ChangeEvent) -> list[str]:
    """Lines under an event's headline: what a new article is about, and its headline facts."""
    if e.type != "article_added" or not isinstance(e.new, dict):
        return []
    lines = [f"about: {e.new['topic']}"] if e.new.get("topic") else []
    return lines + [f"{kind}: {value}" for kind, value in (e.new.get("facts") or {}).items()]


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", normalise_name(text).casefold()))


def _item(e: ChangeEvent) -> dict[str, Any]:
    diff = e.new.get("diff") if e.type == "text_changed" and isinstance(e.new, dict) else None
    if diff and len(diff.splitlines()) > EMAIL_DIFF_LINES:
        lines = diff.splitlines()
        diff = "\n".join([*lines[:EMAIL_DIFF_LINES], f"... ({len(lines) - EMAIL_DIFF_LINES} more lines)"])
    headline = summarise(e, short=e.type == "article_added")
    # Evidence that only repeats the headline (a cast table row "Name | Role | Returning") is left out.
    evidence = e.evidence if e.evidence and not _words(e.evidence) <= _words(headline) else ""
    url = display_url(e.source_url)
    who = e.subject or ""
    if e.type == "cast_removed" and isinstance(e.old, dict) and e.old.get("character") not in (None, "", who):
        who = f"{who} ({e.old['character']})"
    return {"headline": headline, "type": e.type, "who": who, "details": _details(e),
            "evidence": shorten(evidence, EVIDENCE_CHARS) if evidence else "", "url": url, "link": safe_link(url),
            "web": safe_link(e.link), "watch": e.watch, "detected": _when(e), "diff": diff}


# From this many `cast_removed` events of one topic in one message, they read as one line naming them all: a
# page rewritten from scratch no longer lists a dozen people, which is one piece of news, not a dozen.
CAST_REMOVED_AS_ONE = 4


def _removed_together(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    removed = [it for it in items if it["type"] == "cast_removed"]
    if len(removed) < CAST_REMOVED_AS_ONE:
        return items
    names = ", ".join(it["who"] for it in removed)
    one = {**removed[0], "headline": f"{len(removed)} cast members no longer listed: {names}", "evidence": ""}
    out: list[dict[str, Any]] = []
    for it in items:
        if it is removed[0]:
            out.append(one)
        elif it["type"] != "cast_removed":
            out.append(it)
    return out


def _groups(delivery: Delivery) -> list[tuple[str, list[dict[str, Any]]]]:
    """The events of the delivery grouped by topic (label), each group in the alerts' order (importance)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    quoted: dict[str, set[str]] = {}
    for a in delivery.alerts:
        for e in a.events:
            topic = e.topic_label or e.topic or e.watch or "other"
            items = groups.setdefault(topic, [])
            item = _item(e)
            # A passage already quoted in this message (a consensus quoting the change above it, a table row
            # that gave several cast members) is not quoted again.
            if item["evidence"] in quoted.setdefault(topic, set()):
                item["evidence"] = ""
            elif item["evidence"]:
                quoted[topic].add(item["evidence"])
            items.append(item)
    out = {topic: _removed_together(items) for topic, items in groups.items()}
    if delivery.is_digest:
        return sorted(out.items())
    return list(out.items())


def _intro(delivery: Delivery) -> dict[str, Any] | None:
    """The head of an immediate alert: which check found the changes, where, and watcher's page for it.
    Events from that same source then leave out their own source line."""
    if delivery.is_digest:
        return None
    alert = delivery.alerts[0]
    lead, n = alert.lead, len(alert.events)
    what = f"{n} change{'s' * (n != 1)}" if n != 1 else "A change"
    where = f" in one check of {lead.watch}" if lead.watch else ""
    return {"text": f"{what} found{where} ({_when(lead)}).", "url": display_url(lead.source_url),
            "link": safe_link(display_url(lead.source_url)), "web": safe_link(lead.link)}


_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=True,
                   lstrip_blocks=True)

_HTML = _env.from_string("""<!doctype html>
<html><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body style="font-family: sans-serif; max-width: 42em">
<h1 style="font-size: 1.2em">{{ title }}</h1>
{% if intro %}<p>{{ intro.text }}{% if intro.link %} <a href="{{ intro.link }}">Source</a>{% elif intro.url %} \
{{ intro.url }}{% endif %}{% if intro.web %} · <a href="{{ intro.web }}">see it in watcher</a>{% endif %}</p>
{% endif %}
{% for topic, items in groups %}
{% if show_topics %}<h2 style="font-size: 1.05em">{{ topic }}</h2>{% endif %}
<ol style="padding-left: 1.4em">
{% for it in items %}
<li style="margin: 0 0 1em 0"><strong>{{ it.headline }}</strong>
{% for d in it.details %}<br>{{ d }}{% endfor %}
{% if it.evidence %}<blockquote style="border-left: 3px solid #999; margin: .4em 0; padding-left: .8em; \
color: #333">{{ it.evidence }}</blockquote>{% endif %}
{% if it.diff %}<pre style="white-space: pre-wrap; font-size: .85em">{{ it.diff }}</pre>{% endif %}
{% if not intro or it.url != intro.url or it.web != intro.web %}
<br><span style="color: #555; font-size: .9em">{% if not intro %}{{ it.detected }} · {{ it.watch or "" }} · {% endif %}\
{% if it.link %}<a href="{{ it.link }}">source</a>{% elif it.url %}{{ it.url }}{% endif %}\
{% if it.web %} · <a href="{{ it.web }}">see it in watcher</a>{% endif %}</span>
{% endif %}
</li>
{% endfor %}
</ol>
{% endfor %}
<p style="color: #777; font-size: .85em">Sent by watcher to {{ subscriber }}. Alert id {{ delivery_id }}.</p>
</body></html>
""")


def _show_topics(delivery: Delivery, groups: list[tuple[str, Any]]) -> bool:
    return delivery.is_digest or len(groups) > 1


def html_body(delivery: Delivery, title: str) -> str:
    groups = _groups(delivery)
    return _HTML.render(title=title, intro=_intro(delivery), groups=groups, show_topics=_show_topics(delivery, groups),
                        subscriber=delivery.subscriber.name, delivery_id=delivery.delivery_id)


def text_body(delivery: Delivery, title: str) -> str:
    lines = [_line(title), ""]
    intro = _intro(delivery)
    if intro:
        lines.append(_line(intro["text"]))
        if intro["url"]:
            lines.append(f"source: {_line(intro['url'])}")
        if intro["web"]:
            lines.append(f"in watcher: {_line(intro['web'])}")
        lines.append("")
    groups = _groups(delivery)
    for topic, items in groups:
        if _show_topics(delivery, groups):
            lines += [f"== {_line(topic)} ==", ""]
        for number, it in enumerate(items, 1):
            lines.append(f"{number}. {_line(it['headline'])}")
            lines += [f"   {_line(d)}" for d in it["details"]]
            if it["evidence"]:
                lines.append(f"   \"{_line(it['evidence'])}\"")
            if it["diff"]:
                lines += ["", *("   " + strip_control(d) for d in it["diff"].splitlines()), ""]
            if it["url"] and (not intro or it["url"] != intro["url"]):
                lines.append(f"   source: {_line(it['url'])}" + (f" ({it['detected']})" if not intro else ""))
            if it["web"] and (not intro or it["web"] != intro["web"]):
                lines.append(f"   in watcher: {_line(it['web'])}")
        lines.append("")
    lines.append(f"Sent by watcher to {_line(delivery.subscriber.name)}. Alert id {delivery.delivery_id}.")
    return "\n".join(lines) + "\n"


def title_of(delivery: Delivery) -> str:
    return digest_subject(delivery) if delivery.is_digest else subject_line(delivery.alerts[0])


def sample_alert(subscriber: str, now: dt.datetime) -> Alert:
    """The alert `watcher notify test` sends: a realistic change, marked as a test."""
    event = ChangeEvent(
        type="release_changed", subject="",
        old={"text": "2023", "earliest": "2023-01-01", "latest": "2023-12-31", "precision": "year",
             "announced": False},
        new={"text": "early 2027", "earliest": "2027-01-01", "latest": "2027-04-30", "precision": "year-part",
             "announced": False},
        evidence="Early 2027 is the most realistic window for Season 2. (This is a test alert from watcher.)",
        confidence=0.9, topic="watcher test#1", topic_label="Watcher Test S1", watch="test",
        source_url="https://example.org/watcher-test", detected_at=now, uid="test-" + now.strftime("%Y%m%dT%H%M%S"))
    event.summary = summarise(event)
    return Alert(alert_id=hashlib.sha256(f"{event.uid}|{subscriber}".encode()).hexdigest()[:32],
                 subscriber=subscriber, events=[event])
