"""What the model-reuse attack is told (part of a result's reuse key) and what it reports."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ReuseConfig(BaseModel):
    """The adversary's crafting budget and the simulated host's training recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- the adversary ---
    references: int = Field(
        default=20, ge=1, description="Inputs of the target class the adversary holds."
    )
    clean_inputs: int = Field(
        default=256, ge=8, description="Other inputs the adversary keeps the features of."
    )
    param_fraction: float = Field(
        default=0.02,
        gt=0,
        le=1,
        description="Share of the primitive's parameters perturbed: those of highest saliency "
        "ratio (impact on the target's features over impact on the other inputs').",
    )
    max_change: float = Field(
        default=2.0,
        gt=0,
        description="Bound on each perturbed parameter's change, in units of its tensor's std.",
    )
    max_drift: float = Field(
        default=0.05,
        gt=0,
        description="Stealth bound: mean relative feature change on the adversary's clean inputs.",
    )
    overshoot: float = Field(
        default=0.5,
        ge=0,
        description="Aim past the target class's feature centroid by this share of the shift.",
    )
    steps: int = Field(default=200, ge=1)
    lr: float = Field(default=0.03, gt=0)
    head: str | None = Field(
        default=None, description="The head module to cut off (default: the last linear layer)."
    )
    # --- the host ---
    fine_tune: Literal["head", "full"] = Field(
        default="head",
        description="head: the host trains a new head over the frozen primitive; full: it "
        "also fine-tunes the primitive (at a tenth of the head's learning rate).",
    )
    host_train: int = Field(default=5000, ge=10, description="Host training images (sampled).")
    host_test: int = Field(default=2000, ge=10, description="Host clean test images (sampled).")
    host_epochs: int = Field(default=10, ge=1)
    host_lr: float = Field(default=1e-2, gt=0)
    host_seeds: int = Field(default=3, ge=1, le=20, description="Host training runs (seeds).")
    strip_copies: int = Field(default=20, ge=2, description="STRIP overlays per input.")
    strip_frr: float = Field(default=0.01, ge=0, lt=1)
    seed: int = 0


class CraftReport(BaseModel):
    """How the malicious primitive was made."""

    model_config = ConfigDict(extra="forbid")

    steps: int
    perturbed_params: int
    params: int
    target_distance: float = Field(description="Distance to the aim, relative to the start.")
    adversary_drift: float = Field(description="Feature drift on the adversary's clean inputs.")
    max_abs_change: float


class StripVerdict(BaseModel):
    """STRIP run on a host: does it reject the target input (low entropy)?"""

    model_config = ConfigDict(extra="forbid")

    target_entropy: float
    threshold: float = Field(description="Clean entropies' quantile at the false-rejection rate.")
    frr: float
    flagged: bool


class ReuseResult(BaseModel):
    """A model-reuse attack's figures. Accuracies in percent; success rates in [0, 1]."""

    model_config = ConfigDict(extra="forbid")

    target_class: int
    attack_success: float = Field(description="Share of (host seed, target) pairs hit.")
    benign_success: float = Field(description="The same share with the benign primitive.")
    clean_accuracy_benign: float = Field(description="Mean over host seeds.")
    clean_accuracy_malicious: float
    clean_accuracy_delta: float = Field(description="Malicious minus benign, same seeds (points).")
    feature_drift: float = Field(description="Mean relative feature change on host test inputs.")
    seeds: list[int]
    success_per_seed: list[float]
    delta_per_seed: list[float]
    #: Class probabilities of the (first) target, averaged over host seeds.
    target_scores_benign: list[float]
    target_scores_malicious: list[float]
    craft: CraftReport
    strip_benign: StripVerdict | None = None
    strip_malicious: StripVerdict | None = None
    seconds: float = 0.0
