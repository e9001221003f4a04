"""Builders: the architecture half of loading. ``LoadSpec.builder`` names one.

A builder turns an entry's :class:`LoadSpec` into an ``nn.Module`` with *untrained*
weights; the loader then fills it with the verified tensors. Builders never download,
never read a checkpoint and never run code that came with one: they use the architecture
registries of libraries we trust (timm, torchvision, pytorchcv, transformers) or an
architecture described as data (``state-dict``).

A source with architectures of its own plugs in with :func:`register_builder`::

    register_builder(ModuleBuilder("github", {"mnist_cnn": MnistCNN}))

Built-in builders:

- ``timm``: ``timm.create_model(arch, pretrained=False)``; ``hf-hub:owner/repo`` reads the
  repository's ``config.json`` (fetched and verified like weights) for the architecture.
- ``torchvision``: ``torchvision.models.get_model(arch, weights=None)``.
- ``pytorchcv``: ``pytorchcv.model_provider.get_model(arch, pretrained=False)``.
- ``transformers``: ``AutoModelForImageClassification`` from the cached ``config.json``;
  a config with ``auto_map`` (remote code) is refused, ``trust_remote_code`` is never set.
- ``state-dict``: a plain sequence of torch layers described in ``LoadSpec.kwargs["layers"]``
  (:mod:`securitynet.loader.layernet`; curated files declare it as an architecture spec,
  :mod:`securitynet.annotate.archspec`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from securitynet.errors import (
    UnsafeCheckpointError,
    UnsupportedEntryError,
)
from securitynet.loader import hub
from securitynet.loader.preprocessing import IMAGENET_DEFAULTS
from securitynet.records import EntryRecord, FileRef, LoadSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

#: Largest JSON companion file (config.json, preprocessor_config.json, shard index) we parse.
MAX_JSON_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class BuildContext:
    """What a builder may use: the entry, its spec and its verified companion files."""

    record: EntryRecord
    spec: LoadSpec
    #: role -> local path of each companion file the builder asked for (already verified).
    files: Mapping[str, Path] = field(default_factory=dict)
    #: Builders may construct the net on torch's meta device (no memory, no random init:
    #: every value is about to be replaced by the checkpoint's). The loader then assigns
    #: the checkpoint's tensors, and if anything is left unmaterialised (a buffer the
    #: module computes in ``__init__``, tied weights) it builds again with this False.
    lazy_init: bool = True


@dataclass(frozen=True)
class BuiltNet:
    """A net with untrained weights, ready for the checkpoint's tensors."""

    #: The module the checkpoint's tensors are loaded into (its state-dict names), or None
    #: when ``load`` builds the net itself.
    net: nn.Module | None
    #: Preprocessing / label fields (``LoadSpec`` names) known to the builder; the entry's
    #: own values win over these.
    defaults: dict[str, Any] = field(default_factory=dict)
    #: The module handed to users, if not ``net`` itself (e.g. a wrapper returning logits).
    runtime: nn.Module | None = None
    #: For libraries whose nets rename checkpoint tensors while loading (transformers 5):
    #: takes the checkpoint's tensors, returns the ready module, and raises
    #: ArchitectureMismatchError itself. Default: a strict, checked ``load_state_dict``.
    load: Callable[[Mapping[str, torch.Tensor]], nn.Module] | None = None
    #: Applied to the module once its tensors are in (what a library does after loading
    #: its own weights, e.g. torchvision's googlenet dropping its auxiliary heads).
    finish: Callable[[nn.Module], nn.Module] | None = None


@runtime_checkable
class Builder(Protocol):
    """Plug-in that builds nets for entries whose ``LoadSpec.builder`` is ``name``."""

    name: str

    def companion_files(self, record: EntryRecord, spec: LoadSpec) -> dict[str, FileRef]:
        """Files besides the weights that :meth:`build` needs, by role (fetched and
        verified by the loader before :meth:`build` is called)."""
        ...

    def build(self, ctx: BuildContext) -> BuiltNet:
        """A net whose state-dict names and shapes are those of the entry's checkpoint."""
        ...


# --- registry -----------------------------------------------------------------------------

_REGISTRY: dict[str, Builder] = {}


def register_builder(builder: Builder, *, replace: bool = False) -> None:
    """Make ``builder`` handle entries whose ``LoadSpec.builder`` is ``builder.name``."""
    _ensure_builtins()
    if builder.name in _REGISTRY and not replace:
        raise ValueError(f"a builder named {builder.name!r} is already registered")
    _REGISTRY[builder.name] = builder


def unregister_builder(name: str) -> None:
    _REGISTRY.pop(name, None)


