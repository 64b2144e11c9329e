"""The extractor's small pure functions, each on an invented string (names, works and sites are made up)."""

from __future__ import annotations

import datetime as dt

from hypothesis import example, given, settings
from hypothesis import strategies as st

from watcher.extract.cast import east_asian_key, status_of
from watcher.extract.dates import find_windows
from watcher.extract.names import (
    _TOKEN,
    _TOKEN_OR_LOWER_STRETCH,
    COMMON_SURNAME_RANK,
    _fold_unicode,
    _runs,
    fold,
    is_given_name,
    person_evidence,
    romanised_name_like,
    spans,
    surname_class,
)
from watcher.extract.release import Candidate, primary_release
from watcher.extract.status import Target, production, renewal, trailer
from watcher.extract.text import Sentence, about_other_season, dateline, seasons_mentioned, split_sentences
from watcher.extract.topic import detect_topic, work_key

T2 = Target("Sample Show", 2)


def S(*texts: str) -> list[Sentence]:
    return [Sentence(t, i) for i, t in enumerate(texts)]


def test_sentences_do_not_split_on_abbreviations_or_initials() -> None:
    assert split_sentences("It debuted on Jan. 28, to acclaim. Then it grew.") == [
        "It debuted on Jan. 28, to acclaim.", "Then it grew."]
    assert split_sentences("Cast member Ray E. Dunn joins. He is 40.") == ["Cast member Ray E. Dunn joins.",
                                                                           "He is 40."]


def test_seasons_mentioned() -> None:
    assert seasons_mentioned("the second season of X and Season 1", None) == {1, 2}
    assert seasons_mentioned("the upcoming season", 3) == {3}
    assert about_other_season("Season 1 premiered on 28 January 2022", 2)
    assert not about_other_season("Season 2 premieres in 2027", 2)


def test_windows_resolve_against_reference() -> None:
    ref = dt.date(2026, 4, 2)
    assert [w.precision for w in find_windows("out on 2027-03-03", None)] == ["day"]
    assert find_windows("later this year", None) == []
    w = find_windows("the season will begin in July", ref)[0]
    assert (str(w.earliest), str(w.latest), w.precision) == ("2026-07-01", "2026-07-31", "month")
    w = find_windows("it premieres in January", ref)[0]
    assert str(w.earliest) == "2027-01-01"  # the next January
    assert find_windows("she confirmed it back in March", ref) == []  # a past month
    w = find_windows("a little later this year", ref)[0]
    assert (str(w.earliest), str(w.latest), w.precision) == ("2026-01-01", "2026-12-31", "year")
    w = find_windows("not until summer next year", ref)[0]
    assert (str(w.earliest), str(w.latest)) == ("2027-06-01", "2027-08-31")
    assert [w.text for w in find_windows("after the Season 2 May 26 premiere", ref)] == ["May 26"]


def test_dateline_is_the_publication_date() -> None:
    assert dateline("date 2022-02-11 Filming began on the new season.") == (
        dt.date(2022, 2, 11), True, "Filming began on the new season.")
    assert dateline("posted on 2024-10-08 05:01 EDT by Ann Writer")[:2] == (dt.date(2024, 10, 8), True)
    assert dateline("By Ann Writer on 2020/10/24 at 21:53 PST")[:2] == (dt.date(2020, 10, 24), True)
    assert dateline("date 2020-08 Dana Reyes plays Marta")[:2] == (dt.date(2020, 8, 1), False)
    assert dateline("Dated films are fun")[0] is None


