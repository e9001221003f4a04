"""The weights half of loading: an entry's weights file -> verified, safely read tensors.

The bytes read are always bytes whose sha256 was checked just before reading (a fresh
download is hashed once, a cached blob again on every load). What is done with them:

- a file in any other format than safetensors is read once through the safe reader
  (``read_checkpoint``) and its tensors are stored back as safetensors, a ``convert``
  blob derived from it; later loads read that blob;
- a ``format="zip"`` release archive (imgclsmob) is opened safely and its one member,
  whose upstream sha1 is checked, becomes an ``extract`` blob derived from it;
- a sharded ``*.index.json`` names its shards, each of which must stay inside the
  index's folder; the shards are fetched like any file and their tensors merged;
- a legacy (pre-1.6, non-zip) torch file is refused by the safe reader by default; it is
  read (through the reader's restricted legacy path, never ``weights_only=False``) only
  when its bytes matched a checksum the upstream registry published for it, i.e. it is
  exactly the file torchvision / timm / imgclsmob released (their older weights are
  all legacy files). An unpinned legacy file stays refused.

Only the blob actually read is re-hashed on a warm load: the index entries that lead to
it (download -> extract -> convert) are our own records, and the blobs behind them are
not read, so hashing them would only cost time.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from securitynet.errors import IntegrityError, NotFoundError, OfflineError, UnsafeCheckpointError
from securitynet.loader import hub
from securitynet.loader.archive import extract_single_member
from securitynet.loader.cache import Cache, CacheRecord, derived_key, hash_file
from securitynet.loader.download import Fetched, RetryPolicy, fetch, member_pins, verified_path

if TYPE_CHECKING:
    import torch

    from securitynet.records import FileRef

log = logging.getLogger(__name__)

#: Bump when what a conversion writes changes (e.g. the safe reader unwraps differently):
#: older converted blobs are then ignored and re-made.
CONVERSION_VERSION = 1


@dataclass(frozen=True)
class Weights:
    """Tensors read from an entry's weights, and where they came from."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    format: str = ""
    records: tuple[CacheRecord, ...] = ()


@dataclass(frozen=True)
class WeightSource:
    """The weights file of an entry as it sits in the cache (not yet read)."""

    ref: FileRef
    fetched: Fetched


def locate(
    ref: FileRef, *, cache: Cache, offline: bool, revision: str | None, policy: RetryPolicy | None
) -> WeightSource:
    """Fetch ``ref`` (or, for a Hub ``model.safetensors`` that does not exist, the
    ``pytorch_model.bin`` beside it)."""
    try:
        return WeightSource(ref, fetch(ref, cache=cache, offline=offline, revision=revision, policy=policy))
    except (NotFoundError, OfflineError) as exc:
        alt = hub.fallback_ref(ref)
        if alt is None:
            raise
        if isinstance(exc, NotFoundError):
            log.info("%s does not exist; trying %s", ref.url, alt.url)
        try:
            return WeightSource(alt, fetch(alt, cache=cache, offline=offline, revision=revision, policy=policy))
        except OfflineError:
            raise exc from None


def read_weights(
    source: WeightSource,
    *,
    cache: Cache,
    offline: bool,
    revision: str | None,
    policy: RetryPolicy | None,
    state_dict_key: str | None = None,
    listed: Sequence[FileRef] = (),
) -> Weights:
    """The tensors of ``source`` (see the module docstring for what happens on the way).

    ``listed`` are the entry's other files: a shard the entry lists is fetched with the
    pins it carries there (size, sha256)."""
    ref, fetched = source.ref, source.fetched
    name = (ref.filename or ref.url).rsplit("/", 1)[-1]
    if name.endswith(".index.json"):
        return _read_sharded(
            source, cache=cache, offline=offline, revision=revision, policy=policy, key=state_dict_key, listed=listed
        )
    if ref.format == "zip":
        fetched = _extract(ref, fetched, cache=cache)
    return _read_blob(cache, fetched, key=state_dict_key, allow_legacy=upstream_pinned(ref))


def upstream_pinned(ref: FileRef) -> bool:
    """True when ``ref`` carries a checksum from upstream (or a Hub commit pin), so the
    bytes that pass verification are exactly the ones upstream published."""
    if ref.sha256 or ref.checksum:  # for a zip, the checksum pins the member inside
        return True
    revision = ref.revision or ""
    return hub.is_hub_url(ref.url) and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


def _read_blob(cache: Cache, fetched: Fetched, *, key: str | None, allow_legacy: bool = False) -> Weights:
    from securitynet.loader.safe import read_checkpoint, save_safetensors, sniff_format

    record = fetched.record
    conv_key = derived_key("convert", record.sha256, f"v{CONVERSION_VERSION}:{key or ''}")
    converted = cache.find(conv_key)
    if converted is not None:
        path = cache.open_verified(converted)
        cache.touch(record)
        ckpt = read_checkpoint(path)
        return Weights(ckpt.tensors, dict(ckpt.metadata), ckpt.format, (record, converted))

    path = verified_path(cache, fetched)
    fmt = sniff_format(path)
    if fmt == "pytorch-legacy" and allow_legacy:
        log.info("%s is a legacy torch file matching its upstream checksum; reading it through "
                 "the restricted legacy path", record.url)
    ckpt = read_checkpoint(path, key=key, allow_legacy=allow_legacy)
    if fmt == "safetensors":
        return Weights(ckpt.tensors, dict(ckpt.metadata), ckpt.format, (record,))

    # Pickle-based: keep a safetensors copy so later loads never unpickle again.
    tmp = cache.temp_file(".safetensors")
    try:
        save_safetensors(ckpt, tmp)
        digest = hash_file(tmp)["sha256"]
        conv = cache.put(
            tmp,
            CacheRecord(
                conv_key,
                digest,
                tmp.stat().st_size,
                kind="convert",
                url=record.url,
                revision=record.revision,
                filename=(record.filename or "weights") + ".safetensors",
                parent=record.sha256,
            ),
        )
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    log.info("converted %s (%s) to safetensors in the cache", record.url, ckpt.format)
    return Weights(ckpt.tensors, dict(ckpt.metadata), ckpt.format, (record, conv))


