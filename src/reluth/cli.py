"""The ``reluth`` command: a Typer root that mounts each domain's commands, lazily.

Each domain keeps its commands in its own ``cli.py`` exposing ``register(root)``; this file only
lists where they are and their one-line help, so that ``reluth --help`` imports no domain and
``reluth NAME ...`` imports only the module that defines ``NAME`` (start-up of a command is
what a person waits for; issue 20). tests/layering/test_cli_startup.py checks that the table
below matches what the modules register.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer._coercion import RuntimeParam, build_runtime_param
from typer._param_types import coerce_cli_path
from typer.core import TyperCommand, TyperGroup, _TyperParameter

if TYPE_CHECKING:
    # Typer carries its own copy of click (``typer._click``); these are its types.
    from typer._click import Command, Context
    from typer._click.formatting import HelpFormatter

from reluth import __version__

#: Top-level command -> (module whose ``register(root)`` defines it, its one-line help), in the
#: order ``reluth --help`` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "schedule": (
        "reluth.protocol.cli",
        "Planned visits with windows; with --as-of, each visit's window status.",
    ),
    "demo": ("reluth.demo", "Run the synthetic ReLUTH trial end to end and write the report."),
    "login": (
        "reluth.auth.cli",
        "Log in: check your password, keep a revocable 12-hour login for this database (mode "
        "0600 in your config directory); print the token last when output is not a terminal.",
    ),
    "logout": (
        "reluth.auth.cli",
        "Revoke your CLI login for this database (and the API tokens created from it).",
    ),
    "whoami": (
        "reluth.auth.cli",
        "Who you act as on this database, and how you are authenticated.",
    ),
    "randomize": (
        "reluth.randomization.cli",
        "Randomize a patient (refused, with the reason, if a protocol precondition fails).",
    ),
    "analyze": (
        "reluth.analysis.cli",
        "Run the statistical analysis plan and write the HTML report.",
    ),
    "serve": ("reluth.web.cli", "Start the web eCRF and JSON API (docs at /api/v1/docs)."),
    "protocol": ("reluth.protocol.cli", "The trial definition."),
    "eligibility": ("reluth.protocol.cli", "Eligibility of a patient file."),
    "users": ("reluth.auth.cli", "User accounts, access review and API tokens."),
    "db": ("reluth.core.cli", "Create, back up and restore the trial database."),
    "audit": ("reluth.core.cli", "Check and read the audit trail."),
    "centres": ("reluth.patients.cli", "Trial centres."),
    "patients": ("reluth.patients.cli", "Register, screen and include patients."),
    "record": ("reluth.patients.cli", "Record trial data for a patient."),
    "casebook": (
        "reluth.patients.casebook_cli",
        "Print the casebook of a patient to PDF: every record you may read, with the audit "
        "trail as an appendix (each casebook is recorded in the audit trail).",
    ),
    "forms": ("reluth.forms.cli", "The case report forms (registry beside the protocol)."),
    "correct": (
        "reluth.forms.cli",
        "Correct a saved record of any registered form through its domain's rules (needs a "
        "login and a reason; the audit trail keeps old value, new value, who and why).",
    ),
    "randomization": (
        "reluth.randomization.cli",
        "Randomization set-up, allocation list and report.",
    ),
    "recist": ("reluth.response.cli", "RECIST 1.1 response assessment."),
    "ctcae": ("reluth.safety.cli", "CTCAE v5.0 laboratory grading."),
    "sae": ("reluth.safety.cli", "Serious adverse events: reports, assessment, CIOMS-like PDF."),
    "notify": ("reluth.notify.cli", "E-mail notifications (SMTP from RELUTH_SMTP_URL)."),
    "qol": ("reluth.qol.cli", "EORTC QLQ-C30 and QLQ-GI.NET21 scoring."),
    "stats": ("reluth.analysis.cli", "Statistics on CSV files, with SAS conventions by default."),
    "images": (
        "reluth.imaging.cli",
        "DICOM for the dosimetry study: de-identify at the site, verify, QC, central store.",
    ),
    "dosimetry": (
        "reluth.dosimetry.cli",
        "Dosimetry of [177Lu]Lu-DOTATATE: kinetics, organ/tumour/marrow/voxel dose, BED.",
    ),
    "design": (
        "reluth.simulation.cli",
        "Design simulation: power and type I error of the primary analysis and of PFS.",
    ),
    "lock": (
        "reluth.lifecycle.cli",
        "Lock a form, patient, centre or the study (nothing changes).",
    ),
    "unlock": ("reluth.lifecycle.cli", "Lift a lock, with a reason."),
    "sign": (
        "reluth.lifecycle.cli",
        "Sign a casebook, a visit or a form as the centre's principal investigator "
        "(re-entering your password).",
    ),
    "sdv": ("reluth.lifecycle.cli", "Source-data verification by monitors."),
    "queries": (
        "reluth.queries.cli",
        "Data queries: list them, answer in words or by correcting the value.",
    ),
    "export": (
        "reluth.odm.cli",
        "Export the trial's data in a standard format (recorded in the audit trail).",
    ),
    "import": (
        "reluth.odm.cli",
        "Import another EDC's data through the domain services (audited as an import).",
    ),
}


def domain_modules() -> list[str]:
    """The command modules, each once, in table order."""
    return list(dict.fromkeys(module for module, _ in COMMANDS.values()))


def load_module_commands(module_name: str) -> dict[str, Command]:
    """Import one command module and the click commands its ``register(root)`` defines."""
    sub = typer.Typer()
    importlib.import_module(module_name).register(sub)
    group = typer.main.get_group(sub)
    return dict(group.commands)


_MISSING = object()
_CANONICAL_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")


@dataclass(frozen=True)
class PlainCoercion(RuntimeParam):
    """Typer's coercion of one parameter, without pydantic for the values that need none.

    Typer 0.29 builds a pydantic ``TypeAdapter`` for every parameter it processes, even an
    absent option (value None), which imports pydantic and costs a third of a command's
    start-up (issue 20). This does what those adapters do for what reluth's commands mostly
    get: an absent value (None, or ``()`` for a repeatable one, as Typer returns before any
    adapter), a ``str`` for a ``str``, a canonical integer within ``--min``/``--max`` for an
    ``int``, and a plain path for a ``Path`` (``Path(value)``, then Typer's own path checks).
    Anything else, and any value those refuse, goes to the parameter's own Typer coercion,
    built then, so errors are Typer's wording. Equality with Typer's coercion is tested for every
    parameter of every command (tests/layering/test_cli_startup.py)."""

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        if not (param.multiple or param.nargs == -1):
            done = self._plain(value, param, ctx)
            if done is not _MISSING:
                return done
        typer_own = build_runtime_param(param.type_descriptor)
        param._runtime_param = typer_own  # later values go straight to Typer's coercion
        return typer_own._coerce_value(value, param=param, ctx=ctx)

    def _plain(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        info = self.parameter_info
        annotation = self.annotation
        if info.parser is not None or param.type_descriptor.file_annotation is not None:
            return _MISSING
        if annotation is str and type(value) is str:
            return value
        if annotation is int and not info.clamp:
            if type(value) is int:
                number = value
            elif type(value) is str and _CANONICAL_INT.fullmatch(value):
                number = int(value)
            else:
                return _MISSING
            if (info.min is not None and number < info.min) or (
                info.max is not None and number > info.max
            ):
                return _MISSING  # Typer words the refusal
            return number
        if annotation is Path and info.path_type is None and type(value) is str:
            if not value or "\0" in value:
                return _MISSING
            try:
                return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
            except Exception:  # refused (missing file, ...): Typer's coercion words it
                return _MISSING
        return _MISSING


def _plain_first(self: _TyperParameter) -> RuntimeParam:
    """``_TyperParameter.get_runtime_param`` with :class:`PlainCoercion` as the coercion a
    parameter starts with (Typer's own is built when that hands a value over)."""
    if self._runtime_param is None:
        descriptor = self.type_descriptor
        self._runtime_param = PlainCoercion(
            parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
        )
    return self._runtime_param


# Every Typer parameter of the process, the help options Typer creates while parsing included.
_TyperParameter.get_runtime_param = _plain_first  # type: ignore[method-assign]


class LazyGroup(TyperGroup):
    """A root group that lists commands from :data:`COMMANDS` and imports a command's module
    only when that command is resolved (run, or asked for its own ``--help``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False
        self._loaded: dict[str, Command] = {}
        self._imported: set[str] = set()
        # Placeholders: the names for "did you mean" suggestions and the help listing.
        for name, (_, help_text) in COMMANDS.items():
            self.commands.setdefault(name, TyperCommand(name, help=help_text))

    def _load(self, module_name: str) -> None:
        if module_name not in self._imported:
            self._imported.add(module_name)
            self._loaded.update(load_module_commands(module_name))

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if self._listing:
            return self.commands.get(cmd_name)
        entry = COMMANDS.get(cmd_name)
        if entry is not None:
            self._load(entry[0])
        if cmd_name not in self._loaded:  # not in the table: look in every module
            for module_name in domain_modules():
                self._load(module_name)
        return self._loaded.get(cmd_name)

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="reluth",
    cls=LazyGroup,
    help="ReLUTH trial platform: protocol, eligibility, randomization, eCRF, analysis, dosimetry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,  # before "Missing command": `reluth --version` alone works
        callback=_print_version,
    ),
) -> None:
    """ReLUTH trial platform: protocol, eligibility, randomization, eCRF, analysis, dosimetry."""
    from reluth.i18n import from_environment, set_locale

    set_locale(from_environment())  # messages for people follow LC_ALL / LC_MESSAGES / LANG


#: The values of ``PYDANTIC_DISABLE_PLUGINS`` for which pydantic loads no plugin at all.
_NO_PYDANTIC_PLUGINS = ("__all__", "1", "true")


def _no_pydantic_plugins() -> None:
    """When plugins are disabled, give pydantic a plugin loader that returns none without
    importing ``importlib.metadata``, which its own loader imports at module level only to
    return none in that case (about 5 % of ``reluth eligibility check``, issue 20)."""
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") not in _NO_PYDANTIC_PLUGINS:
        return
    if "pydantic.plugin._loader" in sys.modules:
        return
    loader = types.ModuleType("pydantic.plugin._loader", "No pydantic plugins (reluth.cli).")
    loader.get_plugins = tuple  # type: ignore[attr-defined]  # get_plugins() -> ()
    sys.modules[loader.__name__] = loader


_WHOLE_PROCESS = False


def whole_process() -> bool:
    """True when this process is the ``reluth`` command (:func:`main`), not a program that
    imported it (tests, notebooks): process-wide import choices are made only then."""
    return _WHOLE_PROCESS


def main() -> None:
    global _WHOLE_PROCESS
    _WHOLE_PROCESS = True
    # No pydantic plugin is used by reluth; without this every command would scan the
    # installed distributions' entry points for them when the protocol models are built.
    # Set PYDANTIC_DISABLE_PLUGINS (even empty) to choose otherwise.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    _no_pydantic_plugins()
    app()
