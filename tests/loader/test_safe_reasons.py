"""One crafted file per refusal reason, at the boundary where there is one, and a test that
fails when a reason code raised in ``securitynet/loader`` has no test in ``test_safe_*``.

Boundaries are tested from both sides: the last accepted value reads, one past it is refused.
"""

from __future__ import annotations

import ast
import json
import pickle
import re
import struct
import zlib
from pathlib import Path

import pytest
import torch

import securitynet.loader as loader_package
from securitynet.errors import UnsafeCheckpointError
from securitynet.loader import _opscan, _picklecheck, _stcheck, _unwrap, _zipcheck, _zipdir
from securitynet.loader._refusal import Refusal
from securitynet.loader.safe import read_checkpoint
from tests.loader.safe_craft import (
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    MARK,
    NEWFALSE,
    PROTO2,
    SETITEM,
    STOP,
    TUPLE,
    Member,
    ZipKnobs,
    call,
    checkpoint_records,
    floats,
    glob,
    integer,
    ordered_dict,
    state_dict,
    storage,
    tensor_v2,
    text,
    torch_members,
    tup,
    write_zip,
)


def refused(path: Path, reason: str, **kwargs: object) -> UnsafeCheckpointError:
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(path, **kwargs)  # type: ignore[arg-type]
    assert info.value.reason == reason, info.value.message
    return info.value


def put(tmp_path: Path, name: str, blob: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(blob)
    return path


def one_tensor_zip(entry: bytes | None = None, *, data: bytes | None = None) -> bytes:
    """A zip checkpoint {"w": <entry>} over one 4-float storage "0"."""
    pkl = state_dict({"w": entry if entry is not None else tensor_v2("0", 4, [4])})
    records = checkpoint_records(pkl, {"0": data if data is not None else floats(1, 2, 3, 4)})
    return write_zip(torch_members(records))


def test_crafted_baseline_reads(tmp_path: Path) -> None:
    # The builders make a valid checkpoint; every case below changes one thing.
    ckpt = read_checkpoint(put(tmp_path, "ok.pt", one_tensor_zip()))
    assert torch.equal(ckpt["w"], torch.tensor([1.0, 2, 3, 4]))
    legacy = write_zip(
        torch_members(
            checkpoint_records(state_dict({"w": tensor_v2("0", 4, [4])}), {"0": floats(1, 2, 3, 4)})
        ),
        ZipKnobs(zip64=False),
    )
    assert read_checkpoint(put(tmp_path, "plain.pt", legacy))["w"].tolist() == [1, 2, 3, 4]


# --- the zip directory -------------------------------------------------------------------------


def test_zip64_locator_pointing_elsewhere(tmp_path: Path) -> None:
    # zipfile reads the zip64 record before the locator, miniz where it points: two archives.
    refused(
        put(
            tmp_path,
            "a.pt",
            write_zip(
                torch_members(
                    checkpoint_records(
                        state_dict({"w": tensor_v2("0", 4, [4])}), {"0": floats(1, 2, 3, 4)}
                    )
                ),
                ZipKnobs(locator_delta=-1),
            ),
        ),
        "zip-zip64-mismatch",
    )


def test_zip_end_record_not_at_the_end(tmp_path: Path) -> None:
    blob = one_tensor_zip()
    refused(put(tmp_path, "a.pt", blob + b"\x00"), "zip-malformed")
    refused(put(tmp_path, "b.pt", blob[:-2] + b"\x01\x00"), "zip-hidden-data")  # a comment


def test_zip_bytes_hidden_between_members_and_directory(tmp_path: Path) -> None:
    records = checkpoint_records(
        state_dict({"w": tensor_v2("0", 4, [4])}), {"0": floats(1, 2, 3, 4)}
    )
    members = torch_members(records)
    refused(
        put(tmp_path, "gap.pt", write_zip(members, ZipKnobs(gap_after={0: b"\x00"}))),
        "zip-hidden-data",
    )
    refused(
        put(tmp_path, "pre.pt", write_zip(members, ZipKnobs(before_directory=b"\x00"))),
        "zip-hidden-data",
    )
    refused(
        put(tmp_path, "tail.pt", write_zip(members, ZipKnobs(directory_tail=b"\x00" * 4))),
        "zip-hidden-data",
    )


def test_zip_counts(tmp_path: Path) -> None:
    members = torch_members(
        checkpoint_records(state_dict({"w": tensor_v2("0", 4, [4])}), {"0": floats(1, 2, 3, 4)})
    )
    # The count says no member at all (the directory still holds them).
    refused(
        put(tmp_path, "empty.pt", write_zip(members, ZipKnobs(count_delta=-len(members)))),
        "zip-empty",
    )
    # The count says one member more than the directory holds.
    refused(put(tmp_path, "short.pt", write_zip(members, ZipKnobs(count_delta=1))), "zip-malformed")
    too_many = _zipdir.MAX_MEMBERS + 1 - len(members)
    refused(
        put(tmp_path, "many.pt", write_zip(members, ZipKnobs(count_delta=too_many))),
        "zip-too-many-members",
    )


def _members(**changes: object) -> list[Member]:
    members = torch_members(
        checkpoint_records(state_dict({"w": tensor_v2("0", 4, [4])}), {"0": floats(1, 2, 3, 4)})
    )
    for key, value in changes.items():
        setattr(members[-1], key, value)  # the "version" record
    return members


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"raw_name": b"archive/versi\xff"}, "zip-bad-name"),
        ({"name": "archive/../version"}, "zip-bad-name"),
        ({"flags": 0x809, "local_flags": 0x809}, "zip-encrypted"),
        ({"method": 12}, "zip-compression"),
        ({"size": 3}, "zip-size-mismatch"),
        ({"local_flags": 0x800}, "zip-header-mismatch"),
        ({"local_name": b"archive/versioN"}, "zip-name-mismatch"),
    ],
)
def test_zip_member_lies(tmp_path: Path, changes: dict[str, object], reason: str) -> None:
    refused(put(tmp_path, "m.pt", write_zip(_members(**changes))), reason)


