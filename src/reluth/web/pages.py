"""Server-rendered pages. Each route parses, calls one service, and renders a template."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlparse

from fastapi import APIRouter, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from reluth.auth import service as auth
from reluth.auth.roles import Role
from reluth.core.context import Ctx
from reluth.errors import ReluthError, ValidationError
from reluth.i18n import N_
from reluth.i18n.messages import describe
from reluth.records import dashboard
from reluth.sites import service as sites
from reluth.web.deps import (
    LOGIN_CSRF_COOKIE,
    READ,
    SESSION_COOKIE,
    WHO,
    Auth,
    RecordId,
    audited,
    check_login_csrf,
    now,
    release_read_connection,
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
) -> Response:
    check_login_csrf(request, csrf_token)
    release_read_connection(request)
    engine, moment = request.app.state.engine, now(request)
    address = request.client.host if request.client else None
    try:
        actor, user = auth.password_login(engine, moment, username, password, address)
    except auth.LoginFailed as exc:
        return _login_page(request, _safe_next(next), describe(exc), username, status=401)
    opened = auth.start_web_session(engine, moment, user)
    target = _safe_next(next)
    if user.must_change_password:
        target = "/account/password"
    elif target == "/":
        target = home_for(actor.role)
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
def logout(request: Request, who: Auth = WHO) -> Response:
    if request.cookies.get(SESSION_COOKIE):
        with audited(request, who) as ctx:
            auth.logout_web(ctx)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/language")
async def language_switch(request: Request) -> Response:
    """The header's language switch: remembered in a cookie, and in the account when logged in
    (then it follows the person to any browser). Back to the page it was chosen on."""
    from reluth.i18n import LANGUAGES
    from reluth.web.deps import LANGUAGE_COOKIE, LoginRequired, current_auth, transaction

    form = await request.form()
    raw = form.get("lang")
    lang = raw if isinstance(raw, str) and raw in LANGUAGES else None
    if lang is None:
        raise ValidationError(
            "language",
            f"{raw!r} is not offered",
            ", ".join(LANGUAGES),
            code="not_accepted",
            params={"value": raw, "accepted": ", ".join(LANGUAGES)},
        )
    back = form.get("next")
    target = _safe_next(back if isinstance(back, str) else None)
    if request.cookies.get(SESSION_COOKIE):
        try:
            with transaction(request.app.state.sessionmaker) as db:
                who: Auth | None = await current_auth(request, db)  # checks the CSRF token
        except LoginRequired:
            who = None  # an ended session: the cookie alone remembers the choice
        if who is not None:
            with audited(request, who) as ctx:
                auth.set_own_language(ctx, lang)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        LANGUAGE_COOKIE,
        lang,
        max_age=400 * 24 * 3600,
        samesite="lax",
        secure=request.app.state.secure_cookies,
        path="/",
    )
    return response


@router.get("/")
def root(who: Auth = WHO) -> Response:
    return RedirectResponse(home_for(who.actor.role), status_code=303)


# --- own password -----------------------------------------------------------------------------


@router.get("/account/password", response_class=HTMLResponse)
def password_page(request: Request, who: Auth = WHO) -> HTMLResponse:
    return render(request, "password.html", {"who": who, "error": None, "done": False})


@router.post("/account/password", response_class=HTMLResponse)
def password_change(
    request: Request,
    current_password: str = Form(""),
    new_password: str = Form(""),
    who: Auth = WHO,
) -> Response:
    try:
        with audited(request, who) as ctx:
            auth.change_own_password(ctx, current_password, new_password)
    except ReluthError as exc:
        return render(
            request,
            "password.html",
            {"who": who, "error": exc, "done": False},
            status_code=exc.http_status,
        )
    return RedirectResponse(home_for(who.actor.role), status_code=303)


# --- dashboard -------------------------------------------------------------------------------


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request, who: Auth = WHO, ctx: Ctx = READ) -> HTMLResponse:
    return render(request, "dashboard.html", {"who": who, "d": dashboard.build(ctx)})


# --- own API tokens ---------------------------------------------------------------------------


def _tokens_page(
    request: Request, who: Auth, ctx: Ctx, status: int = 200, **extra: Any
) -> HTMLResponse:
    tokens = auth.list_tokens(ctx)
    context = {"who": who, "tokens": tokens, "new_token": None, "error": None, "name": ""}
    return render(request, "tokens.html", {**context, **extra}, status_code=status)


@router.get("/account/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, who: Auth = WHO, ctx: Ctx = READ) -> HTMLResponse:
    return _tokens_page(request, who, ctx)


@router.post("/account/tokens", response_class=HTMLResponse)
def tokens_create(
    request: Request,
    name: str = Form(""),
    expires_in_days: str = Form(str(auth.API_TOKEN_DEFAULT_DAYS)),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    try:
        days = _days(expires_in_days)
        with audited(request, who) as w:
            _row, new_token = auth.create_token(w, name, days)
    except ReluthError as exc:
        return _tokens_page(request, who, ctx, exc.http_status, error=exc, name=name)
    ctx.session.expire_all()
    return _tokens_page(request, who, ctx, new_token=new_token)


def _days(text: str) -> int:
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 3:
        raise ValidationError(
            "expires_in_days",
            repr(text[:8]),
            f"1..{auth.API_TOKEN_MAX_DAYS} days",
            code="not_an_integer_in_range",
            params={"value": text[:8], "lo": 1, "hi": auth.API_TOKEN_MAX_DAYS},
        )
    return int(value)


@router.post("/account/tokens/{token_id}/revoke")
def tokens_revoke(request: Request, token_id: RecordId, who: Auth = WHO) -> Response:
    with audited(request, who) as ctx:
        auth.revoke_token(ctx, token_id)
    return RedirectResponse("/account/tokens", status_code=303)


# --- admin: users -----------------------------------------------------------------------------


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, who: Auth = WHO, ctx: Ctx = READ) -> HTMLResponse:
    return render(request, "users.html", _users_context(ctx, who))


def _users_context(ctx: Ctx, who: Auth, **extra: Any) -> dict[str, Any]:
    return {
        "who": who,
        "users": auth.list_users(ctx),
        "centres": sites.list_centres(ctx.session),
        "roles": list(Role),
        "form": {},
        "error": None,
        "changed": None,
        **extra,
    }


@router.post("/admin/users", response_class=HTMLResponse)
def users_create(
    request: Request,
    username: str = Form(""),
    role: str = Form(""),
    password: str = Form(""),
    centres: list[str] = Form(default_factory=list),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    try:
        with audited(request, who) as w:
            auth.create_user(w, username.strip(), role, password, centres)
    except ReluthError as exc:
        form = {"username": username, "role": role, "centres": centres}
        return render(
            request,
            "users.html",
            _users_context(ctx, who, form=form, error=exc),
            status_code=exc.http_status,
        )
    return RedirectResponse("/admin/users", status_code=303)


#: Account changes offered on the users page: action -> what was done (translated when shown).
USER_ACTIONS = {
    "deactivate": N_("deactivated"),
    "reactivate": N_("reactivated"),
    "unlock": N_("unlocked"),
    "reset-password": N_("password reset"),
    "set-role": N_("role changed"),
    "set-centres": N_("centres changed"),
}


@router.post("/admin/users/{username}/{action}", response_class=HTMLResponse)
def users_change(
    request: Request,
    username: str = PathParam(pattern=auth.USERNAME_PATTERN, max_length=80),
    action: str = PathParam(pattern="^(" + "|".join(USER_ACTIONS) + ")$"),
    reason: str = Form(""),
    role: str = Form(""),
    centres: list[str] = Form(default_factory=list),
    temporary_password: str = Form(""),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    """Deactivate, reactivate, unlock, reset the password of, or change the role or centres of
    an account: each an audit row, with the reason where an existing account changes."""
    try:
        with audited(request, who, reason=reason or None) as w:
            if action in ("deactivate", "reactivate"):
                auth.set_active(w, username, action == "reactivate")
            elif action == "unlock":
                auth.unlock(w, username)
            elif action == "reset-password":
                auth.reset_password(w, username, temporary_password)
            elif action == "set-role":
                auth.set_role(w, username, role, centres or None)
            else:
                auth.set_centres(w, username, centres)
    except ReluthError as exc:
        return render(
            request,
            "users.html",
            _users_context(ctx, who, error=exc, target=username),
            status_code=exc.http_status,
        )
    ctx.session.expire_all()
    return render(
        request, "users.html", _users_context(ctx, who, changed=(username, USER_ACTIONS[action]))
    )


@router.get("/admin/access-review", response_class=HTMLResponse)
def access_review_page(request: Request, who: Auth = WHO, ctx: Ctx = READ) -> HTMLResponse:
    """Every grant of an unblinded role: who granted it, when, why, and whether it holds."""
    return render(request, "access_review.html", {"who": who, "grants": auth.access_review(ctx)})
