"""Cast: who is in the work, as which character, and with which status (returning, new, exited, unconfirmed, listed).

mentions -> claims -> facts (DESIGN.md):
- mentions: person-name spans of each sentence (names.py), a surname alone resolved to the full name the document
  gave earlier or later, the character attached to each ('X as Y', 'Y (X)', 'X's Y', 'X, who plays Y');
- claims: each coordinated group of names ('A, B and C') takes its status from the cue that governs it
  (lexicon.CAST_POST after the names, lexicon.CAST_PRE before them), with negation and hedges; names that no
  cast construction governs are not cast (a director, a real person quoted, a character);
- facts: per person, a definite status beats a hedged one beats 'listed', a table row beats a list item beats
  prose, and the character comes from the most explicit pairing.
Tables with an actor column are read by column (header-aware).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from watcher.extract import lexicon as lx
from watcher.extract import prefilter as fre
from watcher.extract.names import (
    EAST_ASIAN_SURNAMES,
    Span,
    clean_actor,
    fold,
    is_given_name,
    person_evidence,
    spans,
    strip_honorific,
)
from watcher.extract.prefilter import Rx
from watcher.extract.text import Sentence, clean
from watcher.records import CastFact, Document, name_key, normalise_name


def _rx(rows: list[tuple[str, str, str]]) -> list[tuple[re.Pattern[str], str]]:
    return [(Rx(rf"(?<![\w-])(?:{p})(?![\w-])", re.I), status) for p, status, _ in rows]


_POST = _rx(lx.CAST_POST)
_PRE = _rx(lx.CAST_PRE)
_HEADING = [(Rx(p, re.I), s) for p, s, _ in lx.HEADING_STATUS]
_ANY_HEADING = fre.AnyOf([rx for rx, _ in _HEADING])
_NEG = Rx(rf"\b{lx.NEGATION}\s+(?:\w+\s+){{0,2}}$", re.I)
_HEDGE = Rx(lx.HEDGES, re.I)
_OTHER_WORK = Rx(lx.OTHER_WORK, re.I)
_CREW_BEFORE = Rx(rf"(?<![\w-])(?i:{lx.CREW_BEFORE})\s*[,:-]?\s*(?:(?i:and|&)\s+)?"
                          r"(?:[A-Z][\w'’]*\s+|of\s+|the\s+){0,4}$")
_CREW_AFTER = Rx(rf"^\W*(?:,\s*)?(?:who\s+)?(?:{lx.CREW_AFTER})(?![\w-])", re.I)
_CHAR_VERB = Rx(rf"^\s*,?\s*(?:who\s+)?{lx.CHARACTER_VERBS}\s+", re.I)
_AS = Rx(rf"^\s*,?\s*(?:{lx.AS_WORDS})\s+(?!(?:well|part|soon|much|long|far|of|if|though|a result|"
                 r"such|usual|always|ever|before|expected|planned)\b)", re.I)
_ROLE_AFTER = Rx(r"^\s+(?:" + "|".join(sorted(lx.ROLE_NOUNS, key=len, reverse=True)) + r")\b", re.I)
_GROUP = Rx(r"@\d+(?:(?:\s*,\s*(?:and\s+|&\s+)?|\s+(?:and|&)\s+|,?\s+as well as\s+)@\d+)*")
# Clause boundaries: a cue on the far side of one of these does not govern the names.
_BOUNDARY = Rx(r"[.;!?()\[\]]|:(?=\s*(?:[a-z\"“‘']|$))|,\s*(?:but|though|although|while|whereas|"
                       r"meanwhile|however|yet|"
                       r"so|after|before|because|since|despite|which|where|when)\b|\b(?:but|though|although|"
                       r"whereas|while)\b")
_TITLE_WORDS = frozenset(fold(w) for w in """dr dr. doctor detective det dci di ds dc dcs inspector sergeant sgt
officer captain capt chief commander colonel col general gen major lieutenant lt private pvt agent professor prof
father mother sister brother uncle aunt king queen prince princess lord lady duke duchess count countess baron
sir dame mayor president governor senator judge vicar reverend rev pastor nurse coach principal commissioner
vice""".split())
_NOT_A_ROLE = lx.ROLE_NOUNS | {"series", "recurring", "guest", "co-lead", "main", "villain", "narrator", "cameo",
                               "himself", "herself", "themselves", "lead", "leads", "role", "part"}
_KIND_RANK = {"row": 4, "item": 3, "prose": 2, "heading": 1, "title": 1}
_STATUS_RANK = {"exited": 5, "returning": 4, "new": 4, "unconfirmed": 2, "listed": 1}


@dataclass
class Mention:
    name: str  # the actor's full display name
    start: int  # region in the sentence (name plus its attached character or credit)
    end: int
    character: str | None = None
    single: bool = False  # one word that no full name in the document explains
    evidence: float = 0.0
    status: str | None = None  # a status written beside the name in a list item: '(returning)'
    aliases: list[str] = field(default_factory=list)
    char_phrase: str | None = None  # the character(s) a verb gives: 'return to play A', 'reprise roles as A and B'
    source: str = ""  # the words of the sentence this mention stands for


@dataclass
class Claim:
    actor: str
    character: str | None
    status: str
    strength: int  # 3: a cue governs it; 2: a heading or lead-in does; 1: a cast construction only
    kind: str
    evidence: str
    index: int


@dataclass
class _Doc:
    """Document-wide knowledge the sentence rules share: full names, their surnames, characters, the work."""

    full: dict[str, str] = field(default_factory=dict)  # fold(name) -> display
    by_last: dict[str, set[str]] = field(default_factory=dict)  # fold(last token) -> displays
    by_first: dict[str, set[str]] = field(default_factory=dict)  # fold(first token) -> displays (surname-first)
    characters: set[str] = field(default_factory=set)  # fold of character names and their first words
    work_words: set[str] = field(default_factory=set)
    crew: set[str] = field(default_factory=set)


# --------------------------------------------------------------------------- document-wide pass


def _display(tokens: tuple[str, ...]) -> str:
    return normalise_name(" ".join(strip_honorific(tokens)))


_CHARACTER_CUE = Rx(rf"\b(?<!\bwell )(?<!\bsuch )(?:{lx.AS_WORDS}|character,?|role of|named)\s+"
                    rf"((?:[A-Z][\w'’.-]*\s*){{1,3}})")
_PLAYS_CUE = Rx(r"\b(?:plays?|playing|played|portrays?|portraying|portrayed|voices?|voicing)\s+(?!by\b)")


def _learn_names(sentences: list[Sentence], work: str | None) -> _Doc:
    d = _Doc()
    if work:
        d.work_words = {fold(w) for w in fre.findall(r"[^\W\d_][\w'’-]*", work)}
    plain = _Doc()
    for s in sentences:
        text = _unchain(s.text, plain) if s.text.count(" as ") + s.text.count(" how ") >= 2 else s.text
        for sp in spans(text):
            toks = strip_honorific(sp.tokens)
            if len(toks) < 2 or _is_work(toks, d):
                continue
            if person_evidence(toks) >= 0.5:
                name = _display(toks)
                d.full.setdefault(fold(name), name)
        for m in _CHARACTER_CUE.finditer(s.text):
            d.characters.add(fold(m.group(1).strip()))
        for m in _PLAYS_CUE.finditer(s.text):
            char, _ = _character_at(s.text, m.end())
            if char:
                d.characters.add(fold(char))
    for name in d.full.values():
        toks = name.split()
        d.by_last.setdefault(fold(toks[-1]), set()).add(name)
        if fold(toks[0]) in EAST_ASIAN_SURNAMES:
            d.by_first.setdefault(fold(toks[0]), set()).add(name)
    return d


def _is_work(tokens: tuple[str, ...], d: _Doc) -> bool:
    return bool(d.work_words) and all(fold(t) in d.work_words for t in tokens)


def _resolve(tokens: tuple[str, ...], d: _Doc) -> tuple[str, bool]:
    """(display name, single): a lone surname becomes the one full name that ends with it."""
    tokens = strip_honorific(tokens)
    if len(tokens) >= 2:
        name = _display(tokens)
        prefix = fold(name) + "-"
        longer = [f for k, f in d.full.items() if k.startswith(prefix)]
        if len(longer) == 1:
            return longer[0], False  # 'Yoon Chan', a cut-off 'Yoon Chan-young'
        return d.full.get(fold(name), name), False
    key = fold(tokens[0])
    for index in (d.by_last, d.by_first):
        cands = index.get(key, set())
        if len(cands) == 1:
            return next(iter(cands)), False
    return normalise_name(tokens[0]), True


# --------------------------------------------------------------------------- characters


_CHAR_TOKEN = Rx(r"[A-Z][\w'’.\-]*|\"[^\"]{1,20}\"|“[^”]{1,20}”")


def _character_at(text: str, pos: int) -> tuple[str | None, int]:
    """The character name that starts at or shortly after pos: lowercase descriptors and a possessive owner
    ('newspaper editor Maggie Radcliffe', 'Mio's friend Madoka') are skipped; 'X the Y' and 'X of the Y' kept."""
    i = pos
    skipped = 0
    while skipped < 5:
        m = fre.match(r"\s*(?:(?:the|a|an|his|her|their|its)\s+[a-z][\w-]*,\s+(?=[A-Z])|(?:the|a|an|his|her|their|"
                     r"its)\s+|[a-z][\w-]*\s+|[A-Z][\w'’-]*['’]s\s+)", text[i:])  # 'the mayor, Ruth Vance'
        if not m or (fre.match(r"\s*[A-Z][\w'’.\-]*(?!['’]s)\b", text[i:]) and not fre.match(
                r"\s*[A-Z][\w'’-]*['’]s\s", text[i:])):
            break
        if fre.match(r"\s*(?:in|on|at|for|from|with|and|or|but|who|which|that|after|before)\s", text[i:]):
            return None, pos
        i += m.end()
        skipped += 1
    m = fre.match(r"\s*", text[i:])
    i += m.end() if m else 0
    words: list[str] = []
    j = i
    while True:
        m = _CHAR_TOKEN.match(text, j)
        if not m:
            break
        words.append(m.group(0))
        j = m.end()
        sp = fre.match(r" (?=[A-Z\"“])", text[j:])
        if sp:
            j += 1
            continue
        link = fre.match(r" (?:the|of|of the|de|la|von|van) (?=[A-Z])", text[j:])  # 'Kuro the Cautious'
        if not link:
            break
        words.append(link.group(0).strip())
        j += link.end()
    while words and words[-1].lower() in ("the", "of", "of the", "de", "la", "von", "van"):
        words.pop()
    if not words:
        return None, pos
    name = " ".join(words).rstrip(".,")
    if fold(words[0]) in lx.FUNCTION_WORDS or all(fold(w) in _NOT_A_ROLE for w in words):
        return None, pos  # 'as The ...', 'as Series Regular', 'as co-lead': no character
    if all(fold(w) in _TITLE_WORDS for w in words):
        after = fre.match(r",\s*([A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){0,2})", text[j:])
        if after:
            return after.group(1), j + after.end()
    end = i + len(" ".join(words))
    return name, end


def _distribute(chars: str) -> list[str]:
    """'Mark and Beth Latimer' / 'Rebecca and Evelyn' / 'A, B and C' -> the characters in order."""
    parts = [p.strip() for p in re.split(r",\s*(?:and\s+)?|\s+and\s+|\s*&\s*", chars) if p.strip()]
    return parts


# --------------------------------------------------------------------------- one sentence

_QUOTED = Rx(r"[\"“][^\"“”]{1,90}[\"”]|‘[^‘’]{1,60}’|(?<!\w)'[A-Z][^']{0,60}'(?!\w)")
# A noun-phrase appositive after a name ('Norman Reedus, the face behind ..., has been tapped'): absorbed.
_APPOSITIVE = Rx(r"^,\s+(?:the|a|an|star of|best known|known|fresh off|late)\b[^,;:()]{0,110}?,", re.I)
_CONTRACTION = Rx(r"['’](?:ll|d|re|ve|m|t)$", re.I)
_SPEECH = Rx(r"^\W*(?:said|says|told|tells|revealed|reveals|explained|explains|wrote|writes|tweeted|"
                     r"noted|notes|recalled|recalls|admitted|admits|joked|jokes|gushed|shared|posted|stated|"
                     r"continued|continues|added|insisted|insists|teased|announced|confirmed|asked)\b", re.I)


def _unchain(text: str, d: _Doc) -> str:
    """'A as B C as D E as F' (pairings run together, as in garbled or machine-made lists): a comma is put
    between each character and the next actor, choosing the split that makes the best person name."""
    parts = re.split(rf"\s+(?:{lx.AS_WORDS})\s+", text)
    if len(parts) < 3 or not all(fre.fullmatch(r"[^\W\d_][\w'’.\- ]*", p.strip(" ,")) and all(
            t[:1].isupper() or t in ("the", "of") for t in p.split()) for p in parts[1:-1]):
        return text  # only runs of capitalised names: 'A as B C as D', never 'A as editor B and C as D'
    out = [parts[0]]
    for mid in parts[1:-1]:
        tokens = mid.split()
        best: tuple[float, int] | None = None
        for k in range(1, len(tokens)):
            actor = tuple(tokens[k:])
            if not actor[0][:1].isupper() or tokens[k - 1].lower() in ("the", "of", "de", "la") or len(actor) > 3:
                continue
            score = person_evidence(actor) - 0.3 * sum(1 for t in actor if not _namey(t)) + \
                0.5 * person_evidence(tuple(t for t in tokens[:k] if t.lower() not in ("the", "of")))
            joined = " ".join(actor)
            if fold(joined) in d.full or any(fold(f).startswith(fold(joined) + "-") for f in d.full.values()):
                score += 0.5
            if len(actor) == 2:
                score += 0.1
            if best is None or score > best[0]:
                best = (score, k)
        if best is None:
            out.append(mid)
            continue
        k = best[1]
        out.append(" ".join(tokens[:k]) + ", " + " ".join(tokens[k:]))
    out.append(parts[-1])
    return " as ".join(out)


def _namey(token: str) -> bool:
    from watcher.extract.names import is_given_name, romanised_name_like, surname_class

    return is_given_name(token) or surname_class(token) > 0 or romanised_name_like(token) or \
        fold(token) in EAST_ASIAN_SURNAMES


def _is_work_after(text: str, at: int, d: _Doc) -> bool:
    """The words after a possessive at `at` are the work ('Dana Reyes's upcoming thriller Nightfall')."""
    m = fre.match(r"^['’‘]s?\s+(?:(?:upcoming|new|next|latest|highly[- ]anticipated|[a-z]+)\s+){0,3}((?:[A-Z][\w'’:-]*"
                 r"\s*){1,5})", text[at:])
    return bool(m) and all(fold(w) in d.work_words for w in fre.findall(r"[^\W\d_][\w'’-]*", m.group(1)))


def _owner_is_person(tokens: tuple[str, ...], d: _Doc) -> bool:
    if len(strip_honorific(tokens)) >= 2:
        return person_evidence(tokens) >= 0.6 and fold(_display(tokens)) not in d.characters
    name, single = _resolve(tokens, d)
    return not single and fold(name) not in d.characters


def _character_phrase(text: str, pos: int) -> tuple[str | None, int]:
    """One character or a coordinated run of them ('Mark and Beth Latimer', 'Rebecca and Evelyn')."""
    first, end = _character_at(text, pos)
    if not first:
        return None, pos
    names = [first]
    while True:
        m = fre.match(r"(?:,\s*(?:and\s+)?|\s+and\s+|\s*&\s*)(?=[a-zA-Z])", text[end:])
        if not m:
            break
        nxt, nend = _character_at(text, end + m.end())
        if not nxt or _AS.match(text[nend:]) or fre.match(r"\s*\(", text[nend:]) or fre.match(
                r"\s+(?:will|is|are|was|were|has|have|had|plays?|joins?|returns?|stars?|portrays?|voices?|also|who)\b",
                text[nend:]):
            break  # the next actor of a list, or the subject of the next clause, not another character
        names.append(nxt)
        end = nend
    return ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1], end


