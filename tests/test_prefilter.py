"""The rules' regular-expression prefilter turns texts away only when the pattern cannot match them."""

from __future__ import annotations

import gc
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import watcher.extract  # noqa: F401  (compiles every rule)
from watcher.extract import prefilter
from watcher.extract.prefilter import Rx, required_literals, requirement


def test_literals_of_invented_patterns() -> None:
    assert required_literals(r"\bsomething\s+wicked\b", re.I) == {"something"}
    assert required_literals(r"renew(?:s|ed)?\b|greenlit|picked up for", re.I) == {"renew", "greenlit",
                                                                                     "picked up for"}
    # an optional part requires nothing; a required repeat does
    assert required_literals(r"(?:very )?quiet", 0) == {"quiet"}
    assert required_literals(r"(?:ab)+", 0) == {"ab"}
    assert required_literals(r"\d+", 0) is None
    assert required_literals(r"[\"“]\w+[\"”]", 0) == {'"', "“"}
    assert required_literals(r"[a-z]+", 0) is None
    # upper case in the pattern or the text does not matter: the test is on lowercase text
    assert required_literals(r"(?-i:January)", re.I) == {"january"}


def test_alternatives_keep_their_conjunctions() -> None:
    need = requirement(r"\b(?:filming|shooting)\b[^.]{0,40}?\b(?:began|wrapped)\b|\bbooting ceremony\b", re.I)
    assert need is not None
    assert {frozenset(c) for c in need} == {frozenset({frozenset({"filming", "shooting"}),
                                                       frozenset({"began", "wrapped"})}),
                                            frozenset({frozenset({"booting ceremony"})})}
    # one alternative without fixed text: nothing can be required of the whole
    assert requirement(r"\d{4}|in (?:spring|summer)", 0) is None


def test_rx_turns_away_only_what_cannot_match() -> None:
    rx = Rx(r"\b(?:filming|shooting)\b[^.]{0,40}?\b(?:began|wrapped)\b", re.I)
    assert not rx.possible("Filming is expected soon.")  # the noun without a verb
    assert rx.search("FILMING quietly BEGAN on Monday.") is not None
    assert rx.search("Filming is expected soon.") is None
    assert list(rx.finditer("nothing here")) == []
    assert rx.sub("X", "nothing here") == "nothing here"
    assert rx.split("a b") == ["a b"]  # other methods are the compiled pattern's


def test_characters_ignorecase_folds_differently_are_always_searched() -> None:
    rx = Rx(r"season", re.I)
    # 'ſ' (long s) matches 's' under IGNORECASE though str.lower() leaves it as it is
    assert re.search(r"season", "ſeason", re.I)
    assert rx.search("ſeason") is not None


def test_inline_functions_match_re() -> None:
    text = "The show was renewed for a second season in March 2026."
    for fn in ("search", "match", "fullmatch"):
        for pattern in (r"renew\w*", r"The\b", r".*season.*"):
            ours, theirs = getattr(prefilter, fn)(pattern, text, re.I), getattr(re, fn)(pattern, text, re.I)
            assert (ours and ours.span()) == (theirs and theirs.span())
    assert prefilter.findall(r"\bs\w+", text) == re.findall(r"\bs\w+", text)
    assert prefilter.sub(r"\d+", "#", text) == re.sub(r"\d+", "#", text)
    assert [m.span() for m in prefilter.finditer(r"e\w", text)] == [m.span() for m in re.finditer(r"e\w", text)]


def _plain_count(word: str, text: str) -> int:
    return len(re.findall(r"(?<!\w)" + re.escape(word) + r"(?!\w)", text, re.I))


def test_count_word_on_invented_texts() -> None:
    text = "Night School returns. NIGHT SCHOOL's cast; night schools and Night-School; (night school)"
    assert prefilter.count_word("Night School", text) == 3 == _plain_count("Night School", text)
    assert prefilter.count_word("aa", "aaa aa aa-aa") == 3 == _plain_count("aa", "aaa aa aa-aa")
    assert prefilter.count_word("", text) == 0
    # characters IGNORECASE folds onto ASCII letters differently from str.lower go to the pattern itself
    assert prefilter.count_word("Season", "ſeason and SEASON") == 2 == _plain_count("Season", "ſeason and SEASON")
    assert prefilter.count_word("iris", "İris ıris iris") == _plain_count("iris", "İris ıris iris")
    assert prefilter.count_word("Café", "CAFÉ café") == 2  # a non-ASCII word: the pattern counts it


