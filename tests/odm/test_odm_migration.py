"""Migrating a whole trial from another EDC: QoL questionnaires, local and central reads,
randomizations and dosimetry come through their services (the engines recompute scores and
RECIST responses; a file's derived value that differs is reported), each form imported by the
role that enters it; the allocations are recorded as they were, never visible to the blinded
reader, and later minimization decisions count them; another EDC's OIDs come through a map."""

from __future__ import annotations

import datetime as dt
import random
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import Engine, func, select
from tests.odm.test_odm import SCHEMA, N, _clinical, _export
from tests.store.storekit import (
    INVESTIGATOR,
    NURSE,
    STAT,
    add_account,
    add_users,
    read,
    ready_patients,
    work,
)

from reluth.auth.roles import Role
from reluth.clinical.models import MedicalHistory
from reluth.db.audit import AuditLog
from reluth.db.engine import make_engine
from reluth.db.session import read_session
from reluth.dosimetry import service as dosimetry
from reluth.errors import Conflict, ValidationError
from reluth.odm import export
from reluth.odm import service as odm
from reluth.patients import service as patients
from reluth.patients.models import Patient
from reluth.qol.models import QolQuestionnaire
from reluth.qol.service import record_questionnaire
from reluth.randomization import integrity
from reluth.randomization import service as rnd
from reluth.randomization.models import Randomization
from reluth.response import service as review
from reluth.response.models import TumourAssessment
from reluth.response.records import record_assessment
from reluth.treatment import service as treatment

RAND_AT = dt.datetime(2025, 3, 5, 10, 0, tzinfo=dt.UTC)
DAY0 = RAND_AT.date()
LATER = dt.date(2026, 1, 1)
REVIEWER, PHYSICIST = "cr1", "mp1"
DATA = Path(__file__).parent / "data"
BASELINE = [
    {"id": "T1", "organ": "liver", "kind": "target", "diameter_mm": "81"},
    {"id": "NT1", "organ": "bone", "kind": "non_target", "status": "present"},
]
WEEK8 = [{"id": "T1", "diameter_mm": "53"}, {"id": "NT1", "status": "present"}]


def _accounts(engine: Engine) -> None:
    add_account(engine, REVIEWER, Role.CENTRAL_REVIEWER)
    add_account(engine, PHYSICIST, Role.MEDICAL_PHYSICIST)


def _source_trial(engine: Engine) -> list[str]:
    """Two randomized patients; the first with a visit, a QoL questionnaire, local and central
    reads (baseline and week 8) and a dosimetry result."""
    codes = ready_patients(engine, 2)
    _accounts(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "minimization")
    with work(engine, INVESTIGATOR, today=DAY0) as ctx:
        for code in codes:
            rnd.randomize(ctx, code, f"req-{code}", rng=random.Random(7))
    code = codes[0]
    with work(engine, NURSE, today=LATER) as ctx:
        schedule = treatment.visit_schedule(
            ctx.session, patients.find_patient(ctx.session, code), LATER, ctx.protocol
        )
        visit = next(s.visit for s in schedule if s.visit.kind != "treatment")
        treatment.record_visit(ctx, code, visit.code, visit.target_date)
        record_questionnaire(ctx, {"patient_id": code, "instrument": "QLQ-C30",
            "timepoint": "QOL-W00", "completed_on": (DAY0 - dt.timedelta(days=2)).isoformat(),
            "items": {str(i): 1 + i % 4 for i in range(1, 31)}})  # fmt: skip
        review.record_local_assessment(
            ctx, code, "baseline", DAY0 - dt.timedelta(days=9), "CT", BASELINE, "no"
        )
        review.record_local_assessment(
            ctx, code, "week8", DAY0 + dt.timedelta(days=56), "CT", WEEK8, "no"
        )
        # the other patient's site read was a free response (no baseline read, no engine)
        record_assessment(ctx, {"patient_id": codes[1], "reader": "local", "modality": "MRI",
            "assessment_date": (DAY0 + dt.timedelta(days=55)).isoformat(),
            "timepoint": "local-w8", "overall_response": "SD", "lesions": [{"lesion_id": "T1",
            "kind": "target", "organ": "pancreas", "diameter_mm": 77}]})  # fmt: skip
    with work(engine, REVIEWER, today=LATER) as ctx:
        review.record_central_read(
            ctx, code, "baseline", DAY0 - dt.timedelta(days=9), "CT", BASELINE, "no"
        )
        review.record_central_read(
            ctx, code, "week8", DAY0 + dt.timedelta(days=56), "CT", WEEK8, "no"
        )
    with work(engine, PHYSICIST, today=LATER) as ctx:
        dosimetry.store_cycle(ctx, code, 1, [{"region": "kidneys", "quantity": "absorbed_dose",
            "value": 2.875, "sd": 0.2, "unit": "Gy", "method": "S-value", "kind": "organ"}],
            case_id="CASE-1")  # fmt: skip
    return codes


