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
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from re import _constants as C  # type: ignore[attr-defined]
from re import _parser as P  # type: ignore[attr-defined]
from typing import Any

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


class Rx:
    """A compiled pattern (`re.Pattern`'s search/match/finditer/findall/sub) that turns away texts without
    any of its required literals before searching them."""

    __slots__ = ("_need", "flags", "pattern", "rx")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.rx = re.compile(pattern, flags)
        self.pattern = self.rx.pattern
        self.flags = self.rx.flags
        need = requirement(pattern, flags)
        # each set's longest literals first: they are the ones a text holds when it holds any
        self._need = None if need is None else tuple(
            tuple(tuple(sorted(lits, key=len, reverse=True)) for lits in conj) for conj in need)

    def possible(self, text: str) -> bool:
        """False only when the pattern cannot match anywhere in `text`."""
        if self._need is None:
            return True
        low = text.lower()
        for conjunction in self._need:
            for literals in conjunction:
                for n in literals:
                    if n in low:
                        break
                else:
                    break  # this set is missing: this alternative cannot match
            else:
                return True
        return _folds_oddly(text)

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
    them can match the text, from the literals of them all, looked for once."""

    __slots__ = ("_needed",)

    def __init__(self, rules: list[Rx]) -> None:
        if any(r._need is None for r in rules):
            self._needed: tuple[str, ...] | None = None
            return
        # each alternative's most selective set is necessary for it (its sets are sorted so, the best first)
        self._needed = tuple(sorted(_minimal(n for r in rules for conj in r._need or () for n in conj[0]), key=len))

    def possible(self, text: str) -> bool:
        if self._needed is None:
            return True
        low = text.lower()
        for n in self._needed:
            if n in low:
                return True
        return _folds_oddly(text)


# The `re` module's functions for patterns written inline in the rules, with the prefilter: each pattern is
# compiled (and its literals derived) once. `match`/`fullmatch` try one position, which the prefilter would
# not make cheaper, so they only reuse the compiled pattern.
@functools.lru_cache(maxsize=1024)
def compiled(pattern: str, flags: int = 0) -> Rx:
    return Rx(pattern, flags)


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
