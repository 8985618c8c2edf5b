"""Analysis tables computed from the analysis datasets (never from the trial tables).

The arms (experimental first), the stratification variables and the days in a month are the
protocol's, from the datasets' :class:`~reluth.analysis.design.AnalysisDesign`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from reluth.analysis.binomial import RateComparison, compare_rates, two_by_two_test
from reluth.analysis.design import AnalysisDesign
from reluth.analysis.survival import (
    CoxResult,
    KaplanMeier,
    LogRank,
    cox_ph,
    kaplan_meier,
    logrank,
)
from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import invalid

POPULATIONS = {"ITT": "ITTFL", "PP": "PPROTFL", "SAFETY": "SAFFL"}


def population(adsl: pd.DataFrame, name: str) -> pd.DataFrame:
    flag = POPULATIONS.get(name.upper())
    if flag is None:
        raise invalid(
            "population",
            "unknown_6",
            N_("unknown {name}"),
            N_("{populations}"),
            name=repr(name),
            populations=", ".join(POPULATIONS),
        )
    return adsl[(adsl[flag] == "Y") & adsl["ARM"].notna()]


# ---------------------------------------------------------------------------------------------
# KM / log-rank / Cox summaries as plain dicts (the JSON of `reluth stats`)


def km_by_group(
    time: np.ndarray, event: np.ndarray, group: np.ndarray | None, conf_type: str, convention: str
) -> dict[str, KaplanMeier]:
    if group is None:
        return {"all": kaplan_meier(time, event, conf_type, convention=convention)}
    g = np.asarray(group).astype(str)
    return {
        lv: kaplan_meier(time[g == lv], event[g == lv], conf_type, convention=convention)
        for lv in sorted(set(g.tolist()))
    }


# ---------------------------------------------------------------------------------------------
# Trial endpoints


def primary_endpoint(
    design: AnalysisDesign, adsl: pd.DataFrame, pop: str = "ITT", alpha: float = 0.05
) -> RateComparison:
    """DCR at 6 months per arm, Clopper–Pearson CIs, Newcombe difference (experimental −
    control: Lutathera − Surveillance), chi-square or Fisher. Non-evaluable patients are
    failures (DCR6 = N)."""
    arms = design.arms
    d = population(adsl, pop)
    counts = {
        arm: (int((d.loc[d["ARM"] == arm, "DCR6"] == "Y").sum()), int((d["ARM"] == arm).sum()))
        for arm in arms
        if (d["ARM"] == arm).any()
    }
    return compare_rates(counts, alpha=alpha, order=[a for a in (arms[1], arms[0]) if a in counts])


@dataclass(frozen=True)
class TimeToEvent:
    paramcd: str
    label: str
    km: dict[str, KaplanMeier]
    logrank: LogRank | None
    cox: CoxResult | None
    strata: list[str]


def time_to_event(
    design: AnalysisDesign,
    adtte: pd.DataFrame,
    paramcd: str,
    conf_type: str = "log-log",
    ties: str = "breslow",
    strata: Sequence[str] | None = None,
) -> TimeToEvent:
    """KM per arm, log-rank and Cox (experimental vs control) stratified by the randomization
    factors that are recorded (``strata``: the protocol's; those with missing values are
    dropped)."""
    arms = design.arms
    strata = design.strata_variables if strata is None else strata
    d = adtte[adtte["PARAMCD"] == paramcd]
    if d.empty:
        raise invalid(
            "paramcd",
            "no_rows",
            N_("no rows for {paramcd}"),
            N_("{unique}"),
            paramcd=repr(paramcd),
            unique=", ".join(sorted(adtte["PARAMCD"].unique())),
        )
    t = d["AVAL"].to_numpy(float)
    e = 1 - d["CNSR"].to_numpy(float)
    arm = d["ARM"].to_numpy(str)
    km = {a: kaplan_meier(t[arm == a], e[arm == a], conf_type) for a in arms if (arm == a).any()}
    used = [s for s in strata if s in d.columns and d[s].notna().all()]
    st = d[used].astype(str).agg("|".join, axis=1).to_numpy() if used else None
    lr = cx = None
    if len(km) == 2 and e.sum() > 0:
        lr = logrank(t, e, arm, st)
        x = (arm == arms[0]).astype(float)[:, None]
        try:
            cx = cox_ph(t, e, x, [f"{arms[0]} vs {arms[1]}"], strata=st, ties=ties)
        except ValidationError:
            cx = None  # not estimable: reported as such
    return TimeToEvent(paramcd, str(d["PARAM"].iloc[0]), km, lr, cx, used)


def forest_rows(
    design: AnalysisDesign, adtte: pd.DataFrame, paramcd: str, ties: str = "breslow"
) -> pd.DataFrame:
    """Unstratified HR (experimental vs control) overall and within each level of each
    stratification factor."""
    arms = design.arms
    d = adtte[adtte["PARAMCD"] == paramcd]
    rows = []
    subsets: list[tuple[str, str, pd.DataFrame]] = [("All patients", "", d)]
    for v in design.strata:
        s = v.variable
        if s in d.columns:
            for lv in sorted(d[s].dropna().astype(str).unique()):
                subsets.append((v.short_label, lv, d[d[s].astype(str) == lv]))
    for factor, level, sub in subsets:
        t = sub["AVAL"].to_numpy(float)
        e = 1 - sub["CNSR"].to_numpy(float)
        arm = sub["ARM"].to_numpy(str)
        row: dict[str, Any] = {
            "factor": factor,
            "level": level,
            "n": len(sub),
            "events": int(e.sum()),
        }
        ok = len(set(arm.tolist())) == 2 and all(e[arm == a].sum() > 0 for a in arms)
        if ok:
            try:
                res = cox_ph(t, e, (arm == arms[0]).astype(float)[:, None], ["arm"], ties=ties)
                row.update(hr=res.terms[0].hr, lo=res.terms[0].hr_ci[0], hi=res.terms[0].hr_ci[1])
            except ValidationError:
                ok = False
        if not ok:
            row.update(hr=np.nan, lo=np.nan, hi=np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Baseline characteristics


def _fmt_n_pct(n: int, tot: int) -> str:
    return f"{n} ({100 * n / tot:.1f}%)" if tot else "0"


def baseline_table(design: AnalysisDesign, adsl: pd.DataFrame, pop: str = "ITT") -> pd.DataFrame:
    """n (%) for categorical and median (range) for continuous variables, by arm, with
    chi-square / Fisher (2×2 when expected < 5; chi-square otherwise) and Kruskal–Wallis."""
    d = population(adsl, pop)
    arms = [a for a in design.arms if (d["ARM"] == a).any()]
    rows: list[dict[str, str]] = []
    header = {"variable": "N", "level": ""}
    for a in arms:
        header[a] = str(int((d["ARM"] == a).sum()))
    header["p"] = ""
    header["test"] = ""
    rows.append(header)
    for var, label in (("AGE", "Age (years)"), ("GFR", "GFR (mL/min)")):
        row = {"variable": label, "level": "median (range)"}
        samples = []
        for a in arms:
            v = d.loc[d["ARM"] == a, var].dropna().astype(float)
            samples.append(v.to_numpy())
            row[a] = f"{v.median():.1f} ({v.min():.1f}–{v.max():.1f})" if len(v) else "—"
        p = _kw(samples)
        row["p"] = _fmt_p(p)
        row["test"] = "Kruskal–Wallis"
        rows.append(row)
    cats = [
        ("SEX", "Sex"),
        ("ECOG", "ECOG"),
        ("GRADE", "Grade"),
        *design.strata_descriptions.items(),
    ]
    for var, label in cats:
        col = d[var].map(
            lambda x: (
                "missing"
                if x is None or (isinstance(x, float) and np.isnan(x))
                else (f"{x:g}" if isinstance(x, float) else str(x))
            )
        )
        levels = sorted(col.unique())
        table = np.array(
            [[int(((col == lv) & (d["ARM"] == a)).sum()) for a in arms] for lv in levels]
        )
        p, test = _cat_test(table)
        for i, lv in enumerate(levels):
            row = {"variable": label if i == 0 else "", "level": lv}
            for j, a in enumerate(arms):
                row[a] = _fmt_n_pct(int(table[i, j]), int(table[:, j].sum()))
            row["p"] = _fmt_p(p) if i == 0 else ""
            row["test"] = test if i == 0 else ""
            rows.append(row)
    return pd.DataFrame(rows)


def _kw(samples: list[np.ndarray]) -> float | None:
    if len(samples) < 2 or any(len(s) == 0 for s in samples):
        return None
    allv = np.concatenate(samples)
    if np.all(allv == allv[0]):
        return None
    return float(stats.kruskal(*samples).pvalue)


def _cat_test(table: np.ndarray) -> tuple[float | None, str]:
    table = table[table.sum(axis=1) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return None, ""
    if table.shape == (2, 2):
        t = two_by_two_test(
            int(table[0, 0]), int(table[:, 0].sum()), int(table[0, 1]), int(table[:, 1].sum())
        )
        return t.p, "Fisher" if t.test == "fisher" else "chi-square"
    _chi2, p, _dof, expected = stats.chi2_contingency(table, correction=False)
    if expected.min() < 5:
        # r×2 Fisher–Freeman–Halton is not in scipy for r > 2: report chi-square with a flag.
        return float(p), "chi-square (expected < 5)"
    return float(p), "chi-square"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# ---------------------------------------------------------------------------------------------
# Safety


def safety_table(
    design: AnalysisDesign,
    adsl: pd.DataFrame,
    adae: pd.DataFrame,
    post_randomization: bool = True,
) -> pd.DataFrame:
    """Patients by worst CTCAE grade per term and arm (safety population, randomized), any
    grade and grade >= 3; serious AEs in their own column."""
    arms = design.arms
    saf = adsl[(adsl["SAFFL"] == "Y") & adsl["ARM"].notna()]
    denom = {a: int((saf["ARM"] == a).sum()) for a in arms}
    ae = adae[adae["USUBJID"].isin(saf["USUBJID"])]
    if post_randomization:
        ae = ae[ae["APERIOD"] == "post-randomization"]
    worst = ae.groupby(["ARM", "AEDECOD", "USUBJID"])["AETOXGR"].max().reset_index()
    ser = ae[ae["AESER"] == "Y"].groupby(["ARM", "AEDECOD"])["USUBJID"].nunique()
    rows = []
    for term in ["Any adverse event", *sorted(ae["AEDECOD"].unique())]:
        row: dict[str, Any] = {"term": term}
        for a in arms:
            if term == "Any adverse event":
                w = ae[ae["ARM"] == a].groupby("USUBJID")["AETOXGR"].max()
                s = ae[(ae["ARM"] == a) & (ae["AESER"] == "Y")]["USUBJID"].nunique()
            else:
                w = worst[(worst["ARM"] == a) & (worst["AEDECOD"] == term)]["AETOXGR"]
                s = int(ser.get((a, term), 0))
            for g in range(1, 6):
                row[f"{a} G{g}"] = int((w == g).sum())
            row[f"{a} any"] = _fmt_n_pct(len(w), denom[a])
            row[f"{a} G>=3"] = _fmt_n_pct(int((w >= 3).sum()), denom[a])
            row[f"{a} serious"] = _fmt_n_pct(int(s), denom[a])
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# QoL


def qol_table(design: AnalysisDesign, adqs: pd.DataFrame) -> pd.DataFrame:
    """Mean score and mean change from baseline by scale, visit and arm (months of the
    protocol's days)."""
    q = adqs[adqs["ARM"].notna()].copy()
    per_month = design.days_per_month
    q["month"] = np.where(q["ADY"] <= 0, 0, np.round(q["ADY"] / per_month)).astype(int)
    q = q.sort_values("ADT").groupby(["USUBJID", "PARAMCD", "month"]).last().reset_index()
    agg = (
        q.groupby(["PARAMCD", "month", "ARM"])
        .agg(n=("AVAL", "size"), mean=("AVAL", "mean"), sd=("AVAL", "std"), chg=("CHG", "mean"))
        .reset_index()
    )
    return agg
