"""Corrections of the clinical forms through the one correction mechanism (service path and
`reluth correct`): each keeps its domain's rules — the form's own cross-field rules, the
patient's timeline (death, end of study, withdrawals), the pregnancy-test rule of the cycles
already given — and a deviation's severity moves the patient in or out of the per-protocol
population of the analysis datasets."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from tests.store.storekit import NURSE, STAT, cli_token, patient_file, read, work
from typer.testing import CliRunner

from reluth.cli import app
from reluth.clinical import service as clinical
from reluth.clinical.models import ConcomitantMedication
from reluth.db.audit import AuditLog
from reluth.db.session import read_session
from reluth.errors import Conflict, PreconditionFailed, ReluthError, ValidationError
from reluth.forms import corrections
from reluth.patients import service as patients
from reluth.treatment import service as treatment

LATER = dt.date(2025, 12, 1)
REASON = "transcription error, source document p. 2"
runner = CliRunner()
CONMED = {"drug_name": "Octreotide LAR", "atc_code": "H01CB02", "indication": "carcinoid syndrome",
          "dose": "30", "unit": "mg", "route": "intramuscular", "start_date": "2024-06-01",
          "ongoing": True}  # fmt: skip


def _included(engine: Engine, code: str = "C01-0001", sex: str | None = None) -> str:
    from tests.store.storekit import add_users, not_childbearing

    add_users(engine)
    with work(engine, NURSE) as ctx:
        patients.register_patient(ctx, code[:3], code, sex=sex)
        patients.screen_patient(ctx, patient_file(code, sex=sex or "female"))
        patients.include_patient(ctx, code, dt.date(2024, 10, 28), dt.date(2024, 10, 30))
        if sex is None:  # screened as the example woman, postmenopausal
            not_childbearing(ctx, code)
    return code


def _record(engine: Engine, fn: Any) -> int:
    with work(engine, NURSE, today=LATER) as ctx:
        return int(fn(ctx).id)


def _correct(engine: Engine, form: str, rid: int, changes: dict[str, Any]) -> Any:
    with work(engine, NURSE, today=LATER, reason=REASON) as ctx:
        inst = corrections.open_instance(ctx, form, rid)
        row = corrections.correct(ctx, inst, changes)
        return corrections.result(ctx, inst, row)


def _refused(engine: Engine, form: str, rid: int, changes: dict[str, Any]) -> ReluthError:
    with pytest.raises(ReluthError) as info:
        _correct(engine, form, rid, changes)
    return info.value


def test_conmed_correction_keeps_the_form_rules_and_the_timeline(engine: Engine) -> None:
    code = _included(engine)
    rid = _record(engine, lambda c: clinical.record_conmed(c, code, CONMED))
    # decimal comma and a day-first date, as people type them
    out = _correct(engine, "conmed", rid, {"dose": "22,5", "start_date": "01/05/2024"})
    assert str(out["dose"]) == "22.5" and out["start_date"] == "2024-05-01"
    err = _refused(engine, "conmed", rid, {"ongoing": False})  # stopped: needs its stop date
    assert isinstance(err, ValidationError) and err.field == "stop_date"
    err = _refused(engine, "conmed", rid, {"dose": None})  # a unit without its dose
    assert err.field == "dose"
    err = _refused(engine, "conmed", rid, {"start_date": "2025-12-02"})  # after today
    assert err.field == "start_date" and "future" in err.message
    err = _refused(engine, "conmed", rid, {"route": "nasal"})
    assert err.field == "route"
    with work(engine, NURSE, today=LATER) as ctx:  # no reason: refused before anything
        inst = corrections.open_instance(ctx, "conmed", rid)
        with pytest.raises(ValidationError, match="reason"):
            corrections.correct(ctx, inst, {"indication": "flushing"})
    with read_session(engine) as s:
        row = s.get(ConcomitantMedication, rid)
        assert row is not None and row.dose == Decimal("22.5") and row.ongoing
        audit = s.scalars(
            select(AuditLog).where(
                AuditLog.table_name == "concomitant_medications", AuditLog.field == "dose"
            )
        ).one()
        assert audit.reason == REASON and audit.username == NURSE


def test_death_correction_may_not_precede_a_record_nor_follow_its_end_of_study(
    engine: Engine,
) -> None:
    code = _included(engine)
    _record(engine, lambda c: clinical.record_conmed(
        c, code, {**CONMED, "ongoing": False, "stop_date": "2025-01-10"}))  # fmt: skip
    death = _record(
        engine, lambda c: patients.record_death(c, code, dt.date(2025, 2, 1), "disease")
    )
    _record(engine, lambda c: patients.record_end_of_study(c, code, dt.date(2025, 2, 3), "death"))
    err = _refused(engine, "death", death, {"death_date": "2025-01-09"})  # before the stop
    assert err.field == "death_date" and "medication stop" in err.message
    assert _correct(engine, "death", death, {"death_date": "2025-01-10"})["death_date"] == (
        "2025-01-10"
    )
    err = _refused(engine, "death", death, {"death_date": "2025-02-04"})  # after its EOS
    assert err.field == "death_date" and "end of study" in err.message
    err = _refused(engine, "death", death, {"cause": "other"})  # other: say it in words
    assert err.field == "details"
    assert _correct(engine, "death", death, {"cause": "other", "details": "sepsis"})["cause"] == (
        "other"
    )
    with read(engine, NURSE, today=LATER) as ctx:
        eos = patients.get_end_of_study(ctx, code)
    err = _refused(engine, "end_of_study", eos.id, {"end_date": "2025-01-09"})
    assert err.field == "end_date"
    err = _refused(engine, "end_of_study", eos.id, {"reason": "objection"})  # none recorded
    assert isinstance(err, PreconditionFailed) and err.field == "reason"


def test_withdrawal_correction_ignores_its_own_date_and_keeps_one_per_kind(
    engine: Engine,
) -> None:
    code = _included(engine)
    w = {"kind": "follow_up", "withdrawal_date": "2025-03-06"}
    follow_up = _record(engine, lambda c: patients.record_withdrawal(c, code, w))
    treatment_w = {"kind": "treatment", "withdrawal_date": "2025-03-01"}
    stopped = _record(engine, lambda c: patients.record_withdrawal(c, code, treatment_w))
    # its own saved date does not stop its correction (later: the old date is no milestone)
    assert (
        _correct(engine, "withdrawal", follow_up, {"withdrawal_date": "2025-03-20"})[
            "withdrawal_date"
        ]
        == "2025-03-20"
    )
    err = _refused(engine, "withdrawal", stopped, {"kind": "follow_up"})
    assert isinstance(err, Conflict)
    # a lab dated after the new date would be stopped by it: refused, naming the record
    with work(engine, NURSE, today=LATER) as ctx:
        from reluth.safety import service as safety

        safety.record_lab(ctx, code, {"test": "platelets", "value": "45000", "unit": "/mm3",
                                      "date": "2025-03-15"})  # fmt: skip
    err = _refused(engine, "withdrawal", follow_up, {"withdrawal_date": "2025-03-10"})
    assert err.field == "withdrawal_date" and "laboratory result" in err.message


def test_pregnancy_test_correction_may_not_uncover_a_given_cycle(engine: Engine) -> None:
    code = _included(engine, sex="female")
    status = {"childbearing_potential": False, "reason": "postmenopausal",
              "assessed_on": "2024-10-30"}  # fmt: skip
    cb = _record(engine, lambda c: clinical.record_childbearing(c, code, status))
    test = {"test_date": "2024-11-01", "method": "serum", "result": "negative"}
    rid = _record(engine, lambda c: clinical.record_pregnancy_test(c, code, test))
    with work(engine, NURSE, today=LATER) as ctx:
        treatment.record_cycle(ctx, code, 1, dt.date(2024, 11, 4), Decimal("7.4"), "L1")
    # now of childbearing potential: the test of 2024-11-01 covers cycle 1
    assert (
        _correct(engine, "childbearing", cb, {"childbearing_potential": True, "reason": None})[
            "childbearing_potential"
        ]
        is True
    )
    err = _refused(engine, "pregnancy_test", rid, {"result": "positive"})
    assert isinstance(err, PreconditionFailed) and err.field == "result"
    assert "cycle 1" in err.message
    err = _refused(engine, "pregnancy_test", rid, {"test_date": "2024-11-05"})  # after it
    assert err.field == "test_date" and "cycle 1" in err.message
    assert _correct(engine, "pregnancy_test", rid, {"method": "urine"})["method"] == "urine"
    with read(engine, NURSE, today=LATER) as ctx:
        assert [t["result"] for t in clinical.pregnancy_tests(ctx, code)] == ["negative"]


def test_deviation_severity_correction_moves_the_major_deviation_flag(engine: Engine) -> None:
    from reluth.analysis import service as analysis

    code = _included(engine)
    deviation = {"category": "eligibility", "severity": "major", "deviation_date": "2024-10-30",
                 "description": "Included with platelets below the threshold"}  # fmt: skip
    rid = _record(engine, lambda c: clinical.record_deviation(c, code, deviation))

    def flags() -> tuple[str, str]:
        with read(engine, STAT, today=LATER) as ctx:
            adsl = analysis.analysis_datasets(ctx).adsl
        row = adsl.loc[adsl["USUBJID"].str.endswith(code)].iloc[0]
        return str(row["MAJDVFL"]), str(row["PPROTFL"])

    assert flags() == ("Y", "N")
    _correct(engine, "deviation", rid, {"severity": "minor", "corrective_action": "noted"})
    assert flags()[0] == "N"  # no major deviation left (PPROTFL also needs the randomization)


@pytest.fixture
def cli_db(engine: Engine, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RELUTH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("RELUTH_TOKEN", raising=False)
    return store_url


def test_reluth_correct_corrects_a_medical_history_and_names_a_bad_field(
    engine: Engine, cli_db: str
) -> None:
    code = _included(engine)
    history = {"condition": "Hypertension", "start_date": "2010-01-01", "ongoing": True}
    rid = _record(engine, lambda c: clinical.record_medical_history(c, code, history))
    env = {"RELUTH_DATABASE_URL": cli_db, "RELUTH_TOKEN": cli_token(engine, NURSE)}
    args = ["correct", "medical_history", str(rid), "-f", "ongoing=no", "-f",
            "condition=Arterial hypertension", "--reason", REASON, "--json"]  # fmt: skip
    ok = runner.invoke(app, args, env=env)
    assert ok.exit_code == 0, ok.output
    out = json.loads(ok.output)
    assert out["form"] == "medical_history" and out["record_id"] == rid
    assert out["condition"] == "Arterial hypertension" and out["ongoing"] is False
    bad = runner.invoke(
        app, ["correct", "medical_history", str(rid), "-f", "colour=red", "--reason", "r"], env=env
    )
    assert bad.exit_code == 2 and "colour: cannot be changed on form medical_history" in bad.output
