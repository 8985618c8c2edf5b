"""``reluth login|logout|whoami`` and ``reluth users ...``: logging in on the command line, and
the administrator's account tasks (every change an audit row, with a reason where it changes
an existing account)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from reluth.auth.roles import CENTRE_SCOPED_ROLES, Role
from reluth.cli_support import (
    cli_context,
    console,
    database_url,
    forget_login,
    handle_errors,
    open_engine,
    print_json,
    store_login,
)
from reluth.cli_support import table as cli_table
from reluth.errors import NotFound, PermissionDenied, ValidationError
from reluth.i18n import N_, gettext
from reluth.i18n.vocabulary import label

users_app = typer.Typer(help="User accounts, access review and API tokens.", no_args_is_help=True)
tokens_app = typer.Typer(
    help="API tokens for scripts (your own; created from your login, revocable).",
    no_args_is_help=True,
)
users_app.add_typer(tokens_app, name="tokens")

DB_OPTION = typer.Option(
    None, "--db", help="Database URL (default: RELUTH_DATABASE_URL or ./reluth-data)."
)
JSON = typer.Option(False, "--json", help="Machine-readable output.")
REASON = typer.Option(..., "--reason", help="Why (kept in the audit trail).")
PASSWORD_STDIN = typer.Option(False, "--password-stdin", help="Read the password from stdin.")

#: Demo accounts: role -> username; passwords follow ``reluth-demo-<username>`` (as `reluth
#: demo` uses), development mode only.
DEMO_ACCOUNTS: dict[Role, str] = {
    Role.ADMIN: "admin",
    Role.INVESTIGATOR: "investigator",
    Role.RESEARCH_NURSE: "nurse",
    Role.MONITOR: "monitor",
    Role.DATA_MANAGER: "datamanager",
    Role.CENTRAL_REVIEWER: "reviewer",
    Role.MEDICAL_PHYSICIST: "physicist",
    Role.PHARMACOVIGILANCE: "pharmacovigilance",
    Role.STATISTICIAN: "statistician",
}


def demo_password(username: str) -> str:
    from reluth.simulation.replay import DEMO_PASSWORD_PREFIX

    return f"{DEMO_PASSWORD_PREFIX}{username}"


def read_password(password_stdin: bool, prompt: str = "Password", confirm: bool = False) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise ValidationError("password", N_("no terminal to prompt on"), "--password-stdin")
    value: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return value


# ------------------------------------------------------------------------ login, logout


@handle_errors
def login(
    username: str = typer.Argument(..., help="Your account."),
    password_stdin: bool = PASSWORD_STDIN,
    db: str | None = DB_OPTION,
) -> None:
    """Log in: check your password, keep a revocable 12-hour login for this database (mode
    0600 in your config directory); print the token last when output is not a terminal."""
    from reluth.auth import service as auth
    from reluth.core.context import writing
    from reluth.core.trial import Trial

    url = database_url(db)
    password = read_password(password_stdin)
    engine = open_engine(url)
    try:
        trial = Trial.default()
        actor, _user = auth.password_login(engine, trial.now(), username, password)
        with writing(engine, actor, trial) as ctx:
            row, token = auth.cli_login(ctx)
            expires = row.expires_at
    finally:
        engine.dispose()
    path = store_login(url, actor.username, token)
    from reluth.i18n import format_moment

    console.print(
        gettext(
            "logged in as [bold]{user}[/] ({role}) until {expires}; login kept in {path}"
        ).format(
            user=actor.username,
            role=label("role", actor.role.value),
            expires=format_moment(expires, "UTC"),
            path=path,
        ),
        highlight=False,
    )
    if not sys.stdout.isatty():
        sys.stdout.write(token + "\n")


@handle_errors
def logout(db: str | None = DB_OPTION) -> None:
    """Revoke your CLI login for this database (and the API tokens created from it)."""
    from reluth.auth import service as auth

    url = database_url(db)
    try:
        with cli_context(write=True, url=url) as ctx:
            auth.logout_cli(ctx)
    except PermissionDenied:
        pass  # an invalid or expired login: forgetting it is all that is left to do
    removed = forget_login(url)
    console.print(
        gettext("logged out") if removed else gettext("no stored login for this database")
    )


@handle_errors
def whoami(db: str | None = DB_OPTION, as_json: bool = JSON) -> None:
    """Who you act as on this database, and how you are authenticated."""
    with cli_context(url=db) as ctx:
        a = ctx.actor
        out = {"username": a.username, "role": a.role.value, "via": a.via.value}
    if as_json:
        print_json(out)
    else:
        vias = {
            "password": N_("password"),
            "web_session": N_("web session"),
            "api_token": N_("API token"),
            "cli_token": N_("CLI login"),
            "bootstrap": N_("first run (no account yet)"),
            "system": N_("the server itself"),
        }
        console.print(
            gettext("{user} ({role}), authenticated by {via}").format(
                user=out["username"],
                role=label("role", out["role"]),
                via=gettext(vias.get(out["via"], out["via"])),
            )
        )


# ---------------------------------------------------------------------------- accounts


def _user_row(user: Any) -> dict[str, Any]:
    return {
        "username": user.username,
        "role": user.role,
        "centres": sorted(c.code for c in user.centres),
        "active": user.active,
        "must_change_password": user.must_change_password,
    }


@users_app.command("add")
@handle_errors
def users_add(
    username: str = typer.Argument(..., help="Login name (lower case)."),
    role: str = typer.Option(..., "--role", help="One of: " + ", ".join(r.value for r in Role)),
    centre: list[str] = typer.Option([], "--centre", help="Centre code (repeatable)."),
    password_stdin: bool = PASSWORD_STDIN,
    db: str | None = DB_OPTION,
    as_json: bool = JSON,
) -> None:
    """Create an account (administrators; on an empty database, the first administrator).
    There is no default password: type it or pipe it with --password-stdin."""
    from reluth.auth import service as auth

    password = read_password(password_stdin, confirm=True)
    with cli_context(write=True, allow_bootstrap=True, url=db) as ctx:
        out = _user_row(auth.create_user(ctx, username, role, password, centre))
    if as_json:
        print_json(out)
    else:
        console.print(
            gettext("created user [bold]{user}[/] ({role}) {centres}").format(
                user=out["username"],
                role=label("role", out["role"]),
                centres=", ".join(out["centres"]),
            )
        )


@users_app.command("list")
@handle_errors
def users_list(db: str | None = DB_OPTION, as_json: bool = JSON) -> None:
    """List accounts with their role, centres and status."""
    from reluth.auth import service as auth

    with cli_context(url=db) as ctx:
        rows = [_user_row(u) for u in auth.list_users(ctx)]
    if as_json:
        print_json(rows)
        return
    table = cli_table(N_("username"), N_("role"), N_("centres"), N_("active"))
    for r in rows:
        active = gettext("yes") if r["active"] else gettext("no")
        table.add_row(r["username"], label("role", r["role"]), ", ".join(r["centres"]), active)
    console.print(table)


def _changed(username: str, what: str) -> None:
    console.print(gettext("user [bold]{user}[/]: {what}").format(user=username, what=what))


@users_app.command("deactivate")
@handle_errors
def users_deactivate(
    username: str = typer.Argument(...), reason: str = REASON, db: str | None = DB_OPTION
) -> None:
    """Deactivate an account: its logins, sessions and tokens stop working at once."""
    from reluth.auth import service as auth

    with cli_context(write=True, reason=reason, url=db) as ctx:
        auth.set_active(ctx, username, False)
    _changed(username, gettext("deactivated"))


@users_app.command("reactivate")
@handle_errors
def users_reactivate(
    username: str = typer.Argument(...), reason: str = REASON, db: str | None = DB_OPTION
) -> None:
    """Reactivate a deactivated account."""
    from reluth.auth import service as auth

    with cli_context(write=True, reason=reason, url=db) as ctx:
        auth.set_active(ctx, username, True)
    _changed(username, gettext("reactivated"))


@users_app.command("unlock")
@handle_errors
def users_unlock(username: str = typer.Argument(...), db: str | None = DB_OPTION) -> None:
    """Lift the login throttling of an account after failed attempts."""
    from reluth.auth import service as auth

    with cli_context(write=True, url=db) as ctx:
        cleared = auth.unlock(ctx, username)
    _changed(username, gettext("unlocked ({n} throttle entries cleared)").format(n=cleared))


@users_app.command("reset-password")
@handle_errors
def users_reset_password(
    username: str = typer.Argument(...),
    reason: str = REASON,
    password_stdin: bool = PASSWORD_STDIN,
    db: str | None = DB_OPTION,
) -> None:
    """Set a temporary password; the user must choose a new one at their next login."""
    from reluth.auth import service as auth

    temporary = read_password(password_stdin, "Temporary password", confirm=True)
    with cli_context(write=True, reason=reason, url=db) as ctx:
        auth.reset_password(ctx, username, temporary)
    _changed(username, gettext("password reset (to be changed at next login)"))


@users_app.command("set-role")
@handle_errors
def users_set_role(
    username: str = typer.Argument(...),
    role: str = typer.Option(..., "--role", help="The new role."),
    centre: list[str] = typer.Option([], "--centre", help="Centres for a site role."),
    reason: str = REASON,
    db: str | None = DB_OPTION,
) -> None:
    """Change an account's role (an administrator may not give themselves an unblinded role)."""
    from reluth.auth import service as auth

    with cli_context(write=True, reason=reason, url=db) as ctx:
        user = auth.set_role(ctx, username, role, centre or None)
        role_now = user.role
    _changed(username, gettext("role {role}").format(role=label("role", role_now)))


