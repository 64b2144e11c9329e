"""Synthetic release timelines for the chart tests: crowded, overlapping, at the edges of the drawing."""

from __future__ import annotations

import datetime as dt
import random

from watcher.topic import Claim, FactLine, TopicView

WINDOWS = [  # (display, earliest, latest) as the release extractor writes them
    ("late 2026 (Sep–Dec 2026)", "2026-09-01", "2026-12-31"),
    ("early 2027 (Jan–Apr 2027)", "2027-01-01", "2027-04-30"),
    ("mid 2027 (May–Aug 2027)", "2027-05-01", "2027-08-31"),
    ("2027", "2027-01-01", "2027-12-31"),
    ("14 March 2027", "2027-03-14", "2027-03-14"),
    ("Q2 2027 (Apr–Jun 2027)", "2027-04-01", "2027-06-30"),
    ("December 2026", "2026-12-01", "2026-12-31"),
    ("summer 2027 (Jun–Aug 2027)", "2027-06-01", "2027-08-31"),
]


def view(claims: list[tuple[str, int, int]], start: dt.date = dt.date(2026, 1, 1)) -> TopicView:
    """`claims`: (source, days after `start` it was published, index into WINDOWS)."""
    line = FactLine("release", "")
    for i, (source, day, w) in enumerate(claims):
        display, earliest, latest = WINDOWS[w]
        published = start + dt.timedelta(days=day)
        line.claims.append(Claim(watch=f"w-{source}", source=source, value={"earliest": earliest, "latest": latest},
                                 display=display, evidence=f"Show Season 2 arrives in {display}.", confidence=0.8,
                                 published=published, fetched_at=dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC),
                                 snapshot_id=i + 1, url=f"https://{source}/show"))
    line.current = line.claims[-1] if line.claims else None
    return TopicView(key="show#2", label="Show S2", lines=[line])


def cases() -> dict[str, TopicView]:
    rng = random.Random(14)
    out = {
        "three": view([("a.example", 60, 0), ("b.example", 120, 2), ("a.example", 151, 1)]),
        # Every claim the same week: the labels cannot all sit beside their bars.
        "same-week": view([(f"s{i}.example", 100 + i % 3, i % len(WINDOWS)) for i in range(8)]),
        # Newest claims at the right edge with the longest labels.
        "right-edge": view([("a.example", 0, 3), ("b.example", 300, 0), ("c.example", 301, 7), ("a.example", 302, 5)]),
        "one": view([("only.example", 10, 1)]),
        "long-span": view([("a.example", 0, 0), ("b.example", 900, 7), ("c.example", 1500, 3)]),
    }
    for n in range(6):
        k = rng.randint(2, 14)
        out[f"random-{n}"] = view([(f"s{rng.randint(0, 4)}.example", rng.randint(0, 400), rng.randrange(len(WINDOWS)))
                                   for _ in range(k)])
    return out
