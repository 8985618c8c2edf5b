"""Use cases for a patient before randomization: register, screen, include, record the
second-PRRT cycles and the pre-randomization assessment; and deaths and end of study.

Each function takes the session of an open :func:`reluth.db.session.unit_of_work` (the
caller's transaction, audited) and validates with the protocol engines before writing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, defer

from reluth.auth.models import Centre
from reluth.db import edits
from reluth.db.session import require_reason
from reluth.errors import Conflict, NotFound, PreconditionFailed, ValidationError
from reluth.patients.models import (
    Death,
    EndOfStudy,
    Inclusion,
    Patient,
    PreRandomizationAssessment,
    Screening,
)
from reluth.protocol.definition import Protocol, load_protocol
from reluth.protocol.eligibility import check_eligibility
from reluth.protocol.patient import PATIENT_ID_PATTERN, parse_patient
from reluth.protocol.strata import derive_strata
from reluth.treatment.models import Administration
from reluth.units import to_decimal

_M = TypeVar("_M")
CENTRE_CODE = re.compile(r"^C\d{2}$")
RESPONSES = ("CR", "PR", "SD", "PD", "NE")
#: Accepted activity of one Lutathera administration (7.4 GBq planned).
ACTIVITY_GBQ_MIN, ACTIVITY_GBQ_MAX = Decimal("0.1"), Decimal("10")
DEATH_CAUSES = ("disease", "toxicity", "other", "unknown")
END_REASONS = (
    "completed",
    "death",
    "withdrawal",
    "lost_to_follow_up",
    "screen_failure",
    "investigator_decision",
    "other",
)


def _protocol(protocol: Protocol | None) -> Protocol:
    return protocol or load_protocol()


def _choice(field: str, value: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise ValidationError(field, f"{value!r} is not accepted", ", ".join(accepted))
    return value


def _not_future(field: str, day: dt.date, today: dt.date) -> dt.date:
    if day > today:
        raise ValidationError(field, f"date {day} is in the future", f"a date <= {today}")
    return day


_BY_PATIENT: dict[type[Any], Any] = {}


def first_for_patient(session: Session, model: type[_M], patient_id: int) -> _M | None:
    """The first row of ``model`` for a patient (statement built once per model)."""
    stmt = _BY_PATIENT.get(model)
    if stmt is None:
        stmt = _BY_PATIENT[model] = select(model).where(
            model.patient_id == bindparam("pid")  # type: ignore[attr-defined]
        )
    row: _M | None = session.scalars(stmt, {"pid": patient_id}).first()
    return row


_CENTRE_BY_CODE = select(Centre).where(Centre.code == bindparam("code"))


def add_centre(session: Session, code: str, name: str, opened_on: dt.date | None = None) -> Centre:
    if not CENTRE_CODE.match(code):
        raise ValidationError("centre", f"{code!r} is not a centre code", "C followed by 2 digits")
    if not name.strip():
        raise ValidationError("name", "empty", "the centre's name")
    if session.scalars(_CENTRE_BY_CODE, {"code": code}).first() is not None:
        raise Conflict(f"centre {code} already exists")
    centre = Centre(code=code, name=name.strip(), opened_on=opened_on, active=True)
    session.add(centre)
    session.flush()
    return centre


def get_centre(session: Session, code: str) -> Centre:
    centre = session.scalars(_CENTRE_BY_CODE, {"code": code}).first()
    if centre is None:
        raise NotFound(f"centre {code!r} not found (add it with `reluth centres add`)")
    return centre


_PATIENT_BY_CODE = select(Patient).where(Patient.patient_code == bindparam("code"))


def get_patient(session: Session, code: str) -> Patient:
    if not re.match(PATIENT_ID_PATTERN, code):
        raise ValidationError("patient_id", f"{code!r} is not a patient ID", "e.g. C07-0012")
    patient = session.scalars(_PATIENT_BY_CODE, {"code": code}).first()
    if patient is None:
        raise NotFound(f"patient {code} is not registered")
    return patient


def register_patient(
    session: Session,
    centre_code: str,
    patient_code: str | None = None,
    sex: str | None = None,
    birth_year: int | None = None,
    today: dt.date | None = None,
    protocol: Protocol | None = None,
) -> Patient:
    """A new pseudonymous patient; without ``patient_code`` the centre's next number is used."""
    today = today or dt.date.today()
    centre = get_centre(session, centre_code)
    if patient_code is None:
        n = session.scalar(
            select(func.count()).select_from(Patient).where(Patient.centre_id == centre.id)
        )
        patient_code = f"{centre.code}-{(n or 0) + 1:04d}"
    if not re.match(PATIENT_ID_PATTERN, patient_code):
        raise ValidationError("patient_id", f"{patient_code!r}", "C<centre>-<4 digits>, C07-0012")
    if not patient_code.startswith(centre.code + "-"):
        raise ValidationError(
            "patient_id", f"{patient_code} does not belong to centre {centre.code}", centre.code
        )
    if sex is not None:
        _choice("sex", sex, ("female", "male"))
    if birth_year is not None and not today.year - 120 <= birth_year <= today.year - 18:
        raise ValidationError(
            "birth_year", str(birth_year), f"{today.year - 120}..{today.year - 18} (adults)"
        )
    if session.scalars(_PATIENT_BY_CODE, {"code": patient_code}).first():
        raise Conflict(f"patient {patient_code} is already registered")
    patient = Patient(
        patient_code=patient_code,
        centre_id=centre.id,
        sex=None if sex is None else sex[0].upper(),
        birth_year=birth_year,
        protocol_version=_protocol(protocol).label,
    )
    session.add(patient)
    session.flush()
    return patient


