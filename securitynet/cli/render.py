"""How commands print: tables (rich on a terminal, plain aligned text when piped), JSON
(machine-clean: no colour, no bars) and CSV. Presentation only; no catalogue logic.

No Typer here (the everyday commands print without importing it, see
:mod:`securitynet.cli.options`); rich only when a table goes to a terminal."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any


class StrEnum(str, Enum):
    """``enum.StrEnum`` for Python 3.10 (not securitynet.records': pydantic is slow to import)."""

    def __str__(self) -> str:
        return str(self.value)


class TableFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


class TextFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


Formatter = Callable[[Any], str]


def echo(message: str = "", *, err: bool = False, nl: bool = True) -> None:
    """``message`` on stdout (or stderr), flushed: what ``typer.echo`` does with text."""
    stream = sys.stderr if err else sys.stdout
    stream.write(message + ("\n" if nl else ""))
    stream.flush()


def human_count(value: Any) -> str:
    """25557032 -> '25.6M'; for parameter counts in tables."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    n = float(value)
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= limit:
            return f"{n / limit:.3g}{suffix}" if n / limit < 100 else f"{n / limit:.0f}{suffix}"
    return f"{n:.0f}"


def cell(value: Any) -> str:
    """A value as a table cell: blanks for missing, two decimals for floats."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _clean(value: Any) -> Any:
    """NaN (pandas' missing value) is not JSON: write null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def emit_json(data: Any) -> None:
    if isinstance(data, list):
        data = [{k: _clean(v) for k, v in d.items()} if isinstance(d, Mapping) else d for d in data]
    echo(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def emit_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_value(row.get(c)) for c in columns])
    echo(buffer.getvalue(), nl=False)


def _csv_value(value: Any) -> Any:
    value = _clean(value)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    if isinstance(value, (datetime, date, Enum, Decimal)):
        return _json_default(value)
    return value


def _numeric_column(values: Sequence[Any]) -> bool:
    """Right-align a column whose every present value is a number."""
    present = [v for v in values if _clean(v) is not None]
    return bool(present) and all(
        isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) for v in present
    )


def emit_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    formatters: Mapping[str, Formatter] | None = None,
    title: str | None = None,
) -> None:
    """A table of ``rows``: rich on a terminal, plain aligned text (pipe-friendly) otherwise."""
    formatters = formatters or {}
    numeric = {c: _numeric_column([r.get(c) for r in rows]) for c in columns}
    cells = [[formatters.get(c, cell)(r.get(c)) for c in columns] for r in rows]
    if sys.stdout.isatty():
        from rich import box
        from rich.console import Console
        from rich.table import Table

        # the first column names the row (an id, a group) and numbers are read whole: neither
        # is ever cut; other text gives way with an ellipsis on a narrow terminal
        widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
        whole = [i == 0 or numeric[c] for i, c in enumerate(columns)]
        table = Table(
            title=title,
            box=box.SIMPLE_HEAD,
            title_justify="left",
            title_style="bold",
            pad_edge=False,
        )
        for c, width, keep in zip(columns, widths, whole, strict=True):
            table.add_column(
                c,
                justify="right" if numeric[c] else "left",
                no_wrap=True,
                min_width=width if keep else None,
                overflow="fold" if keep else "ellipsis",
            )
        for row in cells:
            table.add_row(*row)
        console = Console()
        needed = sum(
            w if keep else min(w, 8) for w, keep in zip(widths, whole, strict=True)
        ) + 3 * len(columns)
        if needed > console.width:  # a terminal too narrow for the figures: wrap, never crop them
            console = Console(width=needed)
        console.print(table)
        return
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if numeric[c] else v.ljust(w)
            for v, w, c in zip(values, widths, columns, strict=True)
        ]
        return "  ".join(parts).rstrip()

    if title:
        echo(title)
    echo(line(list(columns)))
    echo(line(["-" * w for w in widths]))
    for row in cells:
        echo(line(row))


def emit_rows(
    rows: Sequence[Mapping[str, Any]],
    fmt: TableFormat,
    *,
    columns: Sequence[str],
    table_columns: Sequence[str] | None = None,
    formatters: Mapping[str, Formatter] | None = None,
    title: str | None = None,
) -> None:
    """``rows`` in ``fmt``; the table may show fewer columns than JSON and CSV carry."""
    if fmt is TableFormat.JSON:
        emit_json([{c: r.get(c) for c in columns} for r in rows])
    elif fmt is TableFormat.CSV:
        emit_csv(rows, columns)
    else:
        emit_table(rows, table_columns or columns, formatters=formatters, title=title)


def note(message: str) -> None:
    """A remark for the person at the terminal (stderr: never mixed into data on stdout)."""
    echo(message, err=True)
