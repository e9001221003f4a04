"""One entry's backdoor-detection evaluation: a detector (``strip`` or ``neural-cleanse``)
run on clean images of a data set's split, through the entry's own preprocessing. One
stored evaluation per entry, ``attack = 'backdoor-detection'``, variant = the method.

STRIP: the seeded sample of ``max_samples`` clean images is cut in three: overlays (blended
onto every input), calibration (the entropy threshold at ``frr``) and held-out clean inputs
(the fraction rejected, which should come out near ``frr``). Where a suspected trigger is
given it is stamped on the raw pixels of the held-out inputs, before the entry's transform,
as an attacker would, and the fraction of them rejected is the detection rate.

Neural Cleanse: a trigger is reverse-engineered per label from the seeded sample of clean
images; stored are the L1 norm of every label's mask (``norm_<label>``), the anomaly index
of the smallest one (``anomaly_index_max``: the paper's figure, the largest index on the
side a backdoor lies), that label (``top_label``), and each flagged label's index
(``flagged_<label>``) with their count. An index that is infinite (all other norms equal)
is stored as ``INFINITE_INDEX``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from securitynet.attacks.backdoor.cleanse import CleanseConfig
from securitynet.attacks.backdoor.strip import StripConfig
from securitynet.data.sets import ImageSet, load_dataset, split_sizes
from securitynet.errors import AttackError
from securitynet.evaluate.spec import SOURCE, DataSpec, EntryOutcome, library_versions
from securitynet.evaluate.tasks import _failed, _load, dataset_label, weights_identity, wilson
from securitynet.records import EntryRecord, EvaluationRecord, MetricResult, config_digest

if TYPE_CHECKING:
    import torch

    from securitynet.evaluate.harness import BatchReport
    from securitynet.settings import Settings

#: The ``attack`` column of a backdoor-detection evaluation.
ATTACK = "backdoor-detection"
METHODS = ("strip", "neural-cleanse")
_CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
#: What an infinite anomaly index is stored as (figures are finite numbers).
INFINITE_INDEX = 1e9
#: CleanseConfig fields that change how fast a verdict comes, not the verdict.
_CLEANSE_SPEED = {"labels_per_batch", "memory_budget_mb"}


class PatchTrigger(BaseModel):
    """A suspected BadNets patch: ``size`` x ``size`` pixels of brightness ``value`` (0 black,
    1 white) in every channel, ``margin`` pixels from the edges of ``corner``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["patch"] = "patch"
    size: int = Field(ge=1)
    value: float = Field(default=1.0, ge=0, le=1)
    corner: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = "bottom-right"
    margin: int = Field(default=1, ge=0)

    @classmethod
    def parse(cls, text: str) -> PatchTrigger:
        """``patch:SIZE[:VALUE][:CORNER]``, e.g. ``patch:3``, ``patch:4:1.0:top-left``."""
        parts = text.strip().split(":")
        if parts[0] != "patch" or not 2 <= len(parts) <= 4:
            raise AttackError(
                f"bad trigger {text!r}",
                hint="Use patch:SIZE[:VALUE][:CORNER], e.g. patch:3 or patch:3:1.0:bottom-right.",
            )
        fields: dict[str, Any] = {}
        try:
            fields["size"] = int(parts[1])
            for part in parts[2:]:
                if part in _CORNERS:
                    fields["corner"] = part
                else:
                    fields["value"] = float(part)
            return cls(**fields)
        except ValueError as exc:  # int()/float() and pydantic's ValidationError alike
            raise AttackError(
                f"bad trigger {text!r}: {str(exc).splitlines()[0]}",
                hint=f"Use patch:SIZE[:VALUE][:CORNER]; VALUE in [0, 1], CORNER one of {', '.join(_CORNERS)}.",
            ) from exc

    def apply(self, raw: torch.Tensor) -> torch.Tensor:
        """The raw uint8 batch (N x C x H x W) with the patch stamped on its pixels."""
        from securitynet.attacks.backdoor.badnets import stamp

        return stamp(
            raw,
            size=self.size,
            value=round(255 * self.value),
            corner=self.corner,
            margin=self.margin,
        )


