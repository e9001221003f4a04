"""The loader: catalogue entry -> verified file in the cache -> safe tensors -> ready net.

    >>> from securitynet.loader import load_entry
    >>> loaded = load_entry(record)                 # an EntryRecord with .files and .load
    >>> logits = loaded.net(loaded.transform(img).unsqueeze(0))

:func:`load_entry` fetches the entry's files into the content-addressed cache (or finds
them there: offline, a miss is an :class:`~securitynet.errors.OfflineError`), builds the
architecture named by ``LoadSpec.builder`` with untrained weights, reads the checkpoint
through the safe reader (never unpickling freely), applies the entry's declared quirks
(``state_dict_key``, ``strip_prefix``), checks every tensor name and shape against the
architecture, loads them and returns the net in eval mode with its preprocessing and labels.

This package sits below the catalogue and never imports it; ``securitynet.load(id)``
looks an id up and calls :func:`load_entry`. Importing it is cheap: torch and the model
libraries are imported when a net is loaded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from securitynet.errors import ArchitectureMismatchError, OfflineError, UnsupportedEntryError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from securitynet.loader.builders import BuiltNet
    from securitynet.loader.cache import Cache, CacheRecord
    from securitynet.loader.download import RetryPolicy
    from securitynet.loader.weights import Weights, WeightSource
    from securitynet.records import EntryRecord, LoadSpec
    from securitynet.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedNet:
    """A net ready to use, with everything needed to feed it and read its output."""

    #: The net, in eval mode, on the requested device. Called on a batch, it returns what
    #: ``spec.output`` says (``logits`` unless the entry says ``log_softmax``/``softmax``).
    net: nn.Module
    #: PIL image (or CHW tensor) -> normalised CHW float tensor, as the net was evaluated.
    transform: Callable[[Any], torch.Tensor]
    #: Output index -> class name, or None when the entry does not say.
    labels: list[str] | None
    #: The entry's LoadSpec with every preprocessing field filled in (entry first, then
    #: what the architecture's library knows).
    spec: LoadSpec
    entry: EntryRecord
    #: Plain metadata kept beside the tensors in the checkpoint (epoch, config, ...).
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: Cache records of the files the net was read from (url, sha256, size, commit).
    files: tuple[CacheRecord, ...] = ()

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """Class probabilities for a preprocessed batch, whatever the net's output kind."""
        import torch

        with torch.no_grad():
            out = self.net(batch)
        kind = self.spec.output or "logits"
        if kind == "softmax":
            return out
        if kind == "log_softmax":
            return out.exp()
        return out.softmax(dim=-1)


