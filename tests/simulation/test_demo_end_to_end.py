"""The demo replays a synthetic cohort through the services; the analysis read back from the
database must recover, patient by patient, the disease control the cohort was built with."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from reluth.db.engine import make_engine
from reluth.demo import run_demo
from reluth.errors import Conflict, PermissionDenied
from reluth.simulation.cohort import CohortConfig, generate_cohort


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("demo")
    run = run_demo(out, seed=7, db=None, n_included=24)
    return out, run


def test_demo_recovers_each_patients_disease_control(small_demo: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    out, run = small_demo
    cohort = generate_cohort(CohortConfig(seed=7, n_included=24))
    stats = run["stats"]
    assert stats.randomized == sum(1 for p in cohort.patients if p.randomization_request_date)
    assert stats.randomized == len(stats.allocated) > 10
    adsl = pd.read_csv(out / "report" / "datasets" / "adsl.csv", dtype=str)
    randomized = adsl[adsl["RANDFL"] == "Y"].set_index("USUBJID")
    assert set(randomized.index) == set(stats.allocated)
    by_id = {p.patient_id: p for p in cohort.patients}
    for pid, arm in stats.allocated.items():
        expected = by_id[pid].outcomes[arm].disease_control_month6
        assert (randomized.loc[pid, "DCR6"] == "Y") is expected, pid
        assert (
            randomized.loc[pid, "ARM"]
            == {"experimental": "Lutathera", "control": "Surveillance"}[arm]
        )


def test_demo_screen_failures_are_refused_by_the_randomization_service(
    small_demo: tuple[Path, dict],  # type: ignore[type-arg]
) -> None:
    _out, run = small_demo
    cohort = generate_cohort(CohortConfig(seed=7, n_included=24))
    gate_failures = [
        p
        for p in cohort.patients
        if p.randomization_file is not None and p.randomization_request_date is None
    ]
    assert sum(run["stats"].gate_failures.values()) == len(gate_failures)


def test_demo_database_audit_chain_and_report(small_demo: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    out, run = small_demo
    assert run["audit"].ok and run["audit"].rows_checked > 1000
    assert (out / "report" / "report.html").stat().st_size > 10_000
    assert (out / "report" / "datasets" / "adtte.xpt").exists()
    engine = make_engine(run["url"])
    with engine.connect() as conn:
        users = conn.execute(text("SELECT count(*) FROM users")).scalar_one()
        audit_users = {r[0] for r in conn.execute(text("SELECT DISTINCT username FROM audit_log"))}
    engine.dispose()
    assert users >= 9
    assert "reviewer" in audit_users and "statistician" in audit_users


def test_demo_stores_the_dosimetry_study_through_the_service(small_demo: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    out, run = small_demo
    per_cycle = pd.read_csv(out / "dosimetry" / "doses_per_cycle.csv")
    assert run["dosimetry"]["cycles_stored"] == len(per_cycle) > 0
    assert run["dosimetry"]["cycles_not_administered"] == 0
    engine = make_engine(run["url"])
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(DISTINCT patient_id || '/' || cycle) FROM dose_results")
        ).scalar_one()
        writers = {
            r[0]
            for r in conn.execute(
                text("SELECT DISTINCT username FROM audit_log WHERE table_name = 'dose_results'")
            )
        }
    engine.dispose()
    assert stored == len(per_cycle)
    assert writers == {"physicist"}
    assert run["audit"].ok  # verified after the dosimetry rows were written


def test_demo_refuses_a_database_that_holds_patients(
    small_demo: tuple[Path, dict], tmp_path: Path
) -> None:  # type: ignore[type-arg]
    _out, run = small_demo
    with pytest.raises(Conflict, match="already holds patients"):
        run_demo(tmp_path, seed=7, db=run["url"], n_included=24)


def test_demo_refused_in_production(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RELUTH_ENV", "production")
    with pytest.raises(PermissionDenied):
        run_demo(tmp_path, seed=7, db=None, n_included=24)
