"""Lutathera administrations (every cycle) and visits against the protocol schedule.

Cycles of the second PRRT (1-2, every patient) follow inclusion and precede the
pre-randomization assessment; the experimental arm's cycles (3-4) follow the randomization —
numbers from the protocol file. Visits are recorded against the post-randomization schedule
with their window status. Every date passes :mod:`reluth.patients.timeline`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from reluth.auth.policy import Action, Resource
from reluth.clinical.service import require_pregnancy_test
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.db import edits
from reluth.db.session import require_reason
from reluth.errors import Conflict, NotFound, PreconditionFailed, ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import Joined, invalid, refusal, too_long
from reluth.patients import service as patients
from reluth.patients import timeline
from reluth.patients.models import Inclusion, Patient
from reluth.protocol.definition import Protocol
from reluth.protocol.schedule import PlannedVisit, VisitStatus, classify, planned_visits
from reluth.randomization.models import Randomization
from reluth.treatment.models import Administration, Visit
from reluth.units import to_decimal

_BY_PATIENT_ADMIN = select(Administration).where(Administration.patient_id == bindparam("pid"))

#: What a correction of a saved administration may change (the cycle number stays).
CYCLE_EDITABLE = ("administered_on", "activity_gbq", "lot")
LOT_MAX = 40  # administrations.lot
ACTIVITY_MIN_GBQ, ACTIVITY_MAX_GBQ = Decimal("0.1"), Decimal("10")


def _cycle_number(cycle: Any, protocol: Protocol) -> int:
    accepted = protocol.all_cycles
    pre = protocol.pre_randomization_cycles
    text = ", ".join(str(c) for c in accepted)
    if isinstance(cycle, bool) or not isinstance(cycle, int | str):
        raise ValidationError("cycle", repr(cycle), text)
    try:
        number = int(str(cycle).strip())
    except ValueError:
        raise ValidationError("cycle", repr(cycle), text) from None
    if number not in accepted:
        raise invalid(
            "cycle",
            "unknown_cycle",
            N_("{value}"),
            N_("{pre} (second PRRT), {after} (after randomization)"),
            value=str(number),
            pre=tuple(str(c) for c in pre),
            after=tuple(str(c) for c in accepted if c not in pre),
        )
    return number


def _cycle_values(
    administered_on: dt.date, activity_gbq: Decimal, lot: str, today: dt.date
) -> dict[str, Any]:
    """The checked columns of one administration (entry and correction alike)."""
    timeline.in_range("administered_on", administered_on, today)
    if not isinstance(activity_gbq, Decimal):
        activity_gbq = to_decimal(activity_gbq, "activity_gbq")
    if not activity_gbq.is_finite() or not ACTIVITY_MIN_GBQ <= activity_gbq <= ACTIVITY_MAX_GBQ:
        raise invalid(
            "activity_gbq",
            "activity_out_of_range",
            N_("{activity} GBq"),
            N_("{lo} to {hi} GBq ({planned} planned)"),
            activity=activity_gbq,
            lo=ACTIVITY_MIN_GBQ,
            hi=ACTIVITY_MAX_GBQ,
            planned=Decimal("7.4"),
        )
    exponent = activity_gbq.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -3:
        raise invalid(
            "activity_gbq",
            "too_many_decimals",
            N_("{activity} GBq has more than 3 decimals"),
            N_("e.g. {short} or {long}"),
            activity=activity_gbq,
            short=Decimal("7.4"),
            long=Decimal("7.385"),
        )
    if not isinstance(lot, str) or not lot.strip():
        raise invalid("lot", "required", N_("empty"), N_("the batch number on the vial"))
    if len(lot.strip()) > LOT_MAX:
        raise too_long("lot", len(lot.strip()), LOT_MAX)
    if not lot.strip().isprintable():
        raise invalid(
            "lot", "control_characters", N_("contains control characters"), N_("printable text")
        )
    return {"administered_on": administered_on, "activity_gbq": activity_gbq, "lot": lot.strip()}


def arm_of(session: Session, patient: Patient) -> str | None:
    rand = session.scalars(
        select(Randomization.arm).where(Randomization.patient_id == patient.id)
    ).first()
    return rand


@service(Action.WRITE, Resource.TREATMENT)
def record_cycle(
    ctx: Ctx,
    patient_code: str,
    cycle: int | str,
    administered_on: dt.date,
    activity_gbq: Decimal,
    lot: str,
) -> Administration:
    """A Lutathera administration: the second-PRRT cycles after inclusion, the arm's cycles
    only in an arm that gives them, after randomization."""
    proto = ctx.protocol
    number = _cycle_number(cycle, proto)
    values = _cycle_values(administered_on, activity_gbq, lot, ctx.today())
    patient = patients.get_patient(ctx, patient_code)
    session = ctx.session
    if patients.first_for_patient(session, Inclusion, patient.id) is None:
        raise patients.not_included(patient_code)
    if number not in proto.pre_randomization_cycles:
        arm = arm_of(session, patient)
        if arm is None or number not in proto.arm_cycles(arm):
            givers = [a.code for a in proto.arms if number in proto.arm_cycles(a.code)]
            raise refusal(
                PreconditionFailed,
                "cycle_not_in_arm",
                N_("cycle {cycle} is given only in the {arms} arm after randomization"),
                cycle=number,
                arms=Joined(tuple(givers), N_(" or ")),
            )
    previous = session.scalars(_BY_PATIENT_ADMIN, {"pid": patient.id}).all()
    if any(a.cycle == number for a in previous):
        raise refusal(
            Conflict,
            "cycle_already_recorded",
            N_("cycle {cycle} of patient {patient} is already recorded"),
            cycle=number,
            patient=patient_code,
        )
    if number > 1 and number - 1 not in {a.cycle for a in previous}:
        raise refusal(
            PreconditionFailed,
            "previous_cycle_missing",
            N_("cycle {previous} must be recorded before cycle {cycle}"),
            previous=number - 1,
            cycle=number,
        )
    patients.check_date(ctx, patient, "cycle", administered_on, "administered_on", cycle=number)
    require_pregnancy_test(session, proto, patient, administered_on)
    row = Administration(
        patient_id=patient.id, cycle=number, protocol_version=proto.label, **values
    )
    session.add(row)
    session.flush()
    return row


def cycle_edit_form(row: Administration) -> dict[str, str]:
    """The editable fields of a saved administration as text, as a correction form shows them."""
    return {
        "administered_on": row.administered_on.isoformat(),
        "activity_gbq": format(row.activity_gbq.normalize(), "f"),
        "lot": row.lot,
    }


def _cycle_of(ctx: Ctx, patient_code: str, cycle: int) -> Administration:
    cycle = _cycle_number(cycle, ctx.protocol)  # a cycle the protocol does not have: 422
    patient = patients.get_patient(ctx, patient_code)
    for row in ctx.session.scalars(_BY_PATIENT_ADMIN, {"pid": patient.id}):
        if row.cycle == cycle:
            return row
    raise refusal(
        NotFound,
        "cycle_not_recorded",
        N_("cycle {cycle} of {patient} is not recorded"),
        cycle=cycle,
        patient=patient_code,
    )


@service(Action.READ, Resource.TREATMENT)
def get_cycle(ctx: Ctx, patient_code: str, cycle: int) -> Administration:
    return _cycle_of(ctx, patient_code, cycle)


@service(Action.WRITE, Resource.TREATMENT)
def edit_cycle(
    ctx: Ctx, patient_code: str, cycle: int, changes: Mapping[str, Any]
) -> Administration:
    """Correct a saved administration (date, activity, lot), checked by the entry rules and
    kept in the trial's order. Needs a reason in the unit of work."""
    require_reason(ctx.session, "a saved administration")
    edits.only(changes, CYCLE_EDITABLE)
    row = _cycle_of(ctx, patient_code, cycle)
    merged: dict[str, Any] = {**cycle_edit_form(row), **changes}
    day = edits.as_date(merged["administered_on"], "administered_on")
    activity = to_decimal(merged["activity_gbq"], "activity_gbq")
    values = _cycle_values(day, activity, merged["lot"], ctx.today())
    patient = patients.get_patient(ctx, patient_code)
    m = patients.milestones(ctx.session, patient)
    others = {n: d for n, d in m.cycles.items() if n != cycle}
    timeline.check(
        timeline.Milestones(
            consent=m.consent,
            inclusion=m.inclusion,
            cycles=others,
            pre_randomization=m.pre_randomization,
            randomization=m.randomization,
            death=m.death,
            withdrawals=m.withdrawals,
            end_of_study=m.end_of_study,
        ),
        "cycle",
        day,
        ctx.today(),
        "administered_on",
        cycle=cycle,
        pre_cycles=ctx.protocol.pre_randomization_cycles,
    )
    if day != row.administered_on:
        require_pregnancy_test(ctx.session, ctx.protocol, patient, day)
    edits.apply(row, values, f"cycle {cycle}")
    ctx.session.flush()
    return row


