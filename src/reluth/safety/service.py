"""Laboratory results: validated and graded by the CTCAE v5.0 engine, stored in one audited
transaction (the caller's ``unit_of_work`` session); corrections of saved results and adverse
events (with a reason, re-graded and re-checked by the same rules as at entry); the SAE clock.

Keep ``preview_lab`` pure so pages can grade a value as it is typed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.db import edits
from reluth.db.session import require_reason
from reluth.errors import NotFound
from reluth.i18n import N_
from reluth.i18n.reasons import DAY, Word, invalid, refusal
from reluth.patients import service as patients
from reluth.protocol.definition import Protocol
from reluth.safety import coding, ctcae, seriousness
from reluth.safety.models import AdverseEvent, LabResult
from reluth.safety.records import AE_FIELDS, adverse_event_fields
from reluth.units import canonical_unit, convert, to_decimal


def preview_lab(raw: dict[str, Any]) -> ctcae.GradedResult:
    """Parse and grade one result without storing it (pure: no I/O, no clock)."""
    return ctcae.grade(ctcae.parse_result(raw, "lab"))


@service(Action.WRITE, Resource.LAB)
def record_lab(ctx: Ctx, patient_code: str, raw: dict[str, Any]) -> LabResult:
    """Store one laboratory result with its CTCAE grade, for an included patient, dated in
    the trial's order (not future, not before consent, not after death)."""
    session = ctx.session
    parsed = ctcae.parse_result(raw, "lab")
    _check_sample_date(parsed.date, ctx.today())
    patient = patients.get_patient(ctx, patient_code, centre=False)
    known = patients.included_milestones(session, patient)
    assert parsed.date is not None
    patients.check_date(ctx, patient, "lab", parsed.date, "lab.date", known=known)
    graded = ctcae.grade(parsed)
    unit = canonical_unit(parsed.test) if parsed.test in _CANONICAL else parsed.unit
    row = LabResult(
        patient_id=patient.id,
        analyte=parsed.test,
        unit=parsed.unit,
        canonical_unit=unit,
        protocol_version=ctx.protocol.label,
        **_stored(parsed, graded, unit),
    )
    session.add(row)
    session.flush()
    return row


def _check_sample_date(day: dt.date | None, today: dt.date) -> None:
    if day is None:
        raise invalid("lab.date", "required", N_("missing"), N_("{placeholder}"), placeholder=DAY)
    if day > today:
        raise invalid(
            "lab.date",
            "date_in_future",
            N_("{day} is in the future"),
            N_("<= {today}"),
            day=day,
            today=today,
        )


def _stored(parsed: ctcae.LabResult, graded: ctcae.GradedResult, unit: str) -> dict[str, Any]:
    """The columns of a result that follow from what was entered (value as entered and in the
    canonical unit, LLN in the value's unit as typed with it, ULN in the canonical unit, CTCAE
    grade)."""

    def limit(amount: ctcae.Amount | None, to: str) -> Decimal | None:
        return None if amount is None else _canonical(parsed.test, amount.value, amount.unit, to)

    return {
        "sample_date": parsed.date,
        "value": parsed.value,
        "value_canonical": _canonical(parsed.test, parsed.value, parsed.unit, unit),
        "lln": limit(parsed.lln, parsed.unit),
        "uln": limit(parsed.uln, unit),
        "ctcae_grade": graded.grade,
    }


def _canonical(test: str, value: Decimal, from_unit: str, to_unit: str) -> Decimal:
    if from_unit == to_unit:
        return value
    return convert(test, value, from_unit, to_unit, "lab.unit")


def _known(test: str) -> bool:
    try:
        canonical_unit(test)
    except Exception:
        return False
    return True


_CANONICAL = frozenset(t for t in ctcae.definitions() if _known(t))


#: What a correction of a saved laboratory result may change. The test and unit stay (enter a
#: new result for another test); ``baseline`` is not stored, it only re-grades.
LAB_EDITABLE = ("value", "date", "uln", "lln", "baseline")