def load_entry(
    record: EntryRecord,
    *,
    device: str | torch.device = "cpu",
    offline: bool | None = None,
    settings: Settings | None = None,
    policy: RetryPolicy | None = None,
    lazy_init: bool = True,
) -> LoadedNet:
    """Load ``record`` into a ready :class:`LoadedNet`.

    ``offline`` (default: ``SECURITYNET_OFFLINE``) uses the cache only and never touches
    the network. Raises :class:`UnsupportedEntryError` (no builder, no weights file),
    :class:`OfflineError`, :class:`IntegrityError` (a download or cached file fails its
    pins: it is discarded), :class:`UnsafeCheckpointError` and
    :class:`ArchitectureMismatchError`.

    ``lazy_init=False`` builds the architecture with its usual random initialisation before
    the checkpoint overwrites it (slower; the default builds on the meta device and falls
    back to this by itself when a net needs it).
    """
    from securitynet.loader.builders import BuildContext, get_builder, weights_ref
    from securitynet.loader.cache import Cache
    from securitynet.loader.download import RetryPolicy, check_network
    from securitynet.loader.preprocessing import build_transform, complete_spec, label_names
    from securitynet.loader.weights import locate
    from securitynet.settings import get_settings

    start = time.perf_counter()
    settings = settings or get_settings()
    offline = settings.offline if offline is None else offline
    spec = record.load
    if spec is None:
        raise UnsupportedEntryError(f"{record.id} has no load specification", id=record.id)
    builder = get_builder(spec.builder)
    cache = Cache(settings.resolved_cache_dir)
    policy = policy or RetryPolicy.from_settings(settings)
    wref = weights_ref(record)

    companions = _companions(builder, record, spec, cache, offline, policy)
    context = BuildContext(record, spec, companions, lazy_init=lazy_init)
    try:
        source = locate(wref, cache=cache, offline=True, revision=record.revision, policy=policy)
    except OfflineError:
        if offline:
            raise
        source = None
    if source is None:
        # Cold: build first (an entry we cannot build fails before any download), then fetch;
        # but with no network to fetch from, say so before spending seconds on the build.
        check_network(wref)
        built = builder.build(context)
        source = locate(wref, cache=cache, offline=False, revision=record.revision, policy=policy)
        weights = _read(source, cache, offline, record, policy)
    else:
        # Warm: hash and read the weights in a worker thread while the architecture is
        # built (hashlib and the tensor reads release the GIL).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="securitynet-read") as pool:
            future = pool.submit(_read, source, cache, offline, record, policy)
            try:
                built = builder.build(context)
            except BaseException:
                future.cancel()
                _drain(future)
                raise
            weights = future.result()

    from securitynet.loader.weights import apply_quirks

    tensors = apply_quirks(weights.tensors, strip_prefix=spec.strip_prefix)
    if built.load is not None:
        net = built.load(tensors)
    else:
        try:
            net = _load_built(built, tensors, entry_id=record.id)
        except _Unmaterialised as exc:
            log.info("%s: %s not in the checkpoint; building with initialised weights", record.id, exc)
            built = builder.build(BuildContext(record, spec, companions, lazy_init=False))
            net = _load_built(built, tensors, entry_id=record.id)
    net.eval()
    net.to(device)

    full = complete_spec(spec, built.defaults)
    labels = label_names(full, num_outputs=full.num_classes)
    loaded = LoadedNet(
        net=net,
        transform=build_transform(full),
        labels=labels,
        spec=full,
        entry=record,
        metadata=weights.metadata,
        files=weights.records,
    )
    log.info("loaded %s (%s) in %.2f s", record.id, spec.builder, time.perf_counter() - start)
    return loaded


def build_untrained(
    record: EntryRecord,
    *,
    num_classes: int | None = None,
    kwargs: Mapping[str, Any] | None = None,
    offline: bool | None = None,
    settings: Settings | None = None,
) -> tuple[nn.Module, LoadSpec]:
    """``record``'s architecture with freshly initialised weights, its weights never read:
    the net a user trains from scratch (a stealing surrogate of that architecture).

    ``num_classes`` and ``kwargs`` override the entry's (a head for another task; ``in_chans``
    for timm). Companion files the builder needs (a Hub ``config.json``) are fetched and
    verified as :func:`load_entry` does. Returns the net in train mode and the spec it was
    built from (preprocessing fields filled in as :func:`load_entry` fills them)."""
    from securitynet.loader.builders import BuildContext, get_builder
    from securitynet.loader.cache import Cache
    from securitynet.loader.download import RetryPolicy
    from securitynet.loader.preprocessing import complete_spec
    from securitynet.settings import get_settings

    settings = settings or get_settings()
    offline = settings.offline if offline is None else offline
    if record.load is None:
        raise UnsupportedEntryError(f"{record.id} has no load specification", id=record.id)
    update: dict[str, Any] = {"kwargs": {**record.load.kwargs, **(kwargs or {})}}
    if num_classes is not None:
        update["num_classes"] = num_classes
    spec = record.load.model_copy(update=update)
    builder = get_builder(spec.builder)
    cache = Cache(settings.resolved_cache_dir)
    companions = _companions(builder, record, spec, cache, offline, RetryPolicy.from_settings(settings))
    built = builder.build(BuildContext(record, spec, companions, lazy_init=False))
    if built.net is None:
        raise UnsupportedEntryError(
            f"{record.id}: the {spec.builder} builder makes its net only from the weights",
            id=record.id,
            builder=spec.builder,
        )
    net = built.runtime if built.runtime is not None else built.net
    net = built.finish(net) if built.finish is not None else net
    return net.train(), complete_spec(spec, built.defaults)


def _companions(
    builder: Any, record: EntryRecord, spec: LoadSpec, cache: Cache, offline: bool, policy: RetryPolicy
) -> dict[str, Any]:
    """role -> verified local path of each companion file ``builder`` asks for."""
    from securitynet.loader.download import fetch, verified_path

    return {
        role: verified_path(cache, fetch(ref, cache=cache, offline=offline, revision=record.revision, policy=policy))
        for role, ref in builder.companion_files(record, spec).items()
    }


