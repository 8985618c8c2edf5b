"""A patient's dosimetry page: per-cycle organ, tumour and marrow doses and the cumulative
kidney and marrow figures against the limits, read from the dosimetry service; the medical
physicist stores a cycle's results by pasting the case's ``results.json`` (or a list of
records). The policy and centre scoping decide who sees and who writes."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from reluth.auth.policy import Action, Resource
from reluth.dosimetry import service as dosimetry
from reluth.errors import ReluthError, ValidationError
from reluth.web import trial_views as views
from reluth.web.deps import DB_SESSION, Auth, audited, now, require
from reluth.web.pages import render
from reluth.web.trial_pages import _remember_form

router = APIRouter(include_in_schema=False)


def _page(
    request: Request,
    who: Auth,
    db: Session,
    code: str,
    form: dict[str, str],
    error: ReluthError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    patient = views.visible_patient(db, who.principal, code, Resource.DOSIMETRY)
    return render(
        request,
        "dosimetry.html",
        {
            "who": who,
            "code": patient.patient_code,
            "d": dosimetry.patient_dosimetry(db, patient.patient_code),
            "can_write": who.principal.may(Action.WRITE, Resource.DOSIMETRY, patient.centre_id),
            "posted": form,
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/patients/{code}/dosimetry", response_class=HTMLResponse)
def dosimetry_page(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.READ, Resource.DOSIMETRY)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    return _page(request, who, db, code, {})


def _cycle(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 8:
        raise ValidationError("cycle", f"{text!r}", "an administered cycle number")
    return int(text)


def _document(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError("records", f"not JSON: {exc.msg} (line {exc.lineno})") from None


@router.post("/patients/{code}/dosimetry", dependencies=[Depends(_remember_form)])
def dosimetry_save(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.WRITE, Resource.DOSIMETRY)),
    db: Session = DB_SESSION,
) -> Response:
    patient = views.visible_patient(db, who.principal, code, Resource.DOSIMETRY, Action.WRITE)
    form: dict[str, str] = request.state.posted
    replace = form.get("replace") == "yes"
    try:
        cycle = _cycle(form.get("cycle", ""))
        records = dosimetry.records_from_document(_document(form.get("records", "")))
        case_id = form.get("case_id", "").strip() or None
        with audited(request, who, reason=form.get("reason") if replace else None) as uow:
            dosimetry.store_cycle(
                uow.session,
                patient.patient_code,
                cycle,
                records,
                now=now(request),
                case_id=case_id,
                replace=replace,
            )
    except ReluthError as exc:
        return _page(request, who, db, code, form, exc, exc.http_status)
    return Response(
        status_code=303, headers={"Location": f"/patients/{code}/dosimetry#cycle-{cycle}"}
    )
