"""Serious adverse events: pharmacovigilance's receipt (the act that stops the 24-hour clock),
the site's initial and numbered follow-up reports, the sponsor's assessment (causality,
expectedness against the reference safety information, SUSAR and its clock) and the CIOMS-like
report of each.

A site records an SAE in the eCRF (``records.record_adverse_event``); pharmacovigilance sees it
at once with its clock (``service.sae_clock``) and acknowledges receipt here. An SAE is
*waiting* until that receipt exists. The receipt is a row written through the caller's audited
unit of work, so who acknowledged and when is also in the audit trail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.db import validate as v
from reluth.db.base import as_utc
from reluth.errors import Conflict, NotFound, PreconditionFailed, ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import Reason, Word, invalid, refusal, too_long
from reluth.i18n.vocabulary import AE_OUTCOMES, SAE_CRITERIA
from reluth.notify import outbox
from reluth.patients.models import Patient
from reluth.protocol.definition import Protocol
from reluth.safety import seriousness
from reluth.safety.dossier import Dossier, ReportView
from reluth.safety.models import AdverseEvent, SaeAssessment, SaeReceipt, SaeReport
from reluth.safety.records import OUTCOMES
from reluth.safety.service import sae_clock
from reluth.treatment.models import Administration


@service(Action.WRITE, Resource.SAE_RECEIPT)
def acknowledge_receipt(ctx: Ctx, adverse_event_id: int) -> SaeReceipt:
    """Record that pharmacovigilance received serious adverse event ``adverse_event_id``."""
    session = ctx.session
    ae = session.get(AdverseEvent, adverse_event_id)
    patient = None if ae is None else session.get(Patient, ae.patient_id)
    if ae is None or patient is None or not ctx.sees_centre(patient.centre_id):
        raise _no_event(adverse_event_id)
    if not ae.serious:
        raise refusal(
            PreconditionFailed,
            "not_serious",
            N_("adverse event {id} is not serious: only SAEs are acknowledged"),
            id=str(adverse_event_id),
        )
    if receipts(session, [adverse_event_id]):
        raise refusal(
            Conflict,
            "receipt_already_acknowledged",
            N_("receipt of adverse event {id} is already acknowledged"),
            id=str(adverse_event_id),
        )
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


# ------------------------------------------------------------- SAE reports and assessments

NARRATIVE_MAX = 8000
TREATMENT_MAX = 2000
REFERENCE_MAX = 80


def _serious_event(ctx: Ctx, adverse_event_id: int) -> tuple[AdverseEvent, Patient]:
    """A serious adverse event the actor may reach with the running service's permission."""
    session = ctx.session
    ae = session.get(AdverseEvent, adverse_event_id)
    patient = None if ae is None else session.get(Patient, ae.patient_id)
    if ae is None or patient is None or not ctx.sees_centre(patient.centre_id):
        raise _no_event(adverse_event_id)
    if not ae.serious:
        raise refusal(
            PreconditionFailed,
            "not_serious",
            N_("adverse event {id} is not serious: only SAEs are reported"),
            id=str(adverse_event_id),
        )
    return ae, patient


def _reports(session: Session, adverse_event_id: int) -> list[SaeReport]:
    return list(
        session.scalars(
            select(SaeReport)
            .where(SaeReport.adverse_event_id == adverse_event_id)
            .order_by(SaeReport.sequence)
        )
    )


report_name = seriousness.report_name


def _no_event(adverse_event_id: int) -> NotFound:
    """An unknown adverse event, or one of a centre the actor does not see."""
    return refusal(
        NotFound,
        "adverse_event_not_found",
        N_("adverse event {id} not found"),
        id=str(adverse_event_id),
    )


def _report_not_found(adverse_event_id: int, sequence: int) -> NotFound:
    return refusal(
        NotFound,
        "sae_report_not_found",
        N_("{report} of adverse event {id} not found"),
        report=report_name(sequence),
        id=str(adverse_event_id),
    )


def report_label(sequence: int) -> str:
    """The report's name in English (API, logs, refusals)."""
    return report_name(sequence).english()