@dataclass(frozen=True)
class ScreeningOutcome:
    patient_id: str
    screening_id: int
    status: str
    stratum: str | None
    criteria: list[dict[str, Any]]


def screen_patient(
    session: Session,
    data: Any,
    today: dt.date | None = None,
    protocol: Protocol | None = None,
) -> ScreeningOutcome:
    """Check eligibility (inclusion stage) and freeze the input and per-criterion result."""
    proto = _protocol(protocol)
    today = today or dt.date.today()
    patient_file = parse_patient(data, as_of=today)
    patient = get_patient(session, patient_file.patient_id)
    if _randomization_of(session, patient) is not None:
        raise Conflict(f"patient {patient.patient_code} is already randomized")
    result = check_eligibility(patient_file, proto, stage="inclusion")
    criteria = [asdict(c) for c in result.criteria]
    try:
        strata = derive_strata(patient_file, proto)
        strata_code: str | None = strata.code
        strata_json: str | None = json.dumps(strata.as_dict(), sort_keys=True)
    except ValidationError:
        strata_code = strata_json = None
    record = Screening(
        patient_id=patient.id,
        assessment_date=patient_file.assessment_date,
        stage=result.stage,
        status=result.status,
        input_json=json.dumps(data, sort_keys=True, ensure_ascii=False),
        result_json=json.dumps(
            {"status": result.status, "criteria": criteria, "derived": result.derived},
            sort_keys=True,
            ensure_ascii=False,
        ),
        strata_code=strata_code,
        strata_json=strata_json,
        protocol_version=result.protocol_version,
    )
    session.add(record)
    session.flush()
    return ScreeningOutcome(patient.patient_code, record.id, result.status, strata_code, criteria)


_LATEST_SCREENING = (
    select(Screening)
    .where(Screening.patient_id == bindparam("pid"))
    .order_by(Screening.assessment_date.desc(), Screening.id.desc())
    .limit(1)
)
_LATEST_SCREENING_LIGHT = _LATEST_SCREENING.options(
    defer(Screening.input_json), defer(Screening.result_json)
)


def latest_screening(session: Session, patient: Patient, light: bool = False) -> Screening | None:
    """The most recent screening; ``light`` leaves the frozen JSON unloaded until accessed."""
    stmt = _LATEST_SCREENING_LIGHT if light else _LATEST_SCREENING
    return session.scalars(stmt, {"pid": patient.id}).first()


def _failed_criteria(screening: Screening) -> str:
    result = json.loads(screening.result_json)
    bad = [c for c in result["criteria"] if c["passes"] is not True]
    return "; ".join(f"{c['id']}: {c['reason']}" for c in bad[:4])


