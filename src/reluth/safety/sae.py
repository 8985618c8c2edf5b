"""Pharmacovigilance receipt of serious adverse events: the act that stops the 24-hour clock.

A site records an SAE in the eCRF (``records.record_adverse_event``); pharmacovigilance sees it
at once with its clock (``service.sae_clock``) and acknowledges receipt here. An SAE is
*waiting* until that receipt exists. The receipt is a row written through the caller's audited
unit of work, so who acknowledged and when is also in the audit trail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.errors import Conflict, NotFound, PreconditionFailed
from reluth.patients.models import Patient
from reluth.protocol.definition import Protocol
from reluth.safety.models import AdverseEvent, SaeReceipt
from reluth.safety.service import sae_clock


@service(Action.WRITE, Resource.SAE_RECEIPT)
def acknowledge_receipt(ctx: Ctx, adverse_event_id: int) -> SaeReceipt:
    """Record that pharmacovigilance received serious adverse event ``adverse_event_id``."""
    session = ctx.session
    ae = session.get(AdverseEvent, adverse_event_id)
    patient = None if ae is None else session.get(Patient, ae.patient_id)
    if ae is None or patient is None or not ctx.sees_centre(patient.centre_id):
        raise NotFound(f"adverse event {adverse_event_id} not found")
    if not ae.serious:
        raise PreconditionFailed(
            f"adverse event {adverse_event_id} is not serious: only SAEs are acknowledged"
        )
    if receipts(session, [adverse_event_id]):
        raise Conflict(f"receipt of adverse event {adverse_event_id} is already acknowledged")
    row = SaeReceipt(
        adverse_event_id=adverse_event_id, received_at=ctx.now(), received_by=ctx.actor.username
    )
    session.add(row)
    session.flush()
    return row


def receipts(session: Session, adverse_event_ids: Iterable[int]) -> dict[int, SaeReceipt]:
    """Receipts of the given events, by event id."""
    ids = list(adverse_event_ids)
    if not ids:
        return {}
    rows = session.scalars(select(SaeReceipt).where(SaeReceipt.adverse_event_id.in_(ids)))
    return {r.adverse_event_id: r for r in rows}


@dataclass(frozen=True)
class Waiting:
    """Serious adverse events of some patients not yet acknowledged by pharmacovigilance."""

    count: int
    past_due: int  # of which the 24-hour clock has run out
    no_awareness_date: int  # of which the site has not given the awareness date


def waiting(
    session: Session, patient_ids: Iterable[int], now: dt.datetime, protocol: Protocol
) -> Waiting:
    pids = list(patient_ids)
    if not pids:
        return Waiting(0, 0, 0)
    rows = session.execute(
        select(AdverseEvent.awareness_date, AdverseEvent.awareness_time)
        .outerjoin(SaeReceipt, SaeReceipt.adverse_event_id == AdverseEvent.id)
        .where(
            AdverseEvent.serious.is_(True),
            AdverseEvent.patient_id.in_(pids),
            SaeReceipt.id.is_(None),
        )
    ).all()
    late = sum(
        1
        for day, at in rows
        if day is not None and sae_clock(day, now, None, at, protocol=protocol).late
    )
    return Waiting(len(rows), late, sum(1 for day, _at in rows if day is None))
