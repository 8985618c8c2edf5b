"""``reluth dosimetry``: run a case, run a batch (local processes or a Dask cluster), write a
phantom case, generate a voxel kernel, and the dose–effect analysis."""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from reluth.cli_support import console, err_console, handle_errors, print_json
from reluth.errors import PermissionDenied, ReluthError, ValidationError

app = typer.Typer(
    help="Dosimetry of [177Lu]Lu-DOTATATE: kinetics, organ/tumour/marrow/voxel dose, BED.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="dosimetry")


DB = typer.Option(None, "--db", help="Trial database URL (default $RELUTH_DATABASE_URL).")
PATIENT = typer.Option(None, "--patient", help="Store the results for this patient (C01-0001).")
CYCLE = typer.Option(None, "--cycle", help="Administration cycle the case belongs to (1-4).")
AS_USER = typer.Option(None, "--as", help="Acting user (default $RELUTH_USER or OS login).")
REPLACE = typer.Option(
    None, "--replace-reason", help="Replace the cycle's stored results, giving the reason."
)


@app.command("run")
@handle_errors
def run_cmd(
    case_dir: Path = typer.Argument(..., help="Case directory holding case.yaml."),
    out: Path = typer.Option(..., "--out", help="Output directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the result summary as JSON."),
    patient: str | None = PATIENT,
    cycle: int | None = CYCLE,
    db: str | None = DB,
    as_user: str | None = AS_USER,
    replace_reason: str | None = REPLACE,
) -> None:
    """Compute one case: results.json, dose maps (NIfTI), TAC plots, summary.html. With
    --patient and --cycle, also store the dose records in the trial database."""
    from reluth.dosimetry.pipeline import run_case_dir

    if (patient is None) != (cycle is None):
        raise ValidationError("--patient/--cycle", "only one given", "both, or neither")
    run_case_dir(case_dir, out)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    stored = None
    if patient is not None and cycle is not None:
        stored = _store(results, patient, cycle, db, as_user, replace_reason)
    if as_json:
        print_json(results if stored is None else {**results, "stored": stored})
        return
    _print_case_table(results)
    console.print(f"outputs in {out}")
    if stored is not None:
        console.print(f"stored {stored['stored']} dose records for {patient} cycle {cycle}")


@app.command("store")
@handle_errors
def store_cmd(
    results_json: Path = typer.Argument(..., help="results.json written by `dosimetry run`."),
    patient: str = typer.Option(..., "--patient", help="Patient ID, C01-0001."),
    cycle: int = typer.Option(..., "--cycle", help="Administration cycle the case belongs to."),
    db: str | None = DB,
    as_user: str | None = AS_USER,
    replace_reason: str | None = REPLACE,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Store a computed case's dose records for a patient's administered cycle (audited)."""
    try:
        doc = json.loads(results_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(str(results_json), f"cannot read: {exc}", "results.json") from None
    stored = _store(doc, patient, cycle, db, as_user, replace_reason)
    if as_json:
        print_json(stored)
    else:
        console.print(f"stored {stored['stored']} dose records for {patient} cycle {cycle}")


def _store(
    doc: Any,
    patient: str,
    cycle: int,
    db: str | None,
    as_user: str | None,
    replace_reason: str | None,
) -> dict[str, Any]:
    """The records of a case's summary, stored through the dosimetry service as the user."""
    import datetime as dt

    from reluth.auth.policy import Action, Resource, allowed
    from reluth.config import get_settings
    from reluth.db.actors import resolve_actor
    from reluth.db.engine import make_engine
    from reluth.db.session import unit_of_work
    from reluth.dosimetry import service

    records = service.records_from_document(doc)
    engine = make_engine(db or get_settings().database_url)
    try:
        actor = resolve_actor(engine, as_user)
        if not allowed(actor.role, Action.WRITE, Resource.DOSIMETRY):
            raise PermissionDenied(f"{actor.role} may not write dosimetry results")
        with unit_of_work(engine, actor, reason=replace_reason) as uow:
            rows = service.store_cycle(
                uow.session,
                patient,
                cycle,
                records,
                now=dt.datetime.now(dt.UTC),
                replace=replace_reason is not None,
            )
            return {"patient_id": patient, "cycle": cycle, "stored": len(rows)}
    finally:
        engine.dispose()


def _print_case_table(results: dict[str, Any]) -> None:
    table = Table(title=f"case {results['case_id']} — cycle {results['cycle_label']}")
    for col in ("VOI", "TIA method", "TIA (MBq·h)", "T_eff (h)", "dose (Gy)", "kernel mean (Gy)"):
        table.add_column(col)
    for name, v in results["vois"].items():
        dose = (v.get("organ_dose") or v.get("sphere_dose") or {}).get("absorbed_dose_gy")
        kern = v["voxel"].get("kernel", {}).get("mean_gy")
        teff = v["tia"]["effective_half_life_h"]
        table.add_row(
            name,
            v["tia"]["method"],
            f"{v['tia']['tia_mbq_h']:.4g}",
            "—" if teff is None else f"{teff:.3g}",
            "—" if dose is None else f"{dose:.3g}",
            "—" if kern is None else f"{kern:.3g}",
        )
    console.print(table)
    bed = results.get("kidney_bed")
    if bed:
        console.print(
            f"kidney BED {bed['bed_gy']:.3g} Gy (absorbed {bed['absorbed_dose_gy']:.3g} Gy)"
        )
    if results.get("red_marrow"):
        console.print(f"red marrow {results['red_marrow']['total_gy']:.3g} Gy (blood-based)")
    for w in results["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")


def _run_one(case_dir: str, out_dir: str) -> dict[str, Any]:
    """Batch task (top level so processes and Dask workers can import it); never raises."""
    from reluth.dosimetry.pipeline import run_case_dir

    try:
        return {"ok": True, **run_case_dir(Path(case_dir), Path(out_dir))}
    except ReluthError as exc:
        return {"ok": False, "case": Path(case_dir).name, "error": exc.message}
    except Exception as exc:  # a bug in one case must not stop the batch
        return {
            "ok": False,
            "case": Path(case_dir).name,
            "error": f"internal error: {exc!r}",
            "traceback": traceback.format_exc(),
        }


@app.command("batch")
@handle_errors
def batch_cmd(
    cases_dir: Path = typer.Argument(..., help="Directory of case directories."),
    out: Path = typer.Option(..., "--out", help="Output directory (one sub-directory per case)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Local worker processes."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Address of an existing Dask scheduler, e.g. tcp://HOST:8786."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the batch summary as JSON."),
) -> None:
    """Run every case in CASES_DIR; a bad case is reported and the others go on."""
    if not cases_dir.is_dir():
        raise ValidationError("CASES_DIR", f"{cases_dir} is not a directory", "a directory")
    cases = sorted(p for p in cases_dir.iterdir() if (p / "case.yaml").exists())
    if not cases:
        raise ValidationError("CASES_DIR", f"no case.yaml under {cases_dir}", "case directories")
    client = _connect(scheduler) if scheduler else None
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=as_json,
    ) as progress:
        task = progress.add_task("dosimetry cases", total=len(cases))
        if client is not None:
            results = _batch_dask(client, cases, out, progress, task)
        else:
            results = _batch_local(workers, cases, out, progress, task)
    results.sort(key=lambda r: str(r.get("case_id", r.get("case"))))
    failed = [r for r in results if not r["ok"]]
    doc = {
        "n_cases": len(cases),
        "n_ok": len(cases) - len(failed),
        "n_failed": len(failed),
        "results": results,
    }
    (out / "batch_summary.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if as_json:
        print_json(doc)
    else:
        table = Table(title=f"batch: {doc['n_ok']} ok, {doc['n_failed']} failed")
        table.add_column("case")
        table.add_column("status")
        for r in results:
            table.add_row(str(r.get("case_id", r.get("case"))), "ok" if r["ok"] else r["error"])
        console.print(table)
    if failed:
        raise typer.Exit(2)


def _batch_local(
    workers: int, cases: list[Path], out: Path, progress: Progress, task: Any
) -> list[dict[str, Any]]:
    results = []
    if workers == 1:
        for c in cases:
            results.append(_run_one(str(c), str(out / c.name)))
            progress.advance(task)
        return results
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_run_one, str(c), str(out / c.name)) for c in cases]
        for f in as_completed(futures):
            results.append(f.result())
            progress.advance(task)
    return results


def _connect(address: str) -> Any:
    from dask.distributed import Client

    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValidationError(
            "--scheduler", f"cannot reach a Dask scheduler at {address}: {exc}", "tcp://HOST:PORT"
        ) from None


def _batch_dask(
    client: Any, cases: list[Path], out: Path, progress: Progress, task: Any
) -> list[dict[str, Any]]:
    from dask.distributed import as_completed

    results = []
    try:
        futures = [
            client.submit(_run_one, str(c.resolve()), str((out / c.name).resolve()), pure=False)
            for c in cases
        ]
        for f in as_completed(futures):
            results.append(f.result())
            progress.advance(task)
    finally:
        client.close()
    return results


@app.command("phantom")
@handle_errors
def phantom_cmd(
    out: Path = typer.Argument(..., help="Directory to write (a case, or several with --count)."),
    grid: int = typer.Option(32, "--grid", min=8, max=512, help="Voxels per side."),
    voxel_mm: float = typer.Option(4.42, "--voxel-mm", help="Voxel size (mm)."),
    noise: float = typer.Option(0.0, "--noise", min=0.0, help="Relative Gaussian noise SD."),
    seed: int = typer.Option(0, "--seed"),
    count: int = typer.Option(1, "--count", min=1, help="Write COUNT cases under OUT."),
    sex: str = typer.Option("female", "--sex", help="male or female (S-value table)."),
) -> None:
    """Write an analytic phantom case directory (images, masks, case.yaml, truth.json)."""
    from reluth.dosimetry.phantom import PhantomSpec, write_case

    if sex not in ("male", "female"):
        raise ValidationError("--sex", f"{sex!r}", "male, female")
    if not voxel_mm > 0:
        raise ValidationError("--voxel-mm", f"{voxel_mm}", "> 0")
    for i in range(count):
        spec = PhantomSpec(
            shape=(grid, grid, grid), voxel_mm=voxel_mm, noise_relative_sd=noise, seed=seed + i
        )
        case_id = f"PHANTOM-{i + 1:03d}"
        target = out if count == 1 else out / case_id
        write_case(target, spec, case_id=case_id, sex=sex)
        console.print(f"wrote {target}")


@app.command("kernel")
@handle_errors
def kernel_cmd(
    out: Path = typer.Argument(..., help="Output stem: writes STEM.npy and STEM.json."),
    voxel_mm: list[float] = typer.Option(..., "--voxel-mm", help="Voxel size; give 1 or 3 values."),
    samples: int = typer.Option(4_000_000, "--samples", min=10_000),
) -> None:
    """Generate a Lu-177 soft-tissue voxel-S-value kernel (model in docs/dosimetry.md)."""
    from reluth.dosimetry.voxel import generate_kernel, save_kernel

    if len(voxel_mm) == 1:
        voxel_mm = voxel_mm * 3
    if len(voxel_mm) != 3:
        raise ValidationError("--voxel-mm", f"{len(voxel_mm)} values", "1 or 3 values")
    kern = generate_kernel((voxel_mm[0], voxel_mm[1], voxel_mm[2]), n_samples=samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_kernel(kern, out)
    console.print(f"wrote {out}.npy and {out}.json (shape {kern.values_mgy_per_mbq_s.shape})")


@app.command("dose-effect")
@handle_errors
def dose_effect_cmd(
    data: Path = typer.Argument(
        ..., help="CSV, one row per patient (columns in docs/dosimetry.md)."
    ),
    out: Path = typer.Option(..., "--out", help="Output directory (plots, section, JSON)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Logistic regression of disease control on tumour dose; kidney BED vs eGFR slope."""
    import pandas as pd

    from reluth.cli_support import to_jsonable
    from reluth.dosimetry import dose_effect
    from reluth.dosimetry.pipeline import json_safe

    if not data.exists():
        raise ValidationError(str(data), "file not found", "a CSV file")
    try:
        df = pd.read_csv(data)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ValidationError(str(data), f"cannot read CSV: {exc}", "CSV") from None
    result = dose_effect.analyse(df)
    files = dose_effect.plot(df, result, out)
    section = dose_effect.report_section(result)
    (out / "dose_effect.md").write_text(section, encoding="utf-8")
    doc = json_safe({**to_jsonable(result), "files": [*files, "dose_effect.md"]})
    (out / "dose_effect.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if as_json:
        print_json(doc)
    else:
        console.print(section)
