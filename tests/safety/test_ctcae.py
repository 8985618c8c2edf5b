"""CTCAE v5.0 lab grades: every boundary on both sides, in both unit systems.

Expected grades are written out here from the CTCAE v5.0 tables in clinical-rules.md §2.1, not
read from the YAML the engine uses, so a transcription error in the YAML makes these fail.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from reluth.cli import app
from reluth.errors import ValidationError
from reluth.safety.ctcae import (
    LabResult,
    definitions,
    grade,
    grade_all,
    parse_result,
    parse_results,
    summarize,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ctcae" / "labs.json"

# (test, unit, limits, [(value, grade), ...])
CASES: list[tuple[str, str, dict[str, Any], list[tuple[str, int]]]] = [
    ("hemoglobin", "g/dL", {"lln": "12"},
     [("12", 0), ("11.9", 1), ("10.0", 1), ("9.99", 2), ("8.0", 2), ("7.99", 3), ("3", 3)]),
    ("hemoglobin", "g/L", {"lln": "120"},
     [("120", 0), ("119.9", 1), ("100", 1), ("99.9", 2), ("80", 2), ("79.9", 3)]),
    ("hemoglobin", "mmol/L", {"lln": "7.4"},
     [("7.4", 0), ("7.39", 1), ("6.2", 1), ("6.19", 2), ("4.9", 2), ("4.89", 3)]),
    ("platelets", "10^9/L", {"lln": "150"},
     [("150", 0), ("149.9", 1), ("75", 1), ("74.9", 2), ("50", 2), ("49.9", 3), ("25", 3),
      ("24.9", 4)]),
    ("platelets", "/mm3", {"lln": "150000"},
     [("150000", 0), ("149999", 1), ("75000", 1), ("74999", 2), ("50000", 2), ("49999", 3),
      ("25000", 3), ("24999", 4)]),
    ("neutrophils", "10^9/L", {"lln": "2.0"},
     [("2.0", 0), ("1.99", 1), ("1.5", 1), ("1.49", 2), ("1.0", 2), ("0.99", 3), ("0.5", 3),
      ("0.49", 4)]),
    ("neutrophils", "/mm3", {"lln": "2000"},
     [("2000", 0), ("1999", 1), ("1500", 1), ("1499", 2), ("1000", 2), ("999", 3), ("500", 3),
      ("499", 4)]),
    ("neutrophils", "10^9/L", {"lln": "1.4"}, [("1.5", 0), ("1.45", 2)]),  # cut-off below LLN
    ("wbc", "10^9/L", {"lln": "4.0"},
     [("4.0", 0), ("3.99", 1), ("3.0", 1), ("2.99", 2), ("2.0", 2), ("1.99", 3), ("1.0", 3),
      ("0.99", 4)]),
    ("wbc", "cells/µL", {"lln": "4000"},
     [("4000", 0), ("3999", 1), ("3000", 1), ("2999", 2), ("2000", 2), ("1999", 3), ("1000", 3),
      ("999", 4)]),
    ("lymphocytes", "10^9/L", {"lln": "1.0"},
     [("1.0", 0), ("0.99", 1), ("0.8", 1), ("0.79", 2), ("0.5", 2), ("0.49", 3), ("0.2", 3),
      ("0.19", 4)]),
    ("lymphocytes", "/mm3", {"lln": "1000"},
     [("1000", 0), ("999", 1), ("800", 1), ("799", 2), ("500", 2), ("499", 3), ("200", 3),
      ("199", 4)]),
    ("creatinine", "mg/dL", {"uln": "1.0"},
     [("1.0", 0), ("1.01", 1), ("1.5", 1), ("1.51", 2), ("3.0", 2), ("3.01", 3), ("6.0", 3),
      ("6.01", 4)]),
    ("creatinine", "µmol/L", {"uln": "100"},
     [("100", 0), ("100.1", 1), ("150", 1), ("150.1", 2), ("300", 2), ("300.1", 3), ("600", 3),
      ("600.1", 4)]),
    # baseline criteria: the higher of the ULN and baseline grades wins
    ("creatinine", "mg/dL", {"uln": "1.2", "baseline": "0.5"},
     [("0.75", 0), ("0.76", 2), ("1.5", 2), ("1.51", 3), ("7.21", 4)]),
    ("egfr", "mL/min/1.73m2", {"lln": "90"},
     [("90", 0), ("89.9", 1), ("60", 1), ("59.9", 2), ("30", 2), ("29.9", 3), ("15", 3),
      ("14.9", 4)]),
    ("alt", "U/L", {"uln": "40", "baseline": "30"},
     [("40", 0), ("40.1", 1), ("120", 1), ("120.1", 2), ("200", 2), ("200.1", 3), ("800", 3),
      ("800.1", 4)]),
    ("alt", "U/L", {"uln": "40", "baseline": "60"},  # baseline abnormal
     [("89.9", 0), ("90", 1), ("180", 1), ("180.1", 2), ("300", 2), ("300.1", 3), ("1200", 3),
      ("1200.1", 4)]),
    ("alt", "U/L", {"uln": "40", "baseline": "40"}, [("40.1", 1)]),  # baseline = ULN is normal
    ("alt", "µkat/L", {"uln": "0.5"},
     [("0.5", 0), ("0.51", 1), ("1.5", 1), ("1.51", 2), ("2.5", 2), ("2.51", 3)]),
    ("ast", "U/L", {"uln": "35"},
     [("35", 0), ("35.1", 1), ("105", 1), ("105.1", 2), ("175", 2), ("175.1", 3), ("700", 3),
      ("700.1", 4)]),
    ("ast", "U/L", {"uln": "35", "baseline": "50"},
     [("74.9", 0), ("75", 1), ("150", 1), ("150.1", 2), ("1000", 3), ("1000.1", 4)]),
    ("bilirubin", "mg/dL", {"uln": "1.2"},
     [("1.2", 0), ("1.21", 1), ("1.8", 1), ("1.81", 2), ("3.6", 2), ("3.61", 3), ("12", 3),
      ("12.1", 4)]),
    ("bilirubin", "µmol/L", {"uln": "21"},
     [("21", 0), ("21.1", 1), ("31.5", 1), ("31.6", 2), ("63", 2), ("63.1", 3), ("210", 3),
      ("210.1", 4)]),
    ("bilirubin", "µmol/L", {"uln": "21", "baseline": "30"},
     [("30", 0), ("30.1", 1), ("45", 1), ("45.1", 2), ("90", 2), ("90.1", 3), ("300", 3),
      ("300.1", 4)]),
    ("alp", "U/L", {"uln": "120"},
     [("120", 0), ("120.1", 1), ("300", 1), ("300.1", 2), ("600", 2), ("600.1", 3), ("2400", 3),
      ("2400.1", 4)]),
    ("alp", "µkat/L", {"uln": "2.0"},
     [("2.0", 0), ("2.01", 1), ("5.0", 1), ("5.01", 2), ("10.0", 2), ("10.01", 3), ("40", 3),
      ("40.01", 4)]),
    ("ast", "ukat/L", {"uln": "0.6"},
     [("0.6", 0), ("0.61", 1), ("1.8", 1), ("1.81", 2), ("3.0", 2), ("3.01", 3), ("12", 3),
      ("12.01", 4)]),
    ("alp", "U/L", {"uln": "120", "baseline": "150"},
     [("299.9", 0), ("300", 1), ("375", 1), ("375.1", 2), ("750", 2), ("750.1", 3), ("3000", 3),
      ("3000.1", 4)]),
]  # fmt: skip

FLAT = [(t, u, lim, v, g) for t, u, lim, pairs in CASES for v, g in pairs]


@pytest.mark.parametrize(("test", "unit", "limits", "value", "expected"), FLAT)
def test_grade_boundaries(
    test: str, unit: str, limits: dict[str, Any], value: str, expected: int
) -> None:
    result = grade(LabResult.of(test, value, unit, **limits))
    assert result.grade == expected, result.rule
    assert f"grade {expected}" in result.rule


def test_float_input_is_exact_at_three_times_uln() -> None:
    # in binary floating point 3 * 0.1 = 0.30000000000000004, so float code would compare
    # 0.3 > 3 x ULN wrongly; JSON numbers go through their text form: exactly 3 x ULN is grade 1
    graded = grade(parse_result({"test": "alt", "value": 0.3, "unit": "µkat/L", "uln": 0.1}))
    assert graded.grade == 1
    graded = grade(parse_result({"test": "alt", "value": 0.30001, "unit": "µkat/L", "uln": 0.1}))
    assert graded.grade == 2


def test_limits_in_their_own_units() -> None:
    # ULN 88.4 µmol/L = 1.0 mg/dL exactly: 1.5 mg/dL is exactly 1.5 x ULN (grade 1)
    raw = {"test": "creatinine", "value": 1.5, "unit": "mg/dL"}
    assert grade(parse_result({**raw, "uln": {"value": 88.4, "unit": "µmol/L"}})).grade == 1
    graded_2 = grade(parse_result({**raw, "value": 1.51, "uln": {"value": 88.4, "unit": "umol/L"}}))
    assert graded_2.grade == 2
    # Hb entered in mmol/L keeps the mmol/L cut-offs (6.2 mmol/L is grade 1, not 2)
    hb = {
        "test": "hemoglobin",
        "value": 6.2,
        "unit": "mmol/L",
        "lln": {"value": 12, "unit": "g/dL"},
    }
    graded = grade(parse_result(hb))
    assert graded.grade == 1 and graded.unit == "mmol/L"
    assert "7.4472" in graded.rule


def test_result_fields_and_meddra_codes() -> None:
    graded = grade(LabResult.of("neutrophils", "0.4", "10^9/L"))
    assert (graded.term, graded.meddra_code, graded.grade) == (
        "Neutrophil count decreased",
        "10029366",
        4,
    )
    codes = {k: d.meddra_code for k, d in definitions().items()}
    assert codes == {
        "hemoglobin": "10002272",
        "platelets": "10035528",
        "neutrophils": "10029366",
        "wbc": "10049182",
        "lymphocytes": "10025256",
        "creatinine": "10011368",
        "egfr": "10064848",
        "alt": "10001551",
        "ast": "10003481",
        "bilirubin": "10005364",
        "alp": "10001675",
    }
    assert definitions()["egfr"].verified is False  # CKD text is from memory (§6)
    assert definitions()["hemoglobin"].max_grade == 3


def test_limits_are_required_only_where_they_decide() -> None:
    # 0.4 is grade 4 whatever the LLN; 1.6 needs the LLN to tell grade 0 from grade 1
    assert grade(LabResult.of("neutrophils", "0.4", "10^9/L")).grade == 4
    with pytest.raises(ValidationError, match=r"neutrophils\.lln"):
        grade(LabResult.of("neutrophils", "1.6", "10^9/L"))
    with pytest.raises(ValidationError, match=r"alt\.uln"):
        grade(LabResult.of("alt", "100", "U/L"))
    with pytest.raises(ValidationError, match=r"creatinine\.uln"):
        grade(LabResult.of("creatinine", "1.0", "mg/dL", baseline="0.5"))
    # a CKD value below 60 is graded without an LLN
    assert grade(LabResult.of("egfr", "59", "mL/min/1.73m2")).grade == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"test": "sodium", "value": 130, "unit": "mmol/L"}, r"results\[0\]\.test"),
        ({"test": "alt", "value": 30, "unit": "mg/dL", "uln": 40}, "unknown unit"),
        ({"test": "alt", "value": -1, "unit": "U/L", "uln": 40}, "negative"),
        ({"test": "alt", "value": "x", "unit": "U/L", "uln": 40}, r"results\[0\]\.value"),
        ({"test": "alt", "value": 30, "unit": "U/L", "uln": 40, "date": "2024-13-01"}, "date"),
        ({"test": "alt", "value": 30, "unit": "U/L", "uln": {"value": 1, "unit": "g"}}, "uln"),
    ],
)
def test_bad_input(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_results([raw])


def test_missing_limit_is_named_by_position() -> None:
    results = parse_results([{"test": "wbc", "value": 3.5, "unit": "10^9/L", "lln": 4},
                             {"test": "wbc", "value": 3.5, "unit": "10^9/L"}])  # fmt: skip
    with pytest.raises(ValidationError, match=r"results\[1\]\.lln"):
        grade_all(results)


def _d(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


def test_worst_grade_per_term_over_a_period_and_shift() -> None:
    def plt(value: str, date: str) -> LabResult:
        return LabResult.of("platelets", value, "10^9/L", lln="150", baseline="210", date=_d(date))

    results = [
        plt("140", "2024-01-10"),
        plt("45", "2024-02-07"),
        plt("45", "2024-03-06"),
        plt("20", "2024-06-01"),
        LabResult.of("alt", "50", "U/L", uln="40", date=_d("2024-02-07")),
    ]
    summary = {s.test: s for s in summarize(results, _d("2024-01-01"), _d("2024-03-31"))}
    platelets = summary["platelets"]
    assert (platelets.worst_grade, platelets.worst_date, platelets.n_results) == (
        3,
        _d("2024-02-07"),
        3,
    )
    assert (platelets.baseline_grade, platelets.shift) == (0, "0->3")
    assert summary["alt"].shift == "?->1"
    everything = {s.test: s for s in summarize(results)}
    assert everything["platelets"].worst_grade == 4
    undated = [LabResult.of("alt", "50", "U/L", uln="40")]
    with pytest.raises(ValidationError, match=r"results\[0\]\.date"):
        summarize(undated, start=_d("2024-01-01"))


# ---- properties -------------------------------------------------------------------------------

DECREASED = ["platelets", "neutrophils", "wbc", "lymphocytes"]
amount = st.integers(min_value=0, max_value=500_000)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(DECREASED), amount, amount, st.integers(100, 400_000))
def test_counts_monotone_and_unit_invariant(test: str, a: int, b: int, lln: int) -> None:
    low, high = sorted((a, b))
    per_mm3 = [grade(LabResult.of(test, v, "/mm3", lln=lln)).grade for v in (low, high)]
    assert per_mm3[0] >= per_mm3[1]  # a lower count is never a lower grade
    si = grade(LabResult.of(test, Decimal(low) / 1000, "10^9/L", lln=Decimal(lln) / 1000))
    assert si.grade == per_mm3[0]
    assert 0 <= si.grade <= 4


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2000), st.integers(50, 2000))
def test_hemoglobin_same_grade_in_g_dl_and_g_l(tenths_g_dl: int, lln_tenths: int) -> None:
    g_dl = Decimal(tenths_g_dl) / 10
    lln = Decimal(lln_tenths) / 10
    a = grade(LabResult.of("hemoglobin", g_dl, "g/dL", lln=lln)).grade
    b = grade(LabResult.of("hemoglobin", g_dl * 10, "g/L", lln=lln * 10)).grade
    assert a == b


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(["alt", "ast", "bilirubin", "alp", "creatinine"]),
    amount,
    amount,
    st.integers(1, 5000),
    st.one_of(st.none(), st.integers(1, 20000)),
)
def test_increased_terms_monotone(test: str, a: int, b: int, uln: int, base: int | None) -> None:
    low, high = sorted((a, b))
    grades = [grade(LabResult.of(test, v, "U/L" if test in ("alt", "ast", "alp") else "µmol/L",
                                 uln=uln, baseline=base)).grade for v in (low, high)]  # fmt: skip
    assert grades[0] <= grades[1] and all(0 <= g <= 4 for g in grades)


# ---- CLI --------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_example_json() -> None:
    result = runner.invoke(app, ["ctcae", "grade", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    first = data["results"][0]
    assert {"test", "term", "meddra_code", "grade", "rule"} <= set(first)
    grades = [r["grade"] for r in data["results"]]
    assert grades == [2, 1, 2, 2, 3, 3, 2, 1, 1, 1]
    worst = {s["test"]: s for s in data["summary"]}
    assert worst["hemoglobin"]["worst_grade"] == 2 and worst["hemoglobin"]["shift"] == "1->2"


def test_cli_table_and_period() -> None:
    result = runner.invoke(app, ["ctcae", "grade", str(EXAMPLE), "--from", "2024-03-01"])
    assert result.exit_code == 0, result.output
    assert "Alkaline phosphatase" in result.stdout


def test_cli_unknown_term_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"test": "troponin", "value": 1, "unit": "ng/L"}]))
    result = runner.invoke(app, ["ctcae", "grade", str(bad)])
    assert result.exit_code == 2
    assert "troponin" in result.output and "Traceback" not in result.output


# ---- The rule in the reader's language (issue 18) -----------------------------------------


def _said(graded: Any, lang: str) -> str:
    from reluth.i18n import use_locale

    with use_locale(lang):
        return str(graded.message.render()).replace("\u202f", " ")


@pytest.mark.parametrize(
    ("value", "english", "french"),
    [
        ("150", "grade 0: no CTCAE v5.0 criterion met (150 10^9/L)",
         "grade 0 : aucun critère CTCAE v5.0 rempli (150 10^9/L)"),
        ("149.9", "grade 1: 149.9 10^9/L < LLN (150 10^9/L)",
         "grade 1 : 149,9 10^9/L < LIN (150 10^9/L)"),
        ("75", "grade 1: 75 10^9/L < LLN (150 10^9/L)", "grade 1 : 75 10^9/L < LIN (150 10^9/L)"),
        ("74.9", "grade 2: 74.9 10^9/L < 75 10^9/L", "grade 2 : 74,9 10^9/L < 75 10^9/L"),
    ],
)  # fmt: skip
def test_the_rule_both_sides_of_the_lln_in_both_languages(
    value: str, english: str, french: str
) -> None:
    graded = grade(LabResult.of("platelets", value, "10^9/L", lln="150"))
    assert graded.rule.startswith(english) and _said(graded, "en") == graded.rule
    assert _said(graded, "fr").startswith(french)


def test_the_baseline_branch_and_a_missing_limit_in_french() -> None:
    graded = grade(LabResult.of("alp", "300", "U/L", uln="120", baseline="150"))
    assert "[baseline abnormal: graded against baseline]" in graded.rule
    assert "[valeur initiale anormale : gradé par rapport à la valeur initiale]" in (
        _said(graded, "fr")
    )
    from reluth.i18n import use_locale
    from reluth.i18n.messages import describe

    with pytest.raises(ValidationError) as exc:
        grade(LabResult.of("alp", "300", "U/L"))
    assert exc.value.field == "alp.uln"
    with use_locale("fr"):
        text = describe(exc.value)
    assert text == (
        "Phosphatases alcalines (limite supérieure de la normale) : nécessaire pour grader cet "
        "examen (accepté : la limite supérieure de la normale)"
    )
