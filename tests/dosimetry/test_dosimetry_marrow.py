"""Blood-based red-marrow dose: the remainder-of-body term (MIRD remainder correction) and the
source of the remainder activity (whole-body imaging or the SPECT field of view)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reluth.dosimetry.case_dir import load_case
from reluth.dosimetry.marrow import marrow_dose, remainder_svalue, remainder_tia_mbq_h
from reluth.dosimetry.phantom import PHANTOM_INJECTION, small_spec, write_case
from reluth.dosimetry.pipeline import compute_case
from reluth.errors import ValidationError


@pytest.mark.parametrize(
    ("sex", "s_tb", "m_tb", "s_rm", "m_rm", "ratio"),
    [
        ("male", 2.74e-7, 73000.0, 1.15e-5, 1170.0, 3.0),
        ("female", 3.28e-7, 60000.0, 1.49e-5, 900.0, 3.1),
    ],
)
def test_remainder_svalue_by_the_mird_correction(
    sex: str, s_tb: float, m_tb: float, s_rm: float, m_rm: float, ratio: float
) -> None:
    """S(RM←RB) = S(RM←TB)·m_TB/m_RB − S(RM←RM)·m_RM/m_RB, m_RB = m_TB − m_RM (MIRD Pamphlet 11;
    Cloutier 1973). S(RM←TB) was ×3.0 (male) / ×3.1 (female) too high for the remainder."""
    m_rb = m_tb - m_rm
    expected = s_tb * m_tb / m_rb - s_rm * m_rm / m_rb
    rs = remainder_svalue(sex)
    assert rs.s_mgy_per_mbq_s == pytest.approx(expected, rel=1e-12)
    assert rs.remainder_mass_g == pytest.approx(m_rb)
    assert s_tb / rs.s_mgy_per_mbq_s == pytest.approx(ratio, abs=0.05)
    md = marrow_dose(0.0, sex, remainder_tia_mbq_h=1000.0)
    assert md.remainder_cross_dose_gy == pytest.approx(1000 * 3600 * expected / 1000, rel=1e-12)
    assert md.remainder_svalue_mgy_per_mbq_s == pytest.approx(expected)


def test_remainder_correction_with_source_organs() -> None:
    """An organ with its own TIA leaves the remainder: its mass and S(RM←organ)·m are removed."""
    base = remainder_svalue("male")
    s_liver, m_liver = 1.2e-7, 1800.0
    rs = remainder_svalue("male", {"liver": (s_liver, m_liver)})
    m_rb = 73000 - 1170 - 1800
    expected = (2.74e-7 * 73000 - 1.15e-5 * 1170 - s_liver * m_liver) / m_rb
    assert rs.s_mgy_per_mbq_s == pytest.approx(expected, rel=1e-12)
    assert rs.s_mgy_per_mbq_s != base.s_mgy_per_mbq_s
    with pytest.raises(ValidationError, match="remainder"):
        remainder_svalue("male", {"liver": (1e-3, 70000.0)})


def test_remainder_tia_from_whole_body() -> None:
    assert remainder_tia_mbq_h(1000.0, [100.0, 50.0], 30.0) == pytest.approx(820.0)
    with pytest.raises(ValidationError, match="whole_body"):
        remainder_tia_mbq_h(100.0, [100.0, 50.0], 30.0)


def _case(tmp: Path, whole_body: bool) -> Path:
    case = write_case(tmp / ("wb" if whole_body else "fov"), small_spec(16))
    if whole_body:
        import datetime as dt
        import math

        doc = yaml.safe_load((case / "case.yaml").read_text())
        samples = [
            {
                "acquisition_time": (PHANTOM_INJECTION + dt.timedelta(hours=t)).isoformat(),
                "activity_mbq": round(7400 * 0.6 * math.exp(-math.log(2) / 45 * t), 6),
            }
            for t in (4.0, 24.0, 96.0, 168.0)
        ]
        doc["marrow"]["whole_body_samples"] = samples
        (case / "case.yaml").write_text(yaml.safe_dump(doc))
    return case


def test_pipeline_remainder_from_fov_warns_and_from_whole_body_does_not(tmp_path: Path) -> None:
    fov = compute_case(load_case(_case(tmp_path, False))).to_dict()
    assert fov["red_marrow"]["remainder_source"] == "field_of_view"
    assert any("field of view" in w and "marrow" in w for w in fov["warnings"])
    wb = compute_case(load_case(_case(tmp_path, True))).to_dict()
    rm = wb["red_marrow"]
    assert rm["remainder_source"] == "whole_body"
    assert not any("field of view" in w and "marrow" in w for w in wb["warnings"])
    wb_tia = 7400 * 0.6 * 45 / 0.6931471805599453
    organs = sum(
        v["tia"]["tia_mbq_h"]
        for name, v in wb["vois"].items()
        if v["kind"] in ("organ", "tumour") and "combined_from" not in v
    )
    expected = wb_tia - organs - rm["marrow_tia_mbq_h"]
    assert rm["remainder_tia_mbq_h"] == pytest.approx(expected, rel=0.005)
    assert rm["remainder_cross_dose_gy"] == pytest.approx(
        rm["remainder_tia_mbq_h"] * 3600 * rm["remainder_svalue_mgy_per_mbq_s"] / 1000, rel=1e-9
    )
