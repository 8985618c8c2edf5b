"""Case directory → results: ``load_case`` (reads and validates files), ``compute_case`` (pure:
arrays and settings in, per-cycle results out, ready for a service to store with its cycle), and
``write_outputs`` (JSON, NIfTI dose maps, TAC plots, HTML summary). ``run_case_dir`` chains them
and is what the commands and the batch runner call.

Case format: see docs/dosimetry.md.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from reluth.dosimetry import kinetics, voxel
from reluth.dosimetry.bed import BedParameters, bed_gy
from reluth.dosimetry.cumulative import CycleDoses, OrganCycleDose, cumulate
from reluth.dosimetry.marrow import marrow_dose, rmblr_from_haematocrit
from reluth.dosimetry.sphere import sphere_dose_gy
from reluth.dosimetry.svalues import SEXES, organ_self_dose_gy, organs
from reluth.errors import ReluthError, ValidationError

VOI_KINDS = ("organ", "tumour", "remainder")
KINETIC_METHODS = (
    "auto",
    *kinetics.FIT_MODELS,
    "trapezoid",
    "hanscheid",
    "madsen",
)
VOXEL_TIA_METHODS = ("voxel_fit", "organ_scaled", "trapezoid", "hanscheid")
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
    kinetics: str = "mono"
    rmblr: float = 1.0
    remainder_voi: str | None = None
    marrow_mass_g: float | None = None


@dataclass(frozen=True)
class Methods:
    kinetics: str = "auto"
    trapezoid_head: str = "zero"
    trapezoid_tail: str = "physical"
    stp_index: int = -1
    activity_relative_sd: float | None = None
    voxel_tia: str = "voxel_fit"
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

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.voxel_mm)) / 1000.0


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _req(doc: Mapping[str, Any], key: str, where: str = "") -> Any:
    if key not in doc or doc[key] is None:
        raise ValidationError(f"{where}{key}", "missing", "see docs/dosimetry.md")
    return doc[key]


def _datetime(value: Any, field_name: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(
            field_name, f"not a date-time: {value!r}", "YYYY-MM-DDTHH:MM"
        ) from None


def _number(value: Any, field_name: str, positive: bool = True) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValidationError(field_name, f"not a number: {value!r}", "a number") from None
    if not math.isfinite(x) or (positive and x <= 0) or x < 0:
        raise ValidationError(field_name, f"invalid value {value!r}", "> 0" if positive else ">= 0")
    return x


def _choice(value: Any, field_name: str, accepted: tuple[Any, ...]) -> Any:
    if isinstance(value, bool) or value not in accepted:
        raise ValidationError(
            field_name, f"unknown value {value!r}", ", ".join(str(a) for a in accepted)
        )
    return value


def _read_array(path: Path, field_name: str) -> tuple[NDArray[Any], tuple[float, ...] | None]:
    """A .npy array (no voxel size) or a NIfTI image (voxel size from its header)."""
    if not path.exists():
        raise ValidationError(field_name, f"file {path.name} not found", "an existing file")
    name = path.name.lower()
    try:
        if name.endswith(".npy"):
            return np.load(path, allow_pickle=False), None
        if name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            img: Any = nib.load(str(path))
            zooms = tuple(round(float(z), 4) for z in img.header.get_zooms()[:3])
            return np.asarray(img.dataobj), zooms
    except (OSError, ValueError) as exc:
        raise ValidationError(
            field_name, f"cannot read {path.name}: {exc}", ".npy or NIfTI"
        ) from None
    raise ValidationError(field_name, f"unsupported file type {path.name}", ".npy, .nii, .nii.gz")


def density_from_hu(hu: NDArray[np.float32]) -> NDArray[np.float32]:
    """Mass density from CT numbers on the water–air line, ρ = 1 + HU/1000 g/mL, clipped to
    [0.001, 3]: good for soft tissue (organ masses), approximate for bone (a scanner-specific
    calibration is better there)."""
    return np.asarray(np.clip(1.0 + hu / 1000.0, 0.001, 3.0), dtype=np.float32)


def load_case(case_dir: Path) -> CaseInput:
    """Read and validate a case directory; errors name the field (the caller adds the case)."""
    try:
        return _load_case(Path(case_dir))
    except (TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
        raise ValidationError(
            "case.yaml", f"unexpected structure or value ({exc})", "see docs/dosimetry.md"
        ) from None


def _load_case(case_dir: Path) -> CaseInput:
    path = case_dir / "case.yaml"
    if not path.exists():
        raise ValidationError("case.yaml", f"not found in {case_dir}", "a case directory")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValidationError("case.yaml", f"malformed YAML: {exc}", "YAML") from None
    if not isinstance(doc, dict):
        raise ValidationError("case.yaml", "not a mapping", "see docs/dosimetry.md")
    case_id = str(doc.get("case_id") or case_dir.name)
    cycle = doc.get("cycle") or {}
    patient = doc.get("patient") or {}
    sex = _choice(patient.get("sex"), "patient.sex", SEXES)
    activity = _number(_req(doc, "administered_activity_mbq"), "administered_activity_mbq")
    injection = _datetime(_req(doc, "injection_time"), "injection_time")
    density = _number(doc.get("density_g_per_ml", 1.0), "density_g_per_ml")

    spect = _req(doc, "spect")
    if not isinstance(spect, list) or not spect:
        raise ValidationError("spect", "no image listed", "a list of {file, acquisition_time}")
    times: list[float] = []
    arrays: list[NDArray[np.float32]] = []
    zooms_seen: tuple[float, ...] | None = None
    for i, item in enumerate(spect):
        where = f"spect[{i}]."
        t = _datetime(_req(item, "acquisition_time", where), f"{where}acquisition_time")
        hours = (t - injection).total_seconds() / 3600.0
        if hours <= 0:
            raise ValidationError(
                f"{where}acquisition_time", f"{t.isoformat()} is not after the injection", ""
            )
        arr, zooms = _read_array(case_dir / str(_req(item, "file", where)), f"{where}file")
        if arr.ndim != 3:
            raise ValidationError(f"{where}file", f"{arr.ndim}-D image", "a 3-D image in Bq/mL")
        if arrays and arr.shape != arrays[0].shape:
            raise ValidationError(
                f"{where}file", f"grid {arr.shape} differs from {arrays[0].shape}", "one grid"
            )
        arr = np.asarray(arr, dtype=np.float32)
        if not np.all(np.isfinite(arr)):
            raise ValidationError(f"{where}file", "contains NaN or infinite values", "finite Bq/mL")
        if float(arr.min()) < 0:
            raise ValidationError(
                f"{where}file", f"negative activity concentration ({arr.min():g} Bq/mL)", ">= 0"
            )
        times.append(hours)
        arrays.append(arr)
        zooms_seen = zooms_seen or zooms
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise ValidationError(
            "spect.acquisition_time",
            f"times after injection are not increasing: {[round(x, 2) for x in times]} h",
            "images listed in increasing acquisition time",
        )
    if "voxel_mm" in doc:
        vm = doc["voxel_mm"]
        if not (isinstance(vm, list) and len(vm) == 3):
            raise ValidationError("voxel_mm", f"{vm!r}", "three sizes in mm")
        vox = tuple(_number(v, "voxel_mm") for v in vm)
    elif zooms_seen is not None:
        vox = zooms_seen
    else:
        raise ValidationError("voxel_mm", "missing (needed for .npy images)", "[x, y, z] in mm")
    images = np.stack(arrays)
    grid = images.shape[1:]

    density_map = None
    if doc.get("ct"):
        ct_doc = doc["ct"]
        hu, _ = _read_array(case_dir / str(_req(ct_doc, "file", "ct.")), "ct.file")
        if hu.shape != grid:
            raise ValidationError(
                "ct.file",
                f"grid {hu.shape} does not match the SPECT grid {grid}",
                "a CT resampled to the SPECT grid",
            )
        density_map = density_from_hu(np.asarray(hu, dtype=np.float32))

    vois_doc = _req(doc, "vois")
    if not isinstance(vois_doc, dict) or not vois_doc:
        raise ValidationError("vois", "no volume of interest", "a mapping name -> {mask, kind}")
    vois = []
    for name, v in vois_doc.items():
        where = f"vois.{name}."
        mask_arr, _ = _read_array(case_dir / str(_req(v, "mask", where)), f"{where}mask")
        if mask_arr.shape != grid:
            raise ValidationError(
                f"{where}mask",
                f"grid {mask_arr.shape} does not match the SPECT grid {grid}",
                "a mask resampled to the SPECT grid",
            )
        mask = np.asarray(mask_arr) > 0.5
        if not mask.any():
            raise ValidationError(f"{where}mask", "empty mask", "at least one voxel")
        kind = _choice(v.get("kind", "organ"), f"{where}kind", VOI_KINDS)
        svalue_organ = v.get("svalue_organ")
        if svalue_organ is not None:
            svalue_organ = _choice(svalue_organ, f"{where}svalue_organ", tuple(organs()))
        kin = v.get("kinetics")
        if kin is not None:
            _choice(kin, f"{where}kinetics", KINETIC_METHODS)
        vois.append(
            VoiSpec(
                str(name),
                kind,
                mask,
                svalue_organ,
                kin,
                None if v.get("mass_g") is None else _number(v["mass_g"], f"{where}mass_g"),
                None
                if v.get("madsen_effective_half_life_h") is None
                else _number(
                    v["madsen_effective_half_life_h"], f"{where}madsen_effective_half_life_h"
                ),
            )
        )

    m = doc.get("methods") or {}
    trap = m.get("trapezoid") or {}
    stp = m.get("single_time_point") or {}
    kernel_path = None
    if m.get("kernel", "shipped") != "shipped":
        kernel_path = case_dir / str(m["kernel"])
    voxel_dose = m.get("voxel_dose", list(VOXEL_DOSE_METHODS))
    if not isinstance(voxel_dose, list):
        voxel_dose = [voxel_dose]
    methods = Methods(
        kinetics=_choice(m.get("kinetics", "auto"), "methods.kinetics", KINETIC_METHODS),
        trapezoid_head=_choice(
            trap.get("head", "zero"), "methods.trapezoid.head", kinetics.TRAPEZOID_HEADS
        ),
        trapezoid_tail=_choice(
            trap.get("tail", "physical"), "methods.trapezoid.tail", kinetics.TRAPEZOID_TAILS
        ),
        stp_index=int(stp.get("index", -1)),
        activity_relative_sd=None
        if m.get("activity_relative_sd") is None
        else _number(m["activity_relative_sd"], "methods.activity_relative_sd"),
        voxel_tia=_choice(m.get("voxel_tia", "voxel_fit"), "methods.voxel_tia", VOXEL_TIA_METHODS),
        voxel_fit_gauss_newton_steps=int(
            _choice(
                m.get("voxel_fit_gauss_newton_steps", 3),
                "methods.voxel_fit_gauss_newton_steps",
                (0, 1, 2, 3, 4, 5),
            )
        ),
        voxel_dose=tuple(_choice(x, "methods.voxel_dose", VOXEL_DOSE_METHODS) for x in voxel_dose),
        kernel_path=kernel_path,
    )
    if not -len(times) <= methods.stp_index < len(times):
        raise ValidationError(
            "methods.single_time_point.index", str(methods.stp_index), f"0..{len(times) - 1}"
        )

    b = doc.get("bed") or {}
    bed = BedParameters(
        _number(b.get("alpha_beta_gy", 2.6), "bed.alpha_beta_gy"),
        _number(b.get("repair_half_time_h", 2.8), "bed.repair_half_time_h"),
    )
    marrow = None
    if doc.get("marrow"):
        md = doc["marrow"]
        samples = _req(md, "blood_samples", "marrow.")
        bt, bc = [], []
        for i, s in enumerate(samples):
            w = f"marrow.blood_samples[{i}]."
            st = _datetime(_req(s, "sample_time", w), f"{w}sample_time")
            bt.append((st - injection).total_seconds() / 3600.0)
            bc.append(_number(_req(s, "bq_per_ml", w), f"{w}bq_per_ml", positive=False))
        if "haematocrit" in md:
            rmblr = rmblr_from_haematocrit(float(md["haematocrit"]))
        else:
            rmblr = _number(md.get("rmblr", 1.0), "marrow.rmblr")
        rem = md.get("remainder_voi")
        if rem is not None and rem not in vois_doc:
            raise ValidationError(
                "marrow.remainder_voi", f"{rem!r} is not a VOI", ", ".join(vois_doc)
            )
        marrow = MarrowSpec(
            tuple(bt),
            tuple(bc),
            _choice(md.get("kinetics", "mono"), "marrow.kinetics", KINETIC_METHODS),
            rmblr,
            rem,
            None
            if md.get("marrow_mass_g") is None
            else _number(md["marrow_mass_g"], "marrow.marrow_mass_g"),
        )
    previous = []
    for i, c in enumerate(doc.get("previous_cycles") or []):
        w = f"previous_cycles[{i}]."
        doses = {}
        for organ, d in (_req(c, "doses", w) or {}).items():
            teff = d.get("effective_half_life_h")
            doses[str(organ)] = OrganCycleDose(
                _number(
                    _req(d, "absorbed_dose_gy", f"{w}doses.{organ}."),
                    f"{w}doses.{organ}.absorbed_dose_gy",
                    positive=False,
                ),
                None if teff is None else _number(teff, f"{w}doses.{organ}.effective_half_life_h"),
            )
        previous.append(CycleDoses(str(_req(c, "label", w)), doses))
    return CaseInput(
        case_id=case_id,
        cycle_label=str(cycle.get("label", "unlabelled")),
        sex=sex,
        risk_factors=bool(patient.get("risk_factors", False)),
        administered_activity_mbq=activity,
        injection_time=injection,
        times_h=tuple(times),
        images_bq_per_ml=images,
        voxel_mm=(float(vox[0]), float(vox[1]), float(vox[2])),
        vois=tuple(vois),
        density_g_per_ml=density,
        density_map_g_per_ml=density_map,
        methods=methods,
        bed=bed,
        marrow=marrow,
        previous_cycles=tuple(previous),
    )


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
) -> kinetics.TiaResult:
    """The time-integrated activity of one curve by the chosen method."""
    sd = None
    if methods.activity_relative_sd is not None:
        sd = np.maximum(activities_mbq * methods.activity_relative_sd, 1e-12)
    try:
        if method == "auto":
            return kinetics.fit_auto(times_h, activities_mbq, sd)
        if method in kinetics.FIT_MODELS:
            f = kinetics.fit_model(method, times_h, activities_mbq, sd)
            return kinetics.TiaResult(
                f"fit:{method}", f.tia_mbq_h, f.tia_sd_mbq_h, f.effective_half_life_h, f
            )
        if method == "trapezoid":
            return kinetics.trapezoid_tia(
                times_h, activities_mbq, sd, methods.trapezoid_head, methods.trapezoid_tail
            )
        t = times_h[methods.stp_index]
        a = float(activities_mbq[methods.stp_index])
        if method == "hanscheid":
            return kinetics.TiaResult("hanscheid", kinetics.hanscheid_tia(t, a), None, None)
        if madsen_half_life_h is None:
            raise ValidationError("madsen_effective_half_life_h", "missing", "hours > 0 for madsen")
        return kinetics.TiaResult(
            "madsen", kinetics.madsen_tia(t, a, madsen_half_life_h), None, madsen_half_life_h
        )
    except ValidationError as exc:
        raise ValidationError(f"{field_name}.{exc.field}", exc.problem, exc.accepted) from None


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
    p = list(tr.fit.params.values())
    return (tt.tolist(), kinetics.MODELS[tr.fit.model].func(tt, *p).tolist())


def compute_case(case: CaseInput) -> CaseResult:
    """All results of one case. Pure: no file, no clock."""
    m = case.methods
    v_ml = case.voxel_volume_ml
    images = case.images_bq_per_ml
    warnings: list[str] = []
    vois_out: dict[str, Any] = {}
    voi_tias: dict[str, kinetics.TiaResult] = {}
    tacs: dict[str, tuple[list[float], list[float], Any]] = {}
    for voi in case.vois:
        act = kinetics.tac_mbq(images, voi.mask, v_ml)
        method = voi.kinetics or m.kinetics
        tr = voi_tia(
            method, case.times_h, act, m, voi.madsen_effective_half_life_h, f"vois.{voi.name}"
        )
        voi_tias[voi.name] = tr
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
        rel_sd = None if tr.tia_sd_mbq_h is None else tr.tia_sd_mbq_h / tr.tia_mbq_h
        if voi.kind == "organ" and voi.svalue_organ:
            try:
                dose = organ_self_dose_gy(tr.tia_mbq_h, voi.svalue_organ, case.sex, mass_g)
            except ValidationError as exc:
                raise ValidationError(
                    f"vois.{voi.name}.{exc.field}", exc.problem, exc.accepted
                ) from None
            entry["organ_dose"] = {
                "method": "S-value self-dose (mass-scaled)",
                "absorbed_dose_gy": dose,
                "absorbed_dose_sd_gy": None if rel_sd is None else dose * rel_sd,
                "gy_per_gbq": dose / case.administered_activity_mbq * 1000.0,
            }
        if voi.kind == "tumour":
            dose, extrap = sphere_dose_gy(tr.tia_mbq_h, mass_g)
            entry["sphere_dose"] = {
                "absorbed_dose_gy": dose,
                "absorbed_dose_sd_gy": None if rel_sd is None else dose * rel_sd,
                "s_value_extrapolated": extrap,
            }
            if extrap:
                warnings.append(f"{voi.name}: mass {mass_g:.3g} g outside the sphere table")
        vois_out[voi.name] = entry

    # voxel-wise TIA and dose
    trap = kinetics.voxel_tia_trapezoid(case.times_h, images)
    if m.voxel_tia == "voxel_fit":
        if len(case.times_h) < 2:
            raise ValidationError(
                "methods.voxel_tia",
                "a voxel-wise fit needs >= 2 time points, the case has 1",
                "hanscheid, organ_scaled or trapezoid",
            )
        tia_map = kinetics.voxel_tia_mono(
            case.times_h, images, gauss_newton_steps=m.voxel_fit_gauss_newton_steps
        )
    elif m.voxel_tia == "hanscheid":
        ref = m.stp_index % len(case.times_h)
        tia_map = kinetics.voxel_tia_hanscheid(case.times_h[ref], images[ref])
    elif m.voxel_tia == "trapezoid":
        tia_map = trap
    else:
        ref = m.stp_index % len(case.times_h)
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
            else case.density_map_g_per_ml
        )
        maps["dose_local_gy"] = voxel.local_deposition_dose_gy(tia_map, density)
    kernel_info = None
    if "kernel" in m.voxel_dose:
        kern = (
            voxel.load_kernel(m.kernel_path) if m.kernel_path else voxel.kernel_for(case.voxel_mm)
        )
        if not np.allclose(kern.voxel_mm, case.voxel_mm, rtol=0.01):
            raise ValidationError(
                "methods.kernel",
                f"kernel voxel {kern.voxel_mm} mm differs from the image voxel {case.voxel_mm} mm",
                "a kernel for the image voxel size",
            )
        maps["dose_kernel_gy"] = voxel.kernel_dose_gy(tia_map, v_ml, kern)
        kernel_info = {"voxel_mm": list(kern.voxel_mm), "provenance": kern.provenance}
    for voi in case.vois:
        vd: dict[str, Any] = {}
        for key, name in (("dose_local_gy", "local"), ("dose_kernel_gy", "kernel")):
            if key in maps:
                vd[name] = asdict(voxel.dose_volume(maps[key], voi.mask))
        vd["tia_mbq_h"] = float(tia_map[voi.mask].sum(dtype=np.float64)) * v_ml / 1e6
        vois_out[voi.name]["voxel"] = vd

    # kidney BED, marrow, cumulation
    this_cycle: dict[str, OrganCycleDose] = {}
    kid = vois_out.get("kidneys")
    bed_out = None
    if kid and "organ_dose" in kid:
        teff = voi_tias["kidneys"].effective_half_life_h
        d = kid["organ_dose"]["absorbed_dose_gy"]
        if teff is not None:
            bed_out = {
                "bed_gy": bed_gy(d, teff, case.bed),
                "absorbed_dose_gy": d,
                "effective_half_life_h": teff,
                "alpha_beta_gy": case.bed.alpha_beta_gy,
                "repair_half_time_h": case.bed.repair_half_time_h,
            }
        this_cycle["kidneys"] = OrganCycleDose(d, teff)
    for name, entry in vois_out.items():
        if name != "kidneys" and "organ_dose" in entry:
            this_cycle[name] = OrganCycleDose(
                entry["organ_dose"]["absorbed_dose_gy"], voi_tias[name].effective_half_life_h
            )
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
        )
        rem_tia = voi_tias[mk.remainder_voi].tia_mbq_h if mk.remainder_voi else 0.0
        md = marrow_dose(blood.tia_mbq_h, case.sex, mk.rmblr, rem_tia, mk.marrow_mass_g)
        marrow_out = {"blood_tia": _fit_dict(blood), "blood_tia_unit": "Bq·h/mL", **asdict(md)}
        this_cycle["red_marrow"] = OrganCycleDose(md.total_gy, None)
    cum = cumulate(
        [*case.previous_cycles, CycleDoses(case.cycle_label, this_cycle)],
        {"kidneys": case.bed},
        risk_factors=case.risk_factors,
    )
    warnings.extend(w.message + f" [source: {w.source}]" for w in cum.warnings)
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
        "methods": {
            "kinetics": m.kinetics,
            "voxel_tia": m.voxel_tia,
            "voxel_dose": list(m.voxel_dose),
            "kernel": kernel_info,
            "photons_in_voxel_dose": False,
        },
        "vois": vois_out,
        "kidney_bed": bed_out,
        "red_marrow": marrow_out,
        "cumulative": {o: asdict(v) for o, v in cum.organs.items()},
        "warnings": warnings,
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
            if key in v:
                d = v[key]
                add(
                    name,
                    "absorbed_dose",
                    d["absorbed_dose_gy"],
                    d["absorbed_dose_sd_gy"],
                    "Gy",
                    method,
                )
        for vm in ("local", "kernel"):
            if vm in v["voxel"]:
                dv = v["voxel"][vm]
                for q in ("mean", "d2", "d50", "d98"):
                    add(name, f"voxel_{q}_dose", dv[f"{q}_gy"], None, "Gy", f"voxel {vm}")
    if doc.get("kidney_bed"):
        add("kidneys", "bed", doc["kidney_bed"]["bed_gy"], None, "Gy", "BED (α/β, T_rep)")
    if doc.get("red_marrow"):
        add("red_marrow", "absorbed_dose", doc["red_marrow"]["total_gy"], None, "Gy", "blood-based")
    return out


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def write_outputs(result: CaseResult, case: CaseInput, out_dir: Path) -> dict[str, str]:
    """results.json, NIfTI maps, TAC plots (PNG) and summary.html in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nibabel as nib

    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    affine = np.diag([*case.voxel_mm, 1.0])
    for name, arr in result.maps.items():
        p = out_dir / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(arr.astype(np.float32), affine), p)
        files[name] = p.name
    names = list(result.tacs)
    ncol = min(3, len(names))
    nrow = math.ceil(len(names) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.8 * nrow), dpi=90, squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        t, a, curve = result.tacs[name]
        ax.plot(t, a, "o", label="measured")
        if curve is not None:
            ax.plot(curve[0], curve[1], "-", label=result.summary["vois"][name]["tia"]["method"])
        ax.set_xlabel("time after injection (h)")
        ax.set_ylabel("activity (MBq)")
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
    ax.set_xlabel(f"absorbed dose (Gy, voxel {method})")
    ax.set_ylabel("volume receiving at least the dose (%)")
    ax.set_ylim(0, 102)
    ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.95, bottom=0.14)
    fig.savefig(out_dir / "dvh.png")
    plt.close(fig)
    files["dvh"] = "dvh.png"
    doc = {**result.summary, "files": files}
    (out_dir / "results.json").write_text(
        json.dumps(json_safe(doc), indent=2) + "\n", encoding="utf-8"
    )
    (out_dir / "summary.html").write_text(render_html(doc), encoding="utf-8")
    files["results"] = "results.json"
    files["summary"] = "summary.html"
    return files


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


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return html.escape(str(x))


