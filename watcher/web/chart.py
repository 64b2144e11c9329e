"""The release-window chart of a topic: when each claim was made (x) against the window it claimed (y).

A claim is a vertical bar from its earliest to its latest date, so a vague "2027" is tall and an exact
date is a dot; a window that slips shows as bars climbing to the right. Output is geometry for the SVG
template (the template escapes every label), not SVG text.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from watcher.topic import TopicView

WIDTH, HEIGHT = 760, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 40
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _days(d: dt.date) -> int:
    return d.toordinal()


def _scale(lo: int, hi: int, a: float, b: float) -> Any:
    span = max(1, hi - lo)
    return lambda v: a + (v - lo) * (b - a) / span


def release_chart(view: TopicView) -> dict[str, Any] | None:
    line = view.line("release")
    if line is None or not line.claims:
        return None
    claims = []
    for c in line.claims:
        try:
            earliest = dt.date.fromisoformat(c.value["earliest"])
            latest = dt.date.fromisoformat(c.value["latest"])
        except (KeyError, TypeError, ValueError):
            continue
        claims.append((c, c.published or c.fetched_at.date(), earliest, latest))
    if not claims:
        return None
    x_lo, x_hi = min(_days(w) for _, w, _, _ in claims), max(_days(w) for _, w, _, _ in claims)
    y_lo, y_hi = min(_days(e) for _, _, e, _ in claims), max(_days(la) for _, _, _, la in claims)
    x_lo, x_hi = x_lo - 30, x_hi + 30
    y_lo, y_hi = y_lo - 45, y_hi + 45
    x = _scale(x_lo, x_hi, LEFT, WIDTH - RIGHT)
    y = _scale(y_lo, y_hi, HEIGHT - BOTTOM, TOP)  # later dates higher up
    sources = sorted({c.source for c, *_ in claims})
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sources)}
    bars = []
    for c, when, earliest, latest in claims:
        cx = x(_days(when))
        top, bottom = y(_days(latest)), y(_days(earliest))
        bars.append({"x": round(cx - 5, 1), "cx": round(cx, 1), "y": round(top, 1),
                     "h": round(max(3.0, bottom - top), 1), "colour": colour[c.source],
                     "label": c.display, "current": c is line.current,
                     "title": f"{c.source}, {when}: {c.display}"})
    return {"width": WIDTH, "height": HEIGHT, "left": LEFT, "right": WIDTH - RIGHT, "top": TOP,
            "bottom": HEIGHT - BOTTOM, "bars": bars,
            "yticks": _year_ticks(y_lo, y_hi, y), "xticks": _month_ticks(x_lo, x_hi, x),
            "legend": [{"source": s, "colour": colour[s]} for s in sources]}


def _year_ticks(lo: int, hi: int, y: Any) -> list[dict[str, Any]]:
    first, last = dt.date.fromordinal(lo), dt.date.fromordinal(hi)
    years = range(first.year + 1, last.year + 1)
    step = max(1, len(years) // 8 + 1)
    ticks = [{"y": round(y(_days(dt.date(yr, 1, 1))), 1), "label": str(yr)} for yr in years[::step]]
    if len(years) < 3:  # a short range: mark the quarters too
        quarters = [dt.date(yr, m, 1) for yr in range(first.year, last.year + 1) for m in (4, 7, 10)]
        ticks += [{"y": round(y(_days(q)), 1), "label": q.strftime("%b %Y"), "minor": True}
                  for q in quarters if lo < _days(q) < hi]
    return ticks


def _month_ticks(lo: int, hi: int, x: Any) -> list[dict[str, Any]]:
    first, last = dt.date.fromordinal(lo), dt.date.fromordinal(hi)
    months = []
    d = dt.date(first.year, first.month, 1)
    while d <= last:
        if _days(d) >= lo:
            months.append(d)
        d = dt.date(d.year + d.month // 12, d.month % 12 + 1, 1)
    step = max(1, len(months) // 6 + (len(months) % 6 > 0))
    return [{"x": round(x(_days(m)), 1), "label": m.strftime("%b %Y")} for m in months[::step]]