def owned(ctx: Ctx, model: Any, record_id: int, patient_code: str, what: str) -> Any:
    """Record ``record_id`` of ``model`` if it belongs to the patient the actor may reach with
    the running service's permission (else NotFound)."""
    patient = patients.get_patient(ctx, patient_code)
    row = ctx.session.get(model, record_id)
    if row is None or row.patient_id != patient.id:
        raise refusal(
            NotFound,
            "record_not_found",
            N_("{what} {id} of {patient} not found"),
            what=Word(what),
            id=str(record_id),
            patient=patient_code,
        )
    return row


def lab_edit_form(row: LabResult) -> dict[str, str]:
    """The editable fields of a saved result as text, as a correction form shows them (the LLN
    in the value's unit, the ULN in the canonical unit, as they are stored)."""
    return {
        "value": _text(row.value),
        "date": row.sample_date.isoformat(),
        "uln": "" if row.uln is None else _text(row.uln),
        "lln": "" if row.lln is None else _text(row.lln),
        "baseline": "",
    }


def _text(number: Decimal) -> str:
    return format(number.normalize(), "f")


@service(Action.READ, Resource.LAB)
def get_lab(ctx: Ctx, patient_code: str, lab_id: int) -> LabResult:
    row: LabResult = owned(ctx, LabResult, lab_id, patient_code, N_("laboratory result"))
    return row


def _edited(row: LabResult, changes: Mapping[str, Any]) -> ctcae.LabResult:
    """The result as corrected: saved values overlaid with ``changes`` (text; blank clears an
    optional field), parsed by the CTCAE engine in the result's own test and unit."""
    edits.only(changes, LAB_EDITABLE)
    given = {k: ("" if v is None else str(v).strip()) for k, v in changes.items()}
    merged = {**lab_edit_form(row), **given}
    raw: dict[str, Any] = {"test": row.analyte, "unit": row.unit, "value": merged["value"]}
    raw["date"] = merged["date"] or None
    if merged["uln"]:
        uln = to_decimal(merged["uln"], "uln")
        if uln < 0:
            raise invalid(
                "uln", "negative_value", N_("negative value {value}"), N_("a value >= 0"), value=uln
            )
        raw["uln"] = {"value": str(uln), "unit": row.canonical_unit}
    for key in ("lln", "baseline"):  # in the value's unit
        if merged[key]:
            raw[key] = merged[key]
    return ctcae.parse_result(raw, "lab")


@service(Action.WRITE, Resource.LAB, writes=False)
def preview_lab_edit(
    ctx: Ctx, patient_code: str, lab_id: int, changes: Mapping[str, Any]
) -> ctcae.GradedResult:
    """The CTCAE grade a correction would give, without storing it (for the live form)."""
    return ctcae.grade(_edited(get_lab(ctx, patient_code, lab_id), changes))


@service(Action.WRITE, Resource.LAB)
def edit_lab(
    ctx: Ctx,
    patient_code: str,
    lab_id: int,
    changes: Mapping[str, Any],
) -> LabResult:
    """Correct a saved result (value, sample date, LLN in the value's unit, ULN in the canonical
    unit) and re-grade it with the CTCAE engine; ``baseline`` is used for the grade as at
    entry. The unit of
    work must carry a reason: the audit trail keeps each old value beside the new one."""
    require_reason(ctx.session, "a saved laboratory result")
    row = get_lab(ctx, patient_code, lab_id)
    parsed = _edited(row, changes)
    _check_sample_date(parsed.date, ctx.today())
    assert parsed.date is not None
    patient = patients.get_patient(ctx, patient_code)
    patients.check_date(ctx, patient, "lab", parsed.date, "date")
    graded = ctcae.grade(parsed)
    edits.apply(row, _stored(parsed, graded, row.canonical_unit), "laboratory result")
    ctx.session.flush()
    return row


