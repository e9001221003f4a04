"""Which registry architecture a bare state dict belongs to, from its tensor names and shapes.

A checkpoint found on GitHub is usually a bare state dict: tensors, no code. Its *signature*
(the set of tensor names, each with its shape) is compared with the signature of every
architecture of the registries we trust (timm, torchvision, pytorchcv), each built once on
PyTorch's meta device (:func:`securitynet.annotate.archfacts` builds them; nothing is
allocated and no weights are read). The match

- ignores a ``module.`` / ``model.`` prefix on every name (DataParallel, Lightning wrappers)
  and BatchNorm's ``num_batches_tracked`` (older checkpoints lack it);
- accepts a classifier of another width (the tensors whose first dimension is the
  architecture's class count) and infers ``num_classes`` from it;
- says **ambiguous**, with the candidates, when several architectures share the signature.
  Shared signatures are common (timm's ``resnet50`` and torchvision's have the same tensors;
  QuickGELU and GELU ViTs, "same" and symmetric padding do too) and they may compute
  different functions. :func:`settle` can tell them apart without running anyone's code:
  it loads the checkpoint's own tensors into each candidate (registry code only) and feeds
  all of them one fixed input; candidates that agree are the same function, so the
  answer is resolved (and the equivalent ones are named), otherwise it stays ambiguous.
  It never guesses.
- otherwise says **unresolved**, with the reason (no registry net has these tensor names;
  the names match but shapes differ, and where).

Signatures are cached per library version and torch version,
``arch-signatures-<library>-<version>-torch<version>.json`` in the cache folder, like the
arch-facts cache; failures to build are cached too.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from securitynet.errors import InvalidQueryError
from securitynet.progress import track
from securitynet.settings import Settings, get_settings

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
LIBRARIES: tuple[str, ...] = ("torchvision", "timm", "pytorchcv")
#: Prefixes wrappers add to every tensor name (stripped, longest run first).
WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "model.")
_SKIP_SUFFIX = "num_batches_tracked"
Shape = tuple[int, ...]


# --- signatures ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchSignature:
    """The tensors of one registry architecture's state dict, and which are its classifier."""

    library: str
    architecture: str
    num_classes: int | None
    tensors: tuple[tuple[str, Shape], ...]
    head: frozenset[str] = frozenset()

    @property
    def names_key(self) -> str:
        return names_key(name for name, _ in self.tensors)

    def to_json(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "tensors": [[n, list(s)] for n, s in self.tensors],
            "head": sorted(self.head),
        }

    @classmethod
    def from_json(cls, library: str, architecture: str, data: Mapping[str, Any]) -> ArchSignature:
        return cls(
            library,
            architecture,
            data.get("num_classes"),
            tuple((str(n), tuple(int(x) for x in s)) for n, s in data["tensors"]),
            frozenset(data.get("head") or ()),
        )


