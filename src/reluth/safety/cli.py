"""Commands: ``reluth ctcae grade LABS.json`` (table, or JSON with ``--json``); ``reluth sae
report|assess|submit|cioms`` (the SAE workflow, through the same services as the SAE page)."""

from __future__ import annotations

from pathlib import Path

import typer

from reluth.cli_support import (
    cli_context,
    console,
    handle_errors,
    load_json,
    parse_date,
    print_json,
    table,
)
from reluth.safety.ctcae import grade_all, parse_results, summarize

app = typer.Typer(help="CTCAE v5.0 laboratory grading.", no_args_is_help=True)


@app.command("grade")
@handle_errors
def grade_command(
    labs: Path = typer.Argument(..., help="Laboratory results (JSON list or {results: [...]})."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    start: str | None = typer.Option(None, "--from", help="Period start for worst grades."),
    end: str | None = typer.Option(None, "--to", help="Period end for worst grades."),
) -> None:
    """Grade each result (term, MedDRA code, grade, rule) and summarise worst grade per term."""
    results = parse_results(load_json(labs, "laboratory file"))
    first = None if start is None else parse_date(start, "--from")
    last = None if end is None else parse_date(end, "--to")
    graded = grade_all(results)
    summary = summarize(results, first, last)
    if as_json:
        print_json(
            {
                "results": [
                    {
                        "test": g.test,
                        "term": g.term,
                        "meddra_code": g.meddra_code,
                        "grade": g.grade,
                        "rule": g.rule,
                        "date": g.date,
                        "value": g.value,
                        "unit": g.unit,
                        "threshold": g.threshold,
                        "baseline_abnormal": g.baseline_abnormal,
                    }
                    for g in graded
                ],
                "summary": summary,
            }
        )
        return
    from reluth.i18n import N_, format_day, gettext
    from reluth.i18n.reasons import shown
    from reluth.i18n.vocabulary import label

    grades = table(
        N_("date"), N_("test"), N_("term"), N_("MedDRA"), N_("grade"), N_("rule"),
        title=N_("CTCAE v5.0 grades"),
    )  # fmt: skip
    for g in graded:
        grades.add_row(
            format_day(g.date) if g.date else "-",
            label("lab", g.test),
            g.term,
            g.meddra_code,
            f"[bold]{g.grade}[/]",
            g.rule if g.message is None else shown(g.message),
        )
    console.print(grades)
    period = gettext("{start} to {end}").format(
        start=format_day(first) if first else gettext("start"),
        end=format_day(last) if last else gettext("end"),
    )
    worst = table(
        N_("term"),
        N_("worst grade"),
        N_("on"),
        N_("baseline grade"),
        N_("shift"),
        title=gettext("Worst ({period})").format(period=period),
    )
    for s in summary:
        worst.add_row(
            s.term,
            str(s.worst_grade),
            format_day(s.worst_date) if s.worst_date else "-",
            "-" if s.baseline_grade is None else str(s.baseline_grade),
            s.shift,
        )
    console.print(worst)


sae_app = typer.Typer(help="Serious adverse events: reports, assessment, CIOMS-like PDF.")


@sae_app.command("report")
@handle_errors
def report_command(
    adverse_event_id: int = typer.Argument(..., help="The serious adverse event's id."),
    file: Path = typer.Argument(
        ...,
        help='JSON: {"seriousness": [...], "narrative", "action_taken", "treatment"?, "outcome"}',
    ),
) -> None:
    """Send the initial report of an SAE, or its next numbered follow-up."""
    from reluth.safety import sae

    data = load_json(file, "SAE report")
    with cli_context(write=True) as ctx:
        row = sae.report_sae(ctx, adverse_event_id, data)
        from reluth.i18n import gettext
        from reluth.safety.seriousness import report_name

        console.print(
            gettext("{report} of adverse event {id} sent").format(
                report=report_name(row.sequence).render(), id=adverse_event_id
            )
        )


@sae_app.command("assess")
@handle_errors
def assess_command(
    adverse_event_id: int = typer.Argument(...),
    sequence: int = typer.Argument(..., help="0 initial report, n follow-up n."),
    causality: str = typer.Option(..., help="related | not_related"),
    expectedness: str = typer.Option(..., help="expected | unexpected (against the RSI)"),
    comment: str | None = typer.Option(None),
) -> None:
    """The sponsor's assessment of one report (pharmacovigilance)."""
    from reluth.safety import sae

    with cli_context(write=True) as ctx:
        row = sae.assess_report(ctx, adverse_event_id, sequence, causality, expectedness, comment)
        from reluth.i18n import gettext
        from reluth.i18n.vocabulary import label

        susar = gettext(" — SUSAR") if row.susar else ""
        console.print(
            gettext("assessed: {causality}, {expectedness}{susar}").format(
                causality=label("sae_causality", row.causality),
                expectedness=label("expectedness", row.expectedness),
                susar=susar,
            )
        )


@sae_app.command("submit")
@handle_errors
def submit_command(
    adverse_event_id: int = typer.Argument(...),
    sequence: int = typer.Argument(...),
    reference: str = typer.Option(..., help="The authorities' reference of the submission."),
) -> None:
    """Record a SUSAR's submission to the authorities (stops its clock)."""
    from reluth.safety import sae

    with cli_context(write=True) as ctx:
        sae.record_susar_submission(ctx, adverse_event_id, sequence, reference)
    from reluth.i18n import gettext

    console.print(gettext("SUSAR submission recorded"))


@sae_app.command("cioms")
@handle_errors
def cioms_command(
    adverse_event_id: int = typer.Argument(...),
    sequence: int = typer.Argument(0),
    out: Path = typer.Option(..., "--out", help="Where to write the PDF."),
) -> None:
    """Write the CIOMS-I-like PDF of one report."""
    from reluth.safety import sae

    with cli_context() as ctx:
        pdf = sae.cioms_pdf(ctx, adverse_event_id, sequence)
    out.write_bytes(pdf)
    from reluth.i18n import format_number, gettext

    console.print(gettext("{path} ({size} bytes)").format(path=out, size=format_number(len(pdf))))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="ctcae")
    root.add_typer(sae_app, name="sae")
