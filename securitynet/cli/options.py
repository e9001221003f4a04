"""The options of the everyday read commands, defined once, as data.

``list``, ``show``, ``sql`` and ``db current`` are typed many times a day; Typer, click,
rich and pydantic take longer to import than the answer takes to compute. Their options are
declared here without Typer: :mod:`securitynet.cli.commands_catalogue` builds its Typer
options from these definitions (:func:`typer_param`), and :func:`parse` reads a command
line with them without importing Typer at all. Anything :func:`parse` does not recognise
whole (``--help``, an unknown option, a value click would refuse, a missing argument) makes
it return None: Typer then parses the line and says what is wrong, exactly as before. A test
holds both parsers to the same answers.

    >>> parse(["list", "--dataset", "cifar10", "-f", "json"]).kwargs["dataset"]
    'cifar10'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from securitynet.cli.render import TableFormat, TextFormat

_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class Opt:
    """An option: its Python parameter name, the names a user types, its value type (``bool``
    for a flag, an :class:`Enum` for a choice), its default and, for numbers, a minimum."""

    dest: str
    names: tuple[str, ...]
    help: str
    kind: type = str
    default: Any = None
    min: float | None = None

    @property
    def is_flag(self) -> bool:
        return self.kind is bool

    def convert(self, raw: str) -> Any:
        """The value as Typer converts it; ValueError where Typer would refuse it, or where
        the spelling is unusual enough (``1_000``, `` 5``, ``inf``) to leave to Typer."""
        if issubclass(self.kind, Enum):
            return self.kind(raw)  # case-sensitive, as Typer's choices
        if self.kind is int or self.kind is float:
            if not (_INT if self.kind is int else _FLOAT).fullmatch(raw):
                raise ValueError(raw)
            value = self.kind(raw)
            if self.min is not None and value < self.min:
                raise ValueError(f"{value} < {self.min}")
            return value
        return raw


@dataclass(frozen=True)
class Arg:
    """A positional argument (required)."""

    dest: str
    help: str
    metavar: str | None = None


@dataclass(frozen=True)
class Command:
    """A command's words (``("db", "current")``) and its parameters."""

    words: tuple[str, ...]
    params: tuple[Opt | Arg, ...]

    def param(self, dest: str) -> Opt | Arg:
        return next(p for p in self.params if p.dest == dest)


# --- the options, once -----------------------------------------------------------------------

SOURCE = Opt("source", ("--source",), "Only entries of this source: timm, torchvision, imgclsmob, hf, ...")
DATASET = Opt("dataset", ("--dataset",), "Final training data set, e.g. CIFAR-10 (cifar10 works too).")
FAMILY = Opt("family", ("--family",), "Architecture family, e.g. resnet.")
ARCHITECTURE = Opt("architecture", ("--architecture",), "Architecture, e.g. resnet50.")
LICENCE = Opt("licence", ("--licence",), "Licence, e.g. apache-2.0.")
MIN_PARAMS = Opt("min_params", ("--min-params",), "At least this many parameters: 25M, 1.5B, 300k.")
MAX_PARAMS = Opt("max_params", ("--max-params",), "At most this many parameters.")
MIN_TOP1 = Opt("min_top1", ("--min-top1",), "Top-1 accuracy (%) at least this.", float)
SEARCH = Opt("search", ("--search",), "Text in the id or the architecture.")
INCLUDE_REMOVED = Opt(
    "include_removed",
    ("--include-removed",),
    "Also entries that vanished upstream (kept, never deleted).",
    bool,
    False,
)
SHARED_WEIGHTS = Opt(
    "shared_weights",
    ("--shared-weights",),
    "Every name of a weight file several entries load (default: each file once).",
    bool,
    False,
)
TEST_NETS = Opt(
    "test_nets", ("--test-nets",), "Also the nets libraries register for their own tests.", bool, False
)
TABLE_FORMAT = Opt("fmt", ("--format", "-f"), "Output format.", TableFormat, TableFormat.TABLE)
TEXT_FORMAT = Opt("fmt", ("--format", "-f"), "Output format.", TextFormat, TextFormat.TEXT)

