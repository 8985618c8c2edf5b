"""Cross-checks against lifelines and statsmodels on random data, SAS/R conventions, invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import SurvfuncRight

from reluth.analysis.survival import cox_ph, kaplan_meier, logrank
from reluth.errors import ValidationError


def _random(seed: int, n: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    t = np.round(rng.exponential(10 * np.exp(0.4 * g)), 0) + 1  # integer times: many ties
    c = np.round(rng.uniform(2, 30, n))
    e = (t <= c).astype(float)
    return np.minimum(t, c), e, g, rng.integers(0, 3, n)


@pytest.mark.parametrize("seed", range(5))
def test_km_matches_lifelines_log_log_ci(seed: int) -> None:
    t, e, _, _ = _random(seed)
    km = kaplan_meier(t, e)
    ref = KaplanMeierFitter().fit(t, e)  # lifelines' CI is the log(-log) ("exponential Greenwood")
    sf = ref.survival_function_.iloc[:, 0]
    ci = ref.confidence_interval_
    for i, tt in enumerate(km.time):
        assert km.survival[i] == pytest.approx(sf.loc[tt], abs=1e-12)
        if 0 < km.survival[i] < 1:
            assert km.lower[i] == pytest.approx(ci.iloc[:, 0].loc[tt], abs=1e-9)
            assert km.upper[i] == pytest.approx(ci.iloc[:, 1].loc[tt], abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_median_ci_matches_statsmodels_brookmeyer_crowley(seed: int) -> None:
    t, e, _, _ = _random(seed, 200)
    sf = SurvfuncRight(t, e)
    for conf, method in (("log-log", "cloglog"), ("log", "log"), ("plain", "linear")):
        km = kaplan_meier(t, e, conf_type=conf)
        if np.any(np.isclose(km.survival, 0.5)):
            continue  # the flat-at-0.5 case is where SAS and statsmodels differ
        lo, hi = sf.quantile_ci(0.5, method=method)
        assert km.median.ci[0] == pytest.approx(float(lo))
        if not np.isnan(hi):
            assert km.median.ci[1] == pytest.approx(float(hi))
        assert km.median.estimate == pytest.approx(float(sf.quantile(0.5)))


@pytest.mark.parametrize("seed", range(5))
def test_logrank_matches_lifelines(seed: int) -> None:
    t, e, g, _ = _random(seed)
    ours = logrank(t, e, g)
    ref = logrank_test(t[g == 0], t[g == 1], e[g == 0], e[g == 1])
    assert ours.chisq == pytest.approx(ref.test_statistic, rel=1e-9)
    assert ours.p == pytest.approx(ref.p_value, rel=1e-9)


def test_stratified_logrank_sums_strata() -> None:
    t, e, g, s = _random(7, 300)
    # Hand-computed stratified statistic: (sum O-E)^2 / sum V over strata.
    num = var = 0.0
    for k in np.unique(s):
        m = s == k
        tt, ee, gg = t[m], e[m], g[m]
        for u in np.unique(tt[ee == 1]):
            at = tt >= u
            n, n1 = at.sum(), (at & (gg == 1)).sum()
            d = ((tt == u) & (ee == 1)).sum()
            d1 = ((tt == u) & (ee == 1) & (gg == 1)).sum()
            num += d1 - d * n1 / n
            if n > 1:
                var += d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1)
    res = logrank(t, e, g, s)
    assert res.stratified
    assert res.chisq == pytest.approx(num**2 / var, rel=1e-9)


@pytest.mark.parametrize("ties", ["breslow", "efron"])
@pytest.mark.parametrize("seed", range(4))
def test_cox_matches_statsmodels_phreg_stratified(ties: str, seed: int) -> None:
    t, e, g, s = _random(seed, 250)
    x = np.column_stack([g, np.random.default_rng(seed).normal(size=t.size)])
    ours = cox_ph(t, e, x, ["g", "z"], strata=s, ties=ties)
    ref = PHReg(t, x, status=e, strata=s, ties=ties).fit()
    for j in range(2):
        assert ours.terms[j].coef == pytest.approx(ref.params[j], abs=1e-6)
        assert ours.terms[j].se == pytest.approx(ref.bse[j], rel=1e-5)


def test_sas_median_when_curve_sits_at_half() -> None:
    # S: 0.75 at 1, 0.5 at 2 (flat over [2, 4)), 0 at 4.
    t, e = [1, 2, 3, 4], [1, 1, 0, 1]
    assert kaplan_meier(t, e).median.estimate == 4.0  # SAS: smallest t with S(t) < 0.5
    assert kaplan_meier(t, e, convention="r").median.estimate == 3.0  # R: midpoint


def test_sas_median_not_estimable_when_flat_at_half_until_the_end() -> None:
    t, e = [1, 2, 3, 4], [1, 1, 0, 0]
    assert kaplan_meier(t, e).median.estimate is None


def test_landmark_after_last_censored_time() -> None:
    t, e = [1, 2, 3, 5], [1, 0, 1, 0]
    sas = kaplan_meier(t, e).survival_at(6)
    assert sas.survival is None and sas.ci == (None, None)
    r = kaplan_meier(t, e, convention="r").survival_at(6)
    assert r.survival == pytest.approx(0.75 * (1 - 1 / 2))
    # At the last time itself it is estimable under both conventions.
    assert kaplan_meier(t, e).survival_at(5).survival == pytest.approx(0.375)


def test_landmark_after_last_event_time_is_carried_forward() -> None:
    t, e = [1, 2, 3], [1, 0, 1]
    assert kaplan_meier(t, e).survival_at(10).survival == 0.0


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValidationError, match="event"):
        kaplan_meier([1, 2], [1, 2])
    with pytest.raises(ValidationError, match="conf_type"):
        kaplan_meier([1, 2], [1, 0], conf_type="arcsine")
    with pytest.raises(ValidationError, match="ties"):
        cox_ph([1, 2], [1, 0], np.array([[0.0], [1.0]]), ["g"], ties="exact")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 40), st.booleans()), min_size=1, max_size=60),
    st.sampled_from(["log-log", "log", "plain"]),
)
def test_km_invariants(rows: list[tuple[int, bool]], conf: str) -> None:
    t = np.array([r[0] for r in rows], float)
    e = np.array([r[1] for r in rows], float)
    km = kaplan_meier(t, e, conf_type=conf)
    assert np.all(np.diff(km.survival) <= 1e-15)
    assert np.all((km.survival >= 0) & (km.survival <= 1))
    ok = ~np.isnan(km.lower)
    assert np.all(km.lower[ok] <= km.survival[ok] + 1e-12)
    assert np.all(km.upper[ok] >= km.survival[ok] - 1e-12)
    assert km.n_risk[0] == len(rows) and km.events == int(e.sum())
    med = km.median
    if med.estimate is not None:
        lm = km.survival_at(med.estimate)
        assert lm.survival is not None and lm.survival < 0.5
        if med.ci[0] is not None:
            assert med.ci[0] <= med.estimate


def test_cox_monotone_likelihood_is_reported_not_returned() -> None:
    # Group 1 has no events: the MLE of its log-HR is -infinity.
    t = np.arange(1.0, 21.0)
    g = np.repeat([0.0, 1.0], 10)
    e = 1.0 - g
    with pytest.raises(ValidationError, match="no finite estimate"):
        cox_ph(t, e, g[:, None], ["g"])
