"""One threshold changed in a copy of the protocol file (platelets 80 000 -> 100 000/mm3, i.e.
80 -> 100 x 10^9/L as the file writes it) changes the eligibility engine's verdict, its reason
and the criterion's text, and the CLI's, with both sides of each boundary; nothing else moves.
The screening page's side is tests/web/test_web_amended_protocol.py."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from tests.protocol.amended import amended_copy
from typer.testing import CliRunner

from reluth.cli import app
from reluth.errors import ValidationError
from reluth.protocol.definition import DEFAULT_PATH, Protocol, load_protocol
from reluth.protocol.eligibility import CriterionResult, check_eligibility
from reluth.protocol.patient import parse_patient

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "patients" / "eligible.json"
SHIPPED = load_protocol()


@pytest.fixture(scope="module")
def amended(tmp_path_factory: pytest.TempPathFactory) -> Protocol:
    return load_protocol(amended_copy(tmp_path_factory.mktemp("protocol"), "100"))


def _with_platelets(value: str, unit: str) -> dict[str, Any]:
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["labs"]["platelets"] = {"value": value, "unit": unit}
    return data


def _i11(data: dict[str, Any], protocol: Protocol) -> CriterionResult:
    result = check_eligibility(parse_patient(data), protocol, stage="inclusion")
    return next(c for c in result.criteria if c.id == "I11")


def test_the_copy_differs_from_the_shipped_file_in_the_threshold_only(amended: Protocol) -> None:
    assert amended.eligibility.platelets_min_10e9_l == 100
    assert SHIPPED.eligibility.platelets_min_10e9_l == 80
    assert (
        amended.model_copy(
            update={
                "eligibility": amended.eligibility.model_copy(update={"platelets_min_10e9_l": 80})
            }
        )
        == SHIPPED
    )


@pytest.mark.parametrize(
    ("value", "unit", "shipped_passes", "amended_passes"),
    [
        ("80000", "/mm3", True, False),  # the shipped boundary, now below the threshold
        ("79999", "/mm3", False, False),
        ("100000", "/mm3", True, True),  # the amended boundary
        ("99999", "/mm3", True, False),
        ("100", "10^9/L", True, True),
        ("99.999", "10^9/L", True, False),
        ("80", "10^9/L", True, False),
        ("79.999", "10^9/L", False, False),
    ],
)
def test_the_verdict_follows_the_threshold_on_both_sides(
    amended: Protocol, value: str, unit: str, shipped_passes: bool, amended_passes: bool
) -> None:
    data = _with_platelets(value, unit)
    assert _i11(data, SHIPPED).passes is shipped_passes
    assert _i11(data, amended).passes is amended_passes
    status = check_eligibility(parse_patient(data), amended, stage="inclusion").status
    assert status == ("eligible" if amended_passes else "not_eligible")


def test_the_text_and_the_reason_follow_the_threshold(amended: Protocol) -> None:
    below, at = _with_platelets("99999", "/mm3"), _with_platelets("100000", "/mm3")
    text = "platelets >= 100 000/mm3"
    assert _i11(below, amended).text.endswith(text)
    assert "80 000" not in _i11(below, amended).text
    assert _i11(below, SHIPPED).text.endswith("platelets >= 80 000/mm3")
    assert "Platelets: 99999 /mm³ — it must be at least 100000 /mm³ (criterion I11)" in (
        _i11(below, amended).reason
    )
    assert "Platelets: 100000 /mm³ (at least 100000 /mm³)" in _i11(at, amended).reason
    assert "Platelets: 99999 /mm³ (at least 80000 /mm³)" in _i11(below, SHIPPED).reason


def test_no_other_criterion_moves(amended: Protocol) -> None:
    data = _with_platelets("184000", "/mm3")
    a = check_eligibility(parse_patient(data), amended)
    b = check_eligibility(parse_patient(copy.deepcopy(data)), SHIPPED)
    assert [c for c in a.criteria if c.id != "I11"] == [c for c in b.criteria if c.id != "I11"]
    assert a.status == b.status == "eligible"


def test_the_cli_reads_the_copy_named_by_reluth_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, amended: Protocol
) -> None:
    patient = tmp_path / "patient.json"
    patient.write_text(json.dumps(_with_platelets("99999", "/mm3")), encoding="utf-8")
    command = ["eligibility", "check", str(patient), "--json", "--as-of", "2025-03-05"]
    runner = CliRunner()

    shipped = runner.invoke(app, command)
    monkeypatch.setenv("RELUTH_PROTOCOL", str(amended_copy(tmp_path, "100")))
    changed = runner.invoke(app, command)

    assert (shipped.exit_code, changed.exit_code) == (0, 1)  # eligible, then not eligible
    i11 = {r.exit_code: next(c for c in json.loads(r.stdout)["criteria"] if c["id"] == "I11")
           for r in (shipped, changed)}  # fmt: skip
    assert i11[1]["text"].endswith("platelets >= 100 000/mm3")
    assert "it must be at least 100000 /mm³" in i11[1]["reason"]
    assert i11[1]["message"]["params"]["parts"]["joined"][1][2]["reason"]["key"] == (
        "eligibility.lab_below"
    )
    assert i11[0]["text"].endswith("platelets >= 80 000/mm3")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (  # a placeholder naming no threshold
            "{platelets_min_10e9_l:platelets /mm3}/mm3",
            "{platelet_min:platelets /mm3}/mm3",
            r"criteria\.inclusion\.I11",
        ),
        ("egfr_equation: MDRD-IDMS-175", "egfr_equation: CKD-EPI-2021", "egfr_equation"),
        ("egfr_race_factor: false", "egfr_race_factor: true", "egfr_race_factor"),
        (
            "allocation_ratio: {experimental: 1, control: 1}",
            "allocation_ratio: {experimental: 1}",
            "allocation_ratio",
        ),
    ],
)
def test_a_copy_the_code_cannot_honour_is_refused_at_load_naming_the_key(
    tmp_path: Path, old: str, new: str, field: str
) -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    assert text.count(old) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(ValidationError, match=field):
        load_protocol(bad)


def test_a_criterion_without_a_rule_is_refused_naming_it(tmp_path: Path) -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    anchor = "      I13:\n"  # a new criterion, English only, before I13
    assert text.count(anchor) == 1
    extra = tmp_path / "extra-criterion.yaml"
    extra.write_text(text.replace(anchor, "      I14: Something new\n" + anchor), "utf-8")
    protocol = load_protocol(extra)
    with pytest.raises(ValidationError, match=r"eligibility\.criteria\.inclusion\.I14"):
        check_eligibility(parse_patient(_with_platelets("184000", "/mm3")), protocol)
