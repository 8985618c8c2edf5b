"""Accounts, logins, sessions and tokens: the one place an :class:`Actor` is made.

Authentication (:func:`authenticate`, :func:`actor_for_token`, :func:`resolve_session`) turns a
password, a browser session or a bearer token into an actor. Account and token changes are
services like any other: they take the acting administrator (or owner) in a context, ask the
policy, and write through the audited unit of work, so creating a statistician, changing a role
or revoking a token is an audit row with who, when and why (21 CFR 11.10(d),(g)).

Failed logins are throttled per account, per client address and per account-and-address with
progressive delays (OWASP Authentication Cheat Sheet, "Protect against automated attacks"); an
unknown user, a wrong password and a throttled attempt get the same message after the same
password-hashing work, so neither the answer nor its timing tells them apart.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, joinedload

from reluth.auth.actor import Actor, AuthMethod
from reluth.auth.models import ApiToken, LoginThrottle, User, WebSession
from reluth.auth.policy import (
    UNBLINDED_ROLES,
    Action,
    Resource,
    check_role_grant,
    require_password_login,
)
from reluth.auth.roles import CENTRE_SCOPED_ROLES, Role
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.db.audit import AuditLog
from reluth.db.base import as_utc
from reluth.db.session import (
    after_rollback,
    exempt_transaction,
    require_reason,
    session_now,
    unit_of_work,
)
from reluth.errors import Conflict, NotFound, PermissionDenied, ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import Word, invalid_worded, refusal
from reluth.i18n.vocabulary import ROLES
from reluth.sites.models import Centre

#: argon2id with the argon2-cffi defaults (RFC 9106 low-memory profile).
_HASHER = PasswordHasher()

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
IDLE_TIMEOUT = dt.timedelta(minutes=30)
ABSOLUTE_TIMEOUT = dt.timedelta(hours=12)
#: last_seen_at is refreshed at most this often, to keep reads from becoming writes.
TOUCH_EVERY = dt.timedelta(seconds=30)
TOKEN_PREFIX = "rlt_"
CLI_LOGIN_TTL = dt.timedelta(hours=12)
API_TOKEN_DEFAULT_DAYS = 90
API_TOKEN_MAX_DAYS = 366
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,79}$"
_USERNAME = re.compile(USERNAME_PATTERN)

#: Throttling: after ``free`` failures within ``WINDOW`` the key is blocked for 1 s, then 2 s,
#: 4 s ... up to ``MAX_DELAY`` after each further failure; attempts while blocked do not count.
THROTTLE_FREE = {"pair": 3, "user": 10, "addr": 30, "confirm": 3}
THROTTLE_WINDOW = dt.timedelta(hours=1)
THROTTLE_MAX_DELAY = dt.timedelta(minutes=15)


class LoginFailed(PermissionDenied):
    """Wrong username or password, or attempts throttled; one message so as not to leak which."""

    http_status = 401

    def __init__(self) -> None:
        super().__init__(
            N_("invalid username or password (after repeated failures, wait a moment and retry)"),
            code="login_failed",
        )


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.cache
def _dummy_hash() -> str:
    """A hash with the current hasher's parameters, verified when there is no real one, so an
    unknown user costs the same work as a known one (computed once per parameter set: hashing
    it on every attempt would make an unknown user twice as slow as a wrong password)."""
    h = _HASHER
    return _dummy_for(h.time_cost, h.memory_cost, h.parallelism, h.hash_len, h.salt_len, h.type)


@functools.cache
def _dummy_for(*params: object) -> str:
    return _HASHER.hash("not-a-real-password-used-for-timing")


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords (lower case), refused whatever their length."""
    text = resources.files("reluth.auth").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def check_password_policy(password: str, username: str | None = None) -> None:
    """At least 12 characters, at most 1024, not a common password even with digits or
    punctuation around it (NIST SP 800-63B section 5.1.1.2: length, and a blocklist of commonly
    used or compromised values)."""
    if not isinstance(password, str):
        raise ValidationError(
            "password", "expected text", f">= {MIN_PASSWORD_LENGTH} characters", code="not_text"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            "password",
            f"too short ({len(password)} characters)",
            f">= {MIN_PASSWORD_LENGTH}",
            code="text_too_short",
            params={"length": len(password), "limit": MIN_PASSWORD_LENGTH},
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(
            "password",
            f"too long ({len(password)} characters)",
            f"<= {MAX_PASSWORD_LENGTH}",
            code="text_too_long",
            params={"length": len(password), "limit": MAX_PASSWORD_LENGTH},
        )
    if "\x00" in password:
        raise ValidationError("password", N_("contains a NUL character"), N_("printable text"))
    lowered = password.lower()
    core = lowered.strip("0123456789 !?.,;:-_+*#@$%&/\\'\"()[]{}=~^")
    common = common_passwords()
    if lowered in common or (len(core) >= 6 and core in common):
        raise ValidationError(
            "password", N_("is a commonly used password"), N_("a less common one")
        )


def hash_password(password: str, username: str | None = None) -> str:
    check_password_policy(password, username)
    return _HASHER.hash(password)


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        accepted = ", ".join(r.value for r in Role)
        raise ValidationError(
            "role",
            f"unknown role {value!r}",
            accepted,
            code="not_accepted",
            params={"value": value, "accepted": accepted},
        ) from None


def check_username(username: str) -> str:
    if not isinstance(username, str) or not _USERNAME.match(username):
        raise ValidationError(
            "username",
            f"{username!r} is not allowed",
            "2-80 of a-z 0-9 . _ -, lower case",
            code="username_not_allowed",
            params={"value": str(username)[:80]},
        )
    return username


# ------------------------------------------------------------------------------- actors


def actor_for(
    user: User,
    via: AuthMethod,
    login_id: int | None = None,
    login_kind: str | None = None,
) -> Actor:
    return Actor(
        username=user.username,
        role=Role(user.role),
        centre_ids=frozenset(c.id for c in user.centres),
        via=via,
        user_id=user.id,
        login_id=login_id,
        login_kind=login_kind,
    )


def bootstrap_actor(session: Session, operator: str) -> Actor:
    """The operator of a database that has no account yet (``reluth db init`` and the first
    ``reluth users add --role admin``). Refused as soon as any account exists."""
    if session.scalars(select(User.id).limit(1)).first() is not None:
        raise refusal(
            PermissionDenied,
            "accounts_exist",
            N_("accounts exist: log in first (`reluth login USERNAME`) or set RELUTH_TOKEN"),
        )
    name = re.sub(r"[^a-z0-9._-]", "-", (operator or "operator").lower())[:60] or "operator"
    return Actor(f"bootstrap:{name}", Role.ADMIN, via=AuthMethod.BOOTSTRAP)


def has_accounts(session: Session) -> bool:
    return session.scalars(select(User.id).limit(1)).first() is not None


# ------------------------------------------------------------------------ password login


@dataclass(frozen=True)
class LoginOutcome:
    """What a login attempt did: the user on success; the throttle keys that became blocked
    (for the audit trail's lock events) either way."""

    user: User | None
    locked: tuple[str, ...] = ()


def _throttle_keys(username: str, address: str | None) -> dict[str, str]:
    keys = {"user": f"user:{username[:80]}"}
    if address:
        keys["addr"] = f"addr:{address[:60]}"
        keys["pair"] = f"pair:{username[:80]}|{address[:60]}"
    return keys


def _blocked(session: Session, keys: dict[str, str], now: dt.datetime) -> bool:
    rows = session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys.values())))
    return any(r.blocked_until is not None and as_utc(r.blocked_until) > now for r in rows)


