"""Pydantic records that cross layers: scrapers yield them, the catalogue stores them,
the loader reads :class:`LoadSpec` back, the CLI prints them.

Every fact in a record carries provenance: a claim or a training-chain step names its
``source`` and ``evidence``; the entry's scalar fields are attributed to the record's
``source`` with the per-field evidence in :attr:`EntryRecord.evidence`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from securitynet.ids import parse_id


class StrEnum(str, Enum):
    """``enum.StrEnum`` for Python 3.10."""

    def __str__(self) -> str:
        return str(self.value)


class ClaimKind(StrEnum):
    CLAIMED = "claimed"  # stated by the upstream source (card, registry, paper)
    MEASURED = "measured"  # measured by us (or by a named third party on a named split)


class Stage(StrEnum):
    """Role of a data set in an entry's training chain."""

    PRETRAIN = "pretrain"  # pre-training (possibly several, in order)
    TRAIN = "train"  # the final training / fine-tuning data set
    DISTILL = "distill"  # knowledge-distillation teacher data


class Metric(StrEnum):
    TOP1 = "top1"
    TOP5 = "top5"


class Purpose(StrEnum):
    """Why a model was published (the SecurityNet release's split of its tables)."""

    BENCHMARK = "benchmark"  # a model zoo or a paper's main model
    SECURITY = "security"  # a model from security research (an attack, a defence)
    OTHER = "other"  # neither (the release's label for e.g. its MedMNIST baselines)


#: The tag of a net a library registers for its own tests (timm's ``test_*``): such entries
#: are left out of listings and statistics unless asked for.
TEST_NET_TAG = "test-net"


class Top1Figures(NamedTuple):
    """An entry's top-1 on its data set: at the loader's input size, and the best at any size."""

    top1: float | None  # best figure at the loader's input size (or stated without a size)
    top1_size: int | None  # the size that figure was measured at (None: not stated)
    best: float | None  # best figure at any size
    best_size: int | None


def top1_figures(claims: Any, input_size: int | None) -> Top1Figures:
    """:class:`Top1Figures` of ``claims``, pairs ``(value, img_size)`` of top-1 claims on one
    data set. A figure counts as the loader's when it was measured at ``input_size`` or
    states no size; when no figure does, ``top1`` is None and only the best is known.

    >>> top1_figures([(80.38, 224), (81.24, 288)], 224)
    Top1Figures(top1=80.38, top1_size=224, best=81.24, best_size=288)
    """
    pairs = [(float(v), s) for v, s in claims]
    if not pairs:
        return Top1Figures(None, None, None, None)
    best = max(pairs, key=lambda p: (p[0], -(p[1] or 0)))
    at_size = [p for p in pairs if p[1] is None or input_size is None or p[1] == input_size]
    mine = max(at_size, key=lambda p: (p[0], p[1] is not None)) if at_size else (None, None)
    return Top1Figures(mine[0], mine[1], best[0], best[1])


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, use_enum_values=False)


class AccuracyClaim(_Record):
    """One accuracy figure for one entry on one data set, in percent."""

    dataset: str = Field(description="Canonical data-set name where known, else the raw name.")
    split: str = "validation"
    metric: Metric = Metric.TOP1
    value: float = Field(ge=0.0, le=100.0, description="Percent.")
    img_size: int | None = Field(default=None, gt=0)
    crop_pct: float | None = Field(default=None, gt=0, le=2.0)
    kind: ClaimKind = ClaimKind.CLAIMED
    source: str = Field(description="Who said it: a source name or 'curated:<file>'.")
    evidence: str | None = Field(default=None, description="Which field, row or sentence.")
    url: str | None = None


class DatasetLink(_Record):
    """One step of an entry's training chain (pre-training -> fine-tuning)."""

    dataset: str = Field(description="Canonical name where known, else the raw name.")
    raw_name: str | None = Field(default=None, description="The name as upstream wrote it.")
    stage: Stage = Stage.TRAIN
    source: str
    evidence: str | None = None


