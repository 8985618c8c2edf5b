"""``reluth dosimetry``: run a case, a patient-cycle from the DICOM store (``from-store``), a
batch (local processes or a Dask cluster), write a phantom case, generate a voxel kernel, and
the dose–effect analysis."""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from reluth.cli_support import console, err_console, handle_errors, print_json
from reluth.cli_support import table as cli_table
from reluth.errors import ReluthError

if TYPE_CHECKING:
    from rich.progress import Progress

app = typer.Typer(
    help="Dosimetry of [177Lu]Lu-DOTATATE: kinetics, organ/tumour/marrow/voxel dose, BED.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="dosimetry")


DB = typer.Option(None, "--db", help="Trial database URL (default $RELUTH_DATABASE_URL).")
PATIENT = typer.Option(None, "--patient", help="Store the results for this patient (C01-0001).")
CYCLE = typer.Option(None, "--cycle", help="Administration cycle the case belongs to (1-4).")
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
    replace_reason: str | None = REPLACE,
) -> None:
    """Compute one case: results.json, dose maps (NIfTI), TAC plots, summary.html. With
    --patient and --cycle, also store the dose records in the trial database."""
    from reluth.dosimetry.runner import run_case_dir
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid

    if (patient is None) != (cycle is None):
        raise invalid(
            "--patient/--cycle", "only_one_given", N_("only one given"), N_("both, or neither")
        )
    run_case_dir(case_dir, out)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    stored = None
    if patient is not None and cycle is not None:
        stored = _store(results, patient, cycle, db, replace_reason)
    if as_json:
        print_json(results if stored is None else {**results, "stored": stored})
        return
    _print_case_table(results)
    _print_outputs(out, stored, patient, cycle)


