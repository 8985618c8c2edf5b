"""The computing part of the dosimetry pipeline: the typed case and ``compute_case`` (pure:
arrays and settings in, per-cycle results out, ready for a service to store with its cycle).

Reading is in ``case_dir`` (a case directory of NIfTI/.npy files) and ``dicom_case`` (the
de-identified DICOM store); writing in ``outputs`` (results JSON, NIfTI and DICOM RT Dose maps,
plots, the report); ``runner`` chains them for the commands and the batch. Case format: see
docs/dosimetry.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reluth.dosimetry import kinetics, voxel
from reluth.dosimetry.bed import BedParameters, bed_gy
from reluth.dosimetry.cumulative import CycleDoses, OrganCycleDose, cumulate
from reluth.dosimetry.image import Grid
from reluth.dosimetry.kinetics import DEFAULT_BLOOD_RELATIVE_SD, DEFAULT_IMAGE_RELATIVE_SD
from reluth.dosimetry.marrow import (
    marrow_dose,
    marrow_tia_mbq_h,
    remainder_tia_mbq_h,
)
from reluth.dosimetry.notes import at, messages, note, quantity, reason_of
from reluth.dosimetry.organs import OrganNames, default_organ_names
from reluth.dosimetry.pvc import RecoveryCurve, recovery_for
from reluth.dosimetry.sphere import sphere_dose_gy
from reluth.dosimetry.svalues import organ_self_dose_gy, organ_svalue
from reluth.dosimetry.uncertainty import UncertaintySettings, dose_uncertainty
from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import invalid, moved

VOI_KINDS = ("organ", "tumour", "remainder")
KINETIC_METHODS = (
    "auto",
    *kinetics.FIT_MODELS,
    "trapezoid",
    "hanscheid",
    "madsen",
)
VOXEL_TIA_METHODS = ("auto", "voxel_fit", "organ_scaled", "trapezoid", "hanscheid")
VOXEL_DOSE_METHODS = ("local", "kernel")


# ---------------------------------------------------------------------------------------------
# Typed case
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoiSpec:
    name: str
    kind: str
    mask: NDArray[np.bool_]
    svalue_organ: str | None = None
    kinetics: str | None = None
    mass_g: float | None = None
    madsen_effective_half_life_h: float | None = None


@dataclass(frozen=True)
class MarrowSpec:
    blood_times_h: tuple[float, ...]
    blood_bq_per_ml: tuple[float, ...]
    kinetics: str = "auto"
    rmblr: float = 1.0
    remainder_voi: str | None = None
    marrow_mass_g: float | None = None
    whole_body_times_h: tuple[float, ...] = ()
    whole_body_mbq: tuple[float, ...] = ()
    blood_relative_sd: float | None = DEFAULT_BLOOD_RELATIVE_SD


@dataclass(frozen=True)
class Methods:
    kinetics: str = "auto"
    trapezoid_head: str = "zero"
    trapezoid_tail: str = "physical"
    stp_index: int | None = None  # None: the image closest to 96 h
    activity_relative_sd: float | None = DEFAULT_IMAGE_RELATIVE_SD
    voxel_tia: str = "auto"
    voxel_fit_gauss_newton_steps: int = 3
    voxel_dose: tuple[str, ...] = VOXEL_DOSE_METHODS
    kernel_path: Path | None = None


@dataclass(frozen=True)
class CaseInput:
    case_id: str
    cycle_label: str
    sex: str
    risk_factors: bool
    administered_activity_mbq: float
    injection_time: dt.datetime
    times_h: tuple[float, ...]
    images_bq_per_ml: NDArray[np.float32]
    voxel_mm: tuple[float, float, float]
    vois: tuple[VoiSpec, ...]
    density_g_per_ml: float = 1.0
    density_map_g_per_ml: NDArray[np.float32] | None = None
    methods: Methods = field(default_factory=Methods)
    bed: BedParameters = field(default_factory=BedParameters)
    marrow: MarrowSpec | None = None
    previous_cycles: tuple[CycleDoses, ...] = ()
    organ_names: OrganNames = field(default_factory=default_organ_names)
    recovery_curve: RecoveryCurve | None = None
    uncertainty: UncertaintySettings = field(default_factory=UncertaintySettings)
    #: The grid of the images and masks (arrays indexed [k, j, i]; ``voxel_mm`` along those
    #: axes); None only for cases built in memory without geometry.
    grid: Grid | None = None
    #: What reading the inputs did that the results must say (resampling, conversions).
    notes: tuple[str, ...] = ()

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.voxel_mm)) / 1000.0


# ---------------------------------------------------------------------------------------------
# CT density (the reading of a case is in case_dir.py, from the store in dicom_case.py)
# ---------------------------------------------------------------------------------------------


def density_from_hu(hu: NDArray[np.float32]) -> NDArray[np.float32]:
    """Mass density from CT numbers on the water–air line, ρ = 1 + HU/1000 g/mL, clipped to
    [0.001, 3]: good for soft tissue (organ masses), approximate for bone (a scanner-specific
    calibration is better there)."""
    return np.asarray(np.clip(1.0 + hu / 1000.0, 0.001, 3.0), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Computing (pure)
# ---------------------------------------------------------------------------------------------


@dataclass
class CaseResult:
    """Everything computed for one case (one cycle of one patient). ``to_dict`` gives the JSON
    document; the maps are kept separately for writing."""

    case_id: str
    cycle_label: str
    summary: dict[str, Any]
    maps: dict[str, NDArray[np.float32]]
    tacs: dict[str, tuple[list[float], list[float], Any]]

    def to_dict(self) -> dict[str, Any]:
        return self.summary


def voi_tia(
    method: str,
    times_h: tuple[float, ...],
    activities_mbq: NDArray[np.float64],
    methods: Methods,
    madsen_half_life_h: float | None,
    field_name: str,
    relative_sd: float | str | None = "image",
    models: tuple[str, ...] = kinetics.FIT_MODELS,
    consider_dropping_first: bool = False,
) -> kinetics.TiaResult:
    """The time-integrated activity of one curve by the chosen method, fitted with the stated
    relative uncertainty (``"image"``: ``methods.activity_relative_sd``)."""
    rel = methods.activity_relative_sd if relative_sd == "image" else relative_sd
    sd = None
    if isinstance(rel, float):
        sd = np.maximum(activities_mbq * rel, 1e-12)
    try:
        if method == "auto":
            return kinetics.fit_auto(
                times_h, activities_mbq, sd, models, consider_dropping_first=consider_dropping_first
            )
        if method in kinetics.FIT_MODELS:
            f = kinetics.fit_model(method, times_h, activities_mbq, sd)
            return kinetics.TiaResult(
                f"fit:{method}", f.tia_mbq_h, f.tia_sd_mbq_h, f.effective_half_life_h, f
            )
        if method == "trapezoid":
            return kinetics.trapezoid_tia(
                times_h, activities_mbq, sd, methods.trapezoid_head, methods.trapezoid_tail
            )
        idx = kinetics.stp_index(times_h) if methods.stp_index is None else methods.stp_index
        t = times_h[idx]
        a = float(activities_mbq[idx])
        warn = kinetics.stp_warning(method, t)
        notes = () if warn is None else (at(field_name, warn),)
        if method == "hanscheid":
            return kinetics.TiaResult(
                "hanscheid", kinetics.hanscheid_tia(t, a), None, None, warnings=notes
            )
        if madsen_half_life_h is None:
            raise invalid(
                "madsen_effective_half_life_h", "missing", N_("missing"), N_("hours > 0 for madsen")
            )
        return kinetics.TiaResult(
            "madsen",
            kinetics.madsen_tia(t, a, madsen_half_life_h),
            None,
            madsen_half_life_h,
            warnings=notes,
        )
    except ValidationError as exc:
        raise moved(exc, f"{field_name}.{exc.field}") from None


def _fit_dict(tr: kinetics.TiaResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "method": tr.method,
        "tia_mbq_h": tr.tia_mbq_h,
        "tia_sd_mbq_h": tr.tia_sd_mbq_h,
        "effective_half_life_h": tr.effective_half_life_h,
    }
    if tr.fit is not None:
        out["parameters"] = tr.fit.params
        out["aicc"] = tr.fit.aicc
    if tr.candidates:
        out["candidates"] = [
            {"model": c.model, "aicc": c.aicc, "tia_mbq_h": c.tia_mbq_h} for c in tr.candidates
        ]
    return out


def _curve(tr: kinetics.TiaResult, t_max: float) -> Any:
    if tr.fit is None:
        return None
    tt = np.linspace(0.0, t_max, 200)
    model = kinetics.MODELS[tr.fit.model]
    # the model's own parameters, by name: a fit may carry more (a first point's excess)
    p = [tr.fit.params[name] for name in model.param_names]
    return (tt.tolist(), model.func(tt, *p).tolist())


def _voi_dose(
    case: CaseInput,
    voi: VoiSpec,
    tr: kinetics.TiaResult,
    mass_g: float,
    recovery_relative_sd: float | None,
    warnings: list[str],
) -> dict[str, dict[str, Any]]:
    """The S-value (organ) or sphere-model (tumour) dose of one VOI with its uncertainty."""
    out: dict[str, dict[str, Any]] = {}
    if voi.kind == "organ" and voi.svalue_organ:
        try:
            dose = organ_self_dose_gy(tr.tia_mbq_h, voi.svalue_organ, case.sex, mass_g)
        except ValidationError as exc:
            raise moved(exc, f"vois.{voi.name}.{exc.field}") from None
        out["organ_dose"] = {
            "method": "S-value self-dose (mass-scaled)",
            "svalue_organ": voi.svalue_organ,
            "absorbed_dose_gy": dose,
            "gy_per_gbq": dose / case.administered_activity_mbq * 1000.0,
        }
    if voi.kind == "tumour":
        dose, extrap = sphere_dose_gy(tr.tia_mbq_h, mass_g)
        out["sphere_dose"] = {"absorbed_dose_gy": dose, "s_value_extrapolated": extrap}
        if extrap and recovery_relative_sd is None:
            warnings.append(
                note(
                    "dosimetry.sphere_mass_outside_table",
                    N_("{voi}: mass {mass} outside the sphere table"),
                    voi=voi.name,
                    mass=quantity(mass_g, "g"),
                )
            )
    for d in out.values():
        unc = dose_uncertainty(
            d["absorbed_dose_gy"],
            tr,
            voi.mask,
            case.voxel_mm,
            case.uncertainty,
            case.methods.activity_relative_sd,
            recovery_relative_sd,
            mass_given=voi.mass_g is not None,
        )
        d["absorbed_dose_sd_gy"] = unc.sd_gy
        d["uncertainty"] = asdict(unc)
    return out


def compute_case(case: CaseInput) -> CaseResult:
    """All results of one case. Pure: no file, no clock."""
    m = case.methods
    v_ml = case.voxel_volume_ml
    images = case.images_bq_per_ml
    warnings: list[str] = list(case.notes)
    vois_out: dict[str, Any] = {}
    voi_tias: dict[str, kinetics.TiaResult] = {}
    tacs: dict[str, tuple[list[float], list[float], Any]] = {}
    groups = case.organ_names.groups_present(v.name for v in case.vois)
    by_name = {v.name: v for v in case.vois}
    combined = tuple(
        VoiSpec(
            organ,
            "organ",
            np.logical_or.reduce([by_name[p].mask for p in parts]),
            case.organ_names.svalue_organ(organ),
            by_name[parts[0]].kinetics,
        )
        for organ, parts in groups.items()
    )
    for voi in (*case.vois, *combined):
        act = kinetics.tac_mbq(images, voi.mask, v_ml)
        method = voi.kinetics or m.kinetics
        tr = voi_tia(
            method,
            case.times_h,
            act,
            m,
            voi.madsen_effective_half_life_h,
            f"vois.{voi.name}",
            consider_dropping_first=voi.kind == "organ",
        )
        voi_tias[voi.name] = tr
        warnings.extend(tr.warnings)
        tacs[voi.name] = (list(case.times_h), act.tolist(), _curve(tr, 1.2 * case.times_h[-1]))
        volume_ml = float(voi.mask.sum()) * v_ml
        if voi.mass_g is not None:
            mass_g = voi.mass_g
        elif case.density_map_g_per_ml is not None:
            mass_g = float(case.density_map_g_per_ml[voi.mask].sum(dtype=np.float64)) * v_ml
        else:
            mass_g = volume_ml * case.density_g_per_ml
        entry: dict[str, Any] = {
            "kind": voi.kind,
            "volume_ml": volume_ml,
            "mass_g": mass_g,
            "times_h": list(case.times_h),
            "activity_mbq": act.tolist(),
            "tia": _fit_dict(tr),
            "residence_time_h": tr.tia_mbq_h / case.administered_activity_mbq,
        }
        for key, dose_entry in _voi_dose(case, voi, tr, mass_g, None, warnings).items():
            entry[key] = dose_entry
        rec = None
        if case.recovery_curve is not None and voi.kind in ("organ", "tumour"):
            rec = recovery_for(case.recovery_curve, volume_ml)
        if rec is not None and rec.applied:  # reported alongside the uncorrected result
            tr_pvc = voi_tia(
                method,
                case.times_h,
                act / rec.coefficient,
                m,
                voi.madsen_effective_half_life_h,
                f"vois.{voi.name}",
                consider_dropping_first=voi.kind == "organ",
            )
            entry["partial_volume"] = {
                "recovery_coefficient": rec.coefficient,
                "recovery_relative_sd": rec.relative_sd,
                "extrapolated": rec.extrapolated,
                "curve_id": rec.curve_id,
                "tia": _fit_dict(tr_pvc),
                **_voi_dose(case, voi, tr_pvc, mass_g, rec.relative_sd, warnings),
            }
            if rec.extrapolated:
                warnings.append(
                    note(
                        "dosimetry.pvc_below_smallest_sphere",
                        N_(
                            "{voi}: volume {volume} below the smallest sphere of recovery "
                            "curve {curve}: its recovery coefficient used, correction too small"
                        ),
                        voi=voi.name,
                        volume=quantity(volume_ml, "mL"),
                        curve=rec.curve_id,
                    )
                )
        if voi.name in groups:
            entry["combined_from"] = list(groups[voi.name])
        vois_out[voi.name] = entry

    # voxel-wise TIA and dose
    trap = kinetics.voxel_tia_trapezoid(case.times_h, images)
    ref = (
        kinetics.stp_index(case.times_h) if m.stp_index is None else m.stp_index % len(case.times_h)
    )
    if m.voxel_tia in ("voxel_fit", "auto"):
        if len(case.times_h) < 2:
            raise invalid(
                "methods.voxel_tia",
                "voxel_wise_fit_needs_2",
                N_("a voxel-wise fit needs >= 2 time points, the case has 1"),
                N_("hanscheid, organ_scaled or trapezoid"),
            )
        tia_map = kinetics.voxel_tia_mono(
            case.times_h, images, gauss_newton_steps=m.voxel_fit_gauss_newton_steps
        )
        if m.voxel_tia == "auto":  # tumours with an uptake phase: organ-scaled
            uptake = [
                v
                for v in case.vois
                if v.kind == "tumour" and kinetics.has_uptake_phase(voi_tias[v.name])
            ]
            tia_map = kinetics.voxel_tia_organ_scaled(
                images,
                {v.name: v.mask for v in uptake},
                {v.name: voi_tias[v.name].tia_mbq_h for v in uptake},
                v_ml,
                ref,
                tia_map,
            )
    elif m.voxel_tia == "hanscheid":
        tia_map = kinetics.voxel_tia_hanscheid(case.times_h[ref], images[ref])
        if (warn := kinetics.stp_warning("hanscheid (voxel)", case.times_h[ref])) is not None:
            warnings.append(at("methods.voxel_tia", warn))
    elif m.voxel_tia == "trapezoid":
        tia_map = trap
    else:
        tia_map = kinetics.voxel_tia_organ_scaled(
            images,
            {v.name: v.mask for v in case.vois if v.kind != "remainder"},
            {k: t.tia_mbq_h for k, t in voi_tias.items()},
            v_ml,
            ref,
            trap,
        )
    maps: dict[str, NDArray[np.float32]] = {"tia_bq_h_per_ml": tia_map}
    if "local" in m.voxel_dose:
        density: float | NDArray[np.float32] = (
            case.density_g_per_ml
            if case.density_map_g_per_ml is None
            else voxel.local_deposition_density(
                case.density_map_g_per_ml,
                [v.mask for v in case.vois if v.kind in ("organ", "tumour")],
            )
        )
        maps["dose_local_gy"] = voxel.local_deposition_dose_gy(tia_map, density)
    kernel_info = None
    if "kernel" in m.voxel_dose:
        kern = (
            voxel.load_kernel(m.kernel_path) if m.kernel_path else voxel.kernel_for(case.voxel_mm)
        )
        if not np.allclose(kern.voxel_mm, case.voxel_mm, rtol=0.01):
            raise invalid(
                "methods.kernel",
                "kernel_voxel_mm_differs_from",
                N_("kernel voxel {voxel_mm} mm differs from the image voxel {voxel_mm2} mm"),
                N_("a kernel for the image voxel size"),
                voxel_mm=str(kern.voxel_mm),
                voxel_mm2=str(case.voxel_mm),
            )
        maps["dose_kernel_gy"] = voxel.kernel_dose_gy(tia_map, v_ml, kern)
        kernel_info = {
            "voxel_mm": list(kern.voxel_mm),
            "provenance": kern.provenance,
            "includes_photons": kern.includes_photons,
        }
    for voi in (*case.vois, *combined):
        vd: dict[str, Any] = {}
        for key, name in (("dose_local_gy", "local"), ("dose_kernel_gy", "kernel")):
            if key in maps:
                vd[name] = asdict(voxel.dose_volume(maps[key], voi.mask))
        vd["tia_mbq_h"] = float(tia_map[voi.mask].sum(dtype=np.float64)) * v_ml / 1e6
        vois_out[voi.name]["voxel"] = vd

    # BED (each VOI whose organ has BED parameters: kidneys, each kidney), marrow, cumulation
    this_cycle: dict[str, OrganCycleDose] = {}
    beds: dict[str, dict[str, Any]] = {}
    for name, entry in vois_out.items():
        if "organ_dose" not in entry:
            continue
        d = entry["organ_dose"]["absorbed_dose_gy"]
        teff = voi_tias[name].effective_half_life_h
        this_cycle[name] = OrganCycleDose(d, teff, entry["mass_g"])
        organ = case.organ_names.canonical(name)
        if teff is not None and "kidneys" in (organ, case.organ_names.parent_of(organ)):
            beds[name] = {
                "organ": organ,
                "bed_gy": bed_gy(d, teff, case.bed),
                "absorbed_dose_gy": d,
                "effective_half_life_h": teff,
                "alpha_beta_gy": case.bed.alpha_beta_gy,
                "repair_half_time_h": case.bed.repair_half_time_h,
            }
    bed_out = next((b for b in beds.values() if b["organ"] == "kidneys"), None)
    marrow_out = None
    if case.marrow is not None:
        mk = case.marrow
        blood = voi_tia(
            mk.kinetics,
            mk.blood_times_h,
            np.asarray(mk.blood_bq_per_ml),
            m,
            None,
            "marrow.blood_samples",
            mk.blood_relative_sd,
            kinetics.BLOOD_MODELS,
        )
        warnings.extend(blood.warnings)
        marrow_mass = mk.marrow_mass_g or organ_svalue("red_marrow", case.sex).phantom_mass_g
        wb_fit = None
        if mk.whole_body_times_h:  # remainder = whole body − organs and tumours − marrow
            wb_fit = voi_tia(
                m.kinetics,
                mk.whole_body_times_h,
                np.asarray(mk.whole_body_mbq),
                m,
                None,
                "marrow.whole_body_samples",
            )
            rem_tia = remainder_tia_mbq_h(
                wb_fit.tia_mbq_h,
                [voi_tias[v.name].tia_mbq_h for v in case.vois if v.kind in ("organ", "tumour")],
                marrow_tia_mbq_h(blood.tia_mbq_h, mk.rmblr, marrow_mass),
            )
            source = "whole_body"
        elif mk.remainder_voi:
            rem_tia, source = voi_tias[mk.remainder_voi].tia_mbq_h, "field_of_view"
            warnings.append(
                note(
                    "dosimetry.marrow_remainder_field_of_view",
                    N_(
                        "red marrow: remainder of body from the SPECT field of view only "
                        "({voi}); activity outside it is not counted, the remainder term is "
                        "underestimated: give marrow.whole_body_samples (planar or multi-bed "
                        "SPECT)"
                    ),
                    voi=mk.remainder_voi,
                )
            )
        else:
            rem_tia, source = 0.0, "none"
            warnings.append(
                note(
                    "dosimetry.marrow_no_remainder",
                    N_(
                        "red marrow: no remainder-of-body activity (no marrow.remainder_voi or "
                        "whole_body_samples): the remainder term is left out"
                    ),
                )
            )
        md = marrow_dose(
            blood.tia_mbq_h, case.sex, mk.rmblr, rem_tia, mk.marrow_mass_g, remainder_source=source
        )
        marrow_out = {"blood_tia": _fit_dict(blood), "blood_tia_unit": "Bq·h/mL", **asdict(md)}
        if wb_fit is not None:
            marrow_out["whole_body_tia"] = _fit_dict(wb_fit)
        this_cycle["red_marrow"] = OrganCycleDose(md.total_gy, None)
    cum = cumulate(
        [*case.previous_cycles, CycleDoses(case.cycle_label, this_cycle)],
        {"kidneys": case.bed},
        risk_factors=case.risk_factors,
        names=case.organ_names,
    )
    warnings.extend(
        note(
            "dosimetry.limit_with_source",
            N_("{warning} [source: {source}]"),
            warning=reason_of(w.message),
            source=w.source,
        )
        for w in cum.warnings
    )
    warnings.extend(cum.notes)
    summary = {
        "case_id": case.case_id,
        "cycle_label": case.cycle_label,
        "units": {
            "activity": "MBq",
            "tia": "MBq·h",
            "dose": "Gy",
            "time": "h after injection",
            "tia_map": "Bq·h/mL",
        },
        "administered_activity_mbq": case.administered_activity_mbq,
        "injection_time": case.injection_time.isoformat(),
        "sex": case.sex,
        "voxel_mm": list(case.voxel_mm),
        "grid": list(images.shape[1:]),
        "geometry": None if case.grid is None else case.grid.to_dict(),
        "methods": {
            "kinetics": m.kinetics,
            "voxel_tia": m.voxel_tia,
            "voxel_dose": list(m.voxel_dose),
            "kernel": kernel_info,
            "photons_in_voxel_dose": bool(kernel_info and kernel_info["includes_photons"]),
        },
        "vois": vois_out,
        "kidney_bed": bed_out,
        "bed": beds,
        "red_marrow": marrow_out,
        "cumulative": {o: asdict(v) for o, v in cum.organs.items()},
        "warnings": warnings,
        "warning_messages": messages(warnings),
    }
    return CaseResult(case.case_id, case.cycle_label, summary, maps, tacs)


@dataclass(frozen=True)
class DoseRecord:
    """One stored number of a cycle: what a trial-database service persists per cycle."""

    case_id: str
    cycle_label: str
    region: str
    quantity: str
    value: float
    sd: float | None
    unit: str
    method: str
    kind: str = "organ"  # of the region: organ | tumour | remainder | marrow


def dose_records(result: CaseResult) -> list[DoseRecord]:
    """Flat per-cycle records (TIA, organ/sphere dose, voxel mean and D2/D50/D98, kidney BED,
    red marrow) of one computed case, ready to be stored with the cycle they belong to."""
    return records_from_summary(result.summary)


def records_from_summary(doc: Mapping[str, Any]) -> list[DoseRecord]:
    """The records of :func:`dose_records` from a case's summary document (``results.json``
    as ``reluth dosimetry run`` writes it; values it holds as null are skipped)."""
    out: list[DoseRecord] = []
    kinds = {name: v.get("kind", "organ") for name, v in doc["vois"].items()}
    kinds["red_marrow"] = "marrow"

    def add(region: str, quantity: str, value: Any, sd: Any, unit: str, method: str) -> None:
        if value is not None:
            out.append(
                DoseRecord(
                    str(doc["case_id"]),
                    str(doc["cycle_label"]),
                    region,
                    quantity,
                    float(value),
                    None if sd is None else float(sd),
                    unit,
                    method,
                    kinds.get(region, "organ"),
                )
            )

    for name, v in doc["vois"].items():
        tia = v["tia"]
        add(name, "tia", tia["tia_mbq_h"], tia["tia_sd_mbq_h"], "MBq·h", tia["method"])
        add(name, "effective_half_life", tia["effective_half_life_h"], None, "h", tia["method"])
        for key, method in (("organ_dose", "S-value"), ("sphere_dose", "sphere model")):
            for block, suffix in ((v, ""), (v.get("partial_volume") or {}, ", recovery-corrected")):
                if key in block:
                    d = block[key]
                    add(
                        name,
                        "absorbed_dose",
                        d["absorbed_dose_gy"],
                        d["absorbed_dose_sd_gy"],
                        "Gy",
                        method + suffix,
                    )
        for vm in ("local", "kernel"):
            if vm in v["voxel"]:
                dv = v["voxel"][vm]
                for q in ("mean", "d2", "d50", "d98"):
                    add(name, f"voxel_{q}_dose", dv[f"{q}_gy"], None, "Gy", f"voxel {vm}")
    for region, b in (doc.get("bed") or {}).items():
        add(region, "bed", b["bed_gy"], None, "Gy", "BED (α/β, T_rep)")
    if doc.get("kidney_bed") and "bed" not in doc:  # results.json written before per-VOI BED
        add("kidneys", "bed", doc["kidney_bed"]["bed_gy"], None, "Gy", "BED (α/β, T_rep)")
    if doc.get("red_marrow"):
        add("red_marrow", "absorbed_dose", doc["red_marrow"]["total_gy"], None, "Gy", "blood-based")
    return out
