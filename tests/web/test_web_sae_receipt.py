"""Pharmacovigilance sees SAEs waiting on the dashboard, acknowledges receipt on the adverse
event page or through the API, and the clock stops; nobody else can acknowledge."""

from __future__ import annotations

import re

from test_web_trial_flow import randomized_patient
from web_support import Site


def _sae(site: Site, code: str, term: str) -> None:
    r = site.client("inv1").post(
        f"/patients/{code}/adverse-events",
        data={
            "term": term,
            "grade": "4",
            "serious": "yes",
            "relatedness": "probable",
            "outcome": "recovering",
            "onset_date": "2025-03-10",
            # today at the site: due 24 h after 00:00 Paris, 2025-03-12 23:00 UTC
            "awareness_date": "2025-03-12",
        },
    )
    assert r.status_code == 303, r.text


def _ae_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'action="/adverse-events/(\d+)/receipt"', html)]


def test_pharmacovigilance_acknowledges_and_the_clock_stops(site: Site) -> None:
    code = randomized_patient(site)
    _sae(site, code, "Platelet count decreased")
    _sae(site, code, "Anemia")
    pv = site.client("pv")
    dash = pv.get("/dashboard").text
    assert re.search(r'data-testid="saes-waiting".*?<strong>2</strong>', dash, re.S)
    page = pv.get("/adverse-events").text
    ids = _ae_ids(page)
    assert len(ids) == 2
    # The site sees the clock but has no acknowledge button, and is refused on the server.
    inv = site.client("inv1")
    assert _ae_ids(inv.get("/adverse-events").text) == []
    assert inv.post(f"/adverse-events/{ids[0]}/receipt").status_code == 403
    assert inv.post(f"/api/v1/adverse-events/{ids[0]}/receipt").status_code == 403

    site.clock.advance(hours=2)  # T0 09:00 + 2 h, before the due time 2025-03-12 23:00 UTC
    pv = site.client("pv")  # (the idle timeout ended the earlier sessions)
    done = pv.post(f"/adverse-events/{ids[0]}/receipt")
    assert done.status_code == 303
    page = pv.get("/adverse-events").text
    assert "received 2025-03-12 11:00 UTC by pv — on time" in page
    assert _ae_ids(page) == [ids[1]]

    site.clock.advance(days=1)  # now past the due time for the second one
    pv, inv = site.client("pv"), site.client("inv1")
    dash = pv.get("/dashboard").text
    assert re.search(r'data-testid="saes-waiting".*?<strong>1</strong>', dash, re.S)
    assert "1 past the 24-hour limit" in dash
    api = pv.post(f"/api/v1/adverse-events/{ids[1]}/receipt")
    assert api.status_code == 201 and api.json()["received_by"] == "pv"
    again = pv.post(f"/api/v1/adverse-events/{ids[1]}/receipt")
    assert again.status_code == 409 and "already acknowledged" in again.json()["error"]
    page = pv.get("/adverse-events").text
    assert re.search(r"received 2025-03-13 11:00 UTC by pv — \d+\.\d h late", page)
    assert _ae_ids(page) == []
    assert re.search(
        r'data-testid="saes-waiting".*?<strong>0</strong>', pv.get("/dashboard").text, re.S
    )
    # The site's view shows the receipt too, and the audit page names who acknowledged.
    assert "received 2025-03-12 11:00 UTC by pv" in inv.get("/adverse-events").text


def test_unknown_or_non_serious_event_cannot_be_acknowledged(site: Site) -> None:
    code = randomized_patient(site)
    r = site.client("inv1").post(
        f"/patients/{code}/adverse-events",
        data={
            "term": "Nausea",
            "grade": "1",
            "relatedness": "possible",
            "outcome": "recovered",
            "onset_date": "2025-03-10",
        },
    )
    assert r.status_code == 303
    pv = site.client("pv")
    assert _ae_ids(pv.get("/adverse-events").text) == []
    not_serious = pv.post("/api/v1/adverse-events/1/receipt")
    assert not_serious.status_code in (409, 422) and "not serious" in not_serious.json()["error"]
    assert pv.post("/api/v1/adverse-events/424242/receipt").status_code == 404
