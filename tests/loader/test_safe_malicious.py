"""The malicious corpus: every payload is built here, and its only effect, were it ever run,
would be to create a marker file in tmp_path. Each test asserts a typed refusal with the
expected reason AND that the marker does not exist.

The ``test_payload_is_live_*`` controls run the same bytes through plain ``pickle.loads``
and show the marker *does* appear: the corpus is real, so the refusals are meaningful.
"""

from __future__ import annotations

import io
import os
import pickle
import shlex
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from securitynet.errors import LoaderError, UnsafeCheckpointError
from securitynet.loader import _picklecheck
from securitynet.loader.safe import read_checkpoint, sniff_format

# --- pickle building blocks (protocol 2 opcodes, as torch.save writes them) --------------------

PROTO2 = b"\x80\x02"
MARK, TUPLE, REDUCE, STOP, EMPTY_DICT, SETITEM = b"(", b"t", b"R", b".", b"}", b"s"


def glob(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def call(fn: bytes, *args: bytes) -> bytes:
    return fn + MARK + b"".join(args) + TUPLE + REDUCE


def none() -> bytes:
    return b"N"


def touch(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def as_checkpoint(value: bytes) -> bytes:
    """A whole pickle: ``{"state_dict": <value>}``."""
    return PROTO2 + EMPTY_DICT + text("state_dict") + value + SETITEM + STOP


# --- the gadgets ---------------------------------------------------------------------------------


def os_system(marker: Path) -> bytes:
    return call(glob("os", "system"), text(touch(marker)))


def pkgutil_resolve_name(marker: Path) -> bytes:
    # pkgutil.resolve_name("os:system")("touch ...")
    return call(call(glob("pkgutil", "resolve_name"), text("os:system")), text(touch(marker)))


def runpy_run_code(marker: Path) -> bytes:
    code = f"open({str(marker)!r}, 'w').close()"
    return call(glob("runpy", "_run_code"), text(code), EMPTY_DICT)


def functools_partial(marker: Path) -> bytes:
    # functools.partial(os.system, "touch ...")()
    return call(call(glob("functools", "partial"), glob("os", "system"), text(touch(marker))))


def operator_methodcaller(marker: Path) -> bytes:
    # operator.methodcaller("system", "touch ...")(__import__("os"))
    os_module = call(glob("builtins", "__import__"), text("os"))
    return call(
        call(glob("operator", "methodcaller"), text("system"), text(touch(marker))), os_module
    )


def getattr_import_chain(marker: Path) -> bytes:
    # getattr(__import__("os"), "system")("touch ...")
    os_module = call(glob("builtins", "__import__"), text("os"))
    return call(call(glob("builtins", "getattr"), os_module, text("system")), text(touch(marker)))


def cpp_extension_load_inline(marker: Path) -> bytes:
    # load_inline("x", cpp_sources, ..., build_directory=<tmp_path>): writes <tmp_path>/main.cpp
    # (the marker) and compiles it. Never run, not even as a control.
    args = [text("x"), text("int f() { return 0; }")] + [none()] * 6 + [text(str(marker.parent))]
    return call(glob("torch.utils.cpp_extension", "load_inline"), *args)


def nested_pickle_loads(marker: Path) -> bytes:
    # pickle.loads(_codecs.encode(<inner pickle as latin-1 text>, "latin1")): the bytes are
    # spelled with a global torch itself allows; the inner pickle calls os.system.
    inner = PROTO2 + os_system(marker) + STOP
    as_bytes = call(glob("_codecs", "encode"), text(inner.decode("latin1")), text("latin1"))
    return call(glob("pickle", "loads"), as_bytes)


GADGETS: dict[str, Callable[[Path], bytes]] = {
    "os.system": os_system,
    "pkgutil.resolve_name": pkgutil_resolve_name,
    "runpy._run_code": runpy_run_code,
    "functools.partial": functools_partial,
    "operator.methodcaller": operator_methodcaller,
    "getattr+__import__": getattr_import_chain,
    "cpp_extension.load_inline": cpp_extension_load_inline,
    "nested pickle.loads": nested_pickle_loads,
}


def dotted_stack_global(marker: Path) -> bytes:
    """Protocol 4 STACK_GLOBAL("torch", "serialization.os.system"): a module everybody trusts,
    a dotted name that walks from it to os.system."""

    def short(value: str) -> bytes:
        return b"\x8c" + bytes([len(value)]) + value.encode()

    fn = short("torch") + short("serialization.os.system") + b"\x93"
    return (
        b"\x80\x04"
        + EMPTY_DICT
        + short("state_dict")
        + call(fn, short(touch(marker)))
        + SETITEM
        + STOP
    )


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "main.cpp"  # the name load_inline would write; any name works for the rest


def assert_refused(
    path: Path, reason: str, marker: Path, **kwargs: object
) -> UnsafeCheckpointError:
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(path, **kwargs)  # type: ignore[arg-type]
    assert info.value.reason == reason, info.value.message
    assert str(path) in info.value.message
    assert not marker.exists(), "the payload ran"
    return info.value


# --- containers ----------------------------------------------------------------------------------


def torch_zip(path: Path, records: dict[str, bytes], *, prefix: str = "archive") -> Path:
    """A zip with torch.save's layout, written by zipfile (so CRCs and headers are right)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in records.items():
            zf.writestr(f"{prefix}/{name}", data)
    return path


def zip_with_pickle(path: Path, data_pkl: bytes) -> Path:
    return torch_zip(path, {"data.pkl": data_pkl, "byteorder": b"little", "version": b"3\n"})


def legacy_stream(main_pickle: bytes, storage_keys: list[str] | None = None) -> bytes:
    head = [
        pickle.dumps(_picklecheck.LEGACY_MAGIC_NUMBER, protocol=2),
        pickle.dumps(_picklecheck.LEGACY_PROTOCOL_VERSION, protocol=2),
        pickle.dumps(
            {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}, protocol=2
        ),
    ]
    return b"".join(head) + main_pickle + pickle.dumps(storage_keys or [], protocol=2)


class ReduceToSystem:
    """The textbook malicious object: unpickling it calls os.system."""

    def __init__(self, marker: Path) -> None:
        self.command = touch(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def small_state() -> dict[str, torch.Tensor]:
    return {"fc.weight": torch.randn(3, 4), "fc.bias": torch.zeros(3)}


# --- __reduce__ to os.system, the way a real attacker would ship it --------------------------------


def test_reduce_to_os_system_in_a_zip_checkpoint(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"epoch": ReduceToSystem(marker), "state_dict": small_state()}, path)
    error = assert_refused(path, "global-not-allowed", marker)
    assert "posix.system" in error.message


def test_reduce_to_os_system_in_a_legacy_checkpoint(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save(
        {"epoch": ReduceToSystem(marker), "state_dict": small_state()},
        path,
        _use_new_zipfile_serialization=False,
    )
    assert sniff_format(path) == "pytorch-legacy"
    assert_refused(path, "legacy-refused", marker)
    assert_refused(path, "global-not-allowed", marker, allow_legacy=True)


def test_payload_is_live_reduce(tmp_path: Path, marker: Path) -> None:
    pickle.loads(pickle.dumps(ReduceToSystem(marker), protocol=2))
    assert marker.exists()


# --- raw pickles, whatever they are called ----------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["model.bin", "model.pt", "model.pth", "model.safetensors", "model"]
)
def test_raw_pickle_is_refused_whatever_its_name(tmp_path: Path, marker: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(pickle.dumps({"state_dict": ReduceToSystem(marker)}, protocol=2))
    assert sniff_format(path) == "pickle"
    assert_refused(path, "format-pickle", marker)
    assert_refused(path, "format-pickle", marker, allow_legacy=True)


def test_raw_pickle_protocol_0_is_refused(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps(ReduceToSystem(marker), protocol=0))
    assert_refused(path, "format-pickle", marker)


# --- gadgets that no denylist names, in every container ----------------------------------------------


@pytest.mark.parametrize("gadget", sorted(GADGETS))
def test_gadget_in_zip_checkpoint(tmp_path: Path, marker: Path, gadget: str) -> None:
    path = zip_with_pickle(tmp_path / "model.pt", as_checkpoint(GADGETS[gadget](marker)))
    assert_refused(path, "global-not-allowed", marker)


@pytest.mark.parametrize("gadget", sorted(GADGETS))
def test_gadget_in_legacy_checkpoint(tmp_path: Path, marker: Path, gadget: str) -> None:
    path = tmp_path / "model.pth"
    path.write_bytes(legacy_stream(as_checkpoint(GADGETS[gadget](marker))))
    assert_refused(path, "legacy-refused", marker)
    assert_refused(path, "global-not-allowed", marker, allow_legacy=True)


@pytest.mark.parametrize("gadget", sorted(GADGETS))
def test_gadget_as_raw_pickle(tmp_path: Path, marker: Path, gadget: str) -> None:
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(as_checkpoint(GADGETS[gadget](marker)))
    assert_refused(path, "format-pickle", marker)


@pytest.mark.parametrize("gadget", sorted(set(GADGETS) - {"cpp_extension.load_inline"}))
def test_payload_is_live_gadget(marker: Path, gadget: str) -> None:
    pickle.loads(as_checkpoint(GADGETS[gadget](marker)))
    assert marker.exists()


def test_dotted_stack_global(tmp_path: Path, marker: Path) -> None:
    path = zip_with_pickle(tmp_path / "model.pt", dotted_stack_global(marker))
    error = assert_refused(path, "global-not-allowed", marker)
    assert "torch.serialization.os.system" in error.message


def test_payload_is_live_dotted_stack_global(marker: Path) -> None:
    pickle.loads(dotted_stack_global(marker))
    assert marker.exists()


# --- broken pickles ---------------------------------------------------------------------------------------


def broken_pickle(marker: Path) -> bytes:
    """The payload, then garbage and no STOP: a reader that runs opcodes as it parses has
    already called os.system when it notices."""
    return (
        PROTO2
        + EMPTY_DICT
        + text("state_dict")
        + os_system(marker)
        + SETITEM
        + b"\xff\xfe\x00garbage"
    )


def test_broken_pickle_raw(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(broken_pickle(marker))
    assert_refused(path, "format-pickle", marker)


def test_broken_pickle_in_zip(tmp_path: Path, marker: Path) -> None:
    # The opcode scan refuses it before any unpickler (even ours) reaches the global.
    path = zip_with_pickle(tmp_path / "model.pt", broken_pickle(marker))
    assert_refused(path, "pickle-malformed", marker)


def test_broken_pickle_without_payload_in_zip(tmp_path: Path, marker: Path) -> None:
    path = zip_with_pickle(
        tmp_path / "model.pt", PROTO2 + EMPTY_DICT + text("state_dict") + b"\xff\xfe"
    )
    assert_refused(path, "pickle-malformed", marker)


def test_trailing_bytes_after_stop_in_zip(tmp_path: Path, marker: Path) -> None:
    buf = io.BytesIO()
    torch.save(small_state(), buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        records = {n.split("/", 1)[1]: zf.read(n) for n in zf.namelist()}
    records["data.pkl"] += PROTO2 + os_system(marker) + STOP
    path = torch_zip(tmp_path / "model.pt", records)
    assert_refused(path, "pickle-trailing-data", marker)


def test_payload_is_live_broken_pickle(marker: Path) -> None:
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(broken_pickle(marker))
    assert marker.exists()


# --- other containers --------------------------------------------------------------------------------------


def test_7z_named_pt(tmp_path: Path, marker: Path) -> None:
    # 7z signature header: magic, version 0.4, start-header CRC, next-header offset/size/CRC.
    body = pickle.dumps(ReduceToSystem(marker), protocol=2)
    next_header = struct.pack("<QQI", len(body), 0, 0)
    head = b"7z\xbc\xaf\x27\x1c" + b"\x00\x04" + struct.pack("<I", 0) + next_header
    path = tmp_path / "model.pt"
    path.write_bytes(head + body)
    assert sniff_format(path) == "7z"
    assert_refused(path, "format-7z", marker)


def test_garbage_and_empty(tmp_path: Path, marker: Path) -> None:
    # No container signature and no pickle: the one reason scan reports as "not a checkpoint".
    (tmp_path / "garbage.pt").write_bytes(bytes(range(256)) * 16)
    assert_refused(tmp_path / "garbage.pt", "not-a-checkpoint", marker)
    (tmp_path / "empty.pt").write_bytes(b"")
    assert_refused(tmp_path / "empty.pt", "not-a-checkpoint", marker)
    (tmp_path / "notes.txt").write_bytes(b"just some notes.\n")
    assert_refused(tmp_path / "notes.txt", "not-a-checkpoint", marker)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_torchscript(tmp_path: Path, marker: Path) -> None:
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(Tiny()), path)
    error = assert_refused(path, "torchscript", marker)
    assert error.format == "torchscript"


# --- zips crafted against the container checks ---------------------------------------------------------------


def saved_bytes(state: dict[str, torch.Tensor] | None = None) -> bytes:
    buf = io.BytesIO()
    torch.save(state if state is not None else small_state(), buf)
    return buf.getvalue()


def data_offset(blob: bytes, name: str) -> int:
    info = zipfile.ZipFile(io.BytesIO(blob)).getinfo(name)
    name_len, extra_len = struct.unpack(
        "<HH", blob[info.header_offset + 26 : info.header_offset + 30]
    )
    return info.header_offset + 30 + name_len + extra_len


def test_zip_bad_crc(tmp_path: Path, marker: Path) -> None:
    blob = bytearray(saved_bytes())
    blob[data_offset(bytes(blob), "archive/data/0")] ^= 0xFF  # one weight silently altered
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(blob))
    assert_refused(path, "zip-bad-crc", marker)


def test_zip_local_central_name_mismatch(tmp_path: Path, marker: Path) -> None:
    blob = bytearray(saved_bytes())
    info = zipfile.ZipFile(io.BytesIO(bytes(blob))).getinfo("archive/data.pkl")
    start = info.header_offset + 30
    assert blob[start : start + 16] == b"archive/data.pkl"
    blob[start : start + 16] = b"archive/data.pkX"
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(blob))
    assert_refused(path, "zip-name-mismatch", marker)


def test_zip_duplicate_members(tmp_path: Path, marker: Path) -> None:
    # The checker might read the first data.pkl, the loader the second.
    path = tmp_path / "model.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
            zf.writestr("archive/data.pkl", as_checkpoint(os_system(marker)))
            zf.writestr("archive/version", b"3\n")
    assert_refused(path, "zip-duplicate-member", marker)


def test_zip_deflate_bomb(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        zf.writestr("archive/data/0", bytes(64 * 2**20))  # 64 MiB of zeros -> ~64 KiB
        zf.writestr("archive/version", b"3\n")
    assert path.stat().st_size < 2**20
    assert_refused(path, "zip-compression-ratio", marker)


def test_zip_member_outside_archive_folder(tmp_path: Path, marker: Path) -> None:
    records = {"data.pkl": pickle.dumps({}, protocol=2), "version": b"3\n"}
    path = torch_zip(tmp_path / "model.pt", records)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("other/data.pkl", as_checkpoint(os_system(marker)))
    assert_refused(path, "zip-unexpected-record", marker)


def test_zip_without_torch_layout(tmp_path: Path, marker: Path) -> None:
    path = torch_zip(tmp_path / "model.pt", {"weights.npy": b"\x93NUMPY"})
    error = assert_refused(path, "zip-not-torch", marker)
    assert error.format == "zip"


def test_storage_numel_exceeds_its_record(tmp_path: Path, marker: Path) -> None:
    blob = saved_bytes({"w": torch.ones(4)})
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        records = {n.split("/", 1)[1]: zf.read(n) for n in zf.namelist()}
    records["data/0"] = records["data/0"][:8]  # 2 floats stored, 4 claimed
    path = torch_zip(tmp_path / "model.pt", records)
    error = assert_refused(path, "storage-exceeds-record", marker)
    assert "16 bytes" in error.message and "holds 8 bytes" in error.message


def test_tensor_view_outside_its_storage(tmp_path: Path, marker: Path) -> None:
    blob = saved_bytes({"w": torch.ones(4)})
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        records = {n.split("/", 1)[1]: zf.read(n) for n in zf.namelist()}
    # offset 0, size (4,) -> size (64,): a view reading far past the 4-element storage.
    assert records["data.pkl"].count(b"K\x00K\x04\x85") == 1
    records["data.pkl"] = records["data.pkl"].replace(b"K\x00K\x04\x85", b"K\x00K\x40\x85")
    path = torch_zip(tmp_path / "model.pt", records)
    assert_refused(path, "tensor-out-of-bounds", marker)


# --- safetensors crafted against the header checks ---------------------------------------------------------


def safetensors_file(
    path: Path, header: dict[str, object] | bytes, data: bytes, *, length: int | None = None
) -> Path:
    import json

    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def test_safetensors_huge_header(tmp_path: Path, marker: Path) -> None:
    path = safetensors_file(tmp_path / "m.safetensors", {}, b"", length=2**40)
    assert sniff_format(path) == "safetensors"
    assert_refused(path, "safetensors-header-too-large", marker)
    path = safetensors_file(tmp_path / "n.safetensors", {}, b"", length=5_000_000)
    assert_refused(path, "safetensors-header-out-of-bounds", marker)


def test_safetensors_offsets_out_of_bounds(tmp_path: Path, marker: Path) -> None:
    header = {"w": {"dtype": "F32", "shape": [1024], "data_offsets": [0, 4096]}}
    path = safetensors_file(tmp_path / "m.safetensors", header, bytes(16))
    assert_refused(path, "safetensors-offsets-out-of-bounds", marker)


def test_safetensors_overlapping_offsets(tmp_path: Path, marker: Path) -> None:
    header = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    }
    path = safetensors_file(tmp_path / "m.safetensors", header, bytes(24))
    assert_refused(path, "safetensors-offsets-overlap", marker)


def test_safetensors_nul_in_name(tmp_path: Path, marker: Path) -> None:
    header = {"fc.weight\x00.pkl": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    path = safetensors_file(tmp_path / "m.safetensors", header, bytes(8))
    assert_refused(path, "safetensors-bad-name", marker)


def test_safetensors_other_header_lies(tmp_path: Path, marker: Path) -> None:
    ok = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    cases: list[tuple[dict[str, object] | bytes, bytes, str]] = [
        (b'{"a": ' + str(ok).replace("'", '"').encode() + b', "a": ' + str(ok).replace("'", '"').encode() + b"}", bytes(8), "safetensors-duplicate-name"),
        ({"": ok}, bytes(8), "safetensors-bad-name"),
        ({"a": {**ok, "dtype": "PICKLE"}}, bytes(8), "safetensors-bad-dtype"),
        ({"a": {**ok, "shape": [3]}}, bytes(8), "safetensors-size-mismatch"),
        ({"a": ok}, bytes(12), "safetensors-offsets-gap"),
        (b"{not json", b"", "safetensors-header-invalid"),
    ]  # fmt: skip
    for i, (header, data, reason) in enumerate(cases):
        assert_refused(
            safetensors_file(tmp_path / f"{i}.safetensors", header, data), reason, marker
        )


# --- the environment and the process cannot switch the protections off ----------------------------------------


def test_force_no_weights_only_env_still_refuses(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    path = tmp_path / "model.pt"
    torch.save({"epoch": ReduceToSystem(marker), "state_dict": small_state()}, path)
    assert_refused(path, "global-not-allowed", marker)


def test_torch_load_never_reads_the_file(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One parser: our checks and our builder read the file; torch's unpickler and zip reader
    # (a second parser that could see other bytes) never do. A torch.load that would run the
    # payload changes nothing.
    def careless_load(f: object, *args: object, **kwargs: object) -> object:
        with zipfile.ZipFile(f) as zf:  # type: ignore[arg-type]
            name = next(n for n in zf.namelist() if n.endswith("data.pkl"))
            return pickle.loads(zf.read(name))

    monkeypatch.setattr(torch, "load", careless_load)
    path = tmp_path / "model.pt"
    torch.save({"epoch": ReduceToSystem(marker), "state_dict": small_state()}, path)
    assert_refused(path, "global-not-allowed", marker)
    torch.save(small_state(), tmp_path / "ok.pt")
    assert set(read_checkpoint(tmp_path / "ok.pt")) == {"fc.weight", "fc.bias"}
    assert not marker.exists()


def test_globals_added_to_torchs_safe_list_are_still_refused(tmp_path: Path, marker: Path) -> None:
    # Some other code in the process trusted os.system for torch.load; we do not.
    path = tmp_path / "model.pt"
    torch.save({"epoch": ReduceToSystem(marker), "state_dict": small_state()}, path)
    with torch.serialization.safe_globals([os.system]):
        assert_refused(path, "global-not-allowed", marker)


def test_missing_file_is_a_loader_error_not_a_refusal(tmp_path: Path) -> None:
    with pytest.raises(LoaderError) as info:
        read_checkpoint(tmp_path / "absent.pt")
    assert not isinstance(info.value, UnsafeCheckpointError)


def test_dry_run_stand_ins_cannot_be_rewritten_by_a_pickle(tmp_path: Path, marker: Path) -> None:
    # BUILD on an allowlisted global would otherwise rewrite our stand-in for later files.
    payload = (
        PROTO2
        + glob("torch", "FloatStorage")
        + EMPTY_DICT
        + text("dtype")
        + text("x")
        + SETITEM
        + b"b"
        + STOP
    )
    path = zip_with_pickle(tmp_path / "model.pt", payload)
    assert_refused(path, "pickle-bad-value", marker)
    assert _picklecheck.allowed_globals()[("torch", "FloatStorage")] == _picklecheck._StorageType(
        torch.float32
    )
    torch.save(small_state(), tmp_path / "ok.pt")
    assert read_checkpoint(tmp_path / "ok.pt").tensors


# --- legacy streams that lie about their storages (read with allow_legacy=True) -------------------


def legacy_bytes(state: dict[str, torch.Tensor] | None = None) -> bytes:
    buf = io.BytesIO()
    torch.save(state or {"w": torch.ones(3)}, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def test_legacy_storage_count_lies(tmp_path: Path, marker: Path) -> None:
    blob = bytearray(legacy_bytes())
    # The storage section: int64 element count (3), then 3 floats, at the very end.
    count_at = len(blob) - 12 - 8
    assert struct.unpack("<q", blob[count_at : count_at + 8]) == (3,)
    blob[count_at : count_at + 8] = struct.pack("<q", 3_000_000)
    path = tmp_path / "old.pth"
    path.write_bytes(bytes(blob))
    assert_refused(path, "storage-exceeds-record", marker, allow_legacy=True)


def test_legacy_truncated_and_trailing(tmp_path: Path, marker: Path) -> None:
    blob = legacy_bytes()
    (tmp_path / "short.pth").write_bytes(blob[:-4])
    assert_refused(tmp_path / "short.pth", "storage-exceeds-record", marker, allow_legacy=True)
    (tmp_path / "long.pth").write_bytes(blob + PROTO2 + os_system(marker) + STOP)
    assert_refused(tmp_path / "long.pth", "legacy-trailing-data", marker, allow_legacy=True)


def test_tar_named_pt(tmp_path: Path, marker: Path) -> None:
    import tarfile

    (tmp_path / "data.pkl").write_bytes(pickle.dumps(ReduceToSystem(marker), protocol=2))
    with tarfile.open(tmp_path / "model.pt", "w") as tf:
        tf.add(tmp_path / "data.pkl", arcname="pickle")
    assert_refused(tmp_path / "model.pt", "format-tar", marker)
