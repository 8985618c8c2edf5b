"""``reluth demo``: the main job. A seeded synthetic ReLUTH trial run end to end through the real
services (eligibility, randomization, eCRF records, central review, CTCAE, QoL), the ancillary
dosimetry study, and the full analysis plan with its report and exports."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from reluth.cli_support import console, handle_errors, progress_bar
from reluth.config import get_settings
from reluth.errors import Conflict, PermissionDenied, PreconditionFailed

DEFAULT_OUT = Path("demo-output")
#: Where the sample casebook goes, and who prints it (a demo account of the data manager).
CASEBOOKS = "casebooks"
DATA_MANAGER = "datamanager"


def _fresh_sqlite(out: Path) -> str:
    path = out / "reluth-demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


#: What the demo keeps outside its database, in its output folder (a real trial keeps them apart
#: from the database server and its backups: see docs/store.md).
AUDIT_KEY, ALLOCATION_KEY, SIGNING_KEY, CHECKPOINTS = (
    "audit.key",
    "allocation.key",
    "checkpoint-signing.key",
    "checkpoints",
)


def _fresh_keys(out: Path) -> Any:
    """New keys for the new demo database and an empty checkpoint directory: the demo's
    settings (the allocation key of its randomization service, its checkpoint signer)."""
    from dataclasses import replace

    from reluth.db import checkpoint
    from reluth.keyfiles import create_secret_file

    for name in (AUDIT_KEY, ALLOCATION_KEY, SIGNING_KEY, SIGNING_KEY.replace(".key", ".pub")):
        (out / name).unlink(missing_ok=True)
    for old in (out / CHECKPOINTS).glob("checkpoint-*.json"):
        old.chmod(0o600)
        old.unlink()
    (out / CHECKPOINTS / checkpoint.PUBLIC_KEY_NAME).unlink(missing_ok=True)
    create_secret_file(out / AUDIT_KEY)
    create_secret_file(out / ALLOCATION_KEY)
    checkpoint.create_signing_key(out / SIGNING_KEY)
    return replace(
        get_settings(),
        audit_key=None,
        audit_key_file=out / AUDIT_KEY,
        allocation_key=None,
        allocation_key_file=out / ALLOCATION_KEY,
        checkpoint_dir=out / CHECKPOINTS,
        checkpoint_key_file=out / SIGNING_KEY,
        checkpoint_public_key=out / SIGNING_KEY.replace(".key", ".pub"),
    )


def run_demo(out: Path, seed: int, db: str | None, n_included: int | None = None) -> dict[str, Any]:
    """Build the synthetic trial database, run the dosimetry study and the analysis plan."""
    from sqlalchemy import func, select

    from reluth import sealing
    from reluth.analysis import service as analysis
    from reluth.analysis.report import build_report
    from reluth.core import integrity
    from reluth.core.context import reading
    from reluth.core.trial import Trial
    from reluth.db import auditkey
    from reluth.db.engine import make_engine
    from reluth.db.migrate import upgrade
    from reluth.i18n import N_
    from reluth.i18n.reasons import refusal
    from reluth.patients.models import Patient
    from reluth.protocol.definition import load_protocol
    from reluth.simulation.cohort import CohortConfig, generate_cohort
    from reluth.simulation.dosimetry_study import run_study, store_results
    from reluth.simulation.replay import (
        PHYSICIST,
        STATISTICIAN,
        Replayer,
        demo_accounts,
        events,
        play,
    )

    if get_settings().production:
        raise refusal(
            PermissionDenied,
            "demo_in_production",
            N_(
                "the demo creates accounts with published passwords: refused when "
                "RELUTH_ENV=production"
            ),
        )
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    url = db or _fresh_sqlite(out)
    engine = make_engine(url)
    settings = _fresh_keys(out)
    auditkey.bind(engine, auditkey.read_key_file(settings.audit_key_path))
    upgrade(engine)
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(Patient.__table__)).scalar_one():
            raise refusal(
                Conflict,
                "database_not_empty",
                N_("{url} already holds patients; the demo only writes into an empty database"),
                url=str(url),
            )
    trial = Trial(load_protocol(settings.protocol_file), settings=settings)
    cohort = generate_cohort(CohortConfig(trial.protocol, seed=seed, n_included=n_included))
    replayer = Replayer(engine, cohort, seed, trial)
    timeline = events(cohort)
    from reluth.i18n import gettext

    with progress_bar(transient=False) as progress:
        task = progress.add_task(gettext("Set-up: centres, accounts, allocation list"), total=1)
        replayer.setup()
        progress.advance(task)
        task = progress.add_task(
            gettext("Trial: screening, randomization, follow-up"), total=len(timeline)
        )
        for _day, _order, kind, patient in timeline:
            play(replayer, kind, patient)
            progress.advance(task)
    dosimetry_patients = [p for p in cohort.patients if p.dosimetry]
    console.print(gettext("Dosimetry study ..."))
    dosimetry = run_study(dosimetry_patients, replayer.stats.allocated, out / "dosimetry")
    dosimetry |= store_results(
        engine, dosimetry.pop("per_cycle"), replayer.actor(PHYSICIST), replayer.trial
    )
    console.print(gettext("Sample casebook ..."))
    casebook = _sample_casebook(engine, replayer, dosimetry_patients, out)
    console.print(gettext("Audit trail: final checkpoint and verification ..."))
    integrity.write_checkpoint(engine, settings, "demo: final", replayer.trial.now())
    with reading(engine, replayer.actor(STATISTICIAN), replayer.trial) as ctx:
        verified = integrity.verify_store(
            ctx,
            auditkey.key_for(engine),
            settings.checkpoint_path,
            settings.checkpoint_public_key,
            True,
            sealing.configured_key(settings),
        )
    console.print(gettext("Analysis plan ..."))
    with reading(engine, replayer.actor(STATISTICIAN), replayer.trial) as ctx:
        ds = analysis.analysis_datasets(ctx, cohort.data_cutoff)
    report = build_report(ds, out / "report")
    results = json.loads((out / "report" / "results.json").read_text(encoding="utf-8"))
    engine.dispose()
    return {
        "url": url,
        "stats": replayer.stats,
        "audit": verified,
        "settings": settings,
        "dosimetry": dosimetry,
        "report": report,
        "results": results,
        "cutoff": cohort.data_cutoff,
        "accounts": demo_accounts(cohort),
        "example_patient": min(replayer.stats.allocated, default=None),
        "casebook": casebook,
        "seconds": time.perf_counter() - started,
    }


def _sample_casebook(
    engine: Any, replayer: Any, dosimetry_patients: list[Any], out: Path
) -> Path | None:
    """One patient's casebook PDF (``casebooks/<patient>-casebook.pdf``), printed by the data
    manager through the casebook service like any download (an audit event): a randomized
    patient of the dosimetry study, whose casebook has every kind of record."""
    from reluth.core.context import reading, writing
    from reluth.records import casebook

    allocated = replayer.stats.allocated
    candidates = sorted(p.patient_id for p in dosimetry_patients if p.patient_id in allocated)
    code = (candidates or sorted(allocated) or [None])[0]
    if code is None:
        return None
    dm = replayer.actor(DATA_MANAGER)
    try:
        with reading(engine, dm, replayer.trial) as ctx:
            file = casebook.casebook_pdf(ctx, code)
    except PreconditionFailed as exc:  # no Pango on this machine: the rest of the demo stands
        from reluth.i18n import gettext
        from reluth.i18n.messages import describe

        console.print(
            gettext("[yellow]no sample casebook:[/] {why}").format(why=describe(exc)),
            soft_wrap=True,
        )
        return None
    with writing(engine, dm, replayer.trial) as ctx:
        casebook.record_casebook(ctx, file)
    path = out / CASEBOOKS / file.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(file.content)
    return path


def _summary(run: dict[str, Any], out: Path) -> None:
    from reluth.cli_support import table
    from reluth.i18n import N_, format_day, format_number, gettext

    def pct(x: float) -> str:
        return format_number(100 * x, 1)

    stats = run["stats"]
    arms = ", ".join(f"{k} {format_number(v)}" for k, v in sorted(stats.arms.items()))
    console.print(
        "\n"
        + gettext(
            "[bold]Synthetic ReLUTH trial[/] (cut-off {cutoff}): {screened} screened, "
            "{included} included, {randomized} randomized ({arms}); screen failures at the "
            "pre-randomization gate: {failures}"
        ).format(
            cutoff=format_day(run["cutoff"]),
            screened=format_number(stats.screened),
            included=format_number(stats.included),
            randomized=format_number(stats.randomized),
            arms=arms,
            failures=format_number(sum(stats.gate_failures.values())),
        )
    )
    sae_reports, sae_assessed = stats.records["SAE report"], stats.records["SAE assessment"]
    console.print(
        gettext(
            "Serious adverse events: {events} reported by the sites (initial report and one "
            "follow-up each: {reports} reports), {assessed} assessed by pharmacovigilance "
            "(causality, expectedness against the reference safety information); CIOMS-like "
            "PDF: {command}"
        ).format(
            events=format_number(sae_reports // 2),
            reports=format_number(sae_reports),
            assessed=format_number(sae_assessed),
            command="reluth sae cioms AE_ID SEQUENCE --out FILE.pdf",
        ),
        soft_wrap=True,
    )
    audit = run["audit"]
    verdict = (
        "[green]" + gettext("verified") + "[/]"
        if audit.ok
        else "[red]"
        + gettext("NOT verified: {finding}").format(finding=audit.findings[0].message)
        + "[/]"
    )
    console.print(
        gettext(
            "Audit trail: {rows} rows; keyed chain, final signed checkpoint, state of {records} "
            "records and allocation list {verdict}"
        ).format(
            rows=format_number(audit.rows_checked),
            records=format_number(audit.records_replayed),
            verdict=verdict,
        ),
        soft_wrap=True,
    )
    results = run["results"]
    t = table(
        N_("population"),
        N_("arm"),
        "n",
        N_("controlled"),
        N_("DCR (95% CI, Clopper-Pearson)"),
        title=N_("Primary endpoint: disease control at 6 months"),
    )
    populations = (("dcr6_itt", N_("ITT")), ("dcr6_pp", N_("per protocol")))
    for key, label in populations:
        res = results.get(key) or {}
        for g in res.get("groups", []):
            lo, hi = g["ci"]
            t.add_row(
                gettext(label),
                g["group"],
                format_number(g["n"]),
                format_number(g["successes"]),
                gettext("{rate}% ({low}-{high})").format(
                    rate=pct(g["rate"]), low=pct(lo), high=pct(hi)
                ),
            )
    console.print(t)
    for key, label in populations:
        if results.get(key, {}).get("verdict"):
            console.print(f"  {gettext(label)}: {results[key]['verdict']}")
    hazard = gettext(
        "{endpoint} hazard ratio (stratified Cox, Breslow): {hr} (95% CI {low}-{high}), p = {p}"
    )
    for key, label in (("pfs", N_("PFS")), ("os", N_("OS"))):
        cox = (results.get(key) or {}).get("cox")
        if cox:
            lo, hi = cox["hr_ci"]
            console.print(
                hazard.format(
                    endpoint=gettext(label),
                    hr=format_number(cox["hr"], 2),
                    low=format_number(lo, 2),
                    high=format_number(hi, 2),
                    p=format_number(float(f"{cox['p']:.3g}")),
                )
            )
    dosi = run["dosimetry"]
    console.print(
        gettext(
            "Dosimetry: {patients} patients, {cycles} cycles; median kidney dose per cycle "
            "{kidney} Gy, red marrow {marrow} Gy; {stored} cycles stored in the database "
            "(web: /patients/<code>/dosimetry, e.g. as physicist)"
        ).format(
            patients=format_number(dosi["patients"]),
            cycles=format_number(dosi["cycles"]),
            kidney=format_number(dosi["median_kidney_dose_gy_per_cycle"], 2),
            marrow=format_number(dosi["median_marrow_dose_gy_per_cycle"], 3),
            stored=format_number(dosi["cycles_stored"]),
        )
    )
    console.print(
        "\n"
        + gettext("[bold]Where to look[/] (finished in {seconds} s)").format(
            seconds=format_number(run["seconds"], 0)
        )
    )
    settings = run["settings"]
    keys = (
        f"RELUTH_AUDIT_KEY_FILE={settings.audit_key_path} "
        f"RELUTH_ALLOCATION_KEY_FILE={settings.allocation_key_path}"
    )
    places = [
        (N_("report"), str(run["report"])),
        (
            N_("datasets"),
            gettext("{path} (CSV, SAS .xpt, Stata .dta, variables.json)").format(
                path=out / "report" / "datasets"
            ),
        ),
        (N_("dosimetry"), str(out / "dosimetry")),
    ]
    if run.get("casebook"):
        places.append((N_("casebook"), f"{run['casebook']} (reluth casebook CODE --out FILE.pdf)"))
    places += [
        (N_("database"), str(run["url"])),
        (
            N_("keys"),
            gettext("{keys}   (outside the database: set them to write or serve)").format(
                keys=keys
            ),
        ),
        (
            N_("web app"),
            gettext("{command}   then open {url}").format(
                command=f"{keys} reluth serve --db {run['url']}", url="http://127.0.0.1:8000/"
            ),
        ),
    ]
    for label, line in places:
        console.print(f"  {gettext(label) + ':':<11} {line}", soft_wrap=True)
    t = table(
        N_("username"), N_("role"), N_("password"), title=N_("Demo accounts (development only)")
    )
    from reluth.i18n.vocabulary import label as code_label

    shown = set()
    for a in run["accounts"]:
        if a.role in shown:
            continue
        shown.add(a.role)
        t.add_row(a.username, code_label("role", a.role.value), a.password)
    console.print(t)
    console.print(
        gettext(
            "  (one investigator and one research nurse per centre: {first} ... {last}; "
            "password {password})"
        ).format(first="investigator-c01", last="nurse-c22", password="reluth-demo-<username>")
    )
    stat = next((a for a in run["accounts"] if a.role.value == "statistician"), None)
    if stat is not None:
        console.print(
            "\n"
            + gettext("[bold]On the command line[/] (every command on the database needs a login)")
        )
        commands = (
            f"  export RELUTH_DATABASE_URL={run['url']} {keys}\n"
            f"  printf '%s' '{stat.password}' | reluth login {stat.username} --password-stdin\n"
            "  reluth whoami ; reluth randomization report ; "
            f"reluth audit show {run['example_patient'] or 'C01-0001'}\n"
            f"  reluth audit verify --key-file {settings.audit_key_path} "
            f"--checkpoints {settings.checkpoint_path} "
            f"--public-key {settings.checkpoint_public_key}\n"
            "  reluth logout"
        )
        console.print(commands, soft_wrap=True)


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
