"""Pharmacovigilance acknowledges receipt of a serious adverse event (page form and API).

The rule (only SAEs, once each) is in ``reluth.safety.sae``; this module only checks who asks,
through the one permission layer, and writes through the audited door.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from reluth.auth.policy import Action, Resource
from reluth.cli_support import to_jsonable
from reluth.safety import sae
from reluth.web import trial_views as views
from reluth.web.deps import DB_SESSION, Auth, RecordId, audited, now, require

router = APIRouter()
api_router = APIRouter(tags=["api"])


def _acknowledge(request: Request, who: Auth, db: Session, ae_id: int) -> dict[str, Any]:
    views.visible_adverse_event(db, who.principal, ae_id)
    with audited(request, who) as uow:
        row = sae.acknowledge_receipt(uow.session, ae_id, who.principal.username, now(request))
        return {
            "adverse_event_id": row.adverse_event_id,
            "received_at": row.received_at,
            "received_by": row.received_by,
        }


@router.post("/adverse-events/{ae_id}/receipt")
def receipt_page(
    ae_id: RecordId,
    request: Request,
    who: Auth = Depends(require(Action.WRITE, Resource.SAE_RECEIPT)),
    db: Session = DB_SESSION,
) -> RedirectResponse:
    _acknowledge(request, who, db, ae_id)
    return RedirectResponse(f"/adverse-events#ae-{ae_id}", status_code=303)


@api_router.post("/adverse-events/{ae_id}/receipt", status_code=201)
def receipt_api(
    ae_id: RecordId,
    request: Request,
    who: Auth = Depends(require(Action.WRITE, Resource.SAE_RECEIPT)),
    db: Session = DB_SESSION,
) -> dict[str, Any]:
    """Acknowledge receipt of a serious adverse event: stops its 24-hour clock (once)."""
    result: dict[str, Any] = to_jsonable(_acknowledge(request, who, db, ae_id))
    return result
