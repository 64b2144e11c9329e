"""The work and season a document is about, from its title, headings and text."""

from __future__ import annotations

import re
from collections import Counter

from watcher.extract.text import _ORD, clean

_TITLE_SEASON = re.compile(r"^(?P<work>.+?)\s+(?:season|series)(?:\s+season)*\s*(?P<n>\d{1,2})?\b", re.I)
_RENEW = re.compile(r"\b(?:renews?|renewed|cancels?|cancelled|picks up|greenlights?)\s+(?P<work>.+?)\s+for\s+"
                    r"(?:an?\s+)?(?:(?P<ord>\w+)\s+season|season\s+(?P<n>\d{1,2}))", re.I)
_SEASON_OF = re.compile(r"\bseason\s+(?P<n>\d{1,2})\s+of\s+(?P<work>.+)", re.I)
_FUNCTION = {"of", "the", "and", "a", "an", "in", "on", "to", "for", "are", "is", "at", "with", "vs", "&", "us"}
_ORD_OF = re.compile(r"\b(?P<ord>first|second|third|fourth|fifth|sixth)\s+season\s+of\s+", re.I)


def _title_words(text: str) -> str:
    """The leading run of title-cased words (function words allowed inside, trimmed at the end)."""
    words: list[str] = []
    for w in text.split():
        bare = w.strip("'\"‘’“”,:;?!.")
        if not bare:
            break
        if bare[0].isupper() or bare[0].isdigit() or bare.lower() in _FUNCTION:
            words.append(bare if w.endswith(("?", "!", ",", ":", ";", ".")) else w)
            if w.endswith(("?", "!", ",", ":", ";", ".")):
                break
        else:
            break
    while words and words[-1].lower() in _FUNCTION - {"us"}:
        words.pop()
    return " ".join(words)


def _tidy(work: str) -> str:
    quoted = re.search(r"(?:^|\s)[‘'\"“](.+?)[’'\"”](?=\s|$|[:,])", work)
    if quoted:
        work = quoted.group(1)
    work = re.sub(r"^[\"'‘“]+|[\"'’”:,–-]+$", "", work.strip()).strip()
    return re.sub(r"^[\"'‘“](.+)[\"'’”]$", r"\1", work)


def detect_topic(title: str | None, headings: tuple[str, ...], text: str) -> tuple[str | None, int | None]:
    work: str | None = None
    season: int | None = None
    for cand in [title or "", *headings]:
        cand = clean(cand)
        m = _RENEW.search(cand)
        if m:
            work = _tidy(m["work"])
            season = int(m["n"]) if m["n"] else _ORD.get((m["ord"] or "").lower())
            break
        m = _SEASON_OF.search(cand)
        if m and _title_words(m["work"]):
            work = _tidy(_title_words(m["work"]))
            season = int(m["n"])
            break
        m = _TITLE_SEASON.search(cand)
        if m and len(m["work"].split()) <= 8 and not re.search(r"\b(when|will|what|is|how|where)\b", m["work"], re.I):
            work = _tidy(m["work"])
            season = int(m["n"]) if m["n"] else None
            break
    if season is None:
        nums = Counter(int(n) for n in re.findall(r"\bseason\s*(\d{1,2})\b", text, re.I))
        nums.update(_ORD[o.lower()] for o in _ORD_OF.findall(text))
        later = {n: c for n, c in nums.items() if n > 1}
        if later:
            season = max(later.items(), key=lambda kv: (kv[1], kv[0]))[0]
    if work is None and title:
        work = _tidy(re.split(r"\s[:|–-]\s", clean(title))[0])
    return work or None, season
