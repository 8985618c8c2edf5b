"""``reluth users`` and ``reluth serve`` registration: the bootstrap of an empty database, the
CLI login, accounts and tokens created through the services by someone who logged in."""

from __future__ import annotations

import datetime as dt
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from reluth.auth import service as auth
from reluth.cli import app
from reluth.db.engine import make_engine
from reluth.db.session import read_session

runner = CliRunner()
ADMIN_PASSWORD = "a long enough password"


def cli(args: list[str], stdin: str | None = None, token: str | None = None) -> Result:
    """One command, as whoever ``token`` is (else the stored login of this database)."""
    return runner.invoke(app, args, input=stdin, env={"RELUTH_TOKEN": token})


def login(username: str, password: str = ADMIN_PASSWORD) -> str:
    """``reluth login`` with the password on stdin: the token is printed on the last line."""
    result = cli(["login", username, "--password-stdin"], f"{password}\n")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("rlt_")
    return token


@pytest.fixture
def empty_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An initialised database without any account; logins kept under ``tmp_path``."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("RELUTH_DATABASE_URL", url)
    monkeypatch.setenv("RELUTH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("RELUTH_TOKEN", raising=False)
    result = cli(["db", "init"])
    assert result.exit_code == 0, result.output
    assert "no account yet" in result.output
    yield url


@pytest.fixture
def db(empty_db: str) -> str:
    """The first administrator (the bootstrap), logged in, and two centres."""
    made = cli(["users", "add", "boss", "--role", "admin", "--password-stdin"], ADMIN_PASSWORD)
    assert made.exit_code == 0, made.output
    login("boss")
    for code, name in (("C01", "One"), ("C02", "Two")):
        assert cli(["centres", "add", code, name]).exit_code == 0
    return empty_db


def test_bootstrap_of_an_empty_database_then_everything_needs_a_login(
    empty_db: str, tmp_path: Path
) -> None:
    listed = cli(["users", "list"])
    assert listed.exit_code == 4 and "not logged in" in listed.output
    first = cli(["users", "add", "boss", "--role", "investigator", "--password-stdin"], "x" * 14)
    assert first.exit_code == 4 and "first account must be an administrator" in first.output
    args = ["users", "add", "boss", "--role", "admin", "--password-stdin"]
    assert cli(args, ADMIN_PASSWORD).exit_code == 0
    second = cli(["users", "add", "other", "--role", "admin", "--password-stdin"], ADMIN_PASSWORD)
    assert second.exit_code == 4 and "not logged in" in second.output  # the bootstrap is over
    wrong = cli(["login", "boss", "--password-stdin"], "not the password\n")
    assert wrong.exit_code == 4 and "invalid username or password" in wrong.output
    token = login("boss")
    stored = tmp_path / "config" / "logins.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert token in stored.read_text()
    assert cli(["users", "list", "--json"]).exit_code == 0  # the stored login
    assert cli(["users", "list"], token="rlt_not-a-token").exit_code == 4


def test_users_add_list_and_tokens(db: str) -> None:
    added = cli(
        [
            "users",
            "add",
            "dupont",
            "--role",
            "investigator",
            "--centre",
            "C01",
            "--password-stdin",
            "--json",
        ],
        ADMIN_PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout) == {
        "username": "dupont",
        "role": "investigator",
        "centres": ["C01"],
        "active": True,
        "must_change_password": False,
    }
    listed = json.loads(cli(["users", "list", "--json"]).stdout)
    assert [u["username"] for u in listed] == ["boss", "dupont"]
    # tokens are created only for yourself, from your own login
    for_other = cli(["users", "tokens", "create", "dupont", "--name", "etl"])
    assert for_other.exit_code == 4 and "only for yourself" in for_other.output
    dupont_login = login("dupont")
    made = cli(["users", "tokens", "create", "--name", "etl", "--json"], token=dupont_login)
    assert made.exit_code == 0, made.output
    token = json.loads(made.stdout)
    assert token["token"].startswith("rlt_") and token["username"] == "dupont"
    expires = dt.datetime.fromisoformat(token["expires_at"])
    assert dt.timedelta(days=89) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=90)
    minted = cli(["users", "tokens", "create", "--name", "child"], token=token["token"])
    assert minted.exit_code == 4 and "password login" in minted.output
    revoked = cli(["users", "tokens", "revoke", str(token["id"])], token=dupont_login)
    assert revoked.exit_code == 0, revoked.output
    other = json.loads(
        cli(["users", "tokens", "create", "--name", "n2", "--json"], token=dupont_login).stdout
    )
    assert cli(["logout"], token=dupont_login).exit_code == 0  # the login and what it made
    engine = make_engine(db)
    with read_session(engine) as s:
        now = dt.datetime.now(dt.UTC)
        for plain in (token["token"], other["token"], dupont_login):
            assert auth.actor_for_token(s, plain, now) is None
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        # the field by its label, the problem by its code's template (reluth.i18n.messages)
        (["--role", "wizard"], "a long enough password\n", 2, "Role: “wizard” is not one of"),
        (["--role", "investigator"], "a long enough password\n", 2, "needs at least one centre"),
        (["--role", "investigator", "--centre", "C99"], "a long enough password\n", 2, "no centre"),
        (["--role", "admin"], "short\n", 2, "Password: too short (5 characters)"),
        (["--role", "admin"], "password1234\n", 2, "commonly used password"),
    ],
)
def test_users_add_refusals(db: str, args: list[str], stdin: str, code: int, message: str) -> None:
    result = cli(["users", "add", "x1", *args, "--password-stdin"], stdin)
    assert result.exit_code == code, result.output
    assert message in result.output


