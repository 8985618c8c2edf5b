"""The CDISC ODM 1.3.2 export: Study / GlobalVariables / BasicDefinitions / MetaDataVersion
generated from the form registry (``forms.yaml``), AdminData (users, centres as Locations,
signature meanings as SignatureDefs) and ClinicalData with every patient the actor may read
(SubjectKey = the trial pseudonym, nothing else about the person) and every saved value of
every registered form (CDISC ODM 1.3.2 sections 2.7, 3.1 and 4).

Audit records: each FormData carries the AuditRecord of its entry, and each ItemData changed
since then the AuditRecord of its last change (ODM allows one per element); the whole history of the exported records is in ``ClinicalData/AuditRecords`` (SourceID names the
audit-trail row, its table, record and field). E-signatures are ``Signature`` elements (the
latest inline on the signed SubjectData / StudyEventData / FormData, all of them in
``ClinicalData/Signatures``); an invalidated signature and each lock or freeze are
``Annotation`` elements with a ``Flag`` of the code lists ``CL.RELUTH.ANNOTATION`` /
``CL.RELUTH.STATE`` — plain ODM, because the 1.3.2 schema admits vendor extensions only
through a redefined schema, which a receiving EDC would not have (docs/odm.md).

What the actor receives follows the policy as the casebook does: a form whose resource they
may not read is absent; treatment forms, treatment visits and the audit rows of
arm-revealing tables need ``read treatment`` / the table's own permission; a field declared
with its own resource (the randomization's arm: ``read arm``) is left out, metadata and data,
for a reader who may not read it (:attr:`Scope.hidden`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, String, select

from reluth import __version__
from reluth.auth.models import Centre
from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.db.audit import AuditLog
from reluth.forms import refs
from reluth.forms.registry import BASELINE, FieldDef, FormDef, Registry
from reluth.patients.models import Patient
from reluth.protocol.schedule import planned_visits
from reluth.records.views import AUDIT_TABLE_NEEDS

NS = "http://www.cdisc.org/ns/odm/v1.3"
XML_NS = "http://www.w3.org/XML/1998/namespace"
ET.register_namespace("", NS)
#: The pseudo-event of records that belong to no scheduled visit (events such as adverse
#: events, and records dated by a date rather than a visit code).
UNSCHEDULED = "UNSCHEDULED"
#: Code lists of the annotations (locks, freezes, invalidated signatures).
CL_ANNOTATION = "CL.RELUTH.ANNOTATION"
CL_STATE = "CL.RELUTH.STATE"
ANNOTATION_KINDS = ("record_lock", "signature", "missing_data")
CL_MISSING = "CL.RELUTH.MISSING"
#: FormRepeatKey prefix of a form that was not done at a visit (an empty, annotated FormData).
MISSING_KEY = "missing-"
STATES = ("lock", "freeze", "invalidated")
#: The Location of records that belong to no centre (study-wide locks).
SPONSOR = "LOC.SPONSOR"
_DATA_TYPES = {
    "date": "date",
    "time": "time",
    "decimal": "float",
    "integer": "integer",
    "text": "text",
    "textarea": "text",
    "code": "text",
    "boolean": "boolean",
    "json": "text",
    "items": "text",
    "lesions": "text",
}


def q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: Any) -> ET.Element:
    el = ET.SubElement(parent, q(tag), {k: str(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def translated(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = sub(parent, tag)
    tt = sub(el, "TranslatedText", text)
    tt.set(f"{{{XML_NS}}}lang", "en")
    return el


# --- OIDs -------------------------------------------------------------------------------------


def study_oid(protocol_id: str) -> str:
    return f"ST.{protocol_id}"


def mdv_oid(registry: Registry) -> str:
    return f"MDV.{registry.id}.{registry.version}"


def event_oid(code: str) -> str:
    return f"SE.{code}"


def form_oid(form_id: str) -> str:
    return f"F.{form_id}"


def group_oid(form_id: str) -> str:
    return f"IG.{form_id}"


def item_oid(form_id: str, name: str) -> str:
    return f"I.{form_id}.{name}"


def codelist_oid(list_id: str) -> str:
    return f"CL.{list_id}"


def unit_oid(unit: str) -> str:
    return "MU." + "".join(c if c.isalnum() else "_" for c in unit)


def user_oid(username: str) -> str:
    return f"USR.{username}"


def location_oid(centre_code: str | None) -> str:
    return SPONSOR if centre_code is None else f"LOC.{centre_code}"


# --- what the actor may receive ---------------------------------------------------------------


#: A form's resource that its readers also read through another permission, as the casebook
#: shows them (``reluth.records.casebook.SECTION_NEEDS``): central reads are tumour assessments.
ALSO_READ_BY = {Resource.CENTRAL_REVIEW: Resource.LOCAL_ASSESSMENT}


def _reads(ctx: Ctx, resource: Resource) -> bool:
    also = ALSO_READ_BY.get(resource)
    return ctx.actor.can(Action.READ, resource) or (
        also is not None and ctx.actor.can(Action.READ, also)
    )


@dataclass(frozen=True)
class Scope:
    """What of the trial the actor may read (the policy, decided once here)."""

    sees_treatment: bool
    audit: bool  # AuditRecords (read audit, and asked for)
    signatures: bool
    locks: bool
    forms: tuple[FormDef, ...]
    #: (form, field) of the fields whose own resource the actor may not read (the arm)
    hidden: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def of(cls, ctx: Ctx, registry: Registry, audit: bool) -> Scope:
        actor = ctx.actor
        sees_treatment = actor.can(Action.READ, Resource.TREATMENT)
        forms = tuple(
            f
            for f in registry.forms
            if _reads(ctx, Resource(f.resource)) and (sees_treatment or not f.treatment)
        )
        hidden = frozenset(
            (form.id, f.name)
            for form in forms
            for f in form.fields
            if f.resource is not None and not actor.can(Action.READ, Resource(f.resource))
        )
        return cls(
            sees_treatment=sees_treatment,
            audit=audit and actor.can(Action.READ, Resource.AUDIT),
            signatures=actor.can(Action.READ, Resource.SIGNATURE),
            locks=actor.can(Action.READ, Resource.LOCK),
            forms=forms,
            hidden=hidden,
        )

    def items(self, form: FormDef) -> tuple[FieldDef, ...]:
        """The items of ``form`` the actor receives: its stored fields but those they may
        not read."""
        return tuple(f for f in stored(form) if (form.id, f.name) not in self.hidden)

    def audit_table(self, ctx: Ctx, table: str) -> bool:
        need = AUDIT_TABLE_NEEDS.get(table)
        return self.audit and (need is None or ctx.actor.can(Action.READ, need))


# --- metadata ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    code: str
    label: str
    kind: str  # a schedule visit kind, BASELINE or UNSCHEDULED


def events(ctx: Ctx, sees_treatment: bool) -> list[Event]:
    """The study events: the baseline, every visit of every arm's schedule the actor may see
    (treatment visits reveal the arm), and the unscheduled event."""
    seen: dict[str, tuple[int, str, str]] = {}
    for arm in ctx.protocol.arm_codes:
        for v in planned_visits(dt.date(2000, 1, 1), arm, ctx.protocol):
            if v.kind == "treatment" and not sees_treatment:
                continue
            seen.setdefault(v.code, (v.day, v.label, str(v.kind)))
    ordered = sorted(seen.items(), key=lambda kv: (kv[1][0], kv[0]))
    return [
        Event(BASELINE, "Screening to randomization", BASELINE),
        *(Event(code, label, kind) for code, (_d, label, kind) in ordered),
        Event(UNSCHEDULED, "Events and records outside a scheduled visit", UNSCHEDULED),
    ]


def stored(form: FormDef) -> tuple[FieldDef, ...]:
    """The fields a form stores in its own row (and the lesions of a read): the items."""
    return tuple(
        f
        for f in form.fields
        if f.column is not None and ("." not in f.column or f.type == "lesions")
    )


def _column_type(form: FormDef, f: FieldDef) -> Any:
    if f.column is None or "." in f.column:
        return None
    table = refs.model_of(form).__table__
    col = table.columns.get(f.column)
    return None if col is None else col.type


def _item_def(parent: ET.Element, registry: Registry, form: FormDef, f: FieldDef) -> None:
    kind = _column_type(form, f)
    length = digits = None
    if f.type in ("text", "code") and isinstance(kind, String) and kind.length:
        length = kind.length
    if f.type == "decimal" and isinstance(kind, Numeric):
        length = kind.precision
        digits = kind.scale
    el = sub(
        parent,
        "ItemDef",
        OID=item_oid(form.id, f.name),
        Name=f"{form.id}.{f.name}",
        DataType=_DATA_TYPES[f.type],
        Length=length,
        SignificantDigits=digits,
        Origin="Derived" if f.derived else "CRF",
        Comment=f.help or None,
    )
    translated(el, "Question", f.label)
    if f.unit:
        sub(el, "MeasurementUnitRef", MeasurementUnitOID=unit_oid(f.unit))
    for bound, comparator in ((f.min, "GE"), (f.max, "LE")):
        if bound is not None:
            check = sub(el, "RangeCheck", Comparator=comparator, SoftHard="Hard")
            sub(check, "CheckValue", str(bound))
            translated(check, "ErrorMessage", f"{f.label}: {comparator} {bound}")
    if f.codes is not None:
        sub(el, "CodeListRef", CodeListOID=codelist_oid(f.codes))


def _codelist(parent: ET.Element, oid: str, name: str, codes: Iterable[tuple[str, str]]) -> None:
    el = sub(parent, "CodeList", OID=oid, Name=name, DataType="text")
    for n, (code, decode) in enumerate(codes, start=1):
        item = sub(el, "CodeListItem", CodedValue=code, OrderNumber=n)
        translated(item, "Decode", decode)


def study(ctx: Ctx, registry: Registry, scope: Scope, evs: list[Event]) -> ET.Element:
    """The Study element: global variables, units and the MetaDataVersion of the registry."""
    proto = ctx.protocol
    el = ET.Element(q("Study"), {"OID": study_oid(proto.id)})
    gv = sub(el, "GlobalVariables")
    sub(gv, "StudyName", proto.id)
    sub(gv, "StudyDescription", proto.title)
    sub(gv, "ProtocolName", f"{proto.id} {proto.version}")
    units = sorted({f.unit for form in scope.forms for f in scope.items(form) if f.unit})
    if units:
        basic = sub(el, "BasicDefinitions")
        for unit in units:
            mu = sub(basic, "MeasurementUnit", OID=unit_oid(unit), Name=unit)
            translated(mu, "Symbol", unit)
    mdv = sub(
        el,
        "MetaDataVersion",
        OID=mdv_oid(registry),
        Name=f"{registry.id} {registry.version}",
        Description=f"case report forms of protocol {proto.id} {proto.version}",
    )
    protocol_el = sub(mdv, "Protocol")
    for n, ev in enumerate(evs, start=1):
        sub(protocol_el, "StudyEventRef", StudyEventOID=event_oid(ev.code), OrderNumber=n,
            Mandatory="No" if ev.kind == UNSCHEDULED else "Yes")  # fmt: skip
    visible = {f.id for f in scope.forms}
    for ev in evs:
        sed = sub(
            mdv,
            "StudyEventDef",
            OID=event_oid(ev.code),
            Name=ev.label,
            Repeating="Yes" if ev.kind == UNSCHEDULED else "No",
            Type="Unscheduled" if ev.kind == UNSCHEDULED else "Scheduled",
            Category=ev.kind,
        )
        if ev.kind == UNSCHEDULED:
            forms = [f for f in scope.forms if f.visits.by != "baseline"]
        else:
            forms = [f for f in registry.forms_at(ev.kind) if f.id in visible]
        for n, form in enumerate(forms, start=1):
            sub(sed, "FormRef", FormOID=form_oid(form.id), OrderNumber=n, Mandatory="No")
    for form in scope.forms:
        fd = sub(mdv, "FormDef", OID=form_oid(form.id), Name=form.label,
                 Repeating="No" if form.single else "Yes")  # fmt: skip
        sub(fd, "ItemGroupRef", ItemGroupOID=group_oid(form.id), Mandatory="Yes", OrderNumber=1)
    for form in scope.forms:
        ig = sub(mdv, "ItemGroupDef", OID=group_oid(form.id), Name=form.label, Repeating="No",
                 Domain=form.table)  # fmt: skip
        for n, f in enumerate(scope.items(form), start=1):
            sub(ig, "ItemRef", ItemOID=item_oid(form.id, f.name), OrderNumber=n,
                Mandatory="Yes" if f.required else "No")  # fmt: skip
    for form in scope.forms:
        for f in scope.items(form):
            _item_def(mdv, registry, form, f)
    used = sorted({f.codes for form in scope.forms for f in scope.items(form) if f.codes})
    for list_id in used:
        codes = registry.codes(list_id)
        _codelist(mdv, codelist_oid(list_id), list_id, ((c, c.replace("_", " ")) for c in codes))
    _codelist(mdv, CL_MISSING, "missing_codes", registry.missing_codes.items())
    _codelist(mdv, CL_ANNOTATION, "annotation kinds", ((k, k.replace("_", " ")) for k in
              ANNOTATION_KINDS))  # fmt: skip
    _codelist(mdv, CL_STATE, "record states", ((s, s) for s in STATES))
    return el


# --- clinical data ----------------------------------------------------------------------------


def text_value(f: FieldDef, value: Any) -> str | None:
    """A stored value as ODM text: ISO 8601 dates and times, exact decimals, true/false."""
    if value is None:
        return None
    if f.type in ("json", "items") and isinstance(value, str):
        return json.dumps(json.loads(value), sort_keys=True, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return utc_text(value)
    if isinstance(value, dt.time):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def utc_text(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_LESION_SKIP = {"id", "assessment_id"}


def lesions_json(row: Any) -> str:
    out = []
    for m in sorted(row.lesions, key=lambda m: (m.kind, m.lesion_id)):
        cols = {
            c.key: text_value(FieldDef(name="x", label="x", type="text"), getattr(m, c.key))
            for c in m.__table__.columns
            if c.key not in _LESION_SKIP
        }
        out.append(cols)
    return json.dumps(out, sort_keys=True, ensure_ascii=False)


def values(
    form: FormDef, row: Any, items: tuple[FieldDef, ...] | None = None
) -> list[tuple[FieldDef, str | None]]:
    """The ODM text of each of ``items`` (the form's stored fields by default) of ``row``."""
    out: list[tuple[FieldDef, str | None]] = []
    for f in stored(form) if items is None else items:
        if f.type == "lesions":
            out.append((f, lesions_json(row)))
        else:
            assert f.column is not None
            out.append((f, text_value(f, getattr(row, f.column))))
    return out


def event_of(form: FormDef, row: Any, codes: set[str], baseline: set[str]) -> str:
    """The study event of a record: its visit code (or cycle) when that is a scheduled visit,
    else the baseline for a baseline form (the second-PRRT cycles C1, C2), else unscheduled."""
    rule = form.visits
    if rule.by == "baseline":
        return BASELINE
    code = _visit_code(form, row)
    if code is not None and code in codes:
        return code
    return BASELINE if form.id in baseline else UNSCHEDULED


@dataclass
class Instance:
    form: FormDef
    row: Any
    patient: Patient
    event: str
    repeat: int = 1
    values: list[tuple[FieldDef, str | None]] = field(default_factory=list)


@dataclass
class Collected:
    """Everything the ClinicalData holds, read once."""

    patients: list[Patient]
    centres: dict[int, str]
    instances: list[Instance]
    audit: list[AuditLog]
    signatures: list[Any]
    invalidations: dict[int, Any]
    locks: list[Any]
    printed_names: dict[str, str]
    #: missing-data codes: (form, record id) -> field -> row; (patient id, visit) -> rows
    missing_items: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    missing_forms: dict[tuple[int, str], list[Any]] = field(default_factory=dict)


def visible_patients(ctx: Ctx) -> list[Patient]:
    stmt = select(Patient).order_by(Patient.patient_code)
    if not ctx.actor.all_centres:
        stmt = stmt.where(Patient.centre_id.in_(sorted(ctx.actor.centre_ids) or [-1]))
    return list(ctx.session.scalars(stmt))


def _rows(ctx: Ctx, form: FormDef, pids: list[int]) -> list[Any]:
    model = refs.model_of(form)
    key = model.id if form.table == "patients" else model.patient_id
    stmt = select(model).where(key.in_(pids or [-1])).order_by(model.id)
    for col, value in form.where.items():
        stmt = stmt.where(getattr(model, col) == value)
    return list(ctx.session.scalars(stmt))


def collect(ctx: Ctx, scope: Scope, evs: list[Event]) -> Collected:
    from reluth.lifecycle.models import RecordLock, Signature, SignatureInvalidation

    patients = visible_patients(ctx)
    by_id = {p.id: p for p in patients}
    pids = list(by_id)
    centres = {c.id: c.code for c in ctx.session.scalars(select(Centre))}
    codes = {e.code for e in evs}
    # a treatment visit's records (C3, C4 visit dates) reveal the arm: not for the blinded
    hidden = (
        set()
        if scope.sees_treatment
        else {e.code for e in events(ctx, True) if e.kind == "treatment"}
    )
    baseline = {f.id for f in ctx.trial.forms.forms_at(BASELINE)}
    instances: list[Instance] = []
    for form in scope.forms:
        for row in _rows(ctx, form, pids):
            pid = row.id if form.table == "patients" else row.patient_id
            if _visit_code(form, row) in hidden:
                continue
            ev = event_of(form, row, codes, baseline)
            items = scope.items(form)
            instances.append(Instance(form, row, by_id[pid], ev, values=values(form, row, items)))
    exported = {(i.form.table, str(i.row.id)) for i in instances}
    # FormRepeatKey: the instance's rank among its form's instances at the same event of the
    # same patient, in the order they were stored (stable across an export-import round trip).
    counter: dict[tuple[int, str, str], int] = defaultdict(int)
    for inst in instances:
        k = (inst.patient.id, inst.event, inst.form.id)
        counter[k] += 1
        inst.repeat = counter[k]
    audit_rows: list[AuditLog] = []
    if scope.audit:
        keys: dict[str, set[str]] = defaultdict(set)
        for inst in instances:
            if scope.audit_table(ctx, inst.form.table):
                keys[inst.form.table].add(str(inst.row.id))
        for table, ids in keys.items():
            rows = ctx.session.scalars(
                select(AuditLog).where(AuditLog.table_name == table).order_by(AuditLog.seq)
            )
            audit_rows.extend(r for r in rows if r.record_id in ids)
        audit_rows.sort(key=lambda r: r.seq)
    sigs: list[Any] = []
    inval: dict[int, Any] = {}
    if scope.signatures:
        sigs = list(
            ctx.session.scalars(
                select(Signature)
                .where(Signature.patient_id.in_(pids or [-1]))
                .order_by(Signature.id)
            )
        )
        # a form's or visit's signature is exported with the record it is keyed by
        sigs = [g for g in sigs if g.scope == "patient" or (g.table_name, g.record_id) in exported]
        if sigs:
            for iv in ctx.session.scalars(
                select(SignatureInvalidation).where(
                    SignatureInvalidation.signature_id.in_([s.id for s in sigs])
                )
            ):
                inval[iv.signature_id] = iv
    locks: list[Any] = []
    if scope.locks:
        for lock in ctx.session.scalars(select(RecordLock).order_by(RecordLock.id)):
            if lock.patient_id is not None and lock.patient_id not in by_id:
                continue
            if (
                lock.patient_id is None
                and lock.centre_id is not None
                and not (ctx.actor.all_centres or lock.centre_id in ctx.actor.centre_ids)
            ):
                continue
            if lock.scope == "form" and (lock.table_name, lock.record_id) not in exported:
                continue
            locks.append(lock)
    printed: dict[str, str] = {s.username: s.printed_name for s in sigs}
    out = Collected(patients, centres, instances, audit_rows, sigs, inval, locks, printed)
    _missing(ctx, scope, out, {(i.form.id, int(i.row.id)) for i in instances}, codes)
    return out


def _visit_code(form: FormDef, row: Any) -> str | None:
    rule = form.visits
    if rule.by in ("column", "cycle") and rule.column is not None:
        return f"{rule.prefix}{getattr(row, rule.column)}"
    return None


def _missing(
    ctx: Ctx, scope: Scope, out: Collected, instances: set[tuple[str, int]], codes: set[str]
) -> None:
    """The missing-data codes of the exported records' fields, and of whole forms at a visit
    the actor may see."""
    from reluth.forms.models import MissingData

    forms = {f.id for f in scope.forms}
    pids = [p.id for p in out.patients] or [-1]
    for row in ctx.session.scalars(
        select(MissingData).where(MissingData.patient_id.in_(pids)).order_by(MissingData.id)
    ):
        if row.form_id not in forms:
            continue
        if row.record_id is not None and row.item is not None:
            if (row.form_id, row.record_id) in instances:
                out.missing_items.setdefault((row.form_id, row.record_id), {})[row.item] = row
        elif row.visit_code is not None and row.visit_code in codes:
            out.missing_forms.setdefault((row.patient_id, row.visit_code), []).append(row)


def missing_comment(row: Any) -> str:
    """The reason of a missing-data code, with who recorded it when (the code is the flag)."""
    return f"{row.reason} (recorded by {row.recorded_by} at {utc_text(row.recorded_at)})"


def _audit_record(parent: ET.Element, row: AuditLog, centre: str | None, with_id: bool) -> None:
    el = sub(parent, "AuditRecord", ID=f"AR.{row.seq}" if with_id else None)
    sub(el, "UserRef", UserOID=user_oid(row.username))
    sub(el, "LocationRef", LocationOID=location_oid(centre))
    sub(el, "DateTimeStamp", row.at_utc)  # ISO 8601, UTC ('...Z'): an xs:dateTime
    if row.reason:
        sub(el, "ReasonForChange", row.reason)
    what = f"{row.table_name}/{row.record_id}" + (f"/{row.field}" if row.field else "")
    sub(el, "SourceID", f"audit_log {row.seq}: {row.action} {what}")


def _signature(parent: ET.Element, sig: Any, centre: str | None, with_id: bool) -> None:
    el = sub(parent, "Signature", ID=f"SIG.{sig.id}" if with_id else None)
    sub(el, "UserRef", UserOID=user_oid(sig.username))
    sub(el, "LocationRef", LocationOID=location_oid(centre))
    sub(el, "SignatureRef", SignatureOID=signature_def_oid(sig.scope, sig.meaning))
    sub(el, "DateTimeStamp", utc_text(sig.signed_at))


def signature_def_oid(scope: str, meaning: str) -> str:
    digest = hashlib.sha256(meaning.encode("utf-8")).hexdigest()[:8]
    return f"SD.{scope}.{digest}"


def _annotation(
    parent: ET.Element,
    seq: int,
    kind: str,
    state: str,
    comment: str,
    ident: str | None = None,
    code_list: str = CL_STATE,
) -> None:
    el = sub(parent, "Annotation", SeqNum=seq, ID=ident)
    sub(el, "Comment", comment, SponsorOrSite="Site" if kind == "missing_data" else "Sponsor")
    flag = sub(el, "Flag")
    sub(flag, "FlagValue", state, CodeListOID=code_list)
    sub(flag, "FlagType", kind, CodeListOID=CL_ANNOTATION)


def lock_comment(lock: Any) -> str:
    return (
        f"{lock.kind} of {lock.label} by {lock.locked_by} at {utc_text(lock.locked_at)}: "
        f"{lock.reason}"
    )


def clinical_data(ctx: Ctx, registry: Registry, scope: Scope, data: Collected) -> ET.Element:
    """ClinicalData: SubjectData per patient, its events, forms and values, then the audit
    records, signatures and study- or centre-wide annotations."""
    cd = ET.Element(
        q("ClinicalData"),
        {"StudyOID": study_oid(ctx.protocol.id), "MetaDataVersionOID": mdv_oid(registry)},
    )
    last_audit: dict[tuple[str, str, str | None], AuditLog] = {}
    for row in data.audit:
        last_audit[(row.table_name, row.record_id, row.field)] = row
    by_patient: dict[int, list[Instance]] = defaultdict(list)
    for inst in data.instances:
        by_patient[inst.patient.id].append(inst)
    order = {ev: n for n, ev in enumerate(e.code for e in events(ctx, scope.sees_treatment))}
    sig_at: dict[tuple[str, str], Any] = {}
    for sig in data.signatures:  # the latest per signed element wins the inline place
        sig_at[(sig.table_name, sig.record_id)] = sig
    locks_on: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for lock in data.locks:
        if lock.table_name is not None and lock.record_id is not None:
            locks_on[(lock.table_name, lock.record_id)].append(lock)
        elif lock.patient_id is not None:
            locks_on[("patients", str(lock.patient_id))].append(lock)
    for patient in data.patients:
        centre = data.centres.get(patient.centre_id)
        sd = sub(cd, "SubjectData", SubjectKey=patient.patient_code)
        sig = sig_at.get(("patients", str(patient.id)))
        if sig is not None and sig.scope == "patient":
            _signature(sd, sig, centre, with_id=False)
        sub(sd, "SiteRef", LocationOID=location_oid(centre))
        seq = 0
        for lock in locks_on.get(("patients", str(patient.id)), []):
            if lock.scope == "patient":
                seq += 1
                _annotation(sd, seq, "record_lock", lock.kind, lock_comment(lock))
        insts = sorted(
            by_patient.get(patient.id, []),
            key=lambda i: (order.get(i.event, len(order)), i.form.id, i.repeat),
        )
        by_event: dict[str, list[Instance]] = defaultdict(list)
        for inst in insts:
            by_event[inst.event].append(inst)
        for pid, visit in data.missing_forms:
            if pid == patient.id:
                by_event.setdefault(visit, [])
        for ev in sorted(by_event, key=lambda e: order.get(e, len(order))):
            sed = sub(
                sd,
                "StudyEventData",
                StudyEventOID=event_oid(ev),
                StudyEventRepeatKey="1" if ev == UNSCHEDULED else None,
            )
            for inst in by_event[ev]:  # a visit's signature is keyed by one of its rows
                vsig = sig_at.get((inst.form.table, str(inst.row.id)))
                if vsig is not None and vsig.scope == "visit":
                    _signature(sed, vsig, centre, with_id=False)
                    break
            for inst in by_event[ev]:
                missing = data.missing_items.get((inst.form.id, int(inst.row.id)), {})
                _form_data(sed, inst, centre, scope, last_audit, sig_at, locks_on, missing)
            # a whole form not done at the visit: its FormData, empty, with the code
            for n, gone in enumerate(data.missing_forms.get((patient.id, ev), []), start=1):
                fd = sub(sed, "FormData", FormOID=form_oid(gone.form_id),
                         FormRepeatKey=f"{MISSING_KEY}{n}")  # fmt: skip
                comment = missing_comment(gone)
                _annotation(fd, 1, "missing_data", gone.code, comment, code_list=CL_MISSING)
    if data.audit:
        records = sub(cd, "AuditRecords")
        centre_of = {p.patient_code: data.centres.get(p.centre_id) for p in data.patients}
        owner = {
            (i.form.table, str(i.row.id)): centre_of.get(i.patient.patient_code)
            for i in data.instances
        }
        for row in data.audit:
            _audit_record(records, row, owner.get((row.table_name, row.record_id)), True)
    if data.signatures:
        sigs = sub(cd, "Signatures")
        pcentre = {p.id: data.centres.get(p.centre_id) for p in data.patients}
        for sig in data.signatures:
            _signature(sigs, sig, pcentre.get(sig.patient_id), with_id=True)
    wide = [lk for lk in data.locks if lk.patient_id is None]
    if wide or data.invalidations:
        notes = sub(cd, "Annotations")
        seq = 0
        for lock in wide:
            seq += 1
            _annotation(notes, seq, "record_lock", lock.kind, lock_comment(lock), f"LOCK.{lock.id}")
        for sig_id, iv in sorted(data.invalidations.items()):
            seq += 1
            _annotation(
                notes,
                seq,
                "signature",
                "invalidated",
                f"signature SIG.{sig_id} invalidated at {utc_text(iv.at)} by {iv.username}: "
                f"{iv.change}",
                f"INV.{sig_id}",
            )
    return cd


def _form_data(
    parent: ET.Element,
    inst: Instance,
    centre: str | None,
    scope: Scope,
    last_audit: dict[tuple[str, str, str | None], AuditLog],
    sig_at: dict[tuple[str, str], Any],
    locks_on: dict[tuple[str, str], list[Any]],
    missing: dict[str, Any],
) -> None:
    form, rid = inst.form, str(inst.row.id)
    fd = sub(parent, "FormData", FormOID=form_oid(form.id), FormRepeatKey=str(inst.repeat))
    created = last_audit.get((form.table, rid, None)) if scope.audit else None
    if created is not None:  # the form instance's entry (its insert row)
        _audit_record(fd, created, centre, with_id=False)
    sig = sig_at.get((form.table, rid))
    if sig is not None and sig.scope == "form":
        _signature(fd, sig, centre, with_id=False)
    seq = 0
    for lock in locks_on.get((form.table, rid), []):
        if lock.scope == "form":
            seq += 1
            _annotation(fd, seq, "record_lock", lock.kind, lock_comment(lock))
    ig = sub(fd, "ItemGroupData", ItemGroupOID=group_oid(form.id))
    for f, value in inst.values:
        gone = missing.get(f.name)
        if value is None and gone is None:
            continue  # a snapshot holds no ItemData for a value never entered
        item = sub(ig, "ItemData", ItemOID=item_oid(form.id, f.name))
        if value is None:
            item.set("IsNull", "Yes")  # with the missing-data code that says why
        else:
            item.set("Value", value)
        if scope.audit and f.column and "." not in f.column:  # a value changed since entry
            row = last_audit.get((form.table, rid, f.column))
            if row is not None:
                _audit_record(item, row, centre, with_id=False)
        if gone is not None and value is None:
            comment = missing_comment(gone)
            _annotation(item, 1, "missing_data", gone.code, comment, code_list=CL_MISSING)


def admin_data(ctx: Ctx, data: Collected, registry: Registry) -> ET.Element:
    """Users (login names; the printed name of signers), centres and the sponsor as
    Locations, and one SignatureDef per signature meaning."""
    el = ET.Element(q("AdminData"), {"StudyOID": study_oid(ctx.protocol.id)})
    users = sorted({r.username for r in data.audit} | {s.username for s in data.signatures})
    for name in users:
        u = sub(el, "User", OID=user_oid(name))
        sub(u, "LoginName", name)
        if name in data.printed_names:
            sub(u, "FullName", data.printed_names[name])
    effective = ctx.today().isoformat()
    codes = sorted(set(data.centres.values()))
    for code in codes:
        loc = sub(
            el, "Location", OID=location_oid(code), Name=f"centre {code}", LocationType="Site"
        )
        sub(loc, "MetaDataVersionRef", StudyOID=study_oid(ctx.protocol.id),
            MetaDataVersionOID=mdv_oid(registry), EffectiveDate=effective)  # fmt: skip
    loc = sub(el, "Location", OID=SPONSOR, Name="sponsor", LocationType="Sponsor")
    sub(loc, "MetaDataVersionRef", StudyOID=study_oid(ctx.protocol.id),
        MetaDataVersionOID=mdv_oid(registry), EffectiveDate=effective)  # fmt: skip
    defs = sorted({(s.scope, s.meaning) for s in data.signatures})
    for scope, meaning in defs:
        sd = sub(el, "SignatureDef", OID=signature_def_oid(scope, meaning),
                 Methodology="Electronic")  # fmt: skip
        sub(sd, "Meaning", meaning)
        sub(sd, "LegalReason", "21 CFR 11.50 and 11.200(a): re-entered password of the signer")
    return el


def document(ctx: Ctx, audit: bool = True) -> tuple[bytes, dict[str, Any]]:
    """The ODM document as UTF-8 XML bytes, and what the audit trail records about it."""
    registry = ctx.trial.forms
    scope = Scope.of(ctx, registry, audit)
    evs = events(ctx, scope.sees_treatment)
    data = collect(ctx, scope, evs)
    now = utc_text(ctx.now())
    file_oid = f"RELUTH.{ctx.protocol.id}.{now.replace(':', '').replace('-', '')}"
    root = ET.Element(
        q("ODM"),
        {
            "FileType": "Snapshot",
            "Granularity": "All",
            "FileOID": file_oid,
            "CreationDateTime": now,
            "AsOfDateTime": now,
            "ODMVersion": "1.3.2",
            "Originator": ctx.actor.username,
            "SourceSystem": "reluth",
            "SourceSystemVersion": __version__,
            "Description": "ReLUTH case report forms"
            + ("" if scope.audit else " (data only, no audit records)"),
        },
    )
    root.append(study(ctx, registry, scope, evs))
    root.append(admin_data(ctx, data, registry))
    root.append(clinical_data(ctx, registry, scope, data))
    ET.indent(root)
    # serialised as text, then encoded once (ElementTree's own encoding writes piecemeal)
    text = ET.tostring(root, encoding="unicode")
    content = ('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode("utf-8")
    counts: dict[str, int] = defaultdict(int)
    for inst in data.instances:
        counts[inst.form.id] += 1
    detail = {
        "file_oid": file_oid,
        "audit": scope.audit,
        "patients": len(data.patients),
        "forms": dict(sorted(counts.items())),
        "audit_records": len(data.audit),
        "signatures": len(data.signatures),
        "locks": len(data.locks),
    }
    return content, detail
