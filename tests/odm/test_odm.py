"""CDISC ODM 1.3.2: the export validates against CDISC's schema (shipped in tests/odm/schema),
holds metadata from the registry, every patient's saved values, audit records, e-signatures
and locks, and nothing a blinded reader may not see; the import enters another EDC's data
through the domain services in one transaction, with a dry run and clear refusals; export ->
import into an empty database -> export gives the same clinical data."""

from __future__ import annotations

import datetime as dt
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import Engine, func, select
from tests.store.storekit import (
    ADMIN,
    INVESTIGATOR,
    NURSE,
    PASSWORD,
    STAT,
    add_account,
    add_users,
    read,
    ready_patients,
    work,
)

from reluth.auth.roles import Role
from reluth.core.trial import Trial
from reluth.db.audit import AuditLog
from reluth.db.engine import make_engine
from reluth.db.session import read_session
from reluth.errors import PermissionDenied, ReluthError, ValidationError
from reluth.forms import service as forms
from reluth.lifecycle import service as lifecycle
from reluth.lifecycle import signature_service as signing
from reluth.odm import export
from reluth.odm import service as odm
from reluth.patients.models import Patient
from reluth.safety import records
from reluth.safety import service as safety

SCHEMA = Path(__file__).parent / "schema" / "cdisc-odm-1.3.2" / "ODM1-3-2.xsd"
N = {"o": export.NS}
LAB = {"test": "alt", "value": "30", "unit": "U/L", "date": "2025-03-01", "uln": "40"}


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


def _trial(engine: Engine) -> list[str]:
    """Two patients with the baseline forms and cycles, a lab result corrected once, a
    signed casebook and a locked form."""
    codes = ready_patients(engine, 2)
    add_account(engine, "dm1", Role.DATA_MANAGER)
    with work(engine, NURSE) as ctx:
        lab = safety.record_lab(ctx, codes[0], dict(LAB)).id
        records.record_adverse_event(ctx, {"patient_id": codes[1], "term": "Nausea", "grade": 2,
            "serious": False, "relatedness": "possible", "outcome": "recovered",
            "onset_date": "2025-01-10", "resolution_date": "2025-01-14"})  # fmt: skip
    with work(engine, NURSE, reason="transcription error") as ctx:
        safety.edit_lab(ctx, codes[0], lab, {"value": "31"})
    with work(engine, ADMIN) as ctx:
        signing.designate_principal_investigator(ctx, INVESTIGATOR, "C01", "Dr Anne Martin")
    with work(engine, INVESTIGATOR) as ctx:
        signing.sign(ctx, codes[0], "patient", PASSWORD)
    with work(engine, "dm1", reason="data review done") as ctx:
        lifecycle.lock(ctx, "form", f"lab_results/{lab}", "data review done")
    with work(engine, NURSE) as ctx:
        second = ctx.session.scalars(select(Patient).where(Patient.patient_code == codes[1])).one()
        forms.record_missing(ctx, "registration", "UNK", "not in the referral letter",
                             record_id=second.id, item="sex")  # fmt: skip
        forms.record_missing(ctx, "qol", "ND", "too ill to answer",
                             patient_code=codes[0], visit_code="QOL-W00")  # fmt: skip
    return codes


@dataclass(frozen=True)
class Source:
    """The source trial (built once per module, SQLite) and its full export."""

    engine: Engine
    codes: list[str]
    content: bytes


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, _sqlite_template: Path) -> Iterator[Source]:
    path = tmp_path_factory.mktemp("odm-source") / "source.db"
    shutil.copyfile(_sqlite_template, path)
    eng = make_engine(f"sqlite:///{path}")
    codes = _trial(eng)
    with read(eng, STAT) as ctx:
        content = odm.odm_export(ctx).content
    yield Source(eng, codes, content)
    eng.dispose()


@pytest.fixture
def target(engine: Engine) -> Engine:
    """An empty database on each backend with the test centres and accounts."""
    add_users(engine)
    return engine


def _export(engine: Engine, user: str, audit: bool = True) -> ET.Element:
    with read(engine, user) as ctx:
        download = odm.odm_export(ctx, audit)
    return ET.fromstring(download.content)


def _subject(root: ET.Element, code: str) -> ET.Element:
    found = root.find(f".//o:SubjectData[@SubjectKey='{code}']", N)
    assert found is not None, code
    return found


def _value(subject: ET.Element, item: str) -> list[str | None]:
    return [i.get("Value") for i in subject.iterfind(f".//o:ItemData[@ItemOID='{item}']", N)]


