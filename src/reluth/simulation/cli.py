"""`reluth design ...`: operating characteristics of the trial design by simulation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from reluth.cli_support import command_trial, console, handle_errors, print_json, progress_bar
from reluth.errors import ValidationError

if TYPE_CHECKING:
    from reluth.simulation.runner import DesignSummary

# scipy/numpy are imported inside the commands, so that `reluth` starts fast for every other
# command.

app = typer.Typer(
    help="Design simulation: power and type I error of the primary analysis and of PFS.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="design")


_OPTION_FOR_FIELD = {
    "p_control": "--p0",
    "p_experimental": "--p1",
    "n_experimental": "--n-per-arm",
    "n_control": "--n-per-arm",
    "alpha": "--alpha",
    "non_evaluable_rate": "--non-evaluable-rate",
    "hazard_ratio": "--hr",
    "median_control_months": "--median-control-months",
    "accrual_months": "--accrual-months",
    "followup_months": "--followup-months",
    "dropout_per_year": "--dropout-per-year",
    "dcr_control": "--p0",
    "dcr_experimental": "--p1",
    "pfs_hazard_ratio": "--hr",
    "n_included": "--n-included",
}


def _as_option(exc: ValidationError) -> ValidationError:
    """Name the command-line option rather than the internal field."""
    from reluth.i18n.reasons import moved

    option = _OPTION_FOR_FIELD.get(exc.field)
    return exc if option is None else moved(exc, option)


def _pct(x: float | None, digits: int = 2) -> str:
    """A proportion as a percentage in the reader's language (``12.34%``, ``12,34 %``)."""
    from reluth.i18n import format_number, gettext

    if x is None:
        return "—"
    return gettext("{value}%").format(value=format_number(100 * x, digits))


def _ci(estimate: dict[str, Any]) -> str:
    low, high = estimate["mc_ci95"]
    return f"{_pct(estimate['simulated'])} ({_pct(low)}–{_pct(high)})"


def _render_summary(summary: DesignSummary, out: dict[str, Any]) -> None:
    from reluth.cli_support import table
    from reluth.i18n import N_, format_number, gettext

    primary = out["primary"]
    console.print(
        gettext(
            "[bold]Primary endpoint[/]: DCR at month 6, {n_experimental} experimental vs "
            "{n_control} control, alpha {alpha}, non-evaluable rate {non_evaluable} (counted as "
            "failures)"
        ).format(
            n_experimental=format_number(primary["n_experimental"]),
            n_control=format_number(primary["n_control"]),
            alpha=format_number(primary["alpha"]),
            non_evaluable=format_number(primary["non_evaluable_rate"]),
        )
    )
    console.print(gettext("Test: {test}").format(test=primary["test"]), style="dim")
    shown = table(
        N_("quantity"),
        N_("simulated (95% Monte Carlo confidence interval)"),
        N_("exact"),
        N_("normal approx."),
        N_("Fisher used"),
        show_header=True,
        header_style="bold",
    )
    pw, t1 = primary["power"], primary["type_i_error"]
    nominal = gettext("nominal {value}")
    shown.add_row(
        gettext("power ({control} vs {experimental})").format(
            control=_pct(pw["p_control"], 0), experimental=_pct(pw["p_experimental"], 0)
        ),
        _ci(pw),
        _pct(pw["exact"]),
        _pct(pw["normal_approximation"]),
        _pct(pw["fisher_fraction"]),
    )
    shown.add_row(
        gettext("type I error (both {rate})").format(rate=_pct(t1["common_rate"], 0)),
        _ci(t1),
        _pct(t1["exact"]),
        nominal.format(value=_pct(t1["nominal"])),
        _pct(t1["fisher_fraction"]),
    )
    if "pfs" in out:
        pfs = out["pfs"]
        p, n0 = pfs["power"], pfs["type_i_error"]
        kind = (
            gettext("log-rank")
            if "without strata" in pfs["test"]
            else gettext("stratified log-rank")
        )
        shown.add_row(
            gettext("PFS power (HR {hr}, {kind})").format(
                hr=format_number(p["hazard_ratio"]), kind=kind
            ),
            _ci(p),
            "—",
            gettext("Schoenfeld {value}").format(value=_pct(p["schoenfeld_approximation"])),
            "",
        )
        shown.add_row(
            gettext("PFS type I error (HR 1)"),
            _ci(n0),
            "—",
            nominal.format(value=_pct(primary["alpha"])),
            "",
        )
    console.print(shown)
    if primary.get("normal_approx_n_per_arm") is not None:
        console.print(
            gettext("Normal-approximation sample size for 80% power: {n} per arm.").format(
                n=format_number(primary["normal_approx_n_per_arm"])
            )
        )
    if "pfs" in out:
        pfs = out["pfs"]
        console.print(
            gettext(
                "PFS: median {median} months (control), accrual {accrual} months, follow-up "
                "{followup} months after the last randomization; mean {mean} events "
                "(expected {expected})."
            ).format(
                median=format_number(pfs["median_control_months"]),
                accrual=format_number(pfs["accrual_months"]),
                followup=format_number(pfs["followup_months"]),
                mean=format_number(pfs["power"]["mean_events"]),
                expected=format_number(pfs["power"]["expected_events"]),
            )
        )
    trials = gettext("seed {seed} · {n} trials (primary)").format(
        seed=summary.seed, n=format_number(summary.primary_power.n_sim)
    )
    if summary.pfs_power:
        trials += gettext(", {n} trials (PFS)").format(n=format_number(summary.pfs_power.n_sim))
    console.print(f"{trials} · {format_number(summary.elapsed_s, 2)} s", style="dim")


