"""JSON API under ``/api/v1``: the same services and permission layer as the pages."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from reluth.auth import service as auth
from reluth.auth.models import ApiToken, User
from reluth.auth.policy import Action, Resource
from reluth.cli_support import to_jsonable
from reluth.errors import ValidationError
from reluth.patients import service as patients
from reluth.patients.models import Patient
from reluth.randomization import service as randomization
from reluth.safety import service as safety
from reluth.web import dashboard
from reluth.web import trial_views as views
from reluth.web.deps import (
    DB_SESSION,
    Auth,
    RecordId,
    audited,
    auth_write,
    current_auth,
    now,
    require,
    today,
)

router = APIRouter(tags=["api"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    403: {"description": "Not allowed for this role or centre"},
    404: {"description": "Not found"},
    409: {"description": "Conflicts with the stored state, or a protocol precondition fails"},
    422: {"description": "Invalid input (names the field and what is accepted)"},
}


def one_of(values: Any) -> str:
    """A regular expression accepting exactly ``values`` (for request-model fields)."""
    escaped = (re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", str(v)) for v in values)
    return "^(" + "|".join(escaped) + ")$"


class ApiIn(BaseModel):
    """Base of the request models: text may not hold NUL characters, which PostgreSQL cannot
    store (refused as 422 naming the field, not a server error)."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("NUL character (\\u0000) not accepted")
        return value


class Me(BaseModel):
    username: str
    role: str
    centres: list[str]
    blinded: bool


class TokenIn(ApiIn):
    name: str = Field(min_length=1, max_length=80)


class TokenOut(BaseModel):
    id: int
    name: str
    created_at: dt.datetime
    revoked: bool


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only its SHA-256 is stored.")


class UserIn(ApiIn):
    username: str = Field(min_length=2, max_length=80)
    role: str
    password: str = Field(min_length=auth.MIN_PASSWORD_LENGTH, max_length=1024)
    centres: list[str] = Field(default_factory=list, max_length=50)


class UserOut(BaseModel):
    username: str
    role: str
    centres: list[str]
    active: bool


def _token_out(row: ApiToken) -> TokenOut:
    return TokenOut(
        id=row.id, name=row.name, created_at=row.created_at, revoked=row.revoked_at is not None
    )


def _user_out(user: User) -> UserOut:
    return UserOut(
        username=user.username,
        role=user.role,
        centres=sorted(c.code for c in user.centres),
        active=user.active,
    )


@router.get("/me", response_model=Me, responses=ERRORS)
def me(who: Auth = Depends(current_auth)) -> Me:
    return Me(
        username=who.user.username,
        role=who.principal.role.value,
        centres=sorted(c.code for c in who.user.centres),
        blinded=who.principal.blinded,
    )


@router.get("/dashboard", responses=ERRORS)
def dashboard_data(
    request: Request,
    who: Auth = Depends(require(Action.READ, Resource.DASHBOARD)),
    db: Session = DB_SESSION,
) -> dict[str, Any]:
    result: dict[str, Any] = to_jsonable(dashboard.build(db, who.principal, now(request)))
    return result


@router.get("/tokens", response_model=list[TokenOut], responses=ERRORS)
def tokens_list(
    who: Auth = Depends(require(Action.READ, Resource.OWN_TOKENS)), db: Session = DB_SESSION
) -> list[TokenOut]:
    return [_token_out(t) for t in auth.list_tokens(db, who.user)]


@router.post("/tokens", response_model=TokenCreated, status_code=201, responses=ERRORS)
def tokens_create(
    body: TokenIn,
    request: Request,
    who: Auth = Depends(require(Action.WRITE, Resource.OWN_TOKENS)),
    db: Session = DB_SESSION,
) -> TokenCreated:
    with auth_write(request) as w:
        row, plain = auth.create_token(w, who.user, body.name, now(request))
    return TokenCreated(**_token_out(row).model_dump(), token=plain)


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses=ERRORS)
def tokens_revoke(
    token_id: RecordId,
    request: Request,
    who: Auth = Depends(require(Action.WRITE, Resource.OWN_TOKENS)),
    db: Session = DB_SESSION,
) -> TokenOut:
    with auth_write(request) as w:
        return _token_out(auth.revoke_token(w, token_id, now(request), owner=who.user))