def inclusion_values(
    consent_date: dt.date, inclusion_date: dt.date, today: dt.date
) -> dict[str, dt.date]:
    """The checked dates of an inclusion, at entry and at every correction: neither in the
    future, and the informed consent signed on or before the inclusion date."""
    _not_future("inclusion_date", inclusion_date, today)
    _not_future("consent_date", consent_date, today)
    if consent_date > inclusion_date:
        raise ValidationError(
            "consent_date", f"{consent_date} is after inclusion", f"<= {inclusion_date}"
        )
    return {"consent_date": consent_date, "inclusion_date": inclusion_date}


def include_patient(
    session: Session,
    patient_code: str,
    consent_date: dt.date | None,
    inclusion_date: dt.date | None = None,
    today: dt.date | None = None,
    protocol: Protocol | None = None,
) -> Inclusion:
    """Include an eligible patient who signed the informed consent."""
    today = today or dt.date.today()
    inclusion_date = _not_future("inclusion_date", inclusion_date or today, today)
    patient = get_patient(session, patient_code)
    screening = latest_screening(session, patient)
    if screening is None:
        raise PreconditionFailed(f"patient {patient_code} has not been screened")
    if screening.status != "eligible":
        raise PreconditionFailed(
            f"patient {patient_code} is {screening.status} at the latest screening "
            f"({screening.assessment_date}): {_failed_criteria(screening)}"
        )
    if consent_date is None:
        raise PreconditionFailed(f"patient {patient_code}: informed consent not signed")
    values = inclusion_values(consent_date, inclusion_date, today)
    if first_for_patient(session, Inclusion, patient.id):
        raise Conflict(f"patient {patient_code} is already included")
    inclusion = Inclusion(
        patient_id=patient.id,
        screening_id=screening.id,
        consent_signed=True,
        protocol_version=_protocol(protocol).label,
        **values,
    )
    session.add(inclusion)
    session.flush()
    return inclusion


#: What a correction of a saved inclusion may change (the screening it rests on stays).
INCLUSION_EDITABLE = ("consent_date", "inclusion_date")


def get_inclusion(session: Session, patient_code: str) -> Inclusion:
    patient = get_patient(session, patient_code)
    row = first_for_patient(session, Inclusion, patient.id)
    if row is None:
        raise NotFound(f"patient {patient_code} is not included")
    return row


def inclusion_edit_form(row: Inclusion) -> dict[str, str]:
    """The editable fields of a saved inclusion as text, as a correction form shows them."""
    return {
        "consent_date": "" if row.consent_date is None else row.consent_date.isoformat(),
        "inclusion_date": row.inclusion_date.isoformat(),
    }


def _first_event_after_inclusion(session: Session, patient: Patient) -> tuple[str, dt.date] | None:
    """The earliest recorded step that follows inclusion (a second-PRRT cycle, the
    randomization), which a corrected inclusion date may not pass."""
    steps = [
        (f"cycle {a.cycle}", a.administered_on)
        for a in session.scalars(_BY_PATIENT_ADMIN, {"pid": patient.id})
    ]
    rand = _randomization_of(session, patient)
    if rand is not None:
        steps.append(("randomization", rand.randomized_at.date()))
    return min(steps, key=lambda step: step[1]) if steps else None


def edit_inclusion(
    session: Session, patient_code: str, changes: Mapping[str, Any], today: dt.date
) -> Inclusion:
    """Correct the consent and inclusion dates with the entry rules
    (:func:`inclusion_values`). Allowed after randomization too (a date is corrected, not the
    decision to include), as long as inclusion still precedes the first cycle and the
    randomization. Needs a reason in the unit of work."""
    require_reason(session, "a saved inclusion")
    edits.only(changes, INCLUSION_EDITABLE)
    row = get_inclusion(session, patient_code)
    merged: dict[str, Any] = {**inclusion_edit_form(row), **changes}
    values = inclusion_values(
        edits.as_date(merged["consent_date"], "consent_date"),
        edits.as_date(merged["inclusion_date"], "inclusion_date"),
        today,
    )
    following = _first_event_after_inclusion(session, get_patient(session, patient_code))
    if following is not None and values["inclusion_date"] > following[1]:
        what, day = following
        raise ValidationError(
            "inclusion_date",
            f"{values['inclusion_date']} is after the {what} ({day})",
            f"a date <= {day}",
        )
    edits.apply(row, values, "inclusion")
    session.flush()
    return row


