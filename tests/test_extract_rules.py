"""Every rule row is tested on the invented example it carries, and the phrasings real articles use all the time
are tested on invented documents (no name, work or site here comes from a real article)."""

from __future__ import annotations

import datetime as dt

import pytest

from watcher.document import normalise
from watcher.extract import extract
from watcher.extract import lexicon as lx
from watcher.records import FactSet, RawDocument

PUB = dt.date(2026, 3, 10)


def facts(title: str, body: str, published: dt.date | None = PUB) -> FactSet:
    raw = RawDocument(url="file:///invented.txt", format="text", body=f"{title}\n\n{body}", title=title,
                      published=published)
    return extract(normalise(raw))


def cast(title: str, body: str) -> dict[str, tuple[str, str | None]]:
    return {k: (v.status, v.character) for k, v in facts(title, body).facts.cast.items()}


@pytest.mark.parametrize(("pattern", "status", "example"), lx.CAST_POST + lx.CAST_PRE,
                         ids=lambda v: v[:30] if isinstance(v, str) else None)
def test_cast_rule_rows_on_their_examples(pattern: str, status: str, example: str) -> None:
    got = cast("Nightfall Season 3 news", example + ".")
    assert got, f"no cast found in {example!r}"
    assert {s for s, _ in got.values()} == {status}, (example, got)


@pytest.mark.parametrize(("pattern", "value", "example"), lx.RENEWAL, ids=lambda v: v[:30] if isinstance(v, str)
                         else None)
def test_renewal_rows_on_their_examples(pattern: str, value: str, example: str) -> None:
    r = facts("Nightfall Season 3 news", example + ".").facts.renewal
    assert r is not None and r.value == value


@pytest.mark.parametrize(("stage", "pattern", "example"), lx.PRODUCTION, ids=lambda v: v[:30] if isinstance(v, str)
                         else None)
def test_production_rows_on_their_examples(stage: str, pattern: str, example: str) -> None:
    p = facts("Nightfall Season 2 news", example + ".").facts.production
    if stage == "released":
        assert p is not None and p.value == "released"
    else:
        assert p is not None and p.value == stage


@pytest.mark.parametrize(("pattern", "value", "example"), lx.TRAILER)
def test_trailer_rows_on_their_examples(pattern: str, value: str, example: str) -> None:
    t = facts("Nightfall Season 2 news", example + ".").facts.trailer
    assert t is not None and t.value == value


# --------------------------------------------------------------------------- cast in prose


def test_a_plain_line_pairs_actor_and_character() -> None:
    assert cast("Nightfall Season 3 casting news", "Dana Reyes as Marta\n\nFilming starts in May.") == {
        "Dana Reyes": ("listed", "Marta")}


def test_coordinated_names_under_one_verb() -> None:
    got = cast("Nightfall Season 3 adds three", "Actors Tom Hale, Ivy Moss and Lee Park have also joined the cast.")
    assert got == {"Tom Hale": ("new", None), "Ivy Moss": ("new", None), "Lee Park": ("new", None)}


def test_joined_by_returning_cast_members() -> None:
    got = cast("Nightfall Season 2 begins", "Reyes, 31, is joined by returning cast members Tom Hale, Ivy Moss "
               "and Lee Park. Dana Reyes leads the drama.")
    assert {k: v[0] for k, v in got.items() if k != "Dana Reyes"} == {
        "Tom Hale": "returning", "Ivy Moss": "returning", "Lee Park": "returning"}


def test_series_regulars_and_guest_stars_are_new() -> None:
    got = cast("Nightfall Season 2 cast", "The series will also add Tom Hale and Ivy Moss as series regulars. "
               "Guest stars include Lee Park and Sara Quinn.")
    assert {k: v[0] for k, v in got.items()} == {"Tom Hale": "new", "Ivy Moss": "new", "Lee Park": "new",
                                                  "Sara Quinn": "new"}


