"""Central review stores the engine's whole evaluation of a patient's reads in the unit of work
of the read; a correction re-evaluates and re-stores the whole patient (audited, the earlier
version kept); reads before randomization and reads without a stored evaluation still give
the engine's result; migration 0009 goes up and down."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, select, text
from tests.store.storekit import INVESTIGATOR, STAT, add_users, at, ready_patients, trial_on, work

from reluth.analysis import derivations
from reluth.auth.actor import Actor
from reluth.auth.roles import Role
from reluth.core.context import writing
from reluth.db.audit import AuditLog
from reluth.db.engine import make_engine
from reluth.db.migrate import alembic_config, current_revision, upgrade
from reluth.db.session import read_session
from reluth.errors import ValidationError
from reluth.i18n import use_locale
from reluth.i18n.reasons import shown
from reluth.patients import service as patients
from reluth.protocol.definition import load_protocol
from reluth.randomization import service as rnd
from reluth.response import service as review
from reluth.response.models import RecistEvaluation, TumourAssessment
from reluth.response.recist import RecistOptions, Response

#: The columns migration 0019 adds to the tables 0010 creates (the reason keys).
ADDED_BY_0019 = {"dcr6_message", "note_messages"}
REVIEWER = Actor("rev1", Role.CENTRAL_REVIEWER)
RAND_AT = dt.datetime(2025, 3, 5, 10, 0, tzinfo=dt.UTC)
RAND = RAND_AT.date()
TODAY = dt.date(2026, 6, 1)
BASELINE = [
    {"id": "T1", "organ": "liver", "kind": "target", "diameter_mm": "50"},
    {"id": "T2", "organ": "lung", "kind": "target", "diameter_mm": "30"},
]
SD = [{"id": "T1", "diameter_mm": "48"}, {"id": "T2", "diameter_mm": "28"}]
PD = [{"id": "T1", "diameter_mm": "60"}, {"id": "T2", "diameter_mm": "40"}]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    add_users(eng)
    with work(eng, STAT) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, "evaluation-test-seed", 4)
    yield eng
    eng.dispose()


def _randomized(engine: Engine, n: int = 1, start: int = 0) -> list[str]:
    codes = ready_patients(engine, n, start=start)
    for code in codes:
        with work(engine, INVESTIGATOR, trial=at(RAND_AT)) as ctx:
            rnd.randomize(ctx, code, f"req-{code}")
    return codes


def _read(engine: Engine, code: str, day: int, lesions: list[dict[str, Any]], new: str = "no"):
    timepoint = "baseline" if day < 0 else f"d{day}"
    with writing(engine, REVIEWER, trial_on(TODAY)) as ctx:
        return review.record_central_read(
            ctx, code, timepoint, RAND + dt.timedelta(days=day), "CT", lesions, new
        ).id


def _current(engine: Engine, code: str) -> review.EvaluationView:
    with read_session(engine) as s:
        ev = review.current_evaluation(s, patients.find_patient(s, code), load_protocol())
    assert ev is not None
    return ev


def test_each_read_stores_the_engines_evaluation_in_its_unit_of_work(engine: Engine) -> None:
    (code,) = _randomized(engine)
    _read(engine, code, -7, BASELINE)
    _read(engine, code, 35, SD)  # SD too early for BOR
    pd_id = _read(engine, code, 98, PD)
    ev = _current(engine, code)
    assert ev.stored and ev.version == 3 and ev.reference_date == RAND
    assert ev.outcome is not None
    assert ev.outcome.best_overall_response is Response.PD
    assert ev.outcome.first_pd_date == RAND + dt.timedelta(days=98)
    assert ev.read_on(ev.outcome.first_pd_date) == pd_id
    assert "42 days" in ev.outcome.bor_rule
    assert "before the landmark" in ev.outcome.disease_control_month6_reason
    with read_session(engine) as s:
        rows = s.scalars(
            select(AuditLog).where(AuditLog.table_name.in_(["recist_evaluations"]))
        ).all()
        assert [(r.action, r.username) for r in rows] == [("insert", "rev1")] * 3
    # A read whose unit of work fails leaves neither the read nor an evaluation.
    with pytest.raises(RuntimeError), writing(engine, REVIEWER, trial_on(TODAY)) as ctx:
        review.record_central_read(ctx, code, "d154", RAND + dt.timedelta(days=154), "CT", SD, "no")
        raise RuntimeError("the connection dropped")
    assert _current(engine, code).version == 3


def test_a_correction_re_evaluates_and_re_stores_the_whole_patient(engine: Engine) -> None:
    (code,) = _randomized(engine)
    _read(engine, code, -7, BASELINE)
    _read(engine, code, 56, SD)
    _read(engine, code, 168, SD, new="equivocal")
    confirming = _read(engine, code, 224, SD, new="yes")
    before = _current(engine, code)
    assert before.outcome is not None and not before.outcome.disease_control_month6
    assert [tp.redated_by for tp in before.time_points] == [None, confirming, None]
    with writing(engine, REVIEWER, trial_on(TODAY), reason="the new lesion is a cyst") as ctx:
        review.edit_central_read(ctx, code, confirming, {"new_lesions": "no"})
    after = _current(engine, code)
    assert after.version == before.version + 1
    assert after.outcome is not None and after.outcome.disease_control_month6
    assert after.outcome.first_pd_date is None
    assert [tp.overall for tp in after.time_points] == [Response.SD] * 3
    with read_session(engine) as s:
        versions = s.scalars(
            select(RecistEvaluation.version).where(
                RecistEvaluation.patient_id == patients.find_patient(s, code).id
            )
        ).all()
        reasons = s.scalars(
            select(AuditLog.reason).where(AuditLog.table_name == "recist_evaluations")
        ).all()
    assert sorted(versions) == [1, 2, 3, 4, 5]  # the history stays
    assert reasons[-1] == "the new lesion is a cyst"


def test_reads_before_randomization_store_time_points_only(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    _read(engine, code, -7, BASELINE)
    _read(engine, code, 35, SD)  # before the randomization below
    ev = _current(engine, code)
    assert ev.stored and ev.reference_date is None and ev.outcome is None
    # Randomized later: the analysis asks the engine again from the randomization date.
    # (the earliest date the timeline allows: the pre-randomization assessment's)
    with work(engine, INVESTIGATOR, trial=at(RAND_AT - dt.timedelta(days=9))) as ctx:
        rnd.randomize(ctx, code, "req-late")
    points = tuple(
        derivations.TumourTimePoint(
            f"central read {tp.read_id}", tp.date, tp.as_read, tp.new_lesions, tp.sum_mm, None
        )
        for tp in ev.time_points
    )
    tumour = derivations.TumourRecord(code, None, None, points, ev.outcome)
    rand = RAND - dt.timedelta(days=9)
    options = RecistOptions.from_protocol(load_protocol())
    _, outcome = derivations.outcome_at(code, tumour, rand, TODAY, options)
    assert outcome.randomization_date == rand
    assert outcome.best_overall_response is Response.SD  # day 44 >= 42 from this date


def test_reads_without_a_stored_evaluation_are_evaluated_now(engine: Engine) -> None:
    """Reads saved before migration 0009 (simulated by removing the stored evaluations)."""
    (code,) = _randomized(engine)
    _read(engine, code, -7, BASELINE)
    _read(engine, code, 56, SD)
    _read(engine, code, 112, PD)
    stored = _current(engine, code)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM recist_time_points"))
        conn.execute(text("DELETE FROM recist_evaluations"))
    now = _current(engine, code)
    assert not now.stored and now.version is None
    assert now.outcome == stored.outcome
    assert now.time_points == stored.time_points


def test_the_stored_month6_reason_and_notes_read_in_french_also_from_older_rows(
    engine: Engine,
) -> None:
    """Issue 18 item 5: the stored evaluation keeps its month-6 reason and time-point notes as
    message keys (migration 0019) and a French reader gets them in French; rows stored before
    the keys (English only, simulated by emptying the key columns) read the same, mapped from
    their English; the English text is kept as it was (the datasets' DCRRSN)."""
    (code,) = _randomized(engine)
    _read(engine, code, -7, BASELINE)
    _read(engine, code, 56, [{"id": "T1", "diameter_mm": "48"}])  # T2 not evaluated
    _read(engine, code, 112, PD)
    stored = _current(engine, code)
    assert stored.outcome is not None
    assert stored.outcome.disease_control_month6_reason == (
        "progression on 2025-06-25, before the landmark"
    )
    assert [n.key for n in stored.time_points[0].notes] == ["recist.targets_not_evaluated"]

    def french(ev: review.EvaluationView) -> tuple[str, list[str]]:
        assert ev.outcome is not None
        with use_locale("fr"):
            return ev.outcome.month6_reason(), [shown(n) for n in ev.time_points[0].notes]

    expected = (
        "progression le 25/06/2025, avant la fenêtre d’évaluation à 6 mois",
        ["cibles non évaluées : T2"],
    )
    assert french(stored) == expected
    with engine.begin() as conn:
        conn.execute(text("UPDATE recist_time_points SET note_messages = NULL"))
        conn.execute(text("UPDATE recist_evaluations SET dcr6_message = NULL"))
    older = _current(engine, code)
    assert older.stored and french(older) == expected
    with engine.begin() as conn:
        conn.execute(text("UPDATE recist_evaluations SET dcr6_reason = 'as the CRO wrote it'"))
    assert _current(engine, code).outcome.month6_reason() == "as the CRO wrote it"  # type: ignore[union-attr]


def test_reads_the_engine_refuses_are_named_with_the_patient(engine: Engine) -> None:
    (code,) = _randomized(engine)
    _read(engine, code, -7, BASELINE)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM recist_time_points"))
        conn.execute(text("DELETE FROM recist_evaluations"))
        conn.execute(text("UPDATE lesion_measurements SET organ = ''"))
    with pytest.raises(ValidationError, match=f"central reads of {code}: baseline lesion T1"):
        _current(engine, code)


def test_an_unevaluated_patient_has_no_evaluation(engine: Engine) -> None:
    (code,) = _randomized(engine)
    with read_session(engine) as s:
        assert review.current_evaluation(s, patients.find_patient(s, code), load_protocol()) is None
        assert s.scalars(select(TumourAssessment)).first() is None


def test_0019_adds_and_drops_the_reason_key_columns(db_url: str) -> None:
    eng = make_engine(db_url)
    try:
        upgrade(eng)
        for table, column in (
            ("recist_evaluations", "dcr6_message"),
            ("recist_time_points", "note_messages"),
        ):
            assert column in {c["name"] for c in inspect(eng).get_columns(table)}
        cfg = alembic_config()
        with eng.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0018_lab_lln")
        assert "dcr6_message" not in {
            c["name"] for c in inspect(eng).get_columns("recist_evaluations")
        }
        assert "note_messages" not in {
            c["name"] for c in inspect(eng).get_columns("recist_time_points")
        }
    finally:
        eng.dispose()


def test_0010_upgrade_and_downgrade(db_url: str) -> None:
    eng = make_engine(db_url)
    try:
        upgrade(eng, "0009_core_actors")
        assert "recist_evaluations" not in inspect(eng).get_table_names()
        upgrade(eng, "0010_recist_evaluations")
        assert current_revision(eng) == "0010_recist_evaluations"
        for table in ("recist_evaluations", "recist_time_points"):
            columns = {c["name"] for c in inspect(eng).get_columns(table)}
            model = set(RecistEvaluation.metadata.tables[table].c.keys())
            assert columns == model - ADDED_BY_0019, table
        cfg = alembic_config()
        with eng.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0009_core_actors")
        tables = set(inspect(eng).get_table_names())
        assert not tables & {"recist_evaluations", "recist_time_points"}
        assert {"audit_log", "tumour_assessments"} <= tables
    finally:
        eng.dispose()
