"""Quality-of-life entry item by item (EORTC QLQ-C30 items 1-30, QLQ-GI.NET21 items 31-51),
with the scale scores shown live. Like the laboratory form: the route parses the form, the QoL
engine (``reluth.qol.scoring.score``) scores, the QoL service stores inside the audited unit of
work; the policy and centre scoping decide who may enter."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from reluth.core.context import Ctx
from reluth.errors import ReluthError
from reluth.i18n.messages import describe
from reluth.patients.models import Patient
from reluth.qol import scoring
from reluth.qol import service as qol
from reluth.records import views
from reluth.web.deps import READ, WHO, Auth, audited, patient_for, today
from reluth.web.pages import render
from reluth.web.trial_pages import _go, _remember_form

router = APIRouter(include_in_schema=False)

DEFAULT_INSTRUMENT = "QLQ-C30"


def _items(form: dict[str, str], inst: scoring.Instrument) -> dict[str, Any]:
    """Answers as typed, ``{"3": "2"}``; a blank item is missing. The engine parses and
    refuses them by item number (the adapter converts nothing)."""
    items: dict[str, Any] = {}
    for number in inst.items:
        text = form.get(f"item_{number}", "").strip()
        if text:
            items[str(number)] = text
    return items


def _preview(form: dict[str, str], inst: scoring.Instrument) -> dict[str, Any]:
    try:
        return {"result": scoring.score(inst, _items(form, inst)), "error": None}
    except ReluthError as exc:
        return {"result": None, "error": describe(exc)}


def _page(
    request: Request,
    who: Auth,
    ctx: Ctx,
    patient: Patient,
    inst: scoring.Instrument,
    form: dict[str, str],
    error: ReluthError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    timepoints = views.qol_timepoints(ctx.protocol)
    saved = views.qol_rows(ctx.session, patient.id)
    recorded = {r.timepoint for r in saved if r.instrument == inst.name}
    return render(
        request,
        "qol.html",
        {
            "who": who,
            "code": patient.patient_code,
            "inst": inst,
            "instruments": views.QOL_INSTRUMENTS,
            "timepoints": timepoints,
            "recorded": recorded,
            "next_timepoint": next((tp for tp in timepoints if tp not in recorded), ""),
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
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient = patient_for(ctx, code, qol.record_questionnaire)
    inst = scoring.instrument(instrument)
    return _page(request, who, ctx, patient, inst, {})


@router.post("/patients/{code}/qol/scores", response_class=HTMLResponse)
async def qol_scores_preview(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient_for(ctx, code, qol.record_questionnaire)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    inst = scoring.instrument(form.get("instrument", DEFAULT_INSTRUMENT))
    return render(request, "_qol_scores.html", {"inst": inst, "preview": _preview(form, inst)})


@router.post("/patients/{code}/qol", dependencies=[Depends(_remember_form)])
def qol_save(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = patient_for(ctx, code, qol.record_questionnaire)
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
        with audited(request, who) as w:
            saved = ("qol", qol.record_questionnaire(w, data).id)
    except ReluthError as exc:
        return _page(request, who, ctx, patient, inst, form, exc, exc.http_status)
    return _go(code, "#qol", saved)
