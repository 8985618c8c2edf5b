"""JSON API of the stored dosimetry results of a patient: read (per cycle, cumulative kidney
and marrow figures against the limits) and store the records of a computed case for one
administered cycle (medical physicist). Same services and permission layer as the page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from reluth.core.context import Ctx
from reluth.dosimetry import service as dosimetry
from reluth.values import to_jsonable
from reluth.web.api import ERRORS, PatientCode
from reluth.web.deps import READ, Visible, audited, visible

router = APIRouter(tags=["dosimetry"])


class DoseRecordIn(BaseModel):
    region: str = Field(min_length=1, max_length=64, description="VOI name, e.g. kidneys")
    kind: str = Field("organ", max_length=16, description="organ, tumour, remainder or marrow")
    quantity: str = Field(max_length=32, description="absorbed_dose, bed, tia, ...")
    value: float
    sd: float | None = None
    unit: str = Field(max_length=16, description="Gy, h or MBq·h as the quantity requires")
    method: str = Field(min_length=1, max_length=64, description="S-value, sphere model, ...")
    case_id: str | None = Field(default=None, max_length=64)


class DosimetryIn(BaseModel):
    cycle: int = Field(ge=1, le=8, description="administration cycle (1-2 second PRRT, 3-4)")
    case_id: str = Field(min_length=1, max_length=64, description="dosimetry case computed")
    records: list[DoseRecordIn] = Field(min_length=1, max_length=dosimetry.MAX_RECORDS)
    replace: bool = Field(False, description="replace the cycle's stored results")
    reason: str | None = Field(
        default=None, max_length=500, description="required when replacing stored results"
    )


@router.get("/patients/{code}/dosimetry", responses=ERRORS)
def dosimetry_get(code: PatientCode, ctx: Ctx = READ) -> dict[str, Any]:
    result: dict[str, Any] = to_jsonable(dosimetry.patient_dosimetry(ctx, code))
    return result


@router.post("/patients/{code}/dosimetry", status_code=201, responses=ERRORS)
def dosimetry_store(
    body: DosimetryIn,
    request: Request,
    to: Visible = Depends(visible(dosimetry.store_cycle)),
) -> dict[str, Any]:
    """Store a cycle's results (medical physicist): 403 for anyone else and 404 for a patient
    out of reach, both before the body is validated."""
    code = to.patient.patient_code
    records = [r.model_dump(exclude_none=True) for r in body.records]
    with audited(request, to.who, reason=body.reason) as w:
        rows = dosimetry.store_cycle(
            w,
            code,
            body.cycle,
            records,
            case_id=body.case_id,
            replace=body.replace,
        )
        return {"patient_id": code, "cycle": body.cycle, "stored": len(rows)}
