"""Architecture -> family, across torchvision, timm and pytorchcv names."""

from __future__ import annotations

import pytest

from securitynet.annotate.families import family_of


@pytest.mark.parametrize(
    ("architecture", "family"),
    [
        # torchvision
        ("resnet50", "resnet"),
        ("wide_resnet50_2", "wide-resnet"),
        ("resnext101_64x4d", "resnext"),
        ("vit_b_16", "vit"),
        ("swin_v2_t", "swin"),
        ("efficientnet_v2_s", "efficientnet"),
        ("mobilenet_v3_large", "mobilenet"),
        ("regnet_y_128gf", "regnet"),
        ("shufflenet_v2_x1_0", "shufflenet"),
        ("googlenet", "inception"),
        ("vgg16_bn", "vgg"),
        ("maxvit_t", "maxvit"),
        # timm
        ("tf_efficientnet_b7", "efficientnet"),
        ("vit_base_patch16_clip_224", "vit"),
        ("deit3_base_patch16_224", "deit"),
        ("convnextv2_tiny", "convnext"),
        ("eva02_large_patch14_448", "eva"),
        ("seresnext50_32x4d", "resnext"),
        ("inception_resnet_v2", "inception-resnet"),
        ("repvgg_a2", "repvgg"),
        ("dm_nfnet_f0", "nfnet"),
        ("cs3darknet_focus_l", "cspnet"),
        ("tiny_vit_21m_224", "tinyvit"),
        ("mobilevitv2_050", "mobilevit"),
        ("hgnetv2_b0", "hgnet"),
        ("levit_128", "levit"),
        # pytorchcv
        ("resnet20_cifar10", "resnet"),
        ("preresnet56_svhn", "resnet"),
        ("bn_vgg16", "vgg"),
        ("wrn16_10_cifar100", "wide-resnet"),
        ("densenet40_k12_bc_cifar10", "densenet"),
        ("pyramidnet110_a48_cifar10", "pyramidnet"),
        ("alexnetb", "alexnet"),
    ],
)
def test_family_of(architecture: str, family: str) -> None:
    assert family_of(architecture) == family


def test_empty_names_have_no_family() -> None:
    assert family_of("") is None
    assert family_of(None) is None