def test_no_password_without_a_terminal(db: str) -> None:
    result = cli(["users", "add", "x1", "--role", "admin"], "")
    assert result.exit_code == 2 and "--password-stdin" in result.output


def test_demo_accounts_refused_in_production(
    empty_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELUTH_ENV", "production")
    result = cli(["users", "demo", "--centre", "C01"])
    assert result.exit_code == 4 and "production" in result.output


def test_demo_accounts_one_per_role(empty_db: str) -> None:
    args = ["users", "demo", "--centre", "C01", "--centre", "C02", "--create-centres"]
    result = cli(args)
    assert result.exit_code == 0, result.output
    login("admin", "reluth-demo-admin")
    listed = json.loads(cli(["users", "list", "--json"]).stdout)
    roles = {u["role"] for u in listed}
    assert len(roles) == 9
    monitor = next(u for u in listed if u["role"] == "monitor")
    assert monitor["centres"] == ["C01", "C02"]
    again = cli(["users", "demo", "--centre", "C01"])
    assert again.exit_code != 0 and "already exists" in again.output


def test_serve_is_registered() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output


def test_demo_can_create_its_centres(empty_db: str) -> None:
    result = cli(["users", "demo", "--centre", "C05", "--create-centres"])
    assert result.exit_code == 0, result.output
    token = login("admin", "reluth-demo-admin")
    listed = json.loads(cli(["users", "list", "--json"], token=token).stdout)
    assert next(u for u in listed if u["role"] == "investigator")["centres"] == ["C05"]


def test_serve_with_two_workers_answers_on_a_new_database(tmp_path: Path) -> None:
    # Several processes share one database: it is migrated once before the workers start,
    # and each worker serves the login page.
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"sqlite:///{tmp_path / 'served.db'}"
    command = [sys.executable, "-m", "reluth", "serve", "--db", url, "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        answer = None
        for _ in range(150):
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200
        assert 'name="csrf_token"' in answer.text
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert (tmp_path / "served.db").exists()


def test_serve_refuses_zero_workers() -> None:
    result = runner.invoke(app, ["serve", "--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output
