"""Operating characteristics of the ReLUTH design, by vectorized simulation and exact enumeration.

Primary endpoint: disease control at month 6 by arm, compared as the analysis plan does it —
Pearson chi-square without continuity correction, or Fisher's exact test (two-sided) when any
expected count of the 2×2 table is below 5 — in the ITT population with non-evaluable patients
counted as failures (protocol, "Statistical considerations"; ``statistics.md``).

Because both arm sizes are fixed by the design, every possible trial outcome is one of the
``(n_e + 1) × (n_c + 1)`` tables; the p-value of the analysis-plan test is computed once for all
of them (:func:`primary_test_table`) and each simulated trial is a table look-up. The same table
gives the *exact* power by summing binomial probabilities over the rejection region
(:func:`exact_primary_power`), which the simulation must reproduce within Monte-Carlo error.

PFS: exponential times (median 15 months in the control arm by default, hazard ratio assumed),
uniform accrual, administrative censoring at the analysis date, optional exponential dropout,
randomization strata from the four protocol factors; compared by the stratified log-rank test,
computed for many trials at once on 2-D arrays (:func:`stratified_logrank`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import stats

from reluth.i18n import N_
from reluth.i18n.reasons import invalid
from reluth.simulation.cohort import CohortPlan

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Relative tolerance when comparing table probabilities for the two-sided Fisher p-value: tables
#: whose hypergeometric probability is <= p_observed × (1 + FISHER_REL_TOL) are "as or more
#: extreme". Equal-probability tables (symmetric margins) differ by rounding only; R uses 1e-7.
FISHER_REL_TOL = 1e-7

#: An expected cell count below this switches the analysis from chi-square to Fisher's exact test.
FISHER_EXPECTED_BELOW = 5


# --------------------------------------------------------------------------------------------
# Input validation shared by the design objects
# --------------------------------------------------------------------------------------------


def _check_probability(name: str, value: float, *, open_upper: bool = False) -> None:
    upper_ok = value < 1 if open_upper else value <= 1
    if not (math.isfinite(value) and value >= 0 and upper_ok):
        raise invalid(
            name,
            "not_probability",
            N_("{value} is not a probability"),
            N_("a number in [0, 1]"),
            value=repr(value),
        )


def _check_positive_int(name: str, value: int, minimum: int = 1) -> None:
    if int(value) != value or value < minimum:
        raise invalid(
            name,
            "not_allowed",
            N_("{value} is not allowed"),
            N_("an integer >= {minimum}"),
            value=repr(value),
            minimum=str(minimum),
        )


def _check_alpha(alpha: float) -> None:
    if not (math.isfinite(alpha) and 0 < alpha < 1):
        raise invalid(
            "alpha",
            "not_significance_level",
            N_("{alpha} is not a significance level"),
            N_("0 < alpha < 1"),
            alpha=repr(alpha),
        )


# --------------------------------------------------------------------------------------------
# Primary endpoint: the analysis-plan 2×2 test, for every possible table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrimaryTestTable:
    """p-value of the analysis-plan test for every table with the given arm sizes.

    ``pvalue[x_e, x_c]`` is the p-value when ``x_e`` of ``n_experimental`` and ``x_c`` of
    ``n_control`` patients are in disease control; ``fisher[x_e, x_c]`` says whether Fisher's
    exact test (rather than chi-square) was the test used for that table.
    """

    n_experimental: int
    n_control: int
    pvalue: FloatArray
    fisher: BoolArray


def fisher_two_sided_pvalues(n_experimental: int, n_control: int) -> FloatArray:
    """Two-sided Fisher exact p-value for every table ``[x_e, x_c]`` with these row totals.

    Conditioning on the column total ``s = x_e + x_c``, ``x_e`` is hypergeometric; the p-value is
    the probability of all tables with that total whose probability does not exceed the observed
    one (the definition used by SAS PROC FREQ, R ``fisher.test`` and ``scipy.stats.fisher_exact``).
    """
    n_e, n_c = int(n_experimental), int(n_control)
    total = n_e + n_c
    x_e = np.arange(n_e + 1)
    pvalue = np.ones((n_e + 1, n_c + 1))
    for s in range(total + 1):
        lo, hi = max(0, s - n_c), min(n_e, s)
        support = x_e[lo : hi + 1]
        pmf = stats.hypergeom.pmf(support, total, n_e, s)
        order = np.sort(pmf)
        cumulative = np.cumsum(order)
        idx = np.searchsorted(order, pmf * (1 + FISHER_REL_TOL), side="right") - 1
        p = np.minimum(cumulative[idx], 1.0)
        pvalue[support, s - support] = p
    return pvalue


def chi_square_pvalues(n_experimental: int, n_control: int) -> FloatArray:
    """Pearson chi-square (1 df, no continuity correction) p-value for every table.

    Tables with an empty column (nobody or everybody in disease control) have no chi-square
    statistic; they get p = 1 here (and are sent to Fisher's test anyway, which also gives 1).
    """
    n_e, n_c = int(n_experimental), int(n_control)
    total = n_e + n_c
    x_e = np.arange(n_e + 1, dtype=np.float64)[:, None]
    x_c = np.arange(n_c + 1, dtype=np.float64)[None, :]
    successes = x_e + x_c
    failures = total - successes
    denom = n_e * n_c * successes * failures
    numer = total * (x_e * (n_c - x_c) - x_c * (n_e - x_e)) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = np.where(denom > 0, numer / np.where(denom > 0, denom, 1.0), 0.0)
    return np.asarray(stats.chi2.sf(chi2, 1), dtype=np.float64)


def fisher_needed(n_experimental: int, n_control: int) -> BoolArray:
    """True where some expected count ``row × column / N`` is below 5 (exact integer test)."""
    n_e, n_c = int(n_experimental), int(n_control)
    total = n_e + n_c
    successes = np.add.outer(np.arange(n_e + 1), np.arange(n_c + 1))
    smallest_column = np.minimum(successes, total - successes)
    return np.asarray(min(n_e, n_c) * smallest_column < FISHER_EXPECTED_BELOW * total)


def primary_test_table(n_experimental: int, n_control: int) -> PrimaryTestTable:
    """The analysis-plan test (chi-square, or Fisher when an expected count < 5) for all tables."""
    _check_positive_int("n_experimental", n_experimental)
    _check_positive_int("n_control", n_control)
    fisher = fisher_needed(n_experimental, n_control)
    pvalue = np.where(
        fisher,
        fisher_two_sided_pvalues(n_experimental, n_control),
        chi_square_pvalues(n_experimental, n_control),
    )
    return PrimaryTestTable(int(n_experimental), int(n_control), pvalue, fisher)


@dataclass(frozen=True)
class PrimaryDesign:
    """The primary comparison: DCR at month 6, experimental vs control."""

    n_experimental: int = 73
    n_control: int = 73
    p_experimental: float = 0.85
    p_control: float = 0.65
    alpha: float = 0.05
    #: Probability that a randomized patient has no evaluable month-6 assessment; such patients
    #: count as failures (protocol). Independent of the true disease status.
    non_evaluable_rate: float = 0.0

    def __post_init__(self) -> None:
        _check_positive_int("n_experimental", self.n_experimental)
        _check_positive_int("n_control", self.n_control)
        _check_probability("p_experimental", self.p_experimental)
        _check_probability("p_control", self.p_control)
        _check_probability("non_evaluable_rate", self.non_evaluable_rate)
        _check_alpha(self.alpha)

    @property
    def observed_rates(self) -> tuple[float, float]:
        """(experimental, control) probabilities of a *counted* success, failures for NE."""
        keep = 1.0 - self.non_evaluable_rate
        return self.p_experimental * keep, self.p_control * keep


class _RejectionCount:
    """Monte-Carlo summaries shared by the simulation results (``rejections`` of ``n_sim``)."""

    rejections: int
    n_sim: int

    @property
    def rejection_rate(self) -> float:
        return self.rejections / self.n_sim

    @property
    def mc_standard_error(self) -> float:
        p = self.rejection_rate
        return math.sqrt(p * (1 - p) / self.n_sim)

    @property
    def mc_ci95(self) -> tuple[float, float]:
        """Clopper–Pearson 95% interval for the rejection probability."""
        return clopper_pearson(self.rejections, self.n_sim)


@dataclass(frozen=True)
class PrimaryResult(_RejectionCount):
    design: PrimaryDesign
    n_sim: int
    rejections: int
    #: Rejections with the experimental DCR observed higher than control (the hoped-for direction).
    rejections_favouring_experimental: int
    fisher_fraction: float
    mean_dcr_experimental: float
    mean_dcr_control: float
    mean_non_evaluable: float
    exact_rejection_probability: float


def clopper_pearson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = 0.0 if successes == 0 else float(stats.beta.ppf(a, successes, n - successes + 1))
    hi = 1.0 if successes == n else float(stats.beta.ppf(1 - a, successes + 1, n - successes))
    return lo, hi


def simulate_primary_tables(
    design: PrimaryDesign, n_sim: int, rng: np.random.Generator
) -> tuple[IntArray, IntArray, IntArray]:
    """Draw ``n_sim`` trials: successes per arm and non-evaluable counts (both arms together).

    Each patient is non-evaluable with probability ``non_evaluable_rate`` (counted as a failure),
    otherwise in disease control with the arm's true DCR.
    """
    ne_e = rng.binomial(design.n_experimental, design.non_evaluable_rate, n_sim)
    ne_c = rng.binomial(design.n_control, design.non_evaluable_rate, n_sim)
    x_e = rng.binomial(design.n_experimental - ne_e, design.p_experimental)
    x_c = rng.binomial(design.n_control - ne_c, design.p_control)
    return x_e.astype(np.int64), x_c.astype(np.int64), (ne_e + ne_c).astype(np.int64)


def simulate_primary(
    design: PrimaryDesign,
    n_sim: int,
    rng: np.random.Generator,
    table: PrimaryTestTable | None = None,
    chunk: int = 2_000_000,
) -> PrimaryResult:
    """Empirical rejection probability of the analysis-plan test over ``n_sim`` trials
    (in chunks of ``chunk`` trials, so memory stays bounded for any ``n_sim``)."""
    _check_positive_int("n_sim", n_sim)
    if table is None:
        table = primary_test_table(design.n_experimental, design.n_control)
    rejections = favour = fisher = 0
    sum_e = sum_c = sum_ne = 0
    done = 0
    while done < n_sim:
        m = min(chunk, n_sim - done)
        x_e, x_c, ne = simulate_primary_tables(design, m, rng)
        reject = table.pvalue[x_e, x_c] < design.alpha
        rejections += int(reject.sum())
        favour += int((reject & (x_e * design.n_control > x_c * design.n_experimental)).sum())
        fisher += int(table.fisher[x_e, x_c].sum())
        sum_e, sum_c, sum_ne = (
            sum_e + int(x_e.sum()),
            sum_c + int(x_c.sum()),
            sum_ne + int(ne.sum()),
        )
        done += m
    return PrimaryResult(
        design=design,
        n_sim=int(n_sim),
        rejections=rejections,
        rejections_favouring_experimental=favour,
        fisher_fraction=fisher / n_sim,
        mean_dcr_experimental=sum_e / n_sim / design.n_experimental,
        mean_dcr_control=sum_c / n_sim / design.n_control,
        mean_non_evaluable=sum_ne / n_sim,
        exact_rejection_probability=exact_primary_power(design, table),
    )


def exact_primary_power(design: PrimaryDesign, table: PrimaryTestTable | None = None) -> float:
    """Exact rejection probability: Σ over all tables of P(table) × [p-value < alpha]."""
    if table is None:
        table = primary_test_table(design.n_experimental, design.n_control)
    q_e, q_c = design.observed_rates
    pmf_e = stats.binom.pmf(np.arange(design.n_experimental + 1), design.n_experimental, q_e)
    pmf_c = stats.binom.pmf(np.arange(design.n_control + 1), design.n_control, q_c)
    reject = (table.pvalue < design.alpha).astype(np.float64)
    return float(pmf_e @ reject @ pmf_c)


def normal_approx_power(
    p_control: float,
    p_experimental: float,
    n_per_arm: float,
    alpha: float = 0.05,
) -> float:
    """Closed-form power of the two-sided uncorrected chi-square test (normal approximation,
    pooled variance under H0, unpooled under H1): the formula behind "73 per arm"."""
    z_a = float(stats.norm.ppf(1 - alpha / 2))
    p_bar = (p_control + p_experimental) / 2
    sd0 = math.sqrt(2 * p_bar * (1 - p_bar))
    sd1 = math.sqrt(p_control * (1 - p_control) + p_experimental * (1 - p_experimental))
    delta = abs(p_experimental - p_control)
    return float(stats.norm.cdf((delta * math.sqrt(n_per_arm) - z_a * sd0) / sd1))


def normal_approx_n_per_arm(
    p_control: float, p_experimental: float, alpha: float = 0.05, power: float = 0.80
) -> float:
    """Unrounded sample size per arm (72.39 for 65% vs 85%, 80% power, 5% two-sided)."""
    z_a = float(stats.norm.ppf(1 - alpha / 2))
    z_b = float(stats.norm.ppf(power))
    p_bar = (p_control + p_experimental) / 2
    sd0 = math.sqrt(2 * p_bar * (1 - p_bar))
    sd1 = math.sqrt(p_control * (1 - p_control) + p_experimental * (1 - p_experimental))
    return ((z_a * sd0 + z_b * sd1) / (p_experimental - p_control)) ** 2


# --------------------------------------------------------------------------------------------
# PFS: stratified log-rank test on many simulated trials at once
# --------------------------------------------------------------------------------------------

#: The four randomization factors (protocol) and the default assumptions used for PFS simulation:
#: prevalence of the "1" level and the hazard ratio of that level within an arm (assumptions,
#: not protocol numbers; change them with the ``SurvivalDesign`` fields).
DEFAULT_STRATUM_FACTORS: tuple[tuple[str, float, float], ...] = (
    ("disease_control_ge_18_months", 0.55, 0.75),
    ("radiological_progression", 0.70, 1.15),
    ("egfr_lt_60", 0.30, 1.10),
    ("intercurrent_treatment", 0.30, 1.10),
)


@dataclass(frozen=True)
class SurvivalDesign:
    n_experimental: int = 73
    n_control: int = 73
    median_control_months: float = 15.0
    hazard_ratio: float = 0.6
    accrual_months: float = 36.0
    #: Follow-up after the last patient is randomized, until the analysis (administrative
    #: censoring). The protocol follows every patient for 60 months.
    followup_months: float = 24.0
    dropout_per_year: float = 0.0
    alpha: float = 0.05
    stratum_factors: tuple[tuple[str, float, float], ...] = field(default=DEFAULT_STRATUM_FACTORS)
    #: True: progression is seen only at scheduled tumour assessments (the protocol's
    #: ``schedule``: weeks 8, 16, 24, then every 12 weeks to month 24, then every 6 months), so
    #: PFS is the date of the first scan after the true progression (ties, as in the real
    #: analysis); censoring at the last scan.
    scheduled_assessments: bool = False
    #: the protocol's visit schedule (:meth:`CohortPlan.from_protocol`), for the scans
    schedule: CohortPlan | None = field(default=None, repr=False)
    #: False: the log-rank ignores the strata (they still shape the hazards) — to see what
    #: stratifying on 16 small strata costs or gains.
    stratified_analysis: bool = True

    def __post_init__(self) -> None:
        _check_positive_int("n_experimental", self.n_experimental)
        _check_positive_int("n_control", self.n_control)
        for name in ("median_control_months", "hazard_ratio"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise invalid(
                    name,
                    "not_allowed",
                    N_("{value} is not allowed"),
                    N_("a number > 0"),
                    value=repr(value),
                )
        for name in ("accrual_months", "followup_months", "dropout_per_year"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise invalid(
                    name,
                    "not_allowed",
                    N_("{value} is not allowed"),
                    N_("a number >= 0"),
                    value=repr(value),
                )
        if self.accrual_months + self.followup_months <= 0:
            raise invalid(
                "followup_months",
                "no_follow_up",
                N_("no follow-up at all"),
                N_("accrual + follow-up > 0"),
            )
        _check_alpha(self.alpha)
        if self.scheduled_assessments and self.schedule is None:
            raise invalid(
                "scheduled_assessments",
                "needs_protocol_schedule",
                N_("needs the protocol's schedule"),
                N_("schedule=CohortPlan"),
            )
        for name, prevalence, hr in self.stratum_factors:
            _check_probability(f"stratum_factors.{name}.prevalence", prevalence)
            if not (math.isfinite(hr) and hr > 0):
                raise invalid(
                    f"stratum_factors.{name}.hazard_ratio",
                    "unaccepted_stratum_factors_name_hazard_ra",
                    N_("{hr}"),
                    N_("> 0"),
                    hr=repr(hr),
                )

    @property
    def control_hazard_per_month(self) -> float:
        return math.log(2) / self.median_control_months

    @property
    def dropout_hazard_per_month(self) -> float:
        return self.dropout_per_year / 12.0


def stratified_logrank(
    time: FloatArray, event: BoolArray, arm: IntArray, stratum: IntArray, n_strata: int
) -> tuple[FloatArray, FloatArray]:
    """Stratified log-rank score ``U = Σ(O − E)`` for arm 1 and its variance ``V``, per row.

    Every argument is a 2-D array ``(trials, patients)`` (``arm`` may be 1-D, shared by all rows).
    Strata contribute their own risk sets; ties between event times are handled with the usual
    hypergeometric variance ``d (n1 n0 (n − d)) / (n² (n − 1))`` (equal times form one risk set).
    The test statistic is ``U² / V`` on 1 df, as SAS ``PROC LIFETEST STRATA / GROUP=`` and R
    ``survdiff(... + strata())`` compute it.
    """
    m, n = time.shape
    arm2 = np.broadcast_to(arm, (m, n))
    # One sort per row by (stratum, time): time is shifted by a per-stratum offset bigger than
    # any time, so the order is exact and a single argsort does it.
    span = float(np.max(time)) + 1.0
    order = np.argsort(stratum * span + time, axis=1, kind="stable")
    t = np.take_along_axis(time, order, axis=1)
    d = np.take_along_axis(event, order, axis=1).astype(np.float64)
    a = np.take_along_axis(arm2, order, axis=1).astype(np.float64)
    s = np.take_along_axis(stratum, order, axis=1)
    rows = np.arange(m)[:, None]
    # End (exclusive) of each patient's stratum block in the sorted row.
    counts = np.bincount((rows * n_strata + s).ravel(), minlength=m * n_strata)
    ends = np.cumsum(counts.reshape(m, n_strata), axis=1)
    end = np.take_along_axis(ends, s, axis=1)
    # Tie groups: positions with the same stratum and time. The risk set of a group is counted
    # at its first position; its events are summed over the group.
    same_as_prev = np.zeros((m, n), dtype=bool)
    same_as_prev[:, 1:] = (t[:, 1:] == t[:, :-1]) & (s[:, 1:] == s[:, :-1])
    first = ~same_as_prev
    # Reverse cumulative sums (from each position to the end of the row), padded with 0.
    rev_all = np.zeros((m, n + 1))
    rev_arm = np.zeros((m, n + 1))
    rev_all[:, :n] = np.arange(n, 0, -1)[None, :]
    rev_arm[:, :n] = np.cumsum(a[:, ::-1], axis=1)[:, ::-1]
    pos = np.broadcast_to(np.arange(n), (m, n))
    at_risk = rev_all[rows, pos] - rev_all[rows, end]
    at_risk_arm = rev_arm[rows, pos] - rev_arm[rows, end]
    # Events per tie group and events in arm 1, placed at the group's first position.
    group_id = np.cumsum(first, axis=1) - 1
    n_groups = n
    flat = (rows * n_groups + group_id).ravel()
    d_group = np.bincount(flat, weights=d.ravel(), minlength=m * n_groups).reshape(m, n_groups)
    da_group = np.bincount(flat, weights=(d * a).ravel(), minlength=m * n_groups).reshape(
        m, n_groups
    )
    # Values at the first position of each group.
    first_rows, first_pos = np.nonzero(first)
    g = group_id[first_rows, first_pos]
    nr = at_risk[first_rows, first_pos]
    n1 = at_risk_arm[first_rows, first_pos]
    dg = d_group[first_rows, g]
    d1 = da_group[first_rows, g]
    has = dg > 0
    first_rows, nr, n1, dg, d1 = first_rows[has], nr[has], n1[has], dg[has], d1[has]
    expected = dg * n1 / nr
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(nr > 1, dg * n1 * (nr - n1) * (nr - dg) / (nr**2 * (nr - 1)), 0.0)
    u = np.bincount(first_rows, weights=d1 - expected, minlength=m)
    v = np.bincount(first_rows, weights=var, minlength=m)
    return u.astype(np.float64), v.astype(np.float64)


def assessment_schedule_months(plan: CohortPlan, until_months: float) -> FloatArray:
    """Scheduled tumour assessments in months from randomization (the protocol's schedule)."""
    days = [float(d) for d in plan.assessment_days]
    while days[-1] < until_months * plan.days_per_month:
        days.append(
            days[-1]
            + (
                plan.follow_up_interval_days
                if days[-1] < plan.month_24_day
                else plan.late_interval_days
            )
        )
    return np.asarray(days) / plan.days_per_month


@dataclass(frozen=True)
class SimulatedSurvivalTrials:
    time_months: FloatArray
    event: BoolArray
    arm: IntArray
    stratum: IntArray
    n_strata: int


def simulate_survival_trials(
    design: SurvivalDesign, n_sim: int, rng: np.random.Generator
) -> SimulatedSurvivalTrials:
    """``n_sim`` trials of PFS times (months from randomization), on 2-D arrays."""
    n_e, n_c = design.n_experimental, design.n_control
    n = n_e + n_c
    arm = np.concatenate([np.ones(n_e, dtype=np.int64), np.zeros(n_c, dtype=np.int64)])
    stratum = np.zeros((n_sim, n), dtype=np.int64)
    log_hazard = np.zeros((n_sim, n))
    for bit, (_, prevalence, hr) in enumerate(design.stratum_factors):
        level = rng.random((n_sim, n)) < prevalence
        stratum |= level.astype(np.int64) << bit
        log_hazard += level * math.log(hr)
    log_hazard += arm[None, :] * math.log(design.hazard_ratio)
    hazard = design.control_hazard_per_month * np.exp(log_hazard)
    event_time = rng.exponential(1.0, (n_sim, n)) / hazard
    entry = rng.uniform(0.0, design.accrual_months, (n_sim, n))
    censor = design.accrual_months + design.followup_months - entry
    if design.dropout_hazard_per_month > 0:
        dropout = rng.exponential(1.0 / design.dropout_hazard_per_month, (n_sim, n))
        censor = np.minimum(censor, dropout)
    time = np.minimum(event_time, censor)
    event = event_time <= censor
    if design.scheduled_assessments and design.schedule is not None:
        scans = assessment_schedule_months(
            design.schedule, design.accrual_months + design.followup_months
        )
        # Progression seen at the first scan at or after it, if that scan happens before the
        # censoring; otherwise censored at the last scan before the censoring time.
        seen_at = np.searchsorted(scans, event_time, side="left")
        seen_time = scans[np.minimum(seen_at, len(scans) - 1)]
        event = event & (seen_at < len(scans)) & (seen_time <= censor)
        last_scan = scans[np.maximum(np.searchsorted(scans, censor, side="right") - 1, 0)]
        time = np.where(event, seen_time, last_scan)
    return SimulatedSurvivalTrials(
        time_months=time,
        event=event,
        arm=arm,
        stratum=stratum,
        n_strata=1 << len(design.stratum_factors),
    )


@dataclass(frozen=True)
class SurvivalResult(_RejectionCount):
    design: SurvivalDesign
    n_sim: int
    rejections: int
    rejections_favouring_experimental: int
    mean_events: float
    schoenfeld_power: float
    expected_events: float


def simulate_survival(
    design: SurvivalDesign,
    n_sim: int,
    rng: np.random.Generator,
    chunk: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> SurvivalResult:
    """Empirical rejection probability of the two-sided stratified log-rank test.

    Trials are simulated in chunks of ``chunk`` rows to bound memory; ``progress`` is called with
    the number of trials finished after each chunk.
    """
    _check_positive_int("n_sim", n_sim)
    z_crit = float(stats.norm.ppf(1 - design.alpha / 2))
    rejections = favour = 0
    events = 0.0
    done = 0
    while done < n_sim:
        m = min(chunk, n_sim - done)
        trials = simulate_survival_trials(design, m, rng)
        if design.stratified_analysis:
            u, v = stratified_logrank(
                trials.time_months, trials.event, trials.arm, trials.stratum, trials.n_strata
            )
        else:
            u, v = stratified_logrank(
                trials.time_months, trials.event, trials.arm, np.zeros_like(trials.stratum), 1
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(v > 0, u / np.sqrt(np.where(v > 0, v, 1.0)), 0.0)
        reject = np.abs(z) > z_crit
        rejections += int(reject.sum())
        favour += int((reject & (z < 0)).sum())
        events += float(trials.event.sum())
        done += m
        if progress:
            progress(m)
    expected = expected_events(design)
    return SurvivalResult(
        design=design,
        n_sim=int(n_sim),
        rejections=rejections,
        rejections_favouring_experimental=favour,
        mean_events=events / n_sim,
        schoenfeld_power=schoenfeld_power(design, expected),
        expected_events=expected,
    )


def _event_probability(hazard: float, design: SurvivalDesign) -> float:
    """P(event observed) under exponential PFS with uniform accrual and exponential dropout."""
    total = hazard + design.dropout_hazard_per_month
    a, f = design.accrual_months, design.followup_months
    if a == 0:
        return hazard / total * (1 - math.exp(-total * f))
    tail = (math.exp(-total * f) - math.exp(-total * (a + f))) / (total * a)
    return hazard / total * (1 - tail)


def expected_events(design: SurvivalDesign) -> float:
    """Expected number of PFS events at the analysis, averaged over the strata."""
    # Enumerate the strata (16 for the protocol's 4 binary factors) with their probabilities.
    probs: list[tuple[float, float]] = [(1.0, 1.0)]
    for _, prevalence, hr in design.stratum_factors:
        probs = [
            (p * w, h * m) for p, h in probs for w, m in ((1 - prevalence, 1.0), (prevalence, hr))
        ]
    lam = design.control_hazard_per_month
    total = 0.0
    for p, mult in probs:
        total += p * design.n_control * _event_probability(lam * mult, design)
        total += (
            p * design.n_experimental * _event_probability(lam * mult * design.hazard_ratio, design)
        )
    return total


def schoenfeld_power(design: SurvivalDesign, events: float | None = None) -> float:
    """Schoenfeld's approximation (both tails): Φ(θ − z) + Φ(−θ − z), θ = |log HR| √(D k (1−k)),
    z = z_{1−α/2}, k = allocation share, D = expected events; ignores the strata."""
    if events is None:
        events = expected_events(design)
    k = design.n_experimental / (design.n_experimental + design.n_control)
    z_a = float(stats.norm.ppf(1 - design.alpha / 2))
    theta = abs(math.log(design.hazard_ratio)) * math.sqrt(events * k * (1 - k))
    return float(stats.norm.cdf(theta - z_a) + stats.norm.cdf(-theta - z_a))


# --------------------------------------------------------------------------------------------
# Grid over sample sizes × effect sizes (one cell = one picklable task for Dask)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridCell:
    endpoint: str  # "dcr" or "pfs"
    n_per_arm: int
    effect: float  # p_experimental for "dcr", hazard ratio for "pfs"
    p_control: float
    alpha: float
    n_sim: int
    non_evaluable_rate: float
    median_control_months: float
    accrual_months: float
    followup_months: float
    seed_entropy: tuple[int, ...]


@dataclass(frozen=True)
class GridCellResult:
    endpoint: str
    n_per_arm: int
    effect: float
    n_sim: int
    power: float
    mc_standard_error: float
    approximate_power: float  # normal approximation (dcr) or Schoenfeld (pfs)
    exact_power: float | None  # exact enumeration (dcr only)


def run_grid_cell(cell: GridCell) -> GridCellResult:
    """Compute one cell of the grid; a pure function of its argument (seeded)."""
    rng = np.random.default_rng(np.random.SeedSequence(list(cell.seed_entropy)))
    if cell.endpoint == "dcr":
        design = PrimaryDesign(
            n_experimental=cell.n_per_arm,
            n_control=cell.n_per_arm,
            p_experimental=cell.effect,
            p_control=cell.p_control,
            alpha=cell.alpha,
            non_evaluable_rate=cell.non_evaluable_rate,
        )
        res = simulate_primary(design, cell.n_sim, rng)
        q_e, q_c = design.observed_rates
        return GridCellResult(
            "dcr",
            cell.n_per_arm,
            cell.effect,
            cell.n_sim,
            res.rejection_rate,
            res.mc_standard_error,
            normal_approx_power(q_c, q_e, cell.n_per_arm, cell.alpha) if q_e != q_c else cell.alpha,
            res.exact_rejection_probability,
        )
    if cell.endpoint == "pfs":
        sdesign = SurvivalDesign(
            n_experimental=cell.n_per_arm,
            n_control=cell.n_per_arm,
            hazard_ratio=cell.effect,
            median_control_months=cell.median_control_months,
            accrual_months=cell.accrual_months,
            followup_months=cell.followup_months,
            alpha=cell.alpha,
        )
        sres = simulate_survival(sdesign, cell.n_sim, rng)
        return GridCellResult(
            "pfs",
            cell.n_per_arm,
            cell.effect,
            cell.n_sim,
            sres.rejection_rate,
            sres.mc_standard_error,
            sres.schoenfeld_power,
            None,
        )
    raise invalid(
        "endpoint",
        "unknown_endpoint",
        N_("unknown endpoint {endpoint}"),
        N_("dcr, pfs"),
        endpoint=repr(cell.endpoint),
    )


def grid_cells(
    n_per_arm: Sequence[int],
    p_experimental: Sequence[float],
    hazard_ratios: Sequence[float],
    *,
    p_control: float,
    alpha: float,
    n_sim: int,
    n_sim_pfs: int,
    non_evaluable_rate: float,
    median_control_months: float,
    accrual_months: float,
    followup_months: float,
    seed: int | None,
) -> list[GridCell]:
    """All cells, each with its own independent seed spawned from ``seed`` (order-independent)."""
    if seed is not None and seed < 0:
        raise invalid(
            "seed", "unaccepted_seed", N_("{seed}"), N_("an integer >= 0"), seed=str(seed)
        )
    specs = [("dcr", n, p) for n in n_per_arm for p in p_experimental]
    specs += [("pfs", n, hr) for n in n_per_arm for hr in hazard_ratios]
    children = np.random.SeedSequence(seed).spawn(len(specs))
    cells = []
    for (endpoint, n, effect), child in zip(specs, children, strict=True):
        cells.append(
            GridCell(
                endpoint=endpoint,
                n_per_arm=int(n),
                effect=float(effect),
                p_control=p_control,
                alpha=alpha,
                n_sim=n_sim if endpoint == "dcr" else n_sim_pfs,
                non_evaluable_rate=non_evaluable_rate,
                median_control_months=median_control_months,
                accrual_months=accrual_months,
                followup_months=followup_months,
                seed_entropy=tuple(int(x) for x in child.generate_state(4)),
            )
        )
    return cells
