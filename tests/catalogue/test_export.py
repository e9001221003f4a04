"""Exports round-trip in every format; --full carries everything; failures leave no file."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from securitynet.catalogue import export as export_module
from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.export import (
    EXPORT_COLUMNS,
    export_catalogue,
    export_format,
    export_rows,
)
from securitynet.errors import InvalidQueryError
from securitynet.records import CatalogueEntry
from tests.catalogue import sample

VIT = "timm:vit_base_patch16_224.augreg_in21k_ft_in1k"


def _as_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()} for row in rows
    ]


def test_flat_rows_carry_entry_fields_chain_claims_and_weights(catalogue: Catalogue) -> None:
    rows = {r["id"]: r for r in export_rows(catalogue)}
    assert len(rows) == len(sample.LIVE)
    vit = rows[VIT]
    assert vit["training_chain"] == "ImageNet-21k > ImageNet-1k"
    assert (vit["dataset"], vit["top1"], vit["params"], vit["claims"]) == (
        "ImageNet-1k",
        84.5,
        86_567_656,
        1,
    )
    assert vit["weights_sha256"] == sample.sha_of(vit["weights_url"]) and vit["weights_url"].endswith("/0.pth")
    assert rows["timm:resnet50.a1_in1k"]["claims"] == 2
    assert rows["hf:someone/mystery-net"]["weights_url"] is None
    assert all(r["first_seen"].tzinfo is not None for r in rows.values())
    assert list(vit) == list(EXPORT_COLUMNS)


def test_json_round_trips(catalogue: Catalogue, tmp_path: Path) -> None:
    result = export_catalogue(catalogue, tmp_path / "c.json")
    assert (result.format, result.rows) == ("json", len(sample.LIVE))
    assert json.loads((tmp_path / "c.json").read_text(encoding="utf-8")) == _as_json(
        export_rows(catalogue)
    )


def test_jsonl_round_trips(catalogue: Catalogue, tmp_path: Path) -> None:
    export_catalogue(catalogue, tmp_path / "c.jsonl")
    lines = (tmp_path / "c.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == _as_json(export_rows(catalogue))


def test_csv_round_trips(catalogue: Catalogue, tmp_path: Path) -> None:
    export_catalogue(catalogue, tmp_path / "c.csv")
    with (tmp_path / "c.csv").open(encoding="utf-8", newline="") as fh:
        read = list(csv.DictReader(fh))
    expected = _as_json(export_rows(catalogue))
    assert [r["id"] for r in read] == [r["id"] for r in expected]
    for got, want in zip(read, expected, strict=True):
        for column in EXPORT_COLUMNS:
            value = want[column]
            assert got[column] == ("" if value is None else str(value)), (want["id"], column)
        if want["top1"] is not None:
            assert float(got["top1"]) == want["top1"]


def test_parquet_round_trips_with_types(catalogue: Catalogue, tmp_path: Path) -> None:
    export_catalogue(catalogue, tmp_path / "c.parquet")
    table = pq.read_table(tmp_path / "c.parquet")
    assert str(table.schema.field("params").type) == "int64"
    assert str(table.schema.field("first_seen").type) == "timestamp[us, tz=UTC]"
    assert table.to_pylist() == export_rows(catalogue)


def test_parquet_reads_back_as_nullable_integers(catalogue: Catalogue, tmp_path: Path) -> None:
    import pandas as pd

    export_catalogue(catalogue, tmp_path / "c.parquet")
    frame = pd.read_parquet(tmp_path / "c.parquet")
    assert frame["params"].isna().any()  # hf:someone/mystery-net has no count
    assert {str(frame[c].dtype) for c in ("params", "num_classes", "input_size", "claims")} == {"Int64"}
    assert frame.set_index("id").loc["torchvision:resnet50.IMAGENET1K_V1", "params"] == 25_557_032


def test_batches_stream_every_row_once(catalogue: Catalogue, tmp_path: Path) -> None:
    from securitynet.catalogue.export import iter_export_batches

    batches = list(iter_export_batches(catalogue, batch_size=3, include_removed=True))
    assert [len(b) for b in batches][:-1] == [3] * (len(batches) - 1)
    ids = [r["id"] for b in batches for r in b]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == len(sample.RECORDS)
    assert [r for b in batches for r in b] == export_rows(catalogue, include_removed=True)


def test_format_option_wins_over_the_extension(catalogue: Catalogue, tmp_path: Path) -> None:
    export_catalogue(catalogue, tmp_path / "data.txt", format="csv")
    assert (tmp_path / "data.txt").read_text(encoding="utf-8").startswith("id,source,name,")


def test_filters_choose_the_rows(catalogue: Catalogue, tmp_path: Path) -> None:
    assert export_catalogue(catalogue, tmp_path / "c.json", source="imgclsmob").rows == 5
    assert export_catalogue(catalogue, tmp_path / "all.json", include_removed=True).rows == len(
        sample.RECORDS
    )


def test_full_export_has_every_entry_whole(catalogue: Catalogue, tmp_path: Path) -> None:
    result = export_catalogue(catalogue, tmp_path / "full.jsonl", full=True)
    entries = [
        CatalogueEntry.model_validate_json(line)
        for line in (tmp_path / "full.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert result.rows == len(entries) == len(sample.LIVE)
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    vit = next(e for e in entries if e.id == VIT)
    assert vit.model_dump(mode="json") == catalogue.get(VIT).model_dump(mode="json")
    assert [(d.dataset, d.stage.value, d.source) for d in vit.datasets] == [
        ("ImageNet-21k", "pretrain", "timm"),
        ("ImageNet-1k", "train", "timm"),
    ]
    assert {f.key for f in vit.facts} >= {"params", "architecture"}
    array = json.loads(
        export_catalogue(catalogue, tmp_path / "full.json", full=True).path.read_text(
            encoding="utf-8"
        )
    )
    assert [e["id"] for e in array] == [e.id for e in entries]


@pytest.mark.parametrize(
    ("name", "fmt", "full", "message"),
    [
        ("c.txt", None, False, "cannot tell the format"),
        ("c.csv", None, True, "full export cannot be written as csv"),
        ("c.parquet", None, True, "full export cannot be written as parquet"),
        ("c.csv", "xml", False, "cannot be written as xml"),
    ],
)
def test_bad_formats_are_refused(name: str, fmt: str | None, full: bool, message: str) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        export_format(name, fmt, full=full)


def test_a_failed_export_leaves_no_file(
    catalogue: Catalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "c.csv"
    target.write_text("the previous export\n", encoding="utf-8")

    def broken(rows: Any, fh: Any) -> None:
        fh.write("id,source\npartial")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(export_module, "_write_csv", broken)
    with pytest.raises(RuntimeError):
        export_catalogue(catalogue, target)
    assert target.read_text(encoding="utf-8") == "the previous export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
