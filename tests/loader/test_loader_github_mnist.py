"""The six real GitHub MNIST / Fashion-MNIST checkpoints in ../shared load through the
whole path (served over loopback HTTP with their sha256 pinned, read safely, converted,
checked against an architecture described as data) and score on the real MNIST test set
exactly what PROVENANCE.md measured.

The architectures are the ``state-dict`` builder's layer lists, written from the layer
descriptions in PROVENANCE.md; the preprocessing is the entry's (mean/std or none)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from securitynet.loader import load_entry
from securitynet.records import EntryRecord, FileRef, LoadSpec

MNIST_NORM = {"mean": (0.1307,), "std": (0.3081,)}
NO_NORM = {"mean": (0.0,), "std": (1.0,)}


def conv(name: str, cin: int, cout: int, k: int, **kw: Any) -> dict[str, Any]:
    return {"op": "conv2d", "name": name, "in_channels": cin, "out_channels": cout, "kernel_size": k, **kw}


def fc(name: str, fin: int, fout: int) -> dict[str, Any]:
    return {"op": "linear", "name": name, "in_features": fin, "out_features": fout}


RELU, POOL, FLAT = {"op": "relu"}, {"op": "max_pool2d", "kernel_size": 2}, {"op": "flatten"}
LOG_SOFTMAX, SOFTMAX = {"op": "log_softmax", "dim": 1}, {"op": "softmax", "dim": 1}

#: file -> (layers, normalisation, output, data set, test accuracy % from PROVENANCE.md)
NETS: dict[str, tuple[list[dict[str, Any]], dict[str, Any], str, str, float | None]] = {
    "Zhuzhenghao--mnist-data--mnist_cnn.pt": (
        [conv("conv1", 1, 20, 5), RELU, POOL, conv("conv2", 20, 50, 5), RELU, POOL, FLAT,
         fc("fc1", 800, 500), RELU, fc("fc2", 500, 10), LOG_SOFTMAX],
        NO_NORM, "log_softmax", "Fashion-MNIST", 4.63,  # its score on MNIST, as a Fashion net
    ),
    "GianMan89--MNIST_handwritten_digits_classifier--mnist_cnn.pt": (
        [conv("conv1", 1, 32, 3, padding=1), RELU, POOL, conv("conv2", 32, 64, 3, padding=1), RELU, POOL, FLAT,
         fc("fc1", 3136, 128), RELU, fc("fc2", 128, 10), SOFTMAX],
        MNIST_NORM, "softmax", "MNIST", 98.97,
    ),
    "john-samurai--AttackDefenseMNIST-trainedModel--mnist_cnn.pt": (
        [conv("conv1", 1, 6, 3, padding=1), RELU, POOL, conv("conv2", 6, 16, 5), RELU, POOL, FLAT,
         fc("fc1", 400, 120), RELU, fc("fc2", 120, 84), RELU, fc("fc3", 84, 10), LOG_SOFTMAX],
        MNIST_NORM, "log_softmax", "MNIST", 98.89,
    ),
    "john-samurai--AttackDefenseMNIST-trainedModel--mnist_cnn_overfitted.pt": (
        [conv("conv1", 1, 8, 5, stride=2, padding=2), RELU, POOL, FLAT,
         fc("fc1", 392, 50), RELU, fc("fc2", 50, 10), LOG_SOFTMAX],
        NO_NORM, "log_softmax", "MNIST", 58.93,
    ),
    "john-samurai--AttackDefenseMNIST-trainedModel--full_MIA-defense_model.pt": (
        [conv("conv1", 1, 32, 3, padding=1), RELU, POOL, {"op": "dropout2d", "p": 0.1},
         conv("conv2", 32, 64, 3, padding=1), RELU, POOL, FLAT,
         fc("fc1", 3136, 128), RELU, {"op": "dropout", "p": 0.3}, fc("fc2", 128, 10)],
        MNIST_NORM, "logits", "MNIST", 93.75,
    ),
    "john-samurai--AttackDefenseMNIST-trainedModel--stolen_models-attacker_surrogate_simple_cnn_1000samples.pt": (
        [conv("features.0", 1, 16, 3, padding=1), RELU, POOL, conv("features.3", 16, 32, 3, padding=1), RELU, POOL,
         FLAT, fc("classifier.0", 1568, 64), RELU, {"op": "dropout", "p": 0.5}, fc("classifier.3", 64, 10),
         LOG_SOFTMAX],
        MNIST_NORM, "log_softmax", "MNIST", 92.64,
    ),
}


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="module")
def mnist_test(shared_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(shared_dir / "data/mnist/t10k-images-idx3-ubyte.gz")
    labels = read_idx(shared_dir / "data/mnist/t10k-labels-idx1-ubyte.gz")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def github_record(name: str, url: str, sha256: str, size: int) -> EntryRecord:
    layers, norm, output, dataset, _ = NETS[name]
    owner, repo, path = name.split("--", 2)
    return EntryRecord(
        id=f"github:{owner}/{repo}/{path}",
        files=[FileRef(url=url, sha256=sha256, size=size, format="pytorch")],
        load=LoadSpec(
            builder="state-dict",
            architecture="sequential",
            kwargs={"layers": layers},
            input_size=(1, 28, 28),
            crop_pct=1.0,
            label_set=dataset,
            output=output,
            **norm,
        ),
    )


#: Full 10,000-image runs of these take 10-25 s each on two CPU cores: marked slow.
HEAVY = {
    "GianMan89--MNIST_handwritten_digits_classifier--mnist_cnn.pt",
    "john-samurai--AttackDefenseMNIST-trainedModel--full_MIA-defense_model.pt",
    "john-samurai--AttackDefenseMNIST-trainedModel--stolen_models-attacker_surrogate_simple_cnn_1000samples.pt",
}


def _load(name: str, shared_dir: Path, http_server) -> Any:
    body = (shared_dir / "checkpoints/github-mnist" / name).read_bytes()
    url = http_server.add(f"/{name}", body)
    return load_entry(github_record(name, url, hashlib.sha256(body).hexdigest(), len(body)))


def _accuracy(loaded: Any, images: torch.Tensor, labels: torch.Tensor) -> float:
    batch = loaded.transform(images.unsqueeze(1))  # uint8 N x 1 x 28 x 28 through the entry's transform
    assert batch.shape == (len(images), 1, 28, 28) and batch.dtype == torch.float32
    probs = torch.cat([loaded.probabilities(chunk) for chunk in batch.split(1000)])
    assert torch.allclose(probs.sum(dim=1), torch.ones(len(images)), atol=1e-4)
    return (probs.argmax(dim=1) == labels).double().mean().item() * 100


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in sorted(NETS)]
)
def test_real_github_checkpoint_scores_exactly_as_measured(
    name: str, shared_dir: Path, http_server, mnist_test: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """All 10,000 MNIST test images: the accuracy PROVENANCE.md reports, to 0.01 %."""
    loaded = _load(name, shared_dir, http_server)
    assert not loaded.net.training
    assert _accuracy(loaded, *mnist_test) == pytest.approx(NETS[name][4], abs=0.005)
    assert loaded.labels is not None and len(loaded.labels) == 10


@pytest.mark.parametrize("name", sorted(HEAVY))
def test_real_github_checkpoint_scores_close_on_a_slice(
    name: str, shared_dir: Path, http_server, mnist_test: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """The first 1,000 test images (the full run of these nets is marked slow)."""
    loaded = _load(name, shared_dir, http_server)
    images, labels = mnist_test
    assert _accuracy(loaded, images[:1000], labels[:1000]) == pytest.approx(NETS[name][4], abs=2.5)


def test_a_pil_digit_goes_through_the_same_transform(shared_dir: Path, http_server, mnist_test) -> None:
    from PIL import Image

    name = "john-samurai--AttackDefenseMNIST-trainedModel--mnist_cnn.pt"
    body = (shared_dir / "checkpoints/github-mnist" / name).read_bytes()
    loaded = load_entry(github_record(name, http_server.add("/n.pt", body), hashlib.sha256(body).hexdigest(), len(body)))
    images, labels = mnist_test
    pil = Image.fromarray(images[0].numpy())  # mode "L", 28 x 28
    x = loaded.transform(pil).unsqueeze(0)
    assert torch.allclose(x, loaded.transform(images[:1].unsqueeze(1)), atol=1e-6)
    assert loaded.labels is not None
    assert loaded.labels[int(loaded.net(x).argmax())] == str(int(labels[0]))
    rgb = Image.fromarray(images[0].numpy()).convert("RGB")  # a colour image is brought to 1 channel
    assert loaded.transform(rgb).shape == (1, 28, 28)


def test_the_mia_defense_checkpoint_keeps_its_metadata(shared_dir: Path, http_server) -> None:
    """A wrapped checkpoint (model_state_dict + config + history): the tensors are
    unwrapped by the safe reader, and plain metadata stays available beside the net."""
    name = "john-samurai--AttackDefenseMNIST-trainedModel--full_MIA-defense_model.pt"
    body = (shared_dir / "checkpoints/github-mnist" / name).read_bytes()
    record = github_record(name, http_server.add("/d.pt", body), hashlib.sha256(body).hexdigest(), len(body))
    record.load.state_dict_key = "model_state_dict"  # type: ignore[union-attr]
    loaded = load_entry(record)
    assert len(loaded.net.state_dict()) == 8
    assert "defense_design" in loaded.metadata and "training_history" in loaded.metadata
    # The next load reads the converted safetensors copy: the metadata came along.
    again = load_entry(record, offline=True)
    assert [r.kind for r in again.files] == ["download", "convert"]
    assert again.metadata == loaded.metadata
