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
    actor,
    add_users,
    not_childbearing,
    opened,
    patient_file,
    ready_patients,
    trial_on,
    work,
)

from reluth.auth.actor import Actor
from reluth.auth.roles import Role
from reluth.core.context import reading, writing
from reluth.db.session import read_session
from reluth.errors import Conflict, NotFound, PermissionDenied, PreconditionFailed
from reluth.i18n import use_locale
from reluth.i18n.messages import describe
from reluth.patients import service as patients
from reluth.randomization import integrity
from reluth.randomization import service as rnd
from reluth.randomization.models import AllocationSlot, Randomization
from reluth.treatment import service as treatment

SEED = "statistician-secret-seed-2025"
REVIEWER = Actor("rev1", Role.CENTRAL_REVIEWER)


def _blocks(engine: Engine, per_stratum: int = 20, by_centre: bool = False) -> None:
    add_users(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "blocks", stratify_by_centre=by_centre)
        rnd.generate_list(ctx, SEED, per_stratum)


def _randomize(
    engine: Engine, code: str, request: str, who: str | Actor = INVESTIGATOR
) -> rnd.RandomizationResult:
    person = actor(engine, who) if isinstance(who, str) else who
    with writing(engine, person, trial_on()) as ctx:
        return rnd.randomize(ctx, code, request)


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
        assert [r.arm for r in mine] == [opened(s)["arm"] for s in slots[: len(mine)]]
        assert all(s.patient_id is not None for s in slots[: len(mine)])
        assert all(s.patient_id is None for s in slots[len(mine) :])
    with read_session(engine) as s:
        assert set(s.scalars(select(Randomization.method))) == {"blocks"}


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
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "minimization", stratify_by_centre=True, p=Decimal("0.8"))
    codes = ready_patients(engine, 6)
    results = [_randomize(engine, c, f"m-{c}") for c in codes]
    assert not hasattr(results[-1], "details")  # sites are told the arm, not the scores
    with read_session(engine) as s:
        last = s.scalars(select(Randomization).order_by(Randomization.id.desc())).first()
    details = json.loads(last.details_json or "{}")  # type: ignore[union-attr]
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
    with work(engine, STAT) as ctx:
        rep = rnd.report(ctx)
    assert rep.total == 6 and sum(rep.by_arm.values()) == 6


