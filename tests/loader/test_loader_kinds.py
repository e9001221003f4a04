"""Every kind of benign checkpoint loads through the real download path and predicts
exactly what the net it was saved from predicts."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from securitynet.errors import (
    ArchitectureMismatchError,
    UnsafeCheckpointError,
    UnsupportedEntryError,
)
from securitynet.loader import LoadedNet, load_entry
from securitynet.loader.builders import ModuleBuilder, register_builder, unregister_builder
from securitynet.records import EntryRecord, FileRef, LoadSpec

COMMIT = "a" * 40


def safetensors_bytes(state: dict[str, torch.Tensor], tmp_path: Path) -> bytes:
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path.read_bytes()


def torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def same_output(loaded: LoadedNet, reference: torch.nn.Module, x: torch.Tensor) -> None:
    reference.eval()
    with torch.no_grad():
        assert torch.allclose(loaded.net(x), reference(x), atol=1e-5)
    assert not loaded.net.training


# --- timm ---------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["test_resnet.r160_in1k", "test_vit.r160_in1k"])
def test_timm_registry_arch_from_plain_url(arch: str, http_server, tmp_path: Path) -> None:
    import timm

    reference = timm.create_model(arch, pretrained=False)
    body = safetensors_bytes(reference.state_dict(), tmp_path)
    url = http_server.add(f"/{arch}.safetensors", body)
    record = EntryRecord(
        id=f"timm:{arch}",
        files=[FileRef(url=url, checksum=hashlib.sha256(body).hexdigest()[:10], checksum_algo="sha256-prefix")],
        load=LoadSpec(builder="timm", architecture=arch, label_set="ImageNet-1k"),
    )
    loaded = load_entry(record)
    same_output(loaded, reference, torch.rand(2, 3, 160, 160))
    # Preprocessing comes from timm's pretrained config for the tag when the entry is silent.
    assert loaded.spec.input_size == (3, 160, 160)
    assert loaded.spec.crop_pct == reference.pretrained_cfg["crop_pct"]
    assert loaded.labels is not None and len(loaded.labels) == 1000 and loaded.labels[0] == "tench"
    from PIL import Image

    img = Image.new("RGB", (300, 200), (120, 30, 200))
    assert loaded.transform(img).shape == (3, 160, 160)


def test_timm_hf_hub_repo_reads_its_config(hf_endpoint, tmp_path: Path) -> None:
    import timm

    reference = timm.create_model("test_efficientnet", pretrained=False, num_classes=7)
    body = safetensors_bytes(reference.state_dict(), tmp_path)
    config = {
        "architecture": "test_efficientnet",
        "num_classes": 7,
        "num_features": 256,
        "pretrained_cfg": {"input_size": [3, 96, 96], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
                           "crop_pct": 1.0, "interpolation": "bicubic", "hf_hub_id": "someone/else"},
        "label_names": [f"class{i}" for i in range(7)],
    }
    hf_endpoint.add_hub_file("someone/tiny-effnet", "model.safetensors", body, commit=COMMIT)
    hf_endpoint.add_hub_file("someone/tiny-effnet", "config.json", json.dumps(config).encode(), commit=COMMIT, lfs=False)
    record = EntryRecord(
        id="hf:someone/tiny-effnet",
        revision=COMMIT,
        files=[FileRef(url="hf://someone/tiny-effnet/model.safetensors")],
        load=LoadSpec(builder="timm", architecture="hf-hub:someone/tiny-effnet"),
    )
    loaded = load_entry(record)
    same_output(loaded, reference, torch.rand(1, 3, 96, 96))
    assert loaded.spec.input_size == (3, 96, 96) and loaded.spec.interpolation == "bicubic"
    assert loaded.labels == [f"class{i}" for i in range(7)]
    # The pinned commit is what was asked for, and the LFS sha256 was recorded as the pin.
    assert all(COMMIT in h.path for h in hf_endpoint.hits if "/resolve/" in h.path)
    assert loaded.files[0].commit == COMMIT
    assert loaded.files[0].sha256 == hashlib.sha256(body).hexdigest()


def test_timm_config_cannot_redirect_the_download(hf_endpoint) -> None:
    config = {"architecture": "hf-hub:attacker/repo", "pretrained_cfg": {}}
    hf_endpoint.add_hub_file("someone/evil", "config.json", json.dumps(config).encode(), commit=COMMIT, lfs=False)
    hf_endpoint.add_hub_file("someone/evil", "model.safetensors", b"unused", commit=COMMIT)
    record = EntryRecord(
        id="hf:someone/evil",
        revision=COMMIT,
        files=[FileRef(url="hf://someone/evil/model.safetensors")],
        load=LoadSpec(builder="timm", architecture="hf-hub:someone/evil"),
    )
    with pytest.raises(UnsupportedEntryError, match="no architecture"):
        load_entry(record)
    assert not any("attacker" in h.path for h in hf_endpoint.hits)


def test_timm_hub_falls_back_to_pytorch_model_bin(hf_endpoint) -> None:
    import timm

    reference = timm.create_model("test_resnet", pretrained=False, num_classes=5)
    hf_endpoint.add_hub_file("old/repo", "pytorch_model.bin", torch_bytes(reference.state_dict()), commit=COMMIT)
    record = EntryRecord(
        id="timm:old-repo",
        revision=COMMIT,
        files=[FileRef(url="hf://old/repo/model.safetensors")],
        load=LoadSpec(builder="timm", architecture="test_resnet", num_classes=5),
    )
    loaded = load_entry(record)
    same_output(loaded, reference, torch.rand(1, 3, 64, 64))
    assert loaded.files[0].url == "hf://old/repo/pytorch_model.bin"
    # Offline, the fallback is found in the cache too, from its converted safetensors copy.
    again = load_entry(record, offline=True)
    assert [r.kind for r in again.files] == ["download", "convert"]


# --- torchvision --------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["squeezenet1_1", "mobilenet_v3_small"])
def test_torchvision_pth_with_sha256_prefix(arch: str, http_server) -> None:
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.get_model(arch, weights=None)
    body = torch_bytes(reference.state_dict())
    prefix = hashlib.sha256(body).hexdigest()[:8]
    url = http_server.add(f"/models/{arch}-{prefix}.pth", body)
    record = EntryRecord(
        id=f"torchvision:{arch}.IMAGENET1K_V1",
        files=[FileRef(url=url, checksum=prefix, checksum_algo="sha256-prefix", format="pytorch")],
        load=LoadSpec(builder="torchvision", architecture=arch, num_classes=1000, label_set="ImageNet-1k",
                      input_size=(3, 224, 224), crop_pct=224 / 256, interpolation="bilinear"),
    )
    loaded = load_entry(record)
    same_output(loaded, reference, torch.rand(1, 3, 224, 224))
    # The pickle-based file was read once and kept as safetensors; the next load reads that.
    assert [r.kind for r in loaded.files] == ["download", "convert"]
    again = load_entry(record, offline=True)
    same_output(again, reference, torch.rand(1, 3, 224, 224))
    assert len(http_server.gets(f"/models/{arch}-{prefix}.pth")) == 1


def test_torchvision_hub_helper_is_unsafe_and_we_are_not(http_server, tmp_path: Path) -> None:
    """torch.hub.load_state_dict_from_url (behind torchvision's weights.get_state_dict())
    unpickles with weights_only=False: the payload runs. Ours refuses the same file."""
    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    body = torch_bytes({"features.0.weight": torch.zeros(1), "x": Payload()})
    url = http_server.add("/models/squeezenet1_1-evil.pth", body)

    record = EntryRecord(
        id="torchvision:squeezenet1_1.IMAGENET1K_V1",
        files=[FileRef(url=url, checksum=hashlib.sha256(body).hexdigest()[:8], checksum_algo="sha256-prefix")],
        load=LoadSpec(builder="torchvision", architecture="squeezenet1_1"),
    )
    with pytest.raises(UnsafeCheckpointError):
        load_entry(record)
    assert not marker.exists()

    torch.hub.load_state_dict_from_url(url, model_dir=str(tmp_path / "hub"), progress=False)
    assert marker.exists(), "the payload is live: torch.hub ran it"


# --- pytorchcv (imgclsmob) ----------------------------------------------------------------


def imgclsmob_asset(net: torch.nn.Module, name: str) -> tuple[bytes, str, str]:
    """A release asset laid out like imgclsmob's: <name>-<err>-<sha1[:8]>.pth inside a zip;
    the published sha1 is the sha1 of the .pth (see pytorchcv's model_store.get_model_file)."""
    pth = torch_bytes(net.state_dict())
    sha1 = hashlib.sha1(pth).hexdigest()
    member = f"{name}-0597-{sha1[:8]}.pth"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, pth)
    return buf.getvalue(), sha1, member


def test_pytorchcv_zip_release_asset(http_server) -> None:
    from pytorchcv.model_provider import get_model

    torch.manual_seed(0)
    reference = get_model("resnet20_cifar10", pretrained=False)
    body, sha1, member = imgclsmob_asset(reference, "resnet20_cifar10")
    url = http_server.add(f"/osmr/imgclsmob/releases/download/v0.0.163/{member}.zip", body)
    record = EntryRecord(
        id="imgclsmob:resnet20_cifar10",
        files=[FileRef(url=url, checksum=sha1, checksum_algo="sha1", format="zip")],
        load=LoadSpec(builder="pytorchcv", architecture="resnet20_cifar10", label_set="CIFAR-10"),
    )
    loaded = load_entry(record)
    same_output(loaded, reference, torch.rand(2, 3, 32, 32))
    assert [r.kind for r in loaded.files] == ["extract", "convert"]
    assert loaded.files[0].digests["sha1"] == sha1
    assert loaded.spec.input_size == (3, 32, 32) and loaded.spec.mean == (0.4914, 0.4822, 0.4465)
    assert loaded.labels is not None and loaded.labels[3] == "cat"


def test_pytorchcv_wrong_sha1_is_refused(http_server) -> None:
    from pytorchcv.model_provider import get_model

    reference = get_model("resnet20_cifar10", pretrained=False)
    body, _sha1, member = imgclsmob_asset(reference, "resnet20_cifar10")
    url = http_server.add(f"/{member}.zip", body)
    record = EntryRecord(
        id="imgclsmob:resnet20_cifar10",
        files=[FileRef(url=url, checksum="0" * 40, checksum_algo="sha1", format="zip")],
        load=LoadSpec(builder="pytorchcv", architecture="resnet20_cifar10"),
    )
    from securitynet.errors import IntegrityError

    with pytest.raises(IntegrityError, match="inside the archive"):
        load_entry(record)


# --- transformers -------------------------------------------------------------------------


def tiny_vit() -> torch.nn.Module:
    import transformers

    config = transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=32, patch_size=8, num_labels=3,
        id2label={0: "cat", 1: "dog", 2: "bird"}, label2id={"cat": 0, "dog": 1, "bird": 2},
    )
    config.architectures = ["ViTForImageClassification"]
    torch.manual_seed(0)
    return transformers.ViTForImageClassification(config)


