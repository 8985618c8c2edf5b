"""Pages of the trial itself: patients, screening with live eligibility, inclusion, cycles 1-2,
pre-randomization assessment, randomization with a confirmation step, laboratory results with
the CTCAE grade shown as typed, and the audit history. Routes parse, call a service or engine,
and render; the policy and the read models decide what is shown."""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reluth.core.context import Ctx
from reluth.errors import ReluthError, ValidationError
from reluth.forms import answers
from reluth.forms import service as forms_service
from reluth.i18n import N_, gettext
from reluth.i18n.messages import describe
from reluth.patients import service as patients
from reluth.protocol.eligibility import check_eligibility
from reluth.protocol.patient import parse_patient
from reluth.queries import service as queries
from reluth.randomization import service as randomization
from reluth.records import audit_changes, views
from reluth.safety import records as safety_records
from reluth.safety import seriousness
from reluth.safety import service as safety
from reluth.sites import service as sites
from reluth.treatment import service as treatment
from reluth.units import to_decimal
from reluth.values import parse_date
from reluth.web import screening_form
from reluth.web.deps import READ, WHO, Auth, RecordId, audited, may_call, patient_for
from reluth.web.pages import render

router = APIRouter(include_in_schema=False)


def _go(code: str, anchor: str = "", saved: tuple[str, int] | None = None) -> RedirectResponse:
    """Back to the patient's page at ``anchor``; ``saved`` (form id, record id) makes the page
    say what was saved."""
    query = "" if saved is None else f"?saved={saved[0]}-{saved[1]}"
    return RedirectResponse(f"/patients/{code}{query}{anchor}", status_code=303)


#: Field types a "saved" note leaves out (whole files, item lists: the page shows them).
_NOT_IN_NOTE = frozenset({"json", "items", "lesions"})


def saved_note(ctx: Ctx, saved: str) -> dict[str, Any] | None:
    """What a ``?saved=<form>-<record>`` redirect saved, as the registry lays it out (the
    form and each filled field, shown as the record page shows them); None when it cannot be shown."""
    form_id, _, record = saved.rpartition("-")
    if not form_id or not record.isdigit():
        return None
    try:
        view = forms_service.record_view(ctx, form_id, int(record))
    except ReluthError:
        return None
    kinds = {f.name: f.type for f in view.form.fields}
    fields = [f for f in view.fields if f.value != "" and kinds.get(f.name) not in _NOT_IN_NOTE]
    return {"form": view.form, "record": view.ref.record_id, "fields": fields}


# --- patient list and registration --------------------------------------------------------


@router.get("/patients", response_class=HTMLResponse)
def patient_list(
    request: Request,
    q: str = Query("", max_length=40, pattern=views.PATIENT_SEARCH),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    rows = views.patient_list(ctx, q)
    centres = [c for c in sites.list_centres(ctx.session) if who.actor.sees_centre(c.id)]
    context = {
        "who": who,
        "rows": rows,
        "q": q,
        "centres": centres,
        "error": None,
        "form": {},
        "can_register": may_call(who, patients.register_patient),
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
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    try:
        with audited(request, who) as w:
            patient = patients.register_patient(
                w, centre, sex=sex or None, birth_year=birth_year.strip() or None
            )
            code = patient.patient_code
    except ReluthError as exc:
        if exc.http_status == 403:
            raise
        rows = views.patient_list(ctx)
        centres = [c for c in sites.list_centres(ctx.session) if who.actor.sees_centre(c.id)]
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
    who: Auth = WHO,
    saved: str = Query("", max_length=40, pattern=r"^([a-z_]+-\d+)?$"),
    ctx: Ctx = READ,
) -> HTMLResponse:
    t = views.timeline(ctx, code)
    context = {"who": who, "t": t, "today": ctx.today(), "saved": saved_note(ctx, saved)}
    return render(request, "patient.html", context)


async def _remember_form(request: Request) -> None:
    form = await request.form()
    request.state.posted = {k: v for k, v in form.items() if isinstance(v, str)}


# --- screening with live eligibility ------------------------------------------------------


def _screening_preview(form: dict[str, str], code: str, ctx: Ctx) -> dict[str, Any]:
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
                    "error": gettext("malformed JSON at line {line} column {column}").format(
                        line=exc.lineno, column=exc.colno
                    ),
                    "errors": {},
                }
            if isinstance(data, dict):
                data.setdefault("patient_id", code)
                if data.get("patient_id") != code:
                    return {
                        "error": gettext("Patient ID: must be {code}").format(code=code),
                        "errors": {},
                    }
        else:
            data = screening_form.to_patient_file(form, code)
        result = check_eligibility(
            parse_patient(data, as_of=ctx.today()), ctx.protocol, stage="inclusion"
        )
    except ReluthError as exc:
        return {"error": describe(exc), "errors": screening_form.field_errors(exc)}
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
            "prefilled_from": preview.get("prefilled_from"),
        },
        status_code=status,
    )


