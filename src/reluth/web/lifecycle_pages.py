"""Pages of the data lifecycle: a patient's locks (lock and unlock buttons for the data manager)
and the study page (database freeze and lock, centre and form locks). Routes parse, call the
lifecycle services, render; the services and the write door decide."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reluth.core.context import Ctx
from reluth.errors import ReluthError, ValidationError
from reluth.i18n import get_locale
from reluth.lifecycle import sdv_service as sdv
from reluth.lifecycle import service as lifecycle
from reluth.lifecycle import signature_service as signing
from reluth.sites import service as sites
from reluth.web.deps import READ, WHO, Auth, audited, may_call, patient_for
from reluth.web.pages import render

router = APIRouter(include_in_schema=False)


def _patient_context(ctx: Ctx, who: Auth, code: str) -> dict[str, Any]:
    patient = patient_for(ctx, code, lifecycle.active_locks)
    return {
        "who": who,
        "code": patient.patient_code,
        "locks": lifecycle.active_locks(ctx, patient.patient_code),
        "can_lock": may_call(who, lifecycle.lock),
        "signatures": (
            signing.signatures(ctx, patient.patient_code)
            if may_call(who, signing.signatures)
            else None
        ),
        "can_sign": may_call(who, signing.sign),
        "meanings": {s: ctx.trial.forms.signature_meaning(s, get_locale()) for s in signing.SCOPES},
        "sdv": sdv.sdv_marks(ctx, patient.patient_code) if may_call(who, sdv.sdv_marks) else None,
        "can_sdv": may_call(who, sdv.verify),
        "error": None,
        "posted": {},
    }


@router.get("/patients/{code}/lifecycle", response_class=HTMLResponse)
def patient_lifecycle(request: Request, code: str, who: Auth = WHO, ctx: Ctx = READ) -> Response:
    return render(request, "patient_lifecycle.html", _patient_context(ctx, who, code))


def _redo(
    request: Request,
    who: Auth,
    ctx: Ctx,
    code: str,
    exc: ReluthError,
    posted: dict[str, str] | None = None,
) -> HTMLResponse:
    if exc.http_status == 403 and "may not" in exc.message:
        raise exc  # the policy's refusal: the error page, not the form
    ctx.session.expire_all()
    context = {**_patient_context(ctx, who, code), "error": exc, "posted": posted or {}}
    return render(request, "patient_lifecycle.html", context, status_code=exc.http_status)


def _change(
    request: Request, who: Auth, scope: str, ident: str | None, action: str, reason: str
) -> None:
    kind = "freeze" if action in ("freeze", "unfreeze") else "lock"
    lifting = action in ("unlock", "unfreeze")
    with audited(request, who, reason=(reason or None) if lifting else None) as w:
        if lifting:
            lifecycle.unlock(w, scope, ident, reason, kind)
        else:
            lifecycle.lock(w, scope, ident, reason, kind)


@router.post("/patients/{code}/lock")
def patient_lock(
    request: Request, code: str, reason: str = Form(""), who: Auth = WHO, ctx: Ctx = READ
) -> Response:
    try:
        _change(request, who, "patient", code, "lock", reason)
    except ReluthError as exc:
        return _redo(request, who, ctx, code, exc)
    return RedirectResponse(f"/patients/{code}/lifecycle", status_code=303)


@router.post("/patients/{code}/unlock")
def patient_unlock(
    request: Request, code: str, reason: str = Form(""), who: Auth = WHO, ctx: Ctx = READ
) -> Response:
    try:
        _change(request, who, "patient", code, "unlock", reason)
    except ReluthError as exc:
        return _redo(request, who, ctx, code, exc)
    return RedirectResponse(f"/patients/{code}/lifecycle", status_code=303)


@router.post("/patients/{code}/signatures")
def patient_sign(
    request: Request,
    code: str,
    scope: str = Form("patient"),
    password: str = Form(""),
    meaning: str = Form(""),
    visit_code: str = Form(""),
    table: str = Form(""),
    record_id: str = Form(""),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    """The principal investigator signs, re-entering the password."""
    posted = {"scope": scope, "meaning": meaning, "visit_code": visit_code, "table": table,
              "record_id": record_id}  # fmt: skip
    try:
        with audited(request, who) as w:
            signing.sign(
                w,
                code,
                scope,
                password,
                meaning or None,
                visit_code=visit_code or None,
                table=table or None,
                record_id=record_id or None,
            )
    except ReluthError as exc:
        return _redo(request, who, ctx, code, exc, posted)
    return RedirectResponse(f"/patients/{code}/lifecycle#signatures", status_code=303)


@router.post("/patients/{code}/sdv")
def patient_sdv(
    request: Request,
    code: str,
    table: str = Form(""),
    record_id: str = Form(""),
    field: str = Form(""),
    visit_code: str = Form(""),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    """The monitor marks a field, a form (``table``, ``record_id``) or a visit verified."""
    posted = {"table": table, "record_id": record_id, "field": field, "visit_code": visit_code}
    try:
        with audited(request, who) as w:
            if visit_code.strip():
                sdv.verify_visit(w, code, visit_code.strip())
            else:
                sdv.verify(w, code, table.strip(), record_id.strip(), field.strip() or None)
    except ReluthError as exc:
        return _redo(request, who, ctx, code, exc, posted)
    return RedirectResponse(f"/patients/{code}/lifecycle#sdv", status_code=303)


@router.get("/sdv", response_class=HTMLResponse)
def sdv_report_page(
    request: Request,
    centre: str = Query("", pattern=r"^(C\d{2})?$", max_length=8),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    """The monitor's SDV report per centre (page of ``GET /api/v1/sdv/report``)."""
    reports = sdv.sdv_report(ctx, centre or None)
    centres = [c for c in sites.list_centres(ctx.session) if who.actor.sees_centre(c.id)]
    return render(
        request,
        "sdv.html",
        {"who": who, "reports": reports, "centre": centre, "centres": centres, "shown": 100},
    )


# --- the study page -------------------------------------------------------------------------


def _study_context(ctx: Ctx, who: Auth) -> dict[str, Any]:
    locks = lifecycle.active_locks(ctx)
    return {
        "who": who,
        "locks": locks,
        "study": {lk.kind for lk in locks if lk.scope == "study"},
        "centres": [c for c in sites.list_centres(ctx.session) if who.actor.sees_centre(c.id)],
        "can_lock": may_call(who, lifecycle.lock),
        "error": None,
    }


@router.get("/lifecycle", response_class=HTMLResponse)
def study_page(request: Request, who: Auth = WHO, ctx: Ctx = READ) -> Response:
    return render(request, "lifecycle.html", _study_context(ctx, who))


@router.post("/lifecycle/{scope}/{action}")
def study_change(
    request: Request,
    scope: str,
    action: str,
    reason: str = Form(""),
    target: str = Form(""),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    """``scope`` study, centre or form; ``action`` lock, unlock (and freeze, unfreeze for the
    study); ``target`` the centre code or ``table/record_id``."""
    try:
        if action not in ("lock", "unlock", "freeze", "unfreeze"):
            raise ValidationError("action", repr(action), "lock, unlock, freeze, unfreeze")
        _change(request, who, scope, target.strip() or None, action, reason)
    except ReluthError as exc:
        if exc.http_status == 403:
            raise
        ctx.session.expire_all()
        context = {**_study_context(ctx, who), "error": exc}
        return render(request, "lifecycle.html", context, status_code=exc.http_status)
    return RedirectResponse("/lifecycle", status_code=303)