def test_the_export_validates_against_the_odm_132_schema(
    source: Source, schema: etree.XMLSchema
) -> None:
    with read(source.engine, NURSE) as ctx:
        data_only = odm.odm_export(ctx, audit=False).content
    for content in (source.content, data_only):
        valid = schema.validate(etree.fromstring(content))
        assert valid, [str(e) for e in schema.error_log][:3]
    # the validator is real: a FormDef without its required Repeating attribute is refused
    broken = source.content.replace(b'Repeating="No"', b"", 1)
    assert not schema.validate(etree.fromstring(broken))
    root = ET.fromstring(data_only)
    keys = {s.get("SubjectKey") for s in root.iterfind(".//o:SubjectData", N)}
    assert keys == set(source.codes)
    assert root.find(".//o:AuditRecord", N) is None  # --no-audit: data only
    assert ET.fromstring(source.content).find(".//o:AuditRecord", N) is not None


def test_metadata_comes_from_the_registry(source: Source) -> None:
    root = ET.fromstring(source.content)
    with read(source.engine, STAT) as ctx:
        registry = ctx.trial.forms
    mdv = root.find(".//o:MetaDataVersion", N)
    assert mdv is not None
    forms = {f.get("OID") for f in mdv.iterfind("o:FormDef", N)}
    assert forms == {export.form_oid(f) for f in registry.form_ids}
    activity = mdv.find("o:ItemDef[@OID='I.cycle.activity_gbq']", N)
    assert activity is not None and activity.get("DataType") == "float"
    assert activity.find("o:MeasurementUnitRef", N).get("MeasurementUnitOID") == "MU.GBq"  # type: ignore[union-attr]
    checks = {
        (r.get("Comparator"), r.findtext("o:CheckValue", namespaces=N))
        for r in activity.iterfind("o:RangeCheck", N)
    }
    assert checks == {("GE", "0.1"), ("LE", "15")}
    grade = mdv.find("o:CodeList[@OID='CL.relatedness']", N)
    assert grade is not None
    coded = [i.get("CodedValue") for i in grade.iterfind("o:CodeListItem", N)]
    assert coded == list(registry.codes("relatedness"))
    baseline = mdv.find("o:StudyEventDef[@OID='SE.BASELINE']", N)
    assert baseline is not None
    refs = [r.get("FormOID") for r in baseline.iterfind("o:FormRef", N)]
    assert refs == [export.form_oid(f.id) for f in registry.forms_at("BASELINE")]


def test_clinical_data_audit_signatures_and_locks(source: Source) -> None:
    engine, codes = source.engine, source.codes
    root = ET.fromstring(source.content)
    first = _subject(root, codes[0])
    assert [Decimal(v or "") for v in _value(first, "I.lab.value")] == [Decimal("31")]
    assert _value(first, "I.inclusion.inclusion_date") == ["2024-10-30"]
    assert sorted(_value(first, "I.cycle.administered_on")) == ["2024-11-04", "2024-12-30"]
    # the corrected value carries the audit record of its correction
    (item,) = first.iterfind(".//o:ItemData[@ItemOID='I.lab.value']", N)
    record = item.find("o:AuditRecord", N)
    assert record is not None
    assert record.findtext("o:ReasonForChange", namespaces=N) == "transcription error"
    assert record.find("o:UserRef", N).get("UserOID") == export.user_oid(NURSE)  # type: ignore[union-attr]
    assert record.find("o:LocationRef", N).get("LocationOID") == "LOC.C01"  # type: ignore[union-attr]
    stamp = record.findtext("o:DateTimeStamp", namespaces=N)
    assert stamp is not None and dt.datetime.fromisoformat(stamp).tzinfo is not None
    # the full history is in ClinicalData/AuditRecords, one per audit-trail row
    with read_session(engine) as s:
        lab_rows = s.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.table_name == "lab_results")
        )
    sources = [r.findtext("o:SourceID", namespaces=N) or "" for r in root.iterfind(
        ".//o:AuditRecords/o:AuditRecord", N)]  # fmt: skip
    assert sum(" lab_results/" in s for s in sources) == lab_rows
    # the casebook's signature, with its meaning and the signer's printed name
    sig = first.find("o:Signature", N)
    assert sig is not None
    oid = sig.find("o:SignatureRef", N).get("SignatureOID")  # type: ignore[union-attr]
    sdef = root.find(f".//o:SignatureDef[@OID='{oid}']", N)
    assert sdef is not None
    assert sdef.findtext("o:Meaning", namespaces=N) == Trial.default().forms.signature_meaning(
        "patient"
    )
    signer = root.find(f".//o:User[@OID='{export.user_oid(INVESTIGATOR)}']", N)
    assert signer is not None and signer.findtext("o:FullName", namespaces=N) == "Dr Anne Martin"
    # the change after... none here: the lock is an annotation on the lab's FormData
    (lab_form,) = first.iterfind(".//o:FormData[@FormOID='F.lab']", N)
    flag = lab_form.find("o:Annotation/o:Flag/o:FlagValue", N)
    assert flag is not None and flag.text == "lock"
    comment = lab_form.findtext("o:Annotation/o:Comment", namespaces=N) or ""
    assert "data review done" in comment and "dm1" in comment
    # no direct identifier: a subject is named by its pseudonym only
    assert set(first.attrib) == {"SubjectKey"}
    # the second-PRRT cycles are baseline forms
    baseline = first.find("o:StudyEventData[@StudyEventOID='SE.BASELINE']", N)
    assert baseline is not None
    assert len(baseline.findall("o:FormData[@FormOID='F.cycle']", N)) == 2
    # missing-data codes: a field's on its null ItemData, a whole form's on its visit
    (sex,) = _subject(root, codes[1]).iterfind(".//o:ItemData[@ItemOID='I.registration.sex']", N)
    assert sex.get("IsNull") == "Yes" and sex.get("Value") is None
    assert sex.findtext("o:Annotation/o:Flag/o:FlagValue", namespaces=N) == "UNK"
    assert "not in the referral letter" in (
        sex.findtext("o:Annotation/o:Comment", namespaces=N) or ""
    )
    visit = "o:StudyEventData[@StudyEventOID='SE.QOL-W00']"
    qol = first.find(f"{visit}/o:FormData[@FormOID='F.qol']/o:Annotation", N)
    assert qol is not None and qol.findtext("o:Flag/o:FlagValue", namespaces=N) == "ND"
    assert "too ill to answer" in (qol.findtext("o:Comment", namespaces=N) or "")


