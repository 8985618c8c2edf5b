"""Commands: ``reluth protocol show``, ``reluth eligibility check|schema``, ``reluth schedule``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from reluth.cli_support import (
    command_trial,
    console,
    handle_errors,
    load_json,
    parse_date,
    print_json,
    to_jsonable,
)
from reluth.errors import ValidationError

if TYPE_CHECKING:
    from reluth.protocol.definition import Protocol
    from reluth.protocol.eligibility import EligibilityResult
    from reluth.protocol.strata import Strata

protocol_app = typer.Typer(help="The trial definition.", no_args_is_help=True)
eligibility_app = typer.Typer(help="Eligibility of a patient file.", no_args_is_help=True)

EXIT_ELIGIBLE, EXIT_NOT_ELIGIBLE, EXIT_INCOMPLETE = 0, 1, 3
_STYLE = {"met": "green", "not_met": "red", "unknown": "yellow"}


@protocol_app.command("show")
@handle_errors
def protocol_show(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    path: Path | None = typer.Option(None, "--file", help="Another protocol YAML."),
) -> None:
    """Print the protocol definition, marking the values that are assumptions."""
    from reluth.protocol.definition import load_protocol

    p = load_protocol(path) if path else command_trial().protocol
    if as_json:
        print_json({**p.model_dump(), "assumptions": p.assumptions()})
        return
    from reluth.cli_support import table
    from reluth.i18n import N_, format_number, get_locale, gettext

    def number(value: Any) -> str:
        if isinstance(value, bool):
            return gettext("yes") if value else gettext("no")
        return "-" if value is None else format_number(value)

    console.print(f"[bold]{p.label}[/] - {p.registration} - {p.version_note}")
    console.print(gettext("{title} (sponsor: {sponsor})").format(title=p.title, sponsor=p.sponsor))
    t = table(
        N_("arm"),
        N_("treatment"),
        N_("cycles"),
        N_("activity (GBq)"),
        N_("interval (weeks)"),
        title=gettext("Arms ({allocation})").format(allocation=p.allocation),
    )
    for a in p.arms:
        t.add_row(
            a.code, a.label, str(a.cycles), number(a.activity_gbq), number(a.cycle_interval_weeks)
        )
    console.print(t)
    s = p.sample_size
    console.print(
        gettext(
            "Sample size: {randomized} randomized ({per_arm} per arm), {included} included; "
            "DCR {control} vs {experimental}, alpha {alpha} two-sided, power {power}"
        ).format(
            randomized=format_number(s.randomized),
            per_arm=format_number(s.per_arm),
            included=format_number(s.included),
            control=format_number(s.dcr_control),
            experimental=format_number(s.dcr_experimental),
            alpha=format_number(s.alpha_two_sided),
            power=format_number(s.power),
        )
    )
    t = table(N_("factor"), N_("levels"), title=N_("Stratification"))
    for f in p.stratification:
        t.add_row(f.label, ", ".join(f"{k}: {v}" for k, v in f.labels.items()))
    console.print(t)
    t = table(N_("parameter"), N_("value"), title=N_("Eligibility thresholds"))
    for k, v in p.eligibility.model_dump(exclude={"criteria"}).items():
        t.add_row(k, ", ".join(v) if isinstance(v, tuple | list) else number(v))
    console.print(t)
    t = table(
        N_("id"),
        N_("kind"),
        N_("criterion (with the thresholds above)"),
        title=N_("Eligibility criteria"),
    )
    kinds = {"inclusion": N_("inclusion"), "exclusion": N_("exclusion")}
    for cid in p.eligibility.criteria.ids:
        kind = p.eligibility.kind_of(cid)
        t.add_row(cid, gettext(kinds.get(kind, kind)), p.eligibility.text(cid, get_locale()))
    console.print(t)
    t = table(N_("schedule item"), N_("value"), N_("assumption"), title=N_("Schedule"))
    yes = gettext("yes")
    for k, v in p.schedule.model_dump().items():
        assumed = isinstance(v, dict) and v.get("assumption", False)
        shown = {kk: vv for kk, vv in v.items() if kk != "assumption"} if isinstance(v, dict) else v
        t.add_row(k, json.dumps(to_jsonable(shown)), f"[yellow]{yes}[/]" if assumed else "")
    console.print(t)
    console.print(
        gettext(
            "[yellow]Assumptions[/] (not in the published protocol; edit the YAML): {names}"
        ).format(names=", ".join(p.assumptions()))
    )


def _strata_or_none(patient: Any, protocol: Protocol) -> tuple[Strata | None, str | None]:
    from reluth.protocol.strata import derive_strata

    try:
        return derive_strata(patient, protocol), None
    except ValidationError as exc:
        return None, exc.message


def _render(
    result: EligibilityResult,
    strata: Strata | None,
    strata_error: str | None,
    protocol: Protocol | None = None,
) -> None:
    """The verdict for people, in the language of ``LANG``: each criterion's wording from the
    protocol file, its result and reason in that language."""
    from reluth.cli_support import table
    from reluth.i18n import N_, get_locale, gettext
    from reluth.i18n.vocabulary import label

    stage = gettext("inclusion") if result.stage == "inclusion" else gettext("randomization")
    title = gettext("{patient} - {stage} stage").format(patient=result.patient_id, stage=stage)
    t = table(N_("id"), N_("criterion"), N_("result"), N_("reason"), title=title)
    criteria = None if protocol is None else protocol.eligibility
    for c in result.criteria:
        verdict = label("eligibility", c.result)
        if c.kind == "exclusion" and c.result == "met":
            verdict = gettext("applies (excluded)")
        elif c.kind == "exclusion" and c.result == "not_met":
            verdict = gettext("does not apply")
        text = c.text
        if criteria is not None and c.id in criteria.criteria.ids:
            text = criteria.text(c.id, get_locale())
        shown = c.message.render() if c.message else c.reason
        t.add_row(c.id, text, f"[{_STYLE[c.result]}]{verdict}[/]", shown)
    console.print(t)
    colour = {"eligible": "green", "not_eligible": "red", "incomplete": "yellow"}[result.status]
    status = f"[bold {colour}]{label('eligibility', result.status)}[/]"
    console.print(
        gettext("Status: {status} ({version})").format(
            status=status, version=result.protocol_version
        )
    )
    if strata is not None:
        shown_stratum = f"[bold]{strata.code}[/] {strata.as_dict()}"
        console.print(gettext("Stratum: {stratum}").format(stratum=shown_stratum))
    elif strata_error:
        console.print(gettext("Stratum: not derivable ({why})").format(why=strata_error))


def eligibility_payload(
    result: EligibilityResult, strata: Strata | None, strata_error: str | None
) -> dict[str, Any]:
    return {
        "patient_id": result.patient_id,
        "status": result.status,
        "stage": result.stage,
        "protocol_version": result.protocol_version,
        "criteria": to_jsonable(list(result.criteria)),
        "derived": result.derived,
        "strata": {**strata.as_dict(), "code": strata.code} if strata else None,
        "strata_error": strata_error,
    }


@eligibility_app.command("check")
def eligibility_check(
    patient_file: Path = typer.Argument(
        ..., help="Patient JSON file (see `reluth eligibility schema`)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    stage: str = typer.Option(
        "randomization", help="inclusion (before second PRRT) or randomization."
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Reference 'today' (YYYY-MM-DD) for date checks."
    ),
) -> None:
    """Check a patient file. Exit 0 eligible, 1 not eligible, 3 incomplete, 2 invalid input."""
    from reluth.protocol.eligibility import check_eligibility
    from reluth.protocol.patient import parse_patient

    @handle_errors
    def run() -> int:
        if stage not in ("inclusion", "randomization"):
            from reluth.i18n import N_
            from reluth.i18n.reasons import invalid

            raise invalid(
                "--stage",
                "unknown_stage",
                N_("unknown stage {value}"),
                ("inclusion", "randomization"),
                value=repr(stage),
            )
        trial = command_trial()
        today = parse_date(as_of, "--as-of") if as_of else trial.today()
        patient = parse_patient(load_json(patient_file, "patient file"), as_of=today)
        result = check_eligibility(patient, trial.protocol, stage=stage)  # type: ignore[arg-type]
        strata, strata_error = _strata_or_none(patient, trial.protocol)
        if as_json:
            print_json(eligibility_payload(result, strata, strata_error))
        else:
            _render(result, strata, strata_error, trial.protocol)
        return {"eligible": EXIT_ELIGIBLE, "not_eligible": EXIT_NOT_ELIGIBLE}.get(
            result.status, EXIT_INCOMPLETE
        )

    raise typer.Exit(run())


@eligibility_app.command("schema")
def eligibility_schema() -> None:
    """Print the JSON Schema of the patient file."""
    from reluth.protocol.patient import patient_json_schema

    print_json(patient_json_schema())


def _read_visits(path: Path) -> dict[str, dt.date]:
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid

    data = load_json(path, "visits file")
    pairs: list[tuple[str, Any]]
    if isinstance(data, dict):
        pairs = list(data.items())
    elif isinstance(data, list):
        pairs = []
        for i, item in enumerate(data):
            if not isinstance(item, dict) or "visit" not in item or "date" not in item:
                raise invalid(
                    f"visits.{i}", "not_an_object", N_("expected an object with `visit` and `date`")
                )
            pairs.append((str(item["visit"]), item["date"]))
    else:
        raise invalid(
            "visits",
            "not_an_object",
            N_("expected an object or a list"),
            ('{"TA-W08": "2025-03-03"}',),
        )
    return {str(code): parse_date(str(value), f"visits.{code}") for code, value in pairs}


@handle_errors
def schedule(
    randomized: str = typer.Option(..., "--randomized", help="Randomization date, YYYY-MM-DD."),
    arm: str = typer.Option(..., "--arm", help="An arm code (`reluth protocol show`)."),
    as_of: str | None = typer.Option(None, "--as-of", help="Classify visits as of this date."),
    visits: Path | None = typer.Option(
        None, "--visits", help='JSON: {"TA-W08": "2025-03-03", ...}'
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Planned visits with windows; with --as-of, each visit's window status."""
    from reluth.protocol.schedule import classify_visits, planned_visits

    start = parse_date(randomized, "--randomized")
    plan = planned_visits(start, arm, command_trial().protocol)
    from reluth.cli_support import table
    from reluth.i18n import N_, format_day, gettext
    from reluth.i18n.reasons import DAY, invalid

    if as_of is None and visits is not None:
        raise invalid(
            "--as-of",
            "required",
            N_("required with --visits"),
            N_("{placeholder}"),
            placeholder=DAY,
        )
    from reluth.i18n.vocabulary import label, visit_name

    def window(v: Any) -> str:
        return gettext("{start} to {end}").format(
            start=format_day(v.window_start), end=format_day(v.window_end)
        )

    if as_of is None:
        if as_json:
            print_json(plan)
            return
        assumed = gettext("(assumed)")
        t = table(
            N_("visit"), N_("kind"), N_("day"), N_("target"), N_("window"), N_("what"),
            title=gettext("Schedule - {arm} arm").format(arm=arm),
        )  # fmt: skip
        for v in plan:
            what = visit_name(v.code, v.label) + (f" [yellow]{assumed}[/]" if v.assumption else "")
            t.add_row(
                v.code,
                label("visit_kind", v.kind),
                str(v.day),
                format_day(v.target_date),
                window(v),
                what,
            )
        console.print(t)
        return
    ref = parse_date(as_of, "--as-of")
    actual = _read_visits(visits) if visits else {}
    statuses = classify_visits(plan, actual, ref)
    if as_json:
        print_json(
            [
                {
                    **to_jsonable(s.visit),
                    "actual_date": s.actual_date,
                    "status": s.status,
                    "days_from_target": s.days_from_target,
                }
                for s in statuses
            ]
        )
        return
    colours = {
        "in_window": "green",
        "early": "yellow",
        "late": "yellow",
        "missed": "red",
        "due": "cyan",
        "upcoming": "dim",
    }
    t = table(
        N_("visit"), N_("target"), N_("window"), N_("actual"), N_("status"),
        title=gettext("Visits as of {day}").format(day=format_day(ref)),
    )  # fmt: skip
    for s in statuses:
        t.add_row(
            s.visit.code,
            format_day(s.visit.target_date),
            window(s.visit),
            format_day(s.actual_date),
            f"[{colours[s.status]}]{label('visit_status', s.status)}[/]",
        )
    console.print(t)


def register(root: typer.Typer) -> None:
    root.add_typer(protocol_app, name="protocol")
    root.add_typer(eligibility_app, name="eligibility")
    root.command("schedule")(schedule)
