"""The status grid (patients x visits, page and GET /api/v1/status): a visit's status comes
from the data entered for it (QoL at QOL-W00 marks that visit done), overdue only when the
window has closed with nothing entered and no missing-data code, filters by centre, visit and
status, counts on the dashboard; other centres are not shown."""

from __future__ import annotations

import datetime as dt

from test_web_edits import _patient
from web_support import Site

from reluth.forms import service as forms
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

    with site.as_user("nurse1") as ctx:
        forms.record_missing(
            ctx, "lab", "ND", "sample haemolysed, not repeated", patient_code=code,
            visit_code="LAB-W00",
        )  # fmt: skip
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
