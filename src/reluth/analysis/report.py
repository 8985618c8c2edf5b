"""The trial report: one self-contained HTML file (figures embedded as base64 PNG), the figures
as PNG and SVG, the analysis datasets exported, and a JSON of the key results."""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import Progress

from reluth import __version__
from reluth.analysis import figures, tables
from reluth.analysis.binomial import RateComparison
from reluth.analysis.datasets import AnalysisDatasets
from reluth.analysis.exports import export_all
from reluth.analysis.survival import cox_summary, km_summary
from reluth.errors import PreconditionFailed
from reluth.i18n import N_
from reluth.i18n.reasons import refusal
from reluth.values import to_jsonable

TTE_PARAMS = ("PFS", "RPFS", "OS")


@dataclass(frozen=True)
class ReportOptions:
    #: None: the version of the protocol the datasets were derived with
    protocol_version: str | None = None
    conf_type: str = "log-log"
    ties: str = "breslow"
    landmarks_months: tuple[float, ...] = (6.0, 12.0, 24.0)
    generated_at: dt.datetime | None = None  # pass for reproducible output; default now (UTC)


def _fmt(x: float | None, nd: int = 1) -> str:
    return "NE" if x is None else f"{x:.{nd}f}"


def _rate_html(rc: RateComparison, title: str) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(g.group)}</td><td>{g.n}</td><td>{g.successes}</td>"
        f"<td>{100 * g.rate:.1f}%</td><td>{100 * g.ci[0]:.1f}–{100 * g.ci[1]:.1f}%</td></tr>"
        for g in rc.groups
    )
    tail = f"<p class='verdict'>{html.escape(rc.verdict)}</p>" if rc.verdict else ""
    return (
        f"<h3>{html.escape(title)}</h3><table><tr><th>Arm</th><th>n</th><th>Disease control</th>"
        f"<th>Rate</th><th>95% CI (Clopper–Pearson)</th></tr>{rows}</table>{tail}"
    )


