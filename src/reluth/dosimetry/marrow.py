"""Red-marrow absorbed dose by the blood-based method (EANM 2010 marrow guideline scheme).

D_RM = Ã_RM · S(RM←RM) + Ã_remainder · S(RM←total body) + Σ Ã_organ · S(RM←organ), where
Ã_RM = c̃_blood · RMBLR · m_RM (c̃_blood: time-integrated blood activity concentration per mL,
RMBLR: red-marrow-to-blood concentration ratio, default 1 after Forrer 2009, or 0.19/(1 − Hct)
after Sgouros). The remainder-of-body term uses the total-body S-value (the remainder S-value
is not tabulated in the shipped data): an approximation stated in docs/dosimetry.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from reluth.dosimetry.physics import SECONDS_PER_HOUR
from reluth.dosimetry.svalues import cross_table, organ_svalue, scaled_svalue
from reluth.errors import ValidationError


def rmblr_from_haematocrit(haematocrit: float) -> float:
    """Sgouros' red-marrow-to-blood ratio 0.19 / (1 − haematocrit)."""
    if not 0 <= haematocrit < 1:
        raise ValidationError("haematocrit", f"value {haematocrit!r}", "a fraction in [0, 1)")
    return 0.19 / (1.0 - haematocrit)


@dataclass(frozen=True)
class MarrowDose:
    self_dose_gy: float
    remainder_cross_dose_gy: float
    organ_cross_dose_gy: float
    total_gy: float
    marrow_tia_mbq_h: float
    rmblr: float
    marrow_mass_g: float


def marrow_dose(
    blood_tia_bq_h_per_ml: float,
    sex: str,
    rmblr: float = 1.0,
    remainder_tia_mbq_h: float = 0.0,
    marrow_mass_g: float | None = None,
    organ_cross: Mapping[str, tuple[float, float]] | None = None,
) -> MarrowDose:
    """Blood-based red-marrow dose (Gy). ``organ_cross`` maps an organ to
    (its TIA in MBq·h, a user-supplied S(RM←organ) in mGy/(MBq·s))."""
    for name, v in (
        ("blood_tia_bq_h_per_ml", blood_tia_bq_h_per_ml),
        ("rmblr", rmblr),
        ("remainder_tia_mbq_h", remainder_tia_mbq_h),
    ):
        if not (v >= 0 and math.isfinite(v)):
            raise ValidationError(f"marrow.{name}", f"invalid value {v!r}", "a number >= 0")
    sv = organ_svalue("red_marrow", sex)
    mass = sv.phantom_mass_g if marrow_mass_g is None else marrow_mass_g
    s_self = scaled_svalue(sv, mass)
    tia_rm = blood_tia_bq_h_per_ml / 1e6 * rmblr * mass
    self_gy = tia_rm * SECONDS_PER_HOUR * s_self / 1000.0
    s_tb = cross_table()[("red_marrow", "total_body", sex)].s_mgy_per_mbq_s
    rem_gy = remainder_tia_mbq_h * SECONDS_PER_HOUR * s_tb / 1000.0
    org_gy = 0.0
    for organ, (tia, s) in (organ_cross or {}).items():
        if not (tia >= 0 and s >= 0):
            raise ValidationError(f"marrow.organ_cross.{organ}", "negative value", ">= 0")
        org_gy += tia * SECONDS_PER_HOUR * s / 1000.0
    return MarrowDose(
        self_gy, rem_gy, org_gy, self_gy + rem_gy + org_gy, tia_rm, rmblr, float(mass)
    )
