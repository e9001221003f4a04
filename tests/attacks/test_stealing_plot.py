"""The agreement-against-budget figure: written in the format its suffix names, with one
marker per budget where the figures put it (read back from the SVG)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from securitynet.attacks.stealing.plot import BudgetPoint, parse_public, plot_budget_curves
from securitynet.errors import AttackError

SVG = "{http://www.w3.org/2000/svg}"
OURS = [
    BudgetPoint(500, agreement=91.85, accuracy=91.49, agreement_range=(91.0, 92.5), accuracy_range=(90.8, 92.0)),
    BudgetPoint(1000, agreement=95.07, accuracy=94.86, agreement_range=(94.6, 95.4), accuracy_range=(94.1, 95.0)),
    BudgetPoint(2000, agreement=97.02, accuracy=96.81),
]


def markers(svg: Path, gid: str) -> list[tuple[float, float]]:
    """(x, y) of the markers drawn by the artist with SVG id ``gid``."""
    group = next(g for g in ET.parse(svg).iter(f"{SVG}g") if g.get("id") == gid)
    return [(float(u.get("x", "nan")), float(u.get("y", "nan"))) for u in group.iter(f"{SVG}use")]


def test_the_svg_has_each_budgets_point_and_the_public_ones(tmp_path: Path) -> None:
    public = parse_public("500=89.62/89.16, 1000=93.13, 2000=96.15/95.60")
    out = plot_budget_curves({"soft": OURS}, tmp_path / "fig.svg", public=public)
    ours = markers(out, "agreement-soft")
    assert len(ours) == 3
    xs, ys = zip(*ours, strict=True)
    assert xs[0] < xs[1] < xs[2] and ys[0] > ys[1] > ys[2]  # SVG y grows downwards
    theirs = markers(out, "agreement-public")
    assert len(theirs) == 3 and all(t[1] > o[1] for t, o in zip(theirs, ours, strict=True))  # ours above
    assert len(markers(out, "accuracy-public")) == 2  # the 1,000 figure states no accuracy
    ids = {g.get("id") for g in ET.parse(out).iter(f"{SVG}g")}
    assert "agreement-soft-range" in ids  # the seed band


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_png_and_pdf_by_suffix(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = plot_budget_curves({"soft": OURS}, tmp_path / "sub" / f"fig{suffix}")
    assert out.read_bytes().startswith(magic)


def test_bad_figures_and_formats_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AttackError, match="BUDGET=AGREEMENT"):
        parse_public("500:89.6")
    with pytest.raises(AttackError, match=r"\[0, 100\]"):
        parse_public("500=189.6")
    with pytest.raises(AttackError, match=r"use \.png"):
        plot_budget_curves({"soft": OURS}, tmp_path / "fig.gif")
    with pytest.raises(AttackError, match="no budgets"):
        plot_budget_curves({}, tmp_path / "fig.png")