def test_minimization_draws_from_the_operating_systems_random_source(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a test generator, minimization's random element is ``secrets.SystemRandom``
    (unpredictable: not a seeded Mersenne Twister a site could replay)."""
    import secrets

    draws: list[float] = []

    class Counting(secrets.SystemRandom):
        def random(self) -> float:
            value = super().random()
            draws.append(value)
            return value

    monkeypatch.setattr(rnd.secrets, "SystemRandom", Counting)
    add_users(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "minimization")
    codes = ready_patients(engine, 2)
    for c in codes:
        with work(engine, INVESTIGATOR) as ctx:
            rnd.randomize(ctx, c, f"sys-{c}")
    assert len(draws) == 2
    with read_session(engine) as s:
        stored = [
            json.loads(d or "{}")["draw"] for d in s.scalars(select(Randomization.details_json))
        ]
    assert stored == draws


def test_method_cannot_change_after_first_randomization(engine: Engine) -> None:
    add_users(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "minimization")
    with work(engine, STAT, reason="chose blocks after all") as ctx:
        rnd.configure(ctx, "minimization", p=Decimal("0.9"))
    (code,) = ready_patients(engine, 1)
    _randomize(engine, code, "x")
    with pytest.raises(Conflict, match="fixed"), work(engine, STAT, reason="x") as ctx:
        rnd.configure(ctx, "blocks")


def test_list_is_concealed_from_all_but_the_unblinded_statistician(engine: Engine) -> None:
    _blocks(engine, per_stratum=4)
    with pytest.raises(PermissionDenied), work(engine, NURSE) as ctx:
        rnd.generate_list(ctx, SEED, 4)
    for who in (actor(engine, NURSE), actor(engine, ADMIN), actor(engine, INVESTIGATOR), REVIEWER):
        with pytest.raises(PermissionDenied), reading(engine, who, trial_on()) as ctx:
            rnd.allocation_list(ctx)
        with pytest.raises(PermissionDenied), reading(engine, who, trial_on()) as ctx:
            rnd.report(ctx)  # per-stratum counts with small blocks predict the next arm
    with reading(engine, actor(engine, STAT), trial_on()) as ctx:
        listing = rnd.allocation_list(ctx)
        assert len(listing) >= 16 * 4
        assert integrity.check_allocations(ctx.session.connection(), None).findings == []
    (code,) = ready_patients(engine, 1)
    with pytest.raises(PermissionDenied):
        _randomize(engine, code, "r", who=REVIEWER)


def test_allocation_slots_never_reach_the_audit_trail(engine: Engine) -> None:
    from reluth.db.audit import AuditLog

    _blocks(engine, per_stratum=4)
    with read_session(engine) as s:
        tables = set(s.scalars(select(AuditLog.table_name)))
    assert "allocation_slots" not in tables and "allocation_lists" in tables


def test_list_tampering_is_detected_by_the_report(engine: Engine) -> None:
    """Sealed slots swapped between two positions no longer open: the list is not intact."""
    _blocks(engine, per_stratum=4)
    with engine.begin() as conn:
        first, second = conn.execute(
            select(AllocationSlot.id, AllocationSlot.sealed)
            .where(AllocationSlot.position.in_((1, 2)))
            .order_by(AllocationSlot.id)
            .limit(2)
        ).all()
        for target, source in ((first, second), (second, first)):
            conn.execute(
                AllocationSlot.__table__.update()
                .where(AllocationSlot.id == target.id)
                .values(sealed=source.sealed)
            )
    with reading(engine, actor(engine, STAT), trial_on()) as ctx:
        assert not rnd.report(ctx).list_intact


def test_a_slot_resealed_with_another_arm_breaks_the_list_hash(engine: Engine) -> None:
    """Even with the allocation key, a flipped upcoming slot no longer matches the content
    hash recorded (and audited) when the list was generated."""
    from reluth import sealing
    from reluth.config import Settings

    _blocks(engine, per_stratum=4)
    sealer = sealing.require_key(Settings.from_env()).sealer()
    with engine.begin() as conn:
        slot = conn.execute(select(AllocationSlot).where(AllocationSlot.position == 3)).first()
        assert slot is not None
        content = opened(slot)
        content["arm"] = "control" if content["arm"] == "experimental" else "experimental"
        place = sealing.slot_place(slot.list_id, slot.stratum_key, slot.position)
        conn.execute(
            AllocationSlot.__table__.update()
            .where(AllocationSlot.id == slot.id)
            .values(sealed=sealer.seal(content, place))
        )
    with reading(engine, actor(engine, STAT), trial_on()) as ctx:
        found = integrity.check_allocations(
            ctx.session.connection(), sealing.configured_key(ctx.trial.settings)
        ).findings
        assert not rnd.report(ctx).list_intact
    assert [(f.table, f.field) for f in found] == [("allocation_lists", "content_sha256")]


# ------------------------------------------------------------------------- preconditions


def _one(engine: Engine, code: str = "C01-0001") -> None:
    add_users(engine)
    with work(engine, NURSE) as ctx:
        patients.register_patient(ctx, "C01", code)


def _do(engine: Engine, fn: object, today: dt.date = dt.date(2025, 3, 5)) -> None:
    with work(engine, NURSE, today=today) as ctx:
        fn(ctx)  # type: ignore[operator]


def test_every_precondition_is_refused_with_its_reason(engine: Engine) -> None:
    _blocks(engine)
    code = "C01-0001"
    with pytest.raises(NotFound, match="not found"):
        _randomize(engine, code, "r")
    _one(engine, code)
    with pytest.raises(PreconditionFailed, match="has not been screened"):
        _randomize(engine, code, "r")
    bad = patient_file(code, 0, ecog=3)
    _do(engine, lambda s: patients.screen_patient(s, bad))
    with pytest.raises(PreconditionFailed, match=r"is not eligible: I7: ECOG 3") as refused:
        _randomize(engine, code, "r")
    assert refused.value.code == "not_eligible"  # the refusal in the reader's language:
    with use_locale("fr"):
        assert describe(refused.value) == (
            f"le patient {code} n’est pas éligible : I7 : ECOG 3 — il faut au plus 2 (critère I7)"
        )
    with use_locale("en"):
        assert describe(refused.value) == refused.value.message
    _do(engine, lambda s: patients.screen_patient(s, patient_file(code, 0)))
    with pytest.raises(PreconditionFailed, match="consent"):
        _randomize(engine, code, "r")
    _do(
        engine,
        lambda s: patients.include_patient(s, code, dt.date(2024, 10, 28), dt.date(2024, 10, 30)),
    )
    _do(engine, lambda s: not_childbearing(s, code))  # the example woman, postmenopausal
    with pytest.raises(PreconditionFailed, match=r"2 second-PRRT cycles.*\(0 recorded\)") as e:
        _randomize(engine, code, "r")
    with use_locale("fr"):
        assert "2 cycles de seconde PRRT sont requis" in describe(e.value)
    _do(
        engine,
        lambda s: treatment.record_cycle(s, code, 1, dt.date(2024, 11, 4), Decimal("7.4"), "L1"),
    )
    with pytest.raises(PreconditionFailed, match=r"\(1 recorded\)"):
        _randomize(engine, code, "r")
    _do(
        engine,
        lambda s: treatment.record_cycle(s, code, 2, dt.date(2024, 12, 30), Decimal("7.3"), "L2"),
    )
    with pytest.raises(PreconditionFailed, match="pre-randomization assessment is missing"):
        _randomize(engine, code, "r")
    _do(
        engine,
        lambda s: patients.record_pre_randomization(s, code, dt.date(2025, 2, 24), True, "PD"),
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
    _do(engine, lambda s: patients.screen_patient(s, data))
    with pytest.raises(PreconditionFailed, match="incomplete"):
        _randomize(engine, code, "r")
    (ready,) = ready_patients(engine, 1, start=5)
    with pytest.raises(PreconditionFailed, match="not set up"):
        _randomize(engine, ready, "r")
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "blocks")
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
