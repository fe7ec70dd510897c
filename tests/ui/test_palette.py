"""The palette of ui/src/style.css meets WCAG AA: 4.5:1 for text on each background it is used
on, 3:1 for the edges of controls, the focus ring and the charts' series colours (non-text
contrast, WCAG 1.4.11). The browser test checks rendered text; this checks every pair the
stylesheet puts together, including those no page happens to show at the moment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).parents[2] / "ui" / "src" / "style.css").read_text(encoding="utf-8")
ROOT = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", CSS.split("}", 1)[0]))
SERIES = dict(re.findall(r"\.(series-[a-z0-9]+) \{ color: (#[0-9a-fA-F]{6}); \}", CSS))

TEXT = [  # (foreground, background): where the stylesheet sets text of one on the other
    ("fg", "bg"), ("fg", "panel"), ("muted", "bg"), ("muted", "panel"), ("accent", "bg"),
    ("accent", "panel"), ("accent-fg", "accent"), ("danger", "bg"), ("danger", "panel"),
]  # fmt: skip
NON_TEXT = [("border", "bg"), ("border", "panel"), ("focus", "bg"), ("focus", "panel")]


def luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, other: str) -> float:
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_palette_is_read_from_the_stylesheet() -> None:
    assert {name for pair in TEXT + NON_TEXT for name in pair} <= ROOT.keys()
    assert len(SERIES) >= 6


@pytest.mark.parametrize(("fg", "bg"), TEXT)
def test_text_colours_have_aa_contrast(fg: str, bg: str) -> None:
    assert contrast(ROOT[fg], ROOT[bg]) >= 4.5, (fg, ROOT[fg], bg, ROOT[bg])


@pytest.mark.parametrize(("fg", "bg"), NON_TEXT)
def test_control_edges_and_the_focus_ring_stand_out(fg: str, bg: str) -> None:
    assert contrast(ROOT[fg], ROOT[bg]) >= 3, (fg, ROOT[fg], bg, ROOT[bg])


@pytest.mark.parametrize("series", sorted(SERIES))
def test_chart_series_colours_stand_out_on_the_page(series: str) -> None:
    assert contrast(SERIES[series], ROOT["bg"]) >= 3, (series, SERIES[series])
