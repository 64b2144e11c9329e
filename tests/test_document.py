"""The document stage: boilerplate removal by structure, header-aware tables, lists with heading and lead."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spiders.parsers import parse_text, parse_wordpress
from watcher.config import ScopeConfig
from watcher.document import normalise
from watcher.errors import DocumentError
from watcher.records import RawDocument

PARA = "<p>" + "The second season of the drama is expected to arrive next year on the service. " * 3 + "</p>"


def _html(body: str) -> RawDocument:
    return RawDocument(url="https://example.test/a", format="html", body=body, title="Sample Show Season 2")


def test_seed_structure(corpus: Path) -> None:
    body = (corpus / "seeds" / "blueroads-wp-post-161.json").read_bytes()
    doc = normalise(parse_wordpress(body, "https://example.test/wp"))
    assert "Table of Contents" not in doc.text
    assert "You may also like" not in doc.text and "Follow Us On" not in doc.text
    assert "web-stories" not in doc.text and "View all stories" not in doc.text
    cast = next(t for t in doc.tables if t.header and t.header[0] == "Actor")
    assert cast.header == ("Actor", "Character (Season 1/2)", "Status in Season 2")
    assert len(cast.rows) == 8
    new = next(lb for lb in doc.lists if lb.heading and lb.heading.startswith("New Cast"))
    assert new.lead and new.lead.endswith("Season 2 adds:") and len(new.items) == 8
    assert "Quick FAQ" in doc.headings


def test_text_format_lists_and_headings(corpus: Path) -> None:
    doc = normalise(parse_text((corpus / "seeds" / "aouad-s2-release-2022.txt").read_bytes(), "file:///a.txt"))
    assert any(len(lb.items) > 10 for lb in doc.lists)
    assert "Everyone in the cast of Season 2 is now deceased" in doc.headings
    assert not doc.tables


def test_text_is_stable_across_boilerplate_and_whitespace() -> None:
    a = _html(f"<html><body><article><h2>Cast</h2>{PARA}</article></body></html>")
    b = _html("<html><body><nav><a href=/>Home</a><a href=/x>X</a></nav><article><h2>Cast</h2>"
              "<div class='sharedaddy share-buttons'><a href=/s>Share</a></div>"
              + PARA.replace(". ", ".   \n ") +
              "<p>Related: <a href=/r1>Another post</a>, <a href=/r2>Yet another</a></p>"
              "<div id='comments'><p>First!</p></div></article><aside>Ad</aside></body></html>")
    assert normalise(a).text == normalise(b).text
    assert normalise(a).content_hash() == normalise(b).content_hash()


def test_linked_names_in_prose_are_kept() -> None:
    doc = normalise(_html(f"<article>{PARA}<p><a href=/a>Kim Ha-na</a> and <a href=/b>Park Min</a> return."
                          "</p></article>"))
    assert "Kim Ha-na and Park Min return." in doc.text


def test_scope_css_and_xpath() -> None:
    body = f"<html><body><div id=side>{PARA.replace('second', 'third')}</div><div id=post>{PARA}</div></body></html>"
    doc = normalise(_html(body), ScopeConfig(css="#post"))
    assert "second season" in doc.text and "third" not in doc.text
    doc = normalise(_html(body), ScopeConfig(xpath="//div[@id='post']"))
    assert "third" not in doc.text
    with pytest.raises(DocumentError):
        normalise(_html(body), ScopeConfig(css="#nothing"))


def test_table_without_th_header() -> None:
    doc = normalise(_html("<table><tr><td>Actor</td><td>Role</td></tr><tr><td>Kim Ha-na</td><td>Lee Do-yun</td>"
                          "</tr></table>"))
    assert doc.tables and doc.tables[0].rows


@pytest.mark.parametrize("body", ["", "   \n  ", "\x00\x01binary"])
def test_rejects_non_documents(body: str) -> None:
    with pytest.raises(DocumentError):
        normalise(RawDocument(url="u", format="text", body=body))


_TAGS = st.sampled_from(["<p>", "</p>", "<ul>", "<li>", "</li>", "<table>", "<tr>", "<th>", "<td>", "<h2>",
                         "</h2>", "<nav>", "<div class='toc'>", "</div>", "<br>", "<a href='x'>", "</a>", "<!--",
                         "-->", "<script>", "</script>", "&amp;", "&#0;", "<![CDATA[", "<?xml?>", "\u2011", "\x0c"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_TAGS, st.text(max_size=20)), max_size=40))
def test_hostile_html_never_raises_unexpectedly(parts: list[str]) -> None:
    from watcher.extract import extract

    for fmt in ("html", "wordpress-rest-json", "text"):
        try:
            doc = normalise(RawDocument(url="u", format=fmt, body="".join(parts)))  # type: ignore[arg-type]
        except DocumentError:
            continue
        extract(doc)


def _main_of(xml: str | None) -> bytes | None:
    import lxml.etree

    if not xml:
        return None
    main = lxml.etree.fromstring(xml.encode()).find("main")
    return None if main is None else lxml.etree.tostring(main)


def test_main_text_is_what_trafilatura_extract_gives(corpus: Path) -> None:
    """normalise calls trafilatura's steps itself to skip the fingerprint `extract` computes for XML output;
    the main content must stay exactly `extract`'s (the content hash of every stored snapshot depends on it)."""
    import lxml.html
    import trafilatura

    from benchmarks.pages import page
    from watcher.document import TRAFILATURA_OPTIONS, _trafilatura_xml

    wp = parse_wordpress((corpus / "seeds" / "blueroads-wp-post-161.json").read_bytes(), "https://example.test/wp")
    bodies = [page(i, version) for i in range(12) for version in (0, 1)] + [
        f"<html><body><article>{wp.body}</article></body></html>", "<html><body><p>too short</p></body></html>"]
    for body in bodies:
        html = lxml.html.tostring(lxml.html.fromstring(body), encoding="unicode")
        assert _main_of(_trafilatura_xml(html)) == _main_of(trafilatura.extract(html, **TRAFILATURA_OPTIONS))


def _nested(depth: int) -> str:
    return ("<html><body><article><h1>Deep page</h1>" + "<div>" * depth +
            "<p>The deep paragraph says Season 2 premieres in May 2027.</p>" + "</div>" * depth +
            "</article></body></html>")


def test_content_nested_deeper_than_256_elements_is_kept() -> None:
    # libxml2 stops at 256 levels unless asked for more, and trafilatura's own parse does not ask
    for depth in (300, 900):
        doc = normalise(RawDocument(url="http://example.test/deep", format="html", body=_nested(depth)))
        assert "The deep paragraph says Season 2 premieres in May 2027." in doc.text, depth


def test_a_page_nested_beyond_what_the_parser_reads_is_too_deep() -> None:
    with pytest.raises(DocumentError) as e:
        normalise(RawDocument(url="http://example.test/deep", format="html", body=_nested(3000)))
    assert e.value.reason == "too-deep"
