"""A synthetic Lu-177 SPECT/CT dosimetry study in DICOM with known truth, as a hospital exports
it (identifiers planted, so that it goes through de-identification and the store).

Anatomy in patient coordinates (LPS, mm, about the field-of-view centre): left and right
kidneys, liver, spleen, three spherical lesions of different radii and a body of soft tissue;
each with a mono-exponential concentration C0·e^(−ln 2·t/T_eff), so that the time-integrated
activity of an object is n_voxels · V · C0 · T_eff/ln 2 on the reference grid (voxels whose
centre is inside). Per time point: SPECT in BQML or in counts (with the camera calibration and
acquisition duration), any DecayCorrection, an optional Real World Value Mapping, an optional
own voxel size, and an optional shift of the patient (a repositioning that registration must
undo); a CT on the SPECT's slice planes; an RTSTRUCT drawn on the reference CT with the ROI
names centres write ("Rein gauche", "Kidney right", "Lesion 1", ...).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from reluth.dosimetry.image import Grid
from reluth.imaging.synthetic import SyntheticOptions, SyntheticPatient, make_ct, make_spect

LU177_HALF_LIFE_H = 159.5280  # 574300.8 s, the value written in RadionuclideHalfLife
ROOT = "1.2.826.0.1.3680043.8.498.77."
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"


@dataclass(frozen=True)
class Obj:
    voi: str  # the VOI the pipeline should name it
    roi_name: str  # as written in the RTSTRUCT
    centre_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    conc0_bq_per_ml: float
    effective_half_life_h: float
    hu: float

    def inside(self, x: NDArray[Any], y: NDArray[Any], z: NDArray[Any]) -> NDArray[np.bool_]:
        cx, cy, cz = self.centre_mm
        rx, ry, rz = self.radii_mm
        return np.asarray(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1.0)


OBJECTS: tuple[Obj, ...] = (
    Obj("kidney_left", "Rein gauche", (45.0, 25.0, 0.0), (16.0, 14.0, 24.0), 6.0e4, 50.0, 30.0),
    Obj("kidney_right", "Kidney right", (-45.0, 25.0, 2.0), (15.0, 14.0, 23.0), 5.5e4, 45.0, 30.0),
    Obj("liver", "Liver", (-30.0, -5.0, 46.0), (34.0, 30.0, 16.0), 3.0e4, 60.0, 60.0),
    Obj("spleen", "Spleen", (45.0, 15.0, 47.0), (18.0, 15.0, 14.0), 4.0e4, 65.0, 50.0),
    Obj("lesion_1", "Lesion 1", (0.0, -30.0, -38.0), (13.0, 13.0, 13.0), 2.5e5, 90.0, 45.0),
    Obj("lesion_2", "Lesion 2", (25.0, -32.0, 6.0), (9.0, 9.0, 9.0), 2.0e5, 80.0, 45.0),
    Obj("lesion_3", "Lesion 3", (-18.0, -32.0, 8.0), (6.0, 6.0, 6.0), 2.0e5, 80.0, 45.0),
)
BODY = Obj("body", "BODY", (0.0, 0.0, 0.0), (100.0, 72.0, 1e6), 2.0e3, 40.0, 40.0)


@dataclass(frozen=True)
class TimePoint:
    hours: float
    units: str = "BQML"  # BQML | CNTS
    decay_correction: str = "START"  # START | ADMIN | NONE
    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    voxel_mm: float | None = None  # default: the study's
    real_world_mapping: bool = False


DEFAULT_TIME_POINTS = (
    TimePoint(4.0, "CNTS", "NONE"),
    TimePoint(24.0, "BQML", "ADMIN", real_world_mapping=True),
    TimePoint(96.0, "BQML", "START", shift_mm=(8.84, -4.42, 4.42)),  # 2, -1, 1 voxels
    TimePoint(168.0, "CNTS", "NONE"),
)


@dataclass(frozen=True)
class StudySpec:
    matrix: int = 32
    voxel_mm: float = 4.42
    ct_matrix: int = 64
    ct_pixel_mm: float = 2.8
    time_points: tuple[TimePoint, ...] = DEFAULT_TIME_POINTS
    reference_index: int = 0  # the time point the RTSTRUCT is drawn on
    calibration_cps_per_mbq: float = 11.6
    frames_per_rotation: int = 60
    seconds_per_frame: float = 15.0
    collimator: str = "MEGP"
    patient: SyntheticPatient = field(default_factory=SyntheticPatient)
    ct_noise_hu: float = 8.0
    seed: int = 0

    @property
    def duration_s(self) -> float:
        return self.frames_per_rotation * self.seconds_per_frame


def spect_grid(spec: StudySpec, tp: TimePoint) -> Grid:
    v = tp.voxel_mm or spec.voxel_mm
    n = spec.matrix
    half = (n - 1) / 2.0 * v
    return Grid.from_geometry((n, n, n), (v, v, v), (-half, -half, -half))


def ct_grid(spec: StudySpec, tp: TimePoint) -> Grid:
    """In-plane finer than the SPECT, slices on the SPECT's slice planes."""
    sg = spect_grid(spec, tp)
    p, m = spec.ct_pixel_mm, spec.ct_matrix
    half = (m - 1) / 2.0 * p
    return Grid.from_geometry(
        (spec.matrix, m, m), (p, p, sg.spacing_mm[2]), (-half, -half, sg.origin_mm[2])
    )


