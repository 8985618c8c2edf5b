"""Admin commands for the whole pre-randomization flow and data entry, without a web page:
``reluth centres add``, ``reluth patients register|screen|include``, ``reluth record ...``.

Every command needs a login (``reluth login``, or ``RELUTH_TOKEN``) and writes through one
audited unit of work as that authenticated user; the services ask the policy.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import typer

from reluth.cli_support import (
    cli_context,
    console,
    handle_errors,
    load_json,
    parse_date,
    print_json,
)
from reluth.cli_support import table as cli_table
from reluth.i18n import N_
from reluth.units import to_decimal

centres_app = typer.Typer(help="Trial centres.", no_args_is_help=True)
patients_app = typer.Typer(help="Register, screen and include patients.", no_args_is_help=True)
record_app = typer.Typer(help="Record trial data for a patient.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Machine-readable output.")

EXIT_BY_STATUS = {"eligible": 0, "not_eligible": 1, "incomplete": 3}

# The accepted codes, for --help without importing the service (and the ORM); they are
# ``service.DEATH_CAUSES`` and ``service.END_REASONS`` (tests/layering/test_cli_startup.py).
DEATH_CAUSES_HELP = "disease, toxicity, other, unknown"
END_REASONS_HELP = (
    "completed, death, withdrawal, objection, lost_to_follow_up, screen_failure, "
    "investigator_decision, other"
)


def _date(text: str | None, field: str) -> dt.date | None:
    return None if text is None else parse_date(text, field)


def _decimal(text: str, field: str) -> Decimal:
    return to_decimal(text, field)


@centres_app.command("list")
@handle_errors
def centres_list(as_json: bool = JSON) -> None:
    """List the trial's centres."""
    from reluth.sites import service as sites

    with cli_context() as ctx:
        rows = [
            {"code": c.code, "name": c.name, "opened_on": c.opened_on, "active": c.active}
            for c in sites.list_centres(ctx.session)
        ]
    if as_json:
        print_json(rows)
        return
    from reluth.i18n import N_, format_day, gettext

    table = cli_table(N_("code"), N_("name"), N_("opened"), N_("active"))
    for r in rows:
        table.add_row(
            str(r["code"]),
            str(r["name"]),
            format_day(r["opened_on"] if isinstance(r["opened_on"], dt.date) else None),
            gettext("yes") if r["active"] else gettext("no"),
        )
    console.print(table)


@centres_app.command("add")
@handle_errors
def centres_add(
    code: str = typer.Argument(..., help="Centre code, C + 2 digits (C07)."),
    name: str = typer.Argument(..., help="Centre name."),
    opened: str | None = typer.Option(None, "--opened", help="Opening date YYYY-MM-DD."),
) -> None:
    """Add a centre."""
    from reluth.sites import service as sites

    with cli_context(write=True) as ctx:
        centre = sites.add_centre(ctx, code, name, _date(opened, "opened"))
        from reluth.i18n import gettext

        console.print(
            gettext("centre {code} added: {name}").format(code=centre.code, name=centre.name)
        )


@patients_app.command("register")
@handle_errors
def patients_register(
    centre: str = typer.Option(..., "--centre", help="Centre code (C07)."),
    patient_id: str | None = typer.Option(None, "--id", help="C07-0012; default: next number."),
    sex: str | None = typer.Option(None, "--sex", help="female or male."),
    birth_year: int | None = typer.Option(None, "--birth-year", help="Year only, never a date."),
    as_json: bool = JSON,
) -> None:
    """Register a patient under a pseudonymous ID (no name, no birth date, no hospital number)."""
    from reluth.patients import service

    with cli_context(write=True) as ctx:
        p = service.register_patient(ctx, centre, patient_id, sex, birth_year)
        code = p.patient_code
    if as_json:
        print_json({"patient_id": code, "centre": centre})
    else:
        from reluth.i18n import gettext

        console.print(
            gettext("patient {code} registered at {centre}").format(code=code, centre=centre)
        )