def _randomization_of(session: Session, patient: Patient) -> Any:
    from reluth.randomization.models import Randomization

    return first_for_patient(session, Randomization, patient.id)


_BY_PATIENT_ADMIN = select(Administration).where(Administration.patient_id == bindparam("pid"))


#: What a correction of a saved administration may change (the cycle number stays).
CYCLE_EDITABLE = ("administered_on", "activity_gbq", "lot")
LOT_MAX = 40  # administrations.lot
ACTIVITY_MIN_GBQ, ACTIVITY_MAX_GBQ = Decimal("0.1"), Decimal("10")


def _cycle_values(
    cycle: int, administered_on: dt.date, activity_gbq: Decimal, lot: str, today: dt.date
) -> dict[str, Any]:
    """The checked columns of one administration (entry and correction alike)."""
    _not_future("administered_on", administered_on, today)
    if cycle not in (1, 2, 3, 4):
        raise ValidationError("cycle", str(cycle), "1 or 2 (second PRRT), 3 or 4 (experimental)")
    if not activity_gbq.is_finite() or not ACTIVITY_MIN_GBQ <= activity_gbq <= ACTIVITY_MAX_GBQ:
        raise ValidationError("activity_gbq", f"{activity_gbq} GBq", "0.1 to 10 GBq (7.4 planned)")
    exponent = activity_gbq.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -3:
        raise ValidationError(
            "activity_gbq", f"{activity_gbq} GBq has more than 3 decimals", "e.g. 7.4 or 7.385"
        )
    if not lot.strip():
        raise ValidationError("lot", "empty", "the batch number on the vial")
    if len(lot.strip()) > LOT_MAX:
        raise ValidationError("lot", f"{len(lot.strip())} characters", f"at most {LOT_MAX}")
    return {"administered_on": administered_on, "activity_gbq": activity_gbq, "lot": lot.strip()}


def _check_cycle_order(cycle: int, day: dt.date, others: dict[int, dt.date]) -> None:
    """Cycles follow each other: after the previous one, before the next one if recorded."""
    if cycle > 1 and cycle - 1 not in others:
        raise PreconditionFailed(f"cycle {cycle - 1} must be recorded before cycle {cycle}")
    if cycle > 1 and day <= others[cycle - 1]:
        raise ValidationError(
            "administered_on",
            f"{day} is not after cycle {cycle - 1} ({others[cycle - 1]})",
            "a later date",
        )
    following = others.get(cycle + 1)
    if following is not None and day >= following:
        raise ValidationError(
            "administered_on",
            f"{day} is not before cycle {cycle + 1} ({following})",
            "an earlier date",
        )


def record_cycle(
    session: Session,
    patient_code: str,
    cycle: int,
    administered_on: dt.date,
    activity_gbq: Decimal,
    lot: str,
    today: dt.date | None = None,
    protocol: Protocol | None = None,
) -> Administration:
    """A Lutathera administration: cycles 1-2 (second PRRT) after inclusion, cycles 3-4 only
    in the experimental arm after randomization."""
    proto = _protocol(protocol)
    today = today or dt.date.today()
    values = _cycle_values(cycle, administered_on, activity_gbq, lot, today)
    patient = get_patient(session, patient_code)
    if first_for_patient(session, Inclusion, patient.id) is None:
        raise PreconditionFailed(f"patient {patient_code} is not included")
    if cycle >= 3:
        rand = _randomization_of(session, patient)
        if rand is None or rand.arm != "experimental":
            raise PreconditionFailed(
                f"cycle {cycle} is given only in the experimental arm after randomization"
            )
    previous = session.scalars(_BY_PATIENT_ADMIN, {"pid": patient.id}).all()
    if any(a.cycle == cycle for a in previous):
        raise Conflict(f"cycle {cycle} of patient {patient_code} is already recorded")
    _check_cycle_order(cycle, administered_on, {a.cycle: a.administered_on for a in previous})
    row = Administration(patient_id=patient.id, cycle=cycle, protocol_version=proto.label, **values)
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


