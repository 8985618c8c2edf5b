"""Volumes of interest from DICOM RTSTRUCT, DICOM SEG and NIfTI, as masks on a given grid, and
the configurable table that maps ROI names to the pipeline's VOIs (``data/roi_organs.yaml``).

RTSTRUCT (PS3.3 C.8.8.6): CLOSED_PLANAR contours in patient coordinates are rasterised on the
target grid directly: each slice of the grid takes the contours of the nearest contour plane
within half the contour-plane spacing; a voxel is inside when its centre is inside an odd
number of that plane's polygons of the ROI (holes drawn as inner contours; matplotlib's
``Path.contains_points``). Contours must be parallel to the grid's slices (else refused).
SEG: read by highdicom (``segread``/``get_volume``), masks resampled nearest neighbour.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from reluth.dosimetry.image import Grid, GridPolicy, Image, onto
from reluth.dosimetry.notes import note
from reluth.i18n import N_
from reluth.i18n.reasons import invalid

RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"
SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
PLANE_TOLERANCE_VOXEL = 0.05  # a contour's points off its plane by at most this (in slices)


# ------------------------------------------------------------------------------ organ table


@dataclass(frozen=True)
class OrganEntry:
    voi: str
    kind: str
    svalue_organ: str | None


@dataclass(frozen=True)
class OrganTable:
    names: dict[str, OrganEntry]
    tumour_patterns: tuple[re.Pattern[str], ...]

    def lookup(self, roi_name: str) -> OrganEntry | None:
        key = fold(roi_name)
        if key in self.names:
            return self.names[key]
        if any(p.fullmatch(key) for p in self.tumour_patterns):
            return OrganEntry(key.replace(" ", "_"), "tumour", None)
        return None


def fold(name: str) -> str:
    """Case, accents and separators folded: 'Rein_G' → 'rein g'."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[_\-.]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def parse_organ_table(doc: Any, where: str = "organ table") -> OrganTable:
    if not isinstance(doc, dict) or not isinstance(doc.get("organs"), list):
        raise invalid(
            where, "no_organs_list", N_("no organs list"), N_("organs: [{{voi, kind, names}}]")
        )
    names: dict[str, OrganEntry] = {}
    for i, o in enumerate(doc["organs"]):
        w = f"{where}.organs[{i}]"
        if not isinstance(o, dict) or not isinstance(o.get("voi"), str):
            raise invalid(w, "no_voi_name", N_("no voi name"), N_("{{voi, kind, names}}"))
        kind = o.get("kind", "organ")
        if kind not in ("organ", "tumour", "remainder"):
            raise invalid(
                f"{w}.kind",
                "unaccepted_w_kind",
                N_("{kind}"),
                N_("organ, tumour, remainder"),
                kind=repr(kind),
            )
        entry = OrganEntry(o["voi"], kind, o.get("svalue_organ"))
        for n in [o["voi"], *(o.get("names") or [])]:
            key = fold(str(n))
            if key in names and names[key] != entry:
                raise invalid(
                    f"{w}.names",
                    "also_maps",
                    N_("{n} also maps to {voi}"),
                    n=repr(n),
                    voi=str(names[key].voi),
                )
            names[key] = entry
    patterns = []
    for p in doc.get("tumour_patterns") or []:
        try:
            patterns.append(re.compile(str(p)))
        except re.error as exc:
            raise invalid(
                f"{where}.tumour_patterns",
                "unaccepted_where_tumour_patterns",
                N_("{p}: {exc_name}"),
                p=repr(p),
                exc_name=str(exc),
            ) from None
    return OrganTable(names, tuple(patterns))


def default_organ_table() -> OrganTable:
    text = resources.files("reluth.dosimetry").joinpath("data/roi_organs.yaml").read_text("utf-8")
    return parse_organ_table(yaml.safe_load(text), "roi_organs.yaml")


def load_organ_table(path: Path) -> OrganTable:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise invalid(
            "--organ-table",
            "cannot_read_2",
            N_("cannot read {path}: {exc_name}"),
            N_("YAML"),
            path=str(path),
            exc_name=str(exc),
        ) from None
    return parse_organ_table(doc, "--organ-table")


