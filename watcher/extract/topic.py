"""The work and season a document is about, and the key that makes every spelling of a work one topic.

The headline names the work: a quoted title; the title before 'Season N' / 'series three' / 'S2'; the title after
'Season N of' or 'the second season of [Network] [series]'; else the leading run of title words, cut at the first
word that starts the headline's predicate ('Adds', 'Filming', 'Cast', 'Trailer', a lowercase verb). A person's
name is never the work ('Dana Reyes Confirms Nightfall' is about Nightfall), nor is a platform. Among the
candidates the one the body repeats most wins. For a film (no season) the body may give the full title: 'officially
titled X', or the headline's title with its subtitle ('Nightfall 2' -> 'Nightfall: The Reckoning').
A number after a title is its season when the body speaks of that season ('Nightfall 3' and 'season 3 of
Nightfall'), else part of a film's title ('Nightfall 2', a sequel).
"""

from __future__ import annotations

import re
from collections import Counter

from watcher.extract import prefilter as fre
from watcher.extract.lexicon import NEVER_NAME_WORDS, PLATFORMS, ROLE_NOUNS
from watcher.extract.names import fold, person_evidence, spans
from watcher.extract.prefilter import Rx
from watcher.extract.text import clean
from watcher.records import work_key

__all__ = ["detect_topic", "work_key"]

_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
                 "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10}
_ROMAN = {"ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9}
_NUM = r"(?:\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten)\b"
_ORD = r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth)"
# Words that start a headline's predicate or describe the work: the title stops before them.
_CUT = (NEVER_NAME_WORDS | ROLE_NOUNS | {
    "has", "have", "is", "are", "gets", "get", "moves", "moved", "kicks", "showcases", "announces", "comfort",
    "react", "reacts", "set", "delayed", "delay", "begins", "begun", "wraps", "starts", "confirms", "rumored",
    "rumoured", "not", "won't", "will", "drops", "lands", "reveals", "unveils", "teases", "shares", "why", "who",
    "anime", "drama", "k-drama", "kdrama", "documentary", "miniseries", "limited", "netflix's", "spotted",
    "breaking", "exclusive", "watch", "report", "review", "recap", "explained", "first-look", "everything",
    "synopsis", "plot", "date", "release", "air", "airs", "streaming", "where", "how", "what", "when"}) - {
    "the", "a", "an", "of", "and", "in", "on", "to", "for", "with", "at", "by", "from", "us", "we", "you", "i",
    "it", "me", "my", "our", "your", "be", "all", "one", "no", "this", "that", "there", "here", "are", "is",
    "dead", "back", "last", "first", "new", "original", "legend", "idol", "model", "chief", "boss",
    "head", "host", "icon", "fall", "spring", "summer", "winter", "christmas", "halloween"}
# Read backwards from 'Season N', a title may end in a word that elsewhere describes it ('The Morning Show').
_CUT_BACK = _CUT - {"show", "film", "movie", "drama", "anime", "star", "stars", "lead", "story", "part", "chapter",
                    "family", "game", "games", "doctor", "boys", "girls", "office", "crown", "witcher"}
_JOIN = {"of", "the", "and", "in", "on", "to", "for", "with", "at", "by", "from", "a", "an", "wa", "no", "ni",
         "de", "la", "le", "du", "des", "von", "vs", "&", "is", "are"}
_DESCRIPTOR = Rx(r"\b(?:spin-?off|sequel|prequel|follow-up|remake|reboot|adaptation|series|drama|show|"
                         r"film|movie|anime|k-drama|thriller|comedy|sitcom)\s+$", re.I)
_PLATFORM_NAMES = {fold(v) for vs in PLATFORMS.values() for v in vs}
_GENRE = frozenset("""series show drama k-drama kdrama thriller k-thriller comedy horror anime film movie sitcom
documentary docuseries franchise spin-off spinoff sequel prequel reboot remake adaptation romance fantasy
sci-fi""".split())


def _season_number(word: str) -> int | None:
    w = word.lower()
    if w.isdigit():
        n = int(w)
        return n if 0 < n < 60 else None
    return _NUMBER_WORDS.get(w)


