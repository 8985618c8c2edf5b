"""Pharmacovigilance acknowledges receipt of a serious adverse event (page form and API).

The rule (only SAEs, once each, by pharmacovigilance) is in ``reluth.safety.sae``; this module
only obtains who asks and writes through the audited door.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from reluth.safety import sae
from reluth.values import to_jsonable
from reluth.web.deps import WHO, Auth, RecordId, audited

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
