"""Named evaluation data sets, as arrays of raw images and integer labels.

=============== ======================================================== ==================
name            where it comes from                                       splits
=============== ======================================================== ==================
mnist           IDX files in ``<data_dir>/mnist`` (or torchvision's        train, test
                ``MNIST/raw`` layout)
fashion-mnist   IDX files in ``<data_dir>/fashion-mnist``                 train, test
digits          scikit-learn's ``load_digits`` (1,797 8x8 images, in the  train (first
                wheel), scaled from 0-16 to 0-255                          1,347), test
cifar10         torchvision, downloaded to ``<data_dir>/torchvision``      train, test
cifar100        when online                                                train, test
svhn                                                                        train, test, extra
folder:PATH     an ImageFolder tree: ``PATH/<split>/<class>/*.png``       any sub-folder
=============== ======================================================== ==================

Images are kept raw (uint8, N x C x H x W) and go through the *entry's* own transform in
:func:`iter_batches`, as the net was evaluated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from securitynet.data.idx import read_idx
from securitynet.errors import DatasetNotFoundError, MalformedDataError, SourceUnavailableError

if TYPE_CHECKING:
    import torch

    from securitynet.settings import Settings

log = logging.getLogger(__name__)

_DIGITS = tuple(str(i) for i in range(10))
_FASHION = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
#: scikit-learn's digits have no split: the first 75 % are called train, the rest test.
DIGITS_TRAIN_SIZE = 1347

#: Accepted spellings -> canonical key (the catalogue's data-set names on the right).
_ALIASES: dict[str, str] = {
    "mnist": "mnist",
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "digits": "digits",
    "sklearn-digits": "digits",
    "cifar10": "cifar10",
    "cifar-10": "cifar10",
    "cifar100": "cifar100",
    "cifar-100": "cifar100",
    "svhn": "svhn",
}
#: Canonical key -> the catalogue's data-set name.
CATALOGUE_NAMES: dict[str, str] = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "digits": "sklearn-digits",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "svhn": "SVHN",
}


@dataclass(frozen=True)
class ImageSet:
    """One split of one data set: raw images and integer labels."""

    name: str  #: canonical key (``mnist``, ``folder:/abs/path``)
    split: str
    labels: np.ndarray  #: int64, shape (N,)
    classes: tuple[str, ...]
    #: uint8 N x C x H x W, or None for a set read image by image (ImageFolder)
    images: np.ndarray | None = None
    paths: tuple[str, ...] | None = None  #: ImageFolder files, aligned with ``labels``

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def catalogue_name(self) -> str:
        return CATALOGUE_NAMES.get(self.name, self.name)

    def raw(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor | list[Any]:
        """The raw images at ``indices``: a uint8 tensor, or PIL images for a folder set."""
        import torch

        idx = np.asarray(indices, dtype=np.int64)
        if self.images is not None:
            return torch.from_numpy(np.ascontiguousarray(self.images[idx]))
        from PIL import Image

        assert self.paths is not None  # one of the two is always set by the loaders below
        out = []
        for i in idx:
            with Image.open(self.paths[int(i)]) as img:
                out.append(img.copy())
        return out


def canonical_name(name: str) -> str:
    """The canonical key of a data-set name, or ``folder:<absolute path>``."""
    key = name.strip()
    if key.startswith("folder:"):
        return "folder:" + str(Path(key[len("folder:") :]).expanduser().resolve())
    found = _ALIASES.get(key.lower())
    if found is None:
        raise DatasetNotFoundError(
            f"unknown data set {name!r}; known: {', '.join(sorted(set(_ALIASES.values())))}, folder:PATH",
            dataset=name,
        )
    return found


def split_sizes(name: str, *, settings: Settings | None = None) -> dict[str, int]:
    """Number of images per split, without decoding images where that is avoidable."""
    key = canonical_name(name)
    if key in ("mnist", "fashion-mnist"):
        return {"train": 60000, "test": 10000}
    if key == "digits":
        return {"train": DIGITS_TRAIN_SIZE, "test": 1797 - DIGITS_TRAIN_SIZE}
    if key in ("cifar10", "cifar100"):
        return {"train": 50000, "test": 10000}
    if key == "svhn":
        return {"train": 73257, "test": 26032, "extra": 531131}
    root = Path(key[len("folder:") :])
    return {p.name: len(_folder_files(p)[0]) for p in sorted(root.iterdir()) if p.is_dir()}


def load_dataset(
    name: str, split: str, *, data_dir: Path | None = None, settings: Settings | None = None
) -> ImageSet:
    """Split ``split`` of data set ``name``. ``data_dir`` overrides ``SECURITYNET_DATA_DIR``."""
    from securitynet.settings import get_settings

    key = canonical_name(name)
    if data_dir is None:
        data_dir = (settings or get_settings()).resolved_data_dir
    if key in ("mnist", "fashion-mnist"):
        return _load_idx_set(key, split, data_dir)
    if key == "digits":
        return _load_digits(split)
    if key in ("cifar10", "cifar100", "svhn"):
        return _load_torchvision(key, split, data_dir, settings=settings)
    return _load_folder(key, split)


# --- IDX (MNIST, Fashion-MNIST) --------------------------------------------------------------

_IDX_PREFIX = {"train": "train", "test": "t10k"}
_IDX_FOLDERS = {
    "mnist": ("mnist", "MNIST/raw", "MNIST"),
    "fashion-mnist": ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "fashion"),
}


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _load_idx_set(key: str, split: str, data_dir: Path) -> ImageSet:
    if split not in _IDX_PREFIX:
        raise DatasetNotFoundError(
            f"{key} has the splits train and test, not {split!r}", dataset=key, split=split
        )
    prefix = _IDX_PREFIX[split]
    tried = []
    for sub in _IDX_FOLDERS[key]:
        folder = data_dir / sub
        tried.append(str(folder))
        images_path = _find_idx(folder, f"{prefix}-images-idx3-ubyte")
        labels_path = _find_idx(folder, f"{prefix}-labels-idx1-ubyte")
        if images_path is None or labels_path is None:
            continue
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise MalformedDataError(
                f"{images_path.name} {images.shape} and {labels_path.name} {labels.shape} do not pair up",
                path=str(images_path),
            )
        if images.dtype != np.uint8 or labels.dtype != np.uint8 or int(labels.max(initial=0)) > 9:
            raise MalformedDataError(
                f"{images_path.parent}: not 8-bit images with labels 0-9", path=str(images_path)
            )
        log.info("read %s %s: %d images from %s", key, split, len(labels), folder)
        return ImageSet(
            name=key,
            split=split,
            labels=labels.astype(np.int64),
            classes=_DIGITS if key == "mnist" else _FASHION,
            images=images[:, None, :, :],
        )
    raise DatasetNotFoundError(
        f"no {key} {split} IDX files ({prefix}-images-idx3-ubyte[.gz], {prefix}-labels-idx1-ubyte[.gz]) in {', '.join(tried)}",
        dataset=key,
        split=split,
    )


# --- scikit-learn digits -------------------------------------------------------------------


def _load_digits(split: str) -> ImageSet:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise SourceUnavailableError(
            "the digits data set needs scikit-learn", hint="pip install 'securitynet[eval]'"
        ) from exc
    bunch = load_digits()
    images = np.rint(np.asarray(bunch.images) * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = np.asarray(bunch.target, dtype=np.int64)
    parts = {"train": slice(0, DIGITS_TRAIN_SIZE), "test": slice(DIGITS_TRAIN_SIZE, None)}
    if split not in parts:
        raise DatasetNotFoundError(
            f"digits has the splits train and test, not {split!r}", dataset="digits", split=split
        )
    part = parts[split]
    return ImageSet(
        name="digits", split=split, labels=labels[part], classes=_DIGITS, images=images[part]
    )


# --- torchvision (CIFAR, SVHN) ---------------------------------------------------------------


def _load_torchvision(
    key: str, split: str, data_dir: Path, *, settings: Settings | None
) -> ImageSet:
    from securitynet.settings import get_settings

    offline = (settings or get_settings()).offline
    root = data_dir / "torchvision"
    from torchvision import datasets

    factory: Callable[..., Any]
    if key == "svhn":
        if split not in ("train", "test", "extra"):
            raise DatasetNotFoundError(
                f"svhn has train, test and extra, not {split!r}", dataset=key, split=split
            )
        factory = lambda download: datasets.SVHN(str(root), split=split, download=download)  # noqa: E731
    else:
        if split not in ("train", "test"):
            raise DatasetNotFoundError(
                f"{key} has train and test, not {split!r}", dataset=key, split=split
            )
        cls = datasets.CIFAR10 if key == "cifar10" else datasets.CIFAR100
        factory = lambda download: cls(str(root), train=split == "train", download=download)  # noqa: E731
    try:
        ds = factory(False)
    except RuntimeError as missing:
        if offline:
            raise DatasetNotFoundError(
                f"{key} is not in {root} and SECURITYNET_OFFLINE is set", dataset=key
            ) from missing
        try:
            ds = factory(True)
        except Exception as exc:  # torchvision raises URLError, RuntimeError, ...
            raise SourceUnavailableError(
                f"cannot download {key} into {root}: {exc}", dataset=key
            ) from exc
    if key == "svhn":
        images = np.asarray(ds.data, dtype=np.uint8)  # N x 3 x 32 x 32 already
        labels = np.asarray(ds.labels, dtype=np.int64)
        classes: tuple[str, ...] = _DIGITS
    else:
        images = np.asarray(ds.data, dtype=np.uint8).transpose(0, 3, 1, 2)
        labels = np.asarray(ds.targets, dtype=np.int64)
        classes = tuple(ds.classes)
    return ImageSet(
        name=key, split=split, labels=labels, classes=classes, images=np.ascontiguousarray(images)
    )


# --- ImageFolder -----------------------------------------------------------------------------

_IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)


def _folder_files(folder: Path) -> tuple[list[str], list[int], tuple[str, ...]]:
    classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir()))
    if not classes:
        raise DatasetNotFoundError(f"{folder} has no class sub-folders", dataset=str(folder))
    paths: list[str] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        for file in sorted((folder / cls).rglob("*")):
            if file.is_file() and file.suffix.lower() in _IMAGE_SUFFIXES:
                paths.append(str(file))
                labels.append(label)
    return paths, labels, classes


def _load_folder(key: str, split: str) -> ImageSet:
    root = Path(key[len("folder:") :])
    folder = root / split
    if not folder.is_dir():
        raise DatasetNotFoundError(f"no split folder {folder}", dataset=key, split=split)
    paths, labels, classes = _folder_files(folder)
    if not paths:
        raise DatasetNotFoundError(f"{folder} holds no images", dataset=key, split=split)
    return ImageSet(
        name=key,
        split=split,
        labels=np.asarray(labels, dtype=np.int64),
        classes=classes,
        paths=tuple(paths),
    )


# --- batches through the entry's transform ---------------------------------------------------


def iter_batches(
    images: ImageSet,
    indices: Sequence[int] | np.ndarray,
    transform: Callable[[Any], torch.Tensor],
    *,
    batch_size: int = 512,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(inputs, labels)`` for ``indices`` in order, each input through ``transform``.

    Array-backed sets go through the transform a whole batch at a time (the loader's
    transforms accept N x C x H x W tensors); folder sets image by image."""
    import torch

    idx = np.asarray(indices, dtype=np.int64)
    for start in range(0, len(idx), batch_size):
        chunk = idx[start : start + batch_size]
        raw = images.raw(chunk)
        x = (
            transform(raw)
            if isinstance(raw, torch.Tensor)
            else torch.stack([transform(img) for img in raw])
        )
        yield x, torch.from_numpy(images.labels[chunk])
