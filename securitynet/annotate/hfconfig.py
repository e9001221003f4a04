"""Hub repository configs -> architecture, classes, labels and preprocessing.

Two layouts exist on the Hub for image classifiers:

* transformers: ``config.json`` names the class (``architectures``), the family
  (``model_type``) and the labels (``id2label``); ``preprocessor_config.json`` holds
  the input size, mean/std and resampling filter;
* timm: ``config.json`` names the architecture, ``num_classes``, optional ``label_names``
  and a ``pretrained_cfg`` with input size, crop, mean/std and interpolation.

Each function returns what it found with the evidence (which file and key), and the
problems it met, so the scraper can attribute every field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: PIL's resampling codes, as transformers' image processors store them.
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_PLACEHOLDER_LABEL = re.compile(r"LABEL_\d+")


@dataclass
class ConfigFacts:
    """What a repository's config files say about its net."""

    builder: str | None = None
    architecture: str | None = None
    family: str | None = None
    num_classes: int | None = None
    labels: list[str] | None = None
    input_size: tuple[int, int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str | None = None
    crop_pct: float | None = None
    crop_mode: str | None = None
    evidence: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def timm_family(architecture: str) -> str:
    """The family of a timm architecture name: ``convnext_small`` -> ``convnext``.

    >>> timm_family("tf_efficientnet_b3"), timm_family("resnet50d"), timm_family("convnextv2_pico")
    ('efficientnet', 'resnet', 'convnextv2')
    """
    name = re.sub(r"^tf_", "", architecture.lower())
    match = re.match(r"([a-z]+?(?:v\d+)?)(?:\d|_|$)", name)
    return match.group(1) if match else name


def _labels_from_id2label(id2label: Any, facts: ConfigFacts, where: str) -> None:
    if not isinstance(id2label, Mapping) or not id2label:
        return
    try:
        indexed = {int(k): str(v) for k, v in id2label.items()}
    except (TypeError, ValueError):
        facts.errors.append(f"{where}: id2label keys are not class indices")
        return
    n = len(indexed)
    if sorted(indexed) != list(range(n)):
        facts.errors.append(f"{where}: id2label indices are not 0..{n - 1}")
        facts.num_classes = max(indexed) + 1
    else:
        facts.num_classes = n
        labels = [indexed[i] for i in range(n)]
        # transformers writes LABEL_0, LABEL_1, ... when a trainer set no names: no labels known
        if not all(_PLACEHOLDER_LABEL.fullmatch(label) for label in labels):
            facts.labels = labels
            facts.evidence["labels"] = f"{where}: id2label"
    facts.evidence["num_classes"] = f"{where}: id2label ({facts.num_classes} entries)"


def _floats(value: Any, channels: int = 3) -> tuple[float, ...] | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),) * channels
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (int, float)) for v in value)
    ):
        return tuple(float(v) for v in value)
    return None


def _side(size: Any) -> int | None:
    """The square side an image processor's ``size`` / ``crop_size`` asks for."""
    if isinstance(size, int) and size > 0:
        return size
    if isinstance(size, Mapping):
        for key in ("height", "shortest_edge", "width"):
            value = size.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None


def preprocessing_from_hf(pre: Mapping[str, Any], *, channels: int = 3) -> dict[str, Any]:
    """LoadSpec preprocessing fields from a Hub ``preprocessor_config.json``.

    The one reading of that file: the catalogue's facts and the loader's transform both come
    from here, so ``show`` and ``load`` cannot disagree about an entry's input."""
    out: dict[str, Any] = {}
    if pre.get("do_normalize", True) is False:  # the processor leaves pixels in [0, 1]
        out["mean"], out["std"] = (0.0,) * channels, (1.0,) * channels
    else:
        mean, std = _floats(pre.get("image_mean"), channels), _floats(pre.get("image_std"), channels)
        if mean and std:
            out["mean"], out["std"] = mean, std
    if isinstance(pre.get("resample"), int) and pre["resample"] in _PIL_RESAMPLE:
        out["interpolation"] = _PIL_RESAMPLE[pre["resample"]]
    size, crop = pre.get("size"), pre.get("crop_size")
    if isinstance(size, int):
        size = {"shortest_edge": size}
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    crop_dims, size_dims = _dims(crop), _dims(size)
    center = bool(pre.get("do_center_crop")) and crop_dims is not None
    if size_dims is not None:
        h, w = size_dims
        if center and crop_dims is not None:
            out.update(input_size=(channels, *crop_dims), crop_mode="squash", crop_pct=crop_dims[0] / h)
        else:
            out.update(input_size=(channels, h, w), crop_mode="squash", crop_pct=1.0)
    elif isinstance(size, Mapping) and _positive(size.get("shortest_edge")):
        edge = int(size["shortest_edge"])
        crop_pct = pre.get("crop_pct")
        if isinstance(crop_pct, (int, float)) and 0 < crop_pct <= 2:  # ConvNeXt-style
            out.update(input_size=(channels, edge, edge), crop_mode="center", crop_pct=float(crop_pct))
        elif center and crop_dims is not None:
            out.update(input_size=(channels, *crop_dims), crop_mode="center", crop_pct=crop_dims[0] / edge)
        else:
            out.update(input_size=(channels, edge, edge), crop_mode="center", crop_pct=1.0)
    return out


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _dims(size: Any) -> tuple[int, int] | None:
    """``(height, width)`` of a processor's ``{"height": h, "width": w}`` size."""
    if isinstance(size, Mapping) and _positive(size.get("height")) and _positive(size.get("width")):
        return int(size["height"]), int(size["width"])
    return None


