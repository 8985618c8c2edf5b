"""`reluth design simulate|grid`: JSON output, files written, Dask scheduler, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reluth.cli import app

runner = CliRunner()


def test_simulate_json() -> None:
    result = runner.invoke(
        app,
        ["design", "simulate", "--n-sim", "20000", "--seed", "3", "--n-sim-pfs", "500", "--json"],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    power = out["primary"]["power"]
    assert power["exact"] == pytest.approx(0.80809, abs=1e-5)
    assert abs(power["simulated"] - power["exact"]) < 4 * power["mc_standard_error"]
    assert out["primary"]["normal_approx_n_per_arm"] == pytest.approx(72.39)
    assert out["primary"]["type_i_error"]["common_rate"] == 0.65
    assert out["pfs"]["power"]["n_sim"] == 500
    assert out["seed"] == 3
    # Same seed, same numbers.
    again = runner.invoke(
        app,
        ["design", "simulate", "--n-sim", "20000", "--seed", "3", "--n-sim-pfs", "500", "--json"],
    )
    assert {k: v for k, v in json.loads(again.stdout).items() if k != "elapsed_s"} == {
        k: v for k, v in out.items() if k != "elapsed_s"
    }


def test_simulate_table_output() -> None:
    result = runner.invoke(
        app, ["design", "simulate", "--n-sim", "2000", "--seed", "1", "--no-pfs"]
    )
    assert result.exit_code == 0, result.output
    assert "type I error" in result.stdout
    assert "72.39 per arm" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--p0", "1.5"], "--p0"),
        (["--alpha", "0"], "--alpha"),
        (["--n-per-arm", "0"], "--n-per-arm"),
        (["--hr", "-1"], "--hr"),
        (["--n-sim", "0", "--no-pfs"], "--n-sim"),
    ],
)
def test_simulate_bad_input(args: list[str], needle: str) -> None:
    result = runner.invoke(app, ["design", "simulate", *args])
    assert result.exit_code == 2
    assert needle in result.output
    assert "Traceback" not in result.output


def test_grid_local_writes_plot_and_csv(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    result = runner.invoke(
        app,
        [
            "design", "grid", "--n-per-arm", "30,73", "--p1", "0.85", "--hr", "0.6",
            "--n-sim", "2000", "--n-sim-pfs", "200", "--seed", "5", "--out", str(out), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert len(payload["cells"]) == 4
    assert (out / "power-curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((out / "grid.csv").open()))
    assert [(r["endpoint"], r["n_per_arm"]) for r in rows] == [
        ("dcr", "30"),
        ("dcr", "73"),
        ("pfs", "30"),
        ("pfs", "73"),
    ]
    dcr73 = next(c for c in payload["cells"] if c["endpoint"] == "dcr" and c["n_per_arm"] == 73)
    assert dcr73["exact_power"] == pytest.approx(0.80809, abs=1e-5)


def test_grid_bad_list(tmp_path: Path) -> None:
    result = runner.invoke(app, ["design", "grid", "--n-per-arm", "40,abc", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--n-per-arm" in result.output


def test_grid_bad_scheduler(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["design", "grid", "--scheduler", "localhost:8786", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "tcp://HOST:PORT" in result.output


@pytest.mark.slow
def test_grid_on_dask_cluster_matches_local(tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    args = [
        "design", "grid", "--n-per-arm", "40,73", "--p1", "0.8,0.85",
        "--n-sim", "3000", "--seed", "8", "--json",
    ]  # fmt: skip
    local = runner.invoke(app, [*args, "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        remote = runner.invoke(
            app, [*args, "--out", str(tmp_path / "dask"), "--scheduler", address]
        )
    assert remote.exit_code == 0, remote.output
    # Cells are seeded independently of where and in which order they run.
    assert json.loads(remote.stdout)["cells"] == json.loads(local.stdout)["cells"]


def test_cohort_command_writes_files_other_commands_read(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    result = runner.invoke(
        app, ["design", "cohort", "--out", str(out), "--seed", "3", "--n-included", "12", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["included"] == 12
    rows = json.loads((out / "cohort.json").read_text())["patients"]
    assert len(rows) == summary["screened"]
    for row in rows:
        folder = out / "patients" / row["patient_id"]
        check = runner.invoke(
            app, ["eligibility", "check", str(folder / "inclusion.json"), "--stage", "inclusion"]
        )
        assert check.exit_code == (0 if row["intended_inclusion_status"] == "eligible" else 1)
        if row["intended_randomization_status"] is not None:
            gate = runner.invoke(app, ["eligibility", "check", str(folder / "randomization.json")])
            assert gate.exit_code == (
                0 if row["intended_randomization_status"] == "eligible" else 1
            )
        if row["intended_randomization_status"] == "eligible":
            for arm in ("experimental", "control"):
                res = runner.invoke(
                    app, ["recist", "evaluate", str(folder / arm / "recist.json"), "--json"]
                )
                assert res.exit_code == 0, res.output
                assert (
                    json.loads(res.stdout)["disease_control_month6"]
                    == row[f"{arm}_disease_control_month6"]
                )


def test_cohort_command_bad_input(tmp_path: Path) -> None:
    result = runner.invoke(app, ["design", "cohort", "--out", str(tmp_path), "--p0", "1.5"])
    assert result.exit_code == 2
    assert "--p0" in result.output
