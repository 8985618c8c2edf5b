"""Backup and restore, each followed by a check of the audit chain.

SQLite uses the online backup API (consistent while others write). PostgreSQL uses
``pg_dump --format=custom`` / ``pg_restore --clean`` when those tools are on PATH.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from reluth.db import audit
from reluth.db.engine import make_engine
from reluth.errors import Conflict, ReluthError, ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import refusal


def _sqlite_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise ValidationError("database_url", N_("an in-memory database cannot be backed up"))
    return Path(database)


def _verify_url(url: str) -> audit.VerifyResult:
    eng = make_engine(url)
    try:
        with eng.connect() as conn:
            return audit.verify(conn)
    finally:
        eng.dispose()


def _pg_tool(name: str) -> str:
    tool = shutil.which(name)
    if tool is None:
        raise refusal(
            ReluthError,
            "tool_missing",
            N_("{tool} is not installed: install the PostgreSQL client tools"),
            tool=name,
        )
    return tool


def _libpq_url(engine: Engine) -> str:
    return make_url(engine.url).set(drivername="postgresql").render_as_string(hide_password=False)


def backup(engine: Engine, target: Path) -> audit.VerifyResult:
    """Copy the database to ``target`` and verify the audit chain of the copy."""
    target = Path(target)
    if target.exists():
        raise refusal(
            Conflict,
            "backup_exists",
            N_("{path} exists: choose a new backup file"),
            path=str(target),
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    if engine.dialect.name == "sqlite":
        source = sqlite3.connect(_sqlite_path(engine))
        dest = sqlite3.connect(target)
        try:
            source.backup(dest)
        finally:
            dest.close()
            source.close()
        return _verify_url(f"sqlite:///{target}")
    subprocess.run(
        [_pg_tool("pg_dump"), "--format=custom", "--file", str(target), _libpq_url(engine)],
        check=True,
        capture_output=True,
    )
    with engine.connect() as conn:  # what was dumped is what is live now
        return audit.verify(conn)


def restore(engine: Engine, source: Path, force: bool = False) -> audit.VerifyResult:
    """Replace the database's content with the backup ``source``, then verify the chain."""
    source = Path(source)
    if not source.is_file():
        raise ValidationError(
            str(source), N_("backup file not found"), N_("a file made by `db backup`")
        )
    with engine.connect() as conn:
        try:
            has_data = audit.count(conn) > 0
        except Exception:
            has_data = False
    if has_data and not force:
        raise refusal(
            Conflict,
            "target_holds_data",
            N_("the target database holds data: pass --force to overwrite it"),
        )
    if engine.dialect.name == "sqlite":
        engine.dispose()
        src = sqlite3.connect(source)
        dest = sqlite3.connect(_sqlite_path(engine))
        try:
            src.backup(dest)
        finally:
            dest.close()
            src.close()
    else:
        engine.dispose()
        subprocess.run(
            [
                _pg_tool("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--dbname",
                _libpq_url(engine),
                str(source),
            ],
            check=True,
            capture_output=True,
        )
    with engine.connect() as conn:
        return audit.verify(conn)
