"""randomize(): the allocation list consumed in order, idempotent retries, every protocol
precondition refused clearly, concealment by role, and the method fixed once used."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select
from storekit import (
    ADMIN,
    INVESTIGATOR,
    NURSE,
    STAT,
    TODAY,
    add_users,
    patient_file,
    ready_patients,
)

from reluth.auth.roles import Role
from reluth.db.session import Actor, read_session, unit_of_work
from reluth.errors import Conflict, NotFound, PermissionDenied, PreconditionFailed
from reluth.patients import service as patients
from reluth.randomization import service as rnd
from reluth.randomization.models import AllocationSlot, Randomization

SEED = "statistician-secret-seed-2025"
REVIEWER = Actor("rev1", Role.CENTRAL_REVIEWER)


def _blocks(engine: Engine, per_stratum: int = 20, by_centre: bool = False) -> None:
    add_users(engine)
    with unit_of_work(engine, STAT) as uow:
        rnd.configure(uow.session, STAT, "blocks", stratify_by_centre=by_centre)
        rnd.generate_list(uow.session, STAT, SEED, per_stratum)


def _randomize(
    engine: Engine, code: str, request: str, actor: Actor = INVESTIGATOR
) -> rnd.RandomizationResult:
    with unit_of_work(engine, actor) as uow:
        return rnd.randomize(uow.session, actor, code, request)


def _slots(engine: Engine, key: str) -> list[AllocationSlot]:
    with read_session(engine) as s:
        return list(
            s.scalars(
                select(AllocationSlot)
                .where(AllocationSlot.stratum_key == key)
                .order_by(AllocationSlot.position)
            )
        )


def test_blocks_consume_the_stratum_list_in_order(engine: Engine) -> None:
    _blocks(engine)
    codes = ready_patients(engine, 48)  # three patients per stratum
    results = [_randomize(engine, c, f"req-{c}") for c in codes]
    for key in {r.stratum for r in results}:
        mine = [r for r in results if r.stratum == key]
        slots = _slots(engine, key)
        assert [r.arm for r in mine] == [s.arm for s in slots[: len(mine)]]
        assert all(s.patient_id is not None for s in slots[: len(mine)])
        assert all(s.patient_id is None for s in slots[len(mine) :])
    assert {r.method for r in results} == {"blocks"}


def test_retry_with_same_request_id_returns_the_same_result(engine: Engine) -> None:
    _blocks(engine)
    (code,) = ready_patients(engine, 1)
    first = _randomize(engine, code, "r-1")
    again = _randomize(engine, code, "r-1")
    assert (again.arm, again.stratum, again.replayed) == (first.arm, first.stratum, True)
    with read_session(engine) as s:
        assert len(s.scalars(select(Randomization)).all()) == 1
    with pytest.raises(Conflict, match="already randomized"):
        _randomize(engine, code, "r-2")


def test_a_request_id_cannot_serve_two_patients(engine: Engine) -> None:
    _blocks(engine)
    a, b = ready_patients(engine, 2)
    _randomize(engine, a, "shared")
    with pytest.raises(Conflict, match="another patient"):
        _randomize(engine, b, "shared")


def test_minimization_stores_each_decision(engine: Engine) -> None:
    add_users(engine)
    with unit_of_work(engine, STAT) as uow:
        rnd.configure(uow.session, STAT, "minimization", stratify_by_centre=True, p=Decimal("0.8"))
    codes = ready_patients(engine, 6)
    results = [_randomize(engine, c, f"m-{c}") for c in codes]
    details = results[-1].details
    assert set(details) >= {"scores", "counts_before", "preferred", "p", "draw", "tie"}
    assert set(details["counts_before"]) == {
        "centre",
        "disease_control_first_prrt",
        "intercurrent_treatment",
        "progression_type",
        "renal_function",
    }
    with read_session(engine) as s:
        stored = s.scalars(select(Randomization).order_by(Randomization.id)).all()
    assert all(json.loads(r.details_json or "{}")["scores"] for r in stored)
    with unit_of_work(engine, STAT) as uow:
        rep = rnd.report(uow.session, STAT)
    assert rep.total == 6 and sum(rep.by_arm.values()) == 6


def test_method_cannot_change_after_first_randomization(engine: Engine) -> None:
    add_users(engine)
    with unit_of_work(engine, STAT) as uow:
        rnd.configure(uow.session, STAT, "minimization")
    with unit_of_work(engine, STAT, reason="chose blocks after all") as uow:
        rnd.configure(uow.session, STAT, "minimization", p=Decimal("0.9"))
    (code,) = ready_patients(engine, 1)
    _randomize(engine, code, "x")
    with pytest.raises(Conflict, match="fixed"), unit_of_work(engine, STAT, reason="x") as uow:
        rnd.configure(uow.session, STAT, "blocks")


def test_list_is_concealed_from_all_but_the_unblinded_statistician(engine: Engine) -> None:
    _blocks(engine, per_stratum=4)
    with pytest.raises(PermissionDenied), unit_of_work(engine, NURSE) as uow:
        rnd.generate_list(uow.session, NURSE, SEED, 4)
    for actor in (NURSE, ADMIN, REVIEWER):
        with pytest.raises(PermissionDenied), read_session(engine) as s:
            rnd.allocation_list(s, actor)
    with read_session(engine) as s:
        listing = rnd.allocation_list(s, STAT)
        assert len(listing) >= 16 * 4 and rnd.verify_list(s)
    with pytest.raises(PermissionDenied, match="blinded"), read_session(engine) as s:
        rnd.report(s, REVIEWER)
    (code,) = ready_patients(engine, 1)
    with pytest.raises(PermissionDenied):
        _randomize(engine, code, "r", actor=REVIEWER)


def test_allocation_slots_never_reach_the_audit_trail(engine: Engine) -> None:
    from reluth.db.audit import AuditLog

    _blocks(engine, per_stratum=4)
    with read_session(engine) as s:
        tables = set(s.scalars(select(AuditLog.table_name)))
    assert "allocation_slots" not in tables and "allocation_lists" in tables


def test_list_tampering_is_detected_by_the_report(engine: Engine) -> None:
    _blocks(engine, per_stratum=4)
    with engine.begin() as conn:
        conn.execute(
            AllocationSlot.__table__.update()
            .where(AllocationSlot.position == 1)
            .values(arm="experimental")
        )
        conn.execute(
            AllocationSlot.__table__.update()
            .where(AllocationSlot.position == 2)
            .values(arm="experimental")
        )
    with read_session(engine) as s:
        assert not rnd.report(s, STAT).list_intact


# ------------------------------------------------------------------------- preconditions


def _one(engine: Engine, code: str = "C01-0001") -> None:
    with unit_of_work(engine, NURSE) as uow:
        patients.add_centre(uow.session, "C01", "Centre 1")
        patients.register_patient(uow.session, "C01", code, today=TODAY)


def _do(engine: Engine, fn: object, *args: object) -> None:
    with unit_of_work(engine, NURSE) as uow:
        fn(uow.session, *args)  # type: ignore[operator]


def test_every_precondition_is_refused_with_its_reason(engine: Engine) -> None:
    _blocks(engine)
    code = "C01-0001"
    with pytest.raises(NotFound, match="not registered"):
        _randomize(engine, code, "r")
    _one(engine, code)
    with pytest.raises(PreconditionFailed, match="has not been screened"):
        _randomize(engine, code, "r")
    bad = patient_file(code, 0, ecog=3)
    _do(engine, lambda s: patients.screen_patient(s, bad, today=TODAY))
    with pytest.raises(PreconditionFailed, match=r"not eligible \(not_eligible\).*ECOG"):
        _randomize(engine, code, "r")
    _do(engine, lambda s: patients.screen_patient(s, patient_file(code, 0), today=TODAY))
    with pytest.raises(PreconditionFailed, match="consent"):
        _randomize(engine, code, "r")
    _do(engine, lambda s: patients.include_patient(s, code, dt.date(2024, 10, 28), None, TODAY))
    with pytest.raises(PreconditionFailed, match=r"two second-PRRT cycles.*\(0 recorded\)"):
        _randomize(engine, code, "r")
    _do(
        engine,
        lambda s: patients.record_cycle(
            s, code, 1, dt.date(2024, 11, 4), Decimal("7.4"), "L1", TODAY
        ),
    )
    with pytest.raises(PreconditionFailed, match=r"\(1 recorded\)"):
        _randomize(engine, code, "r")
    _do(
        engine,
        lambda s: patients.record_cycle(
            s, code, 2, dt.date(2024, 12, 30), Decimal("7.3"), "L2", TODAY
        ),
    )
    with pytest.raises(PreconditionFailed, match="pre-randomization assessment is missing"):
        _randomize(engine, code, "r")
    _do(
        engine,
        lambda s: patients.record_pre_randomization(
            s, code, dt.date(2025, 2, 24), True, "PD", None, TODAY
        ),
    )
    with pytest.raises(PreconditionFailed, match="radiological progression"):
        _randomize(engine, code, "r")
    with read_session(engine) as s:
        assert s.scalars(select(Randomization)).first() is None


def test_incomplete_screening_and_missing_setup_are_refused(engine: Engine) -> None:
    add_users(engine)
    code = "C01-0001"
    _one(engine, code)
    data = patient_file(code, 0)
    del data["consent"]
    _do(engine, lambda s: patients.screen_patient(s, data, today=TODAY))
    with pytest.raises(PreconditionFailed, match="incomplete"):
        _randomize(engine, code, "r")
    (ready,) = ready_patients(engine, 1, start=5)
    with pytest.raises(PreconditionFailed, match="not set up"):
        _randomize(engine, ready, "r")
    with unit_of_work(engine, STAT) as uow:
        rnd.configure(uow.session, STAT, "blocks")
    with pytest.raises(PreconditionFailed, match="no allocation list"):
        _randomize(engine, ready, "r")


def test_exhausted_stratum_list_is_refused(engine: Engine) -> None:
    _blocks(engine, per_stratum=1)  # one block of 2 or 4 per stratum
    codes = ready_patients(engine, 5, stratum=3)
    outcomes = []
    for c in codes:
        try:
            _randomize(engine, c, f"r{c}")
            outcomes.append("ok")
        except PreconditionFailed as exc:
            assert "exhausted" in str(exc)
            outcomes.append("exhausted")
    assert outcomes in (["ok"] * 2 + ["exhausted"] * 3, ["ok"] * 4 + ["exhausted"])
