"""Curated annotation files (``annotations/*.yaml``): reviewed facts that win over scrapers.

A file names its annotator and a list of items. Each item selects entries by ``id`` or by
``match`` (source, architecture glob, family) and states scalar fields to ``set``, data
sets of the training chain, and accuracy claims, each with ``evidence``::

    annotator: securitynet maintainers
    items:
      - match: {source: torchvision, family: resnet}
        set: {paper: "arXiv:1512.03385"}
        evidence: He et al., Deep Residual Learning for Image Recognition (CVPR 2016)

An item may also say how to load the entry: ``architecture_spec`` (a net declared as data,
:mod:`securitynet.annotate.archspec`) and ``load`` (preprocessing, labels, a key holding
the tensors). With ``sha256``, these apply only while the entry's weights file is that
exact file: facts read from one version of a repository never describe another.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from securitynet.annotate.archspec import ArchSpec
from securitynet.errors import MalformedUpstreamError
from securitynet.ids import normalise_source, parse_id
from securitynet.records import (
    ANNOTATED_FIELDS,
    AccuracyClaim,
    ClaimKind,
    DatasetLink,
    Metric,
    Stage,
)

#: Entry fields a curated file may set.
SETTABLE = ANNOTATED_FIELDS


class Match(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str | None = None
    architecture: str | None = Field(default=None, description="fnmatch pattern")
    family: str | None = None
    name: str | None = Field(default=None, description="fnmatch pattern on the name part of the id")

    def matches(self, row: dict[str, Any]) -> bool:
        if self.source and row["source"] != normalise_source(self.source):
            return False
        if self.family and (row.get("family") or "").lower() != self.family.lower():
            return False
        if self.architecture and not fnmatch.fnmatchcase(
            row.get("architecture") or "", self.architecture
        ):
            return False
        return not (self.name and not fnmatch.fnmatchcase(row["name"], self.name))


class CuratedDataset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str
    stage: Stage = Stage.TRAIN


class CuratedClaim(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str
    value: float = Field(ge=0, le=100)
    metric: Metric = Metric.TOP1
    split: str = "validation"
    img_size: int | None = None
    kind: ClaimKind = ClaimKind.CLAIMED
    url: str | None = None


class CuratedLoad(BaseModel):
    """``LoadSpec`` fields a curator states: how the net was fed and what it names."""

    model_config = ConfigDict(extra="forbid")
    input_size: tuple[int, int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str | None = None
    crop_pct: float | None = Field(default=None, gt=0, le=2.0)
    crop_mode: str | None = None
    num_classes: int | None = Field(default=None, gt=0)
    label_set: str | None = None
    labels: list[str] | None = None
    state_dict_key: str | None = None
    strip_prefix: str | None = None


class CuratedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    match: Match | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    datasets: list[CuratedDataset] = Field(default_factory=list)
    claims: list[CuratedClaim] = Field(default_factory=list)
    architecture_spec: ArchSpec | None = Field(
        default=None, description="The net declared as data (built by the state-dict builder)."
    )
    load: CuratedLoad | None = Field(default=None, description="Preprocessing and loading quirks.")
    commit: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{7,40}$", description="Upstream commit the facts were read at."
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="The weights file these facts describe; they apply only to an entry whose weights are this file.",
    )
    evidence: str

    @model_validator(mode="after")
    def _one_selector(self) -> CuratedItem:
        if (self.id is None) == (self.match is None):
            raise ValueError("give exactly one of 'id' or 'match'")
        if self.id is not None:
            self.id = str(parse_id(self.id))
        bad = sorted(set(self.set) - set(SETTABLE))
        if bad:
            raise ValueError(f"cannot set {bad}; settable fields: {list(SETTABLE)}")
        return self

    def load_fields(self) -> dict[str, Any]:
        """``LoadSpec`` fields this item states (architecture spec, then ``load``)."""
        fields: dict[str, Any] = {}
        if self.architecture_spec is not None:
            fields.update(self.architecture_spec.load_fields())
        if self.load is not None:
            fields.update(self.load.model_dump(mode="json", exclude_none=True))
        return fields


class CuratedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotator: str
    items: list[CuratedItem]


class CuratedAnnotations(BaseModel):
    """A parsed file and the provenance name its facts carry (``curated:<file name>``)."""

    path: str
    source: str
    content: CuratedFile

    def dataset_links(self, item: CuratedItem) -> list[DatasetLink]:
        from securitynet.annotate.datasets import dataset_name

        return [
            DatasetLink(
                dataset=dataset_name(d.dataset),
                raw_name=d.dataset,
                stage=d.stage,
                source=self.source,
                evidence=item.evidence,
            )
            for d in item.datasets
        ]

    def accuracy_claims(self, item: CuratedItem) -> list[AccuracyClaim]:
        from securitynet.annotate.datasets import dataset_name

        return [
            AccuracyClaim(
                dataset=dataset_name(c.dataset),
                value=c.value,
                metric=c.metric,
                split=c.split,
                img_size=c.img_size,
                kind=c.kind,
                url=c.url,
                source=self.source,
                evidence=item.evidence,
            )
            for c in item.claims
        ]


def load_annotation_file(path: Path) -> CuratedAnnotations:
    try:
        # the C loader when libyaml is there: ten times faster on the 300-item files
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        content = CuratedFile.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise MalformedUpstreamError(
            f"{path.name}: not a valid annotation file: {exc}", path=str(path)
        ) from exc
    return CuratedAnnotations(path=str(path), source=f"curated:{path.name}", content=content)


def load_annotations(folder: Path | None = None) -> list[CuratedAnnotations]:
    """Every ``*.yaml`` under ``folder`` (default: the shipped ``annotations/``), sorted by name."""
    if folder is None:
        from securitynet.resources import resource_dir

        folder = resource_dir("annotations")
    return [load_annotation_file(p) for p in sorted(folder.glob("*.yaml"))]


def curated_json_schema() -> dict[str, Any]:
    """JSON Schema of an annotation file (written to ``schema/annotations.schema.json``)."""
    return CuratedFile.model_json_schema()


def declared_sha256s(files: list[CuratedAnnotations] | None = None) -> set[str]:
    """sha256 of every weights file a curated item declares an architecture for."""
    files = files if files is not None else load_annotations()
    return {
        item.sha256
        for ann in files
        for item in ann.content.items
        if item.sha256 is not None and item.architecture_spec is not None
    }
