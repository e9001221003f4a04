"""The released SecurityNet database (``TrustAIRLab/SecurityNet``, ``Database/README.MD``).

Three markdown tables: **Benchmark Models** (437 rows), **Security Research Models** (92)
and **New Models** (102 research projects, links only). What becomes of them:

- a benchmark or security row is an entry ``securitynet:<Data Name>/<Model Name>``; a
  (data, model) pair seen again in file order gets ``~2``, ``~3``, ... (they are distinct
  models: other seeds, other checkpoints of one run);
- its annotations are entry fields (data set, category, classes, training size, purpose,
  venue, venue type, year, country, paper, weights link) or facts (``num_authors``);
- train and test accuracy are claims (split ``train`` / ``test``, percent);
- every figure column is an evaluation figure with source ``securitynet-release``:
  model stealing accuracy (percent) and agreement (fraction) for the default setting, a
  WideResNet surrogate (``Wrn *``) and ImageNet queries (``ImgNet *``), and the
  membership-inference AUCs of the correctness and modified-entropy attacks;
- the release writes a missing value as ``0`` (a train accuracy of 0 beside a test accuracy
  of 0.73; an AUC of 0) or ``nan``: such a value is absent, never a figure. The release's
  "Overfit Gap" is not stored: it is train minus test, and exists only where both do;
- rows whose weights are osmr/imgclsmob's release zoo are not new entries: their claims,
  facts and figures attach to the ``imgclsmob:`` entries (:data:`IMGCLSMOB_RENAMES` holds
  the release's names that pytorchcv spells differently);
- a "new models" project is an entry ``securitynet:projects/<owner>/<repo>`` (its GitHub
  repository; else a slug of its title) with its paper and link; its weights are "not
  resolved" (fact ``weights_status``) until a source for them is known.

Nothing here touches the database: :func:`iter_release` yields records, the catalogue
ingests them.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from securitynet.annotate.datasets import dataset_name
from securitynet.errors import MalformedUpstreamError
from securitynet.records import (
    AccuracyClaim,
    Attachment,
    ClaimKind,
    DatasetLink,
    EntryRecord,
    EvaluationRecord,
    MetricResult,
    Purpose,
    Stage,
)
from securitynet.scrapers._fetch import read_text
from securitynet.settings import Settings

log = logging.getLogger(__name__)

NAME = "securitynet-release"
ENTRY_SOURCE = "securitynet"
REPOSITORY = "TrustAIRLab/SecurityNet"
PATH = "Database/README.MD"
PROJECTS = "projects"
NOT_RESOLVED = "not resolved"

BENCHMARK, SECURITY, NEW = "Benchmark Models", "Security Research Models", "New Models"

#: Release model name -> pytorchcv (imgclsmob) model name, where they differ.
IMGCLSMOB_RENAMES: dict[str, str] = {
    "vgg11_bn": "bn_vgg11",
    "vgg13_bn": "bn_vgg13",
    "vgg16_bn": "bn_vgg16",
    "vgg19_bn": "bn_vgg19",
    "vgg11b_bn": "bn_vgg11b",
    "vgg13b_bn": "bn_vgg13b",
    "vgg16b_bn": "bn_vgg16b",
    "vgg19b_bn": "bn_vgg19b",
}
_IMGCLSMOB_LINK = re.compile(r"github\.com/osmr/imgclsmob", re.I)


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure column of the release: which attack, setting and metric it reports."""

    column: str
    attack: str
    variant: str
    metric: str
    percent: bool  # a fraction in the release, stored in percent (accuracy)


FIGURES: tuple[Figure, ...] = (
    Figure("Model Stealing Accuracy", "model-stealing", "default", "accuracy", True),
    Figure("Model Stealing Agreement", "model-stealing", "default", "agreement", False),
    Figure("Wrn Accuracy", "model-stealing", "wrn-surrogate", "accuracy", True),
    Figure("Wrn Agree", "model-stealing", "wrn-surrogate", "agreement", False),
    Figure("ImgNet Accuracy", "model-stealing", "imagenet-queries", "accuracy", True),
    Figure("ImgNet Agree", "model-stealing", "imagenet-queries", "agreement", False),
    Figure("Correct Auc", "mia", "correctness", "auc", False),
    Figure("M_entropy AUC", "mia", "modified-entropy", "auc", False),
)
_MODEL_COLUMNS = (
    "Model Name",
    "Model Type",
    "Data Name",
    "Data Category",
    "Num Class",
    "Training Size",
    "Train Accuracy",
    "Test Accuracy",
    "Conference",
    "Conference Type",
    "Year",
    "Country",
    "Num Authors",
    "Purpose",
    "Paper Link",
    "Weights",
)
_PROJECT_COLUMNS = ("Title", "Conference", "Conference Type", "Year", "Paper Link", "Weights")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_GITHUB_REPO = re.compile(r"^https?://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)", re.I)