@router.get("/users", response_model=list[UserOut], responses=ERRORS)
def users_list(
    _who: Auth = Depends(require(Action.READ, Resource.USER)), db: Session = DB_SESSION
) -> list[UserOut]:
    return [_user_out(u) for u in auth.list_users(db)]


@router.post("/users", response_model=UserOut, status_code=201, responses=ERRORS)
def users_create(
    body: UserIn,
    request: Request,
    _who: Auth = Depends(require(Action.WRITE, Resource.USER)),
) -> UserOut:
    with auth_write(request) as w:
        return _user_out(auth.create_user(w, body.username, body.role, body.password, body.centres))


# --- trial data -------------------------------------------------------------------------------


class PatientIn(ApiIn):
    centre: str = Field(min_length=1, max_length=8)
    sex: str | None = Field(default=None, max_length=8)
    birth_year: int | None = Field(default=None, ge=1000, le=9999)


class LabIn(ApiIn):
    test: str = Field(max_length=32)
    value: str = Field(max_length=32, description="decimal number as text")
    unit: str = Field(max_length=24)
    date: str = Field(max_length=10, description="YYYY-MM-DD")
    lln: str | None = Field(default=None, max_length=32)
    uln: str | None = Field(default=None, max_length=32)
    baseline: str | None = Field(default=None, max_length=32)


class LabCorrection(ApiIn):
    """What changes (omitted fields keep their saved value; ``""`` clears ULN), and why."""

    value: str | None = Field(default=None, max_length=32, description="in the entered unit")
    date: dt.date | None = Field(default=None, description="sample date")
    uln: str | None = Field(default=None, max_length=32, description="ULN in the canonical unit")
    lln: str | None = Field(default=None, max_length=32, description="for the grade only")
    baseline: str | None = Field(default=None, max_length=32, description="for the grade only")
    reason: str = Field(min_length=1, max_length=500, description="why the saved value changes")


class RandomizeIn(ApiIn):
    request_id: str = Field(min_length=1, max_length=80, description="retry-safe request id")


PatientCode = Annotated[str, PathParam(pattern=r"^C\d{2}-\d{4}$", max_length=8)]


@dataclass(frozen=True)
class Visible:
    """Who asks, and the patient named in the path, which they may act on."""

    who: Auth
    patient: Patient


def visible(resource: Resource, action: Action = Action.READ) -> Callable[..., Visible]:
    """A dependency for routes of one patient: 403 unless the role may ``action`` ``resource``;
    404 for a patient of a centre the person does not see, as for an unknown id. Dependencies
    run before the request body is validated, so a cross-centre request answers 404 whatever
    its body, as on the pages."""

    def dependency(
        code: PatientCode,
        who: Auth = Depends(require(action, resource)),
        db: Session = DB_SESSION,
    ) -> Visible:
        return Visible(who, views.visible_patient(db, who.principal, code, resource, action))

    dependency.__name__ = f"visible_{action.value}_{resource.value}"
    return dependency


@router.get("/patients", responses=ERRORS)
def patients_list(
    q: str = Query("", max_length=40, pattern=views.PATIENT_SEARCH),
    who: Auth = Depends(require(Action.READ, Resource.PATIENT)),
    db: Session = DB_SESSION,
) -> list[dict[str, Any]]:
    return [to_jsonable(r) for r in views.patient_list(db, who.principal, q)]


