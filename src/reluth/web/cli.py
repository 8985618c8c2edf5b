"""``reluth serve`` and ``reluth users`` (accounts, demo accounts, API tokens)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from reluth.auth import service as auth
from reluth.auth.roles import CENTRE_SCOPED_ROLES, Role
from reluth.cli_support import console, handle_errors, print_json
from reluth.config import get_settings
from reluth.errors import NotFound, PermissionDenied, ValidationError

users_app = typer.Typer(help="User accounts and API tokens.", no_args_is_help=True)
tokens_app = typer.Typer(
    help="API tokens for scripts (scoped to a user, revocable).", no_args_is_help=True
)
users_app.add_typer(tokens_app, name="tokens")

DB_OPTION = typer.Option(
    None, "--db", help="Database URL (default: RELUTH_DATABASE_URL or ./reluth-data)."
)

#: Demo accounts: role -> username. Passwords are ``demo-<username>`` (development mode only).
DEMO_ACCOUNTS: dict[Role, str] = {
    Role.INVESTIGATOR: "investigator",
    Role.RESEARCH_NURSE: "nurse",
    Role.MONITOR: "monitor",
    Role.DATA_MANAGER: "datamanager",
    Role.CENTRAL_REVIEWER: "reviewer",
    Role.MEDICAL_PHYSICIST: "physicist",
    Role.PHARMACOVIGILANCE: "pharmacovigilance",
    Role.STATISTICIAN: "statistician",
    Role.ADMIN: "admin",
}


def demo_password(username: str) -> str:
    return f"demo-{username}-pass"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@contextmanager
def _session(db_url: str | None) -> Iterator[Session]:
    from sqlalchemy.orm import sessionmaker

    from reluth.web.app import prepare_database
    from reluth.web.deps import transaction

    engine = prepare_database(db_url or get_settings().database_url)
    try:
        with transaction(sessionmaker(engine, expire_on_commit=False)) as db:
            yield db
    finally:
        engine.dispose()


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise ValidationError("password", "no terminal to prompt on", "--password-stdin")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@users_app.command("add")
@handle_errors
def users_add(
    username: str = typer.Argument(..., help="Login name (lower case)."),
    role: str = typer.Option(..., "--role", help="One of: " + ", ".join(r.value for r in Role)),
    centre: list[str] = typer.Option([], "--centre", help="Centre code (repeatable)."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from stdin."
    ),
    db: str | None = DB_OPTION,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create an account. There is no default password: type it or pipe it with --password-stdin."""
    password = _read_password(password_stdin)
    with _session(db) as session:
        user = auth.create_user(session, username, role, password, centre)
        out = {
            "username": user.username,
            "role": user.role,
            "centres": [c.code for c in user.centres],
        }
    if as_json:
        print_json(out)
    else:
        console.print(
            f"created user [bold]{out['username']}[/] ({out['role']}) {', '.join(out['centres'])}"
        )