@dataclass(frozen=True)
class Source:
    engine: Engine
    codes: list[str]
    content: bytes


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, _sqlite_template: Path) -> Iterator[Source]:
    path = tmp_path_factory.mktemp("odm-migration") / "source.db"
    shutil.copyfile(_sqlite_template, path)
    eng = make_engine(f"sqlite:///{path}")
    codes = _source_trial(eng)
    with read(eng, STAT, today=LATER) as ctx:
        content = odm.odm_export(ctx).content
    yield Source(eng, codes, content)
    eng.dispose()


@pytest.fixture
def target(engine: Engine) -> Engine:
    """An empty database on each backend with the test centres and accounts."""
    add_users(engine)
    _accounts(engine)
    return engine


def _count(engine: Engine, model: object) -> int:
    with read_session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


def test_the_export_carries_qol_reads_randomizations_and_doses_and_validates(
    source: Source,
) -> None:
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    assert schema.validate(etree.fromstring(source.content)), schema.error_log
    root = ET.fromstring(source.content)
    for oid in ("I.qol.scores", "I.central_read.overall_response", "I.local_assessment.lesions",
                "I.randomization.arm", "I.dosimetry.case_id"):  # fmt: skip
        assert root.find(f".//o:ItemData[@ItemOID='{oid}']", N) is not None, oid
    with read_session(source.engine) as s:
        arms = dict(s.execute(select(Randomization.patient_id, Randomization.arm)).all())
    values = [
        i.get("Value") for i in root.iterfind(".//o:ItemData[@ItemOID='I.randomization.arm']", N)
    ]
    assert sorted(values) == sorted(arms.values())  # type: ignore[type-var]


def _import_all(target: Engine, content: bytes) -> dict[str, odm.ImportReport]:
    """The migration as the roles run it: site data, then the central reads, then the doses."""
    reports = {}
    for user in (INVESTIGATOR, REVIEWER, PHYSICIST):
        with work(target, user, today=LATER) as ctx:
            reports[user] = odm.odm_import(ctx, content)
    return reports


def test_round_trip_with_qol_reads_randomizations_and_doses(source: Source, target: Engine) -> None:
    reports = _import_all(target, source.content)
    site, reads, doses = reports[INVESTIGATOR], reports[REVIEWER], reports[PHYSICIST]
    assert site.per_form["randomization"] == 2 and site.per_form["qol"] == 1
    assert site.per_form["local_assessment"] == 3 and site.per_form["visit"] == 1
    assert site.left_out["central_read (needs write central review)"] == 2
    assert site.left_out["dosimetry (needs write dosimetry)"] == 1
    assert reads.per_form == {"central_read": 2} and doses.per_form == {"dosimetry": 1}
    assert site.mismatches == reads.mismatches == doses.mismatches == []
    again = _export(target, STAT)
    assert _clinical(again) == _clinical(ET.fromstring(source.content))
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    assert schema.validate(etree.fromstring(ET.tostring(again)))
    # the allocations as they were: same arms at the original times, audited as an import
    with read_session(source.engine) as s:
        was = {r.arm: r.randomized_at for r in s.scalars(select(Randomization))}
    with read_session(target) as s:
        rows = list(s.scalars(select(Randomization)))
        audit = list(s.scalars(select(AuditLog).where(AuditLog.table_name == "randomizations")))
    assert sorted(r.arm for r in rows) == sorted(was)
    assert {r.method for r in rows} == {rnd.IMPORTED} and all(r.slot_id is None for r in rows)
    assert all(export.utc_text(r.randomized_at) == export.utc_text(was[r.arm]) for r in rows)
    assert audit and all((a.reason or "").startswith("imported from ODM") for a in audit)
    # the engines' evaluations were stored with the reads (the central one too)
    with read_session(target) as s:
        readers = set(s.scalars(select(TumourAssessment.reader)))
    assert readers == {"central", "local"}


