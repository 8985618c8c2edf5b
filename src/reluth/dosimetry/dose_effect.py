"""Dose–effect analysis: logistic regression of disease control at month 6 on tumour absorbed
dose, correlation of kidney BED with the eGFR slope, and rank correlation of doses with the
worst toxicity grades. Pure on a DataFrame; ``plot`` and ``report_section`` render.

Input columns (one row per patient): ``patient_id``, ``tumour_dose_gy``, ``disease_control_m6``
(1/0), ``kidney_bed_gy``, ``egfr_slope_ml_min_1_73m2_per_year``; optional
``red_marrow_dose_gy``, ``worst_haem_grade``, ``worst_renal_grade`` (CTCAE 0–5).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reluth.i18n import N_
from reluth.i18n.reasons import invalid

REQUIRED = (
    "patient_id",
    "tumour_dose_gy",
    "disease_control_m6",
    "kidney_bed_gy",
    "egfr_slope_ml_min_1_73m2_per_year",
)
OPTIONAL = ("red_marrow_dose_gy", "worst_haem_grade", "worst_renal_grade")


@dataclass(frozen=True)
class LogisticResult:
    n: int
    n_events: int
    intercept: float
    log_odds_per_gy: float
    odds_ratio_per_10_gy: float
    ci95_per_10_gy: tuple[float, float]
    p_value: float
    note: str | None


@dataclass(frozen=True)
class Correlation:
    x: str
    y: str
    n: int
    spearman_rho: float
    spearman_p: float
    pearson_r: float | None
    pearson_p: float | None
    slope: float | None
    intercept: float | None


@dataclass(frozen=True)
class DoseEffectResult:
    response: LogisticResult | None
    kidney: Correlation | None
    toxicity: tuple[Correlation, ...]
    notes: tuple[str, ...]


def validate(df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise invalid(
            "columns",
            "missing_2",
            N_("missing {missing}"),
            N_("{required}"),
            missing=", ".join(missing),
            required=", ".join(REQUIRED),
        )
    out = df.copy()
    for col in [c for c in (*REQUIRED, *OPTIONAL) if c in out.columns and c != "patient_id"]:
        values = pd.to_numeric(out[col], errors="coerce")
        bad = out.loc[values.isna() & out[col].notna(), "patient_id"].tolist()
        if bad:
            raise invalid(
                col,
                "not_number_patient_s",
                N_("not a number for patient(s) {bad}"),
                N_("numbers"),
                bad=str(bad[:5]),
            )
        out[col] = values
    dc = out["disease_control_m6"].dropna()
    if not dc.isin([0, 1]).all():
        raise invalid(
            "disease_control_m6", "values_other_than_0_1", N_("values other than 0/1"), N_("0 or 1")
        )
    for col in ("tumour_dose_gy", "kidney_bed_gy", "red_marrow_dose_gy"):
        if col in out.columns and (out[col].dropna() < 0).any():
            raise invalid(col, "negative_dose", N_("negative dose"), N_("Gy >= 0"))
    return out


def logistic(dose_gy: np.ndarray, outcome: np.ndarray) -> LogisticResult | None:
    import statsmodels.api as sm

    n, events = int(outcome.size), int(outcome.sum())
    if n < 5 or events in (0, n):
        return None
    x = sm.add_constant(dose_gy.astype(float))
    note = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = sm.Logit(outcome.astype(float), x).fit(disp=0, maxiter=200)
        except Exception as exc:  # perfect separation and singular designs end up here
            return LogisticResult(
                n,
                events,
                math.nan,
                math.nan,
                math.nan,
                (math.nan, math.nan),
                math.nan,
                f"fit failed: {exc}",
            )
    b0, b1 = (float(v) for v in fit.params)
    lo, hi = (float(v) for v in fit.conf_int()[1])
    if not fit.mle_retvals.get("converged", True):
        note = "maximum likelihood did not converge (possible separation)"
    return LogisticResult(
        n,
        events,
        b0,
        b1,
        math.exp(10 * b1),
        (math.exp(10 * lo), math.exp(10 * hi)),
        float(fit.pvalues[1]),
        note,
    )


def correlation(df: pd.DataFrame, x: str, y: str, linear: bool = True) -> Correlation | None:
    from scipy import stats

    d = df[[x, y]].dropna()
    if len(d) < 3 or d[x].nunique() < 2 or d[y].nunique() < 2:
        return None
    rho, p = stats.spearmanr(d[x], d[y])
    r = pr = slope = icpt = None
    if linear:
        r_, pr_ = stats.pearsonr(d[x], d[y])
        lin = stats.linregress(d[x], d[y])
        r, pr, slope, icpt = float(r_), float(pr_), float(lin.slope), float(lin.intercept)
    return Correlation(x, y, len(d), float(rho), float(p), r, pr, slope, icpt)


def analyse(df: pd.DataFrame) -> DoseEffectResult:
    df = validate(df)
    notes = []
    resp_df = df[["tumour_dose_gy", "disease_control_m6"]].dropna()
    response = logistic(
        resp_df["tumour_dose_gy"].to_numpy(), resp_df["disease_control_m6"].to_numpy()
    )
    if response is None:
        notes.append(
            "logistic regression not estimable (fewer than 5 patients or one outcome only)"
        )
    kidney = correlation(df, "kidney_bed_gy", "egfr_slope_ml_min_1_73m2_per_year")
    tox = []
    for x, y in (
        ("red_marrow_dose_gy", "worst_haem_grade"),
        ("kidney_bed_gy", "worst_renal_grade"),
    ):
        if x in df.columns and y in df.columns:
            c = correlation(df, x, y, linear=False)
            if c is not None:
                tox.append(c)
    return DoseEffectResult(response, kidney, tuple(tox), tuple(notes))


def plot(df: pd.DataFrame, result: DoseEffectResult, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = validate(df)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    ax.scatter(df["tumour_dose_gy"], df["disease_control_m6"], alpha=0.6)
    if result.response is not None and math.isfinite(result.response.log_odds_per_gy):
        xs = np.linspace(0, float(df["tumour_dose_gy"].max()) * 1.05, 200)
        r = result.response
        ax.plot(xs, 1 / (1 + np.exp(-(r.intercept + r.log_odds_per_gy * xs))), "-")
    ax.set_xlabel("tumour absorbed dose (Gy)")
    ax.set_ylabel("disease control at month 6")
    fig.tight_layout()
    fig.savefig(out_dir / "response_vs_tumour_dose.png")
    plt.close(fig)
    files.append("response_vs_tumour_dose.png")
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    ax.scatter(df["kidney_bed_gy"], df["egfr_slope_ml_min_1_73m2_per_year"], alpha=0.6)
    k = result.kidney
    if k is not None and k.slope is not None and k.intercept is not None:
        xs = np.linspace(float(df["kidney_bed_gy"].min()), float(df["kidney_bed_gy"].max()), 50)
        ax.plot(xs, k.intercept + k.slope * xs, "-")
    ax.set_xlabel("cumulative kidney BED (Gy)")
    ax.set_ylabel("eGFR slope (mL/min/1.73 m² per year)")
    fig.tight_layout()
    fig.savefig(out_dir / "egfr_slope_vs_kidney_bed.png")
    plt.close(fig)
    files.append("egfr_slope_vs_kidney_bed.png")
    return files


def report_section(result: DoseEffectResult) -> str:
    """A Markdown section the trial report can include."""
    lines = ["## Dose–effect analysis (ancillary dosimetry study)", ""]
    r = result.response
    if r is None:
        lines.append("Response: logistic regression not estimable.")
    else:
        lines.append(
            f"Disease control at month 6 vs tumour absorbed dose (logistic, n = {r.n}, "
            f"{r.n_events} with disease control): odds ratio {r.odds_ratio_per_10_gy:.2f} per "
            f"10 Gy (95% CI {r.ci95_per_10_gy[0]:.2f}–{r.ci95_per_10_gy[1]:.2f}), "
            f"p = {r.p_value:.3g}."
        )
        if r.note:
            lines.append(f"Note: {r.note}.")
    k = result.kidney
    lines.append("")
    if k is None:
        lines.append("Kidney: correlation not estimable.")
    else:
        lines.append(
            f"eGFR slope vs cumulative kidney BED (n = {k.n}): Spearman ρ = {k.spearman_rho:.2f} "
            f"(p = {k.spearman_p:.3g}); Pearson r = {k.pearson_r:.2f}; slope "
            f"{k.slope:.3g} mL/min/1.73 m² per year per Gy."
        )
    for c in result.toxicity:
        lines.append(
            f"\n{c.y} vs {c.x} (n = {c.n}): Spearman ρ = {c.spearman_rho:.2f} "
            f"(p = {c.spearman_p:.3g})."
        )
    for note in result.notes:
        lines.append(f"\n_{note}_")
    lines.append("\n_Exploratory analysis of an ancillary study; no adjustment for multiplicity._")
    return "\n".join(lines) + "\n"


def synthetic(n: int = 40, seed: int = 8) -> pd.DataFrame:
    """Synthetic dose–effect data (for the example and the tests; not trial data)."""
    rng = np.random.default_rng(seed)
    dose = rng.gamma(4.0, 8.0, n)
    p = 1 / (1 + np.exp(-(-1.0 + 0.06 * dose)))
    bed = rng.normal(18, 5, n).clip(3)
    rows: dict[str, Any] = {
        "patient_id": [f"SYN-{i + 1:03d}" for i in range(n)],
        "tumour_dose_gy": dose.round(2),
        "disease_control_m6": (rng.random(n) < p).astype(int),
        "kidney_bed_gy": bed.round(2),
        "egfr_slope_ml_min_1_73m2_per_year": (-0.5 - 0.12 * bed + rng.normal(0, 1.5, n)).round(2),
        "red_marrow_dose_gy": rng.gamma(4.0, 0.2, n).round(3),
        "worst_haem_grade": rng.integers(0, 4, n),
        "worst_renal_grade": rng.integers(0, 3, n),
    }
    return pd.DataFrame(rows)
