"""Source-data verification by monitors (ICH E6(R3) 3.11.4, risk-based monitoring): the monitor
marks a field, a form instance or a visit as verified against the source; the SDV plan of the
form registry (``sdv`` in ``forms.yaml``) says which records need 100 % SDV (consent,
eligibility, randomization, tumour assessments of the primary endpoint, serious adverse events)
and which fraction of the rest is sampled; a later
change to a verified value clears its SDV at the write door (:mod:`reluth.lifecycle.guard`);
the monitor's report counts it per centre.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.errors import Conflict
from reluth.forms.registry import Registry, table_named
from reluth.i18n import N_
from reluth.i18n.reasons import invalid_worded, refusal
from reluth.lifecycle import service as lifecycle
from reluth.lifecycle.guard import CASEBOOK_TABLES, in_casebook, record_key
from reluth.lifecycle.models import SdvClearance, SdvMark
from reluth.lifecycle.signature_service import visit_rows
from reluth.patients import service as patients
from reluth.patients.models import Patient
from reluth.sites import service as sites


@dataclass(frozen=True)
class Requirement:
    """Records of ``table`` (those whose columns equal ``where``) that need 100 % SDV."""

    table: str
    label: str
    where: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class SdvPlan:
    """Which records need 100 % SDV, and the fraction of the other casebook records sampled
    (chosen by a hash of the record, so the sample is stable and not chosen by the site)."""

    required: tuple[Requirement, ...]
    sample_fraction: Decimal
    sampled_tables: frozenset[str] = field(default_factory=frozenset)

    def requirement(self, row: Any) -> Requirement | None:
        for req in self.required:
            if row.__tablename__ == req.table and all(getattr(row, k) == v for k, v in req.where):
                return req
        return None

    def sampled(self, table: str, record_id: str) -> bool:
        digest = hashlib.sha256(f"{table}/{record_id}".encode()).hexdigest()
        return Decimal(int(digest[:8], 16)) / Decimal(16**8) < self.sample_fraction


def plan_of(registry: Registry) -> SdvPlan:
    """The SDV plan the form registry declares (``sdv`` in ``forms.yaml``), as tables and
    columns: a requirement on a form keeps the form's own ``where`` (a local read, not a
    central one) and names the fields of its ``where`` by their columns."""
    required = []
    for req in registry.sdv.required:
        form = registry.form(req.form)
        where: dict[str, Any] = dict(form.where)
        for name, value in req.where.items():
            where[form.field(name).column or name] = value
        required.append(Requirement(form.table, req.label, tuple(sorted(where.items()))))
    return SdvPlan(
        required=tuple(required),
        sample_fraction=registry.sdv.sample_fraction,
        sampled_tables=frozenset(registry.form(f).table for f in registry.sdv.sampled),
    )


def _fields(row: Any) -> list[str]:
    return [a.key for a in inspect(row).mapper.column_attrs]


def _active_marks(session: Session, patient_ids: list[int]) -> list[SdvMark]:
    if not patient_ids:
        return []
    return list(
        session.scalars(
            select(SdvMark)
            .outerjoin(SdvClearance, SdvClearance.sdv_id == SdvMark.id)
            .where(SdvClearance.id.is_(None), SdvMark.patient_id.in_(patient_ids))
            .order_by(SdvMark.id)
        )
    )


def _mark(ctx: Ctx, patient: Patient, row: Any, field: str | None, scope: str) -> SdvMark:
    table, rid = record_key(row)
    mark = SdvMark(
        patient_id=patient.id,
        table_name=table,
        record_id=rid,
        field=field,
        scope=scope,
        verified_by=ctx.actor.username,
        verified_at=ctx.now(),
    )
    ctx.session.add(mark)
    return mark


@service(Action.WRITE, Resource.SDV)
def verify(
    ctx: Ctx, patient_code: str, table: str, record_id: str | int, field: str | None = None
) -> SdvMark:
    """Mark one field (``field``) or the whole form instance of ``table``/``record_id`` as
    verified against the source."""
    patient = patients.get_patient(ctx, patient_code)
    row, owner = lifecycle.form_row(ctx, table, record_id)
    if owner.patient_id != patient.id:
        raise lifecycle.record_not_found(table, record_id, patient.patient_code)
    if field is not None and field not in _fields(row):
        raise invalid_worded(
            "field",
            "not_a_form_field",
            N_("{field}: '{name}' is not a field of {form} (accepted: {accepted})"),
            f"{field!r} is not a field of {table}",
            ", ".join(_fields(row)),
            name=str(field),
            form=table_named(table),
            accepted=", ".join(_fields(row)),
        )
    key = record_key(row)
    for mark in _active_marks(ctx.session, [patient.id]):
        if (mark.table_name, mark.record_id) == key and mark.field in (None, field):
            raise refusal(
                Conflict,
                "already_verified",
                N_("{form} {record} {item} is already verified (by {user})")
                if field
                else N_("{form} {record} is already verified (by {user})"),
                form=table_named(table),
                record=key[1],
                item=str(field or ""),
                user=mark.verified_by,
            )
    mark = _mark(ctx, patient, row, field, "field" if field else "form")
    ctx.session.flush()
    return mark


@service(Action.WRITE, Resource.SDV)
def verify_visit(ctx: Ctx, patient_code: str, visit_code: str) -> list[SdvMark]:
    """Mark every form of a visit (the visit row and the records dated that day) verified; forms
    already verified are left as they are."""
    patient = patients.get_patient(ctx, patient_code)
    rows = visit_rows(ctx.session, patient, visit_code)
    done = {
        (m.table_name, m.record_id)
        for m in _active_marks(ctx.session, [patient.id])
        if m.field is None
    }
    marks = [_mark(ctx, patient, r, None, "visit") for r in rows if record_key(r) not in done]
    if not marks:
        raise refusal(
            Conflict,
            "already_verified",
            N_("every form of visit {visit} is already verified"),
            visit=visit_code,
        )
    ctx.session.flush()
    return marks


@dataclass(frozen=True)
class SdvView:
    id: int
    table_name: str
    record_id: str
    field: str | None
    scope: str
    verified_by: str
    verified_at: dt.datetime
    cleared_by_change: str | None
    cleared_at: dt.datetime | None


@service(Action.READ, Resource.SDV)
def sdv_marks(ctx: Ctx, patient_code: str) -> list[SdvView]:
    """A patient's SDV marks, each with the change that cleared it, if one did."""
    patient = patients.get_patient(ctx, patient_code)
    rows = ctx.session.execute(
        select(SdvMark, SdvClearance)
        .outerjoin(SdvClearance, SdvClearance.sdv_id == SdvMark.id)
        .where(SdvMark.patient_id == patient.id)
        .order_by(SdvMark.id)
    ).all()
    return [
        SdvView(
            m.id,
            m.table_name,
            m.record_id,
            m.field,
            m.scope,
            m.verified_by,
            m.verified_at,
            c.change if c else None,
            c.at if c else None,
        )
        for m, c in rows
    ]


