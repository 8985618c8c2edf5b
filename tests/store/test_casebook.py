"""The casebook PDF: one patient with every kind of record, printed through the service on
each backend; the text extracted from the PDF holds every value, the arm only for readers of
the arm, and each casebook is an audit event."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdf
import pytest
from sqlalchemy import Engine, select
from tests.store.storekit import (
    INVESTIGATOR,
    NURSE,
    STAT,
    add_account,
    at,
    ready_patients,
    work,
)

from reluth.auth import policy
from reluth.auth.policy import Action, Resource
from reluth.auth.roles import Role
from reluth.db.audit import AuditLog
from reluth.db.session import read_session
from reluth.dosimetry import service as dosimetry
from reluth.errors import NotFound, PermissionDenied
from reluth.i18n import set_locale, use_locale
from reluth.patients import service as patients
from reluth.qol.service import record_questionnaire
from reluth.queries import service as queries
from reluth.randomization import service as rnd
from reluth.records import casebook
from reluth.records.views import qol_timepoints
from reluth.response import service as review
from reluth.response.records import record_assessment
from reluth.safety import sae
from reluth.safety import service as labs
from reluth.safety.records import record_adverse_event
from reluth.treatment import service as treatment

RAND_AT = dt.datetime(2025, 3, 5, 10, 0, tzinfo=dt.UTC)
LATER = dt.date(2026, 1, 1)  # "today" of the follow-up records
DM, MONITOR, REVIEWER, PHYSICIST, PV = "dm1", "mon1", "rev1", "phys1", "pv1"
AE_TEXT = "Nausea and vomiting on day 10, admitted overnight for IV fluids"
QUESTION = "Platelet count differs from the source document page 4"
ANSWER = "Transcription corrected from the source document"
LAB_REASON = "transcription error, source document page 4"


def _patient_with_every_record(engine: Engine) -> dict[str, Any]:
    """A randomized patient with screening, inclusion, cycles, pre-randomization, a visit, a
    corrected lab, an SAE received by pharmacovigilance, QoL, local and central reads with the
    stored evaluation, dosimetry, an answered query, a death and the end of study."""
    code, other = ready_patients(engine, 2)
    for name, role, centres in (
        (DM, Role.DATA_MANAGER, ()),
        (MONITOR, Role.MONITOR, ("C01", "C02")),
        (REVIEWER, Role.CENTRAL_REVIEWER, ()),
        (PHYSICIST, Role.MEDICAL_PHYSICIST, ()),
        (PV, Role.PHARMACOVIGILANCE, ()),
    ):
        add_account(engine, name, role, centres)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, "casebook-test-seed-0123456789", 4)
    with work(engine, INVESTIGATOR, trial=at(RAND_AT)) as ctx:
        arm = rnd.randomize(ctx, code, f"req-{code}").arm
    day0 = RAND_AT.date()
    with work(engine, NURSE, today=LATER) as ctx:
        schedule = treatment.visit_schedule(
            ctx.session, patients.find_patient(ctx.session, code), LATER, ctx.protocol
        )
        visit = next(s.visit for s in schedule if s.visit.kind != "treatment")
        visit_code = visit.code
        treatment.record_visit(ctx, code, visit_code, visit.target_date)
        lab = labs.record_lab(
            ctx,
            code,
            {
                "test": "platelets",
                "value": "123000",
                "unit": "/mm3",
                "lln": "150000",
                "date": (day0 + dt.timedelta(days=20)).isoformat(),
            },
        )
        ae = record_adverse_event(
            ctx,
            {
                "patient_id": code,
                "term": "Vomiting",
                "grade": 3,
                "serious": True,
                "relatedness": "probable",
                "outcome": "recovered",
                "onset_date": (day0 + dt.timedelta(days=10)).isoformat(),
                "resolution_date": (day0 + dt.timedelta(days=12)).isoformat(),
                "awareness_date": (day0 + dt.timedelta(days=10)).isoformat(),
                "description": AE_TEXT,
            },
        )
        timepoint = qol_timepoints(ctx.protocol)[0]
        items = {str(i): 2 for i in range(1, 31)}
        record_questionnaire(
            ctx,
            {
                "patient_id": code,
                "instrument": "QLQ-C30",
                "timepoint": timepoint,
                "completed_on": (day0 - dt.timedelta(days=2)).isoformat(),
                "items": items,
            },
        )
        record_assessment(
            ctx,
            {
                "patient_id": code,
                "assessment_date": (day0 + dt.timedelta(days=55)).isoformat(),
                "timepoint": "local-w8",
                "reader": "local",
                "modality": "MRI",
                "overall_response": "SD",
                "lesions": [
                    {"lesion_id": "T1", "kind": "target", "organ": "pancreas", "diameter_mm": 77}
                ],
            },
        )
    with work(engine, NURSE, today=LATER, reason=LAB_REASON) as ctx:
        labs.edit_lab(ctx, code, lab.id, {"value": "132000", "lln": "150000"})
    with work(engine, PV, today=LATER) as ctx:
        sae.acknowledge_receipt(ctx, ae.id)
    with work(engine, REVIEWER, today=LATER) as ctx:
        baseline = [{"id": "T1", "organ": "liver", "kind": "target", "diameter_mm": "81"}]
        review.record_central_read(
            ctx, code, "baseline", day0 - dt.timedelta(days=9), "CT", baseline, "no"
        )
        review.record_central_read(
            ctx,
            code,
            "week8",
            day0 + dt.timedelta(days=56),
            "CT",
            [{"id": "T1", "diameter_mm": "53"}],
            "no",
        )
    with work(engine, PHYSICIST, today=LATER) as ctx:
        dosimetry.store_cycle(
            ctx,
            code,
            1,
            [
                {
                    "region": "kidneys",
                    "quantity": "absorbed_dose",
                    "value": 2.875,
                    "sd": 0.2,
                    "unit": "Gy",
                    "method": "S-value",
                }
            ],
            case_id="CASE-CB-1",
        )
    with work(engine, MONITOR, today=LATER) as ctx:
        query = queries.open_query(ctx, code, f"lab {lab.id} value", QUESTION)
    with work(engine, NURSE, today=LATER, reason=queries.answer_reason(query.id)) as ctx:
        queries.answer_query(ctx, query.id, ANSWER)
    with work(engine, NURSE, today=LATER) as ctx:
        patients.record_death(ctx, code, day0 + dt.timedelta(days=250), "toxicity", "sepsis")
        patients.record_end_of_study(ctx, code, day0 + dt.timedelta(days=250), "death")
    return {"code": code, "other": other, "arm": arm, "visit": visit_code, "lab": lab.id}


def _text(content: bytes) -> str:
    """The PDF's text without white space (table cells wrap anywhere)."""
    reader = pypdf.PdfReader(io.BytesIO(content))
    return "".join("".join(page.extract_text() or "" for page in reader.pages).split())


