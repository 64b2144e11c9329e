"""The release-window chart of a topic: when each claim was made (x) against the window it claimed (y).

A claim is a vertical bar from its earliest to its latest date, so a vague "2027" is tall and an exact
date is a dot; a window that slips shows as bars climbing to the right. Output is geometry for the SVG
template (the template escapes every label), not SVG text.

The page has no JavaScript, so text cannot be measured where it is drawn: widths are estimated here from
per-character advances a little wider than DejaVu Sans / system-ui, and every label is placed where its
estimated box stays inside the drawing and clear of the other labels and bars. A label that fits nowhere is
shortened ("early 2027 (Jan–Apr 2027)" -> "early 2027"), then left out (the bar's tooltip and the table below
the chart still give it). Two layouts are made, one per page width (the CSS shows one): scaling one drawing
down to a phone would shrink its text below reading size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from watcher.topic import TopicView

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
LABEL_SIZE, TICK_SIZE, MINOR_SIZE, CAPTION_SIZE = 11, 11, 9, 10
BAR_WIDTH = 10


@dataclass(frozen=True)
class Layout:
    name: str
    width: int
    height: int
    left: int
    right: int  # margin
    top: int
    bottom: int  # margin


WIDE = Layout("wide", 760, 320, 70, 12, 20, 40)
NARROW = Layout("narrow", 360, 300, 58, 8, 16, 40)


def text_width(text: str, size: float) -> float:
    """A generous estimate of the advance of `text` at `size` px (wider than DejaVu Sans, the widest of the
    usual sans-serif fonts, so real text is never longer than its box)."""
    em = 0.0
    for ch in text:
        if ch == " ":
            em += 0.34
        elif ch.isdigit():
            em += 0.66
        elif ch.isupper():
            em += 0.78
        elif ch.islower():
            em += 0.64 if ch not in "ijlft" else 0.36
        elif ch in "–—":
            em += 0.5 if ch == "–" else 1.0
        elif ch in ".,:;'!|()[]":
            em += 0.42
        else:
            em += 0.9  # anything else (arrows, CJK, symbols): a full em and a bit
    return em * size + 2


Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def _text_box(x: float, y: float, text: str, size: float, anchor: str = "start") -> Box:
    w = text_width(text, size)
    x0 = x if anchor == "start" else x - w if anchor == "end" else x - w / 2
    return (x0, y - 0.95 * size, x0 + w, y + 0.3 * size)


def _overlaps(a: Box, b: Box, gap: float = 1.0) -> bool:
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def _inside(a: Box, area: Box) -> bool:
    return a[0] >= area[0] and a[1] >= area[1] and a[2] <= area[2] and a[3] <= area[3]


def _days(d: dt.date) -> int:
    return d.toordinal()


def _scale(lo: int, hi: int, a: float, b: float) -> Any:
    span = max(1, hi - lo)
    return lambda v: a + (v - lo) * (b - a) / span


def _short(display: str) -> str:
    return display.split(" (", 1)[0].strip() or display


def release_chart(view: TopicView) -> dict[str, Any] | None:
    """Both drawings (`wide`, `narrow`) and the legend, or None when the topic has no dated release claim."""
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
    sources = sorted({c.source for c, *_ in claims})
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sources)}
    drawings = {layout.name: _draw(layout, claims, line.current, colour) for layout in (WIDE, NARROW)}
    return {**drawings, "legend": [{"source": s, "colour": colour[s]} for s in sources]}


def _draw(layout: Layout, claims: list[Any], current: Any, colour: dict[str, str]) -> dict[str, Any]:
    left, right = layout.left, layout.width - layout.right
    top, bottom = layout.top, layout.height - layout.bottom
    x_lo, x_hi = min(_days(w) for _, w, _, _ in claims), max(_days(w) for _, w, _, _ in claims)
    y_lo, y_hi = min(_days(e) for _, _, e, _ in claims), max(_days(la) for _, _, _, la in claims)
    # Room on both sides so the first and last bars are not on the frame.
    pad = max(30, (x_hi - x_lo) // 12)
    x_lo, x_hi = x_lo - pad, x_hi + pad
    y_lo, y_hi = y_lo - 45, y_hi + 45
    x = _scale(x_lo, x_hi, left + BAR_WIDTH, right - BAR_WIDTH)
    y = _scale(y_lo, y_hi, bottom, top)  # later dates higher up
    bars = []
    for c, when, earliest, latest in claims:
        cx = x(_days(when))
        y0, y1 = y(_days(latest)), y(_days(earliest))
        h = max(3.0, y1 - y0)
        bars.append({"x": round(cx - BAR_WIDTH / 2, 1), "cx": round(cx, 1), "y": round(y0, 1), "h": round(h, 1),
                     "colour": colour[c.source], "current": c is current, "label": None,
                     "full": c.display, "title": f"{c.source}, {when}: {c.display}"})
    yticks = _year_ticks(y_lo, y_hi, y, top, bottom)
    xticks = _month_ticks(x_lo, x_hi, x, left, right, layout.width)
    caption = "claim date →   ↑ claimed window"
    omitted = _place_labels(bars, (left + 2, top + 1, right - 2, bottom - 1))
    return {"width": layout.width, "height": layout.height, "left": left, "right": right, "top": top,
            "bottom": bottom, "bars": bars, "yticks": yticks, "xticks": xticks, "omitted": omitted,
            "caption": caption, "caption_y": layout.height - 5}


def _place_labels(bars: list[dict[str, Any]], area: Box) -> int:
    """Give each bar a label position clear of the other labels and of every bar, inside `area`; the
    current claim first, then the newest claims. Returns how many labels were left out."""
    obstacles: list[Box] = [(b["x"], b["y"], b["x"] + BAR_WIDTH, b["y"] + b["h"]) for b in bars]
    placed: list[Box] = []
    order = sorted(range(len(bars)), key=lambda i: (not bars[i]["current"], -bars[i]["cx"]))
    omitted = 0
    for i in order:
        bar = bars[i]
        own = obstacles[i]
        texts = [bar["full"]] + ([_short(bar["full"])] if _short(bar["full"]) != bar["full"] else [])
        spot = None
        # Clear of the other bars; the current claim's label, if it must, across a bar (bars are translucent,
        # and it is placed first, so next to its own bar). Never across a label.
        tries = [(True, texts[0]), (True, texts[-1])] + ([(False, texts[-1])] if bar["current"] else [])
        for avoid_bars, text in tries:
            for base in _baselines(bar):
                for anchor, tx in (("start", bar["cx"] + BAR_WIDTH / 2 + 4), ("end", bar["cx"] - BAR_WIDTH / 2 - 4)):
                    box = _text_box(tx, base, text, LABEL_SIZE, anchor)
                    if not _inside(box, area) or any(_overlaps(box, o) for o in placed):
                        continue
                    if avoid_bars and any(_overlaps(box, o, 0.5) for o in obstacles if o is not own):
                        continue
                    spot = (text, tx, base, anchor, box)
                    break
                if spot:
                    break
            if spot:
                break
        if spot is None:
            omitted += 1
            continue
        text, tx, base, anchor, box = spot
        bar.update(label=text, lx=round(tx, 1), ly=round(base, 1), anchor=anchor)
        placed.append(box)
    return omitted


def _baselines(bar: dict[str, Any]) -> list[float]:
    """Where a bar's label may sit, nearest first: beside the bar, at its top and then lower along it, then
    just above or below it. Never further, so that a label always reads as its bar's."""
    top, bottom = bar["y"], bar["y"] + bar["h"]
    along = [top + 10 + 15 * k for k in range(int(max(0.0, bottom - top - 10) // 15) + 1)]
    return [*along, top - 3, bottom + 11]


def _year_ticks(lo: int, hi: int, y: Any, top: float, bottom: float) -> list[dict[str, Any]]:
    first, last = dt.date.fromordinal(lo), dt.date.fromordinal(hi)
    years = range(first.year + 1, last.year + 1)
    step = max(1, len(years) // 8 + 1)
    ticks = [{"y": round(y(_days(dt.date(yr, 1, 1))), 1), "label": str(yr), "minor": False} for yr in years[::step]]
    if len(years) < 3:  # a short range: mark the quarters too
        quarters = [dt.date(yr, m, 1) for yr in range(first.year, last.year + 1) for m in (4, 7, 10)]
        ticks += [{"y": round(y(_days(q)), 1), "label": q.strftime("%b %Y"), "minor": True}
                  for q in quarters if lo < _days(q) < hi]
    # Labels sit at y + 4: keep those inside the frame and a line apart (years win over quarters).
    kept: list[dict[str, Any]] = []
    for t in sorted(ticks, key=lambda t: t["minor"]):
        size = MINOR_SIZE if t["minor"] else TICK_SIZE
        if not top + size <= t["y"] + 4 <= bottom - 3:  # clear of the month labels below the frame
            continue
        if any(abs(t["y"] - k["y"]) < TICK_SIZE + 4 for k in kept):
            continue
        kept.append(t)
    return sorted(kept, key=lambda t: -t["y"])


def _month_ticks(lo: int, hi: int, x: Any, left: float, right: float, width: float) -> list[dict[str, Any]]:
    first, last = dt.date.fromordinal(lo), dt.date.fromordinal(hi)
    months = []
    d = dt.date(first.year, first.month, 1)
    while d <= last:
        if _days(d) >= lo:
            months.append(d)
        d = dt.date(d.year + d.month // 12, d.month % 12 + 1, 1)
    if not months:
        return []
    # As many labels as fit side by side with a gap, from a step of 1, 2, 3, 4, 6 or 12 months.
    label_w = text_width("May 2027", TICK_SIZE) + 8
    per_month = (right - left) / max(1, len(months))
    step = next((s for s in (1, 2, 3, 4, 6, 12, 24, 36) if per_month * s >= label_w), 48)
    ticks = []
    for m in months[::step]:
        tx = x(_days(m))
        label = m.strftime("%b %Y")
        w = text_width(label, TICK_SIZE)
        if not left <= tx <= right:
            continue
        # Centred under its tick, but never past the drawing's right edge or into the year labels' margin.
        anchor, lx = "middle", tx
        if tx - w / 2 < left - 4:  # would run under the year labels: start at the tick instead
            anchor, lx = "start", tx - 2
        elif tx + w / 2 > width - 1:
            anchor, lx = "end", min(width - 1.0, tx + 2)
        box = _text_box(lx, 0, label, TICK_SIZE, anchor)
        if ticks and _overlaps(box, ticks[-1]["box"], 4):  # moved off the edge onto its neighbour: drop it
            continue
        ticks.append({"x": round(tx, 1), "lx": round(lx, 1), "anchor": anchor, "label": label, "box": box})
    return ticks
