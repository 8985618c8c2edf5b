"""Locks on pages and the JSON API: the data manager locks a patient (page button or API), and
every write of that patient — a page form, an API call — is refused with 423 naming the lock;
a study freeze stops data entry but not queries."""

from __future__ import annotations

from web_support import Site, included_via_api

LAB = {"test": "alt", "value": "30", "unit": "U/L", "date": "2025-03-11", "uln": "40"}


def test_a_patient_locked_on_the_api_refuses_page_and_api_writes(site: Site) -> None:
    code = included_via_api(site)
    dm, inv = site.client("dm"), site.client("inv1")
    locked = dm.post(f"/api/v1/patients/{code}/lock", json={"reason": "casebook reviewed"})
    assert locked.status_code == 200, locked.text
    assert locked.json()["label"] == f"patient {code}" and locked.json()["active"] is True
    refused = inv.post(f"/api/v1/patients/{code}/labs", json=LAB)
    assert refused.status_code == 423, refused.text
    assert "locked (by dm on" in refused.json()["error"]
    assert "casebook reviewed" in refused.json()["error"]
    page = inv.post(f"/patients/{code}/labs", data=LAB)
    assert page.status_code == 423 and "casebook reviewed" in page.text
    assert inv.post(f"/api/v1/patients/{code}/lock", json={"reason": "x"}).status_code == 403
    listed = inv.get(f"/api/v1/locks?patient={code}").json()
    assert [lk["label"] for lk in listed] == [f"patient {code}"]
    again = dm.post(f"/api/v1/patients/{code}/lock", json={"reason": "again"})
    assert again.status_code == 409
    lifted = dm.post(f"/api/v1/patients/{code}/unlock", json={"reason": "query reopened"})
    assert lifted.status_code == 200 and lifted.json()["active"] is False
    assert inv.post(f"/api/v1/patients/{code}/labs", json=LAB).status_code == 201


def test_the_lock_button_on_the_patient_page(site: Site) -> None:
    code = included_via_api(site)
    dm = site.client("dm")
    assert 'data-testid="lifecycle-link"' in dm.get(f"/patients/{code}").text
    page = dm.get(f"/patients/{code}/lifecycle").text
    assert "Lock the patient" in page and 'data-testid="no-locks"' in page
    title = page.split("<title>", 1)[1].split("</title>", 1)[0]
    assert "<" not in title and code in title  # the sections once, in the page, not the title
    assert page.count('id="signatures"') <= 1 and page.count('id="sdv"') <= 1
    done = dm.post(f"/patients/{code}/lock", data={"reason": "ready for analysis"})
    assert done.status_code == 303
    page = dm.get(f"/patients/{code}/lifecycle").text
    assert "ready for analysis" in page and "Unlock the patient" in page
    missing = dm.post(f"/patients/{code}/unlock", data={"reason": ""})
    assert missing.status_code == 422 and "reason" in missing.text
    nurse_view = site.client("nurse1").get(f"/patients/{code}/lifecycle").text
    assert "ready for analysis" in nurse_view and "Unlock the patient" not in nurse_view


def test_a_frozen_study_takes_queries_but_no_data(site: Site) -> None:
    code = included_via_api(site)
    dm, inv, mon = site.client("dm"), site.client("inv1"), site.client("mon1")
    lab = inv.post(f"/api/v1/patients/{code}/labs", json=LAB).json()["id"]
    frozen = dm.post("/api/v1/study/freeze", json={"reason": "pre-lock review"})
    assert frozen.status_code == 200, frozen.text
    assert "frozen" in dm.get("/lifecycle").text
    refused = inv.post(f"/api/v1/patients/{code}/labs", json=LAB)
    assert refused.status_code == 423 and "the study is frozen" in refused.json()["error"]
    query = mon.post(
        f"/api/v1/patients/{code}/queries", json={"field": f"lab {lab} value", "question": "?"}
    )
    assert query.status_code == 201, query.text
    assert dm.post("/lifecycle/study/unfreeze", data={"reason": "done"}).status_code == 303
    assert inv.post(f"/api/v1/patients/{code}/labs", json=LAB).status_code == 201


def test_centre_and_form_locks_on_the_api(site: Site) -> None:
    code = included_via_api(site)
    dm, inv = site.client("dm"), site.client("inv1")
    lab = inv.post(f"/api/v1/patients/{code}/labs", json=LAB).json()["id"]
    form = dm.post(f"/api/v1/forms/lab_results/{lab}/lock", json={"reason": "verified"})
    assert form.status_code == 200, form.text
    fix = {"value": "31", "reason": "typo"}
    assert inv.put(f"/api/v1/patients/{code}/labs/{lab}", json=fix).status_code == 423
    unknown = dm.post("/api/v1/forms/nonsense/99999/lock", json={"reason": "x"})
    assert unknown.status_code == 422 and "table" in unknown.json()["error"]
    centre = dm.post("/api/v1/centres/C01/lock", json={"reason": "site closed"})
    assert centre.status_code == 200
    refused = inv.post("/api/v1/patients", json={"centre": "C01"})
    assert refused.status_code == 423 and "centre C01 is locked" in refused.json()["error"]


def _pi(site: Site) -> None:
    admin = site.client("admin")
    made = admin.post(
        "/api/v1/principal-investigators",
        json={"username": "inv1", "centre": "C01", "printed_name": "Dr Paul Durand"},
    )
    assert made.status_code == 201, made.text


