"""Person names: capitalised spans in a sentence, and how much each looks like a person's name.

A span is a run of capitalised tokens (with name particles, initials and suffixes allowed inside). Whether it
is a person is scored from evidence that carries across articles, never from the names of one article:
- the US Census 1990 given-name and surname lists (public domain; shipped by the MIT-licensed `names` package),
- common East Asian surnames (general knowledge, below), which come first in Korean and Chinese names,
- the syllable shape of romanised Japanese, Korean and Chinese names, which census lists do not hold,
- words that are never part of a name in release news (platforms, months, function words, cue verbs).
Whether a span is *cast* is decided elsewhere (cast.py) by the construction that governs it.
"""

from __future__ import annotations

import bisect
import functools
import importlib.resources
import itertools
import re
import unicodedata
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

from watcher.extract import prefilter as fre
from watcher.extract.lexicon import NEVER_NAME_WORDS, PLATFORM_WORDS, ROLE_NOUNS
from watcher.extract.prefilter import Rx

# Common surnames that open Korean and Chinese names and close Japanese ones (romanisation variants included).
EAST_ASIAN_SURNAMES = frozenset("""
kim lee yi rhee park pak bak choi choe jung jeong chung kang cho jo yoon yun jang chang lim im han oh seo suh
shin sin kwon hwang ahn an song jeon jun hong yoo yu ryu ko go moon mun son sohn bae baek paek heo hur
nam noh roh no ha kwak sung seong cha joo ju woo gu koo min na jin ji uhm eom chae won chun cheon bang gong
byun byeon hyun hyeon ham yeo yeom chu do so seok pyo myung ok tak ma jegal jeun goo kyung
wang li zhang liu chen yang huang zhao wu zhou xu sun zhu hu guo he lin gao luo zheng liang xie tang
deng feng cao peng zeng xiao tian dong pan yuan cai jiang du ye cheng wei su lu ding ren shen yao tan liao fan
fang shi xin tong qin jia qiu xia hou zou xiong meng qi bai kong mao duan lei hao gu shao wan qian dai yin
cui lai wen huo tse cheung leung wong chan chow lau ng ho mok tsang fung kwok yip lam chiu ngai
sato suzuki takahashi tanaka ito watanabe yamamoto nakamura kobayashi kato yoshida yamada sasaki yamaguchi
matsumoto inoue kimura hayashi shimizu yamazaki mori abe ikeda hashimoto ishikawa ogawa okada hasegawa
fujita goto kondo murakami endo aoki sakamoto saito fukuda ota nishimura fujii kaneko okamoto fujiwara
nakajima miura hara matsuda ono takeda nakano harada ueda morita
""".split())

# Honorifics dropped from an actor's name ('Sir Lenny Henry' is Lenny Henry); character titles stay.
HONORIFICS = frozenset({"sir", "dame", "mr", "mrs", "ms", "mr.", "mrs.", "ms."})
_PARTICLES = frozenset({"de", "da", "del", "della", "di", "du", "van", "von", "der", "den", "la", "le", "bin",
                        "al", "dos", "das", "ter", "st.", "y"})
_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"})
_APOS = str.maketrans({"’": "'", "‘": "'", "`": "'", "ʼ": "'"})
_ANY_APOS = re.compile("[’‘`ʼ]").search

# A token: initials ('M.C.', 'E.'), or a word of letters with inner hyphens/apostrophes ('O'Grady', 'Ji-hu').
# (A word is letters in runs joined by single hyphens or apostrophes: one repeat per run, not per letter, which
# matters in the tokenizer every sentence goes through.)
_TOKEN = Rx(r"(?:[A-Z]\.){2,}|[A-Z]\.(?=\s)|(?:Jr|Sr|St|Dr|Mr|Mrs|Ms)\.|[^\W\d_]+(?:[-'][^\W\d_]+)*|\d+|\S")
# What `_spans` reads: the tokens above, except that a stretch of whole words ('chunks' between spaces) made only
# of ASCII lowercase letters, digits and punctuation (no character of which is uppercase) is one token, when the
# word after it is such a word too (or nothing follows). Such a stretch can neither start a name nor go on with
# one (a particle goes on only before a capitalised word), so `_spans` needs only to know it is there: most
# words of a sentence are read in one step instead of one token each. (The word before a capitalised one stays
# a token: it may be the particle of 'de Niro'.)
_LOWER = r"a-z0-9!-/:-@\[-`{-~"
_TOKEN_OR_LOWER_STRETCH = re.compile(rf"(?<!\S)((?:[{_LOWER}]+(?:\s+|$))+(?=[{_LOWER}]+(?:\s|$)|$))|"
                                     + _TOKEN.pattern)


# Word-level caches, kept across documents (words recur); bounded so a long-lived worker stays small.
@functools.lru_cache(maxsize=16384)
def fold(word: str) -> str:
    """Comparison form of a name token: no diacritics, apostrophes or dots, case-folded."""
    if word.isascii():  # NFKD leaves ASCII as it is, without combining marks; casefold is lower (a test checks)
        return word.translate(_ASCII_FOLD).lower()
    return _fold_unicode(word)


