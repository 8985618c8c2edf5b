"""Time–activity curves and time-integrated activity (pure functions on arrays).

Times are hours after injection (``time_h``), activities MBq (volumes of interest) or Bq/mL
(voxels); time-integrated activities are returned in MBq·h (or Bq·h/mL for voxels).

Models (all vanish at t = ∞; washout constants are bounded below by the physical decay
constant of Lu-177 by default, as the EANM 2022 guidance recommends):

* ``mono``       A(t) = A0·e^(−λt)
* ``bi_uptake``  A(t) = A0·(e^(−λw·t) − e^(−(λw+δ)·t))                 uptake then washout
* ``bi``         A(t) = A1·e^(−λ1·t) + A2·e^(−(λ1+δ)·t)                 two washout phases
* ``tri``        A(t) = A1·e^(−λ1·t) + A2·e^(−(λ1+δ2)·t) − (A1+A2)·e^(−(λ1+δ3)·t)

Fits are weighted by a stated relative uncertainty of each measurement (default 10 % for image
activities, 5 % for blood samples: the order of the quantification and well-counter terms in
Gear et al. 2018, EJNMMI 45:2456), so that the covariance, and the TIA uncertainty from it by the
delta method, is absolute rather than scaled by the residuals of 1–2 degrees of freedom.

Choice among the models (``fit_auto``): with a stated uncertainty the likelihood has no free
variance, and the criterion is AIC = χ² + 2k (no small-sample term: the AICc correction of
Hurvich & Tsai 1989 exists for an estimated variance); without one, AICc on the residual sum of
squares (Burnham & Anderson 2002). For organs, ``auto`` also considers dropping the earliest
point (a fast early component: blood pool, urine): the slow phase is fitted to the later points
and the first point's excess over it is integrated as a triangle from injection to the second
point; this candidate has one parameter more (k + 1) and is compared on all points, its first
point fitted exactly. Trapezoid integration with a tail, and the single-time-point methods of
Hänscheid (2018) and Madsen (2018), with their validity window, complete the set.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import OptimizeWarning, curve_fit

from reluth.dosimetry.notes import STP_METHODS, Note, note, rounded
from reluth.dosimetry.physics import LU177_DECAY_CONSTANT_PER_H
from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import Quantity, Word, invalid

FloatArray = NDArray[np.float64]

FIT_MODELS = ("mono", "bi_uptake", "bi", "tri")
BLOOD_MODELS = ("mono", "bi")
UPTAKE_MODELS = ("bi_uptake", "tri")
#: Stated 1-SD relative uncertainty of one measured activity (fit weights), by default.
DEFAULT_IMAGE_RELATIVE_SD = 0.10
DEFAULT_BLOOD_RELATIVE_SD = 0.05
#: Single-time-point validity window (h): Hänscheid et al. 2018 (J Nucl Med 59:75), kidneys,
#: about 3–5 days; also applied to Madsen's method. The default image is the one closest to 96 h.
STP_WINDOW_H = (72.0, 120.0)
STP_PREFERRED_H = 96.0
TRAPEZOID_HEADS = ("zero", "constant")
TRAPEZOID_TAILS = ("physical", "last_two_points")
_LAMBDA_MAX_PER_H = 20.0


@dataclass(frozen=True)
class _Model:
    name: str
    param_names: tuple[str, ...]
    func: Callable[..., FloatArray]
    integral: Callable[[Sequence[float]], float]
    washout: Callable[[Sequence[float]], float]


def _mono(t: FloatArray, a0: float, lam: float) -> FloatArray:
    return a0 * np.exp(-lam * t)


def _bi_uptake(t: FloatArray, a0: float, lam_w: float, delta: float) -> FloatArray:
    return a0 * (np.exp(-lam_w * t) - np.exp(-(lam_w + delta) * t))


def _bi(t: FloatArray, a1: float, lam1: float, a2: float, delta: float) -> FloatArray:
    return a1 * np.exp(-lam1 * t) + a2 * np.exp(-(lam1 + delta) * t)


def _tri(
    t: FloatArray, a1: float, lam1: float, a2: float, delta2: float, delta3: float
) -> FloatArray:
    return (
        a1 * np.exp(-lam1 * t)
        + a2 * np.exp(-(lam1 + delta2) * t)
        - (a1 + a2) * np.exp(-(lam1 + delta3) * t)
    )


MODELS: dict[str, _Model] = {
    "mono": _Model(
        "mono", ("a0_mbq", "lambda_per_h"), _mono, lambda p: p[0] / p[1], lambda p: p[1]
    ),
    "bi_uptake": _Model(
        "bi_uptake",
        ("a0_mbq", "lambda_washout_per_h", "delta_uptake_per_h"),
        _bi_uptake,
        lambda p: p[0] * (1.0 / p[1] - 1.0 / (p[1] + p[2])),
        lambda p: p[1],
    ),
    "bi": _Model(
        "bi",
        ("a1_mbq", "lambda1_per_h", "a2_mbq", "delta2_per_h"),
        _bi,
        lambda p: p[0] / p[1] + p[2] / (p[1] + p[3]),
        lambda p: p[1],
    ),
    "tri": _Model(
        "tri",
        ("a1_mbq", "lambda1_per_h", "a2_mbq", "delta2_per_h", "delta3_per_h"),
        _tri,
        lambda p: p[0] / p[1] + p[2] / (p[1] + p[3]) - (p[0] + p[2]) / (p[1] + p[4]),
        lambda p: p[1],
    ),
}


def n_params(model: str) -> int:
    return len(MODELS[model].param_names)


@dataclass(frozen=True)
class FitResult:
    """One fitted model: parameters, time-integrated activity (0 → ∞) and its uncertainty."""

    model: str
    params: dict[str, float]
    tia_mbq_h: float
    tia_sd_mbq_h: float | None
    aicc: float | None
    effective_half_life_h: float
    n_points: int
    weighted_ssr: float
    criterion: float | None = None  # the value fit_auto ranks by (AIC with known σ, or AICc)
    first_point_dropped: bool = False


@dataclass(frozen=True)
class TiaResult:
    """A time-integrated activity with the method that produced it."""

    method: str
    tia_mbq_h: float
    tia_sd_mbq_h: float | None
    effective_half_life_h: float | None
    fit: FitResult | None = None
    candidates: tuple[FitResult, ...] = ()
    warnings: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def validate_series(
    times_h: ArrayLike, activities: ArrayLike, field: str = "activities"
) -> tuple[FloatArray, FloatArray]:
    """Times strictly increasing, finite and non-negative; activities finite and non-negative."""
    t = np.asarray(times_h, dtype=float)
    a = np.asarray(activities, dtype=float)
    if t.ndim != 1 or t.size == 0:
        raise invalid(
            "times_h",
            "no_time_points_given",
            N_("no time points given"),
            N_("a list of hours after injection"),
        )
    if a.shape[0] != t.size:
        raise invalid(
            field,
            "values_per_time_point",
            N_("{shape} values for {size} time points"),
            N_("one value per time point"),
            shape=str(a.shape[0]),
            size=t.size,
        )
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise invalid(
            "times_h",
            "invalid_times",
            N_("invalid time(s) {tolist}"),
            N_("finite hours >= 0"),
            tolist=str(t.tolist()),
        )
    if np.any(np.diff(t) <= 0):
        raise invalid(
            "times_h",
            "times_are_not_strictly_increasing",
            N_("times are not strictly increasing: {tolist}"),
            N_("increasing times"),
            tolist=str(t.tolist()),
        )
    if not np.all(np.isfinite(a)):
        raise invalid(
            field,
            "contains_nan_infinite_values",
            N_("contains NaN or infinite values"),
            N_("finite numbers"),
        )
    if np.any(a < 0):
        raise invalid(
            field,
            "negative_activity_minimum",
            N_("negative activity (minimum {min})"),
            N_("values >= 0"),
            min=format(a.min(), "g"),
        )
    return t, a


# ---------------------------------------------------------------------------------------------
# Fits
# ---------------------------------------------------------------------------------------------


def _initial_guesses(model: str, t: FloatArray, a: FloatArray, lam_min: float) -> list[list[float]]:
    peak = float(a.max()) if a.max() > 0 else 1.0
    pos = a > 0
    if pos.sum() >= 2:
        slope, intercept = np.polyfit(t[pos], np.log(a[pos]), 1)
        lam0 = max(-float(slope), lam_min * 1.01)
        a00 = float(math.exp(intercept))
    else:
        lam0, a00 = lam_min * 2, peak
    lam_tail = lam0
    if pos[-2:].all() and t.size >= 2:
        lam_tail = max(math.log(a[-2] / a[-1]) / (t[-1] - t[-2]), lam_min * 1.01)
    a_tail = float(a[-1] * math.exp(lam_tail * t[-1]))
    t_first = max(float(t[0]), 0.1)
    if model == "mono":
        return [[a00, lam0], [a_tail, lam_tail]]
    if model == "bi_uptake":
        return [[a_tail, lam_tail, 3.0 / t_first], [a_tail, lam_tail, 0.5 / t_first]]
    if model == "bi":
        return [[a_tail, lam_tail, peak, 1.0 / t_first], [0.5 * a00, lam0, 0.5 * a00, 0.1]]
    return [
        [a_tail, lam_tail, peak, 0.5 / t_first, 5.0 / t_first],
        [0.5 * a_tail, lam_tail, 0.5 * peak, 0.1, 1.0],
    ]


def _bounds(model: str, lam_min: float) -> tuple[list[float], list[float]]:
    big = np.inf
    lmax = _LAMBDA_MAX_PER_H
    if model == "mono":
        return [0.0, lam_min], [big, lmax]
    if model == "bi_uptake":
        return [0.0, lam_min, 1e-6], [big, lmax, lmax]
    if model == "bi":
        return [0.0, lam_min, 0.0, 1e-6], [big, lmax, big, lmax]
    return [0.0, lam_min, 0.0, 1e-6, 1e-6], [big, lmax, big, lmax, lmax]


def _gradient(fn: Callable[[Sequence[float]], float], p: FloatArray) -> FloatArray:
    g = np.zeros_like(p)
    for i in range(p.size):
        h = 1e-6 * max(abs(p[i]), 1e-12)
        up, down = p.copy(), p.copy()
        up[i] += h
        down[i] -= h
        g[i] = (fn(up.tolist()) - fn(down.tolist())) / (2 * h)
    return g


def information_criterion(weighted_ssr: float, n: int, k: int, known_sigma: bool) -> float | None:
    """AIC = χ² + 2k with a stated (known) uncertainty, needing n > k; else AICc on the SSR."""
    if known_sigma:
        return weighted_ssr + 2 * k if n > k else None
    return aicc(weighted_ssr, n, k)


def aicc(weighted_ssr: float, n: int, k: int) -> float | None:
    """Akaike information criterion with small-sample correction; None if n − k − 1 ≤ 0."""
    if n - k - 1 <= 0:
        return None
    ssr = max(weighted_ssr, 1e-300)
    return n * math.log(ssr / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def fit_model(
    model: str,
    times_h: ArrayLike,
    activities_mbq: ArrayLike,
    sigma_mbq: ArrayLike | None = None,
    min_decay_constant_per_h: float = LU177_DECAY_CONSTANT_PER_H,
) -> FitResult:
    """Least-squares fit of one model with bounds; ``sigma_mbq`` are absolute 1-SD uncertainties
    (weights 1/σ²). Without them the covariance is scaled by the residuals."""
    if model not in MODELS:
        raise invalid(
            "model",
            "unknown_fit_model",
            N_("unknown fit model {model}"),
            N_("{fit_models}"),
            model=repr(model),
            fit_models=", ".join(FIT_MODELS),
        )
    t, a = validate_series(times_h, activities_mbq)
    k = n_params(model)
    if t.size < k:
        raise invalid(
            "times_h",
            "model_needs_least_time_points",
            N_("model {model} needs at least {k} time points, got {size}"),
            N_(">= {k} time points"),
            model=repr(model),
            k=str(k),
            size=t.size,
        )
    sig: FloatArray | None = None
    if sigma_mbq is not None:
        sig = np.asarray(sigma_mbq, dtype=float)
        if sig.shape != t.shape or np.any(~np.isfinite(sig)) or np.any(sig <= 0):
            raise invalid(
                "sigma_mbq",
                "invalid_uncertainties",
                N_("invalid uncertainties"),
                N_("one value > 0 per point"),
            )
    spec = MODELS[model]
    lo, hi = _bounds(model, min_decay_constant_per_h)
    best: tuple[float, FloatArray, FloatArray] | None = None
    for p0 in _initial_guesses(model, t, a, min_decay_constant_per_h):
        p0c = np.clip(np.asarray(p0, dtype=float), np.asarray(lo) + 1e-12, np.asarray(hi) - 1e-9)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                popt, pcov = curve_fit(
                    spec.func,
                    t,
                    a,
                    p0=p0c,
                    sigma=sig,
                    absolute_sigma=sig is not None,
                    bounds=(lo, hi),
                    max_nfev=20000,
                    x_scale="jac",
                )
        except (RuntimeError, ValueError):
            continue
        resid = (spec.func(t, *popt) - a) / (sig if sig is not None else 1.0)
        ssr = float(np.sum(resid**2))
        if best is None or ssr < best[0]:
            best = (ssr, popt, pcov)
    if best is None:
        raise invalid(
            "activities",
            "fit_did_not_converge",
            N_("the {model} fit did not converge"),
            N_("another model"),
            model=repr(model),
        )
    ssr, popt, pcov = best
    tia = float(spec.integral(popt.tolist()))
    sd: float | None = None
    if (np.all(np.isfinite(pcov)) and t.size > k) or sig is not None:
        g = _gradient(spec.integral, popt)
        var = float(g @ pcov @ g)
        sd = math.sqrt(var) if math.isfinite(var) and var >= 0 else None
    lam_w = float(spec.washout(popt.tolist()))
    return FitResult(
        model=model,
        params=dict(zip(spec.param_names, (float(x) for x in popt), strict=True)),
        tia_mbq_h=tia,
        tia_sd_mbq_h=sd,
        aicc=aicc(ssr, t.size, k),
        effective_half_life_h=math.log(2) / lam_w,
        n_points=int(t.size),
        weighted_ssr=ssr,
        criterion=information_criterion(ssr, t.size, k, sig is not None),
    )


def fit_dropping_first(
    times_h: ArrayLike,
    activities_mbq: ArrayLike,
    sigma_mbq: ArrayLike | None = None,
    min_decay_constant_per_h: float = LU177_DECAY_CONSTANT_PER_H,
) -> FitResult | None:
    """Mono-exponential on all points but the first, plus the first point's excess over it
    integrated as a triangle from injection to the second point (a fast early component).
    None when the first point is not above the slow phase (an uptake, not a fast washout)."""
    t, a = validate_series(times_h, activities_mbq)
    if t.size < 4:
        return None
    sig = None if sigma_mbq is None else np.asarray(sigma_mbq, dtype=float)
    late = fit_model(
        "mono", t[1:], a[1:], None if sig is None else sig[1:], min_decay_constant_per_h
    )
    a0, lam = late.params["a0_mbq"], late.params["lambda_per_h"]
    excess = float(a[0] - a0 * math.exp(-lam * t[0]))
    if not excess > 0:
        return None
    early = 0.5 * excess * float(t[1])
    sd = late.tia_sd_mbq_h
    if sd is not None and sig is not None:
        sd = math.sqrt(sd**2 + (0.5 * float(t[1]) * float(sig[0])) ** 2)
    k = n_params("mono") + 1
    return FitResult(
        model="mono",
        params={**late.params, "first_point_excess_mbq": excess},
        tia_mbq_h=late.tia_mbq_h + early,
        tia_sd_mbq_h=sd,
        aicc=aicc(late.weighted_ssr, int(t.size), k),
        effective_half_life_h=late.effective_half_life_h,
        n_points=int(t.size),
        weighted_ssr=late.weighted_ssr,
        criterion=information_criterion(late.weighted_ssr, int(t.size), k, sig is not None),
        first_point_dropped=True,
    )


def fit_auto(
    times_h: ArrayLike,
    activities_mbq: ArrayLike,
    sigma_mbq: ArrayLike | None = None,
    models: Sequence[str] = FIT_MODELS,
    min_decay_constant_per_h: float = LU177_DECAY_CONSTANT_PER_H,
    consider_dropping_first: bool = False,
) -> TiaResult:
    """Fit every candidate model the criterion can judge (AIC with a stated σ: n > k; AICc
    without: n > k + 1) and keep the lowest; for organs (``consider_dropping_first``) also the
    slow phase without the first point (:func:`fit_dropping_first`). With too few points for
    any, the mono-exponential is fitted and said so."""
    t, a = validate_series(times_h, activities_mbq)
    known = sigma_mbq is not None
    usable = [m for m in models if t.size - n_params(m) - (0 if known else 1) > 0]
    if not usable:
        if t.size < n_params("mono"):
            raise invalid(
                "times_h",
                "time_point_too_few_fit",
                N_("{size} time point is too few for a fit"),
                N_(">= 2 time points, or a single-time-point method (hanscheid, madsen)"),
                size=t.size,
            )
        f = fit_model("mono", t, a, sigma_mbq, min_decay_constant_per_h)
        return TiaResult(
            "fit:mono (too few points for AICc)",
            f.tia_mbq_h,
            f.tia_sd_mbq_h,
            f.effective_half_life_h,
            f,
            (f,),
        )
    fits: list[FitResult] = []
    for m in usable:
        try:
            fits.append(fit_model(m, t, a, sigma_mbq, min_decay_constant_per_h))
        except ValidationError:
            continue
    if consider_dropping_first:
        try:
            dropped = fit_dropping_first(t, a, sigma_mbq, min_decay_constant_per_h)
        except ValidationError:
            dropped = None
        if dropped is not None and dropped.criterion is not None:
            fits.append(dropped)
    if not fits:
        raise invalid(
            "activities",
            "no_model_fitted",
            N_("no model could be fitted"),
            N_("a decaying curve"),
        )
    best = min(fits, key=lambda f: f.criterion if f.criterion is not None else math.inf)
    name = f"fit:{best.model}" + (" (first point dropped)" if best.first_point_dropped else "")
    return TiaResult(
        name,
        best.tia_mbq_h,
        best.tia_sd_mbq_h,
        best.effective_half_life_h,
        best,
        tuple(fits),
    )


def stp_index(times_h: Sequence[float], preferred_h: float = STP_PREFERRED_H) -> int:
    """The image closest to ``preferred_h`` (96 h by default, Hänscheid 2018)."""
    if not times_h:
        raise invalid(
            "times_h", "no_time_points_given", N_("no time points given"), N_("a list of hours")
        )
    return int(np.argmin([abs(t - preferred_h) for t in times_h]))


def stp_warning(
    method: str, time_h: float, window_h: tuple[float, float] = STP_WINDOW_H
) -> Note | None:
    """A note when a single-time-point estimate is used outside its validity window."""
    lo, hi = window_h
    if lo <= time_h <= hi:
        return None
    return note(
        "dosimetry.stp_outside_window",
        N_(
            "{method} single-time-point estimate at {time}, outside its validity window "
            "{lo}–{hi} (Hänscheid 2018): error can exceed 10 % (Hänscheid at 168 h for a "
            "50 h effective half-life: {error} %)"
        ),
        method=Word(method) if method in STP_METHODS else method,
        time=rounded(time_h, "h"),
        lo=Decimal(f"{lo:g}"),
        hi=Quantity(Decimal(f"{hi:g}"), "h"),
        error=Decimal(f"{100 * (hanscheid_ratio(168 / 50) - 1):+.1f}"),
    )


# ---------------------------------------------------------------------------------------------
# Trapezoid + tail, single time point
# ---------------------------------------------------------------------------------------------


def _trapezoid_value(
    t: FloatArray, a: FloatArray, head: str, tail: str, lam_phys: float
) -> tuple[float, float]:
    inner = float(np.sum(0.5 * (a[1:] + a[:-1]) * np.diff(t)))
    head_part = 0.5 * a[0] * t[0] if head == "zero" else a[0] * t[0]
    lam = lam_phys
    if tail == "last_two_points" and t.size >= 2 and a[-1] > 0 and a[-2] > 0:
        lam = max(math.log(a[-2] / a[-1]) / (t[-1] - t[-2]), lam_phys)
    return head_part + inner + a[-1] / lam, lam


def trapezoid_tia(
    times_h: ArrayLike,
    activities_mbq: ArrayLike,
    sigma_mbq: ArrayLike | None = None,
    head: str = "zero",
    tail: str = "physical",
    decay_constant_per_h: float = LU177_DECAY_CONSTANT_PER_H,
) -> TiaResult:
    """Trapezoid over the samples; from injection to the first sample a line from zero
    (``head="zero"``) or the first value held (``"constant"``); beyond the last sample the
    physical decay (``tail="physical"``) or the clearance of the last two samples, never slower
    than physical decay (``"last_two_points"``)."""
    if head not in TRAPEZOID_HEADS:
        raise invalid(
            "head",
            "unknown_head",
            N_("unknown head {head}"),
            N_("{trapezoid_heads}"),
            head=repr(head),
            trapezoid_heads=", ".join(TRAPEZOID_HEADS),
        )
    if tail not in TRAPEZOID_TAILS:
        raise invalid(
            "tail",
            "unknown_tail",
            N_("unknown tail {tail}"),
            N_("{trapezoid_tails}"),
            tail=repr(tail),
            trapezoid_tails=", ".join(TRAPEZOID_TAILS),
        )
    t, a = validate_series(times_h, activities_mbq)
    value, lam = _trapezoid_value(t, a, head, tail, decay_constant_per_h)
    sd = None
    if sigma_mbq is not None:
        sig = np.asarray(sigma_mbq, dtype=float)

        def fn(p: Sequence[float]) -> float:
            return _trapezoid_value(t, np.asarray(p), head, tail, decay_constant_per_h)[0]

        g = _gradient(fn, a.copy())
        sd = float(math.sqrt(np.sum((g * sig) ** 2)))
    return TiaResult(f"trapezoid:{head}+{tail}", value, sd, math.log(2) / lam)


def hanscheid_tia(time_h: float, activity_mbq: float) -> float:
    """Hänscheid 2018 single-time-point estimate: Ã ≈ A(t)·2t/ln 2 (best near t ≈ 96 h)."""
    _check_stp(time_h, activity_mbq)
    return activity_mbq * 2.0 * time_h / math.log(2.0)


def madsen_tia(time_h: float, activity_mbq: float, effective_half_life_h: float) -> float:
    """Madsen 2018 single-time-point estimate with a population effective half-life:
    Ã = A(t)·e^(λ_eff·t)/λ_eff."""
    _check_stp(time_h, activity_mbq)
    if not (effective_half_life_h > 0 and math.isfinite(effective_half_life_h)):
        raise invalid(
            "effective_half_life_h",
            "invalid_value",
            N_("invalid value {effective_half_life_h}"),
            N_("hours > 0"),
            effective_half_life_h=repr(effective_half_life_h),
        )
    lam = math.log(2.0) / effective_half_life_h
    return activity_mbq * math.exp(lam * time_h) / lam


def _check_stp(time_h: float, activity_mbq: float) -> None:
    if not (time_h > 0 and math.isfinite(time_h)):
        raise invalid(
            "time_h",
            "invalid_time",
            N_("invalid time {time_h}"),
            N_("hours > 0 after injection"),
            time_h=repr(time_h),
        )
    if not (activity_mbq >= 0 and math.isfinite(activity_mbq)):
        raise invalid(
            "activity_mbq",
            "invalid_activity",
            N_("invalid activity {activity_mbq}"),
            N_(">= 0"),
            activity_mbq=repr(activity_mbq),
        )


def hanscheid_ratio(x: float) -> float:
    """Ratio of the Hänscheid estimate to the true mono-exponential TIA at x = t/T_eff."""
    return 2.0 * x * 2.0 ** (-x)


# ---------------------------------------------------------------------------------------------
# Images → curves; voxel-wise time-integrated activity
# ---------------------------------------------------------------------------------------------


def tac_mbq(
    images_bq_per_ml: NDArray[np.floating], mask: NDArray[np.bool_], voxel_volume_ml: float
) -> FloatArray:
    """Activity (MBq) in a volume of interest at each time point: Σ c·V / 1e6."""
    if images_bq_per_ml.shape[1:] != mask.shape:
        raise invalid(
            "mask",
            "grid_does_not_match_image",
            N_("grid {shape} does not match the image grid {shape2}"),
            N_("a mask on the SPECT grid"),
            shape=str(mask.shape),
            shape2=str(images_bq_per_ml.shape[1:]),
        )
    sums = images_bq_per_ml[:, mask].sum(axis=1, dtype=np.float64)
    return np.asarray(sums * voxel_volume_ml / 1e6, dtype=np.float64)


def voxel_tia_mono(
    times_h: ArrayLike,
    images: NDArray[np.floating],
    min_decay_constant_per_h: float = LU177_DECAY_CONSTANT_PER_H,
    gauss_newton_steps: int = 3,
) -> NDArray[np.float32]:
    """Voxel-wise mono-exponential fit, vectorized: weighted log-linear least squares (weights
    A²) as a start, then ``gauss_newton_steps`` Gauss–Newton steps of least squares on A (which
    removes most of the log-transform bias under noise; a step that does not lower the residual
    is not kept). λ is bounded below by the physical decay constant (A0 refitted with λ fixed
    where the bound binds). Voxels with a zero sample fall back to trapezoid with a physical
    tail. Returns Ã in (image unit)·h, float32."""
    t = np.asarray(times_h, dtype=np.float64)
    n = t.size
    if n < 2:
        raise invalid(
            "times_h",
            "voxel_fit_needs_2_time",
            N_("voxel fit needs >= 2 time points, got {n}"),
            N_(">= 2"),
            n=str(n),
        )
    lam_min = min_decay_constant_per_h
    flat = images.reshape(n, -1)
    out = np.empty(flat.shape[1], dtype=np.float32)
    e_min = np.exp(-lam_min * t)[:, None]
    chunk = 1 << 19
    for s in range(0, flat.shape[1], chunk):
        a = flat[:, s : s + chunk].astype(np.float64)
        positive = np.all(a > 0, axis=0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y = np.log(np.where(a > 0, a, 1.0))
            w = a * a
            sw = w.sum(0)
            st = (w * t[:, None]).sum(0)
            stt = (w * (t * t)[:, None]).sum(0)
            sy = (w * y).sum(0)
            sty = (w * t[:, None] * y).sum(0)
            slope = (sw * sty - st * sy) / (sw * stt - st * st)
            a0 = np.exp((sy - slope * st) / sw)
            lam = -slope
            a0_fixed = (a * e_min).sum(0) / (e_min * e_min).sum(0)
            bound = ~(lam >= lam_min)
            lam = np.where(bound, lam_min, lam)
            a0 = np.where(bound, a0_fixed, a0)
            tt = t[:, None]
            e = np.exp(-lam * tt)
            ssr = ((a - a0 * e) ** 2).sum(0)
            for _ in range(gauss_newton_steps):
                f = a0 * e
                r = a - f
                jl = -tt * f
                saa = (e * e).sum(0)
                sal = (e * jl).sum(0)
                sll = (jl * jl).sum(0)
                ra = (e * r).sum(0)
                rl = (jl * r).sum(0)
                det = saa * sll - sal * sal
                a0_new = a0 + (sll * ra - sal * rl) / det
                lam_new = lam + (saa * rl - sal * ra) / det
                at_bound = ~(lam_new >= lam_min)
                lam_new = np.where(at_bound, lam_min, lam_new)
                a0_new = np.where(at_bound, a0_fixed, a0_new)
                e_new = np.exp(-lam_new * tt)
                ssr_new = ((a - a0_new * e_new) ** 2).sum(0)
                better = (ssr_new < ssr) & np.isfinite(a0_new) & (a0_new > 0)
                a0 = np.where(better, a0_new, a0)
                lam = np.where(better, lam_new, lam)
                ssr = np.where(better, ssr_new, ssr)
                e = np.where(better, e_new, e)
            tia = a0 / lam
        trap = _voxel_trapezoid(t, a, lam_min)
        out[s : s + chunk] = np.where(positive & np.isfinite(tia), tia, trap)
    return out.reshape(images.shape[1:])


def _voxel_trapezoid(t: FloatArray, a: FloatArray, lam: float) -> FloatArray:
    inner = (0.5 * (a[1:] + a[:-1]) * np.diff(t)[:, None]).sum(0)
    return np.asarray(0.5 * a[0] * t[0] + inner + a[-1] / lam, dtype=np.float64)


def voxel_tia_trapezoid(
    times_h: ArrayLike,
    images: NDArray[np.floating],
    decay_constant_per_h: float = LU177_DECAY_CONSTANT_PER_H,
) -> NDArray[np.float32]:
    """Voxel-wise trapezoid (zero head, physical tail)."""
    t = np.asarray(times_h, dtype=np.float64)
    flat = images.reshape(t.size, -1).astype(np.float64)
    return (
        _voxel_trapezoid(t, flat, decay_constant_per_h).astype(np.float32).reshape(images.shape[1:])
    )


def voxel_tia_hanscheid(time_h: float, image: NDArray[np.floating]) -> NDArray[np.float32]:
    """Hänscheid single-time-point estimate applied to every voxel: c(t)·2t/ln 2."""
    if not time_h > 0:
        raise invalid(
            "time_h",
            "invalid_time",
            N_("invalid time {time_h}"),
            N_("hours > 0 after injection"),
            time_h=repr(time_h),
        )
    return np.asarray(image * (2.0 * time_h / math.log(2.0)), dtype=np.float32)


def has_uptake_phase(tr: TiaResult) -> bool:
    """True when the VOI's chosen model has an uptake phase (bi_uptake, tri): a voxel-wise
    mono-exponential fit, which assumes instantaneous uptake, overestimates such voxels."""
    return tr.fit is not None and tr.fit.model in UPTAKE_MODELS


def voxel_tia_organ_scaled(
    images: NDArray[np.floating],
    masks: dict[str, NDArray[np.bool_]],
    voi_tia_mbq_h: dict[str, float],
    voxel_volume_ml: float,
    reference_index: int,
    background_tia: NDArray[np.floating],
) -> NDArray[np.float32]:
    """Each VOI's TIA spread over its voxels in proportion to the image at ``reference_index``
    (the PyTheranostics approach); voxels outside every VOI keep ``background_tia``."""
    out = np.array(background_tia, dtype=np.float32, copy=True)
    ref = images[reference_index]
    for name, mask in masks.items():
        if name not in voi_tia_mbq_h:
            continue
        total = float(ref[mask].sum(dtype=np.float64))
        if total <= 0:
            continue
        per_ml = voi_tia_mbq_h[name] * 1e6 / voxel_volume_ml
        out[mask] = (ref[mask] / total * per_ml).astype(np.float32)
    return out
