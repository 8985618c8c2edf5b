"""``reluth db init|backup|restore`` and ``reluth audit verify|show``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from sqlalchemy import Engine, select

from reluth.cli_support import console, handle_errors, print_json
from reluth.config import get_settings
from reluth.db import audit
from reluth.db import backup as backups
from reluth.db.engine import make_engine
from reluth.db.migrate import current_revision, head_revision, upgrade
from reluth.db.registry import load_all_models
from reluth.db.session import read_session
from reluth.errors import NotFound, ValidationError

db_app = typer.Typer(help="Create, back up and restore the trial database.", no_args_is_help=True)
audit_app = typer.Typer(help="Check and read the audit trail.", no_args_is_help=True)


def engine_from_settings() -> Engine:
    return make_engine(get_settings().database_url)


def _print_verify(result: audit.VerifyResult, as_json: bool) -> None:
    if as_json:
        print_json(result)
    elif result.ok:
        console.print(
            f"audit trail intact: {result.rows_checked} rows, head #{result.last_seq} "
            f"{result.last_hash[:16]}… (record this hash elsewhere to anchor the chain)"
        )
    else:
        console.print(
            f"[bold red]audit trail BROKEN at row {result.first_broken_seq}[/]: {result.problem}"
        )
    if not result.ok:
        raise typer.Exit(1)


@db_app.command("init")
@handle_errors
def init_cmd() -> None:
    """Create or upgrade the schema (alembic upgrade head)."""
    engine = engine_from_settings()
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    state = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    console.print(f"database {engine.url.render_as_string()}: {state} revision {after}")
    engine.dispose()


@db_app.command("backup")
@handle_errors
def backup_cmd(
    path: Path = typer.Argument(..., help="New backup file."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Back up the database (SQLite online backup; pg_dump on PostgreSQL), then verify it."""
    engine = engine_from_settings()
    result = backups.backup(engine, path)
    if not as_json:
        console.print(f"backup written to {path}")
    _print_verify(result, as_json)


@db_app.command("restore")
@handle_errors
def restore_cmd(
    path: Path = typer.Argument(..., help="Backup file made by `reluth db backup`."),
    force: bool = typer.Option(False, "--force", help="Overwrite a database that holds data."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Restore the database from a backup, then verify the audit chain."""
    engine = engine_from_settings()
    result = backups.restore(engine, path, force=force)
    if not as_json:
        console.print(f"restored from {path} (schema revision {current_revision(engine)})")
    _print_verify(result, as_json)


@audit_app.command("verify")
@handle_errors
def verify_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Check the SHA-256 chain of the whole audit trail; name the first broken row."""
    engine = engine_from_settings()
    with engine.connect() as conn:
        total = audit.count(conn)
        with Progress(
            TextColumn("verifying"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} rows"),
            console=console,
            transient=True,
            disable=as_json,
        ) as progress:
            task = progress.add_task("verify", total=total)
            result = audit.verify(conn, lambda n: progress.update(task, completed=n))
    engine.dispose()
    _print_verify(result, as_json)


def _resolve_record(engine: Engine, record: str) -> list[tuple[str, str]]:
    """``TABLE:ID`` → that record; a patient ID → the patient and every row that refers to it."""
    if ":" in record:
        table, _, rid = record.partition(":")
        if table not in load_all_models().tables:
            raise ValidationError("record", f"unknown table {table!r}", "TABLE:ID or C07-0012")
        return [(table, rid)]
    from reluth.patients.models import Patient

    with read_session(engine) as s:
        pid = s.scalar(select(Patient.id).where(Patient.patient_code == record))
        if pid is None:
            raise NotFound(f"no patient {record!r} (use TABLE:ID for other records)")
        out = [("patients", str(pid))]
        tables = load_all_models().tables
        for tbl in tables.values():
            if "patient_id" in tbl.c and tbl.name != "allocation_slots":
                pk = next(iter(tbl.primary_key.columns))
                for rid in s.execute(select(pk).where(tbl.c.patient_id == pid)).scalars():
                    out.append((tbl.name, str(rid)))
        lesions, assessments = tables["lesion_measurements"], tables["tumour_assessments"]
        for rid in s.execute(
            select(lesions.c.id)
            .join(assessments, assessments.c.id == lesions.c.assessment_id)
            .where(assessments.c.patient_id == pid)
        ).scalars():
            out.append(("lesion_measurements", str(rid)))
    return out


@audit_app.command("show")
@handle_errors
def show_cmd(
    record: str = typer.Argument(..., help="TABLE:ID (e.g. adverse_events:12) or a patient ID."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Print the full history of a record (or of everything recorded for a patient)."""
    engine = engine_from_settings()
    wanted = _resolve_record(engine, record)
    rows: list[Any] = []
    with read_session(engine) as s:
        for table, rid in wanted:
            rows.extend(audit.history(s, table, rid))
    rows.sort(key=lambda r: r.seq)
    engine.dispose()
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
    if not rows:
        console.print(f"no audit rows for {record}")
        return
    view = Table(title=f"history of {record} (--json for full values)")
    for col in ("#", "UTC", "user (role)", "record", "change", "reason"):
        view.add_column(col, overflow="fold")
    for r in rows:
        if r.action == "insert":
            change = "created"
        elif r.action == "delete":
            change = "deleted"
        elif r.action != "update":  # an event without a data change (e.g. an export)
            change = f"{r.action}: {_short(r.new_value)}"
        else:
            change = f"{r.field}: {_short(r.old_value)} → {_short(r.new_value)}"
        view.add_row(
            str(r.seq),
            r.at_utc[:19].replace("T", " "),
            f"{r.username} ({r.role})",
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
    """Show the schema revision of the database and of this version of reluth."""
    engine = engine_from_settings()
    console.print(f"database revision {current_revision(engine)}; code expects {head_revision()}")
    engine.dispose()


def register(root: typer.Typer) -> None:
    root.add_typer(db_app, name="db")
    root.add_typer(audit_app, name="audit")