class FileRef(_Record):
    """A weight (or companion) file an entry is loaded from."""

    url: str
    filename: str | None = None
    revision: str | None = None
    size: int | None = Field(default=None, ge=0)
    sha256: str | None = Field(default=None, description="Full lowercase hex digest, when known.")
    checksum: str | None = Field(default=None, description="Upstream checksum (may be a prefix).")
    checksum_algo: str | None = Field(
        default=None, description="'sha256', 'sha256-prefix', 'sha1', 'md5'."
    )
    format: str | None = Field(
        default=None, description="'safetensors', 'pytorch', 'zip', ... as declared."
    )
    role: str = "weights"

    @field_validator("sha256")
    @classmethod
    def _hex64(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.lower()
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError("sha256 must be 64 hex digits")
        return value


class LoadSpec(_Record):
    """How the loader builds a net for an entry. Per-model quirks live here, as data."""

    builder: str = Field(
        description="'timm', 'torchvision', 'pytorchcv', 'transformers', 'state-dict', ..."
    )
    architecture: str | None = Field(
        default=None, description="Constructor name in the builder's namespace."
    )
    kwargs: dict[str, Any] = Field(default_factory=dict)
    state_dict_key: str | None = Field(
        default=None, description="Key holding the tensors, if wrapped."
    )
    strip_prefix: str | None = Field(default=None, description="Prefix to strip from tensor names.")
    input_size: tuple[int, int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str | None = None
    crop_pct: float | None = None
    crop_mode: str | None = None
    num_classes: int | None = None
    label_set: str | None = Field(default=None, description="Named label set, e.g. 'imagenet-1k'.")
    labels: list[str] | None = None
    output: str | None = Field(default=None, description="'logits', 'log_softmax' or 'softmax'.")


#: Scalar facts about an entry that a source states and curators may correct; each is an
#: ``entry`` column and, per source, a ``fact`` row with provenance.
ANNOTATED_FIELDS: tuple[str, ...] = (
    "task",
    "architecture",
    "family",
    "num_classes",
    "input_size",
    "params",
    "gflops",
    "licence",
    "paper",
    "purpose",
    "venue",
    "venue_type",
    "year",
    "data_category",
    "train_size",
    "country",
)
#: Scalar fields that pin where an entry comes from (stored, never curated).
UPSTREAM_FIELDS: tuple[str, ...] = ("library", "upstream_url", "revision", "arch_resolution")


class EntryRecord(_Record):
    """Everything one source knows about one entry."""

    id: str
    source: str = Field(default="", description="Filled from the id.")
    name: str = Field(default="", description="Filled from the id.")
    annotator: str | None = Field(
        default=None, description="Provenance name of the scalar fields; default: the source."
    )
    task: str = "image-classification"
    architecture: str | None = None
    family: str | None = None
    num_classes: int | None = Field(default=None, gt=0)
    input_size: int | None = Field(default=None, gt=0)
    params: int | None = Field(default=None, ge=0)
    gflops: float | None = Field(default=None, ge=0)
    licence: str | None = None
    paper: str | None = None
    purpose: Purpose | None = Field(default=None, description="'benchmark' or 'security'.")
    venue: str | None = Field(default=None, description="Where the paper appeared (NeurIPS, arXiv, ...).")
    venue_type: str | None = Field(default=None, description="The venue's field: ML, CV, Security, ...")
    year: int | None = Field(default=None, ge=1950, le=2100)
    data_category: str | None = Field(
        default=None, description="Kind of training data: natural, medical, face, ..."
    )
    train_size: int | None = Field(default=None, gt=0, description="Training-set size in samples.")
    country: str | None = Field(default=None, description="Authors' countries, comma-separated.")
    library: str | None = None
    upstream_url: str | None = None
    revision: str | None = None
    arch_resolution: str | None = Field(
        default=None,
        description="How a bare checkpoint's architecture was found: resolved (registry signature), "
        "ambiguous, unresolved or declared (curated); None for registry sources.",
    )
    upstream_modified: datetime | None = None
    tags: list[str] = Field(default_factory=list)
    datasets: list[DatasetLink] = Field(default_factory=list)
    claims: list[AccuracyClaim] = Field(default_factory=list)
    files: list[FileRef] = Field(default_factory=list)
    load: LoadSpec | None = None
    evidence: dict[str, str] = Field(default_factory=dict, description="Field name -> evidence.")
    extra_facts: dict[str, Any] = Field(
        default_factory=dict,
        description="Facts with no entry column (e.g. 'num_authors'), kept as fact rows.",
    )
    errors: list[str] = Field(default_factory=list, description="Per-entry annotation problems.")
    raw: dict[str, Any] = Field(default_factory=dict, description="Upstream payload, as received.")

    @model_validator(mode="after")
    def _split_id(self) -> EntryRecord:
        eid = parse_id(self.id)
        self.id = str(eid)
        self.source, self.name = eid.source, eid.name
        return self

    @property
    def provenance(self) -> str:
        return self.annotator or self.source

    @property
    def final_dataset(self) -> str | None:
        """The data set the entry was last trained on (end of the training chain)."""
        trained = [d for d in self.datasets if d.stage is Stage.TRAIN]
        chain = trained or self.datasets
        return chain[-1].dataset if chain else None

    def best_top1(self, dataset: str | None = None) -> float | None:
        """The highest top-1 claim on ``dataset`` (default: the final training data set),
        training-set figures only when no other split is stated."""
        target = dataset or self.final_dataset
        top1 = [
            c
            for c in self.claims
            if c.metric is Metric.TOP1 and (target is None or c.dataset == target)
        ]
        # A training-set accuracy (the SecurityNet release states one beside the test one)
        # only counts where nothing else is stated: Trainer cards file their held-out
        # evaluation under the data set's "train" split.
        values = [c.value for c in top1 if c.split != "train"] or [c.value for c in top1]
        return max(values) if values else None

    def top1_figures(self) -> Top1Figures:
        """Top-1 on the final training data set at the loader's input size, and the best."""
        target = self.final_dataset
        size = self.load.input_size[-1] if self.load and self.load.input_size else self.input_size
        top1 = [
            c
            for c in self.claims
            if c.metric is Metric.TOP1 and (target is None or c.dataset == target)
        ]
        # training-set figures only where nothing else is stated (as best_top1)
        held_out = [c for c in top1 if c.split != "train"] or top1
        return top1_figures([(c.value, c.img_size) for c in held_out], size)

    def content_hash(self) -> str:
        """Stable digest of everything upstream said; a re-sync compares it to skip work."""
        payload = self.model_dump(mode="json", exclude={"raw"})
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


class EntryFill(_Record):
    """What a source read on demand for an entry its sync left pending (``raw["pending"]``):
    the Hub's config (classes, labels, preprocessing) and weight-file pins. The catalogue
    writes it over the stored entry; ``pending`` is what is still left (a transient failure)."""

    id: str
    architecture: str | None = None
    family: str | None = None
    num_classes: int | None = Field(default=None, gt=0)
    input_size: int | None = Field(default=None, gt=0)
    load: LoadSpec | None = None
    files: list[FileRef] = Field(default_factory=list)
    evidence: dict[str, str] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)
    pending: list[str] = Field(default_factory=list)


class SyncSummary(_Record):
    """What one source's sync did."""

    source: str
    status: str = "ok"  # ok | failed | partial | skipped
    seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    errors: int = 0
    error: str | None = None
    seconds: float = 0.0

    def line(self) -> str:
        if self.status in ("failed", "skipped"):
            return f"{self.source}: {self.status}: {self.error}"
        return (
            f"{self.source}: {self.seen} seen, {self.added} added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.removed} marked removed"
            + (f", {self.errors} with annotation errors" if self.errors else "")
            + f" ({self.seconds:.1f} s)"
        )


class FactRecord(_Record):
    """One scalar fact as one source stated it."""

    key: str
    value: Any
    source: str
    evidence: str | None = None
    recorded_at: datetime | None = None


def config_digest(payload: Any) -> str:
    """SHA-256 of ``payload`` as canonical JSON: the identity of an evaluation's configuration."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class MetricResult(_Record):
    """One figure of an evaluation. Accuracy in percent; AUC, agreement and rates as fractions."""

    metric: str = Field(min_length=1, max_length=64, description="'auc', 'accuracy', 'agreement', ...")
    value: float = Field(allow_inf_nan=False)
    lower: float | None = Field(default=None, allow_inf_nan=False, description="Interval bound.")
    upper: float | None = Field(default=None, allow_inf_nan=False, description="Interval bound.")

    @model_validator(mode="after")
    def _ordered(self) -> MetricResult:
        if self.lower is not None and self.lower > self.value:
            raise ValueError(f"{self.metric}: lower bound {self.lower} above value {self.value}")
        if self.upper is not None and self.upper < self.value:
            raise ValueError(f"{self.metric}: upper bound {self.upper} below value {self.value}")
        return self


class EvaluationRecord(_Record):
    """One attack/defence run on an entry, or one set of figures a source published about it."""

    id: int | None = None
    attack: str = Field(min_length=1, max_length=64, description="'mia', 'model-stealing', ...")
    variant: str | None = Field(
        default=None, max_length=64, description="The attack's method or setting."
    )
    source: str = Field(
        default="evaluate", max_length=96, description="Who produced the figures."
    )
    dataset: str | None = Field(default=None, description="The evaluated data set.")
    config: dict[str, Any] = Field(default_factory=dict)
    protocol: dict[str, Any] = Field(
        default_factory=dict, description="Data, splits, sizes, member/non-member selection."
    )
    seed: int | None = None
    config_digest: str | None = Field(default=None, max_length=64)
    versions: dict[str, Any] = Field(default_factory=dict, description="Library versions.")
    device: str | None = None
    duration_s: float | None = Field(default=None, ge=0)
    status: str = Field(default="ok", description="'ok' or 'failed'.")
    error: str | None = None
    evidence: str | None = Field(default=None, description="Where a published figure stands.")
    created_at: datetime | None = None
    metrics: list[MetricResult] = Field(default_factory=list)

    @field_validator("metrics")
    @classmethod
    def _distinct(cls, metrics: list[MetricResult]) -> list[MetricResult]:
        names = [m.metric for m in metrics]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"metric(s) given twice: {', '.join(repeated)}")
        return metrics

    def metric(self, name: str) -> float | None:
        """The value of metric ``name``, or None."""
        return next((m.value for m in self.metrics if m.metric == name), None)


class ResultRecord(_Record):
    """One figure with its evaluation's context: a row of the ``v_results`` view."""

    evaluation_id: int
    entry_id: str
    attack: str
    variant: str | None = None
    metric: str
    value: float
    lower: float | None = None
    upper: float | None = None
    dataset: str | None = None
    source: str
    status: str
    seed: int | None = None
    config_digest: str | None = None
    created_at: datetime | None = None


class Attachment(_Record):
    """What a source says about an entry it does not own (or adds to one it does): claims,
    facts and evaluation figures, stored with the source's provenance beside everything
    else known about the entry, never overwriting it. Entry columns that are still empty
    are filled from ``facts`` (an annotation users filter on, such as ``purpose``)."""

    entry_id: str
    source: str = Field(description="Who said it (also the writer of the rows).")
    evidence: str | None = None
    claims: list[AccuracyClaim] = Field(default_factory=list)
    facts: dict[str, Any] = Field(default_factory=dict)
    evaluations: list[EvaluationRecord] = Field(default_factory=list)

    @field_validator("entry_id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        return str(parse_id(value))


class ImportSummary(_Record):
    """What one import did."""

    importer: str
    location: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    attached: int = 0
    missing: list[str] = Field(default_factory=list, description="Entries to attach to that are not catalogued.")
    claims: int = 0
    evaluations: int = 0
    figures: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        text = (
            f"{self.importer}: {self.added} added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.removed} marked removed, "
            f"{self.attached} attached to other sources' entries, {self.claims} claims, "
            f"{self.evaluations} evaluations ({self.figures} figures) ({self.seconds:.1f} s)"
        )
        if self.missing:
            text += f"; {len(self.missing)} not attached (not in the catalogue)"
        return text


class CatalogueEntry(EntryRecord):
    """An entry as the catalogue holds it: the merged view plus every fact with provenance."""

    dataset: str | None = Field(default=None, description="Final training data set (merged view).")
    top1: float | None = Field(
        default=None, description="Best top-1 claim on that data set at the loader's input size."
    )
    top1_size: int | None = None
    top1_best: float | None = Field(default=None, description="Best top-1 claim at any size.")
    top1_best_size: int | None = None
    same_weights_as: str | None = Field(
        default=None, description="The entry whose weight file this one shares."
    )
    test_net: bool = False
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    removed_upstream: bool = False
    facts: list[FactRecord] = Field(default_factory=list)
    evaluations: list[EvaluationRecord] = Field(default_factory=list)


class EntrySummary(_Record):
    """One row of a catalogue listing (no child rows)."""

    id: str
    source: str
    name: str
    architecture: str | None = None
    family: str | None = None
    num_classes: int | None = None
    input_size: int | None = None
    params: int | None = None
    gflops: float | None = None
    licence: str | None = None
    dataset: str | None = None
    top1: float | None = None
    top1_best: float | None = None
    top1_best_size: int | None = None
    same_weights_as: str | None = None
    test_net: bool = False
    removed_upstream: bool = False