SORT = Opt(
    "sort",
    ("--sort",),
    "Sort key: top1, params, gflops, num_classes, first_seen, last_seen (largest first) or "
    "id, name, source, dataset, family (A to Z); prefix - for descending, + for ascending.",
    str,
    "top1",
)
LIMIT = Opt("limit", ("--limit",), "Show at most N entries (0: all).", int, 50, min=0)
ENTRY_ID = Arg("entry_id", "Entry id, e.g. timm:resnet50.a1_in1k.", metavar="ID")
QUERY = Arg("query", "One SELECT / WITH / VALUES / EXPLAIN statement; '-' reads it from stdin.")
MAX_ROWS = Opt(
    "max_rows",
    ("--max-rows",),
    "Return at most N rows (default: SECURITYNET_SQL_MAX_ROWS, 10000).",
    int,
    min=1,
)
TIMEOUT = Opt(
    "timeout", ("--timeout",), "Stop after S seconds (default: SECURITYNET_SQL_TIMEOUT, 10).", float, min=0.001
)

LIST = Command(
    ("list",),
    (
        SOURCE,
        DATASET,
        FAMILY,
        ARCHITECTURE,
        LICENCE,
        MIN_PARAMS,
        MAX_PARAMS,
        MIN_TOP1,
        SEARCH,
        INCLUDE_REMOVED,
        SHARED_WEIGHTS,
        TEST_NETS,
        SORT,
        LIMIT,
        TABLE_FORMAT,
    ),
)
SHOW = Command(("show",), (ENTRY_ID, TEXT_FORMAT))
SQL = Command(("sql",), (QUERY, MAX_ROWS, TIMEOUT, TABLE_FORMAT))
DB_CURRENT = Command(("db", "current"), (TEXT_FORMAT,))

#: The commands :func:`parse` answers without Typer.
LEAN_COMMANDS: tuple[Command, ...] = (LIST, SHOW, SQL, DB_CURRENT)


# --- the Typer side --------------------------------------------------------------------------


def typer_param(param: Opt | Arg) -> Any:
    """The ``typer.Option`` / ``typer.Argument`` for ``Annotated[...]`` (imports Typer)."""
    import typer

    if isinstance(param, Arg):
        return typer.Argument(metavar=param.metavar, help=param.help)
    extra: dict[str, Any] = {"min": param.min} if param.min is not None else {}
    return typer.Option(*param.names, help=param.help, **extra)


# --- the lean side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    command: Command
    kwargs: dict[str, Any]


def parse(argv: Sequence[str]) -> Parsed | None:
    """``argv`` (without the program name) as one of :data:`LEAN_COMMANDS` with its keyword
    arguments, or None when Typer must read it (anything not understood whole)."""
    command = next(
        (c for c in LEAN_COMMANDS if tuple(argv[: len(c.words)]) == c.words), None
    )
    if command is None:
        return None
    options = {name: p for p in command.params if isinstance(p, Opt) for name in p.names}
    positional = [p for p in command.params if isinstance(p, Arg)]
    kwargs: dict[str, Any] = {p.dest: p.default for p in command.params if isinstance(p, Opt)}
    given: list[str] = []
    rest = list(argv[len(command.words) :])
    while rest:
        token = rest.pop(0)
        if token == "-" or not token.startswith("-"):
            given.append(token)
            continue
        name, value = _split(token, options)
        opt = options.get(name) if name is not None else None
        if opt is None:
            return None  # --help, --, an unknown or misspelt option: Typer explains
        if opt.is_flag:
            if value is not None:
                return None
            kwargs[opt.dest] = True
            continue
        if value is None:
            if not rest:
                return None  # "requires an argument": Typer says so
            value = rest.pop(0)
        try:
            kwargs[opt.dest] = opt.convert(value)
        except ValueError:
            return None
    if len(given) != len(positional):
        return None
    kwargs.update({p.dest: v for p, v in zip(positional, given, strict=True)})
    return Parsed(command, kwargs)


def _split(token: str, options: dict[str, Opt]) -> tuple[str | None, str | None]:
    """``--name=value`` / ``--name`` / ``-fjson`` / ``-f`` as (name, value or None)."""
    if token.startswith("--"):
        name, eq, value = token.partition("=")
        return name, (value if eq else None)
    if token[:2] in options and len(token) > 2:
        return token[:2], token[2:]  # click's "-fjson"
    return token, None
