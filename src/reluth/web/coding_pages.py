"""Coding: the CTCAE v5.0 term search the adverse-event form uses as it is typed (htmx), the
coder's worklist and recoding with a reason (pages and API). The dictionary and the rules are
in ``reluth.safety.coding`` and ``reluth.safety.service``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from reluth.core.context import Ctx
from reluth.errors import ReluthError
from reluth.safety import coding
from reluth.safety import service as safety
from reluth.web.api import ERRORS, ApiIn
from reluth.web.deps import READ, WHO, Auth, RecordId, audited, calls
from reluth.web.pages import render

router = APIRouter(include_in_schema=False)
api_router = APIRouter(tags=["api"])


@router.get("/ctcae/terms", response_class=HTMLResponse)
def terms_partial(
    request: Request,
    q: str = Query("", max_length=80),
    term: str = Query("", max_length=120),
    who: Auth = WHO,
) -> HTMLResponse:
    """The options of the term box's datalist for what is typed (htmx sends the box's own
    name, ``term``)."""
    return render(request, "_ctcae_options.html", {"terms": coding.search(q or term)})


class TermOut(BaseModel):
    term: str
    meddra_code: str = Field(description="MedDRA v20.1 LLT code of the CTCAE v5.0 term")
    soc: str


@api_router.get("/ctcae/terms", response_model=list[TermOut], responses=ERRORS)
def terms_api(q: str = Query("", max_length=80), who: Auth = WHO) -> list[TermOut]:
    """CTCAE v5.0 terms matching ``q`` (at least 2 characters), with MedDRA code and SOC."""
    return [TermOut(term=t.term, meddra_code=t.meddra_code, soc=t.soc) for t in coding.search(q)]


async def _posted(request: Request) -> None:
    form = await request.form()
    request.state.posted = {k: v for k, v in form.items() if isinstance(v, str)}


def _page(
    request: Request, who: Auth, ctx: Ctx, error: ReluthError | None = None, saved: str = ""
) -> HTMLResponse:
    if error is not None and error.http_status == 403:
        raise error
    ctx.session.expire_all()
    context: dict[str, Any] = {
        "who": who,
        "rows": safety.coding_worklist(ctx),
        "socs": coding.ctcae().socs,
        "dictionary": coding.ctcae(),
        "error": error,
        "posted": getattr(request.state, "posted", {}) if error else {},
        "saved": saved,
    }
    return render(request, "coding.html", context, status_code=error.http_status if error else 200)


@router.get("/coding", response_class=HTMLResponse)
def coding_page(
    request: Request, saved: str = "", who: Auth = WHO, ctx: Ctx = READ
) -> HTMLResponse:
    return _page(request, who, ctx, saved=saved[:20])


@router.post("/coding/{ae_id}", dependencies=[Depends(_posted)])
def recode_page(ae_id: RecordId, request: Request, who: Auth = WHO, ctx: Ctx = READ) -> Response:
    form = request.state.posted
    try:
        with audited(request, who, reason=form.get("reason") or None) as w:
            safety.recode_adverse_event(
                w,
                ae_id,
                form.get("llt_code", ""),
                form.get("pt_code") or None,
                form.get("soc") or None,
                form.get("meddra_term") or None,
            )
    except ReluthError as exc:
        return _page(request, who, ctx, exc)
    return RedirectResponse(f"/coding?saved={ae_id}#ae-{ae_id}", status_code=303)


class RecodeIn(ApiIn):
    llt_code: str = Field(pattern=r"^\d{8}$", description="MedDRA LLT code")
    pt_code: str | None = Field(default=None, pattern=r"^\d{8}$")
    soc: str | None = Field(default=None, max_length=120)
    meddra_term: str | None = Field(default=None, max_length=120)
    reason: str = Field(min_length=1, max_length=500)


class CodingOut(BaseModel):
    id: int
    term: str
    meddra_term: str | None
    meddra_llt_code: str | None
    meddra_pt_code: str | None
    meddra_soc: str | None
    coding_dictionary: str | None


@api_router.put("/adverse-events/{ae_id}/coding", response_model=CodingOut, responses=ERRORS)
def recode_api(
    ae_id: RecordId,
    body: RecodeIn,
    request: Request,
    who: Auth = Depends(calls(safety.recode_adverse_event)),
) -> CodingOut:
    """Code or recode an adverse event's term (coder), with a reason."""
    with audited(request, who, reason=body.reason) as w:
        row = safety.recode_adverse_event(
            w, ae_id, body.llt_code, body.pt_code, body.soc, body.meddra_term
        )
        return CodingOut(
            id=row.id,
            term=row.term,
            meddra_term=row.meddra_term,
            meddra_llt_code=row.meddra_llt_code,
            meddra_pt_code=row.meddra_pt_code,
            meddra_soc=row.meddra_soc,
            coding_dictionary=row.coding_dictionary,
        )
