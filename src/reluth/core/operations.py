"""Operator tasks on the trial database — schema migration, backup, restore — for an
administrator only (the policy's ``operations`` permission), each an audit event.

A database without any account yet (a fresh install) is migrated by the bootstrap operator;
once accounts exist, every operation needs an administrator's login. Migrating a database
whose schema is behind the code authenticates with the columns every schema version has.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from reluth.auth.actor import Actor, AuthMethod
from reluth.auth.policy import Action, Resource
from reluth.auth.roles import Role
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.errors import PermissionDenied
from reluth.i18n import N_
from reluth.i18n.reasons import Word, refusal
from reluth.i18n.vocabulary import ROLES


def has_accounts(engine: Engine) -> bool:
    """Whether the database holds any account (False for an empty or schema-less database)."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1 FROM users LIMIT 1")).first() is not None
    except SQLAlchemyError:
        return False


def actor_on_any_schema(engine: Engine, token_sha256: str) -> Actor | None:
    """The actor of a token on a database whose schema may be older than the code (for the
    migration that brings it up to date): a token not revoked, of an active account."""
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT u.id, u.username, u.role FROM api_tokens t JOIN users u "
                    "ON u.id = t.user_id WHERE t.token_sha256 = :h AND t.revoked_at IS NULL "
                    "AND u.active"
                ),
                {"h": token_sha256},
            ).first()
    except SQLAlchemyError:
        return None
    if row is None:
        return None
    return Actor(row.username, Role(row.role), via=AuthMethod.CLI_TOKEN, user_id=row.id)


def require_operator(actor: Actor) -> None:
    """Schema migrations, backups and restores are an administrator's (``operations``)."""
    if not actor.can(Action.WRITE, Resource.OPERATIONS):
        raise refusal(
            PermissionDenied,
            "operator_required",
            N_("{role} may not run database operations (an administrator's login)"),
            role=Word(ROLES.get(actor.role.value, actor.role.value)),
        )


@service(Action.WRITE, Resource.OPERATIONS)
def record_operation(ctx: Ctx, what: str, detail: dict[str, object]) -> None:
    """An audit event for an operation (``migrate``, ``backup``, ``restore``)."""
    ctx.record_event(what[:8], "database", what, detail)