@pytest.mark.parametrize(
    ("external", "ok"),
    [
        (0, True),
        (0o100644 << 16, True),
        (0x10, False),
        (0o120777 << 16, False),
        (0o040755 << 16, False),
    ],
)
def test_zip_member_marked_as_directory_or_link(tmp_path: Path, external: int, ok: bool) -> None:
    # miniz reads a member with the DOS directory attribute as a directory, not as its bytes.
    path = put(tmp_path, "m.pt", write_zip(_members(external=external)))
    if ok:
        assert read_checkpoint(path)["w"].tolist() == [1, 2, 3, 4]
    else:
        refused(path, "zip-unexpected-record")


def test_zip_data_descriptor_disagrees(tmp_path: Path) -> None:
    blob = bytearray(write_zip(_members()))
    at = blob.rfind(b"PK\x07\x08")  # the "version" record's descriptor: its CRC
    blob[at + 4] ^= 0xFF
    refused(put(tmp_path, "m.pt", bytes(blob)), "zip-header-mismatch")


def test_zip_local_and_central_crc_disagree_without_descriptor(tmp_path: Path) -> None:
    members = _members(flags=0x800, local_flags=0x800)
    blob = bytearray(write_zip(members))
    version_at = blob.rfind(b"PK\x03\x04")
    blob[version_at + 14 : version_at + 18] = b"\x00\x00\x00\x00"  # the local CRC only
    refused(put(tmp_path, "m.pt", bytes(blob)), "zip-header-mismatch")


def test_zip_member_running_into_the_directory(tmp_path: Path) -> None:
    blob = bytearray(write_zip(_members(flags=0x800, local_flags=0x800)))
    # The last central entry's offset moved past the member area.
    cd_at = blob.rfind(b"PK\x01\x02")
    blob[cd_at + 42 : cd_at + 46] = struct.pack("<I", blob.find(b"PK\x01\x02") - 10)
    refused(put(tmp_path, "m.pt", bytes(blob)), "zip-out-of-bounds")


