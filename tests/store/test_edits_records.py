"""Corrections of the inclusion, the pre-randomization assessment, QoL questionnaires and central
reads through the domain services, each rule on both sides (see test_edits.py for the others):
a valid edit is saved and audited with the old value and the reason; no reason, a bad value, a
field that may not change or an edit that changes nothing is refused naming the field, and
nothing is written."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine
from storekit import INVESTIGATOR, NURSE, STAT, add_users, at, read, ready_patients, trial_on, work
from test_edits import REASON, TODAY, _audit_count, _edit, _updates

from reluth.auth.actor import Actor
from reluth.auth.roles import Role
from reluth.core.context import reading, writing
from reluth.db.session import read_session
from reluth.errors import NotFound, PreconditionFailed, ValidationError
from reluth.patients import service as patients
from reluth.patients import timeline
from reluth.qol import service as qol
from reluth.randomization import service as rnd
from reluth.response import service as review

REVIEWER = Actor("rev1", Role.CENTRAL_REVIEWER)


@pytest.fixture
def code(engine: Engine) -> str:
    """Included 2024-10-30 (consent 2024-10-28), cycles 2024-11-04 and 2024-12-30,
    pre-randomization assessment 2025-02-24 SD; not randomized."""
    return ready_patients(engine, 1, centres=("C01",))[0]


def _randomize(engine: Engine, code: str) -> None:
    """Randomized on 2025-03-10 by the service (minimization)."""
    add_users(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "minimization")
    moment = dt.datetime(2025, 3, 10, 9, tzinfo=dt.UTC)
    with work(engine, INVESTIGATOR, trial=at(moment)) as ctx:
        rnd.randomize(ctx, code, "r1", rng=random.Random(1))


def _refused(
    engine: Engine, error: type[Exception], fn: Callable[..., Any], *args: Any, **kw: Any
) -> Any:
    """Run an edit that must be refused; check nothing was written; return the error."""
    before = _audit_count(engine)
    with pytest.raises(error) as info:
        _edit(engine, fn, *args, **kw)
    assert _audit_count(engine) == before
    return info.value


# --- inclusion ---------------------------------------------------------------------------


def _inclusion(engine: Engine, code: str) -> tuple[int, dt.date | None, dt.date]:
    with read(engine, NURSE, today=TODAY) as ctx:
        row = patients.get_inclusion(ctx, code)
        return row.id, row.consent_date, row.inclusion_date


def test_inclusion_dates_corrected_and_audited(engine: Engine, code: str) -> None:
    changes = {"consent_date": "2024-10-27", "inclusion_date": "2024-10-31"}
    _edit(engine, patients.edit_inclusion, code, changes)
    row_id, consent, included = _inclusion(engine, code)
    assert (consent, included) == (dt.date(2024, 10, 27), dt.date(2024, 10, 31))
    audit = _updates(engine, "inclusions", row_id)
    assert {k: v[:2] for k, v in audit.items()} == {
        "consent_date": ("2024-10-28", "2024-10-27"),
        "inclusion_date": ("2024-10-30", "2024-10-31"),
    }
    assert audit["consent_date"][2].reason == REASON


def test_inclusion_of_a_randomized_patient_may_be_corrected_with_the_same_checks(
    engine: Engine, code: str
) -> None:
    _randomize(engine, code)
    _edit(engine, patients.edit_inclusion, code, {"inclusion_date": "2024-11-01"})
    assert _inclusion(engine, code)[2] == dt.date(2024, 11, 1)
    err = _refused(
        engine,
        ValidationError,
        patients.edit_inclusion,
        code,
        {"consent_date": "2024-11-02"},
    )
    assert err.field == "consent_date" and "after inclusion" in err.message


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"consent_date": "2024-10-31"}, "consent_date", "after inclusion"),  # entry rule
        ({"inclusion_date": "2024-10-27"}, "consent_date", "after inclusion"),
        ({"inclusion_date": "2025-07-01"}, "inclusion_date", "future"),
        ({"consent_date": "2025-07-01", "inclusion_date": "2025-07-01"}, "inclusion_date", ""),
        ({"inclusion_date": "2024-11-05"}, "inclusion_date", "after the cycle 1"),
        ({"consent_date": None}, "consent_date", "not a date"),
        ({"inclusion_date": "30.10.2024"}, "inclusion_date", "not a date"),  # dd/mm/yyyy is read
        ({"screening_id": 2}, "screening_id", "cannot be changed"),
        ({"inclusion_date": "2024-10-30"}, "edit", "nothing to change"),
    ],
)
def test_inclusion_correction_refused_naming_the_field(
    engine: Engine, code: str, changes: dict[str, Any], field: str, words: str
) -> None:
    err = _refused(engine, ValidationError, patients.edit_inclusion, code, changes)
    assert err.field == field and words in err.message
    assert _inclusion(engine, code)[1:] == (dt.date(2024, 10, 28), dt.date(2024, 10, 30))


def test_inclusion_correction_needs_a_reason_and_an_inclusion(engine: Engine, code: str) -> None:
    changes = {"inclusion_date": "2024-10-31"}
    for reason in (None, "", "  "):
        err = _refused(
            engine, ValidationError, patients.edit_inclusion, code, changes, reason=reason
        )
        assert err.field == "reason"
    with work(engine, NURSE, today=TODAY) as ctx:
        patients.register_patient(ctx, "C01", "C01-0099")
    with pytest.raises(NotFound, match="not included"):
        _edit(engine, patients.edit_inclusion, "C01-0099", changes)


def test_entry_and_correction_share_the_inclusion_rules(engine: Engine) -> None:
    """The entry refuses what the correction refuses (one validator)."""
    none = timeline.Milestones()
    with pytest.raises(ValidationError, match="consent_date"):
        patients.inclusion_values(none, dt.date(2024, 10, 31), dt.date(2024, 10, 30), TODAY, None)
    assert patients.inclusion_values(
        none, dt.date(2024, 10, 30), dt.date(2024, 10, 30), TODAY, None
    )


# --- pre-randomization assessment ----------------------------------------------------------


def _pre(engine: Engine, code: str) -> tuple[int, dt.date, str | None, bool, str | None]:
    with read(engine, NURSE, today=TODAY) as ctx:
        r = patients.get_pre_randomization(ctx, code)
        return r.id, r.assessment_date, r.overall_response, r.radiological_progression, r.comment


def test_pre_randomization_response_to_pd_derives_progression(engine: Engine, code: str) -> None:
    """Before randomization a correction to PD is allowed: the patient becomes a screen
    failure, and the progression flag follows the response."""
    row_id = _pre(engine, code)[0]
    _edit(engine, patients.edit_pre_randomization, code, {"overall_response": "PD"})
    assert _pre(engine, code)[2:4] == ("PD", True)
    audit = _updates(engine, "pre_randomization_assessments", row_id)
    assert {k: v[:2] for k, v in audit.items()} == {
        "overall_response": ("SD", "PD"),
        "radiological_progression": (False, True),
    }
    with read(engine, INVESTIGATOR, today=TODAY) as ctx, pytest.raises(PreconditionFailed):
        rnd.precheck(ctx, code)  # progression


def test_pre_randomization_of_a_randomized_patient(engine: Engine, code: str) -> None:
    _randomize(engine, code)
    changes = {"overall_response": "PR", "assessment_date": "2025-03-10", "comment": " scan 2 "}
    _edit(engine, patients.edit_pre_randomization, code, changes)
    assert _pre(engine, code)[1:] == (dt.date(2025, 3, 10), "PR", False, "scan 2")
    err = _refused(
        engine,
        PreconditionFailed,
        patients.edit_pre_randomization,
        code,
        {"overall_response": "PD", "comment": "x"},
    )
    assert err.field == "overall_response" and err.message.startswith("overall_response:")
    assert "randomized on 2025-03-10" in err.message and "invalid" in err.message
    late = _refused(
        engine,
        ValidationError,
        patients.edit_pre_randomization,
        code,
        {"assessment_date": "2025-03-11"},
    )
    assert late.field == "assessment_date" and "after the randomization" in late.message
    assert _pre(engine, code)[2:4] == ("PR", False)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"overall_response": "XX"}, "overall_response"),
        ({"overall_response": 3}, "overall_response"),
        ({"overall_response": None}, "overall_response"),  # a saved response stays
        ({"overall_response": " "}, "overall_response"),
        ({"assessment_date": "2025-07-01"}, "assessment_date"),  # future
        ({"assessment_date": ""}, "assessment_date"),
        ({"comment": "c" * 2001}, "comment"),
        ({"radiological_progression": True}, "radiological_progression"),  # follows response
        ({"overall_response": "SD"}, "edit"),
    ],
)
def test_pre_randomization_correction_refused_naming_the_field(
    engine: Engine, code: str, changes: dict[str, Any], field: str
) -> None:
    err = _refused(engine, ValidationError, patients.edit_pre_randomization, code, changes)
    assert err.field == field
    assert _pre(engine, code)[1:] == (dt.date(2025, 2, 24), "SD", False, None)


def test_pre_randomization_correction_needs_a_reason(engine: Engine, code: str) -> None:
    err = _refused(
        engine,
        ValidationError,
        patients.edit_pre_randomization,
        code,
        {"overall_response": "PR"},
        reason="",
    )
    assert err.field == "reason"


# --- QoL questionnaires --------------------------------------------------------------------


def _questionnaire(engine: Engine, code: str) -> int:
    items = {str(n): 1 for n in range(1, 31)} | {"29": 5, "30": 5}
    with work(engine, NURSE, today=TODAY) as ctx:
        row = qol.record_questionnaire(
            ctx,
            {
                "patient_id": code,
                "instrument": "QLQ-C30",
                "timepoint": "QOL-W00",
                "completed_on": "2025-03-01",
                "items": items,
            },
        )
        return row.id


def _scores(engine: Engine, code: str, qol_id: int) -> tuple[dict[str, Any], dict[str, int]]:
    with read(engine, NURSE, today=TODAY) as ctx:
        row = qol.get_questionnaire(ctx, code, qol_id)
        return json.loads(row.scores_json or "{}"), {
            str(k): v for k, v in qol.saved_answers(row).items()
        }


def test_questionnaire_item_correction_rescores_and_is_audited(engine: Engine, code: str) -> None:
    qol_id = _questionnaire(engine, code)
    scores, _answers = _scores(engine, code, qol_id)
    assert Decimal(str(scores["scales"]["QL"])) == Decimal("66.67")  # (5+5)/2 -> 4/6
    changes = {"items": {"29": 7, "30": 7, "5": None}, "completed_on": "2025-03-02"}
    _edit(engine, qol.edit_questionnaire, code, qol_id, changes)
    scores, answers = _scores(engine, code, qol_id)
    assert Decimal(str(scores["scales"]["QL"])) == Decimal("100.00")
    assert "5" not in answers and answers["29"] == 7
    audit = _updates(engine, "qol_questionnaires", qol_id)
    assert set(audit) == {"answers_json", "scores_json", "completed_on"}
    assert audit["completed_on"][:2] == ("2025-03-01", "2025-03-02")
    old, new = (json.loads(v) for v in audit["answers_json"][:2])
    assert (old["29"], new["29"], "5" in old, "5" in new) == (5, 7, True, False)
    assert audit["answers_json"][2].reason == REASON


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"items": {"29": 8}}, "items.29"),  # out of range: the engine names the item
        ({"items": {"3": "often"}}, "items.3"),
        ({"items": {"77": 1}}, "items.77"),
        ({"items": [1, 2]}, "items"),
        ({"completed_on": "2025-07-01"}, "questionnaire.completed_on"),
        ({"timepoint": "QOL-W08"}, "timepoint"),  # not editable
        ({"instrument": "QLQ-GINET21"}, "instrument"),
        ({"items": {"29": 5, "01": 1}}, "edit"),  # same answers
    ],
)
def test_questionnaire_correction_refused_naming_the_field(
    engine: Engine, code: str, changes: dict[str, Any], field: str
) -> None:
    qol_id = _questionnaire(engine, code)
    before = _scores(engine, code, qol_id)
    err = _refused(engine, ValidationError, qol.edit_questionnaire, code, qol_id, changes)
    assert err.field == field
    assert _scores(engine, code, qol_id) == before


def test_questionnaire_correction_needs_a_reason_and_its_patient(engine: Engine, code: str) -> None:
    qol_id = _questionnaire(engine, code)
    changes = {"items": {"29": 6}}
    err = _refused(
        engine, ValidationError, qol.edit_questionnaire, code, qol_id, changes, reason=None
    )
    assert err.field == "reason"
    other = ready_patients(engine, 1, centres=("C01",), start=5)[0]
    with pytest.raises(NotFound):
        _edit(engine, qol.edit_questionnaire, other, qol_id, changes)


# --- central reads -------------------------------------------------------------------------

BASELINE = [
    {"id": "T1", "organ": "liver", "kind": "target", "diameter_mm": "40"},
    {"id": "T2", "organ": "lung", "kind": "target", "diameter_mm": "20"},
    {"id": "NT1", "organ": "bone", "kind": "non_target", "status": "present"},
]


def _reads(engine: Engine, code: str) -> list[int]:
    """Baseline 2025-03-01 (sum 60), week8 2025-05-01 (sum 42: PR), week16 2025-06-20
    (sum 48, -20%: PR continued, the response already reached and no PD since)."""
    ids = []
    follow = [
        ("week8", dt.date(2025, 5, 1), {"T1": "28", "T2": "14"}),
        ("week16", dt.date(2025, 6, 20), {"T1": "32", "T2": "16"}),
    ]
    with writing(engine, REVIEWER, trial_on(TODAY)) as ctx:
        ids.append(
            review.record_central_read(
                ctx, code, "baseline", dt.date(2025, 3, 1), "CT", BASELINE, "no"
            ).id
        )
        for tp, day, sizes in follow:
            lesions: list[dict[str, Any]] = [
                {"id": k, "diameter_mm": v} for k, v in sizes.items()
            ] + [{"id": "NT1", "status": "present"}]
            ids.append(review.record_central_read(ctx, code, tp, day, "CT", lesions, "no").id)
    return ids


def _stored(engine: Engine, code: str) -> list[tuple[str | None, Decimal | None]]:
    with read_session(engine) as s:
        reads = review.central_reads(s, patients.find_patient(s, code))
        return [(r.overall_response, r.target_sum_mm) for r in reads]


def _edit_read(engine: Engine, *args: Any, reason: str | None = REASON) -> Any:
    with writing(engine, REVIEWER, trial_on(TODAY), reason=reason) as ctx:
        return review.edit_central_read(ctx, *args)


def test_central_read_correction_is_re_evaluated_with_the_later_reads(
    engine: Engine, code: str
) -> None:
    base, week8, week16 = _reads(engine, code)
    assert _stored(engine, code) == [(None, 60), ("PR", 42), ("PR", 48)]
    # week 8 was 38 + 14 = 52 (-13%: SD): no PR was reached, so week 16 (-20%) is SD as well
    changes = {"lesions": {"T1": {"diameter_mm": "38"}}}
    _edit_read(engine, code, week8, changes)
    assert _stored(engine, code) == [(None, 60), ("SD", 52), ("SD", 48)]
    with reading(engine, REVIEWER, trial_on(TODAY)) as ctx:
        lesion = next(
            m for m in review.get_central_read(ctx, code, week8).lesions if m.lesion_id == "T1"
        )
        lesion_id = lesion.id
    audit = _updates(engine, "lesion_measurements", lesion_id)
    assert {k: v[:2] for k, v in audit.items()} == {"diameter_mm": ("28.0", "38.0")}
    assert audit["diameter_mm"][2].reason == REASON and audit["diameter_mm"][2].username == "rev1"
    read_audit = _updates(engine, "tumour_assessments", week8)
    assert read_audit["overall_response"][:2] == ("PR", "SD")
    assert _updates(engine, "tumour_assessments", week16)["overall_response"][:2] == ("PR", "SD")
    # a baseline correction moves the later responses: T2 30 mm -> sum 70; week 16 (48) is
    # now -31% from baseline: PR
    _edit_read(engine, code, base, {"lesions": {"T2": {"diameter_mm": "30"}}})
    assert _stored(engine, code) == [(None, 70), ("SD", 52), ("PR", 48)]


def test_central_read_new_lesion_and_status_corrections(engine: Engine, code: str) -> None:
    _base, _week8, week16 = _reads(engine, code)
    _edit_read(engine, code, week16, {"new_lesions": "yes"})
    assert _stored(engine, code)[-1][0] == "PD"
    _edit_read(
        engine,
        code,
        week16,
        {"new_lesions": "no", "lesions": {"NT1": {"status": "unequivocal_progression"}}},
    )
    assert _stored(engine, code)[-1][0] == "PD"
    with reading(engine, REVIEWER, trial_on(TODAY)) as ctx:
        read = review.get_central_read(ctx, code, week16)
        assert review.new_lesions_of(read) == "no"
        assert [m.status for m in read.lesions if m.lesion_id == "NT1"] == [
            "unequivocal_progression"
        ]


@pytest.mark.parametrize(
    ("read", "changes", "field"),
    [
        (1, {"lesions": {"T1": {"diameter_mm": "-3"}}}, "lesions.T1.diameter_mm"),
        (1, {"lesions": {"T1": {"diameter_mm": "12.34"}}}, "lesions.T1.diameter_mm"),
        (1, {"lesions": {"T1": {"diameter_mm": "big"}}}, "lesions.T1.diameter_mm"),
        (1, {"lesions": {"T1": {}}}, "lesions.T1.diameter_mm"),  # nothing recorded
        (1, {"lesions": {"T1": {"status": "gone"}}}, "lesions.T1.status"),
        (1, {"lesions": {"T1": {"diameter_mm": "3", "status": "absent"}}}, "lesions.T1.status"),
        # the engine refuses "present" as the measurement of a target lesion, by lesion
        (1, {"lesions": {"T1": {"status": "present"}}}, "lesions.T1.status"),
        (1, {"lesions": {"T1": {"organ": "lung"}}}, "lesions.T1.organ"),
        (1, {"lesions": {"T9": {"diameter_mm": "3"}}}, "lesions.T9"),
        (1, {"lesions": ["T1"]}, "lesions"),
        (1, {"new_lesions": "maybe"}, "new_lesions"),
        (0, {"new_lesions": "yes"}, "new_lesions"),  # not at baseline
        (0, {"lesions": {"T1": {"diameter_mm": "5"}}}, "lesions.T1.diameter_mm"),  # < 10 mm
        (1, {"timepoint": "week9"}, "timepoint"),
        (1, {"lesions": {"T1": {"diameter_mm": "28.0"}}}, "edit"),
    ],
)
def test_central_read_correction_refused_naming_the_field(
    engine: Engine, code: str, read: int, changes: dict[str, Any], field: str
) -> None:
    read_id = _reads(engine, code)[read]
    before = _audit_count(engine)
    with pytest.raises(ValidationError) as info:
        _edit_read(engine, code, read_id, changes)
    assert info.value.field == field
    assert _audit_count(engine) == before
    assert _stored(engine, code) == [(None, 60), ("PR", 42), ("PR", 48)]


def test_central_read_correction_needs_a_reason_and_a_central_read(
    engine: Engine, code: str
) -> None:
    week8 = _reads(engine, code)[1]
    changes = {"lesions": {"T1": {"diameter_mm": "30"}}}
    with pytest.raises(ValidationError) as info:
        _edit_read(engine, code, week8, changes, reason="  ")
    assert info.value.field == "reason"
    other = ready_patients(engine, 1, centres=("C01",), start=5)[0]
    with pytest.raises(NotFound):
        _edit_read(engine, other, week8, changes)
    with pytest.raises(NotFound):
        _edit_read(engine, code, 999999, changes)
