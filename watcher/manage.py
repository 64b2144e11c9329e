"""Managing watches without editing files: what `watcher add` (and the API's add) proposes for a URL.

`propose(url, ...)` fetches the URL once through the usual fetch stage (robots.txt, size limits, the
config's user agent), works out what to watch — a WordPress post's REST URL, a feed, or the page — fetches
that if it is another resource, and returns the `[[watch]]` entry with a preview of the facts each document
yields. Writing the entry is `watcher.configfile`'s job.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from watcher.config import Config, WatchConfig
from watcher.errors import ConfigError, DocumentError
from watcher.records import FetchOutcome

KINDS = ("auto", "html", "wordpress", "feed", "browser")
PREVIEW_DOCUMENTS = 5
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


# --------------------------------------------------------------------------- names and topics


def slug(text: str, *, limit: int = 80) -> str:
    """A watch name from free text: 'Blue Roads: S2 news!' -> 'blue-roads-s2-news'."""
    s = _NAME_CHARS.sub("-", text.strip().lower()).strip("-._")
    s = re.sub(r"-{2,}", "-", s)[:limit].rstrip("-._")
    return s


def unique_name(base: str, taken: set[str]) -> str:
    base = slug(base) or "watch"
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def name_for_url(url: str) -> str:
    """'https://www.blueroads.in/blog/aouad-s2-news/' -> 'blueroads.in-aouad-s2-news'."""
    parts = urlsplit(url)
    host = (parts.hostname or "site").removeprefix("www.")
    segments = [s for s in parts.path.split("/") if s and s not in ("index.html", "index.php")]
    tail = segments[-1] if segments else ""
    tail = re.sub(r"\.(html?|php|aspx?)$", "", tail)
    return slug(f"{host}-{tail}" if tail else host)


def topic_entry(text: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """'Work S2' (or 'Work#2', 'Work Season 2', or {work, season}) -> the config's `topic` table."""
    if text is None or text == "":
        return None
    if isinstance(text, dict):
        return {"work": text.get("work"), "season": text.get("season")}
    from watcher.topic import parse_topic

    topic = parse_topic(text)
    return {"work": topic.work, "season": topic.season}


def watch_entry(*, name: str, url: str, kind: str, topic: dict[str, Any] | None = None, interval: str | None = None,
                cron: str | None = None, jitter: str | None = None, scope: dict[str, str] | None = None,
                confirm: int | None = None, enabled: bool | None = None,
                browser: dict[str, str] | None = None) -> dict[str, Any]:
    """A `[[watch]]` table in the order the sample config writes its keys (None values are left out)."""
    entry = {"name": name, "url": url, "kind": kind, "browser": browser, "topic": topic, "interval": interval,
             "cron": cron, "jitter": jitter, "scope": scope, "confirm": confirm,
             "enabled": None if enabled is not False else False}
    return {k: v for k, v in entry.items() if v is not None}


def validate_entry(entry: dict[str, Any]) -> WatchConfig:
    """The entry checked as the config loader would check it; ConfigError naming the key otherwise."""
    try:
        return WatchConfig.model_validate(entry)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'watch'}: "
                             f"{err['msg'].removeprefix('Value error, ')}" for err in e.errors())
        raise ConfigError(f"watch {entry.get('name')!r}: {problems}") from None


# --------------------------------------------------------------------------- the proposal


@dataclass
class Preview:
    """One document as the pipeline would see it, and the facts extraction finds in it (`facts`: what
    `watcher extract --json` prints for it, or its `document` and an `error`)."""

    url: str
    title: str | None
    published: str | None
    facts: dict[str, Any]


@dataclass
class Proposal:
    entry: dict[str, Any]
    detected: str  # what the URL turned out to be, in words
    given_url: str
    offered_feeds: list[dict[str, str | None]] = field(default_factory=list)
    fetched: bool = False
    http_status: int | None = None
    documents: int = 0
    previews: list[Preview] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"watch": self.entry, "detected": self.detected, "given_url": self.given_url,
                "offered_feeds": self.offered_feeds, "fetched": self.fetched, "http_status": self.http_status,
                "documents": self.documents,
                "preview": [p.facts for p in self.previews]}


class AddError(ConfigError):
    """The watch cannot be added as asked (the message says what to change)."""


class WatchExists(AddError):
    """The name is taken, or the URL is already watched."""


def _fetch(url: str, kind: str, config: Config) -> FetchOutcome:
    from spiders import fetch_once

    outcome = fetch_once(url, kind, config.fetch)  # type: ignore[arg-type]
    if outcome.status != "ok" or not outcome.documents:
        why = outcome.error or outcome.reason or "no document"
        raise DocumentError(outcome.reason or "fetch-failed", f"{url}: could not be read ({why})")
    return outcome


