"""The lean parser of the everyday commands and Typer cannot drift apart: the Typer commands
are built from the same option definitions, read every command line the same way, and the
two paths print the same output and the same errors on the same catalogue."""

from __future__ import annotations

import re
import shutil
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from securitynet.cli import main, options
from securitynet.cli.app import _register_commands, app, run_typer


def _typer_command(words: tuple[str, ...]) -> Any:
    _register_commands()
    command: Any = typer.main.get_command(app)
    for word in words:
        command = command.commands[word]
    return command


@pytest.mark.parametrize("command", options.LEAN_COMMANDS, ids=lambda c: " ".join(c.words))
def test_the_typer_command_has_exactly_the_options_defined_once(command: options.Command) -> None:
    params = {p.name: p for p in _typer_command(command.words).params}
    assert set(params) == {p.dest for p in command.params}
    for spec in command.params:
        param = params[spec.dest]
        assert param.help == spec.help, spec.dest
        if isinstance(spec, options.Arg):
            assert param.required and param.metavar == spec.metavar and not param.opts[0].startswith("-")
            continue
        assert sorted(param.opts) == sorted(spec.names), spec.dest
        assert param.secondary_opts == [] and not param.multiple and not param.required
        assert param.is_flag == spec.is_flag, spec.dest
        assert param.default == spec.default, spec.dest
        assert param.min == spec.min, spec.dest
        assert param.type_descriptor.annotation in (spec.kind, spec.kind | None), spec.dest


LINES = [
    ["list"],
    ["list", "--dataset", "cifar10", "--format", "json"],
    ["list", "--dataset=CIFAR-10", "-fcsv", "--limit", "0"],
    ["list", "-f", "csv", "--limit", "3", "--sort", "+params", "--min-params", "1M"],
    ["list", "--include-removed", "--shared-weights", "--test-nets", "--min-top1", "80.5"],
    ["list", "--min-top1", "-5", "--min-top1", "70"],  # the last one wins, as in click
    ["list", "--min-top1", "1e1"],
    ["list", "--limit", "-1"],
    ["list", "--limit", "1_000"],
    ["list", "--limit", " 5"],
    ["list", "--limit", "5.0"],
    ["list", "--min-top1", "inf"],
    ["list", "--format", "JSON"],
    ["list", "--format", "xml"],
    ["list", "--include-removed=1"],
    ["list", "--dataset"],
    ["list", "--source", "--dataset"],
    ["list", "--datset", "x"],
    ["list", "extra"],
    ["list", "--help"],
    ["list", "--", "x"],
    ["show", "timm:resnet50.a1_in1k"],
    ["show", "-f", "json", "timm:resnet50.a1_in1k"],
    ["show"],
    ["show", "a", "b"],
    ["show", "--format", "csv", "x"],
    ["sql", "select 1"],
    ["sql", "-", "--max-rows", "2", "--timeout", "0.5"],
    ["sql", "select 1", "--max-rows", "0"],
    ["sql", "select 1", "--timeout", "0.0001"],
    ["sql", "select 1", "--timeout", ".5"],
    ["sql", "-select"],
    ["db", "current"],
    ["db", "current", "--format", "json"],
    ["db", "current", "now"],
    ["db", "upgrade"],
    ["--verbose", "list"],
    ["stats"],
]


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


@pytest.mark.parametrize("argv", LINES, ids=" ".join)
def test_the_lean_parser_reads_a_line_as_typer_does(argv: list[str]) -> None:
    parsed = options.parse(argv)
    command = next((c for c in options.LEAN_COMMANDS if tuple(argv[: len(c.words)]) == c.words), None)
    if command is None:
        assert parsed is None  # not an everyday command: Typer's
        return
    try:
        ctx = _typer_command(command.words).make_context(" ".join(command.words), argv[len(command.words) :])
    except Exception:  # Typer refuses it (or prints help): so must the lean parser, and step aside
        assert parsed is None
        return
    if parsed is not None:  # None: left to Typer (an unusual spelling); never a different answer
        assert parsed.command is command
        assert {k: _plain(v) for k, v in parsed.kwargs.items()} == {
            k: _plain(v) for k, v in ctx.params.items()
        }


def test_every_ordinary_line_is_answered_lean() -> None:
    for argv in (
        ["list", "--dataset=CIFAR-10", "-fcsv", "--limit", "0"],
        ["show", "-f", "json", "timm:resnet50.a1_in1k"],
        ["sql", "-", "--max-rows", "2", "--timeout", "0.5"],
        ["db", "current", "--format", "json"],
    ):
        assert options.parse(argv) is not None, argv


# --- same output, same errors ------------------------------------------------------------


@pytest.fixture
def sample_url(sample_sqlite_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = tmp_path / "catalogue.db"
    shutil.copyfile(sample_sqlite_file, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("SECURITYNET_DATABASE_URL", url)
    monkeypatch.setenv("SECURITYNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SECURITYNET_DEBUG", raising=False)
    return url


def _run(entry: Any, argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    with CliRunner().isolation(input=stdin) as (out, err, _mixed):
        try:
            entry(list(argv))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        timing = re.compile(r"in [0-9.]+ ms")  # sql's own stopwatch
        return code, out.getvalue().decode(), timing.sub("in _ ms", err.getvalue().decode())


SAME = [
    ["list"],
    ["list", "--dataset", "cifar10", "--format", "json"],
    ["list", "-f", "csv", "--sort", "+params", "--min-params", "1M", "--limit", "2"],
    ["list", "--include-removed", "--shared-weights", "--test-nets", "--limit", "0"],
    ["list", "--dataset", "CIFAR-1O"],  # a typo: the hint names the close ones
    ["list", "--source", "nonsense"],
    ["list", "--min-params", "lots"],
    ["list", "--sort", "colour"],
    ["show", "timm:resnet50.a1_in1k"],
    ["show", "--format", "json", "timm:resnet50.a1_in1k"],
    ["show", "timm:resnet5O"],
    ["show", "not an id"],
    ["sql", "select id, top1 from entry order by id limit 3"],
    ["sql", "select id from entry", "--max-rows", "2", "-f", "json"],
    ["sql", "delete from entry"],
    ["sql", "select * from no_such_table"],
    ["db", "current"],
    ["db", "current", "-f", "json"],
]


@pytest.mark.parametrize("argv", SAME, ids=" ".join)
def test_lean_and_typer_print_the_same(sample_url: str, argv: list[str]) -> None:
    assert options.parse(argv) is not None  # main() answers it without Typer
    lean = _run(main, argv)
    full = _run(run_typer, argv)
    assert lean == full
    assert lean[1] or lean[2]


def test_sql_from_stdin_is_the_same_on_both_paths(sample_url: str) -> None:
    argv = ["sql", "-", "-f", "csv"]
    lean = _run(main, argv, stdin="select count(*) as n from entry")
    assert lean == _run(run_typer, argv, stdin="select count(*) as n from entry")
    assert lean[0] == 0 and lean[1].splitlines()[0] == "n"
