"""Local clones: ids from the origin remote (any URL form), committed blobs rather than the
working tree, Git LFS pointers resolved to their object (from the clone when it has it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import securitynet as sn
from securitynet.catalogue.api import Catalogue
from securitynet.errors import InvalidQueryError
from securitynet.loader.cache import Cache, key_for
from securitynet.scrapers.github_clone import iter_clone_records, open_clone
from securitynet.scrapers.github_common import RepoRef
from securitynet.settings import get_settings
from tests.fakegithub import lfs_pointer
from tests.githubclones import git, make_clone


@pytest.mark.parametrize(
    "url",
    ["https://github.com/o/r.git", "https://github.com/o/r", "git@github.com:o/r.git", "ssh://git@github.com/o/r.git"],
)
def test_origin_forms(url: str) -> None:
    assert str(RepoRef.from_remote(url)) == "o/r"


@pytest.mark.parametrize("url", ["https://gitlab.com/o/r.git", "git@evil.example:o/r.git", "https://github.com/o"])
def test_other_hosts_and_bad_paths_are_refused(url: str) -> None:
    with pytest.raises(InvalidQueryError):
        RepoRef.from_remote(url)


def test_the_committed_blob_is_what_is_pinned_not_the_working_tree(tmp_path: Path) -> None:
    clone = make_clone(tmp_path / "c", "o/r", {"a/w.pt": b"committed", "b.txt": b"x", "c.safetensors": b"s"})
    (clone / "a/w.pt").write_bytes(b"edited after the commit")
    opened = open_clone(clone / "a")  # any folder inside the clone
    assert opened.root == clone.resolve() and opened.commit == git(clone, "rev-parse", "HEAD")
    records = {r.id: r for r, _ in iter_clone_records(opened, get_settings(home=tmp_path))}
    assert set(records) == {"github:o/r/a/w.pt", "github:o/r/c.safetensors"}
    ref = records["github:o/r/a/w.pt"].files[0]
    assert ref.sha256 == hashlib.sha256(b"committed").hexdigest() and ref.size == len(b"committed")
    assert records["github:o/r/c.safetensors"].files[0].format == "safetensors"


def test_lfs_pointers_resolve_to_their_object(tmp_path: Path) -> None:
    body, missing = b"\x00" * 3000, b"\x01" * 5000
    clone = make_clone(tmp_path / "c", "o/r", {"big.pt": lfs_pointer(body), "gone.pt": lfs_pointer(missing)})
    oid = hashlib.sha256(body).hexdigest()
    obj = clone / ".git/lfs/objects" / oid[:2] / oid[2:4] / oid
    obj.parent.mkdir(parents=True)
    obj.write_bytes(body)
    cat = Catalogue(settings=get_settings(home=tmp_path / "home"))
    sn.add_github(clone, catalogue=cat, resolve=False)
    entry = cat.get("github:o/r/big.pt")
    ref = entry.files[0]
    assert ref.url == f"https://media.githubusercontent.com/media/o/r/{entry.revision}/big.pt"
    assert (ref.sha256, ref.size) == (oid, 3000) and entry.raw["kind"] == "lfs"
    cache = Cache(cat.settings.resolved_cache_dir)
    assert cache.find(key_for(ref.url, entry.revision)) is not None  # loads without the network
    gone = cat.get("github:o/r/gone.pt")  # catalogued all the same; its object is fetched online
    assert gone.files[0].size == 5000 and cache.find(key_for(gone.files[0].url, gone.revision)) is None
