"""Evaluation data sets and the member / non-member protocol.

    >>> from securitynet.data import load_dataset, parse_selection
    >>> train = load_dataset("mnist", "train")            # IDX files under SECURITYNET_DATA_DIR/mnist
    >>> members = parse_selection("train[:3000]", sizes={"train": 60000, "test": 10000})

MNIST and Fashion-MNIST are read from their IDX files, scikit-learn's digits from the
wheel, CIFAR-10/100 and SVHN through torchvision (downloaded when online), and anything
else from an ImageFolder tree (``folder:/path``). Nothing here imports torch until a set
is turned into batches.
"""

from __future__ import annotations

from securitynet.data.protocol import (
    MembershipProtocol,
    Selection,
    SelectionSummary,
    parse_selection,
)
from securitynet.data.sets import ImageSet, iter_batches, load_dataset

__all__ = [
    "ImageSet",
    "MembershipProtocol",
    "Selection",
    "SelectionSummary",
    "iter_batches",
    "load_dataset",
    "parse_selection",
]
