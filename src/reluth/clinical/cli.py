"""Commands: ``reluth record conmed|medical-history|withdrawal|deviation|pregnancy-test|
childbearing|local-assessment FILE.json`` — one record, or a list of them, each
``{"patient_id": ..., <the form's fields>}`` (:mod:`reluth.clinical.forms`; a local tumour
assessment takes central review's read shape), written in one audited unit of work as the
logged-in user (all or nothing)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from reluth.cli_support import cli_context, console, handle_errors, load_json, print_json
from reluth.i18n import N_

#: command name -> (the service recording one, as module:function, imported when the command
#: runs so that `reluth record --help` stays fast; what it is called in messages, translated
#: where shown)
RECORDERS: dict[str, tuple[str, str]] = {
    "conmed": ("reluth.clinical.service:record_conmed", N_("concomitant medication")),
    "medical-history": ("reluth.clinical.service:record_medical_history", N_("medical history")),
    "withdrawal": ("reluth.patients.service:record_withdrawal", N_("withdrawal")),
    "deviation": ("reluth.clinical.service:record_deviation", N_("protocol deviation")),
    "pregnancy-test": ("reluth.clinical.service:record_pregnancy_test", N_("pregnancy test")),
    "childbearing": ("reluth.clinical.service:record_childbearing", N_("childbearing potential")),
    "local-assessment": (
        "reluth.clinical.cli:record_local_assessment",
        N_("local tumour assessment"),
    ),
}

#: The fields of a local tumour assessment record (as ``POST .../local-assessments`` takes).
LOCAL_FIELDS = ("timepoint", "assessment_date", "modality", "lesions", "new_lesions")


def record_local_assessment(ctx: Any, patient_code: str, fields: dict[str, Any]) -> Any:
    """One local tumour assessment record of a file, through the response service (RECIST
    1.1 by the same engine as central review): ``{"timepoint", "assessment_date", "modality",
    "new_lesions"?, "lesions": [{"id", "organ", "kind", "nodal", "diameter_mm" | "status"}]}``."""
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid
    from reluth.response import service as review
    from reluth.values import parse_date

    for name in fields:
        if name not in LOCAL_FIELDS:
            raise invalid(name, "not_a_field", N_("not a field of this form"), LOCAL_FIELDS)
    lesions = fields.get("lesions")
    if not isinstance(lesions, list) or not all(isinstance(x, dict) for x in lesions):
        raise invalid(
            "lesions",
            "not_a_list",
            N_("missing or not a list of lesions"),
            ('[{"id": "T1", ...}]',),
        )
    return review.record_local_assessment(
        ctx,
        patient_code,
        fields.get("timepoint", ""),
        parse_date(fields.get("assessment_date"), "assessment_date"),
        fields.get("modality", ""),
        lesions,
        fields.get("new_lesions", "no"),
    )


def _recorder(command: str) -> Callable[..., Any]:
    module, name = RECORDERS[command][0].split(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return fn


def _records(data: Any, what: str) -> list[tuple[str, dict[str, Any]]]:
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid

    items = data if isinstance(data, list) else [data]
    if not items:
        raise invalid(what, "required", N_("empty list"), N_("one record or a list of records"))
    out = []
    for i, item in enumerate(items):
        where = f"[{i}]" if isinstance(data, list) else what
        if not isinstance(item, dict):
            raise invalid(
                where,
                "not_an_object",
                N_("expected an object, got {value}"),
                ("{...}",),
                value=f"{item!r:.40}",
            )
        fields = dict(item)
        code = fields.pop("patient_id", None)
        if not isinstance(code, str):
            raise invalid(
                f"{where}.patient_id",
                "required",
                N_("missing"),
                N_("e.g. {example}"),
                example="C07-0012",
            )
        out.append((code, fields))
    return out


def record_file(command: str, file: Path) -> list[dict[str, Any]]:
    """Record every record of ``file`` with the command's service; their ids and patients."""
    recorder, what = _recorder(command), RECORDERS[command][1]
    records = _records(load_json(file, f"{what} file"), what)
    with cli_context(write=True) as ctx:
        rows = [(code, recorder(ctx, code, fields)) for code, fields in records]
        return [{"patient_id": code, "id": row.id} for code, row in rows]


JSON = typer.Option(False, "--json", help="Machine-readable output.")


def _command(record_app: typer.Typer, command: str) -> None:
    _recorder, what = RECORDERS[command]

    @handle_errors
    def run(
        file: Path = typer.Argument(..., help="JSON record or list."), as_json: bool = JSON
    ) -> None:
        done = record_file(command, file)
        if as_json:
            print_json(done)
            return
        from reluth.i18n import gettext

        line = gettext("{what} {id} recorded for {patient}")
        for d in done:
            console.print(line.format(what=gettext(what), id=d["id"], patient=d["patient_id"]))

    run.__doc__ = f"Record {what} (one JSON object or a list; fields: `docs/forms-clinical.md`)."
    record_app.command(command)(run)


def add_commands(record_app: typer.Typer) -> None:
    """Hang the commands on ``reluth record`` (called by :mod:`reluth.patients.cli`, which
    mounts it)."""
    for name in RECORDERS:
        _command(record_app, name)