def serve_hf_model(server, repo: str, model: torch.nn.Module, tmp_path: Path, *, config: dict | None = None) -> bytes:
    model.save_pretrained(tmp_path / repo.replace("/", "--"))
    folder = tmp_path / repo.replace("/", "--")
    body = (folder / "model.safetensors").read_bytes()
    server.add_hub_file(repo, "model.safetensors", body, commit=COMMIT)
    cfg = json.loads((folder / "config.json").read_text()) if config is None else config
    server.add_hub_file(repo, "config.json", json.dumps(cfg).encode(), commit=COMMIT, lfs=False)
    pre = {"do_resize": True, "size": {"height": 32, "width": 32}, "resample": 2, "do_normalize": True,
           "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "image_processor_type": "ViTImageProcessor"}
    server.add_hub_file(repo, "preprocessor_config.json", json.dumps(pre).encode(), commit=COMMIT, lfs=False)
    return body


def hf_record(repo: str, *, files: list[str] | None = None) -> EntryRecord:
    names = files or ["model.safetensors", "config.json", "preprocessor_config.json"]
    roles = {"model.safetensors": "weights", "config.json": "config", "preprocessor_config.json": "preprocessor"}
    return EntryRecord(
        id=f"hf:{repo}",
        revision=COMMIT,
        files=[FileRef(url=f"hf://{repo}/{n}", role=roles.get(n, "weights")) for n in names],
        load=LoadSpec(builder="transformers", architecture="ViTForImageClassification"),
    )


def test_transformers_vit_from_the_hub(hf_endpoint, tmp_path: Path) -> None:
    reference = tiny_vit()
    serve_hf_model(hf_endpoint, "someone/tiny-vit", reference, tmp_path)
    loaded = load_entry(hf_record("someone/tiny-vit"))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.net(x), reference.eval()(pixel_values=x).logits, atol=1e-5)
    assert loaded.labels == ["cat", "dog", "bird"]
    assert loaded.spec.input_size == (3, 32, 32) and loaded.spec.mean == (0.5, 0.5, 0.5)
    assert loaded.spec.crop_mode == "squash"
    from PIL import Image

    assert loaded.transform(Image.new("RGB", (64, 48))).shape == (3, 32, 32)


