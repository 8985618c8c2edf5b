"""EORTC scoring: the QLQ-C30 test vectors of clinical-rules.md §3.6, the half-items rule,
the summary score, direction-aware deterioration, GI.NET21 definition, CLI."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from reluth.cli import app
from reluth.errors import ValidationError
from reluth.qol.scoring import (
    change_from_baseline,
    instrument,
    load_instrument_text,
    score,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "qol"
C30 = ["QL", "PF", "RF", "EF", "CF", "SF", "FA", "NV", "PA", "DY", "SL", "AP", "CO", "DI", "FI"]
FUNCTIONAL = {"PF", "RF", "EF", "CF", "SF"}

MIXED: dict[str, Any] = {
    "1": 1, "2": 2, "3": 2, "4": 1, "5": None, "6": 2, "7": None, "8": 3, "9": 2, "10": 2,
    "11": 1, "12": 3, "13": None, "14": 1, "15": 1, "16": 2, "17": 4, "18": None, "19": 3,
    "20": 1, "21": 2, "22": 3, "23": 2, "24": 1, "25": 2, "26": 1, "27": 2, "28": 2, "29": 5,
    "30": 6,
}  # fmt: skip


def all_items(value_1_28: int, value_29_30: int) -> dict[int, int]:
    return {i: (value_1_28 if i <= 28 else value_29_30) for i in range(1, 31)}


def test_best_possible_answers() -> None:
    result = score("QLQ-C30", all_items(1, 7))
    assert list(result.scales) == C30
    for code, value in result.scales.items():
        expected = 0 if code not in FUNCTIONAL | {"QL"} else 100
        assert value == expected, code
    assert result.summary == 100


def test_worst_possible_answers() -> None:
    result = score("QLQ-C30", all_items(4, 1))
    for code, value in result.scales.items():
        expected = 100 if code not in FUNCTIONAL | {"QL"} else 0
        assert value == expected, code
    assert result.summary == 0


def test_mixed_vector_with_missing_items() -> None:
    result = score("QLQ-C30", MIXED)
    expected = {
        "QL": "75.00", "PF": "83.33", "RF": "66.67", "EF": "66.67", "CF": "83.33",
        "SF": "83.33", "FA": "50.00", "NV": "0.00", "PA": "50.00", "DY": "66.67", "SL": "0.00",
        "AP": None, "CO": "33.33", "DI": "100.00", "FI": "33.33",
    }  # fmt: skip
    assert {k: None if v is None else str(v) for k, v in result.scales.items()} == expected
    assert result.summary is None  # AP missing
    assert result.exact["PF"] == Fraction(250, 3)  # RS 1.5 over 4 answered items
    assert result.answered["PF"] == 4


def test_pf_missing_when_fewer_than_half_answered() -> None:
    items = {**MIXED, "1": None, "2": None, "3": None}
    assert score("QLQ-C30", items).scales["PF"] is None


@pytest.mark.parametrize(
    ("scale", "items", "minimum"),
    [("PF", [1, 2, 3, 4, 5], 3), ("EF", [21, 22, 23, 24], 2), ("FA", [10, 12, 18], 2),
     ("RF", [6, 7], 1), ("QL", [29, 30], 1), ("DY", [8], 1)],
)  # fmt: skip
def test_half_items_rule(scale: str, items: list[int], minimum: int) -> None:
    for answered in range(len(items) + 1):
        answers = {i: 2 for i in items[:answered]}
        value = score("QLQ-C30", answers).scales[scale]
        assert (value is not None) == (answered >= minimum), (scale, answered)


def test_summary_score_formula() -> None:
    answers = {i: 1 + (i % 4) for i in range(1, 29)} | {29: 3, 30: 5}
    result = score("QLQ-C30", answers)
    components = ["PF", "RF", "EF", "CF", "SF", "FA", "NV", "PA", "DY", "SL", "AP", "CO", "DI"]
    by_hand = (
        sum(
            (result.exact[c] if c in FUNCTIONAL else 100 - result.exact[c])  # type: ignore[operator]
            for c in components
        )
        / 13
    )
    assert result.exact_summary == by_hand
    # QL and FI do not enter the summary
    other = score("QLQ-C30", answers | {29: 7, 30: 7, 28: 4})
    assert other.exact_summary == result.exact_summary


def test_global_health_is_not_inverted() -> None:
    # a known pitfall (§3.3): QL uses (RS - 1)/6, higher = better
    assert score("QLQ-C30", {29: 7, 30: 7}).scales["QL"] == 100
    assert score("QLQ-C30", {29: 2, 30: 1}).scales["QL"] == Decimal("8.33")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({"1": 5}, r"items\.1: answer 5 out of range"),
        ({"29": 0}, r"items\.29: answer 0 out of range"),
        ({"30": 8}, r"items\.30"),
        ({"2": 1.5}, r"items\.2"),
        ({"2": "x"}, r"items\.2"),
        ({"2": True}, r"items\.2"),
        ({"31": 1}, r"items\.31: no item 31 in QLQ-C30"),
        ({"abc": 1}, "bad item number"),
    ],
)
def test_bad_answers_name_the_item(items: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        score("QLQ-C30", items)


def test_unknown_instrument() -> None:
    with pytest.raises(ValidationError, match="unknown instrument"):
        score("QLQ-BR23", {})
    assert instrument("qlq-c30").name == "QLQ-C30"
    assert instrument("QLQ-GI.NET21").name == "QLQ-GINET21"


def test_ginet21_definition_is_complete_and_flagged_unverified() -> None:
    inst = instrument("QLQ-GINET21")
    assert sorted(inst.items) == list(range(31, 52))
    mapped = sorted(i for s in inst.scales.values() for i in s.items)
    assert mapped == list(range(31, 52))  # every item in exactly one scale
    assert not inst.verified and all(not s.verified for s in inst.scales.values())
    result = score(inst, {str(i): 4 for i in range(31, 52)})
    assert set(result.unverified_scales) == set(inst.scales)
    assert all(v == 100 for v in result.scales.values())  # symptom-type: 4 = worst
    assert result.summary is None


def test_definition_errors_are_caught_when_loading() -> None:
    bad = """