_CAST_CONTEXT = Rx(r"\b(?:series|show|film|movie|season|character|cast|plays?|stars?|starring|role|"
                           r"alongside|follows|centers?|centres?|focus\w*)\b", re.I)
_PAIR_SEP = Rx(r"\s*(?:,\s*(?:and\s+)?|\s+and\s+|\s*&\s*|,?\s+as well as\s+)(?:(?:[A-Z]{2,4}|[A-Z][a-z]{1,3}\.)"
                       r"\s+|[\"“][^\"”]{1,20}[\"”]\s+)*")
_CREDIT_TAIL = Rx(r"^\s+(?:from|of)\s+(?:the\s+)?[A-Z][\w'’:-]*(?:\s+(?:[A-Z][\w'’:-]*|of|the|and|a|in|on|to|"
                          r"upon))*(?:\s+fame)?(?=[\s,.;]|$)")


def _credit_length(credit: str) -> int:
    """How much of a ' from Other Show ...' credit is the credit: it stops before ' and ' + a person's name
    ('Dana Reyes from Night Shift and Tom Pell')."""
    for m in fre.finditer(r"\s+and\s+", credit):
        rest = fre.match(r"[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*){1,2}", credit[m.end():])
        if rest and person_evidence(tuple(rest.group(0).split())) >= 0.6:
            return m.start()
    return len(credit)


