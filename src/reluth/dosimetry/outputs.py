"""The writing part of the dosimetry pipeline: what a physicist keeps of a computed case.

* ``results.json`` (the summary document, as before);
* the maps as NIfTI with the SPECT's own affine (they overlay on the patient's images);
* with a reference SPECT dataset (cases from the DICOM store), the absorbed-dose maps as DICOM
  RT Dose (PS3.3 A.18) on the SPECT's frame of reference and study, so that any viewer
  overlays them on the SPECT/CT;
* ``tac.png``, ``dvh.png`` and registration overlays;
* ``summary.html``, the per-patient report rendered from the Jinja2 template
  ``web/templates/dosimetry_report.html`` (the app's templates), and ``report.pdf`` from it by
  WeasyPrint when its system libraries (Pango) are present.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from reluth.dosimetry import notes
from reluth.dosimetry.cumulative import default_limits, reaches
from reluth.dosimetry.image import Grid, Image, write_nifti
from reluth.dosimetry.pipeline import CaseInput, CaseResult
from reluth.i18n import N_, format_day, format_number, get_locale, gettext, ngettext
from reluth.i18n.vocabulary import label

RT_DOSE_SOP = "1.2.840.10008.5.1.4.1.1.481.2"
UID_ROOT = "1.2.826.0.1.3680043.8.498.19."
_DOSE_MAPS = {"dose_kernel_gy": "voxel kernel", "dose_local_gy": "local deposition"}


def software_version() -> str:
    try:
        return f"reluth {metadata.version('reluth')}"
    except metadata.PackageNotFoundError:
        return "reluth (not installed)"


def case_grid(case: CaseInput) -> Grid:
    """The case's grid; a case built in memory without one gets the voxel-size grid at 0."""
    if case.grid is not None:
        return case.grid
    shape = case.images_bq_per_ml.shape[1:]
    v = case.voxel_mm
    return Grid.from_geometry((shape[0], shape[1], shape[2]), (v[2], v[1], v[0]))


def json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return json_safe(x.item())
    return x


