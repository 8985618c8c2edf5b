"""The blank annotated CRF, read back from the PDF: every registered form with every field's
label, name and storage annotation, its code lists and missing-data codes, and the visits where
the form is due — generated from the registry by `reluth forms blank`, the page and the API."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pypdf
import pytest
from sqlalchemy import Engine
from tests.store.storekit import NURSE, add_users, cli_token
from typer.testing import CliRunner

from reluth.cli import app
from reluth.forms import crf_service
from reluth.forms.registry import load_registry
from reluth.protocol.definition import load_protocol
from reluth.records.casebook import pdf_of

REGISTRY = load_registry()


def _flat(content: bytes) -> str:
    """The PDF's text without white space (table cells wrap anywhere)."""
    reader = pypdf.PdfReader(io.BytesIO(content))
    return "".join("".join(page.extract_text() or "" for page in reader.pages).split())


def _has(flat: str, text: str) -> bool:
    return "".join(text.split()) in flat


def test_every_form_and_field_is_in_the_blank_crf_pdf() -> None:
    protocol = load_protocol()
    crf = crf_service.blank_crf(
        REGISTRY, protocol, "tester", dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    )
    flat = _flat(pdf_of(crf_service.render_html(crf)))
    missing = []
    for form in crf.forms:
        for text in (form.label, f"[{form.id}·{form.table}]"):
            if not _has(flat, text):
                missing.append((form.id, text))
        for f in form.fields:
            for text in (f.label, f"{f.name}→{f.annotation}", *f.codes):
                if not _has(flat, text):
                    missing.append((form.id, text))
            for code, meaning in f.missing:
                if not _has(flat, f"{code}({meaning})"):
                    missing.append((form.id, code))
            if f.unit and not _has(flat, f.unit):
                missing.append((form.id, f.unit))
    assert not missing
    # the storage annotation and the visits where a form is due, as the registry says
    lab = next(f for f in crf.forms if f.id == "lab")
    assert lab.visits  # the laboratory visits of the schedule
    assert _has(flat, "Dueatvisits:" + ",".join(lab.visits))
    platelets_range = next(f for f in lab.fields if f.range)
    assert _has(flat, platelets_range.range)
    baseline = next(f for f in crf.forms if f.id == "screening")
    assert baseline.visits == ("BASELINE",)
    assert _has(flat, "lesions→lesion_measurements.diameter_mm")


@pytest.fixture
def cli_db(engine: Engine, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RELUTH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("RELUTH_TOKEN", raising=False)
    return store_url


def test_reluth_forms_blank_writes_the_pdf(engine: Engine, cli_db: str, tmp_path: Path) -> None:
    add_users(engine)
    env = {"RELUTH_DATABASE_URL": cli_db, "RELUTH_TOKEN": cli_token(engine, NURSE)}
    out = tmp_path / "crf" / "blank.pdf"
    done = CliRunner().invoke(app, ["forms", "blank", "--out", str(out)], env=env)
    assert done.exit_code == 0, done.output
    flat = _flat(out.read_bytes())
    assert all(_has(flat, form.label) for form in REGISTRY.forms)
    assert _has(flat, "drug_name→concomitant_medications.drug_name")
