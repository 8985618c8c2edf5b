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

from reluth.auth.policy import Action, Resource
from reluth.clinical import forms as clinical_forms
from reluth.clinical import service as clinical
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.db.audit import AuditLog, in_chain
from reluth.db.base import as_utc
from reluth.dosimetry.models import DoseResult
from reluth.errors import NotFound, PermissionDenied, ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import Word, refusal
from reluth.i18n.vocabulary import ROLES
from reluth.patients import service as patients
from reluth.patients.models import Inclusion, Patient, PreRandomizationAssessment, Screening
from reluth.protocol.definition import Protocol
from reluth.protocol.schedule import VisitStatus
from reluth.protocol.schedule import qol_timepoints as schedule_qol_timepoints
from reluth.qol import scoring
from reluth.qol.models import QolQuestionnaire
from reluth.queries.models import DataQuery
from reluth.randomization.models import CONCEALED_FIELDS, Randomization
from reluth.response.models import LesionMeasurement, TumourAssessment
from reluth.safety import sae
from reluth.safety.models import AdverseEvent, LabResult, SaeReceipt
from reluth.safety.service import SaeClock, sae_clock
from reluth.treatment import service as treatment
from reluth.treatment.models import Administration, Visit


def visible_patient(
    ctx: Ctx,
    code: str,
    resource: Resource = Resource.PATIENT,
    action: Action = Action.READ,
) -> Patient:
    """The patient ``code`` if the actor may ``action`` ``resource`` of its centre (the policy
    is asked); otherwise the same NotFound as for an unknown ID (cross-centre ID guessing
    learns nothing). Pages use it before showing a form for that permission."""
    with ctx.acting(action, resource):
        return patients.get_patient(ctx, code)


_S = TypeVar("_S", bound=Select)


def centre_scoped(stmt: _S, ctx: Ctx) -> _S:
    """Restrict a query joined to ``Patient`` to the centres the actor may see."""
    if ctx.actor.all_centres:
        return stmt
    return stmt.where(Patient.centre_id.in_(ctx.actor.centre_ids or {-1}))


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