_ASCII_FOLD = str.maketrans("", "", "'.`")  # '`' is an apostrophe (_APOS)


def _fold_unicode(word: str) -> str:
    word = unicodedata.normalize("NFKD", word.translate(_APOS))
    return "".join(ch for ch in word if not unicodedata.combining(ch) and ch not in "'.").casefold()


# A surname ranked at or above this in the census list is a common one (stronger evidence of a name).
COMMON_SURNAME_RANK = 20000


@dataclass(frozen=True, slots=True)
class _Census:
    """The census name lists, held compactly: a processing worker keeps them for its whole life, and 88,799
    surnames as a dict of strings to ranks cost about 16 MB per process. Surnames are kept as two sorted
    arrays of their string hashes (8 bytes each; `hash` is stable within a process, which is all a lookup
    needs; a false match needs a 64-bit collision)."""

    given: frozenset[str]
    common_surnames: array  # hashes of the surnames ranked 1..COMMON_SURNAME_RANK, sorted
    other_surnames: array  # hashes of the rest, sorted


def _in_sorted(values: array, key: int) -> bool:
    i = bisect.bisect_left(values, key)
    return i < len(values) and values[i] == key


@functools.cache
def _census() -> _Census:
    root = importlib.resources.files("names")

    def first_column(name: str) -> Iterator[str]:
        with root.joinpath(name).open(encoding="ascii") as lines:
            for line in lines:
                if line.strip():
                    yield line.split(None, 1)[0].lower()

    given = frozenset(itertools.chain(first_column("dist.male.first"), first_column("dist.female.first")))
    surnames = first_column("dist.all.last")  # in rank order
    common = array("q", sorted(hash(s) for s in itertools.islice(surnames, COMMON_SURNAME_RANK)))
    other = array("q", sorted(hash(s) for s in surnames))
    return _Census(given, common, other)


def is_given_name(token: str) -> bool:
    return fold(token) in _census().given


def surname_class(token: str) -> int:
    """2: a common surname (census rank <= COMMON_SURNAME_RANK), 1: a listed one, 0: not in the list."""
    census, key = _census(), hash(fold(token))
    if _in_sorted(census.common_surnames, key):
        return 2
    return 1 if _in_sorted(census.other_surnames, key) else 0


# Romanised syllables: Japanese (Hepburn), Korean (Revised/McCune), Chinese (pinyin). A token made only of one
# family's syllables is name-shaped in that language even when no list holds it.
_JA = Rx(r"^(?:(?:ky|gy|sh|ch|ny|hy|my|ry|by|py|ts|[kgsztdnhbpmyrwfj])?[aeiouāēīōū]u?|n(?![aeiouy]))+$")
_KO_SYL = r"(?:[bcdghjkmnprstwy]|ch|kk|tt|pp|ss|jj|ph|th|kh)?(?:[aeiou]|ae|eo|eu|oe|ui|ya|yeo|yo|yu|ye|wa|wo|we|wi|" \
          r"oo|ee)(?:ng|n|m|l|k|p|t|r|h)?"
_KO = Rx(rf"^{_KO_SYL}(?:-?{_KO_SYL})?$")
_PINYIN = Rx(r"^(?:(?:zh|ch|sh|[bpmfdtnlgkhjqxrzcsyw])?(?:iang|iong|uang|ang|eng|ing|ong|ian|iao|uai|uan|ai|ei|"
                     r"ao|ou|an|en|in|un|ia|ie|iu|ua|uo|ui|ue|er|a|e|i|o|u|v)){1,3}$")


def romanised_name_like(token: str) -> bool:
    t = fold(token).replace("-", "")
    return 2 <= len(t) <= 12 and bool(_JA.match(t) or _KO.match(fold(token)) or _PINYIN.match(t))


@dataclass(frozen=True, slots=True)
class Span:
    """A capitalised span of a sentence: its text, character offsets and tokens."""

    text: str
    start: int
    end: int
    tokens: tuple[str, ...]
    possessive: bool = False  # followed by 's / ' ("Heartstopper's Bradley Riches")


def _is_cap(tok: str) -> bool:
    return tok[:1].isupper() and (tok[:1].isalpha())


def spans(sentence: str) -> list[Span]:
    """Runs of capitalised tokens, split at words that are never part of a name; possessives marked."""
    return list(_spans(sentence))


@functools.lru_cache(maxsize=4096)
def _spans(sentence: str) -> tuple[Span, ...]:
    return _runs(sentence, _TOKEN_OR_LOWER_STRETCH)


