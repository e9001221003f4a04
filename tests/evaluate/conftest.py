"""A catalogue holding the six real GitHub MNIST checkpoints of ../shared (added from local
clones, as `securitynet add github ./clone` does), and the data folder beside them."""

from __future__ import annotations

from collections.abc import Callable
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


@pytest.fixture
def run(mnist_catalogue: Catalogue, shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """``securitynet ARGS...`` through the CLI's ``main`` on the six-checkpoint catalogue,
    offline: ``(exit code, stdout, stderr)``."""
    from typer.testing import CliRunner

    from securitynet.cli.app import main

    monkeypatch.setenv("SECURITYNET_HOME", str(mnist_catalogue.settings.home))
    monkeypatch.setenv("SECURITYNET_OFFLINE", "1")
    monkeypatch.setenv("SECURITYNET_DATA_DIR", str(shared_dir / "data"))
    monkeypatch.delenv("SECURITYNET_DEBUG", raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str, str]:
        with runner.isolation() as (out, err, _mixed):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            return code, out.getvalue().decode(), err.getvalue().decode()

    return invoke