def _centres(grid: Grid) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    nk, nj, ni = grid.shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    a = grid.affine
    x = a[0, 0] * i + a[0, 1] * j + a[0, 2] * k + a[0, 3]
    y = a[1, 0] * i + a[1, 1] * j + a[1, 2] * k + a[1, 3]
    z = a[2, 0] * i + a[2, 1] * j + a[2, 2] * k + a[2, 3]
    return x, y, z


def object_masks(
    grid: Grid, shift: tuple[float, float, float] = (0, 0, 0)
) -> dict[str, NDArray[np.bool_]]:
    x, y, z = _centres(grid)
    x, y, z = x - shift[0], y - shift[1], z - shift[2]
    out = {"body": BODY.inside(x, y, z)}
    for o in OBJECTS:
        out[o.voi] = o.inside(x, y, z)
    return out


def concentration(
    grid: Grid, hours: float, shift: tuple[float, float, float]
) -> NDArray[np.float64]:
    masks = object_masks(grid, shift)
    lam = math.log(2) / BODY.effective_half_life_h
    c = np.where(masks["body"], BODY.conc0_bq_per_ml * math.exp(-lam * hours), 0.0)
    for o in OBJECTS:
        c = np.where(
            masks[o.voi],
            o.conc0_bq_per_ml * math.exp(-math.log(2) / o.effective_half_life_h * hours),
            c,
        )
    return np.asarray(c, dtype=np.float64)


def hounsfield(
    grid: Grid, shift: tuple[float, float, float], rng: np.random.Generator, noise: float
) -> NDArray[np.float64]:
    x, y, z = _centres(grid)
    x, y, z = x - shift[0], y - shift[1], z - shift[2]
    hu = np.where(BODY.inside(x, y, z), BODY.hu, -1000.0)
    for cx in (-48.0, 48.0):  # lungs above the liver and spleen
        lung = ((x - cx) / 38) ** 2 + ((y - 5) / 45) ** 2 + ((z - 100) / 40) ** 2 <= 1
        hu = np.where(lung, -820.0, hu)
    for o in OBJECTS:
        hu = np.where(o.inside(x, y, z), o.hu, hu)
    spine = ((x / 14) ** 2 + ((y - 58) / 12) ** 2 <= 1) & (np.mod(z + 200.0, 27.0) < 20.0)
    hu = np.where(spine, 650.0, hu)
    disc = ((x / 14) ** 2 + ((y - 58) / 12) ** 2 <= 1) & ~spine
    hu = np.where(disc, 90.0, hu)
    ribs = (np.abs(np.hypot(x / 100, y / 72) - 0.93) < 0.03) & (np.mod(z + 200.0, 22.0) < 9.0)
    hu = np.where(ribs, 500.0, hu)
    return hu + rng.normal(0.0, noise, size=hu.shape)