def test_the_blinded_reader_never_receives_the_arm(source: Source, target: Engine) -> None:
    with work(target, INVESTIGATOR, today=LATER) as ctx:
        odm.odm_import(ctx, source.content)
    # the reviewer's import of the same file enters no allocation and names no arm
    with pytest.raises(_Rollback), work(target, REVIEWER, today=LATER) as ctx:
        report = odm.odm_import(ctx, source.content, dry_run=True)
        raise _Rollback
    assert report.per_form == {"central_read": 2}
    assert report.left_out["randomization (needs write randomization import)"] == 2
    with read_session(target) as s:
        arms = set(s.scalars(select(Randomization.arm)))
    assert arms and not any(arm in repr(report.detail()) for arm in arms)
    with read(target, REVIEWER, today=LATER) as ctx:
        scope = export.Scope.of(ctx, ctx.trial.forms, audit=True)
        content, _detail = export.document(ctx)
    assert ("randomization", "arm") in scope.hidden or not any(
        f.id == "randomization" for f in scope.forms
    )
    assert b"I.randomization.arm" not in content
    assert not any(f'Value="{arm}"'.encode() in content for arm in arms)
    # a reader who may see the arm receives it
    with read(target, STAT, today=LATER) as ctx:
        assert b"I.randomization.arm" in export.document(ctx)[0]


class _Rollback(Exception):
    pass


def _tampered(content: bytes, item: str, value: str, was: str = '[^"]*') -> bytes:
    """The file with the last value of ``item`` (that matches ``was``) replaced (a derived
    value the source got wrong)."""
    text = content.decode("utf-8")
    hits = list(re.finditer(rf'ItemOID="{re.escape(item)}" Value="({was})"', text))
    assert hits, item
    m = hits[-1]
    return (text[: m.start(1)] + value + text[m.end(1) :]).encode("utf-8")


def test_dry_run_reports_derived_mismatches_and_writes_nothing(
    source: Source, target: Engine
) -> None:
    bad = _tampered(source.content, "I.local_assessment.overall_response", "CR", was="PR")
    bad = _tampered(bad, "I.qol.scores", "{&quot;scales&quot;: {}}")
    with pytest.raises(_Rollback), work(target, INVESTIGATOR, today=LATER) as ctx:
        report = odm.odm_import(ctx, bad, dry_run=True)
        raise _Rollback
    m, q = sorted(report.mismatches, key=lambda x: str(x["item"]))
    assert m["item"] == "I.local_assessment.overall_response"
    assert m["file"] == "CR" and m["recomputed"] == "PR"  # 81 -> 53 mm: -35 %
    assert q["item"] == "I.qol.scores" and q["file"] == '{"scales": {}}'
    assert '"summary"' in (q["recomputed"] or "")  # the engine's scores, from the answers
    assert report.detail()["derived_mismatches"] == report.mismatches
    for model in (Patient, Randomization, QolQuestionnaire, TumourAssessment):
        assert _count(target, model) == 0


@pytest.mark.parametrize(
    ("item", "value", "names"),
    [
        ("I.randomization.arm", "Z", "arm"),
        ("I.randomization.randomized_at", "yesterday", "I.randomization.randomized_at"),
        ("I.qol.items", '{"1": 9}', "item 1"),
        ("I.central_read.lesions", '[{"lesion_id": "T9", "diameter_mm": "10.0"}]', "T9"),
    ],
)
def test_bad_input_is_refused_whole(
    source: Source,
    tmp_path: Path,
    _sqlite_template: Path,
    item: str,
    value: str,
    names: str,
) -> None:
    shutil.copyfile(_sqlite_template, tmp_path / "empty.db")
    eng = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    add_users(eng)
    _accounts(eng)
    bad = _tampered(source.content, item, value.replace('"', "&quot;"))
    user = REVIEWER if item.startswith("I.central_read") else INVESTIGATOR
    if user == REVIEWER:
        with work(eng, INVESTIGATOR, today=LATER) as ctx:
            odm.odm_import(ctx, source.content)
    before = _count(eng, TumourAssessment), _count(eng, Patient)
    with pytest.raises(ValidationError) as err, work(eng, user, today=LATER) as ctx:
        odm.odm_import(ctx, bad)
    assert names in str(err.value), str(err.value)
    assert (_count(eng, TumourAssessment), _count(eng, Patient)) == before
    eng.dispose()


