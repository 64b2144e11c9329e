"""Fact extraction: a pure function from a normalised Document to a FactSet (DESIGN.md fact schema).

document -> sentences (text.py) -> mentions (names.py, dates.py) -> claims -> facts (topic.py, release.py,
status.py, cast.py). The rules are tables in lexicon.py. Every fact carries its evidence and a confidence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from importlib import metadata
from pathlib import Path

from watcher.extract.cast import extract_cast
from watcher.extract.release import candidates, previous_release, primary_release
from watcher.extract.status import Target, filming, platform, production, renewal, trailer
from watcher.extract.text import document_sentences
from watcher.extract.topic import detect_topic
from watcher.records import Document, DocumentInfo, Facts, FactSet, Topic

__all__ = ["RULES_VERSION", "clear_caches", "extract"]


def _rules_version() -> str:
    """A digest of the extraction rules in force: this package's source and the name lists it reads.
    Stored with each snapshot's facts, so a diff knows when the previous facts came from other rules."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    try:
        h.update(metadata.version("names").encode())
    except metadata.PackageNotFoundError:  # pragma: no cover - a dependency of the package
        pass
    return h.hexdigest()[:16]


RULES_VERSION = _rules_version()


def extract(doc: Document, *, reference_date: dt.date | None = None, topic: Topic | None = None,
            fallback_date: dt.date | None = None) -> FactSet:
    """The facts one document states, each with evidence and confidence; unstated facts are left out.

    Relative dates ("next year", "March 5") are read from `reference_date` when given, else from the
    document's own date (its metadata, else a dateline in its text), else from `fallback_date` (the day it
    was fetched): an old article re-read today keeps the year it was written in."""
    sentences, dated, has_day = document_sentences(doc)
    published = doc.published or (dated if has_day else None)
    ref = reference_date or published or doc.modified or dated or fallback_date
    info = DocumentInfo(format=doc.format, title=doc.title, url=doc.url, published=published,
                        modified=doc.modified)
    work, season = detect_topic(doc.title, doc.headings, doc.text)
    if topic is not None:
        work, season = topic.work, topic.season if topic.season is not None else season
    target = Target(work, season)
    stage = production(sentences, target)
    facts = Facts(
        release=primary_release(candidates(sentences, season, ref, target)),
        previous_release=previous_release(sentences, season, ref),
        renewal=renewal(sentences, target, stage.value if stage else None, stage.evidence if stage else None),
        production=stage,
        filming=filming(sentences, target, ref),
        platform=platform(sentences, target),
        cast=extract_cast(doc, sentences, work),
        trailer=trailer(sentences, target),
    )
    return FactSet(document=info, work=work, season=season, facts=facts)


def forget_texts() -> None:
    """Empty the memo caches keyed by sentence. They exist because several rules read the same sentences of one
    document; across documents they hit rarely (measured on the benchmark's pages: extraction is no slower
    without them) yet hold up to thousands of sentences each, about 10 MB in a long-lived worker. A processing
    worker calls this after each job. The word-level caches (`fold`, `person_evidence`) stay: words recur."""
    from watcher.extract import dates, names, prefilter, status, text

    for cache in (dates._find_windows, names._spans, status._names_work, status._other_work, text._seasons):
        cache.cache_clear()
    prefilter.forget()


def clear_caches() -> None:
    """Empty the rules' per-text memo caches, sentence- and word-level (for timing a first reading); compiled
    patterns and the name lists, loaded once per process, stay."""
    from watcher.extract import names

    forget_texts()
    names.fold.cache_clear()
    names.person_evidence.cache_clear()
