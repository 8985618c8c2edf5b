"""Correction pages for saved data (laboratory results, adverse events, Lutathera
administrations, visit dates, inclusion dates, the pre-randomization assessment, QoL answers,
central-read lesions) and the visit-recording page.

Every correction needs a reason: the route opens the audited unit of work with the reason typed
in the form, the domain service checks what may change and the rules of entry again, and the
audit trail keeps old value, new value, who and why (shown on the audit page). A refused form
comes back with every typed value and the message next to the field it names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.errors import ReluthError
from reluth.patients import service as patients
from reluth.qol import scoring
from reluth.qol import service as qol
from reluth.records import views
from reluth.response import recist
from reluth.response import service as review
from reluth.safety import service as safety
from reluth.safety.records import OUTCOMES, RELATEDNESS
from reluth.treatment import service as treatment
from reluth.values import parse_date
from reluth.web.deps import READ, WHO, Auth, RecordId, audited, patient_for, today
from reluth.web.pages import render
from reluth.web.trial_pages import _go, _remember_form

router = APIRouter(include_in_schema=False)

#: Cycle numbers in a URL (the protocol file says which exist).
CycleNumber = Annotated[int, Path(ge=1, le=99, description="cycle number")]
#: Visit codes of the protocol schedule in a URL (TA-W08, LAB-W00, FU-M12, EOS, C3).
VisitCode = Annotated[str, Path(pattern=r"^[A-Z0-9-]{1,16}$", description="visit code")]


@dataclass(frozen=True)
class Field:
    """One input of a correction form (presentation only: the service validates)."""

    name: str
    label: str
    kind: str = "text"  # text | date | time | decimal | select | checkbox | textarea
    options: tuple[tuple[str, str], ...] = ()
    hint: str = ""


def _options(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((v, v.replace("_", " ")) for v in values)


def _error_field(exc: ReluthError | None) -> str | None:
    """The form input an error belongs to: the last part of the field it names
    (``adverse_event.grade`` -> ``grade``, ``platelets.lln`` -> ``lln``); a refused
    precondition may name one too (``overall_response``)."""
    field = getattr(exc, "field", None) if isinstance(exc, ReluthError) else None
    if isinstance(field, str) and field:
        return field.rsplit(".", 1)[-1]
    return None


def _edit_page(
    request: Request,
    who: Auth,
    *,
    code: str,
    heading: str,
    facts: list[str],
    action: str,
    back: str,
    fields: list[Field],
    values: Mapping[str, Any],
    error: ReluthError | None = None,
    preview_url: str | None = None,
    preview: dict[str, Any] | None = None,
    error_field: Callable[[ReluthError | None], str | None] = _error_field,
    patient_link: str | None = None,
) -> HTMLResponse:
    return render(
        request,
        "edit.html",
        {
            "who": who,
            "code": code,
            "heading": heading,
            "facts": facts,
            "action": action,
            "back": back,
            "fields": fields,
            "field_names": [f.name for f in fields] + ["reason"],
            "values": values,
            "error": error,
            "error_field": error_field(error),
            "patient_link": patient_link,
            "preview_url": preview_url,
            "preview": preview or {},
        },
        status_code=error.http_status if error else 200,
    )


def _posted(request: Request, fields: list[Field]) -> dict[str, str]:
    form: dict[str, str] = request.state.posted
    return {f.name: form.get(f.name, "") for f in fields} | {"reason": form.get("reason", "")}


def _save(
    request: Request,
    who: Auth,
    form: dict[str, str],
    change: Callable[[Ctx], Any],
) -> ReluthError | None:
    """Run one correction in the audited unit of work with the typed reason; the error, if
    the service refused it (nothing is written then)."""
    try:
        with audited(request, who, reason=form.get("reason")) as w:
            change(w)
    except ReluthError as exc:
        return exc
    return None


# --- laboratory results ------------------------------------------------------------------


def _lab_fields(row: Any) -> list[Field]:
    return [
        Field("value", f"Value ({row.unit})", "decimal"),
        Field("date", "Sample date", "date"),
        Field(
            "uln",
            f"Upper limit of normal ({row.canonical_unit})",
            "decimal",
            hint="stored with the result",
        ),
        Field(
            "lln",
            f"Lower limit of normal ({row.unit})",
            "decimal",
            hint="not stored: give it again if the grade depends on it",
        ),
        Field(
            "baseline",
            f"Baseline value ({row.unit})",
            "decimal",
            hint="not stored: give it again if the grade depends on it",
        ),
    ]


def _lab_changes(form: Mapping[str, str]) -> dict[str, str]:
    return {k: form.get(k, "") for k in safety.LAB_EDITABLE}


def _lab_preview(ctx: Ctx, code: str, lab_id: int, form: Mapping[str, str]) -> dict[str, Any]:
    try:
        return {"graded": safety.preview_lab_edit(ctx, code, lab_id, _lab_changes(form))}
    except ReluthError as exc:
        return {"error": exc.message}


def _lab_page(
    request: Request,
    who: Auth,
    ctx: Ctx,
    code: str,
    lab_id: int,
    values: Mapping[str, str],
    error: ReluthError | None = None,
) -> HTMLResponse:
    row = safety.get_lab(ctx, code, lab_id)
    base = f"/patients/{code}/labs/{lab_id}"
    return _edit_page(
        request,
        who,
        code=code,
        heading=f"Correct laboratory result: {row.analyte}",
        facts=[
            f"{row.analyte} of {row.sample_date}",
            f"saved value {safety.lab_edit_form(row)['value']} {row.unit}",
            "no CTCAE grade" if row.ctcae_grade is None else f"CTCAE grade {row.ctcae_grade}",
        ],
        action=f"{base}/edit",
        back=f"/patients/{code}#labs",
        fields=_lab_fields(row),
        values=values,
        error=error,
        preview_url=f"{base}/grade",
        preview=_lab_preview(ctx, code, lab_id, values),
    )


@router.get("/patients/{code}/labs/{lab_id}/edit", response_class=HTMLResponse)
def lab_edit_form(
    request: Request,
    code: str,
    lab_id: RecordId,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient = patient_for(ctx, code, safety.edit_lab)
    code = patient.patient_code
    values = safety.lab_edit_form(safety.get_lab(ctx, code, lab_id))
    return _lab_page(request, who, ctx, code, lab_id, values)


@router.post("/patients/{code}/labs/{lab_id}/grade", response_class=HTMLResponse)
async def lab_edit_grade(
    request: Request,
    code: str,
    lab_id: RecordId,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    """The CTCAE grade the correction would give, as the value is typed (nothing stored)."""
    patient = patient_for(ctx, code, safety.edit_lab)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    preview = _lab_preview(ctx, patient.patient_code, lab_id, form)
    return render(request, "_lab_grade.html", {"graded": None, "error": None, **preview})


@router.post("/patients/{code}/labs/{lab_id}/edit", dependencies=[Depends(_remember_form)])
def lab_edit_save(
    request: Request,
    code: str,
    lab_id: RecordId,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, safety.edit_lab)
    code = patient.patient_code
    row = safety.get_lab(ctx, code, lab_id)
    form = _posted(request, _lab_fields(row))
    error = _save(
        request,
        who,
        form,
        lambda s: safety.edit_lab(s, code, lab_id, _lab_changes(form)),
    )
    if error is not None:
        return _lab_page(request, who, ctx, code, lab_id, form, error)
    return _go(code, "#labs")


# --- adverse events ----------------------------------------------------------------------


AE_FIELDS = [
    Field("term", "CTCAE term"),
    Field("grade", "Grade", "select", _options(("1", "2", "3", "4", "5"))),
    Field(
        "serious",
        "Serious (SAE: reported to pharmacovigilance within the protocol's deadline)",
        "checkbox",
    ),
    Field("relatedness", "Relatedness to Lutathera", "select", _options(RELATEDNESS)),
    Field("outcome", "Outcome", "select", _options(OUTCOMES)),
    Field("onset_date", "Onset date", "date"),
    Field("resolution_date", "Resolution date", "date", hint="blank if not resolved"),
    Field(
        "awareness_date",
        "Date the site became aware",
        "date",
        hint="required for a serious event: starts the reporting clock",
    ),
    Field(
        "awareness_time",
        "Time the site became aware (site local time)",
        "time",
        hint="HH:MM; makes the reporting clock exact (without it: from the start of that day)",
    ),
    Field("description", "Description", "textarea"),
]


def _ae_form_values(saved: Mapping[str, Any]) -> dict[str, str]:
    """Saved values as the form shows them (checkbox ``yes``, blanks for none)."""
    out = {k: "" if v is None else str(v) for k, v in saved.items()}
    out["serious"] = "yes" if saved.get("serious") else ""
    return out


def _ae_changes(form: Mapping[str, str]) -> dict[str, Any]:
    """Form text as the service takes it: grade a number, serious a boolean, blank = none."""
    changes: dict[str, Any] = {}
    for f in AE_FIELDS:
        text = form.get(f.name, "").strip()
        changes[f.name] = text or None
    changes["serious"] = form.get("serious") == "yes"
    grade = changes["grade"]
    if isinstance(grade, str) and grade.isascii() and grade.isdigit():
        changes["grade"] = int(grade)
    return changes


def _ae_page(
    request: Request,
    who: Auth,
    ctx: Ctx,
    code: str,
    ae_id: int,
    values: Mapping[str, str],
    error: ReluthError | None = None,
) -> HTMLResponse:
    row = safety.get_adverse_event(ctx, code, ae_id)
    return _edit_page(
        request,
        who,
        code=code,
        heading=f"Correct adverse event: {row.term}",
        facts=[f"onset {row.onset_date}", f"grade {row.grade}"]
        + (["serious"] if row.serious else []),
        action=f"/patients/{code}/adverse-events/{ae_id}/edit",
        back=f"/patients/{code}#adverse-events",
        fields=AE_FIELDS,
        values=values,
        error=error,
    )


@router.get("/patients/{code}/adverse-events/{ae_id}/edit", response_class=HTMLResponse)
def adverse_event_edit_form(
    request: Request,
    code: str,
    ae_id: RecordId,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient = patient_for(ctx, code, safety.edit_adverse_event)
    code = patient.patient_code
    saved = safety.adverse_event_form(safety.get_adverse_event(ctx, code, ae_id))
    return _ae_page(request, who, ctx, code, ae_id, _ae_form_values(saved))


@router.post("/patients/{code}/adverse-events/{ae_id}/edit", dependencies=[Depends(_remember_form)])
def adverse_event_edit_save(
    request: Request,
    code: str,
    ae_id: RecordId,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, safety.edit_adverse_event)
    code = patient.patient_code
    safety.get_adverse_event(ctx, code, ae_id)  # 404 before anything else
    form = _posted(request, AE_FIELDS)
    error = _save(
        request,
        who,
        form,
        lambda s: safety.edit_adverse_event(s, code, ae_id, _ae_changes(form)),
    )
    if error is not None:
        return _ae_page(request, who, ctx, code, ae_id, form, error)
    return _go(code, "#adverse-events")


# --- Lutathera administrations (treatment: never for blinded roles) ---------------------

CYCLE_FIELDS = [
    Field("administered_on", "Date given", "date"),
    Field("activity_gbq", "Activity (GBq)", "decimal"),
    Field("lot", "Lot"),
]


def _cycle_page(
    request: Request,
    who: Auth,
    code: str,
    cycle: int,
    values: Mapping[str, str],
    error: ReluthError | None = None,
) -> HTMLResponse:
    return _edit_page(
        request,
        who,
        code=code,
        heading=f"Correct Lutathera administration: cycle {cycle}",
        facts=[],
        action=f"/patients/{code}/cycles/{cycle}/edit",
        back=f"/patients/{code}#cycles",
        fields=CYCLE_FIELDS,
        values=values,
        error=error,
    )


@router.get("/patients/{code}/cycles/{cycle}/edit", response_class=HTMLResponse)
def cycle_edit_form(
    request: Request,
    code: str,
    cycle: CycleNumber,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient = patient_for(ctx, code, treatment.edit_cycle)
    code = patient.patient_code
    values = treatment.cycle_edit_form(treatment.get_cycle(ctx, code, cycle))
    return _cycle_page(request, who, code, cycle, values)


@router.post("/patients/{code}/cycles/{cycle}/edit", dependencies=[Depends(_remember_form)])
def cycle_edit_save(
    request: Request,
    code: str,
    cycle: CycleNumber,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, treatment.edit_cycle)
    code = patient.patient_code
    treatment.get_cycle(ctx, code, cycle)  # 404 before anything else
    form = _posted(request, CYCLE_FIELDS)
    changes = {f.name: form[f.name] for f in CYCLE_FIELDS}
    error = _save(
        request,
        who,
        form,
        lambda s: treatment.edit_cycle(s, code, cycle, changes),
    )
    if error is not None:
        return _cycle_page(request, who, code, cycle, form, error)
    return _go(code, "#cycles")


# --- visits: record the actual date, see the window status, correct the date ------------

VISIT_FIELDS = [Field("visit_date", "Visit date", "date")]


def _visit_page(
    request: Request,
    who: Auth,
    ctx: Ctx,
    code: str,
    visit_code: str,
    *,
    saved: bool = False,
    values: Mapping[str, str] | None = None,
    error: ReluthError | None = None,
) -> HTMLResponse:
    patient, visit = views.visible_visit(ctx, code, visit_code, Action.READ)
    return render(
        request,
        "visit.html",
        {
            "who": who,
            "code": patient.patient_code,
            "v": visit,
            "saved": saved,
            "can_write": who.actor.may(Action.WRITE, Resource.VISIT, patient.centre_id),
            "values": values or {"visit_date": today(request).isoformat()},
            "error": error,
            "error_field": _error_field(error),
        },
        status_code=error.http_status if error else 200,
    )


@router.get("/patients/{code}/visits/{visit_code}", response_class=HTMLResponse)
def visit_page(
    request: Request,
    code: str,
    visit_code: VisitCode,
    saved: bool = False,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    """One planned visit: its window, the date recorded with the window status, or the form to
    record it."""
    return _visit_page(request, who, ctx, code, visit_code, saved=saved)


@router.post("/patients/{code}/visits", dependencies=[Depends(_remember_form)])
def visit_record(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    form: dict[str, str] = request.state.posted
    visit_code = form.get("visit_code", "")
    patient, _visit = views.visible_visit(ctx, code, visit_code, Action.WRITE)
    code = patient.patient_code
    try:
        day = parse_date(form.get("visit_date", ""), "visit_date")
        with audited(request, who) as w:
            treatment.record_visit(w, code, visit_code, day)
    except ReluthError as exc:
        return _visit_page(
            request,
            who,
            ctx,
            code,
            visit_code,
            values={"visit_date": form.get("visit_date", "")},
            error=exc,
        )
    return RedirectResponse(f"/patients/{code}/visits/{visit_code}?saved=true", status_code=303)


def _visit_edit_page(
    request: Request,
    who: Auth,
    code: str,
    visit_code: str,
    values: Mapping[str, str],
    error: ReluthError | None = None,
) -> HTMLResponse:
    return _edit_page(
        request,
        who,
        code=code,
        heading=f"Correct visit date: {visit_code}",
        facts=[],
        action=f"/patients/{code}/visits/{visit_code}/edit",
        back=f"/patients/{code}/visits/{visit_code}",
        fields=VISIT_FIELDS,
        values=values,
        error=error,
    )


@router.get("/patients/{code}/visits/{visit_code}/edit", response_class=HTMLResponse)
def visit_edit_form(
    request: Request,
    code: str,
    visit_code: VisitCode,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient, visit = views.visible_visit(ctx, code, visit_code, Action.WRITE)
    if visit.actual_date is None:
        return _visit_page(request, who, ctx, patient.patient_code, visit_code)
    values = {"visit_date": visit.actual_date.isoformat()}
    return _visit_edit_page(request, who, patient.patient_code, visit_code, values)


@router.post("/patients/{code}/visits/{visit_code}/edit", dependencies=[Depends(_remember_form)])
def visit_edit_save(
    request: Request,
    code: str,
    visit_code: VisitCode,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient, _visit = views.visible_visit(ctx, code, visit_code, Action.WRITE)
    code = patient.patient_code
    form = _posted(request, VISIT_FIELDS)
    error = _save(
        request,
        who,
        form,
        lambda s: treatment.edit_visit(s, code, visit_code, {"visit_date": form["visit_date"]}),
    )
    if error is not None:
        return _visit_edit_page(request, who, code, visit_code, form, error)
    return RedirectResponse(f"/patients/{code}/visits/{visit_code}?saved=true", status_code=303)


# --- inclusion dates ------------------------------------------------------------------------

INCLUSION_FIELDS = [
    Field("consent_date", "Date informed consent signed", "date"),
    Field("inclusion_date", "Inclusion date", "date", hint="on or before the first cycle"),
]


def _inclusion_page(
    request: Request,
    who: Auth,
    code: str,
    values: Mapping[str, str],
    error: ReluthError | None = None,
) -> HTMLResponse:
    return _edit_page(
        request,
        who,
        code=code,
        heading="Correct the inclusion",
        facts=[],
        action=f"/patients/{code}/inclusion/edit",
        back=f"/patients/{code}#inclusion",
        fields=INCLUSION_FIELDS,
        values=values,
        error=error,
    )


@router.get("/patients/{code}/inclusion/edit", response_class=HTMLResponse)
def inclusion_edit_form(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient = patient_for(ctx, code, patients.edit_inclusion)
    code = patient.patient_code
    values = patients.inclusion_edit_form(patients.get_inclusion(ctx, code))
    return _inclusion_page(request, who, code, values)


@router.post("/patients/{code}/inclusion/edit", dependencies=[Depends(_remember_form)])
def inclusion_edit_save(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, patients.edit_inclusion)
    code = patient.patient_code
    patients.get_inclusion(ctx, code)  # 404 before anything else
    form = _posted(request, INCLUSION_FIELDS)
    changes = {f.name: form[f.name] for f in INCLUSION_FIELDS}
    error = _save(request, who, form, lambda s: patients.edit_inclusion(s, code, changes))
    if error is not None:
        return _inclusion_page(request, who, code, form, error)
    return _go(code, "#inclusion")


# --- pre-randomization assessment ----------------------------------------------------------

PRE_FIELDS = [
    Field("assessment_date", "Assessment date", "date"),
    Field(
        "overall_response",
        "Overall response (RECIST 1.1)",
        "select",
        _options(patients.RESPONSES),
        hint="radiological progression follows it (PD); refused once the patient is randomized",
    ),
    Field("comment", "Comment", "textarea"),
]


def _pre_page(
    request: Request,
    who: Auth,
    ctx: Ctx,
    code: str,
    values: Mapping[str, str],
    error: ReluthError | None = None,
) -> HTMLResponse:
    row = patients.get_pre_randomization(ctx, code)
    progression = "radiological progression" if row.radiological_progression else "no progression"
    return _edit_page(
        request,
        who,
        code=code,
        heading="Correct the pre-randomization assessment",
        facts=[f"saved {row.assessment_date}: {row.overall_response or ''} ({progression})"],
        action=f"/patients/{code}/pre-randomization/edit",
        back=f"/patients/{code}#pre",
        fields=PRE_FIELDS,
        values=values,
        error=error,
    )


@router.get("/patients/{code}/pre-randomization/edit", response_class=HTMLResponse)
def pre_randomization_edit_form(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient = patient_for(ctx, code, patients.edit_pre_randomization)
    code = patient.patient_code
    values = patients.pre_randomization_edit_form(patients.get_pre_randomization(ctx, code))
    return _pre_page(request, who, ctx, code, values)


@router.post("/patients/{code}/pre-randomization/edit", dependencies=[Depends(_remember_form)])
def pre_randomization_edit_save(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, patients.edit_pre_randomization)
    code = patient.patient_code
    patients.get_pre_randomization(ctx, code)  # 404 before anything else
    form = _posted(request, PRE_FIELDS)
    changes = {f.name: form[f.name] for f in PRE_FIELDS}
    error = _save(
        request,
        who,
        form,
        lambda s: patients.edit_pre_randomization(s, code, changes),
    )
    if error is not None:
        return _pre_page(request, who, ctx, code, form, error)
    return _go(code, "#pre")


# --- QoL questionnaires: item answers re-scored by the QoL engine -------------------------


def _qol_fields(inst: scoring.Instrument) -> list[Field]:
    fields = [Field("completed_on", "Date completed", "date")]
    for number, item in sorted(inst.items.items()):
        answers = tuple((str(a), str(a)) for a in range(item.min, item.max + 1))
        fields.append(
            Field(
                f"item_{number}",
                f"Item {number}: {item.label} ({item.min}-{item.max})",
                "select",
                (("", "missing"), *answers),
            )
        )
    return fields


def _qol_error_field(exc: ReluthError | None) -> str | None:
    """The engine names an item ``items.29``; its input is ``item_29``."""
    field = getattr(exc, "field", None)
    if isinstance(field, str) and field.startswith("items."):
        return "item_" + field.removeprefix("items.")
    return _error_field(exc)


def _qol_form_values(saved: Mapping[str, Any]) -> dict[str, str]:
    items: Mapping[str, int] = saved["items"]
    return {"completed_on": str(saved["completed_on"])} | {
        f"item_{n}": str(a) for n, a in items.items()
    }


def _qol_page(
    request: Request,
    who: Auth,
    ctx: Ctx,
    code: str,
    qol_id: int,
    values: Mapping[str, str],
    error: ReluthError | None = None,
) -> HTMLResponse:
    row = qol.get_questionnaire(ctx, code, qol_id)
    shown = views.qol_row(row)
    scores = " · ".join(f"{k} {'–' if v is None else v}" for k, v in shown.scales.items())
    return _edit_page(
        request,
        who,
        code=code,
        heading=f"Correct questionnaire: {row.instrument} at {row.timepoint}",
        facts=[f"completed {row.completed_on}", f"saved scores: {scores}"],
        action=f"/patients/{code}/qol/{qol_id}/edit",
        back=f"/patients/{code}#qol",
        fields=_qol_fields(scoring.instrument(row.instrument)),
        values=values,
        error=error,
        error_field=_qol_error_field,
    )


@router.get("/patients/{code}/qol/{qol_id}/edit", response_class=HTMLResponse)
def qol_edit_form(
    request: Request,
    code: str,
    qol_id: RecordId,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient = patient_for(ctx, code, qol.edit_questionnaire)
    code = patient.patient_code
    saved = qol.questionnaire_edit_form(qol.get_questionnaire(ctx, code, qol_id))
    return _qol_page(request, who, ctx, code, qol_id, _qol_form_values(saved))


@router.post("/patients/{code}/qol/{qol_id}/edit", dependencies=[Depends(_remember_form)])
def qol_edit_save(
    request: Request,
    code: str,
    qol_id: RecordId,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, qol.edit_questionnaire)
    code = patient.patient_code
    row = qol.get_questionnaire(ctx, code, qol_id)  # 404 before anything else
    fields = _qol_fields(scoring.instrument(row.instrument))
    posted: dict[str, str] = request.state.posted
    form = _posted(request, fields)
    changes: dict[str, Any] = {
        "completed_on": form["completed_on"],
        "items": {
            f.name.removeprefix("item_"): form[f.name] or None
            for f in fields
            if f.name.startswith("item_") and f.name in posted
        },
    }
    error = _save(
        request,
        who,
        form,
        lambda s: qol.edit_questionnaire(s, code, qol_id, changes),
    )
    if error is not None:
        return _qol_page(request, who, ctx, code, qol_id, form, error)
    return _go(code, "#qol")


# --- central reads (blinded reviewer: nothing about the arm or treatment) ------------------

_STATUS_OPTIONS = (("", "measured (diameter)"), *_options(tuple(recist.LesionStatus)))


def _read_fields(read: Any) -> list[Field]:
    fields: list[Field] = []
    for m in read.lesions:
        if m.kind == "new":
            continue
        what = f"{m.lesion_id} ({m.organ}, {m.kind.replace('_', '-')}{', node' if m.lymph_node else ''})"
        fields.append(Field(f"diameter_{m.lesion_id}", f"{what}: diameter (mm)", "decimal"))
        fields.append(
            Field(f"status_{m.lesion_id}", f"{m.lesion_id}: status", "select", _STATUS_OPTIONS)
        )
    if read.timepoint != "baseline":
        fields.append(
            Field("new_lesions", "New lesions", "select", _options(tuple(recist.NewLesions)))
        )
    return fields


def _read_error_field(exc: ReluthError | None) -> str | None:
    """``lesions.T1.diameter_mm`` -> ``diameter_T1``; ``lesions.T1`` -> ``diameter_T1``."""
    field = getattr(exc, "field", None)
    if isinstance(field, str) and field.startswith("lesions."):
        lid, _, attr = field.removeprefix("lesions.").partition(".")
        return f"status_{lid}" if attr == "status" else f"diameter_{lid}"
    return _error_field(exc)


def _read_form_values(saved: Mapping[str, Any]) -> dict[str, str]:
    values = {"new_lesions": str(saved["new_lesions"])}
    for lid, m in saved["lesions"].items():
        values[f"diameter_{lid}"] = m["diameter_mm"] or ""
        values[f"status_{lid}"] = m["status"] or ""
    return values


def _read_page(
    request: Request,
    who: Auth,
    ctx: Ctx,
    code: str,
    read_id: int,
    values: Mapping[str, str],
    error: ReluthError | None = None,
) -> HTMLResponse:
    read = review.get_central_read(ctx, code, read_id)
    saved = "baseline" if read.timepoint == "baseline" else (read.overall_response or "")
    total = "" if read.target_sum_mm is None else f", sum {read.target_sum_mm} mm"
    return _edit_page(
        request,
        who,
        code=code,
        heading=f"Correct central read: {read.timepoint}",
        facts=[f"{read.modality} of {read.assessment_date}", f"saved: {saved}{total}"],
        action=f"/review/{code}/reads/{read_id}/edit",
        back=f"/review/{code}",
        fields=_read_fields(read),
        values=values,
        error=error,
        error_field=_read_error_field,
        patient_link=f"/review/{code}",
    )


@router.get("/review/{code}/reads/{read_id}/edit", response_class=HTMLResponse)
def central_read_edit_form(
    request: Request,
    code: str,
    read_id: RecordId,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient = patient_for(ctx, code, review.edit_central_read)
    code = patient.patient_code
    saved = review.read_edit_form(review.get_central_read(ctx, code, read_id))
    return _read_page(request, who, ctx, code, read_id, _read_form_values(saved))


@router.post("/review/{code}/reads/{read_id}/edit", dependencies=[Depends(_remember_form)])
def central_read_edit_save(
    request: Request,
    code: str,
    read_id: RecordId,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, review.edit_central_read)
    code = patient.patient_code
    read = review.get_central_read(ctx, code, read_id)  # 404 before anything else
    fields = _read_fields(read)
    posted: dict[str, str] = request.state.posted
    form = _posted(request, fields)
    lesions: dict[str, dict[str, str | None]] = {}
    for lid in review.read_edit_form(read)["lesions"]:
        keys = (f"diameter_{lid}", f"status_{lid}")
        if any(k in posted for k in keys):
            lesions[lid] = {"diameter_mm": form[keys[0]] or None, "status": form[keys[1]] or None}
    changes: dict[str, Any] = {"lesions": lesions}
    if "new_lesions" in posted and read.timepoint != "baseline":
        changes["new_lesions"] = form["new_lesions"]
    error = _save(
        request,
        who,
        form,
        lambda s: review.edit_central_read(s, code, read_id, changes),
    )
    if error is not None:
        return _read_page(request, who, ctx, code, read_id, form, error)
    return RedirectResponse(f"/review/{code}", status_code=303)