@patients_app.command("screen")
@handle_errors
def patients_screen(
    file: Path = typer.Argument(..., help="Patient file (see `reluth eligibility schema`)."),
    as_json: bool = JSON,
) -> None:
    """Check eligibility and store the input and the per-criterion result as captured.
    Exit 0 eligible, 1 not eligible, 3 incomplete."""
    from reluth.patients import service

    data = load_json(file, "patient file")
    with cli_context(write=True) as ctx:
        out = service.screen_patient(ctx, data)
    if as_json:
        print_json(out)
    else:
        from reluth.i18n import N_, gettext
        from reluth.i18n.vocabulary import label

        title = gettext("screening of {patient}: {status}").format(
            patient=out.patient_id, status=label("eligibility", out.status)
        )
        table = cli_table(title=title)
        for col in (N_("criterion"), N_("result"), N_("reason")):
            table.add_column(gettext(col), overflow="fold")
        fail, unknown = gettext("FAIL"), gettext("unknown")
        for c in out.criteria:
            mark = {True: gettext("pass"), False: f"[red]{fail}[/]", None: f"[yellow]{unknown}[/]"}[
                c["passes"]
            ]
            table.add_row(c["id"], mark, service.criterion_reason(c))
        console.print(table)
        stratum = out.stratum or gettext("not derivable (missing inputs)")
        console.print(gettext("stratum: {stratum}").format(stratum=stratum))
    raise typer.Exit(EXIT_BY_STATUS[out.status])


@patients_app.command("include")
@handle_errors
def patients_include(
    patient_id: str = typer.Argument(...),
    consent_date: str = typer.Option(..., "--consent-date", help="Date consent was signed."),
    date: str | None = typer.Option(None, "--date", help="Inclusion date (default today)."),
) -> None:
    """Include an eligible patient who signed the informed consent."""
    from reluth.patients import service

    with cli_context(write=True) as ctx:
        inc = service.include_patient(
            ctx,
            patient_id,
            parse_date(consent_date, "consent_date"),
            _date(date, "date"),
        )
        from reluth.i18n import format_day, gettext

        console.print(
            gettext("patient {code} included on {day}").format(
                code=patient_id, day=format_day(inc.inclusion_date)
            )
        )


@record_app.command("cycle")
@handle_errors
def record_cycle(
    patient_id: str = typer.Argument(...),
    cycle: int = typer.Option(
        ...,
        "--cycle",
        help="The protocol's cycle number: second PRRT, then the arm's (`reluth protocol show`).",
    ),
    date: str = typer.Option(..., "--date"),
    activity_gbq: str = typer.Option(..., "--activity-gbq", help="Administered activity, GBq."),
    lot: str = typer.Option(..., "--lot"),
) -> None:
    """Record a Lutathera administration."""
    from reluth.treatment.service import record_cycle

    with cli_context(write=True) as ctx:
        record_cycle(
            ctx,
            patient_id,
            cycle,
            parse_date(date, "date"),
            _decimal(activity_gbq, "activity_gbq"),
            lot,
        )
    _recorded(N_("cycle {cycle} recorded for {patient}"), patient_id, cycle=cycle)


@record_app.command("pre-randomization")
@handle_errors
def record_pre_randomization(
    patient_id: str = typer.Argument(...),
    date: str = typer.Option(..., "--date", help="Date of the tumour assessment."),
    progression: bool = typer.Option(
        ..., "--progression/--no-progression", help="RECIST 1.1 radiological progression?"
    ),
    response: str | None = typer.Option(None, "--response", help="CR, PR, SD, PD or NE."),
    comment: str | None = typer.Option(None, "--comment"),
) -> None:
    """Record the assessment after the two second-PRRT cycles (the randomization gate)."""
    from reluth.patients import service

    with cli_context(write=True) as ctx:
        service.record_pre_randomization(
            ctx, patient_id, parse_date(date, "date"), progression, response, comment
        )
    _recorded(N_("pre-randomization assessment recorded for {patient}"), patient_id)


@record_app.command("death")
@handle_errors
def record_death(
    patient_id: str = typer.Argument(...),
    date: str = typer.Option(..., "--date"),
    cause: str = typer.Option(..., "--cause", help=DEATH_CAUSES_HELP),
    details: str | None = typer.Option(None, "--details"),
) -> None:
    """Record a death."""
    from reluth.patients import service

    with cli_context(write=True) as ctx:
        service.record_death(ctx, patient_id, parse_date(date, "date"), cause, details)
    _recorded(N_("death recorded for {patient}"), patient_id)


