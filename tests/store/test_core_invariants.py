"""One set of invariants in the domain, on every path: the trial's order of dates, nothing after
death, the screening a decision rests on, registration and screening agreeing, the time-bound
criterion re-checked at randomization, values the database can store — each on both sides of
its boundary, through the services every adapter calls. And race-free patient numbering."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine
from storekit import (
    INVESTIGATOR,
    NURSE,
    STAT,
    add_users,
    at,
    patient_file,
    ready_patients,
    work,
)

from reluth.db.engine import make_engine
from reluth.errors import PreconditionFailed, ValidationError
from reluth.patients import service as patients
from reluth.randomization import service as rnd
from reluth.safety import service as safety
from reluth.treatment import service as treatment

LATER = dt.date(2025, 12, 1)  # "today" for entries after randomization


def _randomized(engine: Engine, code: str, day: dt.date = dt.date(2025, 3, 5)) -> None:
    with work(engine, STAT) as ctx:
        if rnd.get_settings(ctx.session) is None:
            rnd.configure(ctx, "minimization")
    moment = dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC)
    with work(engine, INVESTIGATOR, trial=at(moment)) as ctx:
        rnd.randomize(ctx, code, f"r-{code}")


def _refused(engine: Engine, field: str, fn: Any, today: dt.date = LATER) -> ValidationError:
    with pytest.raises(ValidationError) as info, work(engine, NURSE, today=today) as ctx:
        fn(ctx)
    assert info.value.field == field, info.value.message
    return info.value


# --- clinical dates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "ok"),
    [
        (dt.date(1899, 12, 31), False),
        (dt.date(1, 1, 1), False),
        (dt.date(2025, 4, 7), True),
        (LATER, True),
        (LATER + dt.timedelta(days=1), False),
    ],
)
def test_a_lab_date_is_between_1900_and_today_and_after_consent(
    engine: Engine, day: dt.date, ok: bool
) -> None:
    (code,) = ready_patients(engine, 1)
    raw = {"test": "platelets", "value": "150000", "unit": "/mm3", "lln": "150000",
           "date": day.isoformat()}  # fmt: skip
    if ok:
        with work(engine, NURSE, today=LATER) as ctx:
            safety.record_lab(ctx, code, raw)
    else:
        _refused(engine, "lab.date", lambda c: safety.record_lab(c, code, raw))


def test_nothing_before_consent(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)  # consent 2024-10-28
    raw = {"test": "platelets", "value": "150000", "unit": "/mm3", "lln": "150000",
           "date": "2024-10-27"}  # fmt: skip
    err = _refused(engine, "lab.date", lambda c: safety.record_lab(c, code, raw))
    assert "consent" in err.message
    raw["date"] = "2024-10-28"
    with work(engine, NURSE, today=LATER) as ctx:
        safety.record_lab(ctx, code, raw)


def test_cycles_follow_inclusion_and_randomization(engine: Engine) -> None:
    """consent <= inclusion <= cycle 1 < cycle 2 < pre-randomization <= randomization < cycle 3."""
    (code,) = ready_patients(engine, 1, assessed=False)  # cycles 2024-11-04 and 2024-12-30
    # the assessment must follow cycle 2 (same day: refused; the day after: accepted)
    _refused(
        engine,
        "assessment_date",
        lambda c: patients.record_pre_randomization(c, code, dt.date(2024, 12, 30), False, "SD"),
    )
    with work(engine, NURSE) as ctx:
        patients.record_pre_randomization(ctx, code, dt.date(2024, 12, 31), False, "SD")
    # cycle 3 before randomization: refused, whatever the date (it is the arm's cycle)
    with pytest.raises(PreconditionFailed, match="experimental"), work(engine, NURSE) as ctx:
        treatment.record_cycle(ctx, code, 3, dt.date(2025, 1, 2), Decimal("7.4"), "L3")


def test_an_inclusion_date_before_the_first_cycle(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)  # inclusion 2024-10-30, cycle 1 2024-11-04
    reason = "date checked against the source"
    with work(engine, NURSE, reason=reason) as ctx:
        patients.edit_inclusion(ctx, code, {"inclusion_date": "2024-11-04"})  # the same day
    with pytest.raises(ValidationError, match="cycle 1"), work(engine, NURSE, reason=reason) as c:
        patients.edit_inclusion(c, code, {"inclusion_date": "2024-11-05"})


def test_a_cycle_dated_years_before_inclusion_is_refused(engine: Engine) -> None:
    add_users(engine)
    with work(engine, NURSE) as ctx:
        patients.register_patient(ctx, "C01", "C01-0050")
        patients.screen_patient(ctx, patient_file("C01-0050"))
        patients.include_patient(ctx, "C01-0050", dt.date(2024, 10, 28), dt.date(2024, 10, 30))
    for day, ok in ((dt.date(1, 1, 1), False), (dt.date(2019, 5, 1), False)):
        err = _refused(
            engine,
            "administered_on",
            lambda c, d=day: treatment.record_cycle(c, "C01-0050", 1, d, Decimal("7.4"), "L1"),
        )
        assert "1900" in err.message or "inclusion" in err.message
        assert not ok


def test_nothing_clinical_after_the_date_of_death(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    _randomized(engine, code)
    with work(engine, NURSE, today=LATER) as ctx:
        treatment.record_visit(ctx, code, "TA-W08", dt.date(2025, 5, 1))
    # a death before what is recorded: refused, naming what it would precede
    err = _refused(
        engine,
        "death_date",
        lambda c: patients.record_death(c, code, dt.date(2025, 4, 30), "disease"),
    )
    assert "visit" in err.message
    with work(engine, NURSE, today=LATER) as ctx:
        patients.record_death(ctx, code, dt.date(2025, 6, 1), "disease")
    # after death: visits, labs, adverse events refused; the end of study accepted
    _refused(
        engine,
        "visit_date",
        lambda c: treatment.record_visit(c, code, "TA-W16", dt.date(2025, 7, 1)),
    )
    raw = {"test": "platelets", "value": "150000", "unit": "/mm3", "lln": "150000",
           "date": "2025-06-02"}  # fmt: skip
    _refused(engine, "lab.date", lambda c: safety.record_lab(c, code, raw))
    raw["date"] = "2025-06-01"  # on the day of death: accepted
    with work(engine, NURSE, today=LATER) as ctx:
        safety.record_lab(ctx, code, raw)
        patients.record_end_of_study(ctx, code, dt.date(2025, 6, 20), "death")


# --- the screening a decision rests on ------------------------------------------------------


def test_an_inclusion_cannot_rest_on_a_screening_dated_after_it(engine: Engine) -> None:
    add_users(engine)
    with work(engine, NURSE) as ctx:
        patients.register_patient(ctx, "C01", "C01-0060")
        patients.screen_patient(ctx, patient_file("C01-0060", assessment_date="2024-11-02"))
    err = _refused(
        engine,
        "inclusion_date",
        lambda c: patients.include_patient(
            c, "C01-0060", dt.date(2024, 10, 28), dt.date(2024, 11, 1)
        ),
    )
    assert "2024-11-02" in err.message
    with work(engine, NURSE) as ctx:
        patients.include_patient(ctx, "C01-0060", dt.date(2024, 10, 28), dt.date(2024, 11, 2))


def test_the_latest_screening_captured_decides_not_the_latest_dated(engine: Engine) -> None:
    """A re-screening entered later but dated earlier (a correction of an older examination)
    is the one an inclusion rests on."""
    add_users(engine)
    with work(engine, NURSE) as ctx:
        patients.register_patient(ctx, "C01", "C01-0061")
        patients.screen_patient(ctx, patient_file("C01-0061", assessment_date="2024-10-25"))
        later = patient_file("C01-0061", assessment_date="2024-10-20", ecog=3)  # captured last
        assert patients.screen_patient(ctx, later).status == "not_eligible"
    with (
        pytest.raises(PreconditionFailed, match="is not eligible at the latest screening"),
        work(engine, NURSE) as ctx,
    ):
        patients.include_patient(ctx, "C01-0061", dt.date(2024, 10, 28), dt.date(2024, 10, 30))


@pytest.mark.parametrize(
    ("sex", "age", "field"),
    [
        ("male", 63, "sex"),
        ("female", 64, "age"),
        ("female", 61, "age"),
        ("female", 62, None),
        ("female", 63, None),
    ],
)
def test_registration_and_screening_agree_on_sex_and_age(
    engine: Engine, sex: str, age: int, field: str | None
) -> None:
    """Registered female, born 1961: on 2024-10-25 she is 62 or 63."""
    add_users(engine)
    with work(engine, NURSE) as ctx:
        patients.register_patient(ctx, "C01", "C01-0070", sex="female", birth_year=1961)
    data = patient_file("C01-0070", sex=sex, age=age)
    if field is None:
        with work(engine, NURSE) as ctx:
            assert patients.screen_patient(ctx, data).status == "eligible"
    else:
        _refused(engine, field, lambda c: patients.screen_patient(c, data))


@pytest.mark.parametrize(
    ("day", "ok"), [(dt.date(2025, 5, 20), True), (dt.date(2025, 5, 21), False)]
)
def test_randomization_rechecks_the_sstr_imaging_window_on_the_day(
    engine: Engine, day: dt.date, ok: bool
) -> None:
    """I9: SSTR imaging (2025-01-20 in the example) within 4 months before randomization — the
    actual date, not the planned one of the screening."""
    (code,) = ready_patients(engine, 1)
    if ok:
        _randomized(engine, code, day)
    else:
        with pytest.raises(PreconditionFailed, match="I9"):
            _randomized(engine, code, day)


def test_birth_year_text_is_checked_by_the_service(engine: Engine) -> None:
    add_users(engine)
    for text in ("¹⁹⁶⁰", "9" * 5000, "1960.5", "-1960", True):
        _refused(
            engine,
            "birth_year",
            lambda c, t=text: patients.register_patient(c, "C01", birth_year=t),
        )
    with work(engine, NURSE) as ctx:
        assert patients.register_patient(ctx, "C01", birth_year="1960").birth_year == 1960


# --- values the database can store --------------------------------------------------------


@pytest.mark.parametrize(
    ("lot", "field"),
    [("L\x00", "lot"), ("L" * 41, "lot"), ("L\x07", "lot"), ("L-1", None)],
)
def test_text_is_checked_at_the_write_door(engine: Engine, lot: str, field: str | None) -> None:
    (code,) = ready_patients(engine, 1)
    reason = "lot read again"
    if field is None:
        with work(engine, NURSE, reason=reason) as ctx:
            treatment.edit_cycle(ctx, code, 1, {"lot": lot})
    else:
        with pytest.raises(ValidationError) as info, work(engine, NURSE, reason=reason) as ctx:
            treatment.edit_cycle(ctx, code, 1, {"lot": lot})
        assert info.value.field == field


def test_a_long_reason_is_refused_before_anything_is_written(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    with (
        pytest.raises(ValidationError, match="reason"),
        work(engine, NURSE, reason="x" * 2001) as c,
    ):
        treatment.edit_cycle(c, code, 1, {"lot": "L9"})
    with work(engine, NURSE, reason="x" * 2000) as ctx:
        treatment.edit_cycle(ctx, code, 1, {"lot": "L9"})


# --- race-free patient numbering ----------------------------------------------------------


def test_sixteen_simultaneous_registrations_get_sixteen_codes(store_url: str) -> None:
    engine = make_engine(store_url, pool_size=16, max_overflow=0)
    add_users(engine)

    def register(_: int) -> str:
        with work(engine, NURSE) as ctx:
            return patients.register_patient(ctx, "C01").patient_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(register, range(16)))
    engine.dispose()
    assert sorted(codes) == [f"C01-{n:04d}" for n in range(1, 17)]


def test_automatic_numbers_skip_codes_given_explicitly(engine: Engine) -> None:
    add_users(engine)
    with work(engine, NURSE) as ctx:
        patients.register_patient(ctx, "C01", "C01-0002")
        first = patients.register_patient(ctx, "C01").patient_code
        second = patients.register_patient(ctx, "C01").patient_code
    assert (first, second) == ("C01-0001", "C01-0003")
