"""Renewal, production stage, filming dates, platform and trailer, each from the sentences that state it.

Rules are the lexicon tables (RENEWAL, PRODUCTION, TRAILER, PLATFORMS); what is decided here is which claim is
about the target work and season (relevance) and which claim wins (the later definite one for renewal, the most
advanced stage stated as fact, the platform most tied to the work).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from watcher.extract import lexicon as lx
from watcher.extract import prefilter as fre
from watcher.extract.dates import find_windows
from watcher.extract.names import fold, person_evidence, spans
from watcher.extract.prefilter import Rx
from watcher.extract.text import Sentence, about_other_season, seasons_mentioned
from watcher.records import FilmingFact, ScalarFact


@dataclass(frozen=True, slots=True)
class Target:
    """What the claims must be about: the work's name and season."""

    work: str | None
    season: int | None

    def named_in(self, text: str) -> bool:
        return bool(self.work) and _names_work(self.work, text)


@functools.lru_cache(maxsize=256)
def _work_rx(work: str) -> re.Pattern[str]:
    base = fre.sub(r"\s*:.*$", "", work)
    return re.compile(r"(?<!\w)" + re.escape(base) + r"(?!\w)", re.I)


# cached: every rule asks of every sentence whether it names the work
@functools.lru_cache(maxsize=8192)
def _names_work(work: str, text: str) -> bool:
    return bool(_work_rx(work).search(text))


_SELF = Rx(r"\b(?:the|this|its|that)\s+(?:\w+[- ]){0,3}?(?:series|show|drama|film|movie|sequel|season|"
                   r"anime|k-drama|instal+ment|project|programme|program|title)\b|\b(?:it|it's|its)\b", re.I)
_QUOTED_TITLE = Rx(r"[\"“]([A-Z][^\"“”]{1,50})[\"”]|(?<!\w)'([A-Z][^']{1,50})'(?!\w)")


def other_work(s: Sentence, target: Target) -> bool:
    """The sentence is about another work: it quotes or names another title and not the target one, or talks
    only about other seasons."""
    return s.kind != "title" and _other_work(s.text, target)


@functools.lru_cache(maxsize=8192)  # every rule asks it of every sentence
def _other_work(text: str, target: Target) -> bool:
    if about_other_season(text, target.season):
        return True
    if target.named_in(text):
        return False
    for q in _QUOTED_TITLE.finditer(text):
        title = (q.group(1) or q.group(2)).strip(" ,.")
        if len(title.split()) <= 8 and not fre.search(r"[.!?]$", title):
            return True
    return False


def _about_target(s: Sentence, target: Target) -> bool:
    return s.kind == "title" or target.named_in(s.text) or bool(_SELF.search(s.text)) or (
        target.season is not None and target.season in seasons_mentioned(s.text, target.season))


def _rx(rows: list[tuple[str, str, str]]) -> list[tuple[re.Pattern[str], str]]:
    return [(Rx(p, re.I), value) for p, value, _ in rows]


_RENEWAL = _rx(lx.RENEWAL)
_ANY_RENEWAL = fre.AnyOf([rx for rx, _ in _RENEWAL])
_NOT_CANCELLED = Rx(lx.NOT_CANCELLED, re.I)
_HYPOTHETICAL = Rx(lx.HYPOTHETICAL, re.I)


# Claims about shows in general ('some shows get cancelled after one season') are about no show in particular.
_GENERIC = Rx(r"\b(?:some|many|most|other|few|several|these|those|all)\s+(?:\w+\s+){0,2}(?:shows|series|"
                      r"dramas|films|titles|originals)\b", re.I)


_OBJECT_TITLE = Rx(r"^\s+(?:(?:its|the|their|his|her|a)\s+)?(?:(?:comedy|drama|series|show|thriller|hit|"
                           r"sitcom|procedural|anime|reality|animated|fantasy|sci-fi|horror|limited|docuseries|"
                           r"spin-?off|k-drama|crime|teen|medical|legal|period|romantic|new)\s+){0,3}((?:[A-Z][\w'’:-]*"
                           r"(?:\s+(?:of|the|and|in|on|to|a))?\s*){1,6})")
