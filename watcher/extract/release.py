"""Release claims: sentence -> candidate windows -> the primary claim (and the previous season's date)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass

from watcher.extract.dates import Window, find_windows
from watcher.extract.text import Sentence, about_other_season, seasons_mentioned
from watcher.records import PreviousRelease, ReleaseFact

_RELEASE = re.compile(r"\b(releas\w*|premier\w*|arriv\w*|launch\w*|debut\w*|drop\w*|stream\w*|return\w*|air\w*|"
                      r"out|coming|hit\w*|broadcast\w*|window|available|bow\w*)\b", re.I)
_PRODUCTION_VERB = re.compile(r"\b(begin|began|begun|start\w*|film\w*|shoot\w*|shot|wrap\w*|finish\w*|production|"
                              r"photography|slate|schedule|line-?up|casting|news|hit in|since|gap)\b", re.I)
_HEDGE_BEFORE = re.compile(r"\b(chance|unlikely|rather than|not|either|or|surprise|hop\w*|instead of|than|possib\w*|"
                           r"rumou?r\w*|could|might|may)\W+(?:\w+\W+){0,3}$", re.I)
_HEDGE_AFTER = re.compile(r"^\W*(?:\w+\W+){0,2}(unlikely|surprise|at the earliest|or)\b", re.I)
_HEDGE_SENT = re.compile(r"^(if|unless|whether)\b|\bif netflix\b|\bif (?:the|it)\b", re.I)
_STRONG = re.compile(r"\b(most (?:realistic|plausible|likely)|more realistic|plans? to|set to|will (?:arrive|premiere|"
                     r"release|debut|launch|return)|launch|premiere|confirmed|official\w*|announced|scheduled)\b", re.I)
# 'announced' needs the document to say so: an official/confirmed/announced date, not just a date.
_OFFICIAL = re.compile(r"\b(official(?:ly)?|confirmed|announced)\b", re.I)
_NEGATED_OFFICIAL = re.compile(r"\b(not (?:yet )?(?:been )?(?:officially )?(?:announced|confirmed)|until .* officially|"
                               r"no official|unofficial)\b", re.I)
_TENTATIVE = re.compile(r"\b(expected|likely|rumou?r\w*|reportedly|could|may|might|possibl\w*|speculat\w*|"
                        r"predict\w*|estimat\w*|hope\w*|if)\b", re.I)
_PAST = re.compile(r"\b(debuted|premiered|released|arrived|dropped|aired|launched|came out)\b", re.I)


@dataclass(frozen=True, slots=True)
class Candidate:
    window: Window
    score: float
    sentence: Sentence
    official: bool


def _window_hedged(text: str, w: Window) -> bool:
    before = text[max(0, w.start - 60):w.start]
    after = text[w.end:w.end + 30]
    if re.search(r"\(\s*$", before) and re.search(r"^\s*\)|\)", after[:5]):
        return True
    return bool(_HEDGE_BEFORE.search(before) or _HEDGE_AFTER.search(after)) or bool(
        re.search(r"\((?:[^()]*\b(?:low|slim|small) chance\b)", text[:w.start]) and ")" in text[w.end:])


def _is_official(text: str, w: Window) -> bool:
    """The document says this date is official: an official/confirmed/announced word close before the window
    (not one about the renewal), or 'is confirmed/official' right after it."""
    if _NEGATED_OFFICIAL.search(text) or _TENTATIVE.search(text):
        return False
    before = text[max(0, w.start - 80):w.start]
    m = re.search(r"\b(official(?:ly)?|confirmed|announced)\b(?!\W+renew)((?:\W+\w+){0,8})\W*$", before, re.I)
    after = text[w.end:w.end + 40]
    return bool(m) or bool(re.match(r"\W*(?:is|was|has been|as)\s+(?:now\s+)?(?:officially\s+)?"
                                    r"(?:confirmed|announced|official)", after, re.I))


def _production_bound(text: str, w: Window) -> bool:
    """A window right after a production verb (begin, wrap, filming, slate ...) dates that, not the release."""
    before = text[max(0, w.start - 40):w.start]
    return bool(re.search(_PRODUCTION_VERB.pattern + r"\W+(?:\w+\W+){0,3}$", before, re.I))


def candidates(sentences: list[Sentence], target: int | None, ref: dt.date | None) -> list[Candidate]:
    out: list[Candidate] = []
    for s in sentences:
        text = s.text
        if not _RELEASE.search(text) or about_other_season(text, target):
            continue
        windows = find_windows(text, ref)
        if not windows:
            continue
        base = 1.0
        if s.kind == "row":
            base += 1.0
        if target is not None and target in seasons_mentioned(text, target):
            base += 1.0
        if s.kind == "heading":
            base -= 0.5
        if text.rstrip().endswith("?"):
            base -= 2.0  # a question is not a claim
        if _HEDGE_SENT.search(text):
            base -= 2.0
        if _STRONG.search(text):
            base += 1.0
        for w in windows:
            if _production_bound(text, w) or re.match(r"\W*(?:\w+\W+){0,2}(?:slate|line-?up|calendar|status|"
                                                                 r"bringing|schedule)\b", text[w.end:], re.I):
                continue
            if ref is not None and w.latest < ref and w.precision != "day" and not _OFFICIAL.search(text):
                continue  # a past vague window is history, not a coming release
            if ref is not None and w.latest < ref and _PAST.search(text) and target not in seasons_mentioned(text,
                                                                                                              target):
                continue
            score = base - (2.5 if _window_hedged(text, w) else 0.0)
            official = _is_official(text, w)
            out.append(Candidate(w, score, s, official))
    return out


def primary_release(cands: list[Candidate]) -> ReleaseFact | None:
    """Sum support per window; the best supported one wins, ties go to the more precise, then the later statement."""
    support: dict[tuple[dt.date, dt.date], float] = {}
    best: dict[tuple[dt.date, dt.date], Candidate] = {}
    weak = 1.0
    if not any(c.score > 0 for c in cands):
        # only hedged claims about this season: the best of them, at low confidence
        cands = [c for c in cands if c.score > -1]
        cands = [dataclasses.replace(c, score=c.score + 1.5) for c in cands]
        weak = 0.5
    for c in cands:
        if c.score <= 0:
            continue
        key = (c.window.earliest, c.window.latest)
        support[key] = support.get(key, 0.0) + c.score
        if key not in best or c.score >= best[key].score:
            best[key] = c
    if not support:
        return None
    order = {"day": 3, "month": 2, "year-part": 1, "year": 0}
    key = max(support, key=lambda k: (support[k], order[best[k].window.precision], best[k].sentence.index))
    c = best[key]
    total = sum(support.values())
    conf = round(min(0.95, 0.4 + 0.5 * support[key] / total) * weak, 2)
    return ReleaseFact(announced=c.official, text=c.window.text, earliest=c.window.earliest, latest=c.window.latest,
                       precision=c.window.precision, evidence=c.sentence.text, confidence=conf)  # type: ignore[arg-type]


_PREV = re.compile(r"\b(releas\w*|premier\w*|debut\w*|arriv\w*|launch\w*|dropp?ed|aired|came out)\b", re.I)


def previous_release(sentences: list[Sentence], target: int | None, ref: dt.date | None) -> PreviousRelease | None:
    """An earlier season's exact release date (e.g. 'Season 1 release | 28 January 2022')."""
    if target is None or target < 2:
        return None
    for s in sentences:
        seasons = seasons_mentioned(s.text, None)
        earlier = sorted(n for n in seasons if n < target)
        if not earlier or not _PREV.search(s.text):
            continue
        target_at = [m.start() for m in re.finditer(rf"\bseason\s*{target}\b", s.text, re.I)]
        for w in find_windows(s.text, ref):
            if w.precision != "day" or any(t < w.start for t in target_at):
                continue
            d = w.earliest
            if ref is not None and d > ref and not re.search(r"\b(19|20)\d{2}\b", w.text):
                d = d.replace(year=d.year - 1)
            return PreviousRelease(season=earlier[0], date=d, evidence=s.text, confidence=0.8)
    return None