def render_html(doc: Mapping[str, Any]) -> str:
    """A self-contained HTML summary of one case."""
    e = html.escape
    rows = []
    for name, v in doc["vois"].items():
        dose = (v.get("organ_dose") or v.get("sphere_dose") or {}).get("absorbed_dose_gy")
        loc = v["voxel"].get("local", {}).get("mean_gy")
        ker = v["voxel"].get("kernel", {})
        rows.append(
            f"<tr><td>{e(name)}</td><td>{e(v['kind'])}</td><td>{_fmt(v['mass_g'])}</td>"
            f"<td>{e(v['tia']['method'])}</td><td>{_fmt(v['tia']['tia_mbq_h'])}</td>"
            f"<td>{_fmt(v['tia']['tia_sd_mbq_h'])}</td><td>{_fmt(v['tia']['effective_half_life_h'])}</td>"
            f"<td>{_fmt(dose)}</td><td>{_fmt(loc)}</td><td>{_fmt(ker.get('mean_gy'))}</td>"
            f"<td>{_fmt(ker.get('d2_gy'))}</td><td>{_fmt(ker.get('d98_gy'))}</td></tr>"
        )
    cum_rows = "".join(
        f"<tr><td>{e(o)}</td><td>{len(c['cycles'])}</td><td>{_fmt(c['cumulative_absorbed_dose_gy'])}</td>"
        f"<td>{_fmt(c['cumulative_bed_gy'])}</td></tr>"
        for o, c in doc["cumulative"].items()
    )
    warn = "".join(f"<li>{e(w)}</li>" for w in doc["warnings"]) or "<li>none</li>"
    imgs = "".join(
        f'<img src="{e(f)}" alt="{e(k)}">'
        for k, f in doc.get("files", {}).items()
        if k in ("tac", "dvh")
    )
    bed = doc.get("kidney_bed") or {}
    marrow = doc.get("red_marrow") or {}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dosimetry {e(doc["case_id"])}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:2px 6px;text-align:right}}img{{margin:4px}}</style></head>
