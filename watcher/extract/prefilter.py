"""Regular expressions that skip, cheaply, the texts they cannot match.

Most rules meet most sentences without matching them, and a failing search of a pattern with leading
alternatives tries every position of the sentence. `Rx` derives from the pattern itself a set of literal
strings one of which every match must contain ('renew' or 'greenlit' or 'picked up for' ...), and runs the
pattern only on a text that contains one: a substring test costs a fraction of a microsecond, a failing
search tens. The literals come from the parsed pattern, so the shortcut is exact by construction: it never
changes what a pattern finds, only how soon a text without any of its words is turned away.

The test lowercases text and literals, which is a necessary condition for both case-sensitive and
case-insensitive matching, except for the three characters that IGNORECASE folds onto ASCII letters
differently from `str.lower` (İ, ı, ſ): a text holding one of them is always searched.

Dozens of rules ask about the same sentence, so the literals are not looked for rule by rule: one
Aho-Corasick pass (pyahocorasick) finds which of all the rules' literals a text holds, remembered per text
(`forget` empties that memo), and each rule then only compares sets.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Iterator
from re import _constants as C  # type: ignore[attr-defined]
from re import _parser as P  # type: ignore[attr-defined]
from typing import Any

import ahocorasick

_FOLDS_ODDLY = ("\u0130", "\u0131", "\u017f")  # İ ı ſ: re.IGNORECASE matches them with i, i, s
_REPEATS = (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT))


def required_literals(pattern: str, flags: int = 0) -> frozenset[str] | None:
    """Lowercase strings one of which every match of `pattern` contains; None when no such set is known
    (the pattern can match without any fixed text, e.g. r'\\d+')."""
    tree = _parse(pattern, flags)
    return None if tree is None else _best(_conjuncts(tree))


# A requirement: alternatives (any one may hold), each a conjunction of literal sets (all must hold), each set
# satisfied by any one of its literals. '(?:a|b)x' needs ({a, b} and {x}); 'foo|bar baz' needs {foo} or {bar baz}.
Requirement = tuple[tuple[frozenset[str], ...], ...]
_MAX_CONJUNCTS = 3  # the most selective sets of a conjunction are enough to turn a text away


def requirement(pattern: str, flags: int = 0) -> Requirement | None:
    """What any match of `pattern` must contain, as alternatives of conjunctions; None when nothing is known."""
    tree = _parse(pattern, flags)
    if tree is None:
        return None
    items = list(tree)
    # The pattern's own alternation ('a...|b...', common prefixes such as '\\b' factored out of it by the
    # parser) is expanded: each alternative keeps what it needs, with the rest of the sequence.
    at = next((i for i, (op, _) in enumerate(items) if op is C.BRANCH), None)
    branches = [items] if at is None else [items[:at] + list(b) + items[at + 1:] for b in items[at][1][1]]
    alternatives = []
    for branch in branches:
        sets = sorted(_conjuncts(branch), key=_selectivity, reverse=True)[:_MAX_CONJUNCTS]
        if not sets:
            return None  # one alternative matches without fixed text: nothing can be required
        alternatives.append(tuple(sets))
    return tuple(alternatives)


def _parse(pattern: str, flags: int) -> Any:
    try:
        return P.parse(pattern, flags & ~re.DEBUG)
    except re.error:
        return None


def _conjuncts(items: list[tuple[Any, Any]]) -> list[frozenset[str]]:
    """The literal sets a sequence needs, one per item that needs one: every item must match, so all hold."""
    sets: list[frozenset[str]] = []
    run: list[str] = []

    def end_run() -> None:
        if run:
            sets.append(frozenset(["".join(run)]))
            run.clear()

    for op, av in items:
        if op is C.LITERAL:
            ch = chr(av).lower()
            if len(ch) == 1 and ch not in _FOLDS_ODDLY:
                run.append(ch)
                continue
            end_run()
            continue
        end_run()
        need: frozenset[str] | None = None
        if op is C.SUBPATTERN:
            need = _best(_conjuncts(list(av[3])))
        elif op is C.BRANCH:
            alternatives = [_best(_conjuncts(list(b))) for b in av[1]]
            if all(alternatives):
                need = frozenset().union(*alternatives)  # type: ignore[arg-type]
        elif op in _REPEATS:
            low, _high, sub = av
            if low >= 1:
                need = _best(_conjuncts(list(sub)))
        elif op is C.IN:
            need = _charset(av)
        elif op is getattr(C, "ATOMIC_GROUP", None):
            need = _best(_conjuncts(list(av)))
        if need:
            sets.append(need)
    end_run()
    return [_minimal(c) for c in sets]


def _minimal(literals: Iterable[str]) -> frozenset[str]:
    """The literals without those containing another: where the longer one occurs, the shorter does too."""
    pool = set(literals)
    return frozenset(s for s in pool if not any(o != s and o in s for o in pool))


def _folds_oddly(text: str) -> bool:
    """The text holds a character IGNORECASE matches with an ASCII letter that `str.lower` leaves alone."""
    return not text.isascii() and any(ch in text for ch in _FOLDS_ODDLY)


def _selectivity(literals: frozenset[str]) -> tuple[int, int, int]:
    """Few literals to look for, none too short to be rare (a one-letter literal is nearly everywhere)."""
    shortest = min(len(s) for s in literals)
    return min(shortest, 4), -len(literals), shortest


def _best(sets: list[frozenset[str]]) -> frozenset[str] | None:
    """The one set that best stands for a conjunction (inside an alternative, a single set is kept)."""
    return max(sets, key=_selectivity) if sets else None


def _charset(items: list[tuple[Any, Any]]) -> frozenset[str] | None:
    """A small set of plain characters ('[\"“]'): one of them; None for ranges, classes or negation."""
    chars: set[str] = set()
    for op, av in items:
        if op is not C.LITERAL:
            return None
        ch = chr(av).lower()
        if len(ch) != 1 or ch in _FOLDS_ODDLY:
            return None
        chars.add(ch)
    return frozenset(chars) if 0 < len(chars) <= 4 else None


# --------------------------------------------------------------------------- first-character guard

_ZERO_WIDTH = (C.AT, C.ASSERT, C.ASSERT_NOT)
_MAX_FIRST = 24  # a guard of more characters than this turns too few positions away to pay for itself
_GLOBAL_FLAGS = re.compile(r"(?:\(\?[aiLmsux]+\))+")  # they must stay first: the guard goes after them


def first_characters(pattern: str, flags: int = 0) -> frozenset[str] | None:
    """Every character a match of `pattern` can start with (as the pattern writes them, before case folding);
    None when that is not known or not a small set (a class, a category, an optional first item)."""
    tree = _parse(pattern, flags)
    return None if tree is None else _first_of(list(tree))


def _first_of(items: list[tuple[Any, Any]]) -> frozenset[str] | None:
    for op, av in items:
        if op in _ZERO_WIDTH:
            continue  # '\\b', '(?<!well )': they consume nothing; the next item takes the first character
        return _first_item(op, av)
    return None  # nothing but zero-width items: the match may be empty


def _first_item(op: Any, av: Any) -> frozenset[str] | None:
    if op is C.LITERAL:
        return frozenset(chr(av))
    if op is C.IN:
        chars: set[str] = set()
        for iop, iav in av:
            if iop is C.LITERAL:
                chars.add(chr(iav))
            elif iop is C.RANGE and iav[1] - iav[0] < _MAX_FIRST:
                chars.update(chr(c) for c in range(iav[0], iav[1] + 1))
            else:
                return None  # a negated set, a category ('\\w'), a wide range
        return frozenset(chars)
    if op is C.SUBPATTERN:
        if av[1] or av[2]:
            return None  # '(?i:...)': its own case rules, which the guard (under the pattern's flags) would not share
        return _first_of(list(av[3]))
    if op is getattr(C, "ATOMIC_GROUP", None):
        return _first_of(list(av))
    if op is C.BRANCH:
        out: set[str] = set()
        for branch in av[1]:
            first = _first_of(list(branch))
            if first is None:
                return None
            out |= first
        return frozenset(out)
    if op in _REPEATS and av[0] >= 1:
        return _first_of(list(av[2]))
    return None


def guarded(pattern: str, flags: int = 0) -> str:
    """`pattern` behind a lookahead for its possible first characters, where that set is small and the pattern
    does not already open with a literal: the same matches, but `re` gives up at once at every position where
    no match can start instead of trying each alternative there ('\\b(releas\\w*|premier\\w*|...)' is about
    twice as fast on release news). A lookahead consumes nothing and captures nothing: spans and groups are
    the pattern's own."""
    first = first_characters(pattern, flags)
    if first is None or not 1 < len(first) <= _MAX_FIRST:
        return pattern  # unknown, too wide, or one literal first character (which `re` already looks for)
    head = _GLOBAL_FLAGS.match(pattern)
    at = head.end() if head else 0
    chars = "".join(re.escape(c) for c in sorted(first))
    return f"{pattern[:at]}(?=[{chars}]){pattern[at:]}"