@service(Action.READ, Resource.ADVERSE_EVENT)
def get_adverse_event(ctx: Ctx, patient_code: str, ae_id: int) -> AdverseEvent:
    row: AdverseEvent = owned(ctx, AdverseEvent, ae_id, patient_code, N_("adverse event"))
    return row


def adverse_event_form(row: AdverseEvent) -> dict[str, Any]:
    """The editable fields of a saved adverse event, as the entry service takes them."""
    return {
        "term": row.term,
        "grade": row.grade,
        "serious": row.serious,
        "relatedness": row.relatedness,
        "outcome": row.outcome,
        "onset_date": row.onset_date.isoformat(),
        "resolution_date": _iso(row.resolution_date),
        "awareness_date": _iso(row.awareness_date),
        "awareness_time": None
        if row.awareness_time is None
        else row.awareness_time.isoformat("minutes"),
        "description": row.description,
        "seriousness": list(seriousness.loaded(row.seriousness)),
    }


def _iso(day: dt.date | None) -> str | None:
    return None if day is None else day.isoformat()


@service(Action.WRITE, Resource.ADVERSE_EVENT)
def edit_adverse_event(
    ctx: Ctx,
    patient_code: str,
    ae_id: int,
    changes: Mapping[str, Any],
) -> AdverseEvent:
    """Correct a saved adverse event: the changed fields are merged with the saved ones and the
    whole event is checked again by the entry rules (grade 5 = fatal, dates, SAE awareness date),
    so an edit cannot make an event the entry form would refuse. Needs a reason."""
    require_reason(ctx.session, "a saved adverse event")
    edits.only(changes, AE_FIELDS)
    row = get_adverse_event(ctx, patient_code, ae_id)
    merged = {**adverse_event_form(row), **changes}
    values = adverse_event_fields(merged, ctx.today(), ctx.protocol)
    patient = patients.get_patient(ctx, patient_code)
    patients.check_date(ctx, patient, "adverse_event", values["onset_date"], "onset_date")
    if values["term"] != row.term:  # a new term is coded again; else the coder's codes stay
        values.update(coding.coded(values["term"]))
    edits.apply(row, values, "adverse event")
    ctx.session.flush()
    return row


_CODE_DIGITS = 8  # MedDRA codes are 8-digit numbers


def _meddra_code(value: str | None, field: str, optional: bool = False) -> str | None:
    text = (value or "").strip()
    if not text and optional:
        return None
    if not (text.isdigit() and len(text) == _CODE_DIGITS):
        raise invalid(
            field,
            "not_a_meddra_code",
            N_("{value}"),
            N_("an 8-digit MedDRA code, e.g. {example}"),
            value=repr(value),
            example="10028813",
        )
    return text


@service(Action.WRITE, Resource.CODING)
def recode_adverse_event(
    ctx: Ctx,
    ae_id: int,
    llt_code: str,
    pt_code: str | None = None,
    soc: str | None = None,
    meddra_term: str | None = None,
) -> AdverseEvent:
    """Code (or recode) an adverse event's term (coder, with a reason): the MedDRA LLT code,
    and the PT code when known; a CTCAE v5.0 code brings its term and SOC from the shipped
    dictionary, any other code needs the term and one of the dictionary's SOCs. The verbatim
    term stays as the site entered it; the audit trail keeps the old codes."""
    require_reason(ctx.session, "an adverse event's coding")
    row = ctx.session.get(AdverseEvent, ae_id)
    patient = None if row is None else ctx.session.get(patients.Patient, row.patient_id)
    if row is None or patient is None or not ctx.sees_centre(patient.centre_id):
        raise refusal(
            NotFound, "adverse_event_not_found", N_("adverse event {id} not found"), id=str(ae_id)
        )
    llt = _meddra_code(llt_code, "llt_code")
    assert llt is not None
    pt = _meddra_code(pt_code, "pt_code", optional=True)
    dictionary = coding.ctcae()
    entry = dictionary.by_code.get(llt)
    name = (meddra_term or "").strip() or (entry.term if entry else "")
    organ = (soc or "").strip() or (entry.soc if entry else "")
    if not name or len(name) > 120:
        raise invalid(
            "meddra_term",
            "required" if not name else "too_long",
            N_("missing") if not name else N_("too long"),
            N_("{lo}-{hi} characters"),
            lo=1,
            hi=120,
        )
    if organ not in dictionary.socs:
        raise invalid(
            "soc",
            "unknown_soc",
            N_("{value}"),
            N_("a MedDRA system organ class, e.g. {example}"),
            value=repr(organ),
            example="Gastrointestinal disorders",
        )
    source = dictionary.label if entry is not None and entry.term == name else "MedDRA (coder)"
    edits.apply(
        row,
        {
            "meddra_term": name,
            "meddra_llt_code": llt,
            "meddra_pt_code": pt,
            "meddra_soc": organ,
            "coding_dictionary": source,
        },
        "adverse event coding",
    )
    ctx.session.flush()
    return row