# ------------------------------------------------------------------------------------ masks


@dataclass(frozen=True)
class NamedMask:
    roi_name: str
    entry: OrganEntry
    mask: Image  # unit "mask", on the target grid
    source: str  # "RTSTRUCT", "SEG", "NIfTI"
    frame_of_reference_uid: str = ""


def map_names(
    masks: dict[str, tuple[Image, str]],
    table: OrganTable,
    source: str,
    notes: list[str],
) -> list[NamedMask]:
    """ROI names → VOIs; names the table does not know are left out with a note; two ROIs
    for one VOI are refused."""
    out: dict[str, NamedMask] = {}
    unknown = []
    for roi, (mask, for_uid) in masks.items():
        entry = table.lookup(roi)
        if entry is None:
            unknown.append(roi)
            continue
        if entry.voi in out:
            raise invalid(
                f"{source} ROI {roi!r}",
                "maps_roi_does",
                N_("maps to {voi}, as ROI {roi_name} does"),
                N_("one ROI per volume of interest"),
                voi=str(entry.voi),
                roi_name=repr(out[entry.voi].roi_name),
            )
        if not mask.array.any():
            notes.append(
                note(
                    "dosimetry.roi_empty",
                    N_("{source} ROI {roi}: empty on the SPECT grid, not used"),
                    source=source,
                    roi=repr(roi),
                )
            )
            continue
        out[entry.voi] = NamedMask(roi, entry, mask, source, for_uid)
    if unknown:
        notes.append(
            note(
                "dosimetry.rois_unknown",
                N_("{source}: ROIs not in the organ table, not used: {rois}"),
                source=source,
                rois=sorted(unknown),
            )
        )
    if not out:
        raise invalid(
            source,
            "no_roi_maps_organ_tumour",
            N_("no ROI maps to an organ or tumour"),
            N_("ROI names in the organ table"),
        )
    return list(out.values())


def _polygon_mask(polys: list[NDArray[np.float64]], ni: int, nj: int) -> NDArray[np.bool_]:
    from matplotlib.path import Path as MplPath

    jj, ii = np.mgrid[0:nj, 0:ni]
    centres = np.column_stack([ii.ravel(), jj.ravel()]).astype(np.float64)
    inside = np.zeros(ni * nj, dtype=bool)
    for poly in polys:
        lo, hi = poly.min(axis=0), poly.max(axis=0)
        box = (
            (centres[:, 0] >= lo[0])
            & (centres[:, 0] <= hi[0])
            & (centres[:, 1] >= lo[1])
            & (centres[:, 1] <= hi[1])
        )
        if box.any():
            hit = MplPath(poly).contains_points(centres[box])
            inside[np.flatnonzero(box)[hit]] ^= True
    return inside.reshape(nj, ni)


def rasterise_contours(
    contours: list[NDArray[np.float64]], grid: Grid, what: str
) -> NDArray[np.bool_]:
    """Closed planar contours (each an (n, 3) array of LPS mm points) as a mask on ``grid``."""
    inv = np.linalg.inv(grid.affine)
    planes: dict[float, list[NDArray[np.float64]]] = {}
    for c in contours:
        ijk = np.asarray((inv @ np.column_stack([c, np.ones(len(c))]).T).T[:, :3], np.float64)
        kc = ijk[:, 2]
        if float(kc.max() - kc.min()) > PLANE_TOLERANCE_VOXEL:
            raise invalid(
                what,
                "contours_are_not_parallel_spect",
                N_("contours are not parallel to the SPECT slices"),
                N_("contours drawn on axial slices of an axial SPECT/CT"),
            )
        planes.setdefault(round(float(kc.mean()), 4), []).append(ijk[:, :2])
    nk, nj, ni = grid.shape
    mask = np.zeros(grid.shape, dtype=bool)
    ks = np.array(sorted(planes))
    if len(ks) == 0:
        return mask
    half = 0.5 * (float(np.min(np.diff(ks))) if len(ks) > 1 else 1.0)
    for k in range(nk):
        nearest = int(np.argmin(np.abs(ks - k)))
        if abs(ks[nearest] - k) <= half + 1e-6:
            mask[k] = _polygon_mask(planes[float(ks[nearest])], ni, nj)
    return mask


