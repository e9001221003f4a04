"""Preprocessing from a LoadSpec, and label names."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from securitynet.annotate.hfconfig import preprocessing_from_hf
from securitynet.errors import UnsupportedEntryError
from securitynet.loader.layernet import build_layer_net
from securitynet.loader.preprocessing import build_transform, label_names
from securitynet.records import LoadSpec


def photo(w: int = 301, h: int = 217) -> Image.Image:
    g = torch.Generator().manual_seed(0)
    arr = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()
    return Image.fromarray(arr)


@pytest.mark.parametrize(
    ("size", "crop_pct", "crop_mode", "interpolation"),
    [(224, 0.875, "center", "bilinear"), (160, 0.95, "center", "bicubic"), (224, 1.0, "squash", "bicubic"),
     (96, 0.9, "border", "bilinear"), ((3, 128, 96), 0.9, "center", "bilinear")],
)
def test_same_as_timms_eval_transform(size, crop_pct, crop_mode, interpolation) -> None:
    from timm.data import create_transform

    input_size = size if isinstance(size, tuple) else (3, size, size)
    spec = LoadSpec(builder="timm", input_size=input_size, crop_pct=crop_pct, crop_mode=crop_mode,
                    interpolation=interpolation, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    ours = build_transform(spec)(photo())
    theirs = create_transform(input_size=input_size, crop_pct=crop_pct, crop_mode=crop_mode,
                              interpolation=interpolation, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))(photo())
    assert ours.shape == input_size
    assert torch.equal(ours, theirs)


def test_crop_fraction_that_floats_badly_still_resizes_as_intended() -> None:
    """A preset "resize 375, crop 224" stored as crop_pct = 224/375: in floating point
    floor(224 / (224/375)) is 374, and timm's own transform resizes to 374."""
    import math

    from torchvision.transforms import functional as F

    assert math.floor(224 / (224 / 375)) == 374
    spec = LoadSpec(builder="torchvision", input_size=(3, 224, 224), crop_pct=224 / 375)
    img = photo(500, 400)
    ours = build_transform(spec)(img)
    expected = F.center_crop(F.resize(img, 375), 224)
    expected = F.normalize(F.to_tensor(expected), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert torch.equal(ours, expected)


def test_tensors_and_channels() -> None:
    t = build_transform(LoadSpec(builder="x", input_size=(3, 32, 32), crop_pct=1.0, mean=(0.5,) * 3, std=(0.5,) * 3))
    gray = Image.new("L", (32, 32), 255)
    assert t(gray).shape == (3, 32, 32) and torch.allclose(t(gray), torch.ones(3, 32, 32))
    u8 = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    assert torch.allclose(t(u8), torch.ones(3, 32, 32))
    with pytest.raises(TypeError):
        t("not an image")
    with pytest.raises(UnsupportedEntryError, match="channel"):
        build_transform(LoadSpec(builder="x", input_size=(1, 28, 28), mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0)))


def test_label_sets() -> None:
    names = label_names(LoadSpec(builder="x", label_set="imagenet-1k"), num_outputs=1000)
    assert names is not None and len(names) == 1000 and names[0] == "tench" and names[207] == "golden retriever"
    assert label_names(LoadSpec(builder="x", label_set="cifar10")) == [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    c100 = label_names(LoadSpec(builder="x", label_set="CIFAR-100"))
    assert c100 is not None and len(c100) == 100 and c100[0] == "apple" and c100[-1] == "worm"
    assert label_names(LoadSpec(builder="x", label_set="Fashion-MNIST"))[9] == "Ankle boot"  # type: ignore[index]
    assert label_names(LoadSpec(builder="x", labels=["a", "b"])) == ["a", "b"]
    assert label_names(LoadSpec(builder="x", label_set="some private set")) is None
    assert label_names(LoadSpec(builder="x")) is None
    assert label_names(LoadSpec(builder="x", label_set="CIFAR-10"), num_outputs=100) is None  # never misaligned
    for count in (21841, 21843, 11221, 11821):  # ImageNet-21k variants told apart by their size, as timm does
        in21k = label_names(LoadSpec(builder="x", label_set="ImageNet-21k"), num_outputs=count)
        assert in21k is not None and len(in21k) == count
    assert label_names(LoadSpec(builder="x", label_set="ImageNet-21k"), num_outputs=19168) is None


def test_hub_preprocessor_configs() -> None:
    vit = {"do_resize": True, "size": {"height": 224, "width": 224}, "resample": 2,
           "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    assert preprocessing_from_hf(vit) == {"mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear",
                                          "input_size": (3, 224, 224), "crop_mode": "squash", "crop_pct": 1.0}
    convnext = {"size": {"shortest_edge": 224}, "crop_pct": 0.875, "resample": 3}
    assert preprocessing_from_hf(convnext)["crop_pct"] == 0.875
    beit = {"size": {"height": 256, "width": 256}, "do_center_crop": True, "crop_size": {"height": 224, "width": 224}}
    assert preprocessing_from_hf(beit) == {"input_size": (3, 224, 224), "crop_mode": "squash", "crop_pct": 224 / 256}
    deit = {"size": {"shortest_edge": 256}, "do_center_crop": True, "crop_size": 224}
    assert preprocessing_from_hf(deit)["crop_pct"] == 224 / 256


def test_layer_nets_are_data_only() -> None:
    net = build_layer_net([
        {"op": "conv2d", "name": "features.0", "in_channels": 1, "out_channels": 2, "kernel_size": 3},
        {"op": "relu"}, {"op": "flatten"},
        {"op": "linear", "name": "head", "in_features": 2 * 26 * 26, "out_features": 4},
        {"op": "dropout", "p": 0.5},
    ])
    assert set(net.state_dict()) == {"features.0.weight", "features.0.bias", "head.weight", "head.bias"}
    net.eval()
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(net(x), net(x))  # eval mode reached the unnamed dropout
    for bad, match in [
        ([{"op": "exec", "code": "1"}], "unknown op"),
        ([{"op": "linear", "in_features": 2, "out_features": 2}], "needs a 'name'"),
        ([{"op": "linear", "name": "a", "in_features": 2, "out_features": 2, "device": "cuda"}], "unknown arguments"),
        ([{"op": "relu", "name": "a b"}], "bad name"),
        ([{"op": "conv2d", "name": "c", "in_channels": {"x": 1}, "out_channels": 1, "kernel_size": 1}], "plain value"),
        ([], "non-empty"),
    ]:
        with pytest.raises(UnsupportedEntryError, match=match):
            build_layer_net(bad)