# The title a renewal verb is said of: 'Other Show has been renewed', 'Other Show, which was picked up',
# 'Other Show has yet to be renewed'.
_SUBJECT_TITLE = Rx(r"((?:[A-Z][\w'’:-]*(?:\s+(?:of|the|and|in|on|to|a))?\s+){0,5}[A-Z][\w'’:-]*)"
                            r"(?:,?\s+(?P<which>which|that)\s+|\s+)(?:(?:has|have|was|were|is|had|been|also|officially|now|"
                            r"yet|to|be|not|never|already|just|recently)\s+){1,4}$")


def _names_other_title(t: str, m: re.Match[str], target: Target) -> bool:
    """A renewal verb whose object or subject is a title other than the target's."""
    titles: list[tuple[str, bool]] = []  # (title, whether it may be a person's name)
    obj = _OBJECT_TITLE.match(t[m.end():])
    if obj and fre.search(r"(?:renew\w*|cancel\w*|axe[ds]?|greenl\w*|picked up|pick up|order\w*)\s*$", m.group(0),
                         re.I) and not fre.search(r"\b(?:been|was|were|is|are|wasn't|isn't|not)\b", m.group(0), re.I):
        titles.append((obj.group(1).strip(), True))
    subj = _SUBJECT_TITLE.search(t[:m.start()])
    if subj and not target.named_in(subj.group(1)):
        # 'her role in Apple TV Plus' Other Show, which was renewed': the title is what follows a possessive or 'in'
        # ('Other Show, which was renewed': 'which' never follows a person, whatever the title looks like)
        titles.append((re.split(r"(?:'s?|’s?)\s+|\s+(?:in|on|from)\s+", subj.group(1).strip())[-1],
                       not subj["which"]))
    for title, maybe_person in titles:
        words = title.split()
        if target.named_in(title) or not words or fold(words[0]) in lx.PLATFORM_WORDS or _is_platform(title) or \
                (maybe_person and person_evidence(tuple(words)) >= 0.6) or \
                fre.match(r"(?:Season|Series|The series|The show|It|This|Netflix|The network|The streamer)\b", title):
            continue
        if fre.search(r"\b(?:season|series|episode)\b", title, re.I):
            continue
        return True
    return False


def _is_platform(text: str) -> bool:
    return any(canon for canon, _a, _b in _platform_mentions(text))


def _person_subject(text: str, at: int) -> bool:
    """The words right before position `at` end with a person's name ('Dana Reyes won't return')."""
    before = text[max(0, at - 60):at].rstrip()
    sp = spans(before)
    return bool(sp) and sp[-1].end >= len(before) - 1 and person_evidence(sp[-1].tokens) >= 0.6


def renewal(sentences: list[Sentence], target: Target, production_stage: str | None = None,
            production_evidence: str | None = None) -> ScalarFact | None:
    """Later definite statements win ('remains to be seen' ... 'Yes, it has been renewed'); a statement about
    another work or season, a generic one ('some shows get cancelled') or an actor's exit does not count.
    A later season in production or post-production has been renewed, stated or not."""
    definite: ScalarFact | None = None
    vague: ScalarFact | None = None
    for s in sentences:
        t = s.text
        if s.kind == "heading" or other_work(s, target) or _GENERIC.search(t):
            continue
        if not _ANY_RENEWAL.possible(t):
            continue  # (one test for all the phrasings: most sentences hold the words of none)
        for rx, value in _RENEWAL:
            m = rx.search(t)
            if not m:
                continue
            if value == "cancelled" and (_NOT_CANCELLED.search(t) or _person_subject(t, m.start())):
                continue
            if value == "renewed" and fre.search(r"\breturn", m.group(0), re.I) and _person_subject(t, m.start()):
                continue  # 'Dana Reyes returns for a second season': an actor's return, not the show's renewal
            if _names_other_title(t, m, target):
                continue  # 'the network also renewed its comedy Other Show': another work's renewal
            if value == "cancelled" and fre.match(r"(?:will not|won't|isn't|is not|not)\b", m.group(0), re.I) and \
                    s.kind != "title" and not (target.named_in(t[:m.start()]) or _SELF.search(t[:m.start()])):
                continue  # 'who will not be returning for season 4 is Dana Reyes': an actor, not the show
            if value != "unconfirmed" and fre.search(r"\b(?:whether|if)\b", t[:m.start()], re.I):
                value = "unconfirmed"
            if value == "renewed" and fre.search(r"\b(?:not|n't|never|yet to|no)\s+(?:\w+\s+){0,2}$", t[:m.start()],
                                                re.I):
                value = "unconfirmed"  # 'has not yet renewed
            conf = 0.9 if fre.search(r"official|confirm|announc", t, re.I) else 0.8
            if value == "unconfirmed":
                vague = ScalarFact(value=value, evidence=t, confidence=0.6)
            else:
                definite = ScalarFact(value=value, evidence=t, confidence=conf)
            break
    if definite is None and vague is None and production_stage in ("pre-production", "filming", "post-production") \
            and target.season is not None and target.season > 1:
        # The evidence is the sentence that puts the season in production, quoted as the page has it.
        return ScalarFact(value="renewed", evidence=production_evidence or f"season {target.season} is in "
                          f"{production_stage}", confidence=0.6)
    return definite or vague


