"""Dates and release windows in a sentence (DESIGN.md "Date windows"); precision is kept here, not guessed."""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re
from dataclasses import dataclass

from watcher.extract import prefilter as fre
from watcher.extract.prefilter import Rx

DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u00ad"), "-")

MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
MONTHS["sept"] = 9
_MON = r"(?P<mon>January|February|March|April|May|June|July|August|September|October|November|December|" \
       r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?"
_YEAR = r"(?P<year>(?:19|20)\d{2})"
_REL = r"(?P<rel>this year|next year|later this year|the year)"
_YR_OR_REL = rf"(?:{_YEAR}|{_REL})"
_PART = r"(?P<part>early|the early part of|beginning of|the beginning of|start of|the start of|mid|middle of|" \
        r"the middle of|late|later|end of|the end of|towards the end of|toward the end of|the latter part of)"
_SEASON = r"(?P<season>spring|summer|fall|autumn|winter|holiday season|holidays)"

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("iso", Rx(r"\b(?P<year>(?:19|20)\d{2})-(?P<m>\d{2})-(?P<day>\d{2})\b")),
    ("day", Rx(rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MON}(?:,?\s+{_YEAR})?\b", re.I)),
    ("day", Rx(rf"\b{_MON}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+{_YEAR})?(?!\d)", re.I)),
    ("half", Rx(rf"\b(?:the\s+)?(?P<half>first|second|1st|2nd)\s+half\s+of\s+{_YR_OR_REL}", re.I)),
    ("half", Rx(rf"\bH(?P<half>[12])\s+{_YEAR}\b", re.I)),
    ("quarter", Rx(rf"\bQ(?P<q>[1-4])\s*(?:of\s+)?{_YR_OR_REL}", re.I)),
    ("quarter", Rx(rf"\b(?:the\s+)?(?P<q>first|second|third|fourth|final|last)\s+quarter\s+of\s+{_YR_OR_REL}",
                           re.I)),
    ("month", Rx(rf"\b(?:(?:early|mid|late|the beginning of|beginning of|the end of|end of)[\s-]+)?"
                         rf"{_MON}\s+(?:of\s+)?{_YEAR}\b", re.I)),
    ("yseason", Rx(rf"\b(?:this|next|the)\s+{_SEASON}\b(?:\s+(?:of\s+)?{_YEAR})?", re.I)),
    ("yseason", Rx(rf"\b{_SEASON}\s+(?:of\s+)?{_YEAR}\b", re.I)),
    ("yseason", Rx(rf"\b{_SEASON}\s+(?:of\s+)?(?P<rel>this year|next year)\b", re.I)),
    ("part", Rx(rf"\b{_PART}[\s-]+{_YR_OR_REL}", re.I)),
    ("year", Rx(rf"\b(?:in|by|for|of|during|a|an|the)?\s*{_YR_OR_REL}(?![\d–-])", re.I)),
    # a month without a year ('will begin in July'): the next such month from the reference date
    ("bmonth", Rx(r"\b(?:in|this|next|until|by|from|early|late|mid|for)\s+(?:early\s+|late\s+|mid-?)?"
                          r"(?P<mon>(?-i:January|February|March|April|May|June|July|August|September|October|"
                          r"November|December))\b(?!\s+\d)", re.I)),
]


# Most sentences hold no date at all: one look for the literals of every pattern turns them away.
_ANY_DATE = fre.AnyOf([rx for _, rx in _PATTERNS])


@dataclass(frozen=True, slots=True)
class Window:
    text: str
    earliest: dt.date
    latest: dt.date
    precision: str
    start: int
    end: int


