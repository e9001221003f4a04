"""timm's published evaluation tables (``results/results-*.csv``) and pretraining metadata.

Each ``results-<set>.csv`` has one row per ``(model, img_size)``: ``model, img_size, top1,
top1_err, top5, top5_err, param_count, crop_pct, interpolation`` (plus rank columns in the
robustness tables). ``param_count`` is in millions and may be quoted with a thousands
separator (``"1,014.45"``). ``model_metadata-in1k.csv`` maps (legacy, untagged) model
names to a pretraining label such as ``in21k`` or ``ig1b-swsl``.

This module only parses; reading a folder is :func:`read_results_dir`, fetching them is the
timm scraper's business.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from securitynet.annotate.datasets import canonical_dataset
from securitynet.errors import MalformedUpstreamError, NotFoundError

log = logging.getLogger(__name__)

#: The tables timm publishes, in the order their claims are recorded. A folder may hold
#: any subset; :func:`read_results_dir` reads every ``results-*.csv`` it finds.
RESULTS_FILES: tuple[str, ...] = (
    "results-imagenet.csv",
    "results-imagenet-real.csv",
    "results-imagenetv2-matched-frequency.csv",
    "results-sketch.csv",
    "results-imagenet-a.csv",
    "results-imagenet-r.csv",
    "results-imagenet-a-clean.csv",
    "results-imagenet-r-clean.csv",
)
METADATA_FILE = "model_metadata-in1k.csv"

_REQUIRED = ("model", "img_size", "top1", "top5")
_TABLE_NAME = re.compile(r"^results-(?P<name>[a-z0-9-]+)\.csv$")


@dataclass(frozen=True, slots=True)
class ResultRow:
    model: str
    img_size: int
    top1: float
    top5: float | None
    crop_pct: float | None
    interpolation: str | None
    param_count_m: float | None  # millions, as published


@dataclass(frozen=True, slots=True)
class ResultsTable:
    filename: str
    dataset: str
    split: str
    rows: tuple[ResultRow, ...]


@dataclass
class TimmResults:
    """Every table read from one place (a folder or a URL)."""

    origin: str
    tables: list[ResultsTable] = field(default_factory=list)
    #: model name as written in ``model_metadata-in1k.csv`` -> its ``pretrain`` label
    pretrain: dict[str, str] = field(default_factory=dict)

    def by_model(self) -> dict[str, list[tuple[ResultsTable, ResultRow]]]:
        index: dict[str, list[tuple[ResultsTable, ResultRow]]] = {}
        for table in self.tables:
            for row in table.rows:
                index.setdefault(row.model, []).append((table, row))
        return index

    @property
    def has_imagenet(self) -> bool:
        return any(t.filename == RESULTS_FILES[0] for t in self.tables)


def parse_param_count(text: str | None) -> float | None:
    """A published parameter count in millions: ``"25.56"`` -> 25.56, ``"1,014.45"`` -> 1014.45.

    Empty and non-numeric values give None.
    """
    if text is None:
        return None
    cleaned = text.strip().replace(",", "").replace("_", "")
    if not cleaned:
        return None
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def params_from_millions(millions: float | None) -> int | None:
    """Millions of parameters as an integer count (precision: what was published)."""
    return None if millions is None else round(millions * 1_000_000)


def table_dataset(filename: str) -> tuple[str, str] | None:
    """The (data set, split) a ``results-<set>.csv`` table reports on, or None when it is
    not a per-data-set table (``results-all.csv``).

    The ``-clean`` tables evaluate the ImageNet-1k validation images of the 200 classes of
    ImageNet-A / -R: they are recorded as ``ImageNet-A-clean`` / ``ImageNet-R-clean`` so they
    never pass for an ImageNet-1k accuracy.
    """
    match = _TABLE_NAME.match(Path(filename).name.lower())
    if match is None:
        return None
    name = match.group("name")
    clean = name.endswith("-clean")
    if clean:
        name = name[: -len("-clean")]
    candidates = [name, f"imagenet-{name}", re.sub(r"^in(?=v?\d|-)", "imagenet", name)]
    dataset = next((d for d in map(canonical_dataset, candidates) if d is not None), None)
    if dataset is None:
        return None
    if clean:
        return f"{dataset}-clean", "validation"
    return dataset, "validation" if dataset in ("ImageNet-1k", "ImageNet-ReaL") else "test"


def _float(value: str | None, *, column: str, line: int, filename: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value.replace(",", ""))
    except ValueError as exc:
        raise MalformedUpstreamError(
            f"{filename} line {line}: {column}={value!r} is not a number", filename=filename, line=line
        ) from exc


def parse_results_csv(text: str, *, filename: str) -> ResultsTable | None:
    """Parse one results table; None when ``filename`` is not a per-data-set table.

    Raises :class:`MalformedUpstreamError` when a required column is missing. A row whose
    numbers do not parse is skipped with a warning (the rest of the table still counts).
    """
    target = table_dataset(filename)
    if target is None:
        return None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _REQUIRED if c not in (reader.fieldnames or ())]
    if missing:
        raise MalformedUpstreamError(
            f"{filename} lacks column(s) {', '.join(missing)}", filename=filename, missing=missing
        )
    rows: list[ResultRow] = []
    skipped = 0
    for line, record in enumerate(reader, start=2):
        try:
            top1 = _float(record.get("top1"), column="top1", line=line, filename=filename)
            top5 = _float(record.get("top5"), column="top5", line=line, filename=filename)
            crop = _float(record.get("crop_pct"), column="crop_pct", line=line, filename=filename)
            size = _float(record.get("img_size"), column="img_size", line=line, filename=filename)
        except MalformedUpstreamError as exc:
            skipped += 1
            log.debug("%s", exc)
            continue
        model = (record.get("model") or "").strip()
        if not model or top1 is None or size is None or not 0 <= top1 <= 100:
            skipped += 1
            continue
        rows.append(
            ResultRow(
                model=model,
                img_size=int(size),
                top1=top1,
                top5=top5 if top5 is not None and 0 <= top5 <= 100 else None,
                crop_pct=crop if crop is not None and 0 < crop <= 2 else None,
                interpolation=(record.get("interpolation") or "").strip() or None,
                param_count_m=parse_param_count(record.get("param_count")),
            )
        )
    if skipped:
        log.warning("%s: skipped %d row(s) that do not parse", filename, skipped)
    dataset, split = target
    return ResultsTable(filename=Path(filename).name, dataset=dataset, split=split, rows=tuple(rows))


def parse_model_metadata(text: str) -> dict[str, str]:
    """``model_metadata-in1k.csv`` as ``{model: pretrain}``."""
    reader = csv.DictReader(io.StringIO(text))
    if not {"model", "pretrain"} <= set(reader.fieldnames or ()):
        raise MalformedUpstreamError(f"{METADATA_FILE} lacks the model/pretrain columns", filename=METADATA_FILE)
    return {
        row["model"].strip(): row["pretrain"].strip()
        for row in reader
        if (row.get("model") or "").strip() and (row.get("pretrain") or "").strip()
    }


def results_from_texts(texts: Mapping[str, str], *, origin: str) -> TimmResults:
    """Build :class:`TimmResults` from ``{file name: CSV text}``."""
    results = TimmResults(origin=origin)
    for filename in _ordered(texts):
        if filename == METADATA_FILE:
            results.pretrain = parse_model_metadata(texts[filename])
            continue
        table = parse_results_csv(texts[filename], filename=filename)
        if table is None:
            log.debug("%s: not a per-data-set results table, ignored", filename)
            continue
        results.tables.append(table)
    return results


def _ordered(names: Iterable[str]) -> list[str]:
    rank = {name: i for i, name in enumerate(RESULTS_FILES)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def read_results_dir(folder: Path) -> TimmResults:
    """Every ``results-*.csv`` (and ``model_metadata-in1k.csv``) in ``folder``.

    Raises :class:`NotFoundError` when the folder does not exist or holds no results table.
    """
    if not folder.is_dir():
        raise NotFoundError(f"timm results folder {folder} does not exist", path=str(folder))
    paths = sorted(folder.glob("results-*.csv"))
    if (folder / METADATA_FILE).is_file():
        paths.append(folder / METADATA_FILE)
    texts = {p.name: p.read_text(encoding="utf-8") for p in paths}
    results = results_from_texts(texts, origin=str(folder))
    if not results.tables:
        raise NotFoundError(f"no timm results-*.csv table in {folder}", path=str(folder))
    return results
