"""Dosimetry results in the trial database: store the records of a computed case for one
patient and administered cycle, and read a patient's results with the cumulative kidney and
marrow figures against the limits of ``data/limits.yaml``.

Writes happen inside the caller's audited unit of work. A cycle's results are stored once;
storing them again replaces the old rows only when asked to, and the deletion needs the unit
of work's reason (the audit door refuses it otherwise). The arm can be inferred from cycles 3
and 4: the permission layer keeps dosimetry away from blinded roles.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.dosimetry.cumulative import (
    CumulativeResult,
    CycleDoses,
    OrganCycleDose,
    cumulate,
    default_limits,
    reaches,
)
from reluth.dosimetry.models import DoseResult
from reluth.dosimetry.pipeline import DoseRecord, records_from_summary
from reluth.errors import Conflict, PreconditionFailed
from reluth.i18n import N_
from reluth.i18n.reasons import invalid, refusal
from reluth.patients.service import get_patient
from reluth.treatment.models import Administration

if TYPE_CHECKING:
    from reluth.dosimetry.dicom_case import StoreCase

#: Quantities a record may hold, with the one unit each is stored in (as the pipeline writes).
QUANTITY_UNITS: dict[str, str] = {
    "tia": "MBq·h",
    "effective_half_life": "h",
    "absorbed_dose": "Gy",
    "voxel_mean_dose": "Gy",
    "voxel_d2_dose": "Gy",
    "voxel_d50_dose": "Gy",
    "voxel_d98_dose": "Gy",
    "bed": "Gy",
}
REGION_KINDS = ("organ", "tumour", "remainder", "marrow")
MAX_RECORDS = 500  # per cycle; a case yields a few dozen
_TEXT_LIMITS = {"case_id": 64, "region": 64, "method": 64}


def _text(raw: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise invalid(
            f"{where}.{key}",
            "unaccepted_where_key",
            N_("{value}"),
            N_("non-empty text"),
            value=repr(value),
        )
    value = value.strip()
    if len(value) > _TEXT_LIMITS[key]:
        raise invalid(
            f"{where}.{key}",
            "characters",
            N_("{n_value} characters"),
            N_("at most {text_limits}"),
            n_value=len(value),
            text_limits=str(_TEXT_LIMITS[key]),
        )
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise invalid(
            field, "unaccepted_field", N_("{value}"), N_("a finite number"), value=repr(value)
        )
    try:
        number = float(value)
    except ValueError:
        raise invalid(
            field, "unaccepted_field", N_("{value}"), N_("a finite number"), value=repr(value)
        ) from None
    if not math.isfinite(number):
        raise invalid(
            field, "unaccepted_field", N_("{value}"), N_("a finite number"), value=repr(value)
        )
    if number < 0:
        raise invalid(
            field, "negative", N_("{number} is negative"), N_("a number >= 0"), number=str(number)
        )
    return number


def parse_records(raw: Sequence[Any], case_id: str | None = None) -> list[DoseRecord]:
    """Validate records given as JSON objects (``region``, ``quantity``, ``value``, ``unit``,
    ``method``; optional ``sd``, ``kind``, ``case_id``) or as pipeline ``DoseRecord``\\ s.
    Each problem names the record: ``records[3].unit``."""
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise invalid("records", "not_list", N_("not a list"), N_("a list of dose records"))
    if not raw:
        raise invalid(
            "records", "no_record_given", N_("no record given"), N_("at least one dose record")
        )
    if len(raw) > MAX_RECORDS:
        raise invalid(
            "records",
            "records",
            N_("{n_raw} records"),
            N_("at most {max_records}"),
            n_raw=len(raw),
            max_records=str(MAX_RECORDS),
        )
    out: list[DoseRecord] = []
    seen: set[tuple[str, str, str]] = set()
    for i, item in enumerate(raw):
        where = f"records[{i}]"
        data = asdict(item) if isinstance(item, DoseRecord) else item
        if not isinstance(data, Mapping):
            raise invalid(
                where,
                "unaccepted_where",
                N_("{name}"),
                N_("an object"),
                name=str(type(item).__name__),
            )
        quantity = data.get("quantity")
        if quantity not in QUANTITY_UNITS:
            raise invalid(
                f"{where}.quantity",
                "unaccepted_where_quantity",
                N_("{quantity}"),
                N_("{quantity_units}"),
                quantity=repr(quantity),
                quantity_units=", ".join(QUANTITY_UNITS),
            )
        unit = data.get("unit")
        if unit != QUANTITY_UNITS[quantity]:
            raise invalid(
                f"{where}.unit",
                "unaccepted_where_unit",
                N_("{unit} for {quantity}"),
                N_("{quantity_units}"),
                unit=repr(unit),
                quantity=str(quantity),
                quantity_units=str(QUANTITY_UNITS[quantity]),
            )
        kind = data.get("kind", "organ")
        if kind not in REGION_KINDS:
            raise invalid(
                f"{where}.kind",
                "unaccepted_where_kind",
                N_("{kind}"),
                N_("{region_kinds}"),
                kind=repr(kind),
                region_kinds=", ".join(REGION_KINDS),
            )
        if data.get("case_id") is None and case_id is None:
            raise invalid(
                "case_id",
                "missing",
                N_("missing"),
                N_("the dosimetry case ID, given once or in every record"),
            )
        record = DoseRecord(
            case_id=_text(data, "case_id", where, case_id),
            cycle_label=str(data.get("cycle_label", "")),
            region=_text(data, "region", where),
            quantity=quantity,
            value=_number(data.get("value"), f"{where}.value"),
            sd=None if data.get("sd") is None else _number(data["sd"], f"{where}.sd"),
            unit=unit,
            method=_text(data, "method", where),
            kind=kind,
        )
        key = (record.region, record.quantity, record.method)
        if key in seen:
            raise invalid(
                where,
                "given_twice",
                N_("{key} given twice"),
                N_("one record per region, quantity and method"),
                key="/".join(key),
            )
        seen.add(key)
        out.append(record)
    return out


def records_from_document(doc: Any) -> list[Any]:
    """Records from what a person pastes: a list of records, or the ``results.json`` of
    ``reluth dosimetry run`` (flattened by ``pipeline.records_from_summary``)."""
    if isinstance(doc, Mapping) and isinstance(doc.get("vois"), Mapping):
        try:
            return list(records_from_summary(doc))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise invalid(
                "records",
                "not_results_json_dosimetry_case",
                N_("not a results.json of a dosimetry case ({exc_name})"),
                N_("see docs"),
                exc_name=repr(exc),
            ) from None
    if isinstance(doc, list):
        return doc
    raise invalid(
        "records",
        "unaccepted_records",
        N_("{name}"),
        N_("a list of records or a case's results.json"),
        name=str(type(doc).__name__),
    )


def _administration(session: Session, patient_id: int, code: str, cycle: int) -> Administration:
    given = {
        a.cycle: a
        for a in session.scalars(
            select(Administration).where(Administration.patient_id == patient_id)
        )
    }
    if cycle not in given:
        done = ", ".join(str(c) for c in sorted(given)) or "none"
        raise refusal(
            PreconditionFailed,
            "cycle_not_administered",
            N_(
                "cycle {cycle} of {code_name} was not administered (administered cycles: "
                "{done}); record the administration first"
            ),
            cycle=str(cycle),
            code_name=str(code),
            done=str(done),
        )
    return given[cycle]


@service(Action.WRITE, Resource.DOSIMETRY)
def store_cycle(
    ctx: Ctx,
    patient_code: str,
    cycle: int,
    records: Sequence[Any],
    *,
    case_id: str | None = None,
    replace: bool = False,
) -> list[DoseResult]:
    """Store the dose records of one administered cycle of a patient.

    Refuses an unknown patient (NotFound), a cycle without an administration
    (PreconditionFailed), invalid records (ValidationError naming the record and field), and a
    cycle that already has results unless ``replace`` is set (Conflict); replacing deletes the
    old rows, which the audited unit of work accepts only with a reason.
    """
    session, now = ctx.session, ctx.now()
    patient = get_patient(ctx, patient_code)
    if isinstance(cycle, bool) or not isinstance(cycle, int):
        raise invalid(
            "cycle", "unaccepted_cycle", N_("{cycle}"), N_("a cycle number"), cycle=repr(cycle)
        )
    admin = _administration(session, patient.id, patient.patient_code, cycle)
    parsed = parse_records(records, case_id)
    existing = list(
        session.scalars(
            select(DoseResult).where(DoseResult.patient_id == patient.id, DoseResult.cycle == cycle)
        )
    )
    if existing and not replace:
        raise refusal(
            Conflict,
            "cycle_already_has_dose_results",
            N_(
                "cycle {cycle} of {patient_code} already has {n_existing} dose results; "
                "replace them with a reason"
            ),
            cycle=str(cycle),
            patient_code=str(patient.patient_code),
            n_existing=len(existing),
        )
    for row in existing:
        session.delete(row)
    session.flush()  # the deletions first: the new rows reuse their unique keys
    version = ctx.protocol.label
    rows = [
        DoseResult(
            patient_id=patient.id,
            administration_id=admin.id,
            cycle=cycle,
            case_id=r.case_id,
            region=r.region,
            region_kind=r.kind,
            quantity=r.quantity,
            value=r.value,
            sd=r.sd,
            unit=r.unit,
            method=r.method,
            recorded_at=now,
            protocol_version=version,
        )
        for r in parsed
    ]
    session.add_all(rows)
    session.flush()
    return rows


# ------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class DoseRow:
    region: str
    kind: str
    quantity: str
    value: float
    sd: float | None
    unit: str
    method: str


@dataclass(frozen=True)
class CycleResults:
    cycle: int
    administered_on: dt.date
    activity_gbq: Decimal
    case_id: str
    rows: list[DoseRow]


@dataclass(frozen=True)
class LimitCheck:
    """One limit of data/limits.yaml against the patient's cumulative value."""

    organ: str
    quantity: str  # absorbed_dose_gy | bed_gy
    limit_gy: Decimal
    applies_to: str  # all | risk_factors | no_risk_factors
    source: str
    value_gy: float | None
    reached: bool


