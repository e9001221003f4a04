"""Architecture name -> architecture family, for every source.

torchvision (``wide_resnet50_2``), timm (``tf_efficientnet_b0``, ``vit_base_patch16_224``),
pytorchcv (``resnet20_cifar10``, ``bn_vgg16``) and Hugging Face model types all name the
same families differently. :func:`family_of` maps any of them to one lower-case family
name: a short list of ordered rules for the families whose names nest (ResNeXt inside
SE-ResNeXt, VGG inside RepVGG, ResNet inside Inception-ResNet ...), then the leading word
of the name (``shufflenet_v2_x1_0`` -> ``shufflenet``, ``hgnetv2_b0`` -> ``hgnet``).
"""

from __future__ import annotations

import re
from functools import lru_cache

#: (pattern searched in the lower-cased name, family). First match wins, so the more
#: specific pattern of two nested names comes first.
FAMILY_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), family)
    for pattern, family in (
        (r"^deit", "deit"),
        (r"^(?:vit|samvit)(?:_|$)", "vit"),
        (r"^eva(?:\d|_|$)", "eva"),
        (r"^beit", "beit"),
        (r"^swin", "swin"),
        (r"^tiny_?vit", "tinyvit"),
        (r"hiera", "hiera"),
        (r"convnext", "convnext"),
        (r"^inception_?next", "inceptionnext"),
        (r"inception_?resnet", "inception-resnet"),
        (r"inception|googlenet", "inception"),
        (r"^(?:nf_|dm_nfnet|eca_nfnet|nfnet)", "nfnet"),
        (r"^(?:csp|cs3)", "cspnet"),
        (r"darknet", "darknet"),
        (r"vovnet", "vovnet"),
        (r"^res2ne", "res2net"),
        (r"^tresnet", "tresnet"),
        (r"^rexnet", "rexnet"),
        (r"^fbnet", "fbnet"),
        (r"^nasnet", "nasnet"),
        (r"^alexnet", "alexnet"),
        (r"^zfnet", "zfnet"),
        (r"^drn", "drn"),
        (r"^scnet", "scnet"),
        (r"resnext", "resnext"),
        (r"wide_?resnet|^wrn\d", "wide-resnet"),
        (r"resnest", "resnest"),
        (r"resnet", "resnet"),
        (r"regnet", "regnet"),
        (r"halo", "halonet"),
        (r"botn", "botnet"),
        (r"repvgg", "repvgg"),
        (r"vgg", "vgg"),
        (r"densenet", "densenet"),
        (r"efficientnet|effnet", "efficientnet"),
        (r"mobilenet", "mobilenet"),
        (r"shufflenet", "shufflenet"),
        (r"squeezenet", "squeezenet"),
        (r"mnasnet", "mnasnet"),
    )
)

#: Prefixes naming who trained or ported a net, not what it is (``tf_``, ``gluon_`` ...).
_ORIGIN_PREFIX = re.compile(r"^(?:tf|gluon|legacy|ig|ssl|swsl|bn|ibnb?|bam|cbam|dm|eca|gc|se|fd)_")
_LEADING_WORD = re.compile(r"[a-z]+")


@lru_cache(maxsize=8192)
def family_of(architecture: str | None) -> str | None:
    """The family of ``architecture``, or None for an empty name.

    >>> family_of("wide_resnet50_2"), family_of("tf_efficientnet_b0"), family_of("resnet20_cifar10")
    ('wide-resnet', 'efficientnet', 'resnet')
    >>> family_of("hgnetv2_b0"), family_of("bn_vgg16"), family_of("vit_b_16")
    ('hgnet', 'vgg', 'vit')
    """
    if not architecture:
        return None
    name = architecture.strip().lower().rsplit("/", 1)[-1]
    for pattern, family in FAMILY_RULES:
        if pattern.search(name):
            return family
    stripped = _ORIGIN_PREFIX.sub("", name)
    match = _LEADING_WORD.match(stripped) or _LEADING_WORD.match(name)
    if match is None:
        return None
    word = match.group(0)
    rest = stripped[match.end() :] if match.string is stripped else name[match.end() :]
    # a version suffix glued to the word ("mobilevitv2", "ghostnetv3") is not the family
    if word.endswith("v") and len(word) > 2 and rest[:1].isdigit():
        word = word[:-1]
    return word
