"""References between objects, nested identifiers and attributes the table does not list."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from reluth.imaging.batch import deidentify_tree
from reluth.imaging.deid import day_offset, map_uid, shift_date
from reluth.imaging.synthetic import SyntheticPatient, make_ct, make_spect
from reluth.imaging.verify import verify_tree

from .conftest import KEY, PATIENT, settings, small_options


@pytest.mark.parametrize("implicit", [False, True])
def test_references_nested_identifiers_and_unlisted_names(tmp_path: Path, implicit: bool) -> None:
    p, opts = SyntheticPatient(), small_options(ct_slices=1)
    nm = make_spect(p, 24, "1.2.826.0.1.3680043.8.498.5", "1.2.826.0.1.3680043.8.498.6", opts)
    ct = make_ct(p, 24, "1.2.826.0.1.3680043.8.498.5", "1.2.826.0.1.3680043.8.498.6", opts)[0]
    ref = Dataset()
    ref.ReferencedSOPClassUID = nm.SOPClassUID
    ref.ReferencedSOPInstanceUID = nm.SOPInstanceUID
    ct.ReferencedImageSequence = Sequence([ref])
    nm.RadiopharmaceuticalInformationSequence[0].OperatorsName = "PETIT^ANNE"
    nm.RadiopharmaceuticalInformationSequence[0].add_new(0x00181202, "DA", "20260302")  # unlisted
    nm.add_new(0x00321032, "PN", "MARTIN^CLAIRE")  # Requesting Physician (X)
    nm.add_new(0x00400006, "PN", "BERNARD^LUC")  # Scheduled Performing Physician (X)
    nm.add_new(0x00081060, "PN", "DURAND^PAUL")  # Name of Physician(s) Reading Study (X)
    nm.add_new(0x00102297, "PN", "DUPONT^MARIE")  # Responsible Person (X)
    nm.add_new(0x00142006, "PN", "LEROY^JEAN")  # Evaluator Name: not in the table
    src = tmp_path / "in"
    src.mkdir()
    for name, ds in (("nm.dcm", nm), ("ct.dcm", ct)):
        if implicit:
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        ds.save_as(src / name)
    report = deidentify_tree(src, tmp_path / "out", settings())
    assert report.written == 2
    out = {str(d.Modality): d for d in map(pydicom.dcmread, (tmp_path / "out").rglob("*.dcm"))}
    new_nm_uid = map_uid(KEY, nm.SOPInstanceUID, PATIENT)
    assert out["NM"].SOPInstanceUID == new_nm_uid
    assert out["CT"].ReferencedImageSequence[0].ReferencedSOPInstanceUID == new_nm_uid
    assert out["CT"].ReferencedImageSequence[0].ReferencedSOPClassUID == nm.SOPClassUID
    assert out["CT"].FrameOfReferenceUID == out["NM"].FrameOfReferenceUID
    rp = out["NM"].RadiopharmaceuticalInformationSequence[0]
    assert "OperatorsName" not in rp
    assert rp[0x00181202].value == shift_date("20260302", day_offset(KEY, PATIENT))
    for tag in (0x00321032, 0x00400006, 0x00081060, 0x00102297):
        assert tag not in out["NM"]
    assert out["NM"][0x00142006].value == ""  # an unlisted person name is emptied
    assert verify_tree(tmp_path / "out", forbid=("PETIT", "DURAND", "DUPONT")).findings == []
