from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reluth.errors import ValidationError
from reluth.imaging.qc import (
    FAIL,
    PASS,
    WARN,
    QCConfig,
    SeriesHeader,
    check_all,
    check_series,
    extract_header,
    match_timepoint,
    parse_timepoints,
)
from reluth.imaging.synthetic import Faults, SyntheticOptions, SyntheticPatient, make_ct, make_spect

CFG = QCConfig()


def _spect(hours: float = 24.0, **faults: bool) -> SeriesHeader:
    # 128x128 in-plane (the matrix QC expects) but only 4 slices to stay small
    opts = SyntheticOptions(matrix=128, slices=4, faults=Faults(**faults))
    return extract_header(make_spect(SyntheticPatient(), hours, "1.2.3", "1.2.4", opts))


def _checks(h: SeriesHeader) -> dict[str, tuple[str, str]]:
    return {c.name: (c.status, c.reason) for c in check_series(h, CFG).checks}


def test_good_series_passes_every_check() -> None:
    result = check_series(_spect(), CFG)
    assert result.status == PASS, result.reasons
    assert result.time_point == "24h"
    assert {c.name for c in result.checks} == {
        "radionuclide",
        "energy window",
        "collimator",
        "matrix",
        "voxel size",
        "projections",
        "units",
        "corrections",
        "activity",
        "weight",
        "timing",
    }


@pytest.mark.parametrize(
    ("fault", "check", "words"),
    [
        ("wrong_window", "energy window", "no window around 208 keV"),
        ("missing_weight", "weight", "PatientWeight missing"),
        ("scan_before_injection", "timing", "before injection"),
        ("wrong_collimator", "collimator", "LEHR is not a medium-energy collimator"),
    ],
)
def test_each_planted_fault_fails(fault: str, check: str, words: str) -> None:
    h = _spect(**{fault: True})
    result = check_series(h, CFG)
    assert result.status == FAIL
    status, reason = _checks(h)[check]
    assert status == FAIL and words in reason
    others = [c for c in result.checks if c.name != check]
    assert all(c.status == PASS for c in others), result.reasons


def test_ct_must_share_the_spect_frame_of_reference() -> None:
    p, opts = SyntheticPatient(), SyntheticOptions(matrix=128, slices=4, ct_slices=1, ct_size=16)
    nm = extract_header(make_spect(p, 24, "1.2.3", "1.2.4", opts))
    ct_same = extract_header(make_ct(p, 24, "1.2.3", "1.2.4", opts)[0])
    ct_other = extract_header(make_ct(p, 24, "1.2.3", "9.9.9", opts)[0])
    out = check_all([nm, ct_same, ct_other], CFG)
    assert [r.status for r in out] == [PASS, PASS, FAIL]
    assert out[1].time_point == "24h"


def test_counts_need_a_calibration_factor_for_the_camera() -> None:
    h = dataclasses.replace(_spect(), units="CNTS")
    assert _checks(h)["units"][0] == FAIL
    cfg = QCConfig(calibration_factors={"SN-44871": Decimal("9.6")})
    assert {c.name: c.status for c in check_series(h, cfg).checks}["units"] == PASS


def test_other_radionuclide_and_missing_corrections() -> None:
    h = dataclasses.replace(_spect(), half_life_s=Decimal("21624"), corrected=("SCAT",))
    checks = _checks(h)
    assert checks["radionuclide"][0] == FAIL
    assert checks["corrections"] == (FAIL, "not attenuation corrected (CorrectedImage lacks ATTN)")
    assert _checks(dataclasses.replace(h, corrected=("ATTN",)))["corrections"][0] == WARN


@pytest.mark.parametrize(
    ("dose", "status"),
    [
        ("6660", PASS),
        ("6659.999", WARN),
        ("8140", PASS),
        ("8140.001", WARN),
        ("7400000000", PASS),
        ("0", FAIL),
    ],
)
def test_activity_boundaries_are_exact(dose: str, status: str) -> None:
    h = dataclasses.replace(_spect(), total_dose=Decimal(dose))
    assert _checks(h)["activity"][0] == status


@pytest.mark.parametrize(
    ("window", "status"),
    [
        ((Decimal("176.8"), Decimal("239.2")), PASS),
        ((Decimal("176.7"), Decimal("239.2")), WARN),
        ((Decimal("187.2"), Decimal("207.9")), FAIL),
    ],
)
def test_energy_window_boundaries(window: tuple[Decimal, Decimal], status: str) -> None:
    h = dataclasses.replace(_spect(), energy_windows_kev=(window,))
    assert _checks(h)["energy window"][0] == status


def test_timepoint_tolerance_on_both_sides() -> None:
    planned = parse_timepoints("4h,24h,96h,168h")
    assert match_timepoint(Decimal("5"), planned) == (Decimal(4), Decimal(1))
    assert match_timepoint(Decimal("5.0001"), planned) is None
    assert match_timepoint(Decimal("27.6"), planned) is not None  # 24 h + 15 %
    assert match_timepoint(Decimal("27.61"), planned) is None
    injection = dt.datetime(2026, 3, 2, 9, 15)
    late = dataclasses.replace(
        _spect(), injection=injection, acquisition=injection + dt.timedelta(hours=50)
    )
    assert _checks(late)["timing"][0] == WARN


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=6, unique=True))
def test_a_scan_exactly_at_a_planned_time_matches_it(hours: list[int]) -> None:
    planned = tuple(Decimal(h) for h in sorted(hours))
    for p in planned:
        assert match_timepoint(p, planned) == (p, Decimal(0))


def test_time_only_injection_is_a_warning() -> None:
    h = dataclasses.replace(_spect(), injection=None, injection_time_only=True)
    assert _checks(h)["timing"] == (
        WARN,
        "RadiopharmaceuticalStartDateTime missing (only a start time, no date): interval unknown",
    )


def test_parse_timepoints() -> None:
    assert parse_timepoints("168h, 4h,1d") == (Decimal(4), Decimal(24), Decimal(168))
    with pytest.raises(ValidationError, match="--planned-timepoints"):
        parse_timepoints("4h,tomorrow")