@users_app.command("set-centres")
@handle_errors
def users_set_centres(
    username: str = typer.Argument(...),
    centre: list[str] = typer.Option(..., "--centre", help="Centre code (repeatable)."),
    reason: str = REASON,
    db: str | None = DB_OPTION,
) -> None:
    """Change the centres an account works at."""
    from reluth.auth import service as auth

    with cli_context(write=True, reason=reason, url=db) as ctx:
        auth.set_centres(ctx, username, centre)
    _changed(username, gettext("centres {centres}").format(centres=", ".join(centre)))


@users_app.command("set-email")
@handle_errors
def users_set_email(
    username: str = typer.Argument(...),
    email: str = typer.Argument(..., help="Address for notifications ('' clears it)."),
    reason: str = REASON,
    db: str | None = DB_OPTION,
) -> None:
    """Set the address an account's e-mail notifications go to."""
    from reluth.auth import service as auth

    with cli_context(write=True, reason=reason, url=db) as ctx:
        auth.set_email(ctx, username, email)
    _changed(username, gettext("e-mail {email}").format(email=email or gettext("(none)")))


@users_app.command("passwd")
@handle_errors
def users_passwd(
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the current and the new password from stdin."
    ),
    db: str | None = DB_OPTION,
) -> None:
    """Change your own password (after a reset, log in with the temporary one first)."""
    from reluth.auth import service as auth

    current = read_password(password_stdin, "Current password")
    new = read_password(password_stdin, "New password", confirm=True)
    with cli_context(write=True, url=db) as ctx:
        auth.change_own_password(ctx, current, new)
    console.print(gettext("password changed"))