@service(Action.WRITE, Resource.ADVERSE_EVENT)
def report_sae(ctx: Ctx, adverse_event_id: int, data: Mapping[str, Any]) -> SaeReport:
    """Send the initial report of a serious adverse event, or its next numbered follow-up:
    ``{"seriousness": [ICH E2A criteria] (default: the event's), "narrative", "action_taken",
    "treatment"?, "outcome"}``. At least one criterion; outcome fatal with criterion death."""
    ae, _patient = _serious_event(ctx, adverse_event_id)
    w = "sae_report"
    body = v.obj(data, w)
    given = body.get("seriousness")
    criteria = seriousness.parse_criteria(given, f"{w}.seriousness")
    if not criteria and given in (None, "", []):
        criteria = seriousness.loaded(ae.seriousness)
    if not criteria:
        raise ValidationError(
            f"{w}.seriousness",
            "no seriousness criterion (ICH E2A II.B)",
            ", ".join(seriousness.CRITERIA),
            code="required",
        )
    narrative = v.text(body, "narrative", w)
    assert narrative is not None
    if len(narrative) > NARRATIVE_MAX:
        raise too_long(f"{w}.narrative", len(narrative), NARRATIVE_MAX, N_("<= {limit}"))
    treatment = v.text(body, "treatment", w, optional=True)
    if treatment is not None and len(treatment) > TREATMENT_MAX:
        raise too_long(f"{w}.treatment", len(treatment), TREATMENT_MAX, N_("<= {limit}"))
    action = v.choice(body, "action_taken", w, tuple(seriousness.ACTIONS))
    outcome = v.choice(body, "outcome", w, OUTCOMES)
    if ("death" in criteria) != (outcome == "fatal"):
        raise invalid(
            f"{w}.outcome",
            "outcome_contradicts_criteria",
            N_("{outcome} with criteria {criteria}"),
            N_("death = fatal"),
            outcome=Word(AE_OUTCOMES.get(outcome, outcome)),
            criteria=[Word(SAE_CRITERIA.get(c, c)) for c in criteria],
        )
    sequence = len(_reports(ctx.session, adverse_event_id))
    row = SaeReport(
        adverse_event_id=adverse_event_id,
        sequence=sequence,
        reported_at=ctx.now(),
        reported_by=ctx.actor.username,
        seriousness=seriousness.stored(criteria) or "",
        narrative=narrative,
        action_taken=action,
        treatment=treatment,
        outcome=outcome,
        protocol_version=ctx.protocol.label,
    )
    ctx.session.add(row)
    try:
        ctx.session.flush()
    except IntegrityError:
        raise refusal(
            Conflict,
            "report_sent_concurrently",
            N_("a report of adverse event {id} was sent concurrently; reload"),
            id=str(adverse_event_id),
        ) from None
    report = report_name(sequence)
    outbox.notify(
        ctx,
        "sae_report",
        outbox.pharmacovigilance(ctx),
        Reason(
            "mail.sae_report_subject",
            N_("SAE {report}: {patient}, {term}"),
            {"report": report, "patient": _patient.patient_code, "term": ae.term},
        ),
        Reason(
            "mail.sae_report",
            N_(
                "The {report} of serious adverse event {id} ({term}, grade {grade}) of patient "
                "{patient} was sent by {user}.\nCriteria: {criteria}; outcome {outcome}.\n"
                "Assess it and download the CIOMS-like report: /adverse-events/{id}"
            ),
            {
                "report": report,
                "id": str(ae.id),
                "term": ae.term,
                "grade": ae.grade,
                "patient": _patient.patient_code,
                "user": ctx.actor.username,
                "criteria": [Word(SAE_CRITERIA.get(c, c)) for c in criteria],
                "outcome": Word(AE_OUTCOMES.get(outcome, outcome)),
            },
        ),
    )
    return row


def _report(ctx: Ctx, adverse_event_id: int, sequence: int) -> tuple[SaeReport, AdverseEvent]:
    ae, _patient = _serious_event(ctx, adverse_event_id)
    row = ctx.session.scalars(
        select(SaeReport).where(
            SaeReport.adverse_event_id == adverse_event_id, SaeReport.sequence == sequence
        )
    ).first()
    if row is None:
        raise _report_not_found(adverse_event_id, sequence)
    return row, ae


def _assessment(session: Session, report_id: int) -> SaeAssessment | None:
    return session.scalars(
        select(SaeAssessment).where(SaeAssessment.report_id == report_id)
    ).first()


