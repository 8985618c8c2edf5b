"""FastAPI application factory: server-rendered pages (Jinja2 + vendored htmx) and ``/api/v1``.

``create_app`` wires one engine, one session factory and one clock; routes live in
``pages.py`` (HTML) and ``api.py`` (JSON) and both ask the same permission layer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from reluth import __version__
from reluth.auth.actor import Actor
from reluth.auth.policy import Action, Resource
from reluth.config import get_settings
from reluth.core.trial import Trial
from reluth.db.engine import make_engine
from reluth.errors import ReluthError, from_pydantic
from reluth.i18n import (
    LANGUAGE_NAMES,
    LANGUAGES,
    N_,
    day_placeholder,
    format_day,
    format_moment,
    format_number,
    get_locale,
    gettext,
    negotiate,
    ngettext,
    normalise,
    pgettext,
    use_locale,
    vocabulary,
)
from reluth.i18n.messages import describe
from reluth.i18n.reasons import shown_reason
from reluth.protocol.definition import Protocol, load_protocol
from reluth.safety import seriousness
from reluth.web.deps import LANGUAGE_COOKIE, LoginRequired, PasswordChangeRequired

HERE = Path(__file__).parent
API_PREFIX = "/api/v1"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def prepare_database(url: str, create_tables: bool = True) -> Engine:
    """An engine on a database migrated to the latest schema (idempotent)."""
    from reluth.db.migrate import upgrade
    from reluth.db.registry import load_all_models

    # Requests run on a thread pool (40 threads): give it as many pooled connections, so a
    # burst of concurrent requests waits on the database, not on the pool.
    pool = {} if ":memory:" in url else {"pool_size": 20, "max_overflow": 20}
    engine = make_engine(url, **pool)
    load_all_models()
    if create_tables:
        upgrade(engine)
    return engine


def _is_api(request: Request) -> bool:
    """JSON errors for the API; the API's documentation is a page (login redirects)."""
    path = request.url.path
    return path.startswith(API_PREFIX) and not path.startswith(f"{API_PREFIX}/docs")


