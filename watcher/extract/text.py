"""Text -> sentences, and which seasons a sentence talks about."""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

from watcher.extract import prefilter as fre
from watcher.extract.dates import DASHES
from watcher.extract.prefilter import Rx
from watcher.records import Document

# The lookbehind that holds at few positions comes first: the abbreviations are tested only after a stop.
_SPLIT = Rx(r"(?<=[.!?])(?<!\bJan\.)(?<!\bFeb\.)(?<!\bMar\.)(?<!\bApr\.)(?<!\bJun\.)(?<!\bJul\.)(?<!\bAug\.)"
                    r"(?<!\bSep\.)(?<!\bOct\.)(?<!\bNov\.)(?<!\bDec\.)(?<!\bSept\.)(?<!\bMr\.)(?<!\bDr\.)"
                    r"(?<!\bMs\.)(?<!\bSt\.)(?<!\bJr\.)(?<!\bvs\.)(?<!\b[A-Z]\.)[\"”’)]?\s+(?=[\"“‘(]?[A-Z0-9])")
_ORD = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8}
_SEASON_NUM = Rx(r"\b(?:season|series|s)\s*(\d{1,2})\b", re.I)
_DIGIT = re.compile(r"\d").search  # (the literal prefilter cannot see that: 's' is in nearly every sentence)
_SEASON_ORD = Rx(r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth)\s+(?:season|series|instal+ment)\b",
                         re.I)
_SEASON_NEW = Rx(r"\b(?:new|next|upcoming|latest|second|another)\s+(?:season|instal+ment)\b", re.I)


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str
    index: int
    kind: str = "prose"  # prose | item | row | heading | title
    heading: str | None = None  # the section heading the sentence sits under
    lead: str | None = None  # for list items (and lines after a lead-in ending in ':'), that lead-in


# dashes as '-', typographic apostrophes as "'", zero-width spaces dropped: every one a non-ASCII character
_CLEAN = str.maketrans({**DASHES, ord("’"): "'", ord("‘"): "'", ord("ʼ"): "'", 0x200B: None})


def clean(text: str) -> str:
    """One line of text as the rules read it: dashes as '-', typographic apostrophes as "'", single spaces."""
    return " ".join((text if text.isascii() else text.translate(_CLEAN)).split())


_MAX_SENTENCE = 800


def _chunks(sentence: str) -> list[str]:
    """A run-on 'sentence' (no punctuation for pages) is cut at spaces, so no rule meets unbounded text."""
    out: list[str] = []
    while len(sentence) > _MAX_SENTENCE:
        cut = sentence.rfind(" ", 0, _MAX_SENTENCE)
        cut = cut if cut > 0 else _MAX_SENTENCE
        out.append(sentence[:cut])
        sentence = sentence[cut:].lstrip()
    if sentence:
        out.append(sentence)
    return out


def split_sentences(text: str) -> list[str]:
    out: list[str] = []
    for line in text.split("\n"):
        line = clean(line)
        if line:
            for s in _SPLIT.split(line):
                if s.strip():
                    out.extend(_chunks(s))
    return out


def seasons_mentioned(text: str, target: int | None) -> frozenset[int]:
    """Season numbers a sentence names; 'the new/next season' counts as the target season."""
    found, new = _seasons(text)
    return found | {target} if new and target is not None else found


# cached per text, whatever the target: the rules ask it of every sentence, with and without a target
@functools.lru_cache(maxsize=4096)
def _seasons(text: str) -> tuple[frozenset[int], bool]:
    """The season numbers a sentence names, and whether it speaks of 'the new/next season'."""
    found = {int(n) for n in _SEASON_NUM.findall(text)} if _DIGIT(text) else set()  # it needs a digit
    found |= {_ORD[o.lower()] for o in _SEASON_ORD.findall(text)}
    return frozenset(found), bool(_SEASON_NEW.search(text))


def about_other_season(text: str, target: int | None) -> bool:
    """True when the sentence names only seasons other than the target one."""
    found = seasons_mentioned(text, target)
    return bool(found) and target is not None and target not in found


# A dateline or byline at the top of an article: 'date 2022-02-11', 'posted on 2024-10-08 05:01 EDT by ...',
# 'By A Writer on 2020/10/24 at 21:53 PST', 'By A Writer | March 3, 2021', 'Published: 3 Mar 2021, 10:00',
# 'Updated on Mar 3, 2021 at 9:15 am'. It dates the article; it is never a release claim. A date written out
# at the very start of a line is a dateline only when the line ends there or goes on after a separator
# ('March 3, 2021 — The streamer ...'), so a sentence such as 'March 5, 2027 is the date' is left alone.
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?"
          r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_DATE = (r"(?:(?P<y>(?:19|20)\d{2})[-/.](?P<m>\d{1,2})(?:[-/.](?P<d>\d{1,2}))?\b"
         rf"|(?P<mon1>{_MONTH})\s+(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y1>(?:19|20)\d{{2}})\b"
         rf"|(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<mon2>{_MONTH}),?\s+(?P<y2>(?:19|20)\d{{2}})\b)")
