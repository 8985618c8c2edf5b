"""``reluth db init|backup|restore`` and ``reluth audit verify|checkpoint|show``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from reluth.cli_support import console, handle_errors, print_json
from reluth.config import get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from reluth.db import audit

db_app = typer.Typer(help="Create, back up and restore the trial database.", no_args_is_help=True)
audit_app = typer.Typer(help="Check and read the audit trail.", no_args_is_help=True)


def engine_from_settings() -> Engine:
    from reluth.db.engine import make_engine

    return make_engine(get_settings().database_url)


def _print_verify(result: audit.VerifyResult, as_json: bool) -> None:
    from reluth.i18n import format_number, gettext

    if as_json:
        print_json(result)
    elif result.ok:
        console.print(
            gettext(
                "audit chain intact: {rows} rows, head #{seq} {hash}… (`reluth audit verify` "
                "also checks the checkpoints, the tables' state and the allocation list)"
            ).format(
                rows=format_number(result.rows_checked),
                seq=result.last_seq,
                hash=result.last_hash[:16],
            )
        )
    else:
        console.print(
            gettext("[bold red]audit trail BROKEN at row {seq}[/]: {problem}").format(
                seq=result.first_broken_seq, problem=result.problem
            )
        )
    if not result.ok:
        raise typer.Exit(1)


def _operator(engine: Engine) -> Any:
    """The administrator running an operation on this database (any schema version); None on a
    database without any account yet (the bootstrap)."""
    from reluth.auth.service import sha256
    from reluth.cli_support import NotLoggedIn, database_url, token_from_environment
    from reluth.core import operations

    if not operations.has_accounts(engine):
        return None
    token = token_from_environment(database_url())
    if token is None:
        raise NotLoggedIn()
    actor = operations.actor_on_any_schema(engine, sha256(token))
    if actor is None:
        raise NotLoggedIn("your login or token is not valid: run `reluth login USERNAME` again")
    operations.require_operator(actor)
    return actor


def _record(engine: Engine, actor: Any, what: str, detail: dict[str, Any]) -> None:
    from reluth.core.context import writing
    from reluth.core.operations import record_operation
    from reluth.core.trial import Trial

    if actor is None:
        return
    with writing(engine, actor, Trial.default()) as ctx:
        record_operation(ctx, what, detail)


@db_app.command("init")
@handle_errors
def init_cmd() -> None:
    """Create or upgrade the schema (alembic upgrade head). On a database that holds accounts,
    an administrator's login is needed; the first run on an empty database needs none."""
    from reluth.db.migrate import current_revision, upgrade

    engine = engine_from_settings()
    try:
        actor = _operator(engine)
        _create_keys(get_settings())
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
        if before != after:
            _record(engine, actor, "migrate", {"from": before, "to": after})
        from reluth.i18n import gettext

        url = engine.url.render_as_string()
        if before == after:
            shown = gettext("database {url}: already at revision {after}")
        elif before:
            shown = gettext("database {url}: upgraded from {before} to revision {after}")
        else:
            shown = gettext("database {url}: upgraded from empty to revision {after}")
        console.print(shown.format(url=url, before=before, after=after))
        if actor is None:
            console.print(
                gettext(
                    "no account yet: create the first administrator with "
                    "`reluth users add NAME --role admin --password-stdin`, then "
                    "`reluth login NAME`"
                )
            )
    finally:
        engine.dispose()


def _create_keys(settings: Any) -> None:
    """The keys kept outside the database, created once where the settings name them: the
    audit chain's HMAC key, the allocation list's key, the checkpoint signing key."""
    from reluth.db import checkpoint
    from reluth.i18n import N_, gettext
    from reluth.keyfiles import create_secret_file

    for present, path, what in (
        (settings.audit_key, settings.audit_key_path, N_("audit key (RELUTH_AUDIT_KEY_FILE)")),
        (
            settings.allocation_key,
            settings.allocation_key_path,
            N_("allocation list key (RELUTH_ALLOCATION_KEY_FILE)"),
        ),
    ):
        if present or path.exists():
            continue
        create_secret_file(path)
        console.print(
            gettext(
                "new {what} written to {path} (mode 600): back it up and keep it off the "
                "database server's backups; without it the audit trail cannot be verified or "
                "extended"
            ).format(what=gettext(what), path=path)
        )
    signing = settings.checkpoint_key_path
    if not signing.exists():
        public = checkpoint.create_signing_key(signing)
        console.print(
            gettext(
                "new checkpoint signing key written to {signing} (mode 600; the sponsor keeps "
                "it) and its public key to {public} (give it to whoever verifies)"
            ).format(signing=signing, public=public)
        )


