"""The extractor's small pure functions, each on a string."""

from __future__ import annotations

import datetime as dt

from watcher.extract.cast import _chain, looks_like_name, split_alias, status_of
from watcher.extract.dates import find_windows
from watcher.extract.release import Candidate, primary_release
from watcher.extract.status import production, renewal, trailer
from watcher.extract.text import Sentence, about_other_season, seasons_mentioned, split_sentences
from watcher.extract.topic import detect_topic


def S(*texts: str) -> list[Sentence]:
    return [Sentence(t, i) for i, t in enumerate(texts)]


def test_sentences_do_not_split_on_month_abbreviations() -> None:
    assert split_sentences("It debuted on Jan. 28, to acclaim. Then it grew.") == [
        "It debuted on Jan. 28, to acclaim.", "Then it grew."]


def test_seasons_mentioned() -> None:
    assert seasons_mentioned("the second season of X and Season 1", None) == {1, 2}
    assert seasons_mentioned("the upcoming season", 3) == {3}
    assert about_other_season("Season 1 premiered on 28 January 2022", 2)
    assert not about_other_season("Season 2 premieres in 2027", 2)


def test_iso_date_and_no_reference() -> None:
    assert [w.precision for w in find_windows("out on 2027-03-03", None)] == ["day"]
    assert find_windows("later this year", None) == []


def test_topic() -> None:
    assert detect_topic("Netflix Renews Sample Show for Season 3", (), "") == ("Sample Show", 3)
    assert detect_topic("Sample Show Season 2: news, cast and more", (), "") == ("Sample Show", 2)
    assert detect_topic("Sample Show Season", (), "Season 2 is coming. Season 2 again. Season 1 was fine.") == (
        "Sample Show", 2)
    assert detect_topic("Everything about the show", (), "the second season of it") == (
        "Everything about the show", 2)


def test_renewal_later_definite_statement_wins() -> None:
    r = renewal(S("Whether the show gets a second season remains to be seen.",
                  "Yes. The streamer has confirmed that the second season is in the works."), 2)
    assert r is not None and r.value == "renewed"
    r = renewal(S("The show has not been cancelled yet.", "A renewal remains to be seen."), 2)
    assert r is not None and r.value == "unconfirmed"


def test_production_ignores_hypotheticals_and_other_seasons() -> None:
    assert production(S("Post-production might take six months."), 2) is None
    p = production(S("Season 1 wrapped filming in 2021.", "Season 2 is currently filming."), 2)
    assert p is not None and p.value == "filming"


def test_trailer_for_another_season_is_ignored() -> None:
    assert trailer(S("Season 1's teaser video may be seen below."), 2) is None
    t = trailer(S("There is no official trailer for the upcoming season yet."), 2)
    assert t is not None and t.value == "none"


def test_cast_helpers() -> None:
    assert status_of("Linked / teased, not fully clear") == "unconfirmed"
    assert status_of("New cast") == "new"
    assert status_of("Returning") == "returning"
    assert status_of("Status in Season 2") is None
    assert split_alias("Lomon (Yoon Su-hyeok)") == ("Lomon", ["Yoon Su-hyeok"])
    assert looks_like_name("Natasha Liu Bordizzo") and not looks_like_name("Scale of production: Bigger")
    assert not looks_like_name("It’s Kim Joo Ah") and not looks_like_name("He'll Return")
    assert looks_like_name("Conan O'Brien") and looks_like_name("D'Arcy Carden")
    assert _chain("Kim Ha-na as Lee Do-yun, Park Min as Choi Ra and Jo Eun as Han Bi") == [
        ("Kim Ha-na", "Lee Do-yun"), ("Park Min", "Choi Ra"), ("Jo Eun", "Han Bi")]


def test_primary_release_sums_support() -> None:
    ref = dt.date(2026, 2, 1)
    cands = []
    for i, (text, score) in enumerate([("early 2027", 2.0), ("late 2026", -0.5), ("early 2027", 1.0),
                                       ("2027", 1.5)]):
        w = find_windows(text, ref)[0]
        cands.append(Candidate(w, score, Sentence(text, i), False))
    r = primary_release(cands)
    assert r is not None and r.text == "early 2027" and r.precision == "year-part"


def test_topic_from_question_titles_and_quotes() -> None:
    assert detect_topic("When is Season 3 of Sample Show coming out?", (), "") == ("Sample Show", 3)
    assert detect_topic("Streamco's 'Sample Show' Season 2 release date", (), "") == ("Sample Show", 2)


def test_prose_roles_and_crew() -> None:
    from watcher.extract.cast import CastBuilder, from_prose

    cb = CastBuilder()
    from_prose(["Park Min returns as Choi Ra in the new season.", "Jane Roe will return as showrunner.",
                "Kim Ha-na joins the cast as Lee Do-yun.", "Lee Jun plays Han Bi."], cb)
    got = {k: (v.character, v.status) for k, v in cb.entries.items()}
    assert got == {"Park Min": ("Choi Ra", "returning"), "Kim Ha-na": ("Lee Do-yun", "new"),
                   "Lee Jun": ("Han Bi", "listed")}


def test_trailer_and_production_forms() -> None:
    t = trailer(S("The official trailer for Season 2 is out now."), 2)
    assert t is not None and t.value == "released"
    p = production(S("Filming has officially begun in Seoul."), 2)
    assert p is not None and p.value == "filming"
    p = production(S("Filming has officially begun.", "Season 2 wrapped filming in May."), 2)
    assert p is not None and p.value == "post-production"
    r = renewal(S("Sample Show Season 2 has been officially confirmed."), 2)
    assert r is not None and r.value == "renewed"
