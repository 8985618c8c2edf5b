"""Command: ``reluth recist evaluate ASSESSMENTS.json`` (table, or JSON with ``--json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from reluth.cli_support import (
    command_trial,
    console,
    handle_errors,
    load_json,
    print_json,
    table,
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
    from reluth.i18n import N_, format_day, format_number, gettext
    from reluth.i18n.reasons import shown
    from reluth.i18n.vocabulary import label

    def pct(value: Any) -> str:
        return "-" if value is None else f"{format_number(value)} %"

    title = gettext("RECIST 1.1 (baseline sum {sum} mm)").format(
        sum=format_number(result.baseline_sum_mm)
    )
    out = table(
        N_("date"),
        N_("day"),
        N_("sum (mm)"),
        N_("vs baseline"),
        N_("vs nadir"),
        N_("target"),
        N_("non-target"),
        N_("new"),
        N_("overall"),
        title=title,
    )
    for tp in result.time_points:
        out.add_row(
            format_day(tp.date),
            str(tp.day),
            "-" if tp.sum_mm is None else format_number(tp.sum_mm),
            pct(tp.change_from_baseline_pct),
            pct(tp.change_from_nadir_pct),
            tp.target.value,
            tp.non_target.value,
            label("new_lesions", tp.new_lesions.value),
            f"[bold]{tp.overall.value}[/]",
        )
    console.print(out)
    for tp in result.time_points:
        for note in tp.messages:
            console.print(f"  {format_day(tp.date)}: {shown(note)}", highlight=False)
    bor_date = result.best_overall_response_date
    console.print(
        gettext("Best overall response: {response}").format(
            response=f"[bold]{label('response', result.best_overall_response.value)}[/] "
            f"({result.best_overall_response.value})"
        )
        + (f" ({format_day(bor_date)})" if bor_date else ""),
        soft_wrap=True,
    )
    pd = result.first_pd_date
    console.print(
        gettext("First PD: {date}").format(date=format_day(pd) if pd else gettext("none")),
        soft_wrap=True,
    )
    start, end = result.landmark_window
    yes, no = gettext("yes"), gettext("no")  # outside the f-string: Babel extracts them
    verdict = f"[green]{yes}[/]" if result.disease_control_month6 else f"[red]{no}[/]"
    console.print(
        gettext(
            "Disease control at month 6 (window {start} to {end}): {verdict} - {reason}"
        ).format(
            start=format_day(start),
            end=format_day(end),
            verdict=verdict,
            reason=result.month6_reason(),
        ),
        soft_wrap=True,
        highlight=False,
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="recist")
