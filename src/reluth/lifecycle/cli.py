"""``reluth lock|unlock patient|form|centre|study`` and ``reluth db freeze|unfreeze|lock``: the
data manager's locks (a locked record refuses every change, exit code 6, naming the lock)."""

from __future__ import annotations

import typer

from reluth.cli_support import cli_context, console, handle_errors, print_json
from reluth.cli_support import table as cli_table

lock_app = typer.Typer(
    help="Lock a form, patient, centre or the study (nothing changes).", no_args_is_help=True
)
unlock_app = typer.Typer(help="Lift a lock, with a reason.", no_args_is_help=True)

REASON = typer.Option(..., "--reason", help="Why (kept in the audit trail).")
JSON = typer.Option(False, "--json")


def _lock(scope: str, ident: str | None, reason: str, as_json: bool, kind: str = "lock") -> None:
    from reluth.lifecycle import service as lifecycle

    with cli_context(write=True) as ctx:
        row = lifecycle.lock(ctx, scope, ident, reason, kind)
        label, lock_id = row.label, row.id
    path = lifecycle.CHECKPOINTS.pop(lock_id, None)
    state = "locked" if kind == "lock" else "frozen"
    if as_json:
        print_json({"lock": lock_id, "target": label, "state": state, "checkpoint": path})
        return
    from reluth.i18n import gettext

    shown = gettext("locked") if kind == "lock" else gettext("frozen")
    console.print(
        gettext("{target} {state} (lock #{id})").format(target=label, state=shown, id=lock_id)
    )
    if path is not None:
        console.print(
            gettext("database lock anchored by the signed checkpoint {path}").format(path=path)
        )


def _unlock(scope: str, ident: str | None, reason: str, as_json: bool, kind: str = "lock") -> None:
    from reluth.lifecycle import service as lifecycle

    with cli_context(write=True, reason=reason) as ctx:
        row = lifecycle.unlock(ctx, scope, ident, reason, kind)
        label, lock_id = row.label, row.id
    state = "unlocked" if kind == "lock" else "unfrozen"
    if as_json:
        print_json({"lock": lock_id, "target": label, "state": state})
    else:
        from reluth.i18n import gettext

        shown = gettext("unlocked") if kind == "lock" else gettext("unfrozen")
        console.print(
            gettext("{target} {state} (lock #{id} lifted)").format(
                target=label, state=shown, id=lock_id
            )
        )


@lock_app.command("patient")
@handle_errors
def lock_patient(code: str, reason: str = REASON, as_json: bool = JSON) -> None:
    """Lock a patient's casebook: no change to any of its records, queries included."""
    _lock("patient", code, reason, as_json)


@lock_app.command("form")
@handle_errors
def lock_form(table: str, record_id: int, reason: str = REASON, as_json: bool = JSON) -> None:
    """Lock one form instance, e.g. ``reluth lock form lab_results 17``."""
    _lock("form", f"{table}/{record_id}", reason, as_json)


@lock_app.command("centre")
@handle_errors
def lock_centre(code: str, reason: str = REASON, as_json: bool = JSON) -> None:
    """Lock a centre: its patients' records and new registrations there."""
    _lock("centre", code, reason, as_json)


@lock_app.command("study")
@handle_errors
def lock_study(reason: str = REASON, as_json: bool = JSON) -> None:
    """The database lock: nothing changes; a signed audit checkpoint anchors it."""
    _lock("study", None, reason, as_json)


@unlock_app.command("patient")
@handle_errors
def unlock_patient(code: str, reason: str = REASON, as_json: bool = JSON) -> None:
    _unlock("patient", code, reason, as_json)


@unlock_app.command("form")
@handle_errors
def unlock_form(table: str, record_id: int, reason: str = REASON, as_json: bool = JSON) -> None:
    _unlock("form", f"{table}/{record_id}", reason, as_json)


@unlock_app.command("centre")
@handle_errors
def unlock_centre(code: str, reason: str = REASON, as_json: bool = JSON) -> None:
    _unlock("centre", code, reason, as_json)


@unlock_app.command("study")
@handle_errors
def unlock_study(reason: str = REASON, as_json: bool = JSON) -> None:
    _unlock("study", None, reason, as_json)


@handle_errors
def db_freeze(reason: str = REASON, as_json: bool = JSON) -> None:
    """Freeze the database: no data entry; queries, SDV and signatures go on."""
    _lock("study", None, reason, as_json, kind="freeze")


@handle_errors
def db_unfreeze(reason: str = REASON, as_json: bool = JSON) -> None:
    """Lift the freeze."""
    _unlock("study", None, reason, as_json, kind="freeze")