def _runs(sentence: str, tokenizer: re.Pattern[str]) -> tuple[Span, ...]:
    """`_spans` with the tokens of `tokenizer` (`_TOKEN.rx`, or that with lowercase stretches as one token:
    the same spans, which a test checks)."""
    s = sentence.translate(_APOS) if _ANY_APOS(sentence) else sentence  # (translate walks every character)
    matches = list(tokenizer.finditer(s))
    out: list[Span] = []
    run: list[tuple[str, int, int]] = []

    def flush(possessive: bool = False) -> None:
        nonlocal run
        while run and fold(run[-1][0]) in _PARTICLES:
            run.pop()
        if run:
            start, end = run[0][1], run[-1][2]
            out.append(Span(sentence[start:end], start, end, tuple(t for t, _, _ in run), possessive))
        run = []

    count = len(matches)
    for i, tm in enumerate(matches):
        tok = tm[0]
        if not run and not tok[:1].isupper():
            continue  # a lowercase word outside a name: nothing below would happen to it
        if tm.lastindex:  # a stretch of lowercase words (`_TOKEN_OR_LOWER_STRETCH`): it ends the name
            flush()
            continue
        st, en = tm.span()
        gap_ok = not run or s[run[-1][2]:st] in (" ", "")
        if not gap_ok:
            flush()
        word = tok
        possessive = False
        if word.endswith("'s") and len(word) > 2 and _is_cap(word):
            word, possessive = word[:-2], True
        elif i + 1 < count and matches[i + 1][0] == "'" and matches[i + 1].start() == en and \
                (i + 2 >= count or matches[i + 2].start() > matches[i + 1].end()):
            possessive = _is_cap(word) and word.endswith("s")  # "Nieves' Lissa"
        low = fold(word)
        if run and low in _SUFFIXES and word[:1].isupper():  # 'Percy Daggs IV', 'Sammy Davis Jr.'
            run.append((word, st, en))
            continue
        if possessive and run and _is_cap(word) and (low in NEVER_NAME_WORDS or low in ROLE_NOUNS):
            run.append((word, st, st + len(word)))  # "Please Like Me's Dana Reyes": a credit ends here
            flush(possessive=True)
            continue
        capital = _is_cap(word) and not (word.isupper() and len(word) > 1 and "." not in word and len(word) <= 5
                                         and fold(word) not in EAST_ASIAN_SURNAMES)
        if capital and not run and word.endswith("ly") and st == _first_word(s) and not is_given_name(word):
            capital = False  # 'Unfortunately Bob (Sean Astin) ...': a sentence adverb, not a name
        if capital and low not in NEVER_NAME_WORDS and low not in ROLE_NOUNS and low not in PLATFORM_WORDS:
            run.append((word, st, st + len(word)))
            if possessive:
                flush(possessive=True)
            continue
        if run and low in _PARTICLES and i + 1 < count and _is_cap(matches[i + 1][0]):
            run.append((word, st, en))
            continue
        flush()
    flush()
    return tuple(out)  # every span opens with a capital letter (`_is_cap`): none is without one


def _first_word(s: str) -> int:
    m = fre.search(r"[^\W\d_]", s)
    return m.start() if m else -1


_HONORIFIC_KEYS = frozenset(h.rstrip(".") for h in HONORIFICS)


def strip_honorific(tokens: tuple[str, ...]) -> tuple[str, ...]:
    while len(tokens) > 1 and fold(tokens[0]) in _HONORIFIC_KEYS:
        tokens = tokens[1:]
    return tokens


_INITIALS = re.compile(r"(?:[A-Z]\.)+")


@functools.lru_cache(maxsize=4096)
def person_evidence(tokens: tuple[str, ...]) -> float:
    """0..1: how much these tokens look like one person's name, from name lists and name shape alone."""
    tokens = strip_honorific(tuple(t for t in tokens if fold(t) not in _SUFFIXES))
    core = [t for t in tokens if fold(t) not in _PARTICLES and not _INITIALS.fullmatch(t)]
    if not core or len(core) > 4:
        return 0.0
    if any(fold(t) in NEVER_NAME_WORDS or fold(t) in ROLE_NOUNS or fold(t) in PLATFORM_WORDS for t in core):
        return 0.0
    if any(not t[:1].isupper() for t in core):
        return 0.0
    first, last = core[0], core[-1]
    given = is_given_name(first)
    surname = surname_class(last)
    common_surname = surname == 2
    east_first = fold(first) in EAST_ASIAN_SURNAMES and len(core) >= 2
    if len(core) == 1:
        # one word: a stage name or a surname; only constructions make it a person
        return 0.3 if (given or common_surname or romanised_name_like(first)) else 0.15
    score = 0.2
    if given:
        score += 0.4
    if common_surname:
        score += 0.3
    elif surname:
        score += 0.15
    if east_first and all(romanised_name_like(p) for t in core[1:] for p in t.split("-")):
        score += 0.5
    elif all(romanised_name_like(t) for t in core):
        score += 0.3
    if "-" in last and all(romanised_name_like(p) for p in last.split("-")):
        score += 0.2
    return min(score, 1.0)


def clean_actor(text: str) -> str:
    """Display form of an actor's name: honorifics and a trailing possessive removed, spaces normalised."""
    toks = text.split()
    toks = list(strip_honorific(tuple(toks)))
    name = " ".join(toks)
    return fre.sub(r"['’]s?$", "", name).strip()
