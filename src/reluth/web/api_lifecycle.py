"""JSON API of the data lifecycle: locks and freezes of forms, patients, centres and the study
(a locked record refuses every write with 423, naming the lock)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from pydantic import Field

from reluth.core.context import Ctx
from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.lifecycle import sdv_service as sdv
from reluth.lifecycle import service as lifecycle
from reluth.lifecycle import signature_service as signing
from reluth.values import to_jsonable
from reluth.web.api import ERRORS, ApiIn, PatientCode
from reluth.web.deps import READ, Auth, RecordId, Visible, audited, calls, visible

router = APIRouter(tags=["lifecycle"])

LIFECYCLE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    423: {"description": "Locked: names the lock (who, when, why)"},
}

TableName = Annotated[str, PathParam(pattern=r"^[a-z_]{1,64}$", max_length=64)]
CentreCode = Annotated[str, PathParam(pattern=r"^C\d{2}$", max_length=8)]


class ReasonIn(ApiIn):
    reason: str = Field(min_length=1, max_length=2000, description="why (audit trail)")


def _apply(
    request: Request, who: Auth, scope: str, ident: str | None, action: str, reason: str
) -> dict[str, Any]:
    kind = "freeze" if action in ("freeze", "unfreeze") else "lock"
    lifting = action in ("unlock", "unfreeze")
    with audited(request, who, reason=reason if lifting else None) as w:
        if lifting:
            row = lifecycle.unlock(w, scope, ident, reason, kind)
        else:
            row = lifecycle.lock(w, scope, ident, reason, kind)
        out: dict[str, Any] = to_jsonable(lifecycle.lock_view(row))
    out["active"] = not lifting
    path = lifecycle.CHECKPOINTS.pop(out["id"], None)
    if path is not None:
        out["checkpoint"] = path.name
    return out


LOCKER: Any = Depends(calls(lifecycle.lock))


def _patient_route(action: str) -> None:
    @router.post(
        f"/patients/{{code}}/{action}", responses=LIFECYCLE_ERRORS, name=f"patient_{action}"
    )
    def route(code: PatientCode, body: ReasonIn, request: Request, who: Auth = LOCKER) -> Any:
        return _apply(request, who, "patient", code, action, body.reason)

    route.__doc__ = f"{action.capitalize()} a patient's casebook (every record of the patient)."


def _form_route(action: str) -> None:
    @router.post(
        f"/forms/{{table}}/{{record_id}}/{action}",
        responses=LIFECYCLE_ERRORS,
        name=f"form_{action}",
    )
    def route(
        table: TableName, record_id: RecordId, body: ReasonIn, request: Request, who: Auth = LOCKER
    ) -> Any:
        return _apply(request, who, "form", f"{table}/{record_id}", action, body.reason)

    route.__doc__ = f"{action.capitalize()} one form instance (a record: table and id)."


def _centre_route(action: str) -> None:
    @router.post(
        f"/centres/{{centre}}/{action}", responses=LIFECYCLE_ERRORS, name=f"centre_{action}"
    )
    def route(centre: CentreCode, body: ReasonIn, request: Request, who: Auth = LOCKER) -> Any:
        return _apply(request, who, "centre", centre, action, body.reason)

    route.__doc__ = f"{action.capitalize()} a centre (its patients' records, new registrations)."


def _study_route(action: str) -> None:
    @router.post(f"/study/{action}", responses=LIFECYCLE_ERRORS, name=f"study_{action}")
    def route(body: ReasonIn, request: Request, who: Auth = LOCKER) -> Any:
        return _apply(request, who, "study", None, action, body.reason)

    route.__doc__ = _STUDY_DOCS[action]


_STUDY_DOCS = {
    "lock": "The database lock: nothing changes; a signed audit checkpoint is written "
    "(its file name in ``checkpoint``).",
    "unlock": "Lift the database lock.",
    "freeze": "Freeze the study: no data entry; queries, SDV and signatures go on.",
    "unfreeze": "Lift the freeze.",
}

for _action in ("lock", "unlock"):
    _patient_route(_action)
    _form_route(_action)
    _centre_route(_action)
for _action in _STUDY_DOCS:
    _study_route(_action)


@router.get("/locks", responses=LIFECYCLE_ERRORS)
def locks_list(
    patient: str | None = Query(None, pattern=r"^C\d{2}-\d{4}$", max_length=8),
    ctx: Ctx = READ,
) -> list[dict[str, Any]]:
    """The active locks and freezes (those covering ``patient`` if given)."""
    return [to_jsonable(v) for v in lifecycle.active_locks(ctx, patient)]


# --- e-signatures -------------------------------------------------------------------------


class SignIn(ApiIn):
    """What to sign, and the signer's password re-entered (a password login only: an API
    token cannot sign)."""

    scope: str = Field(pattern="^(patient|visit|form)$", description="casebook, visit or form")
    password: str = Field(min_length=1, max_length=1024)
    meaning: str | None = Field(default=None, max_length=500, description="default per scope")
    visit_code: str | None = Field(default=None, max_length=32, description="for a visit")
    table: str | None = Field(default=None, max_length=64, description="for a form")
    record_id: int | None = Field(default=None, ge=1, le=2**31 - 1, description="for a form")


@router.post("/patients/{code}/signatures", status_code=201, responses=LIFECYCLE_ERRORS)
def signatures_sign(
    code: PatientCode,
    body: SignIn,
    request: Request,
    to: Visible = Depends(visible(signing.sign)),
) -> dict[str, Any]:
    """The principal investigator of the patient's centre signs the casebook, a visit or a
    form (21 CFR 11.50, 11.200)."""
    with audited(request, to.who) as w:
        row = signing.sign(
            w,
            code,
            body.scope,
            body.password,
            body.meaning,
            visit_code=body.visit_code,
            table=body.table,
            record_id=body.record_id,
        )
        out: dict[str, Any] = to_jsonable(signing.signature_view(w.session, row))
    return out


@router.get("/patients/{code}/signatures", responses=LIFECYCLE_ERRORS)
def signatures_list(code: PatientCode, ctx: Ctx = READ) -> list[dict[str, Any]]:
    """A patient's signatures: printed name, UTC and site time, meaning, the hash of the values
    signed, and whether it still holds (or what change invalidated it)."""
    return [to_jsonable(v) for v in signing.signatures(ctx, code)]


class PrincipalIn(ApiIn):
    username: str = Field(min_length=2, max_length=80)
    centre: str = Field(pattern=r"^C\d{2}$", max_length=8)
    printed_name: str = Field(min_length=1, max_length=120)


class PrincipalOut(ApiIn):
    username: str = Field(min_length=2, max_length=80)
    centre: str = Field(pattern=r"^C\d{2}$", max_length=8)
    reason: str = Field(min_length=1, max_length=2000)


@router.get("/principal-investigators", responses=LIFECYCLE_ERRORS)
def principal_list(ctx: Ctx = READ) -> list[dict[str, str]]:
    return [
        {"username": u, "centre": c, "printed_name": n}
        for u, c, n in signing.principal_investigators(ctx)
    ]


@router.post("/principal-investigators", status_code=201, responses=LIFECYCLE_ERRORS)
def principal_designate(
    body: PrincipalIn,
    request: Request,
    who: Auth = Depends(calls(signing.designate_principal_investigator)),
) -> dict[str, str]:
    """Designate an investigator principal investigator of a centre (administrators)."""
    with audited(request, who) as w:
        signing.designate_principal_investigator(w, body.username, body.centre, body.printed_name)
    return body.model_dump()


@router.post("/principal-investigators/withdraw", responses=LIFECYCLE_ERRORS)
def principal_withdraw(
    body: PrincipalOut,
    request: Request,
    who: Auth = Depends(calls(signing.withdraw_principal_investigator)),
) -> dict[str, str]:
    with audited(request, who, reason=body.reason) as w:
        signing.withdraw_principal_investigator(w, body.username, body.centre)
    return {"username": body.username, "centre": body.centre}


# --- source-data verification -------------------------------------------------------------


class SdvIn(ApiIn):
    """A form instance (``table``, ``record_id``), one of its fields (``field`` too), or every
    form of a visit (``visit_code``)."""

    table: str | None = Field(default=None, max_length=64)
    record_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    field: str | None = Field(default=None, max_length=64)
    visit_code: str | None = Field(default=None, max_length=32)


@router.post("/patients/{code}/sdv", status_code=201, responses=LIFECYCLE_ERRORS)
def sdv_verify(
    code: PatientCode,
    body: SdvIn,
    request: Request,
    to: Visible = Depends(visible(sdv.verify)),
) -> list[dict[str, Any]]:
    """The monitor marks a field, a form or a visit verified against the source."""
    with audited(request, to.who) as w:
        if body.visit_code is not None:
            marks = sdv.verify_visit(w, code, body.visit_code)
        else:
            if body.table is None or body.record_id is None:
                raise ValidationError(
                    "table",
                    N_("a form or a visit_code is required"),
                    N_("table and record_id, or visit_code"),
                )
            marks = [sdv.verify(w, code, body.table, body.record_id, body.field)]
        return [
            {
                "id": m.id,
                "table": m.table_name,
                "record_id": m.record_id,
                "field": m.field,
                "scope": m.scope,
                "verified_by": m.verified_by,
            }
            for m in marks
        ]


@router.get("/patients/{code}/sdv", responses=LIFECYCLE_ERRORS)
def sdv_list(code: PatientCode, ctx: Ctx = READ) -> list[dict[str, Any]]:
    """A patient's SDV marks, each with the change that cleared it, if one did."""
    return [to_jsonable(v) for v in sdv.sdv_marks(ctx, code)]


@router.get("/sdv/report", responses=LIFECYCLE_ERRORS)
def sdv_report(
    centre: str | None = Query(None, pattern=r"^C\d{2}$", max_length=8), ctx: Ctx = READ
) -> list[dict[str, Any]]:
    """The monitor's report per centre: records required by the SDV plan and sampled, how many
    are verified, SDV cleared by later changes, and what is still to verify."""
    return [sdv.report_dict(r) for r in sdv.sdv_report(ctx, centre)]
