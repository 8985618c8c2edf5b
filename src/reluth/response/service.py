"""Blinded central review: the worklist and central reads (lesions per time point), evaluated
by the RECIST 1.1 engine and stored in the caller's audited ``unit_of_work`` session.

Thin service written for the web eCRF. Nothing here reads the randomization, the arm or the
treatment tables: the reviewer's view is built from inclusion and central reads only. The
engine needs a reference date for "days from randomization"; central reads use the baseline
read's date instead, which changes no time-point response.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reluth.db import edits
from reluth.db.session import require_reason
from reluth.errors import Conflict, NotFound, PreconditionFailed, ValidationError
from reluth.patients import service as patients
from reluth.patients.models import Inclusion, Patient
from reluth.protocol.definition import load_protocol
from reluth.response import recist
from reluth.response.models import LesionMeasurement, TumourAssessment
from reluth.units import to_decimal

CENTRAL = "central"
MODALITIES = ("CT", "MRI")


@dataclass(frozen=True)
class WorkItem:
    patient_code: str
    reads: int
    last_timepoint: str | None
    last_date: dt.date | None


def worklist(session: Session) -> list[WorkItem]:
    """Included patients with the number of central reads so far (no arm, no treatment)."""
    included = session.execute(
        select(Patient.id, Patient.patient_code)
        .join(Inclusion, Inclusion.patient_id == Patient.id)
        .order_by(Patient.patient_code)
    ).all()
    counts = dict(
        session.execute(
            select(TumourAssessment.patient_id, func.count())
            .where(TumourAssessment.reader == CENTRAL)
            .group_by(TumourAssessment.patient_id)
        ).all()
    )
    items = []
    for pid, code in included:
        last = session.scalars(
            select(TumourAssessment)
            .where(TumourAssessment.patient_id == pid, TumourAssessment.reader == CENTRAL)
            .order_by(TumourAssessment.assessment_date.desc())
            .limit(1)
        ).first()
        items.append(
            WorkItem(
                code,
                int(counts.get(pid, 0)),
                last.timepoint if last else None,
                last.assessment_date if last else None,
            )
        )
    return items


def central_reads(session: Session, patient: Patient) -> list[TumourAssessment]:
    return list(
        session.scalars(
            select(TumourAssessment)
            .where(TumourAssessment.patient_id == patient.id, TumourAssessment.reader == CENTRAL)
            .order_by(TumourAssessment.assessment_date, TumourAssessment.id)
        )
    )


def _stored_lesion(m: LesionMeasurement, baseline: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": m.lesion_id}
    if baseline:
        out.update(organ=m.organ, kind=m.kind, nodal=m.lymph_node)
    if m.diameter_mm is not None:
        out["diameter_mm"] = str(m.diameter_mm)
    elif m.status is not None:
        out["status"] = m.status
    return out


def engine_input(reads: list[TumourAssessment], new: dict[str, Any] | None) -> dict[str, Any]:
    """The RECIST engine's JSON shape from stored reads plus an optional new read."""
    if not reads and new is None:
        raise PreconditionFailed("no central read yet")
    entries: list[dict[str, Any]] = [
        {
            "date": r.assessment_date.isoformat(),
            "new_lesions": "no" if r.timepoint == "baseline" else new_lesions_of(r),
            "lesions": [
                _stored_lesion(m, r.timepoint == "baseline") for m in r.lesions if m.kind != "new"
            ],
        }
        for r in reads
    ]
    if new is not None:
        entries.append(new)
    base, followups = entries[0], entries[1:]
    return {
        "randomization_date": base["date"],
        "baseline": {"date": base["date"], "lesions": base["lesions"]},
        "followups": followups,
    }


def baseline_lesion_ids(reads: list[TumourAssessment]) -> list[str]:
    """Lesions recorded at the baseline read (the ones each follow-up measures again)."""
    return [m.lesion_id for m in reads[0].lesions if m.kind != "new"] if reads else []


#: Lesion fields given once, at the baseline read; follow-ups measure the same lesions again.
BASELINE_ONLY = ("organ", "kind", "nodal")
LESION_ID_MAX, ORGAN_MAX = 16, 40


def _checked_lesions(lesions: list[dict[str, Any]], baseline: bool) -> list[dict[str, Any]]:
    """Refuse what the engine would ignore or the store cannot hold, naming the lesion."""
    for i, lesion in enumerate(lesions):
        where = f"lesions[{i}]"
        if len(str(lesion.get("id", ""))) > LESION_ID_MAX:
            raise ValidationError(f"{where}.id", "too long", f"at most {LESION_ID_MAX} characters")
        if len(str(lesion.get("organ") or "")) > ORGAN_MAX:
            raise ValidationError(f"{where}.organ", "too long", f"at most {ORGAN_MAX} characters")
        if not baseline:
            for key in BASELINE_ONLY:
                if lesion.get(key) is not None:
                    raise ValidationError(
                        f"{where}.{key}",
                        "given at a follow-up read",
                        "organ, kind and nodal only at the baseline read",
                    )
    return lesions