def test_transformers_auto_map_config_is_refused(hf_endpoint, tmp_path: Path) -> None:
    reference = tiny_vit()
    cfg = reference.config.to_dict()
    cfg["auto_map"] = {"AutoModelForImageClassification": "modeling_evil.EvilModel"}
    serve_hf_model(hf_endpoint, "someone/remote-code", reference, tmp_path, config=cfg)
    with pytest.raises(UnsafeCheckpointError, match="auto_map"):
        load_entry(hf_record("someone/remote-code"))


def serve_sharded(server, repo: str, reference: torch.nn.Module, tmp_path: Path) -> dict[str, bytes]:
    state = reference.state_dict()
    names = sorted(state)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    bodies, weight_map = {}, {}
    for i, (shard, keys) in enumerate(shards.items()):
        (tmp_path / f"s{i}").mkdir()
        bodies[shard] = safetensors_bytes({k: state[k] for k in keys}, tmp_path / f"s{i}")
        server.add_hub_file(repo, shard, bodies[shard], commit=COMMIT)
        weight_map.update({k: shard for k in keys})
    serve_hf_model(server, repo, reference, tmp_path)
    index = json.dumps({"metadata": {}, "weight_map": weight_map}).encode()
    server.add_hub_file(repo, "model.safetensors.index.json", index, commit=COMMIT, lfs=False)
    return bodies