_PAREN_AFTER = re.compile(r"^\s*\(([^()]{1,60})\)")  # 'Dana Reyes (Marta)'
_PLAYED_BY = Rx(r"^,?\s+(?:(?:is|are|was|were|will be)\s+(?:now\s+|also\s+|being\s+)?)?"
                        r"(?:played|portrayed|voiced|essayed)\s+by\s+", re.I)


def _mentions(s: Sentence, d: _Doc) -> tuple[list[Mention], str]:
    """The person mentions of a sentence (with attached characters) and the sentence abstracted: each mention's
    region replaced by '@i', person descriptors, credits and character names removed, so cue patterns see the
    structure: 'Returning are A (Credit), B as Char and C' -> 'Returning are @0, @1 and @2'."""
    text = _unchain(s.text, d) if s.text.count(" as ") + s.text.count(" how ") >= 2 else s.text
    quoted = [(m.start(), m.end()) for m in _QUOTED.finditer(text)]
    sps = [sp for sp in spans(text)
           if not _is_work(strip_honorific(sp.tokens), d) and not _CONTRACTION.search(sp.text)
           and not any(a < sp.start and sp.end < b for a, b in quoted)]
    mentions: list[Mention] = []
    drop: list[tuple[int, int]] = []  # regions removed from the abstract (descriptors, credits, characters)
    covered = -1  # end of the last region consumed
    orientation: bool | None = None  # in a run of 'A (B), C (D)': is the outer name the actor?
    pending_char: str | None = None  # 'Hal Wyler, played by X': the character waiting for its actor
    for i, sp in enumerate(sps):
        if sp.start < covered:
            continue
        nxt = sps[i + 1] if i + 1 < len(sps) else None
        after = text[sp.end:]
        # 'Ray Donovan alum Paula Malcomson', 'Australian actor Cody Fern': a descriptor, not a person
        if _ROLE_AFTER.match(after) and nxt is not None and fre.match(r"^\s+[\w-]+\s+$", text[sp.end:nxt.start]):
            drop.append((sp.start, nxt.start))
            continue
        if sp.possessive and d.work_words and _is_work_after(text, sp.end, d):
            # "Kabir Anand, Meera Joshi's Nightfall": the people whose film it is are its cast
            name, single = _resolve(strip_honorific(sp.tokens), d)
            m = Mention(name, sp.start, sp.end, None, single, person_evidence(sp.tokens), status="listed")
            m.source = text[sp.start:sp.end]
            mentions.append(m)
            covered = sp.end
            continue
        if sp.possessive and nxt is not None and fre.match(r"^['’‘]s?\s+$", text[sp.end:nxt.start]):
            if _owner_is_person(sp.tokens, d) and _CAST_CONTEXT.search(text):
                # "Sterling K. Brown's Xavier Collins": the actor's character
                owner, _ = _resolve(sp.tokens, d)
                char, cend = _character_at(text, nxt.start)
                m = Mention(owner, sp.start, sp.end, char, False, person_evidence(sp.tokens))
                m.status = "listed"  # what follows is the character's story, not the actor's
                mentions.append(m)
                drop.append((sp.end, cend if char else nxt.end))
                covered = cend if char else nxt.end
                continue
            # "Heartstopper's Bradley Riches", "Home and Away's Sarah Roberts": a credit
            start = sp.start
            if mentions and mentions[-1].single and fre.fullmatch(r"\s+and\s+", text[mentions[-1].end:sp.start]):
                start = mentions.pop().start
            drop.append((start, nxt.start))
            continue
        tokens = strip_honorific(sp.tokens)
        name, single = _resolve(tokens, d)
        # a character breakdown line names a character whose first name the text gave ('... debut as Carlos' then
        # 'Carlos Singh: “A refined smuggler ...”')
        breakdown = fold(tokens[0]) in d.characters and bool(fre.match(r"\s*:\s*[\"“]", after))
        if (fold(_display(tokens)) in d.characters or breakdown) and not fre.match(r"^\s*\(", after) and \
                not _PLAYED_BY.match(after) and not _AS.match(after):
            drop.append((sp.start, sp.end))  # a character named in the story ('Kyle and Sidney go head-to-head')
            covered = sp.end
            continue
        if _PLAYED_BY.match(after):
            # 'Hal Wyler, played by Rufus Sewell': a character
            d.characters.add(fold(_display(tokens)))
            pending_char = _display(tokens)
            drop.append((sp.start, sp.end))
            covered = sp.end
            continue
        m = Mention(name, sp.start, sp.end, None, single, person_evidence(tokens))
        if pending_char and _PLAYED_BY.match(text[max(0, covered - 1):sp.start] + " ") is None and \
                fre.search(r"(?:played|portrayed|voiced|essayed)\s+by\s+$", text[:sp.start], re.I):
            m.character, pending_char = pending_char, None
        end = sp.end
        paren = _PAREN_AFTER.match(after)
        if paren:
            inner = paren.group(1).strip()
            inner_sp = spans(inner)
            inner_tokens = inner_sp[0].tokens if inner_sp and inner_sp[0].text == inner else None
            rest = after[paren.end():]
            if inner_tokens is not None and _AS.match(rest):
                if person_evidence(inner_tokens) >= 0.3:
                    m.aliases.append(_display(inner_tokens))  # 'Lomon (Yoon Su-hyuk) as Lee Su-hyeok'
            elif inner_tokens is not None:
                inner_name, inner_single = _resolve(inner_tokens, d)
                in_run = bool(mentions) and _PAIR_SEP.fullmatch(text[mentions[-1].end:sp.start]) is not None
                if orientation is None or not in_run:
                    orientation = _outer_is_actor(text, sp, tokens, single, name, inner_tokens, inner_single, rest,
                                                  d)
                if not orientation:
                    if not inner_single or len(inner_tokens) >= 2:
                        d.characters.add(fold(_display(tokens)))
                        d.characters.add(fold(tokens[0]))
                        m = Mention(inner_name, sp.start, sp.end, _display(tokens), False,
                                    person_evidence(inner_tokens))
                elif person_evidence(inner_tokens) >= 0.5 and len(inner_tokens) >= 2 and not inner_single:
                    m.character = _display(inner_tokens)  # 'Park Gyu-young (Yoon Ji-soo)' in a cast list
            elif s.kind == "item":
                m.status = status_of(inner)  # '(rumoured for season 2)' after a name in a list
            end = sp.end + paren.end()
        tail = text[end:]
        asm = _AS.match(tail)
        if asm and not _OTHER_WORK.search(text[max(0, m.start - 60):m.start]):
            char, cend = _character_at(text, end + asm.end())
            if char and fold(char) not in {fold(t) for t in tokens}:
                m.character = char
                end = cend
                d.characters.add(fold(char))
        else:
            cv = _CHAR_VERB.match(tail)
            if cv and not _OTHER_WORK.search(tail[:cv.end()]) and not fre.search(r"\bby\s*$", tail[:cv.end()]):
                phrase, pend = _character_phrase(text, end + cv.end())
                if phrase:
                    m.char_phrase = phrase
                    drop.append((end + cv.end(), pend))
                    covered = pend
        credit = _CREDIT_TAIL.match(text[end:])
        if credit and not fre.search(r"\b(?:of|from)\s+(?:the\s+)?(?:series|show|film|cast)\b", credit.group(0)):
            end += _credit_length(credit.group(0))
        app = _APPOSITIVE.match(text[end:])
        if app:
            if fre.search(rf"\b(?:{lx.CREW_BEFORE})\b", app.group(0), re.I) and \
                    not fre.search(r"\b(?:actor|actress|star|cast)\b", app.group(0), re.I):
                d.crew.add(name)
            end += app.end() - 1  # keep the closing comma as a separator
        m.end = end
        m.source = text[m.start:end]
        covered = max(covered, end)
        mentions.append(m)
    # the abstract: mention regions -> '@i', dropped regions -> ''
    if not mentions:
        return mentions, text  # (the abstract is read only for its mentions: none, nothing to abstract)
    pieces: list[str] = []
    pos = 0
    regions = sorted([(mm.start, mm.end, f"@{n}") for n, mm in enumerate(mentions)] + [(a, b, "") for a, b in drop])
    for a, b, rep in regions:
        if a < pos:
            continue
        pieces.append(text[pos:a].replace("@", "＠"))  # a literal '@' in the text is not a mention marker
        pieces.append(rep + (" " if rep and text[b:b + 1].isalnum() else ""))  # '@1' never runs into a digit
        pos = b
    pieces.append(text[pos:].replace("@", "＠"))
    abstract = "".join(pieces)
    abstract = _AGE.sub(r"\1", abstract)  # ages: 'Reyes, 31, is joined by'
    abstract = _STRAY_CREDIT.sub(r"\1", abstract)  # a stray credit: 'A, (Credit), B'
    abstract = _TITLE_BETWEEN.sub(r"\1, ", abstract)  # 'DS', 'Dr.'
    abstract = _THIS_ACTOR.sub(r"\1", abstract)  # '@0: This actress plays'
    abstract = _PRONOUN_AFTER.sub(r"\1", abstract)  # '@0 - she plays'
    return mentions, abstract