def get_cycle(session: Session, patient_code: str, cycle: int) -> Administration:
    patient = get_patient(session, patient_code)
    for row in session.scalars(_BY_PATIENT_ADMIN, {"pid": patient.id}):
        if row.cycle == cycle:
            return row
    raise NotFound(f"cycle {cycle} of {patient_code} is not recorded")


def edit_cycle(
    session: Session,
    patient_code: str,
    cycle: int,
    changes: Mapping[str, Any],
    today: dt.date,
) -> Administration:
    """Correct a saved administration (date, activity, lot), checked by the entry rules and
    kept between the previous and the next cycle. Needs a reason in the unit of work."""
    require_reason(session, "a saved administration")
    edits.only(changes, CYCLE_EDITABLE)
    row = get_cycle(session, patient_code, cycle)
    merged: dict[str, Any] = {**cycle_edit_form(row), **changes}
    day = edits.as_date(merged["administered_on"], "administered_on")
    activity = to_decimal(merged["activity_gbq"], "activity_gbq")
    lot = merged["lot"]
    if not isinstance(lot, str):
        raise ValidationError("lot", f"expected text, got {lot!r}", "the batch number on the vial")
    values = _cycle_values(cycle, day, activity, lot, today)
    others = session.scalars(_BY_PATIENT_ADMIN, {"pid": row.patient_id}).all()
    _check_cycle_order(cycle, day, {a.cycle: a.administered_on for a in others if a is not row})
    edits.apply(row, values, f"cycle {cycle}")
    session.flush()
    return row


def pre_randomization_values(
    assessment_date: dt.date,
    radiological_progression: bool | None,
    overall_response: str | None,
    today: dt.date,
) -> dict[str, Any]:
    """The checked assessment, at entry and at every correction: not in the future, a RECIST
    response, and radiological progression if and only if the response is PD (derived from the
    response when not given)."""
    _not_future("assessment_date", assessment_date, today)
    if radiological_progression is None:
        if overall_response is None:
            raise ValidationError(
                "overall_response", "missing", "CR, PR, SD, PD or NE (or the progression flag)"
            )
        radiological_progression = overall_response == "PD"
    if overall_response is not None:
        _choice("overall_response", overall_response, RESPONSES)
        if (overall_response == "PD") != radiological_progression:
            raise ValidationError(
                "overall_response",
                f"{overall_response} contradicts radiological_progression="
                f"{str(radiological_progression).lower()}",
                "PD if and only if radiological progression",
            )
    return {
        "assessment_date": assessment_date,
        "radiological_progression": radiological_progression,
        "overall_response": overall_response,
    }


def record_pre_randomization(
    session: Session,
    patient_code: str,
    assessment_date: dt.date,
    radiological_progression: bool | None,
    overall_response: str | None = None,
    comment: str | None = None,
    today: dt.date | None = None,
    protocol: Protocol | None = None,
) -> PreRandomizationAssessment:
    """The tumour assessment after the two second-PRRT cycles. ``radiological_progression``
    None means "as the overall response says" (progression if and only if PD)."""
    today = today or dt.date.today()
    values = pre_randomization_values(
        assessment_date, radiological_progression, overall_response, today
    )
    patient = get_patient(session, patient_code)
    if first_for_patient(session, PreRandomizationAssessment, patient.id):
        raise Conflict(f"the pre-randomization assessment of {patient_code} is already recorded")
    row = PreRandomizationAssessment(
        patient_id=patient.id,
        comment=comment,
        protocol_version=_protocol(protocol).label,
        **values,
    )
    session.add(row)
    session.flush()
    return row


#: What a correction of the pre-randomization assessment may change; the progression flag
#: follows the response (PD if and only if progression).
PRE_RANDOMIZATION_EDITABLE = ("assessment_date", "overall_response", "comment")
COMMENT_MAX = 2000


def get_pre_randomization(session: Session, patient_code: str) -> PreRandomizationAssessment:
    patient = get_patient(session, patient_code)
    row = first_for_patient(session, PreRandomizationAssessment, patient.id)
    if row is None:
        raise NotFound(f"the pre-randomization assessment of {patient_code} is not recorded")
    return row