def test_bylines_with_written_out_dates() -> None:
    assert dateline("By Ann Writer | March 3, 2021")[:2] == (dt.date(2021, 3, 3), True)
    assert dateline("Published: 3 Mar 2021, 10:00")[:2] == (dt.date(2021, 3, 3), True)
    assert dateline("Updated on Sept. 9, 2023 at 9:15 am")[:2] == (dt.date(2023, 9, 9), True)
    assert dateline("By Ann Writer, 12th January 2024")[:2] == (dt.date(2024, 1, 12), True)
    assert dateline("March 3, 2021 — The streamer said so.") == (dt.date(2021, 3, 3), True, "The streamer said so.")
    # A date that opens a sentence is a claim, not a dateline; a word that starts like a month is no month.
    assert dateline("March 5, 2027 is the date the season begins.")[0] is None
    assert dateline("Marvel 3, 2021")[0] is None


def test_names_from_lists_and_shape() -> None:
    assert [s.text for s in spans("Australian actor Cody Vance joins, alongside Marta Lin-Ruiz.")] == [
        "Australian", "Cody Vance", "Marta Lin-Ruiz"]
    assert person_evidence(("Cody", "Vance")) >= 0.6
    assert person_evidence(("Park", "Ji-won")) >= 0.6  # a Korean surname first, romanised syllables after
    assert person_evidence(("Netflix", "Originals")) == 0.0
    assert romanised_name_like("Hayashi") and romanised_name_like("Seo-yeon") and not romanised_name_like("Knowledge")
    assert [s.text for s in spans("Percy Vance IV and Tom Hale left.")] == ["Percy Vance IV", "Tom Hale"]
    assert [s.text for s in spans("Unfortunately Bob (Tom Hale) will not return.")] == ["Bob", "Tom Hale"]


def test_census_lists_by_rank() -> None:
    """The census surname list (held as hashes): rank 1 and the common/listed boundary, folded spellings."""
    import importlib.resources

    ranked = [line.split()[0] for line in importlib.resources.files("names").joinpath("dist.all.last")
              .read_text().splitlines() if line.strip()]
    assert surname_class(ranked[0].title()) == 2 and surname_class(ranked[COMMON_SURNAME_RANK - 1]) == 2
    assert surname_class(ranked[COMMON_SURNAME_RANK]) == 1 and surname_class(ranked[-1].lower()) == 1
    assert surname_class("Smíth") == 2  # compared without diacritics
    assert surname_class("Qzxvbn") == 0 and surname_class("") == 0
    assert is_given_name("Mary") and is_given_name("JOHN") and not is_given_name("Qzxvbn")


def test_east_asian_names_in_any_order_or_romanisation() -> None:
    assert east_asian_key("Ji-won Joo") == east_asian_key("Ju Ji-won") == east_asian_key("Joo Ji Won")
    assert east_asian_key("Ko Min-seo") == east_asian_key("Go Min-seo")
    assert east_asian_key("Grace Lee") is None and east_asian_key("Dana Reyes") is None


def test_topic_from_headlines() -> None:
    assert detect_topic("Netflix Renews Sample Show for Season 3", (), "") == ("Sample Show", 3)
    assert detect_topic("Sample Show Season 2: news, cast and more", (), "") == ("Sample Show", 2)
    assert detect_topic("When is Season 3 of Sample Show coming out?", (), "") == ("Sample Show", 3)
    assert detect_topic("Streamco's 'Sample Show' Season 2 release date", (), "") == ("Sample Show", 2)
    assert detect_topic("Dana Reyes joins Nightfall series three", (), "Nightfall is back.") == ("Nightfall", 3)
    assert detect_topic("Spotted: filming for second season of ITV series Nightfall begins", (), "") == (
        "Nightfall", 2)
    assert detect_topic("Tom Hale Won't Return for Fourth Season", (), "Nightfall lost its star.")[1] == 4