@router.post("/patients", status_code=201, responses=ERRORS)
def patients_register(
    body: PatientIn,
    request: Request,
    who: Auth = Depends(require(Action.WRITE, Resource.PATIENT)),
    db: Session = DB_SESSION,
) -> dict[str, Any]:
    centre = patients.get_centre(db, body.centre)
    who.principal.require(Action.WRITE, Resource.PATIENT, centre.id)
    with audited(request, who) as uow:
        patient = patients.register_patient(
            uow.session,
            body.centre,
            sex=body.sex,
            birth_year=body.birth_year,
            today=today(request),
        )
        return {"patient_id": patient.patient_code, "centre": body.centre}


@router.get("/patients/{code}", responses=ERRORS)
def patients_get(
    code: PatientCode,
    request: Request,
    who: Auth = Depends(require(Action.READ, Resource.PATIENT)),
    db: Session = DB_SESSION,
) -> dict[str, Any]:
    result: dict[str, Any] = to_jsonable(views.timeline(db, who.principal, code, now(request)))
    return result


@router.post("/patients/{code}/screening", status_code=201, responses=ERRORS)
def patients_screen(
    body: dict[str, Any],
    request: Request,
    to: Visible = Depends(visible(Resource.SCREENING, Action.WRITE)),
) -> dict[str, Any]:
    who, patient = to.who, to.patient
    body = {**body, "patient_id": patient.patient_code}
    with audited(request, who) as uow:
        outcome = patients.screen_patient(uow.session, body, today=today(request))
    result: dict[str, Any] = to_jsonable(outcome)
    return result


@router.post("/patients/{code}/randomize", responses=ERRORS)
def patients_randomize(
    body: RandomizeIn,
    request: Request,
    to: Visible = Depends(visible(Resource.RANDOMIZATION, Action.WRITE)),
) -> dict[str, Any]:
    who, patient = to.who, to.patient
    with audited(request, who) as uow:
        outcome = randomization.randomize(
            uow.session, uow.actor, patient.patient_code, body.request_id, now=now(request)
        )
    result: dict[str, Any] = to_jsonable(outcome)
    return result


@router.post("/patients/{code}/labs", status_code=201, responses=ERRORS)
def labs_add(
    body: LabIn,
    request: Request,
    to: Visible = Depends(visible(Resource.LAB, Action.WRITE)),
) -> dict[str, Any]:
    who, patient = to.who, to.patient
    raw = {k: v for k, v in body.model_dump().items() if v is not None}
    with audited(request, who) as uow:
        row = safety.record_lab(uow.session, patient.patient_code, raw, today(request))
        return {"id": row.id, "test": row.analyte, "ctcae_grade": row.ctcae_grade}


@router.put("/patients/{code}/labs/{lab_id}", responses=ERRORS)
def labs_correct(
    lab_id: RecordId,
    body: LabCorrection,
    request: Request,
    to: Visible = Depends(visible(Resource.LAB, Action.WRITE)),
) -> dict[str, Any]:
    """Correct a saved result (value, sample date, ULN) and re-grade it: a reason is required
    and the old values stay in the audit trail."""
    who, patient = to.who, to.patient
    changes = body.model_dump(exclude={"reason"}, exclude_unset=True)
    if not changes:
        raise ValidationError("body", "nothing to correct", "value, date, uln, lln or baseline")
    with audited(request, who, reason=body.reason) as uow:
        row = safety.edit_lab(uow.session, patient.patient_code, lab_id, changes, today(request))
        return {
            "id": row.id,
            "test": row.analyte,
            "value": str(row.value),
            "date": row.sample_date.isoformat(),
            "uln": None if row.uln is None else str(row.uln),
            "ctcae_grade": row.ctcae_grade,
        }


# --- inclusion, second-PRRT cycles, pre-randomization assessment ------------------------------


class InclusionIn(ApiIn):
    consent_date: dt.date = Field(description="date the informed consent was signed")
    inclusion_date: dt.date | None = Field(default=None, description="default: today")


class InclusionOut(BaseModel):
    patient_id: str
    consent_date: dt.date | None
    inclusion_date: dt.date


