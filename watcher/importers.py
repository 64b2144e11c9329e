"""Watches in from the tools people already use, and out again.

One reader per format, registered under the word `watcher import FORMAT FILE` uses (urlwatch's `urls.yaml`,
an OPML subscription list, a changedetection.io backup zip). Each turns a file into candidates: a `[[watch]]`
entry (with a note where something was approximated) or the reason a job was skipped. `plan_import` then
names them uniquely, skips URLs already watched and entries the config would refuse, so an import writes
only watches that load. Exporters write OPML (feeds) or TOML (the watch tables as the config has them).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

from watcher.config import Config
from watcher.errors import ConfigError
from watcher.manage import slug, unique_name, validate_entry, watch_entry
from watcher.records import WatchKind

MAX_ZIP_JSON_BYTES = 50_000_000  # the JSON members of a backup; its snapshots are never read


class ImportFileError(ConfigError):
    """The file to import cannot be read as that format."""


@dataclass
class Candidate:
    """One job of the imported file: what to add (`entry`) or why not (`skipped`); `notes` say what was
    approximated."""

    source: str
    entry: dict[str, Any] | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "watch": self.entry, "skipped": self.skipped, "notes": self.notes}


Reader = Callable[[Path, str], list[Candidate]]
IMPORTERS: dict[str, Reader] = {}


def importer(name: str) -> Callable[[Reader], Reader]:
    def register(fn: Reader) -> Reader:
        IMPORTERS[name] = fn
        return fn

    return register


# --------------------------------------------------------------------------- shared mapping


def _kinds() -> tuple[str, ...]:
    return get_args(WatchKind)


def guess_kind(url: str) -> str:
    """A kind from the URL alone (imports do not fetch; `watcher add` detects by fetching)."""
    path = urlsplit(url).path.lower().rstrip("/")
    if "/wp-json/wp/v2/" in path or "rest_route=/wp/v2/" in url:
        return "wordpress"
    if path.endswith(("/feed", "/rss", "/atom", ".rss", ".atom", ".xml", "/feed/atom", "/feed/rss2")):
        return "feed"
    return "html"


def _browser(notes: list[str]) -> str:
    """The kind for a page the other tool rendered in a browser."""
    if "browser" in _kinds():
        return "browser"
    notes.append("rendered with JavaScript there; imported as an html page (no browser kind here)")
    return "html"


def _wait_for(value: Any) -> dict[str, str] | None:
    """urlwatch's `wait_for` as `browser.wait_for` when it is a CSS selector; its other forms (a load event
    such as "networkidle0", milliseconds, a JavaScript function) have no equivalent here."""
    if not isinstance(value, str) or value.strip() in _LOAD_EVENTS or value.strip().isdigit():
        return None
    from cssselect import GenericTranslator, SelectorError

    try:
        GenericTranslator().css_to_xpath(value.strip())
    except SelectorError:
        return None
    return {"wait_for": value.strip()}


_LOAD_EVENTS = {"load", "domcontentloaded", "networkidle", "networkidle0", "networkidle2", "commit"}


def _scope(rule: str, notes: list[str]) -> dict[str, str] | None:
    rule = rule.strip()
    if not rule:
        return None
    for prefix in ("xpath1:", "xpath:"):
        if rule.startswith(prefix):
            return {"xpath": rule.removeprefix(prefix).strip()}
    if rule.startswith("/"):
        return {"xpath": rule}
    if rule.startswith(("json:", "jq:", "jqraw:")):
        notes.append(f"JSON filter {rule!r} not imported")
        return None
    return {"css": rule}


def duration_text(seconds: float) -> str:
    """3600 -> '1h', 5400 -> '90m': the largest unit that divides exactly."""
    seconds = int(seconds)
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _http(url: Any) -> str | None:
    return url if isinstance(url, str) and urlsplit(url.strip()).scheme in ("http", "https") else None


# --------------------------------------------------------------------------- urlwatch


def _urlwatch_filters(spec: Any) -> list[tuple[str, Any]]:
    """urlwatch's filter list, both spellings: 'css:article,html2text' and [{css: article}, html2text]."""
    if spec is None:
        return []
    if isinstance(spec, str):
        items: list[Any] = [dict([part.split(":", 1)]) if ":" in part else part for part in spec.split(",")]
    elif isinstance(spec, list):
        items = spec
    else:
        return []
    out = []
    for item in items:
        if isinstance(item, str):
            out.append((item.strip(), None))
        elif isinstance(item, dict) and item:
            kind, sub = next(iter(item.items()))
            out.append((str(kind).strip(), sub))
    return out