def get_builder(name: str) -> Builder:
    """The builder registered as ``name``; :class:`UnsupportedEntryError` if none is."""
    _ensure_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnsupportedEntryError(
            f"no builder named {name!r}",
            hint=f"Known builders: {', '.join(sorted(_REGISTRY))}.",
            builder=name,
        ) from None


def list_builders() -> list[str]:
    _ensure_builtins()
    return sorted(_REGISTRY)


def _ensure_builtins() -> None:
    if _REGISTRY:
        return
    from securitynet.loader.hf_builder import TransformersBuilder
    from securitynet.loader.layernet import StateDictBuilder

    for builder in (TimmBuilder(), TorchvisionBuilder(), PytorchcvBuilder(), TransformersBuilder(), StateDictBuilder()):
        _REGISTRY.setdefault(builder.name, builder)


# --- helpers ------------------------------------------------------------------------------


def read_json(path: Path, *, what: str) -> dict[str, Any]:
    """A JSON object from a (verified) companion file, size-bounded."""
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise UnsafeCheckpointError(f"{what} is {size} bytes; refusing to parse more than {MAX_JSON_BYTES}")
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError) as exc:
        raise UnsafeCheckpointError(f"{what} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise UnsafeCheckpointError(f"{what} is not a JSON object")
    return data


def weights_ref(record: EntryRecord) -> FileRef:
    """The file the entry's weights are read from: the shard index of a sharded checkpoint
    (``role="index"``, or a ``*.index.json`` listed as weights), else the first
    ``role="weights"`` file."""
    for ref in record.files:
        if ref.role == "index" or (ref.role == "weights" and ref.url.endswith(".index.json")):
            return ref
    for ref in record.files:
        if ref.role == "weights":
            return ref
    raise UnsupportedEntryError(f"{record.id} lists no weights file", id=record.id)


def companion_ref(record: EntryRecord, role: str, filename: str, *, derive: bool) -> FileRef | None:
    """The entry's file with ``role`` (or named ``filename``); with ``derive``, a Hub file
    of that name beside the weights when the entry lists none."""
    for ref in record.files:
        if ref.role == role or (ref.role != "weights" and ref.url.rstrip("/").endswith("/" + filename)):
            return ref
    if not derive:
        return None
    weights = weights_ref(record)
    if not hub.is_hub_url(weights.url):
        raise UnsupportedEntryError(
            f"{record.id}: needs {filename}, which the entry does not list", id=record.id, role=role
        )
    folder = weights.url.rsplit("/", 1)[0]
    return FileRef(url=f"{folder}/{filename}", revision=weights.revision or record.revision, role=role)


def construct(ctx: BuildContext, factory: Callable[[], nn.Module]) -> nn.Module:
    """``factory()`` on the meta device when ``ctx.lazy_init`` allows it (see
    :class:`BuildContext`), else as usual. A module whose ``__init__`` cannot run on meta
    tensors is simply built as usual."""
    import torch

    if ctx.lazy_init:
        try:
            with torch.device("meta"):
                return factory()
        except (UnsupportedEntryError, UnsafeCheckpointError):
            raise
        except Exception as exc:  # e.g. a .item() on a tensor while building
            log.debug("%s: cannot build on the meta device (%s); initialising", ctx.record.id, exc)
    return factory()


def _num_classes_kwargs(spec: LoadSpec) -> dict[str, Any]:
    kwargs = dict(spec.kwargs)
    if spec.num_classes is not None:
        kwargs.setdefault("num_classes", spec.num_classes)
    return kwargs


# --- timm ---------------------------------------------------------------------------------

_TIMM_CFG_KEYS = {
    "input_size": "input_size",
    "mean": "mean",
    "std": "std",
    "interpolation": "interpolation",
    "crop_pct": "crop_pct",
    "crop_mode": "crop_mode",
    "num_classes": "num_classes",
}


class TimmBuilder:
    """timm registry architectures, and timm-library Hub repositories (``hf-hub:owner/repo``)."""

    name = "timm"
    HF_PREFIX = "hf-hub:"

    def companion_files(self, record: EntryRecord, spec: LoadSpec) -> dict[str, FileRef]:
        arch = spec.architecture or ""
        if not arch.startswith(self.HF_PREFIX):
            return {}
        ref = companion_ref(record, "config", "config.json", derive=False)
        if ref is None:
            repo, _, rev = arch[len(self.HF_PREFIX) :].partition("@")
            weights = weights_ref(record)
            ref = FileRef(
                url=f"hf://{repo}/config.json", revision=rev or weights.revision or record.revision, role="config"
            )
        return {"config": ref}

    def build(self, ctx: BuildContext) -> BuiltNet:
        import timm

        spec = ctx.spec
        arch = spec.architecture
        if not arch:
            raise UnsupportedEntryError(f"{ctx.record.id}: timm entry without an architecture", id=ctx.record.id)
        pretrained_cfg: dict[str, Any] | None = None
        model_args: dict[str, Any] = {}
        if arch.startswith(self.HF_PREFIX):
            config = read_json(ctx.files["config"], what=f"{arch} config.json")
            arch, pretrained_cfg, model_args = parse_timm_config(config)
        # A ':' would make timm resolve the name itself (hf-hub:, local-dir:): a download
        # or a read we did not verify. Registry names never contain one.
        if ":" in arch or not timm.is_model(arch):
            raise UnsupportedEntryError(f"timm has no architecture {arch!r}", architecture=arch)
        kwargs = {**model_args, **_num_classes_kwargs(spec)}
        net = construct(
            ctx, lambda: timm.create_model(arch, pretrained=False, pretrained_cfg=pretrained_cfg, **kwargs)
        )
        cfg = dict(getattr(net, "pretrained_cfg", None) or {})
        defaults = {ours: cfg[theirs] for theirs, ours in _TIMM_CFG_KEYS.items() if cfg.get(theirs) is not None}
        defaults["num_classes"] = getattr(net, "num_classes", None) or defaults.get("num_classes")
        names = cfg.get("label_descriptions") or cfg.get("label_names")
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names, key=int)] if all(str(k).isdigit() for k in names) else None
        if isinstance(names, list) and len(names) == defaults["num_classes"]:
            defaults["labels"] = [str(n) for n in names]
        return BuiltNet(net, defaults)


