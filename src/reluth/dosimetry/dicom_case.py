"""Reading a patient-cycle from the de-identified DICOM store into the pipeline's typed case.

The catalogue (``imaging_series``) gives the cycle's SPECT and CT series and, if any, its
RTSTRUCT/SEG; the content-addressed store gives their files. Each SPECT becomes Bq/mL at its
acquisition start (``dicom_images.read_spect``), its time point is the acquisition start minus
the injection time of the header. The reference time point is the one the VOIs were drawn on
(same frame of reference), else the first. Every other time point's CT is registered to the
reference CT (``registration.register``) and its SPECT resampled onto the reference SPECT grid
through that transform; without a CT, a time point in the reference's frame of reference is
resampled (or refused, as the geometry policy says), any other is refused. Masks are rasterised
or resampled onto the reference SPECT grid; the density map comes from the reference CT.
The administered activity and the sex come from the trial database when it has them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from reluth.dosimetry import registration as reg
from reluth.dosimetry.case_dir import (
    geometry_policy,
    organ_names,
    parse_settings,
    voi_spec,
    voxel_mm_of,
)
from reluth.dosimetry.cumulative import CycleDoses
from reluth.dosimetry.dicom_images import Calibration, CtImage, SpectImage, read_ct, read_spect
from reluth.dosimetry.image import Grid, GridPolicy, Image, onto, read_nifti, resample
from reluth.dosimetry.notes import at, note, reason_of, rounded, spect
from reluth.dosimetry.pipeline import CaseInput, density_from_hu
from reluth.dosimetry.vois import OrganTable, map_names, masks_from_dataset
from reluth.i18n import N_
from reluth.i18n.reasons import Quantity, Word, invalid
from reluth.imaging.models import ImagingInstance, ImagingSeries
from reluth.imaging.store import store_path

VOI_MODALITIES = ("RTSTRUCT", "SEG")
INJECTION_AGREEMENT = dt.timedelta(minutes=1)
ACTIVITY_AGREEMENT = 0.05  # header vs trial database, relative


@dataclass
class TimePointInput:
    spect: SpectImage
    ct: CtImage | None
    registration: reg.Registration | None = None


@dataclass
class StoreCase:
    case: CaseInput
    reference_spect: Dataset
    provenance: dict[str, Any]
    #: registration QC per time point label: (reference CT, moving CT before, after), on the
    #: reference grid
    qc: dict[str, tuple[Image, Image, Image]] = field(default_factory=dict)


def _progress(cb: Callable[[str], None] | None, text: str) -> None:
    if cb is not None:
        cb(text)


def series_of_cycle(session: Session, patient: str, cycle: int) -> list[ImagingSeries]:
    rows = list(
        session.scalars(
            select(ImagingSeries).where(
                ImagingSeries.patient_pseudonym == patient, ImagingSeries.cycle == cycle
            )
        )
    )
    if not rows:
        raise invalid(
            "--cycle",
            "no_catalogued_series_cycle",
            N_("no catalogued series for {patient} cycle {cycle}"),
            N_("a patient-cycle whose images were ingested (reluth images ingest)"),
            patient=str(patient),
            cycle=str(cycle),
        )
    return rows


def read_series(session: Session, store: Path, series: ImagingSeries) -> list[Dataset]:
    digests = session.scalars(
        select(ImagingInstance.sha256).where(ImagingInstance.series_id == series.id)
    ).all()
    out: list[Dataset] = []
    for d in digests:
        path = store_path(store, d)
        if not path.exists():
            raise invalid(
                "--store",
                "file_series_missing",
                N_("file {d}… of series …{series_uid} missing"),
                N_("{store}"),
                d=str(d[:12]),
                series_uid=str(series.series_uid[-10:]),
                store=str(store),
            )
        out.append(pydicom.dcmread(path))
    if not out:
        raise invalid(
            "series",
            "has_no_stored_file",
            N_("…{series_uid} has no stored file"),
            series_uid=str(series.series_uid[-10:]),
        )
    return out


def _qc_failure(ds: Dataset, calibrations: Sequence[Calibration]) -> str | None:
    """The failed header checks of a SPECT, re-run with the calibrations given now (a count
    image refused at ingest for want of a calibration is usable once one is given), or None."""
    from reluth.imaging.qc import FAIL, QCConfig, check_series, extract_header

    cfg = QCConfig(calibration_factors={c.device_serial: c.cps_per_mbq for c in calibrations})
    qc = check_series(extract_header(ds), cfg)
    failed = [f"{c.name}: {c.reason}" for c in qc.checks if c.status == FAIL]
    return "; ".join(failed) or None


def _administration(
    session: Session, patient: str, cycle: int
) -> tuple[float | None, str | None, dt.date | None]:
    from reluth.patients.models import Patient
    from reluth.treatment.models import Administration

    p = session.scalars(select(Patient).where(Patient.patient_code == patient)).one_or_none()
    if p is None:
        return None, None, None
    admin = session.scalars(
        select(Administration).where(
            Administration.patient_id == p.id, Administration.cycle == cycle
        )
    ).one_or_none()
    sex = {"F": "female", "M": "male"}.get(str(p.sex or ""))
    if admin is None:
        return None, sex, None
    return float(admin.activity_gbq) * 1000.0, sex, admin.administered_on


def assemble(
    session: Session,
    store: Path,
    patient: str,
    cycle: int,
    *,
    vois: str | None = None,
    calibrations: Sequence[Calibration] = (),
    organ_table: OrganTable,
    settings: dict[str, Any] | None = None,
    settings_dir: Path = Path("."),
    registration: str = "rigid",
    previous_cycles: Sequence[CycleDoses] = (),
    on_progress: Callable[[str], None] | None = None,
) -> StoreCase:
    """The case of one patient-cycle from the store (module docstring)."""
    settings = settings or {}
    policy = geometry_policy(settings)
    if registration not in reg.REGISTRATION_KINDS:
        raise invalid(
            "--registration",
            "unaccepted_registration",
            N_("{registration}"),
            N_("{registration_kinds}"),
            registration=repr(registration),
            registration_kinds=", ".join(reg.REGISTRATION_KINDS),
        )
    notes: list[str] = []
    rows = series_of_cycle(session, patient, cycle)
    db_activity, db_sex, injection_date = _administration(session, patient, cycle)
    nm_rows = [r for r in rows if r.modality == "NM"]
    if not nm_rows:
        raise invalid(
            "series",
            "no_spect_nm_series_cycle",
            N_("no SPECT (NM) series for {patient} cycle {cycle}"),
            patient=str(patient),
            cycle=str(cycle),
        )
    cts: dict[tuple[str, str], CtImage] = {}
    for r in (r for r in rows if r.modality == "CT"):
        _progress(on_progress, f"reading CT …{r.series_uid[-8:]}")
        ct = read_ct(read_series(session, store, r))
        cts[(ct.study_uid, ct.frame_of_reference_uid)] = ct
    points: list[TimePointInput] = []
    datasets: dict[str, Dataset] = {}
    for r in nm_rows:
        _progress(on_progress, f"reading SPECT {r.time_point or r.series_uid[-8:]}")
        files = read_series(session, store, r)
        if len(files) != 1:
            raise invalid(
                "SPECT",
                "instances_one_series",
                N_("{n_files} instances in one series"),
                N_("one multi-frame instance"),
                n_files=len(files),
            )
        why = _qc_failure(files[0], calibrations) if r.qc_status == "FAIL" else None
        if why is not None:
            raise invalid(
                f"SPECT …{r.series_uid[-10:]} ({r.time_point or 'no time point'})",
                "header_qc_failed",
                N_("header QC failed: {why}"),
                N_("a series that passes QC (or --calibration for a count image)"),
                why=str(why),
            )
        sp = read_spect(files[0], calibrations, injection_date)
        notes.extend(at(spect(sp.hours_after_injection), n) for n in sp.notes)
        datasets[sp.series_uid] = files[0]
        points.append(TimePointInput(sp, cts.get((sp.study_uid, sp.frame_of_reference_uid))))
    points.sort(key=lambda p: p.spect.hours_after_injection)
    injections = {p.spect.injection for p in points}
    if max(injections) - min(injections) > INJECTION_AGREEMENT:
        raise invalid(
            "RadiopharmaceuticalStartDateTime",
            "differs_between_cycle_s_spects",
            N_("differs between the cycle's SPECTs: {value}"),
            N_("one injection per cycle"),
            value=str(sorted(i.isoformat() for i in injections)),
        )
    hours = [p.spect.hours_after_injection for p in points]
    if len(set(round(h, 3) for h in hours)) != len(hours):
        raise invalid(
            "SPECT",
            "two_series_one_time_point",
            N_("two series at one time point ({hours} h)"),
            N_("one per time point"),
            hours=str(hours),
        )

    # VOIs: choose the source, then the reference time point
    voi_ds, voi_nifti, voi_label = _voi_source(session, store, rows, vois)
    ref_index = 0
    if voi_ds is not None:
        for_uid = _voi_frame(voi_ds)
        match = [i for i, p in enumerate(points) if p.spect.frame_of_reference_uid == for_uid]
        if match:
            ref_index = match[0]
        else:
            notes.append(
                note(
                    "dosimetry.voi_frame_unmatched",
                    N_(
                        "VOIs: their frame of reference matches no SPECT; the first time point "
                        "is the reference"
                    ),
                )
            )
    ref = points[ref_index]
    grid = ref.spect.image.grid
    _progress(on_progress, "placing VOIs")
    if voi_ds is not None:
        raw, source = masks_from_dataset(voi_ds, grid, policy, notes)
    else:
        assert voi_nifti is not None
        raw, source = _nifti_masks(voi_nifti, grid, policy, notes), "NIfTI"
    named = map_names(raw, organ_table, source, notes)

    # time points onto the reference grid
    images = []
    qc: dict[str, tuple[Image, Image, Image]] = {}
    for i, p in enumerate(points):
        label = f"{p.spect.hours_after_injection:.1f} h"
        if i == ref_index:
            images.append(p.spect.image.array)
            continue
        if registration != "none" and p.ct is not None and ref.ct is not None:
            _progress(on_progress, f"registering {label} to the reference")
            rg = reg.register(ref.ct.image, grid, p.ct.image, registration, p.spect.image.grid)
            p.registration = rg
            images.append(resample(p.spect.image, grid, rg.transform).array)
            fixed = resample(ref.ct.image, grid)
            qc[f"registration_{i}"] = (
                fixed,
                resample(p.ct.image, grid),
                resample(p.ct.image, grid, rg.transform),
            )
            x, y, z = (Decimal(f"{t:.1f}") for t in rg.translation_mm)
            notes.append(
                note(
                    "dosimetry.registered",
                    N_(
                        "SPECT {time}: registered ({kind}) to the {reference} CT and resampled "
                        "(linear); translation {x}, {y}, {z} mm"
                    ),
                    time=rounded(p.spect.hours_after_injection, "h"),
                    kind=rg.kind,
                    reference=rounded(ref.spect.hours_after_injection, "h"),
                    x=x,
                    y=y,
                    z=z,
                )
            )
            if rg.review:
                notes.append(
                    note(
                        "dosimetry.registration_review",
                        N_("SPECT {time}: registration {review}"),
                        time=rounded(p.spect.hours_after_injection, "h"),
                        review=reason_of(rg.review),
                    )
                )
        elif p.spect.frame_of_reference_uid == ref.spect.frame_of_reference_uid:
            images.append(onto(p.spect.image, grid, f"SPECT {label}", policy, notes).array)
        else:
            raise invalid(
                f"SPECT {label}",
                "another_frame_reference_than_reference",
                N_("in another frame of reference than the reference time point and {value}"),
                N_("a CT with each SPECT, or one frame of reference"),
                value=Word(
                    N_("registration is off")
                    if registration == "none"
                    else N_("no CT to register it by")
                ),
            )
    density_map = None
    if ref.ct is not None:
        ct_on = resample(ref.ct.image, grid)
        density_map = density_from_hu(np.asarray(ct_on.array, dtype=np.float32))
    else:
        notes.append(
            note(
                "dosimetry.no_ct_unit_density",
                N_("no CT at the reference time point: unit density assumed"),
            )
        )

    header_mbq = ref.spect.header_activity_mbq
    if db_activity is None:
        if header_mbq is None:
            raise invalid(
                "activity",
                "activity_unknown",
                N_("neither the trial database nor the header gives it"),
            )
        activity = header_mbq
        notes.append(
            note(
                "dosimetry.activity_from_header",
                N_("administered activity from the DICOM header (no administration recorded)"),
            )
        )
    else:
        activity = db_activity
        if (
            header_mbq is not None
            and abs(header_mbq - db_activity) > ACTIVITY_AGREEMENT * db_activity
        ):
            notes.append(
                note(
                    "dosimetry.activity_disagrees",
                    N_(
                        "administered activity: {recorded} recorded, {header} in the DICOM "
                        "header; the recorded value is used"
                    ),
                    recorded=Quantity(Decimal(f"{db_activity:g}"), "MBq"),
                    header=Quantity(Decimal(f"{header_mbq:g}"), "MBq"),
                )
            )
    sex = db_sex or {"F": "female", "M": "male"}.get(
        str(datasets[ref.spect.series_uid].get("PatientSex", ""))
    )
    if sex is None:
        raise invalid(
            "sex",
            "sex_unknown",
            N_("unknown in the trial database and the header"),
            N_("female, male"),
        )

    voi_entries = {n.entry.voi: n for n in named}
    settings_vois = settings.get("vois") or {}
    names = organ_names(settings)
    vois_out = []
    for name, n in voi_entries.items():
        spec_doc: dict[str, Any] = {
            "kind": n.entry.kind,
            **({"svalue_organ": n.entry.svalue_organ} if n.entry.svalue_organ else {}),
        }
        spec_doc.update(settings_vois.get(name) or {})
        vois_out.append(
            voi_spec(name, spec_doc, np.asarray(n.mask.array, dtype=bool), f"vois.{name}.", names)
        )
    parsed = parse_settings(
        settings, settings_dir, ref.spect.injection, len(points), list(voi_entries)
    )
    case = CaseInput(
        case_id=f"{patient}-C{cycle}",
        cycle_label=f"cycle {cycle}",
        sex=sex,
        risk_factors=bool((settings.get("patient") or {}).get("risk_factors", False)),
        administered_activity_mbq=activity,
        injection_time=ref.spect.injection,
        times_h=tuple(hours),
        images_bq_per_ml=np.stack([np.asarray(a, dtype=np.float32) for a in images]),
        voxel_mm=voxel_mm_of(grid),
        vois=tuple(vois_out),
        density_map_g_per_ml=density_map,
        methods=parsed.methods,
        bed=parsed.bed,
        marrow=parsed.marrow,
        previous_cycles=parsed.previous_cycles or tuple(previous_cycles),
        organ_names=names,
        recovery_curve=parsed.recovery_curve,
        uncertainty=parsed.uncertainty,
        grid=grid,
        notes=tuple(notes),
    )
    provenance = {
        "patient": patient,
        "cycle": cycle,
        "reference_time_point": ref_index,
        "time_points": [
            {
                "hours_after_injection": p.spect.hours_after_injection,
                "acquisition_start": p.spect.acquisition_start.isoformat(),
                "series_uid": p.spect.series_uid,
                "frame_of_reference_uid": p.spect.frame_of_reference_uid,
                "ct_series_uid": None if p.ct is None else p.ct.series_uid,
                "grid": p.spect.image.grid.to_dict(),
                "conversion": p.spect.conversion.as_dict(),
                "registration": None if p.registration is None else p.registration.as_dict(),
            }
            for p in points
        ],
        "vois": {
            "source": source,
            "description": voi_label,
            "mapping": {n.roi_name: n.entry.voi for n in named},
        },
        "administered_activity_mbq": {
            "used": activity,
            "header": header_mbq,
            "database": db_activity,
        },
    }
    return StoreCase(case, datasets[ref.spect.series_uid], provenance, qc)


def _voi_frame(ds: Dataset) -> str:
    for item in ds.get("ReferencedFrameOfReferenceSequence") or []:
        return str(item.FrameOfReferenceUID)
    for item in ds.get("StructureSetROISequence") or []:
        return str(item.get("ReferencedFrameOfReferenceUID", ""))
    return str(ds.get("FrameOfReferenceUID", ""))


def _voi_source(
    session: Session, store: Path, rows: list[ImagingSeries], vois: str | None
) -> tuple[Dataset | None, Path | None, str]:
    """(DICOM VOI object, or NIfTI path, description) from --vois or the catalogue."""
    if vois is not None:
        path = Path(vois)
        if path.exists():
            name = path.name.lower()
            if path.is_dir() or name.endswith((".nii", ".nii.gz")):
                return None, path, f"file {path.name}"
            try:
                return pydicom.dcmread(path), None, f"file {path.name}"
            except (pydicom.errors.InvalidDicomError, OSError) as exc:
                raise invalid(
                    "--vois",
                    "cannot_read",
                    N_("cannot read {name}: {exc_name}"),
                    N_("RTSTRUCT, SEG or NIfTI"),
                    name=path.name,
                    exc_name=str(exc),
                ) from None
        found = session.scalars(
            select(ImagingSeries).where(ImagingSeries.series_uid == vois)
        ).one_or_none()
        if found is None or found.patient_pseudonym != rows[0].patient_pseudonym:
            raise invalid(
                "--vois",
                "neither_file_nor_catalogued_series",
                N_("{vois} is neither a file nor a catalogued series of this patient"),
                N_("an RTSTRUCT/SEG/NIfTI file or the series UID of a stored RTSTRUCT/SEG"),
                vois=repr(vois),
            )
        return read_series(session, store, found)[0], None, f"series …{vois[-10:]}"
    candidates = [r for r in rows if r.modality in VOI_MODALITIES]
    if len(candidates) != 1:
        found_text = ", ".join(f"{r.modality} {r.series_uid}" for r in candidates) or "none"
        raise invalid(
            "--vois",
            "rtstruct_seg_series_catalogued_this",
            N_("{n_candidates} RTSTRUCT/SEG series catalogued for this cycle ({found_text})"),
            N_("--vois FILE_OR_SERIES_UID"),
            n_candidates=len(candidates),
            found_text=str(found_text),
        )
    return (
        read_series(session, store, candidates[0])[0],
        None,
        f"series …{candidates[0].series_uid[-10:]}",
    )


def _nifti_masks(
    path: Path, grid: Grid, policy: GridPolicy, notes: list[str]
) -> dict[str, tuple[Image, str]]:
    """A folder of NIfTI masks, or one mask, named by file (``Rein G.nii.gz`` → 'Rein G')."""
    files = sorted(path.glob("*.nii*")) if path.is_dir() else [path]
    out = {}
    for f in files:
        roi = f.name.split(".nii")[0]
        img = read_nifti(f, "mask", f"--vois {f.name}")
        out[roi] = (onto(img, grid, f"--vois {f.name}", policy, notes), "")
    if not out:
        raise invalid(
            "--vois",
            "no_nifti_mask",
            N_("no NIfTI mask in {path}"),
            N_("*.nii or *.nii.gz"),
            path=str(path),
        )
    return out
