"""Numbers and dates at the edges: the engines refuse what no body or laboratory can produce
(naming the field), accept the plausible extremes, and never fail otherwise — whatever number
or date arrives (property-based)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reluth.errors import ReluthError, ValidationError, ValidationErrors
from reluth.protocol.definition import load_protocol
from reluth.protocol.eligibility import check_eligibility
from reluth.protocol.patient import parse_patient
from reluth.response import recist
from reluth.safety import ctcae
from reluth.units import check_plausible, to_decimal

EXAMPLE = json.loads(
    (Path(__file__).resolve().parents[2] / "examples" / "patients" / "eligible.json").read_text()
)
AS_OF = dt.date(2025, 3, 5)


def _screen(change: Any) -> Any:
    data = copy.deepcopy(EXAMPLE)
    change(data)
    return check_eligibility(parse_patient(data, as_of=AS_OF), load_protocol())


@pytest.mark.parametrize(
    ("analyte", "ok", "bad"),
    [
        ("creatinine", "5", "4.99"),
        ("platelets", "5000", "5000.1"),
        ("hemoglobin", "30", "30.01"),
        ("egfr", "1", "0.9"),
    ],
)
def test_each_plausible_range_on_both_sides(analyte: str, ok: str, bad: str) -> None:
    assert check_plausible(analyte, Decimal(ok), "x") == Decimal(ok)
    with pytest.raises(ValidationError, match="plausible"):
        check_plausible(analyte, Decimal(bad), "x")


@pytest.mark.parametrize(
    ("text", "ok"), [("1e12", True), ("1e13", False), ("1e-12", True), ("1e-13", False)]
)
def test_magnitudes_beyond_measurement_are_refused(text: str, ok: bool) -> None:
    if ok:
        assert to_decimal(text, "x") == Decimal(text)
    else:
        with pytest.raises(ValidationError, match="measurable"):
            to_decimal(text, "x")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(age=0), "age"),
        (lambda d: d.update(assessment_date="0001-01-01"), "assessment_date"),
        (lambda d: d.update(assessment_date="1899-12-31"), "assessment_date"),
        (lambda d: d["labs"]["creatinine"].update(value=1e-30), "labs.creatinine.value"),
        (lambda d: d["labs"]["alt"].update(uln=1e-300), "labs.alt.uln"),
        (lambda d: d["labs"]["platelets"].update(value="1e999999"), "labs.platelets.value"),
    ],
)
def test_the_inputs_that_gave_server_errors_are_refused_by_name(change: Any, field: str) -> None:
    with pytest.raises((ValidationError, ValidationErrors)) as info:
        _screen(change)
    err = info.value
    fields = [e.field for e in err.errors] if isinstance(err, ValidationErrors) else [err.field]
    assert any(f.startswith(field) for f in fields), fields


def test_the_plausible_extremes_are_accepted() -> None:
    assert _screen(lambda d: d.update(age=1)).status == "not_eligible"  # I1: under 18
    _screen(lambda d: d["labs"]["creatinine"].update(value=5, unit="µmol/L"))
    _screen(lambda d: d.update(assessment_date="1900-01-01"))


def test_a_lesion_diameter_up_to_one_metre() -> None:
    def read(mm: str) -> Any:
        return recist.parse_patient(
            {
                "randomization_date": "2025-01-01",
                "baseline": {
                    "date": "2025-01-01",
                    "lesions": [
                        {"id": "T1", "organ": "liver", "kind": "target", "diameter_mm": mm}
                    ],
                },
                "followups": [],
            }
        )

    read("1000")
    with pytest.raises(ValidationError, match="diameter_mm"):
        read("1000.1")


NUMBERS = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.text(max_size=30),
    st.sampled_from(["1e999999", "-0", "1e-300", "¹⁹⁶⁰", "0x10", " 7,4 ", "∞"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=NUMBERS, uln=NUMBERS)
def test_any_lab_number_is_graded_or_refused_by_name(value: Any, uln: Any) -> None:
    raw = {"test": "alt", "value": value, "unit": "U/L", "uln": uln, "date": "2025-01-01"}
    try:
        ctcae.grade(ctcae.parse_result(raw, "lab"))
    except ReluthError as exc:
        assert exc.message and "lab" in exc.message


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    creatinine=NUMBERS,
    age=st.one_of(st.integers(-5, 200), st.text(max_size=5)),
    day=st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
)
def test_any_screening_number_or_date_is_judged_or_refused(
    creatinine: Any, age: Any, day: Any
) -> None:
    def change(d: dict[str, Any]) -> None:
        d["labs"]["creatinine"]["value"] = creatinine
        d["age"] = age
        d["assessment_date"] = day.isoformat()

    try:
        _screen(change)
    except ReluthError as exc:
        assert exc.message