def _proposed(
    reads: list[TumourAssessment],
    assessment_date: dt.date,
    new_lesions: str,
    lesions: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "date": assessment_date.isoformat(),
        "new_lesions": new_lesions,
        "lesions": _checked_lesions(lesions, baseline=not reads),
    }


def preview_read(
    session: Session,
    patient: Patient,
    assessment_date: dt.date,
    new_lesions: str,
    lesions: list[dict[str, Any]],
) -> Evaluation:
    """RECIST 1.1 for the stored central reads plus a proposed one, as the reviewer types
    (nothing is stored)."""
    reads = central_reads(session, patient)
    return evaluate(engine_input(reads, _proposed(reads, assessment_date, new_lesions, lesions)))


def new_lesions_of(read: TumourAssessment) -> str:
    """New lesions are stored as one row of kind ``new`` whose status is yes or equivocal."""
    return next((m.status or "yes" for m in read.lesions if m.kind == "new"), "no")


@dataclass(frozen=True)
class Evaluation:
    baseline_sum_mm: Decimal | None
    results: list[recist.TimePointResult]


def evaluate(data: dict[str, Any]) -> Evaluation:
    """Pure: time-point responses for the reads in ``data`` (engine shape)."""
    parsed = recist.parse_patient(data)
    targets = [
        b.diameter_mm or Decimal(0) for b in parsed.baseline if b.kind is recist.LesionKind.TARGET
    ]
    return Evaluation(
        sum(targets, Decimal(0)) if targets else None, recist.time_point_results(parsed)
    )


def record_central_read(
    session: Session,
    patient_code: str,
    timepoint: str,
    assessment_date: dt.date,
    modality: str,
    lesions: list[dict[str, Any]],
    new_lesions: str,
    today: dt.date,
) -> TumourAssessment:
    """Store one central read after the engine has accepted it with all earlier reads."""
    if assessment_date > today:
        raise ValidationError(
            "assessment_date", f"{assessment_date} is in the future", f"<= {today}"
        )
    if modality not in MODALITIES:
        raise ValidationError("modality", repr(modality), ", ".join(MODALITIES))
    timepoint = timepoint.strip()
    if not timepoint or len(timepoint) > 32:
        raise ValidationError("timepoint", repr(timepoint), "baseline, week8, week16, ...")
    patient = patients.get_patient(session, patient_code)
    if session.scalars(select(Inclusion).where(Inclusion.patient_id == patient.id)).first() is None:
        raise PreconditionFailed(f"patient {patient_code} is not included")
    reads = central_reads(session, patient)
    if any(r.timepoint == timepoint for r in reads):
        raise Conflict(f"the central read {timepoint} of {patient_code} is already recorded")
    is_baseline = not reads
    if is_baseline != (timepoint == "baseline"):
        raise ValidationError(
            "timepoint", repr(timepoint), "baseline first, then follow-up time points"
        )
    if reads and assessment_date <= reads[-1].assessment_date:
        raise ValidationError("assessment_date", f"{assessment_date}", "after the previous read")
    evaluation = evaluate(
        engine_input(reads, _proposed(reads, assessment_date, new_lesions, lesions))
    )
    last = evaluation.results[-1] if not is_baseline else None
    read = TumourAssessment(
        patient_id=patient.id,
        assessment_date=assessment_date,
        timepoint=timepoint,
        reader=CENTRAL,
        modality=modality,
        overall_response=last.overall.value if last else None,
        target_sum_mm=last.sum_mm if last else evaluation.baseline_sum_mm,
        protocol_version=load_protocol().label,
    )
    session.add(read)
    session.flush()
    baseline_kinds = {} if is_baseline else {m.lesion_id: m for m in reads[0].lesions}
    for raw in lesions:
        lid = str(raw["id"])
        first = baseline_kinds.get(lid)
        session.add(
            LesionMeasurement(
                assessment_id=read.id,
                lesion_id=lid,
                kind=str(raw.get("kind") or (first.kind if first else "target")),
                organ=str(raw.get("organ") or (first.organ if first else "")),
                lymph_node=bool(raw.get("nodal") or (first.lymph_node if first else False)),
                diameter_mm=Decimal(str(raw["diameter_mm"]))
                if raw.get("diameter_mm") is not None
                else None,
                status=raw.get("status"),
            )
        )
    if new_lesions in ("yes", "equivocal"):
        session.add(_new_lesion_row(read.id, new_lesions))
    session.flush()
    return read


