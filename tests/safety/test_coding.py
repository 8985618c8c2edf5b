"""Coding of adverse events: the shipped CTCAE v5.0 dictionary (837 terms, 26 SOCs, MedDRA
codes agreeing with the laboratory grading file), the search as typed, the codes stored with an
AE, an uncoded term left for the coder, recoding by the coder only and with a reason, and ADAE
carrying AETERM, AEDECOD, AESOC and AELLTCD."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import yaml
from sqlalchemy import Engine, select
from tests.store.storekit import INVESTIGATOR, add_account, ready_patients, work

from reluth.auth.roles import Role
from reluth.db.audit import AuditLog
from reluth.errors import PermissionDenied, ValidationError
from reluth.safety import coding, records
from reluth.safety import service as safety
from reluth.web.app import prepare_database

CODER = "coder1"


def test_the_dictionary_is_the_whole_ctcae_v5_list() -> None:
    d = coding.ctcae()
    assert len(d.terms) == 837 and len(d.socs) == 26
    assert d.version.startswith("5.0") and d.meddra_version == "20.1" and "NCI" in d.source
    assert len({t.meddra_code for t in d.terms}) == 837
    assert all(len(t.meddra_code) == 8 and t.meddra_code.startswith("100") for t in d.terms)
    assert d.by_term["nausea"] == coding.Term("Nausea", "10028813", "Gastrointestinal disorders")


def test_codes_agree_with_the_laboratory_grading_file() -> None:
    labs = yaml.safe_load((coding.DATA.parent.parent / "ctcae_v5_labs.yaml").read_text())
    found = []

    def walk(x: object) -> None:
        if isinstance(x, dict):
            if "term" in x and ("meddra" in x or "meddra_code" in x):
                found.append((x["term"], str(x.get("meddra") or x.get("meddra_code"))))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(labs)
    assert len(found) >= 10
    for term, code in found:
        assert coding.lookup(term) is not None and coding.lookup(term).meddra_code == code, term  # type: ignore[union-attr]


def test_search_as_typed() -> None:
    assert coding.search("n") == []  # too short
    assert [t.term for t in coding.search("naus")] == ["Nausea"]
    platelets = [t.term for t in coding.search("PLATELET")]
    assert platelets[0] == "Platelet count decreased"
    words = [t.term for t in coding.search("count decreased")]
    assert "Neutrophil count decreased" in words and "Platelet count decreased" in words
    assert len(coding.search("disorders", limit=5)) == 5
    assert coding.search("nausée") == []


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = prepare_database(db_url)
    ready_patients(eng, 0, centres=("C01",))
    add_account(eng, CODER, Role.CODER)
    yield eng
    eng.dispose()


def _ae(engine: Engine, term: str, start: int) -> int:
    (code,) = ready_patients(engine, 1, centres=("C01",), start=start)
    with work(engine, INVESTIGATOR, today=dt.date(2025, 3, 11)) as ctx:
        return records.record_adverse_event(
            ctx,
            {
                "patient_id": code,
                "term": term,
                "grade": 2,
                "serious": False,
                "relatedness": "possible",
                "outcome": "recovering",
                "onset_date": "2025-03-09",
            },
        ).id


def test_a_ctcae_term_is_stored_with_its_codes_and_another_left_uncoded(engine: Engine) -> None:
    coded = _ae(engine, " nausea ", 10)
    uncoded = _ae(engine, "nausée", 20)
    with work(engine, CODER) as ctx:
        rows = {r.id: r for r in safety.coding_worklist(ctx)}
    assert (rows[coded].meddra_term, rows[coded].meddra_llt_code, rows[coded].meddra_soc) == (
        "Nausea",
        "10028813",
        "Gastrointestinal disorders",
    )
    assert rows[coded].coding_dictionary == "CTCAE v5.0 / MedDRA 20.1"
    assert rows[uncoded].meddra_llt_code is None and rows[uncoded].term == "nausée"
    with work(engine, CODER) as ctx:
        assert [r.id for r in safety.coding_worklist(ctx, uncoded_only=True)] == [uncoded]


def test_the_coder_recodes_with_a_reason_and_a_correction_keeps_the_codes(engine: Engine) -> None:
    ae_id = _ae(engine, "nausée", 30)
    with work(engine, INVESTIGATOR, reason="typo") as ctx, pytest.raises(PermissionDenied):
        safety.recode_adverse_event(ctx, ae_id, "10028813")
    with work(engine, CODER) as ctx, pytest.raises(ValidationError, match="reason"):
        safety.recode_adverse_event(ctx, ae_id, "10028813")
    with work(engine, CODER, reason="French verbatim") as ctx:
        with pytest.raises(ValidationError) as err:
            safety.recode_adverse_event(ctx, ae_id, "1002881")
        assert err.value.field == "llt_code"
        with pytest.raises(ValidationError) as err:
            safety.recode_adverse_event(ctx, ae_id, "10099999", meddra_term="Something")
        assert err.value.field == "soc"
        row = safety.recode_adverse_event(ctx, ae_id, "10028813", pt_code="10028813")
        assert (row.meddra_term, row.meddra_soc, row.meddra_pt_code) == (
            "Nausea",
            "Gastrointestinal disorders",
            "10028813",
        )
    with work(engine, INVESTIGATOR, today=dt.date(2025, 3, 11), reason="from source") as ctx:
        row = ctx.session.get(records.AdverseEvent, ae_id)
        code = ctx.session.get(records.patients.Patient, row.patient_id).patient_code
        safety.edit_adverse_event(ctx, code, ae_id, {"grade": 3})  # the term stays: codes stay
        assert (row.meddra_llt_code, row.meddra_pt_code) == ("10028813", "10028813")
        safety.edit_adverse_event(ctx, code, ae_id, {"term": "Vomiting"})  # a new term: recoded
        assert (row.meddra_term, row.meddra_llt_code, row.meddra_pt_code) == (
            "Vomiting",
            "10047700",
            None,
        )
    with work(engine, CODER) as ctx:
        audit = ctx.session.scalars(
            select(AuditLog)
            .where(
                AuditLog.table_name == "adverse_events",
                AuditLog.record_id == str(ae_id),
                AuditLog.field == "meddra_llt_code",
                AuditLog.action == "update",
            )
            .order_by(AuditLog.seq)
        ).first()
        assert audit is not None
    assert (audit.old_value, audit.new_value, audit.reason) == (
        "null",
        '"10028813"',
        "French verbatim",
    )
    assert audit.username == CODER