@users_app.command("list")
@handle_errors
def users_list(db: str | None = DB_OPTION, as_json: bool = typer.Option(False, "--json")) -> None:
    """List accounts with their role and centres."""
    with _session(db) as session:
        rows: list[dict[str, Any]] = [
            {
                "username": u.username,
                "role": u.role,
                "centres": [c.code for c in u.centres],
                "active": u.active,
            }
            for u in auth.list_users(session)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("username", "role", "centres", "active")
    for r in rows:
        table.add_row(
            r["username"], r["role"], ", ".join(r["centres"]), "yes" if r["active"] else "no"
        )
    console.print(table)


@users_app.command("demo")
@handle_errors
def users_demo(
    centre: list[str] = typer.Option(
        ...,
        "--centre",
        help="Centre code(s) for site roles (first one for investigator and nurse).",
    ),
    create_centres: bool = typer.Option(
        False, "--create-centres", help="Also create the named centres if missing (demo only)."
    ),
    db: str | None = DB_OPTION,
) -> None:
    """Create one demo account per role (password ``demo-<username>-pass``).

    Refused in production mode (RELUTH_ENV=production)."""
    if get_settings().production:
        raise PermissionDenied("demo accounts are refused when RELUTH_ENV=production")
    if create_centres:
        _demo_centres(db, centre)
    created = []
    with _session(db) as session:
        for role, username in DEMO_ACCOUNTS.items():
            if role in CENTRE_SCOPED_ROLES:
                codes = centre if role is Role.MONITOR else centre[:1]
            else:
                codes = []
            try:
                auth.get_user(session, username)
                continue
            except NotFound:
                pass
            auth.create_user(session, username, role.value, demo_password(username), codes)
            created.append((username, role.value, demo_password(username)))
    table = Table("username", "role", "password")
    for row in created:
        table.add_row(*row)
    console.print(table if created else "demo accounts already present")


def _demo_centres(db_url: str | None, codes: list[str]) -> None:
    """Demo centres through the store's service and audited write door."""
    from reluth.db.session import Actor, unit_of_work
    from reluth.patients import service as patients
    from reluth.web.app import prepare_database

    engine = prepare_database(db_url or get_settings().database_url)
    try:
        for code in codes:
            with unit_of_work(engine, actor=Actor("demo-setup", Role.ADMIN.value)) as uow:
                try:
                    patients.get_centre(uow.session, code)
                except NotFound:
                    patients.add_centre(uow.session, code, f"Demo centre {code}")
    finally:
        engine.dispose()


@tokens_app.command("create")
@handle_errors
def tokens_create(
    username: str = typer.Argument(...),
    name: str = typer.Option(..., "--name", help="What the token is for."),
    db: str | None = DB_OPTION,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create an API token for USERNAME; it is printed once and only its hash is stored."""
    with _session(db) as session:
        row, plain = auth.create_token(session, auth.get_user(session, username), name, _now())
        out = {"id": row.id, "name": row.name, "username": username, "token": plain}
    if as_json:
        print_json(out)
    else:
        console.print(f"token {out['id']} ({name}) for {username}: [bold]{plain}[/]")


@tokens_app.command("revoke")
@handle_errors
def tokens_revoke(token_id: int = typer.Argument(...), db: str | None = DB_OPTION) -> None:
    """Revoke an API token by id (it stops working at once)."""
    with _session(db) as session:
        row = auth.revoke_token(session, token_id, _now())
        console.print(f"token {row.id} ({row.name}) revoked")


@tokens_app.command("list")
@handle_errors
def tokens_list(db: str | None = DB_OPTION, as_json: bool = typer.Option(False, "--json")) -> None:
    """List API tokens (never their values)."""
    with _session(db) as session:
        rows: list[dict[str, Any]] = [
            {
                "id": t.id,
                "username": t.user.username,
                "name": t.name,
                "created_at": t.created_at,
                "revoked": t.revoked_at is not None,
            }
            for t in auth.list_tokens(session)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "user", "name", "revoked")
    for r in rows:
        table.add_row(str(r["id"]), r["username"], r["name"], "yes" if r["revoked"] else "no")
    console.print(table)


@handle_errors
def serve(
    db: str | None = DB_OPTION,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    workers: int = typer.Option(
        1, "--workers", min=1, max=32, help="Server processes (one per CPU core is typical)."
    ),
) -> None:
    """Start the web eCRF and JSON API (docs at /api/v1/docs)."""
    import os

    import uvicorn

    from reluth.web.app import create_app, prepare_database

    url = db or get_settings().database_url
    console.print(f"reluth web on http://{host}:{port}/ (API docs: /api/v1/docs)")
    if workers == 1:
        uvicorn.run(create_app(url), host=host, port=port, log_level="info")
        return
    # Several processes: migrate once here, then each worker builds the app from the same URL.
    prepare_database(url).dispose()
    os.environ["RELUTH_DATABASE_URL"] = url
    uvicorn.run(
        "reluth.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


def register(root: typer.Typer) -> None:
    root.add_typer(users_app, name="users")
    root.command("serve")(serve)
