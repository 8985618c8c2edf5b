"""``reluth export odm`` and ``reluth import odm``: the CDISC ODM 1.3.2 exchange of the trial's
case report forms (the same services as ``GET /api/v1/exports/odm``)."""

from __future__ import annotations

from pathlib import Path

import typer

from reluth.cli_support import cli_context, console, handle_errors, print_json

export_app = typer.Typer(
    help="Export the trial's data in a standard format (recorded in the audit trail).",
    no_args_is_help=True,
)
import_app = typer.Typer(
    help="Import another EDC's data through the domain services (audited as an import).",
    no_args_is_help=True,
)


@export_app.command("odm")
@handle_errors
def export_odm(
    out: Path = typer.Option(..., "--out", help="The ODM XML file to write."),
    no_audit: bool = typer.Option(False, "--no-audit", help="Data only: no audit records."),
) -> None:
    """CDISC ODM 1.3.2: metadata from the form registry and the clinical data of every patient
    you may read, with audit records, e-signatures and locks."""
    from reluth.core.download import record_download
    from reluth.i18n import format_number, gettext
    from reluth.odm import service as odm

    with cli_context() as ctx:
        download = odm.odm_export(ctx, audit=not no_audit)
    with cli_context(write=True) as ctx:
        record_download(ctx, download)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(download.content)
    d = download.detail
    console.print(
        gettext(
            "wrote {out}: {patients} patients, {forms} form instances, {audit} audit records "
            "(sha256 {sha256})"
        ).format(
            out=out,
            patients=format_number(d["patients"]),
            forms=format_number(sum(d["forms"].values())),
            audit=format_number(d["audit_records"]),
            sha256=download.sha256,
        ),
        soft_wrap=True,
        highlight=False,
    )


class _DryRun(Exception):
    """Raised inside the unit of work of a dry run, so that it rolls back."""


@import_app.command("odm")
@handle_errors
def import_odm(
    file: Path = typer.Argument(..., help="An ODM 1.3.2 XML file (e.g. from reluth export odm)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Report what would be imported; write nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    oid_map: Path | None = typer.Option(
        None, "--map", help="A YAML map of another EDC's OIDs to reluth's (docs/odm.md)."
    ),
) -> None:
    """Import the clinical data of an ODM file, in one transaction: every record through its
    domain's rules, with its original dates, marked "imported from ODM <FileOID>"."""
    from reluth.i18n import N_, format_number, gettext
    from reluth.i18n.reasons import invalid
    from reluth.odm import service as odm

    if not file.is_file():
        raise invalid(str(file), "file_not_found", N_("file not found"), N_("an ODM XML file"))
    content = file.read_bytes()
    if oid_map is not None and not oid_map.is_file():
        raise invalid(
            str(oid_map), "file_not_found", N_("file not found"), N_("a YAML map (--map)")
        )
    map_bytes = None if oid_map is None else oid_map.read_bytes()
    report = None
    try:
        with cli_context(write=True, reason="ODM import") as ctx:
            report = odm.odm_import(ctx, content, dry_run=dry_run, oid_map=map_bytes)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    assert report is not None
    if as_json:
        print_json({**report.detail(), "per_patient": report.per_patient})
        return
    summary = (
        N_("would import {forms} form instances of {patients} patients from {file}")
        if dry_run
        else N_("imported {forms} form instances of {patients} patients from {file}")
    )
    console.print(
        gettext(summary).format(
            forms=format_number(sum(report.per_form.values())),
            patients=format_number(len(report.per_patient)),
            file=report.file_oid,
        ),
        soft_wrap=True,
        highlight=False,
    )
    for form, n in report.per_form.items():
        console.print(f"  {form}: {format_number(n)}", highlight=False)
    for code, forms in report.per_patient.items():
        listed = ", ".join(f"{f} {format_number(n)}" for f, n in forms.items())
        console.print(f"  {code}: {listed}", highlight=False)
    left_out = {"signatures": N_("signatures"), "annotations": N_("annotations")}
    for what, n in report.left_out.items():
        line = gettext("not imported: {n} {what}")
        shown = line.format(n=format_number(n), what=gettext(left_out.get(what, what)))
        console.print(f"  {shown}", highlight=False)
    for m in report.mismatches:
        line = gettext(
            "derived value differs, the engine's is kept: {subject} {item} (repeat {repeat}): "
            "file {file}, recomputed {recomputed}"
        )
        console.print(f"  {line.format(**m)}", soft_wrap=True, highlight=False)
    for section, entries in report.mapping_used.items():
        for entry, n in entries.items():
            line = gettext("map {section}: {entry} ({n})")
            console.print(
                f"  {line.format(section=section, entry=entry, n=format_number(n))}",
                highlight=False,
            )


def register(root: typer.Typer) -> None:
    root.add_typer(export_app, name="export")
    root.add_typer(import_app, name="import")