# Patterns of the abstract ('@i' for mention i), compiled once: plain `re`, as every abstract holds an '@'.
_AGE = re.compile(r"(@\d+),\s*\d{1,3},")
_STRAY_CREDIT = re.compile(r"(@\d+),\s*\([^()]{1,40}\)")
_TITLE_BETWEEN = re.compile(r"(@\d+)\s*,?\s+(?:[A-Z]{2,4}|[A-Z][a-z]{1,3}\.)\s+(?=@)")
_THIS_ACTOR = re.compile(r"^(@\d+)\s*[:–-]\s*(?:this|the)\s+(?:actor|actress|star|performer)\b", re.I)
_PRONOUN_AFTER = re.compile(r"^(@\d+)\s*[:–-]\s*(?:he|she|they)\b", re.I)
_MENTION_ID = re.compile(r"@(\d+)")
_NAME_LINE = re.compile(r"^\W*@\d+\s*[:–-]\s*(?![\"“'])")
_WHOLE_ITEM = re.compile(r"\W*@\d+\W*")


def _outer_is_actor(text: str, sp: Span, tokens: tuple[str, ...], single: bool, name: str,
                    inner_tokens: tuple[str, ...], inner_single: bool, rest: str, d: _Doc) -> bool:
    """In 'A (B)', is A the actor (B a character or credit) or the character (B the actor)?"""
    if single or fold(tokens[0]) in _TITLE_WORDS or fold(name) in d.characters:
        return False
    if inner_single and len(inner_tokens) == 1:
        return True
    if any(rx.match(rest.lstrip(" ,")) for rx, _ in _POST[:-1]):
        return True  # 'A (Credit) has joined the cast': A is the subject, so the actor
    if _cue(_pre_text(text, sp.start), "")[0] is not None:
        return True  # a cast list: 'also stars A (B), C (D)'
    return person_evidence(inner_tokens) < 0.5


