"""The data-set taxonomy: canonical names, what upstream sources call them, basic facts.

Scrapers and annotators call :func:`canonical_dataset` on every raw name they meet; a name
that is not known stays as written (the raw name is always stored beside the canonical one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    name: str
    num_classes: int | None = None
    kind: str = "images"  # images | image-text | eval (an evaluation-only variant)
    url: str | None = None
    aliases: tuple[str, ...] = field(default=())
    #: The corpus this is a release or subset of (ImageNet-21K-P -> ImageNet-21k): a source
    #: that names the parent while its head has this label count means this variant.
    variant_of: str | None = None


DATASETS: tuple[DatasetInfo, ...] = (
    DatasetInfo(
        "ImageNet-1k",
        1000,
        url="https://image-net.org/",
        aliases=(
            "imagenet",
            "in1k",
            "imagenet1k",
            "ilsvrc2012",
            "ilsvrc",
            "imagenet-1k",
            "ilsvrc-2012",
            "imagenet2012",
            "ilsvrc12",
            "imagenet_1k",
            "imagenet2012_1k",
        ),
    ),
    DatasetInfo(
        "ImageNet-21k",
        21843,
        url="https://image-net.org/",
        aliases=(
            "in21k",
            "in22k",
            "imagenet21k",
            "imagenet22k",
            "imagenet-22k",
            "fall11",
        ),
    ),
    # ImageNet-21K-P (Ridnik et al., arXiv:2104.10972): the winter-2021 release cleaned to
    # 11,221 classes; timm's ``miil_in21k`` heads.
    DatasetInfo(
        "ImageNet-21K-P",
        11221,
        url="https://github.com/Alibaba-MIIL/ImageNet21K",
        aliases=("imagenet21kp", "in21kp", "miilin21k", "imagenet21kmiil"),
        variant_of="ImageNet-21k",
    ),
    # The winter-2021 ImageNet-21k release (19,167 synsets; timm's ``fb_inw21k`` heads have
    # 19,168 outputs).
    DatasetInfo(
        "ImageNet-21k-Winter21",
        19168,
        url="https://image-net.org/",
        aliases=("inw21k", "imagenet21kwinter", "imagenet21k_winter", "in21kwinter", "winter21"),
        variant_of="ImageNet-21k",
    ),
    DatasetInfo(
        "ImageNet-12k",
        11821,
        url="https://github.com/rwightman/imagenet-12k",
        aliases=("in12k", "imagenet12k"),
    ),
    DatasetInfo("ImageNet-ReaL", 1000, kind="eval", aliases=("imagenetreal", "real")),
    DatasetInfo(
        "ImageNet-V2", 1000, kind="eval", aliases=("imagenetv2", "imagenetv2matchedfrequency")
    ),
    DatasetInfo("ImageNet-A", 200, kind="eval", aliases=("imageneta",)),
    DatasetInfo("ImageNet-R", 200, kind="eval", aliases=("imagenetr",)),
    DatasetInfo("ImageNet-Sketch", 1000, kind="eval", aliases=("imagenetsketch",)),
    DatasetInfo(
        "CIFAR-10",
        10,
        url="https://www.cs.toronto.edu/~kriz/cifar.html",
        aliases=("cifar10", "cifar"),
    ),
    DatasetInfo(
        "CIFAR-100", 100, url="https://www.cs.toronto.edu/~kriz/cifar.html", aliases=("cifar100",)
    ),
    DatasetInfo("SVHN", 10, url="http://ufldl.stanford.edu/housenumbers/", aliases=("svhn",)),
    DatasetInfo("MNIST", 10, url="http://yann.lecun.com/exdb/mnist/", aliases=("mnist",)),
    DatasetInfo(
        "Fashion-MNIST",
        10,
        url="https://github.com/zalandoresearch/fashion-mnist",
        aliases=("fashionmnist", "fmnist"),
    ),
    DatasetInfo(
        "CUB-200-2011", 200, aliases=("cub", "cub200", "cub2002011", "cub200_2011", "birds")
    ),
    DatasetInfo("STL-10", 10, aliases=("stl10",)),
    DatasetInfo("Tiny-ImageNet", 200, aliases=("tinyimagenet", "tinyimagenet200")),
    DatasetInfo("GTSRB", 43, aliases=("gtsrb",)),
    DatasetInfo("CelebA", None, aliases=("celeba",)),
    DatasetInfo("Places365", 365, aliases=("places365", "places")),
    DatasetInfo("Food-101", 101, aliases=("food101",)),
    DatasetInfo("Oxford-IIIT-Pet", 37, aliases=("oxfordiiitpet", "pets", "oxfordpets", "pets37")),
    DatasetInfo(
        "Oxford-Flowers-102", 102, aliases=("flowers102", "oxfordflowers102", "oxford102flowers")
    ),
    DatasetInfo("Stanford-Cars", 196, aliases=("stanfordcars", "cars196")),
    DatasetInfo("EuroSAT", 10, aliases=("eurosat",)),
    DatasetInfo("Beans", 3, aliases=("beans",)),
    DatasetInfo("Caltech-101", 101, aliases=("caltech101",)),
    DatasetInfo("LAION-2B", None, kind="image-text", aliases=("laion2b", "laion2ben", "laion")),
    DatasetInfo("LAION-400M", None, kind="image-text", aliases=("laion400m",)),
    DatasetInfo("DataComp-1B", None, kind="image-text", aliases=("datacomp1b", "datacomp")),
    # Apple's Data Filtering Networks corpora (Fang et al., arXiv:2309.17425): pools of
    # their own, filtered from DataComp-12.8B (DFN-2B) and a larger crawl (DFN-5B).
    DatasetInfo("DFN-2B", None, kind="image-text", aliases=("dfn2b",)),
    DatasetInfo("DFN-5B", None, kind="image-text", aliases=("dfn5b",)),
    DatasetInfo("WebLI", None, kind="image-text", aliases=("webli",)),
    DatasetInfo("OpenAI-WIT", None, kind="image-text", aliases=("openai", "wit400m", "openaiwit")),
    DatasetInfo("JFT-300M", 18291, aliases=("jft300m", "jft")),
    DatasetInfo("JFT-3B", None, aliases=("jft3b",)),
    DatasetInfo("Instagram-1B", None, aliases=("ig1b", "instagram1b")),
    DatasetInfo("Instagram-3.5B", None, aliases=("ig3.5b", "instagram3.5b")),
    DatasetInfo("YFCC100M", None, aliases=("yfcc100m", "yfcc")),
    DatasetInfo("Merged-38M", None, aliases=("m38m", "merged38m")),
    DatasetInfo("Merged-30M", None, aliases=("m30m", "merged30m")),
    DatasetInfo("COCO", 80, aliases=("coco", "mscoco")),
    # Pre-training corpora named by timm tags and torchvision weights (SWAG: IG-3.6B, arXiv:2201.08371).
    DatasetInfo("Instagram-3.6B", None, aliases=("ig3.6b", "instagram3.6b")),
    DatasetInfo("LVD-142M", None, aliases=("lvd142m",)),
    DatasetInfo("LVD-1689M", None, aliases=("lvd1689m",)),
    DatasetInfo("SAT-493M", None, aliases=("sat493m",)),
    DatasetInfo("SA-1B", None, aliases=("sa1b",)),
    DatasetInfo("Bamboo", None, aliases=("bamboo",)),
    DatasetInfo("CC12M", None, kind="image-text", aliases=("cc12m", "conceptual12m")),
    DatasetInfo("YFCC-15M", None, kind="image-text", aliases=("yfcc15m",)),
    DatasetInfo("DataComp-XL", None, kind="image-text", aliases=("datacompxl", "commonpoolxl")),
    DatasetInfo("DFN-DR-2B", None, kind="image-text", aliases=("dfndr2b", "datacompdr")),
    DatasetInfo("Merged-2B", None, kind="image-text", aliases=("merged2b",)),
    DatasetInfo("LAION-Aesthetics", None, kind="image-text", aliases=("laiona", "laionaesthetics")),
    DatasetInfo("MetaCLIP-400M", None, kind="image-text", aliases=("metaclip400m",)),
    DatasetInfo(
        "MetaCLIP-2.5B", None, kind="image-text", aliases=("metaclip2.5b", "metaclip2pt5b")
    ),
    DatasetInfo("MetaCLIP-2-Worldwide", None, kind="image-text", aliases=("metaclip2worldwide",)),
)

_BY_KEY: dict[str, str] = {}


def _key(raw: str) -> str:
    return re.sub(r"[^a-z0-9]", "", raw.lower())


for _info in DATASETS:
    _BY_KEY[_key(_info.name)] = _info.name
    for _alias in _info.aliases:
        _BY_KEY[_key(_alias)] = _info.name

_BY_NAME: dict[str, DatasetInfo] = {info.name: info for info in DATASETS}


def canonical_dataset(raw: str | None) -> str | None:
    """The canonical name for ``raw`` (case, spaces, dashes and owner prefixes ignored), or None.

    >>> canonical_dataset("imagenet-1k"), canonical_dataset("uoft-cs/cifar10"), canonical_dataset("beans")
    ('ImageNet-1k', 'CIFAR-10', 'Beans')
    """
    if not raw:
        return None
    text = raw.strip()
    if "/" in text:  # Hub data-set ids: owner/name
        text = text.rsplit("/", 1)[1]
    return _BY_KEY.get(_key(text))


def dataset_name(raw: str) -> str:
    """Canonical name when known, else the raw name stripped."""
    return canonical_dataset(raw) or raw.strip()


def dataset_info(name: str) -> DatasetInfo | None:
    return _BY_NAME.get(name)


def training_traits(chain: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Traits that follow from the data sets of a training chain, each with its reason:
    a step on an image-text corpus means contrastive image-text (CLIP-style) training,
    whatever the model's name or tag says.

    >>> training_traits(["LAION-2B", "ImageNet-1k"])
    {'contrastive-image-text': 'trained on LAION-2B, an image-text corpus'}
    """
    out: dict[str, str] = {}
    for name in chain:
        info = _BY_NAME.get(name)
        if info is not None and info.kind == "image-text":
            out.setdefault("contrastive-image-text", f"trained on {name}, an image-text corpus")
    return out


def dataset_variant(name: str, num_classes: int | None) -> str:
    """The release of ``name`` whose label set has ``num_classes`` classes, else ``name``.

    >>> dataset_variant("ImageNet-21k", 11221), dataset_variant("ImageNet-21k", 21843)
    ('ImageNet-21K-P', 'ImageNet-21k')
    """
    info = _BY_NAME.get(name)
    if info is None or num_classes is None or info.num_classes == num_classes:
        return name
    for other in DATASETS:
        if other.variant_of == name and other.num_classes == num_classes:
            return other.name
    return name