def _new_lesion_row(assessment_id: int, call: str) -> LesionMeasurement:
    """The row that holds a read's new-lesion call (``yes`` or ``equivocal``)."""
    return LesionMeasurement(
        assessment_id=assessment_id,
        lesion_id="NEW",
        kind="new",
        organ="",
        lymph_node=False,
        diameter_mm=None,
        status=call,
    )


# --- corrections of a saved central read ----------------------------------------------------

#: What a correction of a saved central read may change: the measurement of each lesion the
#: read recorded (a diameter or a status) and, at a follow-up, the new-lesion call. Lesions,
#: organs, kinds, time point and date stay (a different lesion set is a different read).
READ_EDITABLE = ("lesions", "new_lesions")
MEASUREMENT_KEYS = ("diameter_mm", "status")
DIAMETER_MAX_MM = Decimal("999.9")  # lesion_measurements.diameter_mm: one decimal
_ENGINE_LESION_FIELD = re.compile(r"lesion (?P<lid>[^.\s]+)(?:\.(?P<attr>\w+))?$")


def get_central_read(session: Session, patient_code: str, read_id: int) -> TumourAssessment:
    patient = patients.get_patient(session, patient_code)
    read = session.get(TumourAssessment, read_id)
    if read is None or read.patient_id != patient.id or read.reader != CENTRAL:
        raise NotFound(f"central read {read_id} of {patient_code} not found")
    return read


def read_edit_form(read: TumourAssessment) -> dict[str, Any]:
    """The editable fields of a saved read: each lesion's measurement (diameter as text or
    status) and the new-lesion call."""
    return {
        "lesions": {
            m.lesion_id: {
                "diameter_mm": None if m.diameter_mm is None else format(m.diameter_mm, "f"),
                "status": m.status,
            }
            for m in read.lesions
            if m.kind != "new"
        },
        "new_lesions": new_lesions_of(read),
    }


def _measurement(lid: str, raw: Any, baseline: bool) -> dict[str, Any]:
    """One corrected lesion measurement: a diameter (mm, 0-999.9, one decimal as stored) or a
    status; a follow-up needs one of them (the engine takes exactly one)."""
    where = f"lesions.{lid}"
    if not isinstance(raw, Mapping):
        raise ValidationError(where, f"expected an object, got {raw!r}", "diameter_mm or status")
    for key in raw:
        if key not in MEASUREMENT_KEYS:
            raise ValidationError(f"{where}.{key}", "cannot be changed", "diameter_mm, status")
    diameter: Decimal | None = None
    text = raw.get("diameter_mm")
    if text is not None and str(text).strip():
        diameter = to_decimal(text, f"{where}.diameter_mm")
        exponent = diameter.normalize().as_tuple().exponent
        if not 0 <= diameter <= DIAMETER_MAX_MM or (isinstance(exponent, int) and exponent < -1):
            raise ValidationError(
                f"{where}.diameter_mm", f"{text!r}", f"0 to {DIAMETER_MAX_MM} mm, one decimal"
            )
        diameter = diameter.quantize(Decimal("0.1"))
    status = raw.get("status")
    if isinstance(status, str):
        status = status.strip() or None
    if status is not None and status not in set(recist.LesionStatus):
        raise ValidationError(
            f"{where}.status", repr(status), ", ".join(s.value for s in recist.LesionStatus)
        )
    if diameter is not None and status is not None:
        raise ValidationError(f"{where}.status", "given with a diameter", "a diameter or a status")
    if diameter is None and status is None and not baseline:
        raise ValidationError(
            f"{where}.diameter_mm", "nothing recorded", "a diameter in mm or a status"
        )
    return {"diameter_mm": diameter, "status": status}


def _engine_entry(
    read: TumourAssessment, measured: Mapping[str, Mapping[str, Any]], new_lesions: str
) -> dict[str, Any]:
    baseline = read.timepoint == "baseline"
    lesions = []
    for m in read.lesions:
        if m.kind == "new":
            continue
        lesion: dict[str, Any] = {"id": m.lesion_id}
        if baseline:
            lesion.update(organ=m.organ, kind=m.kind, nodal=m.lymph_node)
        value = measured[m.lesion_id]
        if value["diameter_mm"] is not None:
            lesion["diameter_mm"] = str(value["diameter_mm"])
        elif value["status"] is not None:
            lesion["status"] = value["status"]
        lesions.append(lesion)
    return {
        "date": read.assessment_date.isoformat(),
        "new_lesions": "no" if baseline else new_lesions,
        "lesions": lesions,
    }


