"""`reluth dosimetry run --patient --cycle --db` and `reluth dosimetry store`: the computed
case's records reach the trial database through the audited service, as the acting user, and
each refusal has its exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.store.storekit import add_account, cli_token, ready_patients
from typer.testing import CliRunner

from reluth.auth.roles import Role
from reluth.cli import app
from reluth.db.audit import AuditLog
from reluth.db.engine import make_engine
from reluth.db.migrate import upgrade
from reluth.db.session import read_session
from reluth.dosimetry.models import DoseResult
from reluth.dosimetry.phantom import small_spec, write_case

runner = CliRunner()


@pytest.fixture
def trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'trial.db'}"
    engine = make_engine(url)
    upgrade(engine)
    code = ready_patients(engine, 1)[0]
    add_account(engine, "phys1", Role.MEDICAL_PHYSICIST)
    tokens = {name: cli_token(engine, name) for name in ("phys1", "nurse1")}
    engine.dispose()
    monkeypatch.setenv("RELUTH_CONFIG_DIR", str(tmp_path / "config"))
    TOKENS.clear()
    TOKENS.update(tokens)
    return url, code


#: The CLI login tokens of the test's accounts (RELUTH_TOKEN of each command).
TOKENS: dict[str, str] = {}


def _as(name: str) -> dict[str, str]:
    return {"RELUTH_TOKEN": TOKENS[name]}


def _rows(url: str) -> list[DoseResult]:
    engine = make_engine(url)
    with read_session(engine) as s:
        rows = list(s.scalars(select(DoseResult)))
        users = set(
            s.scalars(select(AuditLog.username).where(AuditLog.table_name == "dose_results"))
        )
    engine.dispose()
    assert users <= {"phys1"}
    return rows


def test_run_stores_and_store_refuses_duplicates_wrong_cycle_and_roles(
    trial: tuple[str, str], tmp_path: Path
) -> None:
    url, code = trial
    case = write_case(tmp_path / "PHANTOM-001", small_spec(16))
    out = tmp_path / "out"
    common = ["--db", url, "--patient", code]
    ran = runner.invoke(app, ["dosimetry", "run", str(case), "--out", str(out), *common,
                              "--cycle", "2", "--json"], env=_as("phys1"))  # fmt: skip
    assert ran.exit_code == 0, ran.output
    stored = json.loads(ran.output)["stored"]
    rows = _rows(url)
    assert stored["stored"] == len(rows) > 5 and {r.cycle for r in rows} == {2}
    assert {r.region_kind for r in rows} >= {"organ", "tumour", "marrow"}
    results = str(out / "results.json")
    again = runner.invoke(app, ["dosimetry", "store", results, *common, "--cycle", "2"],
                          env=_as("phys1"))  # fmt: skip
    assert again.exit_code == 6 and "replace" in again.output
    replaced = runner.invoke(app, ["dosimetry", "store", results, *common, "--cycle", "2",
                                   "--replace-reason", "new masks"], env=_as("phys1"))  # fmt: skip
    assert replaced.exit_code == 0, replaced.output
    assert len(_rows(url)) == len(rows)
    not_given = runner.invoke(app, ["dosimetry", "store", results, *common, "--cycle", "3"],
                              env=_as("phys1"))  # fmt: skip
    assert not_given.exit_code == 7 and "not administered" in not_given.output
    nurse = runner.invoke(app, ["dosimetry", "store", results, *common, "--cycle", "1"],
                          env=_as("nurse1"))  # fmt: skip
    assert nurse.exit_code == 4 and "may not write dosimetry" in nurse.output
    half = runner.invoke(app, ["dosimetry", "run", str(case), "--out", str(out), "--db", url,
                               "--patient", code])  # fmt: skip
    assert half.exit_code == 2 and "--patient/--cycle" in half.output
