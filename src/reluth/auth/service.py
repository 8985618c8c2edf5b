"""Accounts, login with lockout, browser sessions with idle timeout, and API tokens.

Every function takes an open SQLAlchemy ``Session`` and the current time (``now``) so that the
clock is explicit and tests can move it; the caller owns the transaction boundary.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from reluth.auth.models import ApiToken, Centre, User, WebSession
from reluth.auth.policy import Principal
from reluth.auth.roles import CENTRE_SCOPED_ROLES, Role
from reluth.db.base import as_utc
from reluth.errors import Conflict, NotFound, PermissionDenied, ValidationError

#: argon2id with the argon2-cffi defaults (RFC 9106 low-memory profile).
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not-a-real-password-used-for-timing")

MIN_PASSWORD_LENGTH = 12
MAX_FAILED_LOGINS = 5
LOCKOUT = dt.timedelta(minutes=15)
IDLE_TIMEOUT = dt.timedelta(minutes=30)
ABSOLUTE_TIMEOUT = dt.timedelta(hours=12)
#: last_seen_at is refreshed at most this often, to keep reads from becoming writes.
TOUCH_EVERY = dt.timedelta(seconds=30)
TOKEN_PREFIX = "rlt_"
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,79}$")


class LoginFailed(PermissionDenied):
    """Wrong username or password, or account locked; one message so as not to leak which."""

    http_status = 401

    def __init__(self) -> None:
        super().__init__(
            "invalid username or password, or account temporarily locked after "
            f"{MAX_FAILED_LOGINS} failed attempts"
        )


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            "password", f"too short ({len(password)} characters)", f">= {MIN_PASSWORD_LENGTH}"
        )
    return _HASHER.hash(password)


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationError(
            "role", f"unknown role {value!r}", ", ".join(r.value for r in Role)
        ) from None


def create_user(
    db: Session, username: str, role: str, password: str, centre_codes: Sequence[str] = ()
) -> User:
    """A new account; centre-scoped roles need at least one centre."""
    if not _USERNAME.match(username):
        raise ValidationError(
            "username", f"{username!r} is not allowed", "2-80 of a-z 0-9 . _ -, lower case"
        )
    r = parse_role(role)
    if db.scalar(select(User).where(User.username == username)) is not None:
        raise Conflict(f"username: {username!r} already exists")
    centres = []
    for code in centre_codes:
        centre = db.scalar(select(Centre).where(Centre.code == code))
        if centre is None:
            raise ValidationError("centre", f"no centre {code!r}", "an existing centre code")
        centres.append(centre)
    if r in CENTRE_SCOPED_ROLES and not centres:
        raise ValidationError(
            "centre", f"role {r.value} needs at least one centre", "--centre CODE"
        )
    user = User(username=username, role=r.value, password_hash=hash_password(password))
    user.centres = centres
    user.failed_logins = 0
    user.active = True
    db.add(user)
    db.flush()
    return user


def get_user(db: Session, username: str) -> User:
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} not found")
    return user


def principal_for(user: User) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        role=Role(user.role),
        centre_ids=frozenset(c.id for c in user.centres),
    )


def authenticate(db: Session, username: str, password: str, now: dt.datetime) -> User:
    """Check a password, counting failures; five in a row lock the account for 15 minutes."""
    user = db.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        with contextlib.suppress(VerificationError):
            _HASHER.verify(_DUMMY_HASH, password)  # same work as a real check
        raise LoginFailed()
    if user.locked_until is not None and as_utc(user.locked_until) > now:
        raise LoginFailed()
    try:
        _HASHER.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        db.flush()
        raise LoginFailed() from None
    user.failed_logins = 0
    user.locked_until = None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    db.flush()
    return user


@dataclass(frozen=True)
class OpenedSession:
    cookie_token: str  # goes to the browser only
    csrf_token: str


def open_session(db: Session, user: User, now: dt.datetime) -> OpenedSession:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    db.add(
        WebSession(
            token_sha256=sha256(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
        )
    )
    db.flush()
    return OpenedSession(cookie_token=token, csrf_token=csrf)


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


def end_session(db: Session, cookie_token: str, now: dt.datetime) -> None:
    row = db.scalar(select(WebSession).where(WebSession.token_sha256 == sha256(cookie_token)))
    if row is not None and row.ended_at is None:
        row.ended_at = now
        db.flush()


def create_token(db: Session, user: User, name: str, now: dt.datetime) -> tuple[ApiToken, str]:
    """A new API token for ``user``; the plain token is returned once and never stored."""
    name = name.strip()
    if not name or len(name) > 80:
        raise ValidationError("name", "a token needs a name", "1-80 characters")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_sha256=sha256(plain), created_at=now)
    db.add(row)
    db.flush()
    return row, plain


def revoke_token(
    db: Session, token_id: int, now: dt.datetime, owner: User | None = None
) -> ApiToken:
    """Revoke a token by id; with ``owner``, only that user's own tokens."""
    row = db.get(ApiToken, token_id)
    if row is None or (owner is not None and row.user_id != owner.id):
        raise NotFound(f"token {token_id} not found")
    if row.revoked_at is None:
        row.revoked_at = now
        db.flush()
    return row


def resolve_token(db: Session, plain: str) -> User | None:
    if not plain.startswith(TOKEN_PREFIX):
        return None
    row = db.scalar(select(ApiToken).where(ApiToken.token_sha256 == sha256(plain)))
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    return row.user


def list_tokens(db: Session, user: User | None = None) -> list[ApiToken]:
    stmt = select(ApiToken).order_by(ApiToken.id)
    if user is not None:
        stmt = stmt.where(ApiToken.user_id == user.id)
    return list(db.scalars(stmt))


def list_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.username)))


def list_centres(db: Session) -> list[Centre]:
    return list(db.scalars(select(Centre).order_by(Centre.code)))


def set_active(db: Session, username: str, active: bool) -> User:
    user = get_user(db, username)
    user.active = active
    db.flush()
    return user