def read_transformers_config(
    config: Mapping[str, Any] | None, preprocessor: Mapping[str, Any] | None = None
) -> ConfigFacts:
    """Facts from a transformers ``config.json`` and ``preprocessor_config.json``."""
    facts = ConfigFacts(builder="transformers")
    if config:
        architectures = config.get("architectures")
        if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
            facts.architecture = architectures[0]
            facts.evidence["architecture"] = "config.json: architectures[0]"
        if isinstance(config.get("model_type"), str):
            facts.family = config["model_type"]
            facts.evidence["family"] = "config.json: model_type"
        _labels_from_id2label(config.get("id2label"), facts, "config.json")
        if (
            facts.num_classes is None
            and isinstance(config.get("num_labels"), int)
            and config["num_labels"] > 0
        ):
            facts.num_classes = config["num_labels"]
            facts.evidence["num_classes"] = "config.json: num_labels"
        side = _side(config.get("image_size"))
        channels: int = config["num_channels"] if isinstance(config.get("num_channels"), int) else 3
        if side:
            facts.input_size = (channels, side, side)
            facts.evidence["input_size"] = "config.json: image_size"
    if preprocessor:
        channels = facts.input_size[0] if facts.input_size else 3
        found = preprocessing_from_hf(preprocessor, channels=channels)
        for key, value in found.items():
            setattr(facts, key, value)
        where = "preprocessor_config.json"
        if "input_size" in found:
            facts.evidence["input_size"] = f"{where}: size/crop_size"
        if "mean" in found:
            facts.evidence["mean"] = facts.evidence["std"] = (
                f"{where}: image_mean/image_std" if preprocessor.get("do_normalize", True)
                else f"{where}: do_normalize false"
            )
    return facts


def read_timm_config(config: Mapping[str, Any] | None) -> ConfigFacts:
    """Facts from a timm ``config.json`` (as ``timm.models.push_to_hf_hub`` writes it)."""
    facts = ConfigFacts(builder="timm")
    if not config:
        return facts
    architecture = config.get("architecture")
    if isinstance(architecture, str):
        facts.architecture = architecture
        facts.family = timm_family(architecture)
        facts.evidence["architecture"] = "config.json: architecture"
        facts.evidence["family"] = f"timm architecture name {architecture}"
    pretrained: Mapping[str, Any] = (
        config["pretrained_cfg"] if isinstance(config.get("pretrained_cfg"), Mapping) else {}
    )
    num_classes = config.get("num_classes", pretrained.get("num_classes"))
    if isinstance(num_classes, int) and num_classes >= 0:
        facts.num_classes = num_classes or None  # 0: a feature backbone without a classifier
        facts.evidence["num_classes"] = "config.json: num_classes"
    names = config.get("label_names")
    if isinstance(names, list) and names and facts.num_classes == len(names):
        facts.labels = [str(n) for n in names]
    elif isinstance(names, Mapping) and names:
        ordered = {int(k): str(v) for k, v in names.items() if str(k).isdigit()}
        if sorted(ordered) == list(range(len(ordered))) and len(ordered) == facts.num_classes:
            facts.labels = [ordered[i] for i in range(len(ordered))]
    if facts.labels:
        facts.evidence["labels"] = "config.json: label_names"
    size = pretrained.get("input_size")
    if (
        isinstance(size, (list, tuple))
        and len(size) == 3
        and all(isinstance(v, int) and v > 0 for v in size)
    ):
        facts.input_size = (size[0], size[1], size[2])
        facts.evidence["input_size"] = "config.json: pretrained_cfg.input_size"
    facts.mean, facts.std = _floats(pretrained.get("mean")), _floats(pretrained.get("std"))
    if facts.mean and facts.std:
        facts.evidence["mean"] = facts.evidence["std"] = "config.json: pretrained_cfg.mean/std"
    if isinstance(pretrained.get("interpolation"), str):
        facts.interpolation = pretrained["interpolation"]
    crop_pct = pretrained.get("crop_pct")
    if isinstance(crop_pct, (int, float)) and 0 < crop_pct <= 2:
        facts.crop_pct = float(crop_pct)
    if isinstance(pretrained.get("crop_mode"), str):
        facts.crop_mode = pretrained["crop_mode"]
    return facts


def is_timm_config(config: Mapping[str, Any] | None) -> bool:
    if not config:
        return False
    return isinstance(config.get("architecture"), str) and "architectures" not in config


def config_is_complete(config: Mapping[str, Any] | None, *, timm: bool) -> bool:
    """Whether a listing's (possibly trimmed) ``config`` already says what ``config.json`` would."""
    if not config:
        return False
    if timm:
        return isinstance(config.get("pretrained_cfg"), Mapping) and "num_classes" in config
    return isinstance(config.get("id2label"), Mapping) and bool(config.get("architectures"))
