"""Backup randomization: the statistician (only) records a randomization performed by the
documented backup procedure (reason, time, envelope or list reference) through the same
service, so the allocation list stays consistent: the slot is consumed in order, a mismatch
with the list is refused without writing, the integrity check holds, minimization counts it."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import Engine, select
from storekit import INVESTIGATOR, NURSE, STAT, add_users, opened, ready_patients, trial_on, work

from reluth import sealing
from reluth.errors import Conflict, PermissionDenied, PreconditionFailed, ValidationError
from reluth.patients.service import find_patient, latest_screening
from reluth.randomization import integrity
from reluth.randomization import service as rnd
from reluth.randomization.models import AllocationSlot, BackupRandomization, Randomization

SEED = "statistician-secret-seed-2025"
PERFORMED = dt.datetime(2025, 3, 4, 14, 20, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def _blocks(engine: Engine) -> None:
    add_users(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, SEED, 8)


def _next_slot(engine: Engine, code: str) -> AllocationSlot:
    with work(engine, STAT) as ctx:
        p = find_patient(ctx.session, code)
        key = latest_screening(ctx.session, p).strata_code  # type: ignore[union-attr]
        return ctx.session.scalars(
            select(AllocationSlot)
            .where(AllocationSlot.stratum_key == key, AllocationSlot.patient_id.is_(None))
            .order_by(AllocationSlot.position)
        ).first()  # type: ignore[return-value]


def _backup(
    engine: Engine, code: str, arm: str, ref: str = "ENV-0001", who: str = STAT
) -> rnd.RandomizationResult:
    with work(engine, who) as ctx:
        return rnd.record_backup_randomization(
            ctx, code, arm, PERFORMED, "eCRF server down (incident 42)", ref
        )


def test_backup_consumes_the_next_slot_and_keeps_the_list_whole(engine: Engine) -> None:
    _blocks(engine)
    first, second = ready_patients(engine, 2, stratum=3)
    slot = _next_slot(engine, first)
    listed = opened(slot)["arm"]
    other = next(a for a in trial_on().protocol.arm_codes if a != listed)
    with pytest.raises(Conflict, match="nothing was recorded"):
        _backup(engine, first, other)
    result = _backup(engine, first, listed)
    assert result.arm == listed
    assert result.randomized_at == PERFORMED.astimezone(dt.UTC)
    with work(engine, STAT) as ctx:
        rand = ctx.session.scalars(select(Randomization)).one()
        back = ctx.session.scalars(select(BackupRandomization)).one()
        assert rand.slot_id == slot.id and back.randomization_id == rand.id
        assert (back.reference, back.recorded_by) == ("ENV-0001", STAT)
        assert json.loads(rand.details_json or "{}") == {"backup": True}
        findings = integrity.check_allocations(
            ctx.session.connection(), sealing.configured_key(ctx.trial.settings)
        ).findings
        assert findings == []
    # the next (online) randomization of the stratum takes the following slot
    following = _next_slot(engine, second)
    assert following.position == slot.position + 1
    with work(engine, INVESTIGATOR) as ctx:
        online = rnd.randomize(ctx, second, "req-second")
    assert online.arm == opened(following)["arm"]
    with work(engine, STAT) as ctx, pytest.raises(Conflict, match="already randomized"):
        rnd.record_backup_randomization(ctx, second, listed, PERFORMED, "again", "ENV-0002")
    with pytest.raises(Conflict, match="already recorded"):
        _backup(engine, second, listed, ref="ENV-0001")


def test_only_the_statistician_records_and_every_field_is_checked(engine: Engine) -> None:
    _blocks(engine)
    (code,) = ready_patients(engine, 1)
    for who in (INVESTIGATOR, NURSE):
        with pytest.raises(PermissionDenied):
            _backup(engine, code, "experimental", who=who)
    with work(engine, STAT) as ctx:
        with pytest.raises(ValidationError) as err:
            rnd.record_backup_randomization(ctx, code, "placebo", PERFORMED, "down", "E1")
        assert err.value.field == "arm"
        with pytest.raises(ValidationError) as err:
            rnd.record_backup_randomization(ctx, code, "experimental", PERFORMED, " ", "E1")
        assert err.value.field == "reason"
        with pytest.raises(ValidationError) as err:
            rnd.record_backup_randomization(ctx, code, "experimental", PERFORMED, "down", "")
        assert err.value.field == "reference"
        future = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
        with pytest.raises(ValidationError, match="future"):
            rnd.record_backup_randomization(ctx, code, "experimental", future, "down", "E1")
        naive = dt.datetime(2025, 3, 4, 14, 20)
        with pytest.raises(ValidationError) as err:
            rnd.record_backup_randomization(ctx, code, "experimental", naive, "down", "E1")
        assert err.value.field == "performed_at"


def test_preconditions_hold_as_of_the_backup_time(engine: Engine) -> None:
    _blocks(engine)
    (code,) = ready_patients(engine, 1, start=5)
    before_assessment = dt.datetime(2025, 2, 20, 10, 0, tzinfo=dt.UTC)  # assessed 2025-02-24
    with work(engine, STAT) as ctx, pytest.raises((PreconditionFailed, ValidationError)):
        rnd.record_backup_randomization(ctx, code, "experimental", before_assessment, "down", "E9")


def test_minimization_counts_the_backup_randomization(engine: Engine) -> None:
    add_users(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "minimization")
    (code,) = ready_patients(engine, 1, start=10)
    arm = trial_on().protocol.arm_codes[0]
    _backup(engine, code, arm, ref="LIST-B-007")
    with work(engine, STAT) as ctx:
        rand = ctx.session.scalars(select(Randomization)).one()
        counts = rnd.minimization_counts(
            ctx.session, json.loads(rand.strata_json), "C01", False, ctx.protocol.arm_codes
        )
    assert all(c[arm] == 1 for c in counts.values() if sum(c.values()))
    assert rand.slot_id is None and rand.method == "minimization"