def parse_timm_config(config: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(architecture, pretrained_cfg, model_args) from a timm Hub ``config.json``.

    Mirrors timm's own parsing of the file (the legacy single-dict form, top-level
    ``num_classes`` / ``label_names`` overrides, ``model_args``) without downloading."""
    cfg = json.loads(json.dumps(config))  # a deep copy of plain JSON
    if "pretrained_cfg" not in cfg:
        pretrained_cfg = cfg
        cfg = {
            "architecture": pretrained_cfg.pop("architecture", None),
            "pretrained_cfg": pretrained_cfg,
            "model_args": pretrained_cfg.pop("model_args", {}),
        }
        if "labels" in pretrained_cfg:
            pretrained_cfg["label_names"] = pretrained_cfg.pop("labels")
    arch = cfg.get("architecture")
    pretrained_cfg = cfg.get("pretrained_cfg") or {}
    model_args = cfg.get("model_args") or {}
    if not isinstance(arch, str) or not isinstance(pretrained_cfg, dict) or not isinstance(model_args, dict):
        raise UnsupportedEntryError("timm config.json has no usable 'architecture' / 'pretrained_cfg'")
    for key in ("num_classes", "label_names", "label_descriptions"):
        if key in cfg:
            pretrained_cfg[key] = cfg[key]
    for key in ("input_size", "test_input_size", "min_input_size", "mean", "std"):
        if isinstance(pretrained_cfg.get(key), list):
            pretrained_cfg[key] = tuple(pretrained_cfg[key])
    # Where the weights would come from is ours to decide, not the config's.
    for key in ("url", "file", "hf_hub_id", "hf_hub_filename", "state_dict", "source"):
        pretrained_cfg.pop(key, None)
    for key, value in model_args.items():
        if not plain_json(value):
            raise UnsupportedEntryError(f"timm config.json model_args[{key!r}] is not plain data")
    return arch, pretrained_cfg, model_args


def plain_json(value: Any) -> bool:
    """True for JSON-like plain data (numbers, strings, booleans, None, lists and str-keyed dicts)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(plain_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain_json(v) for k, v in value.items())
    return False


# --- torchvision --------------------------------------------------------------------------


class TorchvisionBuilder:
    """torchvision classification architectures, built with ``weights=None``.

    torchvision's own ``weights.get_state_dict()`` is never called: it downloads through
    ``torch.hub.load_state_dict_from_url`` (unpinned cache, ``weights_only=False`` default).
    Some builder functions change constructor arguments when they are given weights;
    :meth:`weights_kwargs` does the same from the entry's data (its own ``kwargs`` win)."""

    name = "torchvision"

    def companion_files(self, record: EntryRecord, spec: LoadSpec) -> dict[str, FileRef]:
        return {}

    @staticmethod
    def weights_kwargs(arch: str, spec: LoadSpec) -> dict[str, Any]:
        """Constructor arguments torchvision's builder functions set when given weights
        (torchvision 0.29: googlenet.py, inception.py, vision_transformer.py, maxvit.py).
        ViT and MaxViT take the weights' ``min_size``, which is their eval crop size."""
        if arch in ("googlenet", "inception_v3"):
            return {"transform_input": True, "aux_logits": True, "init_weights": False}
        size = spec.input_size[-1] if spec.input_size else None
        if size and arch.startswith("vit_"):
            return {"image_size": size}
        if size and arch.startswith("maxvit_"):
            return {"input_size": (size, size)}
        return {}

    def build(self, ctx: BuildContext) -> BuiltNet:
        from torchvision import models

        arch = ctx.spec.architecture or ""
        if arch not in models.list_models(module=models):
            raise UnsupportedEntryError(f"torchvision has no classification architecture {arch!r}", architecture=arch)
        kwargs = {**self.weights_kwargs(arch, ctx.spec), **_num_classes_kwargs(ctx.spec)}
        net = construct(ctx, lambda: models.get_model(arch, weights=None, **kwargs))
        defaults = dict(IMAGENET_DEFAULTS)
        head = getattr(net, "num_classes", None) or ctx.spec.num_classes
        if head is not None:
            defaults["num_classes"] = head
        finish = _drop_googlenet_aux if arch == "googlenet" and "aux_logits" not in ctx.spec.kwargs else None
        return BuiltNet(net, defaults, finish=finish)


