"""Realistic release-news pages, generated: varied shows, windows, dates, cast tables and boilerplate.

Each page is about the size of the seed article (30-40 KB of HTML). `version` moves the release window
and one cast member's status, which is what the "10% of pages changed a fact" cycle uses.
"""

from __future__ import annotations

import random

WORDS = (
    "season", "story", "cast", "fans", "netflix", "drama", "series", "episode", "premiere", "streaming", "studio",
    "writer", "director", "zombie", "school", "survivors", "sequel", "finale", "audience", "critics", "production",
    "schedule", "release", "teaser", "trailer", "character", "return", "friendship", "city", "outbreak", "mystery",
    "romance", "thriller", "budget", "location", "interview", "producer", "script", "chapter", "twist", "ending",
    "rating", "viewers", "global", "hit", "record",
)
FIRST = ["Park", "Kim", "Lee", "Cho", "Yoon", "Roh", "Choi", "Jung", "Kang", "Han", "Seo", "Lim", "Shin", "Oh"]
SECOND = ["Ji-hu", "Yoon-seo", "Chan-young", "Jae-won", "Yi-hyun", "Min-jae", "Su-hyeok", "Ha-neul", "Do-yun",
          "Seo-yeon", "Ye-jin", "Woo-jin", "Hye-won", "Tae-oh"]
ROLES = ["Nam On-jo", "Lee Cheong-san", "Choi Nam-ra", "Lee Su-hyeok", "Yoon Gwi-nam", "Na Yeon", "Han Kyung-soo",
         "Jang Ha-ri", "Park Mi-jin", "Yang Dae-su", "Jung Min-jae", "Lee Na-yeon"]
SHOWS = ["Crimson Harbor", "The Quiet Valley", "Night School", "Iron Garden", "Last Light", "Paper Crowns",
         "Silver Tide", "Hollow Street", "Glass Kingdom", "Wild Signal", "Broken Compass", "Echo Park Files"]
WINDOWS = ["early 2027", "mid 2027", "late 2027", "March 2027", "the first half of 2027", "summer 2027",
           "late 2026", "2027", "Q2 2027", "fall 2027", "June 12, 2027", "the second half of 2027"]
STATUSES = ["returning", "new", "exited", "unconfirmed"]
STATUS_TEXT = {"returning": "Returning", "new": "New cast", "exited": "Exited", "unconfirmed": "Unconfirmed"}


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random, sentences: int = 6) -> str:
    return " ".join(_sentence(rng, rng.randint(10, 22)) for _ in range(sentences))


def page(i: int, version: int = 0) -> str:
    """Page `i` at `version`: the same boilerplate and filler for every version, facts that move."""
    rng = random.Random(i)
    show = f"{rng.choice(SHOWS)} {i}"
    season = rng.randint(2, 4)
    window = WINDOWS[(rng.randrange(len(WINDOWS)) + version) % len(WINDOWS)]
    start = f"{rng.randint(1, 28)} {rng.choice(['March', 'April', 'July', 'August'])} 2025"
    end = f"{rng.randint(1, 28)} {rng.choice(['January', 'February', 'May'])} 2026"
    cast = []
    for k in range(rng.randint(6, 12)):
        status = STATUSES[(rng.randrange(4) + (version if k == 0 else 0)) % 4]
        cast.append((f"{rng.choice(FIRST)} {rng.choice(SECOND)}", rng.choice(ROLES), status))
    trending = "".join(f"<li><a href='/t/{rng.randint(1, 9999)}'>{_sentence(rng, 7)}</a></li>" for _ in range(10))
    related = "".join(f"<li><a href='/r/{rng.randint(1, 9999)}'>{rng.choice(SHOWS)} season "
                      f"{rng.randint(1, 5)}: {_sentence(rng, 6)}</a></li>" for _ in range(8))
    rows = "".join(f"<tr><td>{a}</td><td>{c}</td><td>{STATUS_TEXT[s]}</td></tr>" for a, c, s in cast)
    filler = "".join(f"<p>{_paragraph(rng)}</p>" for _ in range(14))
    comments = "".join(f"<div class='comment'><b>user{rng.randint(1, 999)}</b><p>{_paragraph(rng, 2)}</p></div>"
                       for _ in range(6))
    published = f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{show} Season {season}: release date, cast and everything we know</title>
<meta property="article:published_time" content="{published}">
<meta name="description" content="{_sentence(rng, 20)}"></head><body>
<header><nav><a href="/">Home</a> <a href="/tv">TV</a> <a href="/movies">Movies</a> <a href="/kdrama">K-Drama</a>
<a href="/anime">Anime</a> <a href="/games">Games</a> <a href="/news">News</a></nav></header>
<aside class="sidebar"><h3>Trending</h3><ul>{trending}</ul><p>Updated {rng.randint(1, 59)} minutes ago</p></aside>
<article><h1>{show} Season {season}: release date, cast and everything we know</h1>
<div class="share">Share on Facebook · Share on X · Copy link</div>
<p>{_paragraph(rng, 3)}</p>
<h2>When will {show} Season {season} be released?</h2>
<p>{show} Season {season} is expected to premiere in {window} on Netflix, according to people familiar with
the production. {_paragraph(rng, 2)}</p>
<h2>Production</h2>
<p>Filming began on {start} and wrapped on {end}; the season is now in post-production. {_paragraph(rng, 2)}</p>
<h2>Who is in the cast of {show} Season {season}?</h2>
<table><thead><tr><th>Actor</th><th>Character</th><th>Status</th></tr></thead><tbody>{rows}</tbody></table>
<h2>What will the story be about?</h2>{filler}
<div class="related"><h3>You may also like</h3><ul>{related}</ul></div>
</article>
<section class="comments"><h3>Comments</h3>{comments}</section>
<footer><p>© 2026 Example Media. All rights reserved.</p><p>{_sentence(rng, 30)}</p></footer>
</body></html>"""