def test_an_exit_and_a_replacement() -> None:
    got = cast("Dana Reyes Exits Nightfall", "Dana Reyes has exited the film due to scheduling conflicts. "
               "Tom Hale has replaced her in the role.")
    assert got == {"Dana Reyes": ("exited", None), "Tom Hale": ("new", None)}
    got = cast("Nightfall Season 3", "Ivy Moss, who plays Gina, has left the show.")
    assert got == {"Ivy Moss": ("exited", "Gina")}


def test_hedges_make_a_claim_unconfirmed() -> None:
    got = cast("Nightfall Season 4 rumours", "Tom Hale is in talks to join the cast as a villain. "
               "Ivy Moss is rumoured to return as Gina.")
    assert got == {"Tom Hale": ("unconfirmed", None), "Ivy Moss": ("unconfirmed", "Gina")}
    got = cast("Nightfall Season 4 cast", "Dana Reyes and Tom Hale are exiting the series. Ivy Moss's character "
               "hinted at leaving the city in the finale as well.")
    assert got == {"Dana Reyes": ("exited", None), "Tom Hale": ("exited", None), "Ivy Moss": ("unconfirmed", None)}
    # a character's part in the story is no hedge
    assert cast("Nightfall Season 4 cast", "Ivy Moss's character plays a big part this season.") == {
        "Ivy Moss": ("listed", None)}


def test_character_then_actor_and_actor_then_character() -> None:
    got = cast("Nightfall Season 2 preview", "The story follows Gina Vale (Ivy Moss) and her brother, Carl "
               "(Tom Hale). The series stars Lee Park (Dr. Ann Roe), Sara Quinn and Omar Diaz.")
    assert got["Ivy Moss"] == ("listed", "Gina Vale") and got["Tom Hale"] == ("listed", "Carl")
    assert got["Lee Park"] == ("listed", "Dr. Ann Roe") and set(got) == {"Ivy Moss", "Tom Hale", "Lee Park",
                                                                        "Sara Quinn", "Omar Diaz"}


def test_reprising_roles_distributes_characters_in_order() -> None:
    got = cast("Nightfall Season 2", "Tom Hale and Ivy Moss reprise their roles as Carl and Gina Vale.")
    assert got == {"Tom Hale": ("returning", "Carl"), "Ivy Moss": ("returning", "Gina Vale")}


def test_along_with_shares_the_status() -> None:
    got = cast("Nightfall Season 2", "Omar Diaz will also return to play Sheriff Bo Lark, along with Sara Quinn "
               "as editor Jo Bell and Lee Park as Ann's son Tim.")
    assert got == {"Omar Diaz": ("returning", "Sheriff Bo Lark"), "Sara Quinn": ("returning", "Jo Bell"),
                   "Lee Park": ("returning", "Tim")}


def test_crew_speakers_credits_and_other_works_are_not_cast() -> None:
    got = cast("Nightfall Season 2", "Director Ann Roe returns to helm the season, written by Bo Lark. "
               "Ivy Moss (Glass Road) stars alongside Tom Hale, best known for his role as Carl in Other Show. "
               "\"We love it,\" Sara Quinn said.")
    assert set(got) == {"Ivy Moss", "Tom Hale"}


def test_a_possessive_credit_is_not_a_person() -> None:
    got = cast("Nightfall Season 2", "Glass Road's Tom Hale and Home and Away's Ivy Moss are also set to star.")
    assert got == {"Tom Hale": ("new", None), "Ivy Moss": ("new", None)}


def test_a_list_under_a_lead_in_takes_its_status() -> None:
    got = cast("Nightfall Season 2", "According to casting news, the season adds:\n\n• Tom Hale\n• Ivy Moss\n"
               "\nConfirmed returning leads include:\n\n• Lee Park as Gina\n• Sara Quinn as Carl")
    assert got == {"Tom Hale": ("new", None), "Ivy Moss": ("new", None), "Lee Park": ("returning", "Gina"),
                   "Sara Quinn": ("returning", "Carl")}


def test_headline_claims() -> None:
    assert cast("Dana Reyes Joins Nightfall Season 2", "The drama starts filming soon.") == {
        "Dana Reyes": ("new", None)}
    assert cast("Tom Hale Not Returning for Season 3 of Nightfall", "Nightfall goes on.") == {
        "Tom Hale": ("exited", None)}