@handle_errors
def db_lock(reason: str = REASON, as_json: bool = JSON) -> None:
    """Lock the database (as ``reluth lock study``): nothing changes; a signed audit checkpoint
    of the locked database is written."""
    _lock("study", None, reason, as_json)


@handle_errors
def db_unlock(reason: str = REASON, as_json: bool = JSON) -> None:
    """Lift the database lock (as ``reluth unlock study``)."""
    _unlock("study", None, reason, as_json)


def _read_password(password_stdin: bool) -> str:
    import sys

    from reluth.errors import ValidationError

    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        from reluth.i18n import N_

        raise ValidationError("password", N_("no terminal to prompt on"), "--password-stdin")
    value: str = typer.prompt("Password (your electronic signature)", hide_input=True)
    return value


# --- e-signatures -------------------------------------------------------------------------

sign_app = typer.Typer(
    help="Sign a casebook, a visit or a form as the centre's principal investigator "
    "(re-entering your password).",
    no_args_is_help=True,
)
MEANING = typer.Option(None, "--meaning", help="What the signature means (default per scope).")


def _sign(
    code: str, scope: str, meaning: str | None, password_stdin: bool, as_json: bool, **kw: object
) -> None:
    from reluth.lifecycle import signature_service as signing

    password = _read_password(password_stdin)
    with cli_context(write=True) as ctx:
        row = signing.sign(ctx, code, scope, password, meaning, **kw)  # type: ignore[arg-type]
        view = signing.signature_view(ctx.session, row)
    if as_json:
        print_json(view)
        return
    from reluth.i18n import gettext

    console.print(
        gettext(
            "{what} of patient {patient} signed by {name} on {utc} ({site} site time): {meaning}"
        ).format(
            what=view.what,
            patient=code,
            name=view.printed_name,
            utc=view.signed_at_utc,
            site=view.site_time,
            meaning=view.meaning,
        )
    )


@sign_app.command("patient")
@handle_errors
def sign_patient(
    code: str,
    meaning: str | None = MEANING,
    password_stdin: bool = typer.Option(False, "--password-stdin"),
    as_json: bool = JSON,
) -> None:
    """Sign a patient's whole casebook."""
    _sign(code, "patient", meaning, password_stdin, as_json)


@sign_app.command("visit")
@handle_errors
def sign_visit(
    code: str,
    visit_code: str,
    meaning: str | None = MEANING,
    password_stdin: bool = typer.Option(False, "--password-stdin"),
    as_json: bool = JSON,
) -> None:
    """Sign one visit (its record and the records dated that day)."""
    _sign(code, "visit", meaning, password_stdin, as_json, visit_code=visit_code)


@sign_app.command("form")
@handle_errors
def sign_form(
    code: str,
    table: str,
    record_id: int,
    meaning: str | None = MEANING,
    password_stdin: bool = typer.Option(False, "--password-stdin"),
    as_json: bool = JSON,
) -> None:
    """Sign one form instance, e.g. ``reluth sign form C01-0001 lab_results 17``."""
    _sign(code, "form", meaning, password_stdin, as_json, table=table, record_id=record_id)


@sign_app.command("list")
@handle_errors
def sign_list(code: str, as_json: bool = JSON) -> None:
    """A patient's signatures and whether each still holds."""

    from reluth.lifecycle import signature_service as signing

    with cli_context() as ctx:
        views = signing.signatures(ctx, code)
    if as_json:
        print_json(views)
        return
    from reluth.i18n import N_, gettext

    table = cli_table(
        N_("id"),
        N_("what"),
        N_("signed by"),
        N_("UTC"),
        N_("site time"),
        N_("meaning"),
        N_("state"),
    )
    for v in views:
        state = (
            gettext("valid") if v.valid else gettext("INVALID: {why}").format(why=v.invalid_because)
        )
        table.add_row(
            str(v.id), v.what, v.printed_name, v.signed_at_utc, v.site_time, v.meaning, state
        )
    console.print(table)


@handle_errors
def users_set_pi(
    username: str,
    centre: str = typer.Option(..., "--centre"),
    printed_name: str = typer.Option(..., "--printed-name", help="As signatures show it."),
) -> None:
    """Designate an investigator principal investigator of a centre (administrators)."""
    from reluth.lifecycle import signature_service as signing

    with cli_context(write=True) as ctx:
        signing.designate_principal_investigator(ctx, username, centre, printed_name)
    from reluth.i18n import gettext

    console.print(
        gettext("{user} is principal investigator of {centre} ({name})").format(
            user=username, centre=centre, name=printed_name
        )
    )


@handle_errors
def users_unset_pi(
    username: str, centre: str = typer.Option(..., "--centre"), reason: str = REASON
) -> None:
    """End a principal-investigator designation, with a reason."""
    from reluth.lifecycle import signature_service as signing

    with cli_context(write=True, reason=reason) as ctx:
        signing.withdraw_principal_investigator(ctx, username, centre)
    from reluth.i18n import gettext

    console.print(
        gettext("{user} is no longer principal investigator of {centre}").format(
            user=username, centre=centre
        )
    )


