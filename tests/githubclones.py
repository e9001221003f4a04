"""Local git repositories built from ../shared's GitHub checkpoints, for the tests.

Each repository gets its real GitHub ``origin`` and each checkpoint its real path (from
``PROVENANCE.md``), so ``securitynet add github ./clone`` gives them the ids they have
online. The commits are made here, so their hashes are not the upstream ones; the curated
facts (annotations/github-mnist.yaml) are tied to the files' sha256, not to commits.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

#: shared file name -> (owner/repo, path in the repository)
SHARED_CHECKPOINTS: dict[str, tuple[str, str]] = {
    "Zhuzhenghao--mnist-data--mnist_cnn.pt": ("Zhuzhenghao/mnist-data", "mnist_cnn.pt"),
    "GianMan89--MNIST_handwritten_digits_classifier--mnist_cnn.pt": (
        "GianMan89/MNIST_handwritten_digits_classifier",
        "mnist_cnn.pt",
    ),
    "john-samurai--AttackDefenseMNIST-trainedModel--mnist_cnn.pt": (
        "john-samurai/AttackDefenseMNIST-trainedModel",
        "mnist_cnn.pt",
    ),
    "john-samurai--AttackDefenseMNIST-trainedModel--mnist_cnn_overfitted.pt": (
        "john-samurai/AttackDefenseMNIST-trainedModel",
        "mnist_cnn_overfitted.pt",
    ),
    "john-samurai--AttackDefenseMNIST-trainedModel--full_MIA-defense_model.pt": (
        "john-samurai/AttackDefenseMNIST-trainedModel",
        "full_MIA-defense_model.pt",
    ),
    "john-samurai--AttackDefenseMNIST-trainedModel--stolen_models-attacker_surrogate_simple_cnn_1000samples.pt": (
        "john-samurai/AttackDefenseMNIST-trainedModel",
        "stolen_models/attacker_surrogate_simple_cnn_1000samples.pt",
    ),
}

#: shared file name -> its entry id
SHARED_IDS: dict[str, str] = {name: f"github:{repo}/{path}" for name, (repo, path) in SHARED_CHECKPOINTS.items()}


def git(root: Path, *args: str) -> str:
    """Run git in ``root`` with a fixed identity and no user or system configuration."""
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "HOME": str(root),
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
        "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
    }
    out = subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def make_clone(
    root: Path, repo: str, files: Mapping[str, Path | bytes], *, origin: str | None = None
) -> Path:
    """A git repository at ``root`` with ``files`` (path -> source file or bytes) committed
    and ``origin`` (default: ``https://github.com/{repo}.git``)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    for rel, content in files.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            dest.write_bytes(content)
        else:
            shutil.copyfile(content, dest)
    (root / "README.md").write_text(f"# {repo}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "checkpoints")
    git(root, "remote", "add", "origin", origin or f"https://github.com/{repo}.git")
    return root


def clone_shared_checkpoints(shared_dir: Path, dest: Path) -> dict[str, Path]:
    """One local repository per GitHub repository of ../shared's checkpoints: repo -> path."""
    by_repo: dict[str, dict[str, Path | bytes]] = {}
    for name, (repo, path) in SHARED_CHECKPOINTS.items():
        by_repo.setdefault(repo, {})[path] = shared_dir / "checkpoints/github-mnist" / name
    return {
        repo: make_clone(dest / repo.replace("/", "--"), repo, files) for repo, files in sorted(by_repo.items())
    }
