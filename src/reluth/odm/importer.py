"""The ODM 1.3.2 import: read the ClinicalData of a file (as reluth exports it, or another EDC
using the same OIDs: ``F.<form>``, ``I.<form>.<field>``), check every element against the form
registry, then enter each form instance through its domain's service as the authenticated
actor (the same rules as entry by hand), with its original dates (the values) and the audit
reason ``imported from ODM <FileOID>`` naming who entered it when in the source system
(from its AuditRecord; CDISC ODM 1.3.2 section 2.4, ALCOA+ attributability).

Derived items (CTCAE grade, eligibility verdict...) are recomputed by the engines, never
taken from the file. E-signatures, locks and the source's audit history are not imported: an
electronic signature is linked to the record it signs in the system that made it (21 CFR
11.70), so the migrated casebook is signed again; the import report counts what it left out.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from reluth.core.context import Ctx
from reluth.errors import ValidationError
from reluth.forms import service as forms
from reluth.forms.registry import FormDef, Registry
from reluth.odm.export import CL_MISSING, NS, q
from reluth.values import parse_date, parse_number

#: The largest file the import reads (a trial of a few hundred patients is a few MB).
MAX_BYTES = 200 * 1024 * 1024
ODM_VERSIONS = ("1.3", "1.3.1", "1.3.2")


@dataclass
class FormRecord:
    form: str
    event: str
    repeat: str
    values: dict[str, str | None]  # by ItemOID as read; by field name once checked
    source: str  # "entered by USER at TIME" from the first AuditRecord, or ""
    #: missing-data codes of items without a value (as ``values``): (code, reason)
    missing: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: the whole form was not done at the visit: (code, reason); no values
    not_done: tuple[str, str] | None = None


@dataclass
class Subject:
    key: str
    site: str | None
    forms: list[FormRecord] = field(default_factory=list)


@dataclass
class Document:
    file_oid: str
    subjects: list[Subject]
    left_out: Counter[str]


def parse(content: bytes) -> Document:
    """The file's clinical data, checked for shape (ValidationError naming the element)."""
    if len(content) > MAX_BYTES:
        raise ValidationError("file", f"{len(content)} bytes", f"at most {MAX_BYTES} bytes")
    head = content[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in content.lower():
        raise ValidationError("file", "a DOCTYPE or entity declaration", "plain ODM XML")
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise ValidationError("file", f"not well-formed XML ({exc})", "ODM 1.3.2 XML") from None
    if root.tag != q("ODM"):
        raise ValidationError("ODM", f"root element {root.tag!r}", f"ODM in namespace {NS}")
    version = root.get("ODMVersion", "")
    if version not in ODM_VERSIONS:
        raise ValidationError("ODM/@ODMVersion", repr(version), ", ".join(ODM_VERSIONS))
    file_oid = (root.get("FileOID") or "").strip()
    if not file_oid:
        raise ValidationError("ODM/@FileOID", "missing", "the file's OID")
    users: dict[str, str] = {
        u.get("OID", ""): (u.findtext(q("LoginName")) or u.get("OID") or "")
        for u in root.iter(q("User"))
    }
    left: Counter[str] = Counter()
    subjects: list[Subject] = []
    datas = root.findall(q("ClinicalData"))
    if not datas:
        raise ValidationError("ClinicalData", "missing", "at least one ClinicalData element")
    for cd in datas:
        left["signatures"] += len(list(cd.iter(q("Signature"))))
        left["annotations"] += len(list(cd.iter(q("Annotation"))))
        for sd in cd.findall(q("SubjectData")):
            key = (sd.get("SubjectKey") or "").strip()
            if not key:
                raise ValidationError("SubjectData/@SubjectKey", "missing", "the pseudonym")
            site_el = sd.find(q("SiteRef"))
            site = None if site_el is None else site_el.get("LocationOID")
            subject = Subject(key, site)
            for sed in sd.findall(q("StudyEventData")):
                event = (sed.get("StudyEventOID") or "").removeprefix("SE.")
                for fd in sed.findall(q("FormData")):
                    subject.forms.append(_form(fd, key, event, users))
            subjects.append(subject)
    return Document(file_oid, subjects, left)


def _form(fd: ET.Element, key: str, event: str, users: dict[str, str]) -> FormRecord:
    oid = fd.get("FormOID") or ""
    if not oid.startswith("F."):
        where = f"FormData FormOID={oid} of SubjectKey {key}"
        raise ValidationError(where, "FormOID is not F.<form>", "F.lab, F.inclusion, ...")
    form = oid.removeprefix("F.")
    values: dict[str, str | None] = {}
    missing: dict[str, tuple[str, str]] = {}
    source = _source(fd.find(q("AuditRecord")), users)  # the form's entry, if it says
    for item in fd.iter(q("ItemData")):
        ioid = item.get("ItemOID") or ""
        values[ioid] = None if item.get("IsNull") == "Yes" else item.get("Value")
        code = _missing_code(item)
        if code is not None and values[ioid] is None:
            missing[ioid] = code
        source = source or _source(item.find(q("AuditRecord")), users)
    rec = FormRecord(form, event, fd.get("FormRepeatKey") or "1", values, source, missing)
    if not values:
        rec.not_done = _missing_code(fd)
    return rec


def _source(record: ET.Element | None, users: dict[str, str]) -> str:
    """``entered by USER at TIME`` from an AuditRecord ('' without one)."""
    if record is None:
        return ""
    user = record.find(q("UserRef"))
    who = users.get("" if user is None else user.get("UserOID", ""), "unknown")
    when = record.findtext(q("DateTimeStamp")) or "unknown time"
    return f"entered by {who} at {when}"


def _missing_code(el: ET.Element) -> tuple[str, str] | None:
    """The missing-data code an element's annotation gives (flag of CL.RELUTH.MISSING)."""
    for note in el.findall(q("Annotation")):
        for flag in note.findall(q("Flag")):
            value = flag.find(q("FlagValue"))
            if value is not None and value.get("CodeListOID") == CL_MISSING and value.text:
                return value.text.strip(), (note.findtext(q("Comment")) or "").strip()
    return None


# --- entry through the domain services --------------------------------------------------------


def _date(v: dict[str, str | None], name: str, form: str) -> Any:
    text = v.get(name)
    return None if text is None else parse_date(text, f"{form}.{name}")


def _bool(v: dict[str, str | None], name: str) -> bool | None:
    text = v.get(name)
    return None if text is None else text.strip().lower() in ("true", "1", "yes")


def _registration(ctx: Ctx, code: str, site: str | None, v: dict[str, str | None]) -> Any:
    from reluth.patients import service as patients

    centre = site.removeprefix("LOC.") if site else code.split("-", 1)[0]
    sex = {"F": "female", "M": "male"}.get(v.get("sex") or "")
    return patients.register_patient(ctx, centre, code, sex, v.get("birth_year"))


def _screening(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
    from reluth.patients import service as patients

    try:
        data = json.loads(v.get("patient_file") or "")
    except json.JSONDecodeError:
        raise ValidationError("screening.patient_file", "not JSON", "the patient file") from None
    return patients.screen_patient(ctx, data)


def _inclusion(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
    from reluth.patients import service as patients

    return patients.include_patient(
        ctx, code, _date(v, "consent_date", "inclusion"), _date(v, "inclusion_date", "inclusion")
    )


def _cycle(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
    from reluth.treatment import service as treatment

    return treatment.record_cycle(
        ctx,
        code,
        v.get("cycle") or "",
        _date(v, "administered_on", "cycle"),
        parse_number(v.get("activity_gbq"), "cycle.activity_gbq"),
        v.get("lot") or "",
    )


def _pre_randomization(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
    from reluth.patients import service as patients

    return patients.record_pre_randomization(
        ctx,
        code,
        _date(v, "assessment_date", "pre_randomization"),
        _bool(v, "radiological_progression"),
        v.get("overall_response"),
        v.get("comment"),
    )


def _visit(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
    from reluth.treatment import service as treatment

    return treatment.record_visit(
        ctx, code, v.get("visit_code") or "", _date(v, "visit_date", "visit")
    )


def _lab(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
    from reluth.safety import service as safety

    raw = {"test": v.get("analyte"), "value": v.get("value"), "unit": v.get("unit"),
           "date": v.get("date"), "uln": v.get("uln")}  # fmt: skip
    return safety.record_lab(ctx, code, {k: x for k, x in raw.items() if x is not None})


def _as_data(form: FormDef) -> Callable[[Ctx, str, dict[str, str | None]], Any]:
    """A form whose service takes the registry's fields as a mapping."""

    def call(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
        from reluth.clinical import service as clinical
        from reluth.patients import service as patients

        services = {
            "conmed": clinical.record_conmed,
            "medical_history": clinical.record_medical_history,
            "deviation": clinical.record_deviation,
            "childbearing": clinical.record_childbearing,
            "pregnancy_test": clinical.record_pregnancy_test,
            "withdrawal": patients.record_withdrawal,
        }
        data = {k: x for k, x in v.items() if x is not None and not form.field(k).derived}
        return services[form.id](ctx, code, data)

    return call


def _adverse_event(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
    from reluth.safety import records

    data: dict[str, Any] = {k: x for k, x in v.items() if x is not None}
    if "serious" in data:
        data["serious"] = _bool(v, "serious")
    if "grade" in data and str(data["grade"]).isdigit():
        data["grade"] = int(str(data["grade"]))
    return records.record_adverse_event(ctx, {"patient_id": code, **data})


def _death(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
    from reluth.patients import service as patients

    return patients.record_death(
        ctx, code, _date(v, "death_date", "death"), v.get("cause") or "", v.get("details")
    )


def _end(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
    from reluth.patients import service as patients

    return patients.record_end_of_study(
        ctx, code, _date(v, "end_date", "end_of_study"), v.get("reason") or "", v.get("details")
    )


#: The forms the import enters, in the order a casebook is built (a registration before its
#: screening, the inclusion before the cycles, the end last).
ORDER = (
    "registration",
    "screening",
    "inclusion",
    "cycle",
    "pre_randomization",
    "visit",
    "lab",
    "adverse_event",
    "medical_history",
    "conmed",
    "childbearing",
    "pregnancy_test",
    "deviation",
    "withdrawal",
    "death",
    "end_of_study",
)


def _entry(registry: Registry, form_id: str) -> Callable[[Ctx, str, dict[str, str | None]], Any]:
    simple: dict[str, Callable[[Ctx, str, dict[str, str | None]], Any]] = {
        "screening": _screening,
        "inclusion": _inclusion,
        "cycle": _cycle,
        "pre_randomization": _pre_randomization,
        "visit": _visit,
        "lab": _lab,
        "adverse_event": _adverse_event,
        "death": _death,
        "end_of_study": _end,
    }
    if form_id in simple:
        return simple[form_id]
    return _as_data(registry.form(form_id))


@dataclass
class ImportReport:
    file_oid: str
    dry_run: bool
    per_form: dict[str, int]
    per_patient: dict[str, dict[str, int]]
    left_out: dict[str, int]

    def detail(self) -> dict[str, Any]:
        return {
            "file_oid": self.file_oid,
            "dry_run": self.dry_run,
            "patients": len(self.per_patient),
            "forms": self.per_form,
            "not_imported": self.left_out,
        }


def _check(registry: Registry, doc: Document) -> None:
    """Every form and item is registered and importable, before anything is written; the
    values are then named by their field."""
    known = set(registry.form_ids)
    for subject in doc.subjects:
        for rec in subject.forms:
            where = f"FormData FormOID=F.{rec.form} of SubjectKey {subject.key}"
            if rec.form not in known:
                raise ValidationError(where, "not a registered form", ", ".join(registry.form_ids))
            if rec.not_done is not None:
                continue  # a missing-data code of a whole form: recorded as such
            if rec.form not in ORDER:
                raise ValidationError(
                    where, "this form cannot be imported", "importable forms: " + ", ".join(ORDER)
                )
            form = registry.form(rec.form)
            prefix = f"I.{rec.form}."
            named: dict[str, str | None] = {}
            for oid, value in rec.values.items():
                name = oid.removeprefix(prefix)
                if not oid.startswith(prefix) or name not in form.field_names:
                    raise ValidationError(
                        f"ItemData ItemOID={oid} in {where}",
                        "not an item of the form",
                        ", ".join(prefix + n for n in form.field_names),
                    )
                named[name] = value
            rec.values = named
            rec.missing = {k.removeprefix(prefix): v for k, v in rec.missing.items()}


def apply(ctx: Ctx, doc: Document, dry_run: bool) -> ImportReport:
    """Enter every form instance of ``doc`` through its domain service, in the caller's unit
    of work (the caller rolls back a dry run)."""
    registry = ctx.trial.forms
    _check(registry, doc)
    per_form: Counter[str] = Counter()
    per_patient: dict[str, Counter[str]] = defaultdict(Counter)
    base = f"imported from ODM {doc.file_oid}"
    for subject in doc.subjects:
        entered = [r for r in subject.forms if r.not_done is None]
        if not any(r.form == "registration" for r in entered) and not _registered(ctx, subject):
            # another EDC's subject: registered under its key at its site (SiteRef)
            ctx.writing.reason = base
            _registration(ctx, subject.key, subject.site, {})
            per_form["registration"] += 1
            per_patient[subject.key]["registration"] += 1
        recs = sorted(entered, key=lambda r: (ORDER.index(r.form), _repeat(r.repeat), r.event))
        for rec in recs:
            ctx.writing.reason = f"{base} ({rec.source})" if rec.source else base
            if rec.form == "registration":
                row = _registration(ctx, subject.key, subject.site, rec.values)
            else:
                row = _entry(registry, rec.form)(ctx, subject.key, rec.values)
            per_form[rec.form] += 1
            per_patient[subject.key][rec.form] += 1
            for name, (code, why) in rec.missing.items():
                ctx.writing.reason = base
                forms.record_missing(
                    ctx, rec.form, code, why or base, record_id=_id(row), item=name
                )
                per_form["missing_data"] += 1
                per_patient[subject.key]["missing_data"] += 1
        for rec in subject.forms:
            if rec.not_done is not None:
                ctx.writing.reason = base
                code, why = rec.not_done
                forms.record_missing(ctx, rec.form, code, why or base, patient_code=subject.key,
                                     visit_code=rec.event)  # fmt: skip
                per_form["missing_data"] += 1
                per_patient[subject.key]["missing_data"] += 1
    ctx.writing.reason = base
    return ImportReport(
        doc.file_oid,
        dry_run,
        dict(sorted(per_form.items())),
        {k: dict(sorted(c.items())) for k, c in sorted(per_patient.items())},
        {k: n for k, n in sorted(doc.left_out.items()) if n},
    )


def _registered(ctx: Ctx, subject: Subject) -> bool:
    from sqlalchemy import select

    from reluth.patients.models import Patient

    found = ctx.session.scalars(select(Patient.id).where(Patient.patient_code == subject.key))
    return found.first() is not None


def _id(row: Any) -> int:
    """The record id of what an entry service returned (a row, a row and its status, or the
    screening outcome)."""
    if isinstance(row, tuple):
        row = row[0]
    return int(getattr(row, "screening_id", None) or row.id)


def _repeat(text: str) -> Decimal:
    try:
        return Decimal(text)
    except ArithmeticError:
        return Decimal(0)
