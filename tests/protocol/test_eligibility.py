"""Every criterion on both sides of its boundary, starting from the eligible example."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reluth.errors import ValidationError, ValidationErrors
from reluth.protocol.definition import load_protocol
from reluth.protocol.eligibility import (
    CriterionResult,
    EligibilityResult,
    check_eligibility,
    criteria,
)
from reluth.protocol.patient import parse_patient

PROTOCOL = load_protocol()

Make = Callable[..., dict[str, Any]]


def run(data: dict[str, Any], stage: str = "randomization") -> EligibilityResult:
    return check_eligibility(parse_patient(data), PROTOCOL, stage=stage)  # type: ignore[arg-type]


def crit(data: dict[str, Any], cid: str) -> CriterionResult:
    result = run(data)
    return next(c for c in result.criteria if c.id == cid)


def test_example_is_eligible_with_every_criterion_decided(base_patient: dict[str, Any]) -> None:
    result = run(base_patient)
    assert result.status == "eligible"
    assert {c.id for c in result.criteria} == {c.id for c in criteria(PROTOCOL)}
    assert all(c.passes is True for c in result.criteria)
    assert result.protocol_version == "RELUTH v1.0"


@pytest.mark.parametrize(
    ("cid", "changes", "passes"),
    [
        ("I1", {"age": 18}, True),
        ("I1", {"age": 17}, False),
        ("I2", {"histology__grade": "G1"}, True),
        ("I2", {"histology__grade": "G3"}, False),
        ("I2", {"histology__primary_site": "colon"}, True),
        ("I2", {"histology__primary_site": "stomach"}, False),
        ("I3", {"first_prrt__cycles": 4}, True),
        ("I3", {"first_prrt__cycles": 3}, False),
        ("I4", {"first_prrt__disease_control_months": 12}, True),
        ("I4", {"first_prrt__disease_control_months": 11.99}, False),
        (
            "I5",
            {"progression": {"radiological": False, "clinical": True, "biological": False}},
            True,
        ),
        (
            "I5",
            {"progression": {"radiological": False, "clinical": False, "biological": False}},
            False,
        ),
        ("I6", {"second_prrt__tumour_board_decision": False}, False),
        ("I7", {"ecog": 2}, True),
        ("I7", {"ecog": 3}, False),
        ("I8", {"life_expectancy_months": 6}, True),
        ("I8", {"life_expectancy_months": 5.9}, False),
        # planned randomization 2025-03-10: four calendar months before is 2024-11-10
        ("I9", {"sstr_imaging__date": "2024-11-10"}, True),
        ("I9", {"sstr_imaging__date": "2024-11-09"}, False),
        ("I9", {"sstr_imaging__date": "2025-03-11"}, False),
        ("I9", {"sstr_imaging__positive_lesion_fraction": 0.90}, True),
        ("I9", {"sstr_imaging__positive_lesion_fraction": 0.89}, False),
        (
            "I10",
            {
                "lesions": [
                    {"id": "a", "organ": "liver", "longest_diameter_mm": 10},
                    {"id": "b", "organ": "bone", "longest_diameter_mm": 4},
                ]
            },
            True,
        ),
        (
            "I10",
            {
                "lesions": [
                    {"id": "a", "organ": "liver", "longest_diameter_mm": 9.9},
                    {"id": "b", "organ": "liver", "longest_diameter_mm": 9},
                ]
            },
            False,
        ),
        ("I10", {"lesions": [{"id": "a", "organ": "liver", "longest_diameter_mm": 40}]}, False),
        (
            "I10",
            {
                "lesions": [
                    {"id": "n", "organ": "node", "nodal": True, "short_axis_mm": 15},
                    {"id": "b", "organ": "liver", "longest_diameter_mm": 5},
                ]
            },
            True,
        ),
        (
            "I10",
            {
                "lesions": [
                    {"id": "n", "organ": "node", "nodal": True, "short_axis_mm": 14.9},
                    {"id": "b", "organ": "liver", "longest_diameter_mm": 5},
                ]
            },
            False,
        ),
        ("I11", {"labs__hemoglobin": {"value": 8, "unit": "g/dL"}}, False),
        ("I11", {"labs__hemoglobin": {"value": 8.1, "unit": "g/dL"}}, True),
        ("I11", {"labs__hemoglobin": {"value": 80, "unit": "g/L"}}, False),
        ("I11", {"labs__hemoglobin": {"value": 81, "unit": "g/L"}}, True),
        ("I11", {"labs__neutrophils": {"value": 1500, "unit": "/mm3"}}, True),
        ("I11", {"labs__neutrophils": {"value": 1499, "unit": "/mm3"}}, False),
        ("I11", {"labs__neutrophils": {"value": 1.5, "unit": "10^9/L"}}, True),
        ("I11", {"labs__platelets": {"value": 80000, "unit": "/mm3"}}, True),
        ("I11", {"labs__platelets": {"value": 79999, "unit": "/mm3"}}, False),
        ("I11", {"labs__platelets": {"value": 80, "unit": "10^9/L"}}, True),
        ("I11", {"labs__platelets": {"value": 79.999, "unit": "10^9/L"}}, False),
        ("I12", {"consent": {"signed": False}}, False),
        ("I13", {"second_prrt__cycles_completed": 2}, True),
        ("I13", {"second_prrt__cycles_completed": 1}, False),
        ("E1", {"first_prrt__best_response": "SD"}, True),
        ("E1", {"first_prrt__best_response": "PD"}, False),
        ("E2", {"second_prrt__radiological_progression": True}, False),
        ("E3", {"first_prrt__g4_hematotoxicity": True}, False),
        ("E3", {"first_prrt__g4_nephrotoxicity": True}, False),
        ("E4", {"unresolved_adverse_events": [{"term": "Fatigue", "grade": 2}]}, False),
        (
            "E4",
            {"unresolved_adverse_events": [{"term": "Fatigue", "grade": 2, "resolved": True}]},
            True,
        ),
        ("E4", {"unresolved_adverse_events": [{"term": "Fatigue", "grade": 1}]}, True),
        (
            "E4",
            {"unresolved_adverse_events": [{"term": "Peripheral neuropathy", "grade": 3}]},
            True,
        ),
        ("E4", {"unresolved_adverse_events": [{"term": "alopecia", "grade": 2}]}, True),
        ("E5", {"histology__primary_site": "pancreas"}, False),
        ("E6", {"histology__tumour_type": "NEC"}, False),
        ("E6", {"histology__differentiation": "poor"}, False),
        ("E7", {"history__ebrt_marrow_fraction": 0.25}, True),
        ("E7", {"history__ebrt_marrow_fraction": 0.2501}, False),
        ("E8", {"history__nephrotic_syndrome": True}, False),
        ("E10", {"history__uncontrolled_concomitant_disease": True}, False),
        ("E11", {"history__brain_metastases": {"present": True, "treated": False}}, False),
        # reference date 2025-03-10; 24 weeks = 168 days -> stable since 2024-09-23 or earlier
        (
            "E11",
            {
                "history__brain_metastases": {
                    "present": True,
                    "treated": True,
                    "stable_since": "2024-09-23",
                    "stability_imaging_documented": True,
                }
            },
            True,
        ),
        (
            "E11",
            {
                "history__brain_metastases": {
                    "present": True,
                    "treated": True,
                    "stable_since": "2024-09-24",
                    "stability_imaging_documented": True,
                }
            },
            False,
        ),
        (
            "E11",
            {
                "history__brain_metastases": {
                    "present": True,
                    "treated": True,
                    "stable_since": "2023-01-01",
                    "stability_imaging_documented": False,
                }
            },
            False,
        ),
        # assessment 2025-03-03: five years back is 2020-03-03 (counted as within)
        (
            "E12",
            {"history__other_cancers": [{"site": "colon", "diagnosis_date": "2020-03-03"}]},
            False,
        ),
        (
            "E12",
            {"history__other_cancers": [{"site": "colon", "diagnosis_date": "2020-03-02"}]},
            True,
        ),
        (
            "E12",
            {
                "history__other_cancers": [
                    {"site": "basal_cell_skin", "diagnosis_date": "2024-01-01"}
                ]
            },
            True,
        ),
        (
            "E12",
            {
                "history__other_cancers": [
                    {"site": "cervix", "diagnosis_date": "2023-01-01", "treated_controlled": True}
                ]
            },
            True,
        ),
        (
            "E12",
            {
                "history__other_cancers": [
                    {"site": "cervix", "diagnosis_date": "2023-01-01", "treated_controlled": False}
                ]
            },
            False,
        ),
    ],
)
def test_criterion_boundaries(
    modified: Make, cid: str, changes: dict[str, Any], passes: bool
) -> None:
    data = modified(**changes)
    c = crit(data, cid)
    assert c.passes is passes, c.reason
    result = run(data)
    assert result.status == ("eligible" if passes else "not_eligible")


@pytest.mark.parametrize(
    ("egfr", "passes"), [("40", True), ("40.0", True), ("39.9", False), ("39.95", True)]
)
def test_reported_egfr_boundary_at_40(
    modified: Make, DELETE: object, egfr: str, passes: bool
) -> None:
    # 39.95 is reported (rounded half-up to 0.1) as 40.0, the value a person reads and that decides
    data = modified(labs__creatinine=DELETE, labs__egfr={"value": egfr, "unit": "mL/min/1.73m2"})
    c = crit(data, "E8")
    assert c.passes is passes, c.reason


def test_egfr_from_creatinine_in_both_units_gives_same_result(modified: Make) -> None:
    a = crit(modified(labs__creatinine={"value": 1.6, "unit": "mg/dL"}), "E8")
    b = crit(modified(labs__creatinine={"value": 141.44, "unit": "µmol/L"}), "E8")
    assert a.passes is b.passes is False
    assert "eGFR 32.5" in a.reason and "eGFR 32.5" in b.reason


@pytest.mark.parametrize(
    ("lesions", "alt", "passes"),
    [
        (
            [
                {"id": "a", "organ": "bone", "longest_diameter_mm": 20},
                {"id": "b", "organ": "lung", "longest_diameter_mm": 12},
            ],
            100,
            True,
        ),
        (
            [
                {"id": "a", "organ": "bone", "longest_diameter_mm": 20},
                {"id": "b", "organ": "lung", "longest_diameter_mm": 12},
            ],
            100.1,
            False,
        ),
        (
            [
                {"id": "a", "organ": "liver", "longest_diameter_mm": 20},
                {"id": "b", "organ": "lung", "longest_diameter_mm": 12},
            ],
            200,
            True,
        ),
        (
            [
                {"id": "a", "organ": "liver", "longest_diameter_mm": 20},
                {"id": "b", "organ": "lung", "longest_diameter_mm": 12},
            ],
            200.1,
            False,
        ),
    ],
)
def test_transaminases_limit_depends_on_liver_metastases(
    modified: Make, lesions: list[dict[str, Any]], alt: float, passes: bool
) -> None:
    data = modified(lesions=lesions, labs__alt={"value": alt, "unit": "U/L", "uln": 40})
    assert crit(data, "E9").passes is passes


@pytest.mark.parametrize(("bili", "passes"), [("42.5", True), ("42.6", False)])
def test_bilirubin_at_2_5_uln(modified: Make, bili: str, passes: bool) -> None:
    data = modified(labs__bilirubin={"value": bili, "unit": "µmol/L", "uln": 17})
    assert crit(data, "E9").passes is passes


def test_bilirubin_in_mg_dl_with_uln_in_same_unit(modified: Make) -> None:
    data = modified(labs__bilirubin={"value": 3, "unit": "mg/dL", "uln": 1.2})
    assert crit(data, "E9").passes is True  # exactly 2.5 x ULN
    data = modified(labs__bilirubin={"value": 3.01, "unit": "mg/dL", "uln": 1.2})
    assert crit(data, "E9").passes is False


@pytest.mark.parametrize(
    ("path", "cid"),
    [
        ("age", "I1"),
        ("ecog", "I7"),
        ("life_expectancy_months", "I8"),
        ("consent", "I12"),
        ("lesions", "I10"),
        ("unresolved_adverse_events", "E4"),
    ],
)
def test_missing_input_gives_unknown_and_incomplete(
    modified: Make, DELETE: object, path: str, cid: str
) -> None:
    data = modified(**{path: DELETE})
    c = crit(data, cid)
    assert c.result == "unknown" and c.passes is None
    assert "missing" in c.reason
    assert run(data).status == "incomplete"


def test_missing_uln_is_unknown(modified: Make) -> None:
    c = crit(modified(labs__alt={"value": 30, "unit": "U/L"}), "E9")
    assert c.result == "unknown" and "missing: ALT (upper limit of normal)" in c.reason
    assert c.message is not None and "labs.alt.uln" in c.message.fields()  # highlighted
    assert "labs." not in c.reason


def test_failure_wins_over_unknown(modified: Make, DELETE: object) -> None:
    data = modified(age=DELETE, ecog=4)
    assert run(data).status == "not_eligible"


def test_inclusion_stage_skips_the_pre_randomization_gate(modified: Make, DELETE: object) -> None:
    data = modified(second_prrt={"tumour_board_decision": True})
    at_inclusion = run(data, stage="inclusion")
    assert at_inclusion.status == "eligible"
    assert {"I13", "E2"}.isdisjoint({c.id for c in at_inclusion.criteria})
    assert run(data, stage="randomization").status == "incomplete"


def test_reasons_quote_the_values_as_entered(modified: Make) -> None:
    c = crit(modified(labs__platelets={"value": 79999, "unit": "/mm3"}), "I11")
    assert "Platelets: 79999 /mm³ — it must be at least 80000 /mm³ (criterion I11)" in c.reason
    c = crit(modified(labs__platelets={"value": "79.999", "unit": "10^9/L"}), "I11")
    assert "Platelets: 79.999 ×10⁹/L — it must be at least 80 ×10⁹/L (criterion I11)" in c.reason


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"age": 300}, "age"),
        ({"age": "old"}, "age"),
        ({"ecog": 7}, "ecog"),
        ({"patient_id": "Jean Dupont"}, "patient_id"),
        ({"labs__creatinine": {"value": -1, "unit": "mg/dL"}}, "labs.creatinine.value"),
        ({"labs__platelets": {"value": 100, "unit": "furlongs"}}, "labs.platelets.unit"),
        ({"labs__glucose": {"value": 5, "unit": "mmol/L"}}, "labs.glucose"),
        ({"assessment_date": "2099-01-01"}, "assessment_date"),
        ({"sstr_imaging__positive_lesion_fraction": 1.5}, "sstr_imaging.positive_lesion_fraction"),
        ({"nickname": "x"}, "nickname"),
        (
            {
                "lesions": [
                    {"id": "a", "organ": "liver", "longest_diameter_mm": 12},
                    {"id": "a", "organ": "liver", "longest_diameter_mm": 11},
                ]
            },
            "lesions.1.id",
        ),
    ],
)
def test_bad_input_names_the_field(modified: Make, changes: dict[str, Any], field: str) -> None:
    import datetime as dt

    with pytest.raises((ValidationError, ValidationErrors)) as exc:
        parse_patient(modified(**changes), as_of=dt.date(2025, 3, 5))
    assert field in exc.value.message
