"""Blinded central review: the worklist and central reads (lesions per time point), evaluated
by the RECIST 1.1 engine and stored in the caller's audited ``unit_of_work`` session, together
with the engine's whole evaluation of the patient's reads (``recist_evaluations``).

Thin service written for the web eCRF. Nothing here reads the arm or the treatment tables:
the reviewer's view is built from inclusion and central reads only. The stored evaluation
needs the randomization *date* (the minimum SD duration and the month-6 window count from
it, RECIST 1.1 §4.4.1 and the protocol); it is read alone, never the arm, and no reviewer
page or API shows it. Time-point responses do not depend on it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.db import edits
from reluth.db.session import require_reason
from reluth.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    ValidationError,
    ValidationErrors,
)
from reluth.i18n import N_
from reluth.i18n.reasons import Joined, Reason, Word, invalid, refusal
from reluth.patients import service as patients
from reluth.patients.models import Inclusion, Patient
from reluth.protocol.definition import Protocol
from reluth.randomization.models import Randomization
from reluth.response import recist
from reluth.response.models import (
    LesionMeasurement,
    RecistEvaluation,
    RecistTimePoint,
    TumourAssessment,
)
from reluth.units import to_decimal
from reluth.values import parse_number

CENTRAL = "central"
#: The readers as refusals name them.
READERS = {"central": N_("central"), "local": N_("local")}
#: The site investigator's own reads (RECIST 1.1 by the same engine), kept apart from central
#: review: separate rows (``reader``), separate stored evaluations, never shown to the
#: blinded central reviewer (the policy gives that role no read of local assessments).
LOCAL = "local"
MODALITIES = ("CT", "MRI")


@dataclass(frozen=True)
class WorkItem:
    patient_code: str
    reads: int
    last_timepoint: str | None
    last_date: dt.date | None


@service(Action.READ, Resource.CENTRAL_REVIEW)
def worklist(ctx: Ctx) -> list[WorkItem]:
    """Included patients with the number of central reads so far (no arm, no treatment)."""
    session = ctx.session
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


def reads_of(session: Session, patient: Patient, reader: str) -> list[TumourAssessment]:
    """A patient's reads by ``reader`` (central or local), in date order."""
    return list(
        session.scalars(
            select(TumourAssessment)
            .where(TumourAssessment.patient_id == patient.id, TumourAssessment.reader == reader)
            .order_by(TumourAssessment.assessment_date, TumourAssessment.id)
        )
    )


