"""The dosimetry page and API: the physicist stores a cycle's records (JSON list or a case's
results.json), the page shows per-cycle doses and the cumulative kidney/marrow figures against
the limits, refusals come back next to the field with the input kept, centre-scoped readers
see only their centre's patients, blinded and other roles are refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from web_support import Site, make_site, ready_patients

from reluth.db.audit import AuditLog
from reluth.db.session import read_session

RECORDS: list[dict[str, Any]] = [
    {"region": "kidneys", "quantity": "absorbed_dose", "value": 2.25, "sd": 0.25,
     "unit": "Gy", "method": "S-value"},
    {"region": "kidneys", "quantity": "effective_half_life", "value": 52.0, "unit": "h",
     "method": "AICc fit"},
    {"region": "tumour1", "kind": "tumour", "quantity": "absorbed_dose", "value": 31.5,
     "unit": "Gy", "method": "sphere model"},
    {"region": "red_marrow", "kind": "marrow", "quantity": "absorbed_dose", "value": 0.375,
     "unit": "Gy", "method": "blood-based"},
]  # fmt: skip


@pytest.fixture(scope="module")
def dosi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, dict[str, str]]]:
    """Two patients with cycles 1-2 administered: one at C01, one at C02."""
    site = make_site(f"sqlite:///{tmp_path_factory.mktemp('dosi') / 'web.db'}")
    codes = ready_patients(site, 2)
    yield site, {"C01": codes[0], "C02": codes[1]}
    site.app.state.engine.dispose()


def _form(site: Site, code: str, **fields: str) -> Any:
    return site.client("phys").post(
        f"/patients/{code}/dosimetry", data={"cycle": "1", "case_id": "CASE-1", **fields}
    )


def test_api_store_then_read_with_cumulative_figures(dosi: tuple[Site, dict[str, str]]) -> None:
    site, codes = dosi
    code = codes["C02"]
    phys = site.client("phys")
    body = {"cycle": 2, "case_id": "CASE-API", "records": RECORDS}
    response = phys.post(f"/api/v1/patients/{code}/dosimetry", json=body)
    assert response.status_code == 201, response.text
    assert response.json() == {"patient_id": code, "cycle": 2, "stored": 4}
    again = phys.post(f"/api/v1/patients/{code}/dosimetry", json=body)
    assert again.status_code == 409 and "replace them with a reason" in again.json()["error"]
    no_reason = phys.post(f"/api/v1/patients/{code}/dosimetry", json={**body, "replace": True})
    assert no_reason.status_code == 422 and no_reason.json()["field"] == "reason"
    replaced = phys.post(
        f"/api/v1/patients/{code}/dosimetry",
        json={**body, "replace": True, "reason": "kidney VOI redrawn"},
    )
    assert replaced.status_code == 201
    data = site.client("stat").get(f"/api/v1/patients/{code}/dosimetry").json()
    assert data["administered_cycles"] == [1, 2]
    assert [c["cycle"] for c in data["cycles"]] == [2]
    assert {r["region"] for r in data["cycles"][0]["rows"]} == {"kidneys", "tumour1", "red_marrow"}
    assert data["cumulative"]["organs"]["kidneys"]["cumulative_absorbed_dose_gy"] == 2.25
    assert data["cumulative"]["organs"]["red_marrow"]["cumulative_absorbed_dose_gy"] == 0.375
    with read_session(site.app.state.engine) as s:
        reasons = set(
            s.scalars(
                select(AuditLog.reason).where(
                    AuditLog.table_name == "dose_results", AuditLog.action == "delete"
                )
            )
        )
    assert reasons == {"kidney VOI redrawn"}


def test_api_refuses_a_cycle_not_administered(dosi: tuple[Site, dict[str, str]]) -> None:
    site, codes = dosi
    body = {"cycle": 3, "case_id": "C3", "records": RECORDS}
    response = site.client("phys").post(f"/api/v1/patients/{codes['C01']}/dosimetry", json=body)
    assert response.status_code == 409 and "not administered" in response.json()["error"]


def test_page_form_stores_a_list_and_shows_doses_and_limits(
    dosi: tuple[Site, dict[str, str]],
) -> None:
    site, codes = dosi
    code = codes["C01"]
    response = _form(site, code, case_id="CASE-PAGE", records=json.dumps(RECORDS))
    assert response.status_code == 303
    assert response.headers["location"] == f"/patients/{code}/dosimetry#cycle-1"
    page = site.client("phys").get(f"/patients/{code}/dosimetry")
    assert page.status_code == 200
    assert 'id="cycle-1"' in page.text and "CASE-PAGE" in page.text
    assert "31.5" in page.text and "sphere model" in page.text  # tumour dose
    assert 'data-testid="cumulative-kidneys"' in page.text
    assert "Store the results of a cycle" in page.text  # the physicist may write
    assert '<strong class="not_met">reached</strong>' not in page.text  # 2.25 Gy, 0.375 Gy


def test_the_page_names_the_stored_methods_in_french(dosi: tuple[Site, dict[str, str]]) -> None:
    """Issue 18: the stored method codes (kept as stored) are shown as a French physicist
    names them; a method of the centre's own is shown as recorded."""
    site, codes = dosi
    page = site.client("phys").get(
        f"/patients/{codes['C01']}/dosimetry", headers={"Accept-Language": "fr-FR"}
    )
    assert page.status_code == 200
    for french in ("facteur S (auto-irradiation, ajusté à la masse)", "modèle sphérique",
                   "à partir des prélèvements sanguins", "AICc fit"):  # fmt: skip
        assert f"<td>{french}</td>" in page.text, french
    assert "<td>sphere model</td>" not in page.text and "<td>S-value</td>" not in page.text


