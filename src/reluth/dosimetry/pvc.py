"""Partial-volume correction by recovery coefficients (RC) measured per camera, collimator and
reconstruction with a sphere phantom (EANM 2022, Sjögreen Gleisner et al., EJNMMI 49:1778;
MIRD Pamphlet 23): A_true = A_measured / RC(V), with V the VOI volume.

The curve is a data file each centre supplies (format in docs/dosimetry.md, example in
examples/dosimetry/recovery_curve_example.yaml). RC(V) is interpolated monotonically (PCHIP)
in log volume between the measured spheres. A VOI larger than the largest sphere is not
corrected (its RC is taken as 1: the correction is for tumours and small organs); a VOI smaller
than the smallest sphere gets the smallest sphere's RC, flagged as extrapolated (the correction
is then an underestimate and the result is warned about).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.interpolate import PchipInterpolator

from reluth.i18n import N_
from reluth.i18n.reasons import invalid

#: Relative 1-SD of a recovery coefficient when the curve states none.
DEFAULT_RECOVERY_RELATIVE_SD = 0.05


@dataclass(frozen=True)
class RecoveryCurve:
    curve_id: str
    volumes_ml: tuple[float, ...]
    recoveries: tuple[float, ...]
    sds: tuple[float, ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def largest_volume_ml(self) -> float:
        return self.volumes_ml[-1]


@dataclass(frozen=True)
class Recovery:
    volume_ml: float
    coefficient: float
    relative_sd: float
    applied: bool
    extrapolated: bool
    curve_id: str


_REQUIRED = ("curve_id", "camera", "collimator", "reconstruction", "points")


def parse_recovery_curve(doc: Any, where: str = "recovery_curve") -> RecoveryCurve:
    """A curve from its YAML document; errors name the field."""
    if not isinstance(doc, dict):
        raise invalid(where, "not_mapping", N_("not a mapping"), N_("see docs/dosimetry.md"))
    for key in _REQUIRED:
        if doc.get(key) in (None, "", []):
            raise invalid(f"{where}.{key}", "missing", N_("missing"), N_("see docs/dosimetry.md"))
    points = doc["points"]
    if not isinstance(points, list) or len(points) < 2:
        raise invalid(
            f"{where}.points",
            "fewer_than_2_spheres",
            N_("fewer than 2 spheres"),
            N_(">= 2 spheres"),
        )
    rows = []
    for i, p in enumerate(points):
        w = f"{where}.points[{i}]"
        try:
            v, rc = float(p["volume_ml"]), float(p["recovery"])
            sd = float(p["sd"]) if p.get("sd") is not None else DEFAULT_RECOVERY_RELATIVE_SD * rc
        except (KeyError, TypeError, ValueError):
            raise invalid(
                w, "unaccepted_w", N_("{p}"), N_("{{volume_ml, recovery[, sd]}} numbers"), p=repr(p)
            ) from None
        if not (v > 0 and math.isfinite(v)):
            raise invalid(
                f"{w}.volume_ml",
                "unaccepted_w_volume_ml",
                N_("{v}"),
                N_("a volume > 0 mL"),
                v=repr(v),
            )
        if not (0 < rc <= 1.2 and math.isfinite(rc)):
            raise invalid(
                f"{w}.recovery",
                "unaccepted_w_recovery",
                N_("{rc}"),
                N_("a recovery coefficient in (0, 1.2]"),
                rc=repr(rc),
            )
        if not (sd >= 0 and math.isfinite(sd)):
            raise invalid(f"{w}.sd", "unaccepted_w_sd", N_("{sd}"), N_("an SD >= 0"), sd=repr(sd))
        rows.append((v, rc, sd))
    rows.sort()
    if any(b[0] <= a[0] for a, b in itertools.pairwise(rows)):
        raise invalid(
            f"{where}.points",
            "two_spheres_one_volume",
            N_("two spheres of one volume"),
            N_("distinct volumes"),
        )
    if any(b[1] < a[1] for a, b in itertools.pairwise(rows)):
        raise invalid(
            f"{where}.points",
            "recovery_decreases_sphere_volume",
            N_("recovery decreases with sphere volume"),
            N_("a curve that does not decrease with volume"),
        )
    meta = {k: v for k, v in doc.items() if k != "points"}
    return RecoveryCurve(
        str(doc["curve_id"]),
        tuple(r[0] for r in rows),
        tuple(r[1] for r in rows),
        tuple(r[2] for r in rows),
        meta,
    )


def recovery_for(curve: RecoveryCurve, volume_ml: float) -> Recovery:
    """RC of a VOI of ``volume_ml`` (see the module docstring for the ends of the curve)."""
    if not (volume_ml > 0 and math.isfinite(volume_ml)):
        raise invalid(
            "volume_ml",
            "unaccepted_volume_ml",
            N_("{volume_ml}"),
            N_("a VOI volume > 0 mL"),
            volume_ml=repr(volume_ml),
        )
    v = np.log(np.asarray(curve.volumes_ml))
    if volume_ml > curve.largest_volume_ml:
        return Recovery(volume_ml, 1.0, 0.0, False, False, curve.curve_id)
    extrapolated = volume_ml < curve.volumes_ml[0]
    x = max(math.log(volume_ml), float(v[0]))
    rc = float(PchipInterpolator(v, np.asarray(curve.recoveries))(x))
    sd = float(np.interp(x, v, np.asarray(curve.sds)))
    return Recovery(volume_ml, rc, sd / rc, True, extrapolated, curve.curve_id)
