"""The document stage: RawDocument -> Document (main text without boilerplate, tables, lists, headings).

HTML is read with lxml. Boilerplate is cut by structure, never by phrase: navigation-like elements
(nav/aside/header/footer/form/script/...), blocks whose class or id marks them as a table of contents,
share bar, comment section, related-posts or story widget, and paragraphs made mostly of links
("You may also like: <links>", "Follow us on: <links>"). The remaining blocks are walked in order:
headings, paragraphs, lists (with the heading and lead-in sentence above them) and tables
(header-aware). `Document.text` is one block per line (list items as '• item', table rows as
'cell | cell'), with whitespace normalised, so it is stable across fetches that differ only in
boilerplate, whitespace or ads.
"""

from __future__ import annotations

import re
from dataclasses import replace

from watcher.config import ScopeConfig
from watcher.errors import DocumentError
from watcher.records import Document, ListBlock, RawDocument, Table
from watcher.text import clean_text

_DROP_TAGS = ("script", "style", "noscript", "nav", "aside", "footer", "header", "form", "iframe", "svg",
              "button", "select", "textarea", "template", "figcaption", "video", "audio", "object", "canvas")
# class/id fragments of structural widgets (tables of contents, share bars, comments, related posts, ads).
_DROP_CLASS = re.compile(
    r"(^|[\s_-])(toc|ez-toc|share|sharing|social|comments?|comment-respond|related|recommend|web-stories|"
    r"stories-list|sidebar|widget|advert|ads?|ad-slot|newsletter|subscribe|breadcrumbs?|cookie|popup|"
    r"jp-relatedposts|sharedaddy|author-box|post-navigation|nav-links|menu)([\s_-]|$)", re.I)
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BULLET = re.compile(r"^\s*(?:[•·▪●◦‣*–—-]|\d{1,2}[.)])\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean(text: str) -> str:
    # str.split() and the pattern \s+ know the same whitespace; splitting is several times cheaper
    return " ".join(text.replace("\u200b", "").replace("\ufeff", "").split())


def normalise(raw: RawDocument, scope: ScopeConfig | None = None) -> Document:
    """Pure: the main text and structure of one fetched document; DocumentError if it cannot be one."""
    body = raw.body or ""
    if not body.strip():
        raise DocumentError("empty-body", f"{raw.url}: the document is empty")
    head = body[:2048]
    if len(_CONTROL.findall(head)) > len(head) * 0.05:
        raise DocumentError("binary-content", f"{raw.url}: the body is binary data, not text")
    # A stray NUL came from a JSON "\u0000" or a feed's "&#0;" and, like other control characters, carries no
    # text (XML/HTML parsers refuse them); a lone surrogate (JSON "\ud800") cannot even be encoded.
    body = clean_text(_CONTROL.sub(" ", body))
    if not body.strip():
        raise DocumentError("empty-body", f"{raw.url}: the document has no text")
    if raw.format == "text":
        headings, lists, lines = _from_text(body)
        tables: list[Table] = []
    else:
        headings, lists, tables, lines = _from_html(body, scope, raw.url)
    text = "\n".join(lines)
    title = _clean(clean_text(raw.title)) if raw.title else None
    return Document(url=clean_text(raw.url), format=raw.format, title=title or None, text=text,
                    published=raw.published, modified=raw.modified,
                    final_url=clean_text(raw.final_url) if raw.final_url else raw.final_url,
                    entry_key=raw.entry_key, headings=tuple(headings), tables=tuple(tables), lists=tuple(lists),
                    description=clean_text(raw.description) if raw.description else raw.description)


def drop_ignored_lines(text: str, patterns: list[str]) -> str:
    """`text` without the lines in which any of `patterns` (regular expressions, case-insensitive) matches."""
    if not patterns:
        return text
    ignore = re.compile("|".join(f"(?:{p})" for p in patterns), re.I)
    return "\n".join(line for line in text.split("\n") if not ignore.search(line))


def drop_ignored(doc: Document, patterns: list[str]) -> Document:
    """A watch's noise control (`ignore = [...]`): matching lines, table rows and list items removed
    before the document is hashed, extracted and diffed."""
    if not patterns:
        return doc
    ignore = re.compile("|".join(f"(?:{p})" for p in patterns), re.I)
    tables = tuple(Table(t.header, tuple(r for r in t.rows if not ignore.search(" | ".join(r))), t.caption)
                   for t in doc.tables)
    lists = tuple(ListBlock(tuple(i for i in b.items if not ignore.search(i)), b.heading, b.lead) for b in doc.lists)
    return replace(doc, text=drop_ignored_lines(doc.text, patterns), tables=tables,
                   lists=tuple(b for b in lists if b.items))


# --------------------------------------------------------------------------- plain text


def _looks_like_heading(line: str) -> bool:
    return 0 < len(line) <= 90 and not re.search(r"[.!,;:\"”’']$", line) and not _BULLET.match(line)


def _from_text(body: str) -> tuple[list[str], list[ListBlock], list[str]]:
    headings: list[str] = []
    lists: list[ListBlock] = []
    lines: list[str] = []
    heading: str | None = None
    lead: str | None = None
    items: list[str] = []

    def flush() -> None:
        nonlocal items
        if items:
            lists.append(ListBlock(items=tuple(items), heading=heading, lead=lead))
            items = []

    for para in re.split(r"\n\s*\n", body.replace("\r\n", "\n").replace("\r", "\n")):
        for raw_line in para.split("\n") if _BULLET.search(para) or "\n" in para.strip() else [para]:
            if _BULLET.match(raw_line):
                item = _clean(_BULLET.sub("", raw_line, count=1))
                if item:
                    items.append(item)
                    lines.append("• " + item)
                continue
            line = _clean(raw_line)
            if not line:
                continue
            flush()
            if _looks_like_heading(line):
                headings.append(line)
                heading, lead = line, None
            else:
                lead = line
            lines.append(line)
    flush()
    return headings, lists, lines


# --------------------------------------------------------------------------- HTML


# How deep trafilatura's own parse reads (libxml2's limit without XML_PARSE_HUGE is 256 levels), with a margin
# for the wrapper it is given.
_TRAFILATURA_DEPTH = 250


def _from_html(body: str, scope: ScopeConfig | None, url: str
               ) -> tuple[list[str], list[ListBlock], list[Table], list[str]]:
    import lxml.etree
    import lxml.html

    # XML_PARSE_HUGE: libxml2 otherwise drops whatever is nested deeper than 256 elements, silently
    parser = lxml.html.HTMLParser(huge_tree=True)
    try:
        root = lxml.html.fromstring(body, parser=parser) if body.lstrip().startswith("<") else \
            lxml.html.fragment_fromstring(body, create_parent="div", parser=parser)
    except (ValueError, lxml.etree.ParserError) as e:
        raise DocumentError("malformed-html", f"{url}: cannot parse HTML: {e}") from e
    if any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.error_log):
        raise DocumentError("too-deep", f"{url}: the page is nested deeper than libxml2 reads (2,048 elements); "
                            "what lies below would be lost")
    # trafilatura parses again without XML_PARSE_HUGE: a page this deep is walked by our own reader
    deep = bool(root.xpath(f"boolean(//*[count(ancestor::*) >= {_TRAFILATURA_DEPTH}])"))
    containers = [root]
    if scope is not None:
        try:
            found = root.cssselect(scope.css) if scope.css else root.xpath(scope.xpath or "")
        except Exception as e:  # bad selectors are a config problem, reported as a document error
            raise DocumentError("bad-scope", f"{url}: cannot apply scope: {e}") from e
        containers = [el for el in found if isinstance(el, lxml.html.HtmlElement)]
        if not containers:
            raise DocumentError("scope-empty", f"{url}: the configured scope matched nothing")
    else:
        main = root.xpath("//article|//main")
        if main:
            containers = [main[0]]
    headings: list[str] = []
    lists: list[ListBlock] = []
    tables: list[Table] = []
    lines: list[str] = []
    state: dict[str, str | None] = {"heading": None, "lead": None}
    for container in containers:
        _strip_boilerplate(container)
        main = None if deep else _trafilatura_main(container)
        if main is not None:
            _walk_xml(main, headings, lists, tables, lines, state)
        else:
            _walk(container, headings, lists, tables, lines, state)
    return headings, lists, tables, lines


