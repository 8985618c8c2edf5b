"""JSON API under ``/api/v1``: the same services and permission layer as the pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from reluth.auth import service as auth
from reluth.auth.models import ApiToken, User
from reluth.auth.policy import Action, Resource
from reluth.web import dashboard
from reluth.web.deps import DB_SESSION, Auth, RecordId, current_auth, now, require

router = APIRouter(tags=["api"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    403: {"description": "Not allowed for this role or centre"},
    404: {"description": "Not found"},
    422: {"description": "Invalid input (names the field and what is accepted)"},
}


class Me(BaseModel):
    username: str
    role: str
    centres: list[str]
    blinded: bool


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=80)


class TokenOut(BaseModel):
    id: int
    name: str
    created_at: dt.datetime
    revoked: bool


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only its SHA-256 is stored.")


class UserIn(BaseModel):
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
    from reluth.cli_support import to_jsonable

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
    row, plain = auth.create_token(db, who.user, body.name, now(request))
    return TokenCreated(**_token_out(row).model_dump(), token=plain)


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses=ERRORS)
def tokens_revoke(
    token_id: RecordId,
    request: Request,
    who: Auth = Depends(require(Action.WRITE, Resource.OWN_TOKENS)),
    db: Session = DB_SESSION,
) -> TokenOut:
    return _token_out(auth.revoke_token(db, token_id, now(request), owner=who.user))


@router.get("/users", response_model=list[UserOut], responses=ERRORS)
def users_list(
    _who: Auth = Depends(require(Action.READ, Resource.USER)), db: Session = DB_SESSION
) -> list[UserOut]:
    return [_user_out(u) for u in auth.list_users(db)]


@router.post("/users", response_model=UserOut, status_code=201, responses=ERRORS)
def users_create(
    body: UserIn,
    _who: Auth = Depends(require(Action.WRITE, Resource.USER)),
    db: Session = DB_SESSION,
) -> UserOut:
    return _user_out(auth.create_user(db, body.username, body.role, body.password, body.centres))