def central_reads(session: Session, patient: Patient) -> list[TumourAssessment]:
    return reads_of(session, patient, CENTRAL)


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
        raise refusal(PreconditionFailed, "no_central_read", N_("no central read yet"))
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
            raise invalid(
                f"{where}.id",
                "too_long",
                N_("too long"),
                N_("at most {limit} characters"),
                limit=LESION_ID_MAX,
            )
        if len(str(lesion.get("organ") or "")) > ORGAN_MAX:
            raise invalid(
                f"{where}.organ",
                "too_long",
                N_("too long"),
                N_("at most {limit} characters"),
                limit=ORGAN_MAX,
            )
        if not baseline:
            for key in BASELINE_ONLY:
                if lesion.get(key) is not None:
                    raise invalid(
                        f"{where}.{key}",
                        "baseline_only",
                        N_("given at a follow-up read"),
                        N_("organ, kind and nodal only at the baseline read"),
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


@service(Action.WRITE, Resource.CENTRAL_REVIEW, writes=False)
def preview_read(
    ctx: Ctx,
    patient_code: str,
    assessment_date: dt.date,
    new_lesions: str,
    lesions: list[dict[str, Any]],
) -> Evaluation:
    """RECIST 1.1 for the stored central reads plus a proposed one, as the reviewer types
    (nothing is stored)."""
    patient = reviewed_patient(ctx, patient_code)
    return _preview(ctx, central_reads(ctx.session, patient), assessment_date, new_lesions, lesions)


def _preview(
    ctx: Ctx,
    reads: list[TumourAssessment],
    assessment_date: dt.date,
    new_lesions: str,
    lesions: list[dict[str, Any]],
) -> Evaluation:
    return evaluate(
        engine_input(reads, _proposed(reads, assessment_date, new_lesions, lesions)), ctx.protocol
    )


@service(Action.WRITE, Resource.LOCAL_ASSESSMENT, writes=False)
def preview_local_assessment(
    ctx: Ctx,
    patient_code: str,
    assessment_date: dt.date,
    new_lesions: str,
    lesions: list[dict[str, Any]],
) -> Evaluation:
    """RECIST 1.1 for the site's stored local assessments plus a proposed one (nothing stored)."""
    patient = reviewed_patient(ctx, patient_code)
    return _preview(
        ctx, reads_of(ctx.session, patient, LOCAL), assessment_date, new_lesions, lesions
    )


def new_lesions_of(read: TumourAssessment) -> str:
    """New lesions are stored as one row of kind ``new`` whose status is yes or equivocal."""
    return next((m.status or "yes" for m in read.lesions if m.kind == "new"), "no")


@dataclass(frozen=True)
class Evaluation:
    baseline_sum_mm: Decimal | None
    results: list[recist.TimePointResult]


def evaluation_options(protocol: Protocol) -> recist.RecistOptions:
    """The engine's options for this trial (the protocol file's landmark and SD duration)."""
    return recist.RecistOptions.from_protocol(protocol)


def evaluate(data: dict[str, Any], protocol: Protocol) -> Evaluation:
    """Pure: time-point responses for the reads in ``data`` (engine shape)."""
    parsed = recist.parse_patient(data)
    return Evaluation(
        recist.baseline_sum(parsed),
        recist.time_point_results(parsed, evaluation_options(protocol)),
    )


def reviewed_patient(ctx: Ctx, patient_code: str) -> Patient:
    """An included patient, as the central reviewer may see it (NotFound otherwise)."""
    patient = patients.get_patient(ctx, patient_code)
    included = ctx.session.scalars(select(Inclusion).where(Inclusion.patient_id == patient.id))
    if included.first() is None:
        raise patients.not_included(patient_code)
    return patient


@service(Action.WRITE, Resource.CENTRAL_REVIEW)
def record_central_read(
    ctx: Ctx,
    patient_code: str,
    timepoint: str,
    assessment_date: dt.date,
    modality: str,
    lesions: list[dict[str, Any]],
    new_lesions: str,
) -> TumourAssessment:
    """Store one central read after the engine has accepted it with all earlier reads."""
    patient = reviewed_patient(ctx, patient_code)
    return _record_read(
        ctx, patient, CENTRAL, timepoint, assessment_date, modality, lesions, new_lesions
    )


@service(Action.WRITE, Resource.LOCAL_ASSESSMENT)
def record_local_assessment(
    ctx: Ctx,
    patient_code: str,
    timepoint: str,
    assessment_date: dt.date,
    modality: str,
    lesions: list[dict[str, Any]],
    new_lesions: str,
) -> TumourAssessment:
    """Store the site investigator's tumour assessment (RECIST 1.1 lesions as central review
    takes them), evaluated by the same engine with the site's earlier local assessments only,
    and stored with its own evaluation (reader ``local``): central review never sees it and
    it never enters the central evaluation (the protocol's primary endpoint is centrally read)."""
    patient = reviewed_patient(ctx, patient_code)
    return _record_read(
        ctx, patient, LOCAL, timepoint, assessment_date, modality, lesions, new_lesions
    )


@service(Action.READ, Resource.LOCAL_ASSESSMENT)
def local_assessments(
    ctx: Ctx, patient_code: str
) -> tuple[list[TumourAssessment], EvaluationView | None]:
    """A patient's local assessments and their current RECIST evaluation (None: none yet, or
    reads the engine cannot evaluate, such as a free response without its lesions)."""
    patient = patients.get_patient(ctx, patient_code)
    reads = reads_of(ctx.session, patient, LOCAL)
    if not reads:
        return reads, None
    try:
        return reads, current_evaluation(ctx.session, patient, ctx.protocol, LOCAL)
    except ValidationError:  # entered as a free response (`reluth record assessment`)
        return reads, None


def _record_read(
    ctx: Ctx,
    patient: Patient,
    reader: str,
    timepoint: str,
    assessment_date: dt.date,
    modality: str,
    lesions: list[dict[str, Any]],
    new_lesions: str,
) -> TumourAssessment:
    """One read by ``reader``: checked with the reader's earlier reads by the engine, stored
    with its lesions and the engine's evaluation of all the reader's reads."""
    session = ctx.session
    patient_code = patient.patient_code
    if not isinstance(modality, str) or modality not in MODALITIES:
        raise invalid("modality", "not_accepted", N_("{value}"), MODALITIES, value=repr(modality))
    if not isinstance(timepoint, str):
        raise _bad_timepoint(timepoint)
    timepoint = timepoint.strip()
    if not timepoint or len(timepoint) > 32 or not timepoint.isprintable():
        raise _bad_timepoint(timepoint)
    _lock(session, patient)
    patients.check_date(ctx, patient, "tumour_assessment", assessment_date, "assessment_date")
    reads = reads_of(session, patient, reader)
    if any(r.timepoint == timepoint for r in reads):
        raise refusal(
            Conflict,
            "read_already_recorded",
            N_("the {reader} read {timepoint} of {patient} is already recorded"),
            reader=Word(READERS.get(reader, reader)),
            timepoint=timepoint,
            patient=patient_code,
        )
    is_baseline = not reads
    if is_baseline != (timepoint == "baseline"):
        raise invalid(
            "timepoint",
            "baseline_first",
            N_("{value}"),
            N_("baseline first, then follow-up time points"),
            value=repr(timepoint),
        )
    if reads and assessment_date <= reads[-1].assessment_date:
        raise invalid(
            "assessment_date",
            "not_after_previous_read",
            N_("{day}"),
            N_("after the previous read"),
            day=assessment_date,
        )
    data = engine_input(reads, _proposed(reads, assessment_date, new_lesions, lesions))
    evaluation = evaluate(data, ctx.protocol)
    last = evaluation.results[-1] if not is_baseline else None
    read = TumourAssessment(
        patient_id=patient.id,
        assessment_date=assessment_date,
        timepoint=timepoint,
        reader=reader,
        modality=modality,
        overall_response=last.overall.value if last else None,
        target_sum_mm=last.sum_mm if last else evaluation.baseline_sum_mm,
        protocol_version=ctx.protocol.label,
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
                diameter_mm=parse_number(raw["diameter_mm"], f"lesion {lid}.diameter_mm")
                if raw.get("diameter_mm") is not None
                else None,
                status=raw.get("status"),
            )
        )
    if new_lesions in ("yes", "equivocal"):
        session.add(_new_lesion_row(read.id, new_lesions))
    session.flush()
    store_evaluation(session, patient, [*reads, read], data, read, ctx.protocol, reader)
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