@service(Action.READ, Resource.PATIENT)
def patient_list(ctx: Ctx, search: str = "", limit: int = 500) -> list[PatientRow]:
    """Patients of the actor's centres, optionally filtered by a piece of their code."""
    stmt = select(Patient).order_by(Patient.patient_code)
    stmt = centre_scoped(stmt, ctx)
    if search.strip():
        stmt = stmt.where(Patient.patient_code.contains(search.strip().upper()))
    rows = list(ctx.session.scalars(stmt.limit(limit)))
    ids = [p.id for p in rows]
    screened: dict[int, str] = {}
    for pid, status in ctx.session.execute(
        select(Screening.patient_id, Screening.status)
        .where(Screening.patient_id.in_(ids))
        .order_by(Screening.id)
    ).all():
        screened[pid] = status
    included = set(
        ctx.session.scalars(select(Inclusion.patient_id).where(Inclusion.patient_id.in_(ids)))
    )
    randomized = set(
        ctx.session.scalars(
            select(Randomization.patient_id).where(Randomization.patient_id.in_(ids))
        )
    )
    return [
        PatientRow(
            p.patient_code,
            p.centre.code,
            _status(screened.get(p.id), p.id in included, p.id in randomized),
            site_day(ctx.trial.zone, p.registered_at),
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
    receipt: SaeReceipt | None,
    acknowledges: bool,
    protocol: Protocol,
) -> AeRow:
    """One adverse event as shown, with the 24-hour clock when it is serious (stopped by
    pharmacovigilance's ``receipt``); ``acknowledges``: the viewer may acknowledge receipt."""
    received_at = as_utc(receipt.received_at) if receipt is not None else None
    clock = None
    if ae.serious and ae.awareness_date is not None:
        clock = sae_clock(ae.awareness_date, now, received_at, ae.awareness_time, protocol=protocol)
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


@service(Action.READ, Resource.ADVERSE_EVENT)
def adverse_events(ctx: Ctx, patient_id: int | None = None) -> list[AeRow]:
    """Adverse events the person may see, serious ones first, with the SAE clock."""
    now = ctx.now()
    stmt = select(AdverseEvent, Patient).join(Patient, Patient.id == AdverseEvent.patient_id)
    if patient_id is not None:
        stmt = stmt.where(AdverseEvent.patient_id == patient_id)
    stmt = centre_scoped(stmt, ctx)
    found = ctx.session.execute(stmt.order_by(AdverseEvent.onset_date.desc())).all()
    received = sae.receipts(ctx.session, [ae.id for ae, _patient in found if ae.serious])
    acknowledges = ctx.actor.can(Action.WRITE, Resource.SAE_RECEIPT)
    rows = [ae_row(ae, p, now, received.get(ae.id), acknowledges, ctx.protocol) for ae, p in found]
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
    """A stored criterion's verdict; ``message`` is its reason as key and values (shown in the
    reader's language by the ``reason`` filter), ``reason`` the English text stored with it."""

    id: str
    text: str
    result: str
    reason: str
    message: dict[str, Any] | None = None
    #: whether it lets the patient through (an exclusion criterion does when not met)
    passes: bool | None = None


def site_day(zone: dt.tzinfo, moment: dt.datetime) -> dt.date:
    """The calendar day of ``moment`` at the trial's sites (a registration at 00:30 in Paris is
    that day, not the day before in UTC)."""
    return as_utc(moment).astimezone(zone).date()


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
    #: the clinical forms the person may read (conmeds, history, deviations, ...)
    forms: list[FormSection] = field(default_factory=list)
    #: death, end of study and withdrawals
    disposition: patients.Disposition | None = None
    #: the day of registration at the site (its time zone, as every date the site types)
    registered_on: dt.date | None = None


@dataclass(frozen=True)
class FormSection:
    """One repeating form on the timeline: its records, as the form's fields."""

    form_id: str
    title: str
    columns: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    can_write: bool


def form_sections(ctx: Ctx, patient: Patient) -> list[FormSection]:
    """The clinical forms of a patient the actor may read (each by its listing service's
    declared permission), with whether they may record one."""
    out = []
    for form_id, (schema, recorder, lister) in clinical.CATALOGUE.items():
        read = lister.__reluth_service__  # type: ignore[attr-defined]
        write = recorder.__reluth_service__  # type: ignore[attr-defined]
        if not ctx.actor.may(read.action, read.resource, patient.centre_id):
            continue
        out.append(
            FormSection(
                form_id,
                schema.title,
                clinical_forms.fields(schema),
                lister(ctx, patient.patient_code),
                ctx.actor.may(write.action, write.resource, patient.centre_id),
            )
        )
    return out


@service(Action.READ, Resource.PATIENT)
def timeline(ctx: Ctx, code: str) -> Timeline:
    """Everything of one patient the actor may see, in the order of the trial."""
    patient = patients.get_patient(ctx, code)
    screening = patients.latest_screening(ctx.session, patient)
    criteria: list[CriterionView] = []
    if screening is not None:
        for c in json.loads(screening.result_json)["criteria"]:
            criteria.append(
                CriterionView(
                    c["id"],
                    c["text"],
                    c["result"],
                    c["reason"],
                    message=c.get("message"),
                    passes=c.get("passes"),
                )
            )
    inclusion = ctx.session.scalars(
        select(Inclusion).where(Inclusion.patient_id == patient.id)
    ).first()
    sees_treatment = ctx.actor.can(Action.READ, Resource.TREATMENT)
    cycles = None
    if sees_treatment:
        cycles = [
            {
                "cycle": a.cycle,
                "date": a.administered_on,
                "activity_gbq": a.activity_gbq,
                "lot": a.lot,
            }
            for a in ctx.session.scalars(
                select(Administration)
                .where(Administration.patient_id == patient.id)
                .order_by(Administration.cycle)
            )
        ]
    pre = ctx.session.scalars(
        select(PreRandomizationAssessment).where(
            PreRandomizationAssessment.patient_id == patient.id
        )
    ).first()
    rand = ctx.session.scalars(
        select(Randomization).where(Randomization.patient_id == patient.id)
    ).first()
    labs = None
    if ctx.actor.can(Action.READ, Resource.LAB):
        labs = [
            {
                "id": r.id,
                "date": r.sample_date,
                "analyte": r.analyte,
                "value": r.value,
                "unit": r.unit,
                "grade": r.ctcae_grade,
            }
            for r in ctx.session.scalars(
                select(LabResult)
                .where(LabResult.patient_id == patient.id)
                .order_by(LabResult.sample_date, LabResult.id)
            )
        ]
    can = {
        "screen": ctx.actor.may(Action.WRITE, Resource.SCREENING, patient.centre_id),
        "include": ctx.actor.may(Action.WRITE, Resource.PATIENT, patient.centre_id),
        "assess": ctx.actor.may(Action.WRITE, Resource.LOCAL_ASSESSMENT, patient.centre_id),
        "treat": ctx.actor.may(Action.WRITE, Resource.TREATMENT, patient.centre_id),
        "randomize": ctx.actor.may(Action.WRITE, Resource.RANDOMIZATION, patient.centre_id),
        "lab": ctx.actor.may(Action.WRITE, Resource.LAB, patient.centre_id),
        "audit": ctx.actor.may(Action.READ, Resource.AUDIT, patient.centre_id),
        "ae": ctx.actor.may(Action.WRITE, Resource.ADVERSE_EVENT, patient.centre_id),
        "query": ctx.actor.may(Action.WRITE, Resource.QUERY, patient.centre_id),
        "qol": ctx.actor.may(Action.WRITE, Resource.QOL, patient.centre_id),
        "visit": ctx.actor.may(Action.WRITE, Resource.VISIT, patient.centre_id),
        "dosimetry": ctx.actor.may(Action.READ, Resource.DOSIMETRY, patient.centre_id),
    }
    aes = None
    if ctx.actor.can(Action.READ, Resource.ADVERSE_EVENT):
        aes = adverse_events(ctx, patient.id)
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
        arm=rand.arm if rand is not None and ctx.actor.can(Action.READ, Resource.ARM) else None,
        labs=labs,
        adverse_events=aes,
        queries=data_queries(ctx, patient.id)
        if ctx.actor.can(Action.READ, Resource.QUERY)
        else None,
        qol=qol_rows(ctx.session, patient.id) if ctx.actor.can(Action.READ, Resource.QOL) else None,
        visits=visit_rows(ctx, patient) if ctx.actor.can(Action.READ, Resource.VISIT) else None,
        can=can,
        forms=form_sections(ctx, patient),
        disposition=patients.disposition(ctx, patient.patient_code),
        registered_on=site_day(ctx.trial.zone, patient.registered_at),
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


@service(Action.READ, Resource.VISIT)
def visit_rows(ctx: Ctx, patient: Patient) -> list[VisitRow]:
    """The planned visits of a randomized patient with their window status today; treatment-
    cycle visits (C3/C4 reveal the arm) only for people who may read treatment."""
    if not ctx.sees_centre(patient.centre_id):
        raise refusal(
            NotFound,
            "patient_not_found",
            N_("patient {patient} not found"),
            patient=patient.patient_code,
        )
    sees_treatment = ctx.actor.can(Action.READ, Resource.TREATMENT)
    return [
        _visit_row(s)
        for s in treatment.visit_schedule(ctx.session, patient, ctx.today(), ctx.protocol)
        if sees_treatment or s.visit.kind != "treatment"
    ]


def visible_visit(ctx: Ctx, code: str, visit_code: str, action: Action) -> tuple[Patient, VisitRow]:
    """One planned visit of a visible patient. Treatment-cycle visits need the treatment
    permission too (403 for any such code, whatever the patient's arm: nothing is learnt)."""
    patient = visible_patient(ctx, code, Resource.VISIT, action)
    if visit_code in treatment.treatment_visit_codes(ctx.protocol):
        ctx.actor.require(action, Resource.TREATMENT)
    return patient, _visit_row(treatment.visit_status(ctx, patient.patient_code, visit_code))


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
    form_id: str | None = None
    record_id: int | None = None
    item: str | None = None
    visit_code: str | None = None
    days_open: int = 0
    can_reopen: bool = False
    reopen_reason: str | None = None
    can_correct: bool = False  # the answer may correct the queried value (its form's writer)
    edit_check: str | None = None  # the registry's edit check that raised it (system query)

    @property
    def link(self) -> str:
        """The queried form instance (its record page), else the patient."""
        if self.form_id and self.record_id is not None:
            return f"/forms/{self.form_id}/{self.record_id}"
        return f"/patients/{self.patient_code}"


def query_row(q: DataQuery, patient_code: str, ctx: Ctx) -> QueryRow:
    from reluth.queries.service import days_open

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
        can_answer=q.status != "closed" and ctx.actor.can(Action.WRITE, Resource.QUERY_ANSWER),
        can_close=q.status != "closed" and ctx.actor.can(Action.WRITE, Resource.QUERY),
        form_id=q.form_id,
        record_id=q.record_id,
        item=q.item,
        visit_code=q.visit_code,
        days_open=days_open(q, ctx.now()),
        can_reopen=q.status == "closed" and ctx.actor.can(Action.WRITE, Resource.QUERY),
        reopen_reason=q.reopen_reason,
        can_correct=_can_correct(q, ctx),
        edit_check=q.edit_check,
    )