def test_zip_overlapping_members(tmp_path: Path) -> None:
    members = _members(flags=0x800, local_flags=0x800)
    inner = write_zip([Member("archive/version", b"3\n", flags=0x800)])[: 30 + 15 + 2]
    members.insert(0, Member("archive/.data/serialization_id", inner, flags=0x800))
    blob = bytearray(write_zip(members))
    # Point "archive/version"'s central entry at the copy of its local header inside the
    # first member's data: both members then claim the same bytes.
    cd_at = blob.rfind(b"PK\x01\x02")
    first_data = 30 + len("archive/.data/serialization_id")
    blob[cd_at + 42 : cd_at + 46] = struct.pack("<I", first_data)
    refused(put(tmp_path, "m.pt", bytes(blob)), "zip-overlapping-members")


def test_zip_small_record_size_cap(tmp_path: Path) -> None:
    for size, ok in ((_zipcheck.MAX_SMALL_RECORD, True), (_zipcheck.MAX_SMALL_RECORD + 1, False)):
        records = checkpoint_records(
            state_dict({"w": tensor_v2("0", 4, [4])}), {"0": floats(1, 2, 3, 4)}
        )
        records["version"] = b"3" + b" " * (size - 1)
        path = put(tmp_path, f"{size}.pt", write_zip(torch_members(records)))
        if ok:
            assert read_checkpoint(path)["w"].tolist() == [1, 2, 3, 4]
        else:
            refused(path, "zip-record-too-large")


