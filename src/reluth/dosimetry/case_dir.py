"""Reading a case directory (``case.yaml`` with NIfTI or .npy images and masks, see
docs/dosimetry.md) into the pipeline's typed case, with every input placed by its geometry.

The first SPECT's grid is the case's grid. Every other input (SPECT of the other time points,
CT, masks) is compared with it by its affine, not by its array shape: when the grids differ it
is resampled by SimpleITK (masks nearest neighbour, images linear) and the results say so, or,
with ``geometry: {on_mismatch: refuse}``, refused with a message naming the file. A ``.npy``
array carries no geometry: it is taken on the first SPECT's grid (for a first SPECT in .npy,
the grid ``voxel_mm`` declares: axes x, y, z, origin 0), and its shape must match.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from reluth.dosimetry import kinetics
from reluth.dosimetry.bed import BedParameters
from reluth.dosimetry.cumulative import CycleDoses, OrganCycleDose
from reluth.dosimetry.image import Grid, GridPolicy, Image, onto, read_nifti
from reluth.dosimetry.marrow import rmblr_from_haematocrit
from reluth.dosimetry.organs import OrganNames, default_organ_names
from reluth.dosimetry.pipeline import (
    KINETIC_METHODS,
    VOI_KINDS,
    VOXEL_DOSE_METHODS,
    VOXEL_TIA_METHODS,
    CaseInput,
    MarrowSpec,
    Methods,
    VoiSpec,
    density_from_hu,
)
from reluth.dosimetry.pvc import RecoveryCurve, parse_recovery_curve
from reluth.dosimetry.svalues import SEXES, organs
from reluth.dosimetry.uncertainty import UncertaintySettings
from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import invalid


def _req(doc: Mapping[str, Any], key: str, where: str = "") -> Any:
    if key not in doc or doc[key] is None:
        raise invalid(f"{where}{key}", "missing", N_("missing"), N_("see docs/dosimetry.md"))
    return doc[key]


def _datetime(value: Any, field_name: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise invalid(
            field_name,
            "not_date_time",
            N_("not a date-time: {value}"),
            N_("YYYY-MM-DDTHH:MM"),
            value=repr(value),
        ) from None


def _number(value: Any, field_name: str, positive: bool = True) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise invalid(
            field_name, "not_number", N_("not a number: {value}"), N_("a number"), value=repr(value)
        ) from None
    if not math.isfinite(x) or (positive and x <= 0) or x < 0:
        raise invalid(
            field_name,
            "invalid_value_3",
            N_("invalid value {value}"),
            N_("{value2}"),
            value=repr(value),
            value2=str("> 0" if positive else ">= 0"),
        )
    return x


def _relative_sd(doc: Mapping[str, Any], key: str, where: str) -> float | None:
    """A stated relative uncertainty: absent → the default; null → none (unweighted fit)."""
    default = {
        "activity_relative_sd": kinetics.DEFAULT_IMAGE_RELATIVE_SD,
        "blood_relative_sd": kinetics.DEFAULT_BLOOD_RELATIVE_SD,
    }[key]
    if key not in doc:
        return default
    return None if doc[key] is None else _number(doc[key], f"{where}{key}")


def _choice(value: Any, field_name: str, accepted: tuple[Any, ...]) -> Any:
    if isinstance(value, bool) or value not in accepted:
        raise invalid(
            field_name,
            "unknown_value",
            N_("unknown value {value}"),
            N_("{value2}"),
            value=repr(value),
            value2=", ".join(str(a) for a in accepted),
        )
    return value


def _read_image(path: Path, unit: str, field_name: str, npy_grid: Grid | None) -> Image:
    """A NIfTI image with its affine, or a .npy array on the declared ``npy_grid``."""
    if not path.exists():
        raise invalid(
            field_name,
            "file_not_found",
            N_("file {name} not found"),
            N_("an existing file"),
            name=path.name,
        )
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti(path, unit, field_name)
    if not name.endswith(".npy"):
        raise invalid(
            field_name,
            "unsupported_file_type",
            N_("unsupported file type {name}"),
            N_(".npy, .nii, .nii.gz"),
            name=path.name,
        )
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise invalid(
            field_name,
            "cannot_read",
            N_("cannot read {name}: {exc_name}"),
            N_(".npy or NIfTI"),
            name=path.name,
            exc_name=str(exc),
        ) from None
    if arr.ndim != 3:
        raise invalid(field_name, "d_array", N_("{ndim}-D array"), N_("a 3-D array"), ndim=arr.ndim)
    if npy_grid is None:
        raise invalid(
            "voxel_mm",
            "missing_needed_npy_images",
            N_("missing (needed for .npy images)"),
            N_("[x, y, z] in mm"),
        )
    data = np.ascontiguousarray(np.transpose(arr, (2, 1, 0)))  # (x, y, z) → (k, j, i)
    if data.shape != npy_grid.shape:
        raise invalid(
            field_name,
            "array_does_not_match_spect",
            N_("array {shape} does not match the SPECT grid {shape2}"),
            N_("a .npy on the SPECT grid (or a NIfTI with its affine)"),
            shape=str(arr.shape),
            shape2=str(npy_grid.shape[::-1]),
        )
    return Image(data > 0.5 if unit == "mask" else data, npy_grid, unit)


def _npy_grid(doc: Mapping[str, Any], first_file: Path) -> Grid | None:
    if "voxel_mm" not in doc:
        return None
    vm = doc["voxel_mm"]
    if not (isinstance(vm, list) and len(vm) == 3):
        raise invalid(
            "voxel_mm", "unaccepted_voxel_mm", N_("{vm}"), N_("three sizes in mm"), vm=repr(vm)
        )
    vox = tuple(_number(v, "voxel_mm") for v in vm)
    if not first_file.name.lower().endswith(".npy") or not first_file.exists():
        return None
    try:
        shape = np.load(first_file, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError):
        return None
    if len(shape) != 3:
        return None
    return Grid.from_geometry((shape[2], shape[1], shape[0]), (vox[0], vox[1], vox[2]))


def load_case(case_dir: Path) -> CaseInput:
    """Read and validate a case directory; errors name the field (the caller adds the case)."""
    try:
        return _load_case(Path(case_dir))
    except (TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
        raise invalid(
            "case.yaml",
            "unexpected_structure_value",
            N_("unexpected structure or value ({exc_name})"),
            N_("see docs/dosimetry.md"),
            exc_name=str(exc),
        ) from None


def read_case_yaml(case_dir: Path) -> dict[str, Any]:
    path = case_dir / "case.yaml"
    if not path.exists():
        raise invalid(
            "case.yaml",
            "not_found",
            N_("not found in {case_dir}"),
            N_("a case directory"),
            case_dir=str(case_dir),
        )
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise invalid(
            "case.yaml",
            "malformed_yaml",
            N_("malformed YAML: {exc_name}"),
            N_("YAML"),
            exc_name=str(exc),
        ) from None
    if not isinstance(doc, dict):
        raise invalid("case.yaml", "not_mapping", N_("not a mapping"), N_("see docs/dosimetry.md"))
    return doc


def geometry_policy(doc: Mapping[str, Any]) -> GridPolicy:
    g = doc.get("geometry") or {}
    if not isinstance(g, dict):
        raise invalid(
            "geometry",
            "unaccepted_geometry",
            N_("{g}"),
            N_("{{on_mismatch: resample | refuse}}"),
            g=repr(g),
        )
    return GridPolicy(str(g.get("on_mismatch", "resample")))


def _load_case(case_dir: Path) -> CaseInput:
    doc = read_case_yaml(case_dir)
    case_id = str(doc.get("case_id") or case_dir.name)
    cycle = doc.get("cycle") or {}
    patient = doc.get("patient") or {}
    sex = _choice(patient.get("sex"), "patient.sex", SEXES)
    activity = _number(_req(doc, "administered_activity_mbq"), "administered_activity_mbq")
    injection = _datetime(_req(doc, "injection_time"), "injection_time")
    density = _number(doc.get("density_g_per_ml", 1.0), "density_g_per_ml")
    policy = geometry_policy(doc)
    notes: list[str] = []

    spect = _req(doc, "spect")
    if not isinstance(spect, list) or not spect:
        raise invalid(
            "spect",
            "no_image_listed",
            N_("no image listed"),
            N_("a list of {{file, acquisition_time}}"),
        )
    npy_grid = _npy_grid(doc, case_dir / str((spect[0] or {}).get("file", "")))
    times: list[float] = []
    arrays: list[NDArray[np.float32]] = []
    grid: Grid | None = None
    for i, item in enumerate(spect):
        where = f"spect[{i}]."
        t = _datetime(_req(item, "acquisition_time", where), f"{where}acquisition_time")
        hours = (t - injection).total_seconds() / 3600.0
        if hours <= 0:
            raise invalid(
                f"{where}acquisition_time",
                "not_after_injection",
                N_("{isoformat} is not after the injection"),
                isoformat=t.isoformat(),
            )
        img = _read_image(
            case_dir / str(_req(item, "file", where)), "Bq/mL", f"{where}file", npy_grid
        )
        if grid is None:
            grid = npy_grid = img.grid  # a .npy given later is taken on this grid
        else:
            img = onto(img, grid, f"{where}file", policy, notes)
        arr = np.asarray(img.array, dtype=np.float32)
        if not np.all(np.isfinite(arr)):
            raise invalid(
                f"{where}file",
                "contains_nan_infinite_values",
                N_("contains NaN or infinite values"),
                N_("finite Bq/mL"),
            )
        if float(arr.min()) < 0:
            raise invalid(
                f"{where}file",
                "negative_activity_concentration_bq_ml",
                N_("negative activity concentration ({min} Bq/mL)"),
                N_(">= 0"),
                min=format(arr.min(), "g"),
            )
        times.append(hours)
        arrays.append(arr)
    assert grid is not None
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise invalid(
            "spect.acquisition_time",
            "times_after_injection_are_not",
            N_("times after injection are not increasing: {value} h"),
            N_("images listed in increasing acquisition time"),
            value=str([round(x, 2) for x in times]),
        )
    images = np.stack(arrays)

    density_map = None
    if doc.get("ct"):
        ct_doc = doc["ct"]
        ct = _read_image(case_dir / str(_req(ct_doc, "file", "ct.")), "HU", "ct.file", npy_grid)
        ct = onto(ct, grid, "ct.file", policy, notes)
        density_map = density_from_hu(np.asarray(ct.array, dtype=np.float32))

    vois_doc = _req(doc, "vois")
    if not isinstance(vois_doc, dict) or not vois_doc:
        raise invalid(
            "vois",
            "no_volume_interest",
            N_("no volume of interest"),
            N_("a mapping name -> {{mask, kind}}"),
        )
    names = organ_names(doc)
    vois = []
    for name, v in vois_doc.items():
        where = f"vois.{name}."
        mask_img = _read_image(
            case_dir / str(_req(v, "mask", where)), "mask", f"{where}mask", npy_grid
        )
        mask = np.asarray(onto(mask_img, grid, f"{where}mask", policy, notes).array, dtype=bool)
        if not mask.any():
            raise invalid(f"{where}mask", "empty_mask", N_("empty mask"), N_("at least one voxel"))
        vois.append(voi_spec(str(name), v, mask, where, names))
    settings = parse_settings(doc, case_dir, injection, len(times), list(vois_doc))
    return CaseInput(
        case_id=case_id,
        cycle_label=str(cycle.get("label", "unlabelled")),
        sex=sex,
        risk_factors=bool(patient.get("risk_factors", False)),
        administered_activity_mbq=activity,
        injection_time=injection,
        times_h=tuple(times),
        images_bq_per_ml=images,
        voxel_mm=voxel_mm_of(grid),
        vois=tuple(vois),
        density_g_per_ml=density,
        density_map_g_per_ml=density_map,
        methods=settings.methods,
        bed=settings.bed,
        marrow=settings.marrow,
        previous_cycles=settings.previous_cycles,
        organ_names=names,
        recovery_curve=settings.recovery_curve,
        uncertainty=settings.uncertainty,
        grid=grid,
        notes=tuple(notes),
    )


def voxel_mm_of(grid: Grid) -> tuple[float, float, float]:
    """Voxel size along the array axes (k, j, i), as the kernel convolution needs it."""
    s = grid.spacing_mm
    return (round(s[2], 6), round(s[1], 6), round(s[0], 6))


def organ_names(doc: Mapping[str, Any]) -> OrganNames:
    """The shipped organ-name table, with the case's ``organ_names`` aliases added."""
    names = default_organ_names()
    if doc.get("organ_names") is not None:
        if not isinstance(doc["organ_names"], dict):
            raise invalid("organ_names", "not_mapping", N_("not a mapping"), N_("alias: organ"))
        names = names.with_aliases(doc["organ_names"])
    return names