class CycleIn(ApiIn):
    cycle: int = Field(ge=1, le=4, description="1, 2 (second PRRT); 3, 4 (experimental arm)")
    administered_on: dt.date
    activity_gbq: Decimal = Field(
        ge=patients.ACTIVITY_GBQ_MIN, le=patients.ACTIVITY_GBQ_MAX, max_digits=6, decimal_places=3
    )
    lot: str = Field(min_length=1, max_length=40, pattern=r"\S", description="vial batch number")


class CycleOut(BaseModel):
    patient_id: str
    cycle: int
    administered_on: dt.date
    activity_gbq: float
    lot: str


class PreRandomizationIn(ApiIn):
    assessment_date: dt.date
    overall_response: str = Field(pattern=one_of(patients.RESPONSES))
    radiological_progression: bool | None = Field(
        default=None, description="default: as the overall response says (PD)"
    )
    comment: str | None = Field(default=None, max_length=2000)


class PreRandomizationOut(BaseModel):
    patient_id: str
    assessment_date: dt.date
    overall_response: str | None
    radiological_progression: bool


@router.post(
    "/patients/{code}/inclusion", response_model=InclusionOut, status_code=201, responses=ERRORS
)
def patients_include(
    body: InclusionIn,
    request: Request,
    to: Visible = Depends(visible(Resource.PATIENT, Action.WRITE)),
) -> InclusionOut:
    who, patient = to.who, to.patient
    with audited(request, who) as uow:
        row = patients.include_patient(
            uow.session,
            patient.patient_code,
            body.consent_date,
            body.inclusion_date,
            today=today(request),
        )
        return InclusionOut(
            patient_id=patient.patient_code,
            consent_date=row.consent_date,
            inclusion_date=row.inclusion_date,
        )


@router.post("/patients/{code}/cycles", response_model=CycleOut, status_code=201, responses=ERRORS)
def patients_cycle(
    body: CycleIn,
    request: Request,
    to: Visible = Depends(visible(Resource.TREATMENT, Action.WRITE)),
) -> CycleOut:
    who, patient = to.who, to.patient
    with audited(request, who) as uow:
        row = patients.record_cycle(
            uow.session,
            patient.patient_code,
            body.cycle,
            body.administered_on,
            body.activity_gbq,
            body.lot,
            today=today(request),
        )
        return CycleOut(
            patient_id=patient.patient_code,
            cycle=row.cycle,
            administered_on=row.administered_on,
            activity_gbq=float(row.activity_gbq),
            lot=row.lot,
        )


@router.post(
    "/patients/{code}/pre-randomization",
    response_model=PreRandomizationOut,
    status_code=201,
    responses=ERRORS,
)
def patients_pre_randomization(
    body: PreRandomizationIn,
    request: Request,
    to: Visible = Depends(visible(Resource.LOCAL_ASSESSMENT, Action.WRITE)),
) -> PreRandomizationOut:
    who, patient = to.who, to.patient
    with audited(request, who) as uow:
        row = patients.record_pre_randomization(
            uow.session,
            patient.patient_code,
            body.assessment_date,
            body.radiological_progression,
            body.overall_response,
            body.comment or None,
            today=today(request),
        )
        return PreRandomizationOut(
            patient_id=patient.patient_code,
            assessment_date=row.assessment_date,
            overall_response=row.overall_response,
            radiological_progression=row.radiological_progression,
        )


# --- audit history ----------------------------------------------------------------------------


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    at_utc: str
    username: str
    role: str
    action: str
    table_name: str
    record_id: str
    field: str | None
    old_value: str | None = Field(description="JSON")
    new_value: str | None = Field(description="JSON")
    reason: str | None


@router.get("/patients/{code}/audit", response_model=list[AuditOut], responses=ERRORS)
def patients_audit(
    code: PatientCode,
    who: Auth = Depends(require(Action.READ, Resource.AUDIT)),
    db: Session = DB_SESSION,
) -> list[AuditOut]:
    """Every audit row of the patient's records (old value, new value, who, role, reason)."""
    return [AuditOut.model_validate(r) for r in views.audit_history(db, who.principal, code)]
