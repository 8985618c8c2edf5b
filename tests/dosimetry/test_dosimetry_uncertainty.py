"""Dose uncertainty after Gear et al. 2018: each term, the degrees-of-freedom floor, the
combination, and coverage on noisy replicates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reluth.dosimetry import uncertainty as u
from reluth.dosimetry.pipeline import Methods, voi_tia
from reluth.errors import ValidationError

T4 = (4.0, 24.0, 96.0, 168.0)
T6 = (4.0, 24.0, 48.0, 96.0, 144.0, 168.0)


def lam(t_half: float) -> float:
    return math.log(2) / t_half


def test_surface_and_volume_term_of_a_sphere() -> None:
    g = np.indices((41, 41, 41)) - 20
    r_vox = 15.0
    mask = (g**2).sum(0) <= r_vox**2
    vox = (2.0, 2.0, 2.0)
    r_mm = r_vox * 2.0
    assert u.mask_surface_mm2(mask, vox) == pytest.approx(4 * math.pi * r_mm**2, rel=0.05)
    # σ_V/V = δ·S/V = 3δ/r for a sphere
    assert u.volume_relative_sd(mask, vox, 1.0) == pytest.approx(3 * 1.0 / r_mm, rel=0.05)


def test_combination_is_a_quadrature_sum() -> None:
    res = u.combine(10.0, {"calibration": 0.03, "fit": 0.04, "recovery": None})
    assert res.relative_sd == pytest.approx(0.05)
    assert res.sd_gy == pytest.approx(0.5)
    assert set(res.components) == {"calibration", "fit"}
    with pytest.raises(ValidationError, match=r"uncertainty\.fit"):
        u.combine(1.0, {"fit": -0.1})
    with pytest.raises(ValidationError, match="calibration_relative_sd"):
        u.UncertaintySettings(calibration_relative_sd=1.5)


def test_dof_floor() -> None:
    """Residuals larger than stated inflate the fit term only from 3 degrees of freedom: with
    2 (4 points, mono) the residual variance is too uncertain and the stated σ is kept."""
    rng = np.random.default_rng(7)
    for times, inflated in ((T4, False), (T6, True)):
        t = np.asarray(times)
        a = 100 * np.exp(-lam(60) * t) * (1 + 0.3 * rng.standard_normal(t.size))
        tr = voi_tia("mono", times, a, Methods(), None, "v")
        rel_cov = tr.tia_sd_mbq_h / tr.tia_mbq_h
        assert tr.fit is not None
        chi2_dof = tr.fit.weighted_ssr / (t.size - 2)
        rel = u.fit_relative_sd(tr, 0.10)
        assert rel is not None
        if inflated and chi2_dof > 1:
            assert rel == pytest.approx(rel_cov * math.sqrt(chi2_dof))
        else:
            assert rel == pytest.approx(rel_cov)


def test_single_time_point_method_error() -> None:
    inside = voi_tia("hanscheid", T4, np.array([50.0, 40.0, 20.0, 10.0]), Methods(), None, "v")
    assert u.fit_relative_sd(inside, 0.10) == pytest.approx(math.hypot(0.10, 0.10))
    outside = voi_tia(
        "hanscheid", T4, np.array([50.0, 40.0, 20.0, 10.0]), Methods(stp_index=3), None, "v"
    )
    assert u.fit_relative_sd(outside, 0.10) == pytest.approx(math.hypot(0.10, 0.30))


@pytest.mark.slow
def test_reported_fit_uncertainty_covers_the_replicate_spread() -> None:
    """With the stated 10 % per point and measurements of 10 % noise, the reported SD matches
    the spread of 300 replicates within 20 %, and about 68 % of them fall within ±1 SD."""
    rng = np.random.default_rng(11)
    t = np.asarray(T4)
    truth_curve = 100 * np.exp(-lam(60) * t)
    truth = 100 / lam(60)
    tias, rels, inside = [], [], 0
    for _ in range(300):
        a = truth_curve * (1 + 0.10 * rng.standard_normal(t.size))
        tr = voi_tia("auto", T4, a, Methods(), None, "v")
        rel = u.fit_relative_sd(tr, 0.10)
        assert rel is not None
        tias.append(tr.tia_mbq_h)
        rels.append(rel)
        inside += abs(tr.tia_mbq_h - truth) <= rel * tr.tia_mbq_h
    spread = float(np.std(tias) / np.mean(tias))
    assert float(np.mean(rels)) == pytest.approx(spread, rel=0.2)
    assert 0.58 < inside / 300 < 0.78
