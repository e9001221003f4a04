"""One entry's model-reuse evaluation (Ji et al., CCS 2018): the entry is the benign
primitive; a malicious copy is crafted against a target input and class; hosts trained on
the host data set over either primitive (same seeds) give the attack's success on the
target, the clean-accuracy change and the feature drift. One stored evaluation per
(target, class, host recipe), attack ``model-reuse``.

The target input is ``DATASET:SPLIT[INDEX]`` (``mnist:test[17]``) or an image file."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from securitynet.attacks.reuse.config import ReuseConfig
from securitynet.data.sets import canonical_name, load_dataset
from securitynet.errors import AttackError, InvalidQueryError
from securitynet.evaluate.spec import SOURCE, DataSpec, EntryOutcome, library_versions, over_seeds
from securitynet.evaluate.tasks import _failed, _load, dataset_label, weights_identity
from securitynet.records import EntryRecord, EvaluationRecord, MetricResult, config_digest

if TYPE_CHECKING:
    import torch

    from securitynet.settings import Settings

#: The ``attack`` column of a model-reuse evaluation.
ATTACK = "model-reuse"

_INDEXED = re.compile(r"^(?P<dataset>[A-Za-z0-9_.-]+):(?P<split>[A-Za-z0-9_]+)\[(?P<index>\d+)\]$")


class TargetInput(BaseModel):
    """The target: one image of a data set's split, or an image file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None
    split: str | None = None
    index: int | None = Field(default=None, ge=0)
    path: Path | None = None

    @classmethod
    def parse(cls, spec: str) -> TargetInput:
        """``mnist:test[17]`` or the path of an existing image file."""
        match = _INDEXED.match(spec.strip())
        if match:
            return cls(
                dataset=canonical_name(match["dataset"]),
                split=match["split"],
                index=int(match["index"]),
            )
        path = Path(spec).expanduser()
        if path.is_file():
            return cls(path=path.resolve())
        raise InvalidQueryError(
            f"target input {spec!r} is neither DATASET:SPLIT[INDEX] nor an image file",
            hint="For example --target-input mnist:test[17] or --target-input ./digit.png",
        )

    @property
    def label(self) -> str:
        if self.path is not None:
            return self.path.name
        return f"{self.dataset}:{self.split}[{self.index}]"

    def identity(self) -> str:
        """What the target is, for the reuse key: the image file's sha256, or its position."""
        if self.path is not None:
            return "sha256:" + hashlib.sha256(self.path.read_bytes()).hexdigest()
        return self.label

    def load_raw(self, *, data_dir: Path | None, settings: Settings | None) -> Any:
        """The raw image: a uint8 1 x C x H x W tensor, or a PIL image for a file."""
        if self.path is not None:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(self.path) as img:
                    return img.copy()
            except (OSError, UnidentifiedImageError) as exc:
                raise AttackError(f"cannot read the target image {self.path}: {exc}") from exc
        assert self.dataset is not None and self.split is not None and self.index is not None
        images = load_dataset(self.dataset, self.split, data_dir=data_dir, settings=settings)
        if self.index >= len(images):
            raise InvalidQueryError(
                f"target input {self.label}: the split has {len(images)} images"
            )
        return images.raw([self.index])


