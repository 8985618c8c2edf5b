"""The whole flow from `db init` to `randomize` on the command line, the refusals' exit codes,
data entry, audit verify/show, tampering, and backup/restore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from storekit import ELIGIBLE, STAT, add_users
from typer.testing import CliRunner

from reluth.cli import app
from reluth.db.engine import make_engine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "store"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("RELUTH_DATABASE_URL", f"sqlite:///{tmp_path / 'trial.db'}")
    monkeypatch.setenv("RELUTH_USER", "admin1")
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, (args, result.output)
    return result.output


def _patient(tmp: Path, code: str, **changes: object) -> str:
    data = {**json.loads(json.dumps(ELIGIBLE)), "patient_id": code, **changes}
    path = tmp / f"{code}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_flow_from_db_init_to_randomize(cli: CliRunner, tmp_path: Path) -> None:
    run(cli, "db", "init")
    assert "already at" in run(cli, "db", "init")
    run(cli, "centres", "add", "C07", "CHU Example")
    run(cli, "centres", "add", "C07", "again", code=6)
    run(cli, "centres", "add", "X7", "bad", code=2)
    assert "C07-0001" in run(cli, "patients", "register", "--centre", "C07")
    run(cli, "patients", "register", "--centre", "C07", "--id", "C07-0002")
    run(cli, "patients", "register", "--centre", "C07", "--id", "C07-0003")
    out = run(cli, "patients", "screen", _patient(tmp_path, "C07-0001"), "--json")
    assert json.loads(out)["status"] == "eligible"
    run(cli, "patients", "screen", _patient(tmp_path, "C07-0002", ecog=3), code=1)
    run(cli, "patients", "screen", _patient(tmp_path, "C07-0003", name="Jean Dupont"), code=2)
    run(cli, "patients", "include", "C07-0002", "--consent-date", "2024-10-28", code=7)
    run(cli, "patients", "include", "C07-0001", "--consent-date", "2024-10-28")
    for cycle, date in ((1, "2024-11-04"), (2, "2024-12-30")):
        run(cli, "record", "cycle", "C07-0001", "--cycle", str(cycle), "--date", date,
            "--activity-gbq", "7.4", "--lot", f"L{cycle}")  # fmt: skip
    engine = make_engine(f"sqlite:///{tmp_path / 'trial.db'}")
    add_users(engine)  # admin1, nurse1, inv1, stat1; RELUTH_USER is admin1
    engine.dispose()
    run(cli, "randomize", "C07-0001", "--request-id", "r1", "--as", "inv1", code=7)  # no pre-rand.
    run(cli, "record", "pre-randomization", "C07-0001", "--date", "2025-02-24",
        "--no-progression", "--response", "SD")  # fmt: skip
    run(cli, "randomize", "C07-0001", "--request-id", "r1", "--as", "inv1", code=7)  # not set up
    run(cli, "randomize", "C07-0001", "--request-id", "r1", "--as", "nurse1", code=4)  # policy
    run(cli, "randomization", "setup", "--method", "blocks")
    run(cli, "randomization", "generate-list", "--seed-file", "seed.txt", "--per-stratum", "8",
        code=4)  # fmt: skip  # admin is not the unblinded statistician
    run(cli, "randomization", "generate-list", "--seed-file", "seed.txt", "--per-stratum", "8",
        "--as", STAT.username)  # fmt: skip
    assert (tmp_path / "seed.txt").stat().st_mode & 0o077 == 0
    first = json.loads(run(cli, "randomize", "C07-0001", "--request-id", "r1", "--as", "inv1",
                           "--json"))  # fmt: skip
    again = json.loads(
        run(cli, "randomize", "C07-0001", "--request-id", "r1", "--as", "inv1", "--json")
    )
    assert first["arm"] == again["arm"] and again["replayed"] is True
    run(cli, "randomize", "C07-0001", "--request-id", "r2", "--as", "inv1", code=6)
    run(cli, "randomize", "C07-0002", "--request-id", "r3", "--as", "inv1", code=7)
    listing = json.loads(run(cli, "randomization", "list", "--json", "--as", "stat1"))
    assert any(r["patient_id"] == "C07-0001" for r in listing)
    run(cli, "randomization", "list", "--as", "nurse1", code=4)
    rep = json.loads(run(cli, "randomization", "report", "--json"))
    assert rep["total"] == 1 and rep["list_intact"] is True
    run(cli, "randomize", "C07-0001", "--as", "nobody", code=4)

    for kind in ("labs", "ae", "assessment", "qol"):
        run(cli, "record", kind, str(EXAMPLES / f"{kind}.json"))
    bad = tmp_path / "bad-ae.json"
    ae = json.loads((EXAMPLES / "ae.json").read_text())
    bad.write_text(json.dumps({**ae, "grade": 7}))
    assert "adverse_event.grade" in run(cli, "record", "ae", str(bad), code=2)
    run(cli, "record", "cycle", "C07-0001", "--cycle", "3", "--date", "2025-03-20",
        "--activity-gbq", "7.4", "--lot", "L3", code=0 if first["arm"] == "experimental" else 7)  # fmt: skip

    assert "intact" in run(cli, "audit", "verify")
    history = json.loads(run(cli, "audit", "show", "C07-0001", "--json"))
    tables = {h["table"] for h in history}
    assert {"patients", "screenings", "randomizations", "adverse_events"} <= tables
    assert {"lesion_measurements", "qol_questionnaires", "lab_results"} <= tables
    assert "allocation_slots" not in tables


def test_tampering_makes_audit_verify_fail(cli: CliRunner, tmp_path: Path) -> None:
    run(cli, "db", "init")
    run(cli, "centres", "add", "C01", "One")
    run(cli, "centres", "add", "C02", "Two")
    engine = make_engine(f"sqlite:///{tmp_path / 'trial.db'}")
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET username = 'mallory' WHERE seq = 1"))
    engine.dispose()
    out = run(cli, "audit", "verify", code=1)
    assert "BROKEN at row 1" in out
    assert json.loads(run(cli, "audit", "verify", "--json", code=1))["first_broken_seq"] == 1


def test_backup_and_restore_verify_the_chain(cli: CliRunner, tmp_path: Path) -> None:
    run(cli, "db", "init")
    run(cli, "centres", "add", "C01", "One")
    assert "intact" in run(cli, "db", "backup", "backups/b1.db")
    run(cli, "db", "backup", "backups/b1.db", code=6)  # never overwrite a backup
    run(cli, "centres", "add", "C02", "Two")
    run(cli, "db", "restore", "backups/b1.db", code=6)  # target holds data
    out = run(cli, "db", "restore", "backups/b1.db", "--force")
    assert "intact: 1 rows" in out
    run(cli, "db", "restore", "missing.db", code=2)


def test_backup_and_restore_on_each_backend(engine: Engine, tmp_path: Path) -> None:
    from storekit import ADMIN

    from reluth.auth.models import Centre
    from reluth.db import audit, backup
    from reluth.db.session import unit_of_work

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