class _Literals:
    """The rules' literals, and which of them a text holds, found in one Aho-Corasick pass per text.

    Only the literals of the rules compiled at import are in the automaton (`Rx(..., shared=True)`): inline
    patterns may be built from a document's own words (a work's title), which would make it grow for ever.
    Literals of one or two characters are left out too (they occur everywhere, and every occurrence would be
    reported): those are looked for with `in`, in the lowercased text this also remembers."""

    MIN_LENGTH = 3
    _MEMO_MAX = 20_000  # texts remembered: a document's sentences many times over (`forget` empties it sooner)

    def __init__(self) -> None:
        self.known: set[str] = set()
        self._automaton: Any = None
        self._stale = False
        self.memo: dict[str, tuple[frozenset[str], str, bool]] = {}  # cleared in place, never replaced
        self._lock = threading.Lock()

    def register(self, literals: Iterable[str]) -> None:
        new = {lit for lit in literals if len(lit) >= self.MIN_LENGTH} - self.known
        if new:
            with self._lock:
                self.known |= new
                self._stale = True
                self.memo.clear()  # what it found was found without these

    def scan(self, text: str) -> tuple[frozenset[str], str, bool]:
        """The registered literals that occur in `text`, the text lowercased, and whether it folds oddly."""
        hit = self.memo.get(text)
        if hit is not None:
            return hit
        if self._stale:
            self._rebuild()
        low = text.lower()
        automaton = self._automaton
        found = frozenset([lit for _, lit in automaton.iter(low)]) if automaton is not None else frozenset()
        hit = (found, low, _folds_oddly(text))
        if len(self.memo) >= self._MEMO_MAX:
            self.memo.clear()
        self.memo[text] = hit
        return hit

    def forget(self) -> None:
        self.memo.clear()

    def _rebuild(self) -> None:
        with self._lock:
            automaton = ahocorasick.Automaton()
            for lit in self.known:
                automaton.add_word(lit, lit)
            automaton.make_automaton()
            self._automaton = automaton if self.known else None
            self.memo.clear()
            self._stale = False


