"""Pure parsers from fetched bytes to RawDocuments: WordPress REST JSON, feeds, HTML, plain text.

The spiders call these on responses; `watcher extract` and `watcher diff` call them on local files.
Each raises watcher.errors.DocumentError(reason, message) for a body that cannot be a document.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
from typing import Any

from watcher.errors import DocumentError
from watcher.records import ENTRY_KEY_LENGTH, RawDocument
from watcher.text import safe_key

_BINARY_SNIFF = 2048
_TAGS = re.compile(r"<[^>]+>")


def _text_of_html(fragment: str) -> str:
    """Plain text of a small HTML fragment (titles): tags dropped, entities decoded."""
    return " ".join(html.unescape(_TAGS.sub(" ", fragment or "")).split())


def _date(value: Any) -> dt.date | None:
    """A date from ISO-ish strings ('2026-02-23T12:11:11', '2026-02-23') or time.struct_time."""
    if value is None or value == "":
        return None
    if hasattr(value, "tm_year"):
        try:
            return dt.date(value.tm_year, value.tm_mon, value.tm_mday)
        except ValueError:
            return None
    m = re.match(r"\s*(\d{4})-(\d{2})-(\d{2})", str(value))
    if not m:
        return None
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def check_not_binary(body: bytes) -> None:
    if not body or not body.strip():
        raise DocumentError("empty-body", "the response body is empty")
    head = body[:_BINARY_SNIFF]
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentError("binary-content", "the body is binary data, not text")
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    if controls > len(head) * 0.05:
        raise DocumentError("binary-content", "the body is mostly control bytes, not text")


def decode_text(body: bytes, content_type: str | None = None) -> str:
    """Decode an HTML/text body: BOM, then Content-Type charset, then <meta charset>, then detection.

    w3lib's rules (the ones Scrapy uses): a lying <meta> is overridden by the HTTP header; undecodable
    bytes become U+FFFD rather than failing the document.
    """
    from w3lib.encoding import html_to_unicode, http_content_type_encoding

    encoding, text = html_to_unicode(content_type, body, auto_detect_fun=_detect_encoding)
    if "\ufffd" in text and not http_content_type_encoding(content_type):
        # Only a <meta> (or nothing) vouched for the encoding and it does not fit the bytes: a lying meta.
        # The HTTP header, when there is one, is trusted as w3lib does.
        detected = _detect_encoding(body)
        if detected and detected.lower() != encoding.lower():
            return body.decode(detected, errors="replace")
    return text


_MULTIBYTE = ("shift_jis", "cp932", "euc_jp", "iso2022_jp", "gb2312", "gbk", "gb18030", "big5", "big5hkscs",
              "euc_kr", "cp949", "johab", "utf_16", "utf_32")


def _detect_encoding(body: bytes) -> str | None:
    """Valid UTF-8 is UTF-8. Otherwise a multi-byte encoding when charset_normalizer (what requests uses)
    finds one, since those are recognisable; else windows-1252, the WHATWG default for unlabelled pages,
    because single-byte code-page guesses on a short article are unreliable."""
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(body[:65536]).best()
    if best is not None and best.encoding.lower() in _MULTIBYTE:
        return best.encoding
    return "cp1252"


# --------------------------------------------------------------------------- WordPress REST


def parse_wordpress(body: bytes, url: str) -> RawDocument:
    """One post from the WordPress REST API (`/wp-json/wp/v2/posts/ID`, or the first of a collection)."""
    posts = parse_wordpress_posts(body, url)
    if not posts:
        raise DocumentError("wordpress-empty", f"{url}: the WordPress API returned no posts")
    return posts[0]


def parse_wordpress_posts(body: bytes, url: str, max_entries: int | None = None) -> list[RawDocument]:
    """The posts of a WordPress REST response (one post, or a listing), at most the newest `max_entries`."""
    check_not_binary(body)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise DocumentError("invalid-json", f"{url}: the WordPress API response is not valid JSON: {e}") from e
    except RecursionError as e:
        raise DocumentError("too-deep", f"{url}: the WordPress API response is JSON nested too deeply to read") from e
    if isinstance(data, dict) and "code" in data and "content" not in data:
        msg = str(data.get("message") or "")[:200]
        raise DocumentError("wordpress-error", f"{url}: WordPress error {data.get('code')!r}: {msg}")
    items = data if isinstance(data, list) else [data]
    if max_entries is not None and len(items) > max_entries:
        # Newest first (ISO dates sort as text), the listing's own order among equals.
        items = sorted(items, key=_wordpress_date, reverse=True)[:max_entries]
    docs = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("content"), dict):
            raise DocumentError("wordpress-shape", f"{url}: not a WordPress post object (no content.rendered)")
        docs.append(_wordpress_post(item, url))
    return docs


def _wordpress_date(item: Any) -> str:
    if not isinstance(item, dict):
        return ""
    value = item.get("modified_gmt") or item.get("date_gmt") or item.get("modified") or item.get("date")
    return value if isinstance(value, str) else ""


def _rendered(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if isinstance(value, dict):
        value = value.get("rendered")
    return value if isinstance(value, str) else ""


def _wordpress_post(item: dict[str, Any], url: str) -> RawDocument:
    yoast = item.get("yoast_head_json") if isinstance(item.get("yoast_head_json"), dict) else {}
    jsonld: list[dict[str, Any]] = []
    schema = yoast.get("schema")
    if isinstance(schema, dict):
        graph = schema.get("@graph")
        jsonld = [n for n in graph if isinstance(n, dict)] if isinstance(graph, list) else [schema]
    link = item.get("link") if isinstance(item.get("link"), str) else None
    guid = _rendered(item, "guid") or str(item.get("id") or "")
    return RawDocument(
        url=link or url,
        final_url=url,
        format="wordpress-rest-json",
        body=_rendered(item, "content"),
        title=_text_of_html(_rendered(item, "title")) or yoast.get("title"),
        published=_date(item.get("date_gmt") or item.get("date")),
        modified=_date(item.get("modified_gmt") or item.get("modified")),
        entry_key=safe_key(guid, ENTRY_KEY_LENGTH),
        jsonld=jsonld,
        description=yoast.get("description") if isinstance(yoast.get("description"), str) else None,
    )


# --------------------------------------------------------------------------- feeds


def _reject_entities(body: bytes, url: str) -> None:
    """Refuse XML that declares entities: feedparser must never expand (or fetch) them."""
    if b"<!ENTITY" not in body[:65536] and b"<!entity" not in body[:65536]:
        return
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    try:
        DET.fromstring(body, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise DocumentError("xml-entities", f"{url}: feed declares XML entities ({e.__class__.__name__}); "
                            "refused") from e
    except Exception:  # noqa: S110 - malformed XML is feedparser's to judge (bozo) below
        pass


_ITEM_TAGS = ("item", "{http://purl.org/rss/1.0/}item", "{http://www.w3.org/2005/Atom}entry",
              "{http://purl.org/atom/ns#}entry")
_ITEM_DATES = ("updated", "modified", "pubDate", "published", "issued", "date")


def _item_time(item: Any) -> float:
    """When a feed item was last dated (updated, else published), as a POSIX time; -inf when undated."""
    from email.utils import parsedate_to_datetime

    found: dict[str, str] = {}
    for child in item:
        if isinstance(child.tag, str) and child.text:
            found.setdefault(child.tag.rpartition("}")[2], child.text.strip())
    for name in _ITEM_DATES:
        value = found.get(name)
        if not value:
            continue
        try:
            when = parsedate_to_datetime(value) if name == "pubDate" else dt.datetime.fromisoformat(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            day = _date(value)
            if day is None:
                continue
            when = dt.datetime(day.year, day.month, day.day)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        try:
            return when.timestamp()
        except (OverflowError, ValueError):
            continue
    return float("-inf")


def newest_feed_items(body: bytes, max_entries: int) -> bytes | None:
    """The feed cut to its newest `max_entries` items (by date, then as listed), or None when it has no more
    than that or is not well-formed XML (then feedparser reads it whole; it is within fetch.max_bytes).

    One streaming pass with lxml: items are dated as they end and all but the newest `max_entries` are
    removed from the tree at once, so neither the time nor the memory grows with feedparser's per-entry cost
    (about 0.3 ms and several kB an entry) for entries that would be thrown away."""
    import heapq
    import io

    from lxml import etree

    kept: list[tuple[tuple[float, int], Any]] = []
    total = 0
    context = etree.iterparse(io.BytesIO(body), events=("end",), tag=_ITEM_TAGS, resolve_entities=False,
                              no_network=True, load_dtd=False, huge_tree=False)
    try:
        for _, item in context:
            total += 1
            # Among items of one date, the one listed first wins: feeds list newest first.
            entry = ((_item_time(item), -total), item)
            if len(kept) < max_entries:
                heapq.heappush(kept, entry)
                continue
            # Whichever is older, this item or the oldest kept, leaves the tree.
            out = item if entry[0] < kept[0][0] else heapq.heapreplace(kept, entry)[1]
            parent = out.getparent()
            if parent is not None:
                parent.remove(out)
    except etree.LxmlError:
        return None
    root = context.root
    if total <= max_entries or root is None:
        return None
    return etree.tostring(root.getroottree(), encoding="utf-8", xml_declaration=True)


def parse_feed(body: bytes, url: str, max_entries: int | None = None) -> list[RawDocument]:
    """One RawDocument per feed entry (RSS/Atom via feedparser), keyed by guid, else link; at most the newest
    `max_entries`."""
    import feedparser

    check_not_binary(body)
    _reject_entities(body, url)
    if max_entries is not None:
        body = newest_feed_items(body, max_entries) or body
    # No base URL: entry ids must not change when a feed moves host.
    try:
        parsed = feedparser.parse(body, resolve_relative_uris=False, sanitize_html=True)
    except RecursionError as e:
        raise DocumentError("too-deep", f"{url}: the feed is nested too deeply to read") from e
    except Exception as e:  # feedparser itself trips on some broken encodings (UnicodeError, LookupError, ...)
        raise DocumentError("malformed-feed", f"{url}: not a readable feed: {e.__class__.__name__}: {e}") from e
    # A broken feed whose entries carry no text at all (cut off mid-item, say) is malformed, not empty;
    # a broken feed that still yields readable entries is used, as feedparser intends.
    if parsed.get("bozo") and not any(e.get("content") or e.get("summary") for e in parsed.entries):
        exc = parsed.get("bozo_exception")
        raise DocumentError("malformed-feed", f"{url}: not a readable feed: {exc}")
    if not parsed.entries and not parsed.get("feed"):
        raise DocumentError("not-a-feed", f"{url}: no feed and no entries found")
    docs = []
    for entry in parsed.entries:
        content = ""
        if entry.get("content"):
            content = max((c.get("value") or "" for c in entry.content), key=len)
        content = content or entry.get("summary") or ""
        link = entry.get("link") or url
        key = entry.get("id") or entry.get("link") or hashlib.sha256(
            (entry.get("title", "") + content[:200]).encode()).hexdigest()[:32]
        docs.append(RawDocument(
            url=link,
            final_url=url,
            format="feed-entry",
            body=content,
            title=_text_of_html(entry.get("title") or "") or None,
            published=_date(entry.get("published_parsed") or entry.get("published")),
            modified=_date(entry.get("updated_parsed") or entry.get("updated")),
            entry_key=safe_key(str(key), ENTRY_KEY_LENGTH),
        ))
    if max_entries is not None and len(docs) > max_entries:  # a feed lxml could not read (malformed): cut here
        docs = sorted(docs, key=lambda d: d.modified or d.published or dt.date.min, reverse=True)[:max_entries]
    return docs


# --------------------------------------------------------------------------- HTML and text

_META_DATE_KEYS = ("article:published_time", "datepublished", "date", "pubdate", "dc.date", "publish-date")
_META_MOD_KEYS = ("article:modified_time", "datemodified", "og:updated_time", "last-modified")


def parse_html(body: bytes, url: str, headers: dict[str, str] | None = None) -> RawDocument:
    """An HTML page: decoded with the right charset; title, dates and JSON-LD from its head."""
    import lxml.html

    check_not_binary(body)
    content_type = (headers or {}).get("content-type")
    text = decode_text(body, content_type)
    try:
        tree = lxml.html.document_fromstring(text)
    except (ValueError, lxml.etree.ParserError) as e:
        raise DocumentError("malformed-html", f"{url}: cannot parse HTML: {e}") from e
    meta: dict[str, str] = {}
    for el in tree.iterfind(".//meta"):
        key = (el.get("property") or el.get("name") or el.get("itemprop") or "").strip().lower()
        if key and el.get("content") and key not in meta:
            meta[key] = el.get("content", "")
    jsonld: list[dict[str, Any]] = []
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text or "")
        except ValueError:
            continue
        nodes = data.get("@graph", [data]) if isinstance(data, dict) else data if isinstance(data, list) else []
        jsonld.extend(n for n in nodes if isinstance(n, dict))
    published = next((d for k in _META_DATE_KEYS if (d := _date(meta.get(k)))), None)
    modified = next((d for k in _META_MOD_KEYS if (d := _date(meta.get(k)))), None)
    for node in jsonld:
        published = published or _date(node.get("datePublished"))
        modified = modified or _date(node.get("dateModified"))
    if published is None:
        times = tree.xpath("//time[@datetime]/@datetime")
        published = _date(times[0]) if times else None
    title_el = tree.find(".//title")
    title = meta.get("og:title") or (title_el.text_content() if title_el is not None else None)
    return RawDocument(
        url=url,
        final_url=url,
        format="html",
        body=text,
        title=" ".join(title.split()) if title else None,
        published=published,
        modified=modified,
        jsonld=jsonld,
        description=meta.get("description") or meta.get("og:description"),
    )


def parse_text(body: bytes, url: str) -> RawDocument:
    """Plain text: the first non-empty line is the title."""
    check_not_binary(body)
    text = decode_text(body, "text/plain")
    title = next((line.strip() for line in text.splitlines() if line.strip()), None)
    return RawDocument(url=url, final_url=url, format="text", body=text, title=title)


# --------------------------------------------------------------------------- detection


def detect_format(body: bytes, content_type: str | None = None, url: str = "") -> str:
    """'wordpress' | 'feed' | 'html' | 'text' from the body (and Content-Type, URL as hints)."""
    ct = (content_type or "").lower()
    head = body[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"{", b"[")) or "json" in ct:
        return "wordpress"
    if "rss" in ct or "atom" in ct or re.match(rb"<\?xml[^>]*>\s*(<!--.*?-->\s*)*<(rss|feed|rdf:rdf)", head, re.S) \
            or head.startswith((b"<rss", b"<feed", b"<rdf:rdf")):
        return "feed"
    if "html" in ct or re.search(rb"<(!doctype html|html|head|body|p|div|article)[\s>]", head):
        return "html"
    if "xml" in ct or head.startswith(b"<?xml"):
        return "feed"
    return "text"


def parse_body(body: bytes, url: str, fmt: str = "auto", headers: dict[str, str] | None = None
               ) -> list[RawDocument]:
    """Dispatch on format ('auto' detects); always a list (a feed has one document per entry)."""
    if fmt == "auto":
        content_type = (headers or {}).get("content-type")
        fmt = detect_format(body, content_type, url)
        if fmt in ("wordpress", "feed") and not re.search(r"json|xml|rss|atom", (content_type or "").lower()):
            # a body that only looks like JSON or XML ('[Site News] Headline ...') is read as HTML or text
            try:
                return parse_wordpress_posts(body, url) if fmt == "wordpress" else parse_feed(body, url)
            except DocumentError:
                fmt = "html" if re.search(rb"<(!doctype html|html|head|body|p|div|article)[\s>]",
                                          body[:4096].lower()) else "text"
    if fmt == "wordpress":
        return parse_wordpress_posts(body, url)
    if fmt == "feed":
        return parse_feed(body, url)
    if fmt == "html":
        return [parse_html(body, url, headers)]
    if fmt == "text":
        return [parse_text(body, url)]
    raise DocumentError("unknown-format", f"unknown format {fmt!r}")
