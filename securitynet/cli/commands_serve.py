"""``securitynet serve``: the read-only web view (:mod:`securitynet.web`), on 127.0.0.1 by default."""

from __future__ import annotations

from typing import Annotated

import typer

from securitynet.errors import ConfigurationError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app`` (once; calling again is a no-op)."""
    if any(c.name == "serve" for c in app.registered_commands):
        return

    @app.command("serve")
    def serve(
        host: Annotated[
            str, typer.Option(help="Address to listen on (0.0.0.0 serves your whole network).")
        ] = DEFAULT_HOST,
        port: Annotated[int, typer.Option(help="TCP port.")] = DEFAULT_PORT,
        database_url: Annotated[
            str | None,
            typer.Option(help="Catalogue to serve (default: SECURITYNET_DATABASE_URL or the embedded SQLite)."),
        ] = None,
    ) -> None:
        """Serve a read-only web view of the catalogue: browse, entry pages, SQL console."""
        try:
            import uvicorn

            from securitynet.web.app import create_app
        except ImportError as exc:
            raise ConfigurationError(
                f"the web view needs {exc.name or 'its dependencies'}",
                hint="pip install 'securitynet[web]'",
            ) from exc
        from securitynet.catalogue.api import Catalogue

        with Catalogue(database_url, upgrade=False) as cat:
            typer.echo(f"serving {cat.url} at http://{host}:{port} (read-only; Ctrl-C stops)", err=True)
            uvicorn.run(create_app(cat, warm=True), host=host, port=port, log_level="warning")
