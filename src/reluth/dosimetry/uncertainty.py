"""Uncertainty of absorbed doses after the EANM guideline (Gear et al. 2018, EJNMMI 45:2456):
the relative standard uncertainties of the independent terms combined in quadrature,
reported per dose with each term.

Terms (relative 1-SD):

* ``calibration`` — the camera calibration factor (systematic: scales every time point);
* ``recovery`` — the recovery coefficient when a partial-volume correction is applied;
* ``volume`` — VOI delineation: a boundary uncertainty δ perpendicular to the VOI surface,
  σ_V/V = δ·S/V with S the surface estimated from the mask (``mask_surface_mm2``; the volume
  term dominates for small VOIs, Gear 2018); it enters through the mass (D ∝ 1/m);
* ``mass`` — the density (CT number to density, or the assumed tissue density);
* ``fit`` — the time-integrated activity from the fit covariance with the stated measurement
  uncertainty; inflated by √(χ²/ν) when the residuals exceed it, but only from ν ≥ 3 degrees of
  freedom (the floor: with 1–2 the residual variance is too uncertain to use, and the stated
  uncertainty is kept); for a single time point the method's own error (Hänscheid 2018:
  −10…+6 % inside 72–120 h, 30 % assumed outside) is added to the measurement;
* ``svalue`` — the S-value (reference phantom, mass scaling) or sphere model.

The terms are taken as independent (first-order propagation, D = Ã·S(m)); the correlation of a
VOI's activity with its volume, which Gear et al. model, is not, and this overestimates the
combined value for VOIs drawn on the uptake.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from reluth.dosimetry import kinetics
from reluth.i18n import N_
from reluth.i18n.reasons import invalid

DOF_FLOOR = 3
STP_METHOD_RELATIVE_SD = (0.10, 0.30)  # inside / outside the validity window


@dataclass(frozen=True)
class UncertaintySettings:
    """Stated relative 1-SD uncertainties (defaults are typical values of Gear 2018's worked
    examples; a centre replaces them with its own)."""

    calibration_relative_sd: float = 0.05
    svalue_relative_sd: float = 0.05
    density_relative_sd: float = 0.02
    boundary_mm: float = 1.0
    dof_floor: int = DOF_FLOOR

    def __post_init__(self) -> None:
        for name in ("calibration_relative_sd", "svalue_relative_sd", "density_relative_sd"):
            v = getattr(self, name)
            if not (0 <= v < 1 and math.isfinite(v)):
                raise invalid(
                    f"uncertainty.{name}",
                    "unaccepted_uncertainty_name",
                    N_("{v}"),
                    N_("a fraction in [0, 1)"),
                    v=repr(v),
                )
        if not (self.boundary_mm >= 0 and math.isfinite(self.boundary_mm)):
            raise invalid(
                "uncertainty.boundary_mm",
                "unaccepted_uncertainty_boundary_mm",
                N_("{boundary_mm}"),
                N_("mm >= 0"),
                boundary_mm=repr(self.boundary_mm),
            )
        if self.dof_floor < 1:
            raise invalid(
                "uncertainty.dof_floor",
                "unaccepted_uncertainty_dof_floor",
                N_("{dof_floor}"),
                N_("an integer >= 1"),
                dof_floor=repr(self.dof_floor),
            )


@dataclass(frozen=True)
class DoseUncertainty:
    components: dict[str, float]
    relative_sd: float
    sd_gy: float


def mask_surface_mm2(mask: NDArray[np.bool_], voxel_mm: tuple[float, float, float]) -> float:
    """Surface of the object a mask samples (mm²): the area of the voxel faces between the mask
    and its outside × 2/3, the mean excess of a staircase over an isotropically oriented
    smooth surface (Cauchy's projection formula: the mean of |n_x| + |n_y| + |n_z| is 3/2)."""
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    area = 0.0
    for axis in range(3):
        faces = int(np.count_nonzero(np.diff(m.astype(np.int8), axis=axis)))
        others = [voxel_mm[a] for a in range(3) if a != axis]
        area += faces * others[0] * others[1]
    return area * 2.0 / 3.0


def volume_relative_sd(
    mask: NDArray[np.bool_], voxel_mm: tuple[float, float, float], boundary_mm: float
) -> float:
    """σ_V/V = δ·S/V for a boundary uncertainty δ."""
    volume = float(np.count_nonzero(mask)) * float(np.prod(voxel_mm))
    if volume <= 0:
        raise invalid(
            "mask",
            "volume_interest_empty",
            N_("the volume of interest is empty"),
            N_("at least one voxel"),
        )
    return boundary_mm * mask_surface_mm2(mask, voxel_mm) / volume


def fit_relative_sd(
    tr: kinetics.TiaResult, point_relative_sd: float | None, dof_floor: int = DOF_FLOOR
) -> float | None:
    """Relative SD of the TIA from its kinetics (see the module docstring); None if unknown."""
    if tr.tia_mbq_h <= 0:
        return None
    if tr.fit is None:
        if tr.method in ("hanscheid", "madsen"):
            outside = any("validity window" in w for w in tr.warnings)
            method = STP_METHOD_RELATIVE_SD[1 if outside else 0]
            return math.hypot(point_relative_sd or 0.0, method)
        return None if tr.tia_sd_mbq_h is None else tr.tia_sd_mbq_h / tr.tia_mbq_h
    if tr.tia_sd_mbq_h is None:
        return None
    rel = tr.tia_sd_mbq_h / tr.tia_mbq_h
    if point_relative_sd is None:
        return rel  # unweighted: covariance already scaled by the residuals
    k = len(tr.fit.params) - (1 if tr.fit.first_point_dropped else 0)
    n = tr.fit.n_points - (1 if tr.fit.first_point_dropped else 0)
    dof = n - k
    if dof >= dof_floor:
        rel *= math.sqrt(max(1.0, tr.fit.weighted_ssr / dof))
    return rel


def combine(dose_gy: float, components: Mapping[str, float | None]) -> DoseUncertainty:
    """Quadrature sum of the relative terms that are known."""
    known = {k: float(v) for k, v in components.items() if v is not None}
    for name, v in known.items():
        if not (v >= 0 and math.isfinite(v)):
            raise invalid(
                f"uncertainty.{name}",
                "unaccepted_uncertainty_name",
                N_("{v}"),
                N_("a relative SD >= 0"),
                v=repr(v),
            )
    rel = math.sqrt(sum(v * v for v in known.values()))
    return DoseUncertainty(known, rel, abs(dose_gy) * rel)


def dose_uncertainty(
    dose_gy: float,
    tr: kinetics.TiaResult,
    mask: NDArray[np.bool_],
    voxel_mm: tuple[float, float, float],
    settings: UncertaintySettings,
    point_relative_sd: float | None,
    recovery_relative_sd: float | None = None,
    mass_given: bool = False,
) -> DoseUncertainty:
    """All terms of one VOI dose. ``mass_given``: the mass was stated, not measured (no
    volume or density term)."""
    return combine(
        dose_gy,
        {
            "calibration": settings.calibration_relative_sd,
            "recovery": recovery_relative_sd,
            "volume": None
            if mass_given
            else volume_relative_sd(mask, voxel_mm, settings.boundary_mm),
            "mass": None if mass_given else settings.density_relative_sd,
            "fit": fit_relative_sd(tr, point_relative_sd, settings.dof_floor),
            "svalue": settings.svalue_relative_sd,
        },
    )