def test_the_pi_signs_on_the_page_and_a_correction_invalidates_it(site: Site) -> None:
    from web_support import PASSWORD

    code = included_via_api(site)
    _pi(site)
    inv = site.client("inv1")
    lab = inv.post(f"/api/v1/patients/{code}/labs", json=LAB).json()["id"]
    wrong = inv.post(f"/patients/{code}/signatures", data={"scope": "patient", "password": "no"})
    assert wrong.status_code == 422 and "password: incorrect" in wrong.text
    done = inv.post(f"/patients/{code}/signatures", data={"scope": "patient", "password": PASSWORD})
    assert done.status_code == 303, done.text
    page = inv.get(f"/patients/{code}/lifecycle").text
    assert "Dr Paul Durand" in page and "in this casebook are accurate" in page
    assert 'data-testid="signature-state">valid<' in page
    fix = inv.put(f"/api/v1/patients/{code}/labs/{lab}", json={"value": "31", "reason": "typo"})
    assert fix.status_code == 200, fix.text
    (sig,) = site.client("mon1").get(f"/api/v1/patients/{code}/signatures").json()
    assert sig["valid"] is False and f"update lab_results/{lab}" in sig["invalid_because"]
    assert (
        "invalid: invalidated by update lab_results" in inv.get(f"/patients/{code}/lifecycle").text
    )


def test_signing_on_the_api_and_who_may(site: Site) -> None:
    from web_support import PASSWORD

    code = included_via_api(site)
    inv = site.client("inv1")
    body = {"scope": "patient", "password": PASSWORD, "meaning": "Reviewed at the close-out visit"}
    not_pi = inv.post(f"/api/v1/patients/{code}/signatures", json=body)
    assert not_pi.status_code == 403 and "principal investigator" in not_pi.json()["error"]
    _pi(site)
    signed = inv.post(f"/api/v1/patients/{code}/signatures", json=body)
    assert signed.status_code == 201, signed.text
    assert signed.json()["meaning"] == "Reviewed at the close-out visit"
    assert signed.json()["site_time"].endswith("+01:00")
    token = site.token("inv1")
    from fastapi.testclient import TestClient

    scripted = TestClient(site.app).post(
        f"/api/v1/patients/{code}/signatures",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert scripted.status_code == 403 and "password login" in scripted.json()["error"]
    assert (
        site.client("nurse1").post(f"/api/v1/patients/{code}/signatures", json=body).status_code
        == 403
    )


def test_the_monitor_verifies_on_the_page_and_a_correction_clears_it(site: Site) -> None:
    code = included_via_api(site)
    inv, mon = site.client("inv1"), site.client("mon1")
    lab = inv.post(f"/api/v1/patients/{code}/labs", json=LAB).json()["id"]
    page = mon.get(f"/patients/{code}/lifecycle").text
    assert 'data-testid="sdv-form"' in page and 'data-testid="no-sdv"' in page
    bad = mon.post(f"/patients/{code}/sdv", data={"table": "lab_results", "record_id": str(lab),
                                                 "field": "colour"})  # fmt: skip
    assert bad.status_code == 422 and "field" in bad.text
    done = mon.post(f"/patients/{code}/sdv", data={"table": "lab_results", "record_id": str(lab),
                                                  "field": "value"})  # fmt: skip
    assert done.status_code == 303, done.text
    assert 'data-testid="sdv-state">verified<' in mon.get(f"/patients/{code}/lifecycle").text
    form = mon.post(f"/api/v1/patients/{code}/sdv", json={"table": "screenings", "record_id": 1})
    assert form.status_code == 201, form.text
    fix = inv.put(f"/api/v1/patients/{code}/labs/{lab}", json={"value": "31", "reason": "typo"})
    assert fix.status_code == 200
    marks = {m["table_name"]: m for m in mon.get(f"/api/v1/patients/{code}/sdv").json()}
    assert marks["lab_results"]["cleared_by_change"] == f"update lab_results/{lab} value"
    assert marks["screenings"]["cleared_by_change"] is None
    assert "cleared by update lab_results" in inv.get(f"/patients/{code}/lifecycle").text
    assert inv.post(f"/api/v1/patients/{code}/sdv", json={"table": "screenings",
                                                          "record_id": 1}).status_code == 403  # fmt: skip


def test_the_sdv_report_per_centre(site: Site) -> None:
    code = included_via_api(site)
    mon = site.client("mon1")
    (c01,) = mon.get("/api/v1/sdv/report?centre=C01").json()
    assert c01["centre"] == "C01" and c01["required"] == 2 and c01["required_verified"] == 0
    assert {o["requirement"] for o in c01["outstanding"]} == {"eligibility", "informed consent"}
    assert mon.get("/api/v1/sdv/report?centre=C02").status_code == 403
    for table in ("screenings", "inclusions"):
        r = mon.post(f"/api/v1/patients/{code}/sdv", json={"table": table, "record_id": 1})
        assert r.status_code == 201, r.text
    (c01,) = mon.get("/api/v1/sdv/report?centre=C01").json()
    assert c01["required_verified"] == 2 and c01["required_percent"] == 100
    page = mon.get("/sdv?centre=C01").text
    assert 'data-testid="required-C01">2 (100.0 %)' in page
    assert len(site.client("dm").get("/api/v1/sdv/report").json()) == 2