_COUNT_PIECES = ["night", "Night", "NIGHT", "school", "School", " ", "-", "'", "’", "_", "1", "é", "ſ", "İ",
                 "ı", "K", "\u212a", ".", "\n", "nightnight"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["night", "Night School", "k", "night night", "school-1", "Kk"]),
       st.lists(st.sampled_from(_COUNT_PIECES), max_size=30).map("".join))
def test_count_word_counts_what_the_pattern_finds(word: str, text: str) -> None:
    assert prefilter.count_word(word, text) == _plain_count(word, text)


def test_a_family_is_possible_when_one_of_its_rules_is() -> None:
    rules = [Rx(r"\bin (?:spring|summer) (?:19|20)\d\d\b", re.I), Rx(r"\bQ[1-4] 20\d\d\b")]
    family = prefilter.AnyOf(rules)
    for text in ("Due in Summer 2027.", "Out Q3 2026.", "Nothing dated here.", "Spring cleaning."):
        assert family.possible(text) >= any(r.rx.search(text) for r in rules)
    assert not family.possible("Nothing dated here.")
    assert not prefilter.AnyOf([Rx(r"\d+"), *rules])._needed  # one rule without literals: always possible


def _rules() -> list[Rx]:
    return [o for o in gc.get_objects() if isinstance(o, Rx)]


def _plain(rule: Rx) -> re.Pattern[str]:
    """The rule's pattern as written: no prefilter, no first-character guard."""
    return re.compile(rule.pattern, rule.flags)


def test_first_characters_of_invented_patterns() -> None:
    first = prefilter.first_characters
    assert first(r"\b(?:releas\w*|premier\w*|out)\b", re.I) == {"r", "p", "o"}
    assert first(r"(?<!\bwell )(?:as|how)\s+", 0) == {"a", "h"}  # a lookbehind consumes nothing
    assert first(r"[a-c]x|d", 0) == {"a", "b", "c", "d"}
    assert first(r"(?:ab)+c", 0) == {"a"}
    # unknown: an optional first item, a category, a negated set, scoped flags (their own case rules)
    assert first(r"(?:very )?quiet", 0) is None
    assert first(r"\w+ing", 0) is None
    assert first(r"[^a]b", 0) is None
    assert first(r"(?i:officially|now)\s+titled", 0) is None


@pytest.mark.parametrize(("pattern", "flags", "text", "guarded"), [
    (r"\b(releas\w*|premier\w*|out)\b", re.I, "It PREMIERES in March; the Release is out, Outside.", True),
    (r"\b(?i:officially|formally)\s+titled\s+([A-Z]\w+(?:\s+II)?)", 0, "Officially titled Nightfall II, it ...",
     False),
    (r"(?<!\bwell )(?:as|how)\s+([A-Z]\w+)", 0, "As well as Mara, Dana Reyes plays as Marta; how Ivo fares.", True),
    (r"(?i)\b(?:new|upcoming)\s+season\b", 0, "The UPCOMING Season and a new season.", True),
    (r"(?i)(?s)\b(?:new|upcoming)\s+season\b", 0, "The UPCOMING\nSeason and a new season.", True),
    (r"^\s*(?:by|posted)\s+(\w+)", re.I | re.M, "By Ana\nposted Bo\n  BY Cy", False),  # '\s*' may be empty
])
def test_a_first_character_guard_changes_no_match(pattern: str, flags: int, text: str, guarded: bool) -> None:
    rule = Rx(pattern, flags)
    assert (rule.rx.pattern != pattern) == guarded
    for variant in (text, text.upper(), text.lower(), text.swapcase()):
        assert [(m.span(), m.groups()) for m in rule.rx.finditer(variant)] == \
            [(m.span(), m.groups()) for m in re.finditer(pattern, variant, flags)], variant
        assert rule.sub("<>", variant) == re.sub(pattern, "<>", variant, flags=flags)
        assert (rule.match(variant) is None) == (re.match(pattern, variant, flags) is None)


