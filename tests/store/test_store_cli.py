"""The whole flow from `db init` to `randomize` on the command line, the refusals' exit codes,
data entry, audit verify/show, tampering, and backup/restore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from storekit import PASSWORD, SCREENED_ON, add_users
from typer.testing import CliRunner

from reluth.cli import app
from reluth.db.engine import make_engine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "store"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("RELUTH_DATABASE_URL", f"sqlite:///{tmp_path / 'trial.db'}")
    monkeypatch.setenv("RELUTH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("RELUTH_TOKEN", raising=False)
    # this trial's own checkpoints (where the default data directory keeps them): the session's
    # data directory holds those of every other test's database on this worker, which
    # `audit verify` would check this chain against
    monkeypatch.setenv("RELUTH_CHECKPOINT_DIR", str(tmp_path / "reluth-data" / "checkpoints"))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0, stdin: str | None = None) -> str:
    result = cli.invoke(app, list(args), input=stdin)
    assert result.exit_code == code, (args, result.output)
    return result.output


def login(cli: CliRunner, username: str, password: str = PASSWORD) -> str:
    """``reluth login`` as a test account: the login is stored; the token printed last."""
    out = run(cli, "login", username, "--password-stdin", stdin=password + "\n")
    return out.strip().splitlines()[-1]


def bootstrap(cli: CliRunner, tmp_path: Path) -> None:
    """A fresh database, the first administrator (no login needed yet), and its login."""
    run(cli, "db", "init")
    run(cli, "users", "add", "admin1", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    login(cli, "admin1")


def run_on(cli: CliRunner, day: str, *args: str, code: int = 0) -> str:
    """A command run as if on ``day`` (the trial clock of the CLI's service contexts)."""
    import datetime as dt
    from unittest import mock

    from reluth.core.trial import Trial

    moment = dt.datetime.fromisoformat(day).replace(hour=11, tzinfo=dt.UTC)
    with mock.patch("reluth.cli_support.command_trial", lambda: Trial.default().at(moment)):
        return run(cli, *args, code=code)


def _patient(tmp: Path, code: str, **changes: object) -> str:
    from storekit import ELIGIBLE

    data = {**json.loads(json.dumps(ELIGIBLE)), "patient_id": code, "assessment_date": SCREENED_ON}
    data.update(changes)
    path = tmp / f"{code}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_flow_from_db_init_to_randomize(cli: CliRunner, tmp_path: Path) -> None:
    bootstrap(cli, tmp_path)
    assert "already at" in run(cli, "db", "init")
    run(cli, "centres", "add", "C07", "CHU Example")
    run(cli, "centres", "add", "C07", "again", code=6)
    run(cli, "centres", "add", "X7", "bad", code=2)
    engine = make_engine(f"sqlite:///{tmp_path / 'trial.db'}")
    add_users(engine, ("C07",))  # nurse1, inv1, stat1 at C07 (created by admin1)
    engine.dispose()
    run(cli, "patients", "register", "--centre", "C07", code=4)  # an administrator: no
    login(cli, "nurse1")
    assert "C07-0001" in run(cli, "patients", "register", "--centre", "C07")
    run(cli, "patients", "register", "--centre", "C07", "--id", "C07-0002")
    run(cli, "patients", "register", "--centre", "C07", "--id", "C07-0003")
    out = run(cli, "patients", "screen", _patient(tmp_path, "C07-0001"), "--json")
    assert json.loads(out)["status"] == "eligible"
    run(cli, "patients", "screen", _patient(tmp_path, "C07-0002", ecog=3), code=1)
    run(cli, "patients", "screen", _patient(tmp_path, "C07-0003", name="Jean Dupont"), code=2)
    run(cli, "patients", "include", "C07-0002", "--consent-date", "2024-10-28", code=7)
    run(cli, "patients", "include", "C07-0001", "--consent-date", "2024-10-28",
        "--date", "2024-10-30")  # fmt: skip
    # the example woman, postmenopausal (README's example file): before any cycle
    run(cli, "record", "childbearing", str(EXAMPLES / "childbearing.json"))
    for cycle, date in ((1, "2024-11-04"), (2, "2024-12-30")):
        run(cli, "record", "cycle", "C07-0001", "--cycle", str(cycle), "--date", date,
            "--activity-gbq", "7.4", "--lot", f"L{cycle}")  # fmt: skip
    login(cli, "inv1")
    run(cli, "randomize", "C07-0001", "--request-id", "r1", code=7)  # no pre-randomization
    login(cli, "nurse1")
    run(cli, "record", "pre-randomization", "C07-0001", "--date", "2025-02-24",
        "--no-progression", "--response", "SD")  # fmt: skip
    run(cli, "randomize", "C07-0001", "--request-id", "r1", code=4)  # policy: investigators
    login(cli, "inv1")
    run(cli, "randomize", "C07-0001", "--request-id", "r1", code=7)  # not set up
    run(cli, "randomization", "setup", "--method", "blocks", code=4)
    login(cli, "admin1")
    run(cli, "randomization", "setup", "--method", "blocks")
    run(cli, "randomization", "generate-list", "--seed-file", "seed.txt", "--per-stratum", "8",
        code=4)  # fmt: skip  # admin is not the unblinded statistician
    login(cli, "stat1")
    run(cli, "randomization", "generate-list", "--seed-file", "seed.txt", "--per-stratum", "8")
    assert (tmp_path / "seed.txt").stat().st_mode & 0o077 == 0
    login(cli, "inv1")
    # the SSTR imaging of the example (2025-01-20) is within 4 months of today only until
    # 2025-05-20: randomization re-checks I9 against the actual date, so the test runs "then"
    first = json.loads(run_on(cli, "2025-03-05", "randomize", "C07-0001", "--request-id", "r1",
                              "--json"))  # fmt: skip
    again = json.loads(
        run_on(cli, "2025-03-05", "randomize", "C07-0001", "--request-id", "r1", "--json")
    )
    assert first["arm"] == again["arm"] and again["replayed"] is True
    run_on(cli, "2025-03-05", "randomize", "C07-0001", "--request-id", "r2", code=6)
    run_on(cli, "2025-03-05", "randomize", "C07-0002", "--request-id", "r3", code=7)
    run(cli, "randomization", "report", "--json", code=4)  # investigators: not per stratum
    run(cli, "randomization", "list", code=4)
    login(cli, "stat1")
    listing = json.loads(run(cli, "randomization", "list", "--json"))
    assert any(r["patient_id"] == "C07-0001" for r in listing)
    rep = json.loads(run(cli, "randomization", "report", "--json"))
    assert rep["total"] == 1 and rep["list_intact"] is True
    login(cli, "nurse1")

    for kind in ("labs", "ae", "assessment", "qol"):
        run(cli, "record", kind, str(EXAMPLES / f"{kind}.json"))
    bad = tmp_path / "bad-ae.json"
    ae = json.loads((EXAMPLES / "ae.json").read_text())
    bad.write_text(json.dumps({**ae, "grade": 7}))
    assert "Grade" in run(cli, "record", "ae", str(bad), code=2)  # the field in plain words
    run(cli, "record", "cycle", "C07-0001", "--cycle", "3", "--date", "2025-03-20",
        "--activity-gbq", "7.4", "--lot", "L3", code=0 if first["arm"] == "experimental" else 7)  # fmt: skip

    login(cli, "admin1")
    assert "audit trail verified" in run(cli, "audit", "verify")
    login(cli, "inv1")
    history = json.loads(run(cli, "audit", "show", "C07-0001", "--json"))
    tables = {h["table"] for h in history}
    assert {"patients", "screenings", "randomizations", "adverse_events"} <= tables
    assert {"lesion_measurements", "qol_questionnaires", "lab_results"} <= tables
    assert "allocation_slots" not in tables


def test_tampering_makes_audit_verify_fail(cli: CliRunner, tmp_path: Path) -> None:
    bootstrap(cli, tmp_path)
    run(cli, "centres", "add", "C01", "One")
    run(cli, "centres", "add", "C02", "Two")
    engine = make_engine(f"sqlite:///{tmp_path / 'trial.db'}")
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET username = 'mallory' WHERE seq = 1"))
    engine.dispose()
    out = run(cli, "audit", "verify", code=1)
    assert "NOT verified" in out and "row 1 (users" in out
    findings = json.loads(run(cli, "audit", "verify", "--json", code=1))["findings"]
    assert (findings[0]["check"], findings[0]["seq"]) == ("chain", 1)


def test_db_init_creates_the_keys_and_verify_uses_them_with_checkpoints(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of the box: `db init` writes the audit key, the allocation key and the checkpoint
    signing key into the data directory (mode 600), outside the database; `audit checkpoint`
    signs the head; rows cut from the end are caught by `verify --key-file --checkpoints`."""
    monkeypatch.delenv("RELUTH_AUDIT_KEY")
    monkeypatch.delenv("RELUTH_ALLOCATION_KEY")
    monkeypatch.delenv("RELUTH_DATA_DIR")  # out of the box: the default data directory
    bootstrap(cli, tmp_path)
    data = tmp_path / "reluth-data"
    for name in ("audit.key", "allocation.key", "checkpoint-signing.key"):
        assert (data / name).stat().st_mode & 0o777 == 0o600, name
    run(cli, "centres", "add", "C01", "One")
    out = run(cli, "audit", "checkpoint")
    assert "checkpoint written" in out and len(list((data / "checkpoints").glob("*.json"))) == 1
    args = (
        "audit",
        "verify",
        "--key-file",
        str(data / "audit.key"),
        "--checkpoints",
        str(data / "checkpoints"),
    )
    assert "1 signed checkpoints" in run(cli, *args)
    engine = make_engine(f"sqlite:///{tmp_path / 'trial.db'}")
    with engine.begin() as conn:  # the last row and the head rewound, guards dropped
        for name in ("audit_log_no_delete", "audit_head_forward"):
            conn.execute(text(f"DROP TRIGGER {name}"))
        last = conn.execute(text("SELECT max(seq) FROM audit_log")).scalar_one()
        prev = conn.execute(
            text("SELECT row_hash FROM audit_log WHERE seq = :s"), {"s": last - 1}
        ).scalar_one()
        conn.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": last})
        conn.execute(
            text("UPDATE audit_head SET last_seq = :s, last_hash = :h"), {"s": last - 1, "h": prev}
        )
    engine.dispose()
    report = json.loads(run(cli, *args, "--json", code=1))
    assert report["findings"][0]["check"] == "checkpoint"
    run(cli, "audit", "verify", "--key-file", str(tmp_path / "missing.key"), code=8)


def test_backup_and_restore_verify_the_chain(cli: CliRunner, tmp_path: Path) -> None:
    bootstrap(cli, tmp_path)
    run(cli, "centres", "add", "C01", "One")
    assert "intact" in run(cli, "db", "backup", "backups/b1.db")
    run(cli, "db", "backup", "backups/b1.db", code=6)  # never overwrite a backup
    run(cli, "centres", "add", "C02", "Two")
    run(cli, "db", "restore", "backups/b1.db", code=6)  # target holds data
    out = run(cli, "db", "restore", "backups/b1.db", "--force")
    assert "intact" in out
    run(cli, "db", "restore", "missing.db", code=2)


def test_backup_and_restore_on_each_backend(engine: Engine, tmp_path: Path) -> None:
    from reluth.auth.actor import Actor
    from reluth.auth.roles import Role
    from reluth.db import audit, backup
    from reluth.db.session import unit_of_work
    from reluth.sites.models import Centre

    ADMIN = Actor("admin1", Role.ADMIN)

    with unit_of_work(engine, ADMIN) as uow:
        uow.session.add(Centre(code="C01", name="One"))
    assert backup.backup(engine, tmp_path / "b.dump").rows_checked == 1
    with unit_of_work(engine, ADMIN) as uow:
        uow.session.add(Centre(code="C02", name="Two"))
    result = backup.restore(engine, tmp_path / "b.dump", force=True)
    assert result.ok and result.rows_checked == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM centres")).scalar_one() == 1
        assert audit.count(conn) == 1
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))  # the trigger came back with the restore
