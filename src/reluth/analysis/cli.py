"""``reluth stats ...`` (general-purpose statistics on any CSV, printing JSON) and
``reluth analyze`` (the whole trial analysis and HTML report)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from reluth.cli_support import command_trial, console, handle_errors, parse_date, print_json

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

app = typer.Typer(
    help="Statistics on CSV files, with SAS conventions by default.", no_args_is_help=True
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="stats")
    root.command("analyze", help="Run the statistical analysis plan and write the HTML report.")(
        analyze
    )


# ---------------------------------------------------------------------------------------------
# CSV helpers


def _read_csv(path: Path) -> pd.DataFrame:
    import pandas as pd

    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid

    if not path.is_file():
        raise invalid(str(path), "file_not_found", N_("file not found"), N_("an existing CSV file"))
    try:
        return pd.read_csv(path, na_values=["NA", ""], keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise invalid(
            str(path),
            "unreadable_csv",
            N_("unreadable CSV: {exc_name}"),
            N_("a UTF-8 CSV with a header"),
            exc_name=str(exc),
        ) from None


def _column(df: pd.DataFrame, name: str, option: str) -> pd.Series:
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid

    if name not in df.columns:
        raise invalid(
            option,
            "no_column",
            N_("no column {name}"),
            N_("{map}"),
            name=repr(name),
            map=", ".join(map(str, df.columns)),
        )
    return df[name]


def _survival_columns(
    df: pd.DataFrame, time: str, event: str, event_value: str | None, extra: list[tuple[str, str]]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], int]:
    """Time, 0/1 event and extra columns with rows dropped where any is missing."""
    import pandas as pd

    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid

    cols = {"--time": time, "--event": event, **{opt: c for opt, c in extra}}
    for opt, c in cols.items():
        _column(df, c, opt)
    keep = df[list(cols.values())].notna().all(axis=1)
    d = df[keep]
    t = pd.to_numeric(d[time], errors="coerce")
    if t.isna().any():
        raise invalid(
            "--time",
            "non_numeric_value",
            N_("non-numeric value {iloc}"),
            N_("numbers"),
            iloc=repr(d[time][t.isna()].iloc[0]),
        )
    raw = d[event]
    if event_value is not None:
        e = (raw.astype(str) == str(event_value)) | (
            pd.to_numeric(raw, errors="coerce") == pd.to_numeric(event_value, errors="coerce")
        )
        ev = e.to_numpy(float)
    else:
        num = pd.to_numeric(raw, errors="coerce")
        if num.isna().any() or not num.isin([0, 1]).all():
            raise invalid(
                "--event",
                "column_not_0_1",
                N_("column {event} is not 0/1"),
                N_("0/1, or give --event-value for the event code"),
                event=repr(event),
            )
        ev = num.to_numpy(float)
    return t.to_numpy(float), ev, {opt: d[c].to_numpy() for opt, c in extra}, int((~keep).sum())


def _floats(text: str | None, option: str) -> list[float]:
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid

    if not text:
        return []
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise invalid(
            option,
            "not_list_numbers",
            N_("not a list of numbers: {text}"),
            N_("e.g. 1,3,5"),
            text=repr(text),
        ) from None


def _strata(text: str | None) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()] if text else []


# ---------------------------------------------------------------------------------------------
# stats commands


@app.command("sample-size")
@handle_errors
def sample_size_cmd(
    p0: float = typer.Option(0.65, help="Control-arm proportion."),
    p1: float = typer.Option(0.85, help="Experimental-arm proportion."),
    alpha: float = typer.Option(0.05, help="Two-sided significance level."),
    power: float = typer.Option(0.80, help="Target power."),
    method: str = typer.Option("all", help="normal (protocol), fleiss, exact, or all."),
    screen_failure: float = typer.Option(0.17, help="Share of inclusions never randomized."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Two-proportion sample size, 1:1 (protocol: 65% vs 85% → 73 per arm, 146, 176)."""
    from reluth.analysis.sample_size import METHODS, sample_size

    methods = list(METHODS) if method == "all" else [method]
    results = [sample_size(p0, p1, alpha, power, m, screen_failure) for m in methods]
    if as_json:
        print_json(results if method == "all" else results[0])
        return
    from reluth.cli_support import table
    from reluth.i18n import N_, format_number, gettext

    title = gettext(
        "Sample size: {p0} vs {p1}, alpha {alpha} two-sided, power {power}"
    ).format(
        p0=format_number(p0), p1=format_number(p1), alpha=format_number(alpha),
        power=format_number(power),
    )  # fmt: skip
    shown = table(
        N_("method"), N_("n per arm (unrounded)"), N_("n per arm"), N_("randomized"),
        N_("inclusions"), N_("power"),
        title=title,
    )  # fmt: skip
    for r in results:
        shown.add_row(
            r.method,
            format_number(r.n_per_arm_exact, 2),
            format_number(r.n_per_arm),
            format_number(r.n_total),
            format_number(r.n_inclusions),
            format_number(r.achieved_power, 4),
        )
    console.print(shown)


