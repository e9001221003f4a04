"""Preprocessing and label names of a loaded net, from its :class:`LoadSpec`.

The eval transform is timm's (``transforms_imagenet_eval``: resize by ``1/crop_pct``,
center / squash / border crop, to-tensor, normalise), which is what timm's published
accuracies were measured with and what torchvision's ``ImageClassification`` preset is a
special case of. Two things are added around it: the input is brought to the net's number
of channels (an RGB photo for a grayscale MNIST net, or the reverse), and tensors are
accepted as well as PIL images.

Label names come from a named label set (``ImageNet-1k``, the real 1,000 names that ship
with torchvision; ``CIFAR-10``; ...) or an explicit ``labels`` list on the entry.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from securitynet.errors import UnsupportedEntryError
from securitynet.records import LoadSpec

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: What torchvision's ImageClassification preset does when nothing else is known.
IMAGENET_DEFAULTS: dict[str, Any] = {
    "input_size": (3, 224, 224),
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "interpolation": "bilinear",
    "crop_pct": 0.875,
    "crop_mode": "center",
}

_PREPROCESSING_FIELDS = ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")


def complete_spec(spec: LoadSpec, defaults: dict[str, Any]) -> LoadSpec:
    """``spec`` with every unset preprocessing / label field taken from ``defaults``.

    What the entry states wins; the builder's defaults (timm's pretrained config, a Hub
    preprocessor config, ...) fill the gaps."""
    update = {
        k: v
        for k, v in defaults.items()
        if v is not None and getattr(spec, k, None) is None and k in LoadSpec.model_fields
    }
    if spec.label_set:  # the entry names its label set: a library's own list does not override it
        update.pop("labels", None)
    return spec.model_copy(update=update) if update else spec


def _scale_crop_pct(size: int, crop_pct: float) -> float:
    """``crop_pct`` nudged so that ``floor(size / crop_pct)`` is the intended resize.

    timm computes ``floor(size / crop_pct)``; with ``crop_pct = 224 / 232`` floating point
    gives 231.99999 and a 231-pixel resize. The intended value is the nearest integer when
    the quotient is within 1e-6 of it."""
    exact = size / crop_pct
    want = round(exact) if abs(exact - round(exact)) < 1e-6 else math.floor(exact)
    pct = size / want
    for _ in range(8):
        if math.floor(size / pct) == want:
            return pct
        pct = math.nextafter(pct, 0.0)
    return pct


class _ToInput:
    """PIL image (any mode), ndarray or tensor -> what timm's eval transform expects, with
    the net's number of channels. uint8 tensors are scaled to [0, 1]."""

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def __call__(self, img: Any) -> Any:
        import numpy as np
        import torch
        from PIL import Image

        if isinstance(img, np.ndarray):
            img = Image.fromarray(img)
        if isinstance(img, Image.Image):
            mode = "L" if self.channels == 1 else "RGB"
            return img if img.mode == mode else img.convert(mode)
        if isinstance(img, torch.Tensor):
            if img.dtype == torch.uint8:
                img = img.float() / 255.0
            if img.ndim == 2:
                img = img.unsqueeze(0)
            c = img.shape[-3]
            if c == 1 and self.channels == 3:
                img = img.expand(*img.shape[:-3], 3, *img.shape[-2:])
            elif c == 3 and self.channels == 1:
                weights = torch.tensor([0.299, 0.587, 0.114], dtype=img.dtype, device=img.device)
                img = (img * weights.view(3, 1, 1)).sum(dim=-3, keepdim=True)
            return img
        raise TypeError(f"cannot preprocess a {type(img).__name__}; give a PIL image or a tensor")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(channels={self.channels})"


def build_transform(spec: LoadSpec) -> Callable[[Any], Any]:
    """The eval transform described by ``spec`` (fields unset here fall back to ImageNet's)."""
    from timm.data.transforms_factory import transforms_imagenet_eval
    from torchvision import transforms

    full = complete_spec(spec, IMAGENET_DEFAULTS)
    channels, height, width = full.input_size or (3, 224, 224)
    mean = tuple(full.mean or IMAGENET_MEAN)
    std = tuple(full.std or IMAGENET_STD)
    if len(mean) != channels or len(std) != channels:
        raise UnsupportedEntryError(
            f"mean/std have {len(mean)}/{len(std)} values for a {channels}-channel input",
            mean=mean,
            std=std,
        )
    crop_pct = float(full.crop_pct or 0.875)
    if height == width:
        crop_pct = _scale_crop_pct(height, crop_pct)
        img_size: int | tuple[int, int] = height
    else:
        img_size = (height, width)
    geometry = transforms_imagenet_eval(
        img_size=img_size,
        crop_pct=crop_pct,
        crop_mode=full.crop_mode or "center",
        interpolation=full.interpolation or "bilinear",
        mean=mean,
        std=std,
    )
    return transforms.Compose([_ToInput(channels), geometry])


# --- labels -------------------------------------------------------------------------------

_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR100 = ["apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"]
_DIGITS = tuple(str(i) for i in range(10))


def _imagenet_1k() -> list[str]:
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _imagenet_by_count(num_outputs: int) -> Callable[[], list[str]] | None:
    """The ImageNet-21k/22k/12k variant with ``num_outputs`` classes, by timm's table
    (fall11 21,841; Google's 21,843; Microsoft's 21,842; MIIL 11,221; timm's 12k 11,821)."""
    from timm.data import ImageNetInfo
    from timm.data.imagenet_info import infer_imagenet_subset

    subset = infer_imagenet_subset({"num_classes": num_outputs})
    if subset is None:
        return None

    def names() -> list[str]:
        info = ImageNetInfo(subset)
        return [info.index_to_description(i) for i in range(info.num_classes())]

    return names


def _fashion_mnist() -> list[str]:
    from torchvision.datasets import FashionMNIST

    return list(FashionMNIST.classes)


#: Canonical data-set name (see securitynet.annotate.datasets) -> label names, offline.
LABEL_SETS: dict[str, Callable[[], list[str]]] = {
    "ImageNet-1k": _imagenet_1k,
    "CIFAR-10": lambda: list(_CIFAR10),
    "CIFAR-100": lambda: list(_CIFAR100),
    "MNIST": lambda: list(_DIGITS),
    "SVHN": lambda: list(_DIGITS),
    "Fashion-MNIST": _fashion_mnist,
}


def label_names(spec: LoadSpec, *, num_outputs: int | None = None) -> list[str] | None:
    """Names of the net's outputs: ``spec.labels``, else the named ``label_set``, else None.

    The larger ImageNet variants (21k, 22k, 12k) are told apart by the number of outputs,
    as timm does. Names that do not match the number of outputs are dropped with a
    warning rather than misaligned; the net still loads."""
    from securitynet.annotate.datasets import canonical_dataset

    names: list[str] | None = None
    if spec.labels:
        names, what = list(spec.labels), "the entry's label list"
    elif spec.label_set:
        canonical = canonical_dataset(spec.label_set) or spec.label_set
        what = f"label set {canonical!r}"
        factory = LABEL_SETS.get(canonical)
        if factory is None and canonical.startswith("ImageNet") and num_outputs:
            factory = _imagenet_by_count(num_outputs)
        if factory is None:
            log.warning("no label names known for label set %r", spec.label_set)
            return None
        names = factory()
    if names is not None and num_outputs is not None and len(names) != num_outputs:
        log.warning("%s has %d names for a net with %d outputs; no label names", what, len(names), num_outputs)
        return None
    return names
