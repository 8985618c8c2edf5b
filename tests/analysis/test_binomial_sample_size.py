"""Proportions (Clopper–Pearson, Newcombe, chi-square/Fisher rule) and the protocol sample size."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from reluth.analysis.binomial import compare_rates, difference_ci, proportion_ci, two_by_two_test
from reluth.analysis.sample_size import exact_power, sample_size
from reluth.errors import ValidationError


def test_clopper_pearson_known_values() -> None:
    # 0/10: upper limit 1 - 0.025^(1/10) = 0.3085; 10/10 symmetric.
    lo, hi = proportion_ci(0, 10)
    assert lo == 0.0 and round(hi, 4) == 0.3085
    lo, hi = proportion_ci(10, 10)
    assert round(lo, 4) == 0.6915 and hi == 1.0
    # Beta quantiles by definition.
    lo, hi = proportion_ci(7, 20)
    assert lo == pytest.approx(stats.beta.ppf(0.025, 7, 14))
    assert hi == pytest.approx(stats.beta.ppf(0.975, 8, 13))


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "expected"),
    [
        # Newcombe (1998) Table II, method 10 (hybrid score, no continuity correction).
        (56, 70, 48, 80, (0.0524, 0.3339)),
        (9, 10, 3, 10, (0.1705, 0.8090)),
    ],
)
def test_newcombe_hybrid_score_published_values(
    x1: int, n1: int, x2: int, n2: int, expected: tuple
) -> None:
    lo, hi = difference_ci(x1, n1, x2, n2)
    assert (round(lo, 4), round(hi, 4)) == expected


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"), [(6, 7, 2, 7), (5, 56, 0, 29), (60, 73, 47, 73)])
def test_newcombe_equals_its_wilson_formula(x1: int, n1: int, x2: int, n2: int) -> None:
    z = stats.norm.ppf(0.975)

    def wilson(x: int, n: int) -> tuple[float, float]:
        p = x / n
        c = (p + z * z / (2 * n)) / (1 + z * z / n)
        h = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
        return c - h, c + h

    (l1, u1), (l2, u2) = wilson(x1, n1), wilson(x2, n2)
    d = x1 / n1 - x2 / n2
    lo = d - ((x1 / n1 - l1) ** 2 + (u2 - x2 / n2) ** 2) ** 0.5
    hi = d + ((u1 - x1 / n1) ** 2 + (x2 / n2 - l2) ** 2) ** 0.5
    assert difference_ci(x1, n1, x2, n2) == pytest.approx((lo, hi), abs=1e-12)


def test_chi_square_when_all_expected_at_least_5_and_fisher_below() -> None:
    # Expected failures = 10 * 10 / 20 = 5.0 exactly: chi-square (rule is "below 5").
    at = two_by_two_test(5, 10, 5, 10)
    assert at.test == "chi-square" and at.min_expected == 5.0
    # One fewer failure in total: 9 * 10 / 20 = 4.5 < 5: Fisher.
    below = two_by_two_test(6, 10, 5, 10)
    assert below.test == "fisher" and below.min_expected == 4.5
    assert below.p == pytest.approx(stats.fisher_exact([[6, 4], [5, 5]]).pvalue)
    big = two_by_two_test(60, 73, 47, 73)
    chi2, p, _, _ = stats.chi2_contingency([[60, 13], [47, 26]], correction=False)
    assert (
        big.test == "chi-square"
        and big.p == pytest.approx(p)
        and big.statistic == pytest.approx(chi2)
    )


def test_compare_rates_verdict_and_direction() -> None:
    rc = compare_rates(
        {"Surveillance": (47, 73), "Lutathera": (60, 73)}, order=["Surveillance", "Lutathera"]
    )
    assert rc.difference == pytest.approx(13 / 73)
    assert rc.difference_ci is not None and rc.difference_ci[0] > 0
    assert "Lutathera 82.2% vs Surveillance 64.4%" in rc.verdict and "significant" in rc.verdict


def test_invalid_counts() -> None:
    with pytest.raises(ValidationError):
        proportion_ci(11, 10)
    with pytest.raises(ValidationError):
        difference_ci(1, 10, 1, 0)


def test_protocol_sample_size_73_146_176() -> None:
    r = sample_size(0.65, 0.85, 0.05, 0.80)
    assert round(r.n_per_arm_exact, 2) == 72.39
    assert (r.n_per_arm, r.n_total, r.n_inclusions) == (73, 146, 176)


def test_fleiss_continuity_correction_83_per_arm() -> None:
    assert sample_size(method="fleiss").n_per_arm == 83


def test_exact_enumeration_reaches_power_and_previous_size_does_not_hold() -> None:
    r = sample_size(method="exact")
    assert r.achieved_power >= 0.80
    assert all(
        exact_power(m, 0.65, 0.85, 0.05) >= 0.80 for m in range(r.n_per_arm, r.n_per_arm + 11)
    )
    assert any(
        exact_power(m, 0.65, 0.85, 0.05) < 0.80 for m in range(r.n_per_arm - 1, r.n_per_arm + 10)
    )


def test_exact_power_type_one_error_at_most_alpha_ish() -> None:
    # Under H0 the size of the chi-square/Fisher rule stays near alpha.
    assert exact_power(73, 0.75, 0.75, 0.05) < 0.06


def test_sample_size_rejects_bad_input() -> None:
    with pytest.raises(ValidationError, match="p1"):
        sample_size(0.5, 0.5)
    with pytest.raises(ValidationError, match="method"):
        sample_size(method="bayes")


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 200), st.integers(1, 200), st.data())
def test_intervals_contain_their_estimates(n1: int, n2: int, data: st.DataObject) -> None:
    x1 = data.draw(st.integers(0, n1))
    x2 = data.draw(st.integers(0, n2))
    for method in ("clopper-pearson", "wilson"):
        lo, hi = proportion_ci(x1, n1, method=method)
        assert 0 <= lo <= x1 / n1 <= hi <= 1
    lo, hi = difference_ci(x1, n1, x2, n2)
    assert -1 <= lo <= x1 / n1 - x2 / n2 <= hi <= 1
    t = two_by_two_test(x1, n1, x2, n2)
    assert 0 <= t.p <= 1 + 1e-12
    assert (t.test == "fisher") == (t.min_expected < 5)
