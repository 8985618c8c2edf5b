"""Source-data verification: a monitor verifies a field, a form or a visit; a later change to a
verified value clears its SDV (an audit row), a change to another field does not clear a
field-level mark; the plan requires 100 % of consent, eligibility, randomization, tumour
assessments and SAEs and samples the rest; the report counts it per centre."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import yaml
from sqlalchemy import Engine, select
from tests.store.storekit import NURSE, add_account, read, ready_patients, work

from reluth.auth.roles import Role
from reluth.db.audit import AuditLog
from reluth.db.session import read_session
from reluth.errors import Conflict, Locked, NotFound, PermissionDenied, ValidationError
from reluth.forms.registry import DEFAULT_PATH, Registry, load_registry, parse_registry
from reluth.lifecycle import sdv_service as sdv
from reluth.lifecycle import service as lifecycle
from reluth.patients.models import Inclusion, Screening
from reluth.patients.models import Patient as Patient_
from reluth.safety import service as safety

MON = "mon1"
LAB = {"test": "alt", "value": "30", "unit": "U/L", "date": "2025-03-01", "uln": "40"}


def _setup(engine: Engine, n: int = 1) -> list[str]:
    codes = ready_patients(engine, n)
    add_account(engine, MON, Role.MONITOR, ("C01",))
    add_account(engine, "dm1", Role.DATA_MANAGER)
    return codes


def _lab(engine: Engine, code: str, **kw: str) -> int:
    with work(engine, NURSE) as ctx:
        return safety.record_lab(ctx, code, dict(LAB, **kw)).id


def _state(engine: Engine, code: str) -> list[sdv.SdvView]:
    with read(engine, MON) as ctx:
        return sdv.sdv_marks(ctx, code)


def test_a_change_clears_the_sdv_of_the_value_it_changes(engine: Engine) -> None:
    (code,) = _setup(engine)
    lab = _lab(engine, code)
    with work(engine, MON) as ctx:
        sdv.verify(ctx, code, "lab_results", lab, "value")
        sdv.verify(ctx, code, "lab_results", lab, "sample_date")
    with work(engine, NURSE, reason="transcription error") as ctx:
        safety.edit_lab(ctx, code, lab, {"value": "31"})
    marks = {m.field: m for m in _state(engine, code)}
    assert marks["value"].cleared_by_change == f"update lab_results/{lab} value"
    assert marks["sample_date"].cleared_by_change is None  # another field: still verified
    with read_session(engine) as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.table_name == "sdv_clearances")).all()
    assert len(rows) == 1 and rows[0].reason == "transcription error"
    with work(engine, MON) as ctx:  # verified again after the correction
        sdv.verify(ctx, code, "lab_results", lab, "value")
    assert sum(m.cleared_by_change is None for m in _state(engine, code)) == 2


def test_a_form_mark_is_cleared_by_any_change_to_the_form(engine: Engine) -> None:
    (code,) = _setup(engine)
    lab = _lab(engine, code)
    with work(engine, MON) as ctx:
        sdv.verify(ctx, code, "lab_results", lab)
    with pytest.raises(Conflict, match="already verified"), work(engine, MON) as ctx:
        sdv.verify(ctx, code, "lab_results", lab, "value")
    with work(engine, NURSE, reason="ULN from the lab's sheet") as ctx:
        safety.edit_lab(ctx, code, lab, {"uln": "45"})
    (mark,) = _state(engine, code)
    assert mark.field is None and mark.cleared_by_change == f"update lab_results/{lab}"


def test_who_verifies_and_what_is_accepted(engine: Engine) -> None:
    (code,) = _setup(engine)
    lab = _lab(engine, code)
    with pytest.raises(PermissionDenied), work(engine, NURSE) as ctx:
        sdv.verify(ctx, code, "lab_results", lab)
    with pytest.raises(ValidationError, match="field"), work(engine, MON) as ctx:
        sdv.verify(ctx, code, "lab_results", lab, "nonsense")
    with pytest.raises(ValidationError, match="table"), work(engine, MON) as ctx:
        sdv.verify(ctx, code, "nonsense", 99999)
    with pytest.raises(NotFound), work(engine, MON) as ctx:
        sdv.verify(ctx, code, "lab_results", 99999)


def test_sdv_goes_on_during_a_freeze_and_stops_under_a_lock(engine: Engine) -> None:
    (code,) = _setup(engine)
    lab = _lab(engine, code)
    with work(engine, "dm1") as ctx:
        lifecycle.lock(ctx, "study", None, "pre-lock review", kind="freeze")
    with work(engine, MON) as ctx:
        sdv.verify(ctx, code, "lab_results", lab, "value")
    with work(engine, "dm1") as ctx:
        lifecycle.lock(ctx, "patient", code, "locked")
    with pytest.raises(Locked), work(engine, MON) as ctx:
        sdv.verify(ctx, code, "lab_results", lab, "unit")


def test_the_report_follows_the_plan_per_centre(engine: Engine) -> None:
    codes = _setup(engine, 3)  # C01-0001, C02-0002, C01-0003
    c01 = [c for c in codes if c.startswith("C01")]
    for code in c01:
        for i in range(10):
            _lab(engine, code, value=str(30 + i), date=f"2025-02-{10 + i:02d}")
    with read(engine, MON) as ctx:
        (before,) = sdv.sdv_report(ctx, "C01")
    # per patient: screening, inclusion (required); cycles, pre-randomization, labs (sampled)
    assert before.required == 2 * len(c01) and before.required_verified == 0
    assert before.sampled + before.not_sampled == len(c01) * (2 + 1 + 10)
    assert 0 < before.sampled < before.sampled + before.not_sampled
    assert before.outstanding[0].requirement in ("eligibility", "informed consent")
    with read_session(engine) as s:
        records = [
            (model.__tablename__, row.id, code)
            for code in c01
            for model in (Screening, Inclusion)
            for row in s.scalars(
                select(model).join_from(model, Patient_).where(Patient_.patient_code == code)
            )
        ]
    with work(engine, MON) as ctx:
        for table, rid, code in records:
            sdv.verify(ctx, code, table, rid)
    with read(engine, MON) as ctx:
        (after,) = sdv.sdv_report(ctx, "C01")
        assert after.required_verified == after.required and after.required_percent == Decimal(
            "100.0"
        )
        assert all(o.requirement == "sampled" for o in after.outstanding)
        with pytest.raises(PermissionDenied):
            sdv.sdv_report(ctx, "C02")  # the monitor of C01 only
        assert [r.centre for r in sdv.sdv_report(ctx)] == ["C01"]
    with work(engine, "dm1", today=dt.date(2025, 3, 5)) as ctx:
        assert sdv.sdv_report(ctx, "C02")[0].required == 2


def test_the_plan_samples_a_stable_fraction() -> None:
    plan = sdv.plan_of(load_registry())
    assert plan.sample_fraction == Decimal("0.2")  # as forms.yaml declares
    picked = [plan.sampled("lab_results", str(i)) for i in range(1, 2001)]
    assert picked == [plan.sampled("lab_results", str(i)) for i in range(1, 2001)]
    assert 0.15 < sum(picked) / len(picked) < 0.25


def _amended(**sdv_plan: object) -> Registry:
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    data["sdv"].update(sdv_plan)
    return parse_registry(data)


def test_the_plan_is_read_from_the_registry_and_an_amendment_changes_it(engine: Engine) -> None:
    shipped = sdv.plan_of(load_registry())
    labels = {r.label: (r.table, dict(r.where)) for r in shipped.required}
    assert labels["serious adverse event"] == ("adverse_events", {"serious": True})
    assert labels["primary-endpoint read"] == ("tumour_assessments", {"reader": "local"})
    assert "lab_results" in shipped.sampled_tables
    amended = _amended(
        required=[{"form": "lab", "label": "every lab"}, {"form": "screening", "label": "elig"}],
        sample_fraction="1",
        sampled=["cycle"],
    )
    plan = sdv.plan_of(amended)
    assert [r.table for r in plan.required] == ["lab_results", "screenings"]
    (code,) = _setup(engine)
    for i in range(3):
        _lab(engine, code, date=f"2025-02-{10 + i:02d}")
    with read(engine, MON) as ctx:
        (before,) = sdv.sdv_report(ctx, "C01")
        (after,) = sdv.sdv_report(ctx, "C01", plan)
    assert before.required == 2  # screening, inclusion (labs sampled at 20 %)
    assert after.required == 3 + 1  # every lab, the screening (the inclusion no longer)
    assert after.sampled == 2  # both cycles: all of them
    assert after.not_sampled == 2  # the inclusion, the pre-randomization assessment
    with pytest.raises(ValidationError, match="sample_fraction"):
        _amended(sample_fraction="1.5")
    with pytest.raises(ValidationError, match="unknown form"):
        _amended(sampled=["nonsense"])
    with pytest.raises(ValidationError, match="no field"):
        _amended(required=[{"form": "lab", "label": "x", "where": {"colour": "red"}}])


def test_a_visit_is_verified_form_by_form(engine: Engine) -> None:
    from tests.store.storekit import INVESTIGATOR, STAT

    from reluth.randomization import service as rnd
    from reluth.treatment import service as treatment

    (code,) = _setup(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "minimization")
    with work(engine, INVESTIGATOR) as ctx:
        rnd.randomize(ctx, code, "v")
    later = dt.date(2025, 12, 1)
    with work(engine, NURSE, today=later) as ctx:
        treatment.record_visit(ctx, code, "TA-W08", dt.date(2025, 5, 5))
        lab = safety.record_lab(ctx, code, dict(LAB, date="2025-05-05")).id
    with work(engine, MON, today=later) as ctx:
        marks = sdv.verify_visit(ctx, code, "TA-W08")
    assert sorted(m.table_name for m in marks) == ["lab_results", "visits"]
    assert {m.scope for m in marks} == {"visit"}
    with pytest.raises(Conflict), work(engine, MON, today=later) as ctx:
        sdv.verify_visit(ctx, code, "TA-W08")
    with work(engine, NURSE, today=later, reason="typo") as ctx:
        safety.edit_lab(ctx, code, lab, {"value": "33"})
    cleared = {m.table_name: m.cleared_by_change for m in _state(engine, code)}
    assert cleared == {"visits": None, "lab_results": f"update lab_results/{lab}"}
