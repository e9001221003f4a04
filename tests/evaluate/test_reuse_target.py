"""``--target-input``: DATASET:SPLIT[INDEX] or an image file, each with its own identity in
the reuse key (a file by its bytes, so an edited image is a new evaluation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from securitynet.errors import InvalidQueryError
from securitynet.evaluate import DataSpec, ReuseRequest, TargetInput
from securitynet.evaluate.reuse import _image_array


def test_an_indexed_target_is_canonical() -> None:
    target = TargetInput.parse("MNIST:test[17]")
    assert (target.dataset, target.split, target.index) == ("mnist", "test", 17)
    assert target.label == "mnist:test[17]" == target.identity()


def test_an_image_file_target_is_keyed_by_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "seven.png"
    Image.fromarray(np.full((28, 28), 200, dtype=np.uint8)).save(path)
    target = TargetInput.parse(str(path))
    first = target.identity()
    assert target.label == "seven.png" and first.startswith("sha256:")
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(path)
    assert target.identity() != first
    raw = target.load_raw(data_dir=None, settings=None)
    assert np.asarray(_image_array(raw), dtype=np.uint8).shape == (28, 28, 1)
    request = ReuseRequest(data=DataSpec(name="mnist"), target=str(path), target_class=3)
    assert request.variant() == "head:seven.png->3"


@pytest.mark.parametrize("spec", ["mnist:test", "mnist[17]", "no/such/file.png", "mnist:test[-1]"])
def test_other_targets_are_refused_with_a_hint(spec: str) -> None:
    with pytest.raises(InvalidQueryError, match="neither DATASET:SPLIT") as info:
        TargetInput.parse(spec)
    assert info.value.hint and "mnist:test[17]" in info.value.hint