class SecurityNetReleaseImporter:
    name = NAME
    entry_source = ENTRY_SOURCE

    def default_location(self, settings: Settings) -> str:
        return f"{settings.securitynet_release_url.rstrip('/')}/{PATH}"

    def complete(self, location: str) -> bool:
        return True  # the release is one document

    def iter_items(self, location: str, settings: Settings) -> Iterator[EntryRecord | Attachment]:
        text = read_text(location, settings, what=NAME)
        return iter_release(text, location=location)


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[int, dict[str, str]], ...]  # (line number, header -> cell)


def parse_tables(text: str) -> dict[str, Table]:
    """Every ``## Title`` followed by a pipe table, as header -> cell dicts."""
    tables: dict[str, Table] = {}
    title: str | None = None
    header: tuple[str, ...] | None = None
    rows: list[tuple[int, dict[str, str]]] = []

    def close() -> None:
        if title is not None and header is not None:
            tables[title] = Table(title, header, tuple(rows))

    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("## "):
            close()
            title, header, rows = line[3:].strip(), None, []
            continue
        if title is None or not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = tuple(cells)
        elif not all(set(c) <= set(":-") for c in cells):
            if len(cells) != len(header):
                raise MalformedUpstreamError(
                    f"{title}, line {number}: {len(cells)} cells under {len(header)} columns",
                    line=number,
                )
            rows.append((number, dict(zip(header, cells, strict=True))))
    close()
    return tables


def _number(cell: str) -> float | None:
    """A figure cell: the release writes a missing value as 0 or 'nan'."""
    if cell == "":
        return None
    try:
        value = float(cell)
    except ValueError as exc:
        raise MalformedUpstreamError(f"not a number: {cell!r}", value=cell) from exc
    if math.isnan(value) or value == 0:
        return None
    return value


def _count(cell: str) -> int | None:
    value = _number(cell)
    return int(value) if value is not None and value == int(value) and value > 0 else None


def _link(cell: str) -> str | None:
    found = _LINK.search(cell)
    return found.group(1) if found else None


def _text(cell: str) -> str | None:
    return cell or None


def _percent(value: float) -> float:
    return round(value * 100, 8)


def _require(table: Table, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in table.header]
    if missing:
        raise MalformedUpstreamError(f"{table.title}: no column(s) {', '.join(missing)}", missing=missing)


def imgclsmob_id(row: dict[str, str]) -> str | None:
    """The imgclsmob entry a release row is, or None when its weights are not imgclsmob's."""
    if not _IMGCLSMOB_LINK.search(row.get("Weights", "")):
        return None
    name = row["Model Name"]
    return f"imgclsmob:{IMGCLSMOB_RENAMES.get(name, name)}"


def _purpose(cell: str) -> Purpose | None:
    try:
        return Purpose(cell.strip().lower()) if cell.strip() else None
    except ValueError as exc:
        raise MalformedUpstreamError(f"unknown purpose {cell!r}", value=cell) from exc


def _annotations(row: dict[str, str]) -> dict[str, object]:
    return {
        "num_classes": _count(row["Num Class"]),
        "train_size": _count(row["Training Size"]),
        "data_category": _text(row["Data Category"]),
        "purpose": _purpose(row["Purpose"]),
        "venue": _text(row["Conference"]),
        "venue_type": _text(row["Conference Type"]),
        "year": _count(row["Year"]),
        "country": _text(row["Country"]),
        "paper": _link(row["Paper Link"]),
    }


def _claims(row: dict[str, str], dataset: str, evidence: str) -> list[AccuracyClaim]:
    claims = []
    for column, split in (("Train Accuracy", "train"), ("Test Accuracy", "test")):
        value = _number(row[column])
        if value is None:
            continue
        if not 0 < value <= 1:
            raise MalformedUpstreamError(f"{evidence}: {column} {value} is not a fraction", value=value)
        claims.append(
            AccuracyClaim(
                dataset=dataset,
                split=split,
                value=_percent(value),
                kind=ClaimKind.CLAIMED,
                source=NAME,
                evidence=f"{evidence}, column {column!r}",
            )
        )
    return claims


