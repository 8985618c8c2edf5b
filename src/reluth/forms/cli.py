"""Commands of the form registry: ``reluth forms list|show FORM`` (the registered CRFs),
``reluth forms blank --out FILE.pdf`` (the blank annotated CRF) and
``reluth correct FORM RECORD_ID --field NAME=VALUE ... --reason TEXT``, the one correction
command of every form (the same mechanism as the correction page and ``PUT /api/v1/forms``)."""

from __future__ import annotations

from pathlib import Path

import typer

from reluth.cli_support import cli_context, command_trial, console, handle_errors, print_json
from reluth.cli_support import table as cli_table
from reluth.i18n import N_, get_locale, gettext

app = typer.Typer(
    help="The case report forms (registry beside the protocol).", no_args_is_help=True
)


@app.command("list")
@handle_errors
def list_command() -> None:
    """Every registered form: id, label, table, whether it can be corrected."""
    from reluth.forms.bindings import BINDINGS

    registry = command_trial().forms
    table = cli_table(
        N_("form"), N_("label"), N_("table"), N_("fields"), N_("correctable"),
        title=N_("Case report forms"),
    )  # fmt: skip
    for f in registry.forms:
        ok = gettext("yes") if f.id in BINDINGS and f.correctable else gettext("no")
        table.add_row(f.id, f.label_in(get_locale()), f.table, str(len(f.fields)), ok)
    console.print(table)


@app.command("show")
@handle_errors
def show_command(
    form: str = typer.Argument(..., help="A form id (reluth forms list)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The fields of one form: type, unit, range, code list, missing-data codes, help."""
    registry = command_trial().forms
    f = registry.form(form)
    if as_json:
        print_json(f.model_dump(mode="json"))
        return
    table = cli_table(
        N_("field"), N_("label"), N_("type"), N_("unit"), N_("range"), N_("codes"), N_("missing"),
        title=f.label_in(get_locale()),
    )  # fmt: skip
    for x in f.fields:
        lo, hi = ("" if v is None else str(v) for v in (x.min, x.max))
        span = f"{lo}-{hi}" if lo or hi else ""
        codes = "" if x.codes is None else ", ".join(registry.codes(x.codes))
        table.add_row(
            x.name,
            x.label_in(get_locale()),
            x.type,
            x.unit or "",
            span,
            codes,
            ", ".join(x.missing),
        )
    console.print(table)


@app.command("blank")
@handle_errors
def blank_command(
    out: Path = typer.Option(..., "--out", help="The PDF file to write."),
) -> None:
    """Print the blank annotated CRF to PDF: every form and field of the registry (label,
    type, unit, range, code list, missing-data codes, stored table.column, visits due)."""
    from reluth.forms import crf_service

    with cli_context() as ctx:
        file = crf_service.blank_crf_pdf(ctx)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(file.content)
    from reluth.i18n import format_number, gettext

    console.print(
        gettext("wrote {path} ({size} bytes, SHA-256 {sha})").format(
            path=out, size=format_number(len(file.content)), sha=file.sha256
        ),
        soft_wrap=True,
    )


@handle_errors
def correct_command(
    form: str = typer.Argument(..., help="A form id: lab, adverse_event, cycle, visit, ..."),
    record_id: int = typer.Argument(..., help="The saved record's id (as pages and API name it)."),
    fields: list[str] = typer.Option(
        ...,
        "--field",
        "-f",
        help="NAME=VALUE to change (repeat); items.29=3, lesions.T1.diameter_mm=14",
    ),
    reason: str = typer.Option(..., "--reason", help="Why the saved data change (audited)."),
    as_json: bool = typer.Option(False, "--json", help="Print the corrected record as JSON."),
) -> None:
    """Correct a saved record of any registered form through its domain's rules (needs a login
    and a reason; the audit trail keeps old value, new value, who and why)."""
    from reluth.forms import corrections

    with cli_context(write=True, reason=reason) as ctx:
        inst = corrections.open_instance(ctx, form, record_id)
        changes = corrections.changes_from_pairs(ctx, inst, fields)
        row = corrections.correct(ctx, inst, changes)
        out = corrections.result(ctx, inst, row)
    if as_json:
        print_json(out)
        return
    from reluth.i18n import gettext

    console.print(
        gettext("corrected {form} {id} of {patient}:").format(
            form=form, id=record_id, patient=inst.ref.patient_code
        )
    )
    for key, value in out.items():
        if key not in ("form", "record_id"):
            console.print(f"  {key}: {value}", highlight=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="forms")
    root.command("correct")(correct_command)
