"""The small typed records that pass between the stages (see DESIGN.md).

config -> scheduler -> fetch (RawDocument) -> document (Document) -> extract (FactSet)
       -> store (Snapshot) -> diff (ChangeEvent) -> outbox (Alert) -> notifiers

Records are frozen dataclasses or pydantic models; no stage imports another stage's internals,
only these records and the stage's one public entry point.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from watcher.text import safe_key

WatchKind = Literal["html", "wordpress", "feed", "browser"]
DocumentFormat = Literal["html", "wordpress-rest-json", "feed-entry", "text"]
Precision = Literal["day", "month", "year-part", "year"]
Renewal = Literal["renewed", "cancelled", "unconfirmed"]
Production = Literal["development", "pre-production", "filming", "post-production", "complete", "released"]
CastStatus = Literal["returning", "new", "exited", "unconfirmed", "listed"]
Trailer = Literal["none", "teaser", "released"]

EVENT_TYPES = (
    "release_changed",
    "renewal_changed",
    "production_changed",
    "filming_changed",
    "cast_added",
    "cast_removed",
    "cast_status_changed",
    "trailer_changed",
    "platform_changed",
    "text_changed",
    "fetch_failed",
    "fetch_recovered",
    "topic_consensus_changed",
    "article_added",
)

# Lengths of the stored keys (watcher/store/models.py): longer keys are hashed to fit, by `safe_key`, where
# they are made, so what a stage compares in Python is what the database holds.
ENTRY_KEY_LENGTH = 500
TOPIC_KEY_LENGTH = 320

_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u00ad"), "-")


def normalise_name(name: str) -> str:
    """Display form of a person or work name: NFKC, every dash-like character as '-', single spaces."""
    text = unicodedata.normalize("NFKC", name).translate(_DASHES)
    return " ".join(text.split())


def name_key(name: str) -> str:
    """Comparison key of a name (DESIGN.md): normalised and case-folded."""
    return normalise_name(name).casefold()


def work_key(work: str) -> str:
    """One key for every spelling of a work: case, accents, punctuation, dashes, '&'/'and' and a leading
    article folded ('NIGHTFALL', 'The Nightfall', 'Night-fall' are one work); a subtitle after ':' is kept, since
    'Nightfall: The Reckoning' is another film than 'Nightfall'. Idempotent: work_key(work_key(w)) == work_key(w)."""
    text = unicodedata.normalize("NFKC", work).casefold().replace("&", " and ")
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = re.sub(r"[\u2010-\u2015\u2212-]", " ", text)
    text = re.sub(r"[^\w\s:]", "", text)
    text = re.sub(r"\s*:\s*", ": ", " ".join(text.split()))
    return re.sub(r"^(?:the|a|an)\s+", "", text).strip(" :")


# --------------------------------------------------------------------------- topic


@dataclass(frozen=True, slots=True)
class Topic:
    """What facts are about: a work and optionally a season."""

    work: str
    season: int | None = None

    @staticmethod
    def normalise_key(key: str) -> str:
        """A stored or typed key in today's form ('The Society#2' -> 'society#2')."""
        work, _, season = key.partition("#")
        return safe_key(f"{work_key(work)}#{season}" if season else work_key(work), TOPIC_KEY_LENGTH)

    @property
    def key(self) -> str:
        """Stable key used in the database and URLs: 'all of us are dead#2' (records.work_key of the work)."""
        base = work_key(self.work)
        return safe_key(f"{base}#{self.season}" if self.season is not None else base, TOPIC_KEY_LENGTH)

    def label(self) -> str:
        return f"{self.work} S{self.season}" if self.season is not None else self.work


# --------------------------------------------------------------------------- fetch -> document


@dataclass(frozen=True, slots=True)
class RawDocument:
    """What the fetch stage hands on: one document's raw content and metadata, not yet normalised.

    `body` is HTML for html/wordpress/feed entries (the post's content HTML), plain text for text.
    `entry_key` identifies a feed entry (guid or link) within its watch; '' for single-document watches.
    """

    url: str
    format: DocumentFormat
    body: str
    final_url: str | None = None
    title: str | None = None
    published: dt.date | None = None
    modified: dt.date | None = None
    entry_key: str = ""
    jsonld: list[dict[str, Any]] = field(default_factory=list)
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """A table kept as structure: header cells (may be empty) and body rows of cell text."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str | None = None


@dataclass(frozen=True, slots=True)
class ListBlock:
    """A bulleted/numbered list with the heading and lead-in sentence it sits under."""

    items: tuple[str, ...]
    heading: str | None = None
    lead: str | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """A normalised document: main text without boilerplate, plus the structure extraction reads."""

    url: str
    format: DocumentFormat
    title: str | None
    text: str
    published: dt.date | None = None
    modified: dt.date | None = None
    final_url: str | None = None
    entry_key: str = ""
    headings: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    lists: tuple[ListBlock, ...] = ()
    description: str | None = None

    def content_hash(self) -> str:
        """Hash of what the snapshot stores; boilerplate and whitespace are already gone from `text`."""
        h = hashlib.sha256()
        h.update(" ".join(self.text.split()).encode())
        for table in self.tables:
            for row in (table.header, *table.rows):
                h.update(b"\x1e" + "\x1f".join(" ".join(c.split()) for c in row).encode())
        return h.hexdigest()


# --------------------------------------------------------------------------- facts


class _Fact(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    evidence: str = ""
    confidence: float = Field(default=0.5, ge=0, le=1)


class ReleaseFact(_Fact):
    announced: bool = False
    text: str
    earliest: dt.date
    latest: dt.date
    precision: Precision


class PreviousRelease(_Fact):
    season: int | None = None
    date: dt.date


class ScalarFact(_Fact):
    """renewal, production, platform, trailer: one value with its evidence."""

    value: str


class FilmingFact(_Fact):
    start: dt.date | None = None
    end: dt.date | None = None
    # "month" when the text named only the month ('wrapped in September 2022'): the date is then the month's
    # first day, and what shows it says 'Sep 2022', not '1 Sep 2022'. Absent for a day.
    start_precision: Literal["month"] | None = None
    end_precision: Literal["month"] | None = None


class CastFact(_Fact):
    character: str | None = None
    status: CastStatus = "listed"
    aliases: list[str] = Field(default_factory=list)


class Facts(BaseModel):
    """The fact set of one document. A fact the document does not state is None, never guessed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    release: ReleaseFact | None = None
    previous_release: PreviousRelease | None = None
    renewal: ScalarFact | None = None
    production: ScalarFact | None = None
    filming: FilmingFact | None = None
    platform: ScalarFact | None = None
    cast: dict[str, CastFact] = Field(default_factory=dict)
    trailer: ScalarFact | None = None


class DocumentInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: DocumentFormat
    title: str | None = None
    url: str | None = None
    published: dt.date | None = None
    modified: dt.date | None = None


class FactSet(BaseModel):
    """What `watcher extract --json` prints (DESIGN.md fact schema) and what snapshots store."""

    model_config = ConfigDict(extra="forbid")
    document: DocumentInfo
    work: str | None = None
    season: int | None = None
    facts: Facts = Field(default_factory=Facts)

    def topic(self) -> Topic | None:
        return Topic(self.work, self.season) if self.work else None

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready dict; facts the document does not state are left out."""
        return self.model_dump(mode="json", exclude_none=True)


# --------------------------------------------------------------------------- diff -> outbox


class ChangeEvent(BaseModel):
    """A typed difference. `subject` names what changed within the type (the actor for cast events).

    `old` and `new` are the JSON forms of the fact values (None where absent). `uid` is a stable id
    derived from the watch, the type, the subject and the new value, used as idempotency key.
    """

    model_config = ConfigDict(extra="forbid")
    type: str
    subject: str = ""
    old: Any = None
    new: Any = None
    summary: str = ""
    evidence: str = ""
    confidence: float = 1.0
    topic: str | None = None
    watch: str | None = None
    source_url: str | None = None
    detected_at: dt.datetime | None = None
    uid: str | None = None
    # Filled in for delivery: the topic's label ("All of Us Are Dead S2") and watcher's own page for the
    # change (when `web.base_url` is set).
    topic_label: str | None = None
    link: str | None = None


class Alert(BaseModel):
    """One message for one subscriber: the events of one check that pass its filters, most important first."""

    model_config = ConfigDict(extra="forbid")
    alert_id: str
    subscriber: str
    events: list[ChangeEvent] = Field(min_length=1)

    @property
    def lead(self) -> ChangeEvent:
        """The most important event: the one the subject line names."""
        return self.events[0]

    @property
    def topic_label(self) -> str | None:
        return self.lead.topic_label or self.lead.topic


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """What the scheduler asks the fetch stage for: one watch's URL with its conditional-GET validators."""

    watch: str
    url: str
    kind: WatchKind
    etag: str | None = None
    last_modified: str | None = None
    # sha256 of the body last time: an identical body comes back as 'same_body', without being parsed.
    body_hash: str | None = None
    # (username, password) for HTTP basic authentication; never shown (repr) nor stored.
    auth: tuple[str, str] | None = field(default=None, repr=False)
    # The operator typed this URL (`watcher extract URL`): its own address is not checked against
    # fetch.allow_private; where redirects and refreshes lead still is.
    operator_url: bool = False
    # kind 'browser': a CSS selector to wait for after the page loaded, and how long the browser may take in
    # all (None: fetch.timeout).
    wait_for: str | None = None
    browser_timeout: float | None = None
    # A feed or WordPress listing keeps its newest this many entries (None: all).
    max_entries: int | None = None


@dataclass(frozen=True, slots=True)
class FetchOutcome:
    """What the fetch stage returns for one request.

    status: 'ok' (documents parsed), 'not_modified' (304), 'same_body' (200 with a body byte-identical to
    the request's `body_hash`, not parsed), or 'failed' (reason says why, e.g. 'timeout', 'dns',
    'connection-refused', 'http-404', 'robots', 'too-large', 'redirect-loop', 'invalid-json').
    """

    watch: str
    url: str
    status: Literal["ok", "not_modified", "same_body", "failed"]
    documents: tuple[RawDocument, ...] = ()
    http_status: int | None = None
    reason: str | None = None
    error: str | None = None
    final_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    retry_after: float | None = None
    duration_ms: int = 0
    size: int = 0
    body_hash: str | None = None
