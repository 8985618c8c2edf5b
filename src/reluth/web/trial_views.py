"""Read models for the pages and the API: patient list and timeline, filtered by the policy.

Everything a template may show is decided here, once: a field the person may not see (the
arm, treatment administrations, cycle 3/4) is never put into the view, so no template can leak
it. Patients of centres the person is not assigned to are reported as not found (no hint that
the ID exists).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from reluth.auth.policy import Action, Principal, Resource
from reluth.db.audit import AuditLog
from reluth.db.base import as_utc
from reluth.dosimetry.models import DoseResult
from reluth.errors import NotFound
from reluth.patients import service as patients
from reluth.patients.models import Inclusion, Patient, PreRandomizationAssessment, Screening
from reluth.protocol.definition import load_protocol
from reluth.protocol.schedule import VisitStatus, planned_visits
from reluth.qol import scoring
from reluth.qol.models import QolQuestionnaire
from reluth.queries.models import DataQuery
from reluth.randomization.models import Randomization
from reluth.response.models import LesionMeasurement, TumourAssessment
from reluth.safety import sae
from reluth.safety.models import AdverseEvent, LabResult, SaeReceipt
from reluth.safety.service import SaeClock, sae_clock
from reluth.treatment import service as treatment
from reluth.treatment.models import Administration, Visit


def visible_patient(
    db: Session,
    who: Principal,
    code: str,
    resource: Resource = Resource.PATIENT,
    action: Action = Action.READ,
) -> Patient:
    """The patient ``code`` if ``who`` may ``action`` ``resource`` of its centre; otherwise the
    same NotFound as for an unknown ID (cross-centre ID guessing learns nothing)."""
    who.require(action, resource)
    try:
        patient = patients.get_patient(db, code)
    except NotFound:
        raise NotFound(f"patient {code} not found") from None
    if not who.sees_centre(patient.centre_id):
        raise NotFound(f"patient {code} not found")
    return patient


_S = TypeVar("_S", bound=Select)


def centre_scoped(stmt: _S, who: Principal) -> _S:
    """Restrict a query joined to ``Patient`` to the centres ``who`` may see."""
    if who.all_centres:
        return stmt
    return stmt.where(Patient.centre_id.in_(who.centre_ids or {-1}))


@dataclass(frozen=True)
class PatientRow:
    code: str
    centre: str
    status: str
    registered_on: dt.date


def _status(screened: str | None, included: bool, randomized: bool) -> str:
    if randomized:
        return "randomized"
    if included:
        return "included"
    return f"screened: {screened}" if screened else "registered"


#: What the patient search accepts: pieces of a patient code (``C07``, ``0012``, ``c07-00``).
PATIENT_SEARCH = r"^[A-Za-z0-9 -]*$"


def patient_list(
    db: Session, who: Principal, search: str = "", limit: int = 500
) -> list[PatientRow]:
    who.require(Action.READ, Resource.PATIENT)
    stmt = select(Patient).order_by(Patient.patient_code)
    stmt = centre_scoped(stmt, who)
    if search.strip():
        stmt = stmt.where(Patient.patient_code.contains(search.strip().upper()))
    rows = list(db.scalars(stmt.limit(limit)))
    ids = [p.id for p in rows]
    screened: dict[int, str] = {}
    for pid, status in db.execute(
        select(Screening.patient_id, Screening.status)
        .where(Screening.patient_id.in_(ids))
        .order_by(Screening.id)
    ).all():
        screened[pid] = status
    included = set(db.scalars(select(Inclusion.patient_id).where(Inclusion.patient_id.in_(ids))))
    randomized = set(
        db.scalars(select(Randomization.patient_id).where(Randomization.patient_id.in_(ids)))
    )
    return [
        PatientRow(
            p.patient_code,
            p.centre.code,
            _status(screened.get(p.id), p.id in included, p.id in randomized),
            p.registered_at.date(),
        )
        for p in rows
    ]


@dataclass(frozen=True)
class AeRow:
    id: int
    patient_code: str
    centre: str
    term: str
    grade: int
    serious: bool
    relatedness: str
    outcome: str
    onset_date: dt.date
    awareness_date: dt.date | None
    clock: SaeClock | None
    received_by: str | None = None  # pharmacovigilance's receipt (stops the clock)
    received_at: dt.datetime | None = None
    can_acknowledge: bool = False


def ae_row(
    ae: AdverseEvent,
    patient: Patient,
    now: dt.datetime,
    receipt: SaeReceipt | None = None,
    acknowledges: bool = False,
) -> AeRow:
    """One adverse event as shown, with the 24-hour clock when it is serious (stopped by
    pharmacovigilance's ``receipt``); ``acknowledges``: the viewer may acknowledge receipt."""
    received_at = as_utc(receipt.received_at) if receipt is not None else None
    clock = None
    if ae.serious and ae.awareness_date is not None:
        clock = sae_clock(ae.awareness_date, now, received_at, ae.awareness_time)
    return AeRow(
        ae.id,
        patient.patient_code,
        patient.centre.code,
        ae.term,
        ae.grade,
        ae.serious,
        ae.relatedness,
        ae.outcome,
        ae.onset_date,
        ae.awareness_date,
        clock,
        receipt.received_by if receipt is not None else None,
        received_at,
        can_acknowledge=ae.serious and receipt is None and acknowledges,
    )


def adverse_events(
    db: Session, who: Principal, now: dt.datetime, patient_id: int | None = None
) -> list[AeRow]:
    """Adverse events the person may see, serious ones first, with the SAE clock."""
    who.require(Action.READ, Resource.ADVERSE_EVENT)
    stmt = select(AdverseEvent, Patient).join(Patient, Patient.id == AdverseEvent.patient_id)
    if patient_id is not None:
        stmt = stmt.where(AdverseEvent.patient_id == patient_id)
    stmt = centre_scoped(stmt, who)
    found = db.execute(stmt.order_by(AdverseEvent.onset_date.desc())).all()
    received = sae.receipts(db, [ae.id for ae, _patient in found if ae.serious])
    acknowledges = who.can(Action.WRITE, Resource.SAE_RECEIPT)
    rows = [ae_row(ae, p, now, received.get(ae.id), acknowledges) for ae, p in found]
    rows.sort(
        key=lambda r: (
            not r.serious,
            r.received_by is not None,
            r.clock.due_by if r.clock else dt.datetime.max.replace(tzinfo=dt.UTC),
        )
    )
    return rows


@dataclass(frozen=True)
class CriterionView:
    id: str
    text: str
    result: str
    reason: str


@dataclass(frozen=True)
class Timeline:
    code: str
    centre: str
    sex: str | None
    birth_year: int | None
    screening_status: str | None
    screening_date: dt.date | None
    criteria: list[CriterionView]
    stratum: str | None
    inclusion_date: dt.date | None
    consent_date: dt.date | None
    cycles: list[dict[str, Any]] | None  # None when the person may not see treatment
    pre_randomization: dict[str, Any] | None
    randomized_on: dt.date | None
    arm: str | None  # None when hidden (or not randomized)
    labs: list[dict[str, Any]] | None
    adverse_events: list[AeRow] | None = None
    queries: list[QueryRow] | None = None
    qol: list[QolRow] | None = None  # None when the person may not see QoL
    visits: list[VisitRow] | None = None  # None when the person may not see visits
    can: dict[str, bool] = field(default_factory=dict)


def timeline(db: Session, who: Principal, code: str, now: dt.datetime) -> Timeline:
    patient = visible_patient(db, who, code)
    screening = patients.latest_screening(db, patient)
    criteria: list[CriterionView] = []
    if screening is not None:
        for c in json.loads(screening.result_json)["criteria"]:
            criteria.append(CriterionView(c["id"], c["text"], c["result"], c["reason"]))
    inclusion = db.scalars(select(Inclusion).where(Inclusion.patient_id == patient.id)).first()
    sees_treatment = who.can(Action.READ, Resource.TREATMENT)
    cycles = None
    if sees_treatment:
        cycles = [
            {
                "cycle": a.cycle,
                "date": a.administered_on,
                "activity_gbq": a.activity_gbq,
                "lot": a.lot,
            }
            for a in db.scalars(
                select(Administration)
                .where(Administration.patient_id == patient.id)
                .order_by(Administration.cycle)
            )
        ]
    pre = db.scalars(
        select(PreRandomizationAssessment).where(
            PreRandomizationAssessment.patient_id == patient.id
        )
    ).first()
    rand = db.scalars(select(Randomization).where(Randomization.patient_id == patient.id)).first()
    labs = None
    if who.can(Action.READ, Resource.LAB):
        labs = [
            {
                "id": r.id,
                "date": r.sample_date,
                "analyte": r.analyte,
                "value": r.value,
                "unit": r.unit,
                "grade": r.ctcae_grade,
            }
            for r in db.scalars(
                select(LabResult)
                .where(LabResult.patient_id == patient.id)
                .order_by(LabResult.sample_date, LabResult.id)
            )
        ]
    can = {
        "screen": who.may(Action.WRITE, Resource.SCREENING, patient.centre_id),
        "include": who.may(Action.WRITE, Resource.PATIENT, patient.centre_id),
        "assess": who.may(Action.WRITE, Resource.LOCAL_ASSESSMENT, patient.centre_id),
        "treat": who.may(Action.WRITE, Resource.TREATMENT, patient.centre_id),
        "randomize": who.may(Action.WRITE, Resource.RANDOMIZATION, patient.centre_id),
        "lab": who.may(Action.WRITE, Resource.LAB, patient.centre_id),
        "audit": who.may(Action.READ, Resource.AUDIT, patient.centre_id),
        "ae": who.may(Action.WRITE, Resource.ADVERSE_EVENT, patient.centre_id),
        "query": who.may(Action.WRITE, Resource.QUERY, patient.centre_id),
        "qol": who.may(Action.WRITE, Resource.QOL, patient.centre_id),
        "visit": who.may(Action.WRITE, Resource.VISIT, patient.centre_id),
        "dosimetry": who.may(Action.READ, Resource.DOSIMETRY, patient.centre_id),
    }
    aes = None
    if who.can(Action.READ, Resource.ADVERSE_EVENT):
        aes = adverse_events(db, who, now, patient.id)
    return Timeline(
        code=patient.patient_code,
        centre=patient.centre.code,
        sex=patient.sex,
        birth_year=patient.birth_year,
        screening_status=screening.status if screening else None,
        screening_date=screening.assessment_date if screening else None,
        criteria=criteria,
        stratum=screening.strata_code if screening else None,
        inclusion_date=inclusion.inclusion_date if inclusion else None,
        consent_date=inclusion.consent_date if inclusion else None,
        cycles=cycles,
        pre_randomization=None
        if pre is None
        else {
            "date": pre.assessment_date,
            "progression": pre.radiological_progression,
            "response": pre.overall_response,
        },
        randomized_on=rand.randomized_at.date() if rand else None,
        arm=rand.arm if rand is not None and who.can(Action.READ, Resource.ARM) else None,
        labs=labs,
        adverse_events=aes,
        queries=data_queries(db, who, patient.id) if who.can(Action.READ, Resource.QUERY) else None,
        qol=qol_rows(db, patient.id) if who.can(Action.READ, Resource.QOL) else None,
        visits=visit_rows(db, who, patient, now.date())
        if who.can(Action.READ, Resource.VISIT)
        else None,
        can=can,
    )


@dataclass(frozen=True)
class VisitRow:
    code: str
    label: str
    target_date: dt.date
    window_start: dt.date
    window_end: dt.date
    actual_date: dt.date | None
    status: str  # in_window | early | late (done); missed | due | upcoming (not done)
    days_from_target: int | None


def _visit_row(s: VisitStatus) -> VisitRow:
    v = s.visit
    return VisitRow(
        v.code,
        v.label,
        v.target_date,
        v.window_start,
        v.window_end,
        s.actual_date,
        s.status,
        s.days_from_target,
    )


def visit_rows(db: Session, who: Principal, patient: Patient, as_of: dt.date) -> list[VisitRow]:
    """The planned visits of a randomized patient with their window status; treatment-cycle
    visits (C3/C4 reveal the arm) only for people who may read treatment."""
    who.require(Action.READ, Resource.VISIT)
    sees_treatment = who.can(Action.READ, Resource.TREATMENT)
    return [
        _visit_row(s)
        for s in treatment.visit_schedule(db, patient, as_of)
        if sees_treatment or s.visit.kind != "treatment"
    ]


def visible_visit(
    db: Session, who: Principal, code: str, visit_code: str, as_of: dt.date, action: Action
) -> tuple[Patient, VisitRow]:
    """One planned visit of a visible patient. Treatment-cycle visits need the treatment
    permission too (403 for any such code, whatever the patient's arm: nothing is learnt)."""
    patient = visible_patient(db, who, code, Resource.VISIT, action)
    if visit_code in treatment.treatment_visit_codes():
        who.require(action, Resource.TREATMENT)
    return patient, _visit_row(treatment.visit_status(db, patient.patient_code, visit_code, as_of))


@dataclass(frozen=True)
class QueryRow:
    id: int
    patient_code: str
    field: str
    status: str
    question: str
    opened_by: str
    opened_at: dt.datetime
    answer: str | None
    answered_by: str | None
    can_answer: bool
    can_close: bool


def query_row(q: DataQuery, patient_code: str, who: Principal) -> QueryRow:
    return QueryRow(
        q.id,
        patient_code,
        q.field,
        q.status,
        q.question,
        q.opened_by,
        q.opened_at,
        q.answer,
        q.answered_by,
        can_answer=q.status != "closed" and who.can(Action.WRITE, Resource.QUERY_ANSWER),
        can_close=q.status != "closed" and who.can(Action.WRITE, Resource.QUERY),
    )


def data_queries(db: Session, who: Principal, patient_id: int | None = None) -> list[QueryRow]:
    """Data queries on patients of the centres the person may see, open ones first."""
    who.require(Action.READ, Resource.QUERY)
    stmt = select(DataQuery, Patient).join(Patient, Patient.id == DataQuery.patient_id)
    if patient_id is not None:
        stmt = stmt.where(DataQuery.patient_id == patient_id)
    stmt = centre_scoped(stmt, who)
    order = {"open": 0, "answered": 1, "closed": 2}
    rows = [
        query_row(q, p.patient_code, who) for q, p in db.execute(stmt.order_by(DataQuery.id)).all()
    ]
    return sorted(rows, key=lambda r: order.get(r.status, 3))


def query_patient(db: Session, who: Principal, query_id: int) -> Patient:
    """The patient of query ``query_id`` if ``who`` sees its centre; otherwise the same NotFound
    as for an unknown id."""
    row = db.get(DataQuery, query_id)
    patient = None if row is None else db.get(Patient, row.patient_id)
    if patient is None or not who.sees_centre(patient.centre_id):
        raise NotFound(f"query {query_id} not found")
    return patient


def visible_query(db: Session, who: Principal, query_id: int) -> DataQuery:
    query_patient(db, who, query_id)
    row = db.get(DataQuery, query_id)
    assert row is not None
    return row


def visible_adverse_event(db: Session, who: Principal, ae_id: int) -> AdverseEvent:
    """The adverse event if ``who`` may read adverse events of its centre; else NotFound."""
    who.require(Action.READ, Resource.ADVERSE_EVENT)
    row = db.get(AdverseEvent, ae_id)
    patient = None if row is None else db.get(Patient, row.patient_id)
    if row is None or patient is None or not who.sees_centre(patient.centre_id):
        raise NotFound(f"adverse event {ae_id} not found")
    return row


#: Instruments offered on the QoL entry page (names as ``reluth.qol.scoring.instrument`` takes).
QOL_INSTRUMENTS = ("QLQ-C30", "QLQ-GINET21")


def qol_timepoints() -> list[str]:
    """QoL time point codes of the protocol schedule (QOL-W00 is baseline). They do not depend
    on the arm: any arm and date give the same codes."""
    protocol = load_protocol()
    visits = planned_visits(dt.date(2000, 1, 1), protocol.arm_codes[0], protocol)
    return [v.code for v in visits if v.kind == "qol"]


def _hundredths(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class QolRow:
    instrument: str
    timepoint: str
    completed_on: dt.date
    scales: dict[str, Decimal | None]  # in the instrument's scale order
    summary: Decimal | None
    id: int | None = None  # the saved questionnaire (its correction page)


def qol_row(q: QolQuestionnaire) -> QolRow:
    """One recorded questionnaire with the scores stored at entry."""
    scores = json.loads(q.scores_json or "{}", parse_float=Decimal, parse_int=Decimal)
    stored = scores.get("scales", {})
    order = list(scoring.instrument(q.instrument).scales)
    return QolRow(
        q.instrument,
        q.timepoint,
        q.completed_on,
        {c: _hundredths(stored[c]) for c in order if c in stored},
        _hundredths(scores.get("summary")),
        q.id,
    )


def qol_rows(db: Session, patient_id: int) -> list[QolRow]:
    """Recorded questionnaires of one patient with the scores stored at entry."""
    return [
        qol_row(q)
        for q in db.scalars(
            select(QolQuestionnaire)
            .where(QolQuestionnaire.patient_id == patient_id)
            .order_by(QolQuestionnaire.completed_on, QolQuestionnaire.id)
        )
    ]


def audit_history(db: Session, who: Principal, code: str) -> list[AuditLog]:
    """Audit rows of every record of one patient, oldest first. Administrations only for roles
    that read treatment, the randomization only for roles that read the arm."""
    patient = visible_patient(db, who, code, Resource.AUDIT)
    pid = patient.id
    models: list[Any] = [
        Screening,
        Inclusion,
        PreRandomizationAssessment,
        LabResult,
        AdverseEvent,
        DataQuery,
        QolQuestionnaire,
        TumourAssessment,
    ]
    if who.can(Action.READ, Resource.TREATMENT):
        models.append(Administration)
    if who.can(Action.READ, Resource.ARM):
        models.append(Randomization)
    if who.can(Action.READ, Resource.DOSIMETRY):
        models.append(DoseResult)
    records: list[tuple[str, list[str]]] = [(Patient.__tablename__, [str(pid)])]
    for model in models:
        ids = db.scalars(select(model.id).where(model.patient_id == pid))
        records.append((model.__tablename__, [str(i) for i in ids]))
    # Visits: cycle 3/4 visits exist only in the experimental arm, so only with read treatment.
    hidden = (
        set() if who.can(Action.READ, Resource.TREATMENT) else treatment.treatment_visit_codes()
    )
    visits = db.execute(select(Visit.id, Visit.visit_code).where(Visit.patient_id == pid))
    records.append((Visit.__tablename__, [str(v) for v, vcode in visits if vcode not in hidden]))
    receipts = db.scalars(
        select(SaeReceipt.id)
        .join(AdverseEvent, AdverseEvent.id == SaeReceipt.adverse_event_id)
        .where(AdverseEvent.patient_id == pid)
    )
    records.append((SaeReceipt.__tablename__, [str(i) for i in receipts]))
    lesions = db.scalars(
        select(LesionMeasurement.id)
        .join(TumourAssessment, TumourAssessment.id == LesionMeasurement.assessment_id)
        .where(TumourAssessment.patient_id == pid)
    )
    records.append((LesionMeasurement.__tablename__, [str(i) for i in lesions]))
    rows: list[AuditLog] = []
    for table, keys in records:
        if keys:
            rows.extend(
                db.scalars(
                    select(AuditLog).where(
                        AuditLog.table_name == table, AuditLog.record_id.in_(keys)
                    )
                )
            )
    rows.sort(key=lambda r: r.seq)
    return rows
