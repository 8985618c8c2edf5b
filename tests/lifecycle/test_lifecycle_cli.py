"""The lock commands: `reluth lock patient` by the data manager, then a locked patient's data
entry from a file exits 6 with a message naming the lock; `reluth db freeze` lets queries
through the services; `reluth db lock` writes a signed checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.store.storekit import NURSE, add_account, cli_token, ready_patients
from typer.testing import CliRunner

from reluth.auth.roles import Role
from reluth.cli import app
from reluth.db import checkpoint
from reluth.db.engine import make_engine


def _run(cli: CliRunner, token: str, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args), env={"RELUTH_TOKEN": token})
    assert result.exit_code == code, (args, result.output)
    return result.output


@pytest.fixture
def trial_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, str]:
    url = f"sqlite:///{tmp_path / 'trial.db'}"
    from reluth.db.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    (code,) = ready_patients(engine, 1)
    add_account(engine, "dm1", Role.DATA_MANAGER)
    dm, nurse = cli_token(engine, "dm1"), cli_token(engine, NURSE)
    engine.dispose()
    key = tmp_path / "signing.key"
    checkpoint.create_signing_key(key)
    monkeypatch.setenv("RELUTH_DATABASE_URL", url)
    monkeypatch.setenv("RELUTH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RELUTH_CHECKPOINT_KEY_FILE", str(key))
    monkeypatch.setenv("RELUTH_CHECKPOINT_DIR", str(tmp_path / "cp"))
    monkeypatch.chdir(tmp_path)
    return code, dm, nurse


def _labs_file(tmp_path: Path, code: str) -> Path:
    labs = tmp_path / "labs.json"
    labs.write_text(
        json.dumps(
            {"patient_id": code, "date": "2025-03-01",
             "results": [{"test": "alt", "value": "30", "unit": "U/L", "uln": "40"}]}
        )
    )  # fmt: skip
    return labs


def test_lock_patient_then_data_entry_exits_6(
    trial_db: tuple[str, str, str], tmp_path: Path
) -> None:
    code, dm, nurse = trial_db
    cli = CliRunner()
    out = _run(cli, dm, "lock", "patient", code, "--reason", "casebook complete")
    assert f"patient {code} locked" in out
    labs = _labs_file(tmp_path, code)
    refused = _run(cli, nurse, "record", "labs", str(labs), code=6)
    assert "locked (by dm1" in refused and "casebook complete" in refused
    _run(cli, nurse, "lock", "patient", code, "--reason", "x", code=4)
    _run(cli, dm, "unlock", "patient", code, "--reason", "reopened")
    _run(cli, nurse, "record", "labs", str(labs))


def test_db_freeze_and_db_lock(trial_db: tuple[str, str, str], tmp_path: Path) -> None:
    code, dm, nurse = trial_db
    cli = CliRunner()
    labs = _labs_file(tmp_path, code)
    assert "frozen" in _run(cli, dm, "db", "freeze", "--reason", "review")
    assert "the study is frozen" in _run(cli, nurse, "record", "labs", str(labs), code=6)
    _run(cli, dm, "db", "unfreeze", "--reason", "review done")
    _run(cli, nurse, "record", "labs", str(labs))
    out = json.loads(_run(cli, dm, "db", "lock", "--reason", "final", "--json"))
    assert out["state"] == "locked" and Path(out["checkpoint"]).is_file()
    body = json.loads(Path(out["checkpoint"]).read_text())["checkpoint"]
    assert body["reason"] == "database lock"
    _run(cli, dm, "lock", "centre", "C01", "--reason", "x")  # a centre lock on top is fine
    _run(cli, dm, "db", "lock", "--reason", "again", code=6)  # already locked: a conflict


def test_sign_a_casebook_on_the_command_line(
    trial_db: tuple[str, str, str], tmp_path: Path
) -> None:
    from tests.store.storekit import ADMIN, INVESTIGATOR, PASSWORD

    code, dm, nurse = trial_db
    engine = make_engine(f"sqlite:///{tmp_path / 'trial.db'}")
    admin, inv = cli_token(engine, ADMIN), cli_token(engine, INVESTIGATOR)
    engine.dispose()
    cli = CliRunner()
    _run(cli, admin, "users", "set-pi", INVESTIGATOR, "--centre", "C01",
         "--printed-name", "Dr Anne Martin")  # fmt: skip
    wrong = cli.invoke(
        app, ["sign", "patient", code, "--password-stdin"], input="nope\n",
        env={"RELUTH_TOKEN": inv},
    )  # fmt: skip
    assert wrong.exit_code == 2 and "password: incorrect" in wrong.output
    signed = cli.invoke(
        app,
        ["sign", "patient", code, "--password-stdin", "--meaning", "Casebook reviewed", "--json"],
        input=PASSWORD + "\n",
        env={"RELUTH_TOKEN": inv},
    )
    assert signed.exit_code == 0, signed.output
    view = json.loads(signed.output)
    assert view["printed_name"] == "Dr Anne Martin" and view["meaning"] == "Casebook reviewed"
    assert view["valid"] is True and len(view["values_sha256"]) == 64
    _run(cli, nurse, "record", "labs", str(_labs_file(tmp_path, code)))
    listed = json.loads(_run(cli, dm, "sign", "list", code, "--json"))
    assert listed[0]["valid"] is False and "insert lab_results" in listed[0]["invalid_because"]


def test_sdv_on_the_command_line(trial_db: tuple[str, str, str], tmp_path: Path) -> None:
    code, dm, nurse = trial_db
    engine = make_engine(f"sqlite:///{tmp_path / 'trial.db'}")
    add_account(engine, "mon1", Role.MONITOR, ("C01",))
    mon = cli_token(engine, "mon1")
    engine.dispose()
    cli = CliRunner()
    report = json.loads(_run(cli, mon, "sdv", "report", "--centre", "C01", "--json"))
    assert report[0]["required"] == 2 and report[0]["required_verified"] == 0
    first = report[0]["outstanding"][0]["record"]  # e.g. inclusions/1
    table, rid = first.split("/")
    assert "verified" in _run(cli, mon, "sdv", "verify", code, table, rid)
    _run(cli, mon, "sdv", "verify", code, table, rid, code=6)  # already verified: a conflict
    _run(cli, nurse, "sdv", "verify", code, table, rid, code=4)
    _run(cli, mon, "sdv", "verify", code, "lab_results", "1", "--field", "colour", code=5)
    marks = json.loads(_run(cli, dm, "sdv", "list", code, "--json"))
    assert [(m["table_name"], m["cleared_by_change"]) for m in marks] == [(table, None)]
    report = json.loads(_run(cli, mon, "sdv", "report", "--centre", "C01", "--json"))
    assert report[0]["required_verified"] == 1 and report[0]["required_percent"] == 50


def test_queries_answer_by_correcting_the_value(
    trial_db: tuple[str, str, str], tmp_path: Path
) -> None:
    from tests.store.storekit import actor, trial_on

    from reluth.core.context import writing
    from reluth.queries import service as queries
    from reluth.safety import service as safety

    code, _dm, nurse = trial_db
    engine = make_engine(os.environ["RELUTH_DATABASE_URL"])
    add_account(engine, "mon1", Role.MONITOR, ("C01",))
    with writing(engine, actor(engine, NURSE), trial_on()) as ctx:
        lab = safety.record_lab(ctx, code, {"test": "alt", "value": "30", "unit": "U/L",
                                            "date": "2025-03-01", "uln": "40"}).id  # fmt: skip
    with writing(engine, actor(engine, "mon1"), trial_on()) as ctx:
        qid = queries.open_query(ctx, code, "value", "33?", form_id="lab", record_id=lab).id
    engine.dispose()
    cli = CliRunner()
    listed = json.loads(_run(cli, nurse, "queries", "list", "--json"))
    assert [q["id"] for q in listed] == [qid]
    refused = _run(cli, nurse, "queries", "answer", str(qid), "--correct", "33", code=2)
    assert "reason" in refused
    out = json.loads(
        _run(cli, nurse, "queries", "answer", str(qid), "--correct", "33", "--reason",
             "copied from the source", "--json")
    )  # fmt: skip
    assert out["status"] == "answered" and out["answer"].startswith("Corrected value to 33")
    engine = make_engine(os.environ["RELUTH_DATABASE_URL"])
    with writing(engine, actor(engine, NURSE), trial_on()) as ctx:
        assert safety.get_lab(ctx, code, lab).value == 33
    engine.dispose()
