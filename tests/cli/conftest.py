"""CLI fixtures: ``securitynet ARGS...`` runs in-process through ``main()`` (the real error
boundary included) against the catalogue at ``catalogue_url``, found through
SECURITYNET_DATABASE_URL as a user's shell would give it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from securitynet.cli.app import main


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


Invoke = Callable[..., Run]


@pytest.fixture
def cli(catalogue_url: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("SECURITYNET_DATABASE_URL", catalogue_url)
    monkeypatch.delenv("SECURITYNET_DEBUG", raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Run:
        with runner.isolation(input=input) as (out, err, _mixed):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            return Run(code, out.getvalue().decode(), err.getvalue().decode())

    return invoke