def _extract(ref: FileRef, fetched: Fetched, *, cache: Cache) -> Fetched:
    """The single checkpoint inside a release archive, as its own (derived) blob."""
    pins = member_pins(ref)
    archive = fetched.record
    key = derived_key("extract", archive.sha256)
    existing = cache.find(key)
    if existing is not None and pins.mismatch(None, {"sha256": existing.sha256, **existing.digests}) is None:
        return Fetched(existing, cache.blob_path(existing.sha256), fresh=False)
    with cache.lock(key):
        src = verified_path(cache, fetched)
        tmp = cache.temp_file(".member")
        try:
            member = extract_single_member(src, tmp, algos=pins.algos, label=ref.url)
            reason = pins.mismatch(member.size, member.digests)
            if reason is not None:
                cache.discard(archive.sha256)
                raise IntegrityError(
                    f"{ref.url}: the file inside the archive does not match the catalogue ({reason}); "
                    "the download was discarded",
                    url=ref.url,
                    reason=reason,
                )
            record = CacheRecord(
                key,
                member.digests["sha256"],
                member.size,
                kind="extract",
                url=archive.url,
                revision=archive.revision,
                filename=posixpath.basename(member.name),
                digests={a: d for a, d in member.digests.items() if a != "sha256"},
                parent=archive.sha256,
            )
            record = cache.put(tmp, record)
        finally:
            tmp.unlink(missing_ok=True)
    return Fetched(record, cache.blob_path(record.sha256), fresh=True)


def _read_sharded(
    source: WeightSource,
    *,
    cache: Cache,
    offline: bool,
    revision: str | None,
    policy: RetryPolicy | None,
    key: str | None,
    listed: Sequence[FileRef] = (),
) -> Weights:
    """Tensors of every shard named by a ``*.index.json`` (Hub sharded checkpoints)."""
    from securitynet.loader.builders import read_json

    ref = source.ref
    index = read_json(verified_path(cache, source.fetched), what=f"{ref.url}")
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise UnsafeCheckpointError(f"{ref.url}: shard index has no weight_map", url=ref.url)
    if not hub.is_hub_url(ref.url):
        raise UnsafeCheckpointError(f"{ref.url}: sharded checkpoints are read from Hub repositories only")
    hub_file = hub.parse_hub_url(ref.url, revision=ref.revision or revision)
    folder = posixpath.dirname(hub_file.filename)
    shards: dict[str, str] = {}  # shard path in repo -> name in the index
    for tensor, shard in weight_map.items():
        if not isinstance(tensor, str) or not isinstance(shard, str):
            raise UnsafeCheckpointError(f"{ref.url}: weight_map entries must be strings")
        path = hub.check_repo_path(shard, what=ref.url, folder=folder)
        shards.setdefault(path, shard)
    tensors: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    records: list[CacheRecord] = [source.fetched.record]
    owner: dict[str, str] = {}
    fmt = ""
    for path, shard in sorted(shards.items()):
        url = f"hf://{hub_file.repo_id}/{path}"
        shard_ref = next(
            (f for f in listed if f.url == url),
            replace_ref(ref, url=url, revision=hub_file.revision),
        )
        fetched = fetch(shard_ref, cache=cache, offline=offline, revision=revision, policy=policy)
        part = _read_blob(cache, fetched, key=key, allow_legacy=upstream_pinned(shard_ref))
        records.extend(part.records)
        fmt = part.format
        for name, tensor in part.tensors.items():
            if name in owner:
                raise UnsafeCheckpointError(f"{ref.url}: tensor {name!r} is in both {owner[name]} and {shard}")
            if weight_map.get(name) != shard:
                raise UnsafeCheckpointError(
                    f"{ref.url}: shard {shard} holds {name!r}, which the index places in {weight_map.get(name)!r}"
                )
            owner[name] = shard
            tensors[name] = tensor
        metadata.update(part.metadata)
    missing = sorted(set(weight_map) - set(tensors))
    if missing:
        raise UnsafeCheckpointError(f"{ref.url}: {len(missing)} tensors of the index are in no shard: {missing[:5]}")
    return Weights(tensors, metadata, fmt, tuple(records))


def replace_ref(ref: FileRef, **changes: Any) -> FileRef:
    """A copy of ``ref`` for another file: pins that belong to ``ref`` do not carry over."""
    base = {"size": None, "sha256": None, "checksum": None, "checksum_algo": None, "filename": None, "format": None}
    return ref.model_copy(update={**base, **changes})


def apply_quirks(tensors: dict[str, Any], *, strip_prefix: str | None) -> dict[str, Any]:
    """Per-entry fixes of tensor names (data on the entry, never special-cased in code)."""
    if not strip_prefix:
        return tensors
    stripped = {(k[len(strip_prefix) :] if k.startswith(strip_prefix) else k): v for k, v in tensors.items()}
    if len(stripped) != len(tensors):
        raise UnsafeCheckpointError(f"stripping {strip_prefix!r} makes two tensor names collide")
    if stripped.keys() == tensors.keys():
        log.warning("no tensor name starts with the declared prefix %r", strip_prefix)
    return stripped


__all__ = ["WeightSource", "Weights", "apply_quirks", "locate", "read_weights", "replace_ref"]