<body><h1>Dosimetry — case {e(doc["case_id"])}, cycle {e(doc["cycle_label"])}</h1>
<p>Administered {_fmt(doc["administered_activity_mbq"], 5)} MBq at {e(doc["injection_time"])};
voxel {e(str(doc["voxel_mm"]))} mm; sex {e(doc["sex"])}.</p>
<h2>Volumes of interest</h2>
<table><tr><th>VOI</th><th>kind</th><th>mass (g)</th><th>TIA method</th><th>TIA (MBq·h)</th>
<th>SD (MBq·h)</th><th>T<sub>eff</sub> (h)</th><th>S-value / sphere dose (Gy)</th>
<th>mean local (Gy)</th><th>mean kernel (Gy)</th><th>D2 (Gy)</th><th>D98 (Gy)</th></tr>
{"".join(rows)}</table>
<p>Kidney BED: {_fmt(bed.get("bed_gy"))} Gy (α/β {_fmt(bed.get("alpha_beta_gy"))} Gy,
T<sub>rep</sub> {_fmt(bed.get("repair_half_time_h"))} h). Red marrow (blood-based):
{_fmt(marrow.get("total_gy"))} Gy.</p>
<h2>Cumulative over cycles</h2>
<table><tr><th>organ</th><th>cycles</th><th>absorbed dose (Gy)</th><th>BED (Gy)</th></tr>
{cum_rows}</table>
<h2>Warnings</h2><ul>{warn}</ul>
<h2>Time–activity curves and dose–volume histograms</h2>{imgs}
</body></html>
"""


def _peek_case_id(case_dir: Path) -> str:
    """The case_id of case.yaml if it can be read, else the directory name (for messages)."""
    try:
        doc = yaml.safe_load((case_dir / "case.yaml").read_text(encoding="utf-8"))
        return str(doc.get("case_id") or case_dir.name)
    except (OSError, yaml.YAMLError, AttributeError):
        return case_dir.name


def run_case_dir(case_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Load, compute, write. A ValidationError names the case and the field."""
    case_dir = Path(case_dir)
    case_name = _peek_case_id(case_dir)
    try:
        case = load_case(case_dir)
        case_name = case.case_id
        result = compute_case(case)
        files = write_outputs(result, case, Path(out_dir))
    except ValidationError as exc:
        raise ValidationError(f"case {case_name}: {exc.field}", exc.problem, exc.accepted) from None
    except ReluthError as exc:
        raise ValidationError(f"case {case_name}", exc.message) from None
    return {
        "case_id": case.case_id,
        "out_dir": str(out_dir),
        "files": files,
        "warnings": result.summary["warnings"],
    }
