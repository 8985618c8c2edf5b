"""Delivering the outbox, the weekly digest of overdue forms per centre, and the log.

Delivery runs as an administrator's (or the web app's mailer's) act: each attempt updates the
message's row (status, attempts, time, error) in the audited unit of work, so who was told what
and when, and whether it arrived, is in the table and in the audit trail. A failed message is
retried by the next drain (``reluth notify retry`` or the web app's background drain, every
20 s) until it is sent or has failed ``MAX_ATTEMPTS`` times.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import or_, select

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.errors import PreconditionFailed
from reluth.i18n import N_
from reluth.i18n.reasons import Joined, Reason, Visit, refusal
from reluth.notify import mailer, outbox
from reluth.notify.models import Notification
from reluth.records.dashboard import overdue_visits
from reluth.sites import service as sites

MAX_ATTEMPTS = 10
#: The digest's overdue visits, one a line.
LINES = "\n"
Sender = Callable[[str, str, str], None]  # (to, subject, body); raises on failure


@dataclass(frozen=True)
class Delivery:
    sent: int
    failed: int
    waiting: int  # still to try after this drain (failed below the attempt limit)


def _smtp_sender(ctx: Ctx) -> Sender:
    """The configured SMTP server as a sender (PreconditionFailed when none is configured)."""
    settings = ctx.trial.settings
    if not settings.smtp_url:
        raise refusal(
            PreconditionFailed,
            "smtp_not_configured",
            N_("no SMTP server configured: set RELUTH_SMTP_URL"),
        )
    config = mailer.parse_url(settings.smtp_url, settings.smtp_from)
    return lambda to, subject, body: mailer.send(config, to, subject, body)


@service(Action.WRITE, Resource.NOTIFICATION)
def deliver(ctx: Ctx, send: Sender | None = None, limit: int = 200) -> Delivery:
    """Try every pending message and every failed one below ``MAX_ATTEMPTS`` (oldest first)."""
    sender = send or _smtp_sender(ctx)
    ctx.default_reason("e-mail delivery attempt")
    rows = ctx.session.scalars(
        select(Notification)
        .where(
            or_(
                Notification.status == "pending",
                (Notification.status == "failed") & (Notification.attempts < MAX_ATTEMPTS),
            )
        )
        .order_by(Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    sent = failed = 0
    for row in rows:
        row.attempts += 1
        row.last_attempt_at = ctx.now()
        try:
            sender(row.recipient, row.subject, row.body)
        except Exception as exc:  # any delivery failure is recorded and retried
            row.status = "failed"
            row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            failed += 1
        else:
            row.status = "sent"
            row.sent_at = ctx.now()
            row.last_error = None
            sent += 1
    ctx.session.flush()
    waiting = sum(1 for r in rows if r.status == "failed" and r.attempts < MAX_ATTEMPTS)
    return Delivery(sent, failed, waiting)


@service(Action.WRITE, Resource.NOTIFICATION_DIGEST)
def weekly_digest(ctx: Ctx) -> dict[str, int]:
    """Queue, per centre, one message to its investigators and research nurses listing the
    visits whose window has closed without the form (patients by pseudonym). Returns the
    number of overdue visits per centre that had some."""
    by_centre: dict[str, list[Reason]] = defaultdict(list)
    for v in overdue_visits(ctx):
        by_centre[v.centre].append(
            Reason(
                "mail.digest_line",
                N_("- {patient}: {visit} ({code}), window closed {closed}, {days} days overdue"),
                {
                    "patient": v.patient_code,
                    "visit": Visit(v.visit_code, v.label),
                    "code": v.visit_code,
                    "closed": v.window_end,
                    "days": v.days_overdue,
                },
            )
        )
    centres = {c.code: c for c in sites.list_centres(ctx.session)}
    out: dict[str, int] = {}
    for code, lines in sorted(by_centre.items()):
        centre = centres.get(code)
        if centre is None:
            continue
        body = Reason(
            "mail.digest",
            N_(
                "Centre {centre}: {count} visit(s) past their window with no form recorded, "
                "as of {today}.\n\n{lines}\n\nOpen the dashboard to enter them."
            ),
            {
                "centre": code,
                "count": len(lines),
                "today": ctx.today(),
                "lines": Joined(tuple(lines), LINES),
            },
        )
        subject = Reason(
            "mail.digest_subject", N_("Overdue forms, centre {centre}"), {"centre": code}
        )
        outbox.notify(ctx, "digest", outbox.site_staff(ctx, centre.id), subject, body)
        out[code] = len(lines)
    return out


@service(Action.READ, Resource.NOTIFICATION)
def log(ctx: Ctx, limit: int = 200) -> list[Notification]:
    """The latest messages with their delivery state, newest first."""
    return list(
        ctx.session.scalars(select(Notification).order_by(Notification.id.desc()).limit(limit))
    )