# --- source-data verification -------------------------------------------------------------

sdv_app = typer.Typer(help="Source-data verification by monitors.", no_args_is_help=True)


@sdv_app.command("verify")
@handle_errors
def sdv_verify(
    code: str,
    table: str,
    record_id: int,
    field: str | None = typer.Option(None, "--field", help="One field (default: the form)."),
    as_json: bool = JSON,
) -> None:
    """Mark a form instance (or one of its fields) verified against the source."""
    from reluth.lifecycle import sdv_service as sdv

    with cli_context(write=True) as ctx:
        mark = sdv.verify(ctx, code, table, record_id, field)
        out = {"id": mark.id, "record": f"{table}/{record_id}", "field": field}
    if as_json:
        print_json(out)
    else:
        from reluth.i18n import gettext

        console.print(
            gettext("{record} {field} verified (SDV #{id})").format(
                record=out["record"], field=field or gettext("(whole form)"), id=out["id"]
            )
        )


@sdv_app.command("visit")
@handle_errors
def sdv_visit(code: str, visit_code: str, as_json: bool = JSON) -> None:
    """Mark every form of a visit verified."""
    from reluth.lifecycle import sdv_service as sdv

    with cli_context(write=True) as ctx:
        records = [f"{m.table_name}/{m.record_id}" for m in sdv.verify_visit(ctx, code, visit_code)]
    if as_json:
        print_json(records)
    else:
        from reluth.i18n import gettext

        console.print(
            gettext("visit {visit} of {patient}: {records} verified").format(
                visit=visit_code, patient=code, records=", ".join(records)
            )
        )


@sdv_app.command("list")
@handle_errors
def sdv_list(code: str, as_json: bool = JSON) -> None:
    """A patient's SDV marks, and the change that cleared each, if one did."""

    from reluth.lifecycle import sdv_service as sdv

    with cli_context() as ctx:
        marks = sdv.sdv_marks(ctx, code)
    if as_json:
        print_json(marks)
        return
    import datetime as dt

    from reluth.i18n import N_, format_moment, gettext

    table = cli_table(N_("id"), N_("record"), N_("field"), N_("by"), N_("at (UTC)"), N_("state"))
    for m in marks:
        state = (
            gettext("cleared by {change}").format(change=m.cleared_by_change)
            if m.cleared_by_change
            else gettext("verified")
        )
        at = format_moment(m.verified_at, dt.UTC).removesuffix(" UTC")
        table.add_row(str(m.id), f"{m.table_name}/{m.record_id}", m.field or gettext("(form)"),
                      m.verified_by, at, state)  # fmt: skip
    console.print(table)


@sdv_app.command("report")
@handle_errors
def sdv_report(centre: str | None = typer.Option(None, "--centre"), as_json: bool = JSON) -> None:
    """The monitor's report per centre: required and sampled records, verified, cleared."""

    from reluth.lifecycle import sdv_service as sdv

    with cli_context() as ctx:
        reports = sdv.sdv_report(ctx, centre)
    if as_json:
        print_json([sdv.report_dict(r) for r in reports])
        return
    from reluth.i18n import N_

    table = cli_table(N_("centre"), N_("required"), N_("verified"), N_("sampled"), N_("verified"),
                      N_("not sampled"), N_("fields"), N_("cleared"), N_("to verify"))  # fmt: skip
    for r in reports:
        table.add_row(r.centre, str(r.required), f"{r.required_verified} ({r.required_percent} %)",
                      str(r.sampled), f"{r.sampled_verified} ({r.sampled_percent} %)",
                      str(r.not_sampled), str(r.fields_verified), str(r.cleared),
                      str(len(r.outstanding)))  # fmt: skip
    console.print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(lock_app, name="lock")
    root.add_typer(unlock_app, name="unlock")
    root.add_typer(sign_app, name="sign")
    root.add_typer(sdv_app, name="sdv")


def add_db_commands(db_app: typer.Typer) -> None:
    """``reluth db freeze|unfreeze|lock|unlock`` (mounted by :mod:`reluth.core.cli`)."""
    db_app.command("freeze")(db_freeze)
    db_app.command("unfreeze")(db_unfreeze)
    db_app.command("lock")(db_lock)
    db_app.command("unlock")(db_unlock)


def add_user_commands(users_app: typer.Typer) -> None:
    """``reluth users set-pi|unset-pi`` (mounted by :mod:`reluth.auth.cli`)."""
    users_app.command("set-pi")(users_set_pi)
    users_app.command("unset-pi")(users_unset_pi)
