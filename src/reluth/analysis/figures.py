"""Report figures with matplotlib (object API, no pyplot; Agg renderer): CONSORT, KM with number at risk, forest,
waterfall, spider, swimmer, QoL. Each function returns a Figure; ``save`` writes PNG and SVG.
Arms, their order and the days in a month are the protocol's (the datasets' design)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter

from reluth.analysis.design import AnalysisDesign
from reluth.analysis.survival import KaplanMeier

#: Experimental, then control arm.
_ARM_COLORS = ("#1f5fa8", "#d2691e")


def colors(design: AnalysisDesign) -> dict[str, str]:
    return dict(zip(design.arms, _ARM_COLORS, strict=True))


# SVG text stays text (searchable, small, and much faster than glyph paths); stable ids.
matplotlib.rcParams["svg.fonttype"] = "none"
matplotlib.rcParams["svg.hashsalt"] = "reluth"


def _subplots(*args: Any, **kwargs: Any) -> tuple[Figure, Any]:
    """pyplot.subplots without pyplot: no global figure manager, no GUI backend."""
    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(*args, **kwargs)


def save(fig: Figure, out_dir: Path, name: str) -> str:
    """Write NAME.png and NAME.svg; return the PNG as base64 for embedding."""
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    fig.savefig(out_dir / f"{name}.svg")
    (out_dir / f"{name}.png").write_bytes(buf.getvalue())
    return base64.b64encode(buf.getvalue()).decode("ascii")


def consort(design: AnalysisDesign, adsl: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(8, 6.5))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    n_incl = len(adsl)
    rand = adsl[adsl["RANDFL"] == "Y"]
    not_rand = adsl[adsl["RANDFL"] != "Y"]
    reasons = not_rand["NRANDRS"].fillna("not given").value_counts()

    def box(x: float, y: float, text: str, w: float = 0.36) -> None:
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="center",
            fontsize=9,
            wrap=True,
            bbox={"boxstyle": "square,pad=0.5", "fc": "white", "ec": "black"},
        )

    n_cycles = design.pre_randomization_cycles
    box(0.5, 0.92, f"Included ({n_cycles} retreatment cycles)\nn = {n_incl}")
    reason_txt = "\n".join(f"{r}: {n}" for r, n in reasons.items())
    box(0.82, 0.76, f"Not randomized\nn = {len(not_rand)}\n{reason_txt}", w=0.3)
    box(0.5, 0.62, f"Randomized (ITT)\nn = {len(rand)}")
    ax.annotate("", (0.5, 0.67), (0.5, 0.88), arrowprops={"arrowstyle": "->"})
    ax.annotate("", (0.68, 0.76), (0.5, 0.76), arrowprops={"arrowstyle": "->"})
    for i, arm in enumerate(design.arms):
        x = 0.27 if i == 0 else 0.73
        a = rand[rand["ARM"] == arm]
        ax.annotate("", (x, 0.47), (0.5, 0.58), arrowprops={"arrowstyle": "->"})
        box(x, 0.42, f"{arm}\nn = {len(a)}\nsafety population: {(a['SAFFL'] == 'Y').sum()}")
        box(
            x,
            0.22,
            f"Analysed for the primary endpoint\nITT: {len(a)}\n"
            f"per-protocol: {(a['PPROTFL'] == 'Y').sum()}\n"
            f"deaths: {(a['DTHFL'] == 'Y').sum()}",
        )
        ax.annotate("", (x, 0.28), (x, 0.36), arrowprops={"arrowstyle": "->"})
    ax.set_xlim(0, 1)
    ax.set_ylim(0.1, 1)
    return fig


def km_plot(
    design: AnalysisDesign,
    km: dict[str, KaplanMeier],
    title: str,
    xlabel: str = "Months since randomization",
    risk_times: list[float] | None = None,
) -> Figure:
    fig, (ax, axr) = _subplots(2, 1, figsize=(8, 6), height_ratios=(4, 1), sharex=True)
    tmax = max(float(k.time.max()) for k in km.values())
    ticks = risk_times or list(np.arange(0, tmax + 1e-9, 6 if tmax > 24 else 3))
    palette = colors(design)
    for i, (name, k) in enumerate(km.items()):
        color = palette.get(name, f"C{i}")
        t = np.concatenate(([0.0], k.time))
        s = np.concatenate(([1.0], k.survival))
        ax.step(t, s, where="post", color=color, label=f"{name} (n={k.n}, events={k.events})")
        lo = np.concatenate(([1.0], np.nan_to_num(k.lower, nan=0.0)))
        hi = np.concatenate(([1.0], np.nan_to_num(k.upper, nan=0.0)))
        ax.fill_between(t, lo, hi, step="post", color=color, alpha=0.12)
        cens = k.n_censor > 0
        ax.plot(k.time[cens], k.survival[cens], "|", color=color, ms=7)
        axr.text(-0.02 * tmax, -i, name, ha="right", va="center", fontsize=8, color=color)
        for tt, n in zip(ticks, k.number_at_risk(ticks), strict=True):
            axr.text(tt, -i, str(n), ha="center", va="center", fontsize=8)
    ax.axhline(0.5, color="grey", lw=0.5, ls=":")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("Probability")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    axr.set_ylim(-len(km) + 0.5, 0.8)
    axr.set_yticks([])
    axr.set_title("Number at risk", fontsize=8, loc="left")
    axr.set_xticks(ticks)
    axr.set_xlabel(xlabel)
    for sp in ("top", "right", "left"):
        axr.spines[sp].set_visible(False)
    fig.subplots_adjust(left=0.16, right=0.97, top=0.94, bottom=0.09, hspace=0.12)
    return fig


def forest(design: AnalysisDesign, rows: pd.DataFrame, title: str) -> Figure:
    n = len(rows)
    fig, ax = _subplots(figsize=(8, 0.4 * n + 1.2))
    y = np.arange(n)[::-1]
    labels = [
        f"{f} {lv}".strip() + f"  (n={m})"
        for f, lv, m in zip(rows["factor"], rows["level"], rows["n"], strict=True)
    ]
    ok = rows["hr"].notna().to_numpy()
    hr, lo, hi = (rows[c].to_numpy(dtype=float)[ok] for c in ("hr", "lo", "hi"))
    ax.errorbar(
        hr,
        y[ok],
        xerr=np.vstack([hr - lo, hi - hr]),
        fmt="s",
        color="black",
        capsize=3,
    )
    ax.axvline(1.0, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([0.125, 0.25, 0.5, 1, 2, 4, 8]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_locator(FixedLocator([]))
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel(f"Hazard ratio ({design.experimental} vs {design.control}), 95% CI, log scale")
    ax.set_title(title)
    fig.subplots_adjust(left=0.33, right=0.97)
    return fig


def waterfall(design: AnalysisDesign, adrs: pd.DataFrame) -> Figure:
    bor = adrs[(adrs["PARAMCD"] == "BOR") & adrs["PCHG"].notna()].sort_values(
        "PCHG", ascending=False
    )
    fig, ax = _subplots(figsize=(9, 4))
    palette = colors(design)
    ax.bar(
        np.arange(len(bor)),
        bor["PCHG"],
        color=[palette.get(a, "grey") for a in bor["ARM"]],
        width=0.9,
    )
    ax.axhline(20, color="red", ls="--", lw=0.8)
    ax.axhline(-30, color="green", ls="--", lw=0.8)
    ax.set_ylabel("Best % change in sum of target diameters")
    ax.set_xticks([])
    ax.set_title("Waterfall plot (+20%: PD threshold, −30%: PR threshold)")
    _arm_legend(ax, design)
    return fig


def _arm_legend(ax: Any, design: AnalysisDesign) -> None:
    handles = [Patch(color=c, label=arm) for arm, c in colors(design).items()]
    ax.legend(handles=handles, fontsize=8)


def spider(design: AnalysisDesign, adrs: pd.DataFrame) -> Figure:
    o = adrs[(adrs["PARAMCD"] == "OVRLRESP") & adrs["PCHG"].notna()]
    fig, ax = _subplots(figsize=(8, 4.5))
    for _sid, g in o.groupby("USUBJID"):
        g = g.sort_values("ADY")
        ax.plot(
            np.maximum(g["ADY"], 0) / design.days_per_month,
            g["PCHG"],
            color=colors(design).get(str(g["ARM"].iloc[0]), "grey"),
            lw=0.7,
            alpha=0.6,
        )
    ax.axhline(20, color="red", ls="--", lw=0.8)
    ax.axhline(-30, color="green", ls="--", lw=0.8)
    ax.set_xlabel("Months since randomization")
    ax.set_ylabel("% change in sum of target diameters")
    ax.set_title("Spider plot")
    _arm_legend(ax, design)
    return fig


def swimmer(
    design: AnalysisDesign,
    adsl: pd.DataFrame,
    adtte: pd.DataFrame,
    adrs: pd.DataFrame,
    max_rows: int = 60,
) -> Figure:
    os_ = adtte[adtte["PARAMCD"] == "OS"].sort_values("AVAL").tail(max_rows)
    fig, ax = _subplots(figsize=(8, 0.12 * len(os_) + 1.5))
    pfs = adtte[adtte["PARAMCD"] == "PFS"].set_index("USUBJID")
    for i, (_, r) in enumerate(os_.iterrows()):
        ax.barh(i, r["AVAL"], color=colors(design).get(str(r["ARM"]), "grey"), height=0.7)
        p = pfs.loc[r["USUBJID"]] if r["USUBJID"] in pfs.index else None
        if p is not None and p["CNSR"] == 0:
            ax.plot(p["AVAL"], i, "k|", ms=5)
        ax.plot(r["AVAL"], i, "kx" if r["CNSR"] == 0 else "k>", ms=3)
    ax.set_yticks([])
    ax.set_xlabel("Months since randomization (| progression, x death, > alive)")
    ax.set_title(f"Swimmer plot (longest {len(os_)} follow-ups)")
    _arm_legend(ax, design)
    return fig


def qol_plot(design: AnalysisDesign, qtab: pd.DataFrame) -> Figure:
    scales = sorted(qtab["PARAMCD"].unique())
    cols = min(2, max(1, len(scales)))
    rows_n = int(np.ceil(len(scales) / cols)) or 1
    fig, axes = _subplots(rows_n, cols, figsize=(8, 2.8 * rows_n), squeeze=False)
    for ax, sc in zip(axes.flat, scales, strict=False):
        d = qtab[qtab["PARAMCD"] == sc]
        for arm, color in colors(design).items():
            a = d[d["ARM"] == arm].sort_values("month")
            ax.errorbar(
                a["month"],
                a["mean"],
                yerr=a["sd"] / np.sqrt(a["n"].clip(lower=1)),
                color=color,
                marker="o",
                ms=3,
                capsize=2,
                label=arm,
            )
        ax.set_title(sc, fontsize=9)
        ax.set_xlabel("Month")
        ax.set_ylabel("Mean score (±SE)")
    for ax in list(axes.flat)[len(scales) :]:
        ax.set_axis_off()
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