def _count_failure(
    session: Session, keys: dict[str, str], now: dt.datetime, count: bool = True
) -> tuple[str, ...]:
    """Record a failed attempt on each throttle key; beyond a key's free attempts it is blocked
    for a delay doubling with each failure (up to ``THROTTLE_MAX_DELAY``). A throttled attempt
    (``count=False``) writes the same rows without counting, so it does not extend the block
    (it keeps the hour over which failures are counted open) and answers no faster than a
    counted one."""
    locked = []
    for kind, key in keys.items():
        row = session.get(LoginThrottle, key)
        if row is None:
            row = LoginThrottle(key=key, failures=0, last_failure_at=now)
            session.add(row)
        elif count and now - as_utc(row.last_failure_at) > THROTTLE_WINDOW:
            row.failures = 0
        row.failures += 1 if count else 0
        row.last_failure_at = now  # a throttled attempt keeps the count's window open
        over = row.failures - THROTTLE_FREE[kind]
        if count and over > 0:
            delay = min(dt.timedelta(seconds=2 ** min(over - 1, 20)), THROTTLE_MAX_DELAY)
            row.blocked_until = now + delay
            locked.append(key)
    session.flush()
    return tuple(locked)


def authenticate(
    session: Session, username: str, password: str, now: dt.datetime, address: str | None = None
) -> LoginOutcome:
    """Check a password with throttling. Every attempt costs exactly one argon2 verification;
    the caller raises :class:`LoginFailed` when ``outcome.user`` is None (after recording any
    lock events), so unknown, wrong and throttled look alike.

    ``session`` must be writable (throttle rows are written, not audited)."""
    name = (username or "").strip().lower()[:80]
    keys = _throttle_keys(name, address)
    # Columns only: loading the account (and its centres) only for a known user would itself
    # tell known from unknown by time.
    found = session.execute(
        select(User.id, User.password_hash, User.active).where(User.username == name)
    ).one_or_none()
    blocked = _blocked(session, keys, now)
    known = found is not None and bool(found.active)
    stored = found.password_hash if found is not None and known else _dummy_hash()
    ok: bool
    try:
        ok = bool(_HASHER.verify(stored, password or ""))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if blocked:  # refused whatever the password, with the same work as a counted failure
        _count_failure(session, keys, now, count=False)
        return LoginOutcome(None)
    if not ok or not known or found is None:
        return LoginOutcome(None, _count_failure(session, keys, now))
    user = session.get(User, found.id)
    if user is None:
        return LoginOutcome(None, _count_failure(session, keys, now))
    for key in (keys["user"], keys.get("pair")):
        if key is not None:
            row = session.get(LoginThrottle, key)
            if row is not None:
                session.delete(row)
    session.flush()
    return LoginOutcome(user)