def test_exports_are_audited_as_exports(engine: Engine) -> None:
    from reluth.core.download import record_download

    ready_patients(engine, 1)
    with read(engine, STAT) as ctx:
        download = odm.odm_export(ctx, False)
    with work(engine, STAT) as ctx:
        record_download(ctx, download)
    with read_session(engine) as s:
        (row,) = s.scalars(select(AuditLog).where(AuditLog.table_name == "exports")).all()
    assert row.action == "export" and row.record_id == "odm-export"
    assert download.sha256 in (row.new_value or "")


def test_a_blinded_reader_receives_nothing_that_reveals_the_arm(source: Source) -> None:
    engine = source.engine
    add_account(engine, "cr1", Role.CENTRAL_REVIEWER)
    with read(engine, "cr1") as ctx, pytest.raises(PermissionDenied):
        odm.odm_export(ctx)
    # what a reader without `read treatment` would be given (the document, built directly)
    with read(engine, "cr1") as ctx:
        scope = export.Scope.of(ctx, ctx.trial.forms, audit=True)
        assert not scope.sees_treatment
        assert all(not f.treatment for f in scope.forms)
        evs = export.events(ctx, scope.sees_treatment)
        assert not any(e.kind == "treatment" for e in evs)
        assert any(e.kind == "treatment" for e in export.events(ctx, True))
        # the document such a reader would be given holds no treatment form, visit or audit
        content, _detail = export.document(ctx)
    blind = content.decode("utf-8")
    for revealing in ("F.cycle", "F.dosimetry", "SE.C3", "SE.C4", "administrations", "I.cycle"):
        assert revealing not in blind, revealing
    full = ET.fromstring(source.content)  # the unblinded statistician's: cycles present
    assert full.find(".//o:FormData[@FormOID='F.cycle']", N) is not None


def _clinical(root: ET.Element) -> list[str]:
    """The SubjectData as canonical text, without the audit records and signatures (the
    import's own), the locks (not imported) and the comments of missing-data codes (they name
    who recorded the code, and when: the import)."""
    out = []
    for sd in root.iterfind(".//o:SubjectData", N):
        for parent in list(sd.iter()):
            for drop in ("AuditRecord", "Signature"):
                for child in parent.findall(f"o:{drop}", N):
                    parent.remove(child)
            for note in parent.findall("o:Annotation", N):
                if note.findtext("o:Flag/o:FlagType", namespaces=N) == "missing_data":
                    for comment in note.findall("o:Comment", N):
                        note.remove(comment)
                else:
                    parent.remove(note)
        out.append(ET.canonicalize(ET.tostring(sd, encoding="unicode"), strip_text=True))
    return sorted(out)


def test_round_trip_export_import_export(source: Source, target: Engine) -> None:
    content = source.content
    file_oid = ET.fromstring(content).get("FileOID")
    with work(target, INVESTIGATOR) as ctx:
        report = odm.odm_import(ctx, content)
    assert report.per_form["lab"] == 1 and report.per_form["cycle"] == 4
    assert report.per_form["missing_data"] == 2 and report.per_form["adverse_event"] == 1
    assert report.left_out["signatures"] >= 1
    again = _export(target, STAT)
    assert _clinical(again) == _clinical(ET.fromstring(content))
    assert "CL.RELUTH.MISSING" in _clinical(again)[1]  # the field's missing-data code came too
    with read_session(target) as s:
        reasons = set(
            s.scalars(select(AuditLog.reason).where(AuditLog.table_name == "lab_results"))
        )
        (event,) = s.scalars(select(AuditLog).where(AuditLog.table_name == "imports")).all()
    assert all(r is not None and r.startswith(f"imported from ODM {file_oid}") for r in reasons)
    assert any("entered by nurse1 at 20" in (r or "") for r in reasons)
    assert event.action == "import" and event.record_id == file_oid


