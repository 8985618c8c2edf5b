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
from reluth.auth.actor import Actor
from reluth.core.context import Ctx, read_context, writing
from reluth.core.trial import Trial
from reluth.db.session import exempt_transaction
from reluth.errors import PermissionDenied, ValidationError
from reluth.i18n import N_, set_locale

SESSION_COOKIE = "reluth_session"
LOGIN_CSRF_COOKIE = "reluth_login_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The cookie of the header's language switch (the account's setting wins once logged in).
LANGUAGE_COOKIE = "reluth_lang"


class LoginRequired(Exception):
    """No valid session or token: pages redirect to the login page, the API answers 401."""


class PasswordChangeRequired(PermissionDenied):
    """The account's password was reset: nothing but changing it (or logging out) until then."""

    def __init__(self) -> None:
        super().__init__(N_("your password was reset: choose a new one at /account/password"))


#: What a session whose password was reset may still reach.
PASSWORD_CHANGE_PATHS = frozenset({"/account/password", "/logout"})


class CsrfRejected(PermissionDenied):
    def __init__(self) -> None:
        super().__init__(N_("CSRF token missing or invalid: reload the page and submit again"))


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
def session_write(request: Request) -> Iterator[Session]:
    """A short unaudited write transaction for browser sessions and login throttling only
    (:func:`reluth.db.session.exempt_transaction` refuses any other table)."""
    release_read_connection(request)
    with exempt_transaction(request.app.state.engine) as db:
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
    """Who is behind a request: the authenticated actor, and the CSRF token of their browser
    session (None for token-authenticated API calls)."""

    actor: Actor
    csrf_token: str | None
    via_token: bool
    must_change_password: bool = False
    #: the account's page language (None: the cookie or the browser decides)
    language: str | None = None


def trial(request: Request) -> Trial:
    value: Trial = request.app.state.trial
    return value


def _authenticate(request: Request, db: Session) -> Auth | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        actor = auth.actor_for_token(db, header[7:].strip(), now(request))
        if actor is None:
            return None
        return Auth(actor, None, via_token=True)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    moment = now(request)
    row = auth.resolve_session(db, cookie, moment, write=False)
    if row is None:
        # Unknown, ended, idle or too old: record the expiry if it is not recorded yet.
        if auth.session_needs_write(db, cookie, moment):
            with session_write(request) as w:
                auth.resolve_session(w, cookie, moment)
        return None
    if auth.session_row_needs_write(row, moment):  # the periodic last_seen_at touch
        with session_write(request) as w:
            auth.resolve_session(w, cookie, moment)
        db.expire_all()
        row = auth.resolve_session(db, cookie, moment, write=False)
        if row is None:
            return None
    return Auth(
        auth.actor_for_session(row),
        row.csrf_token,
        via_token=False,
        must_change_password=row.user.must_change_password,
        language=row.user.language,
    )


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
    if found.language:
        set_locale(found.language)  # the account's choice wins over cookie and browser
    if found.must_change_password and request.url.path not in PASSWORD_CHANGE_PATHS:
        raise PasswordChangeRequired()
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
            raise ValidationError(
                name, N_("contains a NUL character"), N_("text without control codes")
            )


#: The authenticated person behind a request (any role: the services ask the policy).
WHO: Any = Depends(current_auth)


def read_ctx(request: Request, who: Auth = WHO, db: Session = DB_SESSION) -> Ctx:
    """The read-only service context of a request: its read session, actor and trial."""
    return read_context(db, who.actor, trial(request))


#: The request's read-only service context.
READ: Any = Depends(read_ctx)


def _entry(fn: Callable[..., Any]) -> Any:
    entry = getattr(fn, "__reluth_service__", None)
    if entry is None:
        raise TypeError(f"{fn!r} is not a declared service (reluth.core.service.service)")
    return entry


def calls(*services: Callable[..., Any]) -> Callable[..., Auth]:
    """A dependency naming the services a route will call: the policy is asked, from those
    services' own declared permissions, before the request body is parsed (so a person who may
    not call them gets 403 whatever they send). The services check again when called."""
    entries = [_entry(fn) for fn in services]

    def dependency(who: Auth = WHO) -> Auth:
        for entry in entries:
            who.actor.require(entry.action, entry.resource)
        return who

    dependency.__name__ = "calls_" + "_".join(e.name.rsplit(".", 1)[-1] for e in entries)
    return dependency


@dataclass(frozen=True)
class Visible:
    """Who asks, and the patient named in the path, which they may act on."""

    who: Auth
    patient: Any  # reluth.patients.models.Patient


def may_call(who: Auth, fn: Callable[..., Any]) -> bool:
    """Whether the actor may call service ``fn`` at all (to offer it on a page); the service
    still checks the record's centre when called."""
    entry = _entry(fn)
    return who.actor.can(entry.action, entry.resource)


def patient_for(ctx: Ctx, code: str, fn: Callable[..., Any]) -> Any:
    """The patient ``code`` for a page about to offer (or call) service ``fn``: the policy is
    asked from ``fn``'s declared permission; a patient of another centre is NotFound."""
    from reluth.records import views

    entry = _entry(fn)
    return views.visible_patient(ctx, code, entry.resource, entry.action)


def visible(fn: Callable[..., Any]) -> Callable[..., Visible]:
    """A dependency for routes of one patient that will call service ``fn``: 403 unless the
    actor may call it, 404 for a patient of a centre they do not see (as for an unknown id),
    both before the body is validated — so a cross-centre request answers 404 whatever its
    body. The patient is scoped with ``fn``'s declared permission."""
    from reluth.records import views

    entry = _entry(fn)

    def dependency(
        code: str = Path(pattern=r"^C\d{2}-\d{4}$", max_length=8),
        who: Auth = WHO,
        ctx: Ctx = READ,
    ) -> Visible:
        return Visible(who, views.visible_patient(ctx, code, entry.resource, entry.action))

    dependency.__name__ = f"visible_for_{entry.name.rsplit('.', 1)[-1]}"
    return dependency


def check_login_csrf(request: Request, given: str | None) -> None:
    """Double-submit check for the login form (there is no session yet)."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not given or not secrets.compare_digest(given, expected):
        raise CsrfRejected()


@contextmanager
def audited(request: Request, who: Auth, reason: str | None = None) -> Iterator[Ctx]:
    """The one write door (an audited unit of work) as the person behind this request."""
    release_read_connection(request)
    with writing(request.app.state.engine, who.actor, trial(request), reason=reason) as ctx:
        yield ctx


def today(request: Request) -> dt.date:
    """Today at the trial's sites."""
    return trial(request).today()
