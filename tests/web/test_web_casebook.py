"""The casebook PDF from the patient page and the API: the link, the file (PDF, named, its
SHA-256 in a header and in the audit event), refusals (403 for the blinded reviewer and the
admin, 404 across centres, 422 for a malformed ID) and the print stylesheet."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator

import pypdf
import pytest
from sqlalchemy import select
from web_support import Site, make_site, ready_patients

from reluth.db.audit import AuditLog
from reluth.db.session import read_session
from reluth.randomization import service as rnd


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = make_site(f"sqlite:///{tmp_path_factory.mktemp('casebook') / 'web.db'}")
    codes = ready_patients(site, 2)
    with site.as_user("stat") as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, "casebook-web-seed-0123456789", 4)
    with site.as_user("inv1") as ctx:
        rnd.randomize(ctx, codes[0], f"req-{codes[0]}")
    yield site
    site.app.state.engine.dispose()


def _events(site: Site) -> list[AuditLog]:
    with read_session(site.app.state.engine) as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.table_name == "casebooks")))


def _text(content: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(content))
    return "".join("".join(p.extract_text() or "" for p in reader.pages).split())


def test_the_patient_page_links_the_casebook_and_the_page_hands_it_out(trial: Site) -> None:
    client = trial.client("nurse1")
    page = client.get("/patients/C01-0001")
    assert 'href="/patients/C01-0001/casebook.pdf"' in page.text
    before = len(_events(trial))
    response = client.get("/patients/C01-0001/casebook.pdf")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert 'filename="C01-0001-casebook.pdf"' in response.headers["content-disposition"]
    digest = hashlib.sha256(response.content).hexdigest()
    assert response.headers["x-content-sha256"] == digest
    flat = _text(response.content)
    assert "Casebook—patientC01-0001" in flat and "Appendix:audittrail" in flat
    events = _events(trial)
    assert len(events) == before + 1
    assert events[-1].username == "nurse1" and events[-1].record_id == "C01-0001"
    assert json.loads(events[-1].new_value or "{}")["sha256"] == digest


def test_the_api_hands_out_the_same_casebook_to_a_token(trial: Site) -> None:
    token = trial.token("dm")
    client = trial.client()
    response = client.get(
        "/api/v1/patients/C01-0001/casebook.pdf", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"%PDF-")
    assert _events(trial)[-1].username == "dm"


@pytest.mark.parametrize("user", ["rev", "admin"])
def test_roles_that_do_not_read_patients_are_refused(trial: Site, user: str) -> None:
    before = len(_events(trial))
    client = trial.client(user)
    assert client.get("/patients/C01-0001/casebook.pdf").status_code == 403
    assert client.get("/api/v1/patients/C01-0001/casebook.pdf").status_code == 403
    assert len(_events(trial)) == before


def test_a_patient_of_another_centre_is_not_found_and_a_bad_id_is_named(trial: Site) -> None:
    client = trial.client("inv1")  # C01 only; C02-0002 exists
    assert client.get("/api/v1/patients/C02-0002/casebook.pdf").status_code == 404
    assert client.get("/api/v1/patients/C99-9999/casebook.pdf").status_code == 404
    bad = client.get("/api/v1/patients/not-a-code/casebook.pdf")
    assert bad.status_code == 422 and "code" in bad.text


def test_every_page_has_a_print_stylesheet(trial: Site) -> None:
    css = trial.client("nurse1").get("/static/app.css").text
    printed = css[css.index("@media print") :]
    for rule in ("header.top", "nav", "button", "break-before:page", "color:#000"):
        assert rule in printed, rule
