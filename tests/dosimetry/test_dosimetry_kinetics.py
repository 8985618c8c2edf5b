"""Kinetics: closed-form time-integrated activities, single-time-point methods, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reluth.dosimetry import kinetics as k
from reluth.dosimetry.phantom import render, small_spec
from reluth.dosimetry.physics import LU177_DECAY_CONSTANT_PER_H, LU177_HALF_LIFE_H
from reluth.errors import ValidationError

T4 = np.array([4.0, 24.0, 96.0, 168.0])
T6 = np.array([1.0, 4.0, 24.0, 72.0, 120.0, 168.0])


def lam(t_half: float) -> float:
    return math.log(2) / t_half


def test_lu177_constants() -> None:
    assert pytest.approx(159.528) == LU177_HALF_LIFE_H
    assert pytest.approx(math.log(2) / 159.528) == LU177_DECAY_CONSTANT_PER_H


@pytest.fixture(scope="module")
def phantom():  # type: ignore[no-untyped-def]
    return render(small_spec(16))


def test_phantom_voi_tia_within_half_percent(phantom) -> None:  # type: ignore[no-untyped-def]
    v_ml = phantom.spec.voxel_mm**3 / 1000
    for obj in phantom.spec.objects:
        act = k.tac_mbq(phantom.images_bq_per_ml, phantom.masks[obj.name], v_ml)
        model = "bi_uptake" if obj.uptake_half_life_h else "mono"
        fit = k.fit_model(model, phantom.spec.times_h, act)
        truth = phantom.truth["vois"][obj.name]["tia_mbq_h"]
        assert fit.tia_mbq_h == pytest.approx(truth, rel=0.005), obj.name
        if model == "mono":
            auto = k.fit_auto(phantom.spec.times_h, act)
            assert auto.method == "fit:mono"
            assert auto.tia_mbq_h == pytest.approx(truth, rel=0.005)
            assert fit.effective_half_life_h == pytest.approx(obj.effective_half_life_h, rel=1e-4)


def test_bi_and_tri_exponential_truth_recovered() -> None:
    bi = 60 * np.exp(-lam(80) * T6) + 40 * np.exp(-lam(8) * T6)
    truth_bi = 60 / lam(80) + 40 / lam(8)
    assert k.fit_model("bi", T6, bi).tia_mbq_h == pytest.approx(truth_bi, rel=0.005)
    auto = k.fit_auto(T6, bi)
    assert auto.method == "fit:bi"
    assert auto.tia_mbq_h == pytest.approx(truth_bi, rel=0.005)
    tri = 50 * np.exp(-lam(90) * T6) + 30 * np.exp(-lam(10) * T6) - 80 * np.exp(-lam(1.5) * T6)
    truth_tri = 50 / lam(90) + 30 / lam(10) - 80 / lam(1.5)
    assert k.fit_model("tri", T6, tri).tia_mbq_h == pytest.approx(truth_tri, rel=0.005)


def test_mono_fit_uncertainty_matches_replicate_spread() -> None:
    rng = np.random.default_rng(3)
    truth = 100 * np.exp(-lam(60) * T4)
    tias, sds = [], []
    for _ in range(150):
        a = truth * (1 + 0.05 * rng.standard_normal(T4.size))
        f = k.fit_model("mono", T4, a, sigma_mbq=0.05 * truth)
        tias.append(f.tia_mbq_h)
        sds.append(f.tia_sd_mbq_h)
    assert np.std(tias) == pytest.approx(np.mean(sds), rel=0.25)
    assert np.mean(tias) == pytest.approx(100 / lam(60), rel=0.02)


def test_trapezoid_closed_form() -> None:
    t, a = [2.0, 4.0, 10.0], [1.0, 3.0, 2.0]
    expected = 0.5 * 1 * 2 + 0.5 * (1 + 3) * 2 + 0.5 * (3 + 2) * 6 + 2 / LU177_DECAY_CONSTANT_PER_H
    assert k.trapezoid_tia(t, a).tia_mbq_h == pytest.approx(expected, rel=1e-12)
    constant = k.trapezoid_tia(t, a, head="constant").tia_mbq_h
    assert constant == pytest.approx(expected + 1.0, rel=1e-12)
    # last-two-points tail: clearance from (3 → 2) over 6 h, faster than physical decay
    lam2 = math.log(3 / 2) / 6
    tail2 = k.trapezoid_tia(t, a, tail="last_two_points").tia_mbq_h
    assert tail2 == pytest.approx(expected - 2 / LU177_DECAY_CONSTANT_PER_H + 2 / lam2, rel=1e-12)
    # never slower than physical decay
    rising = k.trapezoid_tia([1.0, 2.0], [1.0, 2.0], tail="last_two_points")
    assert rising.effective_half_life_h == pytest.approx(LU177_HALF_LIFE_H)


def test_trapezoid_uncertainty_is_linear_propagation() -> None:
    t, a, s = [2.0, 4.0, 10.0], [1.0, 3.0, 2.0], [0.1, 0.2, 0.3]
    w = np.array([0.5 * 2 + 0.5 * 2, 0.5 * 2 + 0.5 * 6, 0.5 * 6 + 1 / LU177_DECAY_CONSTANT_PER_H])
    expected = math.sqrt(float(np.sum((w * np.array(s)) ** 2)))
    assert k.trapezoid_tia(t, a, s).tia_sd_mbq_h == pytest.approx(expected, rel=1e-5)


def test_hanscheid_ratio_and_bounds() -> None:
    for x in (0.5, 1.0, 1.0 / math.log(2), 2.0, 3.0):
        t_eff = 50.0
        t = x * t_eff
        truth = 100 / lam(t_eff)
        est = k.hanscheid_tia(t, 100 * math.exp(-lam(t_eff) * t))
        assert est / truth == pytest.approx(2 * x * 2 ** (-x), rel=1e-12)
    assert k.hanscheid_ratio(1 / math.log(2)) == pytest.approx(1.0615, abs=1e-4)  # +6.2 %
    assert k.hanscheid_ratio(0.76) == pytest.approx(0.898, abs=1e-3)  # about −10 %
    assert k.hanscheid_ratio(2.45) == pytest.approx(0.897, abs=1e-3)


def test_madsen_exact_with_true_half_life() -> None:
    a96 = 100 * math.exp(-lam(50) * 96)
    assert k.madsen_tia(96, a96, 50) == pytest.approx(100 / lam(50), rel=1e-12)
    with pytest.raises(ValidationError, match="effective_half_life_h"):
        k.madsen_tia(96, a96, 0)


def test_voxel_fit_matches_phantom_and_bounds(phantom) -> None:  # type: ignore[no-untyped-def]
    tia = k.voxel_tia_mono(phantom.spec.times_h, phantom.images_bq_per_ml)
    for obj in phantom.spec.objects:
        if obj.uptake_half_life_h:
            continue
        expected = phantom.truth["vois"][obj.name]["tia_bq_h_per_ml"]
        np.testing.assert_allclose(tia[phantom.masks[obj.name]], expected, rtol=5e-4)
    # a curve slower than physical decay is fitted with the physical decay constant
    slow = np.stack([np.full((2, 2, 2), 100 * math.exp(-0.001 * t)) for t in T4])
    out = k.voxel_tia_mono(T4, slow)
    e = np.exp(-LU177_DECAY_CONSTANT_PER_H * T4)
    a0 = float((100 * np.exp(-0.001 * T4) * e).sum() / (e * e).sum())
    np.testing.assert_allclose(out, a0 / LU177_DECAY_CONSTANT_PER_H, rtol=1e-5)
    # a voxel with a zero sample falls back to trapezoid with physical tail
    zero = np.stack([np.full((1, 1, 1), v) for v in (0.0, 5.0, 2.0, 1.0)])
    trap = k.trapezoid_tia(T4, [0.0, 5.0, 2.0, 1.0]).tia_mbq_h
    assert float(k.voxel_tia_mono(T4, zero)[0, 0, 0]) == pytest.approx(trap, rel=1e-5)


@pytest.mark.parametrize(
    ("times", "acts", "model", "field"),
    [
        ([4.0, 24.0], [1.0, 0.5], "bi_uptake", "times_h"),
        ([24.0, 4.0, 96.0], [1.0, 0.5, 0.2], "mono", "times_h"),
        ([4.0, 24.0, 24.0], [1.0, 0.5, 0.2], "mono", "times_h"),
        ([4.0, 24.0, 96.0], [1.0, -0.5, 0.2], "mono", "activities"),
        ([4.0, 24.0, 96.0], [1.0, float("nan"), 0.2], "mono", "activities"),
        ([4.0, 24.0, 96.0], [1.0, 0.5], "mono", "activities"),
        ([4.0, 24.0, 96.0], [1.0, 0.5, 0.2], "quad", "model"),
    ],
)
def test_bad_series_named(times: list[float], acts: list[float], model: str, field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        k.fit_model(model, times, acts)
    assert exc.value.field == field
    assert "Traceback" not in exc.value.message


def test_auto_needs_enough_points_and_mask_grid_checked() -> None:
    three = k.fit_auto([4.0, 24.0, 96.0], [3.0, 2.0, 1.0])
    assert three.method == "fit:mono (too few points for AICc)"
    assert three.tia_mbq_h == k.fit_model("mono", [4.0, 24.0, 96.0], [3.0, 2.0, 1.0]).tia_mbq_h
    with pytest.raises(ValidationError, match="too few"):
        k.fit_auto([96.0], [1.0])
    with pytest.raises(ValidationError, match="does not match the image grid"):
        k.tac_mbq(np.zeros((2, 4, 4, 4)), np.zeros((4, 4, 5), bool), 1.0)


positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)


@settings(max_examples=30, deadline=None)
@given(scale=positive, a0=st.floats(1.0, 1e4), t_half=st.floats(5.0, 150.0))
def test_tia_scales_linearly_with_activity(scale: float, a0: float, t_half: float) -> None:
    a = a0 * np.exp(-lam(t_half) * T4)
    base = k.fit_model("mono", T4, a).tia_mbq_h
    assert k.fit_model("mono", T4, scale * a).tia_mbq_h == pytest.approx(scale * base, rel=1e-6)
    trap = k.trapezoid_tia(T4, a).tia_mbq_h
    assert k.trapezoid_tia(T4, scale * a).tia_mbq_h == pytest.approx(scale * trap, rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(a0=st.floats(1.0, 1e4), t_half=st.floats(5.0, 150.0), t=st.floats(1.0, 400.0))
def test_hanscheid_never_exceeds_6_2_percent_over_truth(a0: float, t_half: float, t: float) -> None:
    truth = a0 / lam(t_half)
    est = k.hanscheid_tia(t, a0 * math.exp(-lam(t_half) * t))
    assert est / truth <= 2 / (math.e * math.log(2)) + 1e-12


def test_voxel_fit_gauss_newton_reduces_noise_bias() -> None:
    from reluth.dosimetry.phantom import PhantomSpec

    ph = render(PhantomSpec(noise_relative_sd=0.1, seed=1))
    t = ph.spec.times_h
    gn = k.voxel_tia_mono(t, ph.images_bq_per_ml)
    loglin = k.voxel_tia_mono(t, ph.images_bq_per_ml, gauss_newton_steps=0)
    for name in ("liver", "kidneys", "spleen", "body"):
        truth = ph.truth["vois"][name]["tia_bq_h_per_ml"]
        m = ph.masks[name]
        bias_gn = abs(float(gn[m].mean()) / truth - 1)
        bias_ll = abs(float(loglin[m].mean()) / truth - 1)
        assert bias_gn < 0.01, name
        assert bias_gn < bias_ll, name