def _count(engine: Engine) -> int:
    with read_session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(Patient)) or 0)


class _Rollback(Exception):
    pass


def test_dry_run_reports_per_form_and_patient_and_writes_nothing(
    source: Source, target: Engine
) -> None:
    codes, content = source.codes, source.content
    with pytest.raises(_Rollback), work(target, INVESTIGATOR) as ctx:
        report = odm.odm_import(ctx, content, dry_run=True)
        raise _Rollback
    assert report.dry_run and set(report.per_patient) == set(codes)
    assert report.per_patient[codes[0]]["lab"] == 1
    assert _count(target) == 0


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (("F.lab", "F.nonsense"), "FormData FormOID=F.nonsense"),
        (("I.lab.value", "I.lab.colour"), "I.lab.colour"),
        (("F.lab", "F.qol"), "ItemData ItemOID=I.lab.analyte in FormData FormOID=F.qol"),
        (('Value="31.0000"', 'Value="abc"'), "value"),
    ],
)
def test_bad_input_is_refused_whole_with_one_clear_message(
    source: Source, tmp_path: Path, _sqlite_template: Path, change: tuple[str, str], names: str
) -> None:
    content = source.content.decode("utf-8")
    assert change[0] in content
    bad = content.replace(change[0], change[1]).encode("utf-8")
    shutil.copyfile(_sqlite_template, tmp_path / "empty.db")
    eng = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    add_users(eng)
    with pytest.raises(ValidationError) as err, work(eng, INVESTIGATOR) as ctx:
        odm.odm_import(ctx, bad)
    assert names in str(err.value)
    assert _count(eng) == 0  # one transaction: the first patient is not kept
    eng.dispose()


OTHER_EDC = """<?xml version="1.0" encoding="UTF-8"?>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" ODMVersion="1.3.2" FileType="Snapshot"
     FileOID="OTHER-EDC-2021-10" CreationDateTime="2025-03-01T10:00:00Z">
  <AdminData><User OID="U.7"><LoginName>site.nurse</LoginName></User></AdminData>
  <ClinicalData StudyOID="RELUTH" MetaDataVersionOID="v1">
    <SubjectData SubjectKey="C02-0007">
      <SiteRef LocationOID="LOC.C02"/>
      <StudyEventData StudyEventOID="SE.BASELINE">
        <FormData FormOID="F.medical_history">
          <ItemGroupData ItemGroupOID="IG.medical_history">
            <ItemData ItemOID="I.medical_history.condition" Value="hypertension">
              <AuditRecord>
                <UserRef UserOID="U.7"/><LocationRef LocationOID="LOC.C02"/>
                <DateTimeStamp>2021-10-14T09:30:00Z</DateTimeStamp>
              </AuditRecord>
            </ItemData>
            <ItemData ItemOID="I.medical_history.start_date" Value="2015-06-01"/>
            <ItemData ItemOID="I.medical_history.ongoing" Value="true"/>
          </ItemGroupData>
        </FormData>
      </StudyEventData>
    </SubjectData>
  </ClinicalData>
</ODM>"""


def test_another_edcs_subject_is_registered_at_its_site_and_refused_until_included(
    target: Engine,
) -> None:
    """A subject the file does not register is registered under its key at its SiteRef; its
    data then pass the domain's own rules (medical history needs an included patient)."""
    with pytest.raises(ReluthError) as err, work(target, INVESTIGATOR) as ctx:
        odm.odm_import(ctx, OTHER_EDC.encode("utf-8"))
    assert "C02-0007" in str(err.value) and "includ" in str(err.value)
    assert _count(target) == 0  # one transaction: not even the registration is kept


def test_not_odm_is_refused() -> None:
    from reluth.odm.importer import parse

    for content, names in (
        (b"<html/>", "ODM"),
        (b"not xml", "well-formed"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><x/>', "DOCTYPE"),
    ):
        with pytest.raises(ValidationError) as err:
            parse(content)
        assert names in str(err.value)


def test_decimal_values_are_exact() -> None:
    f = export.FieldDef(name="v", label="v", type="decimal")
    assert export.text_value(f, Decimal("7.40")) == "7.40"
    assert export.text_value(f, Decimal("15")) == "15"
