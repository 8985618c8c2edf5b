"""Corrections of saved data through the domain services: each edit rule on both sides (a valid
edit is saved and audited with the old value and the reason; no reason, a bad value, a field
that may not change or an edit that changes nothing is refused naming the field, and nothing
is written)."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from storekit import INVESTIGATOR, NURSE, STAT, add_users, at, read, ready_patients, work

from reluth.db.audit import AuditLog, verify
from reluth.db.session import read_session
from reluth.errors import NotFound, ValidationError
from reluth.patients import service as patients
from reluth.protocol.definition import load_protocol
from reluth.randomization import service as rnd
from reluth.safety import records
from reluth.safety import service as safety
from reluth.safety.models import AdverseEvent, LabResult
from reluth.treatment import service as treatment
from reluth.treatment.models import Administration, Visit

TODAY = dt.date(2025, 6, 30)
REASON = "transcription error, source document p. 4"


@pytest.fixture
def codes(engine: Engine) -> list[str]:
    return ready_patients(engine, 2, centres=("C01",))


def _edit(engine: Engine, fn: Callable[..., Any], *args: Any, reason: str | None = REASON) -> Any:
    with work(engine, NURSE, today=TODAY, reason=reason) as ctx:
        return fn(ctx, *args)


def _audit_count(engine: Engine) -> int:
    with read_session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(AuditLog)) or 0)


def _updates(engine: Engine, table: str, record_id: int) -> dict[str, tuple[Any, Any, str]]:
    """field -> (old, new, reason) of the audited updates of one record."""
    with read_session(engine) as s:
        rows = s.scalars(
            select(AuditLog).where(
                AuditLog.table_name == table,
                AuditLog.record_id == str(record_id),
                AuditLog.action == "update",
            )
        )
        return {
            str(r.field): (json.loads(r.old_value or "null"), json.loads(r.new_value or "null"), r)
            for r in rows
        }


@pytest.fixture
def refused(engine: Engine) -> Iterator[Callable[..., ValidationError]]:
    """Run an edit that must be refused: returns the error, and checks nothing was written."""

    def run(fn: Callable[..., Any], *args: Any, reason: str | None = REASON) -> ValidationError:
        before = _audit_count(engine)
        with pytest.raises(ValidationError) as info:
            _edit(engine, fn, *args, reason=reason)
        assert _audit_count(engine) == before  # no partial write
        return info.value

    yield run


# --- laboratory results ------------------------------------------------------------------


def _lab(engine: Engine, code: str, **raw: Any) -> int:
    data = {"test": "platelets", "value": "72000", "unit": "/mm3", "lln": "150000"}
    data["date"] = "2025-04-07"
    data.update(raw)
    with work(engine, NURSE, today=TODAY) as ctx:
        return safety.record_lab(ctx, code, data).id


def _lab_row(engine: Engine, lab_id: int) -> LabResult:
    with read_session(engine) as s:
        row = s.get(LabResult, lab_id)
        assert row is not None
        return row


def test_lab_value_correction_is_regraded_and_audited_with_old_value(
    engine: Engine, codes: list[str]
) -> None:
    lab_id = _lab(engine, codes[0])
    assert _lab_row(engine, lab_id).ctcae_grade == 2  # 72 x10^9/L: < 75
    _edit(engine, safety.edit_lab, codes[0], lab_id, {"value": "45000"})
    row = _lab_row(engine, lab_id)
    assert (row.value, row.value_canonical, row.ctcae_grade) == (45000, 45, 3)  # < 50: grade 3
    changes = _updates(engine, "lab_results", lab_id)
    assert Decimal(changes["value"][0]) == 72000 and Decimal(changes["value"][1]) == 45000
    assert (changes["ctcae_grade"][0], changes["ctcae_grade"][1]) == (2, 3)
    assert changes["value"][2].reason == REASON and changes["value"][2].username == "nurse1"
    assert set(changes) == {"value", "value_canonical", "ctcae_grade"}
    with read_session(engine) as s:
        assert verify(s.connection()).ok


def test_lab_date_and_uln_corrections(engine: Engine, codes: list[str]) -> None:
    lab_id = _lab(
        engine, codes[0], test="creatinine", value="88", unit="µmol/L", uln="95", lln="60"
    )
    _edit(engine, safety.edit_lab, codes[0], lab_id, {"date": "2025-04-08", "uln": "80"})
    row = _lab_row(engine, lab_id)
    assert row.sample_date == dt.date(2025, 4, 8) and row.uln == 80
    assert row.ctcae_grade == 1  # 88 > ULN 80 (was 0 against 95)
    assert set(_updates(engine, "lab_results", lab_id)) == {"sample_date", "uln", "ctcae_grade"}


def test_lab_grade_needing_the_lower_limit_uses_the_stored_one_or_asks_for_it(
    engine: Engine, codes: list[str], refused: Callable[..., ValidationError]
) -> None:
    """The LLN typed with the value is stored and re-grades a correction (issue 17); a result
    entered without one asks for it when the grade depends on it."""
    lab_id = _lab(engine, codes[0])  # entered with its LLN, 150 000 /mm3
    _edit(engine, safety.edit_lab, codes[0], lab_id, {"value": "140000"})
    assert _lab_row(engine, lab_id).ctcae_grade == 1  # < LLN: grade 1
    bare = _lab(engine, codes[1], lln=None)
    err = refused(safety.edit_lab, codes[1], bare, {"value": "140000"})
    assert err.field == "platelets.lln"  # the LLN decides grade 1 and none was given
    _edit(engine, safety.edit_lab, codes[1], bare, {"value": "140000", "lln": "150000"})
    assert _lab_row(engine, bare).ctcae_grade == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"value": "many"}, "lab.value"),
        ({"value": "-3"}, "lab.value"),
        ({"date": "2025-07-01"}, "lab.date"),  # after TODAY
        ({"date": "7 April 2025"}, "lab.date"),  # ISO or dd/mm/yyyy only
        ({"date": ""}, "lab.date"),
        ({"uln": "x"}, "uln"),
        ({"test": "alt"}, "test"),  # not editable: enter a new result
        ({"unit": "10^9/L"}, "unit"),
        ({"value": "72000"}, "edit"),  # nothing changes
    ],
)
def test_lab_correction_refused_naming_the_field(
    engine: Engine,
    codes: list[str],
    refused: Callable[..., ValidationError],
    changes: dict[str, str],
    field: str,
) -> None:
    lab_id = _lab(engine, codes[0])
    assert refused(safety.edit_lab, codes[0], lab_id, changes).field == field
    assert _lab_row(engine, lab_id).value == 72000


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_lab_correction_without_reason_is_refused(
    engine: Engine, codes: list[str], refused: Callable[..., ValidationError], reason: str | None
) -> None:
    lab_id = _lab(engine, codes[0])
    err = refused(safety.edit_lab, codes[0], lab_id, {"value": "45000"}, reason=reason)
    assert err.field == "reason" and "reason is required" in err.message
    assert _lab_row(engine, lab_id).value == 72000


def test_lab_of_another_patient_is_not_found(engine: Engine, codes: list[str]) -> None:
    lab_id = _lab(engine, codes[0])
    with pytest.raises(NotFound):
        _edit(engine, safety.edit_lab, codes[1], lab_id, {"value": "1"})


def test_value_only_correction_keeps_date_and_regrades(engine: Engine, codes: list[str]) -> None:
    lab_id = _lab(engine, codes[0])
    _edit(engine, safety.edit_lab, codes[0], lab_id, {"value": "30000"})
    row = _lab_row(engine, lab_id)
    assert (row.ctcae_grade, row.sample_date) == (3, dt.date(2025, 4, 7))


def test_preview_of_a_correction_writes_nothing(engine: Engine, codes: list[str]) -> None:
    lab_id = _lab(engine, codes[0])
    before = _audit_count(engine)
    with read(engine, NURSE, today=TODAY) as ctx:
        graded = safety.preview_lab_edit(ctx, codes[0], lab_id, {"value": "20000"})
    assert graded.grade == 4 and _audit_count(engine) == before


# --- adverse events ----------------------------------------------------------------------

AE = {
    "term": "Nausea",
    "grade": 2,
    "serious": False,
    "relatedness": "probable",
    "outcome": "recovering",
    "onset_date": "2025-04-08",
}


def _ae(engine: Engine, code: str, **changes: Any) -> int:
    with work(engine, NURSE, today=TODAY) as ctx:
        data = {**AE, "patient_id": code, **changes}
        return records.record_adverse_event(ctx, data).id


def _ae_row(engine: Engine, ae_id: int) -> AdverseEvent:
    with read_session(engine) as s:
        row = s.get(AdverseEvent, ae_id)
        assert row is not None
        return row


def test_adverse_event_made_serious_with_awareness_date_is_audited(
    engine: Engine, codes: list[str]
) -> None:
    ae_id = _ae(engine, codes[0])
    changes = {"grade": 3, "serious": True, "awareness_date": "2025-04-09", "term": " Vomiting "}
    _edit(engine, safety.edit_adverse_event, codes[0], ae_id, changes)
    row = _ae_row(engine, ae_id)
    assert (row.term, row.grade, row.serious, row.awareness_date) == (
        "Vomiting",
        3,
        True,
        dt.date(2025, 4, 9),
    )
    audit = _updates(engine, "adverse_events", ae_id)
    assert {k: v[:2] for k, v in audit.items()} == {
        "term": ("Nausea", "Vomiting"),
        "grade": (2, 3),
        "serious": (False, True),
        "awareness_date": (None, "2025-04-09"),
        # a new term is coded again from the CTCAE v5.0 dictionary
        "meddra_term": ("Nausea", "Vomiting"),
        "meddra_llt_code": ("10028813", "10047700"),
    }
    assert {v[2].reason for v in audit.values()} == {REASON}


def test_adverse_event_fatal_outcome_with_grade_5_and_clearing_a_date(
    engine: Engine, codes: list[str]
) -> None:
    ae_id = _ae(engine, codes[0], resolution_date="2025-04-20", outcome="recovered")
    changes = {"grade": 5, "outcome": "fatal", "resolution_date": None}
    _edit(engine, safety.edit_adverse_event, codes[0], ae_id, changes)
    row = _ae_row(engine, ae_id)
    assert (row.grade, row.outcome, row.resolution_date) == (5, "fatal", None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"grade": 5}, "adverse_event.outcome"),  # grade 5 only if fatal
        ({"outcome": "fatal"}, "adverse_event.outcome"),
        ({"serious": True}, "adverse_event.awareness_date"),  # the SAE clock needs its start
        ({"serious": True, "awareness_date": "2025-04-01"}, "adverse_event.awareness_date"),
        ({"resolution_date": "2025-04-01"}, "adverse_event.resolution_date"),  # before onset
        ({"onset_date": "2025-07-02"}, "adverse_event.onset_date"),  # future
        ({"grade": 6}, "adverse_event.grade"),
        ({"grade": "two"}, "adverse_event.grade"),  # digits as text are the number (pages)
        ({"grade": "2.5"}, "adverse_event.grade"),
        ({"relatedness": "maybe"}, "adverse_event.relatedness"),
        ({"term": ""}, "adverse_event.term"),
        ({"term": "x" * 121}, "adverse_event.term"),
        ({"serious": "yes"}, "adverse_event.serious"),
        ({"patient_id": "C01-0002"}, "patient_id"),  # not editable
    ],
)
def test_adverse_event_correction_refused_naming_the_field(
    engine: Engine,
    codes: list[str],
    refused: Callable[..., ValidationError],
    changes: dict[str, Any],
    field: str,
) -> None:
    ae_id = _ae(engine, codes[0])
    # a valid change travels with the bad one: neither may be written
    bundle = {"description": "x", **changes}
    assert refused(safety.edit_adverse_event, codes[0], ae_id, bundle).field == field
    row = _ae_row(engine, ae_id)
    assert (row.grade, row.outcome, row.serious, row.description) == (2, "recovering", False, None)


def test_adverse_event_nothing_changed_is_refused(
    engine: Engine, codes: list[str], refused: Callable[..., ValidationError]
) -> None:
    ae_id = _ae(engine, codes[0])
    unchanged = {"grade": 2, "term": "Nausea", "serious": False}
    err = refused(safety.edit_adverse_event, codes[0], ae_id, unchanged)
    assert err.field == "edit" and "nothing to change" in err.message


def test_adverse_event_correction_needs_a_reason(
    engine: Engine, codes: list[str], refused: Callable[..., ValidationError]
) -> None:
    ae_id = _ae(engine, codes[0])
    err = refused(safety.edit_adverse_event, codes[0], ae_id, {"grade": 3}, reason=" ")
    assert err.field == "reason"
    with pytest.raises(NotFound):
        _edit(engine, safety.edit_adverse_event, codes[1], ae_id, {"grade": 3})


def test_serious_event_entered_without_awareness_date_is_refused(
    engine: Engine, codes: list[str]
) -> None:
    """The same SAE rule at entry: an SAE without its awareness date would have no clock."""
    with pytest.raises(ValidationError, match="awareness_date"):
        _ae(engine, codes[0], serious=True)


# --- Lutathera administrations -----------------------------------------------------------


def _cycle(engine: Engine, code: str, n: int) -> Administration:
    with read(engine, NURSE, today=TODAY) as ctx:
        return treatment.get_cycle(ctx, code, n)


def test_cycle_correction_is_audited(engine: Engine, codes: list[str]) -> None:
    # ready_patients: cycle 1 on 2024-11-04, cycle 2 on 2024-12-30, 7.4 GBq, lots L1 and L2
    cycle_id = _cycle(engine, codes[0], 1).id
    changes = {"administered_on": "2024-11-05", "activity_gbq": "7.385", "lot": " L1-B "}
    _edit(engine, treatment.edit_cycle, codes[0], 1, changes)
    row = _cycle(engine, codes[0], 1)
    assert (row.administered_on, row.activity_gbq, row.lot) == (
        dt.date(2024, 11, 5),
        Decimal("7.385"),
        "L1-B",
    )
    audit = _updates(engine, "administrations", cycle_id)
    assert audit["lot"][:2] == ("L1", "L1-B") and audit["lot"][2].reason == REASON
    assert audit["administered_on"][:2] == ("2024-11-04", "2024-11-05")
    assert Decimal(audit["activity_gbq"][0]) == Decimal("7.4")


@pytest.mark.parametrize(
    ("cycle", "changes", "field"),
    [
        (1, {"administered_on": "2024-12-30"}, "administered_on"),  # not before cycle 2
        (2, {"administered_on": "2024-11-04"}, "administered_on"),  # not after cycle 1
        (2, {"administered_on": "2025-07-01"}, "administered_on"),  # future
        (2, {"administered_on": "soon"}, "administered_on"),
        (1, {"activity_gbq": "12"}, "activity_gbq"),
        (1, {"activity_gbq": "7.4001"}, "activity_gbq"),  # the column keeps 3 decimals
        (1, {"activity_gbq": "NaN"}, "activity_gbq"),
        (1, {"activity_gbq": "a lot"}, "activity_gbq"),
        (1, {"lot": "  "}, "lot"),
        (1, {"lot": "L" * 41}, "lot"),
        (1, {"cycle": 3}, "cycle"),  # not editable
        (1, {"lot": "L1"}, "edit"),  # nothing changes
    ],
)
def test_cycle_correction_refused_naming_the_field(
    engine: Engine,
    codes: list[str],
    refused: Callable[..., ValidationError],
    cycle: int,
    changes: dict[str, Any],
    field: str,
) -> None:
    bundle = {"lot": "NEW", **changes} if field != "edit" else changes
    assert refused(treatment.edit_cycle, codes[0], cycle, bundle).field == field
    assert _cycle(engine, codes[0], cycle).lot == f"L{cycle}"


def test_cycle_correction_needs_a_reason_and_a_recorded_cycle(
    engine: Engine, codes: list[str], refused: Callable[..., ValidationError]
) -> None:
    err = refused(treatment.edit_cycle, codes[0], 1, {"lot": "X"}, reason=None)
    assert err.field == "reason"
    with pytest.raises(NotFound, match="cycle 3"):
        _edit(engine, treatment.edit_cycle, codes[0], 3, {"lot": "X"})


# --- visits ------------------------------------------------------------------------------


@pytest.fixture
def randomized(engine: Engine, codes: list[str]) -> str:
    """The first patient, randomized on 2025-03-10 to the experimental arm by the service
    (minimization; the first patient is a tie broken by the draw of the given generator)."""
    add_users(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "minimization")
    moment = dt.datetime(2025, 3, 10, 9, tzinfo=dt.UTC)
    with work(engine, INVESTIGATOR, trial=at(moment)) as ctx:
        result = rnd.randomize(
            ctx,
            codes[0],
            "r1",
            rng=random.Random(1),  # first draw 0.13: experimental
        )
    assert result.arm == "experimental"
    return codes[0]


def _visit_row(engine: Engine, code: str, visit_code: str) -> Visit:
    with read_session(engine) as s:
        pid = patients.find_patient(s, code).id
        row = s.scalars(
            select(Visit).where(Visit.patient_id == pid, Visit.visit_code == visit_code)
        ).one()
        return row


def test_visit_date_correction_gives_the_new_window_status(engine: Engine, randomized: str) -> None:
    with work(engine, NURSE, today=TODAY) as ctx:
        _row, status = treatment.record_visit(ctx, randomized, "TA-W08", dt.date(2025, 5, 20))
    assert status.status == "late"  # day 71, window day 56 +/- 7
    visit_id = _visit_row(engine, randomized, "TA-W08").id
    _row, status = _edit(
        engine, treatment.edit_visit, randomized, "TA-W08", {"visit_date": "2025-05-06"}
    )
    assert (status.status, status.days_from_target) == ("in_window", 1)
    audit = _updates(engine, "visits", visit_id)
    assert audit["visit_date"][:2] == ("2025-05-20", "2025-05-06")
    assert audit["visit_date"][2].reason == REASON
    with read_session(engine) as s:
        schedule = {
            v.visit.code: v
            for v in treatment.visit_schedule(
                s, patients.find_patient(s, randomized), TODAY, load_protocol()
            )
        }
    assert schedule["TA-W08"].status == "in_window" and schedule["C3"].status == "missed"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"visit_date": "2025-03-09"}, "visit_date"),  # before randomization
        ({"visit_date": "2025-07-01"}, "visit_date"),  # future
        ({"visit_date": "May 6"}, "visit_date"),
        ({"visit_code": "TA-W16"}, "visit_code"),  # not editable
        ({"visit_date": "2025-05-05"}, "edit"),  # nothing changes
    ],
)
def test_visit_correction_refused_naming_the_field(
    engine: Engine,
    randomized: str,
    refused: Callable[..., ValidationError],
    changes: dict[str, str],
    field: str,
) -> None:
    with work(engine, NURSE, today=TODAY) as ctx:
        treatment.record_visit(ctx, randomized, "TA-W08", dt.date(2025, 5, 5))
    assert refused(treatment.edit_visit, randomized, "TA-W08", changes).field == field
    assert _visit_row(engine, randomized, "TA-W08").visit_date == dt.date(2025, 5, 5)


def test_visit_correction_needs_a_reason_and_a_recorded_visit(
    engine: Engine, randomized: str, refused: Callable[..., ValidationError]
) -> None:
    with work(engine, NURSE, today=TODAY) as ctx:
        treatment.record_visit(ctx, randomized, "TA-W08", dt.date(2025, 5, 5))
    changes = {"visit_date": "2025-05-06"}
    err = refused(treatment.edit_visit, randomized, "TA-W08", changes, reason="")
    assert err.field == "reason"
    with pytest.raises(NotFound, match="TA-W16"):
        _edit(engine, treatment.edit_visit, randomized, "TA-W16", changes)


def test_treatment_visit_codes_are_the_cycle_visits() -> None:
    assert treatment.treatment_visit_codes(load_protocol()) == frozenset({"C3", "C4"})