# --------------------------------------------------------------------------- renewal, production, release


def test_renewal_phrasings() -> None:
    assert facts("Nightfall renewed", "The drama has been renewed for a third season.").facts.renewal.value == \
        "renewed"  # type: ignore[union-attr]
    fs = facts("Nightfall cancelled", "Streamco has cancelled Nightfall after two seasons.")
    assert fs.facts.renewal is not None and fs.facts.renewal.value == "cancelled"
    fs = facts("Nightfall Season 3", "Nightfall will not return for a third season, the network said.")
    assert fs.facts.renewal is not None and fs.facts.renewal.value == "cancelled"


def test_film_release_moves_take_the_newest_date() -> None:
    fs = facts("Nightfall 2 release date", "The sequel Nightfall 2 is slated to hit theaters on October 9, 2026.")
    r = fs.facts.release
    assert fs.work == "Nightfall 2" and fs.season is None
    assert r is not None and str(r.earliest) == "2026-10-09" and fs.facts.platform.value == "theatrical"  # type: ignore[union-attr]
    fs = facts("Nightfall 2 delayed again", "The studio has pushed Nightfall 2 back from November 20, 2026 to "
               "March 12, 2027.")
    assert str(fs.facts.release.earliest) == "2027-03-12"  # type: ignore[union-attr]
    fs = facts("Nightfall 2 moves", "Nightfall 2 will now arrive in theaters on May 14 instead of June 11.")
    assert str(fs.facts.release.earliest) == "2026-05-14" and fs.facts.release.announced  # type: ignore[union-attr]


def test_a_dateline_is_never_a_release() -> None:
    fs = facts("Nightfall Season 2 news", "date 2026-02-11 Nightfall will return later this year.", published=None)
    r = fs.facts.release
    assert fs.document.published == dt.date(2026, 2, 11)
    assert r is not None and (str(r.earliest), str(r.latest)) == ("2026-01-01", "2026-12-31")


def test_other_works_and_seasons_do_not_give_dates_or_platforms() -> None:
    fs = facts("Nightfall 2 release date", "Nightfall 2 hits theaters on September 17. The next big release is "
               "\"Other Film,\" which streams on Streamco Max at the end of the month, and \"Third Film\" on "
               "April 16th.")
    assert str(fs.facts.release.earliest) == "2026-09-17"  # type: ignore[union-attr]
    assert fs.facts.platform is not None and fs.facts.platform.value == "theatrical"
    fs = facts("Nightfall Season 2", "The first season, which debuted on Netflix on Jan. 28, was a hit. Netflix "
               "plans to release Season 2 in 2027.")
    assert str(fs.facts.release.earliest) == "2027-01-01"  # type: ignore[union-attr]


def test_production_phrasings() -> None:
    for body, stage in (("Filming for Nightfall is currently underway in Seoul.", "filming"),
                        ("The shoot of Nightfall was wrapped up in October.", "post-production"),
                        ("Filming is about to begin, the studio said.", "pre-production"),
                        ("The second season will continue filming in Spain.", "filming")):
        p = facts("Nightfall Season 2", body).facts.production
        assert p is not None and p.value == stage, body


def test_a_cancellation_is_not_an_actor_exit_and_another_show_renewal_does_not_count() -> None:
    fs = facts("Nightfall cancelled at Streamco after two seasons",
               "Streamco has cancelled Nightfall after two seasons. The drama, which starred Dana Reyes and Tom "
               "Hale, will not return for a third season. Streamco has also renewed its comedy Glass Road for a "
               "fourth season.")
    assert fs.season == 3 and fs.facts.renewal is not None and fs.facts.renewal.value == "cancelled"
    assert {k: v.status for k, v in fs.facts.cast.items()} == {"Dana Reyes": "listed", "Tom Hale": "listed"}