def truth(spec: StudySpec) -> dict[str, Any]:
    """Closed-form truth on the reference time point's SPECT grid."""
    ref = spec.time_points[spec.reference_index]
    grid = spect_grid(spec, ref)
    masks = object_masks(grid, ref.shift_mm)
    v = grid.voxel_volume_ml
    out: dict[str, Any] = {}
    for o in (*OBJECTS, BODY):
        n = int(masks[o.voi].sum())
        out[o.voi] = {
            "roi_name": o.roi_name,
            "voxels": n,
            "volume_ml": n * v,
            "conc0_bq_per_ml": o.conc0_bq_per_ml,
            "effective_half_life_h": o.effective_half_life_h,
            "tia_mbq_h": n * v * o.conc0_bq_per_ml * o.effective_half_life_h / math.log(2) / 1e6,
            "radius_mm": o.radii_mm[0] if o.voi.startswith("lesion") else None,
        }
    return {"vois": out, "voxel_ml": v, "shifts_mm": [list(t.shift_mm) for t in spec.time_points]}


def calibration_doc(spec: StudySpec) -> dict[str, Any]:
    return {
        "calibrations": [
            {
                "device_serial": spec.patient.device_serial,
                "collimator": spec.collimator,
                "cps_per_mbq": spec.calibration_cps_per_mbq,
                "unit": "cps/MBq",
                "measured_on": (spec.patient.injection.date() - dt.timedelta(days=20)).isoformat(),
                "method": "cylinder phantom, 208 keV window",
            },
            {  # an older one that must not be used
                "device_serial": spec.patient.device_serial,
                "collimator": spec.collimator,
                "cps_per_mbq": spec.calibration_cps_per_mbq * 1.3,
                "unit": "cps/MBq",
                "measured_on": (spec.patient.injection.date() - dt.timedelta(days=400)).isoformat(),
            },
        ]
    }


def _set_times(ds: Dataset, when: dt.datetime) -> None:
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time
    if "AcquisitionDateTime" in ds:
        ds.AcquisitionDateTime = date + time


def _uid(*parts: object) -> str:
    return generate_uid(prefix=ROOT, entropy_srcs=[str(p) for p in parts])


def spect_dataset(spec: StudySpec, tp: TimePoint, study_uid: str, for_uid: str) -> Dataset:
    p = spec.patient
    opts = SyntheticOptions(matrix=spec.matrix, seed=spec.seed)
    ds = make_spect(p, tp.hours, study_uid, for_uid, opts)
    start = p.injection + dt.timedelta(hours=tp.hours)
    _set_times(ds, start)
    grid = spect_grid(spec, tp)
    lam_phys = math.log(2) / (LU177_HALF_LIFE_H * 3600.0)
    conc = concentration(grid, tp.hours, tp.shift_mm)  # Bq/mL at the acquisition start
    duration = spec.duration_s
    if tp.decay_correction == "ADMIN":
        stored_activity = conc * math.exp(lam_phys * tp.hours * 3600.0)
    elif tp.decay_correction == "START":
        stored_activity = conc
    else:  # NONE: the mean over the acquisition (physical decay during it)
        x = lam_phys * duration
        stored_activity = conc * (-math.expm1(-x)) / x
    if tp.units == "CNTS":
        mbq_per_voxel = stored_activity * grid.voxel_volume_ml / 1e6
        values = mbq_per_voxel * spec.calibration_cps_per_mbq * duration
    else:
        values = stored_activity
    slope = float(values.max()) / 65000.0
    ds.PixelData = np.round(values / slope).astype(np.uint16).tobytes()
    ds.Units = tp.units
    ds.DecayCorrection = tp.decay_correction
    ds.FrameReferenceTime = 0
    ds.ActualFrameDuration = int(spec.seconds_per_frame * 1000)
    if tp.real_world_mapping:
        # a vendor writing the true slope only in the Real World Value Mapping
        ds.RescaleSlope = "1"
        m = Dataset()
        m.RealWorldValueFirstValueMapped = 0
        m.RealWorldValueLastValueMapped = 65535
        m.RealWorldValueSlope = slope
        m.RealWorldValueIntercept = 0.0
        m.LUTExplanation = "Bq/ml"
        m.LUTLabel = "BQML"
        code = Dataset()
        code.CodeValue = "Bq/ml" if tp.units == "BQML" else "{counts}"
        code.CodingSchemeDesignator = "UCUM"
        code.CodeMeaning = "Becquerels/milliliter" if tp.units == "BQML" else "Counts"
        m.MeasurementUnitsCodeSequence = Sequence([code])
        ds.RealWorldValueMappingSequence = Sequence([m])
    else:
        ds.RescaleSlope = f"{slope:.10g}"
    v = grid.spacing_mm[0]
    ds.PixelSpacing = [f"{v:.6g}", f"{v:.6g}"]
    ds.SliceThickness = ds.SpacingBetweenSlices = f"{v:.6g}"
    for head in ds.DetectorInformationSequence:
        head.ImagePositionPatient = [f"{c:.6g}" for c in grid.origin_mm]
        head.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        head.CollimatorGridName = spec.collimator
    for rot in ds.RotationInformationSequence:
        rot.NumberOfFramesInRotation = spec.frames_per_rotation
        rot.ActualFrameDuration = int(spec.seconds_per_frame * 1000)
    return ds


