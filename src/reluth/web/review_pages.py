"""Blinded central review: worklist, and lesion entry per time point with the RECIST 1.1 result
computed as the reviewer types. Built only from inclusion and central reads (see
reluth.response.service): no arm, treatment, cycle 3/4 or dosimetry ever reaches these pages.

The site investigator's local assessment (``/patients/{code}/local-assessment``) is the same
entry on the site's own reads, evaluated by the same engine and stored apart from central
review (its permission is the local assessment's: the central reviewer has none)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reluth.core.context import Ctx
from reluth.errors import ReluthError
from reluth.i18n.messages import describe
from reluth.patients.models import Patient
from reluth.response import service as review
from reluth.values import parse_date
from reluth.web.deps import READ, WHO, Auth, audited, patient_for
from reluth.web.pages import render

router = APIRouter(include_in_schema=False)
ROWS = 8


def _patient(ctx: Ctx, code: str, write: bool = False) -> Patient:
    patient: Patient = patient_for(
        ctx, code, review.record_central_read if write else review.get_central_read
    )
    return patient


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
    ctx: Ctx, who: Auth, patient: Patient, reader: str = review.CENTRAL, **extra: Any
) -> dict[str, Any]:
    reads = review.reads_of(ctx.session, patient, reader)
    local = reader == review.LOCAL
    code = patient.patient_code
    evaluation = review.local_assessments(ctx, code)[1] if local else None
    return {
        "who": who,
        "code": code,
        "local": local,
        "base": f"/patients/{code}/local-assessment" if local else f"/review/{code}",
        "evaluation": evaluation,
        "reads": reads,
        "baseline": not reads,
        "baseline_ids": review.baseline_lesion_ids(reads),
        "rows": ROWS,
        "today": ctx.today(),
        "posted": {},
        "error": None,
        "live": None,
        **extra,
    }


@router.get("/review", response_class=HTMLResponse)
def worklist(request: Request, who: Auth = WHO, ctx: Ctx = READ) -> HTMLResponse:
    return render(request, "review.html", {"who": who, "items": review.worklist(ctx)})


@router.get("/review/{code}", response_class=HTMLResponse)
def read_page(request: Request, code: str, who: Auth = WHO, ctx: Ctx = READ) -> HTMLResponse:
    patient = _patient(ctx, code)
    return render(request, "review_patient.html", _context(ctx, who, patient))


async def _form(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _evaluate(
    ctx: Ctx, patient: Patient, form: dict[str, str], reader: str = review.CENTRAL
) -> dict[str, Any]:
    baseline = not review.reads_of(ctx.session, patient, reader)
    preview = review.preview_local_assessment if reader == review.LOCAL else review.preview_read
    try:
        evaluation = preview(
            ctx,
            patient.patient_code,
            parse_date(form.get("assessment_date", ""), "assessment_date"),
            form.get("new_lesions", "no"),
            _lesions(form, baseline=baseline),
        )
    except ReluthError as exc:
        return {"error": describe(exc)}
    return {"evaluation": evaluation, "baseline": baseline}


@router.post("/review/{code}/evaluate", response_class=HTMLResponse)
async def evaluate_live(
    request: Request, code: str, who: Auth = WHO, ctx: Ctx = READ
) -> HTMLResponse:
    patient = _patient(ctx, code, write=True)
    return render(request, "_recist.html", {"live": _evaluate(ctx, patient, await _form(request))})


@router.post("/review/{code}")
async def save_read(request: Request, code: str, who: Auth = WHO, ctx: Ctx = READ) -> Response:
    patient = _patient(ctx, code, write=True)
    return await _save(request, who, ctx, patient, review.CENTRAL)


async def _save(request: Request, who: Auth, ctx: Ctx, patient: Patient, reader: str) -> Response:
    form = await _form(request)
    record = (
        review.record_local_assessment if reader == review.LOCAL else review.record_central_read
    )
    try:
        reads = review.reads_of(ctx.session, patient, reader)
        with audited(request, who) as w:
            record(
                w,
                patient.patient_code,
                form.get("timepoint", ""),
                parse_date(form.get("assessment_date", ""), "assessment_date"),
                form.get("modality", ""),
                _lesions(form, baseline=not reads),
                form.get("new_lesions", "no"),
            )
    except ReluthError as exc:
        ctx.session.expire_all()
        context = _context(
            ctx,
            who,
            patient,
            reader,
            posted=form,
            error=exc,
            live=_evaluate(ctx, patient, form, reader),
        )
        return render(request, "review_patient.html", context, status_code=exc.http_status)
    code = patient.patient_code
    back = (
        f"/patients/{code}/local-assessment?saved=1"
        if reader == review.LOCAL
        else f"/review/{code}"
    )
    return RedirectResponse(back, status_code=303)


# --- the site investigator's local assessment (not the blinded reviewer's) --------------------


def _local_patient(ctx: Ctx, code: str, write: bool = False) -> Patient:
    patient: Patient = patient_for(
        ctx, code, review.record_local_assessment if write else review.local_assessments
    )
    return patient


@router.get("/patients/{code}/local-assessment", response_class=HTMLResponse)
def local_page(
    request: Request, code: str, saved: int | None = None, who: Auth = WHO, ctx: Ctx = READ
) -> HTMLResponse:
    """The site's local tumour assessments of a patient, their RECIST evaluation and entry."""
    patient = _local_patient(ctx, code)
    context = _context(ctx, who, patient, review.LOCAL, saved=saved is not None)
    return render(request, "review_patient.html", context)


@router.post("/patients/{code}/local-assessment/evaluate", response_class=HTMLResponse)
async def local_evaluate(
    request: Request, code: str, who: Auth = WHO, ctx: Ctx = READ
) -> HTMLResponse:
    patient = _local_patient(ctx, code, write=True)
    live = _evaluate(ctx, patient, await _form(request), review.LOCAL)
    return render(request, "_recist.html", {"live": live})


@router.post("/patients/{code}/local-assessment")
async def local_save(request: Request, code: str, who: Auth = WHO, ctx: Ctx = READ) -> Response:
    patient = _local_patient(ctx, code, write=True)
    return await _save(request, who, ctx, patient, review.LOCAL)