def _strip_headline(title: str) -> str:
    t = clean(title)
    t = fre.sub(r"^\s*\[[^\]]{1,60}\]\s*", "", t)  # '[Site News] ...'
    t = fre.sub(r"^(?:spotted|exclusive|breaking|watch|report|update|review|first look|confirmed|official)\s*:\s*",
               "", t, flags=re.I)
    t = fre.sub(r"\s+[|–-]\s+[^|–-]{2,40}$", "", t) if fre.search(r"\s[|]\s", t) else t  # ' | Site Name'
    return t.strip()


def _title_run(words: list[str], start: int, forward: bool = True, introduced: bool = False) -> list[str]:
    """The run of title words from words[start] in one direction; stops at a predicate or descriptor word
    (a title introduced by 'Season 3 of' or read back from 'Season 3' may end in 'Show', 'Family' ...)."""
    run: list[str] = []
    idx = range(start, len(words)) if forward else range(start, -1, -1)
    for i in idx:
        w = words[i]
        bare = w.strip("\"'“”‘’,:;!?.()")
        low = fold(bare)
        if not bare:
            break
        inner = w[-1:] in ",:;!?" if forward else False
        capital = bare[:1].isupper() or bare[:1].isdigit() or bare.isdigit()
        if low in _JOIN and capital is False:
            run.append(bare)
            continue
        cut = _CUT if forward and not introduced else _CUT_BACK
        if not capital or low in cut or low in _PLATFORM_NAMES or (low.endswith("s") and low[:-1] in cut
                                                                    and "'" in bare):
            break
        run.append(bare)
        if inner:
            break
    if not forward:
        run.reverse()
    while run and fold(run[-1]) in _JOIN:
        run.pop()
    while run and (fold(run[0]) in _JOIN - {"the", "a", "an"} or (fold(run[0]) in _JOIN and run[0].islower())):
        run.pop(0)
    if run and fold(run[0]) in ("a", "an") and len(run) == 1:
        return []
    return run


def _is_person(text: str) -> bool:
    sp = spans(text)
    return len(sp) == 1 and sp[0].text == text and person_evidence(sp[0].tokens) >= 0.6


def _count(body: str, work: str) -> int:
    return fre.count_word(work, body)


