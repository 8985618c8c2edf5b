"""Kaplan–Meier, stratified log-rank and Cox regression with the SAS conventions by default.

Conventions in force (see docs/analysis.md and shared/reference/statistics.md):

* KM pointwise CI: Greenwood variance, ``log-log`` transform by default (SAS PROC LIFETEST);
  ``log`` (R survfit's default) and ``plain`` available.
* Quantiles (median, quartiles): ``sas`` convention by default — the smallest event time where
  S(t) < 1 - p, "not estimable" (None) if there is none; ``r`` takes the midpoint of an interval
  where S(t) sits exactly at 1 - p. CIs by Brookmeyer–Crowley with the same transform.
* Landmark S(t) beyond the last observed time when that time is censored: not estimable under
  ``sas``; carried forward under ``r``.
* Log-rank: statsmodels ``survdiff`` (stratified by summing O−E and variances over strata).
* Cox: Newton–Raphson written here (vectorized, stratified), Breslow ties by default (SAS PHREG,
  STATA stcox), Efron available (R coxph); converged when the relative change in the log
  partial likelihood is below 1e-9. Cross-checked against statsmodels PHReg and lifelines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import special

from reluth.i18n import N_
from reluth.i18n.reasons import invalid

ConfType = Literal["log-log", "log", "plain"]
Convention = Literal["sas", "r"]
Ties = Literal["breslow", "efron"]
CONF_TYPES: tuple[str, ...] = ("log-log", "log", "plain")
TIES: tuple[str, ...] = ("breslow", "efron")

FloatArray = npt.NDArray[np.float64]


def _as_arrays(
    time: Sequence[float] | FloatArray, event: Sequence[int] | FloatArray
) -> tuple[FloatArray, FloatArray]:
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=float)
    if t.shape != e.shape or t.ndim != 1:
        raise invalid(
            "time/event",
            "must_one_dimensional_equal_length",
            N_("must be one-dimensional and of equal length"),
        )
    if t.size == 0:
        raise invalid("time", "no_observations", N_("no observations"), N_("at least one row"))
    if np.isnan(t).any() or np.isnan(e).any():
        raise invalid(
            "time/event",
            "missing_values",
            N_("missing values"),
            N_("complete time and event columns"),
        )
    if (t < 0).any():
        raise invalid("time", "negative_time", N_("negative time"), N_("times >= 0"))
    if not np.isin(e, (0.0, 1.0)).all():
        raise invalid(
            "event",
            "values_other_than_0_1",
            N_("values other than 0/1"),
            N_("1 = event, 0 = censored"),
        )
    return t, e


@dataclass(frozen=True)
class Quantile:
    """The 100*p-th percentile of the event-time distribution (p=0.5: median)."""

    p: float
    estimate: float | None
    ci: tuple[float | None, float | None]


@dataclass(frozen=True)
class Landmark:
    time: float
    survival: float | None
    std_err: float | None
    ci: tuple[float | None, float | None]


@dataclass(frozen=True)
class KaplanMeier:
    """A fitted Kaplan–Meier curve: one row per distinct observed time."""

    time: FloatArray
    n_risk: FloatArray
    n_event: FloatArray
    n_censor: FloatArray
    survival: FloatArray
    std_err: FloatArray  # Greenwood standard error of S(t)
    lower: FloatArray
    upper: FloatArray
    conf_type: ConfType
    alpha: float
    convention: Convention
    n: int = field(default=0)
    events: int = field(default=0)

    # -- pointwise -----------------------------------------------------------------------------
    def survival_at(self, t: float) -> Landmark:
        """S(t) with CI at a landmark time (step function, right-continuous)."""
        last = float(self.time[-1])
        if t > last and self.n_censor[-1] > 0 and self.convention == "sas":
            return Landmark(float(t), None, None, (None, None))
        idx = int(np.searchsorted(self.time, t, side="right")) - 1
        if idx < 0:
            return Landmark(float(t), 1.0, 0.0, (1.0, 1.0))
        return Landmark(
            float(t),
            float(self.survival[idx]),
            _nan_none(self.std_err[idx]),
            (_nan_none(self.lower[idx]), _nan_none(self.upper[idx])),
        )

    def number_at_risk(self, times: Sequence[float]) -> list[int]:
        """Number still at risk just before each time (as printed under KM plots)."""
        out: list[int] = []
        for t in times:
            idx = int(np.searchsorted(self.time, t, side="left"))
            out.append(int(self.n_risk[idx]) if idx < self.time.size else 0)
        return out

    # -- quantiles -----------------------------------------------------------------------------
    def quantile(self, p: float) -> Quantile:
        """Percentile p of the event time (0.5 = median) with a Brookmeyer–Crowley CI."""
        if not 0 < p < 1:
            raise invalid("p", "outside_0_1_3", N_("{p} outside (0, 1)"), N_("0 < p < 1"), p=str(p))
        target = 1.0 - p
        est = _crossing(self.time, self.survival, target, self.convention)
        # Brookmeyer–Crowley: the set of t where target lies inside the pointwise CI of S(t).
        inside = (self.lower <= target + 1e-12) & (self.upper >= target - 1e-12)
        inside &= np.isfinite(self.lower) & np.isfinite(self.upper)
        lo: float | None = None
        hi: float | None = None
        if inside.any():
            first = int(np.argmax(inside))
            lo = float(self.time[first])
            # Upper limit: the first time after the lower limit where the upper band < target.
            after = np.nonzero((self.upper < target - 1e-12) & (np.arange(self.time.size) > first))
            if after[0].size:
                hi = float(self.time[after[0][0]])
        return Quantile(p, est, (lo, hi))

    @property
    def median(self) -> Quantile:
        return self.quantile(0.5)


def _nan_none(x: float) -> float | None:
    v = float(x)
    return None if math.isnan(v) else v


def _crossing(
    time: FloatArray, surv: FloatArray, target: float, convention: Convention
) -> float | None:
    """Smallest time with S(t) < target (SAS); R's midpoint when S sits exactly at target."""
    tol = 1e-12
    below = np.nonzero(surv < target - tol)[0]
    at = np.nonzero(np.abs(surv - target) <= tol)[0]
    if convention == "r" and at.size:
        start = float(time[at[0]])
        if below.size:
            return (start + float(time[below[0]])) / 2.0
        return None
    if below.size:
        return float(time[below[0]])
    return None


