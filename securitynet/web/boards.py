"""What the leaderboard and figure pages show: plain data read through
:mod:`securitynet.catalogue.leaderboards` and :mod:`securitynet.catalogue.plots`.

A leaderboard without a section picked (``?size=`` on a data-set board, ``?metric=`` and
``?dataset=`` on an attack board) lists every section with its best :data:`PREVIEW` rows; a
picked section lists up to :data:`FULL` rows. Figures are SVG drawn by the code that draws
``securitynet stats --plot`` and are kept per catalogue state (:func:`catalogue_state`),
so a page view does not redraw them until something is synced, imported or evaluated.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securitynet.catalogue import leaderboards
from securitynet.errors import InvalidQueryError
from securitynet.web.cache import StateCache, catalogue_state

if TYPE_CHECKING:
    from securitynet.catalogue.api import Catalogue

PREVIEW = 10  # rows per section on a board's overview
FULL = 500  # rows of one picked section
FIGURE_KINDS = ("top1", "results")
#: Metrics an attack board's overview draws (one figure each, every data set a panel).
FIGURE_METRICS = ("auc", "accuracy", "agreement")


def _section(section: leaderboards.Section) -> dict[str, Any]:
    rows = []
    for row in section.rows:
        data = dataclasses.asdict(row)
        if isinstance(row, leaderboards.DatasetRow):
            data["ranked_by"] = row.ranked_by
        else:
            data["difference"] = row.difference
        rows.append(data)
    return {"title": section.title, "total": section.total, "key": section.key, "rows": rows}


def index(catalogue: Catalogue) -> dict[str, Any]:
    with catalogue.session() as s:
        return leaderboards.list_boards(s)


def _size(text: str | None) -> int | str | None:
    """``?size=``: a resolution in pixels, ``none`` (not stated), or absent (every section)."""
    if text is None or not text.strip():
        return "all"
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise InvalidQueryError(f"not a resolution: size={text!r}", value=text) from exc


def dataset_board(catalogue: Catalogue, dataset: str, args: Mapping[str, str]) -> dict[str, Any]:
    size = _size(args.get("size"))
    with catalogue.session() as s:
        sections = leaderboards.dataset_board(s, dataset, limit=FULL)
    resolutions = [{"img_size": sec.key["img_size"], "title": sec.title, "total": sec.total} for sec in sections]
    if size != "all":
        sections = [sec for sec in sections if sec.key["img_size"] == size]
        if not sections:
            raise InvalidQueryError(
                f"no top-1 claim on {dataset!r} at resolution {args.get('size')!r}",
                hint="The board's page lists the resolutions it has.",
            )
    else:
        sections = [dataclasses.replace(sec, rows=sec.rows[:PREVIEW]) for sec in sections]
    return {
        "dataset": dataset,
        "size": None if size == "all" else size,
        "picked": size != "all",
        "resolutions": resolutions,
        "sections": [_section(sec) for sec in sections],
    }


def attack_board(catalogue: Catalogue, attack: str, args: Mapping[str, str]) -> dict[str, Any]:
    metric = (args.get("metric") or "").strip() or None
    dataset = (args.get("dataset") or "").strip() or None
    picked = metric is not None and dataset is not None
    with catalogue.session() as s:
        sections = leaderboards.attack_board(s, attack, metric=metric, dataset=dataset, limit=FULL)
    if not picked:
        sections = [dataclasses.replace(sec, rows=sec.rows[:PREVIEW]) for sec in sections]
    out = [_section(sec) for sec in sections]
    # a figure of the picked section, else one per headline metric with every data set a panel
    if picked:
        figures = [{"title": f"{metric} per variant and source", "query": {"attack": attack, **out[0]["key"]}}] if out else []
    else:
        metrics = sorted({sec["key"]["metric"] for sec in out if sec["key"]["metric"] in FIGURE_METRICS})
        figures = [
            {"title": f"{m} per variant and source, every data set", "query": {"attack": attack, "metric": m}}
            for m in metrics
        ]
    return {
        "attack": attack,
        "metric": metric,
        "dataset": dataset,
        "picked": picked,
        "ours": leaderboards.OURS,
        "figures": figures,
        "sections": out,
    }


def dataset_csv(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    columns = [
        "img_size", "rank", "entry_id", "ranked_by", "claimed", "claimed_source", "claimed_split",
        "measured", "measured_source", "measured_split", "claimed_evidence", "measured_evidence",
    ]  # fmt: skip
    return columns, _rows(data, columns)


def attack_csv(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    columns = [
        "metric", "dataset", "rank", "entry_id", "variant", "ours", "ours_lower", "ours_upper",
        "published", "published_source", "difference",
    ]  # fmt: skip
    return columns, _rows(data, columns)


def _rows(data: dict[str, Any], columns: list[str]) -> list[list[Any]]:
    out = []
    for section in data["sections"]:
        for rank, row in enumerate(section["rows"], 1):
            values = {**section["key"], **row, "rank": rank}
            out.append([values.get(c) for c in columns])
    return out


# -- figures ---------------------------------------------------------------------------------


_FIGURE_ARGS = ("by", "dataset", "source", "family", "licence", "order", "max_groups", "attack", "metric")


def figure(catalogue: Catalogue, cache: StateCache, kind: str, args: Mapping[str, str]) -> bytes:
    """The SVG figure ``kind`` (``top1``: what ``stats --plot`` draws; ``results``: an
    attack's figures per variant, one panel per data set) for ``args``."""
    if kind not in FIGURE_KINDS:
        raise InvalidQueryError(f"no figure {kind!r}", hint=f"Figures: {', '.join(FIGURE_KINDS)}.")
    asked = tuple(sorted((k, v.strip()) for k, v in args.items() if k in _FIGURE_ARGS and v.strip()))
    with catalogue.session() as s:
        key = (kind, asked, catalogue_state(s))
    svg: bytes | None = cache.get(key)
    if svg is None:
        svg = _draw(catalogue, kind, dict(asked))
        cache.put(key, svg)
    return svg


def _draw(catalogue: Catalogue, kind: str, args: dict[str, str]) -> bytes:
    from securitynet.catalogue.plots import plot_frame, plot_results
    from securitynet.catalogue.stats import check_by

    try:
        max_groups = int(args.get("max_groups", "25"))
    except ValueError as exc:
        raise InvalidQueryError(f"not a number: max_groups={args['max_groups']!r}") from exc
    order = args.get("order", "median")
    with tempfile.TemporaryDirectory(prefix="securitynet-figure-") as tmp:
        path = Path(tmp) / "figure.svg"
        if kind == "top1":
            by = check_by(args.get("by", "dataset"))
            filters = {k: args[k] for k in ("dataset", "source", "family", "licence") if k in args}
            columns = list(dict.fromkeys((by, "dataset", "top1")))
            frame = catalogue.to_dataframe(columns=columns, ordered=False, **filters)
            plot_frame(frame, path, by=by, order=order, max_groups=max_groups)
        else:
            attack = args.get("attack")
            if not attack:
                raise InvalidQueryError("the results figure needs ?attack=", hint="e.g. ?attack=mia&metric=auc")
            results = catalogue.results(attack=attack, metric=args.get("metric"), dataset=args.get("dataset"))
            plot_results(results, path, order=order, max_groups=max_groups)
        return path.read_bytes()
