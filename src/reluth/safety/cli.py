"""Command: ``reluth ctcae grade LABS.json`` (table, or JSON with ``--json``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from reluth.cli_support import console, handle_errors, load_json, parse_date, print_json
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
    table = Table("date", "test", "term", "MedDRA", "grade", "rule", title="CTCAE v5.0 grades")
    for g in graded:
        table.add_row(
            g.date.isoformat() if g.date else "-",
            g.test,
            g.term,
            g.meddra_code,
            f"[bold]{g.grade}[/]",
            g.rule,
        )
    console.print(table)
    period = f"{start or 'start'} to {end or 'end'}"
    worst = Table("term", "worst grade", "on", "baseline grade", "shift", title=f"Worst ({period})")
    for s in summary:
        worst.add_row(
            s.term,
            str(s.worst_grade),
            s.worst_date.isoformat() if s.worst_date else "-",
            "-" if s.baseline_grade is None else str(s.baseline_grade),
            s.shift,
        )
    console.print(worst)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="ctcae")
