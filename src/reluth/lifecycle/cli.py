"""``reluth lock|unlock patient|form|centre|study`` and ``reluth db freeze|unfreeze|lock``: the
data manager's locks (a locked record refuses every change, exit code 6, naming the lock)."""

from __future__ import annotations

import typer

from reluth.cli_support import cli_context, console, handle_errors, print_json

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
    console.print(f"{label} {state} (lock #{lock_id})")
    if path is not None:
        console.print(f"database lock anchored by the signed checkpoint {path}")


def _unlock(scope: str, ident: str | None, reason: str, as_json: bool, kind: str = "lock") -> None:
    from reluth.lifecycle import service as lifecycle

    with cli_context(write=True, reason=reason) as ctx:
        row = lifecycle.unlock(ctx, scope, ident, reason, kind)
        label, lock_id = row.label, row.id
    state = "unlocked" if kind == "lock" else "unfrozen"
    if as_json:
        print_json({"lock": lock_id, "target": label, "state": state})
    else:
        console.print(f"{label} {state} (lock #{lock_id} lifted)")


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


def register(root: typer.Typer) -> None:
    from reluth.core.cli import db_app

    root.add_typer(lock_app, name="lock")
    root.add_typer(unlock_app, name="unlock")
    db_app.command("freeze")(db_freeze)
    db_app.command("unfreeze")(db_unfreeze)
    db_app.command("lock")(db_lock)
    db_app.command("unlock")(db_unlock)