def _has(flat: str, value: object) -> bool:
    return "".join(str(value).split()) in flat


def _print(engine: Engine, username: str, code: str) -> casebook.CasebookFile:
    """A casebook as the adapters hand it out: built, then recorded in the audit trail."""
    with work(engine, username, today=LATER) as ctx:
        file = casebook.casebook_pdf(ctx, code)
    with work(engine, username, today=LATER) as ctx:
        casebook.record_casebook(ctx, file)
    return file


def test_the_casebook_holds_every_record_the_reader_may_read(engine: Engine) -> None:
    made = _patient_with_every_record(engine)
    code = made["code"]
    file = _print(engine, DM, code)
    assert file.content.startswith(b"%PDF-") and file.filename == f"{code}-casebook.pdf"
    flat = _text(file.content)
    with work(engine, DM, today=LATER) as ctx:
        book = casebook.casebook(ctx, code)
    screening = book.screenings[0]
    expected: list[object] = [
        f"Casebook—patient{code}",
        "Registration",
        book.timeline.centre,
        book.protocol_version,
        # screening: verdict, stratum, every criterion with its text, the values entered
        screening.stratum,
        *(c.id for c in screening.criteria),
        screening.criteria[0].text,
        screening.criteria[-1].reason,
        "labs.platelets.value",
        # inclusion, cycles, pre-randomization, randomization with the arm
        "2024-10-28",
        "2024-10-30",
        "L1",
        "L2",
        "2024-12-30",
        "2025-02-24",
        "2025-03-0510:00UTC",
        f"Arm{made['arm']}",
        # visits, labs (corrected value), AE/SAE and its receipt, QoL
        made["visit"],
        "132000/mm3",
        "Vomiting",
        AE_TEXT,
        PV,
        book.timeline.qol[0].timepoint,  # type: ignore[index]
        # local and central reads, the stored RECIST evaluation
        "local-w8",
        "pancreas",
        "77",
        "week8",
        "81",
        "53",
        "Bestoverallresponse",
        "PR",
        # dosimetry, the query and its answer, death and end of study
        "CASE-CB-1",
        "2.875",
        QUESTION,
        ANSWER,
        "sepsis",
        "toxicity",
        # the audit appendix: the correction with its reason, in plain words
        "Appendix:audittrail",
        LAB_REASON,
        "Value:123000→132000",
        # each record by its form's label and number, never the table's name
        f"Laboratoryresult#{made['lab']}",
    ]
    missing = [v for v in expected if not _has(flat, v)]
    assert missing == []
    assert book.central_evaluation is not None and book.central_evaluation.outcome is not None
    assert book.dosimetry is not None and book.audit is not None and book.queries is not None