@dataclass(frozen=True)
class PatientDosimetry:
    patient_code: str
    administered_cycles: list[int]
    cycles: list[CycleResults]
    cumulative: CumulativeResult | None  # None when no organ dose is stored
    limits: list[LimitCheck]


_ORDER = {"organ": 0, "marrow": 1, "tumour": 2, "remainder": 3}
#: The absorbed dose of an organ that enters the cumulative sum, by preference of method.
_CUMULATIVE_METHODS = ("S-value", "blood-based")


def _cycle_doses(cycle: int, rows: list[DoseResult]) -> CycleDoses:
    """Per-organ absorbed dose (S-value / blood-based first) and kidney effective half-life."""
    doses: dict[str, float] = {}
    half_lives: dict[str, float] = {}
    for r in sorted(
        rows,
        key=lambda r: (
            _CUMULATIVE_METHODS.index(r.method)
            if r.method in _CUMULATIVE_METHODS
            else len(_CUMULATIVE_METHODS)
        ),
    ):
        if r.region_kind not in ("organ", "marrow"):
            continue
        if r.quantity == "absorbed_dose":
            doses.setdefault(r.region, r.value)
        elif r.quantity == "effective_half_life":
            half_lives.setdefault(r.region, r.value)
    return CycleDoses(
        f"cycle {cycle}",
        {organ: OrganCycleDose(d, half_lives.get(organ)) for organ, d in doses.items()},
    )


