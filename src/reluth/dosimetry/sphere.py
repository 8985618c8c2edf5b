"""Tumour dose by the sphere model: self-S-values of unit-density spheres, log–log interpolated
over mass (table shipped in data/lu177_sphere_svalues.csv with its provenance)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from reluth.dosimetry.physics import SECONDS_PER_HOUR
from reluth.dosimetry.svalues import read_data_csv
from reluth.i18n import N_
from reluth.i18n.reasons import invalid


@lru_cache(maxsize=1)
def sphere_table() -> tuple[tuple[float, ...], tuple[float, ...]]:
    rows = read_data_csv("lu177_sphere_svalues.csv")
    masses = tuple(float(r["mass_g"]) for r in rows)
    values = tuple(float(r["s_mgy_per_mbq_s"]) for r in rows)
    return masses, values


@dataclass(frozen=True)
class SphereS:
    mass_g: float
    s_mgy_per_mbq_s: float
    extrapolated: bool


def sphere_svalue(mass_g: float) -> SphereS:
    """Self-S-value of a sphere of ``mass_g``; outside the table the end segment is extended
    in log–log and the result is flagged as extrapolated."""
    if not (mass_g > 0 and math.isfinite(mass_g)):
        raise invalid(
            "mass_g",
            "sphere_mass",
            N_("sphere mass {mass_g}"),
            N_("a mass > 0 g"),
            mass_g=repr(mass_g),
        )
    m, s = (np.log(np.asarray(x)) for x in sphere_table())
    lm = math.log(mass_g)
    if lm < m[0] or lm > m[-1]:
        i = 0 if lm < m[0] else len(m) - 2
        slope = (s[i + 1] - s[i]) / (m[i + 1] - m[i])
        return SphereS(mass_g, float(math.exp(s[i] + slope * (lm - m[i]))), True)
    return SphereS(mass_g, float(math.exp(np.interp(lm, m, s))), False)


def sphere_dose_gy(tia_mbq_h: float, mass_g: float) -> tuple[float, bool]:
    """Absorbed dose (Gy) to a sphere and whether the S-value was extrapolated."""
    sv = sphere_svalue(mass_g)
    return tia_mbq_h * SECONDS_PER_HOUR * sv.s_mgy_per_mbq_s / 1000.0, sv.extrapolated