def _read_of(ctx: Ctx, patient_code: str, read_id: int) -> TumourAssessment:
    patient = patients.get_patient(ctx, patient_code)
    read = ctx.session.get(TumourAssessment, read_id)
    if read is None or read.patient_id != patient.id or read.reader != CENTRAL:
        raise refusal(
            NotFound,
            "record_not_found",
            N_("central read {id} of {patient} not found"),
            id=str(read_id),
            patient=patient_code,
        )
    return read


@service(Action.READ, Resource.CENTRAL_REVIEW)
def get_central_read(ctx: Ctx, patient_code: str, read_id: int) -> TumourAssessment:
    return _read_of(ctx, patient_code, read_id)


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
        raise invalid(
            where,
            "not_an_object",
            N_("expected an object, got {value}"),
            N_("diameter_mm or status"),
            value=repr(raw),
        )
    for key in raw:
        if key not in MEASUREMENT_KEYS:
            raise invalid(
                f"{where}.{key}", "not_a_field", N_("cannot be changed"), ("diameter_mm", "status")
            )
    diameter: Decimal | None = None
    text = raw.get("diameter_mm")
    if text is not None and str(text).strip():
        diameter = to_decimal(text, f"{where}.diameter_mm")
        exponent = diameter.normalize().as_tuple().exponent
        if not 0 <= diameter <= DIAMETER_MAX_MM or (isinstance(exponent, int) and exponent < -1):
            raise invalid(
                f"{where}.diameter_mm",
                "diameter_out_of_range",
                N_("{value}"),
                N_("0 to {limit} mm, one decimal"),
                value=repr(text),
                limit=DIAMETER_MAX_MM,
            )
        diameter = diameter.quantize(Decimal("0.1"))
    status = raw.get("status")
    if isinstance(status, str):
        status = status.strip() or None
    if status is not None and status not in set(recist.LesionStatus):
        raise invalid(
            f"{where}.status",
            "not_accepted",
            N_("{value}"),
            tuple(s.value for s in recist.LesionStatus),
            value=repr(status),
        )
    if diameter is not None and status is not None:
        raise invalid(
            f"{where}.status",
            "diameter_and_status",
            N_("given with a diameter"),
            N_("a diameter or a status"),
        )
    if diameter is None and status is None and not baseline:
        raise invalid(
            f"{where}.diameter_mm",
            "required",
            N_("nothing recorded"),
            N_("a diameter in mm or a status"),
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


@service(Action.WRITE, Resource.CENTRAL_REVIEW)
def edit_central_read(
    ctx: Ctx,
    patient_code: str,
    read_id: int,
    changes: Mapping[str, Any],
) -> TumourAssessment:
    """Correct the lesion measurements (and, at a follow-up, the new-lesion call) of a saved
    central read. Every central read of the patient is evaluated again by the RECIST 1.1
    engine with the correction, so the corrected read and the later ones (whose nadir or
    baseline may change) store the engine's response and sum. ``changes``: ``{"lesions":
    {"T1": {"diameter_mm": "14"}, "NT1": {"status": "absent"}}, "new_lesions": "no"}``; lesions
    left out keep their measurement. Needs a reason in the unit of work."""
    session = ctx.session
    require_reason(session, "a saved central read")
    edits.only(changes, READ_EDITABLE)
    read = _read_of(ctx, patient_code, read_id)
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
        raise invalid(
            "lesions", "not_an_object", N_("expected an object of lesion id -> measurement")
        )
    for lid, raw in given.items():
        if str(lid) not in measured:
            raise invalid(
                f"lesions.{lid}",
                "unknown_lesion",
                N_("not a lesion of this read"),
                tuple(measured) or N_("the lesions of the read"),
            )
        measured[str(lid)] = _measurement(str(lid), raw, baseline)
    new_lesions = changes.get("new_lesions", saved["new_lesions"])
    if new_lesions not in set(recist.NewLesions):
        raise invalid(
            "new_lesions",
            "not_accepted",
            N_("{value}"),
            tuple(n.value for n in recist.NewLesions),
            value=repr(new_lesions),
        )
    if baseline and new_lesions != "no":
        raise invalid(
            "new_lesions", "baseline_only", N_("given at the baseline read"), N_("no (baseline)")
        )
    patient = patients.get_patient(ctx, patient_code)
    _lock(session, patient)
    reads = central_reads(session, patient)
    entries = [
        _engine_entry(r, measured, new_lesions)
        if r is read
        else _engine_entry(r, read_edit_form(r)["lesions"], new_lesions_of(r))
        for r in reads
    ]
    data = _as_engine(entries)
    try:
        evaluation = evaluate(data, ctx.protocol)
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
        raise invalid(
            "edit",
            "nothing_to_change",
            N_("nothing to change: the read already holds these values"),
        )
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
    store_evaluation(session, patient, reads, data, read, ctx.protocol)
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


# --- the engine's evaluation of a patient's reads, stored and read back ----------------------


def _lock(session: Session, patient: Patient) -> None:
    """Serialize the reads and corrections of one patient (PostgreSQL row lock; SQLite has
    one writer at a time), so each stored evaluation sees every read before it."""
    session.execute(select(Patient.id).where(Patient.id == patient.id).with_for_update())


def randomization_date(session: Session, patient: Patient) -> dt.date | None:
    """The date the patient was randomized (UTC), or None: the date alone, never the arm."""
    at = session.scalars(
        select(Randomization.randomized_at).where(Randomization.patient_id == patient.id)
    ).first()
    return None if at is None else at.date()


def _engine_evaluation(
    data: Mapping[str, Any], reference: dt.date | None, baseline_date: dt.date, protocol: Protocol
) -> tuple[recist.PatientInput, list[recist.TimePointResult], recist.PatientOutcome]:
    """The RECIST engine on a patient's reads (engine shape): the time points from the lesions,
    then the patient-level rules from the randomization date (the baseline date before
    randomization: then only the time points are meaningful)."""
    options = evaluation_options(protocol)
    start = reference or baseline_date
    parsed = recist.parse_patient({**data, "randomization_date": start.isoformat()})
    results = recist.time_point_results(parsed, options)
    return parsed, results, recist.patient_outcome(recist.responses_of(results), start, options)


def store_evaluation(
    session: Session,
    patient: Patient,
    reads: Sequence[TumourAssessment],
    data: Mapping[str, Any],
    trigger: TumourAssessment,
    protocol: Protocol,
    reader: str = CENTRAL,
) -> RecistEvaluation:
    """Evaluate all of a patient's reads (``data``: the engine shape of ``reads``, baseline
    first, in date order) and add the evaluation as the patient's next version, in the
    caller's unit of work: every time point as read and after the patient-level rules, BOR
    with its rule, first PD and the month-6 decision (RECIST only: deaths are not read here).
    Before randomization only the time points are stored."""
    reference = randomization_date(session, patient)
    baseline = reads[0]
    parsed, results, outcome = _engine_evaluation(
        data, reference, baseline.assessment_date, protocol
    )
    options = outcome.options
    read_on = {r.assessment_date: r.id for r in reads}
    last = session.scalars(
        select(func.max(RecistEvaluation.version)).where(
            RecistEvaluation.patient_id == patient.id, RecistEvaluation.reader == reader
        )
    ).first()
    known = reference is not None
    month6 = outcome.disease_control_month6_message if known else None
    month6 = month6 or recist.month6_not_randomized()
    evaluation = RecistEvaluation(
        patient_id=patient.id,
        reader=reader,
        version=(last or 0) + 1,
        trigger_assessment_id=trigger.id,
        baseline_assessment_id=baseline.id,
        baseline_sum_mm=recist.baseline_sum(parsed),
        reference_date=reference,
        options_json=json.dumps(options.as_dict(), sort_keys=True),
        min_sd_duration_days=options.min_sd_duration_days,
        landmark_day=options.landmark_day,
        landmark_window_days=options.landmark_window_days,
        best_overall_response=outcome.best_overall_response.value if known else None,
        bor_date=outcome.best_overall_response_date if known else None,
        bor_rule=outcome.bor_rule if known else None,
        first_pd_date=outcome.first_pd_date,
        landmark_start=outcome.landmark_window[0] if known else None,
        landmark_end=outcome.landmark_window[1] if known else None,
        landmark_date=outcome.landmark_date if known else None,
        disease_control_month6=outcome.disease_control_month6 if known else None,
        dcr6_reason=month6.english(),
        dcr6_message=json.dumps(month6.as_dict(), sort_keys=True),
        protocol_version=protocol.label,
    )
    session.add(evaluation)
    session.flush()
    for tp, point in zip(results, outcome.time_points, strict=True):
        session.add(
            RecistTimePoint(
                evaluation_id=evaluation.id,
                assessment_id=read_on[tp.date],
                assessment_date=tp.date,
                sum_mm=tp.sum_mm,
                nadir_mm=tp.nadir_mm,
                change_from_baseline_pct=tp.change_from_baseline_pct,
                target=tp.target.value,
                non_target=tp.non_target.value,
                new_lesions=tp.new_lesions.value,
                overall_as_read=point.as_read.value,
                overall=point.overall.value,
                redated_by_assessment_id=(
                    None if point.redated_by is None else read_on[point.redated_by]
                ),
                notes=recist.NOTES_SEPARATOR.join(tp.notes),
                note_messages=json.dumps([m.as_dict() for m in tp.messages], sort_keys=True),
            )
        )
    session.flush()
    return evaluation


@dataclass(frozen=True)
class StoredTimePoint:
    """One follow-up read of an evaluation, typed."""

    read_id: int
    date: dt.date
    sum_mm: Decimal | None
    change_from_baseline_pct: Decimal | None
    new_lesions: recist.NewLesions
    as_read: recist.Response
    overall: recist.Response
    redated_by: int | None  # the read whose confirmed new lesion re-dated PD to this one
    #: the engine's notes as message keys and values (a stored note no template fits: its
    #: English as stored); shown with ``reluth.i18n.reasons.shown``
    notes: tuple[Reason | str, ...] = ()


def _stored_notes(tp: RecistTimePoint) -> tuple[Reason | str, ...]:
    """The notes of a stored time point: its keys, or (stored before migration 0019) its
    English mapped to the keys."""
    if tp.note_messages:
        return tuple(Reason.from_dict(m) for m in json.loads(tp.note_messages))
    return recist.note_messages_of(tp.notes or "")


def _stored_month6(ev: RecistEvaluation) -> Reason | None:
    if ev.dcr6_message:
        return Reason.from_dict(json.loads(ev.dcr6_message))
    return recist.month6_message_of(ev.dcr6_reason or "")


@dataclass(frozen=True)
class EvaluationView:
    """The current evaluation of a patient's reads by one reader (the read model the analysis
    datasets are built from). ``stored``: the latest stored version, which covers exactly the
    patient's reads; otherwise (reads saved before evaluations were stored) the engine's
    evaluation of the reads made now. ``outcome`` is None before randomization."""

    patient_code: str
    reader: str
    stored: bool
    version: int | None
    baseline_read_id: int
    baseline_date: dt.date
    baseline_sum_mm: Decimal | None
    reference_date: dt.date | None
    options: recist.RecistOptions
    time_points: tuple[StoredTimePoint, ...]
    outcome: recist.PatientOutcome | None

    def read_on(self, date: dt.date | None) -> int | None:
        """The id of the read dated ``date`` (None for no date)."""
        return next((tp.read_id for tp in self.time_points if tp.date == date), None)


def _view_of_stored(code: str, ev: RecistEvaluation, baseline_date: dt.date) -> EvaluationView:
    options = recist.RecistOptions(**json.loads(ev.options_json))
    dates = {tp.assessment_id: tp.assessment_date for tp in ev.time_points}
    points = tuple(
        StoredTimePoint(
            read_id=tp.assessment_id,
            date=tp.assessment_date,
            sum_mm=tp.sum_mm,
            change_from_baseline_pct=tp.change_from_baseline_pct,
            new_lesions=recist.NewLesions(tp.new_lesions),
            as_read=recist.Response(tp.overall_as_read),
            overall=recist.Response(tp.overall),
            redated_by=tp.redated_by_assessment_id,
            notes=_stored_notes(tp),
        )
        for tp in ev.time_points
    )
    outcome = None
    if ev.reference_date is not None:
        assert ev.best_overall_response is not None and ev.bor_rule is not None
        assert ev.landmark_start is not None and ev.landmark_end is not None
        outcome = recist.PatientOutcome(
            randomization_date=ev.reference_date,
            time_points=tuple(
                recist.OutcomeTimePoint(
                    tp.date,
                    tp.as_read,
                    tp.overall,
                    tp.new_lesions,
                    None if tp.redated_by is None else dates[tp.redated_by],
                )
                for tp in points
            ),
            best_overall_response=recist.Response(ev.best_overall_response),
            best_overall_response_date=ev.bor_date,
            bor_rule=ev.bor_rule,
            first_pd_date=ev.first_pd_date,
            disease_control_month6=bool(ev.disease_control_month6),
            disease_control_month6_reason=ev.dcr6_reason or "",
            disease_control_month6_message=_stored_month6(ev),
            landmark_window=(ev.landmark_start, ev.landmark_end),
            landmark_date=ev.landmark_date,
            death_date=None,
            options=options,
        )
    return EvaluationView(
        patient_code=code,
        reader=ev.reader,
        stored=True,
        version=ev.version,
        baseline_read_id=ev.baseline_assessment_id,
        baseline_date=baseline_date,
        baseline_sum_mm=ev.baseline_sum_mm,
        reference_date=ev.reference_date,
        options=options,
        time_points=points,
        outcome=outcome,
    )


def _bad_timepoint(timepoint: object) -> ValidationError:
    return invalid(
        "timepoint",
        "not_a_timepoint",
        N_("{value}"),
        N_("{examples}, ..."),
        value=repr(timepoint),
        examples=("baseline", "week8", "week16"),
    )


def _reads_refused(reader: str, code: str, errors: Sequence[ValidationError]) -> Reason:
    """Stored reads the engine refuses, each problem in the reader's language."""
    return Reason(
        "stored_reads_refused",
        N_("{reader} reads of {patient}: {problems}"),
        {
            "reader": Word(READERS.get(reader, reader)),
            "patient": code,
            "problems": Joined(tuple(e.params.get("reason") or e.message for e in errors)),
        },
    )


def _view_evaluated_now(
    code: str,
    reads: Sequence[TumourAssessment],
    reference: dt.date | None,
    reader: str,
    protocol: Protocol,
) -> EvaluationView:
    """The engine's evaluation of reads that no stored evaluation covers (nothing written)."""
    baseline = reads[0]
    try:
        parsed, results, outcome = _engine_evaluation(
            engine_input(list(reads), None), reference, baseline.assessment_date, protocol
        )
    except ValidationError as exc:
        raise ValidationError(
            f"{reader} reads of {code}: {exc.field}",
            exc.problem,
            exc.accepted,
            code=exc.code,
            params={"reason": _reads_refused(reader, code, [exc])},
        ) from None
    except ValidationErrors as exc:
        raise ValidationError(
            f"{reader} reads of {code}",
            exc.message,
            code=exc.code,
            params={"reason": _reads_refused(reader, code, exc.errors)},
        ) from None
    read_on = {r.assessment_date: r.id for r in reads}
    points = tuple(
        StoredTimePoint(
            read_id=read_on[tp.date],
            date=tp.date,
            sum_mm=tp.sum_mm,
            change_from_baseline_pct=tp.change_from_baseline_pct,
            new_lesions=tp.new_lesions,
            as_read=point.as_read,
            overall=point.overall,
            redated_by=None if point.redated_by is None else read_on[point.redated_by],
            notes=tp.messages,
        )
        for tp, point in zip(results, outcome.time_points, strict=True)
    )
    return EvaluationView(
        patient_code=code,
        reader=reader,
        stored=False,
        version=None,
        baseline_read_id=baseline.id,
        baseline_date=baseline.assessment_date,
        baseline_sum_mm=recist.baseline_sum(parsed),
        reference_date=reference,
        options=outcome.options,
        time_points=points,
        outcome=outcome if reference is not None else None,
    )


def current_evaluation(
    session: Session, patient: Patient, protocol: Protocol, reader: str = CENTRAL
) -> EvaluationView | None:
    """The current evaluation of the patient's reads by ``reader`` (None without any read)."""
    found = current_evaluations(session, protocol, reader, patient_ids=[patient.id])
    return found.get(patient.patient_code)


def current_evaluations(
    session: Session,
    protocol: Protocol,
    reader: str = CENTRAL,
    patient_ids: Sequence[int] | None = None,
) -> dict[str, EvaluationView]:
    """Patient code -> current evaluation, for every patient with a read by ``reader``."""
    query = select(TumourAssessment).where(TumourAssessment.reader == reader)
    if patient_ids is not None:
        query = query.where(TumourAssessment.patient_id.in_(patient_ids))
    reads: dict[int, list[TumourAssessment]] = {}
    for r in session.scalars(
        query.order_by(
            TumourAssessment.patient_id, TumourAssessment.assessment_date, TumourAssessment.id
        )
    ):
        reads.setdefault(r.patient_id, []).append(r)
    if not reads:
        return {}
    latest = (
        select(RecistEvaluation.patient_id, func.max(RecistEvaluation.version).label("v"))
        .where(RecistEvaluation.reader == reader, RecistEvaluation.patient_id.in_(list(reads)))
        .group_by(RecistEvaluation.patient_id)
        .subquery()
    )
    stored = {
        ev.patient_id: ev
        for ev in session.scalars(
            select(RecistEvaluation)
            .join(
                latest,
                (RecistEvaluation.patient_id == latest.c.patient_id)
                & (RecistEvaluation.version == latest.c.v),
            )
            .where(RecistEvaluation.reader == reader)
        )
    }
    codes = dict(
        session.execute(
            select(Patient.id, Patient.patient_code).where(Patient.id.in_(list(reads)))
        ).all()
    )
    dates = dict(
        session.execute(
            select(Randomization.patient_id, Randomization.randomized_at).where(
                Randomization.patient_id.in_(list(reads))
            )
        ).all()
    )
    out: dict[str, EvaluationView] = {}
    for pid, patient_reads in reads.items():
        code = codes[pid]
        ev = stored.get(pid)
        covered = ev is not None and (
            ev.baseline_assessment_id == patient_reads[0].id
            and [tp.assessment_id for tp in ev.time_points] == [r.id for r in patient_reads[1:]]
        )
        if ev is not None and covered:
            out[code] = _view_of_stored(code, ev, patient_reads[0].assessment_date)
        else:
            at = dates.get(pid)
            out[code] = _view_evaluated_now(
                code, patient_reads, None if at is None else at.date(), reader, protocol
            )
    return out
