from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pydicom
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from reluth.errors import ValidationError
from reluth.imaging.batch import deidentify_tree
from reluth.imaging.deid import (
    MAX_OFFSET_DAYS,
    MIN_OFFSET_DAYS,
    check_patient_id,
    clean_text,
    compile_deidentifier,
    day_offset,
    map_uid,
    read_key,
    shift_date,
    shift_datetime,
)
from reluth.imaging.profile import make_profile
from reluth.imaging.qc import extract_header
from reluth.imaging.synthetic import SyntheticPatient, write_patient
from reluth.imaging.verify import verify_tree

from .conftest import IDENTIFIERS, KEY, OTHER_PATIENT, PATIENT, settings, small_options

UID_RE = re.compile(r"^2\.25\.(0|[1-9]\d*)$")


# --- engine: offsets, UIDs, date arithmetic -------------------------------------------------


@hsettings(max_examples=60, deadline=None)
@given(st.from_regex(r"C\d{2}-\d{4}", fullmatch=True))
def test_offset_is_whole_days_in_range_and_deterministic(pid: str) -> None:
    days = day_offset(KEY, pid)
    assert -MAX_OFFSET_DAYS <= days <= -MIN_OFFSET_DAYS
    assert day_offset(KEY, pid) == days


def test_offsets_differ_between_patients_and_keys() -> None:
    offsets = {day_offset(KEY, f"C01-{i:04d}") for i in range(50)}
    assert len(offsets) > 40
    assert day_offset(KEY, PATIENT) != day_offset(KEY + b"x", PATIENT)


@hsettings(max_examples=60, deadline=None)
@given(st.from_regex(r"[12](\.\d{1,10}){2,8}", fullmatch=True))
def test_uid_mapping_is_valid_deterministic_and_patient_keyed(uid: str) -> None:
    new = map_uid(KEY, uid, PATIENT)
    assert UID_RE.match(new) and len(new) <= 64
    assert map_uid(KEY, uid, PATIENT) == new
    assert map_uid(KEY, uid, OTHER_PATIENT) != new


@hsettings(max_examples=60, deadline=None)
@given(st.from_regex(r" ?[12](\.\d{1,10}){0,8}\x00?", fullmatch=True))
def test_compiled_uid_mapping_equals_the_reference(uid: str) -> None:
    """The batch keys the MAC once and copies its state; the result is map_uid's."""
    deid = compile_deidentifier(make_profile(), settings())
    assert deid.uid(uid) == map_uid(KEY, uid, PATIENT)
    assert deid.uid(uid) == map_uid(KEY, uid, PATIENT)  # remembered value too
    assert compile_deidentifier(make_profile(), settings()) is deid  # compiled once


@hsettings(max_examples=100, deadline=None)
@given(
    st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2040, 1, 1)),
    st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=400)),
    st.integers(-MAX_OFFSET_DAYS, -MIN_OFFSET_DAYS),
)
def test_shift_preserves_every_interval_to_the_second(
    injection: dt.datetime, gap: dt.timedelta, days: int
) -> None:
    injection = injection.replace(microsecond=0)
    scan = injection + dt.timedelta(seconds=int(gap.total_seconds()))
    fmt = "%Y%m%d%H%M%S"
    a = shift_datetime(injection.strftime(fmt), days)
    b = shift_datetime(scan.strftime(fmt), days)
    assert a and b
    assert dt.datetime.strptime(b, fmt) - dt.datetime.strptime(a, fmt) == scan - injection
    # a DA + TM pair: the date moves, the time of day does not
    da = shift_date(scan.strftime("%Y%m%d"), days)
    assert da == (scan.date() + dt.timedelta(days=days)).strftime("%Y%m%d")


def test_datetime_suffixes_kept_and_unshiftable_values_refused() -> None:
    assert shift_datetime("20260302091500.123456+0100", -1) == "20260301091500.123456+0100"
    assert shift_datetime("20260302", -2) == "20260228"
    assert shift_datetime("2026", -2) is None  # coarser than a day: cannot shift exactly
    assert shift_date("2026.03.02", -1) is None
    assert shift_date("20260230", -1) is None
    assert shift_date("", -1) == ""


