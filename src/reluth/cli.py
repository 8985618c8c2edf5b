"""The ``reluth`` command: a Typer root that mounts each domain's commands.

Each domain keeps its commands in its own ``cli.py`` exposing ``app`` (a Typer group) or
``register(root)``; this file only lists where they are.
"""

from __future__ import annotations

import importlib
import importlib.util

import typer

from reluth import __version__

app = typer.Typer(
    name="reluth",
    help="ReLUTH trial platform: protocol, eligibility, randomization, eCRF, analysis, dosimetry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Domain command modules. A module listed here that is not present yet is skipped, so that
# domains can land independently; a module that is present but fails to import is an error.
_DOMAIN_MODULES = (
    "reluth.protocol.cli",
    "reluth.demo",
    "reluth.auth.cli",
    "reluth.core.cli",
    "reluth.patients.cli",
    "reluth.randomization.cli",
    "reluth.response.cli",
    "reluth.safety.cli",
    "reluth.qol.cli",
    "reluth.analysis.cli",
    "reluth.imaging.cli",
    "reluth.dosimetry.cli",
    "reluth.simulation.cli",
    "reluth.web.cli",
)


def _present(name: str) -> bool:
    parent = name.rpartition(".")[0]
    if parent != "reluth" and importlib.util.find_spec(parent) is None:
        return False
    return importlib.util.find_spec(name) is not None


def _mount() -> None:
    for name in _DOMAIN_MODULES:
        if not _present(name):
            continue
        module = importlib.import_module(name)
        module.register(app)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    from reluth.i18n import from_environment, set_locale

    set_locale(from_environment())  # messages for people follow LC_ALL / LC_MESSAGES / LANG
    if version:
        typer.echo(__version__)
        raise typer.Exit(0)


_mount()


def main() -> None:
    app()