class BackdoorRequest(BaseModel):
    """Look for a backdoor in each entry with ``method`` on clean images of ``data``'s ``split``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "backdoor"
    data: DataSpec
    method: Literal["strip", "neural-cleanse"] = "strip"
    split: str = "test"
    max_samples: int = Field(
        default=3000, ge=3, description="Clean images drawn (seeded) from the split."
    )
    seed: int = 0
    trigger: PatchTrigger | None = Field(
        default=None, description="STRIP: a suspected trigger to measure the detection rate on."
    )
    strip: StripConfig = Field(default_factory=StripConfig)
    cleanse: CleanseConfig = Field(default_factory=CleanseConfig)
    budget_s: float = Field(
        default=1800.0, gt=0, description="Neural Cleanse: refuse above this estimated time."
    )

    def variant_config(self) -> dict[str, Any]:
        """What changes the figures (the reuse key's configuration)."""
        config: dict[str, Any] = {
            "method": self.method,
            "split": self.split,
            "max_samples": self.max_samples,
            "seed": self.seed,
        }
        if self.method == "strip":
            config["strip"] = self.strip.model_dump(mode="json")
            config["trigger"] = self.trigger.model_dump(mode="json") if self.trigger else None
        else:
            config["cleanse"] = self.cleanse.model_dump(mode="json", exclude=_CLEANSE_SPEED)
        return config


def backdoor_digest(record: EntryRecord, request: BackdoorRequest) -> str:
    return config_digest(
        {
            "kind": ATTACK,
            "variant": request.method,
            "weights": weights_identity(record),
            "dataset": dataset_label(request.data.name),
            "config": request.variant_config(),
            "versions": library_versions(),
        }
    )


def run_backdoor_task(
    record: EntryRecord,
    request: BackdoorRequest,
    digest: str,
    settings: Settings | None = None,
) -> EntryOutcome:
    """``request.method`` on ``record``: one evaluation, failed or not, never an exception."""
    from securitynet.attacks.membership.query import NetQuery

    data = request.data
    dataset = dataset_label(data.name)
    outcome = EntryOutcome(entry_id=record.id)
    started = time.perf_counter()
    try:
        # an unknown data set or split fails before the net loads
        sizes = split_sizes(data.name, settings=settings)
        if request.split not in sizes:
            raise AttackError(
                f"{dataset} has no split {request.split!r}; it has {', '.join(sorted(sizes))}"
            )
        loaded = _load(record, data.device, settings)
        images = load_dataset(data.name, request.split, data_dir=data.data_dir, settings=settings)
        query = NetQuery(loaded.net, loaded.spec.output or "logits", data.device)
        if request.method == "strip":
            metrics, protocol, extra = _strip(images, loaded.transform, query, request)
        else:
            metrics, protocol, extra = _cleanse(images, loaded.transform, query, request)
            extra["class_names"] = tuple(loaded.labels) if loaded.labels else None
    except Exception as exc:  # the batch boundary: recorded as failed, never raised
        outcome.evaluations = [
            _failed(record.id, ATTACK, request.method, exc, dataset=dataset, digest=digest)
        ]
        outcome.extra["seconds"] = time.perf_counter() - started
        return outcome
    outcome.evaluations = [
        EvaluationRecord(
            attack=ATTACK,
            variant=request.method,
            source=SOURCE,
            dataset=dataset,
            config=request.variant_config(),
            protocol={"dataset": dataset, **protocol},
            seed=request.seed,
            config_digest=digest,
            versions=library_versions(),
            device=data.device,
            duration_s=time.perf_counter() - started,
            metrics=metrics,
        )
    ]
    outcome.extra = {request.method: extra}
    return outcome


def _draw(images: ImageSet, request: BackdoorRequest) -> np.ndarray:
    """``max_samples`` indices of the split, in a seeded random order."""
    rng = np.random.default_rng(request.seed)
    n = min(request.max_samples, len(images))
    if n < 3:
        raise AttackError(f"{request.split} holds {len(images)} images; at least 3 are needed")
    return rng.permutation(len(images))[:n]


def _batch(
    images: ImageSet, indices: np.ndarray, transform: Any, trigger: PatchTrigger | None = None
) -> torch.Tensor:
    """The images at ``indices`` through the entry's transform, stamped first where asked."""
    import torch

    raw = images.raw(indices)
    if trigger is not None:
        if not isinstance(raw, torch.Tensor):
            raise AttackError(
                f"a trigger can be stamped on array data sets only, not {images.name}"
            )
        raw = trigger.apply(raw)
    if isinstance(raw, torch.Tensor):
        return transform(raw)
    return torch.stack([transform(img) for img in raw])


def _strip(
    images: ImageSet, transform: Any, query: Any, request: BackdoorRequest
) -> tuple[list[MetricResult], dict[str, Any], dict[str, Any]]:
    from securitynet.attacks.backdoor.strip import run_strip

    overlay_idx, cal_idx, clean_idx = np.array_split(_draw(images, request), 3)
    result = run_strip(
        query,
        calibration=_batch(images, cal_idx, transform),
        clean=_batch(images, clean_idx, transform),
        overlays=_batch(images, overlay_idx, transform),
        triggered=_batch(images, clean_idx, transform, request.trigger)
        if request.trigger
        else None,
        config=request.strip,
    )
    n = len(clean_idx)
    low, high = wilson(round(result.clean_rejected * n), n)
    metrics = [
        MetricResult(metric="threshold", value=result.threshold),
        MetricResult(metric="clean_rejected", value=result.clean_rejected, lower=low, upper=high),
        MetricResult(metric="clean_entropy_median", value=float(np.median(result.clean_entropy))),
    ]
    if result.detection_rate is not None and result.triggered_entropy is not None:
        low, high = wilson(round(result.detection_rate * n), n)
        metrics += [
            MetricResult(
                metric="detection_rate", value=result.detection_rate, lower=low, upper=high
            ),
            MetricResult(
                metric="triggered_entropy_median", value=float(np.median(result.triggered_entropy))
            ),
        ]
    protocol = {
        "split": request.split,
        "overlays": len(overlay_idx),
        "calibration": len(cal_idx),
        "clean": n,
        "triggered": n if request.trigger else 0,
        "seed": request.seed,
    }
    extra = {
        "threshold": result.threshold,
        "clean": result.clean_entropy,
        "triggered": result.triggered_entropy,
    }
    return metrics, protocol, extra


def plot_backdoor(report: BatchReport, path: Path) -> list[Path]:
    """The figures of a backdoor batch: STRIP's entropy histograms (one panel per entry) at
    ``path``; Neural Cleanse's reversed triggers, one grid per entry (``path`` itself for
    one entry, ``<stem>-<n><suffix>`` for several). Empty when nothing ran here (all
    reused, or failed)."""
    from securitynet.attacks.backdoor.plot import save_trigger_grid
    from securitynet.attacks.backdoor.strip_plot import StripPanel, plot_strip

    panels = {
        o.entry_id: StripPanel(clean=s["clean"], triggered=s["triggered"], threshold=s["threshold"])
        for o in report.outcomes
        if (s := o.extra.get("strip"))
    }
    if panels:
        return [plot_strip(panels, path)]
    scans = [o.extra["neural-cleanse"] for o in report.outcomes if o.extra.get("neural-cleanse")]
    if len(scans) == 1:
        return [save_trigger_grid(scans[0]["result"], path, class_names=scans[0]["class_names"])]
    return [
        save_trigger_grid(
            scan["result"],
            path.with_name(f"{path.stem}-{i}{path.suffix}"),
            class_names=scan["class_names"],
        )
        for i, scan in enumerate(scans, 1)
    ]


def _finite(value: float) -> float:
    return min(value, INFINITE_INDEX)


def _cleanse(
    images: ImageSet, transform: Any, query: Any, request: BackdoorRequest
) -> tuple[list[MetricResult], dict[str, Any], dict[str, Any]]:
    from securitynet.attacks.backdoor.cleanse import neural_cleanse

    indices = _draw(images, request)
    result = neural_cleanse(
        query, _batch(images, indices, transform), request.cleanse, budget_s=request.budget_s
    )
    norms = np.asarray(result.norms)
    top = int(np.argmin(norms))
    index = dict(zip(result.labels, result.anomaly_index, strict=True))
    metrics = [
        MetricResult(metric="anomaly_index_max", value=_finite(result.anomaly_index[top])),
        MetricResult(metric="top_label", value=float(result.labels[top])),
        MetricResult(metric="flagged", value=float(len(result.flagged))),
        MetricResult(metric="norm_median", value=float(np.median(norms))),
        MetricResult(metric="labels", value=float(len(result.labels))),
        MetricResult(metric="steps", value=float(result.total_steps)),
        MetricResult(metric="unreached", value=float(len(result.reached) - sum(result.reached))),
    ]
    metrics += [
        MetricResult(metric=f"norm_{y}", value=n)
        for y, n in zip(result.labels, result.norms, strict=True)
    ]
    metrics += [
        MetricResult(metric=f"flagged_{y}", value=_finite(index[y])) for y in result.flagged
    ]
    protocol = {"split": request.split, "clean": len(indices), "seed": request.seed}
    extra = {"result": result, "estimate_s": result.estimate.seconds, "flagged": result.flagged}
    return metrics, protocol, extra
