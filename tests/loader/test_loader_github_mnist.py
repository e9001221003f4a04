"""The six real GitHub MNIST / Fashion-MNIST checkpoints in ../shared, as catalogue entries.

Local git repositories are made from the shared files with their real ``origin`` and the
files at their real paths; ``add github ./clone`` catalogues them (ids from the origin,
revision = HEAD, files pinned by sha256 and put in the cache), the curated file
``annotations/github-mnist.yaml`` gives each its declared architecture, preprocessing, data
set and measured accuracy, and ``sn.load(id)`` loads them with no network. Each then scores
on the real test split exactly what PROVENANCE.md measured."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import securitynet as sn
from securitynet.catalogue.api import Catalogue
from securitynet.errors import InvalidQueryError, UnsupportedEntryError
from securitynet.settings import get_settings
from tests.githubclones import SHARED_IDS, clone_shared_checkpoints, git, make_clone

#: shared file -> MNIST test accuracy (%) PROVENANCE.md measured with the entry's input
MNIST_ACCURACY: dict[str, float] = {
    "Zhuzhenghao--mnist-data--mnist_cnn.pt": 4.63,  # a Fashion-MNIST net, scored on MNIST
    "GianMan89--MNIST_handwritten_digits_classifier--mnist_cnn.pt": 98.97,
    "john-samurai--AttackDefenseMNIST-trainedModel--mnist_cnn.pt": 98.89,
    "john-samurai--AttackDefenseMNIST-trainedModel--mnist_cnn_overfitted.pt": 58.93,
    "john-samurai--AttackDefenseMNIST-trainedModel--full_MIA-defense_model.pt": 93.75,
    "john-samurai--AttackDefenseMNIST-trainedModel--stolen_models-attacker_surrogate_simple_cnn_1000samples.pt": 92.64,
}
OUTPUT = {
    "Zhuzhenghao--mnist-data--mnist_cnn.pt": "log_softmax",
    "GianMan89--MNIST_handwritten_digits_classifier--mnist_cnn.pt": "softmax",
    "john-samurai--AttackDefenseMNIST-trainedModel--mnist_cnn.pt": "log_softmax",
    "john-samurai--AttackDefenseMNIST-trainedModel--mnist_cnn_overfitted.pt": "log_softmax",
    "john-samurai--AttackDefenseMNIST-trainedModel--full_MIA-defense_model.pt": "logits",
    "john-samurai--AttackDefenseMNIST-trainedModel--stolen_models-attacker_surrogate_simple_cnn_1000samples.pt": "log_softmax",
}

#: Full 10,000-image runs of these take 10-25 s each on two CPU cores: marked slow.
HEAVY = {
    "GianMan89--MNIST_handwritten_digits_classifier--mnist_cnn.pt",
    "john-samurai--AttackDefenseMNIST-trainedModel--full_MIA-defense_model.pt",
    "john-samurai--AttackDefenseMNIST-trainedModel--stolen_models-attacker_surrogate_simple_cnn_1000samples.pt",
}


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _test_split(shared_dir: Path, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(shared_dir / f"data/{name}/t10k-images-idx3-ubyte.gz")
    labels = read_idx(shared_dir / f"data/{name}/t10k-labels-idx1-ubyte.gz")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


@pytest.fixture(scope="module")
def mnist_test(shared_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return _test_split(shared_dir, "mnist")


@pytest.fixture(scope="module")
def clones(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return clone_shared_checkpoints(shared_dir, tmp_path_factory.mktemp("clones"))


@pytest.fixture(scope="module")
def catalogue(clones: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    """A catalogue holding the three repositories, added from their local clones."""
    cat = Catalogue(settings=get_settings(home=tmp_path_factory.mktemp("home"), offline=True))
    for path in clones.values():
        sn.add_github(path, catalogue=cat)
    return cat


def _accuracy(loaded: Any, images: torch.Tensor, labels: torch.Tensor) -> float:
    batch = loaded.transform(images.unsqueeze(1))  # uint8 N x 1 x 28 x 28 through the entry's transform
    assert batch.shape == (len(images), 1, 28, 28) and batch.dtype == torch.float32
    probs = torch.cat([loaded.probabilities(chunk) for chunk in batch.split(1000)])
    assert torch.allclose(probs.sum(dim=1), torch.ones(len(images)), atol=1e-4)
    return (probs.argmax(dim=1) == labels).double().mean().item() * 100


def test_the_clones_become_six_resolved_github_entries(catalogue: Catalogue, clones: dict[str, Path]) -> None:
    entries = catalogue.search(source="github", sort="id", descending=False)
    assert sorted(e.id for e in entries) == sorted(SHARED_IDS.values())
    heads = {repo: git(path, "rev-parse", "HEAD") for repo, path in clones.items()}
    for name, eid in SHARED_IDS.items():
        entry = catalogue.get(eid)
        repo = eid.removeprefix("github:").split("/", 2)
        assert entry.revision == heads[f"{repo[0]}/{repo[1]}"]
        assert entry.upstream_url == f"https://github.com/{repo[0]}/{repo[1]}/blob/{entry.revision}/{repo[2]}"
        (ref,) = entry.files
        assert ref.url.startswith("https://raw.githubusercontent.com/") and ref.url.endswith(repo[2])
        assert entry.load is not None and entry.load.builder == "state-dict"
        assert entry.load.output == OUTPUT[name]
        assert entry.num_classes == 10 and entry.input_size == 28
        assert entry.arch_resolution == "declared"
        assert any(f.source == "curated:github-mnist.yaml" and f.key == "architecture" for f in entry.facts)
    fashion = catalogue.get(SHARED_IDS["Zhuzhenghao--mnist-data--mnist_cnn.pt"])
    assert fashion.dataset == "Fashion-MNIST" and fashion.top1 == pytest.approx(74.77)
    defended = catalogue.get(SHARED_IDS["john-samurai--AttackDefenseMNIST-trainedModel--full_MIA-defense_model.pt"])
    assert defended.dataset == "MNIST" and defended.top1 == pytest.approx(93.75)
    assert defended.load is not None and defended.load.state_dict_key == "model_state_dict"


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in sorted(MNIST_ACCURACY)]
)
def test_real_github_checkpoint_scores_exactly_as_measured(
    name: str, catalogue: Catalogue, mnist_test: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """All 10,000 MNIST test images, loaded by id from the clone's files (offline)."""
    loaded = sn.load(SHARED_IDS[name], catalogue=catalogue, offline=True)
    assert not loaded.net.training
    assert _accuracy(loaded, *mnist_test) == pytest.approx(MNIST_ACCURACY[name], abs=0.005)
    assert loaded.labels is not None and len(loaded.labels) == 10