_WORDS = ["season", "renewed", "cancelled", "filming", "began", "wrapped", "production", "trailer", "teaser",
          "netflix", "premiere", "2027", "March", "5", "returning", "as", "stars", "Dana", "Reyes", "is", "not",
          "yet", "the", "in", "early", "spring", "post-production", "'", '"', "“", "ſ", "İ", ",", ".", "-", "(", ")"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=25).map(" ".join))
def test_every_rule_finds_what_its_pattern_finds(text: str) -> None:
    """Property: on texts made of the rules' own words, each rule (as compiled in the extractor) finds exactly
    the matches its plain pattern finds."""
    for rule in _rules():
        assert [m.span() for m in rule.finditer(text)] == [m.span() for m in _plain(rule).finditer(text)], rule


@pytest.mark.parametrize("text", ["Filming on season 2 began on 4 May 2026 and wrapped in early 2027.",
                                  "Netflix has renewed the show; it is not yet cancelled.",
                                  "The trailer, released today, shows Dana Reyes as the mayor."])
def test_every_rule_on_real_sentences(text: str) -> None:
    for rule in _rules():
        for variant in (text, text.upper(), text.swapcase()):
            assert [(m.span(), m.groups()) for m in rule.finditer(variant)] == \
                [(m.span(), m.groups()) for m in _plain(rule).finditer(variant)], rule


def test_extraction_is_the_same_without_the_prefilter(corpus, monkeypatch) -> None:
    """The invariant that matters: every document's facts are what they are when every pattern is searched."""
    from watcher.cli.extract import load_raw
    from watcher.document import normalise
    from watcher.extract import clear_caches, extract

    docs = [normalise(raw) for p in sorted(corpus.rglob("*")) if p.is_file() and not p.name.endswith(".json")
            for raw in [load_raw(str(p))] if raw is not None]
    assert len(docs) >= 3
    fast = [extract(d).to_json_dict() for d in docs]
    clear_caches()
    monkeypatch.setattr(Rx, "possible", lambda self, text: True)
    monkeypatch.setattr(prefilter.AnyOf, "possible", lambda self, text: True)
    assert [extract(d).to_json_dict() for d in docs] == fast


def test_extraction_is_the_same_without_first_character_guards(corpus, monkeypatch) -> None:
    from watcher.cli.extract import load_raw
    from watcher.document import normalise
    from watcher.extract import clear_caches, extract

    docs = [normalise(raw) for p in sorted(corpus.rglob("*")) if p.is_file() and not p.name.endswith(".json")
            for raw in [load_raw(str(p))] if raw is not None]
    guarded = [extract(d).to_json_dict() for d in docs]
    assert sum(rule.rx.pattern != rule.pattern for rule in _rules()) > 20  # most rules are guarded
    clear_caches()
    prefilter.compiled.cache_clear()  # inline patterns compile again, unguarded
    monkeypatch.setattr(prefilter, "guarded", lambda pattern, flags=0: pattern)
    for rule in _rules():
        monkeypatch.setattr(rule, "rx", _plain(rule))
    assert [extract(d).to_json_dict() for d in docs] == guarded
    prefilter.compiled.cache_clear()  # (the rules compiled unguarded here are not kept for later tests)


def test_the_automaton_holds_only_the_rules_literals() -> None:
    """Inline patterns (which may be built from a document's words) stay out of the shared automaton, and a rule
    compiled after texts were scanned still sees its literals in them."""
    from watcher.extract import prefilter as fre

    known = set(prefilter.LITERALS.known)
    assert fre.search(r"\bQuorvanth Saga\b", "the Quorvanth Saga returns")  # found, by an inline pattern
    assert prefilter.LITERALS.known == known
    text = "A zyxwquent word."
    assert prefilter.LITERALS.scan(text)[0] == frozenset()  # none of the rules' literals
    late = Rx(r"zyxwquent|qqqvvv")  # a rule compiled later (as a module imported late would)
    assert late.possible(text) and late.search(text)
    assert not late.possible("Nothing of the sort.")
    assert "zyxwquent" in prefilter.LITERALS.known