def _pre_text(text: str, start: int) -> str:
    left = text[:start]
    cut = 0
    for m in _BOUNDARY.finditer(left):
        cut = m.end()
    return left[cut:]


def _clause(abstract: str, a: int, b: int, weak: set[int]) -> tuple[str, str]:
    """The text before a group (from the last boundary or group) and after it (to the next boundary or group).
    A colon or semicolon right before the names introduces them ('The cast includes: A, B'): the clause reaches
    past it. Weak mentions (lone words no cue will make a person) do not cut the clause."""
    left = abstract[:a]
    cut = 0
    for m in _BOUNDARY.finditer(left):
        if m.group(0) in (":", ";") and not left[m.end():].strip():
            continue
        cut = m.end()
    prev = [m for m in _MENTION_ID.finditer(left) if int(m.group(1)) not in weak]
    pre_start = prev[-1].end() if prev and prev[-1].end() > cut else cut
    right = abstract[b:]
    m = _BOUNDARY.search(right)
    post_end = m.start() if m else len(right)
    nxt = next((x for x in _MENTION_ID.finditer(right) if int(x.group(1)) not in weak), None)
    if nxt and nxt.start() < post_end:
        post_end = nxt.start()
    return abstract[pre_start:a], right[:post_end]


_BARRIER = Rx(r"\b(?:that|which|who)\b(?!\s+(?:includes?|included|are|is|were|was)\b)|\bto\s+(?!(?:star|"
                      r"play|join|appear|return|reprise|voice|be|the|its|their|his|her|a|an)\b)[a-z]+\b", re.I)


# Crew work a name can share ('will executive produce alongside X', 'co-directs with X').
_CREW_WORK = Rx(r"\b(?:produc\w*|direct\w*|co-direct\w*|writ\w*|penn\w*|showrun\w*|helm\w*|script\w*)\b",
                        re.I)