def _tte_html(t: tables.TimeToEvent, landmarks: tuple[float, ...], arms: tuple[str, str]) -> str:
    head = "".join(f"<th>S({m:g} mo) [95% CI]</th>" for m in landmarks)
    rows = ""
    for arm, k in t.km.items():
        med = k.median
        lms = "".join(
            f"<td>{_fmt(lm.survival, 3)} [{_fmt(lm.ci[0], 3)}, {_fmt(lm.ci[1], 3)}]</td>"
            for lm in (k.survival_at(m) for m in landmarks)
        )
        rows += (
            f"<tr><td>{html.escape(arm)}</td><td>{k.n}</td><td>{k.events}</td>"
            f"<td>{_fmt(med.estimate)} ({_fmt(med.ci[0])}, {_fmt(med.ci[1])})</td>{lms}</tr>"
        )
    tests = ""
    if t.logrank is not None:
        strata = ", ".join(t.strata) if t.strata else "none recorded"
        if math.isnan(t.logrank.chisq):
            result = "not estimable (no event where the arms can be compared in any stratum). "
        else:
            result = (
                f"chi-square {t.logrank.chisq:.3f} on {t.logrank.df} df, p = {t.logrank.p:.4g}. "
            )
        tests = f"<p>Log-rank test stratified by {html.escape(strata)}: {result}"
        if t.cox is not None:
            c = t.cox.terms[0]
            tests += (
                f"Cox HR ({arms[0]} vs {arms[1]}, {t.cox.ties} ties, same strata): {c.hr:.3f} "
                f"(95% CI {c.hr_ci[0]:.3f}–{c.hr_ci[1]:.3f}), Wald p = {c.p:.4g}.</p>"
            )
        else:
            tests += "Cox HR not estimable (monotone likelihood in these strata).</p>"
    tmax = max(float(k.time.max()) for k in t.km.values())
    ticks = [6.0 * i for i in range(int(tmax // 6) + 1)]
    risk = "".join(
        f"<tr><td>{html.escape(arm)}</td>"
        + "".join(f"<td>{n}</td>" for n in k.number_at_risk(ticks))
        + "</tr>"
        for arm, k in t.km.items()
    )
    risk_head = "".join(f"<th>{m:g}</th>" for m in ticks)
    return (
        f"<h3>{html.escape(t.label)}</h3><table><tr><th>Arm</th><th>n</th><th>Events</th>"
        f"<th>Median, months (95% CI)</th>{head}</tr>{rows}</table>{tests}"
        f"<table><tr><th>Number at risk (month)</th>{risk_head}</tr>{risk}</table>"
    )


def _img(b64: str, alt: str) -> str:
    return f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'/></figure>"


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, na_rep="", border=0, float_format=lambda v: f"{v:.2f}")


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:auto;padding:1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}
td,th{border:1px solid #bbb;padding:3px 6px}
th{background:#eef}img{max-width:100%}.verdict{font-weight:bold}.meta td{border:none}"""


def build_report(ds: AnalysisDatasets, out_dir: Path, options: ReportOptions | None = None) -> Path:
    """Run every planned analysis on ``ds`` and write ``out_dir/report.html`` (self-contained),
    ``out_dir/figures/*.png|svg``, ``out_dir/datasets/*`` and ``out_dir/results.json``."""
    opt = options or ReportOptions()
    design = ds.design
    version = opt.protocol_version or f"{design.protocol_version} (reluth protocol file)"
    if not (ds.adsl["ITTFL"] == "Y").any():
        raise refusal(
            PreconditionFailed,
            "no_patient_randomized_cut_off",
            N_("no patient randomized by the cut-off {isoformat}: nothing to analyse"),
            isoformat=ds.cutoff.isoformat(),
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / "figures"
    when = opt.generated_at or dt.datetime.now(dt.UTC)
    parts: list[str] = []
    results: dict[str, Any] = {}
    with Progress(transient=True) as progress:
        task = progress.add_task("analysis", total=9)

        def step() -> None:
            progress.advance(task)

        parts.append("<h2>1. Participant flow</h2>")
        parts.append(
            _img(figures.save(figures.consort(design, ds.adsl), fig_dir, "consort"), "CONSORT")
        )
        step()
        parts.append("<h2>2. Baseline characteristics (ITT)</h2>")
        parts.append(_table(tables.baseline_table(design, ds.adsl, "ITT")))
        step()
        parts.append("<h2>3. Primary endpoint: disease control at 6 months</h2>")
        for pop in ("ITT", "PP"):
            rc = tables.primary_endpoint(design, ds.adsl, pop)
            results[f"dcr6_{pop.lower()}"] = rc
            parts.append(_rate_html(rc, f"{pop} population"))
        step()
        parts.append("<h2>4. Time-to-event endpoints</h2>")
        parts.append(
            f"<p>Conventions: KM CIs {opt.conf_type} transform with Greenwood variance; "
            "medians and "
            "quartiles by the SAS rule (smallest time with S(t) &lt; 0.5; NE if none) with "
            "Brookmeyer–Crowley CIs; landmarks past the last censored time not estimable; Cox "
            f"{opt.ties} ties.</p>"
        )
        for code in TTE_PARAMS:
            if not (ds.adtte["PARAMCD"] == code).any():
                continue
            t = tables.time_to_event(design, ds.adtte, code, opt.conf_type, opt.ties)
            results[code.lower()] = {
                "km": {a: km_summary(k, opt.landmarks_months) for a, k in t.km.items()},
                "logrank": t.logrank,
                "cox": cox_summary(t.cox) if t.cox else None,
                "strata": t.strata,
            }
            parts.append(_tte_html(t, opt.landmarks_months, design.arms))
            parts.append(
                _img(
                    figures.save(
                        figures.km_plot(design, t.km, t.label), fig_dir, f"km_{code.lower()}"
                    ),
                    code,
                )
            )
        step()
        if (ds.adtte["PARAMCD"] == "RPFS").any():
            rows = tables.forest_rows(design, ds.adtte, "RPFS", opt.ties)
            parts.append("<h3>Hazard ratio by stratification factor (rPFS)</h3>")
            parts.append(
                _img(
                    figures.save(
                        figures.forest(design, rows, "rPFS: HR by stratification factor"),
                        fig_dir,
                        "forest_rpfs",
                    ),
                    "forest",
                )
            )
        step()
        parts.append("<h2>5. Tumour response</h2>")
        parts.append(
            _img(
                figures.save(figures.waterfall(design, ds.adrs), fig_dir, "waterfall"), "waterfall"
            )
        )
        parts.append(
            _img(figures.save(figures.spider(design, ds.adrs), fig_dir, "spider"), "spider")
        )
        parts.append(
            _img(
                figures.save(
                    figures.swimmer(design, ds.adsl, ds.adtte, ds.adrs), fig_dir, "swimmer"
                ),
                "swimmer",
            )
        )
        step()
        parts.append("<h2>6. Safety (safety population, onset after randomization)</h2>")
        parts.append("<p>Patients by worst CTCAE v5.0 grade per term.</p>")
        parts.append(_table(tables.safety_table(design, ds.adsl, ds.adae)))
        step()
        parts.append("<h2>7. Quality of life</h2>")
        qtab = tables.qol_table(design, ds.adqs)
        if len(qtab):
            parts.append(_img(figures.save(figures.qol_plot(design, qtab), fig_dir, "qol"), "QoL"))
            parts.append(
                _table(
                    qtab.rename(
                        columns={
                            "PARAMCD": "scale",
                            "ARM": "arm",
                            "mean": "mean score",
                            "sd": "SD",
                            "chg": "mean change from baseline",
                        }
                    )
                )
            )
            for code in sorted(c for c in ds.adtte["PARAMCD"].unique() if str(c).startswith("TTD")):
                t = tables.time_to_event(design, ds.adtte, code, opt.conf_type, opt.ties)
                results[code.lower()] = {"cox": cox_summary(t.cox) if t.cox else None}
                parts.append(_tte_html(t, (), design.arms))
        step()
        export_all(ds, out_dir / "datasets")
        step()
    meta = (
        "<table class='meta'>"
        f"<tr><td>Data cut-off</td><td>{ds.cutoff.isoformat()}</td></tr>"
        f"<tr><td>Protocol version</td><td>{html.escape(version)}</td></tr>"
        f"<tr><td>Software</td><td>reluth {__version__} "
        f"(Python {platform.python_version()})</td></tr>"
        f"<tr><td>Input data SHA-256</td><td><code>{ds.input_hash}</code></td></tr>"
        f"<tr><td>Stored records left out</td><td>{len(ds.issues)} "
        "(listed in datasets/data_issues.csv)</td></tr>"
        f"<tr><td>Generated</td><td>{when.isoformat(timespec='seconds')}</td></tr></table>"
    )
    doc = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>ReLUTH analysis report — cut-off {ds.cutoff.isoformat()}</title>"
        f"<style>{CSS}</style></head><body><h1>ReLUTH statistical analysis report</h1>"
        f"{meta}{''.join(parts)}</body></html>"
    )
    path = out_dir / "report.html"
    path.write_text(doc, encoding="utf-8")
    results["meta"] = {
        "cutoff": ds.cutoff,
        "protocol_version": version,
        "software_version": __version__,
        "input_sha256": ds.input_hash,
        "records_left_out": len(ds.issues),
    }
    (out_dir / "results.json").write_text(
        json.dumps(to_jsonable(results), indent=2), encoding="utf-8"
    )
    return path