class ReuseRequest(BaseModel):
    """Craft a malicious copy of each entry (the primitive) against one target and class;
    hosts train on ``data`` (train split), clean accuracy is measured on its test split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "reuse"
    data: DataSpec
    target: str = Field(description="DATASET:SPLIT[INDEX] or an image file.")
    target_class: int = Field(ge=0)
    config: ReuseConfig = Field(default_factory=ReuseConfig)

    def target_input(self) -> TargetInput:
        return TargetInput.parse(self.target)

    def variant(self) -> str:
        return f"{self.config.fine_tune}:{self.target_input().label}->{self.target_class}"[:64]

    def stored_config(self) -> dict[str, Any]:
        return {
            **self.config.model_dump(mode="json"),
            "target": self.target_input().label,
            "target_class": self.target_class,
        }


def reuse_digest(record: EntryRecord, request: ReuseRequest) -> str:
    return config_digest(
        {
            "kind": ATTACK,
            "weights": weights_identity(record),
            "dataset": dataset_label(request.data.name),
            "target": request.target_input().identity(),
            "config": request.stored_config(),
            "versions": library_versions(),
        }
    )


def run_reuse_task(
    record: EntryRecord, request: ReuseRequest, digest: str, settings: Settings | None = None
) -> EntryOutcome:
    """The model-reuse attack with ``record`` as the benign primitive."""
    data = request.data
    dataset = dataset_label(data.name)
    variant = request.variant()
    outcome = EntryOutcome(entry_id=record.id)
    started = time.perf_counter()
    try:
        result, raw, classes = _attack(record, request, settings)
    except Exception as exc:  # the batch boundary: recorded as a failed evaluation
        outcome.evaluations = [_failed(record.id, ATTACK, variant, exc, dataset=dataset, digest=digest)]
        outcome.extra["seconds"] = time.perf_counter() - started
        return outcome
    config = request.config
    metrics = [
        over_seeds("attack_success", result.attack_success, result.success_per_seed),
        over_seeds("clean_accuracy_delta", result.clean_accuracy_delta, result.delta_per_seed),
        MetricResult(metric="feature_drift", value=result.feature_drift),
        MetricResult(metric="benign_success", value=result.benign_success),
        MetricResult(metric="clean_accuracy", value=result.clean_accuracy_malicious),
        MetricResult(metric="clean_accuracy_benign", value=result.clean_accuracy_benign),
        MetricResult(metric="perturbed_params", value=float(result.craft.perturbed_params)),
    ]
    for name, verdict in (("malicious", result.strip_malicious), ("benign", result.strip_benign)):
        if verdict is not None:
            metrics.append(MetricResult(metric=f"strip_flagged_{name}", value=float(verdict.flagged)))
    outcome.evaluations.append(
        EvaluationRecord(
            attack=ATTACK,
            variant=variant,
            source=SOURCE,
            dataset=dataset,
            config=request.stored_config(),
            protocol={
                "dataset": dataset,
                "host_train": config.host_train,
                "host_test": config.host_test,
                "target": request.target_input().label,
                "seeds": result.seeds,
            },
            seed=config.seed,
            config_digest=digest,
            versions=library_versions(),
            device=data.device,
            duration_s=result.seconds,
            metrics=metrics,
        )
    )
    outcome.extra = {
        "reuse": result.model_dump(mode="json"),
        "target_image": raw,
        "classes": classes,
    }
    return outcome


def _attack(
    record: EntryRecord, request: ReuseRequest, settings: Settings | None
) -> tuple[Any, list[Any], list[str]]:
    """Run the attack: the result, the target image (H x W x C uint8, as lists), the host's
    class names."""
    import torch

    from securitynet.attacks.reuse.host import HostData, run_reuse
    from securitynet.attacks.reuse.primitive import feature_extractor
    from securitynet.evaluate.stealing import fetch_from

    data, config = request.data, request.config
    target = request.target_input()
    raw = target.load_raw(data_dir=data.data_dir, settings=settings)
    train = load_dataset(data.name, "train", data_dir=data.data_dir, settings=settings)
    test = load_dataset(data.name, "test", data_dir=data.data_dir, settings=settings)
    if request.target_class >= len(train.classes):
        raise AttackError(
            f"target class {request.target_class} is not one of {dataset_label(data.name)}'s "
            f"{len(train.classes)} classes"
        )
    loaded = _load(record, data.device, settings)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(train))
    host_idx, rest = order[: config.host_train], order[config.host_train :]
    references = rest[train.labels[rest] == request.target_class][: config.references]
    if len(references) == 0:
        raise AttackError(
            f"no images of class {request.target_class} left for the adversary's references"
        )
    clean = rest[train.labels[rest] != request.target_class][: config.clean_inputs]
    test_idx = np.sort(rng.permutation(len(test))[: config.host_test])

    def fetch(images: Any, idx: np.ndarray) -> torch.Tensor:
        return fetch_from(images, idx, loaded.transform, batch_size=data.batch_size).to(data.device)

    target_x = (
        loaded.transform(raw) if isinstance(raw, torch.Tensor) else loaded.transform(raw).unsqueeze(0)
    ).to(data.device)
    host = HostData(
        train_x=fetch(train, host_idx),
        train_y=torch.from_numpy(train.labels[host_idx]).to(data.device),
        test_x=fetch(test, test_idx),
        test_y=torch.from_numpy(test.labels[test_idx]).to(data.device),
        classes=len(train.classes),
    )
    if target_x.shape[1:] != host.train_x.shape[1:]:
        raise AttackError(
            f"the target input {tuple(target_x.shape[1:])} and the host's inputs "
            f"{tuple(host.train_x.shape[1:])} differ in shape after preprocessing"
        )
    extractor = feature_extractor(loaded.net, target_x, head=config.head)
    result, _ = run_reuse(
        extractor,
        host,
        target_x=target_x,
        target_class=request.target_class,
        reference_x=fetch(train, references),
        clean_x=fetch(train, clean),
        config=config,
    )
    return result, _image_array(raw), list(train.classes)


def _image_array(raw: Any) -> list[Any]:
    """H x W x C uint8 of a raw target (a 1 x C x H x W tensor or a PIL image), as lists."""
    if hasattr(raw, "numpy"):
        array = raw[0].numpy().transpose(1, 2, 0)
    else:
        array = np.asarray(raw.convert("RGB") if raw.mode not in ("L", "RGB") else raw)
        if array.ndim == 2:
            array = array[:, :, None]
    out: list[Any] = np.asarray(array, dtype=np.uint8).tolist()
    return out


def plot_reuse_outcomes(report: Any, path: Path) -> Path | None:
    """The target image and its class scores on the benign and malicious host, one row per
    entry that ran in ``report`` (a BatchReport); None when none did (reused or failed)."""
    from securitynet.attacks.reuse.plot import ReusePanel, plot_reuse

    panels = [
        ReusePanel(
            title=o.entry_id.split("/")[-1],
            image=np.asarray(o.extra["target_image"], dtype=np.uint8),
            benign=o.extra["reuse"]["target_scores_benign"],
            malicious=o.extra["reuse"]["target_scores_malicious"],
            target_class=int(o.extra["reuse"]["target_class"]),
            classes=o.extra.get("classes"),
        )
        for o in report.outcomes
        if "reuse" in o.extra
    ]
    return plot_reuse(panels, path) if panels else None
