"""Benign checkpoints read back: the real public ones in ../shared and tiny nets saved here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import securitynet as sn
from securitynet.errors import UnsafeCheckpointError
from securitynet.loader.safe import (
    Checkpoint,
    read_checkpoint,
    save_safetensors,
    sniff_format,
)

GITHUB_MNIST = "checkpoints/github-mnist"


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return TinyNet().state_dict()


def assert_same_tensors(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want)
    for name, tensor in want.items():
        assert got[name].dtype == tensor.dtype, name
        assert torch.equal(got[name], tensor), name


# --- real checkpoints -----------------------------------------------------------------------


def _real_files(shared_dir: Path) -> list[Path]:
    files = sorted((shared_dir / GITHUB_MNIST).glob("*.pt"))
    assert len(files) == 6, files
    return files


def test_every_real_github_checkpoint_reads(shared_dir: Path) -> None:
    for path in _real_files(shared_dir):
        ckpt = read_checkpoint(path)
        assert ckpt.format == "pytorch-zip"
        assert ckpt.tensors, path.name
        assert all(
            isinstance(t, torch.Tensor) and t.dtype == torch.float32 for t in ckpt.tensors.values()
        )
        # Every one of them is a small CNN with conv and linear weights.
        assert any(t.dim() == 4 for t in ckpt.tensors.values()), path.name
        assert any(t.dim() == 2 for t in ckpt.tensors.values()), path.name


def test_real_checkpoint_tensors_equal_torch_weights_only(shared_dir: Path) -> None:
    for path in _real_files(shared_dir):
        ours = read_checkpoint(path)
        theirs = torch.load(path, map_location="cpu", weights_only=True)
        theirs = theirs.get("model_state_dict", theirs)
        assert_same_tensors(ours.tensors, dict(theirs))


def test_mia_defence_checkpoint_unwraps_model_state_dict(shared_dir: Path) -> None:
    path = (
        shared_dir
        / GITHUB_MNIST
        / "john-samurai--AttackDefenseMNIST-trainedModel--full_MIA-defense_model.pt"
    )
    ckpt = read_checkpoint(path)
    assert ckpt.wrapper_key == "model_state_dict"
    assert set(ckpt.tensors) == {
        "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
    }  # fmt: skip
    assert ckpt.tensors["fc1.weight"].shape == (128, 3136)
    assert ckpt.metadata["architecture"] == "EnhancedRegularizedCNN"
    assert isinstance(ckpt.metadata["defense_design"], str)
    assert ckpt.metadata["config"]["noise_multiplier"] == 0.3
    assert len(ckpt.metadata["training_history"]["train_loss"]) == 15


def test_real_checkpoint_loads_into_its_architecture(shared_dir: Path) -> None:
    # Zhuzhenghao/mnist-data: conv1 5x5 1->20, conv2 5x5 20->50, fc1 800->500, fc2 500->10.
    ckpt = read_checkpoint(shared_dir / GITHUB_MNIST / "Zhuzhenghao--mnist-data--mnist_cnn.pt")
    net = nn.ModuleDict(
        {
            "conv1": nn.Conv2d(1, 20, 5),
            "conv2": nn.Conv2d(20, 50, 5),
            "fc1": nn.Linear(800, 500),
            "fc2": nn.Linear(500, 10),
        }
    )
    net.load_state_dict(ckpt.tensors)


def test_package_exports_read_checkpoint(shared_dir: Path) -> None:
    path = _real_files(shared_dir)[0]
    assert sn.read_checkpoint is read_checkpoint
    assert sn.read_checkpoint(path).tensors


# --- tiny nets in every supported format ------------------------------------------------------


def test_zip_state_dict_round_trip(tmp_path: Path) -> None:
    state = tiny_state()
    torch.save(state, tmp_path / "net.pt")
    ckpt = read_checkpoint(tmp_path / "net.pt")
    assert ckpt.format == "pytorch-zip" and ckpt.wrapper_key is None and ckpt.metadata == {}
    assert_same_tensors(ckpt.tensors, state)
    net = TinyNet()
    net.load_state_dict(ckpt.tensors)


def test_safetensors_round_trip(tmp_path: Path) -> None:
    import safetensors.torch

    state = tiny_state()
    safetensors.torch.save_file(state, tmp_path / "net.safetensors", metadata={"format": "pt"})
    ckpt = read_checkpoint(tmp_path / "net.safetensors")
    assert ckpt.format == "safetensors"
    assert ckpt.metadata == {"format": "pt"}
    assert_same_tensors(ckpt.tensors, state)


def test_legacy_reads_only_when_allowed(tmp_path: Path) -> None:
    state = tiny_state()
    path = tmp_path / "old.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    assert sniff_format(path) == "pytorch-legacy"
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(path)
    assert info.value.reason == "legacy-refused"
    ckpt = read_checkpoint(path, allow_legacy=True)
    assert ckpt.format == "pytorch-legacy"
    assert_same_tensors(ckpt.tensors, state)


@pytest.mark.parametrize("wrapper", ["state_dict", "model_state_dict", "model", "net", "module"])
def test_common_wrappers_unwrap_with_plain_metadata(tmp_path: Path, wrapper: str) -> None:
    state = tiny_state()
    torch.save(
        {
            wrapper: state,
            "epoch": 90,
            "arch": "tinynet",
            "best_acc1": torch.tensor(71.5),
            "lr": [0.1, 0.01],
        },
        tmp_path / "ckpt.pth.tar",
    )
    ckpt = read_checkpoint(tmp_path / "ckpt.pth.tar")
    assert ckpt.wrapper_key == wrapper
    assert ckpt.metadata == {"epoch": 90, "arch": "tinynet", "best_acc1": 71.5, "lr": [0.1, 0.01]}
    assert_same_tensors(ckpt.tensors, state)


def test_optimizer_state_beside_the_weights_is_left_out_with_a_note(tmp_path: Path) -> None:
    net = TinyNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(2, 1, 5, 5)).sum().backward()
    opt.step()
    torch.save(
        {"state_dict": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 3},
        tmp_path / "c.pt",
    )
    ckpt = read_checkpoint(tmp_path / "c.pt")
    assert ckpt.wrapper_key == "state_dict"
    assert ckpt.metadata == {"epoch": 3}
    assert any("'optimizer'" in note for note in ckpt.notes)
    assert_same_tensors(ckpt.tensors, net.state_dict())


def test_module_prefix_is_kept_and_noted(tmp_path: Path) -> None:
    state = {f"module.{k}": v for k, v in tiny_state().items()}
    torch.save({"state_dict": state}, tmp_path / "dp.pt")
    ckpt = read_checkpoint(tmp_path / "dp.pt")
    assert list(ckpt.tensors) == list(state)
    assert any("module." in note for note in ckpt.notes)


def test_explicit_key_picks_among_several_tensor_mappings(tmp_path: Path) -> None:
    state = tiny_state()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"state_dict": state, "model": ema}, tmp_path / "two.pt")
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(tmp_path / "two.pt")
    assert info.value.reason == "ambiguous-wrapper"
    assert_same_tensors(read_checkpoint(tmp_path / "two.pt", key="model").tensors, ema)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(tmp_path / "two.pt", key="nope")
    assert info.value.reason == "key-not-found"


def test_parameters_come_back_as_plain_tensors(tmp_path: Path) -> None:
    params = dict(TinyNet().named_parameters())
    torch.save(params, tmp_path / "params.pt")
    ckpt = read_checkpoint(tmp_path / "params.pt")
    assert all(type(t) is torch.Tensor and not t.requires_grad for t in ckpt.tensors.values())


def test_odd_dtypes_and_views_read_back(tmp_path: Path) -> None:
    base = torch.arange(16, dtype=torch.float32).reshape(4, 4)
    state = {
        "bf16": torch.randn(3, dtype=torch.bfloat16),
        "f8": torch.zeros(2, dtype=torch.float8_e4m3fn),
        "u16": torch.tensor([1, 2, 3]).to(torch.uint16),
        "transposed": base.t(),
        "slice": base[1:3],
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(3),
    }
    torch.save(state, tmp_path / "odd.pt")
    ckpt = read_checkpoint(tmp_path / "odd.pt")
    for name, tensor in state.items():
        assert ckpt.tensors[name].dtype == tensor.dtype
        assert torch.equal(ckpt.tensors[name].float(), tensor.float()), name


# --- conversion to safetensors ---------------------------------------------------------------


def test_save_safetensors_round_trips_metadata_and_wrapper(
    tmp_path: Path, shared_dir: Path
) -> None:
    path = (
        shared_dir
        / GITHUB_MNIST
        / "john-samurai--AttackDefenseMNIST-trainedModel--full_MIA-defense_model.pt"
    )
    ckpt = read_checkpoint(path)
    out = save_safetensors(ckpt, tmp_path / "converted.safetensors")
    assert sniff_format(out) == "safetensors"
    back = read_checkpoint(out)
    assert back.format == "safetensors"
    assert back.wrapper_key == "model_state_dict"
    assert back.metadata == ckpt.metadata
    assert_same_tensors(back.tensors, ckpt.tensors)
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_save_safetensors_handles_shared_and_non_contiguous_tensors(tmp_path: Path) -> None:
    weight = torch.randn(6, 4)
    state = {
        "embed.weight": weight,
        "head.weight": weight,  # tied: the same storage twice
        "t": weight.t(),  # a non-contiguous view of it
        "half": weight[3:],  # a view covering part of the storage
    }
    ckpt = Checkpoint(tensors=state, metadata={"epoch": 1}, format="pytorch-zip", wrapper_key=None)
    back = read_checkpoint(save_safetensors(ckpt, tmp_path / "tied.safetensors"))
    assert_same_tensors(back.tensors, {k: v.contiguous() for k, v in state.items()})
    assert back.metadata == {"epoch": 1}


def test_checkpoint_rezipped_with_deflate_reads(tmp_path: Path) -> None:
    # Someone unzipped a checkpoint and zipped it again with default (deflate) compression.
    import io
    import zipfile

    state = tiny_state()
    buf = io.BytesIO()
    torch.save(state, buf)
    with (
        zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src,
        zipfile.ZipFile(tmp_path / "rezipped.pt", "w", compression=zipfile.ZIP_DEFLATED) as dst,
    ):
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    assert_same_tensors(read_checkpoint(tmp_path / "rezipped.pt").tensors, state)


def test_sniff_ignores_the_name(tmp_path: Path) -> None:
    import safetensors.torch

    state = tiny_state()
    torch.save(state, tmp_path / "really-a-zip.safetensors")
    safetensors.torch.save_file(state, tmp_path / "really-safetensors.pt")
    assert sniff_format(tmp_path / "really-a-zip.safetensors") == "pytorch-zip"
    assert sniff_format(tmp_path / "really-safetensors.pt") == "safetensors"
    assert read_checkpoint(tmp_path / "really-a-zip.safetensors").format == "pytorch-zip"
    assert read_checkpoint(tmp_path / "really-safetensors.pt").format == "safetensors"


def test_tensors_and_plain_values_side_by_side(tmp_path: Path) -> None:
    state = tiny_state()
    torch.save({**state, "epoch": 7, "classes": ["cat", "dog"]}, tmp_path / "mixed.pt")
    ckpt = read_checkpoint(tmp_path / "mixed.pt")
    assert ckpt.wrapper_key is None
    assert ckpt.metadata == {"epoch": 7, "classes": ["cat", "dog"]}
    assert_same_tensors(ckpt.tensors, state)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([torch.ones(2)], "not-a-mapping"),
        (torch.ones(2), "not-a-mapping"),
        ({"optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}}, "no-tensor-mapping"),
        ({"state_dict": {"a": torch.ones(1), "b": {"nested": torch.ones(1)}}}, "no-tensor-mapping"),
        ({"state_dict": {"a": torch.ones(1)}, "extra": b"bytes"}, "non-plain-metadata"),
        ({1: torch.ones(1)}, "non-string-key"),
        ({"state_dict": {}}, "no-tensor-mapping"),
    ],
)
def test_shapes_we_do_not_unwrap_are_refused_with_the_reason(
    tmp_path: Path, payload: object, reason: str
) -> None:
    torch.save(payload, tmp_path / "odd.pt")
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(tmp_path / "odd.pt")
    assert info.value.reason == reason, info.value.message


def test_not_a_regular_file(tmp_path: Path) -> None:
    import os

    from securitynet.errors import LoaderError

    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(LoaderError, match="not a regular file"):
        read_checkpoint(tmp_path / "fifo")