def _named_by_lesion(exc: ValidationError, lesion_ids: set[str]) -> ValidationError:
    """An engine message about a lesion of the corrected read, renamed to the correction's
    field (``lesions.T1.diameter_mm``) so that forms show it next to the input."""
    found = _ENGINE_LESION_FIELD.search(exc.field)
    if found is None or found["lid"] not in lesion_ids:
        return exc
    field = f"lesions.{found['lid']}.{found['attr'] or 'diameter_mm'}"
    return ValidationError(field, exc.problem, exc.accepted)


def edit_central_read(
    session: Session,
    patient_code: str,
    read_id: int,
    changes: Mapping[str, Any],
    today: dt.date,
) -> TumourAssessment:
    """Correct the lesion measurements (and, at a follow-up, the new-lesion call) of a saved
    central read. Every central read of the patient is evaluated again by the RECIST 1.1
    engine with the correction, so the corrected read and the later ones (whose nadir or
    baseline may change) store the engine's response and sum. ``changes``: ``{"lesions":
    {"T1": {"diameter_mm": "14"}, "NT1": {"status": "absent"}}, "new_lesions": "no"}``; lesions
    left out keep their measurement. Needs a reason in the unit of work."""
    require_reason(session, "a saved central read")
    edits.only(changes, READ_EDITABLE)
    read = get_central_read(session, patient_code, read_id)
    baseline = read.timepoint == "baseline"
    saved = read_edit_form(read)
    measured: dict[str, dict[str, Any]] = {
        lid: {
            "diameter_mm": None if m["diameter_mm"] is None else Decimal(m["diameter_mm"]),
            "status": m["status"],
        }
        for lid, m in saved["lesions"].items()
    }
    given = changes.get("lesions", {})
    if not isinstance(given, Mapping):
        raise ValidationError("lesions", "expected an object of lesion id -> measurement", None)
    for lid, raw in given.items():
        if str(lid) not in measured:
            raise ValidationError(
                f"lesions.{lid}",
                "not a lesion of this read",
                ", ".join(measured) or "the lesions of the read",
            )
        measured[str(lid)] = _measurement(str(lid), raw, baseline)
    new_lesions = changes.get("new_lesions", saved["new_lesions"])
    if new_lesions not in set(recist.NewLesions):
        raise ValidationError(
            "new_lesions", repr(new_lesions), ", ".join(n.value for n in recist.NewLesions)
        )
    if baseline and new_lesions != "no":
        raise ValidationError("new_lesions", "given at the baseline read", "no (baseline)")
    reads = central_reads(session, patients.get_patient(session, patient_code))
    entries = [
        _engine_entry(r, measured, new_lesions)
        if r is read
        else _engine_entry(r, read_edit_form(r)["lesions"], new_lesions_of(r))
        for r in reads
    ]
    try:
        evaluation = evaluate(_as_engine(entries))
    except ValidationError as exc:
        raise _named_by_lesion(exc, set(measured)) from None
    lesion_changes: list[tuple[LesionMeasurement, dict[str, Any]]] = []
    for m in read.lesions:
        if m.kind != "new":
            new = measured[m.lesion_id]
            if (m.diameter_mm, m.status) != (new["diameter_mm"], new["status"]):
                lesion_changes.append((m, new))
    new_row = next((m for m in read.lesions if m.kind == "new"), None)
    call_changed = new_lesions != saved["new_lesions"]
    if not lesion_changes and not call_changed:
        raise ValidationError("edit", "nothing to change: the read already holds these values")
    for m, new in lesion_changes:
        edits.apply(m, new, f"lesion {m.lesion_id}")
    if call_changed:
        if new_lesions == "no" and new_row is not None:
            session.delete(new_row)
        elif new_row is not None:
            edits.apply(new_row, {"status": new_lesions}, "new-lesion call")
        else:
            session.add(_new_lesion_row(read.id, new_lesions))
    # every read again as the engine now sees it (the corrected one and the later ones)
    for k, r in enumerate(reads):
        outcome: dict[str, Any]
        if k == 0:
            outcome = {"overall_response": None, "target_sum_mm": evaluation.baseline_sum_mm}
        else:
            result = evaluation.results[k - 1]
            outcome = {"overall_response": result.overall.value, "target_sum_mm": result.sum_mm}
        for key, value in outcome.items():
            if getattr(r, key) != value:
                setattr(r, key, value)
    session.flush()
    session.expire(read, ["lesions"])
    return read


def _as_engine(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The RECIST engine's JSON shape from read entries (baseline first)."""
    base, followups = entries[0], entries[1:]
    return {
        "randomization_date": base["date"],
        "baseline": {"date": base["date"], "lesions": base["lesions"]},
        "followups": followups,
    }
