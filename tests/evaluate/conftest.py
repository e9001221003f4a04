"""A catalogue holding the six real GitHub MNIST checkpoints of ../shared (added from local
clones, as `securitynet add github ./clone` does), and the data folder beside them."""

from __future__ import annotations

from pathlib import Path

import pytest

import securitynet as sn
from securitynet.catalogue.api import Catalogue
from securitynet.settings import get_settings
from tests.githubclones import clone_shared_checkpoints

REPO = "github:john-samurai/AttackDefenseMNIST-trainedModel"
OVERFITTED = f"{REPO}/mnist_cnn_overfitted.pt"
NORMAL = f"{REPO}/mnist_cnn.pt"
DEFENDED = f"{REPO}/full_MIA-defense_model.pt"


@pytest.fixture(scope="module")
def mnist_catalogue(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    clones = clone_shared_checkpoints(shared_dir, tmp_path_factory.mktemp("clones"))
    home = tmp_path_factory.mktemp("home")
    cat = Catalogue(settings=get_settings(home=home, offline=True, data_dir=shared_dir / "data"))
    for path in clones.values():
        sn.add_github(path, catalogue=cat)
    return cat
