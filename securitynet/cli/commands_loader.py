"""Loader commands: ``load ID`` and ``cache list | verify | prune``. Thin: the work is in
:mod:`securitynet.loader`."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from securitynet.loader import LoadedNet
    from securitynet.records import EntryRecord

FormatOption = Annotated[str, typer.Option("--format", "-f", help="text or json.")]


def _check_format(fmt: str) -> None:
    from securitynet.errors import InvalidQueryError

    if fmt not in ("text", "json"):
        raise InvalidQueryError(f"unknown format {fmt!r}", hint="Use --format text or --format json.")
    if fmt == "json":
        from securitynet import progress

        progress.set_enabled(False)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def summary(loaded: LoadedNet, *, seconds: float | None = None) -> dict[str, Any]:
    """What ``securitynet load`` reports about a loaded net."""
    spec = loaded.spec
    params = sum(p.numel() for p in loaded.net.parameters())
    device = next((str(p.device) for p in loaded.net.parameters()), "cpu")
    return {
        "id": loaded.entry.id,
        "builder": spec.builder,
        "architecture": spec.architecture,
        "net": type(loaded.net).__name__,
        "params": params,
        "device": device,
        "input_size": list(spec.input_size) if spec.input_size else None,
        "mean": list(spec.mean) if spec.mean else None,
        "std": list(spec.std) if spec.std else None,
        "interpolation": spec.interpolation,
        "crop_pct": spec.crop_pct,
        "crop_mode": spec.crop_mode,
        "output": spec.output or "logits",
        "classes": len(loaded.labels) if loaded.labels else spec.num_classes,
        "labels": (loaded.labels[:5] if loaded.labels else None),
        "files": [
            {"kind": r.kind, "url": r.url, "revision": r.revision, "sha256": r.sha256, "size": r.size}
            for r in loaded.files
        ],
        "seconds": round(seconds, 3) if seconds is not None else None,
    }


def load_cmd(
    record: EntryRecord, *, offline: bool | None = None, device: str = "cpu", fmt: str = "text"
) -> LoadedNet:
    """Fetch, verify and load ``record``, then print a summary."""
    from securitynet.loader import load_entry

    start = time.perf_counter()
    loaded = load_entry(record, device=device, offline=offline)
    info = summary(loaded, seconds=time.perf_counter() - start)
    if fmt == "json":
        typer.echo(json.dumps(info, indent=2))
        return loaded
    typer.echo(f"{info['id']}: {info['net']} ({info['builder']} {info['architecture']}), "
               f"{info['params']:,} parameters, on {info['device']}, eval mode")
    typer.echo(f"  input {info['input_size']}  mean {info['mean']}  std {info['std']}  "
               f"{info['interpolation']}, crop {info['crop_pct']} ({info['crop_mode']})")
    labels = f", e.g. {', '.join(info['labels'])}" if info["labels"] else ""
    typer.echo(f"  outputs {info['output']}, {info['classes']} classes{labels}")
    for f in info["files"]:
        typer.echo(f"  {f['kind']:<8} {f['sha256'][:16]}  {_size(f['size']):>10}  {f['url']}")
    typer.echo(f"  ready in {info['seconds']:.2f} s")
    return loaded


def register(app: typer.Typer) -> None:
    """Add ``load`` and the ``cache`` group to ``app`` (once; calling again is a no-op)."""
    if any(c.name == "load" for c in app.registered_commands):
        return
    cache_app = typer.Typer(help="The verified weight cache.", no_args_is_help=True)
    app.add_typer(cache_app, name="cache")

    @app.command("load")
    def load(
        entry_id: Annotated[str, typer.Argument(metavar="ID", help="Entry id, e.g. timm:resnet50.a1_in1k.")],
        offline: Annotated[
            bool | None, typer.Option("--offline/--online", help="Cache only (default: SECURITYNET_OFFLINE).")
        ] = None,
        device: Annotated[str, typer.Option(help="Torch device for the net.")] = "cpu",
        fmt: FormatOption = "text",
    ) -> None:
        """Fetch an entry's weights into the cache, verify them, load the net and summarise it."""
        _check_format(fmt)
        from securitynet.api import pin_downloads
        from securitynet.catalogue.api import Catalogue

        with Catalogue() as cat:
            if not (cat.settings.offline if offline is None else offline):
                cat.fill_pending(entry_id)  # a Hub entry's config and pins, on its first load
            record = cat.get(entry_id)
            pin_downloads(cat, load_cmd(record, offline=offline, device=device, fmt=fmt))

    @cache_app.command("list")
    def cache_list(fmt: FormatOption = "text") -> None:
        """Every cached file: where it came from, its sha256 and size."""
        _check_format(fmt)
        cache = _cache()
        records = cache.list_records()
        if fmt == "json":
            typer.echo(json.dumps([r.to_json() for r in records], indent=2))
            return
        if not records:
            typer.echo(f"cache is empty ({cache.root})")
            return
        for r in records:
            where = r.url or r.key
            rev = f"@{r.revision[:12]}" if r.revision else ""
            typer.echo(f"{r.kind:<8} {r.sha256[:16]}  {_size(r.size):>10}  {r.created[:10]}  {where}{rev}")
        total = sum(r.size for r in {r.sha256: r for r in records}.values())
        typer.echo(f"{len(records)} entries, {_size(total)} in {cache.root}")

    @cache_app.command("verify")
    def cache_verify(fmt: FormatOption = "text") -> None:
        """Re-hash every cached file; discard (and report) the ones that changed. Exit 1 if any did."""
        _check_format(fmt)
        report = _cache().verify()
        if fmt == "json":
            typer.echo(json.dumps({"checked": report.checked, "bad": list(report.bad),
                                   "dangling": report.dangling, "bytes": report.bytes,
                                   "seconds": round(report.seconds, 3)}))
        else:
            rate = report.bytes / report.seconds / 1024**3 if report.seconds > 0 else 0.0
            typer.echo(f"{report.checked} files, {_size(report.bytes)} checked in {report.seconds:.2f} s "
                       f"({rate:.2f} GiB/s); {len(report.bad)} altered and discarded")
            for sha in report.bad:
                typer.echo(f"  altered: {sha}")
        if report.bad:
            raise typer.Exit(1)

    @cache_app.command("prune")
    def cache_prune(
        older_than: Annotated[
            float | None, typer.Option("--older-than", metavar="DAYS", help="Also entries unused this long.")
        ] = None,
        everything: Annotated[bool, typer.Option("--all", help="Empty the cache.")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    ) -> None:
        """Remove partial downloads, orphans and (optionally) unused or all entries."""
        report = _cache().prune(older_than_days=older_than, everything=everything, dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        typer.echo(f"{verb} {report.records} entries, {report.blobs} files, {report.partials} partial "
                   f"downloads ({_size(report.bytes)})")


def _cache() -> Any:
    from securitynet.loader.cache import Cache
    from securitynet.settings import get_settings

    return Cache(get_settings().resolved_cache_dir)