@dataclass(frozen=True)
class SystemIdentity:
    """The platform itself as the writer of audit events nobody typed (login locks)."""

    username: str = "reluth"
    role: str = "system"
    via: str = "system"


SYSTEM = SystemIdentity()


def password_login(
    engine: Engine,
    now: dt.datetime,
    username: str,
    password: str,
    address: str | None = None,
) -> tuple[Actor, User]:
    """The one login: check the password with throttling (:func:`authenticate`), record any
    lock as an audit event, and return the password-authenticated actor — or raise
    :class:`LoginFailed` (one message for unknown user, wrong password and throttled)."""
    with exempt_transaction(engine) as session:
        outcome = authenticate(session, username, password, now, address)
        actor = None if outcome.user is None else actor_for(outcome.user, AuthMethod.PASSWORD)
        user = outcome.user
    if outcome.locked:
        with unit_of_work(engine, SYSTEM, clock=lambda: now) as uow:
            for key in outcome.locked:
                uow.record_event("lock", "login_throttle", key[:64], {"key": key})
    if actor is None or user is None:
        raise LoginFailed()
    if _HASHER.check_needs_rehash(user.password_hash):
        reason = "password hash upgraded to the current argon2id parameters at login"
        with unit_of_work(engine, actor, reason=reason, clock=lambda: now) as uow:
            row = uow.session.get(User, user.id)
            if row is not None:
                row.password_hash = _HASHER.hash(password)
    return actor, user


# --------------------------------------------------------------------------- web sessions


@dataclass(frozen=True)
class OpenedSession:
    cookie_token: str  # goes to the browser only
    csrf_token: str
    session_id: int


def open_session(db: Session, user: User, now: dt.datetime) -> OpenedSession:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    row = WebSession(
        token_sha256=sha256(token),
        user_id=user.id,
        csrf_token=csrf,
        created_at=now,
        last_seen_at=now,
    )
    db.add(row)
    db.flush()
    return OpenedSession(cookie_token=token, csrf_token=csrf, session_id=row.id)


def resolve_session(
    db: Session, cookie_token: str, now: dt.datetime, write: bool = True
) -> WebSession | None:
    """The live session for a cookie, or None if unknown, ended, idle too long or too old.

    With ``write`` the expiry is recorded and ``last_seen_at`` refreshed (at most every
    TOUCH_EVERY); without it nothing is written (see :func:`session_needs_write`)."""
    row = (
        db.scalars(
            select(WebSession)
            .options(joinedload(WebSession.user).joinedload(User.centres))
            .where(WebSession.token_sha256 == sha256(cookie_token))
        )
        .unique()
        .first()
    )  # one statement: the session with its user and centres (asked on every request)
    if row is None or row.ended_at is not None or not row.user.active:
        return None
    if _expired(row, now):
        if write:
            row.ended_at = now
            db.flush()
        return None
    if write and now - as_utc(row.last_seen_at) >= TOUCH_EVERY:
        row.last_seen_at = now
        db.flush()
    return row


def _expired(row: WebSession, now: dt.datetime) -> bool:
    return (
        now - as_utc(row.last_seen_at) > IDLE_TIMEOUT
        or now - as_utc(row.created_at) > ABSOLUTE_TIMEOUT
    )


def session_needs_write(db: Session, cookie_token: str, now: dt.datetime) -> bool:
    """Whether resolving this cookie now would write (expiry or a due touch)."""
    row = db.scalar(select(WebSession).where(WebSession.token_sha256 == sha256(cookie_token)))
    return row is not None and session_row_needs_write(row, now)