def voi_spec(
    name: str, v: Mapping[str, Any], mask: NDArray[np.bool_], where: str, names: OrganNames
) -> VoiSpec:
    """One VOI; an organ without ``svalue_organ`` gets its S-value organ from the name table."""
    kind = _choice(v.get("kind", "organ"), f"{where}kind", VOI_KINDS)
    svalue_organ = v.get("svalue_organ")
    if svalue_organ is not None:
        svalue_organ = _choice(svalue_organ, f"{where}svalue_organ", tuple(organs()))
    elif kind == "organ" and names.svalue_organ(name) in organs():
        svalue_organ = names.svalue_organ(name)
    kin = v.get("kinetics")
    if kin is not None:
        _choice(kin, f"{where}kinetics", KINETIC_METHODS)
    return VoiSpec(
        name,
        kind,
        mask,
        svalue_organ,
        kin,
        None if v.get("mass_g") is None else _number(v["mass_g"], f"{where}mass_g"),
        None
        if v.get("madsen_effective_half_life_h") is None
        else _number(v["madsen_effective_half_life_h"], f"{where}madsen_effective_half_life_h"),
    )


@dataclass(frozen=True)
class Settings:
    """The computing settings of a case, beyond its images and VOIs."""

    methods: Methods
    bed: BedParameters
    marrow: MarrowSpec | None
    previous_cycles: tuple[CycleDoses, ...]
    recovery_curve: RecoveryCurve | None
    uncertainty: UncertaintySettings