def test_zip_data_pkl_size_cap(tmp_path: Path) -> None:
    pkl = state_dict({"w": tensor_v2("0", 4, [4])})
    padding = _zipcheck.MAX_DATA_PKL + 1 - len(pkl)
    records = checkpoint_records(
        pkl[:-1] + b"N0" * (padding // 2) + b"N" * (padding % 2) + STOP, {"0": floats(1, 2, 3, 4)}
    )
    refused(put(tmp_path, "m.pt", write_zip(torch_members(records))), "zip-record-too-large")


@pytest.mark.parametrize(
    ("record", "value"),
    [("byteorder", b"middle"), ("version", b"12345678901234567890"), (".data/version", b"0")],
)
def test_zip_bad_small_records(tmp_path: Path, record: str, value: bytes) -> None:
    records = checkpoint_records(
        state_dict({"w": tensor_v2("0", 4, [4])}), {"0": floats(1, 2, 3, 4)}
    )
    records[record] = value
    refused(put(tmp_path, "m.pt", write_zip(torch_members(records))), "zip-bad-record")


def test_zip_storage_without_its_record(tmp_path: Path) -> None:
    pkl = state_dict({"w": tensor_v2("0", 4, [4]), "v": tensor_v2("1", 4, [4])})
    records = checkpoint_records(pkl, {"0": floats(1, 2, 3, 4)})
    refused(put(tmp_path, "m.pt", write_zip(torch_members(records))), "zip-missing-record")


def test_zip_bytes_after_the_deflate_stream(tmp_path: Path) -> None:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = floats(1, 2, 3, 4)
    stream = packer.compress(data) + packer.flush()
    members = torch_members(
        checkpoint_records(state_dict({"w": tensor_v2("0", 4, [4])}), {"0": data})
    )
    storage_member = next(m for m in members if m.name.endswith("data/0"))
    storage_member.method = 8
    storage_member.compressed = stream
    assert read_checkpoint(put(tmp_path, "ok.pt", write_zip(members)))["w"].tolist() == [1, 2, 3, 4]
    storage_member.compressed = stream + b"hidden"
    refused(put(tmp_path, "m.pt", write_zip(members)), "zip-deflate-trailing-data")
    storage_member.compressed = stream[:-1]
    storage_member.size = len(data)
    refused(put(tmp_path, "short.pt", write_zip(members)), "zip-size-mismatch")


# --- the pickle ------------------------------------------------------------------------------------


def test_nesting_depth_bound_is_exact() -> None:
    # ")" then k TUPLE1: tuples nested k+1 deep.
    ok = PROTO2 + EMPTY_TUPLE + b"\x85" * (_opscan.MAX_DEPTH - 1) + STOP
    assert _opscan.scan(ok).depth == _opscan.MAX_DEPTH
    with pytest.raises(Refusal) as info:
        _opscan.scan(PROTO2 + EMPTY_TUPLE + b"\x85" * _opscan.MAX_DEPTH + STOP)
    assert info.value.code == "pickle-too-deep"


def test_deep_tuple_as_a_dict_key_is_refused_not_a_crash(tmp_path: Path) -> None:
    # Hashing this key recursed in C and killed the process (SIGSEGV) in the dry run.
    deep = EMPTY_TUPLE + b"\x85" * 1_000_000
    records = checkpoint_records(PROTO2 + EMPTY_DICT + deep + integer(1) + SETITEM + STOP, {})
    refused(put(tmp_path, "m.pt", write_zip(torch_members(records))), "pickle-too-deep")


def test_a_list_that_holds_itself_is_refused(tmp_path: Path) -> None:
    records = checkpoint_records(PROTO2 + b"]q\x00h\x00a" + STOP, {})
    refused(put(tmp_path, "m.pt", write_zip(torch_members(records))), "pickle-too-deep")


def test_memo_index_past_the_opcodes_is_refused(tmp_path: Path) -> None:
    # LONG_BINPUT 1562079609 in a 350-byte data.pkl made CPython's unpickler allocate a 25 GB
    # memo array. The LONG_BINPUT below is the 8th opcode: index 8 is the last one allowed.
    def with_put(index: int) -> bytes:
        return (
            PROTO2
            + EMPTY_DICT
            + b"(K\x01K\x02K\x03t"
            + b"r"
            + struct.pack("<I", index)
            + b"0"
            + STOP
        )

    assert _opscan.scan(with_put(8)).end == len(with_put(8))
    with pytest.raises(Refusal) as info:
        _opscan.scan(with_put(9))
    assert info.value.code == "pickle-memo-index"
    records = checkpoint_records(with_put(1_562_079_609), {})
    refused(put(tmp_path, "m.pt", write_zip(torch_members(records))), "pickle-memo-index")


def test_persistent_id_that_is_no_storage(tmp_path: Path) -> None:
    pid = (
        MARK
        + text("storage")
        + glob("torch", "FloatStorage")
        + text("0")
        + text("cpu")
        + TUPLE
        + b"Q"
    )
    refused(put(tmp_path, "m.pt", one_tensor_zip(pid)), "pickle-bad-storage")


def test_tensor_dimensions_cap(tmp_path: Path) -> None:
    ok = tensor_v2("0", 4, [1] * _picklecheck.MAX_DIMS, [1] * _picklecheck.MAX_DIMS)
    assert (
        read_checkpoint(put(tmp_path, "ok.pt", one_tensor_zip(ok)))["w"].dim()
        == _picklecheck.MAX_DIMS
    )
    bad = tensor_v2("0", 4, [1] * (_picklecheck.MAX_DIMS + 1), [1] * (_picklecheck.MAX_DIMS + 1))
    refused(put(tmp_path, "bad.pt", one_tensor_zip(bad)), "pickle-bad-tensor")


def test_stride_zero_view_bound_is_exact(tmp_path: Path) -> None:
    # A 4-element storage: 4 elements through stride 0 are within it, 5 are not, 2**40 never.
    ok = read_checkpoint(put(tmp_path, "ok.pt", one_tensor_zip(tensor_v2("0", 4, [4], [0]))))
    assert ok["w"].tolist() == [1, 1, 1, 1]
    refused(
        put(tmp_path, "five.pt", one_tensor_zip(tensor_v2("0", 4, [5], [0]))),
        "tensor-overlapping-view",
    )
    refused(
        put(tmp_path, "huge.pt", one_tensor_zip(tensor_v2("0", 4, [2**40], [0]))),
        "tensor-overlapping-view",
    )


def test_view_bound_is_exact(tmp_path: Path) -> None:
    # Offset 1, size 3 ends on the last element; size 4 is one element past the storage.
    ok = read_checkpoint(put(tmp_path, "ok.pt", one_tensor_zip(tensor_v2("0", 4, [3], offset=1))))
    assert ok["w"].tolist() == [2, 3, 4]
    refused(
        put(tmp_path, "past.pt", one_tensor_zip(tensor_v2("0", 4, [4], offset=1))),
        "tensor-out-of-bounds",
    )
    refused(
        put(tmp_path, "far.pt", one_tensor_zip(tensor_v2("0", 4, [0], offset=5))),
        "tensor-out-of-bounds",
    )


def test_tensor_count_cap(tmp_path: Path) -> None:
    # MAX_TENSORS + 1 distinct tensors (one REDUCE each) in a list, all on one storage.
    fn = glob("torch._utils", "_rebuild_tensor_v2") + b"q\x00"
    args = (
        MARK
        + storage("0", 4)
        + integer(0)
        + tup([1])
        + tup([1])
        + NEWFALSE
        + ordered_dict()
        + TUPLE
        + b"q\x01"
    )
    first = fn + args + b"R"
    many = b"]" + MARK + first + b"h\x00h\x01R" * _picklecheck.MAX_TENSORS + b"e"
    pkl = PROTO2 + EMPTY_DICT + text("w") + many + SETITEM + STOP
    records = checkpoint_records(pkl, {"0": floats(1, 2, 3, 4)})
    refused(put(tmp_path, "m.pt", write_zip(torch_members(records))), "too-many-tensors")


def test_copy_budget_of_the_stand_ins(tmp_path: Path) -> None:
    # set(L) over one 200,000-element list, 200 times: a few KB of pickle, 40 M copies.
    big = b"]q\x00(" + b"K\x01" * 200_000 + b"e"
    copies = b"(" + (glob("builtins", "set") + b"h\x00\x85R") * 200 + b"l"
    pkl = PROTO2 + EMPTY_DICT + MARK + text("x") + big + text("y") + copies + b"u" + STOP
    records = checkpoint_records(pkl, {})
    refused(put(tmp_path, "m.pt", write_zip(torch_members(records))), "pickle-copy-budget")


def test_tensor_rebuild_state_is_refused(tmp_path: Path) -> None:
    metadata = EMPTY_DICT + text("neg") + b"\x88" + SETITEM
    refused(
        put(tmp_path, "meta.pt", one_tensor_zip(tensor_v2("0", 4, [4], extra=metadata))),
        "pickle-tensor-state",
    )
    state = EMPTY_DICT + text("numel") + integer(7) + SETITEM
    parameter = call(
        glob("torch._utils", "_rebuild_parameter_with_state"),
        tensor_v2("0", 4, [4]),
        NEWFALSE,
        ordered_dict(),
        state,
    )
    refused(put(tmp_path, "param.pt", one_tensor_zip(parameter)), "pickle-tensor-state")
    subclass = call(
        glob("torch._tensor", "_rebuild_from_type_v2"),
        glob("torch._utils", "_rebuild_tensor_v2"),
        glob("torch", "Tensor"),
        MARK
        + storage("0", 4)
        + integer(0)
        + tup([4])
        + tup([1])
        + NEWFALSE
        + ordered_dict()
        + TUPLE,
        state,
    )
    refused(put(tmp_path, "type.pt", one_tensor_zip(subclass)), "pickle-tensor-state")
    empty = call(
        glob("torch._utils", "_rebuild_parameter_with_state"),
        tensor_v2("0", 4, [4]),
        NEWFALSE,
        ordered_dict(),
        EMPTY_DICT,
    )
    ckpt = read_checkpoint(put(tmp_path, "ok.pt", one_tensor_zip(empty)))
    assert type(ckpt["w"]) is torch.Tensor and not ckpt["w"].__dict__


def test_ordered_dict_build_only_as_state_dict_metadata(tmp_path: Path) -> None:
    def odict_with(state: bytes) -> bytes:
        body = MARK + text("w") + tensor_v2("0", 4, [4]) + b"u"
        return PROTO2 + ordered_dict() + body + state + BUILD + STOP

    metadata = (
        EMPTY_DICT
        + text("_metadata")
        + ordered_dict()
        + MARK
        + text("")
        + EMPTY_DICT
        + text("version")
        + integer(1)
        + SETITEM
        + b"u"
        + SETITEM
    )
    records = checkpoint_records(odict_with(metadata), {"0": floats(1, 2, 3, 4)})
    assert read_checkpoint(put(tmp_path, "ok.pt", write_zip(torch_members(records))))[
        "w"
    ].shape == (4,)
    other = EMPTY_DICT + text("__class__") + text("x") + SETITEM
    records = checkpoint_records(odict_with(other), {"0": floats(1, 2, 3, 4)})
    refused(put(tmp_path, "bad.pt", write_zip(torch_members(records))), "pickle-odict-state")


def test_real_state_dict_metadata_passes(tmp_path: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    torch.save(net.state_dict(), tmp_path / "net.pt")
    net.load_state_dict(read_checkpoint(tmp_path / "net.pt"))


def test_bare_storage_and_bare_global_are_not_values(tmp_path: Path) -> None:
    pkl = state_dict({"w": tensor_v2("0", 4, [4]), "s": storage("0", 4)})
    records = checkpoint_records(pkl, {"0": floats(1, 2, 3, 4)})
    refused(put(tmp_path, "s.pt", write_zip(torch_members(records))), "pickle-bad-value")


# --- legacy streams ---------------------------------------------------------------------------------


def test_legacy_wrong_magic_and_storage_view(tmp_path: Path) -> None:
    # (A wrong magic number is no legacy file at all: the sniffer calls it a pickle.)
    blob = _legacy()
    version_at = len(pickle.dumps(_picklecheck.LEGACY_MAGIC_NUMBER, protocol=2))
    version = pickle.dumps(1001, protocol=2)
    assert blob[version_at : version_at + len(version)] == version
    lied = blob[:version_at] + pickle.dumps(1000, protocol=2) + blob[version_at + len(version) :]
    refused(put(tmp_path, "version.pth", lied), "legacy-malformed", allow_legacy=True)
    pid_with_view = (
        MARK
        + text("storage")
        + glob("torch", "FloatStorage")
        + text("0")
        + text("cpu")
        + integer(1)
        + MARK
        + text("0")
        + integer(0)
        + integer(1)
        + TUPLE
        + TUPLE
        + b"Q"
    )
    main = (
        PROTO2
        + EMPTY_DICT
        + text("w")
        + call(
            glob("torch._utils", "_rebuild_tensor"), pid_with_view, integer(0), tup([1]), tup([1])
        )
        + SETITEM
        + STOP
    )
    refused(
        put(
            tmp_path,
            "view.pth",
            _legacy_head()
            + main
            + pickle.dumps(["0"], protocol=2)
            + struct.pack("<q", 1)
            + floats(1),
        ),
        "legacy-storage-view",
        allow_legacy=True,
    )


def _legacy_head() -> bytes:
    return b"".join(
        pickle.dumps(v, protocol=2)
        for v in (
            _picklecheck.LEGACY_MAGIC_NUMBER,
            1001,
            {"protocol_version": 1001, "little_endian": True},
        )
    )


def _legacy() -> bytes:
    import io

    buf = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


# --- what the pickle holds --------------------------------------------------------------------------


def test_wrapped_mapping_lies(tmp_path: Path) -> None:
    empty = PROTO2 + EMPTY_DICT + text("state_dict") + EMPTY_DICT + SETITEM + STOP
    refused(
        put(tmp_path, "e.pt", write_zip(torch_members(checkpoint_records(empty, {})))),
        "no-tensors",
        key="state_dict",
    )
    number = (
        PROTO2
        + EMPTY_DICT
        + text("state_dict")
        + EMPTY_DICT
        + text("a")
        + integer(1)
        + SETITEM
        + SETITEM
        + STOP
    )
    refused(
        put(tmp_path, "n.pt", write_zip(torch_members(checkpoint_records(number, {})))),
        "non-tensor-value",
        key="state_dict",
    )
    for name in ("", "a\nb"):
        pkl = state_dict({name: tensor_v2("0", 4, [4]), "b": tensor_v2("0", 4, [4])})
        refused(
            put(
                tmp_path,
                "b.pt",
                write_zip(torch_members(checkpoint_records(pkl, {"0": floats(1, 2, 3, 4)}))),
            ),
            "bad-name",
        )


def test_unwrap_refuses_what_the_builder_never_makes() -> None:
    # Defence in depth: the builder makes plain dense tensors only; unwrap still checks.
    class Sub(torch.Tensor):
        pass

    with pytest.raises(Refusal) as info:
        _unwrap.unwrap({"w": torch.ones(2).as_subclass(Sub)})
    assert info.value.code == "tensor-subclass"
    with pytest.raises(Refusal) as info:
        _unwrap.unwrap({"w": torch.ones(2).to_sparse()})
    assert info.value.code == "unsupported-tensor"


# --- safetensors ------------------------------------------------------------------------------------


def _st(header: dict[str, object], data: bytes, *, pad_to: int | None = None) -> bytes:
    raw = json.dumps(header, separators=(",", ":")).encode()
    if pad_to is not None:
        raw += b" " * ((pad_to - len(raw)) % 256)
    return struct.pack("<Q", len(raw)) + raw + data


def test_safetensors_dimension_cap(tmp_path: Path) -> None:
    for dims, ok in ((_stcheck.MAX_DIMS, True), (_stcheck.MAX_DIMS + 1, False)):
        path = put(
            tmp_path,
            f"{dims}.safetensors",
            _st({"w": {"dtype": "F32", "shape": [1] * dims, "data_offsets": [0, 4]}}, floats(1)),
        )
        if ok:
            assert read_checkpoint(path)["w"].dim() == dims
        else:
            refused(path, "safetensors-too-many-dims")
    huge = _st(
        {"w": {"dtype": "F32", "shape": [0, _stcheck.MAX_DIM + 1], "data_offsets": [0, 0]}}, b""
    )
    refused(put(tmp_path, "huge.safetensors", huge), "safetensors-too-many-dims")


def test_safetensors_5000_digit_integer(tmp_path: Path) -> None:
    raw = b'{"w":{"dtype":"F32","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,4]}}'
    refused(
        put(tmp_path, "m.safetensors", struct.pack("<Q", len(raw)) + raw + floats(1)),
        "safetensors-header-invalid",
    )


def test_safetensors_read_only_from_the_checked_file() -> None:
    import io

    with pytest.raises(Refusal) as info:
        _stcheck.check_header(io.BytesIO(b"\x05\x00\x00"), size=3)
    assert info.value.code == "safetensors-truncated"
    blob = _st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, floats(1, 2))
    header = _stcheck.check_header(io.BytesIO(blob), size=len(blob))
    with pytest.raises(Refusal) as info:  # the file shrank after its header was checked
        _stcheck.read_tensors(io.BytesIO(blob[:-1]), header)
    assert info.value.code == "safetensors-truncated"


def pickle_polyglot(command: str) -> bytes:
    """A valid safetensors file that ``pickle.loads`` runs: the length prefix's first byte
    is 'V' (a text line that swallows the newline-free JSON header), and the one U8 tensor's
    bytes are the rest of the pickle."""
    payload = b"\n" + glob("os", "system") + b"(V" + command.encode() + b"\ntR."
    header = {"x": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((ord("V") - len(raw)) % 256)
    return struct.pack("<Q", len(raw)) + raw + payload


def test_safetensors_pickle_polyglot(tmp_path: Path) -> None:
    import safetensors.torch

    marker = tmp_path / "ran"
    path = put(tmp_path, "m.safetensors", pickle_polyglot(f"touch {marker}"))
    assert safetensors.torch.load_file(path)["x"].numel() > 0  # a valid safetensors file
    refused(path, "polyglot")
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # and a live pickle: the control
    assert marker.exists()


def test_safetensors_zip_and_tar_polyglots(tmp_path: Path) -> None:
    eocd = b"PK\x05\x06" + bytes(18)
    zipped = _st({"x": {"dtype": "U8", "shape": [22], "data_offsets": [0, 22]}}, eocd)
    refused(put(tmp_path, "z.safetensors", zipped), "polyglot")
    lead = len(b'{"__metadata__":{"p":"') + 8
    tarred = _st({"__metadata__": {"p": " " * (257 - lead) + "ustar"}}, b"")
    assert tarred[257:262] == b"ustar"
    refused(put(tmp_path, "t.safetensors", tarred), "polyglot")


# --- the format gate -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (b"\x1f\x8b\x08\x00", "format-gzip"),
        (b"BZh91AY", "format-bzip2"),
        (b"\xfd7zXZ\x00\x00", "format-xz"),
        (b"\x28\xb5\x2f\xfd\x00", "format-zstd"),
        (b"Rar!\x1a\x07\x00", "format-rar"),
        (b"\x93NUMPY\x01\x00", "format-numpy"),
        (b"\x89HDF\r\n\x1a\n", "format-hdf5"),
        (b"GGUF\x03\x00", "format-gguf"),
    ],
)
def test_other_containers_are_refused_by_name(tmp_path: Path, head: bytes, reason: str) -> None:
    refused(put(tmp_path, "m.pt", head + bytes(64)), reason)