def _can_correct(q: DataQuery, ctx: Ctx) -> bool:
    """Whether the answer form offers to correct the value: an open query on a correctable
    field of a saved record, for someone who may answer and write that form."""
    if q.status == "closed" or q.form_id is None or q.record_id is None or q.item is None:
        return False
    if not ctx.actor.can(Action.WRITE, Resource.QUERY_ANSWER):
        return False
    registry = ctx.trial.forms
    if q.form_id not in registry.form_ids:
        return False
    form = registry.form(q.form_id)
    if q.item not in {f.name for f in form.correctable if f.type not in ("items", "lesions")}:
        return False
    try:
        return ctx.actor.can(Action.WRITE, Resource(form.resource))
    except ValueError:
        return False


@service(Action.READ, Resource.QUERY)
def data_queries(ctx: Ctx, patient_id: int | None = None) -> list[QueryRow]:
    """Data queries on patients of the centres the person may see, open ones first."""
    stmt = select(DataQuery, Patient).join(Patient, Patient.id == DataQuery.patient_id)
    if patient_id is not None:
        stmt = stmt.where(DataQuery.patient_id == patient_id)
    stmt = centre_scoped(stmt, ctx)
    order = {"open": 0, "answered": 1, "closed": 2}
    rows = [
        query_row(q, p.patient_code, ctx)
        for q, p in ctx.session.execute(stmt.order_by(DataQuery.id)).all()
    ]
    return sorted(rows, key=lambda r: order.get(r.status, 3))


