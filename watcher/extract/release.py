"""Release claims: sentence -> candidate windows -> the primary claim (and the previous season's date).

A candidate is a date window in a sentence that speaks of releasing the target (a release verb or phrase from
RELEASE_VERBS), not of filming it, not of another work or season, and not a date the text says was replaced
('from June 25 to September 17', 'instead of', 'previously scheduled for'). Candidates are weighed (a table row,
the target season named, a definite or official statement, a newer date in a move), hedged ones weighed down;
the best supported window wins, ties going to the more precise, then the later statement.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass

from watcher.extract import prefilter as fre
from watcher.extract.dates import Window, find_windows
from watcher.extract.prefilter import Rx
from watcher.extract.status import Target, other_work
from watcher.extract.text import Sentence, about_other_season, seasons_mentioned
from watcher.records import PreviousRelease, ReleaseFact

# Verbs and phrases of releasing a work ('premieres', 'hits theaters', 'slated for', 'pushed back to').
RELEASE_VERBS = Rx(
    r"\b(releas\w*|premier\w*|arriv\w*|launch\w*|debut\w*|drop\w*|stream\w*|return\w*|air\w*|out|coming|"
    r"hit\w*|broadcast\w*|window|available|bow\w*|opens?|opening|enter\w*|slated|scheduled|set for|dated|"
    r"moved|move|pushed|delayed|delay|back|begins?|start\w*|land\w*|come out|comes out|showing|screens?)\b", re.I)
_PRODUCTION_NOUN = Rx(r"\b(filming|filmed|shoot\w*|shot|photography|production|casting|script|writing|cameras|"
                              r"wrap\w*|schedule)\b", re.I)
# Events that are not the release: a date right after one of these dates it ('renewed in December 2021').
_EVENT_VERB = Rx(r"\b(renew\w*|greenl\w*|green-lit|order\w*|announc\w*|confirm\w*|reveal\w*|cancel\w*|"
                         r"said|told|report\w*|revived|picked up|casting|cast)\b", re.I)
_PRODUCTION_VERB = Rx(r"\b(begin|began|begun|start\w*|filming|filmed|shoot\w*|shot|wrap\w*|finish\w*|"
                              r"production|"
                              r"photography|slate|line-?up|casting|news|hit in|since|gap)\b", re.I)
_HEDGE_BEFORE = Rx(r"\b(chance|unlikely|rather than|not|either|or|surprise|hop\w*|than|possib\w*|"
                           r"rumou?r\w*|could|might|may)\W+(?:\w+\W+){0,3}$", re.I)
_HEDGE_AFTER = Rx(r"^\W*(?:\w+\W+){0,2}(unlikely|surprise|at the earliest|or)\b", re.I)
_HEDGE_SENT = Rx(r"^(if|unless|whether)\b|\bif netflix\b|\bif (?:the|it)\b", re.I)
_STRONG = Rx(r"\b(most (?:realistic|plausible|likely)|more realistic|plans? to|set to|will (?:arrive|premiere|"
                     r"release|debut|launch|return|open|hit)|launch|premiere|confirmed|official\w*|announced|"
                     r"scheduled|slated|is set for|now)\b", re.I)
# 'announced' needs the document to say so: an official/confirmed/announced date, a studio's set date.
_OFFICIAL = Rx(r"\b(official(?:ly)?|confirmed|announced|revealed|set for|is set|(?:will|now) (?:arrive|"
                       r"open|premiere|debut|hit|launch|release)|premieres|premiering|launches|opens|arrives|"
                       r"entering|moved|pushed|delayed|the release date is|release date (?:is|of))\b", re.I)
_NEGATED_OFFICIAL = Rx(r"\b(not (?:yet )?(?:been )?(?:officially )?(?:announced|confirmed)|until .* "
                               r"officially|no official|unofficial|no release date|not known)\b", re.I)
_TENTATIVE = Rx(r"\b(expected|likely|rumou?r\w*|reportedly|could|(?-i:may)|might|possibl\w*|speculat\w*|"
                        r"predict\w*|estimat\w*|hope\w*|if|tentative\w*|would love|think|should)\b", re.I)
_PAST = Rx(r"\b(debuted|premiered|released|arrived|dropped|aired|launched|came out|opened)\b", re.I)
# 'not ... until X', 'no sooner than X': the release is X at the earliest, a claim about X.
_UNTIL = Rx(r"\b(?:until|till|before|sooner than|earlier than)\s+(?:at least\s+|sometime in\s+)?$", re.I)
_NEGATED = Rx(r"\b(?:neither|never|no longer|won't|will not|not)\b[^.]{0,30}$", re.I)
# A date the text says is no longer the date: 'from June 25 to ...', 'instead of October 11'.
_REPLACED_BEFORE = Rx(r"\b(?:from|instead of|previously (?:scheduled|set|slated|dated) (?:for|to)|originally "
                              r"(?:scheduled|set|slated|dated) (?:for|to)|was (?:scheduled|set|slated|dated) for|"
                              r"rather than|before it was moved|previous date(?: of| was)?|had been (?:set|slated|"
                              r"scheduled) for|was previously)\s+(?:\w+\s+){0,2}$", re.I)
_NEW_DATE_BEFORE = Rx(r"\b(?:to|now|new(?: release)? date(?: is| of)?|moved (?:up )?to|pushed (?:back )?to|"
                              r"delayed (?:to|until)|will now)\s+(?:\w+\s+){0,3}$", re.I)


@dataclass(frozen=True, slots=True)
class Candidate:
    window: Window
    score: float
    sentence: Sentence
    official: bool


def _window_hedged(text: str, w: Window) -> bool:
    before = text[max(0, w.start - 60):w.start]
    if _UNTIL.search(before) and not fre.search(r"\b(?:or|either|chance|unlikely|rather than)\W+(?:\w+\W+){0,5}$",
                                               before, re.I):
        before = ""  # 'will not be released until early 2027': the 'not' bounds the date, it does not doubt it
    after = text[w.end:w.end + 30]
    if fre.search(r"\(\s*$", before) and fre.search(r"^\s*\)|\)", after[:5]):
        return True
    return bool(_HEDGE_BEFORE.search(before) or _HEDGE_AFTER.search(after)) or bool(
        fre.search(r"\((?:[^()]*\b(?:low|slim|small) chance\b)", text[:w.start]) and ")" in text[w.end:])


def _is_official(text: str, w: Window) -> bool:
    """The document states this date as set: an official/confirmed word, a studio move, a firm future verb."""
    if _NEGATED_OFFICIAL.search(text[:w.start]) or _TENTATIVE.search(text):
        return False
    before = text[max(0, w.start - 100):w.start]
    # 'officially renewed ... arriving in 2027': the renewal is official, the date is not
    before = fre.sub(r"\b(?:official(?:ly)?|confirmed|announced)\W+(?:\w+\W+){0,2}renew\w*", " ", before, flags=re.I)
    after = text[w.end:w.end + 40]
    return bool(_OFFICIAL.search(before)) or bool(fre.match(r"\W*(?:is|was|has been|as)\s+(?:now\s+)?(?:officially\s+)?"
                                                          r"(?:confirmed|announced|official)", after, re.I))


_RELEASE_NOUN = Rx(r"\b(releas\w*|premier\w*|debut\w*|theat\w*|cinema\w*|stream\w*|air(?:s|ed|ing)?|"
                           r"launch\w*|drop\w*|open\w*|arriv\w*|hit\w*|out|screens?|broadcast\w*|episodes?)\b", re.I)


def _production_bound(text: str, w: Window) -> bool:
    """A window right after a production verb (begin, wrap, filming, slate ...) dates that, not the release;
    so does any window of a sentence about filming that names no release at all."""
    if _PRODUCTION_NOUN.search(text) and not _RELEASE_NOUN.search(text):
        return True
    before = text[max(0, w.start - 60):w.start]
    if not fre.search(_PRODUCTION_VERB.pattern + r"\W+(?:\w+\W+){0,5}$", before, re.I):
        return False
    # 'the season will begin in July' is a release; 'filming will begin in July' is not
    return bool(_PRODUCTION_NOUN.search(text[max(0, w.start - 90):w.start])) or not fre.search(
        r"\b(?:begin|begins|start|starts)\b", before, re.I)


def candidates(sentences: list[Sentence], target: int | None, ref: dt.date | None,
               topic: Target | None = None) -> list[Candidate]:
    out: list[Candidate] = []
    topic = topic or Target(None, target)
    for s in sentences:
        text = s.text
        windows = find_windows(text, ref)  # first: most sentences hold no date, which is the quickest to see
        if not windows or not RELEASE_VERBS.search(text) or about_other_season(text, target) or \
                other_work(s, topic):
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
        if _TENTATIVE.search(text):
            base -= 0.5
        for w in windows:
            before = text[max(0, w.start - 50):w.start]
            if _production_bound(text, w) or fre.match(r"\W*(?:\w+\W+){0,2}(?:slate|line-?up|calendar|status|"
                                                       r"bringing|schedule)\b", text[w.end:], re.I):
                continue
            if _REPLACED_BEFORE.search(before):
                continue  # the date it moved from
            near = text[max(0, w.start - 60):w.start]
            last_event = max((m.end() for m in _EVENT_VERB.finditer(near)), default=-1)
            last_release = max((m.end() for m in RELEASE_VERBS.finditer(near)), default=-1)
            if last_event > last_release and not fre.match(r"\W*(?:\w+\W+)?(?:release|launch|premiere|debut|"
                                                          r"opening|arrival|return)\b", text[w.end:], re.I):
                continue  # 'renewed for another season in December 2021': the renewal's date
            owner = _season_before(text, w.start, target)
            if owner is not None and target is not None and owner != target:
                continue  # 'the first season, which debuted on Jan. 28': another season's date
            verb_before = RELEASE_VERBS.search(text[max(0, w.start - 80):w.start])
            if verb_before and _NEGATED.search(text[max(0, w.start - 80):w.start][:verb_before.start()]) and \
                    not _UNTIL.search(text[max(0, w.start - 30):w.start]):
                continue  # 'neither show will return this fall' (but 'won't be out until 2027' dates it)
            if _PAST.search(text) and not fre.search(r"\b(?:will|is set|set to|now|scheduled|"
                                                    r"slated)\b", text, re.I) and \
                    (target is None or target not in seasons_mentioned(text, target)) and w.precision != "day":
                continue  # a past release ('which premiered in late 2019') is history
            if ref is not None and w.latest < ref and w.precision != "day" and not _OFFICIAL.search(text):
                continue  # a past vague window is history, not a coming release
            if ref is not None and w.latest < ref and _PAST.search(text) and target not in seasons_mentioned(text,
                                                                                                              target):
                continue
            if ref is not None and w.earliest < ref - dt.timedelta(days=60) and not fre.search(r"\d{4}", w.text) and \
                    _FUTURE.search(text):
                w = _next_year(w)  # 'premieres February 23' read late in the year before
            score = base - (2.5 if _window_hedged(text, w) else 0.0)
            if _NEW_DATE_BEFORE.search(before):
                score += 1.5  # the date it moved to: the newest claim
            official = _is_official(text, w)
            out.append(Candidate(w, score, s, official))
    return out


_SEASON_AT = Rx(r"\b(?:season|series)\s+(\d{1,2})\b|\b(first|second|third|fourth|fifth|sixth|seventh|eighth)"
                        r"\s+(?:season|series|instal+ment)\b", re.I)
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8}
_FUTURE = Rx(r"\b(?:will|premieres|premiering|set to|slated|scheduled|arrives|opens|launches|coming|is set)\b",
                     re.I)


def _season_before(text: str, at: int, target: int | None) -> int | None:
    """The season the words before position `at` last named ('the new season' counts as the target)."""
    last: int | None = None
    for m in _SEASON_AT.finditer(text[:at]):
        last = int(m.group(1)) if m.group(1) else _ORDINALS[m.group(2).lower()]
    if target is not None and fre.search(r"\b(?:new|next|upcoming|latest|this)\s+(?:season|instal+ment)\b[^.]*$",
                                        text[:at], re.I):
        m2 = list(fre.finditer(r"\b(?:new|next|upcoming|latest|this)\s+(?:season|instal+ment)\b", text[:at], re.I))
        seen = [x.end() for x in _SEASON_AT.finditer(text[:at])]
        if m2 and (not seen or m2[-1].end() > seen[-1]):
            return target
    return last


def _next_year(w: Window) -> Window:
    try:
        return dataclasses.replace(w, earliest=w.earliest.replace(year=w.earliest.year + 1),
                                   latest=w.latest.replace(year=w.latest.year + 1))
    except ValueError:  # 29 February
        return w


def primary_release(cands: list[Candidate]) -> ReleaseFact | None:
    """Sum support per window; the best supported one wins, ties go to the more precise, then the later statement."""
    support: dict[tuple[dt.date, dt.date], float] = {}
    best: dict[tuple[dt.date, dt.date], Candidate] = {}
    weak = 1.0
    if not any(c.score > 0 for c in cands):
        # only hedged claims about this season: the best of them, at low confidence
        cands = [c for c in cands if c.score > -1.5]
        cands = [dataclasses.replace(c, score=c.score + 2.0) for c in cands]
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
    # a more precise window inside a vaguer one supports it ('Season premieres in January' / 'January 2025')
    for key, c in best.items():
        for other, oc in best.items():
            if other != key and other[0] <= key[0] and key[1] <= other[1] and \
                    order[c.window.precision] > order[oc.window.precision]:
                support[key] += 0.5 * support[other]
    key = max(support, key=lambda k: (support[k], order[best[k].window.precision], best[k].sentence.index))
    c = best[key]
    official = any(x.official for x in cands if (x.window.earliest, x.window.latest) == key and x.score > 0)
    total = sum(support.values())
    conf = round(min(0.95, 0.4 + 0.5 * support[key] / total) * weak, 2)
    return ReleaseFact(announced=official, text=c.window.text, earliest=c.window.earliest, latest=c.window.latest,
                       precision=c.window.precision, evidence=c.sentence.text, confidence=conf)  # type: ignore[arg-type]


_PREV = Rx(r"\b(releas\w*|premier\w*|debut\w*|arriv\w*|launch\w*|dropp?ed|aired|came out)\b", re.I)


def previous_release(sentences: list[Sentence], target: int | None, ref: dt.date | None) -> PreviousRelease | None:
    """An earlier season's exact release date (e.g. 'Season 1 release | 28 January 2022')."""
    if target is None or target < 2:
        return None
    for s in sentences:
        seasons = seasons_mentioned(s.text, None)
        earlier = sorted(n for n in seasons if n < target)
        if not earlier or not _PREV.search(s.text):
            continue
        target_at = [m.start() for m in fre.finditer(rf"\bseason\s*{target}\b", s.text, re.I)]
        for w in find_windows(s.text, ref):
            if w.precision != "day" or any(t < w.start for t in target_at):
                continue
            d = w.earliest
            if ref is not None and d > ref and not fre.search(r"\b(19|20)\d{2}\b", w.text):
                d = d.replace(year=d.year - 1)
            return PreviousRelease(season=earlier[0], date=d, evidence=s.text, confidence=0.8)
    return None
