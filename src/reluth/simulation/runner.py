"""Running design simulations: the `simulate` summary, the grid (locally or on a Dask cluster),
and the power-curve figure. The numerical work is in :mod:`reluth.simulation.design`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reluth.csvout import write_rows
from reluth.i18n import N_
from reluth.i18n.reasons import invalid
from reluth.simulation.design import (
    GridCell,
    GridCellResult,
    PrimaryDesign,
    PrimaryResult,
    SurvivalDesign,
    SurvivalResult,
    normal_approx_n_per_arm,
    normal_approx_power,
    primary_test_table,
    run_grid_cell,
    simulate_primary,
    simulate_survival,
)

TEST_DESCRIPTION = (
    "two-sided Pearson chi-square without continuity correction; Fisher's exact test when any "
    "expected count < 5; non-evaluable patients counted as failures (ITT)"
)

Progress = Callable[[int], None]


def new_seed() -> int:
    """A fresh seed, printed with every result so that any run can be repeated."""
    entropy = np.random.SeedSequence().entropy
    assert isinstance(entropy, int)
    return entropy % (2**63)


@dataclass(frozen=True)
class DesignSummary:
    seed: int
    primary_power: PrimaryResult
    primary_type_i: PrimaryResult
    pfs_power: SurvivalResult | None
    pfs_type_i: SurvivalResult | None
    elapsed_s: float


def simulate_design(
    primary: PrimaryDesign,
    survival: SurvivalDesign | None,
    *,
    n_sim: int,
    n_sim_pfs: int,
    seed: int,
    null_rate: float | None = None,
    progress: Progress | None = None,
) -> DesignSummary:
    """Power and type I error of the primary test, and (optionally) of the stratified log-rank."""
    if seed < 0:
        raise invalid(
            "seed", "unaccepted_seed", N_("{seed}"), N_("an integer >= 0"), seed=str(seed)
        )
    start = time.perf_counter()
    rng_power, rng_null, rng_pfs, rng_pfs_null = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    table = primary_test_table(primary.n_experimental, primary.n_control)
    power = simulate_primary(primary, n_sim, rng_power, table)
    rate = primary.p_control if null_rate is None else null_rate
    null_design = PrimaryDesign(
        n_experimental=primary.n_experimental,
        n_control=primary.n_control,
        p_experimental=rate,
        p_control=rate,
        alpha=primary.alpha,
        non_evaluable_rate=primary.non_evaluable_rate,
    )
    type_i = simulate_primary(null_design, n_sim, rng_null, table)
    if progress:
        progress(2 * n_sim)
    pfs = pfs_null = None
    if survival is not None:
        pfs = simulate_survival(survival, n_sim_pfs, rng_pfs, progress=progress)
        null_survival = SurvivalDesign(**{**_fields(survival), "hazard_ratio": 1.0})
        pfs_null = simulate_survival(null_survival, n_sim_pfs, rng_pfs_null, progress=progress)
    return DesignSummary(seed, power, type_i, pfs, pfs_null, time.perf_counter() - start)


def _fields(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__dataclass_fields__}


def _rounded(x: float, digits: int = 5) -> float:
    return round(float(x), digits)


def _mc_dict(res: PrimaryResult | SurvivalResult) -> dict[str, Any]:
    lo, hi = res.mc_ci95
    return {
        "simulated": _rounded(res.rejection_rate),
        "mc_standard_error": _rounded(res.mc_standard_error, 6),
        "mc_ci95": [_rounded(lo), _rounded(hi)],
        "favouring_experimental": _rounded(res.rejections_favouring_experimental / res.n_sim),
        "n_sim": res.n_sim,
    }


def primary_to_dict(res: PrimaryResult) -> dict[str, Any]:
    d = res.design
    q_e, q_c = d.observed_rates
    return {
        **_mc_dict(res),
        "exact": _rounded(res.exact_rejection_probability),
        "normal_approximation": (
            _rounded(normal_approx_power(q_c, q_e, min(d.n_control, d.n_experimental), d.alpha))
            if q_e != q_c
            else d.alpha
        ),
        "fisher_fraction": _rounded(res.fisher_fraction),
        "mean_dcr_experimental": _rounded(res.mean_dcr_experimental),
        "mean_dcr_control": _rounded(res.mean_dcr_control),
        "p_experimental": d.p_experimental,
        "p_control": d.p_control,
    }


def survival_to_dict(res: SurvivalResult) -> dict[str, Any]:
    return {
        **_mc_dict(res),
        "schoenfeld_approximation": _rounded(res.schoenfeld_power),
        "mean_events": _rounded(res.mean_events, 2),
        "expected_events": _rounded(res.expected_events, 2),
        "hazard_ratio": res.design.hazard_ratio,
    }


def summary_to_dict(summary: DesignSummary) -> dict[str, Any]:
    d = summary.primary_power.design
    out: dict[str, Any] = {
        "seed": summary.seed,
        "primary": {
            "endpoint": "disease control at month 6 (RECIST 1.1)",
            "test": TEST_DESCRIPTION,
            "n_experimental": d.n_experimental,
            "n_control": d.n_control,
            "alpha": d.alpha,
            "non_evaluable_rate": d.non_evaluable_rate,
            "normal_approx_n_per_arm": _rounded(
                normal_approx_n_per_arm(d.p_control, d.p_experimental, d.alpha), 2
            )
            if d.p_control != d.p_experimental
            else None,
            "power": primary_to_dict(summary.primary_power),
            "type_i_error": {
                **primary_to_dict(summary.primary_type_i),
                "common_rate": summary.primary_type_i.design.p_control,
                "nominal": d.alpha,
            },
        },
        "elapsed_s": _rounded(summary.elapsed_s, 3),
    }
    if summary.pfs_power is not None and summary.pfs_type_i is not None:
        s = summary.pfs_power.design
        out["pfs"] = {
            "test": (
                "two-sided stratified log-rank (strata: the 4 randomization factors)"
                if s.stratified_analysis
                else "two-sided log-rank without strata"
            ),
            "median_control_months": s.median_control_months,
            "accrual_months": s.accrual_months,
            "followup_months": s.followup_months,
            "dropout_per_year": s.dropout_per_year,
            "scheduled_assessments": s.scheduled_assessments,
            "strata": [
                {"factor": name, "prevalence": prev, "hazard_ratio": hr}
                for name, prev, hr in s.stratum_factors
            ],
            "power": survival_to_dict(summary.pfs_power),
            "type_i_error": survival_to_dict(summary.pfs_type_i),
        }
    return out


# --------------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------------


def run_grid(
    cells: Sequence[GridCell],
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> list[GridCellResult]:
    """Run every cell, in this process or on an existing Dask cluster; results in cell order."""
    if scheduler is None:
        results = []
        for cell in cells:
            results.append(run_grid_cell(cell))
            if progress:
                progress(1)
        return results
    if not scheduler.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise invalid(
            "--scheduler",
            "not_scheduler_address",
            N_("{scheduler} is not a scheduler address"),
            N_("tcp://HOST:PORT"),
            scheduler=repr(scheduler),
        )
    from dask.distributed import Client, as_completed

    try:
        client = Client(scheduler, timeout="10s", set_as_default=False)
    except OSError as exc:
        raise invalid(
            "--scheduler",
            "cannot_reach_dask_scheduler_2",
            N_("cannot reach the Dask scheduler at {scheduler}: {exc_name}"),
            N_("a running dask scheduler (tcp://HOST:PORT)"),
            scheduler=str(scheduler),
            exc_name=str(exc),
        ) from None
    try:
        futures = client.map(run_grid_cell, list(cells), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        out: list[GridCellResult | None] = [None] * len(futures)
        for fut in as_completed(futures, loop=client.loop):
            out[index[fut.key]] = fut.result()
            if progress:
                progress(1)
    finally:
        client.close()
    return [r for r in out if r is not None]


GRID_COLUMNS = (
    "endpoint",
    "n_per_arm",
    "effect",
    "n_sim",
    "power",
    "mc_standard_error",
    "approximate_power",
    "exact_power",
)


def write_grid_csv(results: Sequence[GridCellResult], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        write_rows(fh, GRID_COLUMNS, (asdict(r) for r in results))


def plot_power_curves(results: Sequence[GridCellResult], path: Path, p_control: float) -> None:
    """Power against sample size per arm: one line per effect size, one panel per endpoint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    endpoints = [e for e in ("dcr", "pfs") if any(r.endpoint == e for r in results)]
    fig, axes = plt.subplots(1, len(endpoints), figsize=(6.2 * len(endpoints), 4.6), squeeze=False)
    for ax, endpoint in zip(axes[0], endpoints, strict=True):
        rows = [r for r in results if r.endpoint == endpoint]
        for effect in sorted({r.effect for r in rows}):
            line = sorted((r for r in rows if r.effect == effect), key=lambda r: r.n_per_arm)
            n = [r.n_per_arm for r in line]
            power = [r.power for r in line]
            err = [1.96 * r.mc_standard_error for r in line]
            label = (
                f"DCR {p_control:.0%} vs {effect:.0%}" if endpoint == "dcr" else f"HR {effect:g}"
            )
            bars = ax.errorbar(n, power, yerr=err, marker="o", ms=4, capsize=2, label=label)
            approx = [r.approximate_power for r in line]
            ax.plot(n, approx, ls=":", color=bars[0].get_color(), lw=1)
        ax.axhline(0.8, color="grey", lw=0.8, ls="--")
        ax.axvline(73, color="grey", lw=0.8, ls=":")
        ax.set_ylim(0, 1)
        ax.set_xlabel("patients per arm")
        ax.set_ylabel("power (simulated, 95% MC interval)")
        ax.set_title(
            "DCR at month 6: chi-square / Fisher"
            if endpoint == "dcr"
            else "PFS: stratified log-rank"
        )
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
    fig.text(
        0.01,
        0.01,
        "dotted: normal approximation (DCR) / Schoenfeld, ignoring strata (PFS)",
        fontsize=7,
        alpha=0.7,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_number_list(text: str, field: str, kind: type) -> list[Any]:
    """'40,50,73' → [40, 50, 73]; a clear error naming the option otherwise."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = kind(part)
        except ValueError:
            raise invalid(
                field,
                "not_number",
                N_("{part} is not a number"),
                N_("comma-separated numbers, e.g. 40,60,73"),
                part=repr(part),
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise invalid(
                field,
                "not_finite",
                N_("{part} is not finite"),
                N_("finite numbers"),
                part=repr(part),
            )
        out.append(value)
    if not out:
        raise invalid(
            field, "empty_list", N_("empty list"), N_("comma-separated numbers, e.g. 40,60,73")
        )
    return out
