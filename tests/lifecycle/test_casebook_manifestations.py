"""The casebook PDF shows, per form instance, its source-data verifications (who, when, field
or whole form, in force or cleared by a later change) and its electronic signatures (printed
name, meaning, when, valid or not) — read back from the PDF's text."""

from __future__ import annotations

import io

import pypdf
from sqlalchemy import Engine
from tests.store.storekit import (
    ADMIN,
    INVESTIGATOR,
    NURSE,
    PASSWORD,
    add_account,
    read,
    ready_patients,
    work,
)

from reluth.auth.roles import Role
from reluth.core.trial import Trial
from reluth.lifecycle import sdv_service
from reluth.lifecycle import signature_service as signing
from reluth.records import casebook
from reluth.safety import service as safety

LAB = {"test": "alt", "value": "30", "unit": "U/L", "date": "2025-03-01", "uln": "40"}
MONITOR = "mon9"


def _flat(content: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(content))
    return "".join("".join(page.extract_text() or "" for page in reader.pages).split())


def test_casebook_prints_sdv_and_signatures_per_form(engine: Engine) -> None:
    (code,) = ready_patients(engine, 1)
    add_account(engine, MONITOR, Role.MONITOR, ("C01",))
    with work(engine, ADMIN) as ctx:
        signing.designate_principal_investigator(ctx, INVESTIGATOR, "C01", "Dr Anne Martin")
    with work(engine, NURSE) as ctx:
        lab = safety.record_lab(ctx, code, dict(LAB)).id
    with work(engine, MONITOR) as ctx:
        sdv_service.verify(ctx, code, "lab_results", lab, "value")
    with work(engine, INVESTIGATOR) as ctx:
        signing.sign(ctx, code, "form", PASSWORD, table="lab_results", record_id=lab)
    with read(engine, INVESTIGATOR) as ctx:
        book = casebook.casebook(ctx, code)
        flat = _flat(casebook.casebook_pdf(ctx, code).content)
    assert book.manifestations is not None
    (entry,) = [m for m in book.manifestations if m.record == f"lab_results/{lab}"]
    assert entry.form == "Laboratory result"
    assert [v.verified_by for v in entry.sdv] == [MONITOR]
    assert [s.printed_name for s in entry.signatures] == ["Dr Anne Martin"]
    for text in (
        "Source-data verification and signatures",
        f"{entry.form}·lab_results/{lab}",
        f"field:value{MONITOR}",
        "DrAnneMartin",
        "".join(Trial.default().forms.signature_meaning("form").split()),
        "valid",
    ):
        assert "".join(text.split()) in flat, text
