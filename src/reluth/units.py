"""Laboratory units, converted once at the boundary into one canonical unit per analyte.

Values are handled as :class:`decimal.Decimal` so that a value typed exactly at a clinical
threshold (platelets 80 000/mm³, Hb 8 g/dL) compares exactly, whatever unit it came in.

Canonical units: haemoglobin g/dL; cell counts 10⁹/L; creatinine and bilirubin µmol/L;
enzymes U/L; eGFR mL/min/1.73 m². Conversion factors and their sources are in
``docs/units.md`` (creatinine 88.4 µmol/L per mg/dL, bilirubin 17.1, Hb 0.6206 mmol/L per g/dL).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext
from functools import cache, lru_cache

from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import Word, invalid
from reluth.i18n.vocabulary import LAB_TESTS
from reluth.values import parse_number

# Haemoglobin: 1 g/dL = 0.6206 mmol/L (monomer, CTCAE uses 10.0 g/dL = 6.2 mmol/L).
HB_MMOL_PER_G_DL = Decimal("0.6206")
CREATININE_UMOL_PER_MG_DL = Decimal("88.4")
BILIRUBIN_UMOL_PER_MG_DL = Decimal("17.1")
U_PER_UKAT = Decimal("60")

_COUNT = {
    "10^9/l": Decimal(1),
    "x10^9/l": Decimal(1),
    "10⁹/l": Decimal(1),
    "g/l-cells": Decimal(1),
    "giga/l": Decimal(1),
    "/nl": Decimal(1),
    "/mm3": Decimal("0.001"),
    "/mm³": Decimal("0.001"),
    "/ul": Decimal("0.001"),
    "/µl": Decimal("0.001"),
    "cells/mm3": Decimal("0.001"),
    "cells/mm³": Decimal("0.001"),
    "cells/ul": Decimal("0.001"),
    "cells/µl": Decimal("0.001"),
}

# analyte -> (canonical unit, {accepted unit (lower case): multiplier to canonical})
_TABLE: dict[str, tuple[str, dict[str, Decimal]]] = {
    "hemoglobin": (
        "g/dL",
        {"g/dl": Decimal(1), "g/l": Decimal("0.1"), "mmol/l": 1 / HB_MMOL_PER_G_DL},
    ),
    "platelets": ("10^9/L", _COUNT),
    "neutrophils": ("10^9/L", _COUNT),
    "wbc": ("10^9/L", _COUNT),
    "lymphocytes": ("10^9/L", _COUNT),
    "creatinine": (
        "µmol/L",
        {"µmol/l": Decimal(1), "umol/l": Decimal(1), "mg/dl": CREATININE_UMOL_PER_MG_DL},
    ),
    "bilirubin": (
        "µmol/L",
        {"µmol/l": Decimal(1), "umol/l": Decimal(1), "mg/dl": BILIRUBIN_UMOL_PER_MG_DL},
    ),
    "alt": (
        "U/L",
        {"u/l": Decimal(1), "iu/l": Decimal(1), "µkat/l": U_PER_UKAT, "ukat/l": U_PER_UKAT},
    ),
    "ast": (
        "U/L",
        {"u/l": Decimal(1), "iu/l": Decimal(1), "µkat/l": U_PER_UKAT, "ukat/l": U_PER_UKAT},
    ),
    "alp": (
        "U/L",
        {"u/l": Decimal(1), "iu/l": Decimal(1), "µkat/l": U_PER_UKAT, "ukat/l": U_PER_UKAT},
    ),
    "egfr": (
        "mL/min/1.73m2",
        {
            "ml/min/1.73m2": Decimal(1),
            "ml/min/1.73m²": Decimal(1),
            "ml/min/1.73 m2": Decimal(1),
            "ml/min/1.73 m²": Decimal(1),
            "ml/min": Decimal(1),
        },
    ),
}


#: Physically plausible results and reference limits, canonical units (inclusive): a value
#: outside is a typing or unit error, refused at the boundary naming the field, before any
#: engine computes with it (a creatinine of 1e-30 µmol/L would give an eGFR beyond any number).
#: Wide on purpose: they bound what a human body and a laboratory report can hold, not what is
#: normal (e.g. platelets up to 5 000 x 10^9/L, creatinine 5 to 5 000 µmol/L).
PLAUSIBLE: dict[str, dict[str, tuple[Decimal, Decimal]]] = {
    "hemoglobin": {"value": (Decimal("0.5"), Decimal(30)), "limit": (Decimal(1), Decimal(30))},
    "platelets": {"value": (Decimal(0), Decimal(5000)), "limit": (Decimal(1), Decimal(5000))},
    "neutrophils": {"value": (Decimal(0), Decimal(1000)), "limit": (Decimal("0.1"), Decimal(100))},
    "wbc": {"value": (Decimal(0), Decimal(1000)), "limit": (Decimal("0.1"), Decimal(100))},
    "lymphocytes": {"value": (Decimal(0), Decimal(1000)), "limit": (Decimal("0.1"), Decimal(100))},
    "creatinine": {"value": (Decimal(5), Decimal(5000)), "limit": (Decimal(5), Decimal(1000))},
    "bilirubin": {"value": (Decimal(0), Decimal(2000)), "limit": (Decimal("0.5"), Decimal(200))},
    "alt": {"value": (Decimal(0), Decimal(100000)), "limit": (Decimal(1), Decimal(1000))},
    "ast": {"value": (Decimal(0), Decimal(100000)), "limit": (Decimal(1), Decimal(1000))},
    "alp": {"value": (Decimal(0), Decimal(100000)), "limit": (Decimal(1), Decimal(3000))},
    "egfr": {"value": (Decimal(1), Decimal(300)), "limit": (Decimal(1), Decimal(300))},
}


def check_plausible(analyte: str, canonical: Decimal, field: str, kind: str = "value") -> Decimal:
    """``canonical`` (in the analyte's canonical unit) within :data:`PLAUSIBLE` for a result
    (``kind="value"``) or a reference limit or baseline (``"limit"``); refused naming ``field``."""
    bounds = PLAUSIBLE.get(analyte, {}).get(kind)
    if bounds is None:
        return canonical
    low, high = bounds
    if not low <= canonical <= high:
        unit = canonical_unit(analyte)
        shown = canonical if abs(canonical.adjusted()) < 12 else f"{canonical:.3E}"
        raise invalid(
            field,
            "implausible_value",
            N_("{value} {unit} is not a plausible {analyte} result")
            if kind == "value"
            else N_("{value} {unit} is not a plausible {analyte} reference limit"),
            N_("{low} to {high} {unit} (check the value and its unit)"),
            value=shown,
            unit=unit,
            analyte=_analyte(analyte),
            low=low,
            high=high,
        )
    return canonical


def _analyte(analyte: str) -> Word:
    """An analyte as messages name it (``haemoglobin``, ``hémoglobine``)."""
    return Word(LAB_TESTS.get(analyte, analyte))


def _unknown_analyte(analyte: str, field: str) -> ValidationError:
    return invalid(
        field, "unknown_analyte", N_("unknown analyte {value}"), analytes(), value=repr(analyte)
    )


def _unknown_unit(
    field: str, unit: str, analyte: str, factors: dict[str, Decimal]
) -> ValidationError:
    return invalid(
        field,
        "unknown_unit",
        N_("unknown unit {unit} for {analyte}"),
        sorted(factors),
        unit=repr(unit),
        analyte=_analyte(analyte),
    )


def analytes() -> list[str]:
    return sorted(_TABLE)


def canonical_unit(analyte: str) -> str:
    return _TABLE[analyte][0]


def accepted_units(analyte: str) -> list[str]:
    return sorted(_TABLE[analyte][1])


#: The spellings offered on forms, one per conversion factor (every other accepted spelling
#: is still read, e.g. from an imported file).
_DISPLAY: dict[str, tuple[str, ...]] = {
    "hemoglobin": ("g/dL", "g/L", "mmol/L"),
    "platelets": ("10^9/L", "/mm3"),
    "neutrophils": ("10^9/L", "/mm3"),
    "wbc": ("10^9/L", "/mm3"),
    "lymphocytes": ("10^9/L", "/mm3"),
    "creatinine": ("µmol/L", "mg/dL"),
    "bilirubin": ("µmol/L", "mg/dL"),
    "alt": ("U/L", "µkat/L"),
    "ast": ("U/L", "µkat/L"),
    "alp": ("U/L", "µkat/L"),
    "egfr": ("mL/min/1.73m2",),
}


def display_units(analyte: str) -> tuple[str, ...]:
    """The units a form offers for ``analyte``, canonical first."""
    return _DISPLAY[analyte]


def to_decimal(value: object, field: str) -> Decimal:
    """A number as Decimal, from its text form (so 0.1 stays 0.1; a decimal comma is a point).
    Booleans are refused."""
    d = parse_number(value, field)
    if d != 0 and not -12 <= d.adjusted() <= 12:
        raise invalid(
            field,
            "out_of_measurable_range",
            N_("{value} is out of any measurable range"),
            N_("a number between 1e-12 and 1e12"),
            value=str(value)[:24],
        )
    return d


@lru_cache(maxsize=512)
def _normalise_unit(unit: str) -> str:
    return (
        unit.strip()
        .lower()
        .replace(" ", "")
        .replace("mm^3", "mm3")
        .replace("μ", "µ")
        .replace("×", "x")
    )


@cache
def _normalised_factors(analyte: str) -> dict[str, Decimal]:
    """The analyte's unit factors by normalised spelling (built once per analyte; read-only)."""
    _canonical, factors = _TABLE[analyte]
    return {_normalise_unit(k): v for k, v in factors.items()}


def to_canonical(analyte: str, value: object, unit: object, field: str) -> Decimal:
    """Convert ``value`` in ``unit`` to the analyte's canonical unit; refuses unknown units."""
    if analyte not in _TABLE:
        raise _unknown_analyte(analyte, field)
    canonical, factors = _TABLE[analyte]
    if not isinstance(unit, str) or not unit.strip():
        raise invalid(
            f"{field}.unit", "unit_required", N_("missing unit"), sorted({canonical, *factors})
        )
    key = _normalise_unit(unit)
    normalised = _normalised_factors(analyte)
    if key not in normalised:
        raise _unknown_unit(f"{field}.unit", unit, analyte, factors)
    number = to_decimal(value, f"{field}.value")
    if number < 0:
        raise invalid(
            f"{field}.value",
            "negative_value",
            N_("negative value {value}"),
            N_("a value >= 0"),
            value=str(value),
        )
    return check_plausible(analyte, number * normalised[key], f"{field}.value")


@dataclass(frozen=True)
class LabValue:
    """A laboratory value in canonical units, with the unit it was entered in."""

    analyte: str
    value: Decimal
    unit: str
    entered_value: Decimal
    entered_unit: str

    @classmethod
    def parse(cls, analyte: str, value: object, unit: object, field: str) -> LabValue:
        canonical = to_canonical(analyte, value, unit, field)
        return cls(
            analyte=analyte,
            value=canonical,
            unit=canonical_unit(analyte),
            entered_value=to_decimal(value, f"{field}.value"),
            entered_unit=str(unit),
        )


def unit_factor(analyte: str, unit: object, field: str) -> tuple[str, Decimal]:
    """The normalised spelling of ``unit`` and its multiplier to the canonical unit."""
    if analyte not in _TABLE:
        raise _unknown_analyte(analyte, field)
    canonical, factors = _TABLE[analyte]
    if not isinstance(unit, str) or not unit.strip():
        raise invalid(field, "unit_required", N_("missing unit"), sorted({canonical, *factors}))
    key = _normalise_unit(unit)
    normalised = _normalised_factors(analyte)
    if key not in normalised:
        raise _unknown_unit(field, unit, analyte, factors)
    return key, normalised[key]


def same_unit(a: str, b: str) -> bool:
    return _normalise_unit(a) == _normalise_unit(b)


def convert(analyte: str, value: Decimal, from_unit: str, to_unit: str, field: str) -> Decimal:
    """``value`` from one accepted unit of ``analyte`` to another; exact when the units agree."""
    src, f_src = unit_factor(analyte, from_unit, f"{field}.unit")
    dst, f_dst = unit_factor(analyte, to_unit, f"{field}.unit")
    if src == dst:
        return value
    with localcontext() as ctx:
        ctx.prec = 60
        exact = value * f_src / f_dst
    return +exact  # back to the default 28 significant digits: 12 g/dL -> 7.4472 mmol/L