def session_row_needs_write(row: WebSession, now: dt.datetime) -> bool:
    """Whether this (already loaded) session row is due an expiry or a ``last_seen_at`` touch."""
    if row.ended_at is not None:
        return False
    return _expired(row, now) or now - as_utc(row.last_seen_at) >= TOUCH_EVERY


def start_web_session(engine: Engine, now: dt.datetime, user: User) -> OpenedSession:
    """Open a browser session for a user whose password was just checked, and record the
    login in the audit trail as that session's actor."""
    with exempt_transaction(engine) as session:
        opened = open_session(session, user, now)
    actor = actor_for(user, AuthMethod.WEB_SESSION, opened.session_id, "web_session")
    with unit_of_work(engine, actor, clock=lambda: now) as uow:
        uow.record_event("login", "users", str(user.id), {"via": "web_session"})
    return opened


def actor_for_session(row: WebSession) -> Actor:
    return actor_for(row.user, AuthMethod.WEB_SESSION, row.id, "web_session")


# ----------------------------------------------------------------------------- tokens


def _token_live(row: ApiToken | None, now: dt.datetime) -> bool:
    """Not revoked, not expired, its user active, and its parent login (if any) live too."""
    depth = 0
    while row is not None and depth < 4:
        if row.revoked_at is not None or not row.user.active:
            return False
        if row.expires_at is not None and as_utc(row.expires_at) <= now:
            return False
        row, depth = row.parent, depth + 1
    return row is None


def actor_for_token(db: Session, plain: str, now: dt.datetime) -> Actor | None:
    """The actor behind a bearer token (an API token or a CLI login), or None if it is unknown,
    revoked, expired, its login revoked or its user deactivated."""
    if not isinstance(plain, str) or not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        return None
    row = db.scalar(select(ApiToken).where(ApiToken.token_sha256 == sha256(plain)))
    if row is None or not _token_live(row, now):
        return None
    if row.kind == "cli_login":
        return actor_for(row.user, AuthMethod.CLI_TOKEN, row.id, "cli_login")
    return actor_for(row.user, AuthMethod.API_TOKEN, row.id, "api")


def _new_token(
    session: Session,
    user_id: int,
    name: str,
    kind: str,
    now: dt.datetime,
    expires_at: dt.datetime | None,
    parent_token_id: int | None = None,
    web_session_id: int | None = None,
) -> tuple[ApiToken, str]:
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user_id,
        name=name,
        token_sha256=sha256(plain),
        created_at=now,
        kind=kind,
        expires_at=expires_at,
        parent_token_id=parent_token_id,
        web_session_id=web_session_id,
    )
    session.add(row)
    session.flush()
    return row, plain


@service(Action.WRITE, Resource.OWN_TOKENS)
def cli_login(ctx: Ctx, name: str = "reluth login") -> tuple[ApiToken, str]:
    """The token ``reluth login`` stores after checking the password (``ctx.actor`` was made by
    :func:`authenticate` just now): a CLI login, valid 12 hours unless revoked."""
    actor = ctx.actor
    if actor.via is not AuthMethod.PASSWORD or actor.user_id is None:
        raise refusal(
            PermissionDenied,
            "password_check_required",
            N_("a CLI login starts from a password check"),
        )
    user = ctx.session.get(User, actor.user_id)
    if user is None:
        raise _no_user(actor.username)
    if user.must_change_password:
        raise refusal(
            PermissionDenied,
            "password_reset",
            N_("your password was reset: choose a new one first (`reluth users passwd`)"),
        )
    now = ctx.now()
    row, plain = _new_token(ctx.session, user.id, name[:80], "cli_login", now, now + CLI_LOGIN_TTL)
    ctx.record_event("login", "users", str(user.id), {"via": "cli_token", "token_id": row.id})
    return row, plain


def _token_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 80:
        raise ValidationError("name", N_("a token needs a name"), N_("1-80 characters"))
    if not name.strip().isprintable():
        raise ValidationError("name", N_("contains control characters"), N_("printable text"))
    return name.strip()


