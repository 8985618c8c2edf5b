"""Red-marrow absorbed dose by the blood-based method (EANM 2010 marrow guideline scheme).

D_RM = Ã_RM · S(RM←RM) + Ã_RB · S(RM←RB) + Σ Ã_organ · S(RM←organ), where
Ã_RM = c̃_blood · RMBLR · m_RM (c̃_blood: time-integrated blood activity concentration per mL,
RMBLR: red-marrow-to-blood concentration ratio, default 1 after Forrer 2009, or 0.19/(1 − Hct)
after Sgouros) and RB is the remainder of the body: everything but the red marrow and the
organs whose activity is counted separately.

S(RM←RB) is not tabulated; it follows from the total-body value by the MIRD remainder-of-body
correction (Cloutier et al. 1973, J Nucl Med 14:53; MIRD Pamphlet 11):
S(RM←RB) = S(RM←TB)·m_TB/m_RB − Σ_h S(RM←h)·m_h/m_RB, m_RB = m_TB − Σ_h m_h, the sum over the
separate sources h (the red marrow itself always; organs when their S(RM←h) is given). Using
S(RM←TB) directly counts the marrow's self-irradiation (two-thirds of S(RM←TB)) a second
time: ×3.0 (male) / ×3.1 (female) too high.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reluth.dosimetry.physics import SECONDS_PER_HOUR
from reluth.dosimetry.svalues import cross_table, organ_svalue, scaled_svalue
from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import invalid

REMAINDER_SOURCES = ("whole_body", "field_of_view", "none")


def rmblr_from_haematocrit(haematocrit: float) -> float:
    """Sgouros' red-marrow-to-blood ratio 0.19 / (1 − haematocrit)."""
    if not 0 <= haematocrit < 1:
        raise invalid(
            "haematocrit",
            "value",
            N_("value {haematocrit}"),
            N_("a fraction in [0, 1)"),
            haematocrit=repr(haematocrit),
        )
    return 0.19 / (1.0 - haematocrit)


@dataclass(frozen=True)
class RemainderSValue:
    s_mgy_per_mbq_s: float
    remainder_mass_g: float
    total_body_s_mgy_per_mbq_s: float
    total_body_mass_g: float


def remainder_svalue(
    sex: str, source_organs: Mapping[str, tuple[float, float]] | None = None
) -> RemainderSValue:
    """S(RM←remainder of body) of the reference phantom by the MIRD remainder correction.
    ``source_organs`` maps an organ counted separately to (S(RM←organ) mGy/(MBq·s), its phantom
    mass g); the red marrow is always a separate source."""
    rm = organ_svalue("red_marrow", sex)  # validates sex
    tb = cross_table()[("red_marrow", "total_body", sex)]
    removed = rm.s_mgy_per_mbq_s * rm.phantom_mass_g
    m_rb = tb.source_mass_g - rm.phantom_mass_g
    for organ, (s, mass) in (source_organs or {}).items():
        if not (s >= 0 and mass > 0 and math.isfinite(s) and math.isfinite(mass)):
            raise invalid(
                f"marrow.source_organs.{organ}",
                "unaccepted_marrow_source_organs_organ",
                N_("({s}, {mass})"),
                N_("S >= 0, mass > 0"),
                s=repr(s),
                mass=repr(mass),
            )
        removed += s * mass
        m_rb -= mass
    value = (tb.s_mgy_per_mbq_s * tb.source_mass_g - removed) / m_rb if m_rb > 0 else -1.0
    if not value > 0:
        raise invalid(
            "marrow.source_organs",
            "separate_sources_leave_no_remainder",
            N_("the separate sources leave no remainder of body (mass or S-value <= 0)"),
            N_("organ masses and S-values of the reference phantom"),
        )
    return RemainderSValue(value, m_rb, tb.s_mgy_per_mbq_s, tb.source_mass_g)


