"""Putting messages in the outbox from inside a service's unit of work (so a message exists if
and only if the act that caused it was committed). Recipients come from the accounts' e-mail
addresses (and ``RELUTH_PV_EMAIL`` for pharmacovigilance); bodies name patients only by their
trial pseudonym and link to the page where the rest is, behind a login."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from reluth.auth.models import User
from reluth.auth.roles import Role
from reluth.core.context import Ctx
from reluth.notify.models import Notification

SITE_STAFF = (Role.INVESTIGATOR, Role.RESEARCH_NURSE)


def _add(ctx: Ctx, kind: str, to: Iterable[tuple[str, str | None]], subject: str, body: str) -> int:
    seen: set[str] = set()
    n = 0
    for address, username in to:
        if address.lower() in seen:
            continue
        seen.add(address.lower())
        ctx.session.add(
            Notification(
                kind=kind,
                recipient=address,
                recipient_username=username,
                subject=subject[:200],
                body=body,
                created_at=ctx.now(),
                created_by=ctx.actor.username,
                status="pending",
                attempts=0,
            )
        )
        n += 1
    ctx.session.flush()
    return n


def _users(
    ctx: Ctx, roles: Iterable[Role], centre_id: int | None = None
) -> list[tuple[str, str | None]]:
    rows = ctx.session.scalars(
        select(User).where(
            User.role.in_([r.value for r in roles]), User.active.is_(True), User.email.is_not(None)
        )
    )
    out: list[tuple[str, str | None]] = []
    for u in rows:
        if centre_id is not None and centre_id not in {c.id for c in u.centres}:
            continue
        assert u.email is not None
        out.append((u.email, u.username))
    return out


def pharmacovigilance(ctx: Ctx) -> list[tuple[str, str | None]]:
    to = _users(ctx, (Role.PHARMACOVIGILANCE,))
    if ctx.trial.settings.pv_email:
        to.append((ctx.trial.settings.pv_email, None))
    return to


def site_staff(ctx: Ctx, centre_id: int) -> list[tuple[str, str | None]]:
    return _users(ctx, SITE_STAFF, centre_id)


def user(ctx: Ctx, username: str) -> list[tuple[str, str | None]]:
    u = ctx.session.scalars(select(User).where(User.username == username)).first()
    return [] if u is None or not u.email or not u.active else [(u.email, u.username)]


def notify(ctx: Ctx, kind: str, to: list[tuple[str, str | None]], subject: str, body: str) -> int:
    """Queue ``subject``/``body`` for each address of ``to`` (once each)."""
    trial = ctx.protocol.id
    return _add(ctx, kind, to, f"[{trial}] {subject}", body + "\n\n-- reluth (do not reply)\n")