@users_app.command("review")
@handle_errors
def users_review(db: str | None = DB_OPTION, as_json: bool = JSON) -> None:
    """Access review: every grant of an unblinded role, who granted it, when and why."""
    from reluth.auth import service as auth

    with cli_context(url=db) as ctx:
        grants = auth.access_review(ctx)
    if as_json:
        print_json(grants)
        return
    table = cli_table(
        N_("user"), N_("role"), N_("how"), N_("granted by"), N_("when (UTC)"), N_("reason"),
        N_("holds it now"),
    )  # fmt: skip
    for g in grants:
        table.add_row(
            g.username,
            label("role", g.role),
            g.how,
            g.granted_by,
            g.granted_at,
            g.reason or "",
            gettext("yes") if g.active_now else gettext("no"),
        )
    console.print(table if grants else gettext("no grant of an unblinded role"))


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
    """Create one demo account per role (password ``reluth-demo-<username>``) on a database
    with no account yet. Refused in production mode (RELUTH_ENV=production)."""
    from reluth.auth import service as auth
    from reluth.config import get_settings
    from reluth.core.context import writing
    from reluth.core.trial import Trial
    from reluth.sites import service as sites

    if get_settings().production:
        from reluth.i18n.reasons import refusal

        raise refusal(
            PermissionDenied,
            "demo_in_production",
            N_("demo accounts are refused when RELUTH_ENV=production"),
        )
    url = database_url(db)
    admin = DEMO_ACCOUNTS[Role.ADMIN]
    with cli_context(write=True, allow_bootstrap=True, url=url) as ctx:
        auth.create_user(ctx, admin, Role.ADMIN.value, demo_password(admin))
    engine = open_engine(url)
    trial = Trial.default()
    created = [(admin, Role.ADMIN.value, demo_password(admin))]
    try:
        actor, _ = auth.password_login(engine, trial.now(), admin, demo_password(admin))
        with writing(engine, actor, trial) as ctx:
            if create_centres:
                for code in centre:
                    try:
                        sites.centre_by_code(ctx.session, code)
                    except NotFound:
                        sites.add_centre(ctx, code, f"Demo centre {code}")
            for role, username in DEMO_ACCOUNTS.items():
                if role is Role.ADMIN:
                    continue
                codes: list[str] = []
                if role in CENTRE_SCOPED_ROLES:
                    codes = centre if role is Role.MONITOR else centre[:1]
                auth.create_user(ctx, username, role.value, demo_password(username), codes)
                created.append((username, role.value, demo_password(username)))
    finally:
        engine.dispose()
    table = cli_table(N_("username"), N_("role"), N_("password"))
    for row in created:
        table.add_row(*row)
    console.print(table)


