"""Use cases of the clinical forms: concomitant medications, medical history, the protocol
deviations log, pregnancy tests and the childbearing potential of a woman, each recorded from
its one schema (:mod:`reluth.clinical.forms`) with the dates checked against the patient's
timeline (:mod:`reluth.patients.timeline`: nothing after a death, an objection, or what a
withdrawal stops), and listed per patient for the timeline, the API and the exports.

The pregnancy-test rule of a cycle (:func:`require_pregnancy_test`) is the protocol's
``pregnancy_testing`` (CTFG 2020 §4): a woman of childbearing potential gets a cycle only with
a negative test in the window before it, and no positive one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from reluth.auth.policy import Action, Resource
from reluth.clinical import forms
from reluth.clinical.models import (
    ChildbearingStatus,
    ConcomitantMedication,
    MedicalHistory,
    PregnancyTest,
    ProtocolDeviation,
)
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.db import edits
from reluth.db.session import require_reason
from reluth.errors import Conflict, NotFound, PreconditionFailed
from reluth.i18n import N_
from reluth.i18n.reasons import Reason, invalid, refusal, unmet
from reluth.patients import service as patients
from reluth.patients.models import Patient
from reluth.protocol.definition import Protocol

_M = TypeVar("_M")


def _rows(session: Session, model: type[_M], patient: Patient, *order: Any) -> list[_M]:
    stmt = select(model).where(model.patient_id == patient.id)  # type: ignore[attr-defined]
    return list(session.scalars(stmt.order_by(*order, model.id)))  # type: ignore[attr-defined]


def as_dict(row: Any, schema: type[forms.FormSchema]) -> dict[str, Any]:
    """A stored row as its form's fields (and its id), for pages, the API and exports; a
    decimal without the column's trailing zeros (``120.0000`` is shown ``120``)."""
    return {"id": row.id, **{name: _plain(getattr(row, name)) for name in schema.model_fields}}


def _plain(value: Any) -> Any:
    if not isinstance(value, Decimal):
        return value
    text = format(value, "f")
    return Decimal(text.rstrip("0").rstrip(".") if "." in text else text)


def _included(ctx: Ctx, patient_code: str) -> Patient:
    patient = patients.get_patient(ctx, patient_code)
    patients.require_included(ctx.session, patient)
    return patient


def _own(ctx: Ctx, patient_code: str, model: type[_M], record_id: int) -> tuple[Patient, _M]:
    """Record ``record_id`` of ``model`` if it is the patient's (the patient scoped to the
    actor's centres); otherwise the same NotFound as an unknown record."""
    patient = patients.get_patient(ctx, patient_code)
    row = ctx.session.get(model, record_id)
    if row is None or row.patient_id != patient.id:  # type: ignore[attr-defined]
        raise refusal(
            NotFound,
            "record_not_found",
            N_("record {id} of {patient} not found"),
            id=str(record_id),
            patient=patient_code,
        )
    return patient, row


def _correct(
    ctx: Ctx,
    patient_code: str,
    model: type[_M],
    schema: type[forms.FormSchema],
    record_id: int,
    changes: Mapping[str, Any],
    check: Callable[[Ctx, Patient, Any], None],
    then: Callable[[Ctx, Patient], None] | None = None,
) -> _M:
    """The one correction of a clinical form: reason first, the record scoped, the saved
    values with the changes re-checked by the form's schema and by the entry's own ``check``
    (the timeline), then set (refused if nothing changes) and ``then`` checked on the
    corrected data; a refusal leaves nothing written (the unit of work rolls back)."""
    require_reason(ctx.session, f"a saved {schema.title.lower()}")
    patient, row = _own(ctx, patient_code, model, record_id)
    form = forms.corrected(schema, row, changes)
    check(ctx, patient, form)
    values = form.model_dump()
    for name in values:
        if isinstance(values[name], str) and _long(schema, name):
            values[name] = patients.optional_text(values[name], name, forms.TEXT_MAX)
    edits.apply(row, values, schema.title.lower())
    if then is not None:
        then(ctx, patient)
    ctx.session.flush()
    return row