@importer("urlwatch")
def read_urlwatch(path: Path, interval: str) -> list[Candidate]:
    """urlwatch's `urls.yaml`: YAML documents separated by `---`, one job each (`url`, `navigate` for browser
    jobs, `command` for shell jobs), with `name`, `filter` and `enabled`."""
    import yaml

    try:
        jobs = [j for j in yaml.safe_load_all(path.read_text(encoding="utf-8")) if j is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ImportFileError(f"{path}: not a urlwatch urls.yaml: {e}") from e
    out = []
    for job in jobs:
        if not isinstance(job, dict):
            out.append(Candidate(str(job)[:80], skipped="not a job (expected keys such as url and name)"))
            continue
        notes: list[str] = []
        source = str(job.get("name") or job.get("url") or job.get("navigate") or job.get("command") or "?")
        kind = job.get("kind") or ("shell" if "command" in job else "browser" if "navigate" in job else "url")
        if kind == "shell":
            out.append(Candidate(source, skipped="shell command job: watcher fetches URLs only"))
            continue
        url = _http(job.get("navigate") if kind == "browser" else job.get("url"))
        if url is None:
            out.append(Candidate(source, skipped=f"{kind} job without an http(s) URL"))
            continue
        if job.get("data") is not None or str(job.get("method") or "GET").upper() != "GET":
            out.append(Candidate(source, skipped="sends a POST (or other non-GET) request: not supported"))
            continue
        watch_kind = _browser(notes) if kind == "browser" else guess_kind(url)
        scope = None
        ignored = []
        for name, sub in _urlwatch_filters(job.get("filter")):
            if name in ("css", "xpath") and scope is None:
                expr = sub if isinstance(sub, str) else (sub or {}).get("selector" if name == "css" else "path")
                scope = {name: expr} if isinstance(expr, str) and expr.strip() else None
            else:
                ignored.append(name)
        if ignored:
            notes.append(f"filters {', '.join(ignored)} not imported (watcher extracts the main text itself)")
        browser = None
        if kind == "browser" and job.get("wait_for"):
            browser = _wait_for(job["wait_for"]) if watch_kind == "browser" else None
            if browser is None:
                notes.append(f"wait_for {job['wait_for']!r} not imported")
        entry = watch_entry(name=str(job.get("name") or ""), url=url, kind=watch_kind, interval=interval,
                            scope=scope, enabled=job.get("enabled") is not False, browser=browser)
        out.append(Candidate(source, entry, notes=notes))
    return out


# --------------------------------------------------------------------------- OPML


@importer("opml")
def read_opml(path: Path, interval: str) -> list[Candidate]:
    """An OPML subscription list: every `<outline xmlUrl="...">` is a feed (categories are outlines without
    one); an `<outline type="link" url="...">` is a page."""
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    try:
        root = DET.parse(path).getroot()
    except (OSError, DefusedXmlException, DET.ParseError) as e:
        raise ImportFileError(f"{path}: not an OPML file: {e}") from e
    if root.tag.lower() != "opml":
        raise ImportFileError(f"{path}: not an OPML file (root element <{root.tag}>)")
    out = []
    for outline in root.iter("outline"):
        attrs = {k.lower(): v for k, v in outline.attrib.items()}
        title = (attrs.get("title") or attrs.get("text") or "").strip()
        if "xmlurl" in attrs:
            url, kind = _http(attrs["xmlurl"]), "feed"
        elif attrs.get("type", "").lower() == "link" and "url" in attrs:
            url, kind = _http(attrs["url"]), guess_kind(attrs["url"])
        else:
            continue  # a category
        if url is None:
            out.append(Candidate(title or attrs.get("xmlurl", "?"), skipped="not an http(s) URL"))
            continue
        out.append(Candidate(title or url, watch_entry(name=title, url=url, kind=kind, interval=interval)))
    return out


# --------------------------------------------------------------------------- changedetection.io


def _zip_json(zf: zipfile.ZipFile, member: zipfile.ZipInfo) -> Any:
    with zf.open(member) as f:
        return json.loads(f.read(MAX_ZIP_JSON_BYTES + 1))


def _seconds(spec: Any) -> float:
    if not isinstance(spec, dict):
        return 0.0
    sizes = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
    total = 0.0
    for key, size in sizes.items():
        try:
            total += float(spec.get(key) or 0) * size
        except (TypeError, ValueError):
            continue
    return total


@importer("changedetection")
def read_changedetection(path: Path, interval: str) -> list[Candidate]:
    """A changedetection.io backup zip: watches in `<uuid>/watch.json` (current) or under `watching` in
    `url-watches.json` (older backups); defaults (check interval, fetcher) from its settings. Snapshots
    and screenshots in the backup are not read."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise ImportFileError(f"{path}: not a changedetection.io backup zip: {e}") from e
    with zf:
        members = {m.filename: m for m in zf.infolist()}
        wanted = [m for name, m in members.items()
                  if name in ("url-watches.json", "changedetection.json") or re.fullmatch(r"[^/]+/watch\.json", name)]
        if sum(m.file_size for m in wanted) > MAX_ZIP_JSON_BYTES:
            raise ImportFileError(f"{path}: its watch lists are larger than {MAX_ZIP_JSON_BYTES} bytes")
        if not wanted:
            raise ImportFileError(f"{path}: no url-watches.json, changedetection.json or <uuid>/watch.json inside; "
                                  "is it a changedetection.io backup?")
        settings: dict[str, Any] = {}
        watches: dict[str, dict[str, Any]] = {}
        try:
            for name in ("url-watches.json", "changedetection.json"):
                if name in members:
                    data = _zip_json(zf, members[name])
                    settings = data.get("settings") or settings
                    watches.update(data.get("watching") or {})
            for name, member in members.items():
                if re.fullmatch(r"[^/]+/watch\.json", name):
                    watches[name.split("/")[0]] = _zip_json(zf, member)
        except (ValueError, AttributeError) as e:
            raise ImportFileError(f"{path}: malformed JSON in the backup: {e}") from e
    default_seconds = _seconds((settings.get("requests") or {}).get("time_between_check"))
    default_backend = (settings.get("application") or {}).get("fetch_backend") or "html_requests"
    out = []
    for uuid, w in watches.items():
        if not isinstance(w, dict):
            continue
        notes: list[str] = []
        raw_url = str(w.get("url") or "").strip().removeprefix("source:")
        source = str(w.get("title") or w.get("page_title") or raw_url or uuid)
        url = _http(raw_url)
        if url is None:
            out.append(Candidate(source, skipped="not an http(s) URL"))
            continue
        backend = w.get("fetch_backend") or "system"
        if backend == "system":
            backend = default_backend
        kind = _browser(notes) if backend != "html_requests" else guess_kind(url)
        seconds = 0.0 if w.get("time_between_check_use_default", True) else _seconds(w.get("time_between_check"))
        every = duration_text(seconds or default_seconds) if (seconds or default_seconds) else interval
        scope = None
        for rule in w.get("include_filters") or []:
            scope = _scope(str(rule), notes)
            if scope:
                if len(w["include_filters"]) > 1:
                    notes.append("only the first include filter imported")
                break
        if w.get("processor") == "restock_diff":
            notes.append("a price/stock watch there; imported as a page")
        if w.get("ignore_text") or w.get("trigger_text"):
            notes.append("ignore/trigger text not imported")
        name = str(w.get("title") or w.get("page_title") or "")
        out.append(Candidate(source, watch_entry(name=name, url=url, kind=kind, interval=every, scope=scope,
                                                 enabled=not w.get("paused")), notes=notes))
    return out


# --------------------------------------------------------------------------- planning an import


def plan_import(candidates: list[Candidate], config: Config) -> list[Candidate]:
    """Give each candidate a unique valid name and skip what the config already has or would refuse."""
    from urllib.parse import urldefrag

    taken = {w.name for w in config.watch}
    watched = {urldefrag(w.url)[0]: w.name for w in config.watch}
    for c in candidates:
        if c.entry is None:
            continue
        url = c.entry["url"]
        if urldefrag(url)[0] in watched:
            c.skipped, c.entry = f"already watched as {watched[urldefrag(url)[0]]!r}", None
            continue
        from watcher.manage import name_for_url

        c.entry["name"] = unique_name(slug(c.entry.get("name") or "") or name_for_url(url), taken)
        try:
            validate_entry(c.entry)
        except ConfigError as e:
            c.skipped, c.entry = str(e), None
            continue
        taken.add(c.entry["name"])
        watched[urldefrag(url)[0]] = c.entry["name"]
    return candidates


def read_import(fmt: str, path: Path, *, interval: str = "6h") -> list[Candidate]:
    if fmt not in IMPORTERS:
        raise ImportFileError(f"unknown import format {fmt!r}; known: {', '.join(IMPORTERS)}")
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    return IMPORTERS[fmt](path, interval)


# --------------------------------------------------------------------------- export


def export_opml(config: Config, *, title: str = "watcher feeds") -> tuple[str, int]:
    """An OPML 2.0 list of the feed watches; returns (document, number of watches left out)."""
    import xml.etree.ElementTree as ET

    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(opml, "body")
    left_out = 0
    for w in config.watch:
        if w.kind != "feed":
            left_out += 1
            continue
        ET.SubElement(body, "outline", type="rss", text=w.name, title=w.name, xmlUrl=w.url)
    ET.indent(opml)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(opml, encoding="unicode") + "\n", left_out


def export_toml(config_text: str) -> str:
    """The config's `[[watch]]` tables with their values as written ("6h" stays "6h"; comments dropped), to
    append to another config file."""
    import tomlkit

    from watcher.configfile import render_watch

    watches = tomlkit.parse(config_text).get("watch") or []
    return "".join(("\n" if i else "") + render_watch(w.unwrap()) for i, w in enumerate(watches))
