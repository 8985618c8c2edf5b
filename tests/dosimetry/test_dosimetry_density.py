"""Local deposition with a CT density: no amplification of spill-out into lung or air."""

from __future__ import annotations

import numpy as np
import pytest

from reluth.dosimetry import voxel
from reluth.dosimetry.pipeline import density_from_hu


def test_spill_out_into_air_is_not_amplified() -> None:
    """Before: ρ = 1 + HU/1000 clipped at 0.001 g/mL, so activity spilt into air (−1000 HU) got
    1000 × the soft-tissue dose, and into lung (−700 HU) 3.3 ×."""
    hu = np.zeros((4, 4, 4), dtype=np.float32)
    hu[0] = -1000.0  # air
    hu[1] = -700.0  # lung
    hu[3] = 700.0  # bone
    rho_ct = density_from_hu(hu)
    tia = np.full(hu.shape, 1.0e6, dtype=np.float32)
    soft = voxel.local_deposition_dose_gy(tia, 1.0)
    old = voxel.local_deposition_dose_gy(tia, rho_ct)
    assert float(old[0].max() / soft[0].max()) == pytest.approx(1000.0, rel=1e-3)
    rho = voxel.local_deposition_density(rho_ct)
    new = voxel.local_deposition_dose_gy(tia, rho)
    np.testing.assert_allclose(new[:3], soft[:3], rtol=1e-6)  # air, lung, soft tissue: floor
    np.testing.assert_allclose(new[3], soft[3] / 1.7, rtol=1e-5)  # bone keeps its density


def test_mask_wise_density_keeps_the_organ_mean_dose_equal_to_energy_over_mass() -> None:
    rng = np.random.default_rng(0)
    rho_ct = rng.uniform(0.2, 1.3, (6, 6, 6)).astype(np.float32)  # a lung-like, mixed organ
    mask = np.zeros(rho_ct.shape, bool)
    mask[1:5, 1:5, 1:5] = True
    tia = rng.uniform(1e5, 1e6, rho_ct.shape).astype(np.float32)
    rho = voxel.local_deposition_density(rho_ct, [mask])
    assert np.allclose(rho[mask], rho_ct[mask].mean())
    dose = voxel.local_deposition_dose_gy(tia, rho)
    energy_over_mass = voxel.local_deposition_dose_gy(
        np.array([tia[mask].sum()]), float(rho_ct[mask].sum())
    )[0]
    assert float(dose[mask].mean()) == pytest.approx(float(energy_over_mass), rel=1e-5)
    assert np.all(rho[~mask] >= voxel.SOFT_TISSUE_DENSITY_FLOOR_G_PER_ML)
