"""Command: ``reluth recist evaluate ASSESSMENTS.json`` (table, or JSON with ``--json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from reluth.cli_support import (
    command_trial,
    console,
    handle_errors,
    load_json,
    print_json,
    to_jsonable,
)
from reluth.response.recist import (
    PatientResponse,
    RecistOptions,
    evaluate,
    parse_patient,
)

app = typer.Typer(help="RECIST 1.1 response assessment.", no_args_is_help=True)


def response_json(result: PatientResponse) -> dict[str, Any]:
    """The documented JSON shape of a patient's RECIST assessment."""
    data: dict[str, Any] = to_jsonable(result)
    start, end = result.landmark_window
    data["landmark_window"] = {"start": start.isoformat(), "end": end.isoformat()}
    return data


@app.command("evaluate")
@handle_errors
def evaluate_command(
    assessments: Path = typer.Argument(..., help="Baseline and follow-up measurements (JSON)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    pr_persists: bool = typer.Option(
        True, "--pr-persists/--no-pr-persists", help="PR continues until PD (EORTC FAQ)."
    ),
    min_sd_days: int | None = typer.Option(
        None,
        help="Minimum SD duration from randomization, days (default: the protocol file's).",
    ),
    confirm: bool = typer.Option(False, "--confirm", help="Require CR/PR confirmation."),
    confirm_days: int = typer.Option(28, help="Minimum days between response and confirmation."),
    landmark_day: int | None = typer.Option(
        None, help="Month-6 landmark, days from randomization (default: the protocol file's)."
    ),
    landmark_window: int | None = typer.Option(
        None, help="Landmark window half-width in days (default: the protocol file's)."
    ),
    backdate_equivocal: bool = typer.Option(
        True,
        "--backdate-equivocal/--no-backdate-equivocal",
        help="Date PD to the first equivocal new lesion once confirmed.",
    ),
) -> None:
    """Per-time-point RECIST 1.1 responses, best overall response and month-6 disease control."""
    chosen: dict[str, Any] = {
        "pr_persists_until_pd": pr_persists,
        "confirmation_required": confirm,
        "confirmation_min_days": confirm_days,
        "backdate_confirmed_equivocal": backdate_equivocal,
    }
    for name, value in (
        ("min_sd_duration_days", min_sd_days),
        ("landmark_day", landmark_day),
        ("landmark_window_days", landmark_window),
    ):
        if value is not None:
            chosen[name] = value
    options = RecistOptions.from_protocol(command_trial().protocol, **chosen)
    result = evaluate(parse_patient(load_json(assessments, "assessments file")), options)
    if as_json:
        print_json(response_json(result))
        return
    table = Table(
        "date",
        "day",
        "sum (mm)",
        "vs baseline",
        "vs nadir",
        "target",
        "non-target",
        "new",
        "overall",
        title=f"RECIST 1.1 (baseline sum {result.baseline_sum_mm} mm)",
    )
    for tp in result.time_points:
        table.add_row(
            tp.date.isoformat(),
            str(tp.day),
            "-" if tp.sum_mm is None else str(tp.sum_mm),
            "-" if tp.change_from_baseline_pct is None else f"{tp.change_from_baseline_pct}%",
            "-" if tp.change_from_nadir_pct is None else f"{tp.change_from_nadir_pct}%",
            tp.target.value,
            tp.non_target.value,
            tp.new_lesions.value,
            f"[bold]{tp.overall.value}[/]",
        )
    console.print(table)
    for tp in result.time_points:
        for note in tp.notes:
            console.print(f"  {tp.date.isoformat()}: {note}", highlight=False)
    bor_date = result.best_overall_response_date
    console.print(
        f"Best overall response: [bold]{result.best_overall_response.value}[/]"
        + (f" ({bor_date.isoformat()})" if bor_date else "")
    )
    pd = result.first_pd_date
    console.print(f"First PD: {pd.isoformat() if pd else 'none'}")
    start, end = result.landmark_window
    verdict = "[green]yes[/]" if result.disease_control_month6 else "[red]no[/]"
    console.print(
        f"Disease control at month 6 (window {start.isoformat()} to {end.isoformat()}): "
        f"{verdict} - {result.disease_control_month6_reason}"
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="recist")
