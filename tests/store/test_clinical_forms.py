"""The clinical forms through their services, on both backends: concomitant medications,
medical history, deviations, pregnancy tests (and the cycle they gate), withdrawals (and what
each stops), death and end of study — each date rule tried on both sides of its boundary."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine
from storekit import (
    INVESTIGATOR,
    NURSE,
    STAT,
    add_account,
    add_users,
    at,
    not_childbearing,
    patient_file,
    read,
    ready_patients,
    work,
)

from reluth.auth.roles import Role
from reluth.clinical import service as clinical
from reluth.errors import Conflict, PermissionDenied, PreconditionFailed, ValidationError
from reluth.patients import service as patients
from reluth.randomization import service as rnd
from reluth.safety import service as safety
from reluth.treatment import service as treatment

LATER = dt.date(2025, 12, 1)
MONITOR = "monitor1"


def _refused(engine: Engine, field: str, fn: Any, today: dt.date = LATER) -> ValidationError:
    with pytest.raises(ValidationError) as info, work(engine, NURSE, today=today) as ctx:
        fn(ctx)
    assert info.value.field == field, info.value.message
    return info.value


def _ok(engine: Engine, fn: Any, today: dt.date = LATER, who: str = NURSE) -> Any:
    with work(engine, who, today=today) as ctx:
        return fn(ctx)


def _included(engine: Engine, code: str, sex: str | None = None) -> str:
    """Registered (with ``sex``), screened eligible and included on 2024-10-30, no cycle."""
    add_users(engine)
    with work(engine, NURSE) as ctx:
        patients.register_patient(ctx, code[:3], code, sex=sex)
        screened = patients.screen_patient(ctx, patient_file(code, sex=sex or "female"))
        assert screened.status == "eligible"
        patients.include_patient(ctx, code, dt.date(2024, 10, 28), dt.date(2024, 10, 30))
        if sex is None:  # screened as the example woman, postmenopausal
            not_childbearing(ctx, code)
    return code


def _randomized(engine: Engine, code: str, day: dt.date = dt.date(2025, 3, 5)) -> None:
    with work(engine, STAT) as ctx:
        if rnd.get_settings(ctx.session) is None:
            rnd.configure(ctx, "minimization")
    moment = dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC)
    with work(engine, INVESTIGATOR, trial=at(moment)) as ctx:
        rnd.randomize(ctx, code, f"r-{code}")


CONMED = {
    "drug_name": "Octreotide LAR",
    "atc_code": "H01CB02",
    "indication": "carcinoid syndrome",
    "dose": "30",
    "unit": "mg",
    "route": "intramuscular",
    "start_date": "2023-06-01",
    "ongoing": True,
}


# --- concomitant medications and medical history --------------------------------------------


def test_conmed_recorded_and_listed_with_its_fields(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    row = _ok(engine, lambda c: clinical.record_conmed(c, code, CONMED))
    with read(engine, NURSE) as ctx:
        (listed,) = clinical.conmeds(ctx, code)
    assert listed["id"] == row.id
    assert listed["atc_code"] == "H01CB02" and listed["dose"] == Decimal("30")
    assert listed["start_date"] == dt.date(2023, 6, 1)  # before the consent: a prior medication
    assert listed["ongoing"] is True and listed["stop_date"] is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"atc_code": "H01C0"}, "atc_code"),
        ({"atc_code": "1H01"}, "atc_code"),
        ({"route": "nasal"}, "route"),
        ({"dose": "0"}, "dose"),
        ({"unit": ""}, "unit"),
        ({"ongoing": False}, "stop_date"),
        ({"stop_date": "2024-01-01"}, "stop_date"),  # ongoing with a stop date
        ({"ongoing": False, "stop_date": "2023-05-31"}, "stop_date"),  # before its start
        ({"drug_name": ""}, "drug_name"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_conmed_refuses_bad_fields_naming_them(
    engine: Engine, changes: dict[str, Any], field: str
) -> None:
    (code,) = ready_patients(engine, 1)
    data = {**CONMED, **changes}
    _refused(engine, field, lambda c: clinical.record_conmed(c, code, data))


def test_conmed_dates_on_both_sides_of_today_and_of_a_death(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    today = dt.date(2025, 3, 5)
    tomorrow = {**CONMED, "start_date": "2025-03-06"}
    _refused(engine, "start_date", lambda c: clinical.record_conmed(c, code, tomorrow), today)
    same_day = {**CONMED, "start_date": "2025-03-05"}
    _ok(engine, lambda c: clinical.record_conmed(c, code, same_day), today)
    stop_same_day = {**CONMED, "ongoing": False, "start_date": "2025-03-01",
                     "stop_date": "2025-03-01"}  # fmt: skip
    _ok(engine, lambda c: clinical.record_conmed(c, code, stop_same_day), today)
    _ok(engine, lambda c: patients.record_death(c, code, dt.date(2025, 4, 1), "disease"))
    after = {**CONMED, "start_date": "2025-04-02"}
    _refused(engine, "start_date", lambda c: clinical.record_conmed(c, code, after))
    on_death = {**CONMED, "start_date": "2025-04-01"}
    _ok(engine, lambda c: clinical.record_conmed(c, code, on_death))


def test_conmed_needs_an_included_patient_of_the_actors_centre(engine: Engine) -> None:
    add_users(engine, ("C01", "C02", "C03"))
    add_account(engine, "nurse-c03", Role.RESEARCH_NURSE, ("C03",))
    (code,) = ready_patients(engine, 1)
    with pytest.raises(Exception) as info, work(engine, "nurse-c03") as ctx:
        clinical.record_conmed(ctx, code, CONMED)
    assert "not found" in str(info.value)
    with work(engine, NURSE) as ctx:
        patients.register_patient(ctx, "C01", "C01-0100")
    with pytest.raises(PreconditionFailed), work(engine, NURSE) as ctx:
        clinical.record_conmed(ctx, "C01-0100", CONMED)


def test_medical_history_recorded_and_future_start_refused(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    item = {"condition": "Type 2 diabetes", "start_date": "2015-04-01", "ongoing": True}
    _ok(engine, lambda c: clinical.record_medical_history(c, code, item))
    future = {**item, "start_date": "2025-03-06"}
    today = dt.date(2025, 3, 5)
    _refused(
        engine, "start_date", lambda c: clinical.record_medical_history(c, code, future), today
    )
    with read(engine, NURSE) as ctx:
        (row,) = clinical.medical_history(ctx, code)
    assert row["condition"] == "Type 2 diabetes" and row["ongoing"] is True
    _refused(engine, "condition", lambda c: clinical.record_medical_history(c, code, {}))


# --- protocol deviations --------------------------------------------------------------------

DEVIATION = {
    "category": "visit_schedule",
    "severity": "major",
    "deviation_date": "2025-02-01",
    "description": "Tumour assessment done 5 weeks outside its window",
    "corrective_action": "Site retrained on the schedule",
}


def test_deviation_log_kept_by_site_and_monitor_read_by_statistician(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    add_account(engine, MONITOR, Role.MONITOR, ("C01", "C02"))
    _ok(engine, lambda c: clinical.record_deviation(c, code, DEVIATION))
    minor = {**DEVIATION, "severity": "minor", "corrective_action": None}
    _ok(engine, lambda c: clinical.record_deviation(c, code, minor), who=MONITOR)
    with read(engine, STAT) as ctx:
        rows = clinical.deviations(ctx, code)
    assert [r["severity"] for r in rows] == ["major", "minor"]
    bad = {**DEVIATION, "severity": "critical"}
    _refused(engine, "severity", lambda c: clinical.record_deviation(c, code, bad))
    future = {**DEVIATION, "deviation_date": "2025-03-06"}
    today = dt.date(2025, 3, 5)
    _refused(engine, "deviation_date", lambda c: clinical.record_deviation(c, code, future), today)
    with pytest.raises(PermissionDenied), work(engine, STAT) as ctx:
        clinical.record_deviation(ctx, code, DEVIATION)


# --- withdrawals ----------------------------------------------------------------------------


def test_withdrawal_from_treatment_stops_cycles_from_its_day(engine: Engine) -> None:
    code = _included(engine, "C01-0001")
    _ok(engine, lambda c: treatment.record_cycle(c, code, 1, dt.date(2024, 11, 4),
                                                  Decimal("7.4"), "L1"))  # fmt: skip
    early = {"kind": "treatment", "withdrawal_date": "2024-11-03"}
    err = _refused(engine, "withdrawal_date", lambda c: patients.record_withdrawal(c, code, early))
    assert "cycle 1" in err.message
    data = {"kind": "treatment", "withdrawal_date": "2024-12-01", "details": "fatigue"}
    _ok(engine, lambda c: patients.record_withdrawal(c, code, data))
    with pytest.raises(Conflict), work(engine, NURSE, today=LATER) as ctx:
        patients.record_withdrawal(ctx, code, data)
    err = _refused(
        engine,
        "administered_on",
        lambda c: treatment.record_cycle(c, code, 2, dt.date(2024, 12, 1), Decimal("7.4"), "L2"),
    )
    assert "withdrawal from treatment" in err.message
    _ok(engine, lambda c: treatment.record_cycle(c, code, 2, dt.date(2024, 11, 30),
                                                  Decimal("7.4"), "L2"))  # fmt: skip
    # follow-up goes on: a lab after the withdrawal from treatment is accepted
    lab = {"test": "platelets", "value": "150000", "unit": "/mm3", "lln": "150000",
           "date": "2025-01-10"}  # fmt: skip
    _ok(engine, lambda c: safety.record_lab(c, code, lab))


def test_withdrawal_from_follow_up_stops_visits_and_drops_planned_ones(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    _randomized(engine, code)
    with read(engine, NURSE, today=LATER) as ctx:
        before = {s.visit.code for s in treatment.visit_schedule(
            ctx.session, patients.find_patient(ctx.session, code), LATER, ctx.protocol)}  # fmt: skip
    data = {"kind": "follow_up", "withdrawal_date": "2025-05-01", "decided_by": "patient"}
    _ok(engine, lambda c: patients.record_withdrawal(c, code, data))
    _ok(engine, lambda c: treatment.record_visit(c, code, "TA-W08", dt.date(2025, 5, 1)))
    err = _refused(
        engine,
        "visit_date",
        lambda c: treatment.record_visit(c, code, "TA-W16", dt.date(2025, 5, 2)),
    )
    assert "withdrawal from follow-up" in err.message
    with read(engine, NURSE, today=LATER) as ctx:
        patient = patients.find_patient(ctx.session, code)
        after = treatment.visit_schedule(ctx.session, patient, LATER, ctx.protocol)
    kept = {s.visit.code for s in after}
    assert "TA-W08" in kept  # done: kept
    assert all(s.visit.window_start <= dt.date(2025, 5, 1) or s.actual_date for s in after)
    assert len(kept) < len(before)


def test_objection_stops_collection_and_keeps_what_was_collected(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    lab = {"test": "platelets", "value": "150000", "unit": "/mm3", "lln": "150000",
           "date": "2025-03-01"}  # fmt: skip
    _ok(engine, lambda c: safety.record_lab(c, code, lab))
    early = {"kind": "objection", "withdrawal_date": "2025-02-28"}
    _refused(engine, "withdrawal_date", lambda c: patients.record_withdrawal(c, code, early))
    data = {"kind": "objection", "withdrawal_date": "2025-03-02"}
    _ok(engine, lambda c: patients.record_withdrawal(c, code, data))
    later_lab = {**lab, "date": "2025-03-03"}
    _refused(engine, "lab.date", lambda c: safety.record_lab(c, code, later_lab))
    on_day = {**lab, "date": "2025-03-02"}
    _ok(engine, lambda c: safety.record_lab(c, code, on_day))
    after = {**CONMED, "start_date": "2025-03-03"}
    _refused(engine, "start_date", lambda c: clinical.record_conmed(c, code, after))
    _refused(
        engine,
        "death_date",
        lambda c: patients.record_death(c, code, dt.date(2025, 4, 1), "disease"),
    )
    with read(engine, NURSE, today=LATER) as ctx:
        kept = patients.disposition(ctx, code)
        timeline_labs = [r for r in ctx.session.execute(  # what was collected stays
            __import__("sqlalchemy").text("SELECT count(*) FROM lab_results"))]  # fmt: skip
    assert [w["kind"] for w in kept.withdrawals] == ["objection"]
    assert timeline_labs[0][0] == 2
    _ok(engine, lambda c: patients.record_end_of_study(c, code, dt.date(2025, 3, 10), "objection"))


def test_withdrawal_kind_and_inclusion_are_checked(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    bad = {"kind": "everything", "withdrawal_date": "2025-03-01"}
    _refused(engine, "kind", lambda c: patients.record_withdrawal(c, code, bad))
    missing = {"kind": "treatment"}
    _refused(engine, "withdrawal_date", lambda c: patients.record_withdrawal(c, code, missing))


# --- death and end of study -----------------------------------------------------------------


def test_death_other_cause_needs_words_and_end_of_study_follows_the_death(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    day = dt.date(2025, 4, 1)
    _refused(engine, "details", lambda c: patients.record_death(c, code, day, "other"))
    _refused(engine, "cause", lambda c: patients.record_death(c, code, day, "old age"))
    with pytest.raises(PreconditionFailed) as info, work(engine, NURSE, today=LATER) as ctx:
        patients.record_end_of_study(ctx, code, day, "death")
    assert info.value.field == "reason"
    _ok(engine, lambda c: patients.record_death(c, code, day, "other", "road accident"))
    _refused(
        engine,
        "end_date",
        lambda c: patients.record_end_of_study(c, code, dt.date(2025, 3, 31), "death"),
    )
    _ok(engine, lambda c: patients.record_end_of_study(c, code, day, "death"))
    with read(engine, NURSE, today=LATER) as ctx:
        d = patients.disposition(ctx, code)
    assert d.death == {"death_date": day, "cause": "other", "details": "road accident"}
    assert d.end_of_study is not None and d.end_of_study["reason"] == "death"


def test_nothing_clinical_after_the_end_of_study_but_a_death(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    _ok(engine, lambda c: patients.record_end_of_study(c, code, dt.date(2025, 3, 1),
                                                        "lost_to_follow_up"))  # fmt: skip
    lab = {"test": "platelets", "value": "150000", "unit": "/mm3", "lln": "150000",
           "date": "2025-03-02"}  # fmt: skip
    _refused(engine, "lab.date", lambda c: safety.record_lab(c, code, lab))
    _ok(engine, lambda c: safety.record_lab(c, code, {**lab, "date": "2025-03-01"}))
    _ok(engine, lambda c: patients.record_death(c, code, dt.date(2025, 5, 1), "disease"))


# --- pregnancy tests ------------------------------------------------------------------------


def _cycle(code: str, day: dt.date) -> Any:
    return lambda c: treatment.record_cycle(c, code, 1, day, Decimal("7.4"), "L1")


def test_cycle_of_a_woman_needs_her_childbearing_status(engine: Engine) -> None:
    code = _included(engine, "C01-0001", sex="female")
    with pytest.raises(PreconditionFailed) as info, work(engine, NURSE) as ctx:
        _cycle(code, dt.date(2024, 11, 4))(ctx)
    assert info.value.field == "childbearing_potential"
    status = {"childbearing_potential": False, "reason": "postmenopausal",
              "assessed_on": "2024-10-30"}  # fmt: skip
    _ok(engine, lambda c: clinical.record_childbearing(c, code, status))
    _ok(engine, _cycle(code, dt.date(2024, 11, 4)))  # not of childbearing potential: no test


def test_pregnancy_test_window_before_a_cycle_on_both_sides(engine: Engine) -> None:
    code = _included(engine, "C01-0001", sex="female")
    status = {"childbearing_potential": True, "assessed_on": "2024-10-30"}
    _ok(engine, lambda c: clinical.record_childbearing(c, code, status))
    cycle_day = dt.date(2024, 11, 8)
    # 8 days before the cycle: outside the protocol's 7-day window
    test = {"test_date": "2024-10-31", "method": "serum", "result": "negative"}
    _ok(engine, lambda c: clinical.record_pregnancy_test(c, code, test))
    with pytest.raises(PreconditionFailed) as info, work(engine, NURSE) as ctx:
        _cycle(code, cycle_day)(ctx)
    assert info.value.field == "pregnancy_test"
    assert "7 days" in info.value.message
    # 7 days before: inside
    _ok(engine, lambda c: clinical.record_pregnancy_test(c, code, {**test,
                                                                    "test_date": "2024-11-01"}))  # fmt: skip
    _ok(engine, _cycle(code, cycle_day))
    with read(engine, NURSE) as ctx:
        assert len(clinical.pregnancy_tests(ctx, code)) == 2


def test_positive_pregnancy_test_refuses_the_cycle(engine: Engine) -> None:
    code = _included(engine, "C01-0001", sex="female")
    status = {"childbearing_potential": True, "assessed_on": "2024-10-30"}
    _ok(engine, lambda c: clinical.record_childbearing(c, code, status))
    for day, result in (("2024-11-01", "negative"), ("2024-11-03", "positive")):
        test = {"test_date": day, "method": "urine", "result": result}
        _ok(engine, lambda c, t=test: clinical.record_pregnancy_test(c, code, t))
    with pytest.raises(PreconditionFailed) as info, work(engine, NURSE) as ctx:
        _cycle(code, dt.date(2024, 11, 4))(ctx)
    assert "positive" in info.value.message


def test_pregnancy_forms_refused_for_a_man_and_bad_values(engine: Engine) -> None:
    code = _included(engine, "C01-0001", sex="male")
    status = {"childbearing_potential": True, "assessed_on": "2024-10-30"}
    _refused(engine, "childbearing_potential",
             lambda c: clinical.record_childbearing(c, code, status))  # fmt: skip
    test = {"test_date": "2024-11-01", "method": "urine", "result": "negative"}
    _refused(engine, "test_date", lambda c: clinical.record_pregnancy_test(c, code, test))
    _ok(engine, _cycle(code, dt.date(2024, 11, 4)))  # a man: no test needed
    woman = _included(engine, "C01-0002", sex="female")
    no_reason = {"childbearing_potential": False, "assessed_on": "2024-10-30"}
    _refused(engine, "reason", lambda c: clinical.record_childbearing(c, woman, no_reason))
    bad = {**test, "result": "maybe"}
    _refused(engine, "result", lambda c: clinical.record_pregnancy_test(c, woman, bad))


def test_the_screened_sex_counts_when_the_registration_gave_none(engine: Engine) -> None:
    """A woman registered without her sex (it is optional there) and screened as a woman gets
    no cycle before her childbearing potential is recorded, nor without a negative pregnancy
    test if she may bear children: leaving the sex out at registration skips no rule."""
    add_users(engine)
    code = "C01-0001"
    with work(engine, NURSE) as ctx:
        patients.register_patient(ctx, "C01", code)  # no sex at registration
        assert patients.screen_patient(ctx, patient_file(code, sex="female")).status == "eligible"
        patients.include_patient(ctx, code, dt.date(2024, 10, 28), dt.date(2024, 10, 30))
    with pytest.raises(PreconditionFailed) as info, work(engine, NURSE) as ctx:
        _cycle(code, dt.date(2024, 11, 4))(ctx)
    assert info.value.field == "childbearing_potential"
    status = {"childbearing_potential": True, "assessed_on": "2024-10-30"}
    _ok(engine, lambda c: clinical.record_childbearing(c, code, status))
    with pytest.raises(PreconditionFailed) as info, work(engine, NURSE) as ctx:
        _cycle(code, dt.date(2024, 11, 4))(ctx)
    assert info.value.field == "pregnancy_test"
