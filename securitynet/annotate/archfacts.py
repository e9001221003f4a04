"""Architecture facts no registry gives, computed without weights: parameter count and FLOPs.

A net is built with ``pretrained=False`` on PyTorch's *meta* device, where tensors have a
shape and a dtype but no storage: nothing is allocated, no initialiser runs, so building
every timm architecture takes minutes instead of an hour and gigabytes. Two ways of getting
there are tried in turn, and the one that worked is recorded:

``meta-device``
    the builder runs under ``with torch.device("meta")``: every factory call makes a meta
    tensor. Fast, but a constructor that computes with tensors (``.tolist()``,
    ``.item()``; torchvision's RegNet does) cannot read values back.
``meta-hooks``
    the builder runs on the CPU while global registration hooks move each parameter and
    buffer to the meta device as it is registered; CPU tensors exist only for a moment,
    uninitialised (``torch.empty`` touches no pages), and arithmetic in constructors works.

**Units.** ``params`` counts parameters (not buffers), shared ones once: timm's
``param_count`` and torchvision's ``num_params`` count the same way. ``gflops`` is 1e9
floating-point operations for one forward pass of *one* image at ``input_size`` in eval mode,
as counted by :class:`torch.utils.flop_counter.FlopCounterMode`, in which a multiply-
accumulate is **two** FLOPs and only matrix products, convolutions and attention are counted
(not elementwise ops, norms or pooling). That is the set of operations fvcore and timm count
as MACs, so ``gflops == 2 * gmacs``, twice timm's ``gmacs`` column and twice torchvision's
``_ops`` meta (which torchvision's documentation calls "GFLOPS" but counts MACs).

Results are cached in JSON files, one per builder, builder version and torch version,
``arch-facts-<builder>-<version>-torch<version>.json`` in the cache folder
(``$SECURITYNET_HOME/cache`` by default), keyed by architecture, input size, number of
classes and extra constructor arguments. Failures are cached too (they are deterministic for
a library version); ``refresh=True`` recomputes.

No database here: :mod:`securitynet.catalogue.archfacts` writes the results into the
catalogue.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securitynet.errors import InvalidQueryError
from securitynet.progress import track
from securitynet.settings import Settings, get_settings

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

#: Bumped when the meaning of a cached value changes; part of every cache file's content.
CACHE_FORMAT = 1

InputSize = tuple[int, int, int]


# --- what to measure, and what was measured -----------------------------------------------


#: Constructor arguments a library applies when it builds a net *for its released weights*,
#: which a bare ``pretrained=False`` build would not: the net measured is the net loaded.
#: torchvision's ``googlenet(weights=...)`` drops the two auxiliary heads unless asked
#: (``aux_logits`` defaults to False with weights, to True without): 6.6 M parameters, not 13.0 M.
WEIGHTED_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("torchvision", "googlenet"): {"aux_logits": False},
}


@dataclass(frozen=True)
class ArchSpec:
    """One net to measure: a builder's constructor and the arguments that change its shape.

    ``input_size`` and ``num_classes`` left as None mean the builder's default. Extra
    constructor arguments are held as canonical JSON (hashable, whatever their shape). Build
    specs with :meth:`of`, which strips a timm tag (``resnet50.a1_in1k`` -> ``resnet50``),
    so equal nets get equal specs.
    """

    builder: str
    architecture: str
    input_size: InputSize | None = None
    num_classes: int | None = None
    kwargs_json: str = ""

    @classmethod
    def of(
        cls,
        builder: str,
        architecture: str,
        *,
        input_size: int | Iterable[int] | None = None,
        num_classes: int | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> ArchSpec:
        name = builder.strip().lower()
        arch = architecture.strip()
        if get_builder(name).tagged:
            arch = arch.split(".", 1)[0]
        defaults = WEIGHTED_DEFAULTS.get((name, arch))
        if defaults:
            kwargs = {**defaults, **(kwargs or {})}
        return cls(
            builder=name,
            architecture=arch,
            input_size=_input_size(input_size),
            num_classes=num_classes,
            kwargs_json=_canonical_json(kwargs) if kwargs else "",
        )

    @property
    def kwargs(self) -> dict[str, Any]:
        """Extra constructor arguments (from the entry's load spec)."""
        value: dict[str, Any] = json.loads(self.kwargs_json) if self.kwargs_json else {}
        return value

    @property
    def key(self) -> str:
        """The cache key within one builder version: ``arch|CxHxW|classes|kwargs``."""
        size = "x".join(map(str, self.input_size)) if self.input_size else "default"
        classes = str(self.num_classes) if self.num_classes is not None else "default"
        return f"{self.architecture}|{size}|{classes}|{self.kwargs_json}"

    def __str__(self) -> str:
        return f"{self.builder}:{self.key.rstrip('|')}"


def _canonical_json(value: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidQueryError(f"constructor arguments must be JSON values: {exc}") from exc


def _input_size(value: int | Iterable[int] | None) -> InputSize | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (3, value, value)
    dims = tuple(int(v) for v in value)
    if len(dims) == 2:
        return (3, dims[0], dims[1])
    if len(dims) != 3:
        raise InvalidQueryError(f"input size must be N, (H, W) or (C, H, W), not {value!r}")
    return (dims[0], dims[1], dims[2])


@dataclass(frozen=True)
class ArchFacts:
    """What was measured for one :class:`ArchSpec` (see the module docstring for units).

    ``error`` is set when something failed; ``params`` may still be known when only the
    forward pass (FLOPs) failed. ``input_size`` and ``num_classes`` are the values actually
    used (the builder's defaults resolved).
    """

    params: int | None
    gflops: float | None
    error: str | None = None
    input_size: InputSize | None = None
    num_classes: int | None = None
    method: str | None = None  # 'meta-device' or 'meta-hooks'
    library: str | None = None  # builder distribution and version, e.g. 'timm 1.0.31'
    torch: str | None = None
    seconds: float = 0.0
    cached: bool = field(default=False, compare=False)

    @property
    def gmacs(self) -> float | None:
        return None if self.gflops is None else self.gflops / 2.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ArchFacts:
        values = dict(data)
        size = values.get("input_size")
        values["input_size"] = tuple(size) if size else None
        known = {f for f in cls.__dataclass_fields__ if f != "cached"}
        return cls(**{k: v for k, v in values.items() if k in known}, cached=True)


# --- builders -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Builder:
    """How one library builds a net from an :class:`ArchSpec` (weights never loaded)."""

    name: str
    distribution: str  # the installed package whose version keys the cache
    build: Callable[[ArchSpec], nn.Module]
    default_input_size: Callable[[nn.Module, ArchSpec], InputSize]
    tagged: bool = False  # architecture names may carry a '.tag' (timm)

    def version(self) -> str:
        return _distribution_version(self.distribution)


@cache
def _distribution_version(name: str) -> str:
    """An installed distribution's version (reading its metadata costs milliseconds: once)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _build_timm(spec: ArchSpec) -> nn.Module:
    import timm

    kwargs = spec.kwargs
    if spec.num_classes is not None:
        kwargs.setdefault("num_classes", spec.num_classes)
    if spec.input_size is not None:
        if spec.input_size[0] != 3:
            kwargs.setdefault("in_chans", spec.input_size[0])
        # timm itself passes img_size to nets whose pretrained config says their input size
        # is fixed (ViTs and kin: position embeddings, windows); a tag at another size than
        # the architecture's default gets that size here just as it would in create_model.
        cfg = timm.models.get_pretrained_cfg(spec.architecture)
        if cfg is not None and cfg.fixed_input_size:
            kwargs.setdefault("img_size", spec.input_size[1:])
    net: nn.Module = timm.create_model(spec.architecture, pretrained=False, **kwargs)
    return net


def _timm_input_size(net: nn.Module, spec: ArchSpec) -> InputSize:
    cfg = getattr(net, "pretrained_cfg", None) or {}
    size = cfg.get("input_size") or (3, 224, 224)
    return (int(size[0]), int(size[1]), int(size[2]))


def _rebuild_for_size(
    make: Callable[..., nn.Module],
    spec: ArchSpec,
    attribute: str,
    value: Any,
    kwargs: dict[str, Any],
) -> nn.Module:
    """Build, and build again with ``attribute=value`` when the net declares another fixed
    input size in that attribute (torchvision's ViT ``image_size``, pytorchcv's ``in_size``)."""
    net = make(**kwargs)
    declared = getattr(net, attribute, None)
    if spec.input_size is not None and declared is not None and attribute not in kwargs:
        current = tuple(declared) if isinstance(declared, (tuple, list)) else declared
        if current != value:
            net = make(**kwargs, **{attribute: value})
    return net


def _build_torchvision(spec: ArchSpec) -> nn.Module:
    from torchvision import models

    kwargs = spec.kwargs
    kwargs.setdefault("weights", None)
    if spec.num_classes is not None:
        kwargs.setdefault("num_classes", spec.num_classes)
    height = spec.input_size[1] if spec.input_size else None

    def make(**kw: Any) -> nn.Module:
        net: nn.Module = models.get_model(spec.architecture, **kw)
        return net

    return _rebuild_for_size(make, spec, "image_size", height, kwargs)


def _torchvision_input_size(net: nn.Module, spec: ArchSpec) -> InputSize:
    """The crop size of the architecture's default weights (224 for most, 299 for Inception)."""
    from torchvision import models

    size = getattr(net, "image_size", None)
    if isinstance(size, int):
        return (3, size, size)
    try:
        weights = models.get_model_weights(spec.architecture)
        keywords = getattr(weights.DEFAULT.transforms, "keywords", {})
        crop = keywords.get("crop_size")
    except (ValueError, KeyError, AttributeError):
        crop = None
    if isinstance(crop, int):
        return (3, crop, crop)
    return (3, 224, 224)


def _build_pytorchcv(spec: ArchSpec) -> nn.Module:
    from pytorchcv.model_provider import get_model

    kwargs = spec.kwargs
    kwargs.setdefault("pretrained", False)
    if spec.num_classes is not None:
        kwargs.setdefault("num_classes", spec.num_classes)
    if spec.input_size is not None and spec.input_size[0] != 3:
        kwargs.setdefault("in_channels", spec.input_size[0])
    hw = spec.input_size[1:] if spec.input_size else None

    def make(**kw: Any) -> nn.Module:
        net: nn.Module = get_model(spec.architecture, **kw)
        return net

    return _rebuild_for_size(make, spec, "in_size", hw, kwargs)


def _pytorchcv_input_size(net: nn.Module, spec: ArchSpec) -> InputSize:
    size = getattr(net, "in_size", None) or (224, 224)
    channels = int(getattr(net, "in_channels", 3) or 3)
    return (channels, int(size[0]), int(size[1]))


BUILDERS: dict[str, Builder] = {
    b.name: b
    for b in (
        Builder("timm", "timm", _build_timm, _timm_input_size, tagged=True),
        Builder("torchvision", "torchvision", _build_torchvision, _torchvision_input_size),
        Builder("pytorchcv", "pytorchcv", _build_pytorchcv, _pytorchcv_input_size),
    )
}


def torch_version() -> str:
    """The installed torch's version without its local build tag (2.14.1, not 2.14.1+cu130)."""
    return _distribution_version("torch").split("+", 1)[0]


def get_builder(name: str) -> Builder:
    try:
        return BUILDERS[name]
    except KeyError:
        raise InvalidQueryError(
            f"no architecture builder named {name!r}",
            hint=f"Builders: {', '.join(BUILDERS)}.",
            value=name,
        ) from None


def find_builder(name: str | None) -> Builder | None:
    return BUILDERS.get(name or "")


# --- measuring on the meta device -------------------------------------------------------------


@contextmanager
def _registration_to_meta() -> Iterator[None]:
    """Move every parameter and buffer to the meta device the moment a module registers it."""
    import torch
    from torch import nn
    from torch.nn.modules.module import (
        register_module_buffer_registration_hook,
        register_module_parameter_registration_hook,
    )

    def on_parameter(
        module: nn.Module, name: str, param: nn.Parameter | None
    ) -> nn.Parameter | None:
        if param is None or param.is_meta:
            return None
        return nn.Parameter(param.to(torch.device("meta")), requires_grad=param.requires_grad)

    def on_buffer(module: nn.Module, name: str, buffer: torch.Tensor | None) -> torch.Tensor | None:
        if buffer is None or buffer.is_meta:
            return None
        return buffer.to(torch.device("meta"))

    # torch's annotations say these hooks return None; its docs (and code) take a returned
    # value as the replacement, which is the point here
    handles = [
        register_module_parameter_registration_hook(on_parameter),  # type: ignore[arg-type]
        register_module_buffer_registration_hook(on_buffer),  # type: ignore[arg-type]
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _build_on_meta(builder: Builder, spec: ArchSpec) -> tuple[nn.Module, str]:
    """The net with every parameter and buffer on the meta device, and the method used."""
    import torch

    from securitynet.annotate._metacount import MetaCounter

    errors: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # init-scheme and deprecation chatter of the builders
        try:
            with MetaCounter(count=False), torch.device("meta"):
                net = builder.build(spec)
            # tensors made by legacy constructors (torch.Tensor(n)) ignore the device context
            return net.to(torch.device("meta")), "meta-device"
        except Exception as exc:  # any constructor may fail on meta; try the other way
            errors.append(f"meta-device: {_describe(exc)}")
        try:
            with MetaCounter(count=False), _registration_to_meta():
                net = builder.build(spec)
            return net.to(torch.device("meta")), "meta-hooks"
        except Exception as exc:
            errors.append(f"meta-hooks: {_describe(exc)}")
    raise _BuildError("; ".join(errors))


class _BuildError(Exception):
    pass


def _describe(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def count_params(net: nn.Module) -> int:
    """Parameters (shared ones once, buffers excluded), as timm and torchvision count them."""
    return sum(p.numel() for p in net.parameters())


def count_flops(net: nn.Module, input_size: InputSize) -> tuple[int, int | None]:
    """FLOPs of one eval-mode forward pass of one image through a net on the meta device, and
    the width of its output when that is one row of logits.

    Counted with the formulas of ``torch.utils.flop_counter`` (see
    :mod:`securitynet.annotate._metacount`: the same totals as ``FlopCounterMode``, faster).
    """
    import torch

    from securitynet.annotate._metacount import MetaCounter

    net.eval().requires_grad_(False)
    x = torch.empty((1, *input_size), device="meta")
    with torch.no_grad(), MetaCounter() as counter:
        out = net(x)
    width = int(out.shape[-1]) if isinstance(out, torch.Tensor) and out.ndim == 2 else None
    return counter.flops, width


def _measure(spec: ArchSpec) -> ArchFacts:
    """Build ``spec`` on the meta device and count; never raises for a failing net."""
    started = time.perf_counter()
    builder = get_builder(spec.builder)
    meta: dict[str, Any] = {
        "library": f"{builder.distribution} {builder.version()}",
        "torch": torch_version(),
    }

    def done(**values: Any) -> ArchFacts:
        values.setdefault("params", None)
        values.setdefault("gflops", None)
        return ArchFacts(**values, **meta, seconds=round(time.perf_counter() - started, 4))

    try:
        net, method = _build_on_meta(builder, spec)
    except _BuildError as exc:
        return done(error=f"build: {exc}", input_size=spec.input_size, num_classes=spec.num_classes)
    meta["method"] = method
    params = count_params(net)
    try:
        input_size = spec.input_size or builder.default_input_size(net, spec)
    except Exception as exc:
        return done(
            params=params, error=f"input size: {_describe(exc)}", num_classes=spec.num_classes
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flops, width = count_flops(net, input_size)
    except Exception as exc:  # a forward pass that needs real values (.item(), nonzero)
        return done(
            params=params,
            error=f"forward: {_describe(exc)}",
            input_size=input_size,
            num_classes=spec.num_classes,
        )
    return done(
        params=params,
        gflops=flops / 1e9,
        input_size=input_size,
        num_classes=width or spec.num_classes,
    )


def compute_arch_facts(
    builder: str,
    architecture: str,
    *,
    input_size: int | Iterable[int] | None = None,
    num_classes: int | None = None,
    kwargs: Mapping[str, Any] | None = None,
    cache: ArchFactsCache | None = None,
    refresh: bool = False,
) -> ArchFacts:
    """Parameters and FLOPs of one architecture, computed on the meta device.

    ``architecture`` is a constructor name of ``builder`` (a timm tag is stripped). With a
    ``cache``, a stored result is returned without building anything (unless ``refresh``)
    and a new one is stored. A net that fails to build or run comes back with ``error`` set.
    """
    spec = ArchSpec.of(
        builder, architecture, input_size=input_size, num_classes=num_classes, kwargs=kwargs
    )
    return compute_arch_facts_batch([spec], cache=cache, refresh=refresh, progress=False).facts[
        spec
    ]


# --- many at once -----------------------------------------------------------------------------


@dataclass
class ArchFactsBatch:
    """The result of :func:`compute_arch_facts_batch`."""

    facts: dict[ArchSpec, ArchFacts] = field(default_factory=dict)
    computed: int = 0  # measured now (failures included)
    cached: int = 0  # read from the cache
    failed: int = 0  # with an error, computed now or cached
    skipped: list[ArchSpec] = field(default_factory=list)  # left out: the time budget ran out
    seconds: float = 0.0

    def line(self) -> str:
        text = f"{len(self.facts)} architectures: {self.computed} computed, {self.cached} cached, {self.failed} failed"
        if self.skipped:
            text += f", {len(self.skipped)} skipped (time budget)"
        return text + f" ({self.seconds:.1f} s)"


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    logging.getLogger("timm").setLevel(logging.ERROR)


def _iter_measured(
    todo: list[ArchSpec], *, workers: int, deadline: float | None
) -> Iterator[tuple[ArchSpec, ArchFacts]]:
    """Yield ``(spec, facts)`` as measurements finish, in this process or in a pool.

    No new spec starts after ``deadline`` (monotonic seconds); those are not yielded.
    A worker that dies (killed for memory, say) costs the specs it held, recorded as errors.
    """
    if workers <= 1 or len(todo) <= 1:
        for spec in todo:
            if deadline is not None and time.monotonic() >= deadline:
                return
            yield spec, _measure(spec)
        return

    pending = iter(todo)
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    exhausted = False
    while not exhausted:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker
        ) as pool:
            running: dict[Future[ArchFacts], ArchSpec] = {}
            broken = False
            while True:
                while not broken and len(running) < 2 * workers:
                    if deadline is not None and time.monotonic() >= deadline:
                        exhausted = True
                        break
                    upcoming = next(pending, None)
                    if upcoming is None:
                        exhausted = True
                        break
                    running[pool.submit(_measure, upcoming)] = upcoming
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    spec = running.pop(future)
                    try:
                        yield spec, future.result()
                    except BrokenProcessPool as exc:
                        broken = True
                        yield (
                            spec,
                            ArchFacts(
                                params=None, gflops=None, error=f"worker died: {_describe(exc)}"
                            ),
                        )
                if broken and not running:
                    break


def compute_arch_facts_batch(
    specs: Iterable[ArchSpec],
    *,
    cache: ArchFactsCache | None = None,
    workers: int = 1,
    budget_s: float | None = None,
    refresh: bool = False,
    progress: bool = True,
    description: str = "arch facts",
) -> ArchFactsBatch:
    """Measure every distinct spec, reading and filling ``cache`` when one is given.

    ``workers`` > 1 measures in that many spawned processes (each imports torch and the
    builder once: worth it for more than a few dozen nets). No measurement starts after
    ``budget_s`` seconds; the specs left out are listed in ``skipped``. The cache is saved
    every 50 results and at the end, so an interrupted run keeps what it measured.
    """
    started = time.monotonic()
    deadline = started + budget_s if budget_s is not None else None
    batch = ArchFactsBatch()
    versions: dict[str, str] = {}
    todo: list[ArchSpec] = []
    for spec in dict.fromkeys(specs):
        version = versions.setdefault(spec.builder, get_builder(spec.builder).version())
        hit = None if (cache is None or refresh) else cache.get(spec, version)
        if hit is not None:
            batch.facts[spec] = hit
            batch.cached += 1
            batch.failed += not hit.ok
        else:
            todo.append(spec)

    measured = _iter_measured(todo, workers=workers, deadline=deadline)
    if progress:
        measured = track(measured, description=description, total=len(todo))
    try:
        for spec, facts in measured:
            batch.facts[spec] = facts
            batch.computed += 1
            batch.failed += not facts.ok
            if facts.ok:
                log.debug(
                    "%s: %s params, %s GFLOPs (%s)", spec, facts.params, facts.gflops, facts.method
                )
            else:
                log.info("%s: %s", spec, facts.error)
            if (
                cache is not None and facts.library is not None
            ):  # a dead worker's error is not cached
                cache.put(spec, versions[spec.builder], facts)
                if batch.computed % 50 == 0:
                    cache.save()
    finally:
        if cache is not None:
            cache.save()
    batch.skipped = [s for s in todo if s not in batch.facts]
    batch.seconds = time.monotonic() - started
    return batch


# --- the cache ----------------------------------------------------------------------------


class ArchFactsCache:
    """Measured facts in JSON files under ``folder``, one per (builder, version, torch)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._files: dict[Path, dict[str, Any]] = {}
        self._dirty: dict[Path, tuple[str, str, dict[str, Any]]] = {}

    def __repr__(self) -> str:
        return f"ArchFactsCache({str(self.folder)!r})"

    @classmethod
    def default(cls, settings: Settings | None = None) -> ArchFactsCache:
        """The cache in ``$SECURITYNET_HOME/cache`` (or ``SECURITYNET_CACHE_DIR``)."""
        return cls((settings or get_settings()).resolved_cache_dir)

    def path(self, builder: str, version: str) -> Path:
        return self.folder / f"arch-facts-{builder}-{version}-torch{torch_version()}.json"

    def _entries(self, path: Path) -> dict[str, Any]:
        if path not in self._files:
            self._files[path] = self._read(path)
        return self._files[path]

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable arch-facts cache %s: %s", path, exc)
            return {}
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            return {}
        facts = data.get("facts")
        return dict(facts) if isinstance(facts, dict) else {}

    def get(self, spec: ArchSpec, version: str) -> ArchFacts | None:
        raw = self._entries(self.path(spec.builder, version)).get(spec.key)
        return ArchFacts.from_json(raw) if isinstance(raw, dict) else None

    def put(self, spec: ArchSpec, version: str, facts: ArchFacts) -> None:
        path = self.path(spec.builder, version)
        payload = facts.to_json()
        self._entries(path)[spec.key] = payload
        _, _, changes = self._dirty.setdefault(path, (spec.builder, version, {}))
        changes[spec.key] = payload

    def save(self) -> None:
        """Write what changed, merged into the file as it is now (another run may have
        written it meanwhile); atomic, so a reader never sees half a file."""
        for path, (builder, version, changes) in list(self._dirty.items()):
            merged = {**self._read(path), **changes}
            document = {
                "format": CACHE_FORMAT,
                "builder": builder,
                "version": version,
                "torch": torch_version(),
                "units": {
                    "params": "parameters",
                    "gflops": "1e9 FLOPs of one image; 1 multiply-accumulate = 2 FLOPs",
                },
                "facts": dict(sorted(merged.items())),
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, path)
            self._files[path] = merged
            del self._dirty[path]
