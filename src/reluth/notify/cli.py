"""Commands ``reluth notify retry|digest|log``: deliver the e-mail outbox (and retry failed
messages), queue the weekly digest of overdue forms per centre, show the delivery log."""

from __future__ import annotations

import typer

from reluth.cli_support import cli_context, console, handle_errors, print_json
from reluth.cli_support import table as cli_table

app = typer.Typer(help="E-mail notifications (SMTP from RELUTH_SMTP_URL).", no_args_is_help=True)


@app.command("retry")
@handle_errors
def retry_command() -> None:
    """Send every pending message and retry the failed ones (administrator)."""
    from reluth.notify import service

    with cli_context(write=True, reason="e-mail delivery attempt") as ctx:
        result = service.deliver(ctx)
    from reluth.i18n import format_number, gettext

    console.print(
        gettext("sent {sent}, failed {failed}, still to retry {waiting}").format(
            sent=format_number(result.sent),
            failed=format_number(result.failed),
            waiting=format_number(result.waiting),
        )
    )


@app.command("digest")
@handle_errors
def digest_command(
    send: bool = typer.Option(True, "--send/--queue-only", help="Deliver at once."),
) -> None:
    """Queue the weekly digest of overdue forms to each centre's staff (data manager); run it
    weekly, e.g. from cron: ``0 7 * * MON reluth notify digest``."""
    from reluth.notify import service

    with cli_context(write=True) as ctx:
        per_centre = service.weekly_digest(ctx)
    from reluth.i18n import format_number, gettext, ngettext

    for centre, n in per_centre.items():
        line = ngettext(
            "centre {centre}: {n} overdue visit", "centre {centre}: {n} overdue visits", n
        )
        console.print(line.format(centre=centre, n=format_number(n)))
    if not per_centre:
        console.print(gettext("no overdue forms"))
    if send and per_centre:
        console.print(
            gettext(
                "delivery: run `reluth notify retry` as an administrator (or the web app's drain)"
            )
        )


@app.command("log")
@handle_errors
def log_command(
    limit: int = typer.Option(50, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The latest messages: to whom, when, what, and the delivery result (administrator)."""
    from reluth.notify import service

    with cli_context() as ctx:
        rows = service.log(ctx, limit)
        data = [
            {
                "id": r.id,
                "kind": r.kind,
                "to": r.recipient,
                "subject": r.subject,
                "created_at": r.created_at,
                "created_by": r.created_by,
                "status": r.status,
                "attempts": r.attempts,
                "last_error": r.last_error,
            }
            for r in rows
        ]
    if as_json:
        print_json(data)
        return
    from reluth.i18n import N_, gettext

    statuses = {"pending": N_("pending"), "sent": N_("sent"), "failed": N_("failed")}

    table = cli_table(
        N_("id"), N_("kind"), N_("to"), N_("subject"), N_("status"), N_("attempts"), N_("error")
    )
    for d in data:
        table.add_row(
            str(d["id"]),
            str(d["kind"]),
            str(d["to"]),
            str(d["subject"]),
            gettext(statuses.get(str(d["status"]), str(d["status"]))),
            str(d["attempts"]),
            str(d["last_error"] or ""),
        )
    console.print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="notify")