TIME_OPT = typer.Option(..., "--time", help="Time column.")
EVENT_OPT = typer.Option(..., "--event", help="Event column (1 = event, 0 = censored).")
EVENT_VALUE_OPT = typer.Option(None, "--event-value", help="Code meaning event (others censored).")


@app.command("km")
@handle_errors
def km_cmd(
    data: Path = typer.Argument(..., help="CSV file."),
    time: str = TIME_OPT,
    event: str = EVENT_OPT,
    event_value: str | None = EVENT_VALUE_OPT,
    group: str | None = typer.Option(None, "--group", help="Group column."),
    conf_type: str = typer.Option("log-log", "--conf-type", help="log-log (SAS), log (R), plain."),
    at: str | None = typer.Option(None, "--at", help="Landmark times, e.g. 1,3,5."),
    convention: str = typer.Option("sas", "--convention", help="sas or r (quantiles, landmarks)."),
    alpha: float = typer.Option(0.05, "--alpha"),
) -> None:
    """Kaplan–Meier per group: n, events, median and quartiles with CIs, landmark S(t)."""
    from reluth.analysis.survival import kaplan_meier, km_summary

    df = _read_csv(data)
    extra = [("--group", group)] if group else []
    t, e, cols, dropped = _survival_columns(df, time, event, event_value, extra)
    times = _floats(at, "--at")
    out: dict[str, Any] = {
        "conf_type": conf_type,
        "convention": convention,
        "rows_dropped_missing": dropped,
    }
    if group:
        g = cols["--group"].astype(str)
        out["groups"] = {
            lv: km_summary(
                kaplan_meier(t[g == lv], e[g == lv], conf_type, alpha, convention), times
            )
            for lv in sorted(set(g.tolist()))
        }
    else:
        out["groups"] = {"all": km_summary(kaplan_meier(t, e, conf_type, alpha, convention), times)}
    print_json(out)


@app.command("logrank")
@handle_errors
def logrank_cmd(
    data: Path = typer.Argument(..., help="CSV file."),
    time: str = TIME_OPT,
    event: str = EVENT_OPT,
    event_value: str | None = EVENT_VALUE_OPT,
    group: str = typer.Option(..., "--group", help="Group column."),
    strata: str | None = typer.Option(None, "--strata", help="Stratum columns, comma-separated."),
) -> None:
    """(Stratified) log-rank test: chisq, df, p."""
    from reluth.analysis.survival import logrank

    df = _read_csv(data)
    s_cols = _strata(strata)
    extra = [("--group", group)] + [(f"--strata {c}", c) for c in s_cols]
    t, e, cols, dropped = _survival_columns(df, time, event, event_value, extra)
    st = _combine([cols[f"--strata {c}"] for c in s_cols])
    res = logrank(t, e, cols["--group"], st)
    print_json(
        {
            "chisq": res.chisq,
            "df": res.df,
            "p": res.p,
            "strata": s_cols,
            "rows_dropped_missing": dropped,
        }
    )


def _combine(columns: list[np.ndarray]) -> np.ndarray | None:
    import pandas as pd

    if not columns:
        return None
    frame = pd.DataFrame({i: c for i, c in enumerate(columns)})
    return frame.groupby(list(frame.columns), sort=True).ngroup().to_numpy()


@app.command("cox")
@handle_errors
def cox_cmd(
    data: Path = typer.Argument(..., help="CSV file."),
    time: str = TIME_OPT,
    event: str = EVENT_OPT,
    event_value: str | None = EVENT_VALUE_OPT,
    group: str = typer.Option(..., "--group", help="Group column (dummy-coded vs --ref)."),
    ref: str | None = typer.Option(None, "--ref", help="Reference level (default: first sorted)."),
    strata: str | None = typer.Option(None, "--strata", help="Stratum columns, comma-separated."),
    ties: str = typer.Option("breslow", "--ties", help="breslow (SAS, STATA) or efron (R)."),
    alpha: float = typer.Option(0.05, "--alpha"),
) -> None:
    """Cox proportional hazards (stratified): hr, hr_ci, p (Wald)."""
    from reluth.analysis.survival import cox_ph, cox_summary, group_design

    df = _read_csv(data)
    s_cols = _strata(strata)
    extra = [("--group", group)] + [(f"--strata {c}", c) for c in s_cols]
    t, e, cols, dropped = _survival_columns(df, time, event, event_value, extra)
    x, names, reference = group_design(_as_labels(cols["--group"]), ref)
    res = cox_ph(t, e, x, names, _combine([cols[f"--strata {c}"] for c in s_cols]), ties, alpha)
    out = cox_summary(res)
    out.update(reference=reference, strata=s_cols, rows_dropped_missing=dropped)
    print_json(out)


def _as_labels(values: np.ndarray) -> np.ndarray:
    """Group labels as text; whole floats (1.0) print as integers (1)."""
    import numpy as np

    return np.array(
        [f"{v:g}" if isinstance(v, float) else str(v) for v in values.tolist()], dtype=object
    )


_TRUE = {"1", "1.0", "y", "yes", "true"}
_FALSE = {"0", "0.0", "n", "no", "false"}