def remainder_tia_mbq_h(
    whole_body_tia_mbq_h: float, separate_tias_mbq_h: Sequence[float], marrow_tia_mbq_h: float
) -> float:
    """Remainder-of-body TIA from whole-body imaging: the whole body minus the sources counted
    separately (organs, tumours) and the red marrow."""
    value = whole_body_tia_mbq_h - sum(separate_tias_mbq_h) - marrow_tia_mbq_h
    if not value >= 0:
        raise invalid(
            "marrow.whole_body_samples",
            "whole_body_tia_mbq_h",
            N_(
                "whole-body TIA {whole_body_tia_mbq_h} MBq·h is below the organs, "
                "tumours and marrow counted separately ({whole_body_tia_mbq_h2} MBq·h)"
            ),
            N_(
                "whole-body activities of the same patient and cycle (calibrated planar "
                "or multi-bed SPECT)"
            ),
            whole_body_tia_mbq_h=format(whole_body_tia_mbq_h, ".4g"),
            whole_body_tia_mbq_h2=format(whole_body_tia_mbq_h - value, ".4g"),
        )
    return value


@dataclass(frozen=True)
class MarrowDose:
    self_dose_gy: float
    remainder_cross_dose_gy: float
    organ_cross_dose_gy: float
    total_gy: float
    marrow_tia_mbq_h: float
    rmblr: float
    marrow_mass_g: float
    remainder_tia_mbq_h: float = 0.0
    remainder_svalue_mgy_per_mbq_s: float = 0.0
    remainder_source: str = "none"


def marrow_tia_mbq_h(blood_tia_bq_h_per_ml: float, rmblr: float, marrow_mass_g: float) -> float:
    """Ã_RM = c̃_blood · RMBLR · m_RM (MBq·h, with c̃ in Bq·h/mL and 1 g of marrow = 1 mL)."""
    return blood_tia_bq_h_per_ml / 1e6 * rmblr * marrow_mass_g


def marrow_dose(
    blood_tia_bq_h_per_ml: float,
    sex: str,
    rmblr: float = 1.0,
    remainder_tia_mbq_h: float = 0.0,
    marrow_mass_g: float | None = None,
    organ_cross: Mapping[str, tuple[float, float]] | None = None,
    organ_phantom_mass_g: Mapping[str, float] | None = None,
    remainder_source: str = "field_of_view",
) -> MarrowDose:
    """Blood-based red-marrow dose (Gy). ``organ_cross`` maps an organ to (its TIA in MBq·h,
    a user-supplied S(RM←organ) in mGy/(MBq·s)); with its phantom mass in
    ``organ_phantom_mass_g`` the organ also leaves the remainder in the S(RM←RB) correction."""
    for name, v in (
        ("blood_tia_bq_h_per_ml", blood_tia_bq_h_per_ml),
        ("rmblr", rmblr),
        ("remainder_tia_mbq_h", remainder_tia_mbq_h),
    ):
        if not (v >= 0 and math.isfinite(v)):
            raise invalid(
                f"marrow.{name}",
                "invalid_value_2",
                N_("invalid value {v}"),
                N_("a number >= 0"),
                v=repr(v),
            )
    if remainder_source not in REMAINDER_SOURCES:
        raise ValidationError(
            "marrow.remainder_source", repr(remainder_source), ", ".join(REMAINDER_SOURCES)
        )
    sv = organ_svalue("red_marrow", sex)
    mass = sv.phantom_mass_g if marrow_mass_g is None else marrow_mass_g
    s_self = scaled_svalue(sv, mass)
    tia_rm = marrow_tia_mbq_h(blood_tia_bq_h_per_ml, rmblr, mass)
    self_gy = tia_rm * SECONDS_PER_HOUR * s_self / 1000.0
    masses = organ_phantom_mass_g or {}
    rs = remainder_svalue(
        sex, {o: (s, masses[o]) for o, (_, s) in (organ_cross or {}).items() if o in masses}
    )
    rem_gy = remainder_tia_mbq_h * SECONDS_PER_HOUR * rs.s_mgy_per_mbq_s / 1000.0
    org_gy = 0.0
    for organ, (tia, s) in (organ_cross or {}).items():
        if not (tia >= 0 and s >= 0):
            raise invalid(
                f"marrow.organ_cross.{organ}", "negative_value", N_("negative value"), N_(">= 0")
            )
        org_gy += tia * SECONDS_PER_HOUR * s / 1000.0
    return MarrowDose(
        self_gy,
        rem_gy,
        org_gy,
        self_gy + rem_gy + org_gy,
        tia_rm,
        rmblr,
        float(mass),
        remainder_tia_mbq_h,
        rs.s_mgy_per_mbq_s,
        remainder_source,
    )