_SUBJECT_CHANGE = Rx(r"\b(?:he|she|they|it|we|you|i|as he|as she)\b", re.I)


def _cue(pre: str, post: str) -> tuple[str | None, str, int]:
    """The status the cue governing a group gives it, the side it came from ('post', 'pre' or '') and its
    distance from the names. On each side the nearest cue with a status wins over a nearer bare 'listed' one
    ('Returning cast members include A' is returning; 'X, who plays Y, has exited' is exited)."""
    if _DEFINING.search(pre):
        return "listed", "pre", 0  # 'alongside A', 'played by A': nothing further governs the names
    found: list[tuple[bool, int, str]] = []  # (is listed, distance, status)
    reach = 130 if fre.match(r"^\W*(?:,\s*)?who\b", post) else 90
    for rx, status in _POST:
        for m in rx.finditer(post):
            if m.start() > reach or _SUBJECT_CHANGE.search(post[:m.start()]):
                break
            here: str | None = status
            if _NEG.search(post[:m.start()]):
                here = "exited" if status == "returning" else None if status == "new" else status
            if here:
                found.append((here == "listed", m.start(), here))
    post_found = found
    found = []
    for rx, status in _PRE:
        for m in rx.finditer(pre):
            dist = len(pre) - m.end()
            if dist > 90 or _BARRIER.search(pre[m.end():]):
                continue
            if status == "returning" and _NEG.search(pre[:m.start()]):
                status = "exited"  # 'who will not be returning for season 4 is A'
            found.append((status == "listed", dist, status))
    # a post cue with a status, then a pre one, then a bare 'listed' on either side
    for side, cands in (("post", [f for f in post_found if not f[0]]), ("pre", [f for f in found if not f[0]]),
                        ("post", post_found), ("pre", found)):
        if cands:
            best = min(cands)
            return best[2], side, best[1]
    return None, "", 0


_DEFINING = Rx(r"(?<![\w-])(?:alongside|opposite|(?:played|portrayed|voiced|essayed) by|joining (?:them|him|"
                       r"her)|(?:which|that|who) (?:also )?(?:starred|stars|starring|features|featured|co-starred)|"
                       r"^\W*(?:also )?(?:starred|co-starred|featured))\s*$", re.I)


def _heading_status(text: str | None) -> str | None:
    if not text or not _ANY_HEADING.possible(text):
        return None
    for rx, status in _HEADING:
        if rx.search(text) and fre.search(r"\b(?:cast|stars?|actors?|characters?|who|faces|members?|additions?|"
                                         r"returning|joining|newcomers?|exits?|leaving)\b", text, re.I):
            return status
    return None


def _lead_status(s: Sentence) -> str | None:
    """The status a list's lead-in gives its items ('Season 2 adds:', 'Confirmed returning leads include:')."""
    if s.lead:
        status = _cue(fre.sub(r"[:\s]+$", " ", s.lead), "")[0]
        if status and status != "listed":
            return status
        heading = _heading_status(s.lead)
        if heading:
            return heading
    return _heading_status(s.heading)


def _claims_of(s: Sentence, d: _Doc) -> list[Claim]:
    mentions, abstract = _mentions(s, d)
    if not mentions:
        return []
    out: list[Claim] = []
    group_status: list[str | None] = []
    default = _lead_status(s)
    # 'Dana Reyes: This actress plays ...' (a name line about the actor, not a character breakdown in quotes)
    name_line = _NAME_LINE.match(abstract) is not None
    whole_item = s.kind == "item" and _WHOLE_ITEM.fullmatch(abstract) is not None
    groups = [(g, [int(n) for n in _MENTION_ID.findall(g.group(0))]) for g in _GROUP.finditer(abstract)]
    weak = {ids[0] for g, ids in groups if len(ids) == 1 and mentions[ids[0]].single
            and not mentions[ids[0]].character and not mentions[ids[0]].char_phrase}
    if weak:  # a lone capitalised word no cue can make a person is read as the word it is ('Guest stars include')
        abstract = _MENTION_ID.sub(lambda mm: mentions[int(mm.group(1))].source if int(mm.group(1)) in weak
                                   else mm.group(0), abstract)
        groups = [(g, [int(n) for n in _MENTION_ID.findall(g.group(0))]) for g in _GROUP.finditer(abstract)]
    crew_before = False
    for g, ids in groups:
        members = [mentions[n] for n in ids]
        pre, post = _clause(abstract, g.start(), g.end(), weak)
        if _CREW_BEFORE.search(pre[-70:]) or _CREW_AFTER.match(post) or (
                crew_before and fre.fullmatch(r"\W*(?:alongside|with|and|along with|as well as|"
                                             r"together with)\W*", pre)) \
                or (fre.search(r"\b(?:alongside|with|along with|together with)\s*$", pre) and _CREW_WORK.search(pre)):
            d.crew.update(m.name for m in members if not m.single)
            group_status.append(None)
            crew_before = True
            continue
        crew_before = False
        if fre.match(r"^\s+(?:said|says|told|tells|revealed|reveals|explained|wrote|tweeted|noted|recalled|admitted|"
                    r"joked|gushed|shared|posted|stated|continued|added|insisted|teased|asked)\b", post) and \
                not any(m.character for m in members):
            group_status.append(None)  # a speaker: "..., Davis reveals."
            continue
        if fre.match(r"^\s+(?:stars|actors|actresses|alums?|alumni|veterans|regulars|favourites|favorites)\s+"
                    r"(?:join|joined|are|were|have|has|will|set|to|board|sign|return|land|head|lead|"
                    r"from)\b", post, re.I):
            group_status.append(None)  # 'Other Show and Another Show stars join ...': works, not people
            continue
        if fre.search(r"\b(?:actors?|actresses|stars?|alums?|alumni|veterans?|faces|cast members?|talent|names) "
                     r"(?:from|of)\s+(?:the\s+)?(?:likes of\s+)?$", pre, re.I) and \
                not any(m.character for m in members):
            group_status.append(None)  # 'a cast including actors from Other Show and Another Show': works
            continue
        if _OTHER_WORK.search(pre) and not any(m.character for m in members) and not post.strip(" ,"):
            group_status.append(None)  # 'an alum of Other Show and Another Show'
            continue
        status, side, dist = _cue(pre, post)
        if side == "post" and _OTHER_WORK.search(post[:60]) and status in ("listed", "new"):
            status = None
        if status is None and fre.search(r"(?:^|,)\s*(?:along with|together with|as well as|(?:and )?(?:as|so) "
                                        r"(?:does|do|did|will|is|are|has|have)|(?:and )?the same (?:goes|is true|"
                                        r"applies) (?:for|to))\s*$", pre) and \
                group_status and group_status[-1]:
            status, side = group_status[-1], "inherit"
        if status in ("new", "returning") and side in ("pre", "post") and _HEDGE.search(pre if side == "pre"
                                                                                        else post):
            status = "unconfirmed"
        strength = 3
        has_char = any(m.character or m.char_phrase or m.status == "listed" for m in members)
        if status == "listed" or status is None:
            if default is not None and (status is not None or has_char or len(members) > 1 or whole_item
                                        or name_line):
                status, strength = default, 2
            elif status is None:
                if not has_char and not (whole_item and s.lead):
                    group_status.append(None)
                    continue
                status, strength = "listed", 1
            else:
                strength = 1
        group_status.append(status)
        chars = _distribute(members[-1].char_phrase) if members[-1].char_phrase else []
        multi = [m for m in members if not m.single]
        for k, m in enumerate(members):
            adjacent = side in ("pre", "post") and dist <= 12 and len(members) <= 2
            if not _accept(m, multi, strength, d, adjacent):
                continue
            char = m.character or (chars[k] if len(chars) == len(members) else None) or (
                _distribute(m.char_phrase)[0] if m.char_phrase else None)
            if m.status == "listed" and status in ("listed", None):  # the character's story follows, not the actor's
                out.append(Claim(m.name, char, "listed", 1, s.kind, s.text, s.index))
                continue
            st = m.status or status
            out.append(Claim(m.name, char, st, 3 if m.status else strength, s.kind, s.text, s.index))
            for alias in m.aliases:
                out.append(Claim(m.name, None, "alias:" + alias, 0, s.kind, "", s.index))
    return out


