"""Absorbed dose: local deposition, kernel, S-values, sphere model, marrow, BED, cumulation."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reluth.dosimetry import voxel
from reluth.dosimetry.bed import BedParameters, bed_gy, bed_sum_gy
from reluth.dosimetry.cumulative import CycleDoses, Limit, OrganCycleDose, cumulate
from reluth.dosimetry.kinetics import voxel_tia_mono
from reluth.dosimetry.marrow import marrow_dose, rmblr_from_haematocrit
from reluth.dosimetry.phantom import render, small_spec
from reluth.dosimetry.physics import LOCAL_DEPOSITION_MGY_G_PER_MBQ_S
from reluth.dosimetry.sphere import sphere_svalue, sphere_table
from reluth.dosimetry.svalues import organ_self_dose_gy, organ_svalue, scaled_svalue
from reluth.errors import ValidationError


def test_local_deposition_constant() -> None:
    # 147.9 keV per decay → 0.02370 mGy·g per MBq·s (reference sheet)
    assert pytest.approx(0.02370, abs=5e-6) == LOCAL_DEPOSITION_MGY_G_PER_MBQ_S


def test_local_deposition_on_phantom_within_half_percent() -> None:
    ph = render(small_spec(16))
    tia = voxel_tia_mono(ph.spec.times_h, ph.images_bq_per_ml)
    dose = voxel.local_deposition_dose_gy(tia)
    for obj in ph.spec.objects:
        if obj.uptake_half_life_h:
            continue
        expected = ph.truth["vois"][obj.name]["local_deposition_dose_gy"]
        np.testing.assert_allclose(dose[ph.masks[obj.name]], expected, rtol=0.005)


def _sphere(n: int, radius_vox: float) -> np.ndarray:
    g = np.indices((n, n, n)) - (n - 1) / 2
    return (g**2).sum(0) <= radius_vox**2


def test_beta_x90_plausible() -> None:
    # Loevinger's function gives X90 ≈ 0.58 mm for Lu-177 (CSDA range of 498 keV ≈ 1.8 mm)
    assert 0.4 < voxel.beta_x90_mm() < 0.8


def test_user_kernel_formats(tmp_path: Path) -> None:
    text = tmp_path / "k.txt"
    text.write_text("# i j k S\n0 0 0 1.0\n1 0 0 0.1\n0 1 0 0.1\n0 0 1 0.1\n")
    (tmp_path / "k.json").write_text('{"voxel_mm": [4, 4, 4], "units": "mGy/(MBq*s)"}')
    kern = voxel.load_kernel(text)
    assert kern.values_mgy_per_mbq_s.shape == (3, 3, 3)
    assert kern.values_mgy_per_mbq_s.sum() == pytest.approx(1.6)
    np.save(tmp_path / "n.npy", kern.values_mgy_per_mbq_s)
    (tmp_path / "n.json").write_text('{"voxel_mm": [4, 4, 4]}')
    assert voxel.load_kernel(tmp_path / "n.npy").voxel_mm == (4.0, 4.0, 4.0)
    np.save(tmp_path / "bad.npy", np.zeros((4, 4, 4)))
    (tmp_path / "bad.json").write_text('{"voxel_mm": [4, 4, 4]}')
    with pytest.raises(ValidationError, match="odd"):
        voxel.load_kernel(tmp_path / "bad.npy")
    with pytest.raises(ValidationError, match="sidecar"):
        np.save(tmp_path / "lonely.npy", np.zeros((3, 3, 3)))
        voxel.load_kernel(tmp_path / "lonely.npy")


def test_dose_volume_histogram() -> None:
    dose = np.arange(100, dtype=np.float32).reshape(4, 5, 5)
    mask = np.ones_like(dose, dtype=bool)
    dv = voxel.dose_volume(dose, mask)
    assert dv.mean_gy == pytest.approx(49.5)
    assert dv.d50_gy == pytest.approx(49.5)
    assert dv.d2_gy == pytest.approx(np.percentile(np.arange(100), 98))
    assert dv.d98_gy == pytest.approx(np.percentile(np.arange(100), 2))
    assert dv.dvh_volume_fraction[0] == 1.0
    assert all(
        b <= a for a, b in zip(dv.dvh_volume_fraction, dv.dvh_volume_fraction[1:], strict=False)
    )
    uniform = voxel.dose_volume(np.full((3, 3, 3), 2.0), np.ones((3, 3, 3), bool))
    assert uniform.d2_gy == uniform.d98_gy == uniform.mean_gy == 2.0
    with pytest.raises(ValidationError, match="empty"):
        voxel.dose_volume(dose, np.zeros_like(mask))


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 1000))
def test_voxel_doses_linear_in_activity(scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    tia = rng.random((9, 9, 9)).astype(np.float64) * 1e6
    kern = voxel.kernel_for((4.42, 4.42, 4.42))
    d1 = voxel.kernel_dose_gy(tia, 0.0864, kern)
    d2 = voxel.kernel_dose_gy(tia * scale, 0.0864, kern)
    np.testing.assert_allclose(d2, d1 * scale, rtol=2e-4, atol=1e-6 * float(d2.max()))
    l1 = voxel.local_deposition_dose_gy(tia)
    np.testing.assert_allclose(voxel.local_deposition_dose_gy(tia * scale), l1 * scale, rtol=1e-5)


# --- S-values -------------------------------------------------------------------------------


def test_svalues_at_phantom_mass_and_scaling() -> None:
    sv = organ_svalue("kidneys", "male")
    assert sv.s_mgy_per_mbq_s == 7.706e-5 and sv.phantom_mass_g == 310.0
    assert scaled_svalue(sv, 310.0) == pytest.approx(7.706e-5)
    assert sv.electron_part == pytest.approx(LOCAL_DEPOSITION_MGY_G_PER_MBQ_S / 310.0)
    expected = sv.electron_part / 2 + sv.photon_part / 2 ** (2 / 3)
    assert scaled_svalue(sv, 620.0) == pytest.approx(expected)
    # 1 MBq·h at S = 7.706e-5 mGy/(MBq·s): 3600 × 7.706e-5 / 1000 Gy
    assert organ_self_dose_gy(1.0, "kidneys", "male") == pytest.approx(3600 * 7.706e-5 / 1000)
    assert organ_svalue("spleen", "female").s_mgy_per_mbq_s == 1.836e-4
    with pytest.raises(ValidationError, match="svalue_organ"):
        organ_svalue("pancreas", "male")
    with pytest.raises(ValidationError, match="sex"):
        organ_svalue("liver", "x")


def test_sphere_model_reproduces_table_and_interpolates() -> None:
    masses, values = sphere_table()
    for m, s in zip(masses, values, strict=True):
        got = sphere_svalue(m)
        assert got.s_mgy_per_mbq_s == pytest.approx(s, rel=1e-12)
        assert not got.extrapolated
    mid = sphere_svalue(math.sqrt(4.31 * 14.6))  # geometric mean: log-log midpoint
    assert mid.s_mgy_per_mbq_s == pytest.approx(math.sqrt(5.46e-3 * 1.63e-3), rel=1e-9)
    assert sphere_svalue(0.1).extrapolated and sphere_svalue(5000).extrapolated
    with pytest.raises(ValidationError, match="mass_g"):
        sphere_svalue(0)


@settings(max_examples=40, deadline=None)
@given(m1=st.floats(0.1, 5000), m2=st.floats(0.1, 5000))
def test_sphere_s_decreases_with_mass(m1: float, m2: float) -> None:
    lo, hi = sorted((m1, m2))
    assert sphere_svalue(hi).s_mgy_per_mbq_s <= sphere_svalue(lo).s_mgy_per_mbq_s


def test_marrow_blood_based_closed_form() -> None:
    md = marrow_dose(1.0e6, "female", rmblr=1.0, remainder_tia_mbq_h=1000.0)
    tia_rm = 1.0 * 900.0  # MBq·h: 1 MBq·h/mL × RMBLR 1 × 900 g
    assert md.marrow_tia_mbq_h == pytest.approx(tia_rm)
    assert md.self_dose_gy == pytest.approx(tia_rm * 3600 * 1.49e-5 / 1000)
    s_rb = (3.28e-7 * 60000 - 1.49e-5 * 900) / (60000 - 900)  # MIRD remainder correction
    assert md.remainder_cross_dose_gy == pytest.approx(1000 * 3600 * s_rb / 1000)
    assert md.total_gy == pytest.approx(md.self_dose_gy + md.remainder_cross_dose_gy)
    assert rmblr_from_haematocrit(0.4) == pytest.approx(0.19 / 0.6)
    with pytest.raises(ValidationError, match=r"marrow\.rmblr"):
        marrow_dose(1.0, "male", rmblr=-1)


# --- BED and cumulation ---------------------------------------------------------------------


def test_bed_reference_values() -> None:
    assert round(bed_gy(5, 50), 2) == 5.51
    assert round(bed_sum_gy([5] * 4, [50] * 4), 2) == 22.04
    assert round(bed_gy(23, 50), 2) == 33.79
    assert bed_gy(5, 50, BedParameters(alpha_beta_gy=1e9)) == pytest.approx(5.0)
    with pytest.raises(ValidationError, match="alpha_beta_gy"):
        BedParameters(alpha_beta_gy=0)
    with pytest.raises(ValidationError, match="effective_half_life_h"):
        bed_gy(5, 0)


@settings(max_examples=40, deadline=None)
@given(d=st.floats(0, 50), t=st.floats(1, 500), extra=st.floats(0.01, 10))
def test_bed_properties(d: float, t: float, extra: float) -> None:
    assert bed_gy(d, t) >= d
    assert bed_gy(d + extra, t) > bed_gy(d, t)
    assert bed_gy(d, t + extra) <= bed_gy(d, t)


def _kidney_cycles(doses: list[float], t_eff: float = 50.0) -> list[CycleDoses]:
    return [
        CycleDoses(f"C{i + 1}", {"kidneys": OrganCycleDose(d, t_eff)}) for i, d in enumerate(doses)
    ]


def test_cumulative_sums_and_kidney_limit_both_sides() -> None:
    below = cumulate(_kidney_cycles([5.0, 5.0, 5.0, 7.99]))
    assert below.organs["kidneys"].cumulative_absorbed_dose_gy == pytest.approx(22.99)
    assert below.organs["kidneys"].cumulative_bed_gy == pytest.approx(
        sum(bed_gy(d, 50) for d in (5.0, 5.0, 5.0, 7.99))
    )
    assert not [w for w in below.warnings if w.quantity == "absorbed_dose_gy"]
    at = cumulate(_kidney_cycles([5.0, 5.0, 5.0, 8.0]))
    absorbed = [w for w in at.warnings if w.quantity == "absorbed_dose_gy"]
    assert len(absorbed) == 1 and absorbed[0].limit_gy == 23.0
    assert "Sundlöv" in absorbed[0].source


def test_bed_limit_depends_on_risk_factors() -> None:
    cycles = _kidney_cycles([5.0] * 5)  # BED 27.55 Gy
    assert [w for w in cumulate(cycles, risk_factors=True).warnings if w.quantity == "bed_gy"] == []
    six = _kidney_cycles([5.0] * 6)  # BED 33.06 Gy, absorbed 30 Gy
    with_rf = [w.limit_gy for w in cumulate(six, risk_factors=True).warnings]
    without = [w.limit_gy for w in cumulate(six, risk_factors=False).warnings]
    assert 28.0 in with_rf and 40.0 not in without and 23.0 in without


def test_marrow_limit_and_custom_limits() -> None:
    cycles = [CycleDoses(f"C{i}", {"red_marrow": OrganCycleDose(0.5)}) for i in range(4)]
    assert [w.organ for w in cumulate(cycles).warnings] == ["red_marrow"]
    custom = [Limit("red_marrow", "absorbed_dose_gy", Decimal("2.5"), "local rule")]
    assert cumulate(cycles, limits=custom).warnings == []


def test_cumulative_bad_input() -> None:
    with pytest.raises(ValidationError, match="at most 8"):
        cumulate(_kidney_cycles([1.0] * 9))
    with pytest.raises(ValidationError, match="duplicate"):
        cumulate([CycleDoses("C1", {}), CycleDoses("C1", {})])
    no_teff = cumulate([*_kidney_cycles([3.0]), CycleDoses("C2", {"kidneys": OrganCycleDose(3.0)})])
    assert no_teff.organs["kidneys"].cumulative_bed_gy is None
    assert no_teff.organs["kidneys"].cumulative_absorbed_dose_gy == 6.0
    assert no_teff.notes == [
        "kidneys: cumulative BED not computed, no effective half-life for cycle(s) C2"
    ]


@settings(max_examples=30, deadline=None)
@given(doses=st.lists(st.floats(0, 10), min_size=1, max_size=8))
def test_cumulative_is_sum_of_cycles(doses: list[float]) -> None:
    res = cumulate(_kidney_cycles(doses))
    k = res.organs["kidneys"]
    assert k.cumulative_absorbed_dose_gy == pytest.approx(sum(doses))
    assert k.cumulative_bed_gy is not None and k.cumulative_bed_gy >= k.cumulative_absorbed_dose_gy