_STAGES = [(stage, Rx(p, re.I)) for stage, p, _ in lx.PRODUCTION]
_ANY_STAGE = fre.AnyOf([rx for _, rx in _STAGES])
_QUESTION = Rx(r"^\W*(?:when|will|is|has|does|can|how|what|why|who|are|did|should|could|would)\b[^.]*\?", re.I)
_RANK = {"development": 0, "pre-production": 1, "filming": 2, "post-production": 3, "complete": 4, "released": 5}


def production(sentences: list[Sentence], target: Target) -> ScalarFact | None:
    """The most advanced stage stated as fact (not hypothetical) for the target work and season; a stage the
    text states as the present one ('is now in post-production') wins over what is inferred from past events."""
    best: ScalarFact | None = None
    stated: ScalarFact | None = None
    for s in sentences:
        t = s.text
        if other_work(s, target):
            continue
        now = _NOW_IN.search(t)
        if now and not _HYPOTHETICAL.search(t[max(0, now.start() - 40):now.start()]):
            stage = {"production": "filming"}.get(now.group(1).lower().replace("postp", "post-p").replace(
                "prep", "pre-p"), now.group(1).lower())
            stated = ScalarFact(value=stage, evidence=t, confidence=0.85)
        if not _ANY_STAGE.possible(t):
            continue
        for stage, rx in _STAGES:
            m = rx.search(t)
            if not m:
                continue
            if _HYPOTHETICAL.search(t[max(0, m.start() - 40):m.start()]) or _QUESTION.match(t):
                continue
            if stage == "released" and (target.season is None or target.season not in seasons_mentioned(
                    t, target.season)):
                continue  # 'the anime is streaming': an earlier season, unless the target season is named
            if best is None or _RANK[stage] > _RANK[best.value]:
                best = ScalarFact(value=stage, evidence=t, confidence=0.8 if s.kind != "title" else 0.7)
            break
    return stated or best


_NOW_IN = Rx(r"\b(?:is|are)\s+(?:now|currently)\s+(?:deep\s+)?in\s+(pre-?production|post-?production|"
                     r"development|production)\b", re.I)


_FILM_START = Rx(r"\b(began|begin|begun|start\w*|commenc\w*|kick\w* off|shoot start|rolling|under ?way|"
                         r"got going|resum\w*)\b", re.I)
_FILM_END = Rx(r"\b(wrap\w*|finish\w*|complet\w*|ended|end)\b", re.I)
_FILM_CTX = Rx(r"\b(film\w*|shoot\w*|photography|production|cameras)\b", re.I)
_FILM_HEDGE = Rx(r"\b(?:might|could|would|if|hope|hoping)\b", re.I)