def _trafilatura_main(container: object) -> object | None:
    """trafilatura's main-content XML (headings, paragraphs, lists, tables) of an already stripped tree.

    None when trafilatura finds nothing it trusts (very short fragments); the caller then walks the tree itself.
    """
    import lxml.etree
    import lxml.html

    html = lxml.html.tostring(container, encoding="unicode")  # type: ignore[call-overload]
    if getattr(container, "tag", "") != "html":
        # a fragment (WordPress/feed content, an <article>, a scoped element): trafilatura drops the headings of
        # bare fragments, so give it the page structure it expects
        html = f"<html><body><article>{html}</article></body></html>"
    try:
        xml = _trafilatura_xml(html)
    except Exception:  # trafilatura is a heuristic parser: any failure falls back to our own walk
        return None
    if not xml:
        return None
    try:
        root = lxml.etree.fromstring(xml.encode())
    except lxml.etree.XMLSyntaxError:
        return None
    main = root.find("main")
    return main if main is not None and len(main) else None


# What `trafilatura.extract(html, output_format="xml", ...)` is called with (the reference in the tests).
TRAFILATURA_OPTIONS = {"output_format": "xml", "include_tables": True, "include_comments": False,
                       "include_images": False, "include_links": False, "favor_recall": True,
                       "with_metadata": False, "deduplicate": False}


