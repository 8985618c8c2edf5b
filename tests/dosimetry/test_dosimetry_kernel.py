"""The Lu-177 voxel-S-value kernel: electrons, photons, energy balance, and the published
Monte Carlo voxel S-values it is validated against."""

from __future__ import annotations

import numpy as np
import pytest

from reluth.dosimetry import voxel
from reluth.dosimetry.physics import (
    JOULE_PER_KEV,
    LOCAL_DEPOSITION_MGY_G_PER_MBQ_S,
    LU177_CONVERSION_AND_AUGER_KEV,
    LU177_ELECTRON_MEAN_KEV,
    LU177_PHOTON_LINES,
)

#: Lu-177, soft tissue, 4.8 mm voxels, mGy/(MBq·s): PyTheranostics' Monte Carlo table
#: Lu177-4.80-mm-mGyperMBqs-SoftICRP as quoted in issue 19.
REF_4P8 = {(0, 0, 0): 0.2066, (1, 0, 0): 2.255e-3, (1, 1, 0): 6.98e-5, (1, 1, 1): 1.91e-5}
#: Lu-177, soft tissue, 2.21 mm voxels (Lanconelli et al. 2012 database format, beta emission
#: only: it leaves out the 14.6 keV of conversion and Auger electrons per decay).
REF_2P21 = {(1, 0, 0): 4.83e-2, (1, 1, 0): 2.52e-3, (1, 1, 1): 2.50e-4, (2, 0, 0): 7.70e-5}


def _at(kernel: voxel.Kernel, ijk: tuple[int, int, int]) -> float:
    a = kernel.values_mgy_per_mbq_s
    c = a.shape[0] // 2
    return float(a[c + ijk[0], c + ijk[1], c + ijk[2]])


def test_photon_lines_carry_the_icrp107_photon_energy() -> None:
    assert sum(e * y for e, y in LU177_PHOTON_LINES) == pytest.approx(35.1, abs=0.05)


def test_shipped_4p8_kernel_against_the_published_table() -> None:
    """Before photons: centre −3.4 %, face +3.9 %, edge −27 %, corner −92 %, (2,0,0) −99.8 %."""
    k = voxel.kernel_for((4.8, 4.8, 4.8))
    assert k.includes_photons
    rel = {ijk: _at(k, ijk) / ref - 1 for ijk, ref in REF_4P8.items()}
    assert abs(rel[(0, 0, 0)]) < 0.05  # −3.1 %
    # +7.7 %: the published table holds 103 % of the electron energy in its 27 central voxels,
    # more than any kernel conserving 147.9 keV per decay can (docs/dosimetry.md)
    assert abs(rel[(1, 0, 0)]) < 0.08
    assert abs(rel[(1, 1, 0)]) < 0.30  # +24 %
    assert abs(rel[(1, 1, 1)]) < 0.30  # +24 %
    ref_27 = (
        REF_4P8[(0, 0, 0)]
        + 6 * REF_4P8[(1, 0, 0)]
        + 12 * REF_4P8[(1, 1, 0)]
        + 8 * REF_4P8[(1, 1, 1)]
    )
    assert ref_27 * 4.8**3 / 1000 / LOCAL_DEPOSITION_MGY_G_PER_MBQ_S > 1.03


def test_shipped_2p21_kernel_against_the_lanconelli_values() -> None:
    k = voxel.kernel_for((2.21, 2.21, 2.21))
    for ijk, ref in REF_2P21.items():
        assert _at(k, ijk) == pytest.approx(ref, rel=0.05), ijk  # −1.5, −0.5, +4.5, +1.0 %
    ce = LU177_CONVERSION_AND_AUGER_KEV * JOULE_PER_KEV * 1e6 / (2.21**3 / 1e6) * 1e3
    assert _at(k, (0, 0, 0)) - ce == pytest.approx(1.66, rel=0.02)  # beta part: +0.7 %


def test_shipped_kernels_conserve_electron_energy_and_add_photons() -> None:
    for size in voxel.SHIPPED_VOXEL_MM:
        k = voxel.kernel_for((size, size, size))
        total = k.values_mgy_per_mbq_s.sum() * size**3 / 1000
        photon_share = total / LOCAL_DEPOSITION_MGY_G_PER_MBQ_S - 1
        # photon energy absorbed within the ±40 mm kernel: 18.7–20.3 % of 35.1 keV per decay
        assert 0.15 * 35.1 / LU177_ELECTRON_MEAN_KEV < photon_share < 0.25 * 35.1 / 147.9
        assert "Loevinger" in k.provenance and "photons by analogue Monte Carlo" in k.provenance
        a = k.values_mgy_per_mbq_s
        np.testing.assert_allclose(a, np.flip(a, axis=0))
        np.testing.assert_allclose(a, np.transpose(a, (1, 0, 2)))


def _sphere(n: int, radius_vox: float) -> np.ndarray:
    g = np.indices((n, n, n)) - (n - 1) / 2
    return (g**2).sum(0) <= radius_vox**2


