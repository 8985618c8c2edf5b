"""Analytic phantom: ellipsoids with known activity concentration curves sampled at chosen times,
whose time-integrated activities and local-deposition doses are known in closed form.

Voxels belong to an object when their centre lies inside it (no partial volume), so the
voxelised truth is exact: TIA = n_voxels · V · C0 · ∫f(t)dt and the local-deposition dose of
every voxel in an object is C0 · ∫f(t)dt · E_e / ρ.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from reluth.dosimetry.physics import LOCAL_DEPOSITION_MGY_G_PER_MBQ_S, SECONDS_PER_HOUR
from reluth.i18n import N_
from reluth.i18n.reasons import invalid

DEFAULT_TIMES_H = (4.0, 24.0, 96.0, 168.0)
PHANTOM_INJECTION = dt.datetime(2026, 1, 5, 9, 0, 0)


@dataclass(frozen=True)
class PhantomObject:
    """An ellipsoid (centre and semi-axes in mm, as fractions of the field of view so that the
    phantom scales with the grid) with C(t) = C0·e^(−λw·t) or, with an uptake half-life,
    C0·(e^(−λw·t) − e^(−λu·t))."""

    name: str
    kind: str  # organ, tumour, remainder
    centre_frac: tuple[float, float, float]
    radii_frac: tuple[float, ...]
    conc0_bq_per_ml: float
    effective_half_life_h: float
    uptake_half_life_h: float | None = None
    svalue_organ: str | None = None
    kinetics: str = "auto"
    extra_centres_frac: tuple[tuple[float, float, float], ...] = ()

    def conc(self, t_h: NDArray[np.float64]) -> NDArray[np.float64]:
        lw = math.log(2) / self.effective_half_life_h
        c = np.exp(-lw * t_h)
        if self.uptake_half_life_h is not None:
            c = c - np.exp(-math.log(2) / self.uptake_half_life_h * t_h)
        return np.asarray(self.conc0_bq_per_ml * c, dtype=np.float64)

    def integral_h(self) -> float:
        """∫₀^∞ C(t)/C0 dt in hours."""
        value = self.effective_half_life_h / math.log(2)
        if self.uptake_half_life_h is not None:
            value -= self.uptake_half_life_h / math.log(2)
        return value


@dataclass(frozen=True)
class PhantomSpec:
    shape: tuple[int, int, int] = (32, 32, 32)
    voxel_mm: float = 4.42
    times_h: tuple[float, ...] = DEFAULT_TIMES_H
    objects: tuple[PhantomObject, ...] = field(default_factory=lambda: default_objects())
    noise_relative_sd: float = 0.0
    seed: int = 0
    density_g_per_ml: float = 1.0
    blood_conc0_bq_per_ml: float = 4.0e4
    blood_effective_half_life_h: float = 30.0


def default_objects() -> tuple[PhantomObject, ...]:
    return (
        PhantomObject(
            "body", "remainder", (0.5, 0.5, 0.5), (0.46, 0.40, 0.46), 1.0e4, 30.0
        ),
        PhantomObject(
            "liver", "organ", (0.33, 0.50, 0.50), (0.18, 0.22, 0.22), 2.0e5, 70.0,
            svalue_organ="liver",
        ),
        PhantomObject(
            "kidneys", "organ", (0.72, 0.32, 0.45), (0.08, 0.08, 0.15), 4.9e5, 50.0,
            svalue_organ="kidneys", extra_centres_frac=((0.72, 0.68, 0.45),),
        ),
        PhantomObject(
            "spleen", "organ", (0.55, 0.50, 0.80), (0.09, 0.09, 0.09), 6.0e5, 60.0,
            svalue_organ="spleen",
        ),
        PhantomObject(
            "tumour1", "tumour", (0.30, 0.50, 0.85), (0.09,), 2.0e6, 90.0,
            uptake_half_life_h=3.0, kinetics="bi_uptake",
        ),
        PhantomObject("tumour2", "tumour", (0.75, 0.50, 0.78), (0.06,), 1.2e6, 80.0),
    )  # fmt: skip


def _ellipsoid(
    shape: tuple[int, int, int], centre: tuple[float, ...], radii: tuple[float, ...]
) -> NDArray[np.bool_]:
    n = np.asarray(shape, dtype=float)
    grids = np.meshgrid(*[(np.arange(s) + 0.5) / s for s in shape], indexing="ij")
    r = radii if len(radii) == 3 else (radii[0],) * 3
    # radii are fractions of the smallest dimension so that spheres stay spheres
    scale = n.min() / n
    acc = sum(
        ((g - c) / (rr * sc)) ** 2 for g, c, rr, sc in zip(grids, centre, r, scale, strict=True)
    )
    return np.asarray(acc <= 1.0)


@dataclass(frozen=True)
class PhantomData:
    images_bq_per_ml: NDArray[np.float32]  # (T, X, Y, Z)
    masks: dict[str, NDArray[np.bool_]]
    truth: dict[str, Any]
    spec: PhantomSpec


def render(spec: PhantomSpec) -> PhantomData:
    """Images, masks and the closed-form truth of a phantom."""
    t = np.asarray(spec.times_h, dtype=np.float64)
    voxel_ml = spec.voxel_mm**3 / 1000.0
    images = np.zeros((t.size, *spec.shape), dtype=np.float64)
    masks: dict[str, NDArray[np.bool_]] = {}
    occupied = np.zeros(spec.shape, dtype=bool)
    for obj in spec.objects[::-1]:  # later objects are inside the body: draw them first
        m = np.zeros(spec.shape, dtype=bool)
        for centre in (obj.centre_frac, *obj.extra_centres_frac):
            m |= _ellipsoid(spec.shape, centre, obj.radii_frac)
        if obj.kind == "remainder":
            m &= ~occupied
        elif np.any(m & occupied):
            raise invalid(
                "phantom.objects",
                "overlaps_another_object",
                N_("{name} overlaps another object"),
                name=obj.name,
            )
        if not m.any():
            raise invalid(
                "phantom.shape",
                "has_no_voxel",
                N_("{name} has no voxel"),
                N_("a larger grid"),
                name=obj.name,
            )
        occupied |= m
        masks[obj.name] = m
        images[:, m] = obj.conc(t)[:, None]
    if spec.noise_relative_sd > 0:
        rng = np.random.default_rng(spec.seed)
        images *= 1.0 + spec.noise_relative_sd * rng.standard_normal(images.shape)
        np.clip(images, 0.0, None, out=images)
    truth: dict[str, Any] = {"voxel_mm": spec.voxel_mm, "times_h": list(spec.times_h), "vois": {}}
    for obj in spec.objects:
        n_vox = int(masks[obj.name].sum())
        conc_tia = obj.conc0_bq_per_ml * obj.integral_h()  # Bq·h/mL
        local = (
            conc_tia / 1e6 * SECONDS_PER_HOUR
            * LOCAL_DEPOSITION_MGY_G_PER_MBQ_S / spec.density_g_per_ml / 1000.0
        )  # fmt: skip
        truth["vois"][obj.name] = {
            "n_voxels": n_vox,
            "volume_ml": n_vox * voxel_ml,
            "tia_mbq_h": n_vox * voxel_ml * conc_tia / 1e6,
            "tia_bq_h_per_ml": conc_tia,
            "local_deposition_dose_gy": local,
            "effective_half_life_h": obj.effective_half_life_h,
        }
    lam_b = math.log(2) / spec.blood_effective_half_life_h
    truth["blood_tia_bq_h_per_ml"] = spec.blood_conc0_bq_per_ml / lam_b
    return PhantomData(images.astype(np.float32), masks, truth, spec)


def write_case(
    out_dir: Path,
    spec: PhantomSpec | None = None,
    case_id: str = "PHANTOM-001",
    sex: str = "female",
    cycle_label: str = "R1",
    with_previous_cycles: bool = True,
) -> Path:
    """Write a case directory (NIfTI images and masks, case.yaml, truth.json)."""
    import nibabel as nib

    spec = spec or PhantomSpec()
    data = render(spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(exist_ok=True)
    affine = np.diag([spec.voxel_mm, spec.voxel_mm, spec.voxel_mm, 1.0])
    images = []
    for i, t in enumerate(spec.times_h):
        name = f"spect_{round(t):03d}h.nii.gz"
        nib.save(nib.Nifti1Image(data.images_bq_per_ml[i], affine), out_dir / name)
        when = PHANTOM_INJECTION + dt.timedelta(hours=t)
        images.append({"file": name, "acquisition_time": when.isoformat()})
    vois: dict[str, Any] = {}
    for obj in spec.objects:
        path = f"masks/{obj.name}.nii.gz"
        nib.save(nib.Nifti1Image(data.masks[obj.name].astype(np.uint8), affine), out_dir / path)
        entry: dict[str, Any] = {"mask": path, "kind": obj.kind}
        if obj.svalue_organ:
            entry["svalue_organ"] = obj.svalue_organ
        if obj.kinetics != "auto":
            entry["kinetics"] = obj.kinetics
        vois[obj.name] = entry
    lam_b = math.log(2) / spec.blood_effective_half_life_h
    blood = [
        {
            "sample_time": (PHANTOM_INJECTION + dt.timedelta(hours=t)).isoformat(),
            "bq_per_ml": round(spec.blood_conc0_bq_per_ml * math.exp(-lam_b * t), 6),
        }
        for t in (0.5, 4.0, 24.0, 96.0)
    ]
    case: dict[str, Any] = {
        "case_id": case_id,
        "cycle": {"label": cycle_label},
        "patient": {"sex": sex, "risk_factors": False},
        "administered_activity_mbq": 7400,
        "injection_time": PHANTOM_INJECTION.isoformat(),
        "density_g_per_ml": spec.density_g_per_ml,
        "spect": images,
        "vois": vois,
        "methods": {
            "kinetics": "auto",
            "voxel_tia": "auto",
            "voxel_dose": ["local", "kernel"],
            "kernel": "shipped",
        },
        "bed": {"alpha_beta_gy": 2.6, "repair_half_time_h": 2.8},
        "marrow": {
            "blood_samples": blood,
            "kinetics": "auto",
            "rmblr": 1.0,
            "remainder_voi": "body",
        },
    }
    if with_previous_cycles:
        case["previous_cycles"] = [
            {
                "label": label,
                "doses": {
                    "kidneys": {"absorbed_dose_gy": 3.0, "effective_half_life_h": 50.0},
                    "red_marrow": {"absorbed_dose_gy": 0.15},
                },
            }
            for label in ("PRRT1-C1", "PRRT1-C2", "PRRT2-C1", "PRRT2-C2")
        ]
    (out_dir / "case.yaml").write_text(yaml.safe_dump(case, sort_keys=False), encoding="utf-8")
    (out_dir / "truth.json").write_text(json.dumps(data.truth, indent=2) + "\n", encoding="utf-8")
    return out_dir


def small_spec(n: int = 24, **kw: Any) -> PhantomSpec:
    """A smaller grid with voxels scaled so the field of view stays about 140 mm."""
    return replace(PhantomSpec(), shape=(n, n, n), **kw)
