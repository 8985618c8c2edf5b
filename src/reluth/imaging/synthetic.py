"""Synthetic quantitative Lu-177 SPECT/CT series with planted identifiers and optional faults.

Realistic enough for de-identification, verification and header QC: NM multi-frame
reconstructed SPECT in Bq/mL (body, liver, kidneys, spleen and tumours, each decaying with its
own effective half-life), a low-dose CT in the same frame of reference, and the identifying
attributes a hospital system writes (names, hospital IDs, birth date, institution, physicians,
accession number, private tags with names and date-times).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
LU177_HALF_LIFE_S = "574300.8"  # 6.647 d
ORIGINAL_ROOT = "1.2.826.0.1.3680043.8.498."
PRIVATE_CREATOR = "ACME NM PRIVATE 1.0"


@dataclass(frozen=True)
class SyntheticPatient:
    name: str = "DUPONT^JEAN^MARIE"
    hospital_id: str = "IPP0048213"
    birth_date: str = "19580412"
    sex: str = "M"
    age: str = "067Y"
    weight_kg: str = "72.5"
    height_m: str = "1.74"
    injection: dt.datetime = dt.datetime(2026, 3, 2, 9, 15, 0)
    activity_mbq: str = "7400"
    institution: str = "CHU DE NULLEPART"
    device_serial: str = "SN-44871"


@dataclass(frozen=True)
class Faults:
    wrong_window: bool = False
    missing_weight: bool = False
    scan_before_injection: bool = False
    wrong_collimator: bool = False


@dataclass
class SyntheticOptions:
    matrix: int = 128
    slices: int | None = None  # default: matrix
    ct_slices: int = 0
    ct_size: int = 512
    timepoints_h: tuple[float, ...] = (4.0, 24.0, 96.0, 168.0)
    faults: Faults = field(default_factory=Faults)
    seed: int = 0


def _uid(*parts: object) -> str:
    return generate_uid(prefix=ORIGINAL_ROOT, entropy_srcs=[str(p) for p in parts])


def _fmt(when: dt.datetime) -> tuple[str, str, str]:
    return when.strftime("%Y%m%d"), when.strftime("%H%M%S"), when.strftime("%Y%m%d%H%M%S")


def _patient_and_hospital(ds: Dataset, p: SyntheticPatient, when: dt.datetime) -> None:
    date, time, stamp = _fmt(when)
    ds.PatientName = p.name
    ds.PatientID = p.hospital_id
    ds.IssuerOfPatientID = "HOSPITAL PAS"
    ds.PatientBirthDate = p.birth_date
    ds.PatientSex = p.sex
    ds.PatientAge = p.age
    ds.PatientSize = p.height_m
    ds.OtherPatientIDs = "NIR1580475123456"
    ds.PatientAddress = "12 RUE DES LILAS 75011 PARIS"
    ds.PatientTelephoneNumbers = "0601020304"
    ds.InstitutionName = p.institution
    ds.InstitutionAddress = "1 PLACE DE L'HOPITAL 75000 PARIS"
    ds.ReferringPhysicianName = "MARTIN^CLAIRE"
    ds.PerformingPhysicianName = "BERNARD^LUC"
    ds.OperatorsName = "PETIT^ANNE"
    ds.StationName = "NMSTATION2"
    ds.AccessionNumber = "ACC" + date + "77"
    ds.StudyID = "E4471"
    ds.Manufacturer = "ACME"
    ds.ManufacturerModelName = "Gamma 2000"
    ds.DeviceSerialNumber = p.device_serial
    ds.SoftwareVersions = "4.2"
    ds.InstanceCreationDate = date
    ds.InstanceCreationTime = time
    req = Dataset()
    req.RequestedProcedureID = "RP" + p.hospital_id
    req.ScheduledProcedureStepID = "SPS0091"
    ds.RequestAttributesSequence = Sequence([req])
    block = ds.private_block(0x0009, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", p.name)
    block.add_new(0x02, "DT", stamp)
    block.add_new(0x03, "LO", p.hospital_id)


def _new_instance(
    sop_class: str,
    sop_uid: str,
    study_uid: str,
    series_uid: str,
    for_uid: str,
    modality: str,
    when: dt.datetime,
) -> Dataset:
    date, time, _ = _fmt(when)
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.Modality = modality
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time
    return ds


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(ORIGINAL_ROOT + "1")
    meta.SourceApplicationEntityTitle = "NMSTATION2"
    return meta


def _activity_volume(shape: tuple[int, int, int], hours: float, seed: int) -> np.ndarray:
    """Bq/mL in a phantom: (centre z,y,x as fraction, radius fraction, Bq/mL at t=0, T_eff h)."""
    nz, ny, nx = shape
    z, y, x = np.ogrid[0:nz, 0:ny, 0:nx]
    zf, yf, xf = z / max(nz - 1, 1), y / max(ny - 1, 1), x / max(nx - 1, 1)
    body = ((yf - 0.5) / 0.32) ** 2 + ((xf - 0.5) / 0.42) ** 2 <= 1.0
    vol = np.where(body, 2.0e3 * math.exp(-math.log(2) * hours / 40.0), 0.0)
    organs = [
        (0.55, 0.45, 0.30, 0.12, 3.0e4, 60.0),  # liver
        (0.45, 0.60, 0.30, 0.05, 6.0e4, 50.0),  # right kidney
        (0.45, 0.60, 0.70, 0.05, 6.0e4, 50.0),  # left kidney
        (0.60, 0.45, 0.72, 0.06, 4.0e4, 65.0),  # spleen
        (0.50, 0.42, 0.40, 0.03, 2.5e5, 90.0),  # liver metastasis
        (0.35, 0.50, 0.52, 0.025, 1.8e5, 80.0),  # mesenteric mass
    ]
    for cz, cy, cx, r, conc, t_eff in organs:
        mask = (zf - cz) ** 2 + (yf - cy) ** 2 + (xf - cx) ** 2 <= r * r
        vol = np.where(mask, conc * math.exp(-math.log(2) * hours / t_eff), vol)
    rng = np.random.default_rng(seed)
    return vol * rng.normal(1.0, 0.05, size=shape).clip(0.5, 1.5)


def make_spect(
    p: SyntheticPatient, hours: float, study_uid: str, for_uid: str, opts: SyntheticOptions
) -> Dataset:
    """One reconstructed quantitative SPECT (NM multi-frame) at `hours` after injection."""
    f = opts.faults
    n = opts.matrix
    nz = opts.slices or n
    scan = p.injection + dt.timedelta(hours=hours, minutes=7)
    injection = scan + dt.timedelta(hours=1) if f.scan_before_injection else p.injection
    _, _, stamp = _fmt(scan)
    series_uid = _uid("nm-series", p.hospital_id, hours, opts.seed)
    sop_uid = _uid("nm-sop", p.hospital_id, hours, opts.seed)
    ds = _new_instance(NM_IMAGE_STORAGE, sop_uid, study_uid, series_uid, for_uid, "NM", scan)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.AcquisitionDateTime = stamp
    label = f"{hours:g}h"
    ds.StudyDescription = f"SPECT LU177 DOTATATE {p.name.split('^')[0]} {label}"
    ds.SeriesDescription = f"SPECT {label} AC SC OSEM {p.hospital_id}"
    ds.ProtocolName = f"LU177 QSPECT {label}"
    _patient_and_hospital(ds, p, scan)
    if not f.missing_weight:
        ds.PatientWeight = p.weight_kg
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.BurnedInAnnotation = "NO"
    ds.Units = "BQML"
    ds.CorrectedImage = ["ATTN", "SCAT"]
    ds.DecayCorrection = "NONE"
    ds.ActualFrameDuration = 15000
    ds.FrameReferenceTime = 0
    # Image pixel
    vol = _activity_volume((nz, n, n), hours, opts.seed + int(hours))
    slope = float(vol.max()) / 65000.0 if vol.max() > 0 else 1.0
    pixels = np.round(vol / slope).astype(np.uint16)
    ds.RescaleSlope = f"{slope:.6g}"
    ds.RescaleIntercept = "0"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = n
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = Tag(0x0054, 0x0080)
    ds.SliceVector = list(range(1, nz + 1))
    ds.NumberOfSlices = nz
    voxel = 4.7952 * 128 / n
    ds.PixelSpacing = [f"{voxel:.4f}", f"{voxel:.4f}"]
    ds.SliceThickness = f"{voxel:.4f}"
    ds.SpacingBetweenSlices = f"{voxel:.4f}"
    ds.PixelData = pixels.tobytes()
    # NM detector, energy window, rotation and radiopharmaceutical information
    collimator = "LEHR" if f.wrong_collimator else "MEGP"
    heads = Sequence()
    for _ in range(2):
        head = Dataset()
        head.CollimatorGridName = collimator
        head.CollimatorType = "PARA"
        head.ImagePositionPatient = [f"{-voxel * n / 2:.3f}", f"{-voxel * n / 2:.3f}", "0"]
        head.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        heads.append(head)
    ds.DetectorInformationSequence = heads
    ds.NumberOfDetectors = 2
    windows = Sequence()
    main = (102.6, 125.4, "EM 113") if f.wrong_window else (187.2, 228.8, "EM 208")
    for low, high, name in [main, (166.4, 187.2, "SC LOW"), (228.8, 249.6, "SC UP")]:
        win = Dataset()
        rng = Dataset()
        rng.EnergyWindowLowerLimit = f"{low:g}"
        rng.EnergyWindowUpperLimit = f"{high:g}"
        win.EnergyWindowRangeSequence = Sequence([rng])
        win.EnergyWindowName = name
        windows.append(win)
    ds.EnergyWindowInformationSequence = windows
    ds.NumberOfEnergyWindows = len(windows)
    rot = Dataset()
    rot.StartAngle = "0"
    rot.AngularStep = "6"
    rot.RotationDirection = "CW"
    rot.ScanArc = "360"
    rot.ActualFrameDuration = 15000
    rot.NumberOfFramesInRotation = 60
    ds.RotationInformationSequence = Sequence([rot])
    rp = Dataset()
    _, itime, istamp = _fmt(injection)
    rp.Radiopharmaceutical = "Lu-177 DOTATATE"
    rp.RadiopharmaceuticalStartTime = itime
    rp.RadiopharmaceuticalStartDateTime = istamp
    rp.RadionuclideTotalDose = p.activity_mbq
    rp.RadionuclideHalfLife = LU177_HALF_LIFE_S
    code = Dataset()
    code.CodeValue = "LU177"
    code.CodingSchemeDesignator = "99RELUTH"
    code.CodeMeaning = "^177^Lutetium"
    rp.RadionuclideCodeSequence = Sequence([code])
    ds.RadiopharmaceuticalInformationSequence = Sequence([rp])
    return ds


def make_ct(
    p: SyntheticPatient, hours: float, study_uid: str, for_uid: str, opts: SyntheticOptions
) -> list[Dataset]:
    """A low-dose CT (one file per slice) in the SPECT's frame of reference."""
    scan = p.injection + dt.timedelta(hours=hours, minutes=2)
    size = opts.ct_size
    series_uid = _uid("ct-series", p.hospital_id, hours, opts.seed)
    yy, xx = np.ogrid[0:size, 0:size]
    body = ((yy - size / 2) / (size * 0.32)) ** 2 + ((xx - size / 2) / (size * 0.42)) ** 2 <= 1
    base = np.where(body, 1064, 24).astype(np.int16)  # stored = HU + 1024
    out: list[Dataset] = []
    for i in range(opts.ct_slices):
        sop_uid = _uid("ct-sop", p.hospital_id, hours, opts.seed, i)
        ds = _new_instance(CT_IMAGE_STORAGE, sop_uid, study_uid, series_uid, for_uid, "CT", scan)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.StudyDescription = f"SPECT LU177 DOTATATE {p.name.split('^')[0]}"
        ds.SeriesDescription = "CTAC 5mm B31s"
        _patient_and_hospital(ds, p, scan)
        if not opts.faults.missing_weight:
            ds.PatientWeight = p.weight_kg
        ds.SeriesNumber = 2
        ds.InstanceNumber = i + 1
        ds.BurnedInAnnotation = "NO"
        ds.KVP = "120"
        ds.ConvolutionKernel = "B31s"
        ds.SliceThickness = "5"
        ds.PixelSpacing = [f"{500 / size:.4f}", f"{500 / size:.4f}"]
        ds.ImagePositionPatient = ["-250", "-250", f"{-5.0 * i:.1f}"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.PixelData = (base + np.int16(i % 7)).tobytes()
        out.append(ds)
    return out


def write_patient(out_dir: Path, patient: SyntheticPatient, opts: SyntheticOptions) -> list[Path]:
    """One study per time point (SPECT + optional CT) under out_dir/<time point>/; returns the
    written paths. Files are named by hospital habit (series/instance number), not by UID."""
    paths: list[Path] = []
    for hours in opts.timepoints_h:
        study_uid = _uid("study", patient.hospital_id, hours, opts.seed)
        for_uid = _uid("for", patient.hospital_id, hours, opts.seed)
        folder = Path(out_dir) / f"{patient.hospital_id}_{hours:g}h"
        folder.mkdir(parents=True, exist_ok=True)
        spect = make_spect(patient, hours, study_uid, for_uid, opts)
        path = folder / "NM00001.dcm"
        spect.save_as(path)
        paths.append(path)
        for ct in make_ct(patient, hours, study_uid, for_uid, opts):
            path = folder / f"CT{int(ct.InstanceNumber):05d}.dcm"
            ct.save_as(path)
            paths.append(path)
    return paths