@pytest.mark.parametrize("voxel_mm", [4.42, 2.21, 4.8])
def test_kernel_against_local_deposition_in_a_large_sphere(voxel_mm: float) -> None:
    """Electrons: the electron-only kernel equals local deposition inside a large sphere.
    Photons add what a 53 mm-radius sphere absorbs of 35.1 keV per decay (2–4.8 %)."""
    inside = _sphere(33, 12)
    tia = np.where(inside, 1.0e7, 0.0).astype(np.float32)  # Bq·h/mL
    v_ml = voxel_mm**3 / 1000
    local = voxel.local_deposition_dose_gy(tia)
    electrons = voxel.generate_kernel((voxel_mm,) * 3, n_samples=400_000, photons=False)
    edose = voxel.kernel_dose_gy(tia, v_ml, electrons)
    assert edose[16, 16, 16] == pytest.approx(local[16, 16, 16], rel=0.02)
    full = voxel.kernel_dose_gy(tia, v_ml, voxel.kernel_for((voxel_mm,) * 3))
    excess = full[16, 16, 16] / edose[16, 16, 16] - 1
    assert 0.02 < excess < 35.1 / 147.9 * 0.2
    # at the surface the kernel spreads dose outwards: lower inside edge, non-zero outside
    assert full[16, 16, 28] < local[16, 16, 28]
    assert full[16, 16, 29] > 0 == local[16, 16, 29]


def test_photon_monte_carlo_conserves_energy_and_beats_the_uncollided_dose() -> None:
    """All photon energy is absorbed in a large enough medium; far from the source the dose is
    above the uncollided (primary-only) dose: scattered photons add to it (build-up)."""
    grid, kept = voxel.photon_energy_grid((50.0, 50.0, 50.0), 12, n_photons=100_000, seed=3)
    assert kept == pytest.approx(1.0, abs=0.01)  # ±625 mm of water: 8.5 mean free paths
    grid, _ = voxel.photon_energy_grid((4.8, 4.8, 4.8), 6, n_photons=400_000, seed=4)
    r_cm = 6 * 0.48
    e = np.array([line[0] for line in LU177_PHOTON_LINES])
    y = np.array([line[1] for line in LU177_PHOTON_LINES])
    photo, incoh = voxel.water_photon_coefficients(e)
    mu = photo + incoh
    # primary kerma at r: E·y·μ_en·e^(−μr)/(4πr²) with μ_en ≈ photo + Compton energy-transfer
    # share (bounded above by μ: all interaction energy counted)
    upper_primary = float((e * y * mu * np.exp(-mu * r_cm)).sum() / (4 * np.pi * r_cm**2))
    lower_primary = float((e * y * photo * np.exp(-mu * r_cm)).sum() / (4 * np.pi * r_cm**2))
    per_g = grid[12, 6, 6] / (0.48**3)  # keV per g (water) per decay at (6, 0, 0)
    assert per_g > lower_primary
    assert per_g < 3 * upper_primary


def test_klein_nishina_sampling_matches_the_cross_section() -> None:
    """Mean energy share given to the electron and mean cosine of the sampled angles equal their
    integrals over the Klein–Nishina differential cross-section (208 keV: 0.221)."""
    from scipy.integrate import quad

    rng = np.random.default_rng(0)
    e = np.full(400_000, 208.366)
    cos_t = voxel.klein_nishina_cos(e, rng)
    a = 208.366 / voxel.ELECTRON_REST_MASS_KEV

    def p(c: float) -> float:
        return 1.0 / (1.0 + a * (1.0 - c))

    def dsigma(c: float) -> float:
        return 0.5 * p(c) ** 2 * (p(c) + 1 / p(c) - (1 - c * c))

    norm = quad(dsigma, -1, 1)[0]
    transfer = quad(lambda c: dsigma(c) * (1 - p(c)), -1, 1)[0] / norm
    mean_cos = quad(lambda c: dsigma(c) * c, -1, 1)[0] / norm
    frac = 1 - 1 / (1 + a * (1 - cos_t))
    assert float(frac.mean()) == pytest.approx(transfer, rel=0.01)
    assert float(cos_t.mean()) == pytest.approx(mean_cos, abs=0.005)


def test_generated_kernel_for_anisotropic_voxels() -> None:
    vox = (3.0, 3.0, 4.0)
    kern = voxel.generate_kernel(vox, n_samples=300_000, photons=False)
    assert kern.values_mgy_per_mbq_s.shape == (5, 5, 5) and not kern.includes_photons
    inside = _sphere(25, 9)
    tia = np.where(inside, 1.0e7, 0.0).astype(np.float32)
    kdose = voxel.kernel_dose_gy(tia, 0.036, kern)
    local = voxel.local_deposition_dose_gy(tia)
    assert kdose[12, 12, 12] == pytest.approx(local[12, 12, 12], rel=0.02)
    with_photons = voxel.generate_kernel(vox, n_samples=300_000)
    assert with_photons.values_mgy_per_mbq_s.shape == (29, 29, 29)  # ±40 mm
    a = with_photons.values_mgy_per_mbq_s
    assert a[14, 14, 15] < a[14, 15, 14]  # the longer z-voxel is farther


def test_kernel_convolution_is_centred_point_response() -> None:
    kern = voxel.kernel_for((4.42, 4.42, 4.42))
    k = kern.values_mgy_per_mbq_s
    h = k.shape[0] // 2
    v_ml = 4.42**3 / 1000
    tia = np.zeros((2 * h + 3, 2 * h + 4, 2 * h + 5), dtype=np.float32)
    at = (h + 1, h + 2, h + 1)
    tia[at] = 1.0e6 / v_ml / 3600  # 1 MBq·s in that voxel, as Bq·h/mL
    dose_mgy = voxel.kernel_dose_gy(tia, v_ml, kern) * 1000
    window = dose_mgy[
        at[0] - h : at[0] + h + 1, at[1] - h : at[1] + h + 1, at[2] - h : at[2] + h + 1
    ]
    np.testing.assert_allclose(window, k, rtol=1e-3, atol=1e-6 * float(k.max()))  # float32 FFT
