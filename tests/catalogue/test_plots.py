"""Figures a paper can use: data sets never pooled, groups in the order asked, cut groups
named (the best kept), no title unless asked, vector formats."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.plots import plot_frame
from securitynet.errors import InvalidQueryError


def _frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["architecture", "dataset", "top1"]).assign(
        family=lambda f: f["architecture"].str.rstrip("0123456789")
    )


def test_grouped_by_family_each_data_set_is_its_own_panel(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    drawn = plot_frame(catalogue.to_dataframe(), tmp_path / "f.svg", by="family")
    assert len(drawn.panels) > 1 and "ImageNet-1k" in drawn.panels and "CIFAR-10" in drawn.panels
    svg = (tmp_path / "f.svg").read_text(encoding="utf-8")
    assert "trained on CIFAR-10" in svg and "trained on ImageNet-1k" in svg
    # a family with CIFAR and ImageNet entries is drawn once per data set, never pooled
    frame = _frame(
        [
            ("pyramidnet1", "CIFAR-10", 97.0),
            ("pyramidnet2", "SVHN", 98.0),
            ("resnet1", "ImageNet-1k", 80.0),
        ]
    )
    drawn = plot_frame(frame, tmp_path / "p.png", by="family")
    assert drawn.shown == {
        "CIFAR-10": ["pyramidnet"],
        "SVHN": ["pyramidnet"],
        "ImageNet-1k": ["resnet"],
    }


def test_groups_follow_the_order_asked(tmp_path: Path) -> None:
    frame = _frame(
        [
            ("a", "CIFAR-10", 90.0),
            ("b", "CIFAR-10", 95.0),
            ("b", "CIFAR-10", 60.0),
            ("b", "CIFAR-10", 61.0),
            ("c", "CIFAR-10", 80.0),
        ]
    )
    by_median = plot_frame(frame, tmp_path / "m.png", by="architecture", order="median")
    assert by_median.shown == {"CIFAR-10": ["a", "c", "b"]}
    by_count = plot_frame(frame, tmp_path / "c.png", by="architecture", order="count")
    assert by_count.shown["CIFAR-10"][0] == "b"
    by_max = plot_frame(frame, tmp_path / "x.png", by="architecture", order="max")
    assert by_max.shown["CIFAR-10"] == ["b", "a", "c"]
    with pytest.raises(InvalidQueryError, match="cannot order groups by 'colour'"):
        plot_frame(frame, tmp_path / "x.png", by="architecture", order="colour")


def test_cut_groups_are_named_and_the_best_kept(tmp_path: Path) -> None:
    # 70 architectures with one entry each: the best 25 are drawn, the 45 others named
    frame = _frame([(f"net{i}", "CIFAR-10", 50.0 + i * 0.5) for i in range(70)])
    drawn = plot_frame(frame, tmp_path / "cut.png", by="architecture", max_groups=25)
    (shown,) = drawn.shown.values()
    assert shown == [f"net{i}" for i in range(69, 44, -1)]
    (cut,) = drawn.cut.values()
    assert len(cut) == 45 and "net0" in cut
    (line,) = drawn.notes()
    assert line.startswith("45 of 70 groups left out: net44, net43")


def test_no_title_unless_asked_and_vector_formats(catalogue: Catalogue, tmp_path: Path) -> None:
    frame = catalogue.to_dataframe()
    plot_frame(frame, tmp_path / "plain.svg", by="dataset")
    plot_frame(frame, tmp_path / "titled.svg", by="dataset", title="Top-1 of public checkpoints")
    assert "Top-1 of public checkpoints" not in (tmp_path / "plain.svg").read_text(encoding="utf-8")
    assert "Top-1 of public checkpoints" in (tmp_path / "titled.svg").read_text(encoding="utf-8")
    plot_frame(frame, tmp_path / "f.pdf", by="dataset")
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
    # the same data gives the same file
    plot_frame(frame, tmp_path / "again.svg", by="dataset")
    assert (tmp_path / "again.svg").read_bytes() == (tmp_path / "plain.svg").read_bytes()