@pytest.mark.parametrize(
    ("fields", "status", "error_id"),
    [
        ({"records": "{not json"}, 422, "dosi-records-error"),
        ({"records": json.dumps([{**RECORDS[0], "unit": "mGy"}])}, 422, "dosi-records-error"),
        ({"cycle": "x", "records": json.dumps(RECORDS)}, 422, "dosi-cycle-error"),
        ({"cycle": "4", "records": json.dumps(RECORDS)}, 409, "dosimetry-error"),
        ({"case_id": "", "records": json.dumps(RECORDS)}, 422, "dosi-case-error"),
    ],
)
def test_page_refusals_are_shown_next_to_the_field_with_the_input_kept(
    dosi: tuple[Site, dict[str, str]], fields: dict[str, str], status: int, error_id: str
) -> None:
    site, codes = dosi
    response = _form(site, codes["C01"], **fields)
    assert response.status_code == status
    assert f'id="{error_id}"' in response.text
    assert ">" + fields["records"].replace('"', "&#34;") + "</textarea>" in response.text


def test_page_replacement_needs_a_reason(dosi: tuple[Site, dict[str, str]]) -> None:
    site, codes = dosi
    code = codes["C01"]
    _form(site, code, records=json.dumps(RECORDS))  # cycle 1 may already be stored
    response = _form(site, code, records=json.dumps(RECORDS), replace="yes", reason="")
    assert response.status_code == 422 and 'id="dosi-reason-error"' in response.text
    ok = _form(site, code, records=json.dumps(RECORDS), replace="yes", reason="re-fit")
    assert ok.status_code == 303


def test_centre_scoped_readers_see_their_centre_only(dosi: tuple[Site, dict[str, str]]) -> None:
    site, codes = dosi
    inv1 = site.client("inv1")
    own = inv1.get(f"/patients/{codes['C01']}/dosimetry")
    assert own.status_code == 200 and "Store the results" not in own.text
    assert inv1.get(f"/patients/{codes['C02']}/dosimetry").status_code == 404
    assert inv1.get(f"/api/v1/patients/{codes['C02']}/dosimetry").status_code == 404
    assert site.client("inv2").get(f"/patients/{codes['C02']}/dosimetry").status_code == 200
    assert (
        'href="/patients/' + codes["C01"] + '/dosimetry"'
        in inv1.get(f"/patients/{codes['C01']}").text
    )