def _accept(m: Mention, multi: list[Mention], strength: int, d: _Doc, adjacent: bool = False) -> bool:
    """Is this mention a performer? Full names need name evidence or a construction; one word needs more."""
    key = fold(m.name)
    if key in d.characters and not m.character:
        return False
    if fold(m.name.split()[0]) in _TITLE_WORDS and not m.character:
        return False
    strong_list = any(mm.evidence >= 0.5 and mm is not m for mm in multi)
    if not m.single:
        return (m.evidence >= 0.5 or m.name in d.full.values() or (m.evidence >= 0.35 and strength >= 2)
                or strong_list or m.character is not None)
    if len(m.name) < 3 or not m.name[:1].isupper() or fold(m.name) in lx.PLATFORM_WORDS:
        return False
    # one word: a stage name in a list of full names, one given a character, or one a cue governs directly
    if is_given_name(m.name) and not strong_list:
        return False
    return strong_list or (m.character is not None and m.evidence >= 0.3) or (adjacent and strength >= 2)


# --------------------------------------------------------------------------- tables


def _col(header: tuple[str, ...], rx: str) -> int | None:
    return next((i for i, h in enumerate(header) if fre.search(rx, h, re.I)), None)


def status_of(text: str | None) -> str | None:
    """A status cell or parenthesis: 'Returning', 'New cast', 'Linked / teased', 'Exited'."""
    t = (text or "").lower()
    if not t:
        return None
    if fre.search(r"\b(exit\w*|left|leav\w*|depart\w*|not returning|won'?t return|dropped out|replaced)\b", t):
        return "exited"
    if fre.search(r"\b(linked|teas\w*|rumou?r\w*|unclear|not (?:fully )?clear|unconfirmed|tbc|tba|may|might|"
                 r"possibl\w*|uncertain|mystery|depending)\b", t):
        return "unconfirmed"
    if fre.search(r"\b(return\w*|back|reprising|coming back)\b", t):
        return "returning"
    if fre.search(r"\b(new|join\w*|adds?|added|newcomers?|cast as)\b", t):
        return "new"
    return None


def _from_tables(doc: Document, out: list[Claim]) -> None:
    for table in doc.tables:
        a = _col(table.header, r"\b(actor|actress|cast|star|name|performer|played by)\b")
        if a is None:
            continue
        c = _col(table.header, r"\b(character|role|playing|as)\b")
        st = _col(table.header, r"\b(status|returning|confirmed)\b")
        for row in table.rows:
            if a >= len(row):
                continue
            char = clean(row[c]) if c is not None and c < len(row) else None
            if char and fre.search(r"\b(new role|tba|tbc|unknown|n/a)\b", char, re.I):
                char = None
            status = status_of(row[st]) if st is not None and st < len(row) else None
            actor, aliases = _split_alias(clean(row[a]))
            if not _name_shaped(actor):
                continue
            out.append(Claim(actor, char if char and _name_shaped(char) else None, status or "listed",
                             3 if status else 1, "row", " | ".join(row), -1))
            for alias in aliases:
                out.append(Claim(actor, None, "alias:" + alias, 0, "row", "", -1))


_PAREN_ALIAS = Rx(r"^(?P<name>[^()]+?)\s*\((?P<alias>[^()]+)\)\s*$")


def _split_alias(name: str) -> tuple[str, list[str]]:
    m = _PAREN_ALIAS.match(name)
    if m and _name_shaped(m["alias"].strip()):
        return m["name"].strip(), [normalise_name(m["alias"])]
    return name, []


def _name_shaped(text: str) -> bool:
    sp = spans(text)
    return len(sp) == 1 and sp[0].text == text.strip() and not any(ch.isdigit() for ch in text) and \
        2 <= len(text) <= 40


# --------------------------------------------------------------------------- facts