# ------------------------------------------------------------------------------ report


@dataclass
class Outstanding:
    patient: str
    record: str  # table/record_id
    requirement: str  # why it needs SDV: the plan's label, or "sampled"


@dataclass
class CentreReport:
    centre: str
    required: int = 0
    required_verified: int = 0
    sampled: int = 0
    sampled_verified: int = 0
    not_sampled: int = 0
    fields_verified: int = 0  # field-level marks in force
    cleared: int = 0  # SDV cleared by a later change (to verify again)
    outstanding: list[Outstanding] = field(default_factory=list)

    @property
    def required_percent(self) -> Decimal | None:
        return _percent(self.required_verified, self.required)

    @property
    def sampled_percent(self) -> Decimal | None:
        return _percent(self.sampled_verified, self.sampled)


def report_dict(report: CentreReport) -> dict[str, Any]:
    """A centre's report as JSON values, percentages included."""
    from reluth.values import to_jsonable

    out: dict[str, Any] = to_jsonable(report)
    out["required_percent"] = to_jsonable(report.required_percent)
    out["sampled_percent"] = to_jsonable(report.sampled_percent)
    return out


def _percent(part: int, whole: int) -> Decimal | None:
    if whole == 0:
        return None
    return (Decimal(100) * part / whole).quantize(Decimal("0.1"))


#: The most outstanding records listed per centre (the counts are always complete).
OUTSTANDING_MAX = 500


@service(Action.READ, Resource.SDV)
def sdv_report(
    ctx: Ctx, centre_code: str | None = None, plan: SdvPlan | None = None
) -> list[CentreReport]:
    """Per centre the actor may see (or just ``centre_code``): the records the plan (default:
    the registry's, :func:`plan_of`) requires
    and those sampled, how many are verified (a form-level mark in force), the SDV cleared by
    later changes, and the records still to verify (required first)."""
    centres = [c for c in sites.list_centres(ctx.session) if ctx.sees_centre(c.id)]
    if centre_code is not None:
        centre = sites.centre_by_code(ctx.session, centre_code)
        ctx.require_centre(centre.id)
        centres = [centre]
    tables = lifecycle.data_tables()
    plan = plan if plan is not None else plan_of(ctx.trial.forms)
    out = []
    for centre in centres:
        report = CentreReport(centre.code)
        pts = {
            p.id: p.patient_code
            for p in ctx.session.scalars(select(Patient).where(Patient.centre_id == centre.id))
        }
        verified: set[tuple[str, str]] = set()
        for mark in _active_marks(ctx.session, list(pts)):
            if mark.field is None:
                verified.add((mark.table_name, mark.record_id))
            else:
                report.fields_verified += 1
        if pts:
            report.cleared = len(
                ctx.session.scalars(
                    select(SdvClearance.id)
                    .join(SdvMark, SdvMark.id == SdvClearance.sdv_id)
                    .where(SdvMark.patient_id.in_(list(pts)))
                ).all()
            )
        required: list[Outstanding] = []
        sampled: list[Outstanding] = []
        for table in sorted(CASEBOOK_TABLES - {"patients", "lesion_measurements"}):
            model = tables.get(table)
            if model is None or not pts:
                continue
            for row in ctx.session.scalars(
                select(model).where(model.patient_id.in_(list(pts))).order_by(model.id)
            ):
                if not in_casebook(ctx.session, row):
                    continue
                key = record_key(row)
                done = key in verified
                need = plan.requirement(row)
                if need is not None:
                    report.required += 1
                    report.required_verified += done
                    if not done:
                        required.append(Outstanding(pts[row.patient_id], "/".join(key), need.label))
                elif table in plan.sampled_tables and plan.sampled(*key):
                    report.sampled += 1
                    report.sampled_verified += done
                    if not done:
                        sampled.append(Outstanding(pts[row.patient_id], "/".join(key), "sampled"))
                else:
                    report.not_sampled += 1
        report.outstanding = (required + sampled)[:OUTSTANDING_MAX]
        out.append(report)
    return out