def filming(sentences: list[Sentence], target: Target, ref: dt.date | None) -> FilmingFact | None:
    """Day-precise filming start and end ('Filming began on 4 May', 'wrapped on 18 February', 'began today')."""
    start: tuple[dt.date, str, str] | None = None  # (day, sentence, precision)
    end: tuple[dt.date, str, str] | None = None
    for s in sentences:
        t = s.text
        if not _FILM_CTX.search(t) or other_work(s, target) or _FILM_HEDGE.search(t):
            continue
        windows = [(w.earliest, w.precision, w.start, bool(fre.search(r"\d{4}", w.text))) for w in find_windows(t, ref)]
        if ref is not None:
            windows += [(ref, "day", m.start(), True) for m in fre.finditer(r"\btoday\b", t, re.I)]
        for day, precision, at, has_year in windows:
            if precision not in ("day", "month"):
                continue
            before = t[max(0, at - 60):at]
            after = t[at:at + 30]
            starts = [m.end() for m in _FILM_START.finditer(before)]
            ends = [m.end() for m in _FILM_END.finditer(before)]
            if not starts and not ends and fre.search(r"today", after[:6], re.I):
                starts = [m.end() for m in _FILM_START.finditer(t[max(0, at - 60):at + 40])]
            if not starts and not ends:
                continue
            if ref is not None and day > ref and fre.search(r"\b(?:will|set to|scheduled|slated)\b", before, re.I):
                continue  # a planned start is not a start
            if ref is not None and day > ref and not has_year and fre.search(r"\b(?:began|started|wrapped|finished|"
                                                                            r"completed|ended|"
                                                           r"kicked off|commenced|got under ?way|resumed)\b", before,
                                                           re.I):
                try:  # 'filming wrapped in February', read in June: the February before
                    day = day.replace(year=day.year - 1)
                except ValueError:
                    continue
            if (max(starts) if starts else -1) > (max(ends) if ends else -1):
                if start is None:
                    start = (day, t, precision)
            elif end is None:
                end = (day, t, precision)
    if start is None and end is None:
        return None
    evidence = " … ".join(dict.fromkeys(e for e in (start and start[1], end and end[1]) if e))
    def month(part: tuple[dt.date, str, str] | None) -> Literal["month"] | None:
        return "month" if part and part[2] == "month" else None

    return FilmingFact(start=start[0] if start else None, end=end[0] if end else None, evidence=evidence,
                       confidence=0.8, start_precision=month(start), end_precision=month(end))


# --------------------------------------------------------------------------- platform

_SPELLINGS = sorted(((spelling, canon) for canon, vs in lx.PLATFORMS.items() for spelling in vs),
                    key=lambda sc: len(sc[0]), reverse=True)
# (The lookahead for the spellings' first characters, too many for `guarded` to add, lets `re` pass over every
# other position, most of them lowercase letters, without trying each spelling there.)
_PLATFORM_RX = Rx(r"(?=[" + re.escape("".join(sorted({sp[0] for sp, _ in _SPELLINGS}))) + r"])(?<![\w+])("
                  + "|".join(re.escape(sp) for sp, _ in _SPELLINGS) + r")(?![\w+])")
_CANON = {sp: canon for sp, canon in _SPELLINGS}
_CONTEXT = Rx(lx.PLATFORM_CONTEXT, re.I)
_THEATRICAL = Rx(lx.THEATRICAL, re.I)
_HEDGE = Rx(r"\b(?:rumou?r\w*|likely|(?-i:may)|might|could|possibly|reportedly|negotiat\w*|if|whether|"
                    r"hope\w*)\b",
                    re.I)
_CATCH_UP = frozenset({"BBC iPlayer", "ABC iview", "Nine", "Channel 4"})


def _platform_mentions(text: str) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    for m in _PLATFORM_RX.finditer(text):
        spelling = m.group(1)
        canon = _CANON[spelling]
        if spelling in lx.AMBIGUOUS_PLATFORMS or canon in lx.AMBIGUOUS_PLATFORMS:
            after = text[m.end():m.end() + 2]
            around = text[max(0, m.start() - 25):m.end() + 25]
            if fre.match(r"\s[A-Z]", after) and not fre.match(r"\s(?:Original|Series|Show|Network|Channel|Chief|CEO)",
                                                            text[m.end():m.end() + 10]):
                continue  # 'Max Carver', 'Stan Lee': a name
            if not fre.search(r"(?:\bon|\bto|\bvia|\bfrom|\band|['’]s)\s*$",
                              text[max(0, m.start() - 6):m.start()]) and \
                    not fre.match(r"['’]s\b|\s+(?:series|show|drama|original|network|streamer|service|channel|"
                                 r"chief|ceo|boss|executive)\b", text[m.end():], re.I) and \
                    not fre.search(r"\b(?:network|streamer|channel)\b", around, re.I):
                continue
        out.append((canon, m.start(), m.end()))
    return out


