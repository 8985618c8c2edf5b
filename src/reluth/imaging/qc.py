"""Header QC of incoming Lu-177 SPECT/CT for dosimetry: per series PASS / WARN / FAIL with
reasons. ``extract_header`` reads a dataset into a typed summary; ``check_series`` is pure and
compares with exact decimals at every threshold."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from pydicom.dataset import Dataset

from reluth.i18n import N_
from reluth.i18n.reasons import invalid

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
_RANK = {PASS: 0, WARN: 1, FAIL: 2}

LU177_PHOTOPEAK_KEV = Decimal("208")
LU177_HALF_LIFE_S = Decimal("574300.8")  # 6.647 d
HALF_LIFE_TOLERANCE = Decimal("0.01")
WINDOW_BOUND_FRACTION = Decimal("0.15")  # main window within 208 keV ± 15 % (176.8-239.2)
NOMINAL_ACTIVITY_MBQ = Decimal("7400")
ACTIVITY_TOLERANCE = Decimal("0.10")  # 6660-8140 MBq plausible for one 7.4 GBq cycle
MATRIX = 128
VOXEL_MM = (Decimal("3.5"), Decimal("5.5"))
MIN_PROJECTIONS = 60
TIME_PER_PROJECTION_S = (Decimal("10"), Decimal("60"))
TIMEPOINT_MIN_TOLERANCE_H = Decimal("1")
TIMEPOINT_TOLERANCE_FRACTION = Decimal("0.15")


@dataclass(frozen=True)
class SeriesHeader:
    series_uid: str
    study_uid: str
    patient_id: str
    modality: str
    frame_of_reference_uid: str
    instances: int = 1
    time_point_id: str = ""
    rows: int | None = None
    columns: int | None = None
    pixel_spacing_mm: tuple[Decimal, ...] = ()
    slice_thickness_mm: Decimal | None = None
    energy_windows_kev: tuple[tuple[Decimal, Decimal], ...] = ()
    collimators: tuple[str, ...] = ()
    projections: int | None = None
    time_per_projection_s: Decimal | None = None
    units: str = ""
    device_serial: str = ""
    corrected: tuple[str, ...] = ()
    half_life_s: Decimal | None = None
    radionuclide: str = ""
    total_dose: Decimal | None = None
    injection: dt.datetime | None = None
    injection_time_only: bool = False
    acquisition: dt.datetime | None = None
    weight_kg: Decimal | None = None


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    reason: str


@dataclass(frozen=True)
class SeriesQC:
    series_uid: str
    study_uid: str
    patient_id: str
    modality: str
    instances: int
    status: str
    time_point: str
    interval_h: Decimal | None
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.reason}" for c in self.checks if c.status != PASS]


@dataclass(frozen=True)
class QCConfig:
    planned_timepoints_h: tuple[Decimal, ...] = (Decimal(4), Decimal(24), Decimal(96), Decimal(168))
    calibration_factors: dict[str, Decimal] = field(default_factory=dict)


def parse_timepoints(text: str) -> tuple[Decimal, ...]:
    """'4h,24h,96h,168h' (h or d units) as hours."""
    out: list[Decimal] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([hd])\s*", part.lower())
        if not m:
            raise invalid(
                "--planned-timepoints",
                "not_a_time_point",
                N_("not a time point: “{value}”"),
                N_("e.g. 4h,24h,96h,168h or 7d"),
                value=part,
            )
        value = Decimal(m.group(1))
        out.append(value * 24 if m.group(2) == "d" else value)
    return tuple(sorted(out))


def _dec(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return None


def combine_date_time(date: object, time: object = None) -> dt.datetime | None:
    d = str(date or "").strip()
    t = str(time or "").strip()
    if len(d) < 8:
        return None
    text = d[:8] + (t.split(".")[0] + "000000")[:6]
    try:
        return dt.datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError:
        return None


def _dt_value(value: object) -> dt.datetime | None:
    text = re.split(r"[+-]", str(value or "").strip())[0]
    return combine_date_time(text[:8], text[8:]) if len(text) >= 8 else None


def extract_header(ds: Dataset, instances: int = 1) -> SeriesHeader:
    windows: list[tuple[Decimal, Decimal]] = []
    for win in ds.get("EnergyWindowInformationSequence") or []:
        for rng in win.get("EnergyWindowRangeSequence") or []:
            low = _dec(rng.get("EnergyWindowLowerLimit"))
            high = _dec(rng.get("EnergyWindowUpperLimit"))
            if low is not None and high is not None:
                windows.append((low, high))
    collimators = tuple(
        str(d.get("CollimatorGridName", "") or "").upper()
        for d in ds.get("DetectorInformationSequence") or []
    )
    detectors = int(ds.get("NumberOfDetectors", 0) or 0) or max(len(collimators), 1)
    projections: int | None = None
    tpp: Decimal | None = None
    for rot in ds.get("RotationInformationSequence") or []:
        frames = rot.get("NumberOfFramesInRotation")
        if frames is not None:
            projections = (projections or 0) + int(frames) * detectors
        dur = _dec(rot.get("ActualFrameDuration"))
        if dur is not None:
            tpp = dur / 1000
    rp = (ds.get("RadiopharmaceuticalInformationSequence") or [Dataset()])[0]
    code = (rp.get("RadionuclideCodeSequence") or [Dataset()])[0]
    injection = _dt_value(rp.get("RadiopharmaceuticalStartDateTime"))
    time_only = injection is None and bool(rp.get("RadiopharmaceuticalStartTime"))
    acquisition = _dt_value(ds.get("AcquisitionDateTime")) or combine_date_time(
        ds.get("AcquisitionDate") or ds.get("SeriesDate"),
        ds.get("AcquisitionTime") or ds.get("SeriesTime"),
    )
    corrected = ds.get("CorrectedImage") or []
    return SeriesHeader(
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        patient_id=str(ds.get("PatientID", "")),
        modality=str(ds.get("Modality", "")).upper(),
        frame_of_reference_uid=str(
            ds.get("FrameOfReferenceUID", "")
            or next(  # an RT Structure Set names it in its referenced frames (PS3.3 C.8.8.5)
                (
                    str(f.get("FrameOfReferenceUID", ""))
                    for f in ds.get("ReferencedFrameOfReferenceSequence") or []
                ),
                "",
            )
        ),
        instances=instances,
        time_point_id=str(ds.get("ClinicalTrialTimePointID", "") or ""),
        rows=int(ds.Rows) if "Rows" in ds else None,
        columns=int(ds.Columns) if "Columns" in ds else None,
        pixel_spacing_mm=tuple(d for d in map(_dec, ds.get("PixelSpacing") or []) if d),
        slice_thickness_mm=_dec(ds.get("SliceThickness")),
        energy_windows_kev=tuple(windows),
        collimators=collimators,
        projections=projections,
        time_per_projection_s=tpp,
        units=str(ds.get("Units", "") or "").upper(),
        device_serial=str(ds.get("DeviceSerialNumber", "") or ""),
        corrected=tuple(
            str(c).upper() for c in ([corrected] if isinstance(corrected, str) else corrected)
        ),
        half_life_s=_dec(rp.get("RadionuclideHalfLife")),
        radionuclide=str(code.get("CodeMeaning", "") or rp.get("Radiopharmaceutical", "") or ""),
        total_dose=_dec(rp.get("RadionuclideTotalDose")),
        injection=injection,
        injection_time_only=time_only,
        acquisition=acquisition,
        weight_kg=_dec(ds.get("PatientWeight")),
    )


def _fmt_h(hours: Decimal) -> str:
    return f"{hours.quantize(Decimal('0.1'))} h"


def match_timepoint(
    interval_h: Decimal, planned: Sequence[Decimal]
) -> tuple[Decimal, Decimal] | None:
    """The planned time point within tolerance (max(1 h, 15 %)) nearest the interval."""
    best: tuple[Decimal, Decimal] | None = None
    for p in planned:
        tol = max(TIMEPOINT_MIN_TOLERANCE_H, p * TIMEPOINT_TOLERANCE_FRACTION)
        if abs(interval_h - p) <= tol and (best is None or abs(interval_h - p) < best[1]):
            best = (p, abs(interval_h - p))
    return best


def _nm_checks(h: SeriesHeader, cfg: QCConfig) -> tuple[list[Check], str, Decimal | None]:
    checks: list[Check] = []
    add = checks.append
    # radionuclide
    if h.half_life_s is None:
        add(Check("radionuclide", FAIL, "RadionuclideHalfLife missing"))
    elif abs(h.half_life_s - LU177_HALF_LIFE_S) <= LU177_HALF_LIFE_S * HALF_LIFE_TOLERANCE:
        name_ok = "177" in h.radionuclide and "LU" in h.radionuclide.upper()
        add(
            Check(
                "radionuclide",
                PASS if name_ok else WARN,
                f"half-life {h.half_life_s} s" + ("" if name_ok else "; code does not name Lu-177"),
            )
        )
    else:
        add(
            Check("radionuclide", FAIL, f"half-life {h.half_life_s} s is not Lu-177's (574300.8 s)")
        )
    # energy window
    main = [w for w in h.energy_windows_kev if w[0] <= LU177_PHOTOPEAK_KEV <= w[1]]
    lo_bound = LU177_PHOTOPEAK_KEV * (1 - WINDOW_BOUND_FRACTION)
    hi_bound = LU177_PHOTOPEAK_KEV * (1 + WINDOW_BOUND_FRACTION)
    if not h.energy_windows_kev:
        add(Check("energy window", FAIL, "no energy window information"))
    elif not main:
        shown = ", ".join(f"{lo}-{hi}" for lo, hi in h.energy_windows_kev)
        add(Check("energy window", FAIL, f"no window around 208 keV (windows {shown} keV)"))
    elif all(w[0] >= lo_bound and w[1] <= hi_bound for w in main):
        add(Check("energy window", PASS, f"{main[0][0]}-{main[0][1]} keV"))
    else:
        add(Check("energy window", WARN, f"208 keV window {main[0][0]}-{main[0][1]} keV is wide"))
    # collimator
    if not h.collimators or not any(h.collimators):
        add(Check("collimator", WARN, "collimator not recorded"))
    else:
        names = sorted(set(h.collimators))
        medium = all(n.startswith("ME") or "MEDIUM" in n for n in names)
        add(
            Check(
                "collimator",
                PASS if medium else FAIL,
                "/".join(names) + ("" if medium else " is not a medium-energy collimator"),
            )
        )
    # matrix and voxel size
    spacing = h.pixel_spacing_mm[:1] + ((h.slice_thickness_mm,) if h.slice_thickness_mm else ())
    if h.rows != MATRIX or h.columns != MATRIX:
        add(Check("matrix", WARN, f"{h.rows}x{h.columns}, expected {MATRIX}x{MATRIX}"))
    else:
        add(Check("matrix", PASS, f"{h.rows}x{h.columns}"))
    if not spacing:
        add(Check("voxel size", FAIL, "pixel spacing missing"))
    elif all(VOXEL_MM[0] <= s <= VOXEL_MM[1] for s in spacing):
        add(Check("voxel size", PASS, f"{spacing[0]} mm"))
    else:
        add(Check("voxel size", WARN, f"{', '.join(map(str, spacing))} mm outside 3.5-5.5 mm"))
    # projections and time per projection
    if h.projections is None or h.time_per_projection_s is None:
        add(Check("projections", WARN, "projections or time per projection not recorded"))
    else:
        ok = h.projections >= MIN_PROJECTIONS and (
            TIME_PER_PROJECTION_S[0] <= h.time_per_projection_s <= TIME_PER_PROJECTION_S[1]
        )
        add(
            Check(
                "projections",
                PASS if ok else WARN,
                f"{h.projections} projections x {h.time_per_projection_s} s",
            )
        )
    # units / calibration
    if h.units == "BQML":
        add(Check("units", PASS, "BQML"))
    elif h.device_serial in cfg.calibration_factors:
        f = cfg.calibration_factors[h.device_serial]
        add(Check("units", PASS, f"{h.units or 'counts'}; calibration {f} for {h.device_serial}"))
    else:
        add(
            Check(
                "units",
                FAIL,
                f"{h.units or 'no units'} and no calibration factor for device "
                f"{h.device_serial or '(no serial number)'}",
            )
        )
    # corrections
    if "ATTN" not in h.corrected:
        add(Check("corrections", FAIL, "not attenuation corrected (CorrectedImage lacks ATTN)"))
    elif "SCAT" not in h.corrected:
        add(Check("corrections", WARN, "not scatter corrected (CorrectedImage lacks SCAT)"))
    else:
        add(Check("corrections", PASS, "ATTN, SCAT"))
    # administered activity (MBq in NM; a value above 1e6 is taken as Bq, the PET convention)
    dose = h.total_dose
    if dose is None or dose <= 0:
        add(Check("activity", FAIL, "RadionuclideTotalDose missing"))
    else:
        mbq = dose / Decimal(1_000_000) if dose > Decimal(1_000_000) else dose
        low = NOMINAL_ACTIVITY_MBQ * (1 - ACTIVITY_TOLERANCE)
        high = NOMINAL_ACTIVITY_MBQ * (1 + ACTIVITY_TOLERANCE)
        add(
            Check(
                "activity",
                PASS if low <= mbq <= high else WARN,
                f"{mbq} MBq" + ("" if low <= mbq <= high else f" outside {low}-{high} MBq"),
            )
        )
    # patient weight
    if h.weight_kg is None or h.weight_kg <= 0:
        add(Check("weight", FAIL, "PatientWeight missing"))
    else:
        add(Check("weight", PASS, f"{h.weight_kg} kg"))
    # injection before acquisition and time point
    interval: Decimal | None = None
    label = ""
    if h.injection is None:
        why = " (only a start time, no date)" if h.injection_time_only else ""
        add(
            Check(
                "timing", WARN, f"RadiopharmaceuticalStartDateTime missing{why}: interval unknown"
            )
        )
    elif h.acquisition is None:
        add(Check("timing", FAIL, "acquisition date-time missing"))
    else:
        seconds = int((h.acquisition - h.injection).total_seconds())
        interval = Decimal(seconds) / 3600
        if seconds <= 0:
            add(Check("timing", FAIL, f"acquisition {_fmt_h(-interval)} before injection"))
        else:
            m = match_timepoint(interval, cfg.planned_timepoints_h)
            if m is None:
                add(
                    Check(
                        "timing",
                        WARN,
                        f"{_fmt_h(interval)} after injection matches no planned time point",
                    )
                )
            else:
                label = f"{m[0].normalize():f}h"
                add(Check("timing", PASS, f"{_fmt_h(interval)} after injection ~ {label}"))
    return checks, label, interval


def worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=lambda s: _RANK[s], default=PASS)


def check_series(
    h: SeriesHeader, cfg: QCConfig, nm_frames: frozenset[tuple[str, str]] = frozenset()
) -> SeriesQC:
    """QC of one series. ``nm_frames`` holds (study UID, frame of reference UID) of the NM
    series received, for the CT check."""
    label = ""
    interval: Decimal | None = None
    if h.modality == "NM":
        checks, label, interval = _nm_checks(h, cfg)
    elif h.modality == "CT":
        same = (h.study_uid, h.frame_of_reference_uid) in nm_frames
        checks = [
            Check(
                "frame of reference",
                PASS if same else FAIL,
                "shared with the SPECT" if same else "no SPECT in this frame of reference",
            )
        ]
    elif h.modality in ("RTSTRUCT", "SEG"):  # the dosimetry VOIs drawn on the SPECT/CT
        same = (h.study_uid, h.frame_of_reference_uid) in nm_frames
        checks = [
            Check(
                "frame of reference",
                PASS if same else FAIL,
                "VOIs in the SPECT's frame of reference"
                if same
                else "no SPECT in the VOIs' frame of reference",
            )
        ]
    else:
        checks = [
            Check("modality", FAIL, f"{h.modality or 'none'} is neither NM, CT, RTSTRUCT nor SEG")
        ]
    return SeriesQC(
        series_uid=h.series_uid,
        study_uid=h.study_uid,
        patient_id=h.patient_id,
        modality=h.modality,
        instances=h.instances,
        status=worst(c.status for c in checks),
        time_point=label,
        interval_h=interval,
        checks=tuple(checks),
    )


def check_all(headers: Sequence[SeriesHeader], cfg: QCConfig) -> list[SeriesQC]:
    nm_frames = frozenset(
        (h.study_uid, h.frame_of_reference_uid) for h in headers if h.modality == "NM"
    )
    results = [check_series(h, cfg, nm_frames) for h in headers]
    # a CT takes the time point of the SPECT it belongs to
    by_study = {(r.study_uid): r for r in results if r.modality == "NM" and r.time_point}
    out = []
    for r in results:
        if r.modality == "CT" and not r.time_point and r.study_uid in by_study:
            nm = by_study[r.study_uid]
            r = SeriesQC(**{**r.__dict__, "time_point": nm.time_point, "interval_h": nm.interval_h})
        out.append(r)
    return out
