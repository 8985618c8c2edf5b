"""Pharmacovigilance receipt of serious adverse events: the rule, the clock it stops, the
count of SAEs still waiting, and the audit row, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select
from tests.store.storekit import INVESTIGATOR, add_account, at, ready_patients, work

from reluth.auth.roles import Role
from reluth.db.audit import AuditLog
from reluth.db.base import as_utc
from reluth.errors import Conflict, NotFound, PreconditionFailed, ValidationError
from reluth.patients import service as patients
from reluth.protocol.definition import load_protocol
from reluth.safety import records, sae
from reluth.safety.service import sae_clock
from reluth.web.app import prepare_database

SITE = INVESTIGATOR
PV = "pv"
PROTOCOL = load_protocol()
AWARE = dt.date(2025, 3, 10)
# Date-only awareness: the clock starts at the beginning of the awareness day at the site
# (00:00 Europe/Paris = 23:00 UTC the day before, in March), so it is due 24 h later.
DUE = dt.datetime(2025, 3, 10, 23, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = prepare_database(db_url)
    ready_patients(eng, 0, centres=("C01",))
    add_account(eng, PV, Role.PHARMACOVIGILANCE)
    yield eng
    eng.dispose()


_made = [0]


def _ae(engine: Engine, serious: bool, awareness: dt.date | None = AWARE) -> tuple[int, int]:
    """An included patient with one adverse event; returns (patient id, event id)."""
    _made[0] += 1
    (code,) = ready_patients(engine, 1, centres=("C01",), start=_made[0] * 10)
    with work(engine, SITE, today=dt.date(2025, 3, 11)) as ctx:
        p = patients.find_patient(ctx.session, code)
        data = {
            "patient_id": p.patient_code,
            "term": "Platelet count decreased",
            "grade": 4 if serious else 1,
            "serious": serious,
            "relatedness": "probable",
            "outcome": "recovering",
            "onset_date": "2025-03-09",
        }
        if awareness is not None:
            data["awareness_date"] = awareness.isoformat()
        row = records.record_adverse_event(ctx, data)
        return p.id, row.id


def test_clock_stops_at_receipt_on_both_sides_of_the_due_time() -> None:
    on_time = sae_clock(AWARE, DUE + dt.timedelta(days=5), received_at=DUE, protocol=PROTOCOL)
    assert on_time.late is False and on_time.hours_left == Decimal("0.0")
    late = sae_clock(AWARE, DUE, received_at=DUE + dt.timedelta(seconds=1), protocol=PROTOCOL)
    assert late.late is True
    early = sae_clock(
        AWARE,
        DUE + dt.timedelta(days=5),
        received_at=DUE - dt.timedelta(hours=6),
        protocol=PROTOCOL,
    )
    assert early.late is False and early.hours_left == Decimal("6.0")
    # Without a receipt the clock keeps running against "now".
    assert sae_clock(AWARE, DUE + dt.timedelta(days=5), protocol=PROTOCOL).late is True


@pytest.mark.parametrize(
    ("day", "at", "due_utc"),
    [
        # winter (CET, UTC+1): 14:30 in Paris is 13:30 UTC; due 24 h later
        (dt.date(2025, 3, 10), dt.time(14, 30), dt.datetime(2025, 3, 11, 13, 30, tzinfo=dt.UTC)),
        # summer (CEST, UTC+2)
        (dt.date(2025, 7, 1), dt.time(9, 0), dt.datetime(2025, 7, 2, 7, 0, tzinfo=dt.UTC)),
        # the night the clocks go forward (2025-03-30 02:00 -> 03:00): 01:30 CET is 00:30 UTC
        (dt.date(2025, 3, 30), dt.time(1, 30), dt.datetime(2025, 3, 31, 0, 30, tzinfo=dt.UTC)),
        # date only: from the beginning of that day at the site (00:00 Paris, CEST)
        (dt.date(2025, 7, 1), None, dt.datetime(2025, 7, 1, 22, 0, tzinfo=dt.UTC)),
        # date only, winter (00:00 CET = 23:00 UTC the day before)
        (dt.date(2025, 3, 10), None, dt.datetime(2025, 3, 10, 23, 0, tzinfo=dt.UTC)),
        # date only on the 23-hour day (clocks forward): 24 elapsed hours from 00:00 CET
        (dt.date(2025, 3, 30), None, dt.datetime(2025, 3, 30, 23, 0, tzinfo=dt.UTC)),
        # date only on the 25-hour day (clocks back): 24 elapsed hours from 00:00 CEST
        (dt.date(2025, 10, 26), None, dt.datetime(2025, 10, 26, 22, 0, tzinfo=dt.UTC)),
    ],
)
def test_clock_starts_at_the_site_time_of_awareness(
    day: dt.date, at: dt.time | None, due_utc: dt.datetime
) -> None:
    assert sae_clock(day, due_utc, awareness_time=at, protocol=PROTOCOL).due_by == due_utc
    assert sae_clock(day, due_utc, awareness_time=at, protocol=PROTOCOL).late is False
    second_before = due_utc - dt.timedelta(seconds=1)
    assert sae_clock(day, second_before, awareness_time=at, protocol=PROTOCOL).late is False
    assert (
        sae_clock(day, due_utc + dt.timedelta(seconds=1), awareness_time=at, protocol=PROTOCOL).late
        is True
    )


def test_receipt_is_stored_once_and_audited(engine: Engine) -> None:
    _pid, ae_id = _ae(engine, serious=True)
    moment = DUE - dt.timedelta(hours=3)
    with work(engine, PV, trial=at(moment)) as ctx:
        row = sae.acknowledge_receipt(ctx, ae_id)
        assert row.received_by == "pv"
    with work(engine, PV, trial=at(moment)) as ctx, pytest.raises(Conflict, match="already"):
        sae.acknowledge_receipt(ctx, ae_id)
    with work(engine, PV) as ctx:
        stored = sae.receipts(ctx.session, [ae_id])[ae_id]
        assert as_utc(stored.received_at) == moment
        audit = ctx.session.scalars(
            select(AuditLog).where(AuditLog.table_name == "sae_receipts")
        ).all()
    assert audit and {(a.username, a.role, a.action) for a in audit} == {
        ("pv", "pharmacovigilance", "insert")
    }
    assert {a.record_id for a in audit} == {str(stored.id)}


def test_only_known_serious_events_can_be_acknowledged(engine: Engine) -> None:
    _pid, ae_id = _ae(engine, serious=False)
    with work(engine, PV, trial=at(DUE)) as ctx:
        with pytest.raises(PreconditionFailed, match="not serious"):
            sae.acknowledge_receipt(ctx, ae_id)
        with pytest.raises(NotFound):
            sae.acknowledge_receipt(ctx, ae_id + 1000)
    with work(engine, PV) as ctx:
        assert sae.receipts(ctx.session, [ae_id]) == {}


def test_waiting_counts_unacknowledged_saes_and_those_past_due(engine: Engine) -> None:
    p1, ae1 = _ae(engine, serious=True)
    p2, ae2 = _ae(engine, serious=True)
    p3, _ae3 = _ae(engine, serious=True, awareness=AWARE + dt.timedelta(days=1))
    p4, _ae4 = _ae(engine, serious=False)
    pids = [p1, p2, p3, p4]
    proto = load_protocol()
    with work(engine, PV) as ctx:
        before_due = sae.waiting(ctx.session, pids, DUE, proto)
        after_due = sae.waiting(ctx.session, pids, DUE + dt.timedelta(seconds=1), proto)
    assert before_due == sae.Waiting(count=3, past_due=0, no_awareness_date=0)
    assert after_due == sae.Waiting(count=3, past_due=2, no_awareness_date=0)
    with work(engine, PV, trial=at(DUE)) as ctx:
        sae.acknowledge_receipt(ctx, ae1)
    with work(engine, PV) as ctx:
        # The third SAE falls due exactly now: not yet late.
        s = ctx.session
        assert sae.waiting(s, pids, DUE + dt.timedelta(days=1), proto) == sae.Waiting(2, 1, 0)
        assert sae.waiting(s, [p1], DUE, proto) == sae.Waiting(0, 0, 0)
        assert sae.waiting(s, [], DUE, proto) == sae.Waiting(0, 0, 0)
    assert ae2 != ae1


def test_awareness_time_is_recorded_corrected_with_a_reason_and_audited(engine: Engine) -> None:
    from reluth.safety.service import edit_adverse_event

    (code,) = ready_patients(engine, 1, centres=("C01",), start=500)
    with work(engine, SITE, today=dt.date(2025, 3, 11)) as ctx:
        p = patients.find_patient(ctx.session, code)
        base = {
            "patient_id": p.patient_code,
            "term": "Anemia",
            "grade": 3,
            "serious": True,
            "relatedness": "possible",
            "outcome": "recovering",
            "onset_date": "2025-03-09",
            "awareness_date": "2025-03-10",
        }
        with pytest.raises(ValidationError) as err:
            records.record_adverse_event(
                ctx, {**base, "awareness_date": None, "serious": False, "awareness_time": "10:00"}
            )
        assert err.value.field == "adverse_event.awareness_time"
        row = records.record_adverse_event(ctx, {**base, "awareness_time": "14:30"})
        code, ae_id = p.patient_code, row.id
    reason = "time read from the source note"
    with work(engine, SITE, today=AWARE, reason=reason) as ctx:
        edit_adverse_event(ctx, code, ae_id, {"awareness_time": "09:15"})
    with work(engine, SITE) as ctx:
        changed = ctx.session.scalars(
            select(AuditLog).where(
                AuditLog.table_name == "adverse_events",
                AuditLog.record_id == str(ae_id),
                AuditLog.field == "awareness_time",
                AuditLog.action == "update",
            )
        ).one()
    assert (changed.old_value, changed.new_value) == ('"14:30:00"', '"09:15:00"')
    assert changed.reason == "time read from the source note"
