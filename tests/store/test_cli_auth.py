"""The command line authenticates: every command that reads or writes the trial database needs
a login (`reluth login`) or RELUTH_TOKEN and refuses without one (exit 4, one line); the
bootstrap works only on a database without any account; `--as` is gone; the stored login is
private to its owner; logging out revokes the login and the API tokens created from it."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from storekit import PASSWORD, add_users
from test_store_cli import bootstrap, login, run
from typer.testing import CliRunner

from reluth.db.engine import make_engine

#: Every command that touches the trial database, with arguments that would otherwise be valid
#: enough to reach it.
DB_COMMANDS: list[list[str]] = [
    ["centres", "add", "C09", "Nine"],
    ["centres", "list"],
    ["patients", "register", "--centre", "C07"],
    ["patients", "include", "C07-0001", "--consent-date", "2024-10-28"],
    [
        "record",
        "cycle",
        "C07-0001",
        "--cycle",
        "1",
        "--date",
        "2024-11-04",
        "--activity-gbq",
        "7.4",
        "--lot",
        "L1",
    ],
    ["record", "pre-randomization", "C07-0001", "--date", "2025-02-24", "--no-progression"],
    ["record", "death", "C07-0001", "--date", "2025-02-24", "--cause", "other"],
    ["record", "end-of-study", "C07-0001", "--date", "2025-02-24", "--end-reason", "other"],
    ["record", "visit", "C07-0001", "--code", "TA-W08", "--date", "2025-02-24"],
    ["randomize", "C07-0001"],
    ["randomization", "setup"],
    ["randomization", "list"],
    ["randomization", "report"],
    ["audit", "verify"],
    ["audit", "show", "C07-0001"],
    ["casebook", "C07-0001", "--out", "C07-0001.pdf"],
    ["db", "backup", "b.db"],
    ["db", "status"],
    ["users", "list"],
    ["users", "review"],
    ["users", "deactivate", "nurse1", "--reason", "left the trial"],
    ["users", "unlock", "nurse1"],
    ["users", "tokens", "list"],
    ["users", "tokens", "create", "--name", "script"],
    ["whoami"],
]


@pytest.fixture(scope="module")
def _trial_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with an administrator, centre C07 and the test accounts, built once."""
    where = tmp_path_factory.mktemp("cli-auth")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RELUTH_DATABASE_URL", f"sqlite:///{where / 'trial.db'}")
        mp.setenv("RELUTH_CONFIG_DIR", str(where / "config"))
        mp.delenv("RELUTH_TOKEN", raising=False)
        mp.chdir(where)  # `db init` writes the keys it creates into the data directory
        runner = CliRunner()
        bootstrap(runner, where)
        run(runner, "centres", "add", "C07", "CHU Example")
        engine = make_engine(f"sqlite:///{where / 'trial.db'}")
        add_users(engine, ("C07",))
        engine.dispose()
    return where / "trial.db"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _trial_db: Path) -> CliRunner:
    shutil.copyfile(_trial_db, tmp_path / "trial.db")
    monkeypatch.setenv("RELUTH_DATABASE_URL", f"sqlite:///{tmp_path / 'trial.db'}")
    monkeypatch.setenv("RELUTH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("RELUTH_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


@pytest.mark.parametrize("args", DB_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_database_command_refuses_without_credentials(
    cli: CliRunner, args: list[str]
) -> None:
    result = cli.invoke(__import__("reluth.cli", fromlist=["app"]).app, args)
    assert result.exit_code == 4, (args, result.output)
    assert "not logged in" in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") <= 2  # one message (wrapped at most)


def test_the_as_option_is_gone(cli: CliRunner) -> None:
    login(cli, "nurse1")
    out = run(cli, "patients", "register", "--centre", "C07", "--as", "inv1", code=2)
    assert "No such option" in out


def test_bootstrap_is_refused_once_an_account_exists(cli: CliRunner) -> None:
    out = run(
        cli, "users", "add", "mallory", "--role", "admin", "--password-stdin",
        stdin="a-long-password-9!x", code=4,
    )  # fmt: skip
    assert "not logged in" in out
    run(cli, "db", "init", code=4)  # migrating a database with accounts: an administrator


def test_login_stores_a_private_token_and_prints_it_for_scripts(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = login(cli, "nurse1")
    assert token.startswith("rlt_")
    stored = tmp_path / "config" / "logins.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) & 0o077 == 0
    assert token in stored.read_text()
    assert "research nurse" in run(cli, "whoami")  # the role by its label
    # the token in the environment works alone (a script), and wins over the stored login
    run(cli, "logout")
    run(cli, "whoami", code=4)  # the token was revoked by the logout
    token = login(cli, "inv1")
    (tmp_path / "config" / "logins.json").unlink()
    monkeypatch.setenv("RELUTH_TOKEN", token)
    who = json.loads(run(cli, "whoami", "--json"))
    assert who == {"username": "inv1", "role": "investigator", "via": "cli_token"}


def test_wrong_password_and_unknown_user_get_the_same_answer(cli: CliRunner) -> None:
    wrong = run(cli, "login", "nurse1", "--password-stdin", stdin="not-the-password-1", code=4)
    unknown = run(cli, "login", "nobody", "--password-stdin", stdin=PASSWORD, code=4)
    assert wrong == unknown and "invalid username or password" in wrong


def test_an_api_token_cannot_mint_tokens_and_dies_with_its_login(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(cli, "nurse1")
    made = json.loads(run(cli, "users", "tokens", "create", "--name", "script", "--json"))
    assert made["expires_at"] is not None
    run(cli, "users", "tokens", "create", "inv1", "--name", "theirs", code=4)  # only your own
    monkeypatch.setenv("RELUTH_TOKEN", made["token"])
    assert "API token" in run(cli, "whoami")
    out = run(cli, "users", "tokens", "create", "--name", "child", code=4)
    assert "password login" in out
    monkeypatch.delenv("RELUTH_TOKEN")
    run(cli, "logout")  # revokes the login and what it created
    monkeypatch.setenv("RELUTH_TOKEN", made["token"])
    run(cli, "whoami", code=4)


def test_operator_commands_need_an_administrator(cli: CliRunner) -> None:
    login(cli, "stat1")
    run(cli, "db", "backup", "b.db", code=4)
    run(cli, "db", "init", code=4)
    login(cli, "admin1")
    assert "intact" in run(cli, "db", "backup", "b.db")
    assert "already at" in run(cli, "db", "init")
    history = json.loads(run(cli, "audit", "show", "database:backup", "--json"))
    assert history and history[-1]["user"] == "admin1"


def test_account_changes_from_the_cli_are_audit_rows_with_their_reason(cli: CliRunner) -> None:
    login(cli, "admin1")
    run(cli, "users", "deactivate", "nurse1", "--reason", "left the trial")
    run(cli, "login", "nurse1", "--password-stdin", stdin=PASSWORD, code=4)
    run(cli, "users", "reactivate", "nurse1", "--reason", "back from leave")
    run(cli, "users", "set-role", "nurse1", "--role", "monitor", "--centre", "C07",
        "--reason", "now monitors C07")  # fmt: skip
    run(cli, "users", "set-role", "admin1", "--role", "statistician", "--reason", "x", code=4)
    run(cli, "users", "reset-password", "inv1", "--reason", "forgotten", "--password-stdin",
        stdin="temporary-password-7\ntemporary-password-7\n")  # fmt: skip
    history = json.loads(run(cli, "audit", "show", "users:2", "--json"))
    reasons = {h["field"]: h["reason"] for h in history if h["action"] == "update"}
    assert reasons["active"] in ("left the trial", "back from leave")
    assert reasons["role"] == "now monitors C07"
    review = json.loads(run(cli, "users", "review", "--json"))
    assert [g["username"] for g in review] == ["stat1"]
    out = run(cli, "login", "inv1", "--password-stdin", stdin="temporary-password-7", code=4)
    assert "reset" in out  # the temporary password must be changed first