# --- the allocation of later patients -------------------------------------------------------


def test_minimization_counts_imported_allocations_and_imports_stop_once_reluth_randomizes(
    target: Engine,
) -> None:
    """Two imported allocations to one arm in the same stratum: the next patient (p = 1) goes
    to the other arm; once reluth has randomized, an import is refused."""
    codes = ready_patients(target, 4, stratum=0)
    with work(target, STAT) as ctx:
        rnd.configure(ctx, "minimization", p=rnd.Decimal("1"))
        arms = ctx.protocol.arm_codes
    with work(target, INVESTIGATOR, today=DAY0, reason="imported from ODM X") as ctx:
        for code in codes[:2]:
            rnd.import_randomization(ctx, code, arms[0], RAND_AT, "ODM X")
    with work(target, STAT) as ctx:  # imported allocations do not fix reluth's method
        rnd.configure(ctx, "minimization", p=rnd.Decimal("1"))
    with work(target, INVESTIGATOR, today=DAY0) as ctx:
        result = rnd.randomize(ctx, codes[2], "req-3", rng=random.Random(1))
    assert result.arm == arms[1]
    with pytest.raises(Conflict) as err, work(target, INVESTIGATOR, today=DAY0) as ctx:
        rnd.import_randomization(ctx, codes[3], arms[0], RAND_AT, "ODM X")
    assert "before reluth randomizes" in str(err.value)
    assert _count(target, Randomization) == 3
    with read(target, STAT) as ctx:
        assert rnd.report(ctx).by_arm == {arms[0]: 2, arms[1]: 1}
        assert not integrity.check_allocations(ctx.session.connection(), None).findings


def test_an_imported_allocation_is_not_a_re_randomization(target: Engine) -> None:
    (code,) = ready_patients(target, 1)
    with work(target, INVESTIGATOR, today=DAY0) as ctx:
        arm = ctx.protocol.arm_codes[1]
        rnd.import_randomization(ctx, code, arm, RAND_AT, "ODM X")
    with pytest.raises(Conflict), work(target, INVESTIGATOR, today=DAY0) as ctx:
        rnd.import_randomization(ctx, code, ctx.protocol.arm_codes[0], RAND_AT, "ODM X")
    with pytest.raises(Conflict), work(target, INVESTIGATOR, today=DAY0) as ctx:
        rnd.randomize(ctx, code, "req-again")
    with read_session(target) as s:
        assert [r.arm for r in s.scalars(select(Randomization))] == [arm]


# --- another EDC's OIDs ---------------------------------------------------------------------


