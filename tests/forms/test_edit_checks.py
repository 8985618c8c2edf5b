"""Auto-queries from the registry's edit checks, evaluated in the domain on every save and
correction: (a) a cycle given while platelets were below 75 x 10^9/L within the 7 days before
(exact Decimal comparison; both sides of 75 and of 7 days), (b) a QoL questionnaire dated
outside its visit window, (c) a serious adverse event without an awareness time. One system
query per failing (form instance, field), never twice; closed by the system when the data
settle it."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from sqlalchemy import Engine, select
from tests.store.storekit import INVESTIGATOR, NURSE, STAT, ready_patients, work

from reluth.db.session import read_session
from reluth.errors import ValidationError
from reluth.forms import service as forms
from reluth.forms.registry import DEFAULT_PATH, parse_registry
from reluth.protocol.schedule import planned_visits
from reluth.qol import service as qol
from reluth.queries.models import DataQuery
from reluth.randomization import service as rnd
from reluth.safety import service as safety
from reluth.safety.records import record_adverse_event
from reluth.treatment.models import Administration

CYCLE_2 = dt.date(2024, 12, 30)  # the second cycle of the test patients


def _queries(engine: Engine, check: str) -> list[DataQuery]:
    with read_session(engine) as s:
        return list(
            s.scalars(select(DataQuery).where(DataQuery.edit_check == check).order_by(DataQuery.id))
        )


def _active(engine: Engine, check: str) -> list[DataQuery]:
    return [q for q in _queries(engine, check) if q.status != "closed"]


def _platelets(engine: Engine, code: str, value: str, day: dt.date) -> int:
    with work(engine, NURSE) as ctx:
        raw = {"test": "platelets", "value": value, "unit": "/mm3", "date": day.isoformat(),
               "lln": "150000"}  # fmt: skip
        return safety.record_lab(ctx, code, raw).id


def _fix_lab(engine: Engine, code: str, lab: int, **changes: str) -> None:
    with work(engine, NURSE, reason="corrected from the laboratory report") as ctx:
        safety.edit_lab(ctx, code, lab, {"lln": "150000", **changes})


def test_a_cycle_after_low_platelets_raises_one_system_query(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    week_before = CYCLE_2 - dt.timedelta(days=7)
    lab = _platelets(engine, code, "75000", week_before)  # 75 x 10^9/L: not below
    assert _queries(engine, "platelets_before_cycle") == []
    _fix_lab(engine, code, lab, value="74990")  # 74.99: below, on the 7th day before
    (query,) = _active(engine, "platelets_before_cycle")
    with read_session(engine) as s:
        cycle = s.scalars(select(Administration).where(Administration.cycle == 2)).one()
    assert (query.form_id, query.record_id, query.item) == ("cycle", cycle.id, "administered_on")
    assert query.opened_by == "system" and query.status == "open"
    assert "74.99 x 10^9/L on 2024-12-23" in query.question and "Cycle 2" in query.question

    with work(engine, NURSE, reason="lot number typo") as ctx:  # a re-save: not raised twice
        from reluth.treatment import service as treatment

        treatment.edit_cycle(ctx, code, 2, {"lot": "L2B"})
    assert len(_queries(engine, "platelets_before_cycle")) == 1

    _fix_lab(engine, code, lab, date=(week_before - dt.timedelta(days=1)).isoformat())
    (closed,) = _queries(engine, "platelets_before_cycle")  # 8 days before: out of the check
    assert closed.status == "closed" and closed.closed_by == "system"
    assert "now passes" in (closed.answer or "")

    _fix_lab(engine, code, lab, date=week_before.isoformat())  # back inside: raised again
    assert len(_active(engine, "platelets_before_cycle")) == 1
    _platelets(engine, code, "75000", CYCLE_2)  # the latest count before dosing is 75
    assert _active(engine, "platelets_before_cycle") == []


def _randomized(engine: Engine) -> tuple[str, dt.date, dt.date]:
    (code,) = ready_patients(engine, 1)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "minimization")
    with work(engine, INVESTIGATOR) as ctx:
        row = rnd.randomize(ctx, code, "v")
        visits = planned_visits(row.randomized_at.date(), row.arm, ctx.protocol)
    w00 = next(v for v in visits if v.code == "QOL-W00")
    return code, w00.window_start, w00.window_end


def test_a_questionnaire_outside_its_visit_window_is_queried(engine: Engine) -> None:
    code, start, end = _randomized(engine)
    later = end + dt.timedelta(days=30)
    items = {str(i): 2 for i in range(1, 31)}
    with work(engine, NURSE, today=later) as ctx:
        row = qol.record_questionnaire(
            ctx,
            {
                "patient_id": code,
                "instrument": "QLQ-C30",
                "timepoint": "QOL-W00",
                "completed_on": (end + dt.timedelta(days=1)).isoformat(),
                "items": items,
            },
        )
    (query,) = _active(engine, "qol_date_in_window")
    assert (query.form_id, query.record_id, query.item) == ("qol", row.id, "completed_on")
    assert f"outside its visit window ({start} to {end})" in query.question
    with work(engine, NURSE, today=later, reason="date misread") as ctx:
        qol.edit_questionnaire(ctx, code, row.id, {"completed_on": end.isoformat()})
    assert _active(engine, "qol_date_in_window") == []  # the last day of the window is inside


def test_a_serious_event_without_awareness_time_is_queried(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    event = {
        "patient_id": code,
        "term": "Vomiting",
        "grade": 3,
        "relatedness": "probable",
        "outcome": "recovered",
        "onset_date": "2025-02-10",
        "awareness_date": "2025-02-11",
    }
    with work(engine, INVESTIGATOR) as ctx:
        mild = record_adverse_event(ctx, {**event, "serious": False})
        sae = record_adverse_event(ctx, {**event, "serious": True})
        timed = record_adverse_event(ctx, {**event, "serious": True, "awareness_time": "09:30"})
    (query,) = _active(engine, "sae_awareness_time")
    assert query.record_id == sae.id and query.item == "awareness_time"
    assert {mild.id, timed.id}.isdisjoint({query.record_id})
    assert 'Serious adverse event "Vomiting" has no awareness time' in query.question
    with work(engine, INVESTIGATOR) as ctx:  # a missing-data code says why: settled
        forms.record_missing(
            ctx, "adverse_event", "UNK", "the call was not logged", record_id=sae.id,
            item="awareness_time",
        )  # fmt: skip
    assert _active(engine, "sae_awareness_time") == []


def test_a_deleted_record_s_system_query_is_closed_and_other_checks_are_left_alone(
    engine: Engine,
) -> None:
    """A deleted record no longer comes with its form's rows: its open system query is looked
    up apart and closed in the deleting transaction. A change that no check reads (a cycle's
    lot) leaves every other check's queries as they are."""
    (code,) = ready_patients(engine, 1)
    event = {
        "patient_id": code, "term": "Vomiting", "grade": 3, "relatedness": "probable",
        "outcome": "recovered", "onset_date": "2025-02-10", "awareness_date": "2025-02-11",
        "serious": True,
    }  # fmt: skip
    with work(engine, INVESTIGATOR) as ctx:
        sae = record_adverse_event(ctx, event)
    (query,) = _active(engine, "sae_awareness_time")
    with work(engine, NURSE, reason="lot number typo") as ctx:
        from reluth.treatment import service as treatment

        treatment.edit_cycle(ctx, code, 2, {"lot": "L2B"})
    assert [q.id for q in _active(engine, "sae_awareness_time")] == [query.id]
    with work(engine, INVESTIGATOR, reason="entered on the wrong patient") as ctx:
        from reluth.safety.models import AdverseEvent

        ctx.session.delete(ctx.session.get(AdverseEvent, sae.id))
    (closed,) = _queries(engine, "sae_awareness_time")
    assert closed.status == "closed" and closed.closed_by == "system"


def test_the_registry_refuses_an_edit_check_it_cannot_evaluate() -> None:
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    check = data["edit_checks"][0]
    for broken, match in (
        ({"form": "nonsense"}, "unknown form"),
        ({"field": "colour"}, "no field"),
        ({"analyte": None}, "needs analyte"),
        ({"rule": "guess"}, "rule"),
    ):
        data["edit_checks"][0] = {**check, **broken}
        with pytest.raises(ValidationError, match=match):
            parse_registry(data)