def ct_datasets(spec: StudySpec, tp: TimePoint, study_uid: str, for_uid: str) -> list[Dataset]:
    p = spec.patient
    grid = ct_grid(spec, tp)
    nk, _nj, ni = grid.shape
    opts = SyntheticOptions(ct_slices=nk, ct_size=ni, seed=spec.seed)
    out = make_ct(p, tp.hours, study_uid, for_uid, opts)
    rng = np.random.default_rng(spec.seed + int(tp.hours))
    hu = hounsfield(grid, tp.shift_mm, rng, spec.ct_noise_hu)
    when = p.injection + dt.timedelta(hours=tp.hours, minutes=-5)
    for k, ds in enumerate(out):
        _set_times(ds, when)
        pos = grid.affine @ np.array([0, 0, k, 1.0])
        ds.ImagePositionPatient = [f"{c:.6g}" for c in pos[:3]]
        ds.PixelSpacing = [f"{spec.ct_pixel_mm:.6g}"] * 2
        ds.SliceThickness = f"{grid.spacing_mm[2]:.6g}"
        ds.PixelData = np.clip(np.round(hu[k] + 1024), -32768, 32767).astype(np.int16).tobytes()
    return out


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(ROOT + "1")
    return meta


def ellipse_contours(
    o: Obj, z_planes: list[float], shift: tuple[float, float, float], n: int = 128
) -> list[NDArray[np.float64]]:
    """Closed planar contours of an ellipsoid on the given axial planes (LPS mm)."""
    cx, cy, cz = (o.centre_mm[i] + shift[i] for i in range(3))
    rx, ry, rz = o.radii_mm
    out = []
    th = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    for z in z_planes:
        f = 1.0 - ((z - cz) / rz) ** 2
        if f <= 0:
            continue
        s = math.sqrt(f)
        # circumscribed polygon scaled so that its area equals the ellipse's
        scale = s * math.sqrt(2 * math.pi / (n * math.sin(2 * math.pi / n)))
        pts = np.column_stack(
            [cx + rx * scale * np.cos(th), cy + ry * scale * np.sin(th), np.full(n, z)]
        )
        out.append(pts)
    return out


