"""The visit page of the schedule: one planned visit's window, the date recorded with its
window status, or the form to record it (its correction is the generic correction page of the
``visit`` form)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.errors import ReluthError
from reluth.records import views
from reluth.treatment import service as treatment
from reluth.values import parse_date
from reluth.web.deps import READ, WHO, Auth, audited, today
from reluth.web.pages import render
from reluth.web.trial_pages import _remember_form

router = APIRouter(include_in_schema=False)

#: Visit codes of the protocol schedule in a URL (TA-W08, LAB-W00, FU-M12, EOS, C3).
VisitCode = Annotated[str, Path(pattern=r"^[A-Z0-9-]{1,16}$", description="visit code")]


def _error_field(exc: ReluthError | None) -> str | None:
    field = getattr(exc, "field", None) if isinstance(exc, ReluthError) else None
    if isinstance(field, str) and field:
        return field.rsplit(".", 1)[-1]
    return None


def visit_page_response(
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
    return visit_page_response(request, who, ctx, code, visit_code, saved=saved)


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
        return visit_page_response(
            request,
            who,
            ctx,
            code,
            visit_code,
            values={"visit_date": form.get("visit_date", "")},
            error=exc,
        )
    return RedirectResponse(f"/patients/{code}/visits/{visit_code}?saved=true", status_code=303)
