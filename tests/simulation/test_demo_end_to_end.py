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
from reluth.protocol.definition import load_protocol
from reluth.response import recist
from reluth.simulation.cohort import CohortConfig, generate_cohort

pytestmark = pytest.mark.slow  # a whole demo / every API operation fuzzed: minutes


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("demo")
    run = run_demo(out, seed=7, db=None, n_included=24)
    return out, run


def test_demo_recovers_each_patients_disease_control(small_demo: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    out, run = small_demo
    cohort = generate_cohort(CohortConfig(load_protocol(), seed=7, n_included=24))
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


def test_the_reports_primary_endpoint_is_the_engines_decision_patient_by_patient(
    small_demo: tuple[Path, dict],  # type: ignore[type-arg]
) -> None:
    """The RECIST engine, run here on each patient's measurements (and death), decides the
    month-6 disease control the report counts: ADSL patient by patient, results.json per arm."""
    out, run = small_demo
    cohort = generate_cohort(CohortConfig(load_protocol(), seed=7, n_included=24))
    by_id = {p.patient_id: p for p in cohort.patients}
    options = recist.RecistOptions.from_protocol(load_protocol())
    adsl = pd.read_csv(out / "report" / "datasets" / "adsl.csv", dtype=str).set_index("USUBJID")
    label = {"experimental": "Lutathera", "control": "Surveillance"}
    successes = {"Lutathera": 0, "Surveillance": 0}
    for pid, arm in run["stats"].allocated.items():
        outcome = by_id[pid].outcomes[arm]
        engine = recist.evaluate(
            recist.parse_patient(outcome.recist), options, death_date=outcome.death_date
        )
        assert (adsl.loc[pid, "DCR6"] == "Y") is engine.disease_control_month6, pid
        successes[label[arm]] += engine.disease_control_month6
    reported = {g["group"]: g["successes"] for g in run["results"]["dcr6_itt"]["groups"]}
    assert reported == successes


def test_demo_screen_failures_are_refused_by_the_randomization_service(
    small_demo: tuple[Path, dict],  # type: ignore[type-arg]
) -> None:
    _out, run = small_demo
    cohort = generate_cohort(CohortConfig(load_protocol(), seed=7, n_included=24))
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
    for name in ("adcm", "admh"):  # the clinical forms the demo fills
        assert (out / "report" / "datasets" / f"{name}.csv").exists()
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


def test_demo_writes_one_sample_casebook_with_every_kind_of_record(
    small_demo: tuple[Path, dict],  # type: ignore[type-arg]
) -> None:
    import io

    import pypdf

    out, run = small_demo
    books = sorted((out / "casebooks").glob("*-casebook.pdf"))
    assert books == [run["casebook"]]
    code = books[0].name.removesuffix("-casebook.pdf")
    assert code in run["stats"].allocated  # randomized, from the dosimetry study
    pages = pypdf.PdfReader(io.BytesIO(books[0].read_bytes())).pages
    flat = "".join("".join(p.extract_text() or "" for p in pages).split())
    for section in (
        f"Casebook—patient{code}",
        "Lutatheraadministrations",
        "Randomized",
        "Laboratoryresults",
        "Centralreviewreads",
        "Dosimetry",
        "Appendix:audittrail",
    ):
        assert section in flat, section
    assert f"Arm{run['stats'].allocated[code]}" in flat  # printed by the (unblinded) data manager


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


def test_the_printed_cli_login_works(
    small_demo: tuple[Path, dict],  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The summary tells how to log in on the CLI; doing what it says works, and the same
    command without the login is refused."""
    from typer.testing import CliRunner

    from reluth.cli import app
    from reluth.demo import _summary

    out, run = small_demo
    _summary(run, out)
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if "reluth login" in x)
    password = line.split("'")[3]
    username = line.split("reluth login ")[1].split()[0]
    assert f"RELUTH_DATABASE_URL={run['url']}" in printed
    export = next(x for x in printed.splitlines() if x.strip().startswith("export "))
    monkeypatch.delenv("RELUTH_AUDIT_KEY", raising=False)
    monkeypatch.delenv("RELUTH_ALLOCATION_KEY", raising=False)
    for assignment in export.split()[1:]:  # exactly what the summary tells a person to export
        name, value = assignment.split("=", 1)
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RELUTH_CONFIG_DIR", str(out / "cli-config"))
    runner = CliRunner()
    refused = runner.invoke(app, ["randomization", "report"])
    assert refused.exit_code == 4 and "login" in refused.output
    login = runner.invoke(app, ["login", username, "--password-stdin"], input=password)
    assert login.exit_code == 0, login.output
    whoami = runner.invoke(app, ["whoami"])
    assert whoami.exit_code == 0 and "statistician" in whoami.output
    report = runner.invoke(app, ["randomization", "report", "--json"])
    assert report.exit_code == 0, report.output
    history = runner.invoke(app, ["audit", "show", run["example_patient"]])
    assert history.exit_code == 0 and run["example_patient"] in history.output


def test_demo_keeps_its_keys_and_a_signed_checkpoint_outside_the_database_and_verifies(
    small_demo: tuple[Path, dict],  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the demo prints to verify works: its audit key and final checkpoint, as a logged-in
    statistician, with `reluth audit verify --key-file --checkpoints` (exit 0)."""
    import json

    from typer.testing import CliRunner

    from reluth.cli import app

    out, run = small_demo
    assert run["audit"].ok and run["audit"].checkpoints_checked == 1, run["audit"].findings
    assert (out / "audit.key").stat().st_mode & 0o777 == 0o600
    assert len(list((out / "checkpoints").glob("checkpoint-*.json"))) == 1
    monkeypatch.setenv("RELUTH_DATABASE_URL", run["url"])
    monkeypatch.delenv("RELUTH_AUDIT_KEY")
    monkeypatch.delenv("RELUTH_ALLOCATION_KEY")
    monkeypatch.setenv("RELUTH_AUDIT_KEY_FILE", str(out / "audit.key"))
    monkeypatch.setenv("RELUTH_ALLOCATION_KEY_FILE", str(out / "allocation.key"))
    cli = CliRunner()
    login = cli.invoke(
        app, ["login", "statistician", "--password-stdin"], input="reluth-demo-statistician\n"
    )
    assert login.exit_code == 0, login.output
    args = ["audit", "verify", "--key-file", str(out / "audit.key")]
    # the demo's own signer, as the printed command names it: a signing key left in the data
    # directory (by `reluth serve`, another trial) must not be trusted instead
    args += ["--checkpoints", str(out / "checkpoints"), "--json"]
    args += ["--public-key", str(out / "checkpoint-signing.pub")]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and report["checkpoints_checked"] == 1 and report["not_done"] == []


def test_demo_files_sae_reports_and_pharmacovigilance_assesses_them(
    small_demo: tuple[Path, dict],  # type: ignore[type-arg]
) -> None:
    _out, run = small_demo
    engine = make_engine(run["url"])
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM adverse_events WHERE serious")).scalar()
        reports = conn.execute(
            text("SELECT sequence, count(*) FROM sae_reports GROUP BY sequence ORDER BY sequence")
        ).all()
        assessed = conn.execute(text("SELECT count(*) FROM sae_assessments")).scalar()
    engine.dispose()
    assert stored  # the synthetic cohort has serious adverse events
    assert [tuple(r) for r in reports] == [(0, stored), (1, stored)]  # initial, one follow-up
    assert assessed == 2 * stored
    assert run["stats"].records["SAE report"] == 2 * stored


def test_demo_dates_are_consistent_on_the_patient_pages(small_demo: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    """Issue 17: each demo patient is registered (site day) on or before its inclusion, and its
    questionnaires are at the schedule's QoL time points only."""
    import datetime as dt

    from reluth.db.base import as_utc
    from reluth.protocol.schedule import qol_timepoints

    _out, run = small_demo
    protocol = load_protocol()
    engine = make_engine(run["url"])
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.patient_code, p.registered_at, i.inclusion_date FROM patients p "
                "JOIN inclusions i ON i.patient_id = p.id"
            )
        ).all()
        timepoints = {r[0] for r in conn.execute(text("SELECT timepoint FROM qol_questionnaires"))}
    engine.dispose()
    assert rows and timepoints
    zone = protocol.safety.zone
    for code, registered, included in rows:
        moment = (
            registered
            if isinstance(registered, dt.datetime)
            else dt.datetime.fromisoformat(registered)
        )
        day = as_utc(moment).astimezone(zone).date()
        included = included if isinstance(included, dt.date) else dt.date.fromisoformat(included)
        assert day <= included, (code, day, included)
    assert timepoints <= set(qol_timepoints(protocol))
