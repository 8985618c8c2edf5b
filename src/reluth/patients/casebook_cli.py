"""``reluth casebook``: the casebook PDF of one patient, or of every patient the logged-in user
may read, as the web page and the API give it (each one recorded in the audit trail)."""

from __future__ import annotations

from pathlib import Path

import typer

from reluth.cli_support import cli_context, console, handle_errors, progress_bar
from reluth.errors import ValidationError
from reluth.i18n import N_

#: More patients than a trial holds: ``--all`` lists every patient the user may read.
_ALL = 1_000_000


def _write(code: str, target: Path) -> tuple[int, str]:
    """One casebook, recorded in the audit trail, then written to ``target``."""
    from reluth.records import casebook

    with cli_context() as ctx:
        file = casebook.casebook_pdf(ctx, code)
    with cli_context(write=True) as ctx:
        casebook.record_casebook(ctx, file)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(file.content)
    return len(file.content), file.sha256


@handle_errors
def casebook_cmd(
    patient: str | None = typer.Argument(None, help="Patient ID, e.g. C01-0001."),
    out: Path = typer.Option(..., "--out", help="The PDF file (a folder with --all)."),
    every: bool = typer.Option(
        False, "--all", help="Every patient you may read, as <folder>/<patient>-casebook.pdf."
    ),
) -> None:
    """Print the casebook of a patient to PDF: every record you may read, with the audit trail
    as an appendix (each casebook is recorded in the audit trail)."""
    from reluth.i18n import format_number, gettext, ngettext
    from reluth.i18n.reasons import invalid
    from reluth.records import views

    if every == (patient is not None):
        raise ValidationError("patient", N_("give a patient ID or --all"), "C01-0001, or --all")
    if not every:
        assert patient is not None
        size, digest = _write(patient.strip().upper(), out)
        console.print(
            gettext("wrote {file} ({size} bytes, SHA-256 {digest})").format(
                file=out, size=format_number(size), digest=digest
            ),
            soft_wrap=True,
        )
        return
    if out.exists() and not out.is_dir():
        raise invalid(
            "out", "not_a_folder", N_("{path} is a file"), N_("a folder for --all"), path=str(out)
        )
    with cli_context() as ctx:
        codes = [row.code for row in views.patient_list(ctx, limit=_ALL)]
    with progress_bar(transient=False) as progress:
        task = progress.add_task(gettext("casebooks"), total=len(codes))
        for code in codes:
            _write(code, out / f"{code}-casebook.pdf")
            progress.advance(task)
    written = ngettext(
        "wrote {n} casebook into {folder}", "wrote {n} casebooks into {folder}", len(codes)
    )
    console.print(written.format(n=len(codes), folder=out), soft_wrap=True)


def register(root: typer.Typer) -> None:
    root.command("casebook")(casebook_cmd)