def pre_randomization_edit_form(row: PreRandomizationAssessment) -> dict[str, str]:
    """The editable fields of the saved assessment as text, as a correction form shows them."""
    return {
        "assessment_date": row.assessment_date.isoformat(),
        "overall_response": row.overall_response or "",
        "comment": row.comment or "",
    }


def edit_pre_randomization(
    session: Session, patient_code: str, changes: Mapping[str, Any], today: dt.date
) -> PreRandomizationAssessment:
    """Correct the pre-randomization assessment (date, overall response, comment) with the
    entry rules (:func:`pre_randomization_values`); the progression flag is derived from the
    corrected response. Once the patient is randomized, the correction may not make the
    randomization invalid after the fact: no progression (PD), and the assessment stays on or
    before the randomization date. Needs a reason in the unit of work."""
    require_reason(session, "a saved pre-randomization assessment")
    edits.only(changes, PRE_RANDOMIZATION_EDITABLE)
    row = get_pre_randomization(session, patient_code)
    merged: dict[str, Any] = {**pre_randomization_edit_form(row), **changes}
    day = edits.as_date(merged["assessment_date"], "assessment_date")
    response = merged["overall_response"]
    if response is not None and not isinstance(response, str):
        raise ValidationError("overall_response", repr(response), ", ".join(RESPONSES))
    response = (response or "").strip() or None
    if response is None and row.overall_response is not None:
        raise ValidationError("overall_response", "missing", ", ".join(RESPONSES))
    # a saved assessment without a response keeps its progression flag; a response decides it
    progression = row.radiological_progression if response is None else None
    values = pre_randomization_values(day, progression, response, today)
    comment = merged["comment"]
    if comment is not None and not isinstance(comment, str):
        raise ValidationError("comment", f"expected text, got {comment!r}", "free text")
    comment = (comment or "").strip() or None
    if comment is not None and len(comment) > COMMENT_MAX:
        raise ValidationError("comment", f"{len(comment)} characters", f"at most {COMMENT_MAX}")
    rand = _randomization_of(session, get_patient(session, patient_code))
    if rand is not None:
        randomized_on = rand.randomized_at.date()
        if values["radiological_progression"]:
            raise PreconditionFailed(
                f"overall_response: patient {patient_code} was randomized on {randomized_on}; "
                f"{response or 'radiological progression'} at the pre-randomization assessment "
                "would make that randomization invalid (progression is a screen failure)",
                field="overall_response",
            )
        if day > randomized_on:
            raise ValidationError(
                "assessment_date",
                f"{day} is after the randomization ({randomized_on})",
                f"a date <= {randomized_on}",
            )
    edits.apply(row, {**values, "comment": comment}, "pre-randomization assessment")
    session.flush()
    return row


def record_death(
    session: Session,
    patient_code: str,
    death_date: dt.date,
    cause: str,
    details: str | None = None,
    today: dt.date | None = None,
    protocol: Protocol | None = None,
) -> Death:
    today = today or dt.date.today()
    _not_future("death_date", death_date, today)
    _choice("cause", cause, DEATH_CAUSES)
    patient = get_patient(session, patient_code)
    if first_for_patient(session, Death, patient.id):
        raise Conflict(f"the death of {patient_code} is already recorded")
    row = Death(
        patient_id=patient.id,
        death_date=death_date,
        cause=cause,
        details=details,
        protocol_version=_protocol(protocol).label,
    )
    session.add(row)
    session.flush()
    return row


def record_end_of_study(
    session: Session,
    patient_code: str,
    end_date: dt.date,
    reason: str,
    details: str | None = None,
    today: dt.date | None = None,
    protocol: Protocol | None = None,
) -> EndOfStudy:
    today = today or dt.date.today()
    _not_future("end_date", end_date, today)
    _choice("reason", reason, END_REASONS)
    patient = get_patient(session, patient_code)
    if first_for_patient(session, EndOfStudy, patient.id):
        raise Conflict(f"the end of study of {patient_code} is already recorded")
    row = EndOfStudy(
        patient_id=patient.id,
        end_date=end_date,
        reason=reason,
        details=details,
        protocol_version=_protocol(protocol).label,
    )
    session.add(row)
    session.flush()
    return row