def test_another_edcs_oids_come_through_the_map(target: Engine) -> None:
    """An OpenClinica-style file (SE_, F_, IG_, I_ OIDs, coded values 1/0) for an included
    patient: medical history and a QLQ-C30 one answer an item, mapped onto reluth's forms."""
    (code,) = ready_patients(target, 1)
    content = (DATA / "openclinica-2021.xml").read_bytes().replace(b"C01-0001", code.encode())
    oid_map = (DATA / "openclinica-map.yaml").read_bytes()
    with pytest.raises(_Rollback), work(target, NURSE) as ctx:
        dry = odm.odm_import(ctx, content, dry_run=True, oid_map=oid_map)
        raise _Rollback
    assert dry.per_form == {"medical_history": 1, "qol": 1}
    assert dry.mapping_used["forms"]["F_QLQC30_V30 -> F.qol"] == 1
    assert dry.mapping_used["values"] == {"I.medical_history.ongoing": 1}
    assert _count(target, MedicalHistory) == 0  # the dry run wrote nothing
    with work(target, NURSE) as ctx:
        odm.odm_import(ctx, content, oid_map=oid_map)
    with read_session(target) as s:
        (history,) = s.scalars(select(MedicalHistory)).all()
        (qol,) = s.scalars(select(QolQuestionnaire)).all()
    assert history.condition == "hypertension" and history.ongoing is True
    assert (qol.instrument, qol.timepoint, qol.completed_on) == (
        "QLQ-C30",
        "QOL-W00",
        dt.date(2025, 3, 3),
    )
    assert qol.scores_json and '"1": 2' in qol.answers_json


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ((b"I_MEDHI_COND", b"I_MEDHI_SEVERITY"), "I_MEDHI_SEVERITY"),
        ((b'StudyEventOID="SE_QOLW00"', b'StudyEventOID="SE_QOLW99"'), "SE_QOLW99"),
        ((b'Value="1"/>\n', b'Value="7"/>\n'), "Value=7"),
    ],
)
def test_unmapped_oids_are_refused_naming_them(
    target: Engine, change: tuple[bytes, bytes], names: str
) -> None:
    (code,) = ready_patients(target, 1)
    content = (DATA / "openclinica-2021.xml").read_bytes().replace(b"C01-0001", code.encode())
    assert change[0] in content
    bad = content.replace(change[0], change[1], 1)
    oid_map = (DATA / "openclinica-map.yaml").read_bytes()
    with pytest.raises(ValidationError) as err, work(target, NURSE) as ctx:
        odm.odm_import(ctx, bad, oid_map=oid_map)
    assert names in str(err.value)
    assert _count(target, MedicalHistory) == _count(target, QolQuestionnaire) == 0


def test_a_foreign_file_without_a_map_is_refused_naming_the_form(target: Engine) -> None:
    content = (DATA / "openclinica-2021.xml").read_bytes()
    with pytest.raises(ValidationError) as err, work(target, NURSE) as ctx:
        odm.odm_import(ctx, content)
    assert "FormOID=F_MEDHIST_V10" in str(err.value) and "--map" in str(err.value)


def test_a_field_with_its_own_resource_names_a_policy_resource() -> None:
    """The registry's field-level resource (the arm) is one the policy knows, and the arm is
    arm-revealing: never granted to a blinded role."""
    from reluth.auth.policy import ARM_REVEALING, Resource
    from reluth.core.trial import Trial

    own = {
        (form.id, f.name): Resource(f.resource)
        for form in Trial.default().forms.forms
        for f in form.fields
        if f.resource is not None
    }
    assert own == {("randomization", "arm"): Resource.ARM}
    assert Resource.ARM in ARM_REVEALING


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (b"forms: {F_X: X.qol}", "map forms.F_X"),
        (b"colours: {}", "map section 'colours'"),
        (b"items: [I_A]", "map items"),
        (b": :", "not YAML"),
        (b"values: {F.qol: {'1': x}}", "map values.F.qol"),
    ],
)
def test_a_bad_map_is_refused_naming_the_entry(text: bytes, names: str) -> None:
    from reluth.odm import mapping

    with pytest.raises(ValidationError) as err:
        mapping.load(text)
    assert names in str(err.value)


def test_with_permuted_blocks_an_import_leaves_the_concealed_list_whole(target: Engine) -> None:
    """An imported allocation takes no slot; the next patient of the stratum takes the list's
    first slot, and every allocation check (with the allocation key) holds."""
    from reluth import sealing
    from reluth.randomization.models import AllocationSlot

    codes = ready_patients(target, 2, stratum=0)
    with work(target, STAT) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, "odm-migration-seed-0123456789", 4)
    with work(target, INVESTIGATOR, today=DAY0) as ctx:
        rnd.import_randomization(ctx, codes[0], ctx.protocol.arm_codes[0], RAND_AT, "ODM X")
        rnd.randomize(ctx, codes[1], "req-2")
    with read_session(target) as s:
        used = [(slot.position, slot.patient_id) for slot in s.scalars(select(AllocationSlot))
                if slot.patient_id is not None]  # fmt: skip
        second = s.scalars(select(Patient.id).where(Patient.patient_code == codes[1])).one()
    assert used == [(1, second)]
    with read(target, STAT) as ctx:
        key = sealing.configured_key(ctx.trial.settings)
        assert key is not None
        check = integrity.check_allocations(ctx.session.connection(), key)
        assert not check.findings and not check.not_done
        assert rnd.report(ctx).list_intact and rnd.report(ctx).total == 2
