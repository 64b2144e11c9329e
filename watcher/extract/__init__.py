"""Fact extraction: a pure function from a normalised Document to a FactSet (DESIGN.md fact schema).

Pipeline of small pure functions: text -> sentences (text.py) -> topic (topic.py) -> candidates and facts
(release.py, status.py, cast.py). Every fact carries its evidence and a confidence.
"""

from __future__ import annotations

import datetime as dt

from watcher.extract.cast import extract_cast
from watcher.extract.release import candidates, previous_release, primary_release
from watcher.extract.status import filming, platform, production, renewal, trailer
from watcher.extract.text import Sentence, clean, split_sentences
from watcher.extract.topic import detect_topic
from watcher.records import Document, DocumentInfo, Facts, FactSet, Topic

__all__ = ["extract"]


def _sentences(doc: Document) -> list[Sentence]:
    out: list[Sentence] = []
    headings = {clean(h) for h in doc.headings}
    if doc.title:
        out.append(Sentence(clean(doc.title), 0, "title"))
    for line in doc.text.split("\n"):
        line = clean(line)
        if not line:
            continue
        if line.startswith("• "):
            kind, line = "item", line[2:]
        elif " | " in line:
            kind = "row"
        elif line in headings:
            kind = "heading"
        else:
            kind = "prose"
        for s in split_sentences(line) if kind in ("prose", "item") else [line[:800]]:
            out.append(Sentence(s, len(out), kind))
    return out


def extract(doc: Document, *, reference_date: dt.date | None = None, topic: Topic | None = None) -> FactSet:
    """The facts one document states, each with evidence and confidence; unstated facts are left out."""
    ref = reference_date or doc.published or doc.modified
    info = DocumentInfo(format=doc.format, title=doc.title, url=doc.url, published=doc.published,
                        modified=doc.modified)
    sentences = _sentences(doc)
    work, season = detect_topic(doc.title, doc.headings, doc.text)
    if topic is not None:
        work, season = topic.work, topic.season if topic.season is not None else season
    facts = Facts(
        release=primary_release(candidates(sentences, season, ref)),
        previous_release=previous_release(sentences, season, ref),
        renewal=renewal(sentences, season),
        production=production(sentences, season),
        filming=filming(sentences, season, ref),
        platform=platform(sentences),
        cast=extract_cast(doc, [s.text for s in sentences if s.kind == "prose"]),
        trailer=trailer(sentences, season),
    )
    return FactSet(document=info, work=work, season=season, facts=facts)