def create_app(
    database_url: str | None = None,
    *,
    clock: Callable[[], dt.datetime] = utc_now,
    secure_cookies: bool | None = None,
    create_tables: bool = True,
    protocol: Protocol | None = None,
    daily_checkpoints: bool | None = None,
    mail_drain: bool | None = None,
) -> FastAPI:
    """The app; ``daily_checkpoints`` (default: :func:`reluth.web.checkpoint_job.enabled`)
    writes the signed audit checkpoint of each day from a background thread."""
    from reluth.web import checkpoint_job

    settings = get_settings()
    engine = prepare_database(database_url or settings.database_url, create_tables)

    app = FastAPI(
        title="ReLUTH eCRF API",
        version=__version__,
        description="JSON API of the ReLUTH trial eCRF. Authenticate with "
        "`Authorization: Bearer <token>` (create one with `reluth users tokens create`).",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served from the package behind login (web/api_docs.py)
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.checkpoints = None
    if checkpoint_job.enabled(settings) if daily_checkpoints is None else daily_checkpoints:
        from reluth.db.checkpoint import load_signing_key

        load_signing_key(settings.checkpoint_key_path)  # refused at start-up when missing
        app.state.checkpoints = checkpoint_job.DailyCheckpoints(engine, settings, clock).start()
    app.state.sessionmaker = sessionmaker(engine, expire_on_commit=False)
    app.state.mail_drain = None
    app.state.clock = clock
    app.state.trial = Trial(protocol or load_protocol(settings.protocol_file), clock, settings)
    app.state.secure_cookies = settings.production if secure_cookies is None else secure_cookies
    if settings.smtp_url and mail_drain is not False:
        from reluth.web import notify_job

        app.state.mail_drain = notify_job.Drain(engine, app.state.trial).start()
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.state.templates.env.globals["version"] = __version__
    app.state.templates.env.globals["protocol"] = app.state.trial.protocol
    safety = app.state.trial.protocol.safety
    app.state.templates.env.globals["site_timezone"] = safety.site_timezone
    app.state.templates.env.globals["sae_hours"] = safety.sae_reporting_hours
    app.state.templates.env.globals["sae_criteria"] = seriousness.CRITERIA
    install_i18n(app.state.templates, safety.zone)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def language(request: Request, call_next: Any) -> Response:
        """The page language: the account's (set when the session is authenticated), else the
        ``reluth_lang`` cookie of the header's switch, else the browser's Accept-Language."""
        chosen = normalise(request.cookies.get(LANGUAGE_COOKIE)) or negotiate(
            request.headers.get("accept-language")
        )
        with use_locale(chosen):
            response: Response = await call_next(request)
        response.headers.setdefault("Content-Language", chosen or LANGUAGES[0])
        vary = response.headers.get("Vary")
        if not vary or "accept-language" not in vary.lower():
            response.headers["Vary"] = f"{vary}, Accept-Language" if vary else "Accept-Language"
        return response

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        )
        if request.url.path != "/static/htmx.min.js" and not request.url.path.startswith(
            "/static/"
        ):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _exc: LoginRequired) -> Response:
        if _is_api(request):
            return JSONResponse(
                {
                    "error": gettext("authentication required"),
                    "code": "authentication_required",
                    "status": 401,
                },
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(PasswordChangeRequired)
    async def _password_change(request: Request, exc: PasswordChangeRequired) -> Response:
        if _is_api(request):
            return JSONResponse(
                {"error": describe(exc), "code": "password_change_required", "status": 403},
                status_code=403,
            )
        return RedirectResponse("/account/password", status_code=303)

    @app.exception_handler(ReluthError)
    async def _reluth_error(request: Request, exc: ReluthError) -> Response:
        message = describe(exc)
        body: dict[str, Any] = {"error": message, "code": exc.code, "status": exc.http_status}
        field = getattr(exc, "field", None)
        if field:
            body["field"] = field
        if _is_api(request):
            return JSONResponse(body, status_code=exc.http_status)
        return render_error(request, exc.http_status, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = gettext(str(exc.detail))
        if _is_api(request):
            return JSONResponse(
                {
                    "error": message,
                    "code": _HTTP_CODES.get(exc.status_code, "http_error"),
                    "status": exc.status_code,
                },
                status_code=exc.status_code,
                headers=getattr(exc, "headers", None),
            )
        return render_error(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        refused = [
            from_pydantic(e, ".".join(str(p) for p in e.get("loc", ())[1:]) or "body")
            for e in exc.errors()
        ]
        problems = [{"field": e.field, "code": e.code, "problem": describe(e)} for e in refused]
        text = "; ".join(p["problem"] for p in problems)
        if _is_api(request):
            return JSONResponse(
                {"error": text, "code": "invalid_request", "status": 422, "problems": problems},
                422,
            )
        return render_error(request, 422, text)

    from reluth.web import (
        api,
        api_clinical,
        api_docs,
        api_dosimetry,
        api_exports,
        api_forms,
        api_lifecycle,
        api_qol,
        api_review,
        api_safety,
        casebook_pages,
        clinical_pages,
        coding_pages,
        dosimetry_pages,
        export_pages,
        forms_pages,
        labels,
        lifecycle_pages,
        pages,
        qol_pages,
        review_pages,
        sae_pages,
        trial_pages,
        visit_pages,
    )

    labels.install(app.state.templates, app.state.trial)
    app.include_router(pages.router)
    app.include_router(trial_pages.router)
    app.include_router(review_pages.router)
    app.include_router(qol_pages.router)
    app.include_router(clinical_pages.router)
    app.include_router(forms_pages.router)
    app.include_router(visit_pages.router)
    app.include_router(sae_pages.router)
    app.include_router(coding_pages.router)
    app.include_router(export_pages.router)
    app.include_router(dosimetry_pages.router)
    app.include_router(lifecycle_pages.router)
    app.include_router(casebook_pages.router)
    app.include_router(api_docs.router)
    for api_router in (
        api.router,
        api_safety.router,
        api_qol.router,
        api_clinical.router,
        api_review.router,
        api_forms.router,
        sae_pages.api_router,
        coding_pages.api_router,
        api_exports.router,
        api_dosimetry.router,
        api_lifecycle.router,
        casebook_pages.api_router,
    ):
        app.include_router(api_router, prefix=API_PREFIX)
    page_routes = (
        *pages.router.routes,
        *trial_pages.router.routes,
        *forms_pages.router.routes,
        *review_pages.router.routes,
        *qol_pages.router.routes,
        *clinical_pages.router.routes,
        *sae_pages.router.routes,
        *coding_pages.router.routes,
        *export_pages.router.routes,
        *dosimetry_pages.router.routes,
        *lifecycle_pages.router.routes,
    )
    paths = {getattr(r, "path", "") for r in page_routes}
    nav = tuple(item for item in NAV if item[0] in paths)
    app.state.templates.env.globals["nav_links"] = lambda who: nav_links(who, nav)
    return app


#: Stable codes of the HTTP errors the framework raises (the JSON API's ``code``).
_HTTP_CODES = {
    400: "bad_request",
    401: "authentication_required",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_request",
    429: "too_many_requests",
}

#: Main navigation: (path, label, permission needed). Shown only where the policy allows.
NAV: tuple[tuple[str, str, Action, Resource], ...] = (
    ("/dashboard", N_("Dashboard"), Action.READ, Resource.DASHBOARD),
    ("/patients", N_("Patients"), Action.READ, Resource.PATIENT),
    ("/status", N_("Status"), Action.READ, Resource.VISIT),
    ("/review", N_("Central review"), Action.READ, Resource.CENTRAL_REVIEW),
    ("/adverse-events", N_("Adverse events"), Action.READ, Resource.ADVERSE_EVENT),
    ("/queries", N_("Queries"), Action.READ, Resource.QUERY),
    ("/coding", N_("Coding"), Action.READ, Resource.CODING),
    ("/exports", N_("Exports"), Action.READ, Resource.EXPORT),
    ("/lifecycle", N_("Locks"), Action.WRITE, Resource.LOCK),
    ("/sdv", N_("SDV"), Action.READ, Resource.SDV),
    ("/admin/users", N_("Users"), Action.READ, Resource.USER),
    ("/account/tokens", N_("API tokens"), Action.READ, Resource.OWN_TOKENS),
)


def nav_links(
    who: Actor, items: tuple[tuple[str, str, Action, Resource], ...] = NAV
) -> list[tuple[str, str]]:
    """The links ``who`` may follow, labelled in the current language."""
    return [(path, gettext(label)) for path, label, action, res in items if who.can(action, res)]


def install_i18n(templates: Jinja2Templates, zone: Any) -> None:
    """gettext in the templates (``{% trans %}``, ``_()``), and the display filters of the
    current language: ``num`` (Babel), ``day`` (dd/mm/yyyy in French), ``site_local`` (a moment
    in the site's time zone, with the zone's name)."""
    env = templates.env
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext, ngettext, newstyle=True, pgettext=pgettext
    )
    env.globals["locale"] = get_locale
    env.globals["languages"] = [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES]
    env.globals["day_placeholder"] = day_placeholder
    env.globals["label"] = vocabulary.label
    env.globals["role_label"] = lambda role: vocabulary.label("role", role)
    env.filters["msg"] = lambda error: (
        describe(error)
        if isinstance(error, ReluthError)
        else (gettext(str(error)) if error else "")
    )
    env.filters["reason"] = shown_reason
    env.filters["num"] = format_number
    env.filters["day"] = format_day
    env.filters["site_local"] = lambda moment: format_moment(moment, zone)
    env.filters["utc"] = lambda moment: format_moment(moment, dt.UTC)


def render_error(request: Request, status: int, message: str) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    who = getattr(request.state, "auth", None)
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "message": message, "who": who},
        status_code=status,
    )
