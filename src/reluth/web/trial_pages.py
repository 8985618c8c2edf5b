"""Pages of the trial itself: patients, screening with live eligibility, inclusion, cycles 1-2,
pre-randomization assessment, randomization with a confirmation step, laboratory results with
the CTCAE grade shown as typed, and the audit history. Routes parse, call a service or engine,
and render; the policy and the read models decide what is shown."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from reluth.auth import service as auth
from reluth.auth.policy import Action, Resource
from reluth.cli_support import parse_date
from reluth.errors import ReluthError, ValidationError
from reluth.patients import service as patients
from reluth.protocol.eligibility import check_eligibility
from reluth.protocol.patient import parse_patient
from reluth.queries import service as queries
from reluth.randomization import service as randomization
from reluth.safety import records as safety_records
from reluth.safety import service as safety
from reluth.web import screening_form
from reluth.web import trial_views as views
from reluth.web.deps import DB_SESSION, Auth, RecordId, audited, now, require, today
from reluth.web.pages import render

router = APIRouter(include_in_schema=False)


def _go(code: str, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/patients/{code}{anchor}", status_code=303)


# --- patient list and registration --------------------------------------------------------


@router.get("/patients", response_class=HTMLResponse)
def patient_list(
    request: Request,
    q: str = Query("", max_length=40, pattern=views.PATIENT_SEARCH),
    who: Auth = Depends(require(Action.READ, Resource.PATIENT)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    rows = views.patient_list(db, who.principal, q)
    centres = [c for c in auth.list_centres(db) if who.principal.sees_centre(c.id)]
    context = {
        "who": who,
        "rows": rows,
        "q": q,
        "centres": centres,
        "error": None,
        "form": {},
        "can_register": who.principal.can(Action.WRITE, Resource.PATIENT),
    }
    if request.headers.get("hx-request"):
        return render(request, "_patient_rows.html", context)
    return render(request, "patients.html", context)


@router.post("/patients")
def patient_register(
    request: Request,
    centre: str = Form(""),
    sex: str = Form(""),
    birth_year: str = Form(""),
    who: Auth = Depends(require(Action.WRITE, Resource.PATIENT)),
    db: Session = DB_SESSION,
) -> Response:
    try:
        target = patients.get_centre(db, centre)
        who.principal.require(Action.WRITE, Resource.PATIENT, target.id)
        year = None
        if birth_year.strip():
            if not birth_year.strip().isdigit():
                raise ValidationError("birth_year", f"{birth_year!r}", "a year, e.g. 1961")
            year = int(birth_year)
        with audited(request, who) as uow:
            patient = patients.register_patient(
                uow.session, centre, sex=sex or None, birth_year=year, today=today(request)
            )
            code = patient.patient_code
    except ReluthError as exc:
        rows = views.patient_list(db, who.principal)
        centres = [c for c in auth.list_centres(db) if who.principal.sees_centre(c.id)]
        form = {"centre": centre, "sex": sex, "birth_year": birth_year}
        return render(
            request,
            "patients.html",
            {
                "who": who,
                "rows": rows,
                "q": "",
                "centres": centres,
                "error": exc,
                "form": form,
                "can_register": True,
            },
            status_code=exc.http_status,
        )
    return _go(code)


# --- timeline -----------------------------------------------------------------------------


@router.get("/patients/{code}", response_class=HTMLResponse)
def patient_page(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.READ, Resource.PATIENT)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    t = views.timeline(db, who.principal, code, now(request))
    return render(request, "patient.html", {"who": who, "t": t, "today": today(request)})


async def _remember_form(request: Request) -> None:
    form = await request.form()
    request.state.posted = {k: v for k, v in form.items() if isinstance(v, str)}


# --- screening with live eligibility ------------------------------------------------------


def _screening_preview(form: dict[str, str], code: str, request: Request) -> dict[str, Any]:
    """The patient file posted (form fields, or a pasted JSON file if one was given) checked by
    the eligibility engine: ``{"data", "result"}``, or ``{"error", "errors"}`` with messages by
    form field."""
    text = form.get("patient_json", "").strip()
    try:
        if text:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                return {
                    "error": f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                    "errors": {},
                }
            if isinstance(data, dict):
                data.setdefault("patient_id", code)
                if data.get("patient_id") != code:
                    return {"error": f"patient_id: must be {code}", "errors": {}}
        else:
            data = screening_form.to_patient_file(form, code)
        result = check_eligibility(parse_patient(data, as_of=today(request)), stage="inclusion")
    except ReluthError as exc:
        return {"error": exc.message, "errors": screening_form.field_errors(exc)}
    return {"data": data, "result": result}


def _screening_page(
    request: Request,
    who: Auth,
    code: str,
    form: dict[str, str],
    preview: dict[str, Any],
    status: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "screening.html",
        {
            "who": who,
            "code": code,
            "text": form.get("patient_json", ""),
            "values": form,
            "errors": preview.get("errors", {}),
            "sections": screening_form.sections(),
            "preview": preview,
        },
        status_code=status,
    )


@router.get("/patients/{code}/screening", response_class=HTMLResponse)
def screening_page(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.WRITE, Resource.SCREENING)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    patient = views.visible_patient(db, who.principal, code, Resource.SCREENING, Action.WRITE)
    return _screening_page(request, who, patient.patient_code, {}, {})


@router.post(
    "/patients/{code}/screening/check",
    response_class=HTMLResponse,
    dependencies=[Depends(_remember_form)],
)
def screening_check(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.WRITE, Resource.SCREENING)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    patient = views.visible_patient(db, who.principal, code, Resource.SCREENING, Action.WRITE)
    preview = _screening_preview(request.state.posted, patient.patient_code, request)
    return render(request, "_eligibility.html", {"preview": preview})


@router.post("/patients/{code}/screening", dependencies=[Depends(_remember_form)])
def screening_save(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.WRITE, Resource.SCREENING)),
    db: Session = DB_SESSION,
) -> Response:
    patient = views.visible_patient(db, who.principal, code, Resource.SCREENING, Action.WRITE)
    form: dict[str, str] = request.state.posted
    preview = _screening_preview(form, patient.patient_code, request)
    if "error" in preview:
        return _screening_page(request, who, patient.patient_code, form, preview, status=422)
    with audited(request, who) as uow:
        patients.screen_patient(uow.session, preview["data"], today=today(request))
    return _go(code, "#screening")


# --- inclusion, second-PRRT cycles, pre-randomization assessment --------------------------


def _timeline_with_error(
    request: Request, who: Auth, db: Session, code: str, exc: ReluthError, form: str
) -> HTMLResponse:
    t = views.timeline(db, who.principal, code, now(request))
    return render(
        request,
        "patient.html",
        {
            "who": who,
            "t": t,
            "today": today(request),
            "error": exc,
            "error_form": form,
            "posted": dict(request.state.posted),
        },
        status_code=exc.http_status,
    )


@router.post("/patients/{code}/inclusion", dependencies=[Depends(_remember_form)])
def inclusion_save(
    request: Request,
    code: str,
    consent_date: str = Form(""),
    inclusion_date: str = Form(""),
    who: Auth = Depends(require(Action.WRITE, Resource.PATIENT)),
    db: Session = DB_SESSION,
) -> Response:
    patient = views.visible_patient(db, who.principal, code, Resource.PATIENT, Action.WRITE)
    try:
        consent = parse_date(consent_date, "consent_date") if consent_date else None
        included = parse_date(inclusion_date, "inclusion_date") if inclusion_date else None
        with audited(request, who) as uow:
            patients.include_patient(
                uow.session, patient.patient_code, consent, included, today=today(request)
            )
    except ReluthError as exc:
        return _timeline_with_error(request, who, db, code, exc, "inclusion")
    return _go(code, "#inclusion")


@router.post("/patients/{code}/cycles", dependencies=[Depends(_remember_form)])
def cycle_save(
    request: Request,
    code: str,
    cycle: str = Form(""),
    administered_on: str = Form(""),
    activity_gbq: str = Form(""),
    lot: str = Form(""),
    who: Auth = Depends(require(Action.WRITE, Resource.TREATMENT)),
    db: Session = DB_SESSION,
) -> Response:
    patient = views.visible_patient(db, who.principal, code, Resource.TREATMENT, Action.WRITE)
    try:
        if cycle not in ("1", "2", "3", "4"):
            raise ValidationError("cycle", f"{cycle!r}", "1, 2 (second PRRT), 3, 4")
        try:
            activity = Decimal(activity_gbq)
        except InvalidOperation:
            raise ValidationError(
                "activity_gbq", f"{activity_gbq!r}", "a number, e.g. 7.4"
            ) from None
        with audited(request, who) as uow:
            patients.record_cycle(
                uow.session,
                patient.patient_code,
                int(cycle),
                parse_date(administered_on, "administered_on"),
                activity,
                lot,
                today=today(request),
            )
    except ReluthError as exc:
        return _timeline_with_error(request, who, db, code, exc, "cycles")
    return _go(code, "#cycles")


@router.post("/patients/{code}/pre-randomization", dependencies=[Depends(_remember_form)])
def pre_randomization_save(
    request: Request,
    code: str,
    assessment_date: str = Form(""),
    overall_response: str = Form(""),
    comment: str = Form(""),
    who: Auth = Depends(require(Action.WRITE, Resource.LOCAL_ASSESSMENT)),
    db: Session = DB_SESSION,
) -> Response:
    patient = views.visible_patient(
        db, who.principal, code, Resource.LOCAL_ASSESSMENT, Action.WRITE
    )
    try:
        with audited(request, who) as uow:
            patients.record_pre_randomization(
                uow.session,
                patient.patient_code,
                parse_date(assessment_date, "assessment_date"),
                None,  # progression as the overall response says
                overall_response,
                comment or None,
                today=today(request),
            )
    except ReluthError as exc:
        return _timeline_with_error(request, who, db, code, exc, "pre")
    return _go(code, "#pre")


# --- randomization: check, confirm, result ------------------------------------------------


@router.get("/patients/{code}/randomize", response_class=HTMLResponse)
def randomize_confirm(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.WRITE, Resource.RANDOMIZATION)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    patient = views.visible_patient(db, who.principal, code, Resource.RANDOMIZATION, Action.WRITE)
    problem = None
    stratum = None
    try:
        stratum, _levels = randomization.check_preconditions(db, patient)
    except ReluthError as exc:
        problem = exc.message
    return render(
        request,
        "randomize.html",
        {
            "who": who,
            "code": code,
            "problem": problem,
            "stratum": stratum,
            "request_id": str(uuid.uuid4()),
            "result": None,
        },
    )


@router.post("/patients/{code}/randomize", response_class=HTMLResponse)
def randomize_do(
    request: Request,
    code: str,
    request_id: str = Form(""),
    confirm: str = Form(""),
    who: Auth = Depends(require(Action.WRITE, Resource.RANDOMIZATION)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    patient = views.visible_patient(db, who.principal, code, Resource.RANDOMIZATION, Action.WRITE)
    if confirm != "yes":
        raise ValidationError("confirm", "randomization was not confirmed", "tick the confirmation")
    with audited(request, who) as uow:
        result = randomization.randomize(
            uow.session, uow.actor, patient.patient_code, request_id, now=request.app.state.clock()
        )
    return render(
        request,
        "randomize.html",
        {
            "who": who,
            "code": code,
            "problem": None,
            "stratum": result.stratum,
            "request_id": request_id,
            "result": result,
        },
    )


# --- laboratory results with live CTCAE grade ---------------------------------------------


def _lab_raw(form: dict[str, str]) -> dict[str, Any]:
    raw: dict[str, Any] = {"test": form.get("test", ""), "unit": form.get("unit", "")}
    for key in ("value", "lln", "uln", "baseline"):
        text = form.get(key, "").strip()
        if text:
            raw[key] = text
    if form.get("date"):
        raw["date"] = form["date"]
    return raw


@router.post("/patients/{code}/labs/grade", response_class=HTMLResponse)
async def lab_grade_preview(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.WRITE, Resource.LAB)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    views.visible_patient(db, who.principal, code, Resource.LAB, Action.WRITE)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        graded = safety.preview_lab(_lab_raw(form)) if form.get("value") else None
        error = None
    except ReluthError as exc:
        graded, error = None, exc.message
    return render(request, "_lab_grade.html", {"graded": graded, "error": error})


@router.post("/patients/{code}/labs", dependencies=[Depends(_remember_form)])
def lab_save(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.WRITE, Resource.LAB)),
    db: Session = DB_SESSION,
) -> Response:
    patient = views.visible_patient(db, who.principal, code, Resource.LAB, Action.WRITE)
    try:
        with audited(request, who) as uow:
            safety.record_lab(
                uow.session, patient.patient_code, _lab_raw(request.state.posted), today(request)
            )
    except ReluthError as exc:
        return _timeline_with_error(request, who, db, code, exc, "labs")
    return _go(code, "#labs")


# --- adverse events and the SAE clock ----------------------------------------------------


@router.get("/adverse-events", response_class=HTMLResponse)
def adverse_events_page(
    request: Request,
    who: Auth = Depends(require(Action.READ, Resource.ADVERSE_EVENT)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    rows = views.adverse_events(db, who.principal, now(request))
    return render(request, "adverse_events.html", {"who": who, "rows": rows})


@router.post("/patients/{code}/adverse-events", dependencies=[Depends(_remember_form)])
def adverse_event_save(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.WRITE, Resource.ADVERSE_EVENT)),
    db: Session = DB_SESSION,
) -> Response:
    patient = views.visible_patient(db, who.principal, code, Resource.ADVERSE_EVENT, Action.WRITE)
    form: dict[str, str] = request.state.posted
    data: dict[str, Any] = {k: v for k, v in form.items() if v and k != "csrf_token"}
    data["patient_id"] = patient.patient_code
    data["serious"] = form.get("serious") == "yes"
    if "grade" in data:
        data["grade"] = int(data["grade"]) if data["grade"].isdigit() else data["grade"]
    try:
        with audited(request, who) as uow:
            safety_records.record_adverse_event(uow.session, data, today=today(request))
    except ReluthError as exc:
        return _timeline_with_error(request, who, db, code, exc, "ae")
    return _go(code, "#adverse-events")


# --- data queries ------------------------------------------------------------------------


@router.get("/queries", response_class=HTMLResponse)
def queries_page(
    request: Request,
    who: Auth = Depends(require(Action.READ, Resource.QUERY)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    rows = views.data_queries(db, who.principal)
    return render(request, "queries.html", {"who": who, "rows": rows})


@router.post("/patients/{code}/queries", dependencies=[Depends(_remember_form)])
def query_open(
    request: Request,
    code: str,
    field: str = Form(""),
    question: str = Form(""),
    who: Auth = Depends(require(Action.WRITE, Resource.QUERY)),
    db: Session = DB_SESSION,
) -> Response:
    patient = views.visible_patient(db, who.principal, code, Resource.QUERY, Action.WRITE)
    try:
        with audited(request, who) as uow:
            queries.open_query(
                uow.session,
                who.principal.username,
                patient.patient_code,
                field,
                question,
                now(request),
            )
    except ReluthError as exc:
        return _timeline_with_error(request, who, db, code, exc, "query")
    return _go(code, "#queries")


@router.post("/queries/{query_id}/answer")
def query_answer(
    request: Request,
    query_id: RecordId,
    answer: str = Form(""),
    who: Auth = Depends(require(Action.WRITE, Resource.QUERY_ANSWER)),
    db: Session = DB_SESSION,
) -> Response:
    views.visible_query(db, who.principal, query_id)
    with audited(request, who, reason=queries.answer_reason(query_id)) as uow:
        queries.answer_query(uow.session, who.principal.username, query_id, answer, now(request))
    return RedirectResponse("/queries", status_code=303)


@router.post("/queries/{query_id}/close")
def query_close(
    request: Request,
    query_id: RecordId,
    who: Auth = Depends(require(Action.WRITE, Resource.QUERY)),
    db: Session = DB_SESSION,
) -> Response:
    views.visible_query(db, who.principal, query_id)
    with audited(request, who, reason=queries.close_reason(query_id)) as uow:
        queries.close_query(uow.session, who.principal.username, query_id, now(request))
    return RedirectResponse("/queries", status_code=303)


# --- audit history ------------------------------------------------------------------------


@router.get("/patients/{code}/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.READ, Resource.AUDIT)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    rows = views.audit_history(db, who.principal, code)
    return render(request, "audit.html", {"who": who, "code": code, "rows": rows})
