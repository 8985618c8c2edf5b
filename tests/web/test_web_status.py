"""The status grid (patients x visits, page and GET /api/v1/status): a visit's status comes
from the data entered for it (QoL at QOL-W00 marks that visit done), overdue only when the
window has closed with nothing entered and no missing-data code, filters by centre, visit and
status, counts on the dashboard; other centres are not shown."""

from __future__ import annotations

import datetime as dt

from test_web_edits import _patient
from web_support import PASSWORD, Site

from reluth.forms.status import FormCell, FormStatus, visit_status


def _qol(site: Site, code: str, instrument: str, items: dict[str, int]) -> None:
    r = site.client("nurse1").post(
        f"/api/v1/patients/{code}/qol",
        json={
            "instrument": instrument,
            "timepoint": "QOL-W00",
            "completed_on": "2025-03-12",
            "items": items,
        },
    )
    assert r.status_code == 201, r.text


def test_status_grid_from_the_data_entered(site: Site) -> None:
    code = _patient(site)  # randomized 2025-03-12 (experimental)
    site.clock.now = dt.datetime(2025, 4, 1, 9, tzinfo=dt.UTC)  # QOL-W00, LAB-W00 windows closed
    api = site.client("dm")
    grid = api.get("/api/v1/status", params={"centre": "C01"}).json()
    visits = grid["patients"][0]["visits"]
    assert grid["patients"][0]["patient"] == code
    assert visits["QOL-W00"]["status"] == "overdue" and visits["LAB-W00"]["status"] == "overdue"
    assert visits["TA-W08"]["status"] == "not_started"  # window not closed yet
    assert visits["BASELINE"]["status"] == "complete", visits["BASELINE"]
    assert visits["BASELINE"]["forms"]["cycle"]["status"] == "complete"  # both second-PRRT cycles

    _qol(site, code, "QLQ-C30", {str(n): 1 for n in range(1, 31)} | {"29": 5, "30": 5})
    half = api.get("/api/v1/status", params={"visit": "QOL-W00"}).json()["patients"][0]
    assert half["visits"]["QOL-W00"]["status"] == "incomplete"  # GI.NET21 not yet
    assert list(half["visits"]) == ["QOL-W00"]
    _qol(site, code, "QLQ-GINET21", {str(n): 1 for n in range(31, 52)})
    done = api.get("/api/v1/status").json()["patients"][0]["visits"]["QOL-W00"]
    assert done["status"] == "complete"
    assert done["forms"]["visit"]["status"] == "complete"  # dated by the data entered

    missing = site.client("nurse1").post(
        f"/api/v1/patients/{code}/missing",
        json={"form": "lab", "visit_code": "LAB-W00", "code": "ND",
              "reason": "sample haemolysed, not repeated"},
    )  # fmt: skip
    assert missing.status_code == 201, missing.text
    bad = site.client("nurse1").post(
        f"/api/v1/patients/{code}/missing",
        json={"form": "lab", "visit_code": "LAB-W04", "code": "XX", "reason": "r"},
    )
    assert bad.status_code == 422 and bad.json()["field"] == "code"
    lab = api.get("/api/v1/status").json()["patients"][0]["visits"]["LAB-W00"]
    assert lab["status"] == "missing" and lab["forms"]["lab"]["missing_code"] == "ND"

    overdue = api.get("/api/v1/status", params={"status": "overdue"}).json()
    assert overdue["counts"].get("overdue", 0) == 0 and overdue["patients"] == []
    assert api.get("/api/v1/status", params={"status": "nonsense"}).status_code == 422
    assert api.get("/api/v1/status", params={"visit": "XX-W99"}).status_code == 422
    assert site.client("inv2").get("/api/v1/status", params={"centre": "C01"}).status_code == 404
    assert site.client("inv2").get("/api/v1/status").json()["patients"] == []

    page = api.get("/status")
    assert page.status_code == 200 and 'data-testid="status-grid"' in page.text
    assert f'href="/patients/{code}"' in page.text and 'class="s-complete"' in page.text
    dash = api.get("/dashboard").text
    assert 'data-testid="status-by-centre"' in dash and "/status?centre=C01" in dash
    assert api.get("/api/v1/dashboard").json()["status_counts"]["complete"] >= 2


def _qol_visit(api: object, **params: str) -> dict[str, object]:
    grid = api.get("/api/v1/status", params={"visit": "QOL-W00", **params})  # type: ignore[attr-defined]
    assert grid.status_code == 200, grid.text
    body: dict[str, object] = grid.json()
    return body