LITERALS = _Literals()
_MEMO = LITERALS.memo


def forget() -> None:
    """Empty the memo of which literals each text holds (after a document; processing workers call this)."""
    LITERALS.forget()


# A literal set as `possible` tests it: those in the automaton (compared as sets), then the others (`in`).
_Test = tuple[frozenset[str], tuple[str, ...]]


def _test(literals: Iterable[str], shared: bool) -> _Test:
    lits = sorted(literals, key=len, reverse=True)  # the longest first: a text holding any holds these
    if not shared:
        return frozenset(), tuple(lits)
    LITERALS.register(lits)
    return (frozenset(n for n in lits if n in LITERALS.known),
            tuple(n for n in lits if n not in LITERALS.known))


def _holds(found: frozenset[str], low: str, test: _Test) -> bool:
    if not found.isdisjoint(test[0]):
        return True
    for n in test[1]:  # noqa: SIM110 -- any() with a generator costs a frame per call, in the hottest loop
        if n in low:
            return True
    return False


class Rx:
    """A compiled pattern (`re.Pattern`'s search/match/finditer/findall/sub) that turns away texts without
    any of its required literals before searching them. `shared`: its literals go in the automaton every text
    is scanned with (the rules compiled once, at import; not patterns built from a document's words)."""

    __slots__ = ("_any", "_need", "_scans", "_tests", "flags", "pattern", "rx")

    def __init__(self, pattern: str, flags: int = 0, *, shared: bool = True) -> None:
        self.rx = re.compile(guarded(pattern, flags), flags)
        self.pattern = pattern
        self.flags = self.rx.flags
        self._need = need = requirement(pattern, flags)
        self._tests = None if need is None else tuple(tuple(_test(lits, shared) for lits in conj) for conj in need)
        # The first (most selective) set of every alternative, together: a text holding none of them is turned
        # away in one comparison, which is what most texts meet. None when that one test is the whole test.
        self._any = None
        if need is not None and not (len(need) == 1 and len(need[0]) == 1):
            self._any = _test(_minimal(n for conj in need for n in conj[0]), shared)
        # Whether any of its literals is in the automaton. When none is (patterns written inline, or ones that
        # need only a character or two: "'", '@'), a text not scanned yet is only lowercased, not scanned.
        self._scans = any(automaton for conj in self._tests or () for automaton, _ in conj)

    def possible(self, text: str) -> bool:
        """False only when the pattern cannot match anywhere in `text`."""
        if self._tests is None:
            return True
        hit = _MEMO.get(text)
        if hit is not None:
            found, low, odd = hit
        elif self._scans:
            found, low, odd = LITERALS.scan(text)
        else:  # (a document's body, a rewritten sentence, a name: not scanned for all the rules' literals)
            found, low, odd = frozenset(), text.lower(), _folds_oddly(text)
        if odd:
            return True
        quick = self._any
        if quick is not None and found.isdisjoint(quick[0]):
            for n in quick[1]:
                if n in low:
                    break
            else:
                return False
        for conjunction in self._tests:
            for literals, others in conjunction:  # `_holds`, written out: this is the hottest loop
                if found.isdisjoint(literals):
                    for n in others:
                        if n in low:
                            break
                    else:
                        break  # this set is missing: this alternative cannot match
            else:
                return True
        return False

    def search(self, text: str, *args: int) -> re.Match[str] | None:
        return self.rx.search(text, *args) if self.possible(text) else None

    # match/fullmatch try one position, which is cheaper than looking for the literals in the whole text
    def match(self, text: str, *args: int) -> re.Match[str] | None:
        return self.rx.match(text, *args)

    def fullmatch(self, text: str, *args: int) -> re.Match[str] | None:
        return self.rx.fullmatch(text, *args)

    def finditer(self, text: str, *args: int) -> Iterator[re.Match[str]]:
        return self.rx.finditer(text, *args) if self.possible(text) else iter(())

    def findall(self, text: str, *args: int) -> list[Any]:
        return self.rx.findall(text, *args) if self.possible(text) else []

    def sub(self, repl: Any, text: str, count: int = 0) -> str:
        return self.rx.sub(repl, text, count) if self.possible(text) else text

    def __getattr__(self, name: str) -> Any:  # split, groupindex, ...: as the compiled pattern has them
        return getattr(self.rx, name)

    def __repr__(self) -> str:
        return f"Rx({self.pattern!r}, needs={self._need})"