@service(Action.READ, Resource.QUERY)
def query_patient(ctx: Ctx, query_id: int) -> Patient:
    """The patient of query ``query_id`` if the actor sees its centre; otherwise the same
    NotFound as for an unknown id."""
    row = ctx.session.get(DataQuery, query_id)
    patient = None if row is None else ctx.session.get(Patient, row.patient_id)
    if patient is None or not ctx.actor.sees_centre(patient.centre_id):
        raise refusal(
            NotFound, "query_not_found", N_("query {query} not found"), query=str(query_id)
        )
    return patient


@service(Action.READ, Resource.QUERY)
def visible_query(ctx: Ctx, query_id: int) -> DataQuery:
    query_patient(ctx, query_id)
    row = ctx.session.get(DataQuery, query_id)
    assert row is not None
    return row


@service(Action.READ, Resource.ADVERSE_EVENT)
def visible_adverse_event(ctx: Ctx, ae_id: int) -> AdverseEvent:
    """The adverse event if the actor may read adverse events of its centre; else NotFound."""
    row = ctx.session.get(AdverseEvent, ae_id)
    patient = None if row is None else ctx.session.get(Patient, row.patient_id)
    if row is None or patient is None or not ctx.actor.sees_centre(patient.centre_id):
        raise refusal(
            NotFound,
            "adverse_event_not_found",
            N_("adverse event {event} not found"),
            event=str(ae_id),
        )
    return row


#: Instruments offered on the QoL entry page (names as ``reluth.qol.scoring.instrument`` takes).
QOL_INSTRUMENTS = ("QLQ-C30", "QLQ-GINET21")


def qol_timepoints(protocol: Protocol) -> list[str]:
    """QoL time point codes of the protocol schedule (:func:`reluth.protocol.schedule.qol_timepoints`)."""
    return schedule_qol_timepoints(protocol)


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


