"""Extraction rules on small strings and invented documents (no network)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.document import normalise
from watcher.errors import DocumentError
from watcher.extract import extract
from watcher.extract.dates import find_windows
from watcher.records import RawDocument, Topic

FIX = Path(__file__).parent / "fixtures" / "extract"
REF = dt.date(2026, 6, 15)


def _w(text: str) -> list[tuple[str, str, str]]:
    return [(str(w.earliest), str(w.latest), w.precision) for w in find_windows(text, REF)]


@pytest.mark.parametrize(("text", "expected"), [
    ("in Q3 2026", ("2026-07-01", "2026-09-30", "year-part")),
    ("the first half of 2027", ("2027-01-01", "2027-06-30", "year-part")),
    ("the second half of next year", ("2027-07-01", "2027-12-31", "year-part")),
    ("this fall", ("2026-09-01", "2026-11-30", "year-part")),
    ("winter 2026", ("2026-12-01", "2027-02-28", "year-part")),
    ("next year", ("2027-01-01", "2027-12-31", "year")),
    ("early 2027", ("2027-01-01", "2027-04-30", "year-part")),
    ("mid-2027", ("2027-05-01", "2027-08-31", "year-part")),
    ("towards the end of this year", ("2026-09-01", "2026-12-31", "year-part")),
    ("March 3, 2027", ("2027-03-03", "2027-03-03", "day")),
    ("18 February 2026", ("2026-02-18", "2026-02-18", "day")),
    ("the beginning of March 2020", ("2020-03-01", "2020-03-31", "month")),
])
def test_windows(text: str, expected: tuple[str, str, str]) -> None:
    assert _w(text)[0] == expected


def _doc(text: str, published: dt.date | None = REF) -> object:
    return normalise(RawDocument(url="file:///x.txt", format="text", body=text, title=text.split("\n")[0],
                                 published=published))


def test_invented_document() -> None:
    fs = extract(_doc((FIX / "windows.txt").read_text()))
    f = fs.facts
    assert fs.work == "Example Drama" and fs.season == 3
    assert f.release is not None and f.release.announced and str(f.release.earliest) == "2027-03-03"
    assert f.release.precision == "day" and f.release.evidence
    assert f.renewal is not None and f.renewal.value == "renewed"
    assert f.filming is not None and str(f.filming.start) == "2026-05-04" and str(f.filming.end) == "2026-09-01"
    assert f.trailer is not None and f.trailer.value == "released"


def test_cancelled_and_hedge() -> None:
    text = ("Sample Show Season 2 update\n\nSample Show has been cancelled by the network after one season.\n\n"
            "There was a slim chance of a late 2026 return, but a 2027 release is the most realistic window.")
    f = extract(_doc(text)).facts
    assert f.renewal is not None and f.renewal.value == "cancelled"
    assert f.release is not None and f.release.text == "2027"


def test_relative_unresolved_without_reference() -> None:
    f = extract(_doc("Sample Show Season 2\n\nSeason 2 will arrive later this year.", published=None)).facts
    assert f.release is None


def test_topic_override() -> None:
    fs = extract(_doc("Sample Show Season 2\n\nText."), topic=Topic("Other Work", 4))
    assert (fs.work, fs.season) == ("Other Work", 4)


def test_crew_is_not_cast_and_alias_merges() -> None:
    html = ("<h2>Returning cast</h2><ul><li>Kim Ha-na (Hana Kim) as Lee Do-yun</li></ul>"
            "<table><tr><th>Actor</th><th>Character</th><th>Status</th></tr>"
            "<tr><td>Kim Ha‑na</td><td>Lee Do‑yun</td><td>Returning</td></tr></table>"
            "<p>Jane Roe will return as showrunner and will executive produce alongside John Doe.</p>")
    doc = normalise(RawDocument(url="u", format="html", body=html, title="Sample Show Season 2"))
    cast = extract(doc).facts.cast
    assert list(cast) == ["Kim Ha-na"] and cast["Kim Ha-na"].status == "returning"
    assert cast["Kim Ha-na"].aliases == ["Hana Kim"]


def test_normalise_rejects_empty() -> None:
    with pytest.raises(DocumentError):
        normalise(RawDocument(url="u", format="text", body="   "))


def test_boilerplate_does_not_change_text() -> None:
    a = "<article><p>Season 2 arrives in 2027.</p></article>"
    b = ("<nav><a href=/>Home</a></nav><article><div class='ez-toc-container'><a href=#a>A</a></div>"
         "<p>Season 2   arrives in 2027.</p><p>You may also like: <a href=/x>X tours</a>, <a href=/y>Y tours</a></p>"
         "</article>")
    da = normalise(RawDocument(url="u", format="html", body=a))
    db = normalise(RawDocument(url="u", format="html", body=b))
    assert da.text == db.text and da.content_hash() == db.content_hash()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_random_text_never_raises(text: str) -> None:
    for fmt in ("text", "html"):
        try:
            doc = normalise(RawDocument(url="u", format=fmt, body=text, title=text[:40]))  # type: ignore[arg-type]
        except DocumentError:
            continue
        extract(doc, reference_date=REF)


def test_cli_json_and_bad_input(corpus: Path, tmp_path: Path) -> None:
    exe = [sys.executable, "-m", "watcher"]
    doc = corpus / "seeds" / "blueroads-wp-post-161.json"
    r = subprocess.run([*exe, "extract", str(doc), "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["facts"]["release"]["text"] == "early 2027" and "evidence" in out["facts"]["renewal"]
    r = subprocess.run([*exe, "extract", str(tmp_path / "missing.txt")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 4


# name -> (release (earliest, latest, precision, announced) or None, renewal, production, trailer, platform)
CASES = {
    "this-fall": (("2026-09-01", "2026-11-30", "year-part", False), None, None, None, "Hulu"),
    "hedge-only": (("2027-07-01", "2027-12-31", "year-part", False), "unconfirmed", None, None, None),
    # a firm statement of the date ('premieres on', 'is set to premiere', 'will arrive') is announced, as the
    # corpus readers take it; a season in production or pre-production has been renewed
    "teaser": (("2027-03-03", "2027-03-03", "day", True), None, None, "teaser", "Netflix"),
    "spring": (("2027-03-01", "2027-05-31", "year-part", False), None, None, None, None),
    "next-year": (("2027-01-01", "2027-12-31", "year", True), "renewed", "filming", None, None),
    "holiday": (("2026-11-15", "2026-12-31", "year-part", True), "renewed", "pre-production", None, None),
    "quarter": (("2027-01-01", "2027-03-31", "year-part", True), None, None, None, "Netflix"),
    "cancelled": (None, "cancelled", None, None, None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_invented_rules(name: str) -> None:
    text = (FIX / f"{name}.txt").read_text()
    f = extract(_doc(text)).facts
    release, renewal, production, trailer, platform = CASES[name]
    got = f.release and (str(f.release.earliest), str(f.release.latest), f.release.precision, f.release.announced)
    assert got == release
    for fact, want in ((f.renewal, renewal), (f.production, production), (f.trailer, trailer),
                       (f.platform, platform)):
        assert (fact.value if fact else None) == want
        assert fact is None or (fact.evidence and 0 < fact.confidence <= 1)


def test_hedged_only_claim_has_low_confidence() -> None:
    f = extract(_doc((FIX / "hedge-only.txt").read_text())).facts
    assert f.release is not None and f.release.confidence < 0.5


def test_cli_url_on_local_server(httpserver, corpus: Path) -> None:
    body = (corpus / "seeds" / "blueroads-wp-post-161.json").read_bytes()
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/missing").respond_with_data("gone", status=404)
    httpserver.expect_request("/wp/post").respond_with_data(body, content_type="application/json")
    exe = [sys.executable, "-m", "watcher", "extract"]
    r = subprocess.run([*exe, httpserver.url_for("/wp/post"), "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    filming = json.loads(r.stdout)["facts"]["filming"]
    assert (filming["start"], filming["end"]) == ("2025-07-23", "2026-02-18") and filming["evidence"]
    r = subprocess.run([*exe, httpserver.url_for("/missing")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 4 and "404" in r.stderr


def test_cli_table_output(corpus: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "watcher", "extract", str(corpus / "articles" / "society-s2.txt"),
                        "--published", "2019-07-16"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "renewed" in r.stdout and "Kathryn Newton" in r.stdout


def test_cli_feed_auto_detect_and_entry() -> None:
    feed = FIX / "two-entries.xml"
    exe = [sys.executable, "-m", "watcher", "extract", str(feed), "--json"]
    first = json.loads(subprocess.run(exe, capture_output=True, text=True, timeout=60, check=True).stdout)
    assert first["document"]["format"] == "feed-entry" and first["work"] == "Sample Show"
    # 'officially renewed ... arriving in 2027': the renewal is official, the date is not
    assert first["facts"]["release"]["announced"] is False
    second = json.loads(subprocess.run([*exe, "--entry", "1"], capture_output=True, text=True, timeout=60,
                                       check=True).stdout)
    assert second["facts"]["renewal"]["value"] == "cancelled" and second["season"] == 3
    r = subprocess.run([*exe, "--entry", "5"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 4