def _candidates(headline: str) -> tuple[list[tuple[str, int]], int | None]:
    """Work candidates from a headline with a prior (3: quoted or next to its season, 2: the leading title,
    1: another title run), and the season it names, if any."""
    cands: list[tuple[str, int]] = []
    season: int | None = None
    for q in fre.finditer(r"[\"“‘]([^\"“”‘’]{2,60})[\"”’]|(?<!\w)'([^']{2,60})'(?!\w)", headline):
        inner = (q.group(1) or q.group(2)).strip()
        if inner[:1].isupper() and len(inner.split()) <= 9 and not _is_person(inner):
            cands.append((inner, 3))
    words = headline.split()
    for i, w in enumerate(words):
        low = fold(w.strip(",:;!?.()\"'“”‘’"))
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if low in ("season", "series") and _season_number(nxt.strip(",:;!?.()\"'“”‘’")) is not None:
            season = season or _season_number(nxt.strip(",:;!?.()\"'“”‘’"))
            cands.append((" ".join(_title_run(words, i - 1, forward=False)), 3))
            after = words[i + 2:]
            if after and fold(after[0]) == "of":  # 'Season 4 of Nightfall'
                cands.insert(0, (" ".join(_title_run(after, 1, introduced=True)), 3))
        elif fre.fullmatch(r"s\d{1,2}", low):  # 'Nightfall S3'
            season = season or int(low[1:])
            cands.append((" ".join(_title_run(words, i - 1, forward=False)), 3))
        elif low in _NUMBER_WORDS and i + 1 < len(words) and fold(nxt.strip(",:;!?.")) in ("season", "series") \
                and _NUMBER_WORDS[low] > 0:
            season = season or _NUMBER_WORDS[low]
            rest = words[i + 2:]
            if rest and fold(rest[0]) == "of":  # 'the second season of BBC series Nightfall'
                j = 1
                while j < len(rest) and (fold(rest[j]) in _PLATFORM_NAMES or fold(rest[j]) in ("the", "its") or
                                         _DESCRIPTOR.search(rest[j] + " ") or not rest[j][:1].isupper()):
                    j += 1
                    if j > 4:
                        break
                cands.insert(0, (" ".join(_title_run(rest, j, introduced=True)), 3))
            else:
                cands.append((" ".join(_title_run(words, i - 1, forward=False)), 3))
    # the leading title run, and any run after a person's name, a verb or a descriptor ('spin-off Ballerina')
    runs: list[tuple[int, list[str]]] = []
    i = 0
    while i < len(words):
        run = _title_run(words, i)
        if run:
            runs.append((i, run))
            i += max(len(run), 1)
        else:
            i += 1
    for n, (at, run) in enumerate(runs):
        prior = 2 if at == 0 else 1
        nxt_run = runs[n + 1][1] if n + 1 < len(runs) else []
        if words[at + len(run) - 1].endswith(",") and any(fre.search(r"['’]s$", w) for w in nxt_run[:-1]):
            continue  # 'Tom Hale, Ivy Moss's Nightfall': names of people before the title
        genre = [k for k, w in enumerate(run[:-1]) if fold(w) in _GENRE]
        if genre:  # "Zombie K-Thriller Nightfall": the title after its genre words
            cands.append((" ".join(run[genre[-1] + 1:]), prior))
        poss = [k for k, w in enumerate(run[:-1]) if fre.search(r"['’]s$", w)]
        if poss:  # "Star Name's Title": the title after the possessive
            cands.append((" ".join(run[poss[-1] + 1:]), 2))
            prior = 1
        cands.append((" ".join(run), prior))
    cleaned: list[tuple[str, int]] = []
    for c, prior in cands:
        c = fre.sub(r"^(?:[A-Z][\w.]*\s+){1,3}?[A-Z][\w]*['’]s?\s+(?=[A-Z])", lambda m: "" if _is_person(
            m.group(0).strip().rstrip("'’s").rstrip("'’")) else m.group(0), c)  # "Star Name's Title"
        c = c.strip(" :,-–")
        if c and not c.isdigit() and not _is_person(c) and fold(c) not in _PLATFORM_NAMES and \
                c not in [x for x, _ in cleaned]:
            cleaned.append((c, prior))
    return cleaned, season


def _body_season(text: str, work: str | None) -> int | None:
    """The season the body is about: the later season it names most, not counting another work's seasons."""
    nums: Counter[int] = Counter()
    for m in fre.finditer(rf"\b(?:season|series)\s+({_NUM})|\b({_ORD})\s+(?:season|series|instal+ment)\b", text,
                         re.I):
        n = _season_number(m.group(1) or m.group(2))
        if n is None:
            continue
        before = text[max(0, m.start() - 40):m.start()]
        owner = fre.search(r"((?:[A-Z][\w'’:-]*\s+){1,5})$", before)
        if owner and work and fold(work) not in fold(owner.group(1)) and not fre.search(
                r"\b(?:The|This|Its|A|Next|New|Upcoming|Second|Third)\s+$", owner.group(1)) and m.group(1):
            continue  # 'Other Show season 2': another work's season
        if m.group(2) and work and _other_owner(text[max(0, m.start() - 60):m.start()], work):
            continue  # 'renewed its comedy Other Show for a fourth season'
        nums[n] += 1
    # 'cancelled after two seasons': the season that will not be is the next one
    for m in fre.finditer(rf"\b(?:after|following)\s+({_NUM}|\w+)\s+seasons\b", text, re.I):
        n = _season_number(m.group(1))
        if n is not None and fre.search(r"\b(?:cancel\w*|axed|end\w*|renew\w*|conclud\w*|final)\b",
                                       text[max(0, m.start() - 80):m.end() + 20], re.I):
            nums[n + 1] += 1
    later = {n: c for n, c in nums.items() if n > 1}
    if later:
        return max(later.items(), key=lambda kv: (kv[1], kv[0]))[0]
    return None


