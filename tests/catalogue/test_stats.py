"""Statistics per group, and the plot."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.stats import (
    STAT_COLUMNS,
    accuracy_stats,
    catalogue_overview,
    plot_accuracy,
)
from securitynet.errors import InvalidQueryError


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_stats_by_dataset_are_right(catalogue: Catalogue) -> None:
    frame = accuracy_stats(catalogue, by="dataset")
    assert list(frame.columns) == ["dataset", *STAT_COLUMNS]
    rows = frame.set_index(frame["dataset"].fillna("-"))
    assert rows.loc["CIFAR-10", list(STAT_COLUMNS)].tolist() == pytest.approx(
        [4, 4, 94.0, 94.75, 95.5, 96.25, 97.0, 95.5]
    )
    # the removed timm entry (10 %) is left out: 76.13, 81.22 (best of two claims), 84.5
    assert rows.loc[
        "ImageNet-1k", ["entries", "top1_min", "top1_median", "top1_max"]
    ].tolist() == pytest.approx([3, 76.13, 81.22, 84.5])
    assert rows.loc["ImageNet-1k", "top1_mean"] == pytest.approx((76.13 + 81.22 + 84.5) / 3)
    assert rows.loc["LAION-2B", ["entries", "with_top1"]].tolist() == [1, 0]
    assert frame["entries"].tolist() == sorted(
        frame["entries"], reverse=True
    )  # largest groups first


def test_stats_take_filters_and_removed_entries(catalogue: Catalogue) -> None:
    everything = accuracy_stats(catalogue, by="dataset", include_removed=True).set_index("dataset")
    assert everything.loc["ImageNet-1k", ["entries", "top1_min"]].tolist() == [4, 10.0]
    timm = accuracy_stats(catalogue, by="family", source="timm").set_index("family")
    assert timm["entries"].to_dict() == {"resnet": 1, "vit": 2}


@pytest.mark.parametrize(
    ("by", "key", "entries"),
    [
        ("source", "imgclsmob", 5),
        ("licence", "MIT", 5),  # upstream wrote "mit" four times and "MIT" once
        ("family", "resnet", 5),
        ("architecture", "resnet20", 2),
    ],
)
def test_stats_by_other_groups(catalogue: Catalogue, by: str, key: str, entries: int) -> None:
    assert accuracy_stats(catalogue, by=by).set_index(by).loc[key, "entries"] == entries


def test_unknown_grouping_is_refused(catalogue: Catalogue) -> None:
    with pytest.raises(InvalidQueryError, match="cannot group by 'colour'") as info:
        accuracy_stats(catalogue, by="colour")
    assert "dataset" in (info.value.hint or "")


def test_overview_counts_per_source(catalogue: Catalogue) -> None:
    overview = catalogue_overview(catalogue).set_index("source")
    assert overview["entries"].to_dict() == {"imgclsmob": 5, "timm": 3, "hf": 1, "torchvision": 1}


def test_plot_writes_a_readable_png(catalogue: Catalogue, tmp_path: Path) -> None:
    out = plot_accuracy(catalogue, tmp_path / "acc.png", by="dataset")
    width, height = _png_size(out)
    assert width > 800 and height > 300


def test_plot_follows_the_extension(catalogue: Catalogue, tmp_path: Path) -> None:
    out = plot_accuracy(catalogue, tmp_path / "acc.svg", by="family")
    assert out.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    with pytest.raises(InvalidQueryError, match=r"cannot draw acc\.nope") as info:
        plot_accuracy(catalogue, tmp_path / "acc.nope")
    assert ".png" in (info.value.hint or "")


def test_plot_of_nothing_is_an_error(catalogue: Catalogue, tmp_path: Path) -> None:
    with pytest.raises(InvalidQueryError, match="no entry here has a top-1"):
        plot_accuracy(catalogue, tmp_path / "none.png", source="hf")
    assert not (tmp_path / "none.png").exists()


def test_licences_are_one_spdx_group_with_the_raw_spelling_kept(catalogue: Catalogue) -> None:
    groups = accuracy_stats(catalogue, by="licence")["licence"].tolist()
    assert "mit" not in groups and "apache-2.0" not in groups
    assert {"MIT", "Apache-2.0", "BSD-3-Clause"} <= set(groups)
    # the spelling upstream used stays as the source's fact row
    entry = catalogue.get("timm:resnet18.gone_in1k")
    assert entry.licence == "Apache-2.0"
    assert [f.value for f in entry.facts if f.key == "licence"] == ["apache-2.0"]
    # what a user types is read the same way
    assert len(catalogue.search(licence="mit")) == len(catalogue.search(licence="MIT")) == 5
