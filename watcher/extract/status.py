"""Renewal, production stage, filming dates, platform and trailer, each from the sentence that states it."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

from watcher.extract.dates import find_windows
from watcher.extract.text import Sentence, about_other_season
from watcher.records import FilmingFact, ScalarFact

_RENEWED = re.compile(r"\b(renew(?:s|ed)\b(?! or not)|greenlit|green-lit|greenlights?|picked up for|ordered a second|"
                      r"(?:confirmed|announced) (?:that )?(?:the )?(?:a |its )?(?:second|third|new|next) season|"
                      r"season \d+ (?:is|was|has been) (?:officially )?confirmed|is in the works|early renewal|"
                      r"(?:has|have) been (?:officially )?confirmed for (?:a )?(?:second|third|new|another) season)",
                      re.I)
_NOT_RENEWED = re.compile(r"\b(whether|if|remains to be seen|not (?:yet )?(?:been )?(?:renewed|confirmed)|"
                          r"hasn'?t (?:been )?(?:renewed|confirmed)|yet to|no word|undecided|to get renewed)\b", re.I)
_CANCELLED = re.compile(r"\b(?:has|have|was|were|been|is|officially)\s+(?:officially\s+)?(?:been\s+)?"
                        r"(?:cancell?ed|axed)\b|\bcancels\b|\bwill not return\b|\bwon'?t return\b", re.I)
_NEG_CANCEL = re.compile(r"\b(not|n't|never)\s+(?:\w+\s+){0,2}(?:cancell?ed|axed)", re.I)
_UNCONFIRMED = re.compile(r"\b(remains to be seen|not (?:yet )?(?:been )?renewed|hasn'?t been renewed|"
                          r"yet to (?:be )?renew|no word on (?:a )?(?:renewal|season))\b", re.I)

_STAGES: list[tuple[str, re.Pattern[str]]] = [
    ("released", re.compile(r"\b(?:is|are) now (?:streaming|available)\b|\bpremiered on\b", re.I)),
    ("post-production", re.compile(r"\b(wrapped (?:filming|production|shooting)|finished (?:filming|shooting)|"
                                   r"filming (?:is|has) (?:complete|done|wrapped|finished)|(?:is|now|deep) in "
                                   r"post-production|fully filmed|filming wrap(?:ped)?)\b", re.I)),
    ("filming", re.compile(r"\b(?:is|are) (?:currently |now )?(?:filming|shooting|in production)\b|"
                           r"\b(?:filming|shooting|production|principal photography) (?:is underway|(?:has|have) "
                           r"(?:officially )?(?:begun|started|commenced|kicked off)|began|started)\b|"
                           r"\b(?:began|has begun|started|has started|is in) (?:filming|shooting|production|"
                           r"principal photography)\b", re.I)),
    ("pre-production", re.compile(r"\bpre-production\b|\bcasting is underway\b", re.I)),
    ("development", re.compile(r"\b(?:is|are) in the works\b|\bin development\b|\bwill (?:begin|start) "
                               r"(?:production|filming|shooting)\b|\bproduction (?:on [^.]{0,40})?will "
                               r"(?:begin|start)\b|\bwriting (?:has|is)\b", re.I)),
]
_RANK = {"development": 0, "pre-production": 1, "filming": 2, "post-production": 3, "complete": 4, "released": 5}
_HYPOTHETICAL = re.compile(r"\b(might|could|would|if|typically|usually)\b|(?<!\d )\bmay\b(?! \d)", re.I)

_FILM_START = re.compile(r"\b(began|begin|begun|start\w*|commenc\w*|kick\w* off|shoot start|rolling)\b", re.I)
_FILM_END = re.compile(r"\b(wrap\w*|finish\w*|complet\w*|ended|end)\b", re.I)
_FILM_CTX = re.compile(r"\b(film\w*|shoot\w*|photography|production|cameras)\b", re.I)

PLATFORMS = ("Netflix", "Apple TV+", "Disney+", "Hulu", "HBO Max", "Max", "Prime Video", "Amazon Prime Video",
             "Peacock", "Paramount+", "Crunchyroll", "Viki", "Starz", "Showtime", "AMC+", "BBC iPlayer", "Tving",
             "Wavve", "Coupang Play", "Disney Plus", "Apple TV Plus", "Paramount Plus", "HBO", "Amazon")
_PLATFORM_RX = re.compile(r"(?<![\w+])(" + "|".join(re.escape(p) for p in sorted(PLATFORMS, key=len, reverse=True))
                          + r")(?![\w+])")
_STREAM_VERB = re.compile(r"\b(stream\w*|arriv\w*|releas\w*|premier\w*|on|exclusively|available|service|platform)\b",
                          re.I)


def renewal(sentences: list[Sentence], target: int | None) -> ScalarFact | None:
    """Later, more definite statements win: renewed/cancelled beat 'remains to be seen'."""
    definite: ScalarFact | None = None
    vague: ScalarFact | None = None
    for s in sentences:
        t = s.text
        if s.kind == "heading" or (target is not None and about_other_season(t, target)):
            continue
        if _CANCELLED.search(t) and not _NEG_CANCEL.search(t) and not re.search(r"\bwhether|\bif\b", t, re.I):
            definite = ScalarFact(value="cancelled", evidence=t, confidence=0.85)
        elif _RENEWED.search(t) and not _NOT_RENEWED.search(t):
            conf = 0.9 if re.search(r"official|confirm|announc", t, re.I) else 0.8
            definite = ScalarFact(value="renewed", evidence=t, confidence=conf)
        elif _UNCONFIRMED.search(t):
            vague = ScalarFact(value="unconfirmed", evidence=t, confidence=0.6)
    return definite or vague


def production(sentences: list[Sentence], target: int | None) -> ScalarFact | None:
    """The most advanced stage stated as fact (not hypothetical), for the target season."""
    best: ScalarFact | None = None
    for s in sentences:
        t = s.text
        if about_other_season(t, target):
            continue
        for stage, rx in _STAGES:
            m = rx.search(t)
            if not m:
                continue
            if _HYPOTHETICAL.search(t[max(0, m.start() - 40):m.start()]):
                continue
            if best is None or _RANK[stage] >= _RANK[best.value]:
                best = ScalarFact(value=stage, evidence=t, confidence=0.75)
            break
    return best


def filming(sentences: list[Sentence], target: int | None, ref: dt.date | None) -> FilmingFact | None:
    start: tuple[dt.date, str] | None = None
    end: tuple[dt.date, str] | None = None
    for s in sentences:
        t = s.text
        if not _FILM_CTX.search(t) or about_other_season(t, target) or _HYPOTHETICAL.search(t):
            continue
        for w in find_windows(t, ref):
            if w.precision not in ("day", "month"):
                continue
            before = t[max(0, w.start - 60):w.start]
            starts = [m.end() for m in _FILM_START.finditer(before)]
            ends = [m.end() for m in _FILM_END.finditer(before)]
            if not starts and not ends:
                continue
            if (max(starts) if starts else -1) > (max(ends) if ends else -1):
                if start is None:
                    start = (w.earliest, t)
            elif end is None:
                end = (w.earliest, t)
    if start is None and end is None:
        return None
    evidence = " … ".join(dict.fromkeys(e for e in (start and start[1], end and end[1]) if e))
    return FilmingFact(start=start[0] if start else None, end=end[0] if end else None, evidence=evidence,
                       confidence=0.8)


def platform(sentences: list[Sentence]) -> ScalarFact | None:
    counts: Counter[str] = Counter()
    evidence: dict[str, str] = {}
    for s in sentences:
        for m in _PLATFORM_RX.finditer(s.text):
            name = m.group(1)
            weight = 2 if _STREAM_VERB.search(s.text) else 1
            counts[name] += weight
            evidence.setdefault(name, s.text)
    if not counts:
        return None
    name, n = counts.most_common(1)[0]
    return ScalarFact(value=name, evidence=evidence[name], confidence=round(min(0.95, 0.5 + 0.05 * n), 2))


_TRAILER = re.compile(r"\b(trailers?|teasers?)\b", re.I)
_NO_TRAILER = re.compile(r"\b(no (?:official )?(?:trailer|teaser)|(?:trailer|teaser)s? (?:has|have) not|"
                         r"not (?:yet )?(?:released|dropped|shared) (?:a|any|the) (?:trailer|teaser)|"
                         r"(?:bring|bringing|expect|expected|will (?:get|see|release)|upcoming|later)\b[^.]{0,40}"
                         r"\b(?:trailers?|teasers?))\b", re.I)
_TRAILER_OUT = re.compile(r"\b((?:released|dropped|unveiled|shared|debuted|revealed) (?:a |an |the |its )?"
                          r"(?:first |new |official )?(?P<a>trailer|teaser)|(?P<b>trailer|teaser)\b[^.]{0,40}?"
                          r"(?:is|was|has been|has) (?:now )?(?:out|here|released|arrived|dropped)|watch the "
                          r"(?:new |official )?(?P<c>trailer|teaser))\b", re.I)


def trailer(sentences: list[Sentence], target: int | None) -> ScalarFact | None:
    result: ScalarFact | None = None
    for s in sentences:
        t = s.text
        if not _TRAILER.search(t) or about_other_season(t, target) or s.kind in ("heading", "title"):
            continue
        m = _TRAILER_OUT.search(t)
        if m and not _NO_TRAILER.search(t):
            kind = (m["a"] or m["b"] or m["c"] or "").lower()
            value = "teaser" if kind == "teaser" else "released"
            if result is None or result.value != "released":
                result = ScalarFact(value=value, evidence=t, confidence=0.8)
        elif _NO_TRAILER.search(t) and result is None:
            result = ScalarFact(value="none", evidence=t, confidence=0.6)
    return result