def read_rtstruct(ds: Dataset, grid: Grid) -> dict[str, tuple[Image, str]]:
    """Every ROI with closed planar contours of an RTSTRUCT, rasterised on ``grid``."""
    if str(ds.get("SOPClassUID", "")) != RTSTRUCT_SOP and ds.get("Modality") != "RTSTRUCT":
        raise invalid("VOIs", "not_rt_structure_set", N_("not an RT Structure Set"), N_("RTSTRUCT"))
    rois = {
        int(r.ROINumber): (str(r.ROIName), str(r.get("ReferencedFrameOfReferenceUID", "")))
        for r in ds.get("StructureSetROISequence") or []
    }
    out: dict[str, tuple[Image, str]] = {}
    for rc in ds.get("ROIContourSequence") or []:
        number = int(rc.ReferencedROINumber)
        name, for_uid = rois.get(number, (f"ROI {number}", ""))
        contours = []
        for c in rc.get("ContourSequence") or []:
            kind = str(c.get("ContourGeometricType", ""))
            if kind == "POINT":
                continue
            if kind != "CLOSED_PLANAR":
                raise invalid(
                    f"RTSTRUCT ROI {name!r}",
                    "contour",
                    N_("{kind} contour"),
                    N_("CLOSED_PLANAR contours"),
                    kind=str(kind),
                )
            pts = np.asarray([float(x) for x in c.ContourData], dtype=np.float64).reshape(-1, 3)
            if len(pts) >= 3:
                contours.append(pts)
        if contours:
            mask = rasterise_contours(contours, grid, f"RTSTRUCT ROI {name!r}")
            out[name] = (Image(mask, grid, "mask"), for_uid)
    return out


def read_seg(
    ds: Dataset, grid: Grid, policy: GridPolicy, notes: list[str]
) -> dict[str, tuple[Image, str]]:
    """Every segment of a DICOM SEG (binary or fractional > 0.5), on ``grid`` (nearest
    neighbour when the SEG's own grid differs: noted or refused as ``policy`` says)."""
    import highdicom as hd

    try:
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
        vol = seg.get_volume(combine_segments=False, dtype=np.float32)
    except (ValueError, AttributeError, KeyError, RuntimeError) as exc:
        raise invalid(
            "SEG",
            "cannot_read_segmentation",
            N_("cannot read the segmentation: {exc_name}"),
            N_("DICOM SEG"),
            exc_name=str(exc),
        ) from None
    if vol is None:
        raise invalid(
            "SEG",
            "frames_do_not_form_regular",
            N_("frames do not form a regular volume"),
            N_("a volumetric SEG"),
        )
    out: dict[str, tuple[Image, str]] = {}
    for desc in seg.SegmentSequence:
        number = int(desc.SegmentNumber)
        ch = (
            vol.get_channel(ReferencedSegmentNumber=number)
            if vol.number_of_channel_dimensions
            else vol
        )
        img = Image.from_sitk(ch.to_simpleitk(), "1")
        mask = Image(img.array > 0.5, img.grid, "mask")
        label = str(desc.SegmentLabel)
        mask = onto(mask, grid, f"SEG segment {label!r}", policy, notes)
        out[label] = (mask, str(ds.get("FrameOfReferenceUID", "")))
    return out


def masks_from_dataset(
    ds: Dataset, grid: Grid, policy: GridPolicy, notes: list[str]
) -> tuple[dict[str, tuple[Image, str]], str]:
    """RTSTRUCT or SEG, by SOP class; (masks by ROI name, source label)."""
    sop = str(ds.get("SOPClassUID", ""))
    if sop == RTSTRUCT_SOP or ds.get("Modality") == "RTSTRUCT":
        return read_rtstruct(ds, grid), "RTSTRUCT"
    if sop == SEG_SOP or ds.get("Modality") == "SEG":
        return read_seg(ds, grid, policy, notes), "SEG"
    raise invalid(
        "VOIs",
        "object_sop_class",
        N_("{get} object (SOP class {sop})"),
        N_("RTSTRUCT or SEG"),
        get=str(ds.get("Modality", "?")),
        sop=str(sop),
    )
