"""The statistician's exports: the datasets zip in each format (five datasets, row counts as in
the database, .xpt/.dta read back with pyreadstat), the randomization report (page, CSV,
JSON), the audit row of every download, and validation messages next to the field."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest
from sqlalchemy import func, select
from web_support import Site, make_site, ready_patients

from reluth.db.audit import AuditLog
from reluth.db.session import read_session
from reluth.patients.models import Inclusion
from reluth.randomization import service as rnd
from reluth.randomization.models import Randomization

DATASETS = ("adsl", "adrs", "adtte", "adae", "adqs", "adcm", "admh")


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Six included patients at C01/C02, four of them randomized (through the services)."""
    site = make_site(f"sqlite:///{tmp_path_factory.mktemp('exports') / 'web.db'}")
    engine = site.app.state.engine
    codes = ready_patients(site, 6)
    with site.as_user("stat") as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, "exports-test-seed-0123456789", 4)
    for code in codes[:4]:
        with site.as_user("inv1" if code.startswith("C01") else "inv2") as ctx:
            rnd.randomize(ctx, code, f"req-{code}")
    yield site
    engine.dispose()


def _count(site: Site, model: type) -> int:
    with read_session(site.app.state.engine) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _export_events(site: Site) -> list[AuditLog]:
    with read_session(site.app.state.engine) as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == "export")))


@pytest.mark.parametrize("fmt", ["csv", "xpt", "dta"])
def test_datasets_zip_holds_the_five_datasets_with_the_database_counts(
    trial: Site, fmt: str, tmp_path: Path
) -> None:
    response = trial.client("stat").get(f"/exports/datasets?format={fmt}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert f"reluth-adam-{fmt}-" in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == sorted(
        [f"{d}.{fmt}" for d in DATASETS] + ["variables.json", "data_issues.csv"]
    )
    # every stored value was usable: the list of records left out has its header only
    issues = list(csv.reader(io.StringIO(archive.read("data_issues.csv").decode("utf-8"))))
    assert issues[0][:2] == ["source", "subject_id"] and len(issues) == 1
    archive.extractall(tmp_path)
    frames = {}
    for d in DATASETS:
        path = str(tmp_path / f"{d}.{fmt}")
        if fmt == "csv":
            frames[d] = pd.read_csv(path)
        elif fmt == "xpt":
            frames[d], _meta = pyreadstat.read_xport(path)
        else:
            frames[d], _meta = pyreadstat.read_dta(path)
    adsl = frames["adsl"]
    assert len(adsl) == _count(trial, Inclusion) == 6
    assert (adsl["ITTFL"] == "Y").sum() == _count(trial, Randomization) == 4
    described = json.loads(archive.read("variables.json"))["datasets"]
    assert {d: len(f) for d, f in frames.items()} == {d: described[d]["rows"] for d in DATASETS}
    assert len(frames["adtte"]) > 0


def test_every_download_is_an_audit_row_with_who_what_and_the_file_hash(trial: Site) -> None:
    before = len(_export_events(trial))
    response = trial.client("stat").get("/api/v1/exports/datasets?format=xpt")
    assert response.status_code == 200
    report = trial.client("stat").get("/exports/randomization-report?format=csv")
    assert report.status_code == 200
    events = _export_events(trial)[before:]
    assert [(e.username, e.role, e.table_name, e.record_id) for e in events] == [
        ("stat", "statistician", "exports", "adam-datasets"),
        ("stat", "statistician", "exports", "randomization-report"),
    ]
    detail = json.loads(events[0].new_value or "{}")
    assert detail["format"] == "xpt" and detail["rows"]["adsl"] == 6
    assert detail["sha256"] == hashlib.sha256(response.content).hexdigest()
    assert response.headers["x-content-sha256"] == detail["sha256"]
    assert json.loads(events[1].new_value or "{}")["sha256"] == (
        hashlib.sha256(report.content).hexdigest()
    )


