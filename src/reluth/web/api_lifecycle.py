"""JSON API of the data lifecycle: locks and freezes of forms, patients, centres and the study
(a locked record refuses every write with 423, naming the lock)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from pydantic import Field

from reluth.core.context import Ctx
from reluth.lifecycle import service as lifecycle
from reluth.values import to_jsonable
from reluth.web.api import ERRORS, ApiIn, PatientCode
from reluth.web.deps import READ, Auth, RecordId, audited, calls

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
