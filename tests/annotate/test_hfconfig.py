"""Hub config files -> architecture, classes, labels, preprocessing."""

from __future__ import annotations

from securitynet.annotate.hfconfig import (
    config_is_complete,
    is_timm_config,
    read_timm_config,
    read_transformers_config,
    timm_family,
)


def test_transformers_config_and_preprocessor() -> None:
    config = {
        "architectures": ["ViTForImageClassification"],
        "model_type": "vit",
        "image_size": 224,
        "id2label": {"0": "angular_leaf_spot", "1": "bean_rust", "2": "healthy"},
    }
    pre = {
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "size": {"height": 384, "width": 384},
    }
    facts = read_transformers_config(config, pre)
    assert (facts.architecture, facts.family, facts.num_classes) == (
        "ViTForImageClassification",
        "vit",
        3,
    )
    assert facts.labels == ["angular_leaf_spot", "bean_rust", "healthy"]
    assert facts.input_size == (3, 384, 384)  # the processor's size wins over the model's default
    assert facts.mean == (0.5, 0.5, 0.5) and facts.interpolation == "bilinear"
    assert facts.evidence["labels"] == "config.json: id2label" and facts.errors == []


def test_placeholder_labels_give_classes_not_names() -> None:
    facts = read_transformers_config(
        {"architectures": ["X"], "id2label": {"0": "LABEL_0", "1": "LABEL_1"}}
    )
    assert facts.num_classes == 2 and facts.labels is None


def test_gappy_id2label_is_an_error() -> None:
    facts = read_transformers_config({"architectures": ["X"], "id2label": {"0": "a", "5": "b"}})
    assert facts.num_classes == 6 and facts.labels is None
    assert facts.errors == ["config.json: id2label indices are not 0..1"]


def test_timm_config() -> None:
    config = {
        "architecture": "convnext_small",
        "num_classes": 1000,
        "pretrained_cfg": {
            "input_size": [3, 224, 224], "interpolation": "bicubic", "crop_pct": 0.875, "crop_mode": "center",
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        },
    }  # fmt: skip
    assert is_timm_config(config) and config_is_complete(config, timm=True)
    facts = read_timm_config(config)
    assert (facts.architecture, facts.family, facts.num_classes) == (
        "convnext_small",
        "convnext",
        1000,
    )
    assert (
        facts.input_size == (3, 224, 224)
        and facts.crop_pct == 0.875
        and facts.crop_mode == "center"
    )
    assert facts.std == (0.229, 0.224, 0.225)


def test_timm_backbone_without_head_has_no_classes() -> None:
    assert (
        read_timm_config({"architecture": "convnextv2_pico", "num_classes": 0}).num_classes is None
    )


def test_trimmed_listing_config_is_not_complete() -> None:
    assert not config_is_complete(
        {"architectures": ["ViTForImageClassification"], "model_type": "vit"}, timm=False
    )
    assert not config_is_complete(None, timm=True)


def test_timm_family() -> None:
    assert timm_family("vit_base_patch16_224") == "vit"
    assert timm_family("tf_efficientnetv2_s") == "efficientnetv2"


def test_catalogue_and_loader_read_a_preprocessor_config_alike() -> None:
    """``show`` and ``load`` take an entry's input from one reading of the file: a resize to
    256 then a 224 centre crop is the same fact in both, and a processor that does not
    normalise is stated as mean 0 / std 1 (not left to a default the loader would fill)."""
    from securitynet.annotate.hfconfig import preprocessing_from_hf

    beit = {"size": {"height": 256, "width": 256}, "do_center_crop": True,
            "crop_size": {"height": 224, "width": 224}, "resample": 3, "do_normalize": False}
    facts = read_transformers_config({"architectures": ["BeitForImageClassification"]}, beit)
    loader = preprocessing_from_hf(beit)
    assert (facts.input_size, facts.crop_pct, facts.crop_mode, facts.interpolation) == (
        loader["input_size"], loader["crop_pct"], loader["crop_mode"], loader["interpolation"]
    ) == ((3, 224, 224), 224 / 256, "squash", "bicubic")
    assert facts.mean == loader["mean"] == (0.0, 0.0, 0.0) and facts.std == (1.0, 1.0, 1.0)
    assert facts.evidence["mean"] == "preprocessor_config.json: do_normalize false"
    grey = preprocessing_from_hf({"image_mean": 0.5, "image_std": 0.5}, channels=1)
    assert grey == {"mean": (0.5,), "std": (0.5,)}