#: What a reader who may not see the allocation list reads instead of a concealed field.
CONCEALED = "allocation (concealed)"


@dataclass(frozen=True)
class AuditRow:
    """One audit row as the reader may see it (the fields of :class:`AuditLog`, with the
    allocation's slot and details concealed unless the reader may read the allocation list)."""

    seq: int
    at_utc: str
    username: str
    role: str
    auth_method: str | None
    action: str
    table_name: str
    record_id: str
    field: str | None
    old_value: str | None
    new_value: str | None
    reason: str | None


def _conceal(value: str | None, hidden: frozenset[str], whole: bool) -> str | None:
    """A JSON value with the hidden fields replaced by one ``"allocation": "allocation
    (concealed)"`` (their names tell too: a slot id means permuted blocks)."""
    if value is None:
        return None
    if whole:
        return json.dumps(CONCEALED)
    data = json.loads(value)
    if isinstance(data, dict) and hidden & set(data):
        data = {k: v for k, v in data.items() if k not in hidden} | {"allocation": CONCEALED}
        return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return value


def _audit_rows(ctx: Ctx, rows: list[AuditLog]) -> list[AuditRow]:
    """The rows as ``ctx.actor`` may read them: the fields of allocation records that tell the
    list (slot, minimization details) only for readers of the allocation list."""
    unblinded = ctx.actor.can(Action.READ, Resource.ALLOCATION_LIST)
    out = []
    for r in rows:
        old, new, field_name = r.old_value, r.new_value, r.field
        hidden = frozenset() if unblinded else CONCEALED_FIELDS.get(r.table_name, frozenset())
        if hidden:
            whole = r.field is not None and r.field in hidden
            if r.field is None or whole:
                old, new = _conceal(old, hidden, whole), _conceal(new, hidden, whole)
            if whole:
                field_name = "allocation"
        out.append(
            AuditRow(
                r.seq,
                r.at_utc,
                r.username,
                r.role,
                r.auth_method,
                r.action,
                r.table_name,
                r.record_id,
                field_name,
                old,
                new,
                r.reason,
            )
        )
    return out


@service(Action.READ, Resource.AUDIT)
def audit_history(ctx: Ctx, code: str) -> list[AuditRow]:
    """Audit rows of every record of one patient, oldest first. Administrations only for roles
    that read treatment, the randomization only for roles that read the arm."""
    patient = patients.get_patient(ctx, code)
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
    if ctx.actor.can(Action.READ, Resource.TREATMENT):
        models.append(Administration)
    if ctx.actor.can(Action.READ, Resource.ARM):
        models.append(Randomization)
    if ctx.actor.can(Action.READ, Resource.DOSIMETRY):
        models.append(DoseResult)
    records: list[tuple[str, list[str]]] = [(Patient.__tablename__, [str(pid)])]
    for model in models:
        ids = ctx.session.scalars(select(model.id).where(model.patient_id == pid))
        records.append((model.__tablename__, [str(i) for i in ids]))
    # Visits: cycle 3/4 visits exist only in the experimental arm, so only with read treatment.
    hidden = (
        set()
        if ctx.actor.can(Action.READ, Resource.TREATMENT)
        else treatment.treatment_visit_codes(ctx.protocol)
    )
    visits = ctx.session.execute(select(Visit.id, Visit.visit_code).where(Visit.patient_id == pid))
    records.append((Visit.__tablename__, [str(v) for v, vcode in visits if vcode not in hidden]))
    receipts = ctx.session.scalars(
        select(SaeReceipt.id)
        .join(AdverseEvent, AdverseEvent.id == SaeReceipt.adverse_event_id)
        .where(AdverseEvent.patient_id == pid)
    )
    records.append((SaeReceipt.__tablename__, [str(i) for i in receipts]))
    lesions = ctx.session.scalars(
        select(LesionMeasurement.id)
        .join(TumourAssessment, TumourAssessment.id == LesionMeasurement.assessment_id)
        .where(TumourAssessment.patient_id == pid)
    )
    records.append((LesionMeasurement.__tablename__, [str(i) for i in lesions]))
    # Casebooks of the patient handed out (events keyed by the patient ID: records.casebook).
    records.append(("casebooks", [patient.patient_code]))
    rows: list[AuditLog] = []
    for table, keys in records:
        if keys:
            rows.extend(
                ctx.session.scalars(
                    select(AuditLog).where(
                        AuditLog.table_name == table,
                        AuditLog.record_id.in_(keys),
                        in_chain(),
                    )
                )
            )
    rows.sort(key=lambda r: r.seq)
    return _audit_rows(ctx, rows)