#: Headings and labels of the English casebook a French reader must not meet.
ENGLISH_ONLY = (
    "Casebook—patient",
    "Registration",
    "Printedby",
    "Laboratoryresults",
    "Adverseeventsand",
    "Appendix:audittrail",
    "Bestoverallresponse",
    "Diseasecontrolatmonth6",
    "Deathandendofstudy",
    "Valuesentered",
    "Relatednessto",
    "ofpage",
    "pageof",
    "notrecorded",
    "landmark",
    "stabledisease",
    "partialresponse",
    "bestofCR",
    "daysafterrandomization",
)


def test_a_french_reader_gets_the_casebook_in_french(engine: Engine) -> None:
    """Issue 18: headings, labels, vocabulary (RECIST responses, AE outcome and relatedness,
    roles), the month-6 reason, days as dd/mm/yyyy and numbers with a decimal comma, in the
    language of the person asking; the same patient in English is as before."""
    made = _patient_with_every_record(engine)
    code = made["code"]
    with use_locale("fr"):
        file = _print(engine, DM, code)
    flat = _text(file.content)
    expected = [
        f"Cahierd’observation—patient{code}",
        "Enregistrement",
        "Imprimépar",
        "Résultatsbiologiques",
        "Événementsindésirablesetévénementsindésirablesgraves",
        "Annexe:pisted’audit",
        "Meilleureréponseglobale",
        "réponsepartielle",
        "Contrôledelamaladieà6mois",
        "aucuneévaluationdanslafenêtred’évaluationà6mois",
        "05/03/202510:00UTC",  # randomized (dd/mm/yyyy)
        "28/10/2024",  # inclusion
        "2,875",  # the kidneys' absorbed dose, decimal comma
        "132000/mm3",  # grouped thousands (a narrow space, removed with the white space)
        "résolu",  # AE outcome "recovered"
        "probable",
        "Vomiting",  # the CTCAE term as recorded
        LAB_REASON,  # free text as typed
        "Page1sur",
        # the BOR rule from its message key (the stored English stays for the datasets)
        "meilleureréponseparmiRC>RP>MS",
        "comptentàpartirde",
        # the audit appendix: the record by its form's label and number, the field by its label
        f"Résultatbiologiquen°{made['lab']}",
        "Valeur:123000→132000",
    ]
    missing = [v for v in expected if not _has(flat, v)]
    assert missing == []
    met = [word for word in ENGLISH_ONLY if _has(flat, word)]
    assert met == []
    # the stored names of the audit rows are not shown to people
    assert not _has(flat, "lab_results") and not _has(flat, "value:123000")
    with use_locale("en"):
        english = _text(_print(engine, DM, code).content)
    assert _has(english, "Casebook—patient") and _has(english, "2025-03-0510:00UTC")
    assert _has(english, "2.875") and not _has(english, "Enregistrement")