@service(Action.WRITE, Resource.OWN_TOKENS)
def create_token(
    ctx: Ctx, name: str, expires_in_days: int | None = API_TOKEN_DEFAULT_DAYS
) -> tuple[ApiToken, str]:
    """A new API token for the acting user, created from their password login (web session or
    CLI login; never from another API token). It expires after ``expires_in_days`` (default 90,
    at most 366; None: never) and dies with the login it was created from. The plain token is
    returned once and never stored."""
    actor = ctx.actor
    require_password_login(actor, N_("creating a token"))
    if actor.user_id is None:
        raise refusal(
            PermissionDenied,
            "bootstrap_has_no_tokens",
            N_("the bootstrap operator has no tokens: create an account first"),
        )
    user = ctx.session.get(User, actor.user_id)
    if user is None or not user.active:
        raise refusal(PermissionDenied, "account_deactivated", N_("this account is deactivated"))
    if user.must_change_password:
        raise refusal(
            PermissionDenied,
            "password_reset",
            N_("your password was reset: choose a new one first"),
        )
    label = _token_name(name)
    if expires_in_days is not None and not 1 <= int(expires_in_days) <= API_TOKEN_MAX_DAYS:
        raise ValidationError(
            "expires_in_days",
            str(expires_in_days),
            f"1..{API_TOKEN_MAX_DAYS} days",
            code="not_an_integer_in_range",
            params={"value": str(expires_in_days), "lo": 1, "hi": API_TOKEN_MAX_DAYS},
        )
    now = ctx.now()
    expires = None if expires_in_days is None else now + dt.timedelta(days=int(expires_in_days))
    parent = actor.login_id if actor.login_kind == "cli_login" else None
    web = actor.login_id if actor.login_kind == "web_session" else None
    return _new_token(ctx.session, user.id, label, "api", now, expires, parent, web)


def _revoke(row: ApiToken, now: dt.datetime, session: Session) -> None:
    if row.revoked_at is None:
        row.revoked_at = now
    for child in session.scalars(select(ApiToken).where(ApiToken.parent_token_id == row.id)):
        if child.revoked_at is None:
            child.revoked_at = now


@service(Action.WRITE, Resource.OWN_TOKENS)
def revoke_token(ctx: Ctx, token_id: int) -> ApiToken:
    """Revoke one of the acting user's tokens (and what it created); an administrator may
    revoke anyone's. A revocation is an audit row."""
    row = ctx.session.get(ApiToken, token_id)
    own = row is not None and row.user_id == ctx.actor.user_id
    if row is None or not (own or ctx.actor.can(Action.WRITE, Resource.USER)):
        raise refusal(
            NotFound, "token_not_found", N_("token {token} not found"), token=str(token_id)
        )
    if row.revoked_at is None:
        ctx.default_reason(f"token {row.id} revoked by {ctx.actor.username}")
        _revoke(row, ctx.now(), ctx.session)
        ctx.session.flush()
    return row


@service(Action.WRITE, Resource.OWN_TOKENS)
def logout_cli(ctx: Ctx) -> ApiToken | None:
    """End the CLI login the actor came through, revoking the API tokens created from it."""
    if ctx.actor.login_kind != "cli_login" or ctx.actor.login_id is None:
        return None
    row = ctx.session.get(ApiToken, ctx.actor.login_id)
    if row is not None and row.revoked_at is None:
        ctx.default_reason("logout: the CLI login and the tokens created from it revoked")
        _revoke(row, ctx.now(), ctx.session)
        ctx.record_event("logout", "users", str(row.user_id), {"token_id": row.id})
        ctx.session.flush()
    return row


@service(Action.WRITE, Resource.OWN_TOKENS)
def logout_web(ctx: Ctx) -> WebSession | None:
    """End the browser session the actor came through, revoking the API tokens created from it
    (a token never outlives the login that made it, as with ``logout_cli``)."""
    if ctx.actor.login_kind != "web_session" or ctx.actor.login_id is None:
        return None
    row = ctx.session.get(WebSession, ctx.actor.login_id)
    if row is None or row.ended_at is not None:
        return row
    now = ctx.now()
    row.ended_at = now
    created = ctx.session.scalars(
        select(ApiToken).where(ApiToken.web_session_id == row.id, ApiToken.revoked_at.is_(None))
    ).all()
    if created:
        ctx.default_reason("logout: the web session and the tokens created from it revoked")
    for token in created:
        _revoke(token, now, ctx.session)
    ctx.record_event(
        "logout", "users", str(row.user_id), {"via": "web_session", "tokens_revoked": len(created)}
    )
    ctx.session.flush()
    return row


@service(Action.READ, Resource.OWN_TOKENS)
def list_tokens(ctx: Ctx, everyone: bool = False) -> list[ApiToken]:
    """The acting user's API tokens; with ``everyone``, an administrator's view of all."""
    stmt = select(ApiToken).where(ApiToken.kind == "api").order_by(ApiToken.id)
    if everyone:
        ctx.actor.require(Action.READ, Resource.USER)
    else:
        stmt = stmt.where(ApiToken.user_id == (ctx.actor.user_id or -1))
    return list(ctx.session.scalars(stmt))


