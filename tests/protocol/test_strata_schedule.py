from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reluth.errors import ValidationError
from reluth.protocol.definition import load_protocol
from reluth.protocol.patient import parse_patient
from reluth.protocol.schedule import classify, classify_visits, planned_visits
from reluth.protocol.strata import all_strata, derive_strata, parse_stratum

PROTOCOL = load_protocol()

Make = Callable[..., dict[str, Any]]


@pytest.mark.parametrize(
    ("months", "level"), [(18, "ge18"), ("17.99", "lt18"), (12, "lt18"), (40, "ge18")]
)
def test_disease_control_stratum(modified: Make, months: object, level: str) -> None:
    s = derive_strata(parse_patient(modified(first_prrt__disease_control_months=months)), PROTOCOL)
    assert s.level("disease_control_first_prrt") == level


@pytest.mark.parametrize(("egfr", "level"), [("60", "ge60"), ("59.9", "lt60"), ("59.95", "ge60")])
def test_renal_stratum(modified: Make, DELETE: object, egfr: str, level: str) -> None:
    data = modified(labs__creatinine=DELETE, labs__egfr={"value": egfr, "unit": "mL/min/1.73m2"})
    assert derive_strata(parse_patient(data), PROTOCOL).level("renal_function") == level


def test_progression_and_intercurrent_strata(modified: Make) -> None:
    data = modified(
        progression={"radiological": False, "clinical": True}, history__intercurrent_treatment=True
    )
    s = derive_strata(parse_patient(data), PROTOCOL)
    assert (s.level("progression_type"), s.level("intercurrent_treatment")) == ("nonrad", "yes")
    assert s.code == "DCge18-PRnonrad-GFRge60-ITyes"
    assert parse_stratum(s.code, PROTOCOL) == s


def test_missing_stratum_input_names_the_field(modified: Make, DELETE: object) -> None:
    with pytest.raises(ValidationError, match=r"history\.intercurrent_treatment"):
        derive_strata(parse_patient(modified(history__intercurrent_treatment=DELETE)), PROTOCOL)


def test_sixteen_strata() -> None:
    codes = [s.code for s in all_strata(PROTOCOL)]
    assert len(codes) == len(set(codes)) == 16


R = dt.date(2025, 1, 6)


def test_experimental_arm_has_cycles_3_and_4_eight_weeks_apart() -> None:
    visits = {v.code: v for v in planned_visits(R, "experimental", PROTOCOL)}
    assert visits["C3"].target_date == R
    assert visits["C3"].window_end == R + dt.timedelta(days=21)
    assert (visits["C4"].target_date - visits["C3"].target_date).days == 56
    assert "7.4 GBq" in visits["C4"].label


def test_control_arm_has_no_cycles_but_same_assessments() -> None:
    control = planned_visits(R, "control", PROTOCOL)
    experimental = planned_visits(R, "experimental", PROTOCOL)
    assert not [v for v in control if v.kind == "treatment"]
    tas = [v.code for v in control if v.kind == "tumour_assessment"]
    assert tas == ["TA-W08", "TA-W16", "TA-W24"]
    assert tas == [v.code for v in experimental if v.kind == "tumour_assessment"]


def test_primary_endpoint_visit_and_follow_up_to_month_60() -> None:
    visits = planned_visits(R, "control", PROTOCOL)
    primary = [v for v in visits if v.primary_endpoint]
    assert [v.code for v in primary] == ["TA-W24"]
    assert primary[0].day == 168
    eos = next(v for v in visits if v.code == "EOS")
    assert eos is visits[-1] and eos.day == round(60 * 30.4375)
    fu = [v.code for v in visits if v.kind == "follow_up"]
    assert fu[0] == "FU-W36" and fu[-1] == "FU-M54"


def test_unknown_arm_is_refused() -> None:
    with pytest.raises(ValidationError, match="arm"):
        planned_visits(R, "placebo", PROTOCOL)


def test_window_classification_on_both_sides_of_each_edge() -> None:
    ta8 = next(v for v in planned_visits(R, "control", PROTOCOL) if v.code == "TA-W08")
    start, end = ta8.window_start, ta8.window_end
    one = dt.timedelta(days=1)
    as_of = R + dt.timedelta(days=400)
    assert classify(ta8, start, as_of).status == "in_window"
    assert classify(ta8, start - one, as_of).status == "early"
    assert classify(ta8, end, as_of).status == "in_window"
    assert classify(ta8, end + one, as_of).status == "late"
    assert classify(ta8, None, end).status == "due"
    assert classify(ta8, None, end + one).status == "missed"
    assert classify(ta8, None, start - one).status == "upcoming"
    assert classify(ta8, end, as_of).days_from_target == 7


def test_classify_visits_rejects_unknown_codes() -> None:
    plan = planned_visits(R, "control", PROTOCOL)
    with pytest.raises(ValidationError, match=r"visits\.C3"):
        classify_visits(plan, {"C3": R}, R)


def test_assumptions_are_flagged() -> None:
    p = load_protocol()
    assert "schedule.tumour_assessment" in p.assumptions()
    assert all(
        v.assumption
        for v in planned_visits(R, "control", PROTOCOL)
        if v.kind == "tumour_assessment"
    )


@given(
    day=st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2035, 12, 31)),
    arm=st.sampled_from(["experimental", "control"]),
)
def test_memoized_schedule_equals_a_fresh_computation(day: dt.date, arm: str) -> None:
    # A protocol's schedules are memoized with it; a copy of the protocol has its own memo
    # and computes afresh, so the two paths must agree visit for visit.
    shipped = load_protocol()
    fresh = planned_visits(day, arm, shipped.model_copy(deep=True))
    assert planned_visits(day, arm, PROTOCOL) == fresh
    assert planned_visits(day, arm, shipped) == fresh


def test_memoized_schedule_cannot_be_altered_by_a_caller() -> None:
    first = planned_visits(R, "experimental", PROTOCOL)
    first.clear()
    assert len(planned_visits(R, "experimental", PROTOCOL)) > 0
