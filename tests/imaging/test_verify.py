from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from reluth.imaging.batch import deidentify_tree
from reluth.imaging.verify import verify_tree

from .conftest import KEY, settings


@pytest.fixture
def clean_copy(raw_export: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    deidentify_tree(raw_export, out, settings())
    return out


def _first(root: Path, modality: str) -> Path:
    for path in sorted(root.rglob("*.dcm")):
        if pydicom.dcmread(path, stop_before_pixels=True).Modality == modality:
            return path
    raise AssertionError(modality)


def _problems(root: Path, **kw: object) -> set[tuple[str, str]]:
    return {(f.where, f.problem) for f in verify_tree(root, **kw).findings}  # type: ignore[arg-type]


def test_planted_leftovers_are_found(clean_copy: Path) -> None:
    path = _first(clean_copy, "NM")
    ds = pydicom.dcmread(path)
    ds.PatientBirthDate = "19580412"  # Z
    ds.InstitutionName = "CHU DE NULLEPART"  # X
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.77"  # U not applied
    ds.private_block(0x0011, "VENDOR X", create=True).add_new(0x01, "LO", "DUPONT")
    ds.RadiopharmaceuticalInformationSequence[0].add_new(0x00081070, "PN", "PETIT^ANNE")
    ds.NamesOfIntendedRecipientsOfResults = "MARTIN^CLAIRE"
    ds.save_as(path)
    found = _problems(clean_copy, forbid=("NULLEPART",))
    assert ("PatientBirthDate", "not empty; the profile empties it") in found
    assert ("InstitutionName", "present; the profile removes it") in found
    assert ("InstitutionName", "contains forbidden text 'NULLEPART'") in found
    assert ("StudyInstanceUID", "UID not replaced") in found
    assert ("(0011,1001)", "private attribute present (profile: remove)") in found
    assert (
        "RadiopharmaceuticalInformationSequence[0].OperatorsName",
        "present; the profile removes it",
    ) in found
    assert ("NamesOfIntendedRecipientsOfResults", "present; the profile removes it") in found


def test_unmarked_file_and_foreign_pseudonym_are_found(clean_copy: Path) -> None:
    path = _first(clean_copy, "CT")
    ds = pydicom.dcmread(path)
    del ds.PatientIdentityRemoved
    ds.PatientName = "DUPONT^JEAN"
    ds.save_as(path)
    found = _problems(clean_copy)
    assert ("PatientIdentityRemoved", "not YES: file is not marked de-identified") in found
    assert ("PatientName", "differs from the trial pseudonym") in found


def test_unshifted_date_is_reported(clean_copy: Path) -> None:
    path = _first(clean_copy, "NM")
    ds = pydicom.dcmread(path)
    ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime = "20260302091500"
    ds.save_as(path)
    report = verify_tree(clean_copy)
    assert any(
        w.where.endswith("RadiopharmaceuticalStartDateTime") or "days after" in w.problem
        for w in report.warnings
    )


def test_patient_shifted_with_two_keys_is_a_finding(raw_export: Path, tmp_path: Path) -> None:
    deidentify_tree(raw_export, tmp_path / "both" / "a", settings())
    other = tmp_path / "in2"
    shutil.copytree(raw_export, other)
    deidentify_tree(other, tmp_path / "both" / "b", settings(key=KEY + b"-other-site"))
    report = verify_tree(tmp_path / "both")
    assert any("different date shifts" in f.problem for f in report.findings)
    # and the site key check names files shifted with another key
    report = verify_tree(tmp_path / "both" / "b", expected_key=KEY)
    assert any("differs from this site key" in f.problem for f in report.findings)


def test_other_declared_options_are_a_finding(clean_copy: Path) -> None:
    path = _first(clean_copy, "CT")
    ds = pydicom.dcmread(path)
    item = pydicom.Dataset()
    item.CodeValue = "113111"  # Retain Safe Private: not what the trial uses
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = "Retain Safe Private Option"
    ds.DeidentificationMethodCodeSequence.append(item)
    ds.private_block(0x0011, "VENDOR X", create=True).add_new(0x01, "LO", "SAFE?")
    ds.save_as(path)
    found = _problems(clean_copy)
    assert any(w == "DeidentificationMethodCodeSequence" and "113111" in p for w, p in found)
    assert ("(0011,1001)", "private attribute present (profile: remove)") in found
