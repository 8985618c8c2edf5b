"""Exports round-trip (pyreadstat, pandas), the stats CLI on lung.csv, and `reluth analyze`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest
from tests.conftest import EXAMPLES
from typer.testing import CliRunner

from reluth.analysis.datasets import VARIABLES, from_csv_dir
from reluth.analysis.exports import export_all
from reluth.analysis.synthetic import write_synthetic_csv
from reluth.cli import app
from reluth.protocol.definition import load_protocol

LUNG = EXAMPLES / "analysis" / "lung.csv"
runner = CliRunner()
PROTOCOL = load_protocol()


@pytest.fixture(scope="module")
def small_trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_csv(
        tmp_path_factory.mktemp("trial"), n_included=40, seed=11, protocol=PROTOCOL
    )


def test_exports_round_trip(small_trial: Path, tmp_path: Path) -> None:
    ds = from_csv_dir(small_trial, protocol=PROTOCOL)
    export_all(ds, tmp_path)
    for name, frame in ds.frames().items():
        xdf, xmeta = pyreadstat.read_xport(str(tmp_path / f"{name}.xpt"))
        assert list(xdf.columns) == list(frame.columns)
        assert all(len(c) <= 8 for c in xdf.columns)
        assert xmeta.column_names_to_labels["USUBJID"] == "Unique subject identifier"
        assert xdf["USUBJID"].tolist() == frame["USUBJID"].tolist()
        ddf, dmeta = pyreadstat.read_dta(str(tmp_path / f"{name}.dta"))
        assert list(ddf.columns) == list(frame.columns)
        assert dmeta.column_names_to_labels["USUBJID"] == "Unique subject identifier"
        cdf = pd.read_csv(tmp_path / f"{name}.csv")
        assert cdf.shape == frame.shape
    adtte = ds.adtte
    x, _ = pyreadstat.read_xport(str(tmp_path / "adtte.xpt"))
    assert x["AVAL"].tolist() == pytest.approx(adtte["AVAL"].tolist())
    assert x["CNSR"].tolist() == adtte["CNSR"].tolist()
    # Dates come back as dates in SAS and Stata.
    assert str(x["ADT"].iloc[0])[:10] == adtte["ADT"].iloc[0].isoformat()
    d, _ = pyreadstat.read_dta(str(tmp_path / "adsl.dta"))
    assert str(d["RANDDT"].dropna().iloc[0])[:10] == ds.adsl["RANDDT"].dropna().iloc[0].isoformat()
    desc = json.loads((tmp_path / "variables.json").read_text())
    adsl_vars = {v["name"]: v for v in desc["datasets"]["adsl"]["variables"]}
    assert adsl_vars["PPROTFL"]["derivation"] == VARIABLES["adsl"]["PPROTFL"][1]
    assert adsl_vars["RANDDT"]["type"] == "date" and adsl_vars["AGE"]["type"] == "numeric"


def _lung(command: str, *extra: str) -> list[str]:
    """`reluth stats COMMAND lung.csv` with the lung event coding (status 2 = death)."""
    base = ["stats", command, str(LUNG), "--time", "time", "--event", "status"]
    return [*base, "--event-value", "2", *extra]


def _json(args: list[str]) -> dict:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_stats_km_on_lung() -> None:
    out = _json(_lung("km", "--group", "sex", "--at", "365"))
    male, female = out["groups"]["1"], out["groups"]["2"]
    assert (male["median"], male["median_ci"]) == (270.0, [210.0, 306.0])
    assert (female["median"], female["median_ci"]) == (426.0, [345.0, 524.0])
    assert set(male) >= {"n", "events", "quartiles", "at"}
    allp = _json(_lung("km", "--conf-type", "log", "--at", "365"))["groups"]["all"]
    assert allp["median_ci"] == [285.0, 363.0]
    assert round(allp["at"][0]["survival"], 3) == 0.409


def test_stats_logrank_and_cox_on_lung() -> None:
    lr = _json(_lung("logrank", "--group", "sex"))
    assert round(lr["chisq"], 1) == 10.3 and lr["df"] == 1 and round(lr["p"], 5) == 0.00131
    cx = _json(_lung("cox", "--group", "sex", "--ties", "efron"))
    assert round(cx["hr"], 4) == 0.5880 and round(cx["p"], 5) == 0.00149 and cx["reference"] == "1"
    st = _json(_lung("cox", "--group", "sex", "--strata", "ph.ecog"))
    assert st["stratified"] and st["rows_dropped_missing"] == 1


def test_stats_dcr(tmp_path: Path) -> None:
    f = tmp_path / "dcr.csv"
    rows = (
        [("Lutathera", "Y")] * 62
        + [("Lutathera", "N")] * 11
        + [("Surveillance", "Y")] * 47
        + [("Surveillance", "")] * 26
    )
    pd.DataFrame(rows, columns=["arm", "dc6"]).to_csv(f, index=False)
    out = _json(
        ["stats", "dcr", str(f), "--success", "dc6", "--group", "arm", "--ref", "Surveillance"]
    )
    assert (
        out["groups"]["Lutathera"]["successes"] == 62 and out["groups"]["Surveillance"]["n"] == 73
    )
    assert out["difference"] == pytest.approx((62 - 47) / 73)
    assert out["test"] == "chi-square" and out["p"] < 0.05


def test_stats_sample_size() -> None:
    out = _json(["stats", "sample-size", "--method", "normal", "--json"])
    assert (out["n_per_arm"], out["n_total"], out["n_inclusions"]) == (73, 146, 176)
    res = runner.invoke(app, ["stats", "sample-size"])
    assert res.exit_code == 0 and "fleiss" in res.stdout and "exact" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stats", "km", "missing.csv", "--time", "t", "--event", "e"], "file not found"),
        (["stats", "km", str(LUNG), "--time", "nope", "--event", "status"], "no column 'nope'"),
        (["stats", "km", str(LUNG), "--time", "time", "--event", "status"], "is not 0/1"),
        (
            _lung("cox", "--group", "sex", "--ties", "exact"),
            "ties",
        ),
        (["analyze", "--out", "x"], "exactly one input"),
    ],
)
def test_cli_errors_are_one_line(args: list[str], message: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output


def test_analyze_writes_a_self_contained_report(small_trial: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = runner.invoke(
        app, ["analyze", "--data", str(small_trial), "--out", str(out), "--cutoff", "2025-06-30"]
    )
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text()
    assert "Data cut-off</td><td>2025-06-30" in html
    assert "Protocol version</td><td>1.0" in html and "Input data SHA-256" in html
    assert html.count("data:image/png;base64,") >= 9 and "src='http" not in html
    for name in (
        "consort",
        "km_pfs",
        "km_os",
        "forest_rpfs",
        "waterfall",
        "spider",
        "swimmer",
        "qol",
    ):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
        assert (out / "figures" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    results = json.loads((out / "results.json").read_text())
    ds = from_csv_dir(small_trial, protocol=PROTOCOL)
    assert results["meta"]["input_sha256"] == ds.input_hash
    assert results["dcr6_itt"]["groups"][0]["group"] == "Surveillance"
    assert (out / "datasets" / "adsl.xpt").exists()


def test_analyze_refuses_when_nobody_is_randomized(small_trial: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        ["analyze", "--data", str(small_trial), "--out", str(tmp_path), "--cutoff", "2021-10-02"],
    )
    assert res.exit_code == 7 and "no patient randomized by the cut-off 2021-10-02" in res.output