def write_outputs(
    result: CaseResult,
    case: CaseInput,
    out_dir: Path,
    *,
    reference_spect: Dataset | None = None,
    provenance: Mapping[str, Any] | None = None,
    overlays: Mapping[str, Path] | None = None,
) -> dict[str, str]:
    """Every output of one case in ``out_dir``; returns {kind: file name}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    grid = case_grid(case)
    for name, arr in result.maps.items():
        p = out_dir / f"{name}.nii.gz"
        write_nifti(Image(np.asarray(arr, dtype=np.float32), grid, "1"), p)
        files[name] = p.name
    if reference_spect is not None:
        for name, label in _DOSE_MAPS.items():
            if name in result.maps:
                ds = rt_dose(result.maps[name], grid, reference_spect, label)
                p = out_dir / f"{name}_rtdose.dcm"
                ds.save_as(p, enforce_file_format=True)
                files[f"{name}_rtdose"] = p.name
    _plots(result, out_dir, files)
    for key, path in (overlays or {}).items():
        files[key] = Path(path).name
    files["results"] = "results.json"
    files["summary"] = "summary.html"
    doc = {**result.summary, "software": software_version(), "files": files}
    if provenance:
        doc["inputs"] = dict(provenance)
    html = render_html(doc)
    (out_dir / "summary.html").write_text(html, encoding="utf-8")
    why_not = write_pdf(html, out_dir / "report.pdf", out_dir)
    if why_not is None:
        files["report_pdf"] = "report.pdf"
    else:
        doc["warnings"] = [*doc["warnings"], why_not]
        doc["warning_messages"] = notes.messages(doc["warnings"])
    (out_dir / "results.json").write_text(
        json.dumps(json_safe(doc), indent=2) + "\n", encoding="utf-8"
    )
    return files


def _plots(result: CaseResult, out_dir: Path, files: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.tacs)
    ncol = min(3, len(names))
    nrow = math.ceil(len(names) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.8 * nrow), dpi=90, squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        t, a, curve = result.tacs[name]
        ax.plot(t, a, "o", label=gettext("measured"))
        if curve is not None:
            method = result.summary["vois"][name]["tia"]["method"]
            ax.plot(curve[0], curve[1], "-", label=notes.method_label(method))
        ax.set_xlabel(gettext("time after injection (h)"))
        ax.set_ylabel(gettext("activity (MBq)"))
        ax.set_title(name)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    fig.subplots_adjust(hspace=0.55, wspace=0.4, left=0.08, right=0.98, top=0.93, bottom=0.1)
    fig.savefig(out_dir / "tac.png")
    plt.close(fig)
    files["tac"] = "tac.png"
    fig, ax = plt.subplots(figsize=(6.0, 3.8), dpi=90)
    method = "kernel" if "dose_kernel_gy" in result.maps else "local"
    for name, v in result.summary["vois"].items():
        dv = v["voxel"].get(method)
        if dv and v["kind"] != "remainder":
            ax.plot(dv["dvh_dose_gy"], [100 * f for f in dv["dvh_volume_fraction"]], label=name)
    ax.set_xlabel(
        gettext("absorbed dose (Gy, voxel {method})").format(method=notes.method_label(method))
    )
    ax.set_ylabel(gettext("volume receiving at least the dose (%)"))
    ax.set_ylim(0, 102)
    ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.95, bottom=0.14)
    fig.savefig(out_dir / "dvh.png")
    plt.close(fig)
    files["dvh"] = "dvh.png"


# --------------------------------------------------------------------------------- RT Dose


def _axial_order(grid: Grid, array: NDArray[Any]) -> tuple[Grid, NDArray[Any]]:
    """RT Dose frames go along the row × column normal (Grid Frame Offset Vector increasing):
    a grid whose slice axis points the other way is written with its slices reversed."""
    a = grid.affine
    normal = np.cross(a[:3, 0], a[:3, 1])
    if float(np.dot(normal, a[:3, 2])) >= 0:
        return grid, array
    flipped = a.copy()
    flipped[:3, 3] = a[:3, 3] + a[:3, 2] * (grid.shape[0] - 1)
    flipped[:3, 2] = -a[:3, 2]
    return Grid(grid.shape, flipped), array[::-1]


def rt_dose(dose_gy: NDArray[Any], grid: Grid, spect: Dataset, label: str) -> Dataset:
    """An RT Dose instance of ``dose_gy`` (on ``grid``) in the SPECT's study and frame of
    reference, patient module copied from the (de-identified) SPECT."""
    grid.check_orthonormal("dose map")
    grid, dose = _axial_order(grid, np.asarray(dose_gy, dtype=np.float64))
    sop_uid = generate_uid(prefix=UID_ROOT)
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(RT_DOSE_SOP)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(UID_ROOT + "1")
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    for key in (
        "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientIdentityRemoved",
        "DeidentificationMethod", "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID",
        "AccessionNumber", "ReferringPhysicianName", "ClinicalTrialSponsorName",
        "ClinicalTrialProtocolID", "ClinicalTrialSubjectID", "ClinicalTrialSiteID",
        "ClinicalTrialTimePointID", "FrameOfReferenceUID", "PositionReferenceIndicator",
    ):  # fmt: skip
        if key in spect:
            ds[key] = spect[key]
    now = dt.datetime.now(dt.UTC)
    ds.SOPClassUID = RT_DOSE_SOP
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "RTDOSE"
    ds.SeriesInstanceUID = generate_uid(prefix=UID_ROOT)
    ds.SeriesNumber = 901
    ds.InstanceNumber = 1
    ds.SeriesDescription = f"Lu-177 absorbed dose ({label})"
    ds.Manufacturer = "reluth"
    ds.SoftwareVersions = software_version()
    ds.ContentDate = ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.ContentTime = ds.InstanceCreationTime = now.strftime("%H%M%S")
    ref = Dataset()
    ref.ReferencedSOPClassUID = spect.SOPClassUID
    ref.ReferencedSOPInstanceUID = spect.SOPInstanceUID
    ds.ReferencedImageSequence = Sequence([ref])
    a = grid.affine
    sp = grid.spacing_mm
    ds.ImagePositionPatient = [f"{x:.6f}" for x in a[:3, 3]]
    ds.ImageOrientationPatient = [f"{x:.8f}" for x in (*(a[:3, 0] / sp[0]), *(a[:3, 1] / sp[1]))]
    ds.PixelSpacing = [f"{sp[1]:.6f}", f"{sp[0]:.6f}"]
    ds.SliceThickness = f"{sp[2]:.6f}"
    ds.GridFrameOffsetVector = [f"{k * sp[2]:.6f}" for k in range(grid.shape[0])]
    ds.FrameIncrementPointer = Tag(0x3004, 0x000C)
    ds.NumberOfFrames = grid.shape[0]
    ds.Rows, ds.Columns = grid.shape[1], grid.shape[2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = "PLAN"
    ds.DoseComment = f"voxel dosimetry, {label}"[:64]
    top = float(dose.max()) if dose.size else 0.0
    scaling = top / 4_000_000_000.0 if top > 0 else 1.0
    ds.DoseGridScaling = f"{scaling:.10g}"
    stored = np.round(np.clip(dose, 0.0, None) / float(ds.DoseGridScaling)).astype(np.uint32)
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    return ds


def read_rt_dose(ds: Dataset) -> Image:
    """An RT Dose instance as Gy on its grid (for checking what was written)."""
    from reluth.dosimetry.dicom_images import _grid

    arr = np.asarray(ds.pixel_array, dtype=np.float64) * float(ds.DoseGridScaling)
    if arr.ndim == 2:
        arr = arr[None]
    offsets = [float(x) for x in ds.GridFrameOffsetVector]
    step = offsets[1] - offsets[0] if len(offsets) > 1 else float(ds.SliceThickness)
    grid = _grid(tuple(arr.shape), ds.ImagePositionPatient, ds.ImageOrientationPatient,
                 ds.PixelSpacing, step)  # fmt: skip
    return Image(arr, grid, "Gy")


# ---------------------------------------------------------------------------------- report


def _environment() -> Any:
    import jinja2

    folder = resources.files("reluth.web").joinpath("templates")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=jinja2.select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["num"] = _num
    env.filters["moment"] = _moment
    env.globals["label"] = label
    env.globals["method_label"] = env.filters["method"] = notes.method_label
    env.globals["organ_label"] = notes.organ_label
    env.globals["shown_note"] = notes.shown
    env.tests["startingwith"] = lambda value, prefix: str(value).startswith(prefix)
    return env


def _num(x: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant digits (floats), as the reader's language writes it
    (Babel: ``3,02`` and ``7 400`` in French); a numeric text likewise, other text as it is."""
    if x is None:
        return "—"
    if isinstance(x, str):
        try:
            x = Decimal(x)
        except ArithmeticError:
            return x
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return format_number(Decimal(f"{x:.{digits}g}"))
    if isinstance(x, int | Decimal):
        return format_number(x)
    return str(x)