# Romanisations of one East Asian surname ('Joo'/'Ju', 'Ko'/'Go', 'Yi'/'Lee'/'Rhee'): general knowledge.
_EA_VARIANTS = {"joo": "ju", "lee": "yi", "i": "yi", "rhee": "yi", "pak": "park", "bak": "park", "choe": "choi",
                "jeong": "jung", "chung": "jung", "gang": "kang", "jo": "cho", "yun": "yoon", "chang": "jang",
                "im": "lim", "sin": "shin", "yu": "yoo", "ko": "go", "kong": "gong", "o": "oh", "suh": "seo",
                "jun": "jeon", "chun": "jeon", "an": "ahn", "mun": "moon", "sohn": "son", "pae": "bae",
                "paek": "baek", "hur": "heo", "roh": "noh", "no": "noh", "seong": "sung", "wu": "woo", "koo": "gu",
                "ku": "gu", "eom": "uhm"}


def east_asian_key(name: str) -> tuple[str, str] | None:
    """(surname, given) of a romanised East Asian name, whatever its order, spacing or surname spelling:
    'Ji-hoon Ju', 'Ju Ji-hoon' and 'Joo Ji Hoon' share it. None for other names."""
    from watcher.extract.names import romanised_name_like

    toks = [fold(t) for t in name.split()]
    if not 2 <= len(toks) <= 4:
        return None
    for sur, given in ((toks[0], toks[1:]), (toks[-1], toks[:-1])):
        parts = [p for g in given for p in g.split("-") if p]
        if sur in EAST_ASIAN_SURNAMES and parts and all(romanised_name_like(p) or len(p) <= 3 for p in parts) and \
                not any(is_given_name(p) and len(p) > 3 for p in parts):
            return _EA_VARIANTS.get(sur, sur), "".join(parts)
    return None


def _merge(claims: list[Claim], d: _Doc) -> dict[str, CastFact]:
    by_key: dict[str, list[Claim]] = {}
    display: dict[str, str] = {}
    aliases: dict[str, list[str]] = {}
    ea_seen: dict[tuple[str, str], str] = {}  # one East Asian name in any order or romanisation -> its key
    for c in claims:
        if c.status.startswith("alias:"):
            aliases.setdefault(name_key(c.actor), []).append(c.status[6:])
            continue
        shown = normalise_name(clean_actor(c.actor))
        key = name_key(shown)
        ea = east_asian_key(shown)
        if ea is not None:
            first = ea_seen.setdefault(ea, key)
            if first != key:  # 'Ju Ji-hoon' after 'Ji-hoon Ju': the same person
                if shown not in aliases.setdefault(first, []):
                    aliases[first].append(shown)
                key = first
        by_key.setdefault(key, []).append(c)
        display.setdefault(key, shown)
    out: dict[str, CastFact] = {}
    for key, cs in by_key.items():
        best = max(cs, key=lambda c: (c.strength >= 2 and c.status != "listed", _KIND_RANK.get(c.kind, 0),
                                      _STATUS_RANK[c.status] if c.strength >= 2 else 0, -c.index))
        chars = sorted((c for c in cs if c.character), key=lambda c: (-_KIND_RANK.get(c.kind, 0), c.index))
        char = normalise_name(chars[0].character) if chars and chars[0].character else None
        conf = {4: 0.9, 3: 0.75, 2: 0.65}.get(_KIND_RANK.get(best.kind, 1), 0.55)
        if best.strength == 1:
            conf -= 0.1
        if best.status == "unconfirmed":
            conf -= 0.1
        name = display[key]
        if fold(name) in {fold(x) for x in d.crew} and best.strength < 3:
            continue
        out[name] = CastFact(character=char, status=best.status, aliases=aliases.get(key, []),  # type: ignore[arg-type]
                             evidence=best.evidence, confidence=round(max(conf, 0.3), 2))
    return out


def extract_cast(doc: Document, sentences: list[Sentence], work: str | None = None) -> dict[str, CastFact]:
    """The cast a document states, each with status, character (when paired) and the sentence it came from."""
    d = _learn_names(sentences, work)
    claims = _read(doc, sentences, d)
    # A full name the lists do not know ('Priya Raman') is learnt from the construction that made it cast; a
    # second reading then resolves its surname alone ('Raman will play ...').
    learnt = {c.actor for c in claims if c.strength >= 2 and " " in c.actor and fold(c.actor) not in d.full}
    if learnt:
        for name in learnt:
            d.full[fold(name)] = name
            d.by_last.setdefault(fold(name.split()[-1]), set()).add(name)
        d.characters -= {fold(n) for n in learnt}
        claims = _read(doc, sentences, d)
    return _merge(claims, d)


_PRONOUN_START = Rx(r"^(?:He|She)\s+(?=(?:will|is|also|has|plays?|portrays?|joins?|returns?|stars?|was)\b)")


def _read(doc: Document, sentences: list[Sentence], d: _Doc) -> list[Claim]:
    claims: list[Claim] = []
    _from_tables(doc, claims)
    previous: tuple[Sentence, list[Claim]] | None = None
    for s in sentences:
        if s.kind == "row" and doc.tables:
            continue  # table rows are read by column above
        subject = _subject(previous, d)
        if subject and _PRONOUN_START.match(s.text):
            # 'Dana Reyes has joined the cast. She will play Marta.': she is the one cast member just named
            stand_in = dataclasses.replace(s, text=_PRONOUN_START.sub(subject + " ", s.text, count=1))
            found = [dataclasses.replace(c, evidence=s.text) for c in _claims_of(stand_in, d)]
        else:
            found = _claims_of(s, d)
        claims.extend(found)
        previous = (s, found)
    return claims


def _subject(previous: tuple[Sentence, list[Claim]] | None, d: _Doc) -> str | None:
    """The cast member a sentence opened with ('Dana Reyes has joined ...'), for a 'She' in the next one."""
    if previous is None or not previous[1]:
        return None
    sp = spans(previous[0].text)
    if not sp or not fre.fullmatch(r"\W*(?:[A-Z]\w*:\s*)?\W*", previous[0].text[:sp[0].start]):
        return None  # the sentence must open with the name ('Exclusive: Dana Reyes has joined ...' does)
    name, _single = _resolve(strip_honorific(sp[0].tokens), d)
    return name if any(c.actor == name for c in previous[1]) else None


__all__ = ["Span", "extract_cast", "status_of"]
