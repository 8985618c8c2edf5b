"""The AE form's CTCAE v5.0 term search as typed (htmx partial and API), the coder's page and
recoding through the page and the API."""

from __future__ import annotations

import re

from test_web_trial_flow import randomized_patient
from web_support import Site


def test_term_search_as_typed(site: Site) -> None:
    inv = site.client("inv1")
    code = randomized_patient(site)
    page = inv.get(f"/patients/{code}").text
    assert 'hx-get="/ctcae/terms"' in page and 'list="ctcae-terms"' in page
    options = inv.get("/ctcae/terms", params={"term": "platel"}, headers={"HX-Request": "true"})
    assert options.status_code == 200
    assert (
        '<option value="Platelet count decreased">Investigations — MedDRA 10035528' in options.text
    )
    api = inv.get("/api/v1/ctcae/terms", params={"q": "naus"}).json()
    assert api == [
        {"term": "Nausea", "meddra_code": "10028813", "soc": "Gastrointestinal disorders"}
    ]
    assert site.client().get("/api/v1/ctcae/terms", params={"q": "naus"}).status_code == 401


def test_the_coder_codes_an_uncoded_term(site: Site) -> None:
    code = randomized_patient(site)
    inv = site.client("inv1")
    r = inv.post(
        f"/patients/{code}/adverse-events",
        data={
            "term": "nausée",
            "grade": "1",
            "relatedness": "possible",
            "outcome": "recovering",
            "onset_date": "2025-03-10",
        },
    )
    assert r.status_code == 303, r.text
    coder = site.client("coder")
    page = coder.get("/coding").text
    ae_id = int(re.findall(r'action="/coding/(\d+)"', page)[0])
    assert "uncoded" in page and "nausée" in page
    assert inv.get("/coding").status_code == 403
    refused = coder.post(f"/coding/{ae_id}", data={"llt_code": "10028813", "reason": ""})
    assert refused.status_code == 422 and "reason" in refused.text
    done = coder.post(
        f"/coding/{ae_id}", data={"llt_code": "10028813", "reason": "French verbatim"}
    )
    assert done.status_code == 303
    assert "Gastrointestinal disorders" in coder.get("/coding").text
    api = coder.put(
        f"/api/v1/adverse-events/{ae_id}/coding",
        json={"llt_code": "10047700", "reason": "source says vomiting"},
    )
    assert api.status_code == 200 and api.json()["meddra_term"] == "Vomiting"
    assert api.json()["term"] == "nausée"  # the verbatim stays
    assert (
        inv.put(
            f"/api/v1/adverse-events/{ae_id}/coding", json={"llt_code": "10047700", "reason": "x"}
        ).status_code
        == 403
    )
