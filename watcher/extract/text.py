"""Text -> sentences, and which seasons a sentence talks about."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from watcher.extract.dates import DASHES

_SPLIT = re.compile(r"(?<!\bJan\.)(?<!\bFeb\.)(?<!\bMar\.)(?<!\bApr\.)(?<!\bJun\.)(?<!\bJul\.)(?<!\bAug\.)"
                    r"(?<!\bSep\.)(?<!\bOct\.)(?<!\bNov\.)(?<!\bDec\.)(?<!\bSept\.)(?<!\bMr\.)(?<!\bDr\.)"
                    r"(?<!\bMs\.)(?<!\bSt\.)(?<=[.!?])[\"”’)]?\s+(?=[\"“‘(]?[A-Z0-9])")
_ORD = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8}
_SEASON_NUM = re.compile(r"\b(?:season|series|s)\s*(\d{1,2})\b", re.I)
_SEASON_ORD = re.compile(r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth)\s+(?:season|series|instal+ment)\b",
                         re.I)
_SEASON_NEW = re.compile(r"\b(?:new|next|upcoming|latest|second|another)\s+(?:season|instal+ment)\b", re.I)


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str
    index: int
    kind: str = "prose"  # prose | item | row | heading | title
    heading: str | None = None


def clean(text: str) -> str:
    return " ".join(text.translate(DASHES).replace("\u200b", "").split())


_MAX_SENTENCE = 800


def _chunks(sentence: str) -> list[str]:
    """A run-on 'sentence' (no punctuation for pages) is cut at spaces, so no rule meets unbounded text."""
    out: list[str] = []
    while len(sentence) > _MAX_SENTENCE:
        cut = sentence.rfind(" ", 0, _MAX_SENTENCE)
        cut = cut if cut > 0 else _MAX_SENTENCE
        out.append(sentence[:cut])
        sentence = sentence[cut:].lstrip()
    if sentence:
        out.append(sentence)
    return out


def split_sentences(text: str) -> list[str]:
    out: list[str] = []
    for line in text.split("\n"):
        line = clean(line)
        if line:
            for s in _SPLIT.split(line):
                if s.strip():
                    out.extend(_chunks(s))
    return out


def seasons_mentioned(text: str, target: int | None) -> set[int]:
    """Season numbers a sentence names; 'the new/next season' counts as the target season."""
    return set(_seasons(text, target))


@functools.lru_cache(maxsize=4096)
def _seasons(text: str, target: int | None) -> frozenset[int]:
    found = {int(n) for n in _SEASON_NUM.findall(text)}
    found |= {_ORD[o.lower()] for o in _SEASON_ORD.findall(text)}
    if target is not None and _SEASON_NEW.search(text):
        found.add(target)
    return frozenset(found)


def about_other_season(text: str, target: int | None) -> bool:
    """True when the sentence names only seasons other than the target one."""
    found = seasons_mentioned(text, target)
    return bool(found) and target is not None and target not in found