@service(Action.READ, Resource.DOSIMETRY)
def patient_dosimetry(ctx: Ctx, patient_code: str) -> PatientDosimetry:
    """Stored results per cycle, the cumulative organ doses and kidney BED over the stored
    cycles (``cumulative.cumulate``, default BED parameters), and every limit checked."""
    session = ctx.session
    patient = get_patient(ctx, patient_code)
    stmt = (
        select(DoseResult, Administration)
        .join(Administration, Administration.id == DoseResult.administration_id)
        .where(DoseResult.patient_id == patient.id)
        .order_by(DoseResult.cycle, DoseResult.id)
    )
    by_cycle: dict[int, tuple[Administration, list[DoseResult]]] = {}
    for row, admin in session.execute(stmt).all():
        by_cycle.setdefault(row.cycle, (admin, []))[1].append(row)
    cycles = [
        CycleResults(
            cycle,
            admin.administered_on,
            admin.activity_gbq,
            rows[0].case_id,
            sorted(
                (
                    DoseRow(r.region, r.region_kind, r.quantity, r.value, r.sd, r.unit, r.method)
                    for r in rows
                ),
                key=lambda d: (_ORDER.get(d.kind, 9), d.region, d.quantity, d.method),
            ),
        )
        for cycle, (admin, rows) in sorted(by_cycle.items())
    ]
    per_cycle = [_cycle_doses(c, rows) for c, (_a, rows) in sorted(by_cycle.items())]
    per_cycle = [c for c in per_cycle if c.doses]
    cum = cumulate(per_cycle) if per_cycle else None
    checks = []
    for lim in default_limits():
        organ = cum.organs.get(lim.organ) if cum else None
        value = None
        if organ is not None:
            value = (
                organ.cumulative_absorbed_dose_gy
                if lim.quantity == "absorbed_dose_gy"
                else organ.cumulative_bed_gy
            )
        checks.append(
            LimitCheck(
                lim.organ,
                lim.quantity,
                lim.limit_gy,
                lim.applies_to,
                lim.source,
                value,
                value is not None and reaches(value, lim.limit_gy),
            )
        )
    administered = sorted(
        session.scalars(select(Administration.cycle).where(Administration.patient_id == patient.id))
    )
    return PatientDosimetry(patient.patient_code, administered, cycles, cum, checks)


