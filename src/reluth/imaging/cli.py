"""`reluth images ...`: deidentify (site), verify-deid, qc, ingest (central), synthesize.

Each command imports what only it needs (pydicom, the profile table, rich tables) when it
runs, so the others and `--help` do not pay for it."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

from reluth.cli_support import console, handle_errors, load_json, print_json, progress_bar
from reluth.errors import ValidationError

app = typer.Typer(
    help="DICOM for the dosimetry study: de-identify at the site, verify, QC, central store.",
    no_args_is_help=True,
)


def _count_files(root: Path) -> int:
    return sum(len(f) for _, _, f in os.walk(root))


#: Packages pydicom imports at start-up, each optional to it (imported under ``try``), only to
#: decode or compress pixel data (numpy and the codec plug-ins) or to download its test files
#: (requests): half of ``import pydicom`` (issue 20). De-identification copies pixel data as
#: read and never decodes it.
PIXEL_STACK = ("numpy", "requests", "PIL", "jpeg_ls", "pylibjpeg", "openjpeg", "gdcm", "rle")


#: Modules pydicom imports at start-up that de-identification never uses: its documentation
#: examples (which search its test files for 13 names at import) and ``urllib.request``, for
#: downloading test files (with http.client, ssl, socket and email). They are imported when an
#: attribute of theirs is first used (issue 20).
DEFERRED = ("pydicom.examples", "urllib.request")


class _Deferred(types.ModuleType):
    """Stands for a module not yet imported: the first attribute asked of it imports the real
    module (which then replaces it in ``sys.modules`` and on its package) and answers from it."""

    def __getattr__(self, attr: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        return getattr(real, attr)


def _defer(name: str) -> None:
    """Put a :class:`_Deferred` for the submodule ``name`` in ``sys.modules``, found without
    importing its package (which may import it)."""
    package, _, child = name.rpartition(".")
    if name in sys.modules:
        return
    where = importlib.util.find_spec(package)  # a top-level package: found, not imported
    if where is None or not where.submodule_search_locations:
        return
    spec = importlib.machinery.PathFinder.find_spec(name, list(where.submodule_search_locations))
    if spec is None:
        return
    stub = _Deferred(name)
    stub.__spec__ = spec
    sys.modules[name] = stub
    if package in sys.modules:
        setattr(sys.modules[package], child, stub)


def _pydicom_version() -> str | None:
    """pydicom's version from its wheel's METADATA beside the package (what
    ``importlib.metadata.version("pydicom")`` reads), or None if not found that simply."""
    spec = importlib.util.find_spec("pydicom")
    if spec is None or not spec.submodule_search_locations:
        return None
    site = Path(next(iter(spec.submodule_search_locations))).parent
    found = [p for p in site.glob("pydicom-*.dist-info") if (p / "METADATA").is_file()]
    if len(found) != 1:
        return None
    with open(found[0] / "METADATA", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
            if not line.strip():
                break  # end of the headers
    return None


def _metadata_version_only(version: str) -> types.ModuleType:
    """A stand-in for ``importlib.metadata`` while pydicom is imported: pydicom asks it only
    for its own version at import (``pydicom._version``); the real module (with email, zipfile
    and csv: a sixth of ``import pydicom``) is imported when something else needs it."""
    shim = types.ModuleType("importlib.metadata", "importlib.metadata, pydicom's version only")

    def version_of(name: str) -> str:
        if name == "pydicom":
            return version
        del sys.modules["importlib.metadata"]
        return str(importlib.import_module("importlib.metadata").version(name))

    shim.version = version_of  # type: ignore[attr-defined]
    return shim


def import_pydicom_without_pixel_stack() -> None:
    """Import pydicom as if :data:`PIXEL_STACK` were not installed (pydicom then leaves pixel
    decoding unavailable in this process), and make them importable again afterwards; the
    :data:`DEFERRED` modules are imported when first used. Only for a whole ``reluth images
    deidentify`` process (``reluth.cli.main``): where pydicom is already imported, or within
    another program (tests), nothing changes."""
    from reluth import cli as root

    if "pydicom" in sys.modules or not root.whole_process():
        return
    blocked = [name for name in PIXEL_STACK if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # "not installed" (PEP 328)
    try:
        for name in DEFERRED:
            _defer(name)
        version = None if "importlib.metadata" in sys.modules else _pydicom_version()
        if version is not None:
            sys.modules["importlib.metadata"] = _metadata_version_only(version)
        import pydicom

        if isinstance(sys.modules.get("pydicom.examples"), _Deferred):
            pydicom.examples = sys.modules["pydicom.examples"]  # as its import would have set
    finally:
        shim = sys.modules.get("importlib.metadata")
        if shim is not None and not hasattr(shim, "entry_points"):
            del sys.modules["importlib.metadata"]  # the real one on the next import
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


@app.command("deidentify")
@handle_errors
def deidentify_cmd(
    in_dir: Path = typer.Argument(..., help="Folder of DICOM files for ONE patient."),
    out_dir: Path = typer.Argument(..., help="Output folder (outside IN_DIR)."),
    patient_id: str = typer.Option(..., "--patient-id", help="Trial patient ID, e.g. C07-0012."),
    key: Path = typer.Option(..., "--key", help="Site secret key file (never sent centrally)."),
    cycle: int | None = typer.Option(None, "--cycle", min=1, help="Treatment cycle (1-4)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Parallel processes."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """De-identify a patient's SPECT/CT with PS3.15 Annex E + dosimetry-safe options."""
    import_pydicom_without_pixel_stack()
    from reluth.imaging.batch import deidentify_tree
    from reluth.imaging.deid import DeidSettings, check_patient_id, read_key
    from reluth.imaging.profile import RELUTH_OPTIONS

    settings = DeidSettings(
        key=read_key(key),
        patient_id=check_patient_id(patient_id),
        options=RELUTH_OPTIONS,
        cycle=cycle,
    )
    if not in_dir.is_dir():
        raise ValidationError("IN_DIR", f"not a directory: {in_dir}", "a folder of DICOM files")
    if console.is_terminal:  # the bar, and the count of files it needs, for a person watching
        with progress_bar() as progress:
            task = progress.add_task("de-identifying", total=_count_files(in_dir))
            report = deidentify_tree(
                in_dir,
                out_dir,
                settings,
                workers=workers,
                on_result=lambda _r: progress.advance(task),
            )
    else:  # a script or a log: neither (rich.progress not imported, the input not walked twice)
        report = deidentify_tree(in_dir, out_dir, settings, workers=workers)
    if as_json:
        print_json(
            {
                "patient_id": report.patient_id,
                "written": report.written,
                "skipped": report.skipped,
                "collisions": report.collisions,
                "files": report.files,
            }
        )
    else:
        for f in report.files:
            if f.status != "written":
                console.print(f"[yellow]{f.status}[/] {f.source}: {f.message}", highlight=False)
            if f.review:
                console.print(f"[magenta]review[/] {f.source}: {f.review}", highlight=False)
        console.print(
            f"{report.written} written, {report.skipped} skipped, {report.collisions} collisions,"
            f" {len(report.review)} for pixel review -> {out_dir}",
            highlight=False,
        )
    if report.written == 0:
        raise typer.Exit(1)


