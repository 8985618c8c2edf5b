"""Estimated GFR by the IDMS-traceable MDRD equation (the protocol's "GFR according to MDRD").

eGFR = 175 × Scr^-1.154 × age^-0.203 × 0.742 [female] × 1.212 [Black, legacy option only]
with Scr in mg/dL (µmol/L ÷ 88.4), in mL/min/1.73 m² (Levey 2006; kidney.org). NKF-ASN 2021
recommends race-free estimation, so the race factor is off unless asked for.

Computed in Decimal (28 significant digits) and reported rounded to 0.1 mL/min/1.73 m²; the
protocol thresholds (40 for exclusion, 60 for the stratum) are compared on that reported value,
so the number a person reads is the number that decided.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

from reluth.units import CREATININE_UMOL_PER_MG_DL

_MDRD_175 = Decimal(175)
_EXP_SCR = Decimal("-1.154")
_EXP_AGE = Decimal("-0.203")
_FEMALE = Decimal("0.742")
_BLACK = Decimal("1.212")
REPORT_QUANTUM = Decimal("0.1")


def mdrd_175(
    creatinine_umol_l: Decimal, age_years: Decimal, female: bool, black: bool = False
) -> Decimal:
    """Unrounded eGFR (mL/min/1.73 m²) from creatinine in µmol/L."""
    if creatinine_umol_l <= 0:
        raise ValueError("creatinine must be positive")
    if age_years <= 0:
        raise ValueError("age must be positive")
    with localcontext() as ctx:
        ctx.prec = 28
        scr_mg_dl = creatinine_umol_l / CREATININE_UMOL_PER_MG_DL
        value = (
            _MDRD_175
            * (_EXP_SCR * scr_mg_dl.ln()).exp()
            * (_EXP_AGE * Decimal(age_years).ln()).exp()
        )
        if female:
            value *= _FEMALE
        if black:
            value *= _BLACK
        return +value


#: The equations a protocol may name (``eligibility.egfr_equation``), by that name.
EQUATIONS = {"MDRD-IDMS-175": mdrd_175}


def reported(value: Decimal) -> Decimal:
    """The value as reported and compared: rounded half-up to 0.1."""
    return value.quantize(REPORT_QUANTUM, rounding=ROUND_HALF_UP)
