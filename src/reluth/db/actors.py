"""Who is acting when a command is typed: a known user, or the operator at bootstrap."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, func, select

from reluth.auth.models import User
from reluth.auth.roles import Role
from reluth.config import get_settings
from reluth.db.engine import make_engine
from reluth.db.session import Actor, UnitOfWork, read_session, unit_of_work
from reluth.errors import PermissionDenied


def resolve_actor(engine: Engine, username: str | None) -> Actor:
    """The user named by ``--as`` (or ``$RELUTH_USER``, or the OS login) with their role.

    While no user account exists yet (set-up), the operator acts as ``admin``.
    """
    name = username or os.environ.get("RELUTH_USER") or getpass.getuser()
    with read_session(engine) as s:
        user = s.scalars(select(User).where(User.username == name)).one_or_none()
        if user is not None:
            if not user.active:
                raise PermissionDenied(f"user {name!r} is deactivated")
            return Actor(user.username, user.role)
        if s.scalar(select(func.count()).select_from(User)) == 0:
            return Actor(name, Role.ADMIN)
    raise PermissionDenied(f"unknown user {name!r}: pass --as USERNAME of an existing account")


@contextmanager
def cli_unit_of_work(username: str | None, reason: str | None = None) -> Iterator[UnitOfWork]:
    """The unit of work of one command, on the configured database, as the resolved user."""
    engine = make_engine(get_settings().database_url)
    try:
        actor = resolve_actor(engine, username)
        with unit_of_work(engine, actor, reason=reason) as uow:
            yield uow
    finally:
        engine.dispose()