@pytest.mark.parametrize("username", ["rev", "pv", "admin", "inv1", "nurse1", "stat"])
def test_only_the_physicist_writes(dosi: tuple[Site, dict[str, str]], username: str) -> None:
    site, codes = dosi
    client = site.client(username)
    body = {"cycle": 1, "case_id": "X", "records": RECORDS}
    assert client.post(f"/api/v1/patients/{codes['C01']}/dosimetry", json=body).status_code == 403
    assert (
        client.post(f"/patients/{codes['C01']}/dosimetry", data={"cycle": "1"}).status_code == 403
    )


def test_blinded_reviewer_sees_no_dosimetry(dosi: tuple[Site, dict[str, str]]) -> None:
    site, codes = dosi
    rev = site.client("rev")
    for path in (
        f"/patients/{codes['C01']}/dosimetry",
        f"/api/v1/patients/{codes['C01']}/dosimetry",
    ):
        response = rev.get(path)
        assert response.status_code == 403 and "31.5" not in response.text


def test_page_computes_a_cycle_from_the_store_with_progress(
    dosi: tuple[Site, dict[str, str]], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The physicist's page runs `dosimetry from-store` in the background, polled by htmx;
    the records are stored as the physicist (audit trail)."""
    import datetime as dt
    import time

    import yaml

    from reluth.dosimetry import synthetic_study as ss
    from reluth.dosimetry.models import DoseResult
    from reluth.imaging.batch import deidentify_tree
    from reluth.imaging.deid import DeidSettings
    from reluth.imaging.profile import RELUTH_OPTIONS
    from reluth.imaging.store import ingest
    from reluth.imaging.synthetic import SyntheticPatient

    site, codes = dosi
    code = codes["C01"]
    spec = ss.StudySpec(matrix=24, ct_matrix=40, ct_pixel_mm=3.5,
                        patient=SyntheticPatient(injection=dt.datetime(2024, 11, 4, 9, 15)))  # fmt: skip
    ss.write_study(tmp_path / "export", spec)
    key = DeidSettings(key=b"w" * 32, patient_id=code, options=RELUTH_OPTIONS, cycle=1)
    deidentify_tree(tmp_path / "export", tmp_path / "deid", key)
    with site.as_user("phys") as ctx:
        ingest(ctx, tmp_path / "deid", tmp_path / "store")
    (tmp_path / "cal.yaml").write_text(yaml.safe_dump(ss.calibration_doc(spec)))
    monkeypatch.setenv("RELUTH_IMAGE_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("RELUTH_CALIBRATIONS", str(tmp_path / "cal.yaml"))
    monkeypatch.setenv("RELUTH_DATA_DIR", str(tmp_path / "data"))
    phys = site.client("phys")
    page = phys.get(f"/patients/{code}/dosimetry")
    assert "Compute a cycle from the image store" in page.text
    form = {"cycle": "1", "replace": "yes", "reason": "computed from the image store"}
    started = phys.post(f"/patients/{code}/dosimetry/from-store", data=form,
                        follow_redirects=False)  # fmt: skip
    assert started.status_code == 303
    job_page = phys.get(started.headers["location"])
    assert 'hx-get="/patients/' in job_page.text
    job = started.headers["location"].split("job=")[1]
    for _ in range(240):
        fragment = phys.get(f"/patients/{code}/dosimetry/jobs/{job}").text
        if "Computing" not in fragment:
            break
        time.sleep(0.5)
    assert "Done: stored" in fragment, fragment
    with read_session(site.app.state.engine) as s:
        regions = set(s.scalars(select(DoseResult.region).where(DoseResult.cycle == 1)))
        who = set(s.scalars(select(AuditLog.username).where(AuditLog.table_name == "dose_results")))
    assert {"kidney_left", "kidney_right", "lesion_1"} <= regions and "phys" in who
    bad = phys.post(f"/patients/{code}/dosimetry/from-store", data={"cycle": "1", "vois": "x;y"})
    assert bad.status_code == 422 and "series UID" in bad.text