def test_a_name_learnt_from_its_construction_resolves_its_surname() -> None:
    got = cast("Nightfall Season 2 adds three", "Priya Raman and Kofi Mensah have been cast as series regulars. "
               "Raman will play Dr. Leila Shah, and Mensah will portray the mayor, Ruth Vance.")
    assert got == {"Priya Raman": ("new", "Dr. Leila Shah"), "Kofi Mensah": ("new", "Ruth Vance")}


def test_a_past_month_without_year_is_the_last_one() -> None:
    f = facts("Nightfall 2 gets a date", "Nightfall 2 will hit theaters on March 22, 2027. Filming wrapped in "
              "February.", published=dt.date(2026, 6, 1)).facts
    assert f.filming is not None and str(f.filming.end) == "2026-02-01"
    # Only the month is known: kept with the date, so alerts say 'wrapped Feb 2026', not '1 Feb 2026'.
    assert f.filming.end_precision == "month" and f.filming.start_precision is None
    day = facts("Nightfall 2 wraps", "Filming on Nightfall Season 2 wrapped on 18 February 2026.",
                published=dt.date(2026, 6, 1)).facts.filming
    assert day is not None and str(day.end) == "2026-02-18" and day.end_precision is None


def test_she_after_a_sentence_about_one_cast_member_is_that_member() -> None:
    got = cast("Nightfall Season 3: Dana Reyes joins", "Exclusive: Dana Reyes (Glass Road) has joined the cast as a "
               "series regular. She will play Agent Nora Pike, a federal investigator.")
    assert got == {"Dana Reyes": ("new", "Agent Nora Pike")}


def test_the_stars_whose_film_it_is() -> None:
    got = cast("Tom Hale, Ivy Moss's Nightfall gets a release date", "Tom Hale and Ivy Moss's upcoming thriller "
               "Nightfall will hit theatres on August 15. The film also features Lee Park in a pivotal role.")
    assert got == {"Tom Hale": ("listed", None), "Ivy Moss": ("listed", None), "Lee Park": ("listed", None)}


def test_short_lines_after_a_lead_in_are_its_items() -> None:
    got = cast("Nightfall Season 2 reveals more cast", "The newly announced cast members include:\nDana Reyes as "
               "Lord Veyl\nTom Hale as Sister Ilse\n\nThe season premieres in April.")
    assert got == {"Dana Reyes": ("new", "Lord Veyl"), "Tom Hale": ("new", "Sister Ilse")}


def test_joining_the_cast_or_show_as_a_character() -> None:
    assert cast("Glass Harbour Season 2 cast", "Tom Pell joins the cast as Declan Hart.") == {
        "Tom Pell": ("new", "Declan Hart")}
    assert cast("Glass Harbour Season 2 cast", "Tom Pell has joined the cast of Glass Harbour as Declan Hart.") == {
        "Tom Pell": ("new", "Declan Hart")}
    assert cast("Glass Harbour Season 2 cast", "Mara Jones returns to the show as Lena Fox.") == {
        "Mara Jones": ("returning", "Lena Fox")}


def test_relative_dates_follow_the_articles_own_date_over_the_fetch_day() -> None:
    doc = normalise(RawDocument(url="http://example.test/a", format="html", body=(
        "<html><head><title>Glass Harbour Season 2</title></head><body><article><h1>Glass Harbour Season 2</h1>"
        "<p>By Ann Writer | March 3, 2021</p><p>Glass Harbour Season 2 will premiere next year on Netflix.</p>"
        "</article></body></html>")))
    got = extract(doc, fallback_date=dt.date(2026, 11, 25))
    assert got.document.published == dt.date(2021, 3, 3)
    assert got.facts.release is not None and got.facts.release.earliest == dt.date(2022, 1, 1)
    undated = normalise(RawDocument(url="http://example.test/b", format="html", body=(
        "<html><head><title>Glass Harbour Season 2</title></head><body><article><h1>Glass Harbour Season 2</h1>"
        "<p>Glass Harbour Season 2 will premiere next year on Netflix.</p></article></body></html>")))
    got = extract(undated, fallback_date=dt.date(2026, 11, 25))
    assert got.facts.release is not None and got.facts.release.earliest == dt.date(2027, 1, 1)