def names_key(names: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()


def state_shapes(tensors: Mapping[str, Any]) -> dict[str, Shape]:
    """Name -> shape of tensors (or of anything with a ``shape``), without the skipped buffers."""
    return {k: tuple(int(x) for x in v.shape) for k, v in tensors.items() if not k.endswith(_SKIP_SUFFIX)}


def strip_wrappers(shapes: Mapping[str, Shape]) -> tuple[dict[str, Shape], str | None]:
    """The names with a prefix every one of them carries removed (``module.``, ``model.``,
    repeated: ``module.model.``), and that prefix (None when there was none)."""
    prefix = ""
    names = list(shapes)
    while names:
        found = next((p for p in WRAPPER_PREFIXES if all(n.startswith(prefix + p) for n in names)), None)
        if found is None:
            break
        prefix += found
    if not prefix:
        return dict(shapes), None
    return {k[len(prefix) :]: v for k, v in shapes.items()}, prefix


def signature_of(net: nn.Module, library: str, architecture: str) -> ArchSignature:
    """The signature of a built net (on any device: only shapes are read)."""
    state = net.state_dict()
    shapes = state_shapes(state)
    params = [n for n, _ in net.named_parameters() if n in shapes]
    declared = getattr(net, "num_classes", None)
    if not isinstance(declared, int) or declared <= 0:
        last = next((shapes[n] for n in reversed(params) if shapes[n]), None)
        declared = last[0] if last else None
    head = frozenset(n for n in params if declared is not None and shapes[n] and shapes[n][0] == declared)
    return ArchSignature(library, architecture, declared, tuple(shapes.items()), head)


# --- matching -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    library: str
    architecture: str
    num_classes: int | None

    def __str__(self) -> str:
        return f"{self.library}:{self.architecture}"


Status = Literal["resolved", "ambiguous", "unresolved"]


@dataclass(frozen=True)
class Resolution:
    """What a signature match concluded."""

    status: Status
    candidates: tuple[Candidate, ...] = ()
    strip_prefix: str | None = None
    reason: str | None = None
    #: Candidates shown to compute the same function as the chosen one (see :func:`settle`).
    equivalent: tuple[Candidate, ...] = ()

    @property
    def resolved(self) -> Candidate | None:
        return self.candidates[0] if self.status == "resolved" else None

    def load_fields(self) -> dict[str, Any]:
        """``LoadSpec`` fields that build the resolved architecture (empty unless resolved)."""
        chosen = self.resolved
        if chosen is None:
            return {}
        fields: dict[str, Any] = {"builder": chosen.library, "architecture": chosen.architecture}
        if chosen.num_classes is not None:
            fields["num_classes"] = chosen.num_classes
        if self.strip_prefix:
            fields["strip_prefix"] = self.strip_prefix
        return fields

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "candidates": [str(c) for c in self.candidates],
            "num_classes": self.candidates[0].num_classes if self.candidates else None,
            "equivalent": [str(c) for c in self.equivalent],
            "strip_prefix": self.strip_prefix,
            "reason": self.reason,
        }


def _fits(sig: ArchSignature, shapes: Mapping[str, Shape]) -> tuple[int | None, str | None]:
    """(inferred num_classes, None) when ``shapes`` fit ``sig``; (None, why) otherwise."""
    width: int | None = None
    for name, want in sig.tensors:
        got = shapes[name]
        if name in sig.head and got and want and got[1:] == want[1:]:
            if width is not None and got[0] != width:
                return None, f"classifier tensors disagree on the class count ({width} vs {got[0]} at {name})"
            width = got[0]
            continue
        if got != want:
            return None, f"{name}: checkpoint {list(got)}, {sig.library}:{sig.architecture} {list(want)}"
    return (width if width is not None else sig.num_classes), None


class SignatureIndex:
    """Registry signatures by their set of tensor names."""

    def __init__(self, signatures: Iterable[ArchSignature]) -> None:
        self.by_names: dict[str, list[ArchSignature]] = {}
        self.size = 0
        for sig in signatures:
            self.by_names.setdefault(sig.names_key, []).append(sig)
            self.size += 1

    def match(self, tensors: Mapping[str, Any]) -> Resolution:
        """Match a state dict (name -> tensor, or anything with ``.shape``)."""
        shapes, prefix = strip_wrappers(state_shapes(tensors))
        if not shapes:
            return Resolution("unresolved", reason="the checkpoint holds no tensors")
        same_names = self.by_names.get(names_key(shapes), [])
        if not same_names:
            return Resolution(
                "unresolved",
                strip_prefix=prefix,
                reason=f"no architecture of {self.size} registry nets has these {len(shapes)} tensor names",
            )
        fits: list[Candidate] = []
        why: list[str] = []
        for sig in same_names:
            width, reason = _fits(sig, shapes)
            if reason is None:
                fits.append(Candidate(sig.library, sig.architecture, width))
            else:
                why.append(reason)
        if not fits:
            return Resolution("unresolved", strip_prefix=prefix,
                              reason=f"the tensor names are those of {len(same_names)} registry net(s), "
                                     f"but the shapes differ ({why[0]})")
        fits.sort(key=_preference)
        return Resolution("resolved" if len(fits) == 1 else "ambiguous", tuple(fits), prefix,
                          None if len(fits) == 1 else f"{len(fits)} registry nets share this signature")