def parse_settings(
    doc: Mapping[str, Any],
    case_dir: Path,
    injection: dt.datetime,
    n_times: int,
    voi_names: list[str],
) -> Settings:
    """The ``methods``, ``bed``, ``marrow``, ``uncertainty`` and ``previous_cycles`` sections
    (shared by case directories and the settings file of ``dosimetry from-store``)."""
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
        stp_index=None if stp.get("index") is None else int(stp["index"]),
        activity_relative_sd=_relative_sd(m, "activity_relative_sd", "methods."),
        voxel_tia=_choice(m.get("voxel_tia", "auto"), "methods.voxel_tia", VOXEL_TIA_METHODS),
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
    if methods.stp_index is not None and not -n_times <= methods.stp_index < n_times:
        raise ValidationError(
            "methods.single_time_point.index", str(methods.stp_index), f"0..{n_times - 1}"
        )
    curve = None
    if m.get("recovery_curve"):
        rc_path = case_dir / str(m["recovery_curve"])
        if not rc_path.exists():
            raise invalid(
                "methods.recovery_curve",
                "not_found_2",
                N_("{name} not found"),
                N_("a file"),
                name=rc_path.name,
            )
        try:
            rc_doc = yaml.safe_load(rc_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise invalid(
                "methods.recovery_curve",
                "malformed_yaml",
                N_("malformed YAML: {exc_name}"),
                N_("YAML"),
                exc_name=str(exc),
            ) from None
        curve = parse_recovery_curve(rc_doc, "methods.recovery_curve")
    u = doc.get("uncertainty") or {}
    if not isinstance(u, dict):
        raise invalid(
            "uncertainty", "not_mapping", N_("not a mapping"), N_("see docs/dosimetry.md")
        )
    base = UncertaintySettings()

    def _stated(key: str) -> float:
        if key not in u:
            return float(getattr(base, key))
        return _number(u[key], f"uncertainty.{key}", positive=False)

    unc_settings = UncertaintySettings(
        calibration_relative_sd=_stated("calibration_relative_sd"),
        svalue_relative_sd=_stated("svalue_relative_sd"),
        density_relative_sd=_stated("density_relative_sd"),
        boundary_mm=_stated("boundary_mm"),
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
        if rem is not None and rem not in voi_names:
            raise invalid(
                "marrow.remainder_voi",
                "not_voi",
                N_("{rem} is not a VOI"),
                N_("{voi_names}"),
                rem=repr(rem),
                voi_names=", ".join(voi_names),
            )
        wt, wa = [], []
        for i, s in enumerate(md.get("whole_body_samples") or []):
            w = f"marrow.whole_body_samples[{i}]."
            st = _datetime(_req(s, "acquisition_time", w), f"{w}acquisition_time")
            wt.append((st - injection).total_seconds() / 3600.0)
            wa.append(_number(_req(s, "activity_mbq", w), f"{w}activity_mbq", positive=False))
        marrow = MarrowSpec(
            tuple(bt),
            tuple(bc),
            _choice(md.get("kinetics", "auto"), "marrow.kinetics", KINETIC_METHODS),
            rmblr,
            rem,
            None
            if md.get("marrow_mass_g") is None
            else _number(md["marrow_mass_g"], "marrow.marrow_mass_g"),
            tuple(wt),
            tuple(wa),
            _relative_sd(md, "blood_relative_sd", "marrow."),
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
    return Settings(methods, bed, marrow, tuple(previous), curve, unc_settings)