def _previews(outcome: FetchOutcome, watch: WatchConfig) -> list[Preview]:
    from watcher.document import normalise
    from watcher.extract import extract

    out = []
    for raw in outcome.documents[:PREVIEW_DOCUMENTS]:
        try:
            doc = normalise(raw, watch.scope)
        except DocumentError as e:
            out.append(Preview(raw.url, raw.title, None, {"document": {"url": raw.url, "title": raw.title},
                                                           "error": str(e)}))
            continue
        factset = extract(doc, fallback_date=dt.datetime.now(dt.UTC).date(),
                          topic=watch.topic.topic() if watch.topic else None)
        published = doc.published or factset.document.published  # metadata, else the text's dateline
        out.append(Preview(doc.url, doc.title, published.isoformat() if published else None,
                           factset.to_json_dict()))
    return out


def propose(url: str, config: Config, *, name: str | None = None, kind: str = "auto",
            topic: str | dict[str, Any] | None = None, interval: str | None = "6h", cron: str | None = None,
            jitter: str | None = None, scope: dict[str, str] | None = None, use_feed: bool = False,
            fetch: bool = True) -> Proposal:
    """The watch to add for `url`. With kind 'auto', a WordPress post or page becomes a `wordpress` watch of
    its REST URL, a feed a `feed` watch, and a page that links feeds stays a page whose feeds are offered
    (`use_feed` or kind 'feed' takes the first). Raises AddError (bad request) or DocumentError (unreadable)."""
    if kind not in KINDS:
        raise AddError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if cron:
        interval = None
    taken = {w.name for w in config.watch}
    if name is not None and name in taken:
        raise WatchExists(f"a watch named {name!r} already exists; pick another name")
    entry_topic = topic_entry(topic)
    # Check what the user typed before fetching anything.
    validate_entry(watch_entry(name=name or "check", url=url, kind="html" if kind == "auto" else kind,
                               topic=entry_topic, interval=interval, cron=cron, jitter=jitter, scope=scope))
    target, target_kind, detected = url, kind, f"{kind} watch (not fetched)"
    offered: list[dict[str, str | None]] = []
    outcome: FetchOutcome | None = None
    if fetch and kind == "html":  # a page, as asked: no detection
        outcome, detected = _fetch(url, "html", config), "an HTML page, as asked"
    elif fetch and kind == "browser":  # rendered by headless Chromium, as asked
        outcome, detected = _fetch(url, "browser", config), "an HTML page rendered by headless Chromium, as asked"
    elif fetch:
        first = _fetch(url, "auto", config)
        fmt = first.documents[0].format
        if fmt == "wordpress-rest-json" and kind in ("auto", "wordpress"):
            target_kind, detected, outcome = "wordpress", "the WordPress REST API", first
        elif fmt == "feed-entry" and kind in ("auto", "feed"):
            target_kind, outcome = "feed", first
            detected = f"a feed with {len(first.documents)} entries"
        elif fmt != "html":
            raise AddError(f"{url} is not a page that a {kind} watch can read (it serves {fmt}); try --kind auto")
        else:
            from spiders.discover import page_links

            links = page_links(first.documents[0].body, first.final_url or url)
            offered = [{"url": f.url, "title": f.title, "type": f.type} for f in links.feeds]
            if links.feeds and (kind == "feed" or use_feed):
                target, target_kind = links.feeds[0].url, "feed"
                detected = f"an HTML page that links a feed: watching the feed {target}"
            elif links.wordpress_rest and kind in ("auto", "wordpress"):
                target, target_kind, offered = links.wordpress_rest, "wordpress", []
                detected = f"a WordPress post: watching its REST URL {target}"
            elif kind == "feed" or use_feed:
                raise AddError(f"{url} is an HTML page that links no feed; add it as a page (--kind html)")
            elif kind == "wordpress":
                raise AddError(f"{url} is an HTML page that names no WordPress REST URL; add it as a page "
                               "(--kind html)")
            else:
                target_kind, outcome = "html", first
                detected = "an HTML page" + (f" that links {len(links.feeds)} feed(s)" if links.feeds else "")
        if outcome is None:
            outcome = _fetch(target, target_kind, config)
    elif kind == "auto":
        raise AddError("without fetching, give the kind (--kind html|wordpress|feed)")
    if any(w.url == target for w in config.watch):
        other = next(w.name for w in config.watch if w.url == target)
        raise WatchExists(f"{target} is already watched as {other!r}")
    final_name = name or unique_name(name_for_url(target if target_kind == "feed" else url), taken)
    entry = watch_entry(name=final_name, url=target, kind=target_kind, topic=entry_topic, interval=interval,
                        cron=cron, jitter=jitter, scope=scope)
    watch = validate_entry(entry)
    proposal = Proposal(entry, detected, url, offered)
    if outcome is not None:
        proposal.fetched, proposal.http_status = True, outcome.http_status
        proposal.documents = len(outcome.documents)
        proposal.previews = _previews(outcome, watch)
    return proposal
