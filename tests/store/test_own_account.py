"""The owner's account settings go through declared services (the policy is asked, whichever
adapter calls): the page language, and the password change, whose re-entered current password
is throttled as a signing password is (21 CFR 11.300(d)) and audited when it blocks."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select
from tests.store.storekit import NURSE, PASSWORD, add_users, read, work

from reluth.auth import service as auth
from reluth.core.service import SERVICES
from reluth.db.audit import AuditLog
from reluth.db.session import read_session
from reluth.errors import ValidationError


def test_own_account_settings_are_declared_services() -> None:
    for name in ("set_own_language", "change_own_password"):
        assert f"reluth.auth.service.{name}" in SERVICES


def test_the_language_is_kept_and_an_unknown_one_refused(engine: Engine) -> None:
    add_users(engine)
    with work(engine, NURSE) as ctx:
        auth.set_own_language(ctx, "fr")
    with read(engine, NURSE) as ctx:
        assert auth.get_user(ctx.session, NURSE).language == "fr"
    with pytest.raises(ValidationError, match="language"), work(engine, NURSE) as ctx:
        auth.set_own_language(ctx, "xx")


def test_wrong_current_passwords_are_throttled(engine: Engine) -> None:
    add_users(engine)
    for _ in range(4):
        with (
            pytest.raises(ValidationError, match="current_password: incorrect"),
            work(engine, NURSE) as ctx,
        ):
            auth.change_own_password(ctx, "guess", "a-new-password-0002")
    with pytest.raises(ValidationError, match="blocked"), work(engine, NURSE) as ctx:
        auth.change_own_password(ctx, PASSWORD, "a-new-password-0002")
    with read_session(engine) as s:
        locks = s.scalars(select(AuditLog).where(AuditLog.action == "lock")).all()
        assert [row.record_id for row in locks] == [f"confirm:{NURSE}"]
    with work(engine, NURSE, today=dt.date(2025, 6, 2)) as ctx:
        auth.change_own_password(ctx, PASSWORD, "a-new-password-0002")
