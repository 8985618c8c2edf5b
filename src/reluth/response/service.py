"""Blinded central review: the worklist and central reads (lesions per time point), evaluated
by the RECIST 1.1 engine and stored in the caller's audited ``unit_of_work`` session.

Thin service written for the web eCRF. Nothing here reads the randomization, the arm or the
treatment tables: the reviewer's view is built from inclusion and central reads only. The
engine needs a reference date for "days from randomization"; central reads use the baseline
read's date instead, which changes no time-point response.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reluth.errors import Conflict, PreconditionFailed, ValidationError
from reluth.patients import service as patients
from reluth.patients.models import Inclusion, Patient
from reluth.protocol.definition import load_protocol
from reluth.response import recist
from reluth.response.models import LesionMeasurement, TumourAssessment

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
        session.add(
            LesionMeasurement(
                assessment_id=read.id,
                lesion_id="NEW",
                kind="new",
                organ="",
                lymph_node=False,
                diameter_mm=None,
                status=new_lesions,
            )
        )
    session.flush()
    return read
