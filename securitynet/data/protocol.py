"""The member / non-member protocol of a membership-inference evaluation.

A selection is a split (``train``, ``test``), a slice of one (``train[:3000]``,
``test[5000:]``, ``train[::10]``) or ``@FILE``: indices into the *train* split, one per
line (blank lines and ``#`` comments ignored), or a training recipe's own draw:
``random_split:SEED:N`` (``torch.manual_seed(SEED)`` then ``random_split(train, [N, rest])``,
the first part) and ``randperm:SEED:N`` (the first N of ``torch.randperm(len(train))``
after ``torch.manual_seed(SEED)``). Every selection has a digest (sha256 of the
split name and the int64 indices), and the protocol, the pair of them with the data set,
seed and whether the members are the real training set, has one too: it is part of every
stored result and of the key that decides whether a stored result can be reused.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from securitynet.errors import ProtocolError

_RECIPE = re.compile(r"^(?P<kind>random_split|randperm):(?P<seed>\d+):(?P<n>\d+)$")
_SLICE = re.compile(
    r"^(?P<split>[A-Za-z][\w-]*)(?:\[(?P<a>-?\d*):(?P<b>-?\d*)(?::(?P<c>-?\d*))?\])?$"
)


class SelectionSummary(BaseModel):
    """What is stored about one side of the protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = Field(description="As given: 'train', 'test[:5000]', '@members.txt'.")
    split: str
    size: int
    digest: str = Field(description="sha256 of the split name and the int64 indices.")


@dataclass(frozen=True)
class Selection:
    """Indices into one split of a data set."""

    spec: str
    split: str
    indices: np.ndarray  #: int64, sorted as given (file order is kept)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def digest(self) -> str:
        h = hashlib.sha256(self.split.encode() + b"\0")
        h.update(np.ascontiguousarray(self.indices, dtype="<i8").tobytes())
        return h.hexdigest()

    def summary(self) -> SelectionSummary:
        return SelectionSummary(
            spec=self.spec, split=self.split, size=len(self), digest=self.digest
        )

    def sample(self, limit: int | None, *, seed: int) -> Selection:
        """At most ``limit`` of these indices, drawn without replacement with ``seed``."""
        if limit is None or limit >= len(self):
            return self
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.choice(self.indices, size=limit, replace=False))
        return Selection(spec=f"{self.spec}~{limit}@{seed}", split=self.split, indices=picked)


def parse_selection(text: str, *, sizes: Mapping[str, int], base: Path | None = None) -> Selection:
    """Parse a selection against the split sizes of a data set (``{"train": 60000, ...}``)."""
    spec = text.strip()
    if spec.startswith("@"):
        return _read_index_file(spec, sizes=sizes, base=base)
    recipe = _RECIPE.match(spec)
    if recipe is not None:
        return _recipe_draw(spec, recipe["kind"], int(recipe["seed"]), int(recipe["n"]), sizes=sizes)
    match = _SLICE.match(spec)
    if match is None:
        raise ProtocolError(f"cannot parse the selection {text!r}", spec=text)
    split = match["split"]
    if split not in sizes:
        raise ProtocolError(
            f"{split!r} is not a split of this data set (splits: {', '.join(sizes)})", spec=text
        )
    n = sizes[split]
    if match["a"] is None:  # no brackets
        return Selection(spec=spec, split=split, indices=np.arange(n, dtype=np.int64))

    def bound(value: str | None) -> int | None:
        return int(value) if value not in (None, "") else None

    step = bound(match["c"])
    if step == 0:
        raise ProtocolError(f"slice step cannot be zero in {text!r}", spec=text)
    indices = np.arange(n, dtype=np.int64)[slice(bound(match["a"]), bound(match["b"]), step)]
    if len(indices) == 0:
        raise ProtocolError(f"{text!r} selects no images (the {split} split has {n})", spec=text)
    return Selection(spec=spec, split=split, indices=indices)


def _recipe_draw(spec: str, kind: str, seed: int, n: int, *, sizes: Mapping[str, int]) -> Selection:
    """Reproduce a training script's draw of ``n`` train images with torch's generator."""
    import torch

    total = sizes.get("train")
    if total is None or not 0 < n <= total:
        raise ProtocolError(f"{spec!r}: cannot draw {n} images from a train split of {total}", spec=spec)
    # random_split(dataset, [n, total - n]) with the default generator right after
    # manual_seed(seed) is randperm(total) from that state: its first n indices, in order.
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    del kind  # both recipes take the head of the same permutation
    return Selection(spec=spec, split="train", indices=perm[:n].numpy().astype(np.int64))


def _read_index_file(spec: str, *, sizes: Mapping[str, int], base: Path | None) -> Selection:
    path = Path(spec[1:]).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if "train" not in sizes:
        raise ProtocolError(
            "an @FILE selection indexes the train split, which this data set lacks", spec=spec
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"cannot read index file {path}: {exc}", spec=spec) from exc
    n = sizes["train"]
    values: list[int] = []
    for number, line in enumerate(lines, start=1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        try:
            value = int(item)
        except ValueError:
            raise ProtocolError(f"{path}:{number}: {item!r} is not an index", spec=spec) from None
        if not 0 <= value < n:
            raise ProtocolError(
                f"{path}:{number}: index {value} is outside the train split (0-{n - 1})", spec=spec
            )
        values.append(value)
    if not values:
        raise ProtocolError(f"{path} lists no indices", spec=spec)
    indices = np.asarray(values, dtype=np.int64)
    if len(np.unique(indices)) != len(indices):
        raise ProtocolError(f"{path} lists an index more than once", spec=spec)
    return Selection(spec=f"@{path.name}", split="train", indices=indices)


class MembershipProtocol(BaseModel):
    """Which images are members and which are not, stored with every result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    members: SelectionSummary
    nonmembers: SelectionSummary
    seed: int = 0
    members_are_training_set: bool | None = Field(
        default=None,
        description="True when the members are known to be the net's real training data.",
    )

    @property
    def digest(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()


def check_disjoint(members: Selection, nonmembers: Selection) -> None:
    """Refuse a protocol whose two sides share an image."""
    if members.split != nonmembers.split:
        return
    shared = np.intersect1d(members.indices, nonmembers.indices)
    if len(shared):
        raise ProtocolError(
            f"{len(shared)} images are both members and non-members (e.g. {members.split}[{int(shared[0])}])",
            spec=f"{members.spec} / {nonmembers.spec}",
        )
