"""``reluth users`` and ``reluth serve`` registration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker
from typer.testing import CliRunner

from reluth.auth import service as auth
from reluth.auth.models import Centre
from reluth.cli import app
from reluth.web.app import prepare_database

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = prepare_database(url)
    with sessionmaker(engine)() as s:
        s.add_all([Centre(code="C01", name="One"), Centre(code="C02", name="Two")])
        s.commit()
    engine.dispose()
    return url


def test_users_add_list_and_tokens(db: str) -> None:
    added = runner.invoke(
        app,
        [
            "users",
            "add",
            "dupont",
            "--role",
            "investigator",
            "--centre",
            "C01",
            "--password-stdin",
            "--db",
            db,
            "--json",
        ],
        input="a long enough password\n",
    )
    assert added.exit_code == 0, added.output
    assert json.loads(added.output) == {
        "username": "dupont",
        "role": "investigator",
        "centres": ["C01"],
    }
    listed = json.loads(runner.invoke(app, ["users", "list", "--db", db, "--json"]).output)
    assert [u["username"] for u in listed] == ["dupont"]
    made = runner.invoke(
        app, ["users", "tokens", "create", "dupont", "--name", "etl", "--db", db, "--json"]
    )
    token = json.loads(made.output)
    assert token["token"].startswith("rlt_")
    revoked = runner.invoke(app, ["users", "tokens", "revoke", str(token["id"]), "--db", db])
    assert revoked.exit_code == 0
    engine = prepare_database(db)
    with sessionmaker(engine)() as s:
        assert auth.resolve_token(s, token["token"]) is None
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (["--role", "wizard"], "a long enough password\n", 2, "role: unknown role"),
        (["--role", "investigator"], "a long enough password\n", 2, "needs at least one centre"),
        (["--role", "investigator", "--centre", "C99"], "a long enough password\n", 2, "no centre"),
        (["--role", "admin"], "short\n", 2, "password: too short"),
    ],
)
def test_users_add_refusals(db: str, args: list[str], stdin: str, code: int, message: str) -> None:
    result = runner.invoke(
        app, ["users", "add", "x1", *args, "--password-stdin", "--db", db], input=stdin
    )
    assert result.exit_code == code
    assert message in result.output


def test_no_password_without_a_terminal(db: str) -> None:
    result = runner.invoke(app, ["users", "add", "x1", "--role", "admin", "--db", db], input="")
    assert result.exit_code == 2 and "--password-stdin" in result.output


def test_demo_accounts_refused_in_production(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELUTH_ENV", "production")
    result = runner.invoke(app, ["users", "demo", "--centre", "C01", "--db", db])
    assert result.exit_code == 4 and "production" in result.output


def test_demo_accounts_one_per_role(db: str) -> None:
    result = runner.invoke(app, ["users", "demo", "--centre", "C01", "--centre", "C02", "--db", db])
    assert result.exit_code == 0, result.output
    listed = json.loads(runner.invoke(app, ["users", "list", "--db", db, "--json"]).output)
    roles = {u["role"] for u in listed}
    assert len(roles) == 9
    monitor = next(u for u in listed if u["role"] == "monitor")
    assert monitor["centres"] == ["C01", "C02"]
    again = runner.invoke(app, ["users", "demo", "--centre", "C01", "--db", db])
    assert "already present" in again.output


def test_serve_is_registered() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output


def test_demo_can_create_its_centres(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = runner.invoke(
        app, ["users", "demo", "--centre", "C05", "--create-centres", "--db", url]
    )
    assert result.exit_code == 0, result.output
    listed = json.loads(runner.invoke(app, ["users", "list", "--db", url, "--json"]).output)
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