def _moment(value: Any) -> str:
    """An ISO date-time of the case (the header's injection time, no zone) with the day as
    the reader's language writes it."""
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return f"{format_day(moment)} {moment:%H:%M}"


def limit_rows(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each limit of limits.yaml against this case's cumulative value (with the stored cycles
    it was given)."""
    rows = []
    risk = bool(doc.get("risk_factors", False))
    for lim in default_limits():
        if lim.applies_to == "risk_factors" and not risk:
            continue
        if lim.applies_to == "no_risk_factors" and risk:
            continue
        organ = (doc.get("cumulative") or {}).get(lim.organ) or {}
        value = organ.get(
            "cumulative_absorbed_dose_gy"
            if lim.quantity == "absorbed_dose_gy"
            else "cumulative_bed_gy"
        )
        rows.append(
            {
                "organ": lim.organ,
                "quantity": lim.quantity,
                "limit_gy": str(lim.limit_gy),
                "value_gy": value,
                "reached": value is not None and reaches(float(value), lim.limit_gy),
                "source": lim.source,
            }
        )
    return rows


def render_html(doc: Mapping[str, Any]) -> str:
    """The per-patient report (Jinja2 template ``dosimetry_report.html``), in the current
    language (the CLI's follows ``LANG``)."""
    return str(
        _environment()
        .get_template("dosimetry_report.html")
        .render(
            d=doc,
            warnings=notes.shown_all(doc),
            limits=limit_rows(doc),
            software=doc.get("software", software_version()),
            lang=get_locale(),
        )
    )


def write_pdf(html: str, path: Path, base: Path) -> str | None:
    """``report.pdf`` by WeasyPrint; None when written, else why not (a warning)."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:
        return notes.note(
            "dosimetry.pdf_no_weasyprint",
            N_("report.pdf not written: WeasyPrint unavailable ({kind}: {error})"),
            kind=exc.__class__.__name__,
            error=str(exc),
        )
    try:
        weasyprint.HTML(string=html, base_url=str(base)).write_pdf(str(path))
    except (OSError, ValueError) as exc:
        return notes.note(
            "dosimetry.pdf_failed", N_("report.pdf not written: {error}"), error=str(exc)
        )
    return None
