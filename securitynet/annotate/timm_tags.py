"""The grammar of timm's pretrained tags (``resnet50.a1_in1k``, ``vit_base_patch16_224.augreg_in21k_ft_in1k``).

A tag is ``_``-separated tokens. The grammar reads them left to right:

- a **data-set token** (or two tokens that spell one: ``metaclip_400m``) is any name the
  data-set taxonomy knows (``in1k``, ``in21k``, ``in22k``, ``in12k``, ``laion2b``,
  ``openai``, ``webli``, ``jft``, ``ig1b``, ``m38m``, ...). Data sets appear in training
  order: ``laion2b_ft_in12k_in1k`` is LAION-2B, then ImageNet-12k, then ImageNet-1k. The
  last one is the data set the weights were finally trained on (:attr:`Stage.TRAIN`),
  every earlier one a pre-training step (:attr:`Stage.PRETRAIN`).
- a **method token** that implies its pre-training data when no data set follows it
  (``swag`` -> Instagram-3.6B, ``seer`` -> Instagram-1B, ``mae``/``fcmae``/``dino`` ->
  ImageNet-1k): ``swag_ft_in1k`` is Instagram-3.6B then ImageNet-1k.
- a **trait token** says how the weights were trained (``dist`` -> distilled, ``adv`` /
  ``ap`` -> adversarial training, ``mae`` / ``mim`` -> self-supervised pre-training ...).
- a **resolution token** (``384``, ``r224``) gives the training resolution.
- anything else (``a1``, ``ra2``, ``augreg``, ``fb``, ``tv``, ``sw``, ``e300`` ...) names a
  recipe or an origin; it is kept in :attr:`TagInfo.other` but means nothing to the chain.

torchvision's weight names (``IMAGENET1K_SWAG_E2E_V1``) use the same vocabulary; see
:func:`parse_tag`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from securitynet.annotate.datasets import canonical_dataset
from securitynet.records import DatasetLink, Stage

#: Method tokens that name a pre-training recipe whose data set the tag does not spell out.
IMPLIED_DATASETS: dict[str, str] = {
    "swag": "Instagram-3.6B",  # Singh et al. 2022, weakly supervised on IG-3.6B hashtags
    "seer": "Instagram-1B",  # Goyal et al. 2021/22, self-supervised on 1B Instagram images
    "mae": "ImageNet-1k",  # He et al. 2021, masked autoencoder pre-training on ImageNet-1k
    "fcmae": "ImageNet-1k",  # ConvNeXt-V2 fully-convolutional MAE on ImageNet-1k
    "dino": "ImageNet-1k",  # Caron et al. 2021, self-distillation on ImageNet-1k
}

#: Tokens that say how the weights were trained -> the trait recorded on the entry.
TRAIT_TOKENS: dict[str, str] = {
    "dist": "distilled",
    "distilled": "distilled",
    "adv": "adversarial-training",
    "ap": "adversarial-training",  # AdvProp: adversarial examples as augmentation
    "mae": "self-supervised-pretraining",
    "fcmae": "self-supervised-pretraining",
    "mim": "self-supervised-pretraining",
    "dino": "self-supervised-pretraining",
    "ijepa": "self-supervised-pretraining",
    "ssl": "semi-supervised",
    "ns": "semi-supervised",  # Noisy Student
    "swsl": "semi-weakly-supervised",
    "wsl": "weakly-supervised",
    "clip": "contrastive-image-text",
    "tinyclip": "contrastive-image-text",
    "mclip": "contrastive-image-text",
    "mclip2": "contrastive-image-text",
}

_RESOLUTION = re.compile(r"^r?(\d{3,4})$")


@dataclass(frozen=True, slots=True)
class ChainStep:
    """One data set named (or implied) by a tag, in training order."""

    dataset: str
    raw_name: str
    stage: Stage
    implied_by: str | None = None


@dataclass(frozen=True, slots=True)
class TagInfo:
    tag: str
    tokens: tuple[str, ...]
    chain: tuple[ChainStep, ...]
    traits: tuple[str, ...]
    resolution: int | None
    other: tuple[str, ...]

    @property
    def final_dataset(self) -> str | None:
        return self.chain[-1].dataset if self.chain else None


def _dataset_at(tokens: tuple[str, ...], i: int) -> tuple[str, str, int] | None:
    """(canonical name, raw name, tokens consumed) of a data set starting at ``tokens[i]``."""
    if i + 1 < len(tokens):
        pair = canonical_dataset(tokens[i] + tokens[i + 1])
        if pair is not None and pair != canonical_dataset(tokens[i]):  # datacomp_xl: DataComp-XL
            return pair, f"{tokens[i]}_{tokens[i + 1]}", 2
    single = canonical_dataset(tokens[i])
    if single is not None:
        return single, tokens[i], 1
    return None


@lru_cache(maxsize=4096)
def parse_tag(tag: str) -> TagInfo:
    """Read a timm pretrained tag (or a torchvision weight name) into a :class:`TagInfo`.

    >>> [(s.dataset, s.stage.value) for s in parse_tag("augreg_in21k_ft_in1k").chain]
    [('ImageNet-21k', 'pretrain'), ('ImageNet-1k', 'train')]
    >>> parse_tag("fb_dist_in1k").traits, parse_tag("in12k_ft_in1k_384").resolution
    (('distilled',), 384)
    """
    tokens = tuple(t for t in tag.strip().lower().split("_") if t)
    found: list[tuple[str, str, str | None]] = []  # (dataset, raw, implied_by)
    traits: list[str] = []
    other: list[str] = []
    resolution: int | None = None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        hit = _dataset_at(tokens, i)
        if hit is not None:
            found.append((hit[0], hit[1], None))
            i += hit[2]
            continue
        known = False
        if token in IMPLIED_DATASETS and (i + 1 >= len(tokens) or _dataset_at(tokens, i + 1) is None):
            found.append((IMPLIED_DATASETS[token], token, token))
            known = True
        if token in TRAIT_TOKENS:
            if TRAIT_TOKENS[token] not in traits:
                traits.append(TRAIT_TOKENS[token])
            known = True
        match = _RESOLUTION.match(token)
        if match is not None:
            resolution = int(match.group(1))
            known = True
        if not known and token != "ft":
            other.append(token)
        i += 1
    last = len(found) - 1
    chain = tuple(
        ChainStep(dataset, raw, Stage.TRAIN if n == last else Stage.PRETRAIN, implied_by)
        for n, (dataset, raw, implied_by) in enumerate(found)
    )
    return TagInfo(tag, tokens, chain, tuple(traits), resolution, tuple(other))


def chain_links(steps: tuple[ChainStep, ...] | list[ChainStep], *, source: str, evidence: str) -> list[DatasetLink]:
    """The training chain as :class:`DatasetLink` records, each citing ``evidence``."""
    links = []
    for step in steps:
        why = evidence if step.implied_by is None else f"{evidence}: '{step.implied_by}' implies {step.dataset}"
        links.append(
            DatasetLink(dataset=step.dataset, raw_name=step.raw_name, stage=step.stage, source=source, evidence=why)
        )
    return links