def kaplan_meier(
    time: Sequence[float] | FloatArray,
    event: Sequence[int] | FloatArray,
    conf_type: str = "log-log",
    alpha: float = 0.05,
    convention: str = "sas",
) -> KaplanMeier:
    """Product-limit estimate with Greenwood variance and transformed pointwise CIs."""
    if conf_type not in CONF_TYPES:
        raise invalid(
            "conf_type",
            "unknown_3",
            N_("unknown {conf_type}"),
            N_("{conf_types}"),
            conf_type=repr(conf_type),
            conf_types=", ".join(CONF_TYPES),
        )
    if convention not in ("sas", "r"):
        raise invalid(
            "convention",
            "unknown_4",
            N_("unknown {convention}"),
            N_("sas, r"),
            convention=repr(convention),
        )
    if not 0 < alpha < 1:
        raise invalid(
            "alpha",
            "outside_0_1_2",
            N_("{alpha} outside (0, 1)"),
            N_("0 < alpha < 1"),
            alpha=str(alpha),
        )
    t, e = _as_arrays(time, event)
    uniq, inv = np.unique(t, return_inverse=True)
    d = np.bincount(inv, weights=e, minlength=uniq.size)
    total = np.bincount(inv, minlength=uniq.size).astype(float)
    c = total - d
    n_risk = t.size - np.concatenate(([0.0], np.cumsum(total)[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = 1.0 - d / n_risk
        surv = np.cumprod(factor)
        term = np.where(d > 0, d / (n_risk * (n_risk - d)), 0.0)
        gw = np.cumsum(term)  # sum d/(n(n-d)); inf once S reaches 0
        se = surv * np.sqrt(gw)
        z = float(special.ndtri(1 - alpha / 2))
        lower, upper = _pointwise_ci(surv, gw, se, z, conf_type)
    return KaplanMeier(
        time=uniq,
        n_risk=n_risk,
        n_event=d.astype(float),
        n_censor=c.astype(float),
        survival=surv,
        std_err=np.where(surv > 0, se, np.nan),
        lower=lower,
        upper=upper,
        conf_type=conf_type,  # type: ignore[arg-type]
        alpha=alpha,
        convention=convention,  # type: ignore[arg-type]
        n=int(t.size),
        events=int(e.sum()),
    )


def _pointwise_ci(
    surv: FloatArray, gw: FloatArray, se: FloatArray, z: float, conf_type: str
) -> tuple[FloatArray, FloatArray]:
    n = surv.size
    lower = np.full(n, np.nan)
    upper = np.full(n, np.nan)
    pos = surv > 0
    one = surv >= 1.0
    if conf_type == "plain":
        lower[pos] = np.clip(surv[pos] - z * se[pos], 0, 1)
        upper[pos] = np.clip(surv[pos] + z * se[pos], 0, 1)
    elif conf_type == "log":
        w = z * np.sqrt(gw[pos])
        lower[pos] = surv[pos] * np.exp(-w)
        upper[pos] = np.minimum(surv[pos] * np.exp(w), 1.0)
    else:  # log-log
        mid = pos & ~one
        w = z * np.sqrt(gw[mid]) / np.log(surv[mid])  # negative
        lower[mid] = surv[mid] ** np.exp(-w)
        upper[mid] = surv[mid] ** np.exp(w)
    lower[one] = 1.0
    upper[one] = 1.0
    return lower, upper


# ---------------------------------------------------------------------------------------------
# Log-rank


@dataclass(frozen=True)
class LogRank:
    chisq: float
    df: int
    p: float
    stratified: bool


def logrank(
    time: Sequence[float] | FloatArray,
    event: Sequence[int] | FloatArray,
    group: Sequence[object] | npt.NDArray[np.object_],
    strata: Sequence[object] | npt.NDArray[np.object_] | None = None,
) -> LogRank:
    """(Stratified) log-rank test of equal survival between groups (statsmodels survdiff)."""
    from statsmodels.duration.survfunc import survdiff

    t, e = _as_arrays(time, event)
    g = np.asarray(group, dtype=object)
    if g.shape != t.shape:
        raise invalid(
            "group",
            "length_differs_from_time",
            N_("length differs from time"),
            N_("one group per row"),
        )
    levels = np.unique(g.astype(str))
    if levels.size < 2:
        raise invalid("group", "only_one_group", N_("only one group"), N_("at least two groups"))
    codes = np.searchsorted(levels, g.astype(str))
    s = None
    if strata is not None:
        sa = np.asarray(strata, dtype=object).astype(str)
        if sa.shape != t.shape:
            raise invalid(
                "strata",
                "length_differs_from_time",
                N_("length differs from time"),
                N_("one stratum per row"),
            )
        s = np.unique(sa, return_inverse=True)[1]
    try:
        chisq, p = survdiff(t, e.astype(int), codes, strata=s)
    except np.linalg.LinAlgError:
        # No event where the groups can be compared (every stratum's variance is zero): the
        # test is not estimable, as SAS PROC LIFETEST reports it (missing statistic).
        return LogRank(float("nan"), int(levels.size - 1), float("nan"), s is not None)
    return LogRank(float(chisq), int(levels.size - 1), float(p), s is not None)


# ---------------------------------------------------------------------------------------------
# Cox proportional hazards


@dataclass(frozen=True)
class CoxTerm:
    name: str
    coef: float
    se: float
    hr: float
    hr_ci: tuple[float, float]
    z: float
    p: float


@dataclass(frozen=True)
class CoxResult:
    terms: list[CoxTerm]
    loglik: float
    loglik_null: float
    lr_chisq: float
    lr_p: float
    iterations: int
    ties: str
    n: int
    events: int
    stratified: bool


def _cox_pieces(
    x: FloatArray, t: FloatArray, e: FloatArray, beta: FloatArray, ties: str
) -> tuple[float, FloatArray, FloatArray]:
    """Log partial likelihood, score and information for one stratum (rows sorted by time)."""
    p = x.shape[1]
    eta = x @ beta
    with np.errstate(over="ignore"):
        w = np.exp(eta)
    wx = w[:, None] * x
    wxx = wx[:, :, None] * x[:, None, :]
    s0 = np.cumsum(w[::-1])[::-1]
    s1 = np.cumsum(wx[::-1], axis=0)[::-1]
    s2 = np.cumsum(wxx[::-1], axis=0)[::-1]
    uniq, first, inv = np.unique(t, return_index=True, return_inverse=True)
    d = np.bincount(inv, weights=e, minlength=uniq.size)
    has = d > 0
    ev = e > 0
    loglik = float(eta[ev].sum())
    score = x[ev].sum(axis=0)
    info = np.zeros((p, p))
    fi = first[has]
    dg = d[has]
    if ties == "breslow":
        a0 = s0[fi]
        a1 = s1[fi]
        a2 = s2[fi]
        loglik -= float((dg * np.log(a0)).sum())
        m1 = a1 / a0[:, None]
        score = score - (dg[:, None] * m1).sum(axis=0)
        info = (dg[:, None, None] * (a2 / a0[:, None, None] - m1[:, :, None] * m1[:, None, :])).sum(
            axis=0
        )
        return loglik, score, info
    # Efron: the tied events' own weights are removed in fractions l/d, l = 0..d-1.
    grp = inv[ev]  # tie group of each event row
    n_t = uniq.size
    d0 = np.bincount(grp, weights=w[ev], minlength=n_t)[has]
    d1 = np.stack([np.bincount(grp, weights=wx[ev, j], minlength=n_t) for j in range(p)], 1)[has]
    d2 = np.zeros((int(has.sum()), p, p))
    for j in range(p):
        for k in range(p):
            d2[:, j, k] = np.bincount(grp, weights=wxx[ev, j, k], minlength=n_t)[has]
    dint = dg.astype(int)
    rep = np.repeat(np.arange(dint.size), dint)
    offs = np.arange(rep.size) - np.repeat(np.cumsum(dint) - dint, dint)
    frac = offs / dint[rep]
    b0 = s0[fi][rep] - frac * d0[rep]
    b1 = s1[fi][rep] - frac[:, None] * d1[rep]
    b2 = s2[fi][rep] - frac[:, None, None] * d2[rep]
    loglik -= float(np.log(b0).sum())
    m1 = b1 / b0[:, None]
    score = score - m1.sum(axis=0)
    info = (b2 / b0[:, None, None] - m1[:, :, None] * m1[:, None, :]).sum(axis=0)
    return loglik, score, info


def cox_ph(
    time: Sequence[float] | FloatArray,
    event: Sequence[int] | FloatArray,
    covariates: FloatArray,
    names: Sequence[str],
    strata: Sequence[object] | npt.NDArray[np.object_] | None = None,
    ties: str = "breslow",
    alpha: float = 0.05,
    tol: float = 1e-9,
    max_iter: int = 50,
) -> CoxResult:
    """Stratified Cox model by Newton–Raphson with step halving; Wald CIs and p-values."""
    if ties not in TIES:
        raise invalid(
            "ties",
            "unknown_5",
            N_("unknown {ties}"),
            N_("{ties2}"),
            ties=repr(ties),
            ties2=", ".join(TIES),
        )
    t, e = _as_arrays(time, event)
    x = np.asarray(covariates, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] != t.size:
        raise invalid(
            "covariates", "row_count_differs_from_time", N_("row count differs from time")
        )
    if np.isnan(x).any():
        raise invalid(
            "covariates", "missing_values", N_("missing values"), N_("complete covariates")
        )
    if e.sum() == 0:
        raise invalid("event", "no_events", N_("no events"), N_("at least one event"))
    if strata is None:
        groups = [np.arange(t.size)]
    else:
        sa = np.asarray(strata, dtype=object).astype(str)
        codes = np.unique(sa, return_inverse=True)[1]
        groups = [np.nonzero(codes == k)[0] for k in range(int(codes.max()) + 1)]
    parts = []
    for idx in groups:
        order = idx[np.argsort(t[idx], kind="stable")]
        parts.append((x[order], t[order], e[order]))
    p = x.shape[1]

    def evaluate(beta: FloatArray) -> tuple[float, FloatArray, FloatArray]:
        ll = 0.0
        sc = np.zeros(p)
        inf = np.zeros((p, p))
        for xs, ts, es in parts:
            a, b, c = _cox_pieces(xs, ts, es, beta, ties)
            ll += a
            sc += b
            inf += c
        return ll, sc, inf

    beta = np.zeros(p)
    ll, sc, inf = evaluate(beta)
    ll_null = ll
    iterations = 0
    converged = False
    for iterations in range(1, max_iter + 1):  # noqa: B007
        try:
            step = np.linalg.solve(inf, sc)
        except np.linalg.LinAlgError:
            raise invalid(
                "covariates",
                "singular_information_matrix",
                N_("singular information matrix"),
                N_("non-collinear covariates"),
            ) from None
        new = beta + step
        ll_new, sc_new, inf_new = evaluate(new)
        halvings = 0
        while (not np.isfinite(ll_new) or ll_new < ll - 1e-12) and halvings < 30:
            step = step / 2
            new = beta + step
            ll_new, sc_new, inf_new = evaluate(new)
            halvings += 1
        converged = abs(ll_new - ll) <= tol * abs(ll_new)
        beta, ll, sc, inf = new, ll_new, sc_new, inf_new
        if converged:
            break
    if not converged or np.any(np.abs(beta) > 15):
        # Monotone likelihood (e.g. no events in one group of a stratum): the HR is not finite.
        raise invalid(
            "covariates",
            "cox_model_has_no_finite",
            N_("the Cox model has no finite estimate (monotone likelihood: an HR tends to 0 or ∞)"),
            N_("data with events in each group"),
        )
    cov = np.linalg.inv(inf)
    se = np.sqrt(np.diag(cov))
    z = float(special.ndtri(1 - alpha / 2))
    terms = []
    for j, name in enumerate(names):
        zj = beta[j] / se[j]
        terms.append(
            CoxTerm(
                name=name,
                coef=float(beta[j]),
                se=float(se[j]),
                hr=float(math.exp(beta[j])),
                hr_ci=(float(math.exp(beta[j] - z * se[j])), float(math.exp(beta[j] + z * se[j]))),
                z=float(zj),
                p=float(2 * special.ndtr(-abs(zj))),
            )
        )
    lr = 2 * (ll - ll_null)
    return CoxResult(
        terms=terms,
        loglik=float(ll),
        loglik_null=float(ll_null),
        lr_chisq=float(lr),
        lr_p=float(special.chdtrc(p, lr)),
        iterations=iterations,
        ties=ties,
        n=int(t.size),
        events=int(e.sum()),
        stratified=strata is not None,
    )


def group_design(
    group: Sequence[object] | npt.NDArray[np.object_], reference: str | None = None
) -> tuple[FloatArray, list[str], str]:
    """Dummy-code a group column against a reference level (default: the first sorted level)."""
    g = np.asarray(group, dtype=object).astype(str)
    levels = sorted(set(g.tolist()), key=_natural_key)
    if len(levels) < 2:
        raise invalid("group", "only_one_group", N_("only one group"), N_("at least two groups"))
    ref = levels[0] if reference is None else str(reference)
    if ref not in levels:
        raise invalid(
            "reference",
            "not_group_level",
            N_("{ref} is not a group level"),
            N_("{levels}"),
            ref=repr(ref),
            levels=", ".join(levels),
        )
    others = [lv for lv in levels if lv != ref]
    x = np.column_stack([(g == lv).astype(float) for lv in others])
    return x, [f"{lv} vs {ref}" for lv in others], ref


def _natural_key(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


# ---------------------------------------------------------------------------------------------
# Plain-dict summaries (the JSON of `reluth stats`)


def km_summary(km: KaplanMeier, at: Sequence[float] = ()) -> dict[str, Any]:
    quart = {}
    for pct in (25, 50, 75):
        q = km.quantile(pct / 100)
        quart[str(pct)] = {"estimate": q.estimate, "ci": list(q.ci)}
    med = km.median
    return {
        "n": km.n,
        "events": km.events,
        "median": med.estimate,
        "median_ci": list(med.ci),
        "quartiles": quart,
        "at": [
            {"time": lm.time, "survival": lm.survival, "std_err": lm.std_err, "ci": list(lm.ci)}
            for lm in (km.survival_at(t) for t in at)
        ],
        "conf_type": km.conf_type,
        "convention": km.convention,
    }


def cox_summary(res: CoxResult) -> dict[str, Any]:
    first = res.terms[0]
    return {
        "hr": first.hr,
        "hr_ci": list(first.hr_ci),
        "p": first.p,
        "coef": first.coef,
        "se": first.se,
        "terms": [
            {
                "name": t.name,
                "coef": t.coef,
                "se": t.se,
                "hr": t.hr,
                "hr_ci": list(t.hr_ci),
                "z": t.z,
                "p": t.p,
            }
            for t in res.terms
        ],
        "ties": res.ties,
        "stratified": res.stratified,
        "n": res.n,
        "events": res.events,
        "loglik": res.loglik,
        "lr_chisq": res.lr_chisq,
        "lr_p": res.lr_p,
        "iterations": res.iterations,
    }