@pytest.mark.parametrize("name", sorted(HEAVY))
def test_real_github_checkpoint_scores_close_on_a_slice(
    name: str, catalogue: Catalogue, mnist_test: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """The first 1,000 test images (the full run of these nets is marked slow)."""
    loaded = sn.load(SHARED_IDS[name], catalogue=catalogue, offline=True)
    images, labels = mnist_test
    assert _accuracy(loaded, images[:1000], labels[:1000]) == pytest.approx(MNIST_ACCURACY[name], abs=2.5)


def test_the_fashion_net_scores_its_curated_accuracy_on_fashion_mnist(
    catalogue: Catalogue, shared_dir: Path
) -> None:
    eid = SHARED_IDS["Zhuzhenghao--mnist-data--mnist_cnn.pt"]
    loaded = sn.load(eid, catalogue=catalogue, offline=True)
    assert loaded.labels is not None and loaded.labels[0] == "T-shirt/top"
    assert _accuracy(loaded, *_test_split(shared_dir, "fashion-mnist")) == pytest.approx(
        catalogue.get(eid).top1, abs=0.005
    )


def test_a_pil_digit_goes_through_the_same_transform(catalogue: Catalogue, mnist_test) -> None:
    from PIL import Image

    loaded = sn.load(SHARED_IDS["john-samurai--AttackDefenseMNIST-trainedModel--mnist_cnn.pt"], catalogue=catalogue)
    images, labels = mnist_test
    pil = Image.fromarray(images[0].numpy())  # mode "L", 28 x 28
    x = loaded.transform(pil).unsqueeze(0)
    assert torch.allclose(x, loaded.transform(images[:1].unsqueeze(1)), atol=1e-6)
    assert loaded.labels is not None
    assert loaded.labels[int(loaded.net(x).argmax())] == str(int(labels[0]))
    rgb = Image.fromarray(images[0].numpy()).convert("RGB")  # a colour image is brought to 1 channel
    assert loaded.transform(rgb).shape == (1, 28, 28)


def test_the_mia_defense_checkpoint_keeps_its_metadata(catalogue: Catalogue) -> None:
    """A wrapped checkpoint (model_state_dict + config + history): the curated
    state_dict_key picks the tensors, and plain metadata stays beside the net."""
    loaded = sn.load(SHARED_IDS["john-samurai--AttackDefenseMNIST-trainedModel--full_MIA-defense_model.pt"], catalogue=catalogue)
    assert len(loaded.net.state_dict()) == 8
    assert "defense_design" in loaded.metadata and "training_history" in loaded.metadata


def test_a_changed_file_gets_none_of_the_curated_facts(shared_dir: Path, tmp_path: Path) -> None:
    """Same path, other bytes (a retrained net pushed later): the curated architecture
    describes the old file, so the new entry stays unresolved and is not loaded as it."""
    name = "john-samurai--AttackDefenseMNIST-trainedModel--mnist_cnn.pt"
    body = bytearray((shared_dir / "checkpoints/github-mnist" / name).read_bytes())
    clone = make_clone(tmp_path / "c", "john-samurai/AttackDefenseMNIST-trainedModel", {"mnist_cnn.pt": bytes(body) + b"\0"})
    cat = Catalogue(settings=get_settings(home=tmp_path / "home"))
    summary = sn.add_github(clone, catalogue=cat, resolve=False)
    assert summary.added == 1
    entry = cat.get(SHARED_IDS[name])
    assert entry.load is None and entry.dataset is None and entry.top1 is None
    assert entry.arch_resolution == "unresolved"
    with pytest.raises(UnsupportedEntryError):
        sn.load(entry.id, catalogue=cat, offline=True)


def test_a_clone_of_another_host_is_refused(tmp_path: Path) -> None:
    clone = make_clone(tmp_path / "c", "x/y", {"a.pt": b"x"}, origin="https://gitlab.com/x/y.git")
    cat = Catalogue(settings=get_settings(home=tmp_path / "home"))
    with pytest.raises(InvalidQueryError, match=r"not a github\.com repository"):
        sn.add_github(clone, catalogue=cat)
    assert cat.count(source="github") == 0


def test_purpose_and_training_size_are_filterable(catalogue: Catalogue) -> None:
    rows = catalogue.sql(
        "SELECT id, purpose, train_size FROM entry WHERE source = 'github' AND purpose = 'security' ORDER BY train_size"
    ).rows
    assert [(r[0].rsplit("/", 1)[-1], r[2]) for r in rows] == [
        ("mnist_cnn_overfitted.pt", 50),
        ("attacker_surrogate_simple_cnn_1000samples.pt", 1000),
        ("full_MIA-defense_model.pt", 3000),
        ("mnist_cnn.pt", 60000),
    ]
