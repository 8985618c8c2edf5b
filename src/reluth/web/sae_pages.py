"""Serious adverse events: pharmacovigilance's receipt, the SAE page with the site's initial
and follow-up reports, the sponsor's assessment and SUSAR submission, and the CIOMS-like PDF
of each report (pages and API).

The rules (who, when, which fields) are in ``reluth.safety.sae``; this module only obtains who
asks, parses the form and writes through the audited door.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from reluth.core.context import Ctx
from reluth.errors import ReluthError
from reluth.i18n import N_, gettext
from reluth.safety import records as safety_records
from reluth.safety import sae
from reluth.safety import seriousness as e2a
from reluth.values import to_jsonable
from reluth.web.api import ERRORS, ApiIn, one_of
from reluth.web.deps import READ, WHO, Auth, RecordId, audited, calls
from reluth.web.pages import render

router = APIRouter(include_in_schema=False)
api_router = APIRouter(tags=["api"])


def _acknowledge(request: Request, who: Auth, ae_id: int) -> dict[str, Any]:
    with audited(request, who) as w:
        row = sae.acknowledge_receipt(w, ae_id)
        return {
            "adverse_event_id": row.adverse_event_id,
            "received_at": row.received_at,
            "received_by": row.received_by,
        }


@router.post("/adverse-events/{ae_id}/receipt")
def receipt_page(ae_id: RecordId, request: Request, who: Auth = WHO) -> RedirectResponse:
    _acknowledge(request, who, ae_id)
    return RedirectResponse(f"/adverse-events#ae-{ae_id}", status_code=303)


@api_router.post("/adverse-events/{ae_id}/receipt", status_code=201)
def receipt_api(ae_id: RecordId, request: Request, who: Auth = WHO) -> dict[str, Any]:
    """Acknowledge receipt of a serious adverse event: stops its 24-hour clock (once)."""
    result: dict[str, Any] = to_jsonable(_acknowledge(request, who, ae_id))
    return result


# --- the SAE page ---------------------------------------------------------------------------


async def _posted(request: Request) -> None:
    form = await request.form()
    request.state.posted = {k: v for k, v in form.items() if isinstance(v, str)}


#: The sponsor's answers as the page words them (the codes are reluth.safety.seriousness's).
CAUSALITY: dict[str, str] = {"related": N_("related"), "not_related": N_("not related")}
EXPECTEDNESS: dict[str, str] = {"unexpected": N_("unexpected"), "expected": N_("expected")}
#: What ``?saved=`` names after a save, in the reader's language.
SAVED: dict[str, str] = {
    "assessment": N_("the sponsor’s assessment"),
    "submission": N_("the SUSAR submission"),
}
_FOLLOW_UP = re.compile(r"follow-up report (\d{1,3})")


def saved_note(saved: str) -> str:
    """The saved thing ``?saved=`` names (a report's English label, ``assessment`` or
    ``submission``) in the reader's language; empty for anything else."""
    if saved in SAVED:
        return gettext(SAVED[saved])
    if saved == sae.report_label(0):
        return gettext("initial report")
    found = _FOLLOW_UP.fullmatch(saved)
    return gettext("follow-up report {n}").format(n=found[1]) if found else ""


def _page(
    request: Request,
    who: Auth,
    ctx: Ctx,
    ae_id: int,
    error: ReluthError | None = None,
    error_form: str = "",
    saved: str = "",
) -> HTMLResponse:
    if error is not None and error.http_status == 403:
        raise error
    ctx.session.expire_all()
    context = {
        "who": who,
        "d": sae.dossier(ctx, ae_id),
        "criteria": e2a.CRITERIA,
        "actions": e2a.ACTIONS,
        "causality": CAUSALITY,
        "expectedness": EXPECTEDNESS,
        "outcomes": safety_records.OUTCOMES,
        "error": error,
        "error_form": error_form,
        "posted": getattr(request.state, "posted", {}) if error else {},
        "saved": saved_note(saved),
    }
    return render(request, "sae.html", context, status_code=error.http_status if error else 200)