def test_clean_descriptors_keeps_technique_drops_identity() -> None:
    assert clean_text("SPECT 24h AC SC OSEM IPP0048213") == "SPECT 24h AC SC OSEM"
    assert clean_text("Lu177 DUPONT Jean 96h") == "Lu177 96h"
    assert clean_text("CTAC 5mm B31s") == "CTAC 5mm B31s"
    assert "1234567" not in clean_text("SPECT 1234567")


def test_key_and_patient_id_validation(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"abc")
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        read_key(short)
    with pytest.raises(ValidationError, match="not found"):
        read_key(tmp_path / "missing.key")
    with pytest.raises(ValidationError, match="CNN-NNNN"):
        check_patient_id("DUPONT")


# --- batch on the synthetic export ----------------------------------------------------------


def _by_sop(root: Path) -> dict[str, pydicom.Dataset]:
    out = {}
    for path in sorted(root.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        out[str(ds.SOPInstanceUID)] = ds
    return out


@pytest.fixture(scope="module")
def deidentified(raw_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deid") / "out"
    report = deidentify_tree(raw_export, out, settings(), workers=1)
    assert report.skipped == 0 and report.collisions == 0
    assert report.written == len(list(raw_export.rglob("*.dcm")))
    return out


def test_verify_finds_nothing_after_deidentification(deidentified: Path) -> None:
    report = verify_tree(deidentified, forbid=IDENTIFIERS, expected_key=KEY)
    assert report.files_checked > 0
    assert report.findings == []


def test_raw_export_is_full_of_findings(raw_export: Path) -> None:
    report = verify_tree(raw_export, forbid=IDENTIFIERS)
    problems = {f.problem for f in report.findings}
    assert "private attribute present (profile: remove)" in problems
    assert any("DUPONT" in p for p in problems)


def test_dosimetry_values_and_intervals_survive(raw_export: Path, deidentified: Path) -> None:
    raw = _by_sop(raw_export)
    out = _by_sop(deidentified)
    assert len(raw) == len(out)
    for sop, before in raw.items():
        after = out[map_uid(KEY, sop, PATIENT)]
        assert after.PatientID == after.PatientName == PATIENT
        assert "PatientBirthDate" not in after or after.PatientBirthDate == ""
        assert after.FrameOfReferenceUID == map_uid(KEY, before.FrameOfReferenceUID, PATIENT)
        assert after.PixelData == before.PixelData
        for kw in (
            "PatientWeight",
            "PatientSize",
            "PatientSex",
            "PatientAge",
            "DeviceSerialNumber",
            "RescaleSlope",
            "RescaleIntercept",
            "AcquisitionTime",
        ):
            assert after.get(kw) == before.get(kw), kw
        assert after.StudyDate != before.StudyDate
        if before.Modality == "NM":
            h0, h1 = extract_header(before), extract_header(after)
            assert h0.injection and h0.acquisition and h1.injection and h1.acquisition
            assert h1.acquisition - h1.injection == h0.acquisition - h0.injection
            assert h1.injection != h0.injection
            for kw in ("Units", "ActualFrameDuration", "FrameReferenceTime", "CorrectedImage"):
                assert after.get(kw) == before.get(kw), kw
            for attr in (
                "total_dose",
                "half_life_s",
                "energy_windows_kev",
                "collimators",
                "projections",
                "time_per_projection_s",
            ):
                assert getattr(h1, attr) == getattr(h0, attr), attr
            rp0 = before.RadiopharmaceuticalInformationSequence[0]
            rp1 = after.RadiopharmaceuticalInformationSequence[0]
            assert rp1.RadiopharmaceuticalStartTime == rp0.RadiopharmaceuticalStartTime
            assert after.LongitudinalTemporalInformationModified == "MODIFIED"
            assert after.PatientIdentityRemoved == "YES"
            codes = {i.CodeValue for i in after.DeidentificationMethodCodeSequence}
            assert codes == {"113100", "113105", "113107", "113108", "113109"}
            assert after.ClinicalTrialTimePointID == "C3"
            assert after.SeriesDescription == "SPECT " + before.SeriesDescription.split()[1] + (
                " AC SC OSEM"
            )


def test_two_runs_give_identical_files(
    raw_export: Path, deidentified: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    report = deidentify_tree(raw_export, again, settings(), workers=2)
    assert report.written == len(list(deidentified.rglob("*.dcm")))
    first = {p.relative_to(deidentified): p.read_bytes() for p in deidentified.rglob("*.dcm")}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*.dcm")}
    assert first == second


def test_cycles_processed_apart_share_the_patient_offset(tmp_path: Path) -> None:
    """Cycle 3 and cycle 4 exported 8 weeks apart, de-identified in separate batches: the
    56-day gap between the two injections is kept exactly."""
    c3 = SyntheticPatient()
    c4 = SyntheticPatient(injection=c3.injection + dt.timedelta(days=56))
    write_patient(tmp_path / "c3", c3, small_options(timepoints_h=(24.0,), ct_slices=0))
    write_patient(tmp_path / "c4", c4, small_options(timepoints_h=(24.0,), ct_slices=0, seed=1))
    deidentify_tree(tmp_path / "c3", tmp_path / "o3", settings(cycle=3))
    deidentify_tree(tmp_path / "c4", tmp_path / "o4", settings(cycle=4))
    h3 = extract_header(next(iter(_by_sop(tmp_path / "o3").values())))
    h4 = extract_header(next(iter(_by_sop(tmp_path / "o4").values())))
    assert h3.injection and h4.injection
    assert h4.injection - h3.injection == dt.timedelta(days=56)
    assert not verify_tree(tmp_path / "o3").findings + verify_tree(tmp_path / "o4").findings


def test_two_patients_get_different_offsets_and_uids(raw_export: Path, tmp_path: Path) -> None:
    a = deidentify_tree(raw_export, tmp_path / "a", settings(PATIENT))
    b = deidentify_tree(raw_export, tmp_path / "b", settings(OTHER_PATIENT))
    assert a.written == b.written > 0
    sops_a, sops_b = set(_by_sop(tmp_path / "a")), set(_by_sop(tmp_path / "b"))
    assert not sops_a & sops_b
    date_a = {ds.StudyDate for ds in _by_sop(tmp_path / "a").values()}
    date_b = {ds.StudyDate for ds in _by_sop(tmp_path / "b").values()}
    assert not date_a & date_b
    both = tmp_path / "both"
    shutil.copytree(tmp_path / "a", both / "a")
    shutil.copytree(tmp_path / "b", both / "b")
    assert verify_tree(both).findings == []  # two pseudonyms, each consistent


def test_corrupt_files_are_skipped_and_the_rest_written(raw_export: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    shutil.copytree(raw_export, src)
    (src / "notes.txt").write_text("not dicom at all\n")
    good = next(src.rglob("CT00001.dcm"))
    (src / "truncated.dcm").write_bytes(good.read_bytes()[:700])
    report = deidentify_tree(src, tmp_path / "out", settings(), workers=2)
    skipped = {f.source: f.message for f in report.files if f.status == "skipped"}
    assert set(skipped) == {"notes.txt", "truncated.dcm"}
    assert all(skipped.values())
    assert report.written == len(list(raw_export.rglob("*.dcm")))


def test_never_overwrites_and_never_writes_into_input(raw_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    deidentify_tree(raw_export, out, settings())
    before = {p: p.read_bytes() for p in out.rglob("*.dcm")}
    report = deidentify_tree(raw_export, out, settings(cycle=4))
    assert report.written == 0 and report.collisions == len(before)
    assert {p: p.read_bytes() for p in out.rglob("*.dcm")} == before
    with pytest.raises(ValidationError, match="outside IN_DIR"):
        deidentify_tree(raw_export, raw_export / "sub", settings())
    with pytest.raises(ValidationError, match="outside IN_DIR"):
        deidentify_tree(raw_export, raw_export, settings())