@app.command("dcr")
@handle_errors
def dcr_cmd(
    data: Path = typer.Argument(..., help="CSV file, one row per patient."),
    success: str = typer.Option(..., "--success", help="Column: 1/Y/true = disease control."),
    group: str = typer.Option(..., "--group", help="Group column."),
    ref: str | None = typer.Option(None, "--ref", help="Reference (control) group."),
    method: str = typer.Option("newcombe", "--diff-method", help="newcombe, wald, score."),
    alpha: float = typer.Option(0.05, "--alpha"),
) -> None:
    """Rates with Clopper–Pearson CIs; difference (other − ref) with a Newcombe CI; chi-square
    or Fisher's exact test when an expected count is below 5. Missing success = failure."""
    import pandas as pd

    from reluth.analysis.binomial import compare_rates
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid

    df = _read_csv(data)
    s = _column(df, success, "--success")
    g = _as_labels(_column(df, group, "--group").to_numpy())
    text = s.map(lambda v: "" if pd.isna(v) else str(v).strip().lower())
    bad = ~text.isin(_TRUE | _FALSE | {""})
    if bad.any():
        raise invalid(
            "--success",
            "value",
            N_("value {iloc}"),
            N_("1/0, Y/N, true/false; empty = failure"),
            iloc=repr(s[bad].iloc[0]),
        )
    ok = text.isin(_TRUE).to_numpy()
    levels = sorted(set(g.tolist()))
    counts = {lv: (int(ok[g == lv].sum()), int((g == lv).sum())) for lv in levels}
    order = levels
    if ref is not None:
        if ref not in levels:
            raise invalid(
                "--ref",
                "not_group",
                N_("{ref} is not a group"),
                N_("{levels}"),
                ref=repr(ref),
                levels=", ".join(levels),
            )
        order = [ref, *[lv for lv in levels if lv != ref]]
    rc = compare_rates(counts, alpha=alpha, diff_method=method, order=order)
    print_json(
        {
            "groups": {
                gr.group: {"n": gr.n, "successes": gr.successes, "rate": gr.rate, "ci": list(gr.ci)}
                for gr in rc.groups
            },
            "difference": rc.difference,
            "difference_ci": list(rc.difference_ci) if rc.difference_ci else None,
            "difference_method": rc.difference_method,
            "reference": order[0],
            "test": rc.test,
            "statistic": rc.statistic,
            "p": rc.p,
            "verdict": rc.verdict,
        }
    )


# ---------------------------------------------------------------------------------------------
# analyze


@handle_errors
def analyze(
    data: Path | None = typer.Option(None, "--data", help="Directory of source CSV files."),
    db: str | None = typer.Option(
        None, "--db", help="Trial database URL (read only; needs a statistician's login)."
    ),
    out: Path = typer.Option(Path("analysis-report"), "--out", help="Output directory."),
    cutoff: str | None = typer.Option(None, "--cutoff", help="Data cut-off date YYYY-MM-DD."),
    protocol_version: str | None = typer.Option(
        None, "--protocol-version", help="Default: the version of the shipped protocol file."
    ),
    conf_type: str = typer.Option("log-log", "--conf-type", help="log-log (SAS), log, plain."),
    ties: str = typer.Option("breslow", "--ties", help="breslow (SAS) or efron (R)."),
) -> None:
    """Build the analysis datasets, run every planned analysis and write report.html, figures
    (PNG + SVG), datasets (CSV, XPT, DTA, variables.json) and results.json into --out."""
    from reluth.analysis import datasets
    from reluth.analysis.report import ReportOptions, build_report
    from reluth.analysis.survival import CONF_TYPES, TIES
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid

    if (data is None) == (db is None):
        raise invalid(
            "--data/--db",
            "give_exactly_one_input",
            N_("give exactly one input"),
            N_("--data DIR or --db URL"),
        )
    if conf_type not in CONF_TYPES:
        raise invalid(
            "--conf-type",
            "unknown_3",
            N_("unknown {conf_type}"),
            N_("{conf_types}"),
            conf_type=repr(conf_type),
            conf_types=", ".join(CONF_TYPES),
        )
    if ties not in TIES:
        raise invalid(
            "--ties",
            "unknown_5",
            N_("unknown {ties}"),
            N_("{ties2}"),
            ties=repr(ties),
            ties2=", ".join(TIES),
        )
    cut = parse_date(cutoff, "--cutoff") if cutoff else None
    if data is not None:
        ds = datasets.from_csv_dir(data, cut, protocol=command_trial().protocol)
    else:
        from reluth.analysis import service
        from reluth.cli_support import cli_context

        with cli_context(url=db) as ctx:  # the datasets hold the arm: unblinded roles only
            ds = service.analysis_datasets(ctx, cut)
    options = ReportOptions(conf_type=conf_type, ties=ties)
    if protocol_version:
        options = ReportOptions(protocol_version, conf_type, ties)
    path = build_report(ds, out, options)
    from reluth.i18n import format_day, gettext

    console.print(
        gettext("report: {path}  (cut-off {cutoff}, input sha256 {sha}…)").format(
            path=path, cutoff=format_day(ds.cutoff), sha=ds.input_hash[:12]
        )
    )