class AnyOf:
    """One test for a family of rules read together (the date patterns): `possible` is False only when none of
    them can match the text, from the literals of them all."""

    __slots__ = ("_needed", "_test")

    def __init__(self, rules: list[Rx]) -> None:
        if any(r._need is None for r in rules):
            self._needed: frozenset[str] | None = None
            return
        # each alternative's most selective set is necessary for it (its sets are sorted so, the best first)
        self._needed = _minimal(n for r in rules for conj in r._need or () for n in conj[0])
        self._test = _test(self._needed, True)

    def possible(self, text: str) -> bool:
        if self._needed is None:
            return True
        found, low, odd = LITERALS.scan(text)
        return odd or _holds(found, low, self._test)


_WORD_CHAR = re.compile(r"\w")


def count_word(word: str, text: str) -> int:
    r"""How many times `word` occurs in `text` as a whole word, ignoring case: the number of matches of
    r'(?<!\w)WORD(?!\w)' under IGNORECASE, found without trying the pattern at every position of the text.

    An ASCII word in a text without the three characters IGNORECASE folds differently from `str.lower` (İ ı ſ)
    matches exactly where the lowercased text holds the lowercased word (str.lower keeps every other character
    one character long, so offsets are the text's own); each such place is then checked for word characters on
    either side, as the pattern would. Anything else is counted by the pattern itself."""
    if not word:
        return 0
    memo = _MEMO.get(text)
    low, odd = (memo[1], memo[2]) if memo is not None else (text.lower(), _folds_oddly(text))
    if odd or not word.isascii() or len(low) != len(text):
        return len(compiled(r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.I).findall(text))
    needle, size, count = word.lower(), len(word), 0
    at = low.find(needle)
    while at >= 0:
        end = at + size
        if (at == 0 or not _WORD_CHAR.match(text, at - 1)) and (end == len(text) or not _WORD_CHAR.match(text, end)):
            count += 1
            at = low.find(needle, end)
        else:
            at = low.find(needle, at + 1)
    return count


# The `re` module's functions for patterns written inline in the rules, with the prefilter: each pattern is
# compiled (and its literals derived) once. `match`/`fullmatch` try one position, which the prefilter would
# not make cheaper, so they only reuse the compiled pattern.
@functools.lru_cache(maxsize=1024)
def compiled(pattern: str, flags: int = 0) -> Rx:
    return Rx(pattern, flags, shared=False)  # it may hold a document's words: kept out of the automaton


def search(pattern: str, string: str, flags: int = 0) -> re.Match[str] | None:
    return compiled(pattern, flags).search(string)


def finditer(pattern: str, string: str, flags: int = 0) -> Iterator[re.Match[str]]:
    return compiled(pattern, flags).finditer(string)


def findall(pattern: str, string: str, flags: int = 0) -> list[Any]:
    return compiled(pattern, flags).findall(string)


def sub(pattern: str, repl: Any, string: str, count: int = 0, flags: int = 0) -> str:
    return compiled(pattern, flags).sub(repl, string, count)


def match(pattern: str, string: str, flags: int = 0) -> re.Match[str] | None:
    return compiled(pattern, flags).rx.match(string)


def fullmatch(pattern: str, string: str, flags: int = 0) -> re.Match[str] | None:
    return compiled(pattern, flags).rx.fullmatch(string)
