"""The ODM 1.3.2 import: read the ClinicalData of a file (as reluth exports it, or another EDC
using the same OIDs: ``F.<form>``, ``I.<form>.<field>``), check every element against the form
registry, then enter each form instance through its domain's service as the authenticated
actor (the same rules as entry by hand), with its original dates (the values) and the audit
reason ``imported from ODM <FileOID>`` naming who entered it when in the source system
(from its AuditRecord; CDISC ODM 1.3.2 section 2.4, ALCOA+ attributability).

Derived items (CTCAE grade, eligibility verdict, QoL scale scores, RECIST responses and sums,
the stratum) are recomputed by the engines from the raw values, never taken from the file; a
file's derived value that differs from the engine's is reported (dry run and import). The
randomization's arm is recorded as it was by the randomization service (never re-drawn). A form
whose service the actor may not write (central reads are the blinded reviewer's, dosimetry the
physicist's) is left for that role, counted in the report. E-signatures, locks and the source's
audit history are not imported: an
electronic signature is linked to the record it signs in the system that made it (21 CFR
11.70), so the migrated casebook is signed again; the import report counts what it left out.
"""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.errors import ValidationError
from reluth.forms import refs
from reluth.forms import service as forms
from reluth.forms.registry import BASELINE, FormDef, Registry
from reluth.i18n import N_
from reluth.i18n.reasons import Reason, invalid
from reluth.odm import export, mapping
from reluth.odm.export import CL_MISSING, NS, UNSCHEDULED, q
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
    #: the file's derived items (by field name): compared with the engines' after entry
    derived: dict[str, str | None] = field(default_factory=dict)


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
    #: the map applied (foreign OID -> reluth's, per section, with counts); empty without one
    mapping_used: dict[str, Any] = field(default_factory=dict)


