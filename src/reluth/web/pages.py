"""Server-rendered pages. Each route parses, calls one service, and renders a template."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlparse

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from reluth.auth import service as auth
from reluth.auth.policy import Action, Resource
from reluth.auth.roles import Role
from reluth.errors import ReluthError, ValidationError
from reluth.web import dashboard
from reluth.web.deps import (
    DB_SESSION,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Auth,
    RecordId,
    auth_write,
    check_login_csrf,
    current_auth,
    now,
    require,
)

router = APIRouter(include_in_schema=False)


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths are followed after login (no open redirect)."""
    if not target:
        return "/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def home_for(role: Role) -> str:
    if role is Role.CENTRAL_REVIEWER:
        return "/review"
    if role is Role.ADMIN:
        return "/admin/users"
    if role is Role.MEDICAL_PHYSICIST:
        return "/patients"
    return "/dashboard"


# --- login / logout ---------------------------------------------------------------------------


def _login_page(
    request: Request, next_url: str, error: str | None = None, username: str = "", status: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        {"csrf": token, "next": next_url, "error": error, "username": username, "who": None},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.app.state.secure_cookies,
        path="/login",
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _login_page(request, _safe_next(next))


@router.post("/login")
def login_submit(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    csrf_token: str = Form(""),
    next: str = Form("/"),
    db: Session = DB_SESSION,
) -> Response:
    check_login_csrf(request, csrf_token)
    failure: auth.LoginFailed | None = None
    with auth_write(request) as w:  # the failed-attempt count is kept even on failure
        try:
            user = auth.authenticate(w, username.strip(), password, now(request))
        except auth.LoginFailed as exc:
            failure = exc
        else:
            opened = auth.open_session(w, user, now(request))
            role = Role(user.role)
    if failure is not None:
        return _login_page(request, _safe_next(next), failure.message, username, status=401)
    target = _safe_next(next)
    if target == "/":
        target = home_for(role)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        opened.cookie_token,
        httponly=True,
        samesite="lax",
        secure=request.app.state.secure_cookies,
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(
    request: Request, who: Auth = Depends(current_auth), db: Session = DB_SESSION
) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with auth_write(request) as w:
            auth.end_session(w, cookie, now(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def root(who: Auth = Depends(current_auth)) -> Response:
    return RedirectResponse(home_for(who.principal.role), status_code=303)


# --- dashboard -------------------------------------------------------------------------------


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(
    request: Request,
    who: Auth = Depends(require(Action.READ, Resource.DASHBOARD)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    data = dashboard.build(db, who.principal, now(request))
    return render(request, "dashboard.html", {"who": who, "d": data})


# --- own API tokens ---------------------------------------------------------------------------


@router.get("/account/tokens", response_class=HTMLResponse)
def tokens_page(
    request: Request,
    who: Auth = Depends(require(Action.READ, Resource.OWN_TOKENS)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    tokens = auth.list_tokens(db, who.user)
    return render(request, "tokens.html", {"who": who, "tokens": tokens, "new_token": None})


@router.post("/account/tokens", response_class=HTMLResponse)
def tokens_create(
    request: Request,
    name: str = Form(""),
    who: Auth = Depends(require(Action.WRITE, Resource.OWN_TOKENS)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    error = None
    new_token = None
    try:
        with auth_write(request) as w:
            _row, new_token = auth.create_token(w, who.user, name, now(request))
    except ValidationError as exc:
        error = exc
    tokens = auth.list_tokens(db, who.user)
    return render(
        request,
        "tokens.html",
        {"who": who, "tokens": tokens, "new_token": new_token, "error": error, "name": name},
        status_code=422 if error else 200,
    )


@router.post("/account/tokens/{token_id}/revoke")
def tokens_revoke(
    request: Request,
    token_id: RecordId,
    who: Auth = Depends(require(Action.WRITE, Resource.OWN_TOKENS)),
    db: Session = DB_SESSION,
) -> Response:
    with auth_write(request) as w:
        auth.revoke_token(w, token_id, now(request), owner=who.user)
    return RedirectResponse("/account/tokens", status_code=303)


# --- admin: users -----------------------------------------------------------------------------


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(
    request: Request,
    who: Auth = Depends(require(Action.READ, Resource.USER)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    return render(request, "users.html", _users_context(db, who))


def _users_context(db: Session, who: Auth, **extra: Any) -> dict[str, Any]:
    return {
        "who": who,
        "users": auth.list_users(db),
        "centres": auth.list_centres(db),
        "roles": list(Role),
        "form": {},
        "error": None,
        **extra,
    }


@router.post("/admin/users", response_class=HTMLResponse)
def users_create(
    request: Request,
    username: str = Form(""),
    role: str = Form(""),
    password: str = Form(""),
    centres: list[str] = Form(default_factory=list),
    who: Auth = Depends(require(Action.WRITE, Resource.USER)),
    db: Session = DB_SESSION,
) -> Response:
    try:
        with auth_write(request) as w:
            auth.create_user(w, username.strip(), role, password, centres)
    except ReluthError as exc:
        form = {"username": username, "role": role, "centres": centres}
        return render(
            request,
            "users.html",
            _users_context(db, who, form=form, error=exc),
            status_code=exc.http_status,
        )
    return RedirectResponse("/admin/users", status_code=303)