def test_topic_of_films_and_numbered_titles() -> None:
    body = "Nightfall 2 is the sequel. Nightfall 2 opens in May."
    assert detect_topic("Nightfall 2 adds Dana Reyes", (), body) == ("Nightfall 2", None)
    assert detect_topic("Nightfall 3: everything we know", (), "Season 3 of Nightfall arrives soon.") == (
        "Nightfall", 3)
    assert detect_topic("Dana Reyes Confirms Nightfall", (), "Nightfall starts shooting. Nightfall is a thriller.") \
        == ("Nightfall", None)
    assert detect_topic("Glass Road spin-off Nightfall adds Tom Hale as co-lead", (), "Nightfall is a spin-off.") \
        == ("Nightfall", None)
    assert detect_topic("Nightfall 2 Release Date Delayed", (), "New faces join the Nightfall: The Reckoning "
                        "cast.")[0] == "Nightfall: The Reckoning"
    assert detect_topic("Nightfall 2 Filming, Cast and Synopsis", (), "Officially titled Nightfall II, the film "
                        "stars Tom Hale.")[0] == "Nightfall II"
    assert detect_topic("Tom Hale, Ivy Moss's Nightfall opens next week", (), "Nightfall opens. Nightfall.")[0] == \
        "Nightfall"
    assert detect_topic("Dark K-Thriller Nightfall Gets Season 2", (), "Nightfall returns.") == ("Nightfall", 2)


def test_one_topic_key_for_every_spelling() -> None:
    keys = {work_key(w) for w in ("Nightfall", "NIGHTFALL", "The Nightfall", "Night-fall ", "Nightfall!")}
    assert keys == {"nightfall"} or keys == {"nightfall", "night fall"}
    assert work_key("Cats & Dogs") == work_key("Cats and Dogs")
    assert work_key("Nightfall: The Reckoning") != work_key("Nightfall")


def test_renewal_later_definite_statement_wins() -> None:
    r = renewal(S("Whether the show gets a second season remains to be seen.",
                  "Yes. The streamer has confirmed that the second season is in the works."), T2)
    assert r is not None and r.value == "renewed"
    r = renewal(S("The show has not been cancelled yet.", "A renewal remains to be seen."), T2)
    assert r is not None and r.value == "unconfirmed"
    r = renewal(S("The streamer has not yet renewed Sample Show."), T2)
    assert r is not None and r.value == "unconfirmed"


def test_renewal_ignores_other_works_actors_and_generic_claims() -> None:
    assert renewal(S("Some shows get cancelled after just one season."), T2) is None
    assert renewal(S("Other Show, which has been picked up for a third season, airs on Fridays."), T2) is None
    assert renewal(S("Dana Reyes won't return for the second season."), T2) is None
    assert renewal(S("Ana Lind is known for her role in Apple TV Plus' Other Show, which has been picked up "
                     "for a fourth season."), T2) is None
    assert renewal(S("Night Watch: Lioness has yet to be renewed, and nothing more is known."), T2) is None
    assert renewal(S("She starred in Apple TV Plus' Ted Marsh, which has been picked up for a fourth season."),
                   T2) is None  # a title that looks like a name, known as a title by 'which'
    assert renewal(S("Dana Reyes returns for a second season as the detective."), T2) is None
    r = renewal(S("When Sample Show returns for a second season in the fall, it will look different."), T2)
    assert r is not None and r.value == "renewed"
    r = renewal(S("Sample Show, which was renewed in May, returns next year."), T2)
    assert r is not None and r.value == "renewed"
    r = renewal(S("Sample Show has been cancelled after one season."), T2)
    assert r is not None and r.value == "cancelled"
    r = renewal(S("The news that Sample Show wasn't renewed broke on Friday."), T2)
    assert r is not None and r.value == "cancelled"
    r = renewal(S("Nothing else is said."), T2, production_stage="filming")
    assert r is not None and r.value == "renewed" and r.confidence < 0.7  # inferred from a season in production
    r = renewal(S("Nothing else is said."), T2, production_stage="filming",
                production_evidence="Filming of Sample Show's second season began in May.")
    assert r is not None and r.evidence == "Filming of Sample Show's second season began in May."