@app.command("verify-deid")
@handle_errors
def verify_cmd(
    directory: Path = typer.Argument(..., help="Folder of de-identified files."),
    forbid: list[str] = typer.Option(
        [],
        "--forbid",
        help="Text that must appear nowhere (e.g. the patient's name or hospital ID); repeatable.",
    ),
    key: Path | None = typer.Option(None, "--key", help="Site key: also check the date shift."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Report anything the profile should have removed or changed; exit 1 on any finding."""
    from rich.table import Table

    from reluth.imaging.deid import read_key
    from reluth.imaging.verify import verify_tree

    if not directory.is_dir():
        raise ValidationError("DIR", f"not a directory: {directory}", "a folder of DICOM files")
    secret = read_key(key) if key else None
    with progress_bar(disable=not console.is_terminal) as progress:
        task = progress.add_task("verifying", total=_count_files(directory))
        report = verify_tree(directory, tuple(forbid), secret, lambda: progress.advance(task))
    if as_json:
        print_json(
            {
                "files_checked": report.files_checked,
                "findings": report.findings,
                "warnings": report.warnings,
            }
        )
    else:
        if report.findings:
            table = Table("file", "where", "problem", title="De-identification findings")
            for f in report.findings[:500]:
                table.add_row(f.file, f.where, f.problem)
            console.print(table)
        for w in report.warnings[:100]:
            console.print(f"[yellow]review[/] {w.file} {w.where}: {w.problem}", highlight=False)
        console.print(
            f"{report.files_checked} files checked, {len(report.findings)} findings, "
            f"{len(report.warnings)} date-spread warnings"
        )
    if report.findings:
        raise typer.Exit(1)


def _qc_config(planned: str, calibration: Path | None) -> object:
    from reluth.imaging.qc import QCConfig, parse_timepoints

    factors: dict[str, Decimal] = {}
    if calibration is not None:
        data = load_json(calibration, "calibration file")
        if not isinstance(data, dict):
            raise ValidationError("--calibration", "not a JSON object", '{"SERIAL": factor, ...}')
        for serial, value in data.items():
            try:
                factors[str(serial)] = Decimal(str(value))
            except Exception:
                raise ValidationError(
                    "--calibration", f"{serial}: not a number", "a number"
                ) from None
    return QCConfig(planned_timepoints_h=parse_timepoints(planned), calibration_factors=factors)


@app.command("qc")
@handle_errors
def qc_cmd(
    directory: Path = typer.Argument(..., help="Folder of (de-identified) SPECT/CT files."),
    planned_timepoints: str = typer.Option("4h,24h,96h,168h", "--planned-timepoints"),
    calibration: Path | None = typer.Option(
        None, "--calibration", help='JSON {"DEVICE SERIAL": calibration factor} for count images.'
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Header QC per series: PASS / WARN / FAIL with reasons; exit 1 if any FAIL."""
    from rich.table import Table

    from reluth.imaging.qc import QCConfig
    from reluth.imaging.qc_scan import qc_tree

    if not directory.is_dir():
        raise ValidationError("DIR", f"not a directory: {directory}", "a folder of DICOM files")
    cfg = _qc_config(planned_timepoints, calibration)
    assert isinstance(cfg, QCConfig)
    results, unreadable = qc_tree(directory, cfg)
    if as_json:
        print_json(
            {
                "series": [{**r.__dict__, "reasons": r.reasons} for r in results],
                "unreadable": unreadable,
            }
        )
    else:
        table = Table(
            "patient",
            "modality",
            "series",
            "files",
            "time point",
            "status",
            "reasons",
            title="Header QC",
        )
        colour = {"PASS": "green", "WARN": "yellow", "FAIL": "red"}
        for r in results:
            table.add_row(
                r.patient_id,
                r.modality,
                "…" + r.series_uid[-10:],
                str(r.instances),
                r.time_point,
                f"[{colour[r.status]}]{r.status}[/]",
                "\n".join(r.reasons),
            )
        console.print(table)
        for path in unreadable:
            console.print(f"[yellow]unreadable[/] {path}", highlight=False)
    if any(r.status == "FAIL" for r in results):
        raise typer.Exit(1)


@app.command("ingest")
@handle_errors
def ingest_cmd(
    directory: Path = typer.Argument(..., help="Folder of de-identified files received."),
    db: str | None = typer.Option(None, "--db", help="Trial database URL (default: configured)."),
    store: Path = typer.Option(..., "--store", help="Content-addressed store folder."),
    planned_timepoints: str = typer.Option("4h,24h,96h,168h", "--planned-timepoints"),
    calibration: Path | None = typer.Option(None, "--calibration"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Store de-identified files (SHA-256) and catalogue their series with QC status, as the
    logged-in user (the central store is the medical physicist's)."""
    from rich.table import Table

    from reluth.cli_support import cli_context
    from reluth.imaging.qc import QCConfig
    from reluth.imaging.store import ingest

    cfg = _qc_config(planned_timepoints, calibration)
    assert isinstance(cfg, QCConfig)
    with (
        cli_context(write=True, url=db) as ctx,
        progress_bar(disable=not console.is_terminal) as progress,
    ):
        task = progress.add_task(
            "ingesting", total=_count_files(directory) if directory.is_dir() else 0
        )
        report = ingest(ctx, directory, store, cfg, on_file=lambda: progress.advance(task))
    if as_json:
        print_json(report)
    else:
        table = Table(
            "patient",
            "cycle",
            "time point",
            "modality",
            "files",
            "QC",
            "reasons",
            title="Catalogue",
        )
        for s in report.series:
            table.add_row(
                str(s["patient"]),
                str(s["cycle"] or ""),
                str(s["time_point"]),
                str(s["modality"]),
                str(s["instances"]),
                str(s["qc_status"]),
                str(s["qc_reasons"]),
            )
        console.print(table)
        for path, why in report.refused:
            console.print(f"[red]refused[/] {path}: {why}", highlight=False)
        console.print(
            f"{report.stored} stored, {report.already_present} already present, "
            f"{len(report.refused)} refused",
            highlight=False,
        )
    if report.refused:
        raise typer.Exit(1)


@app.command("synthesize")
@handle_errors
def synthesize_cmd(
    out_dir: Path = typer.Argument(..., help="Where to write the synthetic hospital export."),
    matrix: int = typer.Option(128, "--matrix", min=8, max=256),
    ct_slices: int = typer.Option(20, "--ct-slices", min=0),
    ct_size: int = typer.Option(512, "--ct-size", min=8, max=1024),
    timepoints: str = typer.Option("4h,24h,96h,168h", "--timepoints"),
    fault: list[str] = typer.Option(
        [],
        "--fault",
        help="wrong_window, missing_weight, scan_before_injection, wrong_collimator; repeatable.",
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a realistic Lu-177 SPECT/CT patient export with identifiers planted."""
    from reluth.imaging.qc import parse_timepoints
    from reluth.imaging.synthetic import Faults, SyntheticOptions, SyntheticPatient, write_patient

    known = set(Faults.__dataclass_fields__)
    bad = [f for f in fault if f not in known]
    if bad:
        raise ValidationError("--fault", f"unknown {bad}", ", ".join(sorted(known)))
    opts = SyntheticOptions(
        matrix=matrix,
        ct_slices=ct_slices,
        ct_size=ct_size,
        timepoints_h=tuple(float(h) for h in parse_timepoints(timepoints)),
        faults=Faults(**{f: True for f in fault}),
        seed=seed,
    )
    paths = write_patient(out_dir, SyntheticPatient(), opts)
    console.print(f"{len(paths)} files written under {out_dir}", highlight=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="images")