def _long(schema: type[forms.FormSchema], name: str) -> bool:
    info = schema.model_fields[name]
    return any(getattr(m, "max_length", 0) == forms.TEXT_MAX for m in info.metadata)


# ------------------------------------------------------------------ concomitant medications


@service(Action.WRITE, Resource.CONMED)
def record_conmed(ctx: Ctx, patient_code: str, data: Any) -> ConcomitantMedication:
    """A concomitant or prior medication of an included patient (start may precede the
    consent; neither date after a death or an objection)."""
    form = forms.parse(forms.ConmedForm, data)
    patient = _included(ctx, patient_code)
    _check_conmed(ctx, patient, form)
    row = ConcomitantMedication(
        patient_id=patient.id, protocol_version=ctx.protocol.label, **form.model_dump()
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


def _check_conmed(ctx: Ctx, patient: Patient, form: forms.ConmedForm) -> None:
    for field in ("start_date", "stop_date"):
        day = getattr(form, field)
        if day is not None:
            patients.check_date(ctx, patient, "conmed", day, field)


@service(Action.READ, Resource.CONMED)
def get_conmed(ctx: Ctx, patient_code: str, record_id: int) -> ConcomitantMedication:
    """One saved concomitant medication of a patient the actor sees (else NotFound)."""
    return _own(ctx, patient_code, ConcomitantMedication, record_id)[1]


@service(Action.WRITE, Resource.CONMED)
def edit_conmed(
    ctx: Ctx, patient_code: str, record_id: int, changes: Mapping[str, Any]
) -> ConcomitantMedication:
    """Correct a saved concomitant medication: the form's rules (dose with its unit, stop date
    unless ongoing, in order) and its dates on the patient's timeline, checked again."""
    return _correct(
        ctx,
        patient_code,
        ConcomitantMedication,
        forms.ConmedForm,
        record_id,
        changes,
        _check_conmed,
    )


@service(Action.READ, Resource.CONMED)
def conmeds(ctx: Ctx, patient_code: str) -> list[dict[str, Any]]:
    patient = patients.get_patient(ctx, patient_code)
    order = (ConcomitantMedication.start_date,)
    return [
        as_dict(r, forms.ConmedForm)
        for r in _rows(ctx.session, ConcomitantMedication, patient, *order)
    ]


# -------------------------------------------------------------------------- medical history


@service(Action.WRITE, Resource.MEDICAL_HISTORY)
def record_medical_history(ctx: Ctx, patient_code: str, data: Any) -> MedicalHistory:
    """A condition of an included patient's history (its start precedes the consent, as a
    rule; not after today nor a death)."""
    form = forms.parse(forms.MedicalHistoryForm, data)
    patient = _included(ctx, patient_code)
    _check_history(ctx, patient, form)
    row = MedicalHistory(
        patient_id=patient.id, protocol_version=ctx.protocol.label, **form.model_dump()
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


def _check_history(ctx: Ctx, patient: Patient, form: forms.MedicalHistoryForm) -> None:
    if form.start_date is not None:
        patients.check_date(ctx, patient, "medical_history", form.start_date, "start_date")


@service(Action.READ, Resource.MEDICAL_HISTORY)
def get_medical_history(ctx: Ctx, patient_code: str, record_id: int) -> MedicalHistory:
    """One saved condition of a patient's medical history (else NotFound)."""
    return _own(ctx, patient_code, MedicalHistory, record_id)[1]


@service(Action.WRITE, Resource.MEDICAL_HISTORY)
def edit_medical_history(
    ctx: Ctx, patient_code: str, record_id: int, changes: Mapping[str, Any]
) -> MedicalHistory:
    """Correct a saved condition of the medical history (its start on the timeline again)."""
    return _correct(
        ctx,
        patient_code,
        MedicalHistory,
        forms.MedicalHistoryForm,
        record_id,
        changes,
        _check_history,
    )


@service(Action.READ, Resource.MEDICAL_HISTORY)
def medical_history(ctx: Ctx, patient_code: str) -> list[dict[str, Any]]:
    patient = patients.get_patient(ctx, patient_code)
    return [
        as_dict(r, forms.MedicalHistoryForm)
        for r in _rows(ctx.session, MedicalHistory, patient, MedicalHistory.start_date)
    ]


# ---------------------------------------------------------------------- protocol deviations


@service(Action.WRITE, Resource.DEVIATION)
def record_deviation(ctx: Ctx, patient_code: str, data: Any) -> ProtocolDeviation:
    """One entry of the deviations log of a registered patient (a deviation may precede the
    consent, e.g. a procedure done before it); a major one takes the patient out of the
    per-protocol population (ADSL.PPROTFL)."""
    form = forms.parse(forms.DeviationForm, data)
    patient = patients.get_patient(ctx, patient_code)
    _check_deviation(ctx, patient, form)
    row = ProtocolDeviation(
        patient_id=patient.id,
        protocol_version=ctx.protocol.label,
        **{
            **form.model_dump(),
            "corrective_action": patients.optional_text(
                form.corrective_action, "corrective_action", forms.TEXT_MAX
            ),
        },
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


def _check_deviation(ctx: Ctx, patient: Patient, form: forms.DeviationForm) -> None:
    patients.check_date(ctx, patient, "deviation", form.deviation_date, "deviation_date")


@service(Action.READ, Resource.DEVIATION)
def get_deviation(ctx: Ctx, patient_code: str, record_id: int) -> ProtocolDeviation:
    """One entry of a patient's deviations log (else NotFound)."""
    return _own(ctx, patient_code, ProtocolDeviation, record_id)[1]


@service(Action.WRITE, Resource.DEVIATION)
def edit_deviation(
    ctx: Ctx, patient_code: str, record_id: int, changes: Mapping[str, Any]
) -> ProtocolDeviation:
    """Correct an entry of the deviations log; a change between major and minor moves the
    patient in or out of the per-protocol population, which the analysis datasets derive from
    the log when they are built (ADSL.PPROTFL; ICH E9 5.2.2)."""
    return _correct(
        ctx,
        patient_code,
        ProtocolDeviation,
        forms.DeviationForm,
        record_id,
        changes,
        _check_deviation,
    )


@service(Action.READ, Resource.DEVIATION)
def deviations(ctx: Ctx, patient_code: str) -> list[dict[str, Any]]:
    patient = patients.get_patient(ctx, patient_code)
    return [
        as_dict(r, forms.DeviationForm)
        for r in _rows(ctx.session, ProtocolDeviation, patient, ProtocolDeviation.deviation_date)
    ]


# --------------------------------------------------------------------------- pregnancy tests


def _childbearing(session: Session, patient: Patient) -> ChildbearingStatus | None:
    return patients.first_for_patient(session, ChildbearingStatus, patient.id)


@service(Action.WRITE, Resource.PATIENT)
def record_childbearing(ctx: Ctx, patient_code: str, data: Any) -> ChildbearingStatus:
    """Whether an included woman is of childbearing potential (once; a correction goes
    through the audit trail). Refused for a man."""
    form = forms.parse(forms.ChildbearingForm, data)
    patient = _included(ctx, patient_code)
    if patients.sex_of(ctx.session, patient) != "F":
        raise invalid(
            "childbearing_potential",
            "not_a_woman",
            N_("patient {patient} is not registered as a woman"),
            patient=patient_code,
        )
    if _childbearing(ctx.session, patient) is not None:
        raise refusal(
            Conflict,
            "already_recorded",
            N_("the childbearing potential of {patient} is already recorded"),
            patient=patient_code,
        )
    _check_childbearing(ctx, patient, form)
    row = ChildbearingStatus(
        patient_id=patient.id, protocol_version=ctx.protocol.label, **form.model_dump()
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


def _check_childbearing(ctx: Ctx, patient: Patient, form: forms.ChildbearingForm) -> None:
    patients.check_date(ctx, patient, "lab", form.assessed_on, "assessed_on")


@service(Action.READ, Resource.PATIENT)
def get_childbearing(ctx: Ctx, patient_code: str) -> ChildbearingStatus:
    """The recorded childbearing potential of a patient (else NotFound)."""
    patient = patients.get_patient(ctx, patient_code)
    row = _childbearing(ctx.session, patient)
    if row is None:
        raise refusal(
            NotFound,
            "not_recorded",
            N_("the childbearing potential of {patient} is not recorded"),
            patient=patient_code,
        )
    return row


@service(Action.WRITE, Resource.PATIENT)
def edit_childbearing(
    ctx: Ctx, patient_code: str, changes: Mapping[str, Any]
) -> ChildbearingStatus:
    """Correct the childbearing potential of a woman; every cycle she was given must still
    meet the pregnancy-test rule afterwards (:func:`require_pregnancy_test`)."""
    row = get_childbearing(ctx, patient_code)
    return _correct(
        ctx,
        patient_code,
        ChildbearingStatus,
        forms.ChildbearingForm,
        row.id,
        changes,
        _check_childbearing,
        then=_cycles_keep_their_test("childbearing_potential"),
    )


@service(Action.READ, Resource.PATIENT)
def childbearing(ctx: Ctx, patient_code: str) -> dict[str, Any] | None:
    patient = patients.get_patient(ctx, patient_code)
    row = _childbearing(ctx.session, patient)
    return None if row is None else as_dict(row, forms.ChildbearingForm)


@service(Action.WRITE, Resource.LAB)
def record_pregnancy_test(ctx: Ctx, patient_code: str, data: Any) -> PregnancyTest:
    """A pregnancy test of an included woman, dated in the trial's order."""
    form = forms.parse(forms.PregnancyTestForm, data)
    patient = _included(ctx, patient_code)
    if patients.sex_of(ctx.session, patient) != "F":
        raise invalid(
            "test_date",
            "not_a_woman",
            N_("patient {patient} is not registered as a woman"),
            patient=patient_code,
        )
    _check_pregnancy_test(ctx, patient, form)
    row = PregnancyTest(
        patient_id=patient.id, protocol_version=ctx.protocol.label, **form.model_dump()
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


def _check_pregnancy_test(ctx: Ctx, patient: Patient, form: forms.PregnancyTestForm) -> None:
    patients.check_date(ctx, patient, "pregnancy_test", form.test_date, "test_date")


@service(Action.READ, Resource.LAB)
def get_pregnancy_test(ctx: Ctx, patient_code: str, record_id: int) -> PregnancyTest:
    """One saved pregnancy test of a patient (else NotFound)."""
    return _own(ctx, patient_code, PregnancyTest, record_id)[1]


@service(Action.WRITE, Resource.LAB)
def edit_pregnancy_test(
    ctx: Ctx, patient_code: str, record_id: int, changes: Mapping[str, Any]
) -> PregnancyTest:
    """Correct a saved pregnancy test: its date on the timeline again, and every cycle already
    given must still have its negative test in the window before it and no positive one
    (:func:`require_pregnancy_test`; CTFG 2020 §4)."""
    return _correct(
        ctx,
        patient_code,
        PregnancyTest,
        forms.PregnancyTestForm,
        record_id,
        changes,
        _check_pregnancy_test,
        then=_cycles_keep_their_test("test_date" if "test_date" in changes else "result"),
    )


def _cycles_keep_their_test(field: str) -> Callable[[Ctx, Patient], None]:
    """After a correction: refuse it (naming ``field``) if a cycle already given would no
    longer meet the pregnancy-test rule."""

    def check(ctx: Ctx, patient: Patient) -> None:
        from reluth.treatment.models import Administration

        ctx.session.flush()
        given = _rows(ctx.session, Administration, patient, Administration.cycle)
        for cycle in given:
            try:
                require_pregnancy_test(ctx.session, ctx.protocol, patient, cycle.administered_on)
            except PreconditionFailed as exc:
                inner = exc.params.get("reason")
                broken = (
                    inner.params.get("problem", inner)
                    if isinstance(inner, Reason)
                    else exc.message.partition(": ")[2]
                )
                raise unmet(
                    field,
                    "correction_breaks_pregnancy_rule",
                    N_(
                        "cycle {cycle} was given on {day}; after this correction it would "
                        "break the pregnancy-test rule ({rule})"
                    ),
                    cycle=cycle.cycle,
                    day=cycle.administered_on,
                    rule=broken,
                ) from None

    return check


@service(Action.READ, Resource.LAB)
def pregnancy_tests(ctx: Ctx, patient_code: str) -> list[dict[str, Any]]:
    patient = patients.get_patient(ctx, patient_code)
    return [
        as_dict(r, forms.PregnancyTestForm)
        for r in _rows(ctx.session, PregnancyTest, patient, PregnancyTest.test_date)
    ]


def require_pregnancy_test(
    session: Session, protocol: Protocol, patient: Patient, cycle_day: dt.date
) -> None:
    """Refuse a cycle on ``cycle_day`` for a woman of childbearing potential without a
    negative pregnancy test in the protocol's window before it (the cycle's day included), or
    with a positive one in it; the childbearing potential of a woman must be recorded first.
    Called by the treatment service inside its declared service."""
    rule = protocol.pregnancy_testing
    if not rule.required_before_each_cycle or patients.sex_of(session, patient) != "F":
        return
    status = _childbearing(session, patient)
    if status is None:
        raise unmet(
            "childbearing_potential",
            "childbearing_not_recorded",
            N_(
                "not recorded for {patient} (a woman): record it before a cycle (the "
                "protocol's pregnancy testing)"
            ),
            patient=patient.patient_code,
        )
    if not status.childbearing_potential:
        return
    first = cycle_day - dt.timedelta(days=rule.window_days_before_cycle)
    tests = [
        t
        for t in _rows(session, PregnancyTest, patient, PregnancyTest.test_date)
        if first <= t.test_date <= cycle_day
    ]
    if any(t.result == "positive" for t in tests):
        raise unmet(
            "pregnancy_test",
            "pregnancy_test_positive",
            N_("positive between {first} and {day}: no cycle"),
            first=first,
            day=cycle_day,
        )
    if not any(t.result == "negative" for t in tests):
        raise unmet(
            "pregnancy_test",
            "pregnancy_test_missing",
            N_(
                "no negative pregnancy test between {first} and {day} (the protocol requires "
                "one within {days} days before each cycle for a woman of childbearing "
                "potential)"
            ),
            first=first,
            day=cycle_day,
            days=rule.window_days_before_cycle,
        )


@service(Action.READ, Resource.PATIENT)
def withdrawals(ctx: Ctx, patient_code: str) -> list[dict[str, Any]]:
    """The withdrawals of a patient (the form's fields and ids)."""
    return patients.disposition(ctx, patient_code).withdrawals


#: The repeating forms of a patient's file: form id -> (schema, the service recording one,
#: the service listing them). Pages, the API, the CLI and the timeline offer these.
CATALOGUE: dict[str, tuple[type[forms.FormSchema], Callable[..., Any], Callable[..., Any]]] = {
    "conmed": (forms.ConmedForm, record_conmed, conmeds),
    "medical_history": (forms.MedicalHistoryForm, record_medical_history, medical_history),
    "deviation": (forms.DeviationForm, record_deviation, deviations),
    "pregnancy_test": (forms.PregnancyTestForm, record_pregnancy_test, pregnancy_tests),
    "withdrawal": (forms.WithdrawalForm, patients.record_withdrawal, withdrawals),
}