@service(Action.WRITE, Resource.SAE_ASSESSMENT)
def assess_report(
    ctx: Ctx,
    adverse_event_id: int,
    sequence: int,
    causality: str,
    expectedness: str,
    comment: str | None = None,
) -> SaeAssessment:
    """The sponsor's assessment of one report (pharmacovigilance): causality (a reasonable
    possibility, or not) and expectedness against the protocol's reference safety information,
    whose document and version are stored with it; related and unexpected makes a SUSAR."""
    report, _ae = _report(ctx, adverse_event_id, sequence)
    w = "assessment"
    body = {"causality": causality, "expectedness": expectedness, "comment": comment}
    cause = v.choice(body, "causality", w, seriousness.CAUSALITY)
    expected = v.choice(body, "expectedness", w, seriousness.EXPECTEDNESS)
    note = v.text(body, "comment", w, optional=True)
    if _assessment(ctx.session, report.id) is not None:
        raise refusal(
            Conflict,
            "report_already_assessed",
            N_(
                "the {report} of adverse event {id} is already assessed: assess the next "
                "follow-up report"
            ),
            report=report_name(sequence),
            id=str(adverse_event_id),
        )
    rsi = ctx.protocol.safety.reference_safety_information
    row = SaeAssessment(
        report_id=report.id,
        causality=cause,
        expectedness=expected,
        rsi_document=rsi.document,
        rsi_version=rsi.version,
        susar=seriousness.is_susar(cause, expected),
        comment=note,
        assessed_at=ctx.now(),
        assessed_by=ctx.actor.username,
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


@service(Action.WRITE, Resource.SAE_ASSESSMENT)
def record_susar_submission(
    ctx: Ctx, adverse_event_id: int, sequence: int, reference: str
) -> SaeAssessment:
    """Record that a SUSAR was submitted to the authorities (e.g. the EudraVigilance or
    CTIS reference): stops its 7- or 15-day clock."""
    report, _ae = _report(ctx, adverse_event_id, sequence)
    row = _assessment(ctx.session, report.id)
    if row is None or not row.susar:
        raise refusal(
            PreconditionFailed,
            "not_a_susar",
            N_("the {report} of adverse event {id} is not assessed as a SUSAR"),
            report=report_name(sequence),
            id=str(adverse_event_id),
        )
    if row.submitted_at is not None:
        raise refusal(
            Conflict,
            "submission_already_recorded",
            N_("its submission is already recorded ({reference})"),
            reference=row.submission_reference,
        )
    text = v.text({"reference": reference}, "reference", "submission")
    assert text is not None
    if len(text) > REFERENCE_MAX:
        raise too_long("submission.reference", len(text), REFERENCE_MAX, N_("<= {limit}"))
    ctx.default_reason(f"SUSAR submission recorded ({text})")
    row.submitted_at = ctx.now()
    row.submission_reference = text
    ctx.session.flush()
    return row


@service(Action.READ, Resource.ADVERSE_EVENT)
def dossier(ctx: Ctx, adverse_event_id: int) -> Dossier:
    """Everything about one SAE: reports in order with their assessments and SUSAR clocks."""
    ae, patient = _serious_event(ctx, adverse_event_id)
    session, now, zone = ctx.session, ctx.now(), ctx.protocol.safety.zone
    receipt = receipts(session, [ae.id]).get(ae.id)
    received = None if receipt is None else as_utc(receipt.received_at)
    clock = None
    if ae.awareness_date is not None:
        clock = sae_clock(
            ae.awareness_date, now, received, ae.awareness_time, protocol=ctx.protocol
        )
    views = []
    for r in _reports(session, ae.id):
        a = _assessment(session, r.id)
        criteria = seriousness.loaded(r.seriousness)
        sclock = None
        if a is not None and a.susar:
            submitted = None if a.submitted_at is None else as_utc(a.submitted_at)
            sclock = seriousness.susar_clock(as_utc(r.reported_at), criteria, now, zone, submitted)
        views.append(ReportView(r, report_label(r.sequence), criteria, a, sclock))
    cycles = []
    if ctx.actor.can(Action.READ, Resource.TREATMENT):  # cycles 3-4 tell the arm
        cycles = [
            (a.cycle, a.administered_on, a.activity_gbq)
            for a in session.scalars(
                select(Administration)
                .where(Administration.patient_id == patient.id)
                .order_by(Administration.cycle)
            )
        ]
    return Dossier(
        ae,
        patient.patient_code,
        patient.centre.code,
        patient.sex,
        patient.birth_year,
        seriousness.loaded(ae.seriousness),
        clock,
        receipt,
        cycles,
        views,
        can_report=ctx.actor.may(Action.WRITE, Resource.ADVERSE_EVENT, patient.centre_id),
        can_assess=ctx.actor.can(Action.WRITE, Resource.SAE_ASSESSMENT),
    )


@service(Action.READ, Resource.ADVERSE_EVENT)
def cioms_pdf(ctx: Ctx, adverse_event_id: int, sequence: int) -> bytes:
    """The CIOMS-I-like PDF of one report (:mod:`reluth.safety.cioms`)."""
    from reluth.safety import cioms

    found = dossier(ctx, adverse_event_id)
    view = next((r for r in found.reports if r.report.sequence == sequence), None)
    if view is None:
        raise _report_not_found(adverse_event_id, sequence)
    return cioms.render_pdf(cioms.form(found, view, ctx.protocol))