# ------------------------------------------------------------------------------ tokens


@tokens_app.command("create")
@handle_errors
def tokens_create(
    username: str | None = typer.Argument(
        None, help="Your own username (tokens are created only for yourself)."
    ),
    name: str = typer.Option(..., "--name", help="What the token is for."),
    expires_days: int = typer.Option(90, "--expires-days", min=1, max=366, help="Lifetime."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON,
) -> None:
    """Create an API token for yourself from your `reluth login`; it is printed once (only its
    hash is stored) and dies when that login is revoked (`reluth logout`)."""
    from reluth.auth import service as auth

    with cli_context(write=True, url=db) as ctx:
        if username is not None and username != ctx.actor.username:
            from reluth.i18n.reasons import refusal

            raise refusal(
                PermissionDenied,
                "token_for_another",
                N_("tokens are created only for yourself: log in as that user to create one"),
            )
        row, plain = auth.create_token(ctx, name, expires_days)
        out = {
            "id": row.id,
            "name": row.name,
            "username": ctx.actor.username,
            "expires_at": row.expires_at,
            "token": plain,
        }
    if as_json:
        print_json(out)
    else:
        console.print(
            gettext("token {id} ({name}) for {user}: [bold]{token}[/]").format(
                id=out["id"], name=name, user=out["username"], token=plain
            )
        )


@tokens_app.command("revoke")
@handle_errors
def tokens_revoke(token_id: int = typer.Argument(...), db: str | None = DB_OPTION) -> None:
    """Revoke an API token by id (yours; an administrator: anyone's); it stops working at once."""
    from reluth.auth import service as auth

    with cli_context(write=True, url=db) as ctx:
        row = auth.revoke_token(ctx, token_id)
        console.print(gettext("token {id} ({name}) revoked").format(id=row.id, name=row.name))


@tokens_app.command("list")
@handle_errors
def tokens_list(
    everyone: bool = typer.Option(False, "--all", help="Everyone's (administrators)."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON,
) -> None:
    """List API tokens (never their values)."""
    from reluth.auth import service as auth

    with cli_context(url=db) as ctx:
        now = ctx.now()
        rows: list[dict[str, Any]] = [
            {
                "id": t.id,
                "username": t.user.username,
                "name": t.name,
                "created_at": t.created_at,
                "expires_at": t.expires_at,
                "revoked": t.revoked_at is not None,
                "live": auth.token_live(t, now),
            }
            for t in auth.list_tokens(ctx, everyone)
        ]
    if as_json:
        print_json(rows)
        return
    from reluth.i18n import format_day

    table = cli_table(N_("id"), N_("user"), N_("name"), N_("expires"), N_("live"))
    for r in rows:
        expires = gettext("never") if r["expires_at"] is None else format_day(r["expires_at"])
        live = gettext("yes") if r["live"] else gettext("no")
        table.add_row(str(r["id"]), r["username"], r["name"], expires, live)
    console.print(table)


def register(root: typer.Typer) -> None:
    root.command("login")(login)
    root.command("logout")(logout)
    root.command("whoami")(whoami)
    root.add_typer(users_app, name="users")


def _lifecycle_commands() -> None:
    from reluth.lifecycle.cli import add_user_commands

    add_user_commands(users_app)


_lifecycle_commands()