_TIME = r"(?:,?\s+(?:at\s+)?\d{1,2}[:.]\d{2}(?:\s*[ap]\.?m\.?)?(?:\s+[A-Z]{2,4})?)?"
_BYLINE_BY = r"(?:\s+by\s+[A-Z][\w.'’-]*(?:\s+[A-Z][\w.'’-]*){0,3})?"
_SEPARATOR = r"(?:\s*$|\s*[|·•—–-]\s*|\s+(?=by\s))"
_DATELINE = Rx(
    r"^\s*(?:(?P<kw>date|dated|posted(?: on)?|published(?: on)?|(?:last\s+)?updated(?: on)?)\s*:?\s*"
    r"|(?P<by>by\s+[^\n|·•]{1,60}?)\s*(?:\bon\b|[|·•,–—-])\s*)?"
    + _DATE + _TIME + _BYLINE_BY + r"(?P<end>" + _SEPARATOR + r")?\s*\d{0,2}\s*", re.I)


def dateline(line: str) -> tuple[dt.date | None, bool, str]:
    """(date, has_day, rest of the line) for a line that opens with a dateline; (None, False, line) otherwise."""
    from watcher.extract.dates import MONTHS

    m = _DATELINE.match(line)
    if not m:
        return None, False, line
    if not (m["kw"] or m["by"] or m["end"] is not None):  # a bare date must stand alone or before a separator
        return None, False, line
    try:
        if m["y"]:
            d = dt.date(int(m["y"]), int(m["m"]), int(m["d"] or 1))
            has_day = m["d"] is not None
        else:
            month = MONTHS.get((m["mon1"] or m["mon2"]).lower().rstrip(".")[:3])
            if month is None:
                return None, False, line
            d = dt.date(int(m["y1"] or m["y2"]), month, int(m["d1"] or m["d2"]))
            has_day = True
    except ValueError:
        return None, False, line
    return d, has_day, line[m.end():]


def document_sentences(doc: Document) -> tuple[list[Sentence], dt.date | None, bool]:
    """The document as sentences with their kind, section heading and lead-in; and its dateline date, if any.

    Title first; then each line of the text: list items ('• '), table rows ('a | b'), headings, prose. A prose
    line ending in ':' is the lead-in of the lines that follow it, as a list lead-in is of its items.
    """
    out: list[Sentence] = []
    headings = {clean(h) for h in doc.headings}
    title = clean(doc.title) if doc.title else ""
    if title:
        out.append(Sentence(title, 0, "title"))
    heading: str | None = None
    lead: str | None = None
    dated: dt.date | None = None
    has_day = False
    for n, raw_line in enumerate(doc.text.split("\n")):
        line = clean(raw_line)
        if n < 4 and dated is None:
            d, day, rest = dateline(line)
            if d is not None:
                dated, has_day, line = d, day, clean(rest)
        if not line or (line == title and not out[1:]):
            continue
        if line.startswith("• "):
            kind, line = "item", line[2:]
        elif " | " in line:
            kind = "row"
        elif line in headings:
            kind = "heading"
        else:
            kind = "prose"
        if kind == "heading" and lead is not None and (_listy(line) or len(line.split()) <= 6):
            kind = "item"  # a short line right after 'The new cast members include:' is an item of that list
        if kind == "heading":
            heading, lead = line, None
            out.append(Sentence(line[:_MAX_SENTENCE], len(out), kind, heading))
            continue
        parts = split_sentences(line) if kind in ("prose", "item") else [line[:_MAX_SENTENCE]]
        own_lead = lead if kind == "item" or (kind == "prose" and lead is not None) else None
        for part in parts:
            out.append(Sentence(part, len(out), kind, heading, own_lead))
        if kind == "prose":
            lead = line if line.rstrip().endswith(":") else (lead if own_lead is not None and _listy(line) else None)
        elif kind == "item" and lead is None and line.rstrip().endswith(":"):
            lead = line
    return out, dated, has_day


def _listy(line: str) -> bool:
    """A line that continues a lead-in's list: a short 'Name as Role' line or one with several commas."""
    return bool(fre.search(r"\b(?:as|how)\s+[A-Z]", line)) or line.count(",") >= 2
