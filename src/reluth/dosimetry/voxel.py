"""Voxel dosimetry: local energy deposition, voxel-S-value kernel convolution (FFT), dose–volume
histograms.

The Lu-177 soft-tissue kernel is generated here from documented physics, because no tabulated
Monte Carlo kernel with a clear licence and provenance could be sourced for shipping:

* beta particles: Loevinger's empirical point-source function (Loevinger 1956, as given in
  ICRU Report 72 and MIRD Pamphlet 7) for each of the three Lu-177 beta branches, weighted by
  intensity × mean energy, unit-density soft tissue;
* conversion and Auger electrons (14.6 keV per decay, ranges below 0.2 mm) deposited in the
  source voxel;
* photons (35.1 keV per decay, ICRP 107 lines): an analogue photon Monte Carlo in water
  (photoelectric absorption and Compton scattering with Klein–Nishina angles; cross-sections
  from the Elam/Ravel/Sieber tables through ``xraydb``; coherent scattering, which deposits no
  energy, neglected; the energy of Compton electrons and photo-electrons deposited where the
  photon interacted);
* integrated over source and target voxels by deterministic Monte Carlo (fixed seed), then
  symmetrised.

Validation against published Monte Carlo voxel S-values is in docs/dosimetry.md and
tests/dosimetry/test_dosimetry_kernel.py.

A user kernel may be given instead (``load_kernel``): ``.npy`` array in mGy/(MBq·s) centred on
the source voxel with a JSON sidecar ``{"voxel_mm": [x, y, z], "units": "mGy/(MBq*s)"}``, or a
text table ``i j k S`` for one octant (i, j, k >= 0) expanded by symmetry.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.signal import fftconvolve

from reluth.dosimetry.physics import (
    JOULE_PER_KEV,
    LOCAL_DEPOSITION_MGY_G_PER_MBQ_S,
    LU177_BETA_BRANCHES,
    LU177_BETA_MEAN_KEV,
    LU177_CONVERSION_AND_AUGER_KEV,
    LU177_PHOTON_LINES,
    SECONDS_PER_HOUR,
)
from reluth.i18n import N_
from reluth.i18n.reasons import invalid

HAFNIUM_Z = 72
KERNEL_UNITS = "mGy/(MBq*s)"
SHIPPED_VOXEL_MM = (4.42, 4.8, 2.21)
#: Radius (mm) the generated kernel reaches, for the photon part (the electrons need < 3 mm).
#: Photons deposit part of their energy beyond it (reported in the provenance).
PHOTON_KERNEL_RADIUS_MM = 40.0
ELECTRON_REST_MASS_KEV = 510.99895
_PHOTON_CUTOFF_KEV = 1.0


@dataclass(frozen=True)
class Kernel:
    values_mgy_per_mbq_s: NDArray[np.float64]
    voxel_mm: tuple[float, float, float]
    provenance: str
    includes_photons: bool = False


# ---------------------------------------------------------------------------------------------
# Point kernel and kernel generation
# ---------------------------------------------------------------------------------------------


def loevinger_nu_cm2_per_g(e_max_mev: float, e_mean_mev: float, z: int = HAFNIUM_Z) -> float:
    """Apparent absorption coefficient ν of Loevinger's function, with his correction for the
    spectrum's mean energy relative to an allowed shape."""
    e_allowed = 0.33 * e_max_mev * (1 - math.sqrt(z) / 50) * (1 + math.sqrt(e_max_mev) / 4)
    return 18.6 * (e_max_mev - 0.036) ** -1.37 * (2 - e_mean_mev / e_allowed)


def loevinger_c(e_max_mev: float) -> float:
    if e_max_mev < 0.5:
        return 2.0
    if e_max_mev < 1.5:
        return 1.5
    return 1.0


def loevinger_radial_density(x: NDArray[np.float64], c: float) -> NDArray[np.float64]:
    """Energy deposited per unit of x = ν·ρ·r (unnormalised): 4πr²·J(r) with Loevinger's J."""
    inner = c * (1 - (x / c) * np.exp(1 - x / c)) + x * np.exp(1 - x)
    outer = x * np.exp(1 - x)
    return np.where(x < c, inner, outer)