def parse(content: bytes, oid_map: mapping.Mapping | None = None) -> Document:
    """The file's clinical data, checked for shape (ValidationError naming the element), its
    OIDs first renamed by ``oid_map`` (another EDC's, :mod:`reluth.odm.mapping`)."""
    if len(content) > MAX_BYTES:
        raise invalid(
            "file",
            "file_too_large",
            N_("{size} bytes"),
            Reason("at_most_bytes", N_("at most {limit} bytes"), {"limit": MAX_BYTES}),
            size=len(content),
        )
    head = content[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in content.lower():
        raise invalid(
            "file", "xml_declarations", N_("a DOCTYPE or entity declaration"), N_("plain ODM XML")
        )
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise invalid(
            "file",
            "not_well_formed_xml",
            N_("not well-formed XML ({problem})"),
            N_("ODM 1.3.2 XML"),
            problem=str(exc),
        ) from None
    if root.tag != q("ODM"):
        raise invalid(
            "ODM",
            "not_odm",
            N_("root element “{tag}”"),
            Reason("odm_namespace", N_("ODM in namespace {namespace}"), {"namespace": NS}),
            tag=root.tag,
        )
    version = root.get("ODMVersion", "")
    if version not in ODM_VERSIONS:
        raise ValidationError("ODM/@ODMVersion", repr(version), ", ".join(ODM_VERSIONS))
    file_oid = (root.get("FileOID") or "").strip()
    if not file_oid:
        raise invalid("ODM/@FileOID", "odm_missing", N_("missing"), N_("the file's OID"))
    used = mapping.apply(root, oid_map) if oid_map is not None else {}
    users: dict[str, str] = {
        u.get("OID", ""): (u.findtext(q("LoginName")) or u.get("OID") or "")
        for u in root.iter(q("User"))
    }
    left: Counter[str] = Counter()
    subjects: list[Subject] = []
    datas = root.findall(q("ClinicalData"))
    if not datas:
        raise invalid(
            "ClinicalData",
            "odm_missing",
            N_("missing"),
            N_("at least one ClinicalData element"),
        )
    for cd in datas:
        left["signatures"] += len(list(cd.iter(q("Signature"))))
        left["annotations"] += len(list(cd.iter(q("Annotation"))))
        for sd in cd.findall(q("SubjectData")):
            key = (sd.get("SubjectKey") or "").strip()
            if not key:
                raise invalid(
                    "SubjectData/@SubjectKey", "odm_missing", N_("missing"), N_("the pseudonym")
                )
            site_el = sd.find(q("SiteRef"))
            site = None if site_el is None else site_el.get("LocationOID")
            subject = Subject(key, site)
            for sed in sd.findall(q("StudyEventData")):
                event = (sed.get("StudyEventOID") or "").removeprefix("SE.")
                for fd in sed.findall(q("FormData")):
                    subject.forms.append(_form(fd, key, event, users))
            subjects.append(subject)
    return Document(file_oid, subjects, left, used)


def _form(fd: ET.Element, key: str, event: str, users: dict[str, str]) -> FormRecord:
    oid = fd.get("FormOID") or ""
    if not oid.startswith("F."):
        where = f"FormData FormOID={oid} of SubjectKey {key}"
        raise invalid(
            where,
            "not_a_form_oid",
            N_("FormOID is not F.<form>"),
            N_("F.lab, F.inclusion, ... (another EDC's: --map)"),
        )
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
        raise invalid(
            "screening.patient_file", "not_json_value", N_("not JSON"), N_("the patient file")
        ) from None
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


def _json(v: dict[str, str | None], name: str, form: str) -> Any:
    text = v.get(name)
    try:
        return json.loads(text or "")
    except json.JSONDecodeError:
        raise invalid(
            f"I.{form}.{name}",
            "not_json_value",
            N_("not JSON"),
            N_("the value as reluth exports it"),
        ) from None


def _qol(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
    from reluth.qol import service as qol

    items = _json(v, "items", "qol")
    body = {"patient_id": code, "instrument": v.get("instrument"), "timepoint": v.get("timepoint"),
            "completed_on": v.get("completed_on"), "items": items}  # fmt: skip
    return qol.record_questionnaire(ctx, body)


def _read(reader: str) -> Callable[[Ctx, str, dict[str, str | None]], Any]:
    """A central or local read through the review service: the lesions as the RECIST engine
    takes them (organ, kind and nodal at the baseline only), the new-lesion call from its row;
    the response and sum are the engine's."""
    form = "central_read" if reader == "central" else "local_assessment"

    def call(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
        from reluth.response import service as review

        rows = _json(v, "lesions", form)
        if not isinstance(rows, list) or not all(isinstance(m, dict) for m in rows):
            raise invalid(
                f"I.{form}.lesions",
                "not_lesions",
                N_("not a list of lesions"),
                "[{lesion_id, ...}]",
            )
        timepoint = (v.get("timepoint") or "").strip()
        baseline = timepoint == "baseline"
        lesions: list[dict[str, Any]] = []
        new = "no"
        for m in rows:
            if m.get("kind") == "new":
                new = str(m.get("status") or "yes")
                continue
            lesion: dict[str, Any] = {"id": m.get("lesion_id")}
            if baseline:
                nodal = str(m.get("lymph_node")).lower() in ("true", "1", "yes")
                lesion.update(organ=m.get("organ"), kind=m.get("kind"), nodal=nodal)
            if m.get("diameter_mm") is not None:
                lesion["diameter_mm"] = m["diameter_mm"]
            elif m.get("status") is not None:
                lesion["status"] = m["status"]
            lesions.append(lesion)
        enter = (
            review.record_central_read if reader == "central" else review.record_local_assessment
        )
        day = _date(v, "assessment_date", form)
        return enter(ctx, code, timepoint, day, v.get("modality") or "", lesions, new)

    return call


def _free_local(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
    """A site's local assessment entered as a free response (no baseline read before it, so
    no RECIST evaluation): its own overall response, through the same service as by hand."""
    from reluth.response.records import record_assessment

    rows = _json(v, "lesions", "local_assessment")
    if not isinstance(rows, list) or not all(isinstance(m, dict) for m in rows):
        raise invalid(
            "I.local_assessment.lesions", "not_lesions", N_("not a list of lesions"), "[{...}]"
        )
    lesions = [
        {**{k: m[k] for k in ("lesion_id", "kind", "organ", "diameter_mm", "status")
            if m.get(k) is not None},
         "lymph_node": str(m.get("lymph_node")).lower() in ("true", "1", "yes")}
        for m in rows
    ]  # fmt: skip
    body = {"patient_id": code, "assessment_date": v.get("assessment_date"), "reader": "local",
            "timepoint": v.get("timepoint"), "modality": v.get("modality"), "lesions": lesions}  # fmt: skip
    if v.get("overall_response") is not None:
        body["overall_response"] = v["overall_response"]
    return record_assessment(ctx, body)


def _randomization(source: str) -> Callable[[Ctx, str, dict[str, str | None]], Any]:
    """The allocation as the source system made it, recorded by the randomization service
    (its arm and time; the stratum is the service's, from the screening)."""

    def call(ctx: Ctx, code: str, v: dict[str, str | None]) -> Any:
        from reluth.randomization import service as rnd
        from reluth.randomization.models import Randomization

        where = f"I.randomization.%s of SubjectKey {code}"
        arm = v.get("arm")
        if not arm:
            raise invalid(where % "arm", "odm_missing", N_("missing"),
                          N_("the allocated arm (an export by a reader who may see it)"))  # fmt: skip
        text = v.get("randomized_at") or ""
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(where % "randomized_at", repr(text),
                                  "an ISO 8601 date and time with its offset") from None  # fmt: skip
        rnd.import_randomization(ctx, code, arm, when, source)
        patient = _patient(ctx, code)
        return ctx.session.scalars(
            select(Randomization).where(Randomization.patient_id == patient.id)
        ).one()

    return call


def _dosimetry(ctx: Ctx, code: str, cycle: int, recs: list[FormRecord]) -> list[Any]:
    """One cycle's absorbed-dose results through the dosimetry service (stored once a cycle)."""
    from reluth.dosimetry import service as dosimetry

    records = []
    for rec in recs:
        v = rec.values
        item: dict[str, Any] = {k: v[k] for k in ("region", "quantity", "value", "unit",
                                                  "method", "case_id") if v.get(k) is not None}  # fmt: skip
        if v.get("kind") is not None:
            item["kind"] = v["kind"]
        if v.get("sd") is not None:
            item["sd"] = v["sd"]
        records.append(item)
    return dosimetry.store_cycle(ctx, code, cycle, records)


#: The forms the import enters, in the order a casebook is built: a registration before its
#: screening, a woman's childbearing potential and pregnancy tests before any cycle (the
#: pregnancy testing gates each one), the second-PRRT cycles and the pre-randomization
#: assessment before the randomization, the arm's cycles (``cycle+``) and the visits after it,
#: the end last.
ORDER = (
    "registration",
    "screening",
    "inclusion",
    "childbearing",
    "pregnancy_test",
    "cycle",
    "pre_randomization",
    "randomization",
    "cycle+",
    "visit",
    "lab",
    "qol",
    "local_assessment",
    "central_read",
    "dosimetry",
    "adverse_event",
    "medical_history",
    "conmed",
    "deviation",
    "withdrawal",
    "death",
    "end_of_study",
)
IMPORTABLE = tuple(f for f in ORDER if f != "cycle+")
#: The permission a form's entry service asks when it differs from the form's resource.
WRITE_NEEDS = {"randomization": Resource.RANDOMIZATION_IMPORT}
#: Derived items an entry takes as its input (the allocation's arm and time, as they were).
TAKEN = {"randomization": frozenset({"arm", "randomized_at"})}


def _entry(
    registry: Registry, form_id: str, source: str
) -> Callable[[Ctx, str, dict[str, str | None]], Any]:
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
        "qol": _qol,
        "central_read": _read("central"),
        "local_assessment": _read("local"),
        "randomization": _randomization(source),
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
    #: derived items of the file that differ from the engines' (the engines' are stored)
    mismatches: list[dict[str, str | None]] = field(default_factory=list)
    mapping_used: dict[str, Any] = field(default_factory=dict)

    def detail(self) -> dict[str, Any]:
        out = {
            "file_oid": self.file_oid,
            "dry_run": self.dry_run,
            "patients": len(self.per_patient),
            "forms": self.per_form,
            "not_imported": self.left_out,
            "derived_mismatches": self.mismatches,
        }
        if self.mapping_used:
            out["mapping"] = self.mapping_used
        return out


def _check(registry: Registry, doc: Document) -> None:
    """Every form and item is registered and importable, before anything is written; the
    values are then named by their field (an item list's answers, ``I.qol.items/3``, gathered
    into its field), a form's visit column taken from its event when the file leaves it out,
    and the derived items set apart."""
    known = set(registry.form_ids)
    for subject in doc.subjects:
        for rec in subject.forms:
            where = f"FormData FormOID=F.{rec.form} of SubjectKey {subject.key}"
            if rec.form not in known:
                raise invalid(
                    where,
                    "not_a_registered_form",
                    N_("not a registered form"),
                    ", ".join(registry.form_ids),
                )
            if rec.not_done is not None:
                continue  # a missing-data code of a whole form: recorded as such
            if rec.form not in IMPORTABLE:
                raise invalid(
                    where,
                    "form_not_importable",
                    N_("this form cannot be imported"),
                    Reason("importable", N_("importable forms: {forms}"), {"forms": IMPORTABLE}),
                )
            form = registry.form(rec.form)
            prefix = f"I.{rec.form}."
            named: dict[str, str | None] = {}
            parts: dict[str, dict[str, str | None]] = defaultdict(dict)
            for oid, value in rec.values.items():
                name, _sep, key = oid.removeprefix(prefix).partition("/")
                if (
                    not oid.startswith(prefix)
                    or name not in form.field_names
                    or (key and form.field(name).type not in ("items", "json"))
                ):
                    raise invalid(
                        f"ItemData ItemOID={oid} in {where}",
                        "not_an_item_of_the_form",
                        N_("not an item of the form"),
                        ", ".join(prefix + n for n in form.field_names),
                    )
                if key:
                    parts[name][key] = value
                else:
                    named[name] = value
            for name, answers in parts.items():
                named[name] = json.dumps({k: a for k, a in answers.items() if a is not None})
            rule = form.visits
            if rule.by == "column" and rec.event not in (BASELINE, UNSCHEDULED):
                column = next(f.name for f in form.fields if f.column == rule.column)
                named.setdefault(column, rec.event.removeprefix(rule.prefix))
            rec.derived = {
                k: x
                for k, x in named.items()
                if form.field(k).derived and k not in TAKEN.get(rec.form, ())
            }
            rec.values = named
            rec.missing = {k.removeprefix(prefix): v for k, v in rec.missing.items()}


def _stage(rec: FormRecord, pre_cycles: tuple[int, ...]) -> str:
    """The form's place in ORDER (an arm's cycle comes after the randomization)."""
    if rec.form == "cycle" and (rec.values.get("cycle") or "").strip().isdigit():
        return "cycle" if int(str(rec.values["cycle"])) in pre_cycles else "cycle+"
    return rec.form


def _needs(form: FormDef) -> Resource:
    return WRITE_NEEDS.get(form.id, Resource(form.resource))


def apply(ctx: Ctx, doc: Document, dry_run: bool) -> ImportReport:
    """Enter every form instance of ``doc`` through its domain service, in the caller's unit
    of work (the caller rolls back a dry run). A form whose service the actor may not write is
    left out and counted (``<form> (needs write <resource>)``): another role imports it."""
    registry = ctx.trial.forms
    _check(registry, doc)
    per_form: Counter[str] = Counter()
    per_patient: dict[str, Counter[str]] = defaultdict(Counter)
    left: Counter[str] = Counter(doc.left_out)
    mismatches: list[dict[str, str | None]] = []
    base = f"imported from ODM {doc.file_oid}"
    source = f"ODM {doc.file_oid}"[:80]
    pre_cycles = tuple(ctx.protocol.pre_randomization_cycles)

    def may(form_id: str) -> bool:
        need = _needs(registry.form(form_id))
        if ctx.actor.can(Action.WRITE, need):
            return True
        left[f"{form_id} (needs write {need.value.replace('_', ' ')})"] += 1
        return False

    def count(code: str, form_id: str) -> None:
        per_form[form_id] += 1
        per_patient[code][form_id] += 1

    for subject in doc.subjects:
        entered = [r for r in subject.forms if r.not_done is None and may(r.form)]
        registers = any(r.form == "registration" for r in entered)
        if not registers and not _registered(ctx, subject):
            if not ctx.actor.can(Action.WRITE, Resource.PATIENT):
                raise invalid(
                    f"SubjectData SubjectKey={subject.key}",
                    "subject_not_registered",
                    N_("not registered here"),
                    N_("a registered patient: the site data are imported first"),
                )
            # another EDC's subject: registered under its key at its site (SiteRef)
            ctx.writing.reason = base
            _registration(ctx, subject.key, subject.site, {})
            count(subject.key, "registration")
        recs = sorted(
            entered,
            key=lambda r: (
                ORDER.index(_stage(r, pre_cycles)),
                r.values.get("assessment_date") or "",
                _repeat(r.repeat),
                r.event,
            ),
        )
        doses: dict[int, list[FormRecord]] = defaultdict(list)
        local = [r for r in recs if r.form == "local_assessment"]
        # local reads that do not begin with a baseline read were free responses at the site
        free_local = bool(local) and (local[0].values.get("timepoint") or "") != "baseline"
        for rec in recs:
            if rec.form == "dosimetry":
                doses[_cycle_of(rec, subject.key)].append(rec)
                continue
            ctx.writing.reason = f"{base} ({rec.source})" if rec.source else base
            if rec.form == "registration":
                row = _registration(ctx, subject.key, subject.site, rec.values)
            elif rec.form == "local_assessment" and free_local:
                row = _free_local(ctx, subject.key, rec.values)
            else:
                row = _entry(registry, rec.form, source)(ctx, subject.key, rec.values)
            count(subject.key, rec.form)
            mismatches += _compare(ctx, registry.form(rec.form), rec, subject.key, row)
            _missing_items(ctx, rec, _id(row), base, count, subject.key)
        for cycle, group in sorted(doses.items()):
            first = next((r.source for r in group if r.source), "")
            ctx.writing.reason = f"{base} ({first})" if first else base
            rows = _dosimetry(ctx, subject.key, cycle, group)
            for rec, row in zip(group, rows, strict=True):
                count(subject.key, rec.form)
                _missing_items(ctx, rec, int(row.id), base, count, subject.key)
        for rec in subject.forms:
            if rec.not_done is not None and may(rec.form):
                ctx.writing.reason = base
                code, why = rec.not_done
                forms.record_missing(ctx, rec.form, code, why or base, patient_code=subject.key,
                                     visit_code=rec.event)  # fmt: skip
                count(subject.key, "missing_data")
    ctx.writing.reason = base
    return ImportReport(
        doc.file_oid,
        dry_run,
        dict(sorted(per_form.items())),
        {k: dict(sorted(c.items())) for k, c in sorted(per_patient.items())},
        {k: n for k, n in sorted(left.items()) if n},
        mismatches,
        doc.mapping_used,
    )


def _missing_items(
    ctx: Ctx,
    rec: FormRecord,
    record_id: int,
    base: str,
    count: Callable[[str, str], None],
    code: str,
) -> None:
    for name, (missing, why) in rec.missing.items():
        ctx.writing.reason = base
        forms.record_missing(ctx, rec.form, missing, why or base, record_id=record_id, item=name)
        count(code, "missing_data")


def _cycle_of(rec: FormRecord, code: str) -> int:
    text = (rec.values.get("cycle") or "").strip()
    if not text.isdigit():
        raise ValidationError(
            f"I.dosimetry.cycle of SubjectKey {code}", repr(text), "a cycle number"
        )
    return int(text)


def _compare(
    ctx: Ctx, form: FormDef, rec: FormRecord, code: str, result: Any
) -> list[dict[str, str | None]]:
    """The file's derived items that differ from what the engines stored."""
    if not rec.derived:
        return []
    row = ctx.session.get(refs.model_of(form), _id(result))
    stored = {f.name: text for f, text in export.values(form, row)}
    out = []
    for name, given in sorted(rec.derived.items()):
        now = stored.get(name)
        if given is not None and not _same(given, now):
            out.append({"subject": code, "form": form.id, "repeat": rec.repeat,
                        "item": export.item_oid(form.id, name), "file": given,
                        "recomputed": now})  # fmt: skip
    return out


def _same(a: str, b: str | None) -> bool:
    if b is None:
        return False
    if a == b:
        return True
    try:
        return Decimal(a) == Decimal(b)
    except ArithmeticError:
        pass
    try:
        return bool(json.loads(a) == json.loads(b))
    except json.JSONDecodeError:
        return False


def _patient(ctx: Ctx, code: str) -> Any:
    from reluth.patients.models import Patient

    return ctx.session.scalars(select(Patient).where(Patient.patient_code == code)).one()


def _registered(ctx: Ctx, subject: Subject) -> bool:
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
