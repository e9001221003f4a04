"""What an evaluation is asked to do (pydantic, so that it can cross a process boundary to a
Ray worker and be stored), and what it hands back."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from securitynet.attacks.membership.run import MembershipConfig
from securitynet.records import EvaluationRecord, MetricResult

#: The evaluation's own "source" in the results table.
SOURCE = "evaluate"


class DataSpec(BaseModel):
    """Which data set, from where, through which batches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        description="mnist, fashion-mnist, digits, cifar10, cifar100, svhn, folder:PATH"
    )
    data_dir: Path | None = None
    batch_size: int = Field(default=512, gt=0)
    device: str = "cpu"


class AccuracyRequest(BaseModel):
    """Top-1 accuracy of each entry on one split (stored as a measured accuracy claim)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "accuracy"
    data: DataSpec
    split: str = "test"
    max_samples: int | None = Field(default=None, gt=0)
    seed: int = 0


class MembershipRequest(BaseModel):
    """Membership inference on each entry with one member / non-member protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "mia"
    data: DataSpec
    members: str = "train"
    nonmembers: str = "test"
    max_samples: int | None = Field(
        default=5000,
        gt=0,
        description="At most this many members and non-members each, drawn with the seed.",
    )
    members_are_training_set: bool | None = None
    expect_member_accuracy: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The net's accuracy on its members, known in advance (a reconstruction check).",
    )
    expect_tolerance: float = Field(default=0.05, ge=0, le=1)
    config: MembershipConfig = Field(default_factory=MembershipConfig)
    cache_dir: Path | None = Field(default=None, description="Where LiRA keeps shadow nets.")


def library_versions() -> dict[str, str]:
    """The versions that change an evaluation's figures (part of the reuse key)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("securitynet", "torch", "torchvision", "numpy", "timm"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


class EntryOutcome(BaseModel):
    """What one entry's task produced: evaluations to store (failures included), and the
    ROC curves for a figure (not stored)."""

    model_config = ConfigDict(extra="forbid")

    entry_id: str
    evaluations: list[EvaluationRecord] = Field(default_factory=list)
    reused: list[str] = Field(
        default_factory=list, description="Variants answered from the catalogue."
    )
    roc: dict[str, tuple[list[float], list[float]]] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)


def over_seeds(metric: str, value: float, per_seed: Sequence[float]) -> MetricResult:
    """A figure summarised over seeds (a median or a mean), its bounds the seeds' range."""
    return MetricResult(metric=metric, value=value, lower=min(per_seed), upper=max(per_seed))
