"""The github source against a loopback GitHub: entries from committed files (and Git LFS
pointers), release assets and hubconf.py; pins; rate limits and 5xx during a sync; a
re-sync of unchanged repositories that costs conditional requests only."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

import securitynet as sn
from securitynet.catalogue.api import Catalogue
from securitynet.errors import UnsupportedEntryError
from securitynet.loader.cache import Cache
from securitynet.loader.download import fetch
from securitynet.settings import get_settings
from tests.fakegithub import FakeGithub

REPO = "alice/cifar-nets"
HUBCONF = b'''
"""torch.hub entrypoints (read statically by securitynet; never run)."""
dependencies = ["torch"]
from .models import make_resnet  # an import: not followed
model_urls = {
    "resnet20": "https://github.com/alice/cifar-nets/releases/download/v1.0/cifar10_resnet20-4118986f.pt",
}
def cifar10_resnet20(pretrained=False, **kwargs):
    """ResNet-20 for CIFAR-10."""
    return make_resnet(model_urls["resnet20"] if pretrained else None)
def cifar10_any(name, pretrained=False):
    return make_resnet(model_urls[name])
def _helper():
    return "https://example.org/private.pt"
'''


def _state_dict_bytes(width: int = 4) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"fc.weight": torch.zeros(10, width), "fc.bias": torch.zeros(10)}, buf)
    return buf.getvalue()


@pytest.fixture
def fake(shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGithub]:
    with FakeGithub(page_size=1) as server:
        server.load_recorded(shared_dir)
        for key, value in server.settings_env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("SECURITYNET_HTTP_BACKOFF", "0.01")
        yield server


def _add(fake: FakeGithub) -> dict[str, bytes]:
    bodies = {
        "tree": _state_dict_bytes(4),
        "lfs": _state_dict_bytes(8),
        "asset": _state_dict_bytes(16),
        "prefixed": _state_dict_bytes(32),
    }
    fake.add_repo(
        REPO,
        {"checkpoints/mnist_cnn.pt": bodies["tree"], "hubconf.py": HUBCONF, "README.md": b"# nets", "train.py": b""},
        lfs={"big/model.safetensors": bodies["lfs"]},
        releases={
            "v1.0": {"cifar10_resnet20-4118986f.pt": bodies["asset"], "notes.txt": b"x"},
            "v0.9": {"old-deadbeef.pth": bodies["prefixed"]},
        },
    )
    return bodies


def test_sync_catalogues_tree_lfs_release_and_hubconf_entries(fake: FakeGithub) -> None:
    bodies = _add(fake)
    cat = Catalogue()
    (summary,) = cat.sync(["github"], options={"repositories": [REPO]})
    assert summary.status == "ok", summary.error
    ids = {e.id for e in cat.search(source="github")}
    assert ids == {
        f"github:{REPO}/checkpoints/mnist_cnn.pt",
        f"github:{REPO}/big/model.safetensors",
        f"github:{REPO}/releases/v1.0/cifar10_resnet20-4118986f.pt",
        f"github:{REPO}/releases/v0.9/old-deadbeef.pth",
        f"github:{REPO}/hubconf/cifar10_resnet20",
    }
    tree = cat.get(f"github:{REPO}/checkpoints/mnist_cnn.pt")
    assert tree.revision is not None and len(tree.revision) == 40
    assert tree.files[0].url == f"{fake.url}/raw/{REPO}/{tree.revision}/checkpoints/mnist_cnn.pt"
    assert tree.files[0].size == len(bodies["tree"]) and tree.licence == "MIT"
    lfs = cat.get(f"github:{REPO}/big/model.safetensors").files[0]
    assert lfs.url.startswith(f"{fake.url}/lfs/") and lfs.sha256 == hashlib.sha256(bodies["lfs"]).hexdigest()
    assert lfs.size == len(bodies["lfs"]) and lfs.format == "safetensors"
    asset = cat.get(f"github:{REPO}/releases/v1.0/cifar10_resnet20-4118986f.pt")
    assert asset.files[0].sha256 == hashlib.sha256(bodies["asset"]).hexdigest()
    assert asset.revision == "sha256:" + asset.files[0].sha256
    hub = cat.get(f"github:{REPO}/hubconf/cifar10_resnet20")
    assert hub.files[0].url.endswith("/releases/download/v1.0/cifar10_resnet20-4118986f.pt")
    assert (hub.files[0].checksum, hub.files[0].checksum_algo) == ("4118986f", "sha256-prefix")
    assert hub.upstream_url is not None and hub.upstream_url.endswith("/hubconf.py#L8")


def test_a_release_asset_without_digest_is_pinned_by_its_name_prefix(fake: FakeGithub) -> None:
    bodies = {"x": _state_dict_bytes(3)}
    prefix = hashlib.sha256(bodies["x"]).hexdigest()[:8]
    fake.add_repo("bob/nets", {}, releases={"v2": {f"net-{prefix}.pth": bodies["x"]}}, digests=False)
    cat = Catalogue()
    sn.add_github("bob/nets", catalogue=cat, resolve=False)
    entry = cat.get(f"github:bob/nets/releases/v2/net-{prefix}.pth")
    ref = entry.files[0]
    assert ref.sha256 is None and (ref.checksum, ref.checksum_algo) == (prefix, "sha256-prefix")
    assert ref.url == f"{fake.url}/dl/bob/nets/releases/download/v2/net-{prefix}.pth"
    fetched = fetch(ref, cache=Cache(cat.settings.resolved_cache_dir), offline=False, revision=entry.revision)
    assert fetched.record.sha256.startswith(prefix)


def test_a_resync_of_unchanged_repositories_sends_conditional_requests_only(fake: FakeGithub) -> None:
    _add(fake)
    cat = Catalogue()
    cat.sync(["github"], options={"repositories": [REPO]})
    first = len(fake.hits)
    (summary,) = cat.sync(["github"], options={"repositories": [REPO]})
    again = fake.hits[first:]
    assert summary.unchanged == summary.seen == 5 and summary.added == summary.updated == 0
    assert again and all(h.status == 304 and h.conditional for h in again)
    # one request each for: repository, branch, tree, hubconf.py, the LFS pointer, 2 release pages
    assert len(again) == 7


def test_rate_limits_and_5xx_during_a_sync_are_waited_out(fake: FakeGithub) -> None:
    _add(fake)
    fake.inject(r"/git/trees/", 429, headers={"Retry-After": "1"})
    fake.inject(r"/releases\?", 503, times=2)
    fake.inject(r"/branches/", 403, headers={"Retry-After": "0"})
    cat = Catalogue()
    (summary,) = cat.sync(["github"], options={"repositories": [REPO]})
    assert summary.status == "ok" and summary.added == 5
    assert fake.count(status=429) == 1 and fake.count(status=503) == 2 and fake.count(status=403) == 1


def test_a_limit_past_the_budget_fails_the_sync_and_removes_nothing(fake: FakeGithub, monkeypatch: pytest.MonkeyPatch) -> None:
    _add(fake)
    cat = Catalogue()
    cat.sync(["github"], options={"repositories": [REPO]})
    monkeypatch.setenv("SECURITYNET_GITHUB_MAX_SECONDS", "5")
    fake.inject(r"/releases", 403, times=5, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "9999999999"})
    (summary,) = Catalogue().sync(["github"], options={"repositories": [REPO]})
    assert summary.status == "failed" and "RateLimitedError" in (summary.error or "")
    assert cat.count(source="github") == 5  # nothing was marked removed


def test_an_unresolved_entry_says_why_it_cannot_be_loaded(fake: FakeGithub) -> None:
    _add(fake)
    cat = Catalogue()
    sn.add_github(REPO, catalogue=cat, resolve=False)
    entry = cat.get(f"github:{REPO}/checkpoints/mnist_cnn.pt")
    assert entry.load is None and entry.raw["architecture"]["status"] == entry.arch_resolution == "unresolved"
    assert cat.count(source="github") == 5
    by_status = cat.sql("SELECT arch_resolution, count(*) FROM entry WHERE source = 'github' GROUP BY 1").rows
    assert by_status == (("unresolved", 5),)
    with pytest.raises(UnsupportedEntryError, match=r"architecture unresolved \(a bare checkpoint"):
        sn.load(entry.id, catalogue=cat)


def test_owner_repo_at_a_commit_is_pinned_there(fake: FakeGithub) -> None:
    commit = fake.add_repo("erin/nets", {"w.pt": b"\x80" * 2000})
    cat = Catalogue()
    sn.add_github(f"erin/nets@{commit}", catalogue=cat, resolve=False)
    assert cat.get("github:erin/nets/w.pt").revision == commit
    assert fake.count(prefix="/api/repos/erin/nets/branches/") == 0


def test_offline_the_source_is_skipped_with_one_line(tmp_path: Path) -> None:
    cat = Catalogue(settings=get_settings(home=tmp_path, offline=True))
    (summary,) = cat.sync(["github"])
    assert summary.status == "skipped" and summary.line() == "github: skipped: offline"


def test_a_sync_keeps_repositories_added_by_hand(fake: FakeGithub) -> None:
    _add(fake)
    fake.add_repo("frank/extra", {"x.pt": b"\x80" * 2000})
    cat = Catalogue()
    sn.add_github("frank/extra", catalogue=cat, resolve=False)
    (summary,) = cat.sync(["github"], options={"repositories": [REPO]})
    assert summary.status == "ok" and summary.removed == 0
    assert not cat.get("github:frank/extra/x.pt").removed_upstream


def test_no_connection_fails_the_sync_in_one_line_after_the_first_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SECURITYNET_GITHUB_API_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SECURITYNET_HTTP_RETRIES", "1")
    monkeypatch.setenv("SECURITYNET_HTTP_BACKOFF", "0.01")
    (summary,) = Catalogue().sync(["github"], options={"repositories": ["a/one", "b/two", "c/three"]})
    assert summary.status == "failed" and "ConnectionError (gave up after 2 attempts)" in (summary.error or "")
    assert "a/one" in (summary.error or "") and "b/two" not in (summary.error or "")
    assert "\n" not in summary.line()