def _preference(c: Candidate) -> tuple[int, str]:
    return (LIBRARIES.index(c.library) if c.library in LIBRARIES else len(LIBRARIES), c.architecture)


# --- telling same-signature candidates apart ----------------------------------------------


def settle(
    resolution: Resolution,
    tensors: Mapping[str, torch.Tensor],
    *,
    max_params: int = 100_000_000,
    atol: float = 1e-4,
) -> Resolution:
    """An ambiguous resolution decided by what the candidates compute.

    Each candidate is built (registry code, CPU), given the checkpoint's own tensors, and
    fed one fixed random image at its default input size, in eval mode. Candidates whose
    outputs agree (``atol``, relative to the output's scale) compute the same function:
    if all agree, the first (torchvision, then timm, then pytorchcv) is the answer and the
    others are named as equivalent. Anything else stays ambiguous. Nets above
    ``max_params`` are not run (the resolution is returned as it was).
    """
    if resolution.status != "ambiguous":
        return resolution
    import torch

    from securitynet.annotate.archfacts import ArchSpec as FactsSpec
    from securitynet.annotate.archfacts import get_builder

    shapes, _ = strip_wrappers(state_shapes(tensors))
    if sum(int(torch.Size(s).numel()) for s in shapes.values()) > max_params:
        return resolution
    state = {k[len(resolution.strip_prefix or "") :]: v for k, v in tensors.items()}
    outputs: list[tuple[Candidate, torch.Tensor]] = []
    for cand in resolution.candidates:
        builder = get_builder(cand.library)
        spec = FactsSpec.of(cand.library, cand.architecture, num_classes=cand.num_classes)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net = builder.build(spec)
                net.load_state_dict(state, strict=False)
                size = builder.default_input_size(net, spec)
                x = torch.randn((1, *size), generator=torch.Generator().manual_seed(0))
                with torch.no_grad():
                    out = net.eval()(x)
        except Exception as exc:  # a candidate that cannot run decides nothing
            log.info("settle: %s could not run (%s)", cand, exc)
            return resolution
        if not isinstance(out, torch.Tensor):
            return resolution
        outputs.append((cand, out.detach().float()))
    first_cand, first = outputs[0]
    scale = float(first.abs().max()) or 1.0
    same = [c for c, o in outputs[1:] if o.shape == first.shape and float((o - first).abs().max()) <= atol * scale]
    if len(same) == len(outputs) - 1:
        return Resolution("resolved", (first_cand,), resolution.strip_prefix,
                          f"{len(outputs)} registry nets share this signature and compute the same outputs",
                          tuple(same))
    differ = [str(c) for c, _ in outputs if c not in same and c != first_cand]
    return Resolution("ambiguous", resolution.candidates, resolution.strip_prefix,
                      f"{len(outputs)} registry nets share this signature; {', '.join(differ)} compute "
                      f"other outputs than {first_cand}")


# --- building the index -------------------------------------------------------------------


def list_architectures(library: str) -> list[str]:
    """Every classification architecture of ``library``'s registry."""
    if library == "timm":
        import timm

        return sorted(timm.list_models())
    if library == "torchvision":
        from torchvision import models

        return sorted(models.list_models(module=models))
    if library == "pytorchcv":
        from importlib import resources

        text = resources.files("pytorchcv.models.common").joinpath("model_metainfos.csv").read_text()
        return sorted({r["model_name"] for r in csv.DictReader(text.splitlines()) if r.get("model_name")})
    raise InvalidQueryError(f"no registry named {library!r}", hint=f"Registries: {', '.join(LIBRARIES)}.")


def _compute(library: str, architecture: str) -> dict[str, Any]:
    from securitynet.annotate.archfacts import ArchSpec as FactsSpec
    from securitynet.annotate.archfacts import _build_on_meta, _BuildError, get_builder

    started = time.perf_counter()
    try:
        net, _ = _build_on_meta(get_builder(library), FactsSpec.of(library, architecture))
    except _BuildError as exc:
        return {"error": str(exc)[:300], "seconds": round(time.perf_counter() - started, 3)}
    data = signature_of(net, library, architecture).to_json()
    data["seconds"] = round(time.perf_counter() - started, 3)
    return data


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    logging.getLogger("timm").setLevel(logging.ERROR)