def _evaluations(row: dict[str, str], dataset: str, evidence: str) -> list[EvaluationRecord]:
    grouped: dict[tuple[str, str], list[tuple[Figure, float]]] = {}
    for figure in FIGURES:
        if figure.column not in row:
            continue
        value = _number(row[figure.column])
        if value is None:
            continue
        if not 0 < value <= 1:
            raise MalformedUpstreamError(
                f"{evidence}: {figure.column} {value} is not a fraction", value=value
            )
        grouped.setdefault((figure.attack, figure.variant), []).append((figure, value))
    return [
        EvaluationRecord(
            attack=attack,
            variant=variant,
            source=NAME,
            dataset=dataset,
            config={"columns": [f.column for f, _ in figures]},
            evidence=f"{evidence}, column(s) {', '.join(repr(f.column) for f, _ in figures)}",
            metrics=[
                MetricResult(metric=f.metric, value=_percent(v) if f.percent else v)
                for f, v in figures
            ],
        )
        for (attack, variant), figures in grouped.items()
    ]


def _model_rows(tables: dict[str, Table]) -> Iterator[tuple[Table, int, dict[str, str]]]:
    for title in (BENCHMARK, SECURITY):
        table = tables.get(title)
        if table is None:
            raise MalformedUpstreamError(f"no table {title!r} in the release", table=title)
        _require(table, _MODEL_COLUMNS)
        for line, row in table.rows:
            yield table, line, row


def _project_name(title: str, link: str | None) -> str:
    found = _GITHUB_REPO.match(link or "")
    if found:
        owner, repo = found.group(1), found.group(2)
        return f"{PROJECTS}/{owner}/{repo.removesuffix('.git')}"
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:80].rstrip("-")
    return f"{PROJECTS}/{slug or 'untitled'}"


def iter_release(text: str, *, location: str) -> Iterator[EntryRecord | Attachment]:
    """The release's entries and attachments, in file order."""
    tables = parse_tables(text)
    seen: Counter[str] = Counter()
    for table, line, row in _model_rows(tables):
        data = row["Data Name"]
        dataset = dataset_name(data)
        evidence = f"{location}, {table.title}, line {line}"
        claims = _claims(row, dataset, evidence)
        evaluations = _evaluations(row, dataset, evidence)
        notes = _annotations(row)
        num_authors = _count(row["Num Authors"])
        target = imgclsmob_id(row)
        if target is not None:
            facts = {k: v for k, v in notes.items() if v is not None and k != "num_classes"}
            if num_authors is not None:
                facts["num_authors"] = num_authors
            facts["release_name"] = row["Model Name"]
            yield Attachment(
                entry_id=target,
                source=NAME,
                evidence=evidence,
                claims=claims,
                facts=facts,
                evaluations=evaluations,
            )
            continue
        key = f"{data}/{row['Model Name']}"
        seen[key] += 1
        name = key if seen[key] == 1 else f"{key}~{seen[key]}"
        weights = _link(row["Weights"])
        record = EntryRecord.model_validate(
            {
                "id": f"{ENTRY_SOURCE}:{name}",
                "annotator": NAME,
                "family": _text(row["Model Type"]),
                "upstream_url": weights,
                "datasets": [
                    DatasetLink(
                        dataset=dataset, raw_name=data, stage=Stage.TRAIN, source=NAME, evidence=evidence
                    )
                ],
                "claims": claims,
                "evidence": {k: evidence for k, v in notes.items() if v is not None},
                "extra_facts": {
                    "num_authors": num_authors,
                    "weights_link": weights,
                    "weights_status": NOT_RESOLVED,
                },
                "raw": {"table": table.title, "line": line, **row},
                **notes,
            }
        )
        yield record
        if evaluations:
            yield Attachment(entry_id=record.id, source=NAME, evidence=evidence, evaluations=evaluations)

    projects = tables.get(NEW)
    if projects is None:
        log.warning("%s: no %r table", location, NEW)
        return
    _require(projects, _PROJECT_COLUMNS)
    for line, row in projects.rows:
        weights = _link(row["Weights"])
        key = _project_name(row["Title"], weights)
        seen[key] += 1
        name = key if seen[key] == 1 else f"{key}~{seen[key]}"
        evidence = f"{location}, {NEW}, line {line}"
        yield EntryRecord(
            id=f"{ENTRY_SOURCE}:{name}",
            annotator=NAME,
            paper=_link(row["Paper Link"]),
            venue=_text(row["Conference"]),
            venue_type=_text(row["Conference Type"]),
            year=_count(row["Year"]),
            upstream_url=weights,
            evidence={"paper": evidence, "venue": evidence, "year": evidence},
            extra_facts={
                "title": row["Title"],
                "weights_link": weights,
                "weights_status": NOT_RESOLVED,
                "note": _text(row.get("Note", "")),
            },
            raw={"table": NEW, "line": line, **row},
        )