#: What reading a table's audit rows needs beyond ``read audit`` (tables not listed: patient
#: data, readable by whoever reads the audit trail).
AUDIT_TABLE_NEEDS: dict[str, Resource] = {
    "randomizations": Resource.ARM,
    "allocation_lists": Resource.ALLOCATION_LIST,
    "allocation_strata": Resource.ALLOCATION_LIST,
    "allocation_slots": Resource.ALLOCATION_LIST,
    "randomization_settings": Resource.RANDOMIZATION_REPORT,
    "administrations": Resource.TREATMENT,
    "dose_results": Resource.DOSIMETRY,
    "users": Resource.USER,
    "user_centres": Resource.USER,
    "api_tokens": Resource.USER,
    "login_throttle": Resource.USER,
    "imaging_series": Resource.IMAGING,
    "imaging_instances": Resource.IMAGING,
    "exports": Resource.EXPORT,
    "database": Resource.OPERATIONS,
}


#: Tables of accounts and operations: their audit rows are the administrator's to read.
ACCOUNT_TABLES = frozenset({"users", "user_centres", "api_tokens", "login_throttle", "database"})


def record_history(ctx: Ctx, record: str) -> list[AuditRow]:
    """The audit rows of ``record``: a patient ID gives the patient's history as its audit page
    shows it (centre-scoped, arm-revealing tables only for those who may see them); ``TABLE:ID``
    one record — of trial data for readers of the audit trail who see every centre, of
    accounts and operations for administrators."""
    from reluth.db.registry import load_all_models

    if not isinstance(record, str) or not record.strip():
        raise ValidationError(
            "record", N_("empty"), N_("TABLE:ID or a patient ID such as C07-0012")
        )
    if ":" not in record:
        return audit_history(ctx, record.strip())
    table, _, rid = record.partition(":")
    known = set(load_all_models().tables) | {"exports", "imports", "database", "login_throttle"}
    if table not in known:
        raise ValidationError(
            "record",
            f"unknown table {table!r}",
            "TABLE:ID or C07-0012",
            code="unknown_table",
            params={"value": table[:40]},
        )
    if table in ACCOUNT_TABLES and ctx.actor.can(Action.READ, Resource.USER):
        return account_history(ctx, table, rid)
    return data_history(ctx, table, rid)


@service(Action.READ, Resource.USER)
def account_history(ctx: Ctx, table: str, rid: str) -> list[AuditRow]:
    """Audit rows of an account, a token or a database operation (administrators)."""
    from reluth.db import audit

    if table not in ACCOUNT_TABLES:
        raise ValidationError(
            "record",
            f"{table} is not an account table",
            ", ".join(ACCOUNT_TABLES),
            code="not_an_account_table",
            params={"value": table, "accepted": ", ".join(ACCOUNT_TABLES)},
        )
    return _audit_rows(ctx, sorted(audit.history(ctx.session, table, rid), key=lambda r: r.seq))


@service(Action.READ, Resource.AUDIT)
def data_history(ctx: Ctx, table: str, rid: str) -> list[AuditRow]:
    """Audit rows of one record of trial data, for readers of the audit trail who see every
    centre and may read that table."""
    from reluth.db import audit

    if not ctx.actor.all_centres:
        raise refusal(
            PermissionDenied,
            "audit_by_patient",
            N_("{role} reads the audit trail by patient: give a patient ID"),
            role=Word(ROLES.get(ctx.actor.role.value, ctx.actor.role.value)),
        )
    need = AUDIT_TABLE_NEEDS.get(table)
    if need is not None:
        ctx.actor.require(Action.READ, need)
    rows = audit.history(ctx.session, table, rid)
    return _audit_rows(ctx, sorted(rows, key=lambda r: r.seq))
