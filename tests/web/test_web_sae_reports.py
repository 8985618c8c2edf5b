"""The SAE page: the site marks the ICH E2A criteria on the adverse-event form, sends the
initial report and a numbered follow-up; pharmacovigilance assesses each against the reference
safety information, sees the SUSAR clock, records the submission and downloads the CIOMS-like
PDF; the API does the same; a refused report keeps what was typed."""

from __future__ import annotations

import io
import re

from pypdf import PdfReader
from test_web_trial_flow import randomized_patient
from web_support import Site


def _sae(site: Site, code: str) -> int:
    r = site.client("inv1").post(
        f"/patients/{code}/adverse-events",
        data={
            "term": "Platelet count decreased",
            "grade": "4",
            "serious": "yes",
            "sae_hospitalisation": "yes",
            "relatedness": "probable",
            "outcome": "recovering",
            "onset_date": "2025-03-10",
            "awareness_date": "2025-03-11",
        },
    )
    assert r.status_code == 303, r.text
    page = site.client("inv1").get(f"/patients/{code}").text
    return int(re.findall(r'href="/adverse-events/(\d+)"', page)[0])


def test_reports_assessment_susar_and_pdf_through_the_pages(site: Site) -> None:
    code = randomized_patient(site)
    ae_id = _sae(site, code)
    inv = site.client("inv1")
    page = inv.get(f"/adverse-events/{ae_id}").text
    assert "Requires inpatient hospitalisation" in page and "Send initial report" in page
    assert re.search(r'name="sae_hospitalisation" value="yes" checked', page)

    refused = inv.post(
        f"/adverse-events/{ae_id}/reports",
        data={
            "narrative": "",
            "action_taken": "drug_interrupted",
            "outcome": "recovering",
            "treatment": "transfusion",
            "sae_hospitalisation": "yes",
        },
    )
    assert refused.status_code == 422 and "Narrative: this field is required" in refused.text
    assert 'value="transfusion"' in refused.text  # what was typed is kept

    sent = inv.post(
        f"/adverse-events/{ae_id}/reports",
        data={
            "narrative": "Admitted for platelet transfusion.",
            "action_taken": "drug_interrupted",
            "outcome": "recovering",
            "sae_hospitalisation": "yes",
        },
    )
    assert sent.status_code == 303 and "saved=initial" in sent.headers["location"]
    assert "Send follow-up report 1" in inv.get(f"/adverse-events/{ae_id}").text
    assert (
        inv.post(
            f"/adverse-events/{ae_id}/reports/0/assessment",
            data={"causality": "related", "expectedness": "unexpected"},
        ).status_code
        == 403
    )

    pv = site.client("pv")
    assessed = pv.post(
        f"/adverse-events/{ae_id}/reports/0/assessment",
        data={"causality": "related", "expectedness": "unexpected", "comment": "new signal"},
    )
    assert assessed.status_code == 303
    page = pv.get(f"/adverse-events/{ae_id}").text
    assert 'data-testid="susar"' in page and "15-day clock" in page
    assert (
        pv.post(
            f"/adverse-events/{ae_id}/reports/0/submission", data={"reference": "EV-42"}
        ).status_code
        == 303
    )
    assert "submitted (EV-42)" in pv.get(f"/adverse-events/{ae_id}").text

    pdf = pv.get(f"/adverse-events/{ae_id}/reports/0/cioms.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = " ".join(
        " ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf.content)).pages
    )
    assert code in text and "Admitted for platelet transfusion." in text and "SUSAR yes" in text
    # another centre's investigator does not see it
    assert site.client("inv2").get(f"/adverse-events/{ae_id}").status_code == 404
    assert (
        site.client("inv2").get(f"/adverse-events/{ae_id}/reports/0/cioms.pdf").status_code == 404
    )


def test_follow_up_and_assessment_through_the_api(site: Site) -> None:
    code = randomized_patient(site)
    ae_id = _sae(site, code)
    inv = site.client("inv1")
    path = f"/api/v1/adverse-events/{ae_id}/reports"
    body = {"narrative": "Initial.", "action_taken": "drug_interrupted", "outcome": "recovering"}
    first = inv.post(path, json=body)
    assert first.status_code == 201, first.text
    assert first.json()["label"] == "initial report"
    assert first.json()["seriousness"] == ["hospitalisation"]  # from the event
    follow = inv.post(path, json=body | {"seriousness": ["death"], "outcome": "fatal"})
    assert follow.status_code == 201 and follow.json()["sequence"] == 1
    bad = inv.post(path, json=body | {"seriousness": ["cancer"]})
    assert bad.status_code == 422 and bad.json()["field"] == "sae_report.seriousness"
    pv = site.client("pv")
    a = pv.post(f"{path}/1/assessment", json={"causality": "related", "expectedness": "unexpected"})
    assert a.status_code == 201 and a.json()["susar"] is True
    assert a.json()["susar_due_before"] is not None
    assert pv.post(path, json=body).status_code == 403  # pharmacovigilance does not report
    assert [r["label"] for r in pv.get(path).json()] == ["initial report", "follow-up report 1"]
    assert pv.get(f"{path}/1/cioms.pdf").content.startswith(b"%PDF")
