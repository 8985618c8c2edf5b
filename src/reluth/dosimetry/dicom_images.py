"""Quantitative SPECT and CT from DICOM, as :class:`~reluth.dosimetry.image.Image`\\ s.

SPECT (NM Image IOD, reconstructed tomography, PS3.3 A.5 and C.8.4): one multi-frame instance
whose frames are slices (Frame Increment Pointer → Slice Vector); geometry from the Detector
Information Sequence's Image Position/Orientation (top level accepted too), Pixel Spacing and
Spacing Between Slices. Stored values → Real World Value Mapping when present (C.7.6.16.2.11),
else Rescale Slope/Intercept. Units BQML are Bq/mL; CNTS are converted with the centre's
calibration (cps/MBq for that camera serial and collimator, the latest measured on or before
the scan) and the acquisition duration. Decay correction (0054,1102) is undone or applied
exactly once, so that every value is the activity concentration at the acquisition start:

* ``START`` (or a Decay Correction DateTime equal to the start): as stored;
* ``ADMIN``: corrected to the administration, so multiplied by e^(−λ·(t_start − t_admin));
* ``NONE``: the mean over the acquisition; when Frame Reference Time says when the values
  occurred, multiplied by e^(λ·t_ref), else by λΔ/(1 − e^(−λΔ)) (the mean of A(t_start)·e^(−λt)
  over the duration Δ).

CT (CT Image IOD): one file per slice, sorted along the slice normal, uniform spacing required
(a gantry tilt or a missing slice is refused), HU = stored × slope + intercept.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.valuerep import DA, DT, TM

from reluth.dosimetry.image import Grid, Image
from reluth.dosimetry.notes import Note, messages, note
from reluth.i18n import N_
from reluth.i18n.reasons import Quantity, Word, invalid

SLICE_VECTOR = 0x00540080
DECAY_MODES = ("START", "ADMIN", "NONE")
#: UCUM codes of Real World Value Mapping units accepted as activity concentration / counts.
_RWV_BQML = {"bq/ml", "bq/cm3"}
_RWV_COUNTS = {"{counts}", "cnts", "counts"}
SLICE_SPACING_TOLERANCE_MM = 0.01


# ------------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """A centre's camera sensitivity for quantitative SPECT (cps per MBq), measured on a date
    for one camera (Device Serial Number) and collimator."""

    device_serial: str
    collimator: str
    cps_per_mbq: Decimal
    measured_on: dt.date
    method: str = ""

    def describe(self) -> Note:
        values = {
            "sensitivity": Quantity(self.cps_per_mbq, "cps/MBq"),
            "camera": self.device_serial,
            "collimator": self.collimator,
            "day": self.measured_on,
            "method": self.method,
        }
        if self.method:
            return note(
                "dosimetry.calibration_method",
                N_(
                    "{sensitivity} for camera {camera} with {collimator}, measured {day} ({method})"
                ),
                **values,
            )
        return note(
            "dosimetry.calibration",
            N_("{sensitivity} for camera {camera} with {collimator}, measured {day}"),
            **values,
        )


def parse_calibrations(doc: Any, where: str = "calibration") -> tuple[Calibration, ...]:
    """``{calibrations: [{device_serial, collimator, cps_per_mbq, unit: cps/MBq,
    measured_on, method?}]}`` (YAML or JSON)."""
    items = doc.get("calibrations") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise invalid(
            where,
            "no_calibrations_list",
            N_("no calibrations list"),
            N_("calibrations: [{{device_serial, ...}}]"),
        )
    out = []
    for i, c in enumerate(items):
        w = f"{where}.calibrations[{i}]"
        if not isinstance(c, dict):
            raise invalid(
                w, "not_mapping", N_("not a mapping"), N_("{{device_serial, collimator, ...}}")
            )
        if c.get("unit") != "cps/MBq":
            raise invalid(
                f"{w}.unit",
                "unaccepted_w_unit",
                N_("{get}"),
                N_("cps/MBq"),
                get=repr(c.get("unit")),
            )
        try:
            factor = Decimal(str(c["cps_per_mbq"]))
        except (KeyError, ArithmeticError):
            raise invalid(
                f"{w}.cps_per_mbq", "missing_not_number", N_("missing or not a number"), N_("> 0")
            ) from None
        if not factor.is_finite() or factor <= 0:
            raise invalid(
                f"{w}.cps_per_mbq",
                "unaccepted_w_cps_per_mbq",
                N_("{factor}"),
                N_("> 0"),
                factor=str(factor),
            )
        when = c.get("measured_on")
        if isinstance(when, str):
            try:
                when = dt.date.fromisoformat(when)
            except ValueError:
                when = None
        if not isinstance(when, dt.date):
            raise invalid(
                f"{w}.measured_on",
                "unaccepted_w_measured_on",
                N_("{get}"),
                N_("YYYY-MM-DD"),
                get=repr(c.get("measured_on")),
            )
        for key in ("device_serial", "collimator"):
            if not isinstance(c.get(key), str) or not c[key].strip():
                raise invalid(
                    f"{w}.{key}",
                    "unaccepted_w_key",
                    N_("{get}"),
                    N_("non-empty text"),
                    get=repr(c.get(key)),
                )
        out.append(
            Calibration(
                c["device_serial"].strip(),
                c["collimator"].strip().upper(),
                factor,
                when,
                str(c.get("method", "")),
            )
        )
    return tuple(out)


def load_calibrations(path: Path) -> tuple[Calibration, ...]:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise invalid(
            "--calibration",
            "cannot_read_2",
            N_("cannot read {path}: {exc_name}"),
            N_("YAML"),
            path=str(path),
            exc_name=str(exc),
        ) from None
    return parse_calibrations(doc, "--calibration")


def pick_calibration(
    calibrations: Sequence[Calibration], serial: str, collimator: str, on: dt.date
) -> Calibration:
    """The latest calibration of that camera and collimator measured on or before ``on``."""
    on_text = Word(N_("any date")) if on == dt.date.max else on
    fits = [
        c
        for c in calibrations
        if c.device_serial == serial and c.collimator == collimator.upper() and c.measured_on <= on
    ]
    if not fits:
        known = [f"{c.device_serial}/{c.collimator}" for c in calibrations] or Word(N_("none"))
        raise invalid(
            "calibration",
            "no_calibration_camera_collimator_measured",
            N_(
                "no calibration for camera {serial} with collimator {collimator} "
                "measured on or before {on_text} (known: {known})"
            ),
            N_("the centre's calibration of that camera and collimator"),
            serial=serial or Word(N_("(no serial)")),
            collimator=collimator or Word(N_("(none)")),
            on_text=on_text,
            known=known,
        )
    return max(fits, key=lambda c: c.measured_on)


# ------------------------------------------------------------------------------------ timing


def _datetime(date: Any, time: Any) -> dt.datetime | None:
    if not date or not time:
        return None
    try:
        d, t = DA(str(date)), TM(str(time))
    except ValueError:
        return None
    return dt.datetime.combine(d, t.replace(tzinfo=None))


def _dt(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        v = DT(str(value))
    except ValueError:
        return None
    return v.replace(tzinfo=None)


def acquisition_start(ds: Dataset) -> dt.datetime:
    start = (
        _dt(ds.get("AcquisitionDateTime"))
        or _datetime(ds.get("AcquisitionDate"), ds.get("AcquisitionTime"))
        or _datetime(ds.get("SeriesDate"), ds.get("SeriesTime"))
    )
    if start is None:
        raise invalid(
            "AcquisitionDateTime",
            "missing",
            N_("missing"),
            N_("the acquisition date and time in the header"),
        )
    return start


def injection_time(ds: Dataset) -> dt.datetime:
    rp = (ds.get("RadiopharmaceuticalInformationSequence") or [Dataset()])[0]
    when = _dt(rp.get("RadiopharmaceuticalStartDateTime"))
    if when is None:
        raise invalid(
            "RadiopharmaceuticalStartDateTime",
            "missing_start_time_alone_gives",
            N_("missing (a start time alone gives no date)"),
            N_("the injection date and time in the Radiopharmaceutical Information Sequence"),
        )
    return when


def half_life_s(ds: Dataset) -> float:
    rp = (ds.get("RadiopharmaceuticalInformationSequence") or [Dataset()])[0]
    value = rp.get("RadionuclideHalfLife")
    try:
        hl = float(value)
    except (TypeError, ValueError):
        raise invalid(
            "RadionuclideHalfLife",
            "unaccepted_radionuclidehalflife",
            N_("{value}"),
            N_("seconds > 0"),
            value=repr(value),
        ) from None
    if not hl > 0:
        raise invalid(
            "RadionuclideHalfLife",
            "unaccepted_radionuclidehalflife",
            N_("{value}"),
            N_("seconds > 0"),
            value=repr(value),
        )
    return hl


def acquisition_duration_s(ds: Dataset) -> float:
    """Acquisition Duration (0018,9073) when given, else the projections of one detector
    (all detectors acquire at once): Σ Number of Frames in Rotation × Actual Frame Duration."""
    if ds.get("AcquisitionDuration") not in (None, ""):
        return float(ds.AcquisitionDuration)
    total = 0.0
    for rot in ds.get("RotationInformationSequence") or []:
        frames, ms = rot.get("NumberOfFramesInRotation"), rot.get("ActualFrameDuration")
        if frames is not None and ms is not None:
            total += int(frames) * float(ms) / 1000.0
    if total <= 0:
        raise invalid(
            "AcquisitionDuration",
            "missing_no_rotation_information_frames",
            N_("missing (and no Rotation Information with frames and frame duration)"),
            N_("the acquisition duration, needed to convert counts"),
        )
    return total


# ------------------------------------------------------------------------------------ SPECT


@dataclass(frozen=True)
class Conversion:
    """How stored values became Bq/mL at the acquisition start (kept in the results)."""

    source_units: str
    value_mapping: str  # "real world value mapping" | "rescale"
    slope: float
    intercept: float
    decay_correction: str
    decay_factor: float
    calibration: str | None = None
    duration_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        if self.calibration is not None:
            out["calibration_message"] = messages([self.calibration])[0]
        return out


@dataclass(frozen=True)
class SpectImage:
    image: Image  # Bq/mL at the acquisition start
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    acquisition_start: dt.datetime
    injection: dt.datetime
    hours_after_injection: float
    header_activity_mbq: float | None
    conversion: Conversion
    notes: tuple[str, ...] = field(default_factory=tuple)


def _first(seq: Any) -> Dataset | None:
    return seq[0] if seq else None


def nm_grid(ds: Dataset, shape: tuple[int, int, int]) -> Grid:
    det = _first(ds.get("DetectorInformationSequence"))
    ipp = ds.get("ImagePositionPatient") or (det.get("ImagePositionPatient") if det else None)
    iop = ds.get("ImageOrientationPatient") or (det.get("ImageOrientationPatient") if det else None)
    if not ipp or not iop or len(ipp) != 3 or len(iop) != 6:
        raise invalid(
            "ImagePositionPatient/ImageOrientationPatient",
            "missing_detector_information_sequence_top",
            N_("missing in the Detector Information Sequence and at top level"),
            N_("the reconstructed volume's position and orientation"),
        )
    spacing_between = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
    if spacing_between in (None, "") or float(spacing_between) == 0:
        raise invalid(
            "SpacingBetweenSlices", "missing", N_("missing"), N_("the slice spacing in mm")
        )
    return _grid(shape, ipp, iop, ds.PixelSpacing, float(spacing_between))


def _grid(
    shape: tuple[int, int, int], ipp: Any, iop: Any, pixel_spacing: Any, slice_step: float
) -> Grid:
    """PS3.3 C.7.6.2.1.1: column index i along the row direction cosine (spacing
    PixelSpacing[1]), row index j along the column cosine (PixelSpacing[0]), slices along
    row × column, ``slice_step`` mm apart (negative: against the normal)."""
    row = np.array([float(x) for x in iop[:3]])
    col = np.array([float(x) for x in iop[3:]])
    normal = np.cross(row, col)
    a = np.eye(4)
    a[:3, 0] = row * float(pixel_spacing[1])
    a[:3, 1] = col * float(pixel_spacing[0])
    a[:3, 2] = normal * slice_step
    a[:3, 3] = [float(x) for x in ipp]
    return Grid(shape, a)


def _stored_to_values(ds: Dataset, stored: NDArray[Any]) -> tuple[NDArray[np.float64], str, str]:
    """(values, unit label, mapping) from Real World Value Mapping if present, else Rescale."""
    units = str(ds.get("Units", "") or "").upper()
    rwvm = _first(ds.get("RealWorldValueMappingSequence"))
    if rwvm is not None:
        if rwvm.get("RealWorldValueLUTData") is not None:
            raise invalid(
                "RealWorldValueMappingSequence",
                "lut_mapping",
                N_("a LUT mapping"),
                N_("a linear slope and intercept"),
            )
        code = _first(rwvm.get("MeasurementUnitsCodeSequence"))
        unit_code = str(code.get("CodeValue", "")).lower() if code is not None else ""
        if unit_code in _RWV_BQML:
            label = "BQML"
        elif unit_code in _RWV_COUNTS:
            label = "CNTS"
        else:
            raise invalid(
                "RealWorldValueMappingSequence.MeasurementUnitsCodeSequence",
                "unaccepted_realworldvaluemappingsequence",
                N_("{unit_code}"),
                N_("UCUM Bq/ml or {{counts}}"),
                unit_code=unit_code or Word(N_("(none)")),
            )
        slope = float(rwvm.get("RealWorldValueSlope", 1.0))
        intercept = float(rwvm.get("RealWorldValueIntercept", 0.0))
        return (
            stored * slope + intercept,
            label,
            f"real world value mapping ({slope:g}, {intercept:g})",
        )
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    return stored * slope + intercept, units, f"rescale ({slope:g}, {intercept:g})"


def decay_factor(
    ds: Dataset, start: dt.datetime, injection: dt.datetime, duration_s: float
) -> tuple[float, str]:
    """Factor taking the stored activity to the activity at the acquisition start, and the
    DecayCorrection mode it follows (module docstring)."""
    mode = str(ds.get("DecayCorrection", "") or "").upper()
    if mode not in DECAY_MODES:
        raise invalid(
            "DecayCorrection",
            "unaccepted_decaycorrection",
            N_("{mode}"),
            N_("{decay_modes}"),
            mode=mode or Word(N_("(missing)")),
            decay_modes=", ".join(DECAY_MODES),
        )
    lam = math.log(2) / half_life_s(ds)
    corrected_to = _dt(ds.get("DecayCorrectionDateTime"))
    if mode == "START":
        ref = corrected_to or start
        return math.exp(-lam * (start - ref).total_seconds()), mode
    if mode == "ADMIN":
        ref = corrected_to or injection
        return math.exp(-lam * (start - ref).total_seconds()), mode
    frt = ds.get("FrameReferenceTime")
    if frt not in (None, "") and float(frt) > 0:
        return math.exp(lam * float(frt) / 1000.0), "NONE (frame reference time)"
    x = lam * duration_s
    return (x / -math.expm1(-x) if x > 0 else 1.0), "NONE (mean over the acquisition)"


def read_spect(
    ds: Dataset,
    calibrations: Sequence[Calibration] = (),
    injection_date: dt.date | None = None,
) -> SpectImage:
    """One reconstructed quantitative SPECT as Bq/mL at its acquisition start.

    De-identification shifts a patient's dates (Longitudinal Temporal Information Modified =
    MODIFIED), so a count image's calibration is chosen by the true date of the scan: the
    true ``injection_date`` (from the trial database) plus the interval in the header. Without
    it, the latest calibration of the camera is used and the notes say so."""
    if str(ds.get("Modality", "")).upper() != "NM":
        raise invalid(
            "Modality", "unaccepted_modality", N_("{get}"), N_("NM"), get=repr(ds.get("Modality"))
        )
    kinds = [str(x).upper() for x in (ds.get("ImageType") or [])]
    if "RECON TOMO" not in kinds:
        raise invalid(
            "ImageType",
            "unaccepted_imagetype",
            N_("{kinds}"),
            N_("a reconstructed SPECT (RECON TOMO)"),
            kinds="/".join(kinds) or Word(N_("(none)")),
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    fip = ds.get("FrameIncrementPointer")
    pointers = [] if fip is None else [fip] if isinstance(fip, int) else list(fip)
    if frames > 1 and [int(p) for p in pointers] != [SLICE_VECTOR]:
        # energy window / detector / time slot vectors mean several volumes in one instance
        n_slices = int(ds.get("NumberOfSlices", 0) or 0)
        if n_slices != frames:
            raise invalid(
                "FrameIncrementPointer",
                "frames_indexed_frames_slices",
                N_("frames indexed by {value} with {frames} frames for {n_slices} slices"),
                N_("one volume per instance (frames = slices)"),
                value=str([hex(int(p)) for p in pointers]),
                frames=str(frames),
                n_slices=str(n_slices),
            )
    stored = np.asarray(ds.pixel_array)
    if stored.ndim == 2:
        stored = stored[None]
    slices = ds.get("SliceVector")
    if slices is not None and len(slices) == stored.shape[0]:
        order = np.argsort(np.asarray([int(s) for s in slices]), kind="stable")
        stored = stored[order]
    values, units, mapping = _stored_to_values(ds, stored.astype(np.float64))
    grid = nm_grid(ds, tuple(stored.shape))
    start = acquisition_start(ds)
    injection = injection_time(ds)
    hours = (start - injection).total_seconds() / 3600.0
    if hours <= 0:
        raise invalid(
            "AcquisitionDateTime",
            "not_after_injection_2",
            N_("{isoformat} is not after the injection {isoformat2}"),
            N_("an acquisition after the injection"),
            isoformat=start.isoformat(),
            isoformat2=injection.isoformat(),
        )
    needs_duration = units == "CNTS" or str(ds.get("DecayCorrection", "")).upper() == "NONE"
    duration = acquisition_duration_s(ds) if needs_duration else None
    factor, mode = decay_factor(ds, start, injection, duration or 0.0)
    calibration_text = None
    notes: list[str] = []
    if units == "BQML":
        bqml = values
    elif units == "CNTS":
        det = _first(ds.get("DetectorInformationSequence"))
        collimator = str(det.get("CollimatorGridName", "") if det else "")
        serial = str(ds.get("DeviceSerialNumber", "") or "")
        shifted = str(ds.get("LongitudinalTemporalInformationModified", "")).upper() == "MODIFIED"
        if not shifted:
            scan_date = start.date()
        elif injection_date is not None:
            scan_date = (
                dt.datetime.combine(injection_date, injection.time()) + (start - injection)
            ).date()
        else:
            scan_date = dt.date.max
            notes.append(
                note(
                    "dosimetry.calibration_latest",
                    N_(
                        "dates shifted by de-identification and no true injection date: the "
                        "latest calibration of camera {camera} is used"
                    ),
                    camera=serial,
                )
            )
        cal = pick_calibration(calibrations, serial, collimator, scan_date)
        assert duration is not None
        mbq_per_voxel = values / duration / float(cal.cps_per_mbq)
        bqml = mbq_per_voxel * 1e6 / grid.voxel_volume_ml
        calibration_text = cal.describe()
    else:
        raise invalid(
            "Units",
            "unaccepted_units",
            N_("{units}"),
            N_("BQML, or CNTS with a calibration"),
            units=units or Word(N_("(missing)")),
        )
    bqml = bqml * factor
    if float(bqml.min()) < 0:
        bqml = np.maximum(bqml, 0.0)
    rp = (ds.get("RadiopharmaceuticalInformationSequence") or [Dataset()])[0]
    total = rp.get("RadionuclideTotalDose")
    mbq = None
    if total not in (None, ""):
        mbq = float(total)
        mbq = mbq / 1e6 if mbq > 1e6 else mbq  # Bq by the PET convention
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    return SpectImage(
        image=Image(bqml.astype(np.float32), grid, "Bq/mL"),
        series_uid=str(ds.SeriesInstanceUID),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
        acquisition_start=start,
        injection=injection,
        hours_after_injection=hours,
        header_activity_mbq=mbq,
        conversion=Conversion(
            units, mapping, slope, intercept, mode, factor, calibration_text, duration
        ),
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------- CT


@dataclass(frozen=True)
class CtImage:
    image: Image  # HU
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str


def read_ct(datasets: Sequence[Dataset]) -> CtImage:
    """One CT series (one dataset per slice) as HU on its own grid."""
    if not datasets:
        raise invalid("CT", "no_slice", N_("no slice"), N_("a CT series"))
    uids = {str(d.SeriesInstanceUID) for d in datasets}
    if len(uids) != 1:
        raise invalid(
            "CT", "series_mixed", N_("{n_uids} series mixed"), N_("one series"), n_uids=len(uids)
        )
    iops = {tuple(round(float(x), 5) for x in d.ImageOrientationPatient) for d in datasets}
    if len(iops) != 1:
        raise invalid(
            "ImageOrientationPatient",
            "differs_between_slices",
            N_("differs between slices"),
            N_("one orientation"),
        )
    iop = datasets[0].ImageOrientationPatient
    row = np.array([float(x) for x in iop[:3]])
    col = np.array([float(x) for x in iop[3:]])
    normal = np.cross(row, col)
    pos = np.array([[float(x) for x in d.ImagePositionPatient] for d in datasets])
    along = pos @ normal
    order = np.argsort(along, kind="stable")
    pos, along = pos[order], along[order]
    ordered = [datasets[i] for i in order]
    if len(ordered) > 1:
        steps = np.diff(along)
        if float(steps.min()) <= 0:
            raise invalid(
                "ImagePositionPatient",
                "two_slices_one_position",
                N_("two slices at one position"),
                N_("distinct slices"),
            )
        if float(steps.max() - steps.min()) > SLICE_SPACING_TOLERANCE_MM:
            raise invalid(
                "ImagePositionPatient",
                "slice_spacing_varies_from_mm",
                N_("slice spacing varies from {min} to {max} mm (a missing slice?)"),
                N_("uniformly spaced slices"),
                min=format(steps.min(), ".3f"),
                max=format(steps.max(), ".3f"),
            )
        k_axis = (pos[-1] - pos[0]) / (len(ordered) - 1)
    else:
        k_axis = normal * float(ordered[0].get("SliceThickness", 1.0) or 1.0)
    a = np.eye(4)
    ps = ordered[0].PixelSpacing
    a[:3, 0] = row * float(ps[1])
    a[:3, 1] = col * float(ps[0])
    a[:3, 2] = k_axis
    a[:3, 3] = pos[0]
    arr = np.empty((len(ordered), int(ordered[0].Rows), int(ordered[0].Columns)), np.float32)
    for n, d in enumerate(ordered):
        slope = float(d.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(d.get("RescaleIntercept", 0.0) or 0.0)
        arr[n] = d.pixel_array.astype(np.float32) * slope + intercept
    grid = Grid((arr.shape[0], arr.shape[1], arr.shape[2]), a)
    grid.check_orthonormal("CT (gantry tilt?)")
    first = ordered[0]
    return CtImage(
        Image(arr, grid, "HU"),
        str(first.SeriesInstanceUID),
        str(first.get("StudyInstanceUID", "")),
        str(first.get("FrameOfReferenceUID", "")),
    )
