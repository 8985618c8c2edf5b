from __future__ import annotations

from decimal import Decimal

import pytest

from reluth.errors import ValidationError
from reluth.protocol.egfr import mdrd_175, reported
from reluth.units import LabValue, accepted_units, analytes, to_canonical


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "expected"),
    [
        ("hemoglobin", "8", "g/dL", Decimal("8")),
        ("hemoglobin", "80", "g/L", Decimal("8.0")),
        ("platelets", "80000", "/mm3", Decimal("80")),
        ("platelets", "80000", "/mm³", Decimal("80")),
        ("platelets", "80", "10^9/L", Decimal("80")),
        ("neutrophils", "1500", "/µL", Decimal("1.5")),
        ("neutrophils", "1.5", "G/L-cells", Decimal("1.5")),
        ("creatinine", "1", "mg/dL", Decimal("88.4")),
        ("creatinine", "88.4", "umol/L", Decimal("88.4")),
        ("bilirubin", "1", "mg/dL", Decimal("17.1")),
        ("alt", "1", "µkat/L", Decimal("60")),
    ],
)
def test_conversions_to_canonical_units(
    analyte: str, value: str, unit: str, expected: Decimal
) -> None:
    assert to_canonical(analyte, value, unit, "x") == expected


def test_hemoglobin_mmol_converts_with_the_ctcae_factor() -> None:
    # CTCAE: 8.0 g/dL corresponds to 4.9 mmol/L (factor 0.6206)
    g_dl = to_canonical("hemoglobin", "4.9648", "mmol/L", "x")
    assert abs(g_dl - Decimal(8)) < Decimal("1e-20")


def test_float_input_keeps_its_decimal_text() -> None:
    # 0.1 + 0.2 style artefacts must not appear: the value is read from its text form
    assert to_canonical("platelets", 80.0, "10^9/L", "x") == Decimal("80")
    assert LabValue.parse("neutrophils", 1500, "/mm3", "labs.n").value == Decimal("1.5")


@pytest.mark.parametrize(
    ("value", "unit", "message"),
    [
        (100, "furlongs", "labs.x.unit: unknown unit 'furlongs' for platelets"),
        (-1, "/mm3", "labs.x.value: negative value"),
        ("abc", "/mm3", "labs.x.value: expected a number"),
        (True, "/mm3", "labs.x.value: expected a number"),
        (100, None, "labs.x.unit: missing unit"),
    ],
)
def test_bad_lab_values_name_the_field(value: object, unit: object, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        to_canonical("platelets", value, unit, "labs.x")
    assert exc.value.message.startswith(message)


# Reference values: shared/reference/clinical-rules.md §5.4 (MDRD-175 column)
@pytest.mark.parametrize(
    ("scr_mg_dl", "age", "female", "expected"),
    [
        ("0.6", 50, False, "142.6"),
        ("1.0", 50, False, "79.1"),
        ("1.5", 50, False, "49.5"),
        ("2.0", 50, False, "35.5"),
        ("1.2", 55, False, "62.9"),
        ("0.8", 60, True, "73.2"),
        ("1.0", 70, True, "54.8"),
    ],
)
def test_mdrd_175_matches_reference_table(
    scr_mg_dl: str, age: int, female: bool, expected: str
) -> None:
    umol = Decimal(scr_mg_dl) * Decimal("88.4")
    assert reported(mdrd_175(umol, Decimal(age), female=female)) == Decimal(expected)


@pytest.mark.parametrize(
    ("scr_mg_dl", "age", "expected"),
    [("0.6", 50, "172.8"), ("1.0", 50, "95.9"), ("1.2", 55, "76.2")],
)
def test_mdrd_175_legacy_race_factor(scr_mg_dl: str, age: int, expected: str) -> None:
    umol = Decimal(scr_mg_dl) * Decimal("88.4")
    assert reported(mdrd_175(umol, Decimal(age), female=False, black=True)) == Decimal(expected)


def test_umol_to_mg_dl_reference_checks() -> None:
    # 133 µmol/L -> 1.5045 mg/dL; 177 -> 2.0023 mg/dL (reference unit check)
    assert (Decimal(133) / Decimal("88.4")).quantize(Decimal("0.0001")) == Decimal("1.5045")
    assert (Decimal(177) / Decimal("88.4")).quantize(Decimal("0.0001")) == Decimal("2.0023")


@pytest.mark.parametrize("analyte", analytes())
def test_form_units_are_accepted_and_cover_every_conversion(analyte: str) -> None:
    from reluth.units import canonical_unit, display_units, unit_factor

    offered = display_units(analyte)
    assert offered[0] == canonical_unit(analyte)
    factors = {unit_factor(analyte, u, "unit")[1] for u in offered}
    assert len(factors) == len(offered)  # no two offered spellings of one unit
    every = {unit_factor(analyte, u, "unit")[1] for u in accepted_units(analyte)}
    assert factors == every  # and no accepted conversion left out of the form
