"""Member / non-member selections: splits, slices, @FILE lists, a training recipe's own
draw; their digests; and every malformed selection refused with a typed error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from securitynet.data import MembershipProtocol, parse_selection
from securitynet.data.protocol import check_disjoint
from securitynet.errors import ProtocolError

SIZES = {"train": 60000, "test": 10000}


def test_splits_and_slices() -> None:
    assert len(parse_selection("train", sizes=SIZES)) == 60000
    head = parse_selection("train[:3000]", sizes=SIZES)
    assert head.split == "train" and head.indices.tolist() == list(range(3000))
    assert parse_selection("test[9995:]", sizes=SIZES).indices.tolist() == [9995, 9996, 9997, 9998, 9999]
    assert parse_selection("test[-2:]", sizes=SIZES).indices.tolist() == [9998, 9999]
    assert parse_selection("test[:10:5]", sizes=SIZES).indices.tolist() == [0, 5]


def test_index_file(tmp_path: Path) -> None:
    path = tmp_path / "members.txt"
    path.write_text("# the 3 members\n12\n\n7  # a comment\n59999\n")
    sel = parse_selection(f"@{path}", sizes=SIZES)
    assert sel.split == "train" and sel.indices.tolist() == [12, 7, 59999] and sel.spec == "@members.txt"
    rel = parse_selection("@members.txt", sizes=SIZES, base=tmp_path)
    assert rel.digest == sel.digest


@pytest.mark.parametrize(
    ("content", "message"),
    [("1\nx\n", r"members.txt:2: 'x' is not an index"), ("60000\n", "outside the train split"),
     ("3\n3\n", "more than once"), ("# nothing\n", "lists no indices")],
)
def test_bad_index_files(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "members.txt").write_text(content)
    with pytest.raises(ProtocolError, match=message):
        parse_selection(f"@{tmp_path / 'members.txt'}", sizes=SIZES)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("validation", "not a split"), ("train[5:5]", "selects no images"), ("train[::0]", "step cannot be zero"),
     ("train[1:2", "cannot parse"), ("@/nonexistent/file.txt", "cannot read index file")],
)
def test_bad_selections(spec: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as info:
        parse_selection(spec, sizes=SIZES)
    assert info.value.hint


def test_a_recipe_draw_is_torch_random_split() -> None:
    torch.manual_seed(42)
    expected, _ = torch.utils.data.random_split(range(60000), [50, 59950])
    drawn = parse_selection("random_split:42:50", sizes=SIZES)
    assert drawn.indices.tolist() == list(expected.indices)
    assert parse_selection("randperm:42:3000", sizes=SIZES).indices[:50].tolist() == list(expected.indices)
    with pytest.raises(ProtocolError):
        parse_selection("random_split:42:70000", sizes=SIZES)


def test_digests_identify_the_indices() -> None:
    a = parse_selection("train[:100]", sizes=SIZES)
    assert a.digest == parse_selection("train[0:100]", sizes=SIZES).digest
    assert a.digest != parse_selection("train[:101]", sizes=SIZES).digest
    assert a.digest != parse_selection("test[:100]", sizes=SIZES).digest
    sub = a.sample(10, seed=1)
    assert len(sub) == 10 and set(sub.indices) <= set(a.indices) and sub.digest == a.sample(10, seed=1).digest
    assert sub.digest != a.sample(10, seed=2).digest and a.sample(500, seed=1) is a


def test_protocol_digest_and_overlap() -> None:
    m, n = parse_selection("train[:50]", sizes=SIZES), parse_selection("test", sizes=SIZES)
    check_disjoint(m, n)
    p = MembershipProtocol(dataset="MNIST", members=m.summary(), nonmembers=n.summary(), seed=0, members_are_training_set=True)
    assert p.digest == MembershipProtocol.model_validate(p.model_dump()).digest
    assert p.digest != p.model_copy(update={"seed": 1}).digest
    with pytest.raises(ProtocolError, match="both members and non-members"):
        check_disjoint(m, parse_selection("train[40:60]", sizes=SIZES))
    assert isinstance(m.indices, np.ndarray)