def test_legacy_tar_polyglot(tmp_path: Path) -> None:
    import io
    import tarfile

    from securitynet.loader._sniff import LEGACY_PREFIX

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT, encoding="latin1") as tf:
        info = tarfile.TarInfo(LEGACY_PREFIX.decode("latin1"))
        tf.addfile(info, io.BytesIO(b""))
    blob = buf.getvalue()
    assert blob.startswith(LEGACY_PREFIX)
    refused(put(tmp_path, "m.pth", blob), "format-pytorch-legacy-tar", allow_legacy=True)


def test_unforeseen_exceptions_become_typed_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = put(tmp_path, "ok.pt", one_tensor_zip())

    def boom(*args: object, **kwargs: object) -> object:
        raise KeyError("a bug in a check")

    monkeypatch.setattr(_zipcheck, "check_zip", boom)
    refused(path, "check-failed")

    def no_memory(*args: object, **kwargs: object) -> object:
        raise MemoryError

    monkeypatch.setattr(_zipcheck, "check_zip", no_memory)
    refused(path, "resource-exhausted")


# --- every reason has a test ------------------------------------------------------------------------


def _reason_codes() -> set[str]:
    """Every code a Refusal in securitynet/loader can carry (f-strings expanded)."""
    codes: set[str] = set()
    for module in Path(loader_package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "Refusal"
                and node.args
            ):
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    codes.add(first.value)
                elif isinstance(first, ast.JoinedStr) and ast.unparse(first) == "f'format-{fmt}'":
                    codes |= {f"format-{name}" for name in _refused_formats()}
                else:
                    raise AssertionError(
                        f"{module.name}: a reason code test cannot read: {ast.unparse(first)}"
                    )
    return codes