def test_randomization_report_page_csv_and_json_agree_with_the_database(trial: Site) -> None:
    client = trial.client("stat")
    page = client.get("/exports")
    assert page.status_code == 200
    assert "Randomization report" in page.text and "blocks" in page.text
    assert "4 randomized" in page.text and "Per centre" in page.text
    data = client.get("/api/v1/exports/randomization-report").json()
    assert data["total"] == 4 and sum(data["by_arm"].values()) == 4
    assert data["method"] == "blocks" and data["list_intact"] is True
    assert sum(sum(c.values()) for c in data["by_centre"].values()) == 4
    rows = list(csv.DictReader(io.StringIO(client.get("/exports/randomization-report").text)))
    overall = {r["arm"]: int(r["n"]) for r in rows if r["section"] == "overall"}
    assert overall == data["by_arm"]


@pytest.mark.parametrize(
    ("query", "field_id", "kept"),
    [
        ("format=sas&cutoff=", "export-format-error", None),
        ("format=xpt&cutoff=2025-13-01", "export-cutoff-error", 'value="2025-13-01"'),
    ],
)
def test_bad_choices_are_shown_next_to_the_field_and_nothing_is_recorded(
    trial: Site, query: str, field_id: str, kept: str | None
) -> None:
    before = len(_export_events(trial))
    response = trial.client("stat").get(f"/exports/datasets?{query}")
    assert response.status_code == 422
    assert f'id="{field_id}"' in response.text
    if kept:
        assert kept in response.text
    assert len(_export_events(trial)) == before


def test_the_api_names_the_bad_field(trial: Site) -> None:
    response = trial.client("stat").get("/api/v1/exports/datasets?format=sav")
    assert response.status_code == 422 and response.json()["field"] == "format"


def test_an_empty_trial_is_refused_with_a_message_not_an_error(site: Site) -> None:
    response = site.client("stat").get("/api/v1/exports/datasets")
    assert response.status_code == 422
    assert "no included patient" in response.json()["error"]


@pytest.mark.parametrize("username", ["rev", "dm", "inv1", "phys", "admin"])
def test_only_the_statistician_sees_exports_or_the_nav_link(trial: Site, username: str) -> None:
    client = trial.client(username)
    for path in ("/exports", "/exports/datasets", "/api/v1/exports/randomization-report"):
        assert client.get(path).status_code == 403
    assert client.get("/account/tokens").status_code == 200
    assert 'href="/exports"' not in client.get("/account/tokens").text
    assert 'href="/exports"' in trial.client("stat").get("/account/tokens").text


def test_odm_api_hands_out_the_document_and_records_the_export(trial: Site) -> None:
    """GET /api/v1/exports/odm: CDISC ODM XML of the caller's patients (a site nurse: her
    centre's), audited as an export; ``audit=false`` gives data only."""
    import xml.etree.ElementTree as ET

    from reluth.odm.export import NS

    before = len(_export_events(trial))
    full = trial.client("stat").get("/api/v1/exports/odm")
    assert full.status_code == 200 and full.headers["content-type"] == "application/xml"
    assert hashlib.sha256(full.content).hexdigest() == full.headers["x-content-sha256"]
    root = ET.fromstring(full.content)
    keys = {s.get("SubjectKey") for s in root.iter(f"{{{NS}}}SubjectData")}
    assert len(keys) == 6 and root.find(f".//{{{NS}}}AuditRecord") is not None
    # randomized patients: the randomization form; the arm only as its declared item, for a
    # reader who may read the arm (the statistician; the blinded reviewer is refused the export)
    items = {i.get("ItemOID") for i in root.iter(f"{{{NS}}}ItemData")}
    assert "I.randomization.randomized_at" in items
    assert {oid for oid in items if "arm" in (oid or "").lower()} == {"I.randomization.arm"}
    site_only = trial.client("nurse1").get("/api/v1/exports/odm?audit=false")
    assert site_only.status_code == 200
    nurse_root = ET.fromstring(site_only.content)
    nurse_keys = {s.get("SubjectKey") for s in nurse_root.iter(f"{{{NS}}}SubjectData")}
    assert nurse_keys == {k for k in keys if k and k.startswith("C01-")}
    assert nurse_root.find(f".//{{{NS}}}AuditRecord") is None
    events = _export_events(trial)[before:]
    assert [(e.record_id, e.username) for e in events] == [
        ("odm-export", "stat"),
        ("odm-export", "nurse1"),
    ]
    assert trial.client("rev").get("/api/v1/exports/odm").status_code == 403
