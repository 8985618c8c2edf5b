"""The site investigator's local tumour assessment (RECIST 1.1): entered through its page, the
JSON API and `reluth record local-assessment`, evaluated by the same engine as central review,
stored apart from central reads (central review never lists them; the central reviewer may not
open them), and exported in ADRS as the INV* parameters with RSEVAL = INVESTIGATOR while central
review's records keep their parameters and values."""

from __future__ import annotations

import json
from pathlib import Path

from test_web_api_review import BASELINE, WEEK8
from typer.testing import CliRunner
from web_support import PASSWORD, Site, randomized_via_api, setup_randomization

from reluth.cli import app as cli_app


def test_api_records_local_assessments_apart_from_central_review(site: Site) -> None:
    setup_randomization(site.app)
    code = randomized_via_api(site)
    inv = site.client("inv1")
    url = f"/api/v1/patients/{code}/local-assessments"
    assert inv.post(url, json=WEEK8).status_code == 422  # baseline first
    saved = inv.post(url, json=BASELINE)
    assert saved.status_code == 201, saved.text
    assert saved.json()["target_sum_mm"] == 60
    follow = inv.post(url, json=WEEK8)
    assert follow.status_code == 201, follow.text
    assert follow.json()["overall_response"] == "PR"  # 40 mm, -33 %: the engine's call
    again = inv.post(url, json=WEEK8)
    assert again.status_code == 409
    shown = inv.get(url).json()
    assert shown["reader"] == "local" and [r["timepoint"] for r in shown["reads"]] == [
        "baseline",
        "week8",
    ]
    assert shown["outcome"]["best_overall_response"] in ("PR", "SD")  # PR needs confirmation?
    # central review: still no read, and the reviewer may not open the local assessments
    rev = site.client("rev")
    assert rev.get(f"/api/v1/review/{code}").json()["reads"] == []
    assert rev.get(url).status_code == 403
    assert rev.get(f"/patients/{code}/local-assessment").status_code == 403
    assert site.client("inv2").get(url).status_code == 404  # another centre
    assert site.client("mon1").post(url, json=BASELINE).status_code == 403

    with site.reading_as("stat") as ctx:
        from reluth.analysis import service as analysis

        adrs = analysis.analysis_datasets(ctx).adrs
    mine = adrs[adrs["USUBJID"].str.endswith(code)]
    local = mine[mine["RSEVAL"] == "INVESTIGATOR"]
    assert set(local["PARAMCD"]) >= {"INVRESP", "INVBOR", "INVPD", "INVDCR6"}
    point = local[local["PARAMCD"] == "INVRESP"]
    assert list(point["AVALC"]) == ["PR"] and all(point["SRCID"].str.startswith("local"))
    central = mine[mine["RSEVAL"] == "INDEPENDENT ASSESSOR"]
    assert "INVRESP" not in set(central["PARAMCD"]) and "OVRLRESP" not in set(central["PARAMCD"])
    assert set(adrs.loc[adrs["PARAMCD"] == "OVRLRESP", "RSEVAL"]) <= {"INDEPENDENT ASSESSOR"}


def test_local_assessment_page_evaluates_and_saves(site: Site) -> None:
    setup_randomization(site.app)
    code = randomized_via_api(site)
    nurse = site.client("nurse1")
    assert f'href="/patients/{code}/local-assessment"' in nurse.get(f"/patients/{code}").text
    page = nurse.get(f"/patients/{code}/local-assessment")
    assert page.status_code == 200
    assert f'action="/patients/{code}/local-assessment"' in page.text
    form = {"timepoint": "baseline", "assessment_date": "01/03/2025", "modality": "MRI",
            "id_0": "T1", "organ_0": "liver", "kind_0": "target", "diameter_0": "32,5"}  # fmt: skip
    live = nurse.post(f"/patients/{code}/local-assessment/evaluate", data=form)
    assert live.status_code == 200 and "32.5" in live.text.replace(",", ".")
    saved = nurse.post(f"/patients/{code}/local-assessment", data=form)
    assert saved.status_code == 303, saved.text
    shown = nurse.get(saved.headers["location"])
    assert 'data-testid="saved"' in shown.text and "MRI" in shown.text
    bad = nurse.post(
        f"/patients/{code}/local-assessment",
        data={**form, "timepoint": "week8", "assessment_date": "2025-03-13"},
    )
    assert bad.status_code == 422 and 'value="week8"' in bad.text  # future: kept, refused


def test_reluth_record_local_assessment(site: Site, tmp_path: Path) -> None:
    setup_randomization(site.app)
    code = randomized_via_api(site)
    file = tmp_path / "local.json"
    file.write_text(json.dumps([{"patient_id": code, **BASELINE}, {"patient_id": code, **WEEK8}]))
    env = {
        "RELUTH_DATABASE_URL": site.app.state.engine.url.render_as_string(hide_password=False),
        "RELUTH_CONFIG_DIR": str(tmp_path / "config"),
        "RELUTH_TOKEN": None,
    }
    login = CliRunner().invoke(
        cli_app, ["login", "inv1", "--password-stdin"], input=f"{PASSWORD}\n", env=env
    )
    assert login.exit_code == 0, login.output
    env["RELUTH_TOKEN"] = login.stdout.strip().splitlines()[-1]
    done = CliRunner().invoke(cli_app, ["record", "local-assessment", str(file), "--json"], env=env)
    assert done.exit_code == 0, done.output
    assert [d["patient_id"] for d in json.loads(done.output)] == [code, code]
    shown = site.client("inv1").get(f"/api/v1/patients/{code}/local-assessments").json()
    assert [r["overall_response"] for r in shown["reads"]] == [None, "PR"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"patient_id": code, **BASELINE, "colour": "red"}))
    refused = CliRunner().invoke(cli_app, ["record", "local-assessment", str(bad)], env=env)
    assert refused.exit_code == 2 and "colour" in refused.output