def token_live(row: ApiToken, now: dt.datetime) -> bool:
    return _token_live(row, now)


# ----------------------------------------------------------------------------- accounts


def _centres(session: Session, codes: Sequence[str]) -> list[Centre]:
    out = []
    for code in dict.fromkeys(codes):
        centre = session.scalar(select(Centre).where(Centre.code == code))
        if centre is None:
            raise ValidationError(
                "centre",
                f"no centre {code!r}",
                "an existing centre code",
                code="unknown_centre",
                params={"value": code},
            )
        out.append(centre)
    return out


def _check_centres(role: Role, centres: list[Centre]) -> None:
    """Site roles work at one or more centres; central roles at none (their reach is the
    whole trial, and a stale centre list would be misleading in the access review)."""
    if role in CENTRE_SCOPED_ROLES and not centres:
        raise invalid_worded(
            "centre",
            "centre_required",
            N_("{field}: role {role} needs at least one centre (--centre CODE)"),
            f"role {role.value} needs at least one centre",
            "--centre CODE",
            role=Word(ROLES[role.value]),
        )
    if role not in CENTRE_SCOPED_ROLES and centres:
        raise invalid_worded(
            "centre",
            "central_role_has_no_centre",
            N_("{field}: role {role} is central and works at no centre"),
            f"role {role.value} is central and works at no centre",
            "no centre",
            role=Word(ROLES[role.value]),
        )


def _no_user(username: str) -> NotFound:
    return refusal(NotFound, "user_not_found", N_("user '{user}' not found"), user=username)


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise _no_user(username)
    return user


@service(Action.WRITE, Resource.USER)
def create_user(
    ctx: Ctx, username: str, role: str, password: str, centre_codes: Sequence[str] = ()
) -> User:
    """A new account; centre-scoped roles need at least one centre. On an empty database the
    bootstrap operator may create the first account, which must be an administrator."""
    check_username(username)
    r = parse_role(role)
    session = ctx.session
    if ctx.actor.via is AuthMethod.BOOTSTRAP:
        if has_accounts(session):
            raise refusal(
                PermissionDenied,
                "bootstrap_over",
                N_("accounts exist: the bootstrap is over, log in first"),
            )
        if r is not Role.ADMIN:
            raise refusal(
                PermissionDenied,
                "first_account_admin",
                N_("the first account must be an administrator (--role admin)"),
            )
    check_role_grant(ctx.actor, username, r)
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise refusal(
            Conflict, "username_exists", N_("username: '{user}' already exists"), user=username
        )
    centres = _centres(session, centre_codes)
    _check_centres(r, centres)
    user = User(
        username=username,
        role=r.value,
        password_hash=hash_password(password, username),
        active=True,
        must_change_password=False,
    )
    user.centres = centres
    session.add(user)
    session.flush()
    return user


@service(Action.READ, Resource.USER)
def list_users(ctx: Ctx) -> list[User]:
    return list(ctx.session.scalars(select(User).order_by(User.username)))


def _admin_change(ctx: Ctx, username: str, what: str) -> User:
    require_reason(ctx.session, what)
    return get_user(ctx.session, check_username(username))


@service(Action.WRITE, Resource.USER)
def set_active(ctx: Ctx, username: str, active: bool) -> User:
    """Deactivate (or reactivate) an account, with a reason in the unit of work: a deactivated
    user cannot log in, and their sessions and tokens stop working at once."""
    user = _admin_change(ctx, username, N_("an account's status"))
    if not active and user.username == ctx.actor.username:
        raise refusal(
            PermissionDenied, "deactivate_self", N_("you may not deactivate your own account")
        )
    if user.active == active:
        raise refusal(
            Conflict,
            "status_unchanged",
            N_("user '{user}' is already active")
            if active
            else N_("user '{user}' is already deactivated"),
            user=username,
        )
    user.active = active
    ctx.session.flush()
    return user


@service(Action.WRITE, Resource.USER)
def set_role(ctx: Ctx, username: str, role: str, centre_codes: Sequence[str] | None = None) -> User:
    """Change an account's role (and centres), with a reason; an administrator may not give
    themselves an unblinded role."""
    user = _admin_change(ctx, username, N_("an account's role"))
    r = parse_role(role)
    check_role_grant(ctx.actor, user.username, r)
    if centre_codes is not None:
        centres = _centres(ctx.session, centre_codes)
    elif r in CENTRE_SCOPED_ROLES:
        centres = list(user.centres)  # a site role keeps its centres unless told otherwise
    else:
        centres = []  # a central role has none
    _check_centres(r, list(centres))
    if r.value == user.role and set(centres) == set(user.centres):
        raise invalid_worded(
            "role",
            "role_unchanged",
            N_("{field}: '{user}' is already {role} — choose another role"),
            f"{username!r} is already {r.value}",
            "another role",
            user=username,
            role=Word(ROLES[r.value]),
        )
    user.role = r.value
    user.centres = list(centres)
    ctx.session.flush()
    return user