def sharded_record(repo: str, bodies: dict[str, bytes], *, pins: dict[str, str] | None = None) -> EntryRecord:
    """Files as the Hugging Face scraper lists them: the index (role "index"), then each
    shard with the size and LFS sha256 of the repository listing; config.json not listed."""
    pins = pins or {}
    files = [FileRef(url=f"hf://{repo}/model.safetensors.index.json", revision=COMMIT, format="json", role="index")]
    files += [
        FileRef(url=f"hf://{repo}/{name}", revision=COMMIT, size=len(body), format="safetensors",
                sha256=pins.get(name, hashlib.sha256(body).hexdigest()), role="weights")
        for name, body in bodies.items()
    ]
    return EntryRecord(id=f"hf:{repo}", revision=COMMIT, files=files,
                       load=LoadSpec(builder="transformers", architecture="ViTForImageClassification"))


def test_sharded_checkpoint_loads(hf_endpoint, tmp_path: Path) -> None:
    reference = tiny_vit()
    bodies = serve_sharded(hf_endpoint, "someone/sharded", reference, tmp_path)
    loaded = load_entry(sharded_record("someone/sharded", bodies))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.net(x), reference.eval()(pixel_values=x).logits, atol=1e-5)
    assert len(loaded.files) == 3  # the index and both shards


def test_a_shard_is_checked_against_the_pin_the_entry_lists(hf_endpoint, tmp_path: Path) -> None:
    from securitynet.errors import IntegrityError

    bodies = serve_sharded(hf_endpoint, "someone/sharded2", tiny_vit(), tmp_path)
    record = sharded_record("someone/sharded2", bodies, pins={"model-00002-of-00002.safetensors": "e" * 64})
    with pytest.raises(IntegrityError, match="Hub serves sha256"):
        load_entry(record)