@service(Action.READ, Resource.DOSIMETRY)
def previous_cycle_doses(ctx: Ctx, patient_code: str, before_cycle: int) -> list[CycleDoses]:
    """The stored per-organ doses of the patient's cycles before ``before_cycle`` (what a new
    cycle's cumulative dose and BED add to)."""
    patient = get_patient(ctx, patient_code)
    rows = ctx.session.scalars(
        select(DoseResult).where(
            DoseResult.patient_id == patient.id, DoseResult.cycle < before_cycle
        )
    ).all()
    by_cycle: dict[int, list[DoseResult]] = {}
    for r in rows:
        by_cycle.setdefault(r.cycle, []).append(r)
    doses = [_cycle_doses(c, rs) for c, rs in sorted(by_cycle.items())]
    return [d for d in doses if d.doses]


@service(Action.READ, Resource.IMAGING)
def case_from_store(
    ctx: Ctx, store: Path, patient_code: str, cycle: int, **options: Any
) -> StoreCase:
    """The case of one patient-cycle from the de-identified DICOM store (its catalogued
    series, the recorded administration, the doses of earlier cycles); reading only, so the
    long computation that follows holds no transaction."""
    from reluth.dosimetry import dicom_case

    patient = get_patient(ctx, patient_code)
    previous = previous_cycle_doses(ctx, patient.patient_code, cycle)
    return dicom_case.assemble(
        ctx.session, store, patient.patient_code, cycle, previous_cycles=previous, **options
    )