@router.get("/adverse-events/{ae_id}", response_class=HTMLResponse)
def sae_page(
    ae_id: RecordId, request: Request, saved: str = "", who: Auth = WHO, ctx: Ctx = READ
) -> HTMLResponse:
    return _page(request, who, ctx, ae_id, saved=saved[:40])


def report_from_form(form: dict[str, str]) -> dict[str, Any]:
    """The report fields of the page's form (criteria are one checkbox each)."""
    data: dict[str, Any] = {
        k: form[k] for k in ("narrative", "action_taken", "treatment", "outcome") if form.get(k)
    }
    data["seriousness"] = [c for c in e2a.CRITERIA if form.get(f"sae_{c}") == "yes"]
    return data


@router.post("/adverse-events/{ae_id}/reports", dependencies=[Depends(_posted)])
def sae_report_save(
    ae_id: RecordId, request: Request, who: Auth = WHO, ctx: Ctx = READ
) -> Response:
    try:
        with audited(request, who) as w:
            row = sae.report_sae(w, ae_id, report_from_form(request.state.posted))
            label = sae.report_label(row.sequence)
    except ReluthError as exc:
        return _page(request, who, ctx, ae_id, exc, "report")
    return RedirectResponse(f"/adverse-events/{ae_id}?saved={label}", status_code=303)


@router.post(
    "/adverse-events/{ae_id}/reports/{sequence}/assessment", dependencies=[Depends(_posted)]
)
def sae_assessment_save(
    ae_id: RecordId, sequence: int, request: Request, who: Auth = WHO, ctx: Ctx = READ
) -> Response:
    form = request.state.posted
    try:
        with audited(request, who) as w:
            sae.assess_report(
                w,
                ae_id,
                sequence,
                form.get("causality", ""),
                form.get("expectedness", ""),
                form.get("comment") or None,
            )
    except ReluthError as exc:
        return _page(request, who, ctx, ae_id, exc, f"assess-{sequence}")
    return RedirectResponse(f"/adverse-events/{ae_id}?saved=assessment", status_code=303)


@router.post(
    "/adverse-events/{ae_id}/reports/{sequence}/submission", dependencies=[Depends(_posted)]
)
def sae_submission_save(
    ae_id: RecordId, sequence: int, request: Request, who: Auth = WHO, ctx: Ctx = READ
) -> Response:
    try:
        with audited(request, who) as w:
            sae.record_susar_submission(
                w, ae_id, sequence, request.state.posted.get("reference", "")
            )
    except ReluthError as exc:
        return _page(request, who, ctx, ae_id, exc, f"submit-{sequence}")
    return RedirectResponse(f"/adverse-events/{ae_id}?saved=submission", status_code=303)


def _pdf(ctx: Ctx, ae_id: int, sequence: int) -> Response:
    pdf = sae.cioms_pdf(ctx, ae_id, sequence)
    name = f"sae-{ae_id}-report-{sequence}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/adverse-events/{ae_id}/reports/{sequence}/cioms.pdf")
def sae_pdf_page(ae_id: RecordId, sequence: int, ctx: Ctx = READ) -> Response:
    return _pdf(ctx, ae_id, sequence)


# --- API ------------------------------------------------------------------------------------


class SaeReportIn(ApiIn):
    seriousness: list[str] = Field(
        default_factory=list,
        description="ICH E2A criteria: " + ", ".join(e2a.CRITERIA) + " (default: the event's)",
    )
    narrative: str = Field(min_length=1, max_length=sae.NARRATIVE_MAX)
    action_taken: str = Field(pattern=one_of(tuple(e2a.ACTIONS)))
    treatment: str | None = Field(default=None, max_length=sae.TREATMENT_MAX)
    outcome: str = Field(pattern=one_of(safety_records.OUTCOMES))


class AssessmentIn(ApiIn):
    causality: str = Field(pattern=one_of(e2a.CAUSALITY))
    expectedness: str = Field(pattern=one_of(e2a.EXPECTEDNESS))
    comment: str | None = Field(default=None, max_length=2000)


