"""The fast writer must produce exactly the bytes pydicom's own writer produces."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataelem import convert_raw_data_element
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.tag import BaseTag

from reluth.imaging.batch import decode_if_reencoded, read_dataset
from reluth.imaging.deid import DeidError, deidentify_dataset, peek, peek_text
from reluth.imaging.profile import make_profile
from reluth.imaging.writer import _fast_path, _meta_bytes, write_dataset_file

from .conftest import settings


def _inputs(raw_export: Path) -> list[Path]:
    files = [Path(f) for f in get_testdata_files() if Path(f).is_file()]
    return files + sorted(raw_export.rglob("*.dcm"))


@pytest.mark.parametrize("deidentify", [False, True])
def test_fast_writer_equals_pydicom_byte_for_byte(raw_export: Path, deidentify: bool) -> None:
    compared = fast = deferred = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in _inputs(raw_export):
            try:
                a, b = read_dataset(path), read_dataset(path)
            except DeidError:
                continue
            for ds in (a, b):
                decode_if_reencoded(ds)
                if deidentify:
                    deidentify_dataset(ds, make_profile(), settings())
            expected = io.BytesIO()
            try:
                a.save_as(expected)
            except Exception:
                continue  # pydicom itself cannot write it: not a writer comparison
            fast += _fast_path(b)
            pixels = b._dict.get(BaseTag(0x7FE00010))
            deferred += bool(pixels is not None and pixels.is_raw and pixels.value is None)
            got = io.BytesIO()
            write_dataset_file(b, got)
            assert got.getvalue() == expected.getvalue(), path.name
            compared += 1
    assert compared > 80 and fast > 60
    assert deferred > 5  # large pixel data copied from the source file, never read


def _pydicom_datasets() -> list[pydicom.Dataset]:
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in get_testdata_files():
            try:
                out.append(pydicom.dcmread(f, defer_size=65536))
            except Exception:
                continue  # not DICOM or unreadable: not a comparison
    return out


def test_file_meta_encoded_as_pydicom_writes_it() -> None:
    compared = 0
    for ds in _pydicom_datasets():
        meta = getattr(ds, "file_meta", None)
        if meta is None or not len(meta):
            continue
        for touched in (False, True):
            if touched and "MediaStorageSOPInstanceUID" in meta:
                meta.MediaStorageSOPInstanceUID = "2.25.12345"  # a decoded, changed element
            expected = DicomBytesIO()
            expected.is_little_endian, expected.is_implicit_VR = True, False
            write_file_meta_info(expected, meta, enforce_standard=False)
            got = _meta_bytes(meta)
            if got is not None:
                assert got == expected.getvalue()
                compared += 1
    assert compared > 200


def test_peeked_values_equal_pydicom_conversion() -> None:
    """peek decodes US, CS and UI itself: same values and types as pydicom, element kept raw;
    peek_text is their text."""
    compared = 0
    for ds in _pydicom_datasets():
        for tag, elem in list(ds._dict.items()):
            if not elem.is_raw or elem.value is None:
                continue
            got = peek(ds, tag)
            assert ds._dict[tag] is elem  # not converted in the dataset
            want = convert_raw_data_element(elem, ds=ds).value
            assert got == want and type(got) is type(want), (tag, got, want)
            assert peek_text(ds, tag) == ("" if want is None else str(want))
            compared += 1
    assert compared > 5000
