"""Fact extraction: a pure function from a normalised Document to a FactSet (DESIGN.md fact schema).

document -> sentences (text.py) -> mentions (names.py, dates.py) -> claims -> facts (topic.py, release.py,
status.py, cast.py). The rules are tables in lexicon.py. Every fact carries its evidence and a confidence.
"""

from __future__ import annotations

import datetime as dt

from watcher.extract.cast import extract_cast
from watcher.extract.release import candidates, previous_release, primary_release
from watcher.extract.status import Target, filming, platform, production, renewal, trailer
from watcher.extract.text import document_sentences
from watcher.extract.topic import detect_topic
from watcher.records import Document, DocumentInfo, Facts, FactSet, Topic

__all__ = ["extract"]


def extract(doc: Document, *, reference_date: dt.date | None = None, topic: Topic | None = None) -> FactSet:
    """The facts one document states, each with evidence and confidence; unstated facts are left out."""
    sentences, dated, has_day = document_sentences(doc)
    published = doc.published or (dated if has_day else None)
    ref = reference_date or published or doc.modified or dated
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
        renewal=renewal(sentences, target, stage.value if stage else None),
        production=stage,
        filming=filming(sentences, target, ref),
        platform=platform(sentences, target),
        cast=extract_cast(doc, sentences, work),
        trailer=trailer(sentences, target),
    )
    return FactSet(document=info, work=work, season=season, facts=facts)