@dataclass(frozen=True)
class SaeClock:
    awareness_date: dt.date
    due_by: dt.datetime  # UTC
    hours_left: Decimal  # at receipt if received, else now; negative when late
    late: bool
    received_at: dt.datetime | None = None  # pharmacovigilance's receipt stops the clock
    awareness_time: dt.time | None = None  # site wall-clock time; None: from the day's start


def sae_clock(
    awareness_date: dt.date,
    now: dt.datetime,
    received_at: dt.datetime | None = None,
    awareness_time: dt.time | None = None,
    *,
    protocol: Protocol,
) -> SaeClock:
    """The SAE reporting clock (pure): due ``sae_reporting_hours`` (24) after the site became
    aware. With the awareness time (the site's wall-clock time in the protocol's
    ``site_timezone``) the clock is exact; with the date only it starts at the beginning of
    that day at the site (00:00 local), the earliest moment the site may have known: counting
    from the day's end would let an SAE turn late only up to 48 h after awareness (ICH E2A
    III.A counts from first knowledge; day 0 is that day). The hours are elapsed hours
    (UTC), so a daylight-saving change does not lengthen or shorten the clock. Once
    pharmacovigilance has acknowledged receipt the clock stops there: on time if received by
    the due time, late otherwise."""
    rules = protocol.safety
    start = dt.datetime.combine(awareness_date, awareness_time or dt.time(), rules.zone)
    due = start.astimezone(dt.UTC) + dt.timedelta(hours=rules.sae_reporting_hours)
    stop = now if received_at is None else received_at
    left = Decimal((due - stop).total_seconds()) / Decimal(3600)
    return SaeClock(
        awareness_date,
        due,
        left.quantize(Decimal("0.1")),
        stop > due,
        received_at,
        awareness_time,
    )


@dataclass(frozen=True)
class CodingRow:
    id: int
    patient_code: str
    term: str  # verbatim
    meddra_term: str | None
    meddra_llt_code: str | None
    meddra_pt_code: str | None
    meddra_soc: str | None
    coding_dictionary: str | None


@service(Action.READ, Resource.CODING)
def coding_worklist(ctx: Ctx, uncoded_only: bool = False) -> list[CodingRow]:
    """Adverse events with their coding, uncoded first (the coder's worklist)."""
    from sqlalchemy import select

    rows = ctx.session.execute(
        select(AdverseEvent, patients.Patient.patient_code, patients.Patient.centre_id).join(
            patients.Patient, patients.Patient.id == AdverseEvent.patient_id
        )
    ).all()
    out = [
        CodingRow(
            ae.id,
            code,
            ae.term,
            ae.meddra_term,
            ae.meddra_llt_code,
            ae.meddra_pt_code,
            ae.meddra_soc,
            ae.coding_dictionary,
        )
        for ae, code, centre_id in rows
        if ctx.sees_centre(centre_id) and not (uncoded_only and ae.meddra_llt_code)
    ]
    out.sort(key=lambda r: (r.meddra_llt_code is not None, r.patient_code, r.id))
    return out