@service(Action.WRITE, Resource.USER)
def set_centres(ctx: Ctx, username: str, centre_codes: Sequence[str]) -> User:
    """Change the centres an account works at, with a reason."""
    user = _admin_change(ctx, username, N_("an account's centres"))
    centres = _centres(ctx.session, centre_codes)
    _check_centres(Role(user.role), centres)
    if set(centres) == set(user.centres):
        raise ValidationError("centre", N_("no change"), N_("a different set of centres"))
    user.centres = centres
    ctx.session.flush()
    return user


@service(Action.WRITE, Resource.USER)
def set_email(ctx: Ctx, username: str, email: str | None) -> User:
    """Set (or clear, with None or "") the address an account's notifications go to, with a
    reason."""
    user = _admin_change(ctx, username, N_("an account's e-mail address"))
    text = (email or "").strip()
    if text and (
        len(text) > 254 or text.count("@") != 1 or not all(text.split("@")) or " " in text
    ):
        raise ValidationError(
            "email",
            f"{email!r}",
            "an address like name@hospital.fr",
            code="not_an_email",
            params={"value": text[:80]},
        )
    user.email = text or None
    ctx.session.flush()
    return user


@service(Action.WRITE, Resource.USER)
def reset_password(ctx: Ctx, username: str, temporary_password: str) -> User:
    """Set a temporary password that must be changed at the next login; the user's logins and
    tokens are revoked. Needs a reason."""
    user = _admin_change(ctx, username, N_("an account's password"))
    user.password_hash = hash_password(temporary_password, user.username)
    user.must_change_password = True
    now = ctx.now()
    for row in ctx.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)):
        if row.revoked_at is None:
            row.revoked_at = now
    ctx.session.flush()
    return user


@service(Action.WRITE, Resource.USER)
def unlock(ctx: Ctx, username: str) -> int:
    """Lift the login throttling of an account (all its keys); audited as an ``unlock`` event.
    Returns how many throttle entries were cleared."""
    user = get_user(ctx.session, check_username(username))
    rows = list(
        ctx.session.scalars(
            select(LoginThrottle).where(
                (LoginThrottle.key == f"user:{user.username}")
                | LoginThrottle.key.like(f"pair:{user.username}|%")
            )
        )
    )
    for row in rows:
        ctx.session.delete(row)
    ctx.session.flush()
    ctx.record_event("unlock", "users", str(user.id), {"cleared": len(rows)})
    return len(rows)


@service(Action.WRITE, Resource.OWN_TOKENS)
def change_own_password(ctx: Ctx, current: str, new: str) -> User:
    """The acting user's new password, after re-entering the current one (throttled as a
    signing password is; the audit reason says it was the owner's change)."""
    require_password_login(ctx.actor, N_("changing a password"))
    if ctx.actor.user_id is None:
        raise refusal(
            PermissionDenied,
            "bootstrap_has_no_password",
            N_("the bootstrap operator has no password"),
        )
    user = ctx.session.get(User, ctx.actor.user_id)
    if user is None:
        raise refusal(NotFound, "account_not_found", N_("account not found"))
    _reentered(ctx.session, user, current, "current_password", N_("your current password"))
    if secrets.compare_digest(current.encode(), new.encode()):
        raise ValidationError("password", N_("same as the current one"), N_("a new password"))
    if ctx.session.info.get("reluth_reason") is None:
        ctx.session.info["reluth_reason"] = "password changed by its owner"
    user.password_hash = hash_password(new, user.username)
    user.must_change_password = False
    ctx.session.flush()
    return user


def confirm_password(session: Session, actor: Actor, password: str, what: str) -> User:
    """The acting user's own password, re-entered for ``what`` (an electronic signature: both
    components of the signature at signing, 21 CFR 11.200(a)(1)); an API token cannot sign.
    A wrong password is a ValidationError naming the field."""
    require_password_login(actor, what)
    user = session.get(User, actor.user_id) if actor.user_id is not None else None
    if user is None or not user.active or user.username != actor.username:
        raise refusal(
            PermissionDenied,
            "own_account_required",
            N_("{what} needs your own active account"),
            what=Word(what),
        )
    _reentered(session, user, password, "password", N_("your own password"))
    return user


