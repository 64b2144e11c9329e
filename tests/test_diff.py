"""The diff stage: a pure function of two fact sets, checked on the seeds and by properties."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import CORPUS
from watcher.cli import cli
from watcher.diff import (
    apply_events,
    comparable,
    diff_documents,
    diff_facts,
    fact_values,
    text_diff,
    unreported_removals,
)
from watcher.records import CastFact, Facts, FilmingFact, ReleaseFact, ScalarFact

OLD_SEED = CORPUS / "seeds" / "aouad-s2-release-2022.txt"
NEW_SEED = CORPUS / "seeds" / "blueroads-wp-post-161.json"


def run_diff(*args: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["diff", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_seed_diff_reports_what_a_reader_sees():
    events = run_diff(str(OLD_SEED), str(NEW_SEED), "--old-published", "2022-04-01")
    by_type: dict[str, list[dict]] = {}
    for e in events:
        by_type.setdefault(e["type"], []).append(e)

    (release,) = by_type["release_changed"]
    assert release["old"]["text"] == "2023" and release["new"]["text"] == "early 2027"
    assert (release["new"]["earliest"], release["new"]["latest"]) == ("2027-01-01", "2027-04-30")
    assert "early 2027" in release["evidence"]

    (production,) = by_type["production_changed"]
    assert (production["old"], production["new"]) == ("development", "post-production")

    (filming,) = by_type["filming_changed"]
    assert filming.get("old") is None
    assert filming["new"] == {"start": "2025-07-23", "end": "2026-02-18"}

    added = {e["subject"]: e["new"]["status"] for e in by_type["cast_added"]}
    assert added["Roh Jae-won"] == "new"
    assert {"Lee Min-jae", "Kim Si-eun", "Yoon Ga-i"} <= {n for n, s in added.items() if s == "new"}
    assert added["Roh Yoon-seo"] == "exited"

    changed = {e["subject"]: (e["old"]["status"], e["new"]["status"]) for e in by_type["cast_status_changed"]}
    assert changed["Yoon Chan-young"] == ("listed", "unconfirmed")
    assert changed["Park Ji-hu"] == ("listed", "returning")
    # Every event names its change in words and carries the evidence it rests on.
    assert all(e["summary"] and (e["evidence"] or e["type"] == "cast_removed") for e in events)


def test_same_document_twice_has_no_events():
    assert run_diff(str(NEW_SEED), str(NEW_SEED)) == []


# --------------------------------------------------------------------------- noise


def release(text: str, earliest: str, latest: str, precision: str = "year-part", evidence: str = "") -> ReleaseFact:
    return ReleaseFact(text=text, earliest=dt.date.fromisoformat(earliest), latest=dt.date.fromisoformat(latest),
                       precision=precision, evidence=evidence or f"It returns in {text}.")


def test_reworded_release_with_same_window_is_not_a_change():
    a = Facts(release=release("early 2027", "2027-01-01", "2027-04-30"))
    b = Facts(release=release("the beginning of 2027", "2027-01-01", "2027-04-30"))
    assert diff_facts(a, b) == []


def test_fact_missed_by_extraction_is_not_removed_while_its_evidence_stands():
    a = Facts(renewal=ScalarFact(value="renewed", evidence="Netflix renewed the show for a second season."))
    b = Facts()
    page = "Intro.\nNetflix  renewed the show for a second   season.\nMore."
    assert diff_facts(a, b, new_text=page) == []
    assert unreported_removals(a, b, []) == [("renewal", "")]
    (gone,) = diff_facts(a, b, new_text="Intro.\nThe show's future is unclear.")
    assert gone.type == "renewal_changed" and gone.old == "renewed" and gone.new is None


def test_whitespace_and_paragraph_order_are_not_text_changes():
    old = "First paragraph.\nSecond paragraph.\nThird."
    assert text_diff(old, "Second   paragraph.\n\nFirst paragraph.\nThird.") is None
    diff = text_diff(old, "First paragraph.\nSecond paragraph, revised.\nThird.")
    assert diff is not None and "+Second paragraph, revised." in diff and "-Second paragraph." in diff


def test_text_changed_only_when_no_fact_moved():
    facts = Facts(platform=ScalarFact(value="Netflix"))
    (event,) = diff_documents(facts, facts, "A.\nB.", "A.\nB, now longer.")
    assert event.type == "text_changed" and event.new["added"] == 1 and event.new["removed"] == 1
    moved = Facts(platform=ScalarFact(value="Disney+"))
    assert [e.type for e in diff_documents(facts, moved, "A.\nB.", "A.\nC.")] == ["platform_changed"]


def test_cast_member_matched_by_alias_and_dash_variant():
    a = Facts(cast={"Park Ji\u2011hu": CastFact(character="Nam On-jo", status="listed"),
                    "Lomon": CastFact(character="Lee Su-hyeok", aliases=["Yoon Su-hyeok"])})
    b = Facts(cast={"Park Ji-hu": CastFact(character="Nam On-jo", status="returning"),
                    "Yoon Su-hyeok": CastFact(character="Lee Suhyeok")})
    events = diff_facts(a, b)
    assert [(e.type, e.subject, e.new["status"]) for e in events] == [
        ("cast_status_changed", "Park Ji-hu", "returning")]


# --------------------------------------------------------------------------- properties

NAMES = ["Park Ji-hu", "Yoon Chan-young", "Lomon", "Roh Yoon-seo", "Kim Si-eun", "Lee Min-jae"]
dates = st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2030, 12, 31))


@st.composite
def releases(draw: st.DrawFn) -> ReleaseFact:
    start = draw(dates)
    end = start + dt.timedelta(days=draw(st.integers(0, 400)))
    return ReleaseFact(text=draw(st.sampled_from(["early 2027", "2026", "March 2027", "late 2026"])),
                       earliest=start, latest=end, precision=draw(st.sampled_from(["day", "month", "year-part",
                                                                                   "year"])),
                       announced=draw(st.booleans()), evidence=draw(st.text(max_size=20)),
                       confidence=draw(st.floats(0, 1)))


def scalars(values: list[str]) -> st.SearchStrategy[ScalarFact | None]:
    return st.none() | st.builds(ScalarFact, value=st.sampled_from(values), evidence=st.text(max_size=10))


filmings = st.none() | st.builds(FilmingFact, start=st.none() | dates, end=st.none() | dates).filter(
    lambda f: f is None or f.start is not None or f.end is not None)
casts = st.dictionaries(
    st.sampled_from(NAMES),
    st.builds(CastFact, character=st.none() | st.sampled_from(["Nam On-jo", "Lee Cheong-san", "Choi Nam-ra"]),
              status=st.sampled_from(["returning", "new", "exited", "unconfirmed", "listed"])),
    max_size=5)
fact_sets = st.builds(
    Facts, release=st.none() | releases(), renewal=scalars(["renewed", "cancelled", "unconfirmed"]),
    production=scalars(["development", "filming", "post-production"]), filming=filmings,
    platform=scalars(["Netflix", "Disney+"]), trailer=scalars(["none", "teaser", "released"]), cast=casts)


def compared(facts: Facts) -> dict:
    return {(kind, subject.casefold()): comparable(kind, v) for (kind, subject), v in fact_values(facts).items()}


@settings(max_examples=300, deadline=None)
@given(fact_sets)
def test_diff_of_a_fact_set_with_itself_is_empty(a: Facts):
    assert diff_facts(a, a) == []


@settings(max_examples=300, deadline=None)
@given(fact_sets, fact_sets)
def test_applying_the_diff_gives_the_new_facts(a: Facts, b: Facts):
    events = diff_facts(a, b)
    assert compared(apply_events(a, events)) == compared(b)
    assert (events == []) == (compared(a) == compared(b))
