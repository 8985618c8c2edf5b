"""Blinded central review: worklist, and lesion entry per time point with the RECIST 1.1 result
computed as the reviewer types. Built only from inclusion and central reads (see
reluth.response.service): no arm, treatment, cycle 3/4 or dosimetry ever reaches these pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from reluth.auth.policy import Action, Resource
from reluth.cli_support import parse_date
from reluth.errors import ReluthError
from reluth.patients.models import Patient
from reluth.response import service as review
from reluth.web import trial_views as views
from reluth.web.deps import DB_SESSION, Auth, audited, require, today
from reluth.web.pages import render

router = APIRouter(include_in_schema=False)
ROWS = 8


def _patient(db: Session, who: Auth, code: str, action: Action = Action.READ) -> Patient:
    return views.visible_patient(db, who.principal, code, Resource.CENTRAL_REVIEW, action)


def _lesions(form: dict[str, str], baseline: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(ROWS):
        lid = form.get(f"id_{i}", "").strip()
        if not lid:
            continue
        lesion: dict[str, Any] = {"id": lid}
        if baseline:
            lesion["organ"] = form.get(f"organ_{i}", "").strip()
            lesion["kind"] = form.get(f"kind_{i}", "target")
            lesion["nodal"] = form.get(f"nodal_{i}") == "yes"
        diameter = form.get(f"diameter_{i}", "").strip()
        status = form.get(f"status_{i}", "").strip()
        if diameter:
            lesion["diameter_mm"] = diameter
        if status:
            lesion["status"] = status
        out.append(lesion)
    return out


def _context(
    db: Session, who: Auth, patient: Patient, today_: dt.date, **extra: Any
) -> dict[str, Any]:
    reads = review.central_reads(db, patient)
    return {
        "who": who,
        "code": patient.patient_code,
        "reads": reads,
        "baseline": not reads,
        "baseline_ids": review.baseline_lesion_ids(reads),
        "rows": ROWS,
        "today": today_,
        "posted": {},
        "error": None,
        "live": None,
        **extra,
    }


@router.get("/review", response_class=HTMLResponse)
def worklist(
    request: Request,
    who: Auth = Depends(require(Action.READ, Resource.CENTRAL_REVIEW)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    return render(request, "review.html", {"who": who, "items": review.worklist(db)})


@router.get("/review/{code}", response_class=HTMLResponse)
def read_page(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.READ, Resource.CENTRAL_REVIEW)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    patient = _patient(db, who, code)
    return render(request, "review_patient.html", _context(db, who, patient, today(request)))


async def _form(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _evaluate(db: Session, patient: Patient, form: dict[str, str]) -> dict[str, Any]:
    baseline = not review.central_reads(db, patient)
    try:
        evaluation = review.preview_read(
            db,
            patient,
            parse_date(form.get("assessment_date", ""), "assessment_date"),
            form.get("new_lesions", "no"),
            _lesions(form, baseline=baseline),
        )
    except ReluthError as exc:
        return {"error": exc.message}
    return {"evaluation": evaluation, "baseline": baseline}


@router.post("/review/{code}/evaluate", response_class=HTMLResponse)
async def evaluate_live(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.WRITE, Resource.CENTRAL_REVIEW)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    patient = _patient(db, who, code, Action.WRITE)
    return render(request, "_recist.html", {"live": _evaluate(db, patient, await _form(request))})


@router.post("/review/{code}")
async def save_read(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.WRITE, Resource.CENTRAL_REVIEW)),
    db: Session = DB_SESSION,
) -> Response:
    patient = _patient(db, who, code, Action.WRITE)
    form = await _form(request)
    try:
        reads = review.central_reads(db, patient)
        with audited(request, who) as uow:
            review.record_central_read(
                uow.session,
                patient.patient_code,
                form.get("timepoint", ""),
                parse_date(form.get("assessment_date", ""), "assessment_date"),
                form.get("modality", ""),
                _lesions(form, baseline=not reads),
                form.get("new_lesions", "no"),
                today(request),
            )
    except ReluthError as exc:
        context = _context(
            db,
            who,
            patient,
            today(request),
            posted=form,
            error=exc,
            live=_evaluate(db, patient, form),
        )
        return render(request, "review_patient.html", context, status_code=exc.http_status)
    return RedirectResponse(f"/review/{patient.patient_code}", status_code=303)
