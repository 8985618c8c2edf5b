"""Design simulation: the vectorized tests agree with scipy/statsmodels table by table, and the
simulated operating characteristics agree with exact enumeration and closed forms within
Monte-Carlo error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.duration.survfunc import survdiff

from reluth.errors import ValidationError
from reluth.simulation.design import (
    PrimaryDesign,
    SurvivalDesign,
    chi_square_pvalues,
    exact_primary_power,
    expected_events,
    fisher_needed,
    fisher_two_sided_pvalues,
    normal_approx_n_per_arm,
    normal_approx_power,
    primary_test_table,
    schoenfeld_power,
    simulate_primary,
    simulate_survival,
    simulate_survival_trials,
    stratified_logrank,
)


def _scipy_analysis_plan_p(x_e: int, n_e: int, x_c: int, n_c: int) -> tuple[float, bool]:
    """The analysis-plan test done the slow way, with scipy, for one table."""
    table = np.array([[x_e, n_e - x_e], [x_c, n_c - x_c]])
    cols = table.sum(axis=0)
    if (cols == 0).any():
        return 1.0, True
    expected = stats.contingency.expected_freq(table)
    if (expected < 5).any():
        return float(stats.fisher_exact(table).pvalue), True
    return float(stats.chi2_contingency(table, correction=False).pvalue), False


@pytest.mark.parametrize(("n_e", "n_c"), [(73, 73), (12, 9), (5, 5), (30, 18)])
def test_p_value_table_matches_scipy_table_by_table(n_e: int, n_c: int) -> None:
    tbl = primary_test_table(n_e, n_c)
    # Every table for the small sizes; at 73 vs 73 every table sent to Fisher plus every
    # seventh column total (about 1 100 of the 5 476 tables), to keep the suite fast.
    sparse = n_e * n_c > 2000
    for x_e in range(n_e + 1):
        for x_c in range(n_c + 1):
            if sparse and not tbl.fisher[x_e, x_c] and (x_e + x_c) % 7:
                continue
            p, fisher = _scipy_analysis_plan_p(x_e, n_e, x_c, n_c)
            assert tbl.fisher[x_e, x_c] == fisher, (x_e, x_c)
            assert tbl.pvalue[x_e, x_c] == pytest.approx(p, rel=1e-9, abs=1e-14), (x_e, x_c)


def test_fisher_switch_at_expected_count_exactly_five() -> None:
    # 10 vs 10 patients, 5 successes in total: expected successes per arm 2.5 -> Fisher.
    assert fisher_needed(10, 10)[3, 2]
    # 10 vs 10, 10 successes: every expected count is exactly 5 -> not below 5 -> chi-square.
    assert not fisher_needed(10, 10)[5, 5]
    # 10 vs 10, 9 successes: expected 4.5 -> Fisher.
    assert fisher_needed(10, 10)[5, 4]
    # 10 vs 10, 11 successes -> 9 failures, expected 4.5 -> Fisher.
    assert fisher_needed(10, 10)[6, 5]


def test_fisher_textbook_value() -> None:
    # scipy's documented example [[8, 2], [1, 5]]: p = 0.034965...
    p = fisher_two_sided_pvalues(10, 6)
    assert p[8, 1] == pytest.approx(0.034965034965034975, rel=1e-12)


def test_chi_square_textbook_value() -> None:
    # 60/73 vs 47/73: chi2 = 146 (60*26 - 47*13)^2 / (73*73*107*39)
    chi2 = 146 * (60 * 26 - 47 * 13) ** 2 / (73 * 73 * 107 * 39)
    assert chi_square_pvalues(73, 73)[60, 47] == pytest.approx(stats.chi2.sf(chi2, 1), rel=1e-12)


def test_sample_size_formula_reproduces_protocol() -> None:
    # statistics.md: pooled normal approximation without continuity correction gives 72.39.
    assert normal_approx_n_per_arm(0.65, 0.85) == pytest.approx(72.39, abs=0.005)
    assert math.ceil(normal_approx_n_per_arm(0.65, 0.85)) == 73
    assert normal_approx_power(0.65, 0.85, 72.393) == pytest.approx(0.80, abs=1e-4)


def test_simulated_power_at_73_per_arm_matches_normal_approximation_and_exact() -> None:
    design = PrimaryDesign()
    n_sim = 20_000
    res = simulate_primary(design, n_sim, np.random.default_rng(2021))
    se = math.sqrt(0.8 * 0.2 / n_sim)
    closed_form = normal_approx_power(0.65, 0.85, 73)
    # The simulation reproduces the closed-form normal approximation within MC error...
    assert abs(res.rejection_rate - closed_form) < 3 * se
    # ...and, more strictly, the exact power of the test actually used (enumeration).
    assert abs(res.rejection_rate - res.exact_rejection_probability) < 3 * se
    # The normal approximation is itself within half a point of the exact power at n = 73.
    assert abs(res.exact_rejection_probability - closed_form) < 0.006
    assert res.exact_rejection_probability == pytest.approx(0.80809, abs=5e-5)


@pytest.mark.parametrize("rate", [0.65, 0.75])
def test_type_i_error_within_mc_error_of_nominal(rate: float) -> None:
    design = PrimaryDesign(p_experimental=rate, p_control=rate)
    n_sim = 40_000
    res = simulate_primary(design, n_sim, np.random.default_rng(7))
    se = math.sqrt(0.05 * 0.95 / n_sim)
    assert abs(res.rejection_rate - 0.05) < 3 * se
    assert abs(res.rejection_rate - res.exact_rejection_probability) < 3 * se
    # The exact size of the test actually used is close to, and not above, nominal + 0.5 point.
    assert abs(res.exact_rejection_probability - 0.05) < 0.005


def test_small_trials_use_fisher_and_keep_size() -> None:
    design = PrimaryDesign(n_experimental=12, n_control=12, p_experimental=0.8, p_control=0.8)
    res = simulate_primary(design, 20_000, np.random.default_rng(3))
    assert res.fisher_fraction > 0.9
    se = math.sqrt(res.exact_rejection_probability * (1 - res.exact_rejection_probability) / 20_000)
    assert abs(res.rejection_rate - res.exact_rejection_probability) < 4 * se + 1e-4
    assert res.exact_rejection_probability <= 0.05  # Fisher is conservative


def test_non_evaluable_patients_count_as_failures() -> None:
    base = PrimaryDesign()
    lossy = PrimaryDesign(non_evaluable_rate=0.10)
    assert lossy.observed_rates == pytest.approx((0.85 * 0.9, 0.65 * 0.9))
    assert exact_primary_power(lossy) < exact_primary_power(base)
    res = simulate_primary(lossy, 20_000, np.random.default_rng(5))
    assert res.mean_non_evaluable == pytest.approx(14.6, abs=0.2)
    assert res.mean_dcr_control == pytest.approx(0.585, abs=0.004)
    se = res.mc_standard_error
    assert abs(res.rejection_rate - exact_primary_power(lossy)) < 4 * se


def test_simulation_is_reproducible_by_seed() -> None:
    a = simulate_primary(PrimaryDesign(), 5000, np.random.default_rng(11))
    b = simulate_primary(PrimaryDesign(), 5000, np.random.default_rng(11))
    assert a == b


@settings(max_examples=25, deadline=None)
@given(
    n_e=st.integers(1, 25),
    n_c=st.integers(1, 25),
    seed=st.integers(0, 2**32 - 1),
)
def test_p_values_are_probabilities_and_symmetric(n_e: int, n_c: int, seed: int) -> None:
    tbl = primary_test_table(n_e, n_c)
    assert ((tbl.pvalue >= 0) & (tbl.pvalue <= 1)).all()
    # Relabelling the arms gives the same p-value.
    swapped = primary_test_table(n_c, n_e)
    np.testing.assert_allclose(tbl.pvalue, swapped.pvalue.T, rtol=1e-9, atol=1e-15)
    # Relabelling success/failure gives the same p-value.
    np.testing.assert_allclose(tbl.pvalue, tbl.pvalue[::-1, ::-1], rtol=1e-9, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# PFS
# ---------------------------------------------------------------------------------------------


def test_stratified_logrank_matches_statsmodels_with_and_without_ties() -> None:
    design = SurvivalDesign(n_experimental=20, n_control=25)
    trials = simulate_survival_trials(design, 30, np.random.default_rng(4))
    for times in (trials.time_months, np.ceil(trials.time_months * 2) / 2):  # ties: half-months
        u, v = stratified_logrank(times, trials.event, trials.arm, trials.stratum, trials.n_strata)
        for i in range(times.shape[0]):
            chi2, _ = survdiff(
                times[i], trials.event[i].astype(int), trials.arm, strata=trials.stratum[i]
            )
            assert u[i] ** 2 / v[i] == pytest.approx(chi2, rel=1e-10)


def test_unstratified_logrank_matches_lifelines() -> None:
    from lifelines.statistics import logrank_test

    design = SurvivalDesign(n_experimental=30, n_control=30, stratum_factors=())
    trials = simulate_survival_trials(design, 10, np.random.default_rng(9))
    u, v = stratified_logrank(
        trials.time_months, trials.event, trials.arm, trials.stratum, trials.n_strata
    )
    for i in range(10):
        a = trials.arm == 1
        res = logrank_test(
            trials.time_months[i][a],
            trials.time_months[i][~a],
            trials.event[i][a],
            trials.event[i][~a],
        )
        assert u[i] ** 2 / v[i] == pytest.approx(res.test_statistic, rel=1e-10)


def test_expected_events_match_simulation() -> None:
    design = SurvivalDesign(dropout_per_year=0.05)
    res = simulate_survival(design, 4000, np.random.default_rng(12))
    # Mean events per trial over 4000 trials: SD per trial is about 5 events.
    assert res.mean_events == pytest.approx(expected_events(design), abs=0.5)


def test_unstratified_pfs_power_matches_schoenfeld() -> None:
    design = SurvivalDesign(stratum_factors=())
    res = simulate_survival(design, 8000, np.random.default_rng(13))
    assert abs(res.rejection_rate - schoenfeld_power(design)) < 3 * res.mc_standard_error + 0.01


def test_pfs_type_i_error() -> None:
    design = SurvivalDesign(hazard_ratio=1.0)
    res = simulate_survival(design, 8000, np.random.default_rng(14))
    se = math.sqrt(0.05 * 0.95 / 8000)
    assert abs(res.rejection_rate - 0.05) < 3 * se


def test_sparse_strata_cost_power() -> None:
    # 16 strata for 146 patients: the stratified test loses power against Schoenfeld's
    # (unstratified) approximation; this is a property of the design worth knowing.
    res = simulate_survival(SurvivalDesign(), 6000, np.random.default_rng(15))
    assert res.rejection_rate < res.schoenfeld_power - 0.04


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"p_control": 1.2}, "p_control"),
        ({"n_control": 0}, "n_control"),
        ({"alpha": 0.0}, "alpha"),
        ({"non_evaluable_rate": -0.1}, "non_evaluable_rate"),
    ],
)
def test_bad_primary_design(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        PrimaryDesign(**kwargs)  # type: ignore[arg-type]
    assert exc.value.field == field


def test_bad_survival_design() -> None:
    with pytest.raises(ValidationError) as exc:
        SurvivalDesign(hazard_ratio=0)
    assert exc.value.field == "hazard_ratio"


@settings(max_examples=15, deadline=None)
@given(
    n_e=st.integers(2, 30),
    n_c=st.integers(2, 30),
    hr=st.floats(0.3, 2.0),
    ties=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_stratified_logrank_property_matches_statsmodels(
    n_e: int, n_c: int, hr: float, ties: bool, seed: int
) -> None:
    design = SurvivalDesign(n_experimental=n_e, n_control=n_c, hazard_ratio=hr)
    trials = simulate_survival_trials(design, 3, np.random.default_rng(seed))
    times = np.ceil(trials.time_months) if ties else trials.time_months
    u, v = stratified_logrank(times, trials.event, trials.arm, trials.stratum, trials.n_strata)
    for i in range(3):
        if v[i] <= 0:
            continue
        chi2, _ = survdiff(
            times[i], trials.event[i].astype(int), trials.arm, strata=trials.stratum[i]
        )
        assert u[i] ** 2 / v[i] == pytest.approx(chi2, rel=1e-9, abs=1e-12)


def test_scheduled_assessments_put_pfs_on_scan_dates() -> None:
    from reluth.protocol.definition import load_protocol
    from reluth.simulation.cohort import CohortPlan
    from reluth.simulation.design import assessment_schedule_months

    plan = CohortPlan.from_protocol(load_protocol())
    design = SurvivalDesign(scheduled_assessments=True, schedule=plan)
    scans = assessment_schedule_months(plan, design.accrual_months + design.followup_months)
    assert scans[:3] * 30.4375 == pytest.approx([56, 112, 168])
    assert scans[3] * 30.4375 == pytest.approx(252)
    cont = simulate_survival_trials(SurvivalDesign(), 200, np.random.default_rng(21))
    sched = simulate_survival_trials(design, 200, np.random.default_rng(21))
    # Same underlying patients: scheduled times are scan dates, never earlier than the truth
    # for events, and an event is only seen if it was a (continuous-time) event.
    assert np.isin(np.round(sched.time_months, 9), np.round(scans, 9)).all()
    assert not (sched.event & ~cont.event).any()
    ev = sched.event
    assert (sched.time_months[ev] >= cont.time_months[ev] - 1e-12).all()
    res = simulate_survival(
        SurvivalDesign(hazard_ratio=1.0, scheduled_assessments=True, schedule=plan),
        6000,
        np.random.default_rng(22),
    )
    assert abs(res.rejection_rate - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 6000)


def test_unstratified_analysis_option_uses_one_stratum() -> None:
    # Same simulated trials (same seed); ignoring the 16 sparse strata gains power here.
    strat = simulate_survival(SurvivalDesign(), 4000, np.random.default_rng(31))
    plain = simulate_survival(
        SurvivalDesign(stratified_analysis=False), 4000, np.random.default_rng(31)
    )
    assert plain.mean_events == strat.mean_events
    assert plain.rejection_rate > strat.rejection_rate + 0.03


def test_chunked_simulation_counts_every_trial() -> None:
    design = PrimaryDesign()
    whole = simulate_primary(design, 5000, np.random.default_rng(41), chunk=5000)
    pieces = simulate_primary(design, 5000, np.random.default_rng(41), chunk=1300)
    assert pieces.n_sim == 5000
    # Different draws (the chunks consume the stream differently), same quantity estimated.
    assert abs(pieces.rejection_rate - whole.rejection_rate) < 5 * whole.mc_standard_error
    assert pieces.mean_dcr_control == pytest.approx(0.65, abs=0.01)
