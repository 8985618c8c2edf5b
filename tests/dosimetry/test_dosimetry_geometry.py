"""Image geometry in a case directory (issue 19, 'Geometry ignored'): inputs are placed by
their affines, not by their array shapes. Each test reproduces one defect of the issue:

* a kidney mask stored with a flipped x-axis (same physical position) was accepted and gave
  kidney TIA −69 %;
* a 168 h image at 4.8 mm among 4.42 mm images was accepted;
* output maps were written with a bare voxel-size affine (no origin, no orientation).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from reluth.dosimetry.case_dir import load_case
from reluth.dosimetry.image import Grid, Image, read_nifti, resample, write_nifti
from reluth.dosimetry.phantom import small_spec, write_case
from reluth.dosimetry.pipeline import compute_case
from reluth.dosimetry.runner import run_case_dir
from reluth.errors import ValidationError


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_case(tmp_path_factory.mktemp("geom") / "PHANTOM-001", small_spec(16))


def _copy(case_dir: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(case_dir, dest)
    return dest


def _kidney_tia(case: Path) -> float:
    doc = yaml.safe_load((case / "case.yaml").read_text())
    doc["methods"]["voxel_dose"] = ["local"]
    (case / "case.yaml").write_text(yaml.safe_dump(doc))
    return float(compute_case(load_case(case)).summary["vois"]["kidneys"]["tia"]["tia_mbq_h"])


def test_flipped_x_mask_at_the_same_place_gives_the_same_tia(
    case_dir: Path, tmp_path: Path
) -> None:
    reference = _kidney_tia(_copy(case_dir, tmp_path / "ref"))
    flipped = _copy(case_dir, tmp_path / "flipped")
    path = flipped / "masks" / "kidneys.nii.gz"
    img = nib.load(str(path))
    original = np.asarray(img.dataobj).copy()
    data = original[::-1, :, :]
    affine = img.affine.copy()
    # voxel i of the flipped array sits where voxel n-1-i sat: x-axis reversed, origin moved
    affine[:3, 3] = (img.affine @ np.array([data.shape[0] - 1, 0, 0, 1.0]))[:3]
    affine[:3, 0] = -img.affine[:3, 0]
    nib.save(nib.Nifti1Image(data.astype(np.uint8), affine), path)
    assert not np.array_equal(data, original)  # the array really differs
    assert _kidney_tia(flipped) == pytest.approx(reference, rel=1e-9)


def test_time_point_on_another_voxel_size_is_resampled_with_a_note_or_refused(
    case_dir: Path, tmp_path: Path
) -> None:
    case = _copy(case_dir, tmp_path / "vox")
    doc = yaml.safe_load((case / "case.yaml").read_text())
    last = case / doc["spect"][-1]["file"]
    img = nib.load(str(last))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), np.diag([4.8, 4.8, 4.8, 1.0])), last)
    doc["methods"]["voxel_dose"] = ["local"]
    (case / "case.yaml").write_text(yaml.safe_dump(doc))
    result = compute_case(load_case(case)).summary
    notes = [w for w in result["warnings"] if "spect[3].file" in w and "resampled" in w]
    assert notes, result["warnings"]
    doc["geometry"] = {"on_mismatch": "refuse"}
    (case / "case.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ValidationError) as err:
        load_case(case)
    assert err.value.field == "spect[3].file" and "differs from the SPECT grid" in err.value.problem


def test_output_maps_carry_the_spect_affine(case_dir: Path, tmp_path: Path) -> None:
    case = _copy(case_dir, tmp_path / "placed")
    affine = np.array(
        [
            [0.0, 0.0, -4.42 * 24 / 16, 120.0],
            [4.42 * 24 / 16, 0, 0, -80.5],
            [0, 4.42 * 24 / 16, 0, 33.0],
            [0, 0, 0, 1],
        ]
    )
    doc = yaml.safe_load((case / "case.yaml").read_text())
    doc["methods"]["voxel_dose"] = ["local"]
    files = [s["file"] for s in doc["spect"]] + [v["mask"] for v in doc["vois"].values()]
    for f in files:
        img = nib.load(str(case / f))
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj), affine), case / f)
    (case / "case.yaml").write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    run_case_dir(case, out)
    written = nib.load(str(out / "dose_local_gy.nii.gz"))
    np.testing.assert_allclose(written.affine, affine, atol=1e-4)


def test_nifti_round_trip_and_resampling_are_physical(tmp_path: Path) -> None:
    """A mask flipped in memory and resampled back by SimpleITK lands on the same voxels."""
    grid = Grid.from_geometry((6, 7, 8), (2.0, 3.0, 4.0), (-10.0, 5.0, 30.0))
    rng = np.random.default_rng(0)
    mask = Image(rng.random(grid.shape) > 0.6, grid, "mask")
    write_nifti(mask, tmp_path / "m.nii.gz")
    back = read_nifti(tmp_path / "m.nii.gz", "mask", "m")
    assert back.grid.same_as(grid) and np.array_equal(back.array, mask.array)
    flip_affine = grid.affine.copy()
    flip_affine[:3, 0] = -grid.affine[:3, 0]
    flip_affine[:3, 3] = (grid.affine @ np.array([7.0, 0, 0, 1]))[:3]
    flipped = Image(mask.array[:, :, ::-1], Grid(grid.shape, flip_affine), "mask")
    assert np.array_equal(resample(flipped, grid).array, mask.array)
