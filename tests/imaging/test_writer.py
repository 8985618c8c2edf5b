"""The fast writer must produce exactly the bytes pydicom's own writer produces."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
from pydicom.data import get_testdata_files
from pydicom.tag import BaseTag

from reluth.imaging.batch import decode_if_reencoded, read_dataset
from reluth.imaging.deid import DeidError, deidentify_dataset
from reluth.imaging.profile import make_profile
from reluth.imaging.writer import _fast_path, write_dataset_file

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
