"""The ``securitynet`` command: a thin Typer skin over the library. No logic lives here."""

from __future__ import annotations

from securitynet.cli.app import app, main

__all__ = ["app", "main"]