def test_each_casebook_is_an_audit_event_in_the_patients_history(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1, assessed=False)
    file = _print(engine, NURSE, code)
    with read_session(engine) as s:
        rows = list(s.scalars(select(AuditLog).where(AuditLog.table_name == casebook.AUDIT_TABLE)))
    assert [(r.action, r.record_id, r.username) for r in rows] == [("casebook", code, NURSE)]
    detail = json.loads(rows[0].new_value or "{}")
    assert detail["sha256"] == file.sha256 and detail["file"] == f"{code}-casebook.pdf"
    # The next casebook's appendix lists the first download.
    flat = _text(_print(engine, NURSE, code).content)
    assert _has(flat, f"Casebook#{code}") and _has(flat, file.sha256[:16])


def test_a_reader_without_the_arm_gets_no_arm(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy decides: take the arm (and what reveals it) from the data manager, and the
    same service prints the same patient without the arm, cycles, visits or dosimetry."""
    made = _patient_with_every_record(engine)
    code, arm = made["code"], made["arm"]
    with work(engine, DM, today=LATER) as ctx:
        assert f'<dd class="arm">{arm}</dd>' in casebook.render_html(casebook.casebook(ctx, code))
    blinded = frozenset(
        g for g in policy.POLICY[Role.DATA_MANAGER] if g[1] not in policy.ARM_REVEALING
    )
    monkeypatch.setitem(policy.POLICY, Role.DATA_MANAGER, blinded)
    file = _print(engine, DM, code)
    flat = _text(file.content)
    with work(engine, DM, today=LATER) as ctx:
        book = casebook.casebook(ctx, code)
    assert book.timeline.arm is None and book.dosimetry is None and book.timeline.cycles is None
    assert not _has(flat, f"Arm{arm}") and not _has(flat, "CASE-CB-1")
    assert not _has(flat, "Lutatheraadministrations")
    assert _has(flat, "Randomized") and _has(flat, AE_TEXT)


ROLES_WHO_PRINT = {
    Role.INVESTIGATOR,
    Role.RESEARCH_NURSE,
    Role.MONITOR,
    Role.DATA_MANAGER,
    Role.MEDICAL_PHYSICIST,
    Role.PHARMACOVIGILANCE,
    Role.STATISTICIAN,
}


def test_who_may_print_a_casebook_is_the_policys_read_patient() -> None:
    allowed = {r for r in Role if policy.allowed(r, Action.READ, Resource.PATIENT)}
    assert allowed == ROLES_WHO_PRINT
    assert Role.CENTRAL_REVIEWER not in allowed and Role.ADMIN not in allowed


def test_the_blinded_reviewer_and_the_admin_are_refused_and_other_centres_not_found(
    engine: Engine,
) -> None:
    (code,) = ready_patients(engine, 1)
    add_account(engine, REVIEWER, Role.CENTRAL_REVIEWER)
    add_account(engine, "nurse-c02", Role.RESEARCH_NURSE, ("C02",))
    for who in (REVIEWER, "admin1"):
        with pytest.raises(PermissionDenied):
            _print(engine, who, code)
    with pytest.raises(NotFound):
        _print(engine, "nurse-c02", code)
    with read_session(engine) as s:
        assert not list(
            s.scalars(select(AuditLog).where(AuditLog.table_name == casebook.AUDIT_TABLE))
        )


def test_sections_follow_the_policy_for_each_reader(engine: Engine) -> None:
    made = _patient_with_every_record(engine)
    code = made["code"]
    seen: dict[str, dict[str, bool]] = {}
    for who in (NURSE, PHYSICIST, PV, STAT, DM):
        with work(engine, who, today=LATER) as ctx:
            b = casebook.casebook(ctx, code)
        seen[who] = {
            "labs": b.labs is not None,
            "aes": b.adverse_events is not None,
            "central": b.central_reads is not None,
            "dosimetry": b.dosimetry is not None,
            "queries": b.queries is not None,
            "audit": b.audit is not None,
            "arm": b.timeline.arm is not None,
        }
    assert seen[PHYSICIST] == {
        "labs": False,
        "aes": False,
        "central": False,
        "dosimetry": True,
        "queries": False,
        "audit": False,
        "arm": True,
    }
    assert seen[PV]["aes"] and seen[PV]["audit"] and not seen[PV]["labs"]
    assert seen[STAT]["central"] and seen[STAT]["dosimetry"] and not seen[STAT]["queries"]
    assert all(seen[DM].values())
    assert seen[NURSE]["queries"] and seen[NURSE]["central"] and seen[NURSE]["dosimetry"]
    assert Decimal("7.4") in {c["activity_gbq"] for c in (b.timeline.cycles or [])}


def test_the_command_line_prints_one_casebook_or_all_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reluth casebook C07-0001 --out FILE.pdf` and `--all --out DIR` as the logged-in nurse
    (her centre's patients only), each an audit event; no patient or both is one message."""
    from test_store_cli import bootstrap, login, run
    from typer.testing import CliRunner

    from reluth.db.engine import make_engine

    monkeypatch.setenv("RELUTH_DATABASE_URL", f"sqlite:///{tmp_path / 'trial.db'}")
    monkeypatch.setenv("RELUTH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("RELUTH_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    cli = CliRunner()
    bootstrap(cli, tmp_path)
    run(cli, "centres", "add", "C07", "CHU Example")
    run(cli, "centres", "add", "C08", "CHU Other")
    engine = make_engine(f"sqlite:///{tmp_path / 'trial.db'}")
    ready_patients(engine, 3, centres=("C07", "C07", "C08"))
    add_account(engine, "nurse7", Role.RESEARCH_NURSE, ("C07",))
    login(cli, "nurse7")
    out = run(cli, "casebook", "C07-0001", "--out", str(tmp_path / "one.pdf"))
    assert "one.pdf" in out and (tmp_path / "one.pdf").read_bytes().startswith(b"%PDF-")
    assert "C07-0001" in _text((tmp_path / "one.pdf").read_bytes())
    run(cli, "casebook", "--all", "--out", str(tmp_path / "all"))
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        "C07-0001-casebook.pdf",
        "C07-0002-casebook.pdf",
    ]
    with read_session(engine) as s:
        events = list(
            s.scalars(select(AuditLog).where(AuditLog.table_name == casebook.AUDIT_TABLE))
        )
    assert [(e.record_id, e.username) for e in events] == [
        ("C07-0001", "nurse7"),
        ("C07-0001", "nurse7"),
        ("C07-0002", "nurse7"),
    ]
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")  # a French batch: every casebook in French
    try:
        out = run(cli, "casebook", "--all", "--out", str(tmp_path / "fr"))
    finally:
        set_locale(None)
        monkeypatch.setenv("LANG", "C.UTF-8")
    assert "2 cahiers d’observation écrits dans" in out
    for name in ("C07-0001", "C07-0002"):
        flat = _text((tmp_path / "fr" / f"{name}-casebook.pdf").read_bytes())
        assert _has(flat, f"Cahierd’observation—patient{name}") and not _has(flat, "Registration")
    assert "not found" in run(cli, "casebook", "C08-0003", "--out", "x.pdf", code=5)
    assert "patient ID or --all" in run(cli, "casebook", "--out", "x.pdf", code=2)
    assert "patient ID or --all" in run(cli, "casebook", "C07-0001", "--all", "--out", "d", code=2)
    engine.dispose()