def _compute_job(job: tuple[str, str]) -> tuple[str, str, dict[str, Any]]:
    return job[0], job[1], _compute(*job)


class SignatureCache:
    """Signatures in JSON files under ``folder``, one per (library, version, torch)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @classmethod
    def default(cls, settings: Settings | None = None) -> SignatureCache:
        return cls((settings or get_settings()).resolved_cache_dir)

    def path(self, library: str) -> Path:
        from securitynet.annotate.archfacts import get_builder, torch_version

        version = get_builder(library).version()
        return self.folder / f"arch-signatures-{library}-{version}-torch{torch_version()}.json"

    def read(self, library: str) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path(library).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable signature cache for %s: %s", library, exc)
            return {}
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            return {}
        return dict(data.get("signatures") or {})

    def write(self, library: str, entries: Mapping[str, dict[str, Any]]) -> None:
        path = self.path(library)
        merged = {**self.read(library), **entries}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"format": CACHE_FORMAT, "library": library,
                                   "signatures": dict(sorted(merged.items()))}), encoding="utf-8")
        os.replace(tmp, path)


@dataclass
class IndexBuild:
    index: SignatureIndex
    computed: int = 0
    cached: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def build_index(
    libraries: Sequence[str] = LIBRARIES,
    *,
    architectures: Mapping[str, Sequence[str]] | None = None,
    cache: SignatureCache | None = None,
    workers: int = 1,
    progress: bool = True,
) -> IndexBuild:
    """The signature index of ``libraries`` (every architecture of each, or the ones given
    in ``architectures``), from the cache where it has them, built on the meta device
    otherwise (in ``workers`` processes) and stored back."""
    started = time.perf_counter()
    signatures: list[ArchSignature] = []
    result = IndexBuild(SignatureIndex(()))
    for library in libraries:
        names = list(architectures[library]) if architectures and library in architectures else list_architectures(library)
        stored = cache.read(library) if cache is not None else {}
        todo = [n for n in names if n not in stored]
        new: dict[str, dict[str, Any]] = {}
        computed = _iter_computed([(library, n) for n in todo], workers)
        if progress:
            computed = track(computed, description=f"signatures {library}", total=len(todo))
        unsaved: dict[str, dict[str, Any]] = {}
        for _lib, arch, data in computed:
            new[arch] = unsaved[arch] = data
            if cache is not None and len(unsaved) >= 50:  # an interrupted build keeps its work
                cache.write(library, unsaved)
                unsaved = {}
        if cache is not None and unsaved:
            cache.write(library, unsaved)
        result.computed += len(new)
        result.cached += len(names) - len(todo)
        for name in names:
            data = new.get(name) or stored.get(name) or {}
            if "tensors" in data:
                signatures.append(ArchSignature.from_json(library, name, data))
            else:
                result.failed.append(f"{library}:{name}")
    result.index = SignatureIndex(signatures)
    result.seconds = time.perf_counter() - started
    return result


def _iter_computed(jobs: list[tuple[str, str]], workers: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _compute_job(job)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
        yield from pool.map(_compute_job, jobs, chunksize=4)


def resolve_file(path: Path, index: SignatureIndex, *, decide: bool = True) -> Resolution:
    """Read a checkpoint file safely (never unpickling code) and match its tensors;
    with ``decide``, an ambiguous match is :func:`settle`-d on the file's own tensors."""
    from securitynet.errors import LoaderError
    from securitynet.loader.safe import read_checkpoint

    try:
        checkpoint = read_checkpoint(path)
    except LoaderError as exc:
        return Resolution("unresolved", reason=f"the checkpoint cannot be read safely: {exc}")
    resolution = index.match(checkpoint.tensors)
    return settle(resolution, checkpoint.tensors) if decide else resolution
