"""Signature matching of bare state dicts against registry architectures: prefixes,
other head widths, shared signatures told apart by what the nets compute, the cache."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from securitynet.annotate.archsig import (  # noqa: E402
    SignatureCache,
    SignatureIndex,
    build_index,
    settle,
    strip_wrappers,
)

ARCHS = {
    "torchvision": ["resnet18", "mobilenet_v2", "squeezenet1_1"],
    "timm": ["resnet18", "efficientnet_b0", "tf_efficientnet_b0", "vit_base_patch32_clip_224",
             "vit_base_patch32_clip_quickgelu_224"],
    "pytorchcv": ["resnet20_cifar10"],
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> SignatureIndex:
    cache = SignatureCache(tmp_path_factory.mktemp("sigs"))
    built = build_index(list(ARCHS), architectures=ARCHS, cache=cache, progress=False)
    assert built.failed == [] and built.computed == 9
    again = build_index(list(ARCHS), architectures=ARCHS, cache=cache, progress=False)
    assert (again.computed, again.cached) == (0, 9)  # the second build reads the cache only
    return again.index


def _state(net: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in net.state_dict().items()}


def test_a_renamed_state_dict_with_another_head_width_resolves(index: SignatureIndex) -> None:
    from torchvision import models

    state = _state(models.mobilenet_v2(num_classes=7), "module.model.")
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # an older save
    res = index.match(state)
    assert res.status == "resolved" and str(res.resolved) == "torchvision:mobilenet_v2"
    assert res.load_fields() == {"builder": "torchvision", "architecture": "mobilenet_v2",
                                 "num_classes": 7, "strip_prefix": "module.model."}


def test_a_cifar_net_from_pytorchcv_resolves_with_its_class_count(index: SignatureIndex) -> None:
    from pytorchcv.model_provider import get_model

    res = index.match(_state(get_model("resnet20_cifar10", pretrained=False, num_classes=100)))
    assert res.status == "resolved" and res.resolved is not None
    assert (str(res.resolved), res.resolved.num_classes) == ("pytorchcv:resnet20_cifar10", 100)


def test_same_tensors_same_function_is_resolved_with_the_equivalent_named(index: SignatureIndex) -> None:
    import timm

    state = _state(timm.create_model("resnet18", num_classes=10))
    res = index.match(state)
    assert res.status == "ambiguous" and {str(c) for c in res.candidates} == {"torchvision:resnet18", "timm:resnet18"}
    settled = settle(res, state)
    assert settled.status == "resolved" and str(settled.resolved) == "torchvision:resnet18"
    assert [str(c) for c in settled.equivalent] == ["timm:resnet18"]
    assert settled.resolved is not None and settled.resolved.num_classes == 10


@pytest.mark.parametrize(
    ("arch", "twin"),
    [("efficientnet_b0", "tf_efficientnet_b0"),  # "same" padding (and BN eps) in the tf_ port
     ("vit_base_patch32_clip_224", "vit_base_patch32_clip_quickgelu_224")],  # GELU vs QuickGELU
)
def test_same_tensors_other_function_stays_ambiguous(index: SignatureIndex, arch: str, twin: str) -> None:
    import timm

    torch.manual_seed(0)
    state = _state(timm.create_model(arch, num_classes=10))
    res = settle(index.match(state), state)
    assert res.status == "ambiguous" and res.resolved is None and res.load_fields() == {}
    assert {str(c) for c in res.candidates} == {f"timm:{arch}", f"timm:{twin}"}
    assert "compute other outputs" in (res.reason or "")


def test_mismatches_are_unresolved_with_the_reason(index: SignatureIndex) -> None:
    from torchvision import models

    state = _state(models.resnet18())
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    res = index.match(state)
    assert res.status == "unresolved" and "layer1.0.conv1.weight" in (res.reason or "")
    res = index.match({"features.0.weight": torch.zeros(3, 1, 3, 3)})
    assert res.status == "unresolved" and "tensor names" in (res.reason or "")


def test_only_a_prefix_every_name_shares_is_stripped() -> None:
    shapes = {"module.a": (1,), "module.b": (2,)}
    assert strip_wrappers(shapes) == ({"a": (1,), "b": (2,)}, "module.")
    assert strip_wrappers({"module.a": (1,), "b": (2,)}) == ({"module.a": (1,), "b": (2,)}, None)


def test_a_clone_checkpoint_is_resolved_and_loads_as_the_original(index: SignatureIndex, tmp_path: Path) -> None:
    """``add github ./clone`` matches a bare state dict saved from torchvision's ResNet-18
    (10 classes, ``model.`` prefix), and sn.load gives back the same function."""
    from torchvision import models

    import securitynet as sn
    from securitynet.catalogue.api import Catalogue
    from securitynet.settings import get_settings
    from tests.githubclones import make_clone

    torch.manual_seed(1)
    original = models.resnet18(num_classes=10).eval()
    buf = io.BytesIO()
    torch.save(_state(original, "model."), buf)
    clone = make_clone(tmp_path / "c", "dave/cifar", {"ckpt/resnet18.pth": buf.getvalue()})
    cat = Catalogue(settings=get_settings(home=tmp_path / "home"))
    sn.add_github(clone, catalogue=cat, index=index)
    entry = cat.get("github:dave/cifar/ckpt/resnet18.pth")
    assert entry.architecture == "resnet18" and entry.num_classes == 10
    assert entry.raw["architecture"]["status"] == entry.arch_resolution == "resolved"
    assert entry.load is not None and entry.load.strip_prefix == "model."
    loaded = sn.load(entry.id, catalogue=cat, offline=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.net(x), original(x), atol=1e-5)


def test_an_online_release_asset_is_downloaded_resolved_and_loads(
    index: SignatureIndex, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``add github OWNER/REPO``: a release asset (a SqueezeNet with a 5-class conv head,
    a DataParallel ``module.`` prefix) is fetched against its digest and matched."""
    from torchvision import models

    import securitynet as sn
    from securitynet.catalogue.api import Catalogue
    from tests.fakegithub import FakeGithub

    torch.manual_seed(2)
    original = models.squeezenet1_1(num_classes=5).eval()
    buf = io.BytesIO()
    torch.save(_state(original, "module."), buf)
    with FakeGithub() as fake:
        fake.load_recorded(shared_dir)
        for key, value in fake.settings_env().items():
            monkeypatch.setenv(key, value)
        fake.add_repo("gina/flowers", {}, releases={"v1": {"squeeze.pth": buf.getvalue()}})
        cat = Catalogue()
        sn.add_github("gina/flowers", catalogue=cat, index=index)
    entry = cat.get("github:gina/flowers/releases/v1/squeeze.pth")
    assert (entry.arch_resolution, entry.architecture, entry.num_classes) == ("resolved", "squeezenet1_1", 5)
    loaded = sn.load(entry.id, catalogue=cat, offline=True)  # the download is in the cache
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(loaded.net(x), original(x), atol=1e-5)