def cycles_of(session: Session, patient: Patient) -> list[Administration]:
    return list(
        session.scalars(_BY_PATIENT_ADMIN.order_by(Administration.cycle), {"pid": patient.id})
    )


# ---------------------------------------------------------------------------------- visits


def treatment_visit_codes(protocol: Protocol) -> frozenset[str]:
    """Codes of treatment-cycle visits in any arm (C3, C4): whether one is planned for a patient
    reveals the arm, so only people who may see treatment may see or record them."""
    return frozenset(
        v.code
        for arm in protocol.arm_codes
        for v in planned_visits(dt.date(2000, 1, 1), arm, protocol)
        if v.kind == "treatment"
    )


def _schedule(
    session: Session, patient: Patient, proto: Protocol
) -> tuple[dt.date, dict[str, PlannedVisit]]:
    rand = session.scalars(
        select(Randomization).where(Randomization.patient_id == patient.id)
    ).first()
    if rand is None:
        raise refusal(
            PreconditionFailed,
            "not_randomized",
            N_("patient {patient} is not randomized: no visit schedule"),
            patient=patient.patient_code,
        )
    randomized_on = rand.randomized_at.date()
    return randomized_on, {v.code: v for v in planned_visits(randomized_on, rand.arm, proto)}


def _planned(ctx: Ctx, planned: dict[str, PlannedVisit], visit_code: str) -> PlannedVisit:
    """The planned visit ``visit_code``; treatment-cycle visits only for actors who may see
    treatment (their existence reveals the arm), else the same message as an unknown code."""
    hidden = (
        set()
        if ctx.actor.can(Action.READ, Resource.TREATMENT)
        else treatment_visit_codes(ctx.protocol)
    )
    visible = [c for c in planned if c not in hidden]
    if visit_code not in planned or visit_code in hidden:
        raise invalid(
            "visit_code",
            "visit_not_planned",
            N_("{value} is not planned"),
            visible,
            value=repr(visit_code),
        )
    return planned[visit_code]


