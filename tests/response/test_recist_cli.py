"""``reluth recist evaluate``: the README example runs; bad input gives exit 2 and one line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from reluth.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recist" / "assessments.json"
runner = CliRunner()


def test_example_json_output_has_documented_keys() -> None:
    result = runner.invoke(app, ["recist", "evaluate", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"best_overall_response", "first_pd_date", "disease_control_month6"} <= set(data)
    tp = data["time_points"][0]
    assert {
        "date",
        "sum_mm",
        "change_from_baseline_pct",
        "change_from_nadir_pct",
        "target",
        "non_target",
        "new_lesions",
        "overall",
    } <= set(tp)
    assert data["best_overall_response"] == "PR"
    assert data["disease_control_month6"] is True
    assert data["landmark_window"] == {"start": "2024-06-03", "end": "2024-07-29"}


def test_example_table_output() -> None:
    result = runner.invoke(app, ["recist", "evaluate", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "Best overall response" in result.stdout and "PR" in result.stdout


def test_options_change_the_result(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["recist", "evaluate", str(EXAMPLE), "--json", "--landmark-window", "3"]
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["disease_control_month6"] is True
    result = runner.invoke(
        app, ["recist", "evaluate", str(EXAMPLE), "--json", "--landmark-day", "200",
              "--landmark-window", "7"]
    )  # fmt: skip
    assert json.loads(result.stdout)["disease_control_month6"] is False


def test_unknown_lesion_is_exit_2_without_traceback(tmp_path: Path) -> None:
    data = json.loads(EXAMPLE.read_text())
    data["followups"][0]["lesions"].append({"id": "T99", "diameter_mm": 4})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = runner.invoke(app, ["recist", "evaluate", str(bad)])
    assert result.exit_code == 2
    assert "T99" in result.output and "Traceback" not in result.output


def test_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["recist", "evaluate", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "not found" in result.output


def test_negative_option_is_refused() -> None:
    result = runner.invoke(app, ["recist", "evaluate", str(EXAMPLE), "--min-sd-days", "-1"])
    assert result.exit_code == 2 and "min_sd_duration_days" in result.output
