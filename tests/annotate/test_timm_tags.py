"""The timm pretrained-tag grammar: tag -> training chain, traits, resolution."""

from __future__ import annotations

import pytest

from securitynet.annotate.timm_tags import chain_links, parse_tag
from securitynet.records import Stage

P, T = Stage.PRETRAIN, Stage.TRAIN


@pytest.mark.parametrize(
    ("tag", "chain"),
    [
        ("augreg_in21k_ft_in1k", [("ImageNet-21k", P), ("ImageNet-1k", T)]),
        ("in12k_ft_in1k", [("ImageNet-12k", P), ("ImageNet-1k", T)]),
        ("laion2b_ft_in12k_in1k", [("LAION-2B", P), ("ImageNet-12k", P), ("ImageNet-1k", T)]),
        ("openai_ft_in1k", [("OpenAI-WIT", P), ("ImageNet-1k", T)]),
        ("fb_in22k_ft_in1k", [("ImageNet-21k", P), ("ImageNet-1k", T)]),
        ("fb_wsl_ig1b_ft_in1k", [("Instagram-1B", P), ("ImageNet-1k", T)]),
        ("fb_ssl_yfcc100m_ft_in1k", [("YFCC100M", P), ("ImageNet-1k", T)]),
        ("ns_jft_in1k_475", [("JFT-300M", P), ("ImageNet-1k", T)]),
        ("mim_m38m_ft_in22k_in1k", [("Merged-38M", P), ("ImageNet-21k", P), ("ImageNet-1k", T)]),
        ("in1k_ft_in22k", [("ImageNet-1k", P), ("ImageNet-21k", T)]),
        ("tv_in1k", [("ImageNet-1k", T)]),
        ("augreg_in21k", [("ImageNet-21k", T)]),
        ("webli", [("WebLI", T)]),
        ("fb_inw21k", [("ImageNet-21k-Winter21", T)]),
        ("miil_in21k_ft_in1k", [("ImageNet-21K-P", P), ("ImageNet-1k", T)]),
        ("dfn2b", [("DFN-2B", T)]),
        ("dfn5b", [("DFN-5B", T)]),
        ("datacomp_xl_s13b_b90k", [("DataComp-XL", T)]),
        ("metaclip_2pt5b", [("MetaCLIP-2.5B", T)]),  # two tokens spell one data set
        ("fb", []),
        ("a1h_in1k", [("ImageNet-1k", T)]),
    ],
)
def test_chain_follows_the_data_sets_in_the_tag(tag: str, chain: list[tuple[str, Stage]]) -> None:
    assert [(s.dataset, s.stage) for s in parse_tag(tag).chain] == chain


def test_method_tokens_imply_their_pretraining_data_only_when_none_is_named() -> None:
    swag = parse_tag("swag_ft_in1k")
    assert [(s.dataset, s.implied_by) for s in swag.chain] == [("Instagram-3.6B", "swag"), ("ImageNet-1k", None)]
    assert [s.dataset for s in parse_tag("mae").chain] == ["ImageNet-1k"]
    # 'mae' followed by a data set does not add a second, implied ImageNet-1k step
    assert [(s.dataset, s.stage) for s in parse_tag("mae_in1k_ft_in1k").chain] == [
        ("ImageNet-1k", P),
        ("ImageNet-1k", T),
    ]
    assert [s.dataset for s in parse_tag("fcmae_ft_in22k_in1k").chain] == ["ImageNet-1k", "ImageNet-21k", "ImageNet-1k"]


@pytest.mark.parametrize(
    ("tag", "traits"),
    [
        ("fb_dist_in1k", ("distilled",)),
        ("goog_distilled_in1k", ("distilled",)),
        ("ap_in1k", ("adversarial-training",)),
        ("tf_ens_adv_in1k", ("adversarial-training",)),
        ("mae_in1k_ft_in1k", ("self-supervised-pretraining",)),
        ("fb_swsl_ig1b_ft_in1k", ("semi-weakly-supervised",)),
        ("clip_laion2b_augreg_ft_in1k", ("contrastive-image-text",)),
        ("ra2_in1k", ()),
    ],
)
def test_traits(tag: str, traits: tuple[str, ...]) -> None:
    assert parse_tag(tag).traits == traits


def test_resolution_and_other_tokens() -> None:
    info = parse_tag("clip_laion2b_augreg_ft_in12k_in1k_384")
    assert info.resolution == 384
    assert info.other == ("augreg",)
    assert parse_tag("e600_r384_in1k").resolution == 384
    assert parse_tag("tv_in1k").resolution is None
    assert parse_tag("tv_in1k").other == ("tv",)


def test_torchvision_weight_names_share_the_vocabulary() -> None:
    steps = parse_tag("IMAGENET1K_SWAG_E2E_V1").chain
    assert {(s.dataset, s.implied_by) for s in steps} == {("ImageNet-1k", None), ("Instagram-3.6B", "swag")}
    assert [s.dataset for s in parse_tag("IMAGENET1K_V2").chain] == ["ImageNet-1k"]


def test_chain_links_cite_the_tag() -> None:
    links = chain_links(parse_tag("swag_ft_in1k").chain, source="timm", evidence="pretrained tag 'swag_ft_in1k'")
    assert [(link.dataset, link.raw_name, link.stage) for link in links] == [
        ("Instagram-3.6B", "swag", P),
        ("ImageNet-1k", "in1k", T),
    ]
    assert all(link.source == "timm" and "swag_ft_in1k" in (link.evidence or "") for link in links)
    assert "'swag' implies Instagram-3.6B" in (links[0].evidence or "")