def _recorded(session: Session, patient_id: int, visit_code: str) -> Visit | None:
    return session.scalars(
        select(Visit).where(Visit.patient_id == patient_id, Visit.visit_code == visit_code)
    ).first()


def _visit_date(
    ctx: Ctx, patient: Patient, visit: PlannedVisit, day: dt.date, randomized_on: dt.date
) -> dt.date:
    """A visit date in the trial's order and within the schedule's plausibility bounds: not
    before randomization, and not later than the end of follow-up plus the visit's window."""
    patients.check_date(ctx, patient, "visit", day, "visit_date")
    sched = ctx.protocol.schedule
    end = randomized_on + dt.timedelta(days=int(sched.follow_up_months * sched.days_per_month))
    horizon = max(end, visit.window_end)
    if day > horizon:
        raise invalid(
            "visit_date",
            "after_end_of_follow_up",
            N_("{day} is after the end of follow-up ({horizon})"),
            N_("<= {horizon}"),
            day=day,
            horizon=horizon,
        )
    return day


@service(Action.WRITE, Resource.VISIT)
def record_visit(
    ctx: Ctx, patient_code: str, visit_code: str, visit_date: dt.date
) -> tuple[Visit, VisitStatus]:
    """A visit of the post-randomization schedule; returns it with its window status."""
    proto, today = ctx.protocol, ctx.today()
    patient = patients.get_patient(ctx, patient_code)
    timeline.in_range("visit_date", visit_date, today)
    randomized_on, planned = _schedule(ctx.session, patient, proto)
    visit = _planned(ctx, planned, visit_code)
    if visit.code in treatment_visit_codes(proto):
        ctx.actor.require(Action.WRITE, Resource.TREATMENT, patient.centre_id)
    _visit_date(ctx, patient, visit, visit_date, randomized_on)
    if _recorded(ctx.session, patient.id, visit_code):
        raise refusal(
            Conflict,
            "visit_already_recorded",
            N_("visit {visit} of {patient} is already recorded"),
            visit=visit_code,
            patient=patient_code,
        )
    row = Visit(
        patient_id=patient.id,
        visit_code=visit_code,
        visit_date=visit_date,
        protocol_version=proto.label,
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row, classify(visit, visit_date, today)


#: What a correction of a recorded visit may change (the visit code stays).
VISIT_EDITABLE = ("visit_date",)


@service(Action.WRITE, Resource.VISIT)
def edit_visit(
    ctx: Ctx, patient_code: str, visit_code: str, changes: Mapping[str, Any]
) -> tuple[Visit, VisitStatus]:
    """Correct the date of a recorded visit, checked as at entry; returns the new window
    status. Needs a reason in the unit of work."""
    require_reason(ctx.session, "a recorded visit")
    edits.only(changes, VISIT_EDITABLE)
    patient = patients.get_patient(ctx, patient_code)
    randomized_on, planned = _schedule(ctx.session, patient, ctx.protocol)
    visit = _planned(ctx, planned, visit_code)
    row = _recorded(ctx.session, patient.id, visit_code)
    if row is None:
        raise refusal(
            NotFound,
            "visit_not_recorded",
            N_("visit {visit} of {patient} is not recorded"),
            visit=visit_code,
            patient=patient_code,
        )
    day = edits.as_date(changes.get("visit_date", row.visit_date), "visit_date")
    timeline.in_range("visit_date", day, ctx.today())
    edits.apply(row, {"visit_date": _visit_date(ctx, patient, visit, day, randomized_on)}, "visit")
    ctx.session.flush()
    return row, classify(visit, row.visit_date, ctx.today())


def visit_schedule(
    session: Session, patient: Patient, as_of: dt.date, protocol: Protocol
) -> list[VisitStatus]:
    """Every planned visit of a randomized patient with its actual date and window status
    (in window / early / late when done; missed / due / upcoming when not); empty before
    randomization. Callers (read services) decide who may see treatment-cycle visits."""
    try:
        _randomized_on, planned = _schedule(session, patient, protocol)
    except PreconditionFailed:
        return []
    done = {
        v.visit_code: v.visit_date
        for v in session.scalars(select(Visit).where(Visit.patient_id == patient.id))
    }
    cycles_end, visits_end = timeline.collection_ends(patients.milestones(session, patient))
    return [
        classify(v, done.get(v.code), as_of)
        for v in planned.values()
        if v.code in done or not _closed(v, cycles_end, visits_end)
    ]


def _closed(visit: PlannedVisit, cycles_end: dt.date | None, visits_end: dt.date | None) -> bool:
    """Whether a planned visit not done is no longer expected: its window opens after the
    withdrawal, death or end of study that closes the schedule (a treatment visit: on or after
    a withdrawal from treatment)."""
    if visit.kind == "treatment" and cycles_end is not None:
        return visit.window_start >= cycles_end or visit.target_date >= cycles_end
    return visits_end is not None and visit.window_start > visits_end


@service(Action.READ, Resource.VISIT)
def visit_status(ctx: Ctx, patient_code: str, visit_code: str) -> VisitStatus:
    """One planned visit of a patient with its actual date (if recorded) and window status."""
    patient = patients.get_patient(ctx, patient_code)
    _randomized_on, planned = _schedule(ctx.session, patient, ctx.protocol)
    visit = _planned(ctx, planned, visit_code)
    row = _recorded(ctx.session, patient.id, visit_code)
    return classify(visit, None if row is None else row.visit_date, ctx.today())
