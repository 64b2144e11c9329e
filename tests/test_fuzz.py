"""Fuzzing: mutated corpus documents through the parsers, normalisation, extraction and the diff.

The only exception allowed out of a parser is DocumentError (recorded in history with its reason);
extraction and diff never raise. About 2,300 cases in all, well under a minute.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import CORPUS
from tests.test_diff import compared
from watcher.diff import apply_events, diff_documents, diff_facts
from watcher.document import normalise
from watcher.errors import DocumentError
from watcher.extract import extract

WP = (CORPUS / "seeds" / "blueroads-wp-post-161.json").read_bytes()
TEXTS = [p.read_bytes() for p in sorted(CORPUS.rglob("*.txt"))]
HTML = json.loads(WP)["content"]["rendered"].encode()
FEED = ("<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>News</title>"
        + "".join(f"<item><title>Show Season {i} news</title><link>http://e/{i}</link><guid>g{i}</guid>"
                  f"<description><![CDATA[{t.decode()[:1500]}]]></description></item>"
                  for i, t in enumerate(TEXTS, 2))
        + "</channel></rss>").encode()
NASTY = [b"<", b">", b"</table>", b"<tr><td>", b"\x00", b"\xff\xfe", b"\xe2\x80", b"&#x0;", b"&bogus;", b"\"",
         b"{", b"}", b"]]>", b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"2027", b"Season 3", b"early ", b"\r\n",
         "Yoon Chan\u2011young".encode(), b"<script>alert(1)</script>", b"\x1b[31m", b"\xc3", b"-" * 50]


@st.composite
def mutated(draw: st.DrawFn, source: bytes) -> bytes:
    data = bytearray(source)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["cut", "insert", "delete", "duplicate", "flip", "truncate"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        j = min(len(data), i + draw(st.integers(0, 400)))
        if op == "cut":
            data = data[:i] + data[j:]
        elif op == "insert":
            data[i:i] = draw(st.one_of(st.sampled_from(NASTY), st.binary(max_size=30)))
        elif op == "delete":
            del data[i:i + 1]
        elif op == "duplicate":
            data[i:i] = data[i:j]
        elif op == "flip":
            data[i] = draw(st.integers(0, 255))
        else:
            data = data[:i]
    return bytes(data)


def _through_everything(body: bytes, fmt: str) -> None:
    from spiders.parsers import parse_body

    try:
        raws = parse_body(body, "http://fuzz.example/doc", fmt)
    except DocumentError:
        return
    previous = None
    for raw in raws[:3]:
        try:
            doc = normalise(raw)
        except DocumentError:
            continue
        facts = extract(doc, reference_date=None)
        json.dumps(facts.to_json_dict())  # serialisable, as the store needs
        if previous is not None:
            diff_documents(previous.facts, facts.facts, "a", doc.text)
            events = diff_facts(previous.facts, facts.facts)
            assert compared(apply_events(previous.facts, events)) == compared(facts.facts)
        previous = facts


FUZZ = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.data_too_large])


@FUZZ
@given(mutated(WP))
def test_wordpress_parser_and_extraction_survive_mutation(body: bytes) -> None:
    _through_everything(body, "wordpress")


@FUZZ
@given(mutated(HTML))
def test_html_parser_and_extraction_survive_mutation(body: bytes) -> None:
    _through_everything(body, "html")


@FUZZ
@given(mutated(FEED))
# Found by this test: feedparser raised UnicodeDecodeError on a garbled XML encoding declaration.
@example(b"<?xml version='1.0' encoding='\xff\xfeutf-8'?><rss version='2.0'><channel><title>x</title><item>"
         b"<title>a</title><description>b</description></item></channel></rss>")
def test_feed_parser_and_diff_survive_mutation(body: bytes) -> None:
    _through_everything(body, "feed")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TEXTS), st.data())
def test_text_extraction_and_auto_detection_survive_mutation(source: bytes, data: st.DataObject) -> None:
    _through_everything(data.draw(mutated(source)), "auto")