@app.command("store")
@handle_errors
def store_cmd(
    results_json: Path = typer.Argument(..., help="results.json written by `dosimetry run`."),
    patient: str = typer.Option(..., "--patient", help="Patient ID, C01-0001."),
    cycle: int = typer.Option(..., "--cycle", help="Administration cycle the case belongs to."),
    db: str | None = DB,
    replace_reason: str | None = REPLACE,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Store a computed case's dose records for a patient's administered cycle (audited)."""
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid

    try:
        doc = json.loads(results_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise invalid(
            str(results_json),
            "cannot_read",
            N_("cannot read: {exc_name}"),
            N_("results.json"),
            exc_name=str(exc),
        ) from None
    stored = _store(doc, patient, cycle, db, replace_reason)
    if as_json:
        print_json(stored)
    else:
        _print_stored(stored, patient, cycle)


def _print_stored(stored: dict[str, Any], patient: str | None, cycle: int | None) -> None:
    from reluth.i18n import format_number, gettext

    console.print(
        gettext("stored {n} dose records for {patient} cycle {cycle}").format(
            n=format_number(stored["stored"]), patient=patient, cycle=cycle
        )
    )


def _print_outputs(
    out: Path, stored: dict[str, Any] | None, patient: str | None, cycle: int | None
) -> None:
    from reluth.i18n import gettext

    console.print(gettext("outputs in {path}").format(path=out))
    if stored is not None:
        _print_stored(stored, patient, cycle)


def _store(
    doc: Any,
    patient: str,
    cycle: int,
    db: str | None,
    replace_reason: str | None,
) -> dict[str, Any]:
    """The records of a case's summary, stored through the dosimetry service as the logged-in
    user (the service asks the policy)."""
    from reluth.cli_support import cli_context
    from reluth.dosimetry import service

    records = service.records_from_document(doc)
    with cli_context(write=True, reason=replace_reason, url=db) as ctx:
        rows = service.store_cycle(ctx, patient, cycle, records, replace=replace_reason is not None)
        return {"patient_id": patient, "cycle": cycle, "stored": len(rows)}


@app.command("from-store")
@handle_errors
def from_store_cmd(
    patient: str = typer.Option(..., "--patient", help="Patient ID, C01-0001."),
    cycle: int = typer.Option(..., "--cycle", help="Administration cycle (its images)."),
    vois: str | None = typer.Option(
        None,
        "--vois",
        help="RTSTRUCT/SEG/NIfTI file or folder, or the series UID of a stored RTSTRUCT/SEG "
        "(default: the cycle's one catalogued RTSTRUCT/SEG).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Output directory (default DATA_DIR/dosimetry/PATIENT-CCYCLE)."
    ),
    store: Path | None = typer.Option(
        None, "--store", help="Content-addressed image store (default $RELUTH_IMAGE_STORE)."
    ),
    calibration: Path | None = typer.Option(
        None, "--calibration", help="The centres' camera calibrations (YAML, cps/MBq)."
    ),
    organ_table: Path | None = typer.Option(
        None, "--organ-table", help="ROI name → organ table (YAML; default the shipped one)."
    ),
    settings_file: Path | None = typer.Option(
        None, "--settings", help="methods/bed/marrow/geometry/vois sections as in case.yaml."
    ),
    registration: str = typer.Option("rigid", "--registration", help="rigid, affine or none."),
    no_store: bool = typer.Option(False, "--no-store", help="Compute and write only."),
    db: str | None = DB,
    replace_reason: str | None = REPLACE,
    as_json: bool = typer.Option(False, "--json", help="Print the result summary as JSON."),
) -> None:
    """Dosimetry of one patient-cycle from the de-identified DICOM store: SPECT/CT series of
    the cycle, VOIs, registration, doses; results stored through the audited service."""
    import yaml
    from rich.progress import Progress, TextColumn

    from reluth.cli_support import cli_context
    from reluth.config import get_settings
    from reluth.dosimetry.dicom_images import load_calibrations
    from reluth.dosimetry.runner import run_from_store
    from reluth.dosimetry.vois import default_organ_table, load_organ_table
    from reluth.i18n import N_, gettext
    from reluth.i18n.reasons import invalid

    cfg = get_settings()
    store_dir = store or cfg.image_store
    if not store_dir.is_dir():
        raise invalid(
            "--store",
            "not_directory",
            N_("{store_dir} is not a directory"),
            N_("the image store"),
            store_dir=str(store_dir),
        )
    settings: dict[str, Any] = {}
    if settings_file is not None:
        try:
            loaded = yaml.safe_load(settings_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise invalid(
                "--settings",
                "cannot_read",
                N_("cannot read: {exc_name}"),
                N_("YAML"),
                exc_name=str(exc),
            ) from None
        if not isinstance(loaded, dict):
            raise invalid(
                "--settings", "not_mapping", N_("not a mapping"), N_("methods/bed/marrow sections")
            )
        settings = loaded
    out_dir = out or cfg.data_dir / "dosimetry" / f"{patient}-C{cycle}"
    with (
        cli_context(url=db) as ctx,
        Progress(TextColumn("{task.description}"), console=err_console, transient=True) as progress,
    ):
        task = progress.add_task(gettext("assembling the case"), total=None)
        doc = run_from_store(
            ctx,
            store_dir,
            patient,
            cycle,
            out_dir,
            vois=vois,
            calibrations=load_calibrations(calibration) if calibration else (),
            organ_table=load_organ_table(organ_table) if organ_table else default_organ_table(),
            settings=settings,
            settings_dir=settings_file.parent if settings_file else Path("."),
            registration=registration,
            on_progress=lambda text: progress.update(task, description=text),
        )
    stored = None
    if not no_store:
        stored = _store(doc, patient, cycle, db, replace_reason)
    if as_json:
        print_json(doc if stored is None else {**doc, "stored": stored})
        return
    _print_case_table(doc)
    _print_outputs(out_dir, stored, patient, cycle)


def _print_case_table(results: dict[str, Any]) -> None:
    from reluth.dosimetry.notes import method_label, shown_all
    from reluth.i18n import N_, format_number, gettext

    def g3(x: float) -> str:
        return format_number(float(f"{x:.3g}"))

    title = gettext("case {case} — cycle {cycle}").format(
        case=results["case_id"], cycle=results["cycle_label"]
    )
    table = cli_table(
        N_("VOI"), N_("TIA method"), N_("TIA (MBq·h)"), N_("T_eff (h)"), N_("dose (Gy)"),
        N_("kernel mean (Gy)"), title=title,
    )  # fmt: skip
    for name, v in results["vois"].items():
        dose = (v.get("organ_dose") or v.get("sphere_dose") or {}).get("absorbed_dose_gy")
        kern = v["voxel"].get("kernel", {}).get("mean_gy")
        teff = v["tia"]["effective_half_life_h"]
        table.add_row(
            name,
            method_label(v["tia"]["method"]),
            format_number(float(f"{v['tia']['tia_mbq_h']:.4g}")),
            "—" if teff is None else g3(teff),
            "—" if dose is None else g3(dose),
            "—" if kern is None else g3(kern),
        )
    console.print(table)
    bed = results.get("kidney_bed")
    if bed:
        console.print(
            gettext("kidney BED {bed} Gy (absorbed {dose} Gy)").format(
                bed=g3(bed["bed_gy"]), dose=g3(bed["absorbed_dose_gy"])
            )
        )
    if results.get("red_marrow"):
        total = g3(results["red_marrow"]["total_gy"])
        console.print(gettext("red marrow {dose} Gy (blood-based)").format(dose=total))
    for w in shown_all(results):
        warning = gettext("warning:")
        console.print(f"[yellow]{warning}[/] {w}")


def _run_one(case_dir: str, out_dir: str) -> dict[str, Any]:
    """Batch task (top level so processes and Dask workers can import it); never raises."""
    from reluth.dosimetry.runner import run_case_dir

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


def _patients_with_cycle(db: str | None, cycle: int) -> list[str]:
    from reluth.cli_support import cli_context
    from reluth.imaging.store import patients_with_cycle

    with cli_context(url=db) as ctx:
        return patients_with_cycle(ctx, cycle)


def _run_store_one(
    patient: str,
    cycle: int,
    store: str,
    out_dir: str,
    calibration: str | None,
    db: str | None,
) -> dict[str, Any]:
    """Batch task for one patient-cycle from the store (read, computed, then stored through
    the services as the logged-in user); never raises."""
    from reluth.cli_support import cli_context
    from reluth.dosimetry.dicom_images import load_calibrations
    from reluth.dosimetry.runner import run_from_store
    from reluth.dosimetry.vois import default_organ_table

    case = f"{patient}-C{cycle}"
    try:
        with cli_context(url=db) as ctx:
            doc = run_from_store(
                ctx, Path(store), patient, cycle, Path(out_dir),
                calibrations=load_calibrations(Path(calibration)) if calibration else (),
                organ_table=default_organ_table(),
            )  # fmt: skip
        stored = _store(doc, patient, cycle, db, None)
        return {"ok": True, "case_id": case, "out_dir": out_dir, "stored": stored["stored"],
                "warnings": doc["warnings"]}  # fmt: skip
    except ReluthError as exc:
        return {"ok": False, "case": case, "error": exc.message}
    except Exception as exc:  # a bug in one case must not stop the batch
        return {"ok": False, "case": case, "error": f"internal error: {exc!r}",
                "traceback": traceback.format_exc()}  # fmt: skip


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
    from_store: int | None = typer.Option(
        None,
        "--from-store-cycle",
        help="Instead of case directories: every patient with catalogued series of this cycle "
        "(CASES_DIR is then the image store), computed and stored as `from-store` does.",
    ),
    calibration: Path | None = typer.Option(None, "--calibration", help="With --from-store-cycle."),
    db: str | None = DB,
) -> None:
    """Run every case in CASES_DIR; a bad case is reported and the others go on."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from reluth.i18n import N_, gettext
    from reluth.i18n.reasons import invalid

    if not cases_dir.is_dir():
        raise invalid(
            "CASES_DIR",
            "not_directory_2",
            N_("{cases_dir} is not a directory"),
            N_("a directory"),
            cases_dir=str(cases_dir),
        )
    fn: Any
    jobs: list[tuple[Any, ...]]
    if from_store is not None:
        fn = _run_store_one
        jobs = [
            (code, from_store, str(cases_dir.resolve()), str((out / f"{code}-C{from_store}").resolve()),
             None if calibration is None else str(calibration.resolve()), db)
            for code in _patients_with_cycle(db, from_store)
        ]  # fmt: skip
        if not jobs:
            raise invalid(
                "--from-store-cycle",
                "no_patient_has_catalogued_series",
                N_("no patient has catalogued series of cycle {from_store}"),
                from_store=str(from_store),
            )
    else:
        cases = sorted(p for p in cases_dir.iterdir() if (p / "case.yaml").exists())
        if not cases:
            raise invalid(
                "CASES_DIR",
                "no_case_yaml_under",
                N_("no case.yaml under {cases_dir}"),
                N_("case directories"),
                cases_dir=str(cases_dir),
            )
        fn = _run_one
        jobs = [(str(c.resolve()), str((out / c.name).resolve())) for c in cases]
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
        task = progress.add_task(gettext("dosimetry cases"), total=len(jobs))
        if client is not None:
            results = _batch_dask(client, fn, jobs, progress, task)
        else:
            results = _batch_local(workers, fn, jobs, progress, task)
    results.sort(key=lambda r: str(r.get("case_id", r.get("case"))))
    failed = [r for r in results if not r["ok"]]
    doc = {
        "n_cases": len(jobs),
        "n_ok": len(jobs) - len(failed),
        "n_failed": len(failed),
        "results": results,
    }
    (out / "batch_summary.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if as_json:
        print_json(doc)
    else:
        from reluth.i18n import N_, gettext

        title = gettext("batch: {ok} ok, {failed} failed").format(
            ok=doc["n_ok"], failed=doc["n_failed"]
        )
        table = cli_table(N_("case"), N_("status"), title=title)
        for r in results:
            state = gettext("ok") if r["ok"] else r["error"]
            table.add_row(str(r.get("case_id", r.get("case"))), state)
        console.print(table)
    if failed:
        raise typer.Exit(2)


def _batch_local(
    workers: int, fn: Any, jobs: list[tuple[Any, ...]], progress: Progress, task: Any
) -> list[dict[str, Any]]:
    results = []
    if workers == 1:
        for job in jobs:
            results.append(fn(*job))
            progress.advance(task)
        return results
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
        for f in as_completed(futures):
            results.append(f.result())
            progress.advance(task)
    return results


def _connect(address: str) -> Any:
    from dask.distributed import Client

    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid

    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise invalid(
            "--scheduler",
            "cannot_reach_dask_scheduler",
            N_("cannot reach a Dask scheduler at {address}: {exc_name}"),
            N_("tcp://HOST:PORT"),
            address=str(address),
            exc_name=str(exc),
        ) from None


def _batch_dask(
    client: Any, fn: Any, jobs: list[tuple[Any, ...]], progress: Progress, task: Any
) -> list[dict[str, Any]]:
    from dask.distributed import as_completed

    results = []
    try:
        futures = [client.submit(fn, *job, pure=False) for job in jobs]
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
    from reluth.i18n import N_, gettext
    from reluth.i18n.reasons import invalid

    if sex not in ("male", "female"):
        raise invalid("--sex", "unaccepted_sex", N_("{sex}"), N_("male, female"), sex=repr(sex))
    if not voxel_mm > 0:
        raise invalid(
            "--voxel-mm", "unaccepted_voxel_mm", N_("{voxel_mm}"), N_("> 0"), voxel_mm=str(voxel_mm)
        )
    for i in range(count):
        spec = PhantomSpec(
            shape=(grid, grid, grid), voxel_mm=voxel_mm, noise_relative_sd=noise, seed=seed + i
        )
        case_id = f"PHANTOM-{i + 1:03d}"
        target = out if count == 1 else out / case_id
        write_case(target, spec, case_id=case_id, sex=sex)
        console.print(gettext("wrote {path}").format(path=target))


@app.command("kernel")
@handle_errors
def kernel_cmd(
    out: Path = typer.Argument(..., help="Output stem: writes STEM.npy and STEM.json."),
    voxel_mm: list[float] = typer.Option(..., "--voxel-mm", help="Voxel size; give 1 or 3 values."),
    samples: int = typer.Option(4_000_000, "--samples", min=10_000),
) -> None:
    """Generate a Lu-177 soft-tissue voxel-S-value kernel (model in docs/dosimetry.md)."""
    from reluth.dosimetry.voxel import generate_kernel, save_kernel
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid

    if len(voxel_mm) == 1:
        voxel_mm = voxel_mm * 3
    if len(voxel_mm) != 3:
        raise invalid(
            "--voxel-mm",
            "values",
            N_("{n_voxel_mm} values"),
            N_("1 or 3 values"),
            n_voxel_mm=len(voxel_mm),
        )
    kern = generate_kernel((voxel_mm[0], voxel_mm[1], voxel_mm[2]), n_samples=samples)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_kernel(kern, out)
    from reluth.i18n import gettext

    console.print(
        gettext("wrote {npy} and {json} (shape {shape})").format(
            npy=f"{out}.npy", json=f"{out}.json", shape=kern.values_mgy_per_mbq_s.shape
        )
    )


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
    from reluth.dosimetry.outputs import json_safe
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid

    if not data.exists():
        raise invalid(str(data), "file_not_found", N_("file not found"), N_("a CSV file"))
    try:
        df = pd.read_csv(data)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise invalid(
            str(data),
            "cannot_read_csv",
            N_("cannot read CSV: {exc_name}"),
            N_("CSV"),
            exc_name=str(exc),
        ) from None
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
