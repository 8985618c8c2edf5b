"""A role change moves the account's centres with it: a site role keeps its centres (or takes
the new ones), a central role holds none, and centres given to a central role are refused."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from tests.store.storekit import ADMIN, add_users, read, work

from reluth.auth import service as auth
from reluth.auth.roles import Role
from reluth.errors import ValidationError


def _centres(engine: Engine, username: str) -> set[str]:
    with read(engine, ADMIN) as ctx:
        return {c.code for c in auth.get_user(ctx.session, username).centres}


def test_site_to_central_clears_and_central_to_site_needs_centres(engine: Engine) -> None:
    add_users(engine)
    with work(engine, ADMIN, reason="new monitor") as ctx:
        auth.create_user(ctx, "mon9", Role.MONITOR, "monitor-password-0009", ["C01", "C02"])
    with work(engine, ADMIN, reason="moves to data management") as ctx:
        auth.set_role(ctx, "mon9", Role.DATA_MANAGER)
    assert _centres(engine, "mon9") == set()
    with (
        pytest.raises(ValidationError, match="needs at least one centre"),
        work(engine, ADMIN, reason="back to monitoring") as ctx,
    ):
        auth.set_role(ctx, "mon9", Role.MONITOR)
    with work(engine, ADMIN, reason="back to monitoring") as ctx:
        auth.set_role(ctx, "mon9", Role.MONITOR, ["C02"])
    assert _centres(engine, "mon9") == {"C02"}
    with work(engine, ADMIN, reason="investigator now") as ctx:
        auth.set_role(ctx, "mon9", Role.INVESTIGATOR)  # a site role keeps its centres
    assert _centres(engine, "mon9") == {"C02"}


def test_a_central_role_is_given_no_centre(engine: Engine) -> None:
    add_users(engine)
    with (
        pytest.raises(ValidationError, match="central and works at no centre"),
        work(engine, ADMIN) as ctx,
    ):
        auth.create_user(ctx, "dm9", Role.DATA_MANAGER, "datamanager-pass-09", ["C01"])
    with (
        pytest.raises(ValidationError, match="central and works at no centre"),
        work(engine, ADMIN, reason="promotion") as ctx,
    ):
        auth.set_role(ctx, "nurse1", Role.PHARMACOVIGILANCE, ["C01"])
