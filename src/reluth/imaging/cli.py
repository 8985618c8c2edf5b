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

app = typer.Typer(
    help="DICOM for the dosimetry study: de-identify at the site, verify, QC, central store.",
    no_args_is_help=True,
)


def _need_directory(field: str, path: Path, accepted: str) -> None:
    """Refuses ``path`` unless it is a directory (coded, in the reader's language)."""
    if not path.is_dir():
        from reluth.i18n import N_
        from reluth.i18n.reasons import invalid

        raise invalid(
            field, "not_a_directory", N_("not a directory: {path}"), accepted, path=str(path)
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
    from reluth.i18n import N_, format_number, gettext

    _need_directory("IN_DIR", in_dir, N_("a folder of DICOM files"))
    FILE_STATUSES = {"skipped": N_("skipped"), "collision": N_("collision")}
    if console.is_terminal:  # the bar, and the count of files it needs, for a person watching
        with progress_bar() as progress:
            task = progress.add_task(gettext("de-identifying"), total=_count_files(in_dir))
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
        review = gettext("review")
        for f in report.files:
            if f.status != "written":
                status = gettext(FILE_STATUSES.get(f.status, f.status))
                console.print(f"[yellow]{status}[/] {f.source}: {f.message}", highlight=False)
            if f.review:
                console.print(f"[magenta]{review}[/] {f.source}: {f.review}", highlight=False)
        console.print(
            gettext(
                "files written: {written}, skipped: {skipped}, collisions: {collisions}, "
                "for pixel review: {review} -> {out}"
            ).format(
                written=format_number(report.written),
                skipped=format_number(report.skipped),
                collisions=format_number(report.collisions),
                review=format_number(len(report.review)),
                out=out_dir,
            ),
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
    from reluth.cli_support import table
    from reluth.i18n import N_, format_number, gettext
    from reluth.imaging.deid import read_key
    from reluth.imaging.verify import verify_tree

    _need_directory("DIR", directory, N_("a folder of DICOM files"))
    secret = read_key(key) if key else None
    with progress_bar(disable=not console.is_terminal) as progress:
        task = progress.add_task(gettext("verifying"), total=_count_files(directory))
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
            shown = table(
                N_("file"), N_("where"), N_("problem"), title=N_("De-identification findings")
            )
            for f in report.findings[:500]:
                shown.add_row(f.file, f.where, f.problem)
            console.print(shown)
        review = gettext("review")
        for w in report.warnings[:100]:
            console.print(f"[yellow]{review}[/] {w.file} {w.where}: {w.problem}", highlight=False)
        console.print(
            gettext(
                "files checked: {files}, findings: {findings}, date-spread warnings: {warnings}"
            ).format(
                files=format_number(report.files_checked),
                findings=format_number(len(report.findings)),
                warnings=format_number(len(report.warnings)),
            )
        )
    if report.findings:
        raise typer.Exit(1)


def _qc_config(planned: str, calibration: Path | None) -> object:
    from reluth.i18n import N_
    from reluth.i18n.reasons import invalid
    from reluth.imaging.qc import QCConfig, parse_timepoints

    factors: dict[str, Decimal] = {}
    if calibration is not None:
        data = load_json(calibration, "calibration file")
        if not isinstance(data, dict):
            raise invalid(
                "--calibration",
                "calibration_not_an_object",
                N_("not a JSON object"),
                '{"SERIAL": factor, ...}',
            )
        for serial, value in data.items():
            try:
                factors[str(serial)] = Decimal(str(value))
            except Exception:
                raise invalid(
                    "--calibration",
                    "calibration_not_a_number",
                    N_("{serial}: not a number"),
                    N_("a number"),
                    serial=str(serial),
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
    from reluth.cli_support import table
    from reluth.i18n import N_, gettext
    from reluth.imaging.qc import QCConfig
    from reluth.imaging.qc_scan import qc_tree

    _need_directory("DIR", directory, N_("a folder of DICOM files"))
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
        shown = table(
            N_("patient"),
            N_("modality"),
            N_("series"),
            N_("files"),
            N_("time point"),
            N_("status"),
            N_("reasons"),
            title=N_("Header QC"),
        )
        colour = {"PASS": "green", "WARN": "yellow", "FAIL": "red"}
        for r in results:
            shown.add_row(
                r.patient_id,
                r.modality,
                "…" + r.series_uid[-10:],
                str(r.instances),
                r.time_point,
                f"[{colour[r.status]}]{r.status}[/]",
                "\n".join(r.reasons),
            )
        console.print(shown)
        unreadable_word = gettext("unreadable")
        for path in unreadable:
            console.print(f"[yellow]{unreadable_word}[/] {path}", highlight=False)
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
    from reluth.cli_support import cli_context, table
    from reluth.i18n import N_, format_number, gettext
    from reluth.imaging.qc import QCConfig
    from reluth.imaging.store import ingest

    cfg = _qc_config(planned_timepoints, calibration)
    assert isinstance(cfg, QCConfig)
    with (
        cli_context(write=True, url=db) as ctx,
        progress_bar(disable=not console.is_terminal) as progress,
    ):
        task = progress.add_task(
            gettext("ingesting"), total=_count_files(directory) if directory.is_dir() else 0
        )
        report = ingest(ctx, directory, store, cfg, on_file=lambda: progress.advance(task))
    if as_json:
        print_json(report)
    else:
        shown = table(
            N_("patient"),
            N_("cycle"),
            N_("time point"),
            N_("modality"),
            N_("files"),
            N_("QC"),
            N_("reasons"),
            title=N_("Catalogue"),
        )
        for s in report.series:
            shown.add_row(
                str(s["patient"]),
                str(s["cycle"] or ""),
                str(s["time_point"]),
                str(s["modality"]),
                str(s["instances"]),
                str(s["qc_status"]),
                str(s["qc_reasons"]),
            )
        console.print(shown)
        refused = gettext("refused")
        for path, why in report.refused:
            console.print(f"[red]{refused}[/] {path}: {why}", highlight=False)
        console.print(
            gettext("stored: {stored}, already present: {present}, refused: {refused}").format(
                stored=format_number(report.stored),
                present=format_number(report.already_present),
                refused=format_number(len(report.refused)),
            ),
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
        from reluth.i18n import N_
        from reluth.i18n.reasons import invalid

        raise invalid(
            "--fault", "unknown_fault", N_("unknown {faults}"), ", ".join(sorted(known)), faults=bad
        )
    opts = SyntheticOptions(
        matrix=matrix,
        ct_slices=ct_slices,
        ct_size=ct_size,
        timepoints_h=tuple(float(h) for h in parse_timepoints(timepoints)),
        faults=Faults(**{f: True for f in fault}),
        seed=seed,
    )
    paths = write_patient(out_dir, SyntheticPatient(), opts)
    from reluth.i18n import format_number, gettext

    console.print(
        gettext("files written under {out}: {n}").format(out=out_dir, n=format_number(len(paths))),
        highlight=False,
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="images")