def _trafilatura_xml(html: str) -> str | None:
    """`trafilatura.extract(html, **TRAFILATURA_OPTIONS)`, the same steps in the same order but one: for XML
    output `extract` also computes a SimHash fingerprint of the whole text (about 40% of its time on a
    news article) for metadata this call never outputs."""
    from trafilatura import bare_extraction
    from trafilatura.core import determine_returnstring
    from trafilatura.metadata import Document as TrafilaturaDocument
    from trafilatura.settings import DEFAULT_CONFIG, Extractor

    options = Extractor(config=DEFAULT_CONFIG, output_format="xml", fast=False, precision=False, recall=True,
                        comments=False, formatting=None, links=False, images=False, tables=True, dedup=False,
                        lang=None, url=None, with_metadata=False, only_with_metadata=False, tei_validation=False,
                        author_blacklist=None, url_blacklist=None, date_params=None)
    document = bare_extraction(html, options=options)
    if not document or not isinstance(document, TrafilaturaDocument):
        return None
    result: str = determine_returnstring(document, options)
    return result


def _xml_text(el: object) -> str:
    return _clean("".join(el.itertext()))  # type: ignore[attr-defined]


def _walk_xml(main: object, headings: list[str], lists: list[ListBlock], tables: list[Table], lines: list[str],
              state: dict[str, str | None]) -> None:
    for child in main:  # type: ignore[attr-defined]
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag == "head":
            text = _xml_text(child)
            if text:
                headings.append(text)
                lines.append(text)
                state["heading"], state["lead"] = text, None
        elif tag == "list":
            items = [i for i in (_xml_text(it) for it in child.iterfind("item")) if i]
            if items:
                lists.append(ListBlock(items=tuple(items), heading=state["heading"], lead=state["lead"]))
                lines.extend("• " + i for i in items)
        elif tag == "table":
            header: tuple[str, ...] = ()
            rows: list[tuple[str, ...]] = []
            for row in child.iter("row"):
                cells = list(row.iterfind("cell"))
                texts = tuple(_xml_text(c) for c in cells)
                if not any(texts):
                    continue
                if not header and not rows and all(c.get("role") == "head" for c in cells):
                    header = texts
                else:
                    rows.append(texts)
            if header or rows:
                tables.append(Table(header=header, rows=tuple(rows)))
                lines.extend(" | ".join(r) for r in (header, *rows) if r)
        elif tag:
            for lb in child.iter("lb"):
                lb.tail = "\n" + (lb.tail or "")
            for part in "".join(child.itertext()).split("\n"):
                part = _clean(part)
                if part:
                    lines.append(part)
                    state["lead"] = part