@pytest.mark.parametrize("shard", ["../other/model.safetensors", "/etc/passwd", "sub/../../x.safetensors",
                                   "..\\x.safetensors", "https://evil.example/x.safetensors"])
def test_sharded_index_pointing_outside_its_folder_is_refused(shard: str, hf_endpoint, tmp_path: Path) -> None:
    reference = tiny_vit()
    serve_hf_model(hf_endpoint, "someone/escape", reference, tmp_path)
    index = json.dumps({"weight_map": {k: shard for k in reference.state_dict()}}).encode()
    hf_endpoint.add_hub_file("someone/escape", "sub/model.safetensors.index.json", index, commit=COMMIT, lfs=False)
    record = hf_record("someone/escape", files=["sub/model.safetensors.index.json", "config.json"])
    with pytest.raises(UnsafeCheckpointError, match="outside its folder"):
        load_entry(record)
    assert not any("other" in h.path or "passwd" in h.path for h in hf_endpoint.hits)


# --- quirks, mismatches, plug-ins ---------------------------------------------------------


def test_state_dict_key_and_prefix_quirks(http_server) -> None:
    import timm

    reference = timm.create_model("test_resnet", pretrained=False, num_classes=4)
    wrapped = {"epoch": 12, "arch": "test_resnet", "state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}
    url = http_server.add("/wrapped.pth", torch_bytes(wrapped))
    spec = LoadSpec(builder="timm", architecture="test_resnet", num_classes=4, state_dict_key="state_dict")
    record = EntryRecord(id="local:wrapped", files=[FileRef(url=url)], load=spec)
    with pytest.raises(ArchitectureMismatchError, match="unexpected") as info:
        load_entry(record)
    assert "module.fc.weight" in info.value.unexpected and "fc.weight" in info.value.missing
    record = record.model_copy(update={"load": spec.model_copy(update={"strip_prefix": "module."})})
    same_output(load_entry(record), reference, torch.rand(1, 3, 64, 64))


def test_wrong_architecture_names_the_mismatch(http_server, tmp_path: Path) -> None:
    import timm

    other = timm.create_model("test_resnet", pretrained=False, num_classes=10)
    url = http_server.add("/ten.safetensors", safetensors_bytes(other.state_dict(), tmp_path))
    record = EntryRecord(
        id="local:ten",
        files=[FileRef(url=url)],
        load=LoadSpec(builder="timm", architecture="test_resnet", num_classes=1000),
    )
    with pytest.raises(ArchitectureMismatchError) as info:
        load_entry(record)
    assert any(m.startswith("fc.weight: checkpoint (10,") for m in info.value.mismatched)


def test_unknown_builder_and_missing_weights() -> None:
    with pytest.raises(UnsupportedEntryError, match="no builder"):
        load_entry(EntryRecord(id="local:x", files=[FileRef(url="http://127.0.0.1:9/x")], load=LoadSpec(builder="keras")))
    with pytest.raises(UnsupportedEntryError, match="no weights"):
        load_entry(EntryRecord(id="local:x", load=LoadSpec(builder="timm", architecture="test_resnet")))
    with pytest.raises(UnsupportedEntryError, match="no load specification"):
        load_entry(EntryRecord(id="local:x"))


def test_a_source_plugs_in_its_own_architectures(http_server, tmp_path: Path) -> None:
    class Tiny(torch.nn.Module):
        def __init__(self, width: int = 4) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3 * 8 * 8, width)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x.flatten(1))

    reference = Tiny(width=6)
    url = http_server.add("/tiny.safetensors", safetensors_bytes(reference.state_dict(), tmp_path))
    register_builder(ModuleBuilder("github-test", {"tiny": Tiny}, defaults={"input_size": (3, 8, 8), "crop_pct": 1.0}))
    try:
        record = EntryRecord(
            id="github:someone/repo/tiny.pt",
            files=[FileRef(url=url)],
            load=LoadSpec(builder="github-test", architecture="tiny", kwargs={"width": 6}, labels=list("abcdef")),
        )
        loaded = load_entry(record)
        same_output(loaded, reference, torch.rand(1, 3, 8, 8))
        assert loaded.labels == list("abcdef") and loaded.spec.input_size == (3, 8, 8)
    finally:
        unregister_builder("github-test")


