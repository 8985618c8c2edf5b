"""Users, their centre assignments, API and CLI login tokens, browser sessions. No patient data."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from reluth.db.base import Base
from reluth.sites.models import Centre


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


user_centres = Table(
    "user_centres",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("centre_id", ForeignKey("centres.id", ondelete="RESTRICT"), primary_key=True),
)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    role: Mapped[str] = mapped_column(String(32))  # a reluth.auth.roles.Role value
    #: argon2id; the audit trail keeps only its SHA-256 (``info["audit"] = "digest"``)
    password_hash: Mapped[str] = mapped_column(String(255), info={"audit": "digest"})
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: set by an administrator's password reset: the next login must choose a new password
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: where reluth's e-mail notifications go (no address: none is sent to this account)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    #: the language the person reads the pages in (a reluth.i18n.LANGUAGES code); None: the
    #: browser's Accept-Language decides
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    centres: Mapped[list[Centre]] = relationship(secondary=user_centres, lazy="selectin")


class ApiToken(Base):
    """A bearer token: ``kind`` "api" (for scripts) or "cli_login" (stored by ``reluth login``
    after a password check). An API token is created from a password login — a web session
    (``web_session_id``) or a CLI login (``parent_token_id``) — and dies with it."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)  # only the hash is stored
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="api", server_default="api")
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    parent_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), nullable=True
    )
    web_session_id: Mapped[int | None] = mapped_column(
        ForeignKey("web_sessions.id", ondelete="SET NULL"), nullable=True
    )
    user: Mapped[User] = relationship(lazy="selectin")
    parent: Mapped[ApiToken | None] = relationship(remote_side=[id], lazy="selectin")


class WebSession(Base):
    """A browser session. The cookie holds a random token; only its SHA-256 is stored. Its
    rows change on every request (last seen) and carry no trial data, so they are not audited;
    logins and logouts are audit events of the ``users`` record instead."""

    __tablename__ = "web_sessions"
    __audit_exempt__ = True

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    user: Mapped[User] = relationship(lazy="selectin")


class LoginThrottle(Base):
    """Failed logins per account (``user:NAME``) and per client address (``addr:IP``), with the
    moment before which the next attempt is refused (progressive delay). Not audited (attempts
    by anyone would otherwise grow the trail); locks and unlocks are audit events."""

    __tablename__ = "login_throttle"
    __audit_exempt__ = True

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    blocked_until: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
