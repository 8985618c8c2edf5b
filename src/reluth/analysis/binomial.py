"""Proportions: exact Clopper–Pearson CIs, the difference with a Newcombe hybrid score CI, and the
protocol's 2×2 test rule (Pearson chi-square, Fisher's exact test when an expected count < 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from reluth.i18n import N_
from reluth.i18n.reasons import invalid

CiMethod = Literal["clopper-pearson", "wilson"]
DiffMethod = Literal["newcombe", "wald", "score"]
CI_METHODS: tuple[str, ...] = ("clopper-pearson", "wilson")
DIFF_METHODS: tuple[str, ...] = ("newcombe", "wald", "score")


def _check(successes: int, n: int, field: str) -> None:
    if n <= 0:
        raise invalid(field, "n", N_("n = {n}"), N_("at least one patient"), n=str(n))
    if not 0 <= successes <= n:
        raise invalid(
            field,
            "successes_out",
            N_("{successes} successes out of {n}"),
            N_("0 <= successes <= n"),
            successes=str(successes),
            n=str(n),
        )


def proportion_ci(
    successes: int, n: int, alpha: float = 0.05, method: str = "clopper-pearson"
) -> tuple[float, float]:
    """Two-sided CI for one proportion; Clopper–Pearson ("exact binomial") by default."""
    _check(successes, n, "successes")
    if method not in CI_METHODS:
        raise invalid(
            "method",
            "unknown",
            N_("unknown {method}"),
            N_("{ci_methods}"),
            method=repr(method),
            ci_methods=", ".join(CI_METHODS),
        )
    from statsmodels.stats.proportion import proportion_confint  # heavy import: only here

    sm = "beta" if method == "clopper-pearson" else "wilson"
    lo, hi = proportion_confint(successes, n, alpha=alpha, method=sm)
    # Both intervals reach 0 at x = 0 and 1 at x = n exactly; remove rounding residue.
    lo = 0.0 if successes == 0 else min(max(float(lo), 0.0), successes / n)
    hi = 1.0 if successes == n else max(min(float(hi), 1.0), successes / n)
    return lo, hi


def difference_ci(
    x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05, method: str = "newcombe"
) -> tuple[float, float]:
    """CI of p1 − p2: Newcombe hybrid score (method 10, no continuity correction) by default,
    as printed by SAS FREQ ``riskdiff(cl=newcombe)``; Wald and Miettinen–Nurminen score too."""
    _check(x1, n1, "group 1")
    _check(x2, n2, "group 2")
    if method not in DIFF_METHODS:
        raise invalid(
            "method",
            "unknown",
            N_("unknown {method}"),
            N_("{diff_methods}"),
            method=repr(method),
            diff_methods=", ".join(DIFF_METHODS),
        )
    from statsmodels.stats.proportion import confint_proportions_2indep

    sm = {"newcombe": "newcomb", "wald": "wald", "score": "score"}[method]
    lo, hi = confint_proportions_2indep(
        x1, n1, x2, n2, method=sm, compare="diff", alpha=alpha, correction=False
    )
    return max(float(lo), -1.0), min(float(hi), 1.0)


@dataclass(frozen=True)
class TwoByTwoTest:
    test: str  # "chi-square" or "fisher"
    statistic: float | None
    p: float
    min_expected: float


def two_by_two_test(x1: int, n1: int, x2: int, n2: int, force: str | None = None) -> TwoByTwoTest:
    """Pearson chi-square without continuity correction; Fisher's exact (two-sided) when any
    expected count is below 5 (the protocol's "chi-square or Fisher's exact test")."""
    _check(x1, n1, "group 1")
    _check(x2, n2, "group 2")
    table = np.array([[x1, n1 - x1], [x2, n2 - x2]], dtype=float)
    rows = table.sum(axis=1, keepdims=True)
    cols = table.sum(axis=0, keepdims=True)
    expected = rows @ cols / table.sum()
    min_exp = float(expected.min())
    use_fisher = min_exp < 5 if force is None else force == "fisher"
    if force not in (None, "fisher", "chi-square"):
        raise invalid(
            "test", "unknown_2", N_("unknown {force}"), N_("chi-square, fisher"), force=repr(force)
        )
    if use_fisher:
        res = stats.fisher_exact(table.astype(int), alternative="two-sided")
        return TwoByTwoTest("fisher", None, float(res.pvalue), min_exp)
    if (cols == 0).any():
        # One outcome only: no evidence of a difference; chi-square undefined.
        return TwoByTwoTest("chi-square", 0.0, 1.0, min_exp)
    chi2, p, _dof, _exp = stats.chi2_contingency(table, correction=False)
    return TwoByTwoTest("chi-square", float(chi2), float(p), min_exp)


@dataclass(frozen=True)
class GroupRate:
    group: str
    n: int
    successes: int
    rate: float
    ci: tuple[float, float]


@dataclass(frozen=True)
class RateComparison:
    groups: list[GroupRate]
    difference: float | None
    difference_ci: tuple[float, float] | None
    difference_method: str
    test: str | None
    statistic: float | None
    p: float | None
    alpha: float
    verdict: str


def compare_rates(
    counts: dict[str, tuple[int, int]],
    alpha: float = 0.05,
    ci_method: str = "clopper-pearson",
    diff_method: str = "newcombe",
    order: list[str] | None = None,
) -> RateComparison:
    """Per-group rates with CIs; for two groups, difference (second − first) and the test.

    ``counts`` maps group → (successes, n); ``order`` fixes which group is the reference
    (first) — by default the sorted order, so the difference reads "experimental − control"
    when groups are named accordingly.
    """
    names = order or sorted(counts)
    groups = []
    for g in names:
        x, n = counts[g]
        groups.append(
            GroupRate(g, n, x, x / n if n else float("nan"), proportion_ci(x, n, alpha, ci_method))
        )
    if len(groups) != 2:
        return RateComparison(groups, None, None, diff_method, None, None, None, alpha, "")
    ref, exp = groups
    diff = exp.rate - ref.rate
    dci = difference_ci(exp.successes, exp.n, ref.successes, ref.n, alpha, diff_method)
    t = two_by_two_test(exp.successes, exp.n, ref.successes, ref.n)
    level = round(100 * (1 - alpha))
    signif = "significant" if t.p < alpha else "not significant"
    verdict = (
        f"{exp.group} {100 * exp.rate:.1f}% vs {ref.group} {100 * ref.rate:.1f}%: "
        f"difference {100 * diff:+.1f} points ({level}% CI {100 * dci[0]:+.1f} to "
        f"{100 * dci[1]:+.1f}), {t.test} p = {t.p:.4g}, {signif} at the {alpha:g} level."
    )
    return RateComparison(groups, diff, dci, diff_method, t.test, t.statistic, t.p, alpha, verdict)