@db_app.command("backup")
@handle_errors
def backup_cmd(
    path: Path = typer.Argument(..., help="New backup file."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Back up the database (SQLite online backup; pg_dump on PostgreSQL), then verify it
    (administrators)."""
    from reluth.db import backup as backups

    engine = engine_from_settings()
    actor = _operator(engine)
    _record(engine, actor, "backup", {"file": str(path)})
    result = backups.backup(engine, path)
    if not as_json:
        from reluth.i18n import gettext

        console.print(gettext("backup written to {path}").format(path=path))
    _print_verify(result, as_json)


@db_app.command("restore")
@handle_errors
def restore_cmd(
    path: Path = typer.Argument(..., help="Backup file made by `reluth db backup`."),
    force: bool = typer.Option(False, "--force", help="Overwrite a database that holds data."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Restore the database from a backup, then verify the audit chain (administrators; on a
    database without any account, the operator)."""
    from reluth.db import backup as backups
    from reluth.db.migrate import current_revision, head_revision

    engine = engine_from_settings()
    actor = _operator(engine)
    result = backups.restore(engine, path, force=force)
    if actor is not None and result.ok and current_revision(engine) == head_revision():
        _record(engine, actor, "restore", {"file": str(path)})
    if not as_json:
        from reluth.i18n import gettext

        console.print(
            gettext("restored from {path} (schema revision {revision})").format(
                path=path, revision=current_revision(engine)
            )
        )
    _print_verify(result, as_json)


@audit_app.command("verify")
@handle_errors
def verify_cmd(
    key_file: Path | None = typer.Option(
        None, "--key-file", help="Audit key file (default: RELUTH_AUDIT_KEY[_FILE])."
    ),
    checkpoints: Path | None = typer.Option(
        None,
        "--checkpoints",
        help="Directory of signed checkpoints (default: RELUTH_CHECKPOINT_DIR or "
        "<data dir>/checkpoints).",
    ),
    public_key: Path | None = typer.Option(
        None,
        "--public-key",
        help="Trusted public key of the checkpoint signer (default: configured, else the "
        "directory's signing-key.pub).",
    ),
    allocation_key_file: Path | None = typer.Option(
        None,
        "--allocation-key-file",
        help="Allocation list key, to check arms against slots (default: configured).",
    ),
    state: bool = typer.Option(
        True, "--state/--no-state", help="Replay every audited table from the trail."
    ),
    as_json: bool = typer.Option(False, "--json", help="Every finding, machine-readable."),
) -> None:
    """Prove the audit trail: the keyed chain complete and gap-free, against every signed
    checkpoint, every audited table replayed from it field by field, and the allocation
    checks. Exit 1 on any finding."""
    from rich.progress import BarColumn, Progress, TextColumn

    from reluth import sealing
    from reluth.cli_support import cli_context
    from reluth.core import integrity
    from reluth.db import auditkey
    from reluth.errors import NotConfigured
    from reluth.i18n import N_, gettext
    from reluth.i18n.reasons import refusal
    from reluth.keyfiles import read_secret

    settings = get_settings()
    key = auditkey.read_key_file(key_file) if key_file else auditkey.configured_key(settings)
    if key is None:
        raise refusal(
            NotConfigured,
            "audit_key_required",
            N_("verify needs the audit key: --key-file FILE, or {how}"),
            how=auditkey.NO_KEY,
        )
    allocation_key = (
        sealing.AllocationKey(read_secret(allocation_key_file, "--allocation-key-file"))
        if allocation_key_file
        else sealing.configured_key(settings)
    )
    directory = checkpoints or settings.checkpoint_path
    if checkpoints is not None and not checkpoints.is_dir():
        raise refusal(
            NotConfigured,
            "not_a_directory",
            N_("{setting}: not a directory: {path}"),
            setting="--checkpoints",
            path=str(checkpoints),
        )
    with (
        Progress(
            TextColumn(gettext("verifying {task.description}")),
            BarColumn(),
            TextColumn(gettext("{task.completed} rows")),
            console=console,
            transient=True,
            disable=as_json,
        ) as progress,
        cli_context() as ctx,
    ):
        tasks: dict[str, Any] = {}

        def tick(what: str, n: int) -> None:
            if what not in tasks:
                tasks[what] = progress.add_task(what, total=None)
            progress.update(tasks[what], completed=n)

        report = integrity.verify_store(
            ctx, key, directory, public_key, state, allocation_key, tick
        )
    if as_json:
        print_json(report)
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: Any) -> None:
    from reluth.i18n import format_number, gettext

    if report.ok:
        console.print(
            gettext(
                "[green]audit trail verified[/]: {rows} rows, head #{seq} {hash}…; no finding"
            ).format(
                rows=format_number(report.rows_checked),
                seq=report.last_seq,
                hash=report.last_hash[:16],
            )
        )
    else:
        first = report.findings[0]
        console.print(
            gettext("[bold red]audit trail NOT verified[/]: {n} findings; first: {first}").format(
                n=format_number(len(report.findings)), first=first.message
            )
        )
        for f in report.findings[1:10]:
            console.print(f"  - {f.message}")
        if len(report.findings) > 10:
            more = gettext("… and {n} more (--json lists them all)")
            console.print(f"  {more.format(n=format_number(len(report.findings) - 10))}")
    checked, not_checked = gettext("checked: {what}"), gettext("[yellow]not checked[/]: {what}")
    for line in report.done:
        console.print(f"  {checked.format(what=line)}")
    for line in report.not_done:
        console.print(f"  {not_checked.format(what=line)}")
    if report.latest_checkpoint:
        latest = gettext("latest checkpoint: {checkpoint}; signatures checked with {key}")
        console.print(
            f"  {latest.format(checkpoint=report.latest_checkpoint, key=report.trusted_public_key)}"
        )


@audit_app.command("checkpoint")
@handle_errors
def checkpoint_cmd(
    directory: Path | None = typer.Option(
        None, "--dir", help="Where to write (default: RELUTH_CHECKPOINT_DIR)."
    ),
    signing_key: Path | None = typer.Option(
        None, "--signing-key", help="Ed25519 private key (default: RELUTH_CHECKPOINT_KEY_FILE)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Write a signed checkpoint of the audit trail (head, time, records per table) to a file
    outside the database; keep the directory append-only (e.g. a WORM share)."""
    from reluth.cli_support import cli_context
    from reluth.core import integrity

    settings = get_settings()
    with cli_context() as ctx:
        path = integrity.checkpoint(
            ctx,
            directory or settings.checkpoint_path,
            signing_key or settings.checkpoint_key_path,
        )
    if as_json:
        print_json({"checkpoint": str(path)})
    else:
        from reluth.i18n import gettext

        console.print(gettext("checkpoint written to {path}").format(path=path))


@audit_app.command("show")
@handle_errors
def show_cmd(
    record: str = typer.Argument(..., help="TABLE:ID (e.g. adverse_events:12) or a patient ID."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Print the full history of a record (or of everything recorded for a patient), as the
    logged-in user may see it (a patient's history as on its audit page)."""
    from reluth.cli_support import cli_context
    from reluth.records import views

    with cli_context() as ctx:
        rows = views.record_history(ctx, record)
    if as_json:
        print_json(
            [
                {
                    "seq": r.seq,
                    "at_utc": r.at_utc,
                    "user": r.username,
                    "role": r.role,
                    "action": r.action,
                    "table": r.table_name,
                    "record_id": r.record_id,
                    "field": r.field,
                    "old": None if r.old_value is None else json.loads(r.old_value),
                    "new": None if r.new_value is None else json.loads(r.new_value),
                    "reason": r.reason,
                }
                for r in rows
            ]
        )
        return
    from reluth.cli_support import table
    from reluth.i18n import N_, format_stored_moment, gettext
    from reluth.i18n.vocabulary import label

    if not rows:
        console.print(gettext("no audit rows for {record}").format(record=record))
        return
    title = gettext("history of {record} (--json for full values)").format(record=record)
    view = table(title=title)
    for col in ("#", N_("UTC"), N_("user (role)"), N_("record"), N_("change"), N_("reason")):
        view.add_column(gettext(col), overflow="fold")
    for r in rows:
        if r.action == "insert":
            change = gettext("created")
        elif r.action == "delete":
            change = gettext("deleted")
        elif r.action != "update":  # an event without a data change (e.g. an export)
            change = f"{label('audit_action', r.action)}: {_short(r.new_value)}"
        else:
            change = f"{r.field}: {_short(r.old_value)} → {_short(r.new_value)}"
        view.add_row(
            str(r.seq),
            format_stored_moment(r.at_utc),
            f"{r.username} ({label('role', r.role)})",
            f"{r.table_name}:{r.record_id}",
            change,
            r.reason or "",
        )
    console.print(view)


def _short(value: str | None, limit: int = 30) -> str:
    if value is None:
        return ""
    return value if len(value) <= limit else value[: limit - 1] + "…"


@db_app.command("status")
@handle_errors
def status_cmd() -> None:
    """Show the schema revision of the database and of this version of reluth (any login;
    on a database without accounts, nobody needs one)."""
    from reluth.auth.service import sha256
    from reluth.cli_support import NotLoggedIn, database_url, token_from_environment
    from reluth.core import operations
    from reluth.db.migrate import current_revision, head_revision

    engine = engine_from_settings()
    try:
        if operations.has_accounts(engine):
            token = token_from_environment(database_url())
            if token is None or operations.actor_on_any_schema(engine, sha256(token)) is None:
                raise NotLoggedIn()
        from reluth.i18n import gettext

        console.print(
            gettext("database revision {current}; code expects {head}").format(
                current=current_revision(engine), head=head_revision()
            )
        )
    finally:
        engine.dispose()


def register(root: typer.Typer) -> None:
    root.add_typer(db_app, name="db")
    root.add_typer(audit_app, name="audit")


def _lifecycle_commands() -> None:
    from reluth.lifecycle.cli import add_db_commands

    add_db_commands(db_app)


_lifecycle_commands()
