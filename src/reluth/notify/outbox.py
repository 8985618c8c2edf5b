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
from reluth.i18n import N_, gettext, use_locale
from reluth.i18n.reasons import Reason
from reluth.notify.models import Notification

SITE_STAFF = (Role.INVESTIGATOR, Role.RESEARCH_NURSE)


Text = str | Reason


def _languages(ctx: Ctx, usernames: set[str]) -> dict[str, str | None]:
    if not usernames:
        return {}
    rows = ctx.session.execute(
        select(User.username, User.language).where(User.username.in_(sorted(usernames)))
    )
    return {name: language for name, language in rows}


def _written(text: Text, language: str) -> str:
    if isinstance(text, str):
        return text
    with use_locale(language):
        return text.render()


def _add(
    ctx: Ctx,
    kind: str,
    to: Iterable[tuple[str, str | None]],
    subject: Text,
    body: Text,
    suffix: str = "",
) -> int:
    """One row per address, written in the recipient's language: the account's, else the
    trial's (``RELUTH_LANGUAGE``)."""
    to = list(to)
    languages = _languages(ctx, {u for _, u in to if u})
    fallback = ctx.trial.settings.language
    seen: set[str] = set()
    n = 0
    for address, username in to:
        if address.lower() in seen:
            continue
        seen.add(address.lower())
        language = (languages.get(username) if username else None) or fallback
        with use_locale(language):
            signature = gettext(suffix) if suffix else ""
        ctx.session.add(
            Notification(
                kind=kind,
                recipient=address,
                recipient_username=username,
                subject=_written(subject, language)[:200],
                body=_written(body, language) + signature,
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


def notify(ctx: Ctx, kind: str, to: list[tuple[str, str | None]], subject: Text, body: Text) -> int:
    """Queue ``subject``/``body`` for each address of ``to`` (once each), each written in its
    recipient's language when given as a :class:`Reason` (message key and values)."""
    trial = ctx.protocol.id
    titled = Reason("mail.subject", "[{trial}] {subject}", {"trial": trial, "subject": subject})
    return _add(ctx, kind, to, titled, body, N_("\n\n-- reluth (do not reply)\n"))
