"""The release chart's layout (watcher/web/chart.py) on crowded timelines: no label overlaps another label or
a bar, none leaves the drawing. The same timelines are drawn in Chromium by tests/test_review.py, which
measures the real text."""

from __future__ import annotations

import pytest

from tests.chartcases import cases
from watcher.web.chart import LABEL_SIZE, TICK_SIZE, _overlaps, _text_box, release_chart


@pytest.mark.parametrize("name", sorted(cases()))
def test_label_boxes_stay_apart_and_inside(name):
    chart = release_chart(cases()[name])
    assert chart is not None
    for layout in ("wide", "narrow"):
        c = chart[layout]
        boxes = [_text_box(b["lx"], b["ly"], b["label"], LABEL_SIZE, b["anchor"]) for b in c["bars"] if b["label"]]
        boxes += [_text_box(t["lx"], c["bottom"] + 16, t["label"], TICK_SIZE, t["anchor"]) for t in c["xticks"]]
        for i, a in enumerate(boxes):
            assert 0 <= a[0] and a[2] <= c["width"] and 0 <= a[1] and a[3] <= c["height"], (layout, a)
            for b in boxes[i + 1:]:
                assert not _overlaps(a, b, 0), (layout, a, b)
        # The current claim is always labelled, and most others are, unless the week is crowded.
        current = next(b for b in c["bars"] if b["current"])
        assert current["label"], (layout, name)
        if name in ("three", "one", "right-edge"):
            assert c["omitted"] == 0, (layout, name)


def test_right_edge_labels_turn_left_instead_of_clipping():
    c = release_chart(cases()["right-edge"])["wide"]
    newest = max(c["bars"], key=lambda b: b["cx"])
    assert newest["anchor"] == "end" and newest["lx"] < newest["cx"]