def _refused_formats() -> set[str]:
    """The formats that reach ``Refusal(f"format-{fmt}")``: every container signature."""
    from securitynet.loader import _sniff

    return {name for _, name in _sniff._SIGNATURES} | {_sniff.TAR, _sniff.PYTORCH_LEGACY_TAR}


def test_every_reason_code_has_a_test() -> None:
    codes = _reason_codes()
    assert len(codes) > 50
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_safe_*.py"))
    untested = sorted(
        code for code in codes if not re.search(rf"[\"']{re.escape(code)}[\"']", tests)
    )
    assert not untested, f"reason codes without a test: {untested}"


def test_big_endian_checkpoint_reads_as_torch_load_does(tmp_path: Path) -> None:
    # A checkpoint saved on a big-endian machine: byteorder "big", each element byte-swapped.
    values = torch.tensor([1.5, -2.0, 3.25, 1e-3])
    pkl = state_dict({"w": tensor_v2("0", 4, [4]), "v": tensor_v2("0", 4, [2], [2], offset=1)})
    swapped = struct.pack(">4f", *values.tolist())
    records = checkpoint_records(pkl, {"0": swapped})
    records["byteorder"] = b"big"
    path = put(tmp_path, "big.pt", write_zip(torch_members(records)))
    ckpt = read_checkpoint(path)
    assert torch.equal(ckpt["w"], values)
    assert torch.equal(ckpt["v"], values[1::2])
    assert torch.equal(torch.load(path, weights_only=True)["w"], values)