def _last_day(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def _year_of(m: re.Match[str], ref: dt.date | None) -> int | None:
    if m.groupdict().get("year"):
        return int(m["year"])
    rel = (m.groupdict().get("rel") or "").lower()
    if rel and ref is not None:
        return ref.year + 1 if rel == "next year" else ref.year  # 'the end of the year' is this year
    return None


def _part_range(part: str, year: int) -> tuple[dt.date, dt.date]:
    p = part.lower()
    if "early" in p or "beginning" in p or "start" in p:
        return dt.date(year, 1, 1), dt.date(year, 4, 30)
    if "mid" in p or "middle" in p:
        return dt.date(year, 5, 1), dt.date(year, 8, 31)
    return dt.date(year, 9, 1), dt.date(year, 12, 31)


def _season_range(season: str, year: int) -> tuple[dt.date, dt.date]:
    s = season.lower()
    if s == "spring":
        return dt.date(year, 3, 1), dt.date(year, 5, 31)
    if s == "summer":
        return dt.date(year, 6, 1), dt.date(year, 8, 31)
    if s in ("fall", "autumn"):
        return dt.date(year, 9, 1), dt.date(year, 11, 30)
    if s == "winter":
        return dt.date(year, 12, 1), _last_day(year + 1, 2)
    return dt.date(year, 11, 15), dt.date(year, 12, 31)


_QUARTER = {"first": 1, "second": 2, "third": 3, "fourth": 4, "final": 4, "last": 4}


def _window(kind: str, m: re.Match[str], ref: dt.date | None) -> tuple[dt.date, dt.date, str] | None:
    g = m.groupdict()
    if kind == "day":
        year = _year_of(m, None)
        if year is None:
            if ref is None:
                return None
            year = ref.year
        d = dt.date(year, MONTHS[g["mon"].lower().rstrip(".")], int(g["day"]))
        return d, d, "day"
    if kind == "iso":
        d = dt.date(int(g["year"]), int(g["m"]), int(g["day"]))
        return d, d, "day"
    if kind == "bmonth":
        if ref is None:
            return None
        month = MONTHS[g["mon"].lower()]
        year = ref.year + (1 if month < ref.month or m.group(0).lower().startswith("next") else 0)
        return dt.date(year, month, 1), _last_day(year, month), "month"
    if kind == "month":
        year = int(g["year"])
        month = MONTHS[g["mon"].lower().rstrip(".")]
        return dt.date(year, month, 1), _last_day(year, month), "month"
    year = _year_of(m, ref)
    if kind == "yseason":
        if year is None:
            if ref is None:
                return None
            year = ref.year + (1 if fre.match(r"(?:early |late |mid-?)?next\b", m.group(0).lower()) else 0)
        e, la = _season_range(g["season"], year)
        return e, la, "year-part"
    if year is None:
        return None
    if kind == "half":
        first = g["half"].lower() in ("first", "1st", "1")
        if first:
            return dt.date(year, 1, 1), dt.date(year, 6, 30), "year-part"
        return dt.date(year, 7, 1), dt.date(year, 12, 31), "year-part"
    if kind == "quarter":
        q = int(g["q"]) if g["q"].isdigit() else _QUARTER[g["q"].lower()]
        return dt.date(year, 3 * q - 2, 1), _last_day(year, 3 * q), "year-part"
    if kind == "part":
        if g["part"].lower() == "later":  # 'later this year' is this year, not its late part
            return dt.date(year, 1, 1), dt.date(year, 12, 31), "year"
        e, la = _part_range(g["part"], year)
        return e, la, "year-part"
    if (g.get("rel") or "").lower() == "the year":
        return None
    return dt.date(year, 1, 1), dt.date(year, 12, 31), "year"


def find_windows(sentence: str, ref: dt.date | None) -> list[Window]:
    """Every date or window in a sentence, most specific pattern first, without overlaps, in text order."""
    return list(_find_windows(sentence, ref))


@functools.lru_cache(maxsize=4096)
def _find_windows(sentence: str, ref: dt.date | None) -> tuple[Window, ...]:
    # cached: the release, previous-release and filming rules read the same sentences
    sentence = sentence.translate(DASHES)
    if not _ANY_DATE.possible(sentence):
        return ()
    taken: list[tuple[int, int]] = []
    found: list[Window] = []
    for kind, rx in _PATTERNS:
        for m in rx.finditer(sentence):
            s, e = m.span()
            text = m.group(0).strip()
            s = e - len(m.group(0).lstrip())
            if any(s < te and ts < e for ts, te in taken):
                continue
            if kind == "bmonth" and fre.search(r"\b(?:back|earlier|last|since|ago)\s*$", sentence[max(0, s - 10):s],
                                              re.I):
                continue  # 'back in March': a past month
            if kind == "day" and fre.search(r"\b(?:season|series|episode|part|chapter|vol\.?|volume|no\.?)\s*$",
                                           sentence[max(0, s - 12):s], re.I):
                continue  # 'the Season 2 May 26 premiere': 2 is a season, not a day
            try:
                w = _window(kind, m, ref)
            except (ValueError, KeyError, OverflowError):
                w = None
            if w is None:
                continue
            text = fre.sub(r"^(?:in|by|for|of|during|a|an|the)\s+", "", text, flags=re.I)
            taken.append((s, e))
            found.append(Window(text, w[0], w[1], w[2], s, e))
    return tuple(sorted(found, key=lambda w: w.start))
