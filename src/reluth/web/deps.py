"""Request plumbing shared by pages and API: database session, who is asking, CSRF, permission.

Authentication comes from an API token (``Authorization: Bearer rlt_...``) or the session
cookie. Every state-changing request carried by the cookie must also carry the session's CSRF
token (form field ``csrf_token`` or header ``X-CSRF-Token``); token-authenticated API calls
carry no cookie and so need none.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session, sessionmaker

from reluth.auth import service as auth
from reluth.auth.models import User
from reluth.auth.policy import Action, Principal, Resource
from reluth.db.session import Actor, UnitOfWork, unit_of_work
from reluth.errors import PermissionDenied, ValidationError

SESSION_COOKIE = "reluth_session"
LOGIN_CSRF_COOKIE = "reluth_login_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """No valid session or token: pages redirect to the login page, the API answers 401."""


class CsrfRejected(PermissionDenied):
    def __init__(self) -> None:
        super().__init__("CSRF token missing or invalid: reload the page and submit again")


def now(request: Request) -> dt.datetime:
    clock: Callable[[], dt.datetime] = request.app.state.clock
    return clock()


@contextmanager
def transaction(factory: sessionmaker[Session], immediate: bool = False) -> Iterator[Session]:
    """One session, committed on success, rolled back on any error, always closed. With
    ``immediate`` the SQLite transaction takes the write lock at BEGIN, so concurrent writers
    queue (busy timeout) instead of failing when a read transaction upgrades to a write."""
    db = factory()
    if immediate:
        db.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
    try:
        yield db
        db.commit()
    except Exception:
        db.rollback()
        raise
    finally:
        db.close()


@contextmanager
def auth_write(request: Request) -> Iterator[Session]:
    """A short write transaction for the auth tables (login, sessions, tokens, users)."""
    release_read_connection(request)
    with transaction(request.app.state.sessionmaker, immediate=True) as db:
        yield db


def get_db(request: Request) -> Iterator[Session]:
    """Use as ``Depends(get_db, scope="function")``: the commit must happen before the response
    is sent, or a browser following a redirect can outrun it."""
    with transaction(request.app.state.sessionmaker) as db:
        request.state.db_session = db
        yield db


def release_read_connection(request: Request) -> None:
    """End the request's read transaction so that its pooled connection goes back to the pool
    before a write transaction takes another one: a request then never holds two connections
    at once, and a burst of requests cannot exhaust the pool while each waits for a second
    connection (seen under load as pool timeouts). Loaded objects stay usable."""
    db: Session | None = getattr(request.state, "db_session", None)
    if db is not None:
        db.commit()


#: The request's database session, committed before the response is sent.
DB_SESSION: Any = Depends(get_db, scope="function")


#: A record id in a URL path: bounded so no database is asked for an impossible key.
RecordId = Annotated[int, Path(ge=1, le=2**31 - 1, description="record id")]


@dataclass(frozen=True)
class Auth:
    principal: Principal
    user: User
    csrf_token: str | None  # None for token-authenticated API calls
    via_token: bool


def _authenticate(request: Request, db: Session) -> Auth | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        user = auth.resolve_token(db, header[7:].strip())
        if user is None:
            return None
        return Auth(auth.principal_for(user), user, None, via_token=True)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    moment = now(request)
    row = auth.resolve_session(db, cookie, moment, write=False)
    if row is None:
        # Unknown, ended, idle or too old: record the expiry if it is not recorded yet.
        if auth.session_needs_write(db, cookie, moment):
            with auth_write(request) as w:
                auth.resolve_session(w, cookie, moment)
        return None
    if auth.session_row_needs_write(row, moment):  # the periodic last_seen_at touch
        with auth_write(request) as w:
            auth.resolve_session(w, cookie, moment)
        db.expire_all()
        row = auth.resolve_session(db, cookie, moment, write=False)
        if row is None:
            return None
    return Auth(auth.principal_for(row.user), row.user, row.csrf_token, via_token=False)


async def _check_csrf(request: Request, expected: str | None) -> None:
    if request.method in SAFE_METHODS or expected is None:
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
    if not given or not secrets.compare_digest(given, expected):
        raise CsrfRejected()


async def current_auth(request: Request, db: Session = DB_SESSION) -> Auth:
    found = _authenticate(request, db)
    db.commit()  # end the read transaction before any audited unit of work opens
    if found is None:
        raise LoginRequired()
    await _check_csrf(request, found.csrf_token)
    await _refuse_nul_in_form(request)
    request.state.auth = found
    return found


async def _refuse_nul_in_form(request: Request) -> None:
    """A NUL character cannot be stored as text (PostgreSQL refuses it): a posted page form
    carrying one is refused up front, naming the field, instead of failing at commit."""
    if request.method in SAFE_METHODS:
        return
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return
    form = await request.form()
    for name, value in form.multi_items():
        if isinstance(value, str) and "\x00" in value:
            raise ValidationError(name, "contains a NUL character", "text without control codes")


def require(action: Action, resource: Resource) -> Callable[..., Auth]:
    """A dependency that admits only roles the policy grants ``action`` on ``resource``."""

    def dependency(who: Auth = Depends(current_auth)) -> Auth:
        who.principal.require(action, resource)
        return who

    dependency.__name__ = f"require_{action.value}_{resource.value}"
    return dependency


def check_login_csrf(request: Request, given: str | None) -> None:
    """Double-submit check for the login form (there is no session yet)."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not given or not secrets.compare_digest(given, expected):
        raise CsrfRejected()


def actor_of(who: Auth) -> Actor:
    return Actor(who.principal.username, who.principal.role.value)


@contextmanager
def audited(request: Request, who: Auth, reason: str | None = None) -> Iterator[UnitOfWork]:
    """The one write door (``unit_of_work``) as the person behind this request."""
    release_read_connection(request)
    with unit_of_work(
        request.app.state.engine, actor=actor_of(who), reason=reason, clock=request.app.state.clock
    ) as uow:
        yield uow


def today(request: Request) -> dt.date:
    return now(request).date()
