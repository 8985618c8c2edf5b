"""JSON API under ``/api/v1``: the same services and permission layer as the pages."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, field_validator

from reluth.auth import service as auth
from reluth.auth.models import ApiToken, User
from reluth.core.context import Ctx
from reluth.patients import service as patients
from reluth.randomization import service as randomization
from reluth.records import dashboard, views
from reluth.safety import service as safety
from reluth.sites import service as sites
from reluth.treatment import service as treatment
from reluth.values import to_jsonable
from reluth.web.deps import READ, WHO, Auth, RecordId, Visible, audited, calls, visible

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
    via: str = Field(description="how this request authenticated: web_session, api_token, ...")


class TokenIn(ApiIn):
    name: str = Field(min_length=1, max_length=80)
    expires_in_days: int | None = Field(default=90, ge=1, le=366, description="null: never")


class TokenOut(BaseModel):
    id: int
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
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
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked=row.revoked_at is not None,
    )


def _user_out(user: User) -> UserOut:
    return UserOut(
        username=user.username,
        role=user.role,
        centres=sorted(c.code for c in user.centres),
        active=user.active,
    )


@router.get("/me", response_model=Me, responses=ERRORS)
def me(who: Auth = WHO, ctx: Ctx = READ) -> Me:
    codes = {c.id: c.code for c in sites.list_centres(ctx.session)}
    return Me(
        username=who.actor.username,
        role=who.actor.role.value,
        centres=sorted(codes[c] for c in who.actor.centre_ids if c in codes),
        blinded=who.actor.blinded,
        via=who.actor.via.value,
    )


@router.get("/dashboard", responses=ERRORS)
def dashboard_data(
    request: Request,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> dict[str, Any]:
    result: dict[str, Any] = to_jsonable(dashboard.build(ctx))
    return result


@router.get("/tokens", response_model=list[TokenOut], responses=ERRORS)
def tokens_list(ctx: Ctx = READ) -> list[TokenOut]:
    return [_token_out(t) for t in auth.list_tokens(ctx)]


@router.post("/tokens", response_model=TokenCreated, status_code=201, responses=ERRORS)
def tokens_create(
    body: TokenIn, request: Request, who: Auth = Depends(calls(auth.create_token))
) -> TokenCreated:
    """A token for yourself, from a password login (a web session or a CLI login token; an API
    token cannot create tokens)."""
    with audited(request, who) as w:
        row, plain = auth.create_token(w, body.name, body.expires_in_days)
        return TokenCreated(**_token_out(row).model_dump(), token=plain)


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses=ERRORS)
def tokens_revoke(token_id: RecordId, request: Request, who: Auth = WHO) -> TokenOut:
    with audited(request, who) as w:
        return _token_out(auth.revoke_token(w, token_id))


@router.get("/users", response_model=list[UserOut], responses=ERRORS)
def users_list(ctx: Ctx = READ) -> list[UserOut]:
    return [_user_out(u) for u in auth.list_users(ctx)]


@router.post("/users", response_model=UserOut, status_code=201, responses=ERRORS)
def users_create(
    body: UserIn, request: Request, who: Auth = Depends(calls(auth.create_user))
) -> UserOut:
    with audited(request, who) as w:
        return _user_out(auth.create_user(w, body.username, body.role, body.password, body.centres))


class UserChange(ApiIn):
    """An account change: ``reason`` always; ``role``/``centres`` for a role change, ``centres``
    for a centre change, ``temporary_password`` for a reset."""

    reason: str | None = Field(default=None, min_length=1, max_length=2000)
    role: str | None = Field(default=None, max_length=32)
    centres: list[str] | None = Field(default=None, max_length=50)
    temporary_password: str | None = Field(default=None, max_length=1024)


USER_ACTION = "^(deactivate|reactivate|unlock|reset-password|set-role|set-centres)$"


@router.post("/users/{username}/{action}", response_model=UserOut, responses=ERRORS)
def users_change(
    body: UserChange,
    request: Request,
    username: str = PathParam(pattern=auth.USERNAME_PATTERN, max_length=80),
    action: str = PathParam(pattern=USER_ACTION),
    who: Auth = Depends(calls(auth.set_active)),
) -> UserOut:
    """Deactivate, reactivate, unlock, reset the password of, or change the role or centres of
    an account (administrators; each an audit row with its reason)."""
    with audited(request, who, reason=body.reason) as w:
        if action in ("deactivate", "reactivate"):
            user = auth.set_active(w, username, action == "reactivate")
        elif action == "unlock":
            auth.unlock(w, username)
            user = auth.get_user(w.session, username)
        elif action == "reset-password":
            user = auth.reset_password(w, username, body.temporary_password or "")
        elif action == "set-role":
            user = auth.set_role(w, username, body.role or "", body.centres)
        else:
            user = auth.set_centres(w, username, body.centres or [])
        return _user_out(user)


@router.get("/users/review", responses=ERRORS)
def users_review(ctx: Ctx = READ) -> list[dict[str, Any]]:
    """Access review: every grant of an unblinded role, who granted it, when and why."""
    return [to_jsonable(g) for g in auth.access_review(ctx)]


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


class RandomizeIn(ApiIn):
    request_id: str = Field(min_length=1, max_length=80, description="retry-safe request id")


PatientCode = Annotated[str, PathParam(pattern=r"^C\d{2}-\d{4}$", max_length=8)]


@router.get("/patients", responses=ERRORS)
def patients_list(
    q: str = Query("", max_length=40, pattern=views.PATIENT_SEARCH),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> list[dict[str, Any]]:
    return [to_jsonable(r) for r in views.patient_list(ctx, q)]


@router.post("/patients", status_code=201, responses=ERRORS)
def patients_register(
    body: PatientIn,
    request: Request,
    who: Auth = Depends(calls(patients.register_patient)),
) -> dict[str, Any]:
    with audited(request, who) as w:
        patient = patients.register_patient(
            w,
            body.centre,
            sex=body.sex,
            birth_year=body.birth_year,
        )
        return {"patient_id": patient.patient_code, "centre": body.centre}


@router.get("/patients/{code}", responses=ERRORS)
def patients_get(
    code: PatientCode,
    request: Request,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> dict[str, Any]:
    result: dict[str, Any] = to_jsonable(views.timeline(ctx, code))
    return result


@router.post("/patients/{code}/screening", status_code=201, responses=ERRORS)
def patients_screen(
    body: dict[str, Any],
    request: Request,
    to: Visible = Depends(visible(patients.screen_patient)),
) -> dict[str, Any]:
    who, patient = to.who, to.patient
    body = {**body, "patient_id": patient.patient_code}
    with audited(request, who) as w:
        outcome = patients.screen_patient(w, body)
    result: dict[str, Any] = to_jsonable(outcome)
    return result


@router.post("/patients/{code}/randomize", responses=ERRORS)
def patients_randomize(
    body: RandomizeIn,
    request: Request,
    to: Visible = Depends(visible(randomization.randomize)),
) -> dict[str, Any]:
    who, patient = to.who, to.patient
    with audited(request, who) as w:
        outcome = randomization.randomize(w, patient.patient_code, body.request_id)
    result: dict[str, Any] = to_jsonable(outcome)
    return result


@router.post("/patients/{code}/labs", status_code=201, responses=ERRORS)
def labs_add(
    body: LabIn,
    request: Request,
    to: Visible = Depends(visible(safety.record_lab)),
) -> dict[str, Any]:
    who, patient = to.who, to.patient
    raw = {k: v for k, v in body.model_dump().items() if v is not None}
    with audited(request, who) as w:
        row = safety.record_lab(w, patient.patient_code, raw)
        return {"id": row.id, "test": row.analyte, "ctcae_grade": row.ctcae_grade}


# --- inclusion, second-PRRT cycles, pre-randomization assessment ------------------------------


class InclusionIn(ApiIn):
    consent_date: dt.date = Field(description="date the informed consent was signed")
    inclusion_date: dt.date | None = Field(default=None, description="default: today")


class InclusionOut(BaseModel):
    patient_id: str
    consent_date: dt.date | None
    inclusion_date: dt.date


class CycleIn(ApiIn):
    cycle: int = Field(
        ge=1, le=99, description="1, 2 (second PRRT); 3, 4 (experimental arm): the protocol's"
    )
    administered_on: dt.date
    activity_gbq: Decimal = Field(
        ge=treatment.ACTIVITY_MIN_GBQ, le=treatment.ACTIVITY_MAX_GBQ, max_digits=6, decimal_places=3
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
    to: Visible = Depends(visible(patients.include_patient)),
) -> InclusionOut:
    who, patient = to.who, to.patient
    with audited(request, who) as w:
        row = patients.include_patient(
            w,
            patient.patient_code,
            body.consent_date,
            body.inclusion_date,
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
    to: Visible = Depends(visible(treatment.record_cycle)),
) -> CycleOut:
    who, patient = to.who, to.patient
    with audited(request, who) as w:
        row = treatment.record_cycle(
            w,
            patient.patient_code,
            body.cycle,
            body.administered_on,
            body.activity_gbq,
            body.lot,
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
    to: Visible = Depends(visible(patients.record_pre_randomization)),
) -> PreRandomizationOut:
    who, patient = to.who, to.patient
    with audited(request, who) as w:
        row = patients.record_pre_randomization(
            w,
            patient.patient_code,
            body.assessment_date,
            body.radiological_progression,
            body.overall_response,
            body.comment or None,
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
    auth_method: str | None = Field(description="web_session, api_token, cli_token, ...")
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
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> list[AuditOut]:
    """Every audit row of the patient's records (old value, new value, who, role, reason)."""
    return [AuditOut.model_validate(r) for r in views.audit_history(ctx, code)]