def test_the_lifecycle_layers_sdv_signed_locked_and_their_filters(site: Site) -> None:
    code = _patient(site)
    site.clock.now = dt.datetime(2025, 4, 1, 9, tzinfo=dt.UTC)
    _qol(site, code, "QLQ-C30", {str(n): 1 for n in range(1, 31)} | {"29": 5, "30": 5})
    _qol(site, code, "QLQ-GINET21", {str(n): 1 for n in range(31, 52)})
    dm, mon, inv = site.client("dm"), site.client("mon1"), site.client("inv1")
    cell = _qol_visit(dm)["patients"][0]["visits"]["QOL-W00"]  # type: ignore[index]
    records = cell["forms"]["qol"]["records"]
    assert len(records) == 2 and cell["forms"]["qol"]["status"] == "complete"
    assert _qol_visit(dm, status="sdv_done")["patients"] == []

    first = mon.post(
        f"/api/v1/patients/{code}/sdv",
        json={"table": "qol_questionnaires", "record_id": records[0]},
    )
    assert first.status_code == 201, first.text
    cell = _qol_visit(dm)["patients"][0]["visits"]["QOL-W00"]  # type: ignore[index]
    assert cell["forms"]["qol"]["status"] == "complete"  # one of its two records verified
    mon.post(
        f"/api/v1/patients/{code}/sdv",
        json={"table": "qol_questionnaires", "record_id": records[1]},
    )
    sdv = _qol_visit(dm, status="sdv_done")
    cell = sdv["patients"][0]["visits"]["QOL-W00"]  # type: ignore[index]
    assert cell["forms"]["qol"]["status"] == "sdv_done"
    assert cell["status"] == "sdv_done"  # the visit dated by its data follows its forms
    assert sdv["counts"] == {"sdv_done": 1}

    admin = site.client("admin")
    made = admin.post(
        "/api/v1/principal-investigators",
        json={"username": "inv1", "centre": "C01", "printed_name": "Dr One"},
    )
    assert made.status_code == 201, made.text
    signed = inv.post(
        f"/api/v1/patients/{code}/signatures", json={"scope": "patient", "password": PASSWORD}
    )
    assert signed.status_code == 201, signed.text
    grid = dm.get("/api/v1/status", params={"status": "signed"}).json()
    visits = grid["patients"][0]["visits"]
    assert visits["QOL-W00"]["forms"]["qol"]["status"] == "signed"
    assert visits["BASELINE"]["forms"]["inclusion"]["status"] == "signed"
    assert grid["counts"]["signed"] >= 1

    fix = inv.put(
        f"/api/v1/forms/qol/{records[0]}",
        json={"completed_on": "2025-03-13", "reason": "date misread"},
    )
    assert fix.status_code == 200, fix.text
    cell = _qol_visit(dm)["patients"][0]["visits"]["QOL-W00"]  # type: ignore[index]
    assert cell["forms"]["qol"]["status"] == "complete"  # the change cleared SDV and signature

    locked = dm.post(f"/api/v1/patients/{code}/lock", json={"reason": "casebook reviewed"})
    assert locked.status_code == 200, locked.text
    grid = dm.get("/api/v1/status", params={"status": "locked"}).json()
    visits = grid["patients"][0]["visits"]
    assert {v["status"] for v in visits.values()} == {"locked"}
    page = dm.get("/status", params={"status": "locked"})
    assert page.status_code == 200 and 'class="s-locked"' in page.text
    dash = dm.get("/dashboard").text
    assert "/status?centre=C01&amp;status=locked" in dash


def test_visit_status_summary() -> None:
    def cells(*statuses: FormStatus) -> list[FormCell]:
        return [FormCell(f"f{i}", s) for i, s in enumerate(statuses)]

    assert visit_status(cells(FormStatus.COMPLETE, FormStatus.MISSING)) is FormStatus.COMPLETE
    assert visit_status(cells(FormStatus.COMPLETE, FormStatus.NOT_STARTED)) is (
        FormStatus.INCOMPLETE
    )
    assert visit_status(cells(FormStatus.QUERIED, FormStatus.NOT_STARTED)) is FormStatus.QUERIED
    assert visit_status(cells(FormStatus.NOT_EXPECTED)) is FormStatus.NOT_EXPECTED
    assert visit_status([]) is FormStatus.NOT_EXPECTED
    assert visit_status(cells(FormStatus.SIGNED, FormStatus.SDV_DONE)) is FormStatus.SDV_DONE
    assert visit_status(cells(FormStatus.LOCKED, FormStatus.MISSING)) is FormStatus.LOCKED
    assert visit_status(cells(FormStatus.SIGNED, FormStatus.COMPLETE)) is FormStatus.COMPLETE
    assert visit_status(cells(FormStatus.LOCKED, FormStatus.QUERIED)) is FormStatus.QUERIED