# --- legacy (pre-1.6) torch files ---------------------------------------------------------


def legacy_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def test_legacy_file_loads_only_when_upstream_pinned_it(http_server) -> None:
    """torchvision's and imgclsmob's older weights are pre-1.6 (non-zip) torch files. The
    safe reader refuses those by default; the loader reads one (still through the reader's
    restricted path) only when its bytes match the checksum upstream published."""
    import torchvision

    reference = torchvision.models.get_model("squeezenet1_1", weights=None)
    body = legacy_bytes(reference.state_dict())
    assert body[:2] != b"PK"
    url = http_server.add("/squeezenet1_1-legacy.pth", body)
    spec = LoadSpec(builder="torchvision", architecture="squeezenet1_1")
    unpinned = EntryRecord(id="local:legacy", files=[FileRef(url=url)], load=spec)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_entry(unpinned)
    assert info.value.reason == "legacy-refused"

    prefix = hashlib.sha256(body).hexdigest()[:8]
    pinned = EntryRecord(
        id="torchvision:squeezenet1_1.IMAGENET1K_V1",
        files=[FileRef(url=url, checksum=prefix, checksum_algo="sha256-prefix")],
        load=spec,
    )
    same_output(load_entry(pinned), reference, torch.rand(1, 3, 224, 224))


# --- lazy (meta-device) construction ------------------------------------------------------


class WithComputedState(torch.nn.Module):
    """Things a net computes in __init__ that no checkpoint holds: a non-persistent buffer,
    a plain tensor attribute, and a tied weight."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(4, 4, bias=False)
        self.head = torch.nn.Linear(4, 4, bias=False)
        self.head.weight = self.embed.weight  # tied
        self.register_buffer("scale", torch.arange(1.0, 5.0), persistent=False)
        self.offset = torch.full((4,), 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x) * self.scale) + self.offset


@pytest.mark.parametrize("drop", [[], ["tie"]])
def test_nets_with_state_of_their_own_are_built_for_real(drop: list[str], http_server, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = WithComputedState()
    if drop:  # untie, so only the computed buffer and attribute force the real build
        reference.head.weight = torch.nn.Parameter(reference.embed.weight.detach().clone())
    state = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    url = http_server.add("/computed.safetensors", safetensors_bytes(state, tmp_path))
    register_builder(ModuleBuilder("computed-test", {"net": WithComputedState}))
    try:
        record = EntryRecord(id="local:computed", files=[FileRef(url=url)],
                             load=LoadSpec(builder="computed-test", architecture="net"))
        loaded = load_entry(record)
        x = torch.rand(3, 4)
        with torch.no_grad():
            assert torch.allclose(loaded.net(x), reference(x))
        assert loaded.net.scale.device.type == "cpu" and loaded.net.offset.device.type == "cpu"
    finally:
        unregister_builder("computed-test")


def test_meta_build_gives_the_checkpoint_tensors_in_the_nets_dtype(http_server, tmp_path: Path) -> None:
    import timm

    reference = timm.create_model("test_resnet", pretrained=False, num_classes=2).eval()
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in reference.state_dict().items()}
    url = http_server.add("/half.safetensors", safetensors_bytes(half, tmp_path))
    loaded = load_entry(EntryRecord(id="local:half", files=[FileRef(url=url)],
                                    load=LoadSpec(builder="timm", architecture="test_resnet", num_classes=2)))
    assert {p.dtype for p in loaded.net.parameters()} == {torch.float32}
    assert all(not t.is_meta for t in loaded.net.state_dict().values())


# --- torchvision: the same layout as torchvision's own builder with weights ---------------


def _torchvision_records(archs: set[str] | None = None) -> list[EntryRecord]:
    from securitynet.scrapers.base import SyncContext
    from securitynet.scrapers.torchvision import TorchvisionScraper
    from securitynet.settings import get_settings

    records = [r for r in TorchvisionScraper().iter_records(SyncContext(settings=get_settings()))
               if isinstance(r, EntryRecord) and r.load is not None]
    return [r for r in records if archs is None or r.load.architecture in archs]  # type: ignore[union-attr]


def _assert_same_layout_as_torchvision(record: EntryRecord, monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the net our way and torchvision's way *with its weights enum* (on the meta
    device, with the download and the load_state_dict stubbed out: nothing is fetched),
    and compare every tensor name, shape and the constructor switches that matter."""
    import torchvision
    from torchvision.models._api import WeightsEnum

    from securitynet.loader.builders import BuildContext, TorchvisionBuilder

    spec = record.load
    assert spec is not None and spec.architecture is not None
    built = TorchvisionBuilder().build(BuildContext(record, spec))
    ours = built.finish(built.net) if built.finish and built.net is not None else built.net
    weights = torchvision.models.get_weight(record.raw["weights"])
    with monkeypatch.context() as m:
        m.setattr(WeightsEnum, "get_state_dict", lambda self, *a, **k: {})
        m.setattr(torch.nn.Module, "load_state_dict", lambda self, *a, **k: None)
        try:
            with torch.device("meta"):
                theirs = torchvision.models.get_model(spec.architecture, weights=weights)
        except (NotImplementedError, RuntimeError):  # an __init__ that needs real tensors
            theirs = torchvision.models.get_model(spec.architecture, weights=weights)
    assert ours is not None
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert ours_sd.keys() == theirs_sd.keys(), record.id
    assert all(ours_sd[k].shape == theirs_sd[k].shape for k in ours_sd), record.id
    assert getattr(ours, "transform_input", None) == getattr(theirs, "transform_input", None), record.id


