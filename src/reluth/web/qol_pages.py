"""Quality-of-life entry item by item (EORTC QLQ-C30 items 1-30, QLQ-GI.NET21 items 31-51),
with the scale scores shown live. Like the laboratory form: the route parses the form, the QoL
engine (``reluth.qol.scoring.score``) scores, the QoL service stores inside the audited unit of
work; the policy and centre scoping decide who may enter."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from reluth.auth.policy import Action, Resource
from reluth.errors import ReluthError
from reluth.qol import scoring
from reluth.qol import service as qol
from reluth.web import trial_views as views
from reluth.web.deps import DB_SESSION, Auth, audited, require, today
from reluth.web.pages import render
from reluth.web.trial_pages import _go, _remember_form

router = APIRouter(include_in_schema=False)

DEFAULT_INSTRUMENT = "QLQ-C30"


def _items(form: dict[str, str], inst: scoring.Instrument) -> dict[str, Any]:
    """Answers as the service takes them: ``{"3": 2}``; a blank item is missing. Text that is
    not a whole number is passed on unchanged so that the engine refuses it by name."""
    items: dict[str, Any] = {}
    for number in inst.items:
        text = form.get(f"item_{number}", "").strip()
        if text:
            items[str(number)] = int(text) if text.isascii() and text.isdigit() else text
    return items


def _preview(form: dict[str, str], inst: scoring.Instrument) -> dict[str, Any]:
    try:
        return {"result": scoring.score(inst, _items(form, inst)), "error": None}
    except ReluthError as exc:
        return {"result": None, "error": exc.message}


def _page(
    request: Request,
    who: Auth,
    code: str,
    inst: scoring.Instrument,
    form: dict[str, str],
    error: ReluthError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "qol.html",
        {
            "who": who,
            "code": code,
            "inst": inst,
            "instruments": views.QOL_INSTRUMENTS,
            "timepoints": views.qol_timepoints(),
            "posted": form,
            "error": error,
            "preview": _preview(form, inst),
            "today": today(request),
        },
        status_code=status_code,
    )


@router.get("/patients/{code}/qol", response_class=HTMLResponse)
def qol_form(
    request: Request,
    code: str,
    instrument: str = Query(DEFAULT_INSTRUMENT, max_length=20),
    who: Auth = Depends(require(Action.WRITE, Resource.QOL)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    patient = views.visible_patient(db, who.principal, code, Resource.QOL, Action.WRITE)
    inst = scoring.instrument(instrument)
    return _page(request, who, patient.patient_code, inst, {})


@router.post("/patients/{code}/qol/scores", response_class=HTMLResponse)
async def qol_scores_preview(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.WRITE, Resource.QOL)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    views.visible_patient(db, who.principal, code, Resource.QOL, Action.WRITE)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    inst = scoring.instrument(form.get("instrument", DEFAULT_INSTRUMENT))
    return render(request, "_qol_scores.html", {"inst": inst, "preview": _preview(form, inst)})


@router.post("/patients/{code}/qol", dependencies=[Depends(_remember_form)])
def qol_save(
    request: Request,
    code: str,
    who: Auth = Depends(require(Action.WRITE, Resource.QOL)),
    db: Session = DB_SESSION,
) -> Response:
    patient = views.visible_patient(db, who.principal, code, Resource.QOL, Action.WRITE)
    form: dict[str, str] = request.state.posted
    inst = scoring.instrument(DEFAULT_INSTRUMENT)
    try:
        inst = scoring.instrument(form.get("instrument", ""))
        data = {
            "patient_id": patient.patient_code,
            "instrument": inst.name,
            "timepoint": form.get("timepoint", ""),
            "completed_on": form.get("completed_on", ""),
            "items": _items(form, inst),
        }
        with audited(request, who) as uow:
            qol.record_questionnaire(uow.session, data, today=today(request))
    except ReluthError as exc:
        return _page(request, who, patient.patient_code, inst, form, exc, exc.http_status)
    return _go(code, "#qol")
