from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reluth.cli import app

EX = Path(__file__).resolve().parents[2] / "examples" / "patients"
runner = CliRunner()


@pytest.mark.parametrize(
    ("name", "code", "status"),
    [
        ("eligible.json", 0, "eligible"),
        ("not-eligible-low-platelets.json", 1, "not_eligible"),
        ("not-eligible-renal.json", 1, "not_eligible"),
        ("not-eligible-pancreatic.json", 1, "not_eligible"),
        ("not-eligible-progression-after-second-prrt.json", 1, "not_eligible"),
        ("incomplete-missing-hb-and-consent.json", 3, "incomplete"),
    ],
)
def test_eligibility_exit_codes(name: str, code: int, status: str) -> None:
    r = runner.invoke(
        app, ["eligibility", "check", str(EX / name), "--json", "--as-of", "2025-03-05"]
    )
    assert r.exit_code == code, r.output
    assert json.loads(r.stdout)["status"] == status


def test_eligible_example_strata_in_json() -> None:
    r = runner.invoke(
        app, ["eligibility", "check", str(EX / "eligible.json"), "--json", "--as-of", "2025-03-05"]
    )
    out = json.loads(r.stdout)
    assert out["strata"]["code"] == "DCge18-PRrad-GFRge60-ITno"
    assert out["derived"]["egfr_ml_min_1_73m2"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        (
            '{"patient_id": "C01-0001", "assessment_date": "2025-01-01", "age": 300}',
            "Age: 300 — it must be at most 120",
        ),
        (
            '{"patient_id": "C01-0001", "assessment_date": "2025-01-01", "labs": {"creatinine": {"value": -2, "unit": "mg/dL"}}}',
            "Creatinine: negative value -2 (accepted: a value >= 0)",
        ),
    ],
)
def test_bad_input_exits_2_without_traceback(tmp_path: Path, content: str, needle: str) -> None:
    f = tmp_path / "p.json"
    f.write_text(content)
    r = runner.invoke(app, ["eligibility", "check", str(f)])
    assert r.exit_code == 2
    assert needle in r.output
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_missing_file_exits_2(tmp_path: Path) -> None:
    r = runner.invoke(app, ["eligibility", "check", str(tmp_path / "nope.json")])
    assert r.exit_code == 2 and "not found" in r.output


def test_schema_is_json_schema_with_the_agreed_top_level_keys() -> None:
    r = runner.invoke(app, ["eligibility", "schema"])
    schema = json.loads(r.stdout)
    for key in (
        "patient_id",
        "assessment_date",
        "age",
        "sex",
        "ecog",
        "labs",
        "first_prrt",
        "second_prrt",
        "progression",
        "sstr_imaging",
        "lesions",
        "histology",
    ):
        assert key in schema["properties"]


def test_schedule_json_and_window_status(tmp_path: Path) -> None:
    visits = tmp_path / "v.json"
    visits.write_text(json.dumps({"C3": "2025-01-10", "TA-W08": "2025-03-20"}))
    r = runner.invoke(
        app,
        [
            "schedule",
            "--randomized",
            "2025-01-06",
            "--arm",
            "experimental",
            "--as-of",
            "2025-04-01",
            "--visits",
            str(visits),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    by_code = {v["code"]: v for v in json.loads(r.stdout)}
    assert by_code["C3"]["status"] == "in_window"
    assert by_code["TA-W08"]["status"] == "late"
    assert by_code["C4"]["status"] == "missed"
    assert by_code["TA-W16"]["status"] == "upcoming"


def test_schedule_bad_date_and_arm() -> None:
    r = runner.invoke(app, ["schedule", "--randomized", "2025-13-01", "--arm", "control"])
    assert r.exit_code == 2 and "--randomized" in r.output
    r = runner.invoke(app, ["schedule", "--randomized", "2025-01-01", "--arm", "placebo"])
    assert r.exit_code == 2 and "arm" in r.output


def test_protocol_show_json() -> None:
    r = runner.invoke(app, ["protocol", "show", "--json"])
    data = json.loads(r.stdout)
    assert data["sample_size"]["randomized"] == 146 and data["sample_size"]["included"] == 176
    assert [a["code"] for a in data["arms"]] == ["experimental", "control"]
    assert "schedule.landmark_month6" in data["assumptions"]