@pytest.mark.parametrize("arch", ["googlenet", "inception_v3", "vit_b_16", "maxvit_t", "resnet50"])
def test_torchvision_builder_matches_torchvision_with_weights(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for record in _torchvision_records({arch}):
        _assert_same_layout_as_torchvision(record, monkeypatch)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # builds every torchvision net twice: minutes on a loaded machine
def test_every_torchvision_entry_matches_torchvision_with_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    records = _torchvision_records()
    assert len(records) > 100
    for record in records:
        _assert_same_layout_as_torchvision(record, monkeypatch)


def test_torchvision_inception_gets_its_pretrained_input_transform(http_server) -> None:
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.googlenet(weights=None, transform_input=True, aux_logits=True, init_weights=False)
    body = torch_bytes(reference.state_dict())
    url = http_server.add("/googlenet.pth", body)
    record = EntryRecord(
        id="torchvision:googlenet.IMAGENET1K_V1",
        files=[FileRef(url=url, checksum=hashlib.sha256(body).hexdigest()[:8], checksum_algo="sha256-prefix")],
        load=LoadSpec(builder="torchvision", architecture="googlenet", num_classes=1000),
    )
    loaded = load_entry(record)
    assert loaded.net.transform_input is True
    same_output(loaded, reference, torch.rand(1, 3, 224, 224))


def test_an_entry_we_cannot_build_downloads_nothing(http_server) -> None:
    url = http_server.add("/big.safetensors", b"x" * 1000)
    record = EntryRecord(id="timm:nope", files=[FileRef(url=url)],
                         load=LoadSpec(builder="timm", architecture="no_such_architecture"))
    with pytest.raises(UnsupportedEntryError, match="no architecture"):
        load_entry(record)
    assert http_server.hits == []


@pytest.mark.gpu
def test_load_onto_a_cuda_device(http_server, tmp_path: Path) -> None:
    import timm

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    reference = timm.create_model("test_vit", pretrained=False, num_classes=3).eval()
    url = http_server.add("/cuda.safetensors", safetensors_bytes(reference.state_dict(), tmp_path))
    record = EntryRecord(id="local:cuda", files=[FileRef(url=url)],
                         load=LoadSpec(builder="timm", architecture="test_vit", num_classes=3))
    loaded = load_entry(record, device="cuda")
    assert {p.device.type for p in loaded.net.parameters()} == {"cuda"}
    x = torch.rand(2, 3, 160, 160)
    with torch.no_grad():
        assert torch.allclose(loaded.net(x.cuda()).cpu(), reference(x), atol=1e-4)