def _drop_googlenet_aux(net: nn.Module) -> nn.Module:
    """What torchvision's ``googlenet(weights=...)`` does after loading (aux_logits=False)."""
    net.aux_logits = False  # type: ignore[assignment]
    net.aux1 = None  # type: ignore[assignment]
    net.aux2 = None  # type: ignore[assignment]
    return net


# --- pytorchcv (imgclsmob) ----------------------------------------------------------------

_CIFAR_DEFAULTS: dict[str, Any] = {
    "input_size": (3, 32, 32),
    "mean": (0.4914, 0.4822, 0.4465),
    "std": (0.2023, 0.1994, 0.2010),
    "interpolation": "bilinear",
    "crop_pct": 1.0,
    "crop_mode": "center",
}


class PytorchcvBuilder:
    """imgclsmob architectures through pytorchcv, built with ``pretrained=False``.

    pytorchcv's ``load_model`` calls ``torch.load(weights_only=False)``; it is never used.
    Preprocessing defaults come from pytorchcv's bundled ``model_metainfos.csv``
    (``in1k`` rows: image size and crop fraction; ``cf`` rows: CIFAR/SVHN 32x32)."""

    name = "pytorchcv"

    def companion_files(self, record: EntryRecord, spec: LoadSpec) -> dict[str, FileRef]:
        return {}

    def build(self, ctx: BuildContext) -> BuiltNet:
        from pytorchcv.model_provider import get_model

        arch = (ctx.spec.architecture or "").lower()
        kwargs = _num_classes_kwargs(ctx.spec)
        kwargs.pop("pretrained", None)
        try:
            net = construct(ctx, lambda: get_model(arch, pretrained=False, **kwargs))
        except ValueError as exc:
            raise UnsupportedEntryError(f"pytorchcv has no architecture {arch!r}", architecture=arch) from exc
        defaults = self._defaults(arch)
        head = getattr(net, "num_classes", None)
        if head is not None:
            defaults["num_classes"] = head
        return BuiltNet(net, defaults)

    @staticmethod
    def _defaults(arch: str) -> dict[str, Any]:
        import csv
        from importlib import resources

        text = resources.files("pytorchcv.models.common").joinpath("model_metainfos.csv").read_text()
        for row in csv.DictReader(text.splitlines()):
            if row.get("model_name") != arch:
                continue
            if row.get("test_dataset") == "cf":
                return dict(_CIFAR_DEFAULTS)
            if row.get("test_dataset") == "in1k":
                defaults = dict(IMAGENET_DEFAULTS)
                if (row.get("img_size") or "").isdigit():
                    size = int(row["img_size"])
                    defaults["input_size"] = (3, size, size)
                with contextlib.suppress(ValueError):
                    defaults["crop_pct"] = float(row.get("img_scale") or "")
                return defaults
        return {}


class ModuleBuilder:
    """A builder over ``nn.Module`` factories of one's own: ``architecture`` names the
    factory, ``LoadSpec.kwargs`` are its arguments."""

    def __init__(self, name: str, factories: Mapping[str, Callable[..., nn.Module]], *, defaults: dict[str, Any] | None = None) -> None:
        self.name = name
        self.factories = dict(factories)
        self.defaults = dict(defaults or {})

    def companion_files(self, record: EntryRecord, spec: LoadSpec) -> dict[str, FileRef]:
        return {}

    def build(self, ctx: BuildContext) -> BuiltNet:
        factory = self.factories.get(ctx.spec.architecture or "")
        if factory is None:
            raise UnsupportedEntryError(
                f"builder {self.name!r} has no architecture {ctx.spec.architecture!r}",
                hint=f"Known: {', '.join(sorted(self.factories))}.",
            )
        return BuiltNet(construct(ctx, lambda: factory(**ctx.spec.kwargs)), dict(self.defaults))