class SubmissionIn(ApiIn):
    reference: str = Field(min_length=1, max_length=sae.REFERENCE_MAX)


class SaeReportOut(BaseModel):
    adverse_event_id: int
    sequence: int = Field(description="0 initial report, n follow-up report n")
    label: str
    reported_at: dt.datetime
    reported_by: str
    seriousness: list[str]
    causality: str | None
    expectedness: str | None
    susar: bool | None
    susar_due_before: dt.datetime | None = Field(description="UTC; 7 or 15 calendar days")
    submitted_at: dt.datetime | None


def _report_out(d: sae.Dossier, sequence: int) -> SaeReportOut:
    v = next(r for r in d.reports if r.report.sequence == sequence)
    a, clock = v.assessment, v.susar_clock
    return SaeReportOut(
        adverse_event_id=d.event.id,
        sequence=sequence,
        label=v.label,
        reported_at=v.report.reported_at,
        reported_by=v.report.reported_by,
        seriousness=list(v.criteria),
        causality=None if a is None else a.causality,
        expectedness=None if a is None else a.expectedness,
        susar=None if a is None else a.susar,
        susar_due_before=None if clock is None else clock.due_before,
        submitted_at=None if a is None else a.submitted_at,
    )


@api_router.get(
    "/adverse-events/{ae_id}/reports", response_model=list[SaeReportOut], responses=ERRORS
)
def sae_reports_api(ae_id: RecordId, ctx: Ctx = READ) -> list[SaeReportOut]:
    """The reports of a serious adverse event, with the sponsor's assessment of each."""
    d = sae.dossier(ctx, ae_id)
    return [_report_out(d, r.report.sequence) for r in d.reports]


@api_router.post(
    "/adverse-events/{ae_id}/reports",
    response_model=SaeReportOut,
    status_code=201,
    responses=ERRORS,
)
def sae_report_api(
    ae_id: RecordId,
    body: SaeReportIn,
    request: Request,
    who: Auth = Depends(calls(sae.report_sae)),
) -> SaeReportOut:
    """Send the initial report of an SAE, or its next numbered follow-up (site)."""
    data = body.model_dump(exclude_none=True)
    with audited(request, who) as w:
        row = sae.report_sae(w, ae_id, data)
        return _report_out(sae.dossier(w, ae_id), row.sequence)


@api_router.post(
    "/adverse-events/{ae_id}/reports/{sequence}/assessment",
    response_model=SaeReportOut,
    status_code=201,
    responses=ERRORS,
)
def sae_assessment_api(
    ae_id: RecordId,
    sequence: int,
    body: AssessmentIn,
    request: Request,
    who: Auth = Depends(calls(sae.assess_report)),
) -> SaeReportOut:
    """The sponsor's causality and expectedness (pharmacovigilance): SUSAR if related and
    unexpected."""
    with audited(request, who) as w:
        sae.assess_report(w, ae_id, sequence, body.causality, body.expectedness, body.comment)
        return _report_out(sae.dossier(w, ae_id), sequence)


@api_router.post(
    "/adverse-events/{ae_id}/reports/{sequence}/submission",
    response_model=SaeReportOut,
    responses=ERRORS,
)
def sae_submission_api(
    ae_id: RecordId,
    sequence: int,
    body: SubmissionIn,
    request: Request,
    who: Auth = Depends(calls(sae.record_susar_submission)),
) -> SaeReportOut:
    """Record a SUSAR's submission to the authorities (stops its clock)."""
    with audited(request, who) as w:
        sae.record_susar_submission(w, ae_id, sequence, body.reference)
        return _report_out(sae.dossier(w, ae_id), sequence)


@api_router.get(
    "/adverse-events/{ae_id}/reports/{sequence}/cioms.pdf",
    response_class=Response,
    responses={**ERRORS, 200: {"content": {"application/pdf": {}}}},
)
def sae_pdf_api(ae_id: RecordId, sequence: int, ctx: Ctx = READ) -> Response:
    """The CIOMS-I-like PDF of one report."""
    return _pdf(ctx, ae_id, sequence)
