"""Who is acting when a command is typed: a known user, or the operator at bootstrap."""

from __future__ import annotations

import getpass
import os

from sqlalchemy import Engine, func, select

from reluth.auth.models import User
from reluth.auth.roles import Role
from reluth.db.session import Actor, read_session
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
