"""Parsing timm's published results tables (real ones from ../shared/fixtures/timm)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from securitynet.annotate.timm_results import (
    params_from_millions,
    parse_param_count,
    parse_results_csv,
    read_results_dir,
    table_dataset,
)
from securitynet.errors import MalformedUpstreamError, NotFoundError

HEADER = "model,img_size,top1,top1_err,top5,top5_err,param_count,crop_pct,interpolation\n"


@pytest.mark.parametrize(
    ("text", "millions"),
    [("25.56", 25.56), ("1,014.45", 1014.45), ('"1,282.60"'.strip('"'), 1282.6), ("", None), ("n/a", None)],
)
def test_param_count_parses_thousands_separators(text: str, millions: float | None) -> None:
    assert parse_param_count(text) == millions


def test_params_from_millions_is_an_integer_count() -> None:
    assert params_from_millions(1014.45) == 1_014_450_000
    assert params_from_millions(25.56) == 25_560_000
    assert params_from_millions(None) is None


@pytest.mark.parametrize(
    ("filename", "target"),
    [
        ("results-imagenet.csv", ("ImageNet-1k", "validation")),
        ("results-imagenet-real.csv", ("ImageNet-ReaL", "validation")),
        ("results-imagenetv2-matched-frequency.csv", ("ImageNet-V2", "test")),
        ("results-inv2-matched-frequency.csv", ("ImageNet-V2", "test")),
        ("results-sketch.csv", ("ImageNet-Sketch", "test")),
        ("results-imagenet-a.csv", ("ImageNet-A", "test")),
        ("results-imagenet-r.csv", ("ImageNet-R", "test")),
        ("results-imagenet-a-clean.csv", ("ImageNet-A-clean", "validation")),
        ("results-all.csv", None),
        ("benchmark-infer-amp-nchw-pt240-cu124-rtx4090.csv", None),
    ],
)
def test_each_table_names_its_data_set(filename: str, target: tuple[str, str] | None) -> None:
    assert table_dataset(filename) == target


def test_real_tables_keep_every_model_and_image_size_row(shared_dir: Path) -> None:
    folder = shared_dir / "fixtures/timm"
    results = read_results_dir(folder)
    with (folder / "results-imagenet.csv").open(newline="") as fh:
        expected = [(r["model"], int(r["img_size"])) for r in csv.DictReader(fh)]
    imagenet = next(t for t in results.tables if t.filename == "results-imagenet.csv")
    assert imagenet.dataset == "ImageNet-1k"
    assert [(r.model, r.img_size) for r in imagenet.rows] == expected
    assert {t.dataset for t in results.tables} == {"ImageNet-1k", "ImageNet-ReaL"}
    rows = {(r.model, r.img_size): r for r in imagenet.rows}
    assert rows[("eva_giant_patch14_560.m30m_ft_in22k_in1k", 560)].param_count_m == 1014.45
    assert rows[("resnet50.tv_in1k", 224)].top1 == 76.156
    assert results.pretrain["ig_resnext101_32x8d"] == "ig1b-wsl"


def test_missing_column_is_malformed() -> None:
    with pytest.raises(MalformedUpstreamError, match="top1"):
        parse_results_csv("model,img_size,top5\nresnet50.a1_in1k,224,94.5\n", filename="results-imagenet.csv")


def test_a_bad_row_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    text = HEADER + "a.b,224,80.1,19.9,95.0,5.0,25.56,0.95,bicubic\nc.d,224,eighty,,,,1.0,0.9,bicubic\n"
    with caplog.at_level(logging.WARNING):
        table = parse_results_csv(text, filename="results-imagenet.csv")
    assert table is not None
    assert [r.model for r in table.rows] == ["a.b"]
    assert "skipped 1 row" in caplog.text


def test_missing_or_empty_folder_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        read_results_dir(tmp_path / "absent")
    with pytest.raises(NotFoundError):
        read_results_dir(tmp_path)