def platform(sentences: list[Sentence], target: Target) -> ScalarFact | None:
    """The platform most tied to the target: named with it, with a release or channel word, in the headline;
    one named only beside another work, or only as rumour, does not count. A broadcast channel beats its
    catch-up service, and 'A on B' names A. Cinema releases are 'theatrical'."""
    score: Counter[str] = Counter()
    first_at: dict[str, int] = {}
    evidence: dict[str, str] = {}
    for s in sentences:
        t = s.text
        other_season = about_other_season(t, target.season)
        if other_work(s, target) and not other_season:
            continue
        found = _platform_mentions(t)
        theatrical = _THEATRICAL.search(t)
        if not found and not theatrical:
            continue
        about = _about_target(s, target)
        hedged = bool(_HEDGE.search(t))
        if theatrical and (about or not found):
            found.append(("theatrical", theatrical.start(), theatrical.end()))
        for canon, a, _b in found:
            w = 1.0 + (1.0 if about else 0.0) + (1.0 if s.kind == "title" else 0.0)
            if _CONTEXT.search(t[max(0, a - 30):a + 40]):
                w += 1.0
            if fre.search(r"\w\s+on\s+$", t[max(0, a - 12):a]) and canon in ("Disney+", "Hulu", "Prime Video"):
                w -= 1.5  # 'Hulu on Disney+': the service inside another
            if canon in _CATCH_UP:
                w -= 1.0
            if hedged:
                w -= 1.5
            if other_season:
                w -= 0.5  # a network rarely changes between seasons, but the claim is weaker
            if w <= 0:
                continue
            score[canon] += w
            first_at.setdefault(canon, s.index * 1000 + a)
            evidence.setdefault(canon, t)
    if not score:
        return None
    for family in ("BBC", "ITV", "Sky", "HBO"):  # 'the BBC series' counts for the BBC channel the text names
        children = [c for c in score if c != family and c.startswith(family) and c not in _CATCH_UP]
        if family in score and children:
            child = max(children, key=lambda c: score[c])
            score[child] += score.pop(family)
    canon = max(score, key=lambda c: (score[c], -first_at[c]))
    total = sum(score.values())
    return ScalarFact(value=canon, evidence=evidence[canon], confidence=round(min(0.95, 0.4 + 0.5 * score[canon] /
                                                                                   total), 2))


# --------------------------------------------------------------------------- trailer

_TRAILERS = [(Rx(p, re.I), value) for p, value, _ in lx.TRAILER]
_TRAILER_WORD = Rx(r"\b(trailers?|teasers?)\b", re.I)  # a sentence about a trailer at all
_EARLIER_SEASON = Rx(r"\b(?:first|previous|last)\s+season['’]?s?\b|\bseason 1\b", re.I)  # 'last season's trailer'


def trailer(sentences: list[Sentence], target: Target) -> ScalarFact | None:
    """'released' or 'teaser' once one is out (from the headline too); 'none' only when no trailer is out."""
    result: ScalarFact | None = None
    for s in sentences:
        t = s.text
        if not _TRAILER_WORD.search(t) or other_work(s, target) or s.kind == "heading":
            continue
        if _EARLIER_SEASON.search(t) and target.season not in (None, 1):
            continue
        for rx, value in _TRAILERS:
            if not rx.search(t):
                continue
            if value == "none":
                if result is None:
                    result = ScalarFact(value="none", evidence=t, confidence=0.6)
            elif result is None or result.value == "none" or (value == "released" and result.value == "teaser"
                                                               and s.kind != "title"):
                result = ScalarFact(value=value, evidence=t, confidence=0.8)
            break
    return result


__all__ = ["Target", "filming", "fold", "other_work", "platform", "production", "renewal", "trailer"]