def test_production_ignores_hypotheticals_questions_and_other_seasons() -> None:
    assert production(S("Post-production might take six months."), T2) is None
    p = production(S("Season 1 wrapped filming in 2021.", "Season 2 is currently filming."), T2)
    assert p is not None and p.value == "filming"
    p = production(S("Sample Show has finally finished filming its second season but when will it be out?"), T2)
    assert p is not None and p.value == "post-production"
    p = production(S("Production on the new season will begin later this year."), T2)
    assert p is not None and p.value == "development"
    p = production(S("Filming for the new season will start in two months."), T2)
    assert p is not None and p.value == "pre-production"


def test_trailer() -> None:
    assert trailer(S("Season 1's teaser video may be seen below."), T2) is None
    t = trailer(S("There is no official trailer for the upcoming season yet."), T2)
    assert t is not None and t.value == "none"
    t = trailer(S("The official trailer for Season 2 is out now."), T2)
    assert t is not None and t.value == "released"
    assert trailer(S("The teaser poster shows the two leads."), T2) is None


def test_cast_status_cells() -> None:
    assert status_of("Linked / teased, not fully clear") == "unconfirmed"
    assert status_of("New cast") == "new"
    assert status_of("Returning") == "returning"
    assert status_of("Status in Season 2") is None


def test_primary_release_sums_support() -> None:
    ref = dt.date(2026, 2, 1)
    cands = []
    for i, (text, score) in enumerate([("early 2027", 2.0), ("late 2026", -0.5), ("early 2027", 1.0),
                                       ("2027", 1.5)]):
        w = find_windows(text, ref)[0]
        cands.append(Candidate(w, score, Sentence(text, i), False))
    r = primary_release(cands)
    assert r is not None and r.text == "early 2027" and r.precision == "year-part"


def test_the_stage_a_text_states_as_present_wins() -> None:
    p = production(S("Filming of the second season began in March and the season is now in post-production."), T2)
    assert p is not None and p.value == "post-production"
    p = production(S("Filming began last year.", "The new season is currently in development again."), T2)
    assert p is not None and p.value == "development"


# Words that exercise the name-span tokenizer: names, particles before and after them, suffixes, initials,
# possessives, lowercase words, digits, punctuation, non-ASCII capitals and letters that fold oddly.
_SPAN_WORDS = ["Dana", "Reyes", "Reyes's", "Nieves'", "'", "'s", "de", "van", "der", "la", "st.", "St.", "y", "Jr.",
               "IV", "iv", "M.C.", "E.", "Dr.", "Mr", "Oh", "Ji-hu", "O'Grady", "Unfortunately", "Season", "NETFLIX",
               "will", "star", "as", "and", "the", "2027", "3D", "x-Men", "Élodie", "ı", "ſ", "Ⅸ", "ǅ", "é", "(", ")",
               ",", ".", ":", "—", "’", "`", "@1"]
_SPAN_WORD = st.sampled_from(_SPAN_WORDS)
_SPAN_TEXT = st.lists(st.tuples(st.one_of(_SPAN_WORD, _SPAN_WORD, _SPAN_WORD, st.text(max_size=4)),
                                st.sampled_from([" ", " ", " ", " ", "", "  ", "\n", "\t", " ,", ", "])),
                      max_size=14).map(lambda parts: "".join(w + sep for w, sep in parts))


@settings(max_examples=3000, deadline=None)
@given(_SPAN_TEXT)
@example("Dana de Reyes will star, as Dana van der Beek's friend Nieves' Jr. does")
def test_name_spans_read_lowercase_stretches_as_one_token(text: str) -> None:
    """The fast tokenizer (a run of lowercase words as one token) finds the spans the plain one finds."""
    assert _runs(text, _TOKEN_OR_LOWER_STRETCH) == _runs(text, _TOKEN.rx)


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=12))
def test_fold_reads_ascii_as_the_unicode_rules_do(word: str) -> None:
    assert fold.__wrapped__(word) == _fold_unicode(word)
