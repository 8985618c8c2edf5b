"""Robustness on pydicom's bundled test files: every one is de-identified or skipped with a
reason, and nothing written carries what the profile removes."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from pydicom.data import get_testdata_files

from reluth.imaging.batch import BatchReport, deidentify_tree
from reluth.imaging.verify import verify_tree

from .conftest import settings


@pytest.fixture(scope="module")
def pydicom_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], BatchReport, Path]:
    root = tmp_path_factory.mktemp("pydicom")
    src = root / "in"
    src.mkdir()
    files = [Path(f) for f in get_testdata_files()]
    for i, f in enumerate(files):
        if f.is_file():
            shutil.copy(f, src / f"{i:03d}_{f.name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the odd values these files hold
        report = deidentify_tree(src, root / "out", settings("C01-0001"), workers=2)
    return files, report, root / "out"


def test_every_file_processed_or_skipped_with_a_reason(
    pydicom_run: tuple[list[Path], BatchReport, Path],
) -> None:
    files, report, _ = pydicom_run
    by_source = {r.source: r for r in report.files}
    for i, f in enumerate(files):
        if f.is_dir():
            continue  # a folder (dicomdirtests): its files are listed one by one as well
        result = by_source[f"{i:03d}_{f.name}"]
        assert result.status in ("written", "skipped", "collision"), result
        if result.status != "written":
            assert result.message, result
    assert len(report.files) == sum(1 for f in files if f.is_file())
    status = {r.source.split("_", 1)[1]: r.status for r in report.files}
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtdose.dcm", "nested_priv_SQ.dcm"):
        # of several encodings of one instance the first in source order is written
        assert status[name] in ("written", "collision"), name
    assert report.written >= 70
    skipped = {r.source.split("_", 1)[1]: r.message for r in report.files if r.status == "skipped"}
    assert "truncated" in skipped["MR_truncated.dcm"]
    assert "DICOMDIR" in skipped["DICOMDIR"]
    # the same instance in several encodings maps to one output name: reported, not overwritten
    assert report.collisions > 0


def test_verify_finds_nothing_in_the_outputs(
    pydicom_run: tuple[list[Path], BatchReport, Path],
) -> None:
    _, report, out = pydicom_run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = verify_tree(out)
    assert result.files_checked == report.written
    assert result.findings == []


def test_images_without_burned_in_statement_are_flagged_for_review(
    pydicom_run: tuple[list[Path], BatchReport, Path],
) -> None:
    _, report, _ = pydicom_run
    flagged = {r.source.split("_", 1)[1] for r in report.review}
    assert "SC_rgb_jpeg.dcm" in flagged  # secondary capture with no BurnedInAnnotation
    assert "CT_small.dcm" not in flagged


def test_dates_sent_as_un_are_shifted_too() -> None:
    """rtdose_rle_1frame.dcm encodes every attribute with VR UN."""
    from pydicom.data import get_testdata_file

    from reluth.imaging.batch import read_dataset
    from reluth.imaging.deid import day_offset, deidentify_dataset, shift_date
    from reluth.imaging.profile import make_profile

    from .conftest import KEY

    path = get_testdata_file("rtdose_rle_1frame.dcm")
    assert path is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = read_dataset(Path(path))
        assert before._dict[0x00080020].VR == "UN"
        original = before.StudyDate
        ds = read_dataset(Path(path))
        deidentify_dataset(ds, make_profile(), settings("C01-0001"))
        assert ds.StudyDate == shift_date(original, day_offset(KEY, "C01-0001"))
