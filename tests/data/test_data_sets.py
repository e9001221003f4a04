"""Evaluation data sets: the real MNIST / Fashion-MNIST IDX files from ../shared, the
digits in scikit-learn's wheel, an ImageFolder built here, and the files that must be refused."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from securitynet.data import iter_batches, load_dataset
from securitynet.data.idx import read_idx
from securitynet.data.sets import canonical_name, split_sizes
from securitynet.errors import DatasetNotFoundError, MalformedDataError


@pytest.mark.parametrize(("name", "first_labels"), [("mnist", [7, 2, 1, 0, 4]), ("fashion-mnist", [9, 2, 1, 1, 6])])
def test_real_idx_test_split(shared_dir: Path, name: str, first_labels: list[int]) -> None:
    test = load_dataset(name, "test", data_dir=shared_dir / "data")
    assert test.images is not None and test.images.shape == (10000, 1, 28, 28)
    assert test.labels.dtype == np.int64 and list(test.labels[:5]) == first_labels
    counts = [1000] * 10 if name == "fashion-mnist" else [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(test.labels).tolist() == counts
    assert len(test.classes) == 10 and len(test) == 10000


def test_mnist_train_split_and_the_setting(shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURITYNET_DATA_DIR", str(shared_dir / "data"))
    train = load_dataset("MNIST", "train")  # any spelling; the folder from the setting
    assert len(train) == 60000 and train.labels[0] == 5
    assert train.catalogue_name == "MNIST"
    assert hashlib.md5(train.images.tobytes()).hexdigest() == hashlib.md5(
        read_idx(shared_dir / "data/mnist/train-images-idx3-ubyte.gz").tobytes()
    ).hexdigest()


def test_missing_files_name_every_folder_tried(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no mnist test IDX files") as info:
        load_dataset("mnist", "test", data_dir=tmp_path)
    assert str(tmp_path / "mnist") in str(info.value) and info.value.hint
    with pytest.raises(DatasetNotFoundError, match="splits train and test"):
        load_dataset("mnist", "validation", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="unknown data set"):
        canonical_name("imagenet-9000")


def _idx(dims: list[int], values: bytes, type_code: int = 8) -> bytes:
    return bytes([0, 0, type_code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims) + values


def test_malformed_idx_files_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.gz"
    good.write_bytes(gzip.compress(_idx([2, 3], bytes(range(6)))))
    assert read_idx(good).tolist() == [[0, 1, 2], [3, 4, 5]]
    for name, body in {
        "magic": b"\x08\x03" + _idx([2, 3], bytes(6))[2:],
        "short": _idx([2, 3], bytes(5)),
        "header": b"\x00\x00\x08\x03\x00",
        "type": _idx([2], bytes(2), type_code=0x42),
    }.items():
        path = tmp_path / name
        path.write_bytes(body)
        with pytest.raises(MalformedDataError):
            read_idx(path)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(_idx([4], bytes(4)))[:-6])  # gzip cut short
    with pytest.raises(MalformedDataError):
        read_idx(broken)


def test_labels_that_do_not_pair_with_images(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte").write_bytes(_idx([3, 2, 2], bytes(12)))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx([2], bytes(2)))
    with pytest.raises(MalformedDataError, match="do not pair up"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_sklearn_digits_splits() -> None:
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train) + len(test) == 1797 and split_sizes("digits") == {"train": len(train), "test": len(test)}
    assert train.images is not None and train.images.shape[1:] == (1, 8, 8)
    assert train.images.dtype == np.uint8 and train.images.max() == 255


def test_image_folder_through_a_transform(tmp_path: Path) -> None:
    from PIL import Image

    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((5, 7, 3), 40 * i, dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    test = load_dataset(f"folder:{tmp_path}", "test")
    assert test.classes == ("cat", "dog") and test.labels.tolist() == [0, 0, 1, 1]
    assert split_sizes(f"folder:{tmp_path}") == {"test": 4, "train": 6}

    def transform(img: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(img.resize((4, 4)), dtype=np.float32)).permute(2, 0, 1) / 255

    batches = list(iter_batches(test, [3, 0, 2], transform, batch_size=2))
    assert [x.shape for x, _ in batches] == [(2, 3, 4, 4), (1, 3, 4, 4)]
    assert torch.cat([y for _, y in batches]).tolist() == [1, 0, 1]
    with pytest.raises(DatasetNotFoundError, match="no split folder"):
        load_dataset(f"folder:{tmp_path}", "validation")


def test_array_sets_go_through_the_transform_a_batch_at_a_time() -> None:
    digits = load_dataset("digits", "test")
    calls: list[tuple[int, ...]] = []

    def transform(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return x.float() / 255

    xs = [x for x, _ in iter_batches(digits, np.arange(300), transform, batch_size=128)]
    assert calls == [(128, 1, 8, 8), (128, 1, 8, 8), (44, 1, 8, 8)]
    assert float(xs[0].max()) <= 1.0
