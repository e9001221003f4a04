"""``securitynet.load(id)``: the catalogue entry's pins drive the loader end to end."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

import securitynet as sn
from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.ingest import write_records
from securitynet.errors import EntryNotFoundError, IntegrityError
from securitynet.records import EntryRecord, FileRef, LoadSpec


def _catalogue_with(tmp_path: Path, record: EntryRecord) -> Catalogue:
    cat = Catalogue(f"sqlite:///{tmp_path / 'cat.db'}")
    with cat.session() as s, s.begin():
        write_records(s, [record], origin="timm")
    return cat


def _entry(url: str, sha256: str) -> EntryRecord:
    return EntryRecord(
        id="timm:test_resnet.tiny",
        files=[FileRef(url=url, sha256=sha256)],
        load=LoadSpec(builder="timm", architecture="test_resnet", num_classes=3, labels=["a", "b", "c"]),
    )


def test_load_by_id_predicts_like_the_saved_net(http_server, tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save

    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False, num_classes=3).eval()
    body = save({k: v.contiguous() for k, v in net.state_dict().items()})
    cat = _catalogue_with(tmp_path, _entry(http_server.add("/w.safetensors", body), hashlib.sha256(body).hexdigest()))

    loaded = sn.load("timm:test_resnet.tiny", catalogue=cat)
    assert not loaded.net.training and loaded.labels == ["a", "b", "c"]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.net(x), net(x), atol=1e-5)
    with pytest.raises(EntryNotFoundError):
        sn.load("timm:not_there", catalogue=cat)


def test_load_by_id_refuses_bytes_that_do_not_match_the_catalogue_pin(http_server, tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save

    body = save({k: v.contiguous() for k, v in timm.create_model("test_resnet", num_classes=3).state_dict().items()})
    cat = _catalogue_with(tmp_path, _entry(http_server.add("/w.safetensors", body), "0" * 64))
    with pytest.raises(IntegrityError):
        sn.load("timm:test_resnet.tiny", catalogue=cat)