instrument: X
version: "1"
verified: false
items: {1: {label: a, min: 1, max: 4}, 2: {label: b, min: 1, max: 7}}
scales: {A: {name: A, type: symptom, items: [1, 2]}}
"""
    with pytest.raises(ValueError, match="different ranges"):
        load_instrument_text(bad)
    with pytest.raises(ValueError, match="unknown items"):
        load_instrument_text(bad.replace("[1, 2]", "[1, 3]"))


# ---- change from baseline ------------------------------------------------------------------

TEN_POINT = load_instrument_text(
    """
instrument: TEST
version: "1"
verified: true
items: {1: {label: f, min: 0, max: 10}, 2: {label: s, min: 0, max: 10}}
scales:
  F: {name: functional, type: functional, items: [1]}
  S: {name: symptom, type: symptom, items: [2]}
"""
)


def test_deterioration_exactly_at_ten_points_both_directions() -> None:
    base = score(TEN_POINT, {1: 5, 2: 5})
    # F is functional: answer 6 is a 10-point drop; S is symptom: answer 6 is a 10-point rise
    at = change_from_baseline(base, score(TEN_POINT, {1: 6, 2: 6}))
    assert at["F"].change == Decimal("-10.00") and at["F"].deteriorated is True
    assert at["S"].change == Decimal("10.00") and at["S"].deteriorated is True
    better = change_from_baseline(base, score(TEN_POINT, {1: 4, 2: 4}))
    assert better["F"].deteriorated is False and better["F"].improved is True
    assert better["S"].deteriorated is False and better["S"].improved is True
    same = change_from_baseline(base, base)
    assert same["F"].deteriorated is False and same["F"].improved is False
    strict = change_from_baseline(base, score(TEN_POINT, {1: 6, 2: 6}), threshold=Decimal("10.5"))
    assert strict["F"].deteriorated is False


def test_c30_change_and_missing_scale() -> None:
    base = score("QLQ-C30", all_items(1, 7))
    follow = score("QLQ-C30", MIXED)
    changes = change_from_baseline(base, follow)
    assert changes["PF"].deteriorated is True and changes["NV"].deteriorated is False
    assert changes["AP"].change is None and changes["AP"].deteriorated is None
    assert changes["C30SUM"].deteriorated is None  # summary missing at follow-up
    with pytest.raises(ValidationError, match="same instrument"):
        change_from_baseline(base, score("QLQ-GINET21", {}))


# ---- properties ------------------------------------------------------------------------------

answer_1_4 = st.one_of(st.none(), st.integers(1, 4))
answer_1_7 = st.one_of(st.none(), st.integers(1, 7))


@settings(max_examples=150, deadline=None)
@given(st.lists(answer_1_4, min_size=28, max_size=28), st.lists(answer_1_7, min_size=2, max_size=2))
def test_scores_always_within_0_100(first: list[int | None], last: list[int | None]) -> None:
    items = {str(i + 1): v for i, v in enumerate(first + last)}
    result = score("QLQ-C30", items)
    for code, exact in result.exact.items():
        assert exact is None or 0 <= exact <= 100, code
    assert result.exact_summary is None or 0 <= result.exact_summary <= 100
    # summary exists exactly when all 13 components exist
    components = [c for c in C30 if c not in ("QL", "FI")]
    assert (result.summary is not None) == all(result.exact[c] is not None for c in components)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=21, max_size=21))
def test_ginet21_within_0_100(answers: list[int]) -> None:
    result = score("QLQ-GINET21", {31 + i: v for i, v in enumerate(answers)})
    assert all(v is not None and 0 <= v <= 100 for v in result.scales.values())


# ---- CLI ---------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_example_json() -> None:
    result = runner.invoke(app, ["qol", "score", str(EXAMPLES / "responses.json"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["scales"]["PF"] == 83.33 and data["scales"]["AP"] is None
    assert data["summary"] is None
    assert data["change_from_baseline"]["PF"]["deteriorated"] is True
    assert data["baseline"]["summary"] is not None


def test_cli_tables() -> None:
    for name in ("responses.json", "ginet21.json"):
        result = runner.invoke(app, ["qol", "score", str(EXAMPLES / name)])
        assert result.exit_code == 0, result.output
    assert "not verified" in result.stdout


def test_cli_out_of_range_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"instrument": "QLQ-C30", "items": {"12": 9}}))
    result = runner.invoke(app, ["qol", "score", str(bad)])
    assert result.exit_code == 2
    assert "Answers: answer 9 out of range (item 12," in result.output  # no internal name
    assert "Traceback" not in result.output
    bad.write_text(json.dumps({"instrument": "QLQ-C30", "items": {}, "baseline_items": {"3": 0}}))
    result = runner.invoke(app, ["qol", "score", str(bad)])
    assert result.exit_code == 2 and "Baseline answers: answer 0 out of range" in result.output


def test_a_refused_answer_in_french_and_english_names_the_item_not_its_path() -> None:
    """Issue 18: the item by its number and English label (the licensed French wording is not
    shipped), the accepted range in the reader's language; the field path is kept."""
    from reluth.i18n import use_locale
    from reluth.i18n.messages import describe
    from reluth.qol.scoring import instrument, parse_items

    c30 = instrument("QLQ-C30")
    assert parse_items(c30, {"29": 1, "30": 7}) == {29: 1, 30: 7}  # both ends of the range
    for answer in (0, 8):
        with pytest.raises(ValidationError) as exc:
            parse_items(c30, {"29": answer})
        assert exc.value.field == "items.29" and exc.value.code == "answer_out_of_range"
        with use_locale("fr"):
            french = describe(exc.value)
        with use_locale("en"):
            english = describe(exc.value)
        assert french.startswith(f"Réponses : réponse {answer} hors limites (question 29, ")
        assert french.endswith("(accepté : un nombre entier de 1 à 7, ou vide)")
        assert english.endswith("(accepted: a whole number from 1 to 7, or blank)")
        assert "items.29" not in french + english
