"""``reluth demo``: the main job. A seeded synthetic ReLUTH trial run end to end through the real
services (eligibility, randomization, eCRF records, central review, CTCAE, QoL), the ancillary
dosimetry study, and the full analysis plan with its report and exports."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from sqlalchemy import func, select

from reluth.cli_support import console, handle_errors, progress_bar
from reluth.config import get_settings
from reluth.errors import Conflict, PermissionDenied

DEFAULT_OUT = Path("demo-output")


def _fresh_sqlite(out: Path) -> str:
    path = out / "reluth-demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def _create_accounts(session: Any, accounts: list[Any]) -> None:
    from reluth.auth.service import create_user

    for a in accounts:
        create_user(session, a.username, a.role.value, a.password, a.centres)


def run_demo(out: Path, seed: int, db: str | None, n_included: int | None = None) -> dict[str, Any]:
    """Build the synthetic trial database, run the dosimetry study and the analysis plan."""
    from reluth.analysis.datasets import from_database
    from reluth.analysis.report import build_report
    from reluth.db import audit
    from reluth.db.engine import make_engine
    from reluth.db.migrate import upgrade
    from reluth.patients.models import Patient
    from reluth.simulation.cohort import CohortConfig, generate_cohort
    from reluth.simulation.dosimetry_study import run_study, store_results
    from reluth.simulation.replay import Replayer, demo_accounts, events

    if get_settings().production:
        raise PermissionDenied(
            "the demo creates accounts with published passwords: refused when RELUTH_ENV=production"
        )
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    url = db or _fresh_sqlite(out)
    engine = make_engine(url)
    upgrade(engine)
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(Patient.__table__)).scalar_one():
            raise Conflict(
                f"{url} already holds patients; the demo only writes into an empty database"
            )
    config = (
        CohortConfig(seed=seed)
        if n_included is None
        else CohortConfig(seed=seed, n_included=n_included)
    )
    cohort = generate_cohort(config)
    replayer = Replayer(engine, cohort, seed)
    timeline = events(cohort)
    with progress_bar(transient=False) as progress:
        task = progress.add_task("Set-up: centres, accounts, allocation list", total=1)
        replayer.setup(_create_accounts)
        progress.advance(task)
        task = progress.add_task("Trial: screening, randomization, follow-up", total=len(timeline))
        for _day, _order, kind, patient in timeline:
            if kind == "screen":
                replayer.screen_and_include(patient)
            else:
                arm = replayer.randomize(patient)
                if arm is not None:
                    replayer.follow(patient, arm)
            progress.advance(task)
    dosimetry_patients = [p for p in cohort.patients if p.dosimetry]
    console.print("Dosimetry study ...")
    dosimetry = run_study(dosimetry_patients, replayer.stats.allocated, out / "dosimetry")
    stored_at = dt.datetime.combine(cohort.data_cutoff, dt.time(12, 0), tzinfo=dt.UTC)
    dosimetry |= store_results(engine, dosimetry.pop("per_cycle"), stored_at)
    console.print("Audit trail verification ...")
    with engine.connect() as conn:
        verified = audit.verify(conn)
    console.print("Analysis plan ...")
    ds = from_database(url, cohort.data_cutoff)
    report = build_report(ds, out / "report")
    results = json.loads((out / "report" / "results.json").read_text(encoding="utf-8"))
    engine.dispose()
    return {
        "url": url,
        "stats": replayer.stats,
        "audit": verified,
        "dosimetry": dosimetry,
        "report": report,
        "results": results,
        "cutoff": cohort.data_cutoff,
        "accounts": demo_accounts(cohort),
        "seconds": time.perf_counter() - started,
    }


def _summary(run: dict[str, Any], out: Path) -> None:
    stats = run["stats"]
    console.print(
        f"\n[bold]Synthetic ReLUTH trial[/] (cut-off {run['cutoff']}): {stats.screened} screened, "
        f"{stats.included} included, {stats.randomized} randomized "
        f"({', '.join(f'{k} {v}' for k, v in sorted(stats.arms.items()))}); "
        f"screen failures at the pre-randomization gate: {sum(stats.gate_failures.values())}"
    )
    audit = run["audit"]
    console.print(
        f"Audit trail: {audit.rows_checked} rows, hash chain "
        + ("[green]intact[/]" if audit.ok else f"[red]broken at row {audit.first_broken_seq}[/]")
    )
    results = run["results"]
    t = Table(
        "population",
        "arm",
        "n",
        "controlled",
        "DCR (95% CI, Clopper-Pearson)",
        title="Primary endpoint: disease control at 6 months",
    )
    for key, label in (("dcr6_itt", "ITT"), ("dcr6_pp", "per protocol")):
        res = results.get(key) or {}
        for g in res.get("groups", []):
            lo, hi = g["ci"]
            t.add_row(
                label,
                g["group"],
                str(g["n"]),
                str(g["successes"]),
                f"{100 * g['rate']:.1f}% ({100 * lo:.1f}-{100 * hi:.1f})",
            )
    console.print(t)
    for key, label in (("dcr6_itt", "ITT"), ("dcr6_pp", "per protocol")):
        if results.get(key, {}).get("verdict"):
            console.print(f"  {label}: {results[key]['verdict']}")
    for key, label in (("pfs", "PFS"), ("os", "OS")):
        cox = (results.get(key) or {}).get("cox")
        if cox:
            lo, hi = cox["hr_ci"]
            console.print(
                f"{label} hazard ratio (stratified Cox, Breslow): {cox['hr']:.2f} (95% CI {lo:.2f}-{hi:.2f}), p = {cox['p']:.3g}"
            )
    dosi = run["dosimetry"]
    console.print(
        f"Dosimetry: {dosi['patients']} patients, {dosi['cycles']} cycles; median kidney dose per cycle "
        f"{dosi['median_kidney_dose_gy_per_cycle']:.2f} Gy, red marrow {dosi['median_marrow_dose_gy_per_cycle']:.3f} Gy; "
        f"{dosi['cycles_stored']} cycles stored in the database "
        "(web: /patients/<code>/dosimetry, e.g. as physicist)"
    )
    console.print(f"\n[bold]Where to look[/] (finished in {run['seconds']:.0f} s)")
    console.print(f"  report:     {run['report']}")
    console.print(
        f"  datasets:   {out / 'report' / 'datasets'} (CSV, SAS .xpt, Stata .dta, variables.json)"
    )
    console.print(f"  dosimetry:  {out / 'dosimetry'}")
    console.print(f"  database:   {run['url']}")
    console.print(
        f"  web app:    reluth serve --db {run['url']}   then open http://127.0.0.1:8000/"
    )
    t = Table("username", "role", "password", title="Demo accounts (development only)")
    shown = set()
    for a in run["accounts"]:
        if a.role in shown:
            continue
        shown.add(a.role)
        t.add_row(a.username, a.role.value, a.password)
    console.print(t)
    console.print(
        "  (one investigator and one research nurse per centre: investigator-c01 ... nurse-c22;"
        " password reluth-demo-<username>)"
    )


@handle_errors
def demo(
    out: Path = typer.Option(
        DEFAULT_OUT, "--out", help="Output folder (database, report, exports)."
    ),
    seed: int = typer.Option(2021, "--seed", help="Seed of the synthetic cohort."),
    db: str | None = typer.Option(
        None, "--db", help="An empty database URL (default: SQLite in --out)."
    ),
    n_included: int | None = typer.Option(
        None, "--n-included", help="Patients to include (default 176)."
    ),
) -> None:
    """Run the synthetic ReLUTH trial end to end and write the report."""
    run = run_demo(out, seed, db, n_included)
    _summary(run, out)


def register(root: typer.Typer) -> None:
    root.command("demo")(demo)
