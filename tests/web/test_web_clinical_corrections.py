"""Corrections of the clinical forms through the generic correction page and the JSON API: laid
out from the registry with the saved values, saved with a reason through the domain's rules
(a refused change comes back with every typed value and the message at its input), back to the
form's entry page, and refused to a role that may not write the form."""

from __future__ import annotations

from test_web_clinical_forms import CONMED as PAGE_CONMED
from web_support import Site, included_via_api

CONMED = {**PAGE_CONMED, "ongoing": True}

REASON = "transcription error, source document p. 2"


def test_conmed_correction_page_shows_saved_values_and_keeps_typed_ones(site: Site) -> None:
    code = included_via_api(site)
    nurse = site.client("nurse1")
    rid = nurse.post(f"/api/v1/patients/{code}/conmeds", json=CONMED).json()["id"]
    page = nurse.get(f"/forms/conmed/{rid}/edit")
    assert page.status_code == 200
    assert 'value="Octreotide LAR"' in page.text and 'value="H01CB02"' in page.text
    assert '<option value="intramuscular" selected>' in page.text
    assert 'name="ongoing" value="yes" checked' in page.text
    posted = {"drug_name": "Octreotide LAR", "indication": "carcinoid syndrome", "dose": "30",
              "unit": "mg", "route": "intramuscular", "start_date": "2024-06-01",
              "stop_date": "", "reason": REASON}  # fmt: skip  # unticked: stopped, no date
    refused = nurse.post(f"/forms/conmed/{rid}/edit", data=posted)
    assert refused.status_code == 422
    assert 'id="edit-stop_date"' in refused.text and "missing" in refused.text
    assert f'value="{REASON}"' in refused.text or REASON in refused.text
    saved = nurse.post(
        f"/forms/conmed/{rid}/edit", data={**posted, "stop_date": "05/03/2025", "dose": "22,5"}
    )
    assert saved.status_code == 303 and saved.headers["location"] == (
        f"/patients/{code}/forms/conmed"
    )
    listed = nurse.get(f"/api/v1/patients/{code}/conmeds").json()[0]
    assert listed["stop_date"] == "2025-03-05" and listed["ongoing"] is False
    assert str(listed["dose"]) == "22.5"
    assert site.client("mon1").get(f"/forms/conmed/{rid}/edit").status_code == 403
    assert site.client("inv2").get(f"/forms/conmed/{rid}/edit").status_code == 404


def test_api_corrects_death_deviation_and_withdrawal_through_their_rules(site: Site) -> None:
    code = included_via_api(site)
    api = site.client("inv1")
    w = {"kind": "treatment", "withdrawal_date": "2025-03-06"}
    wid = api.post(f"/api/v1/patients/{code}/withdrawals", json=w).json()["id"]
    moved = api.put(
        f"/api/v1/forms/withdrawal/{wid}",
        json={"withdrawal_date": "2025-03-07", "reason": REASON},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["withdrawal_date"] == "2025-03-07" and moved.json()["form"] == "withdrawal"
    future = api.put(
        f"/api/v1/forms/withdrawal/{wid}",
        json={"withdrawal_date": "2025-03-13", "reason": REASON},
    )
    assert future.status_code == 422 and "withdrawal_date" in future.text
    deviation = {"category": "eligibility", "severity": "major", "deviation_date": "2025-03-04",
                 "description": "Included with platelets below the threshold"}  # fmt: skip
    did = api.post(f"/api/v1/patients/{code}/deviations", json=deviation).json()["id"]
    minor = api.put(
        f"/api/v1/forms/deviation/{did}",
        json={"severity": "minor", "reason": REASON},
    )
    assert minor.status_code == 200 and minor.json()["severity"] == "minor"
    unreasoned = api.put(f"/api/v1/forms/deviation/{did}", json={"severity": "major"})
    assert unreasoned.status_code == 422
    death = {"death_date": "2025-03-08", "cause": "toxicity"}
    assert api.post(f"/api/v1/patients/{code}/death", json=death).status_code == 201
    listed = api.get("/api/v1/forms").json()
    death_id = next(f for f in listed if f["id"] == "death")
    assert all(x["correctable"] for x in death_id["fields"])
    with site.reading_as("inv1") as ctx:
        from reluth.patients import service as patients

        rid = patients.get_death(ctx, code).id
    other = api.put(f"/api/v1/forms/death/{rid}", json={"cause": "other", "reason": REASON})
    assert other.status_code == 422 and "details" in other.text
    assert (
        site.client("rev")
        .put(f"/api/v1/forms/death/{rid}", json={"cause": "disease", "reason": REASON})
        .status_code
        == 403
    )