def _strip_boilerplate(root: object) -> None:
    for el in list(root.iter()):  # type: ignore[attr-defined]
        if not isinstance(el.tag, str):
            if el.getparent() is not None:
                el.drop_tree() if hasattr(el, "drop_tree") else el.getparent().remove(el)
            continue
        marker = f"{el.get('class', '')} {el.get('id', '')}"
        if el.getparent() is not None and (el.tag in _DROP_TAGS or (marker.strip() and _DROP_CLASS.search(marker))
                                           or (el.tag == "p" and _link_heavy(el))):
            el.drop_tree()


def _link_heavy(el: object) -> bool:
    text = _clean(el.text_content())  # type: ignore[attr-defined]
    links = el.xpath(".//a")  # type: ignore[attr-defined]
    if len(links) < 2 or not text:
        return False
    link_text = sum(len(_clean(a.text_content())) for a in links)
    # a short label followed only by links ("Related: <a> <a>") is navigation, whatever the label says
    rest = text
    for a in links:
        rest = rest.replace(_clean(a.text_content()), " ", 1)
    rest = re.sub(r"^\s*[^:]{0,40}:", "", rest)
    return (len(links) >= 3 and link_text / len(text) >= 0.8) or not re.search(r"\w", rest)


def _related_list(items: list[object]) -> bool:
    """A list whose every item is one long link (headlines of other posts); linked names stay."""
    def headline(li: object) -> bool:
        links = li.xpath(".//a")  # type: ignore[attr-defined]
        text = _clean(li.text_content())  # type: ignore[attr-defined]
        return len(links) == 1 and _clean(links[0].text_content()) == text and len(text.split()) >= 5
    return bool(items) and all(headline(li) for li in items)


def _walk(el: object, headings: list[str], lists: list[ListBlock], tables: list[Table], lines: list[str],
          state: dict[str, str | None]) -> None:
    for child in el:  # type: ignore[attr-defined]
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag in _HEADINGS:
            text = _clean(child.text_content())
            if text:
                headings.append(text)
                lines.append(text)
                state["heading"], state["lead"] = text, None
        elif tag in ("ul", "ol"):
            lis = list(child.iterfind("li"))
            items = [i for i in (_clean(li.text_content()) for li in lis) if i]
            if items and not _related_list(lis):
                lists.append(ListBlock(items=tuple(items), heading=state["heading"], lead=state["lead"]))
                lines.extend("• " + i for i in items)
        elif tag == "table":
            table = _table(child)
            if table is not None:
                tables.append(table)
                lines.extend(" | ".join(r) for r in (table.header, *table.rows) if r)
        elif tag in ("p", "blockquote", "pre", "dd", "dt") or (tag and not len(child) and tag not in ("br", "hr")):
            if _link_heavy(child):
                continue
            for part in _paragraphs(child):
                if part:
                    lines.append(part)
                    state["lead"] = part
        elif tag:
            _walk(child, headings, lists, tables, lines, state)


def _paragraphs(el: object) -> list[str]:
    """A paragraph's text; <br> separates lines (FAQ blocks put question and answer in one <p>)."""
    for br in el.iter("br"):  # type: ignore[attr-defined]
        br.tail = "\n" + (br.tail or "")
    return [_clean(p) for p in el.text_content().split("\n") if _clean(p)]  # type: ignore[attr-defined]


def _table(el: object) -> Table | None:
    rows: list[tuple[str, ...]] = []
    header: tuple[str, ...] = ()
    for tr in el.iter("tr"):  # type: ignore[attr-defined]
        cells = [c for c in tr if isinstance(c.tag, str) and c.tag in ("td", "th")]
        texts = tuple(_clean(c.text_content()) for c in cells)
        if not any(texts):
            continue
        if not header and not rows and cells and all(c.tag == "th" for c in cells):
            header = texts
        else:
            rows.append(texts)
    if not rows and not header:
        return None
    caption = el.find("caption")  # type: ignore[attr-defined]
    return Table(header=header, rows=tuple(rows), caption=_clean(caption.text_content()) if caption is not None
                 else None)
