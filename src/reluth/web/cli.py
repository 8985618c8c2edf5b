"""``reluth serve``: the web eCRF and JSON API (each request authenticates itself)."""

from __future__ import annotations

import typer

from reluth.cli_support import console, handle_errors
from reluth.config import get_settings

DB_OPTION = typer.Option(
    None, "--db", help="Database URL (default: RELUTH_DATABASE_URL or ./reluth-data)."
)


@handle_errors
def serve(
    db: str | None = DB_OPTION,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    workers: int = typer.Option(
        1, "--workers", min=1, max=32, help="Server processes (one per CPU core is typical)."
    ),
) -> None:
    """Start the web eCRF and JSON API (docs at /api/v1/docs)."""
    import os

    import uvicorn

    from reluth.web.app import create_app, prepare_database

    url = db or get_settings().database_url
    from reluth.i18n import gettext

    console.print(
        gettext("reluth web on {url} (API docs: /api/v1/docs)").format(url=f"http://{host}:{port}/")
    )
    if workers == 1:
        uvicorn.run(create_app(url), host=host, port=port, log_level="info")
        return
    # Several processes: migrate once here, then each worker builds the app from the same URL.
    prepare_database(url).dispose()
    os.environ["RELUTH_DATABASE_URL"] = url
    uvicorn.run(
        "reluth.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


def register(root: typer.Typer) -> None:
    root.command("serve")(serve)
