"""The one correction mechanism, driven by the registry: `reluth correct FORM RECORD_ID
--field NAME=VALUE --reason TEXT` (authenticated by the CLI login) and the generic service
path keep each domain's invariants (the CTCAE grade, the timeline), refuse a field the form
does not let change naming it, and map form + record to (table, id, patient, centre)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from tests.store.storekit import NURSE, cli_token, ready_patients, work
from typer.testing import CliRunner

from reluth.cli import app
from reluth.db.audit import AuditLog
from reluth.db.session import read_session
from reluth.errors import NotFound, PermissionDenied, ValidationError
from reluth.forms import corrections, refs
from reluth.safety import service as safety
from reluth.safety.models import LabResult
from reluth.treatment.models import Administration

TODAY = dt.date(2025, 6, 30)
REASON = "transcription error, source document p. 4"
runner = CliRunner()


def _lab(engine: Engine, code: str) -> int:
    data = {"test": "platelets", "value": "72000", "unit": "/mm3", "date": "2025-04-07"}
    with work(engine, NURSE, today=TODAY) as ctx:
        return safety.record_lab(ctx, code, data).id


def _run(url: str, token: str | None, *args: str) -> Any:
    env = {"RELUTH_DATABASE_URL": url}
    if token:
        env["RELUTH_TOKEN"] = token
    return runner.invoke(app, list(args), env=env)


@pytest.fixture
def cli_db(engine: Engine, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RELUTH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("RELUTH_TOKEN", raising=False)
    return store_url


def test_reluth_correct_regrades_through_the_domain_and_is_audited(
    engine: Engine, cli_db: str
) -> None:
    code = ready_patients(engine, 1, centres=("C01",))[0]
    lab_id = _lab(engine, code)
    token = cli_token(engine, NURSE)
    args = ("correct", "lab", str(lab_id), "--field", "value=45000", "--reason", REASON, "--json")
    assert _run(cli_db, None, *args).exit_code == 4  # no login
    ok = _run(cli_db, token, *args)
    assert ok.exit_code == 0, ok.output
    out = json.loads(ok.output)
    assert out["form"] == "lab" and out["record_id"] == lab_id and out["ctcae_grade"] == 3
    with read_session(engine) as s:
        row = s.get(LabResult, lab_id)
        assert row is not None and row.ctcae_grade == 3
        audit = s.scalars(
            select(AuditLog).where(AuditLog.table_name == "lab_results", AuditLog.field == "value")
        ).one()
        assert audit.reason == REASON and audit.username == NURSE

    unit = _run(cli_db, token, "correct", "lab", str(lab_id), "-f", "unit=g/l", "--reason", "r")
    assert unit.exit_code == 2 and "unit: cannot be changed on form lab" in unit.output
    unknown = _run(cli_db, token, "correct", "nonsense", "1", "-f", "a=b", "--reason", "r")
    assert unknown.exit_code != 0 and "'nonsense' is not registered" in unknown.output
    bad = _run(cli_db, token, "correct", "lab", str(lab_id), "-f", "value", "--reason", "r")
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.output
    missing = _run(cli_db, token, "correct", "lab", "99999", "-f", "value=1", "--reason", "r")
    assert missing.exit_code != 0 and "not found" in missing.output


def test_generic_correction_keeps_the_timeline_rule_of_cycles(engine: Engine) -> None:
    code = ready_patients(engine, 1, centres=("C01",))[0]
    with read_session(engine) as s:
        cycle2 = s.scalars(select(Administration).where(Administration.cycle == 2)).one()
    with work(engine, NURSE, today=TODAY, reason=REASON) as ctx:
        inst = corrections.open_instance(ctx, "cycle", cycle2.id)
        assert (inst.ref.table, inst.ref.patient_code) == ("administrations", code)
        with pytest.raises(ValidationError, match="administered_on"):
            corrections.correct(ctx, inst, {"administered_on": "2024-11-01"})  # before cycle 1
    with work(engine, NURSE, today=TODAY, reason=REASON) as ctx:
        inst = corrections.open_instance(ctx, "cycle", cycle2.id)
        row = corrections.correct(
            ctx, inst, corrections.changes_from_pairs(ctx, inst, ["lot=L2-B"])
        )
        assert row.lot == "L2-B"


def test_record_references_both_ways_and_refusals(engine: Engine) -> None:
    code = ready_patients(engine, 1, centres=("C01",))[0]
    lab_id = _lab(engine, code)
    with work(engine, NURSE, today=TODAY) as ctx:
        reg = ctx.trial.forms
        ref = refs.ref_of(ctx.session, reg, "lab", lab_id)
        assert (ref.table, ref.record_id, ref.patient_code, ref.key) == (
            "lab_results", lab_id, code, f"lab/{lab_id}",
        )  # fmt: skip
        assert refs.ref_of_table(ctx.session, reg, "lab_results", lab_id) == ref
        with pytest.raises(NotFound):
            refs.ref_of(ctx.session, reg, "central_read", 1)  # no such read
        with pytest.raises(NotFound, match="holds no case report form"):
            refs.ref_of_table(ctx.session, reg, "recist_evaluations", 1)
        with pytest.raises(NotFound, match="cannot be corrected"):
            corrections.open_instance(ctx, "screening", 1)
    from tests.store.storekit import STAT

    with work(engine, STAT, today=TODAY) as ctx, pytest.raises(PermissionDenied):
        corrections.open_instance(ctx, "lab", lab_id)


@pytest.mark.parametrize("typed", ["31/12/2024", "31/12/2024 ", "2024-12-31", "1/1/2025"])
def test_a_corrected_date_is_read_as_at_entry(engine: Engine, typed: str) -> None:
    """dd/mm/yyyy, accepted at entry, is accepted by a correction too (reluth.values): the
    French way of typing a date does not fail only on the correction path."""
    ready_patients(engine, 1, centres=("C01",))
    with read_session(engine) as s:
        cycle2 = s.scalars(select(Administration).where(Administration.cycle == 2)).one()
        saved = cycle2.administered_on
    with work(engine, NURSE, today=TODAY, reason=REASON) as ctx:
        inst = corrections.open_instance(ctx, "cycle", cycle2.id)
        changes = corrections.changes_from_pairs(ctx, inst, [f"administered_on={typed}"])
        row = corrections.correct(ctx, inst, changes)
        assert row.administered_on in (dt.date(2024, 12, 31), dt.date(2025, 1, 1))
        assert row.administered_on != saved


@pytest.mark.parametrize("typed", ["31/02/2025", "12/30/2024", "30.12.2024"])
def test_a_corrected_date_that_is_no_day_names_the_field(engine: Engine, typed: str) -> None:
    ready_patients(engine, 1, centres=("C01",))
    with read_session(engine) as s:
        cycle2 = s.scalars(select(Administration).where(Administration.cycle == 2)).one()
    with work(engine, NURSE, today=TODAY, reason=REASON) as ctx:
        inst = corrections.open_instance(ctx, "cycle", cycle2.id)
        with pytest.raises(ValidationError, match="administered_on") as refused:
            changes = corrections.changes_from_pairs(ctx, inst, [f"administered_on={typed}"])
            corrections.correct(ctx, inst, changes)
        assert refused.value.code == "not_a_date"
        with pytest.raises(ValidationError, match="administered_on") as refused:
            corrections.correct(ctx, inst, {"administered_on": typed})  # the API's JSON
        assert refused.value.code == "not_a_date"
