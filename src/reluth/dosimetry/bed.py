"""Biologically effective dose for exponentially decreasing dose rates (kidney by default).

BED = Σᵢ Dᵢ · [1 + Dᵢ · T_rep / ((α/β) · (T_rep + T_eff,i))], with the repair half-time T_rep
and the effective half-life T_eff of the dose rate (Dale's formulation; α/β 2.6 Gy and
T_rep 2.8 h for kidney as in the reference sheet)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from reluth.i18n import N_
from reluth.i18n.reasons import invalid


@dataclass(frozen=True)
class BedParameters:
    alpha_beta_gy: float = 2.6
    repair_half_time_h: float = 2.8

    def __post_init__(self) -> None:
        for name in ("alpha_beta_gy", "repair_half_time_h"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise invalid(
                    name, "invalid_value_2", N_("invalid value {v}"), N_("a number > 0"), v=repr(v)
                )


KIDNEY = BedParameters()


def bed_gy(dose_gy: float, effective_half_life_h: float, params: BedParameters = KIDNEY) -> float:
    """BED of one cycle."""
    if not (dose_gy >= 0 and math.isfinite(dose_gy)):
        raise invalid(
            "dose_gy",
            "invalid_absorbed_dose",
            N_("invalid absorbed dose {dose_gy}"),
            N_("Gy >= 0"),
            dose_gy=repr(dose_gy),
        )
    if not (effective_half_life_h > 0 and math.isfinite(effective_half_life_h)):
        raise invalid(
            "effective_half_life_h",
            "invalid_value",
            N_("invalid value {effective_half_life_h}"),
            N_("hours > 0"),
            effective_half_life_h=repr(effective_half_life_h),
        )
    t_rep = params.repair_half_time_h
    g = t_rep / (t_rep + effective_half_life_h)
    return dose_gy * (1.0 + dose_gy * g / params.alpha_beta_gy)


def bed_sum_gy(
    doses_gy: Sequence[float],
    effective_half_lives_h: Sequence[float],
    params: BedParameters = KIDNEY,
) -> float:
    """BED summed over cycles (full repair between cycles)."""
    if len(doses_gy) != len(effective_half_lives_h):
        raise invalid(
            "effective_half_lives_h", "one_half_life_per_dose", N_("one half-life per dose needed")
        )
    return sum(bed_gy(d, t, params) for d, t in zip(doses_gy, effective_half_lives_h, strict=True))