def _branch_samplers(density_g_per_ml: float) -> list[tuple[float, NDArray[np.float64], float]]:
    """(weight by energy, inverse-CDF table of r in mm, ν) per beta branch."""
    out = []
    total = sum(i * em for _, em, i in LU177_BETA_BRANCHES)
    x = np.linspace(0.0, 40.0, 40001)
    for e_max, e_mean, intensity in LU177_BETA_BRANCHES:
        nu = loevinger_nu_cm2_per_g(e_max, e_mean)
        p = loevinger_radial_density(x, loevinger_c(e_max))
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(x))])
        cdf /= cdf[-1]
        u = np.linspace(0.0, 1.0, 20001)
        r_mm = np.interp(u, cdf, x) / (nu * density_g_per_ml) * 10.0
        out.append((intensity * e_mean / total, r_mm, nu))
    return out


def beta_x90_mm(density_g_per_ml: float = 1.0) -> float:
    """Radius (mm) within which 90% of the beta energy is deposited, for the model's check."""
    rng = np.random.default_rng(1)
    samples = []
    for weight, table, _ in _branch_samplers(density_g_per_ml):
        n = int(200000 * weight)
        samples.append(np.interp(rng.random(n), np.linspace(0, 1, table.size), table))
    return float(np.quantile(np.concatenate(samples), 0.9))