#: Why a re-entered password is refused whatever it is, for a while.
REENTRY_BLOCKED = N_("blocked after repeated wrong passwords; try again in a few minutes")


def _reentered(session: Session, user: User, password: str, field: str, accepted: str) -> None:
    """Check a password re-entered inside a session (to sign, to change it). Beyond
    ``THROTTLE_FREE["confirm"]`` wrong ones within the hour it is refused for a doubling delay,
    so a left-open session cannot be used to guess it (21 CFR 11.300(d)); the failures are
    counted in their own transaction, the caller's being rolled back."""
    keys = {"confirm": f"confirm:{user.username[:80]}"}
    now = session_now(session)
    if _blocked(session, keys, now):
        raise ValidationError(field, REENTRY_BLOCKED, code="reentry_blocked")
    try:
        _HASHER.verify(user.password_hash, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        after_rollback(session, functools.partial(_count_reentry_failure, keys=keys, now=now))
        raise ValidationError(field, N_("incorrect"), accepted) from None
    counted = session.get(LoginThrottle, keys["confirm"])
    if counted is not None:  # the right password starts the count afresh, as at login
        session.delete(counted)


def _count_reentry_failure(engine: Engine, keys: dict[str, str], now: dt.datetime) -> None:
    """Count a wrong re-entered password in its own transaction; a block it starts is an
    audit event, as a login lock is."""
    with exempt_transaction(engine) as session:
        locked = _count_failure(session, keys, now)
    if locked:
        with unit_of_work(engine, SYSTEM, clock=lambda: now) as uow:
            for key in locked:
                uow.record_event("lock", "login_throttle", key[:64], {"key": key})


@service(Action.WRITE, Resource.OWN_TOKENS)
def set_own_language(ctx: Ctx, language: str | None) -> User | None:
    """The acting user's page language; None goes back to the browser's choice. The bootstrap
    operator has no account to keep it in (returns None)."""
    from reluth.i18n import LANGUAGES

    if language is not None and language not in LANGUAGES:
        raise ValidationError(
            "language",
            f"{language!r} is not offered",
            ", ".join(LANGUAGES),
            code="not_accepted",
            params={"value": language, "accepted": ", ".join(LANGUAGES)},
        )
    if ctx.actor.user_id is None:
        return None
    user = ctx.session.get(User, ctx.actor.user_id)
    if user is None:
        raise refusal(NotFound, "account_not_found", N_("account not found"))
    if user.language != language:
        if ctx.session.info.get("reluth_reason") is None:
            ctx.session.info["reluth_reason"] = "page language chosen by the account's owner"
        user.language = language
        ctx.session.flush()
    return user


@dataclass(frozen=True)
class Grant:
    """One grant of an unblinded role, as the access review lists it."""

    username: str
    role: str
    granted_by: str
    granted_at: str
    how: str  # "account created" | "role changed"
    reason: str | None
    active_now: bool


@service(Action.READ, Resource.USER)
def access_review(ctx: Ctx) -> list[Grant]:
    """Every grant of an unblinded role (account created with it, or role changed to it), with
    who granted it, when and why, read from the audit trail; and whether the account holds it
    now (ICH E6(R3) 3.16.1 / 21 CFR 11.10(d): access limited to authorized individuals)."""
    unblinded = {r.value for r in UNBLINDED_ROLES}
    users = {u.id: u for u in ctx.session.scalars(select(User))}
    out: list[Grant] = []
    rows = ctx.session.scalars(
        select(AuditLog)
        .where(AuditLog.table_name == "users", AuditLog.action.in_(("insert", "update")))
        .order_by(AuditLog.seq)
    )
    import json

    for row in rows:
        if row.action == "insert":
            snap = json.loads(row.new_value or "{}")
            role, how = snap.get("role"), "account created"
            username = snap.get("username")
        elif row.field == "role":
            role, how = json.loads(row.new_value or "null"), "role changed"
            user = users.get(int(row.record_id)) if row.record_id.isdigit() else None
            username = user.username if user else f"user {row.record_id}"
        else:
            continue
        if role not in unblinded:
            continue
        current = users.get(int(row.record_id)) if row.record_id.isdigit() else None
        out.append(
            Grant(
                username=str(username),
                role=str(role),
                granted_by=row.username,
                granted_at=row.at_utc,
                how=how,
                reason=row.reason,
                active_now=bool(current and current.active and current.role == role),
            )
        )
    return out


def delete_throttle(session: Session) -> None:
    """Forget all throttling (tests and the demo's fresh database only)."""
    session.execute(delete(LoginThrottle))