@app.command("simulate")
@handle_errors
def simulate_cmd(
    n_sim: int = typer.Option(100_000, "--n-sim", help="Simulated trials for the primary test."),
    p0: float = typer.Option(0.65, "--p0", help="True DCR at month 6, control arm."),
    p1: float = typer.Option(0.85, "--p1", help="True DCR at month 6, experimental arm."),
    n_per_arm: int = typer.Option(73, "--n-per-arm", help="Randomized patients per arm."),
    alpha: float = typer.Option(0.05, "--alpha", help="Two-sided significance level."),
    seed: int | None = typer.Option(
        None, "--seed", min=0, help="Seed, >= 0 (printed when not given)."
    ),
    non_evaluable_rate: float = typer.Option(
        0.0, "--non-evaluable-rate", help="Share of patients without a month-6 evaluation."
    ),
    null_rate: float | None = typer.Option(
        None, "--null-rate", help="Common DCR for the type I error (default: --p0)."
    ),
    hr: float = typer.Option(0.6, "--hr", help="Assumed PFS hazard ratio (experimental/control)."),
    median_control: float = typer.Option(
        15.0, "--median-control-months", help="Median PFS in the control arm (months)."
    ),
    accrual: float = typer.Option(36.0, "--accrual-months", help="Accrual period (months)."),
    followup: float = typer.Option(
        24.0, "--followup-months", help="Follow-up after the last randomization (months)."
    ),
    dropout: float = typer.Option(
        0.0, "--dropout-per-year", help="Exponential dropout hazard per year (PFS)."
    ),
    n_sim_pfs: int = typer.Option(20_000, "--n-sim-pfs", help="Simulated trials for PFS."),
    scheduled: bool = typer.Option(
        False,
        "--scheduled-assessments/--continuous-time",
        help="PFS seen only at scheduled scans (ties) or in continuous time.",
    ),
    unstratified: bool = typer.Option(
        False, "--unstratified", help="Log-rank without strata (the strata still shape hazards)."
    ),
    no_pfs: bool = typer.Option(False, "--no-pfs", help="Skip the PFS simulation."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Power and type I error of the primary analysis (and of the stratified log-rank for PFS)."""
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid
    from reluth.simulation.cohort import CohortPlan
    from reluth.simulation.design import PrimaryDesign, SurvivalDesign
    from reluth.simulation.runner import new_seed, simulate_design, summary_to_dict

    try:
        primary = PrimaryDesign(
            n_experimental=n_per_arm,
            n_control=n_per_arm,
            p_experimental=p1,
            p_control=p0,
            alpha=alpha,
            non_evaluable_rate=non_evaluable_rate,
        )
        survival = (
            None
            if no_pfs
            else SurvivalDesign(
                n_experimental=n_per_arm,
                n_control=n_per_arm,
                median_control_months=median_control,
                hazard_ratio=hr,
                accrual_months=accrual,
                followup_months=followup,
                dropout_per_year=dropout,
                alpha=alpha,
                scheduled_assessments=scheduled,
                schedule=CohortPlan.from_protocol(command_trial().protocol),
                stratified_analysis=not unstratified,
            )
        )
    except ValidationError as exc:
        raise _as_option(exc) from None
    if null_rate is not None and not 0 <= null_rate <= 1:
        raise invalid(
            "--null-rate",
            "not_probability_2",
            N_("{null_rate} is not a probability"),
            N_("0..1"),
            null_rate=repr(null_rate),
        )
    if n_sim < 1 or (survival is not None and n_sim_pfs < 1):
        raise invalid("--n-sim", "must_least_1", N_("must be at least 1"), N_("a positive integer"))
    seed = new_seed() if seed is None else seed
    total = 2 * n_sim + (0 if survival is None else 2 * n_sim_pfs)
    from reluth.i18n import gettext

    with progress_bar(disable=as_json) as bar:
        task = bar.add_task(gettext("simulating trials"), total=total)
        summary = simulate_design(
            primary,
            survival,
            n_sim=n_sim,
            n_sim_pfs=n_sim_pfs,
            seed=seed,
            null_rate=null_rate,
            progress=lambda k: bar.advance(task, k),
        )
    out = summary_to_dict(summary)
    if as_json:
        print_json(out)
    else:
        _render_summary(summary, out)


@app.command("grid")
@handle_errors
def grid_cmd(
    n_per_arm: str = typer.Option(
        "40,50,60,73,85,100", "--n-per-arm", help="Sample sizes per arm, comma-separated."
    ),
    p1: str = typer.Option(
        "0.75,0.80,0.85,0.90", "--p1", help="Experimental DCRs (effect sizes), comma-separated."
    ),
    hr: str = typer.Option(
        "", "--hr", help="PFS hazard ratios, comma-separated (empty: primary endpoint only)."
    ),
    p0: float = typer.Option(0.65, "--p0", help="Control DCR."),
    alpha: float = typer.Option(0.05, "--alpha"),
    n_sim: int = typer.Option(20_000, "--n-sim", help="Trials per DCR cell."),
    n_sim_pfs: int = typer.Option(4_000, "--n-sim-pfs", help="Trials per PFS cell."),
    non_evaluable_rate: float = typer.Option(0.0, "--non-evaluable-rate"),
    median_control: float = typer.Option(15.0, "--median-control-months"),
    accrual: float = typer.Option(36.0, "--accrual-months"),
    followup: float = typer.Option(24.0, "--followup-months"),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Seed, >= 0."),
    out: Path = typer.Option(Path("design-grid"), "--out", help="Directory for PNG/CSV/JSON."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: local)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Power over sample sizes × effect sizes, with a power-curve plot (power-curve.png)."""
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid
    from reluth.simulation.design import grid_cells
    from reluth.simulation.runner import (
        new_seed,
        parse_number_list,
        plot_power_curves,
        run_grid,
        write_grid_csv,
    )

    sizes = parse_number_list(n_per_arm, "--n-per-arm", int)
    effects = parse_number_list(p1, "--p1", float)
    hazard_ratios = parse_number_list(hr, "--hr", float) if hr.strip() else []
    for n in sizes:
        if n < 1:
            raise invalid(
                "--n-per-arm",
                "not_allowed_2",
                N_("{n} is not allowed"),
                N_("integers >= 1"),
                n=str(n),
            )
    for p in [*effects, p0, non_evaluable_rate]:
        if not 0 <= p <= 1:
            raise invalid(
                "--p1/--p0",
                "not_probability_3",
                N_("{p} is not a probability"),
                N_("numbers in [0, 1]"),
                p=repr(p),
            )
    for h in hazard_ratios:
        if h <= 0:
            raise invalid(
                "--hr",
                "not_hazard_ratio",
                N_("{h} is not a hazard ratio"),
                N_("numbers > 0"),
                h=repr(h),
            )
    if n_sim < 1 or n_sim_pfs < 1:
        raise invalid("--n-sim", "must_least_1", N_("must be at least 1"), N_("a positive integer"))
    seed = new_seed() if seed is None else seed
    cells = grid_cells(
        sizes,
        effects,
        hazard_ratios,
        p_control=p0,
        alpha=alpha,
        n_sim=n_sim,
        n_sim_pfs=n_sim_pfs,
        non_evaluable_rate=non_evaluable_rate,
        median_control_months=median_control,
        accrual_months=accrual,
        followup_months=followup,
        seed=seed,
    )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise invalid(
            "--out",
            "cannot_create",
            N_("cannot create {out}: {exc_name}"),
            N_("a writable directory"),
            out=str(out),
            exc_name=str(exc),
        ) from None
    from reluth.cli_support import table
    from reluth.i18n import N_, format_number, gettext

    with progress_bar(disable=as_json) as bar:
        where = scheduler or gettext("locally")
        task = bar.add_task(gettext("grid cells ({where})").format(where=where), total=len(cells))
        results = run_grid(cells, scheduler, progress=lambda k: bar.advance(task, k))
    png = out / "power-curve.png"
    plot_power_curves(results, png, p0)
    write_grid_csv(results, out / "grid.csv")
    payload = {
        "seed": seed,
        "scheduler": scheduler or "local",
        "p_control": p0,
        "alpha": alpha,
        "cells": [{k: getattr(r, k) for k in r.__dataclass_fields__} for r in results],
        "files": {"plot": str(png), "csv": str(out / "grid.csv")},
    }
    (out / "grid.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    if as_json:
        print_json(payload)
        return
    shown = table(
        N_("endpoint"), N_("n/arm"), N_("effect"), N_("power (sim)"), N_("± 1.96 SE"),
        N_("approx."), N_("exact"),
        show_header=True, header_style="bold",
    )  # fmt: skip
    endpoints = {"pfs": N_("PFS"), "dcr": N_("DCR")}
    versus = gettext("{control} vs {experimental}")
    for r in results:
        shown.add_row(
            gettext(endpoints.get(r.endpoint, r.endpoint)),
            format_number(r.n_per_arm),
            format_number(r.effect)
            if r.endpoint == "pfs"
            else versus.format(control=_pct(p0, 0), experimental=_pct(r.effect, 0)),
            _pct(r.power),
            format_number(196 * r.mc_standard_error, 2),
            _pct(r.approximate_power),
            _pct(r.exact_power),
        )
    console.print(shown)
    console.print(
        gettext("Plot: {png} · table: {csv} · seed {seed}").format(
            png=png, csv=out / "grid.csv", seed=seed
        )
    )


@app.command("cohort")
@handle_errors
def cohort_cmd(
    out: Path = typer.Option(..., "--out", help="Directory to write the synthetic trial to."),
    seed: int = typer.Option(2021, "--seed", min=0, help="Seed of the cohort, >= 0."),
    n_included: int | None = typer.Option(
        None, "--n-included", help="Included patients (default: the protocol's sample size)."
    ),
    hr: float | None = typer.Option(
        None, "--hr", help="PFS hazard ratio after week 24 (default: implied by the DCRs)."
    ),
    p0: float | None = typer.Option(
        None, "--p0", help="True DCR at month 6, control (default: the protocol's)."
    ),
    p1: float | None = typer.Option(
        None, "--p1", help="True DCR at month 6, experimental (default: the protocol's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Write the seeded synthetic ReLUTH cohort as JSON files (patient files, RECIST, labs, QoL)."""
    from reluth.simulation.cohort import CohortConfig, generate_cohort
    from reluth.simulation.export import write_cohort

    try:
        config = CohortConfig(
            command_trial().protocol,
            seed=seed,
            n_included=n_included,
            pfs_hazard_ratio=hr,
            dcr_control=p0,
            dcr_experimental=p1,
        )
    except ValidationError as exc:
        raise _as_option(exc) from None
    from reluth.i18n import format_day, format_number, gettext

    with progress_bar(disable=as_json) as bar:
        task = bar.add_task(gettext("generating patients"), total=None)
        cohort = generate_cohort(config)
        bar.update(
            task, total=len(cohort.patients), completed=0, description=gettext("writing files")
        )
        summary = write_cohort(cohort, out, progress=lambda k: bar.advance(task, k))
    if as_json:
        print_json(summary)
        return
    console.print(
        gettext(
            "screened {screened}, included {included}, randomized {randomized}, data cut-off "
            "{cutoff} (seed {seed}) → {out}"
        ).format(
            screened=format_number(summary["screened"]),
            included=format_number(summary["included"]),
            randomized=format_number(summary["randomized"]),
            cutoff=format_day(summary["data_cutoff"]),
            seed=seed,
            out=out,
        )
    )
    example = f"{out}/patients/{summary['example_patient']}"
    console.print(
        gettext("Try: {first} ; {second}").format(
            first=f"reluth eligibility check --stage randomization {example}/randomization.json",
            second=f"reluth recist evaluate {example}/control/recist.json",
        )
    )