@router.get("/patients/{code}/screening", response_class=HTMLResponse)
def screening_page(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient = patient_for(ctx, code, patients.screen_patient)
    # a re-screening starts from the latest screening's values
    last = patients.last_patient_file(ctx, patient.patient_code)
    form = {} if last is None else screening_form.to_form(last)
    preview = {} if last is None else {"prefilled_from": last.get("assessment_date")}
    return _screening_page(request, who, patient.patient_code, form, preview)


@router.post(
    "/patients/{code}/screening/check",
    response_class=HTMLResponse,
    dependencies=[Depends(_remember_form)],
)
def screening_check(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient = patient_for(ctx, code, patients.screen_patient)
    preview = _screening_preview(request.state.posted, patient.patient_code, ctx)
    return render(request, "_eligibility.html", {"preview": preview})


@router.post("/patients/{code}/screening", dependencies=[Depends(_remember_form)])
def screening_save(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, patients.screen_patient)
    form: dict[str, str] = request.state.posted
    preview = _screening_preview(form, patient.patient_code, ctx)
    if "error" in preview:
        return _screening_page(request, who, patient.patient_code, form, preview, status=422)
    try:
        with audited(request, who) as w:
            outcome = patients.screen_patient(w, preview["data"])
    except ReluthError as exc:
        if exc.http_status == 403:
            raise
        failed = {"error": describe(exc), "errors": screening_form.field_errors(exc)}
        return _screening_page(
            request, who, patient.patient_code, form, failed, status=exc.http_status
        )
    return _go(code, "#screening", ("screening", outcome.screening_id))


# --- inclusion, second-PRRT cycles, pre-randomization assessment --------------------------


def _timeline_with_error(
    request: Request, who: Auth, ctx: Ctx, code: str, exc: ReluthError, form: str
) -> HTMLResponse:
    """The patient's page again with the refused form's message and typed values."""
    if exc.http_status == 403:
        raise exc
    ctx.session.expire_all()
    t = views.timeline(ctx, code)
    return render(
        request,
        "patient.html",
        {
            "who": who,
            "t": t,
            "today": ctx.today(),
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
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, patients.include_patient)
    try:
        consent = parse_date(consent_date, "consent_date") if consent_date else None
        included = parse_date(inclusion_date, "inclusion_date") if inclusion_date else None
        with audited(request, who) as w:
            inclusion = patients.include_patient(w, patient.patient_code, consent, included)
            saved = ("inclusion", inclusion.id)
    except ReluthError as exc:
        return _timeline_with_error(request, who, ctx, code, exc, "inclusion")
    return _go(code, "#inclusion", saved)


@router.post("/patients/{code}/cycles", dependencies=[Depends(_remember_form)])
def cycle_save(
    request: Request,
    code: str,
    cycle: str = Form(""),
    administered_on: str = Form(""),
    activity_gbq: str = Form(""),
    lot: str = Form(""),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, treatment.record_cycle)
    try:
        with audited(request, who) as w:
            given = treatment.record_cycle(
                w,
                patient.patient_code,
                cycle,
                parse_date(administered_on, "administered_on"),
                to_decimal(activity_gbq, "activity_gbq"),
                lot,
            )
            saved = ("cycle", given.id)
    except ReluthError as exc:
        return _timeline_with_error(request, who, ctx, code, exc, "cycles")
    return _go(code, "#cycles", saved)


@router.post("/patients/{code}/pre-randomization", dependencies=[Depends(_remember_form)])
def pre_randomization_save(
    request: Request,
    code: str,
    assessment_date: str = Form(""),
    overall_response: str = Form(""),
    comment: str = Form(""),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, patients.record_pre_randomization)
    try:
        with audited(request, who) as w:
            pre = patients.record_pre_randomization(
                w,
                patient.patient_code,
                parse_date(assessment_date, "assessment_date"),
                None,  # progression as the overall response says
                overall_response,
                comment or None,
            )
            saved = ("pre_randomization", pre.id)
    except ReluthError as exc:
        return _timeline_with_error(request, who, ctx, code, exc, "pre")
    return _go(code, "#pre", saved)


# --- randomization: check, confirm, result ------------------------------------------------


@router.get("/patients/{code}/randomize", response_class=HTMLResponse)
def randomize_confirm(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient = patient_for(ctx, code, randomization.randomize)
    problem = None
    stratum = None
    try:
        stratum = randomization.precheck(ctx, patient.patient_code)
    except ReluthError as exc:
        if exc.http_status == 403:
            raise
        problem = describe(exc)
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
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient = patient_for(ctx, code, randomization.randomize)
    if confirm != "yes":
        raise ValidationError(
            "confirm", N_("randomization was not confirmed"), N_("tick the confirmation")
        )
    with audited(request, who) as w:
        result = randomization.randomize(w, patient.patient_code, request_id)
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
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient_for(ctx, code, safety.record_lab)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        graded = safety.preview_lab(_lab_raw(form)) if form.get("value") else None
        error = None
    except ReluthError as exc:
        graded, error = None, describe(exc)
    return render(request, "_lab_grade.html", {"graded": graded, "error": error})


@router.post("/patients/{code}/labs", dependencies=[Depends(_remember_form)])
def lab_save(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, safety.record_lab)
    try:
        with audited(request, who) as w:
            row = safety.record_lab(w, patient.patient_code, _lab_raw(request.state.posted))
            saved = ("lab", row.id)
    except ReluthError as exc:
        return _timeline_with_error(request, who, ctx, code, exc, "labs")
    return _go(code, "#labs", saved)


# --- adverse events and the SAE clock ----------------------------------------------------


@router.get("/adverse-events", response_class=HTMLResponse)
def adverse_events_page(
    request: Request,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    rows = views.adverse_events(ctx)
    return render(request, "adverse_events.html", {"who": who, "rows": rows})


@router.post("/patients/{code}/adverse-events", dependencies=[Depends(_remember_form)])
def adverse_event_save(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, safety_records.record_adverse_event)
    form: dict[str, str] = request.state.posted
    data: dict[str, Any] = {
        k: v for k, v in form.items() if v and k != "csrf_token" and not k.startswith("sae_")
    }
    data["patient_id"] = patient.patient_code
    data["serious"] = form.get("serious") == "yes"
    data["seriousness"] = [c for c in seriousness.CRITERIA if form.get(f"sae_{c}") == "yes"]
    try:
        with audited(request, who) as w:
            event = safety_records.record_adverse_event(w, data)
            saved = ("adverse_event", event.id)
    except ReluthError as exc:
        return _timeline_with_error(request, who, ctx, code, exc, "ae")
    return _go(code, "#adverse-events", saved)


# --- data queries ------------------------------------------------------------------------


@router.get("/queries", response_class=HTMLResponse)
def queries_page(
    request: Request,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    rows = views.data_queries(ctx)
    return render(request, "queries.html", {"who": who, "rows": rows})


@router.post("/patients/{code}/queries", dependencies=[Depends(_remember_form)])
def query_open(
    request: Request,
    code: str,
    field: str = Form(""),
    question: str = Form(""),
    form: str = Form(""),
    record_id: str = Form(""),
    visit_code: str = Form(""),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    """Raise a query on a field of a form instance (the record page's query button posts its
    form, record and field), or on ``field`` naming them (``lab 12 value``)."""
    patient = patient_for(ctx, code, queries.open_query)
    rid = int(record_id) if record_id.isascii() and record_id.isdigit() else None
    try:
        if record_id and rid is None:
            raise ValidationError("record_id", repr(record_id), N_("a record id"))
        with audited(request, who) as w:
            queries.open_query(
                w,
                patient.patient_code,
                field,
                question,
                form_id=form or None,
                record_id=rid,
                visit_code=visit_code or None,
            )
    except ReluthError as exc:
        return _timeline_with_error(request, who, ctx, code, exc, "query")
    if form and rid is not None:
        return RedirectResponse(f"/forms/{form}/{rid}?queried=true", status_code=303)
    return _go(code, "#queries")


@router.post("/queries/{query_id}/answer")
def query_answer(
    request: Request,
    query_id: RecordId,
    answer: str = Form(""),
    correct: str = Form(""),
    corrected: str = Form(""),
    reason: str = Form(""),
    back: str = Form(""),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    """Answer in words, or (``corrected`` ticked) correct the queried value to ``correct``
    with ``reason`` through the form's correction path; back to the record page it came from."""
    target = back if back.startswith("/forms/") and back[7:].replace("/", "").isalnum() else ""
    if corrected:
        with audited(request, who) as w:
            answers.answer_with_correction(w, query_id, correct, reason, answer or None)
    else:
        with audited(request, who, reason=queries.answer_reason(query_id)) as w:
            queries.answer_query(w, query_id, answer)
    return RedirectResponse(target or "/queries", status_code=303)


@router.post("/queries/{query_id}/reopen")
def query_reopen(
    request: Request,
    query_id: RecordId,
    reason: str = Form(""),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    with audited(request, who, reason=queries.reopen_reason(query_id, reason)) as w:
        queries.reopen_query(w, query_id, reason)
    return RedirectResponse("/queries", status_code=303)


@router.post("/queries/{query_id}/close")
def query_close(
    request: Request,
    query_id: RecordId,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    with audited(request, who, reason=queries.close_reason(query_id)) as w:
        queries.close_query(w, query_id)
    return RedirectResponse("/queries", status_code=303)


# --- audit history ------------------------------------------------------------------------


@router.get("/patients/{code}/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    changes = audit_changes.audit_changes(ctx, code)
    context = {
        "who": who,
        "code": code,
        "changes": changes,
        "plain": functools.partial(audit_changes.plain, zone=ctx.trial.zone),
        "flatten": functools.partial(audit_changes.flatten, zone=ctx.trial.zone),
    }
    return render(request, "audit.html", context)