def _other_owner(before: str, work: str) -> bool:
    """The words before 'a fourth season' name another title as its owner ('renewed Other Show for a')."""
    m = fre.search(r"((?:[A-Z][\w'’:-]*\s+){1,5})(?:for|gets?|got|with)\s+(?:a|an|its|their)\s+$", before)
    if not m:
        return False
    owner = m.group(1).strip()
    return fold(work) not in fold(owner) and not _is_person(owner) and not fre.match(
        r"(?:The|This|Its|It|A|Next|New)$", owner)


def _numbered(work: str, text: str) -> tuple[str, int | None]:
    """'Nightfall 3' -> ('Nightfall', 3) when the body speaks of its season 3; otherwise unchanged."""
    m = fre.fullmatch(r"(.+?)\s+(\d{1,2}|II|III|IV|V|VI)", work)
    if not m:
        return work, None
    n = int(m.group(2)) if m.group(2).isdigit() else _ROMAN.get(m.group(2).lower())
    if n and fre.search(rf"\b(?:season|series)\s+(?:{n}|{_words_for(n)})\b|\b{_ordinal(n)}\s+season\b", text, re.I):
        return m.group(1), n
    return work, None


def _words_for(n: int) -> str:
    return next((w for w, v in _NUMBER_WORDS.items() if v == n and not w.endswith(("st", "nd", "rd", "th"))),
                str(n))


def _ordinal(n: int) -> str:
    return next((w for w, v in _NUMBER_WORDS.items() if v == n and w.endswith(("st", "nd", "rd", "th"))), str(n))


def _full_title(work: str, text: str) -> str:
    """A film's full title from the body: 'officially titled X', or the work (or its base without a sequel
    number) followed by ': Subtitle'."""
    m = fre.search(r"\b(?i:officially|now|formally)\s+(?i:titled|called|named)\s+[\"“‘]?((?:[A-Z0-9][\w'’.-]*[:]?"
                  r"(?:\s+|$|(?=[,.;\"”]))){1,6})", text)
    if m:
        return m.group(1).strip(" ,.:\"”’")
    base = fre.sub(r"\s+(?:\d{1,2}|II|III|IV)$", "", work)
    for cand in dict.fromkeys((work, base)):
        sub = fre.search(re.escape(cand) + r"\s*:\s+((?:(?:[A-Z0-9][\w'’.-]*|of|the|a|an|and|in|to|be)(?:\s+|"
                                          r"(?=[\"”″’,.]"
                        r"|$))){1,7})", text)
        if sub:
            subtitle = sub.group(1).strip(" ,.")
            words = subtitle.split()
            while words and words[-1].lower() in ("of", "the", "a", "an", "and", "in", "to", "be"):
                words.pop()
            if words and not _is_person(" ".join(words)):
                full = f"{cand}: {' '.join(words)}"
                if cand == work or fre.search(r"\s(?:\d{1,2}|II|III|IV)$", work):
                    return full
    return work


def detect_topic(title: str | None, headings: tuple[str, ...], text: str) -> tuple[str | None, int | None]:
    """(work, season) of a document from its headline, confirmed against the body."""
    headline = _strip_headline(title or "")
    cleaned_title = clean(title or "")
    body = clean(" ".join(line for line in text.split("\n") if clean(line) != cleaned_title))
    cands, season = _candidates(headline) if headline else ([], None)
    if not cands:
        first = next((clean(line) for line in text.split("\n") if clean(line)), "")
        cands, first_season = _candidates(first[:200])
        season = season or first_season
    work: str | None = None
    if cands:
        scored = [(c, prior, _count(body, c), -n) for n, (c, prior) in enumerate(cands)]
        work = max(scored, key=lambda x: (x[2] > 0 or x[1] == 3, x[1], x[2] >= 2, x[3]))[0]
    if work:
        work, numbered = _numbered(work, body)
        season = season or numbered
    if season is None:
        season = _body_season(body, work)
    if work and season is None:
        work = _full_title(work, body)
    return (work or None), season