def rtstruct_dataset(
    spec: StudySpec, cts: list[Dataset], objects: tuple[Obj, ...] = (*OBJECTS, BODY)
) -> Dataset:
    """An RT Structure Set on the reference CT, one ROI per object."""
    ref = spec.time_points[spec.reference_index]
    ct0 = cts[0]
    sop_uid = _uid("rtstruct", spec.seed)
    ds = Dataset()
    ds.file_meta = _file_meta(RTSTRUCT_SOP, sop_uid)
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = RTSTRUCT_SOP
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "RTSTRUCT"
    for key in ("StudyInstanceUID", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "InstitutionName",
                "ReferringPhysicianName", "Manufacturer", "PatientWeight"):  # fmt: skip
        if key in ct0:
            setattr(ds, key, ct0.get(key))
    ds.SeriesInstanceUID = _uid("rtstruct-series", spec.seed)
    ds.SeriesNumber = 5
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "DOSI"
    ds.StructureSetName = f"VOIs by {spec.patient.name}"
    when = spec.patient.injection + dt.timedelta(hours=ref.hours, minutes=40)
    ds.StructureSetDate = ds.SeriesDate = when.strftime("%Y%m%d")
    ds.StructureSetTime = ds.SeriesTime = when.strftime("%H%M%S")
    ds.OperatorsName = "PETIT^ANNE"
    contour_images = Sequence()
    for ct in cts:
        item = Dataset()
        item.ReferencedSOPClassUID = ct.SOPClassUID
        item.ReferencedSOPInstanceUID = ct.SOPInstanceUID
        contour_images.append(item)
    series = Dataset()
    series.SeriesInstanceUID = ct0.SeriesInstanceUID
    series.ContourImageSequence = contour_images
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = ct0.StudyInstanceUID
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = ct0.FrameOfReferenceUID
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    z_planes = sorted(float(c.ImagePositionPatient[2]) for c in cts)
    rois, contours, observations = Sequence(), Sequence(), Sequence()
    for number, o in enumerate(objects, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = ct0.FrameOfReferenceUID
        roi.ROIName = o.roi_name
        roi.ROIGenerationAlgorithm = "MANUAL"
        rois.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = [255, (40 * number) % 256, 0]
        seq = Sequence()
        for pts in ellipse_contours(o, z_planes, ref.shift_mm):
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(pts)
            c.ContourData = [f"{v:.4f}" for v in pts.ravel()]
            seq.append(c)
        rc.ContourSequence = seq
        contours.append(rc)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = "EXTERNAL" if o is BODY else "ORGAN"
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = rois
    ds.ROIContourSequence = contours
    ds.RTROIObservationsSequence = observations
    return ds


@dataclass
class WrittenStudy:
    root: Path
    spec: StudySpec
    spect_series: list[str] = field(default_factory=list)
    ct_series: list[str] = field(default_factory=list)
    rtstruct: Path | None = None
    truth: dict[str, Any] = field(default_factory=dict)


def write_study(
    out_dir: Path, spec: StudySpec | None = None, rtstruct: bool = True
) -> WrittenStudy:
    """The hospital export, one folder per time point (SPECT, CT slices; the RTSTRUCT beside
    the reference CT)."""
    spec = spec or StudySpec()
    written = WrittenStudy(Path(out_dir), spec, truth=truth(spec))
    for i, tp in enumerate(spec.time_points):
        study_uid = _uid("study", spec.seed, tp.hours)
        for_uid = _uid("for", spec.seed, tp.hours)
        folder = Path(out_dir) / f"{tp.hours:g}h"
        folder.mkdir(parents=True, exist_ok=True)
        nm = spect_dataset(spec, tp, study_uid, for_uid)
        nm.save_as(folder / "NM00001.dcm", enforce_file_format=True)
        written.spect_series.append(str(nm.SeriesInstanceUID))
        cts = ct_datasets(spec, tp, study_uid, for_uid)
        for ct in cts:
            ct.save_as(folder / f"CT{int(ct.InstanceNumber):05d}.dcm", enforce_file_format=True)
        written.ct_series.append(str(cts[0].SeriesInstanceUID))
        if rtstruct and i == spec.reference_index:
            rs = rtstruct_dataset(spec, cts)
            written.rtstruct = folder / "RS00001.dcm"
            rs.save_as(written.rtstruct, enforce_file_format=True)
    return written


def small_study(**kw: Any) -> StudySpec:
    return replace(StudySpec(), **kw)
