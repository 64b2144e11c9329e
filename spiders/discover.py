"""What a page offers to watch instead of its HTML: its WordPress REST URL, and the feeds it links.

Pure functions over a fetched HTML page (`watcher add` and the API's add call them). WordPress announces
the REST URL of a post or page in `<link rel="alternate" type="application/json" href=".../wp-json/wp/v2/
posts/161">`; older sites only link the API root (`rel="https://api.w.org/"`) and the post id
(`rel="shortlink" href="...?p=161"`, or a `postid-161` body class). Feeds are `<link rel="alternate"
type="application/rss+xml">` (or Atom) in the head.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urljoin, urlsplit

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml")
_REST_PATH = re.compile(r"/wp/v2/(posts|pages)/\d+/?$")
_POST_ID_CLASS = re.compile(r"\bpostid-(\d+)\b")


@dataclass(frozen=True)
class FeedLink:
    url: str
    title: str | None
    type: str

    @property
    def is_comments(self) -> bool:
        return bool(self.title and re.search(r"\bcomments?\b", self.title, re.I)) or "/comments/" in self.url


@dataclass(frozen=True)
class PageLinks:
    """What the page links: its WordPress REST URL (None when it is not a WordPress post or page) and its
    feeds, content feeds before comment feeds."""

    wordpress_rest: str | None = None
    feeds: list[FeedLink] = field(default_factory=list)


def _rels(value: str | None) -> set[str]:
    return {r.lower() for r in (value or "").split()}


def _rest_from_root(root: str, post_id: str) -> str:
    """The REST URL of post `post_id` under an API root ('https://site/wp-json/' or '...?rest_route=/')."""
    parts = urlsplit(root)
    if "rest_route" in parse_qs(parts.query):
        return f"{parts.scheme}://{parts.netloc}{parts.path}?rest_route=/wp/v2/posts/{post_id}"
    return root.rstrip("/") + f"/wp/v2/posts/{post_id}"


def page_links(html: str, url: str) -> PageLinks:
    """The WordPress REST URL and the feeds that the HTML page at `url` links to (absolute URLs)."""
    import lxml.html

    try:
        tree = lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return PageLinks()
    base = next(iter(tree.xpath("//base/@href")), None) or url
    rest = api_root = shortlink_id = None
    feeds: list[FeedLink] = []
    for link in tree.iterfind(".//link"):
        href = (link.get("href") or "").strip()
        if not href:
            continue
        rels, ltype = _rels(link.get("rel")), (link.get("type") or "").strip().lower()
        absolute = urljoin(base, href)
        if "alternate" in rels and ltype == "application/json" and (
                _REST_PATH.search(urlsplit(absolute).path) or _REST_PATH.search(_rest_route(absolute))):
            rest = rest or absolute
        elif "https://api.w.org/" in rels:
            api_root = absolute
        elif "shortlink" in rels:
            shortlink_id = next(iter(parse_qs(urlsplit(absolute).query).get("p", [])), None)
        elif ("alternate" in rels and ltype in FEED_TYPES and absolute.startswith(("http://", "https://"))
              and all(f.url != absolute for f in feeds)):
            feeds.append(FeedLink(absolute, " ".join((link.get("title") or "").split()) or None, ltype))
    if rest is None and api_root:
        body = tree.find(".//body")
        m = _POST_ID_CLASS.search(body.get("class") or "") if body is not None else None
        post_id = shortlink_id if shortlink_id and shortlink_id.isdigit() else (m.group(1) if m else None)
        if post_id:
            rest = _rest_from_root(api_root, post_id)
    feeds.sort(key=lambda f: f.is_comments)  # stable: page order otherwise
    return PageLinks(rest, feeds)


def _rest_route(url: str) -> str:
    """The `rest_route` query parameter (plain-permalink sites: '?rest_route=/wp/v2/posts/161'), or ''."""
    return next(iter(parse_qs(urlsplit(url).query).get("rest_route", [])), "")