def _load_built(built: BuiltNet, tensors: Mapping[str, torch.Tensor], *, entry_id: str) -> nn.Module:
    """Load ``tensors`` into the built net; the module users get back."""
    if built.net is None:
        raise UnsupportedEntryError(f"{entry_id}: the builder returned no net", id=entry_id)
    load_state(built.net, tensors, entry_id=entry_id)
    net = built.runtime if built.runtime is not None else built.net
    return built.finish(net) if built.finish is not None else net


def _read(source: WeightSource, cache: Cache, offline: bool, record: EntryRecord, policy: RetryPolicy) -> Weights:
    from securitynet.loader.weights import read_weights

    return read_weights(
        source,
        cache=cache,
        offline=offline,
        revision=record.revision,
        policy=policy,
        state_dict_key=record.load.state_dict_key if record.load else None,
        listed=record.files,
    )


def _drain(future: Future[Any]) -> None:
    """Wait for a worker whose result is no longer wanted, dropping its outcome."""
    try:
        future.result()
    except Exception as exc:  # the build error is the one to report
        log.debug("weights read abandoned: %s", exc)


class _Unmaterialised(Exception):
    """A net built on the meta device kept something the checkpoint did not provide."""


def load_state(net: nn.Module, tensors: Mapping[str, torch.Tensor], *, entry_id: str = "") -> None:
    """Load ``tensors`` into ``net`` after checking that names and shapes fit exactly.

    Raises :class:`ArchitectureMismatchError` naming the missing, unexpected and
    mismatched tensors. Buffers a module fills in itself from an older checkpoint
    (BatchNorm's ``num_batches_tracked``) are not counted as missing.

    A net built on the meta device (see ``BuildContext.lazy_init``) gets the checkpoint's
    tensors assigned (cast to the net's dtypes) instead of copied. If anything is left on
    the meta device afterwards, :class:`_Unmaterialised` asks the caller to build it for real.
    """
    import itertools

    lazy = any(t.is_meta for t in itertools.chain(net.parameters(), net.buffers()))
    if lazy and _has_tied_parameters(net):
        raise _Unmaterialised("tied parameters")  # assigning would untie them
    expected = net.state_dict()
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)}, architecture {tuple(expected[k].shape)}"
        for k, v in tensors.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    missing: list[str] = []
    unexpected: list[str] = []
    if not mismatched:
        if lazy:
            state = {
                k: v.to(expected[k].dtype) if k in expected and v.dtype != expected[k].dtype else v
                for k, v in tensors.items()
            }
            result = net.load_state_dict(state, strict=False, assign=True)
        else:
            result = net.load_state_dict(dict(tensors), strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    else:
        missing = [k for k in expected if k not in tensors]
        unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected or mismatched:
        raise ArchitectureMismatchError(
            f"{entry_id or 'checkpoint'}: tensors do not fit the architecture "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} with other shapes)"
            + _sample("missing", missing)
            + _sample("unexpected", unexpected)
            + _sample("mismatched", mismatched),
            hint="Check the entry's architecture, num_classes, state_dict_key and strip_prefix.",
            missing=missing,
            unexpected=unexpected,
            mismatched=mismatched,
        )
    if lazy:
        left = _meta_leftovers(net)
        if left:
            raise _Unmaterialised(", ".join(left[:5]))


def _has_tied_parameters(net: nn.Module) -> bool:
    named = list(net.named_parameters(remove_duplicate=False))
    return len({id(p) for _, p in named}) != len(named)


def _meta_leftovers(net: nn.Module) -> list[str]:
    """Names of tensors still on the meta device: parameters, buffers (persistent or not)
    and plain tensor attributes a module computed in ``__init__``."""
    import torch

    left = [n for n, t in net.named_parameters() if t.is_meta]
    left += [n for n, t in net.named_buffers() if t.is_meta]
    for name, module in net.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Tensor) and value.is_meta:
                left.append(f"{name}.{attr}" if name else attr)
    return left


def _sample(label: str, names: list[str], n: int = 5) -> str:
    if not names:
        return ""
    more = f", ... ({len(names) - n} more)" if len(names) > n else ""
    return f"; {label}: {', '.join(names[:n])}{more}"


__all__ = ["LoadedNet", "build_untrained", "load_entry", "load_state"]