def test_the_big_screen_is_a_theatrical_release() -> None:
    fs = facts("Night Harbor wraps filming", "Filming has wrapped on the horror sequel Night Harbor. The crew "
               "said they look forward to seeing fans on the big screen in October 2027.")
    assert fs.facts.platform is not None and fs.facts.platform.value == "theatrical"
    # 'on screens' alone is no cinema: a series on a streamer keeps its streamer
    fs = facts("Glass Harbour Season 2", "Glass Harbour Season 2 premieres on Netflix, with the cast on screens "
               "in March.")
    assert fs.facts.platform is not None and fs.facts.platform.value == "Netflix"


def test_not_until_a_date_dates_the_release() -> None:
    for body in ("Season 2 will most likely not be released until early 2027, as reported before.",
                 "Season 2 won't arrive until early 2027."):
        r = facts("Glass Harbour Season 2: everything we know", body).facts.release
        assert r is not None and (str(r.earliest), str(r.latest)) == ("2027-01-01", "2027-04-30"), body
        assert not r.announced
    assert facts("Glass Harbour Season 2", "Season 2 will not be released in 2026.").facts.release is None


def test_appearing_in_the_coming_season_and_guest_stars_are_new() -> None:
    assert cast("Glass Harbour Season 2 cast", "Dana Reyes will appear in the upcoming season.") == {
        "Dana Reyes": ("new", None)}
    assert cast("Glass Harbour Season 2 cast", "Dana Reyes and Tom Pell will also appear as guest stars.") == {
        "Dana Reyes": ("new", None), "Tom Pell": ("new", None)}


def test_as_does_and_the_same_goes_for_share_the_status() -> None:
    assert cast("Glass Harbour Season 2 cast", "Dana Reyes joins the cast, as does Looking Glass's Ivy Moss.") == {
        "Dana Reyes": ("new", None), "Ivy Moss": ("new", None)}
    assert cast("Glass Harbour Season 2 cast", "Dana Reyes will not be back, and the same goes for Tom Pell.") == {
        "Dana Reyes": ("exited", None), "Tom Pell": ("exited", None)}


def test_works_after_actors_from_are_not_people_and_a_credit_ends_before_the_next_name() -> None:
    assert cast("Glass Harbour Season 2 cast", "The season will include actors from Night Shift and Blue Harbor.") == {}
    assert cast("Glass Harbour Season 2 cast", "The cast includes Dana Reyes from Night Shift and Tom Pell.") == {
        "Dana Reyes": ("listed", None), "Tom Pell": ("listed", None)}
    assert cast("Glass Harbour Season 2 cast", "The cast includes Dana Reyes from Pride and Prejudice.") == {
        "Dana Reyes": ("listed", None)}


def test_debuts_as_characters_and_their_breakdown_lines() -> None:
    got = cast("Glass Harbour Season 2 cast", "Andy Marsh (“Night Shift,” “Blue Harbor”), Fiona Palo (“Red Mile”) "
               "and Lou Fenn Jr. (“Stargirl”) will make their debuts as Carlos, Sofia and Ryan in the new season.")
    assert got == {"Andy Marsh": ("new", "Carlos"), "Fiona Palo": ("new", "Sofia"), "Lou Fenn Jr.": ("new", "Ryan")}
    got = cast("Glass Harbour Season 2 cast", "Andy Marsh will make his series debut as Carlos. The character "
               "descriptions are as follows:\nCarlos Singh: “A smuggler who is refined and ruthless.”")
    assert got == {"Andy Marsh": ("new", "Carlos")}


def test_past_starred_lists_and_is_played_by() -> None:
    assert cast("Crimson Tide Season 2 cast", "The drama starred Nora Vance and Felix Gray.") == {
        "Nora Vance": ("listed", None), "Felix Gray": ("listed", None)}
    assert cast("Crimson Tide Season 2 cast", "Uncle Ray is played by Pete Walsh.") == {
        "Pete Walsh": ("listed", "Uncle Ray")}