def generate_kernel(
    voxel_mm: tuple[float, float, float],
    density_g_per_ml: float = 1.0,
    n_samples: int = 4_000_000,
    seed: int = 177,
    half_width: int | None = None,
    photons: bool = True,
    n_photons: int | None = None,
) -> Kernel:
    """Voxel-S-value kernel (mGy per MBq·s in the source voxel): beta point kernel, local
    conversion/Auger electrons and (``photons``) the photon Monte Carlo of
    :func:`photon_energy_grid`."""
    vx = np.asarray(voxel_mm, dtype=np.float64)
    if vx.shape != (3,) or np.any(~(vx > 0)):
        raise invalid(
            "voxel_mm",
            "invalid_voxel_size",
            N_("invalid voxel size {voxel_mm}"),
            N_("three sizes > 0 mm"),
            voxel_mm=repr(voxel_mm),
        )
    if half_width is None:
        reach = PHOTON_KERNEL_RADIUS_MM if photons else 3.0
        half_width = max(1, math.ceil(reach / float(vx.min()))) + (0 if photons else 1)
    hw = np.array([half_width] * 3)
    size = 2 * hw + 1
    energy = np.zeros(tuple(size), dtype=np.float64)
    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    for weight, table, _ in _branch_samplers(density_g_per_ml):
        n_branch = round(n_samples * weight)
        done = 0
        while done < n_branch:
            n = min(chunk, n_branch - done)
            start = (rng.random((n, 3)) - 0.5) * vx
            r = np.interp(rng.random(n), np.linspace(0, 1, table.size), table)
            d = _isotropic(rng, n) * r[:, None]
            idx = np.rint((start + d) / vx).astype(np.int64) + hw
            inside = np.all((idx >= 0) & (idx < size), axis=1)
            flat = np.ravel_multi_index(tuple(idx[inside].T), tuple(size))
            energy += np.bincount(flat, minlength=energy.size).reshape(energy.shape) * (
                weight / n_branch
            )
            done += n
    kev = energy * LU177_BETA_MEAN_KEV
    kev[tuple(hw)] += LU177_CONVERSION_AND_AUGER_KEV
    photon_note = "photons excluded"
    if photons:
        n_ph = n_photons if n_photons is not None else max(n_samples // 2, 100_000)
        ph_kev, kept = photon_energy_grid(
            (float(vx[0]), float(vx[1]), float(vx[2])), half_width, density_g_per_ml, n_ph, seed
        )
        kev += ph_kev
        photon_note = (
            f"photons by analogue Monte Carlo (ICRP 107 lines, xraydb cross-sections, "
            f"n={n_ph}): {100 * kept:.1f}% of the photon energy deposited within the kernel"
        )
    kev = _symmetrise(kev, isotropic=bool(np.allclose(vx, vx[0])))
    mass_g = float(np.prod(vx)) / 1000.0 * density_g_per_ml
    values = kev * JOULE_PER_KEV * 1e6 / (mass_g * 1e-3) * 1e3
    prov = (
        "generated by reluth.dosimetry.voxel.generate_kernel: Loevinger beta point kernel "
        f"(3 Lu-177 branches) + local CE/Auger, MC voxel integration n={n_samples} seed={seed}, "
        f"soft tissue {density_g_per_ml} g/mL, {photon_note}"
    )
    return Kernel(values, (float(vx[0]), float(vx[1]), float(vx[2])), prov, photons)


def _isotropic(rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    cos_t = rng.random(n) * 2 - 1
    phi = rng.random(n) * 2 * math.pi
    sin_t = np.sqrt(1 - cos_t**2)
    return np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=1)


def water_photon_coefficients(
    energy_kev: NDArray[np.float64], density_g_per_ml: float = 1.0
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Linear photoelectric and incoherent (Compton) attenuation coefficients of water, 1/cm
    (Elam, Ravel & Sieber 2002 tables through xraydb)."""
    import xraydb

    e_ev = np.asarray(energy_kev, dtype=np.float64) * 1000.0
    photo = xraydb.material_mu("H2O", e_ev, density=density_g_per_ml, kind="photo")
    incoh = xraydb.material_mu("H2O", e_ev, density=density_g_per_ml, kind="incoh")
    return np.asarray(photo, dtype=np.float64), np.asarray(incoh, dtype=np.float64)


def klein_nishina_cos(
    energy_kev: NDArray[np.float64], rng: np.random.Generator
) -> NDArray[np.float64]:
    """Cosines of Compton scattering angles drawn from the Klein–Nishina cross-section (free
    electrons at rest), by rejection against its forward value."""
    alpha = energy_kev / ELECTRON_REST_MASS_KEV
    out = np.empty(energy_kev.size)
    todo = np.arange(energy_kev.size)
    while todo.size:
        c = rng.random(todo.size) * 2 - 1
        p = 1.0 / (1.0 + alpha[todo] * (1 - c))
        f = 0.5 * p * p * (p + 1.0 / p - (1 - c * c))
        ok = rng.random(todo.size) < f
        out[todo[ok]] = c[ok]
        todo = todo[~ok]
    return out


def _rotate(
    u: NDArray[np.float64], cos_t: NDArray[np.float64], rng: np.random.Generator
) -> NDArray[np.float64]:
    """New unit directions at polar angle arccos(cos_t) from ``u``, azimuth uniform."""
    phi = 2 * math.pi * rng.random(cos_t.size)
    sin_t = np.sqrt(np.maximum(0.0, 1 - cos_t**2))
    ux, uy, uz = u.T
    den = np.sqrt(np.maximum(1e-300, 1 - uz * uz))
    out = np.empty_like(u)
    out[:, 0] = sin_t * (ux * uz * np.cos(phi) - uy * np.sin(phi)) / den + ux * cos_t
    out[:, 1] = sin_t * (uy * uz * np.cos(phi) + ux * np.sin(phi)) / den + uy * cos_t
    out[:, 2] = -sin_t * np.cos(phi) * den + uz * cos_t
    polar = np.abs(uz) > 0.99999
    out[polar, 0] = sin_t[polar] * np.cos(phi[polar])
    out[polar, 1] = sin_t[polar] * np.sin(phi[polar])
    out[polar, 2] = np.sign(uz[polar]) * cos_t[polar]
    return out


def photon_energy_grid(
    voxel_mm: tuple[float, float, float],
    half_width: int,
    density_g_per_ml: float = 1.0,
    n_photons: int = 2_000_000,
    seed: int = 177,
) -> tuple[NDArray[np.float64], float]:
    """Energy (keV per decay) deposited in each voxel of a (2·half_width+1)³ grid by the photons
    of decays uniformly distributed in the centre voxel, in an infinite water medium; and the
    fraction of the emitted photon energy deposited within the grid."""
    vx = np.asarray(voxel_mm, dtype=np.float64)
    size = 2 * half_width + 1
    grid = np.zeros(size**3, dtype=np.float64)
    rng = np.random.default_rng(seed + 1)
    lines = np.asarray(LU177_PHOTON_LINES, dtype=np.float64)
    yields = lines[:, 1]
    total_kev = float((lines[:, 0] * yields).sum())
    weight = float(yields.sum()) / n_photons  # photons per decay carried by one history
    table_e = np.geomspace(_PHOTON_CUTOFF_KEV, 1.1 * float(lines[:, 0].max()), 300)
    photo_t, incoh_t = water_photon_coefficients(table_e, density_g_per_ml)
    log_e = np.log(table_e)

    def coefficient(e: NDArray[np.float64], table: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.exp(np.interp(np.log(e), log_e, np.log(table)))

    limit_mm = 3.0 * (half_width + 0.5) * float(vx.max())  # beyond this, nothing comes back
    deposited = 0.0

    def deposit(pos: NDArray[np.float64], kev: NDArray[np.float64]) -> None:
        nonlocal deposited
        idx = np.rint(pos / vx).astype(np.int64) + half_width
        inside = np.all((idx >= 0) & (idx < size), axis=1)
        flat = np.ravel_multi_index(tuple(idx[inside].T), (size, size, size))
        grid[:] += np.bincount(flat, weights=kev[inside], minlength=grid.size) * weight
        deposited += float(kev[inside].sum()) * weight

    chunk = 500_000
    for start in range(0, n_photons, chunk):
        n = min(chunk, n_photons - start)
        e = lines[rng.choice(lines.shape[0], n, p=yields / yields.sum()), 0]
        pos = (rng.random((n, 3)) - 0.5) * vx
        u = _isotropic(rng, n)
        while e.size:
            mu_pe = coefficient(e, photo_t)
            mu_t = mu_pe + coefficient(e, incoh_t)
            pos = pos + u * (-np.log(1.0 - rng.random(e.size)) / mu_t * 10.0)[:, None]
            keep = np.all(np.abs(pos) <= limit_mm, axis=1)
            e, pos, u, mu_pe, mu_t = e[keep], pos[keep], u[keep], mu_pe[keep], mu_t[keep]
            absorbed = rng.random(e.size) < mu_pe / mu_t
            deposit(pos[absorbed], e[absorbed])
            e, pos, u = e[~absorbed], pos[~absorbed], u[~absorbed]
            cos_t = klein_nishina_cos(e, rng)
            scattered = e / (1.0 + e / ELECTRON_REST_MASS_KEV * (1.0 - cos_t))
            deposit(pos, e - scattered)
            u = _rotate(u, cos_t, rng)
            low = scattered < _PHOTON_CUTOFF_KEV
            deposit(pos[low], scattered[low])
            e, pos, u = scattered[~low], pos[~low], u[~low]
    return grid.reshape(size, size, size), deposited / total_kev


def _symmetrise(a: NDArray[np.float64], isotropic: bool) -> NDArray[np.float64]:
    out = a.copy()
    for axis in range(3):
        out = 0.5 * (out + np.flip(out, axis=axis))
    if isotropic:
        perms = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
        out = np.sum([np.transpose(out, p) for p in perms], axis=0) / 6.0
    return np.asarray(out, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Kernel files
# ---------------------------------------------------------------------------------------------


def shipped_kernel_name(voxel_mm: float) -> str:
    return f"lu177_soft_tissue_kernel_{voxel_mm:.2f}mm".replace(".", "p")


def save_kernel(kernel: Kernel, path_stem: Path) -> None:
    np.save(path_stem.with_suffix(".npy"), kernel.values_mgy_per_mbq_s)
    meta = {
        "voxel_mm": list(kernel.voxel_mm),
        "units": KERNEL_UNITS,
        "provenance": kernel.provenance,
        "includes_photons": kernel.includes_photons,
    }
    path_stem.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def load_kernel(path: Path) -> Kernel:
    """A user kernel: ``.npy`` with a ``.json`` sidecar, or a text table ``i j k S`` (one octant)
    with a ``.json`` sidecar giving the voxel size."""
    path = Path(path)
    sidecar = path.with_suffix(".json")
    if not path.exists():
        raise invalid(
            "kernel",
            "kernel_file_not_found",
            N_("kernel file {path} not found"),
            N_("a .npy or .txt kernel"),
            path=str(path),
        )
    if not sidecar.exists():
        raise invalid(
            "kernel",
            "sidecar_missing",
            N_("sidecar {name} missing"),
            N_('{{"voxel_mm": [x,y,z], "units": ...}}'),
            name=sidecar.name,
        )
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    vox = meta.get("voxel_mm")
    if not (isinstance(vox, list) and len(vox) == 3):
        raise invalid(
            "kernel.voxel_mm",
            "unaccepted_kernel_voxel_mm",
            N_("{vox}"),
            N_("a list of three sizes in mm"),
            vox=repr(vox),
        )
    if meta.get("units", KERNEL_UNITS) != KERNEL_UNITS:
        raise invalid(
            "kernel.units",
            "unaccepted_kernel_units",
            N_("{get}"),
            N_("{kernel_units}"),
            get=repr(meta.get("units")),
            kernel_units=str(KERNEL_UNITS),
        )
    if path.suffix == ".npy":
        values = np.load(path, allow_pickle=False).astype(np.float64)
        if values.ndim != 3 or any(s % 2 == 0 for s in values.shape):
            raise invalid(
                "kernel",
                "shape",
                N_("shape {shape}"),
                N_("3-D with odd sizes"),
                shape=str(values.shape),
            )
    else:
        table = np.loadtxt(path, comments="#", ndmin=2)
        if table.shape[1] != 4 or np.any(table[:, :3] < 0):
            raise invalid(
                "kernel",
                "text_table_malformed",
                N_("text table malformed"),
                N_("columns i j k S with i,j,k>=0"),
            )
        ijk = table[:, :3].astype(int)
        hw = ijk.max(axis=0)
        values = np.zeros(tuple(2 * hw + 1))
        for (i, j, k), s in zip(ijk, table[:, 3], strict=True):
            for si in {i, -i}:
                for sj in {j, -j}:
                    for sk in {k, -k}:
                        values[si + hw[0], sj + hw[1], sk + hw[2]] = s
    prov = str(meta.get("provenance", f"user kernel {path.name}"))
    photons = meta.get("includes_photons", False)
    if not isinstance(photons, bool):
        raise invalid(
            "kernel.includes_photons",
            "unaccepted_kernel_includes_photons",
            N_("{photons}"),
            N_("true or false"),
            photons=repr(photons),
        )
    return Kernel(values, (float(vox[0]), float(vox[1]), float(vox[2])), prov, photons)


@lru_cache(maxsize=8)
def kernel_for(voxel_mm: tuple[float, float, float]) -> Kernel:
    """The shipped kernel whose voxel size matches within 1%, else one generated on the fly."""
    vx = np.asarray(voxel_mm)
    for size in SHIPPED_VOXEL_MM:
        if np.allclose(vx, size, rtol=0.01):
            base = resources.files("reluth.dosimetry").joinpath("data")
            ref = base.joinpath(shipped_kernel_name(size) + ".npy")
            with resources.as_file(ref) as p:
                return load_kernel(Path(p))
    return generate_kernel((float(vx[0]), float(vx[1]), float(vx[2])))


# ---------------------------------------------------------------------------------------------
# Dose
# ---------------------------------------------------------------------------------------------


def voxel_tia_mbq_s(
    tia_bq_h_per_ml: NDArray[np.floating], voxel_volume_ml: float
) -> NDArray[np.float32]:
    """Voxel TIA in MBq·s from a TIA concentration map in Bq·h/mL."""
    factor = voxel_volume_ml / 1e6 * SECONDS_PER_HOUR
    return np.asarray(tia_bq_h_per_ml * factor, dtype=np.float32)


#: Lower bound of the density used for local deposition outside organ and tumour masks:
#: water-equivalent soft tissue, as the shipped kernel. Activity seen in lung or air voxels is
#: mostly spill-out of neighbouring tissue (SPECT resolution ≈ 10-15 mm), whose energy is
#: absorbed in tissue; dividing it by a CT density of 0.3 (lung) or 0.001 (air) multiplied
#: its dose by 3 to 1000.
SOFT_TISSUE_DENSITY_FLOOR_G_PER_ML = 1.0


def local_deposition_density(
    density_g_per_ml: NDArray[np.floating],
    masks: list[NDArray[np.bool_]] | tuple[NDArray[np.bool_], ...] = (),
    floor_g_per_ml: float = SOFT_TISSUE_DENSITY_FLOOR_G_PER_ML,
) -> NDArray[np.float32]:
    """Density for local deposition from a CT density map: inside each mask (organs,
    tumours) the mask's mean CT density, so that the VOI mean dose is the VOI's energy over its
    CT mass; elsewhere the CT density with a soft-tissue lower bound (bone keeps its density)."""
    rho = np.maximum(np.asarray(density_g_per_ml, dtype=np.float32), np.float32(floor_g_per_ml))
    ct = np.asarray(density_g_per_ml, dtype=np.float32)
    for mask in masks:
        if mask.shape != ct.shape:
            raise invalid(
                "mask",
                "grid_vs_ct",
                N_("grid {shape} vs CT {shape2}"),
                N_("same grid"),
                shape=str(mask.shape),
                shape2=str(ct.shape),
            )
        if mask.any():
            rho[mask] = np.float32(ct[mask].mean(dtype=np.float64))
    return np.asarray(rho, dtype=np.float32)


def local_deposition_dose_gy(
    tia_bq_h_per_ml: NDArray[np.floating], density_g_per_ml: float | NDArray[np.floating] = 1.0
) -> NDArray[np.float32]:
    """All electron energy absorbed in the voxel of emission: D = Ã·E_e / (ρ·V)."""
    conc_mbq_s_per_ml = np.asarray(tia_bq_h_per_ml, dtype=np.float64) / 1e6 * SECONDS_PER_HOUR
    dose = conc_mbq_s_per_ml * LOCAL_DEPOSITION_MGY_G_PER_MBQ_S / density_g_per_ml / 1000.0
    return np.asarray(dose, dtype=np.float32)


def kernel_dose_gy(
    tia_bq_h_per_ml: NDArray[np.floating], voxel_volume_ml: float, kernel: Kernel
) -> NDArray[np.float32]:
    """Absorbed dose by convolution of the voxel TIA with the voxel-S-value kernel (FFT)."""
    tia = voxel_tia_mbq_s(tia_bq_h_per_ml, voxel_volume_ml)
    k = kernel.values_mgy_per_mbq_s.astype(np.float32)
    dose_mgy = fftconvolve(tia, k, mode="same")
    return np.asarray(np.maximum(dose_mgy, 0.0) / 1000.0, dtype=np.float32)


@dataclass(frozen=True)
class DoseVolume:
    mean_gy: float
    min_gy: float
    max_gy: float
    d2_gy: float
    d50_gy: float
    d98_gy: float
    n_voxels: int
    dvh_dose_gy: list[float]
    dvh_volume_fraction: list[float]


def dose_volume(
    dose_gy: NDArray[np.floating], mask: NDArray[np.bool_], bins: int = 50
) -> DoseVolume:
    """D2/D50/D98 (minimum dose to the hottest 2/50/98% of the volume), mean, and the cumulative
    dose–volume histogram."""
    if dose_gy.shape != mask.shape:
        raise invalid(
            "mask",
            "grid_vs_dose",
            N_("grid {shape} vs dose {shape2}"),
            N_("same grid"),
            shape=str(mask.shape),
            shape2=str(dose_gy.shape),
        )
    d = np.asarray(dose_gy[mask], dtype=np.float64)
    if d.size == 0:
        raise invalid(
            "mask",
            "volume_interest_empty",
            N_("the volume of interest is empty"),
            N_("at least one voxel"),
        )
    edges = np.linspace(0.0, float(d.max()), bins + 1)
    frac = [(d >= e).mean() for e in edges]
    p98, p50, p2 = np.percentile(d, [98, 50, 2])
    return DoseVolume(
        float(d.mean()),
        float(d.min()),
        float(d.max()),
        float(p98),
        float(p50),
        float(p2),
        int(d.size),
        [float(e) for e in edges],
        [float(f) for f in frac],
    )