@record_app.command("end-of-study")
@handle_errors
def record_end_of_study(
    patient_id: str = typer.Argument(...),
    date: str = typer.Option(..., "--date"),
    reason_code: str = typer.Option(..., "--end-reason", help=END_REASONS_HELP),
    details: str | None = typer.Option(None, "--details"),
) -> None:
    """Record the end of study of a patient."""
    from reluth.patients import service

    with cli_context(write=True) as ctx:
        service.record_end_of_study(ctx, patient_id, parse_date(date, "date"), reason_code, details)
    _recorded(N_("end of study recorded for {patient}"), patient_id)


@record_app.command("visit")
@handle_errors
def record_visit_cmd(
    patient_id: str = typer.Argument(...),
    code: str = typer.Option(..., "--code", help="Planned visit code (`reluth schedule`)."),
    date: str = typer.Option(..., "--date"),
) -> None:
    """Record a visit of the schedule and show whether it was in its window."""
    from reluth.treatment.service import record_visit

    with cli_context(write=True) as ctx:
        _, status = record_visit(ctx, patient_id, code, parse_date(date, "date"))
    from reluth.i18n import gettext
    from reluth.i18n.vocabulary import label

    shown = label("visit_status", status.status)
    if status.days_from_target is not None:
        shown += gettext(" ({days} days)").format(days=f"{status.days_from_target:+d}")
    _recorded(
        N_("visit {visit} recorded for {patient}: {status}"), patient_id, visit=code, status=shown
    )


def _recorded(template: str, patient: str, **values: object) -> None:
    """``template`` (marked with ``N_``) in the reader's language, naming the patient."""
    from reluth.i18n import gettext

    console.print(gettext(template).format(patient=patient, **values))


def _record_file(kind: str, file: Path) -> str:
    from reluth.i18n import format_number, gettext
    from reluth.i18n.vocabulary import label
    from reluth.qol.service import record_questionnaire
    from reluth.response.records import record_assessment
    from reluth.safety.records import record_adverse_event, record_labs

    data = load_json(file, f"{kind} file")
    with cli_context(write=True) as ctx:
        s = ctx
        if kind == "labs":
            rows = record_labs(s, data)
            grade = gettext("{test} grade {grade}")
            return ", ".join(
                grade.format(test=label("lab", r.analyte), grade=r.ctcae_grade) for r in rows
            )
        if kind == "ae":
            ae = record_adverse_event(s, data)
            return gettext("adverse event {id}: {term} grade {grade}").format(
                id=ae.id, term=ae.term, grade=ae.grade
            )
        if kind == "assessment":
            ta = record_assessment(s, data)
            return gettext("assessment {id}: {n} lesions, targets {sum} mm").format(
                id=ta.id, n=format_number(len(ta.lesions)), sum=format_number(ta.target_sum_mm)
            )
        q = record_questionnaire(s, data)
        return gettext("{instrument} {timepoint} scored: {scores}").format(
            instrument=q.instrument, timepoint=q.timepoint, scores=q.scores_json
        )


@record_app.command("labs")
@handle_errors
def record_labs_cmd(file: Path = typer.Argument(...)) -> None:
    """Record laboratory results (graded by CTCAE v5.0)."""
    console.print(_record_file("labs", file))


@record_app.command("ae")
@handle_errors
def record_ae_cmd(file: Path = typer.Argument(...)) -> None:
    """Record an adverse event (CTCAE term, grade, seriousness, relatedness, outcome)."""
    console.print(_record_file("ae", file))


@record_app.command("assessment")
@handle_errors
def record_assessment_cmd(file: Path = typer.Argument(...)) -> None:
    """Record a tumour assessment and its lesion measurements."""
    console.print(_record_file("assessment", file))


@record_app.command("qol")
@handle_errors
def record_qol_cmd(file: Path = typer.Argument(...)) -> None:
    """Record a QoL questionnaire (scored at entry)."""
    console.print(_record_file("qol", file))


def register(root: typer.Typer) -> None:
    from reluth.clinical.cli import add_commands  # record conmed, medical-history, ...

    add_commands(record_app)
    root.add_typer(centres_app, name="centres")
    root.add_typer(patients_app, name="patients")
    root.add_typer(record_app, name="record")
