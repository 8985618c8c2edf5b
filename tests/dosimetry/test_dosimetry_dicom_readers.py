"""DICOM readers of the dosimetry pipeline, each against an independent reference: SPECT
values against the phantom's concentration for every DecayCorrection and unit, CT geometry
against SimpleITK's own series reader, RTSTRUCT rasterisation against the phantom's voxels,
SEG through highdicom, the ROI-name table."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest

from reluth.dosimetry import synthetic_study as ss
from reluth.dosimetry.dicom_images import (
    parse_calibrations,
    pick_calibration,
    read_ct,
    read_spect,
)
from reluth.dosimetry.image import GridPolicy
from reluth.dosimetry.vois import (
    default_organ_table,
    map_names,
    masks_from_dataset,
    rasterise_contours,
)
from reluth.errors import ValidationError

SPEC = ss.StudySpec(matrix=16, voxel_mm=8.0, ct_matrix=48, ct_pixel_mm=3.0)
CAL = parse_calibrations(ss.calibration_doc(SPEC))


def _spect(tp: ss.TimePoint) -> pydicom.Dataset:
    return ss.spect_dataset(SPEC, tp, "1.2.3", "1.2.3.4")


@pytest.mark.parametrize(
    "tp",
    [
        ss.TimePoint(24.0, "BQML", "START"),
        ss.TimePoint(24.0, "BQML", "ADMIN"),
        ss.TimePoint(24.0, "BQML", "NONE"),
        ss.TimePoint(96.0, "CNTS", "NONE"),
        ss.TimePoint(96.0, "CNTS", "START", real_world_mapping=True),
        ss.TimePoint(168.0, "BQML", "ADMIN", real_world_mapping=True),
    ],
    ids=lambda tp: (
        f"{tp.units}-{tp.decay_correction}-{'rwvm' if tp.real_world_mapping else 'rescale'}"
    ),
)
def test_spect_is_bq_per_ml_at_the_acquisition_start(tp: ss.TimePoint) -> None:
    s = read_spect(_spect(tp), CAL)
    truth = ss.concentration(ss.spect_grid(SPEC, tp), tp.hours, tp.shift_mm)
    inside = truth > 1e4  # organs: quantisation of uint16 below 1e-4 there
    np.testing.assert_allclose(s.image.array[inside], truth[inside], rtol=2e-4)
    assert s.hours_after_injection == pytest.approx(tp.hours)
    assert s.image.grid.same_as(ss.spect_grid(SPEC, tp))


def test_decay_correction_applied_once_not_twice() -> None:
    """An ADMIN-corrected image read as if it were START would be e^(λt) too high (+52 % at
    96 h for Lu-177): the reader's factor is exactly e^(−λt)."""
    s = read_spect(_spect(ss.TimePoint(96.0, "BQML", "ADMIN")), CAL)
    assert s.conversion.decay_factor == pytest.approx(math.exp(-math.log(2) * 96 / 159.528), 1e-9)


def test_counts_need_the_calibration_of_that_camera_and_date() -> None:
    ds = _spect(ss.TimePoint(24.0, "CNTS", "NONE"))
    with pytest.raises(ValidationError) as err:
        read_spect(ds, ())
    assert "no calibration for camera SN-44871 with collimator MEGP" in err.value.problem
    when = SPEC.patient.injection.date()
    assert float(pick_calibration(CAL, "SN-44871", "megp", when).cps_per_mbq) == pytest.approx(11.6)
    old = when - dt.timedelta(days=100)  # only the older calibration existed then
    assert float(pick_calibration(CAL, "SN-44871", "MEGP", old).cps_per_mbq) == pytest.approx(15.08)


@pytest.mark.parametrize(
    ("attr", "value", "field"),
    [
        ("DecayCorrection", "WEIRD", "DecayCorrection"),
        ("Units", "SUV", "Units"),
        ("ImageType", ["ORIGINAL", "PRIMARY", "STATIC"], "ImageType"),
    ],
)
def test_spect_header_problems_are_named(attr: str, value: object, field: str) -> None:
    ds = _spect(ss.TimePoint(24.0))
    setattr(ds, attr, value)
    with pytest.raises(ValidationError) as err:
        read_spect(ds, CAL)
    assert err.value.field == field


def test_ct_geometry_agrees_with_simpleitk(tmp_path: Path) -> None:
    import SimpleITK as sitk

    tp = ss.TimePoint(24.0)
    cts = ss.ct_datasets(SPEC, tp, "1.2.3", "1.2.3.4")
    paths = []
    for ds in reversed(cts):  # written in the wrong order on purpose
        p = tmp_path / f"{ds.InstanceNumber}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    ct = read_ct([pydicom.dcmread(p) for p in paths])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sorted(map(str, paths), key=lambda s: int(Path(s).stem)))
    ref = reader.Execute()
    np.testing.assert_allclose(ct.image.grid.origin_mm, ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(ct.image.grid.spacing_mm, ref.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(ct.image.array, sitk.GetArrayFromImage(ref), atol=0.5)
    missing = [pydicom.dcmread(p) for p in paths if p.stem != "5"]
    with pytest.raises(ValidationError, match="slice spacing varies"):
        read_ct(missing)


def test_rtstruct_rasterised_on_the_spect_grid_and_names_mapped() -> None:
    tp = SPEC.time_points[0]
    cts = ss.ct_datasets(SPEC, tp, "1.2.3", "1.2.3.4")
    rs = ss.rtstruct_dataset(SPEC, cts)
    grid = ss.spect_grid(SPEC, tp)
    notes: list[str] = []
    raw, source = masks_from_dataset(rs, grid, GridPolicy(), notes)
    named = {n.entry.voi: n for n in map_names(raw, default_organ_table(), source, notes)}
    truth = ss.object_masks(grid)
    for voi in ("kidney_left", "kidney_right", "liver", "spleen", "lesion_1"):
        got = named[voi].mask.array
        assert abs(int(got.sum()) - int(truth[voi].sum())) <= max(2, 0.03 * truth[voi].sum()), voi
        assert (got & truth[voi]).sum() >= 0.9 * truth[voi].sum(), voi
    assert named["kidney_left"].roi_name == "Rein gauche"


def test_rtstruct_hole_and_non_axial_contours() -> None:
    grid = ss.spect_grid(SPEC, SPEC.time_points[0])
    z = grid.origin_mm[2] + 8 * 8.0
    outer = ss.ellipse_contours(ss.Obj("a", "a", (0, 0, z), (40, 40, 1), 1, 1, 0), [z], (0, 0, 0))
    inner = ss.ellipse_contours(ss.Obj("b", "b", (0, 0, z), (20, 20, 1), 1, 1, 0), [z], (0, 0, 0))
    ring = rasterise_contours(outer + inner, grid, "ring")
    disc = rasterise_contours(outer, grid, "disc")
    hole = rasterise_contours(inner, grid, "hole")
    assert ring.sum() == disc.sum() - hole.sum() > 0
    tilted = outer[0].copy()
    tilted[:, 2] += np.linspace(0, 10, len(tilted))
    with pytest.raises(ValidationError, match="not parallel"):
        rasterise_contours([tilted], grid, "tilted")


def test_seg_read_by_highdicom_on_the_spect_grid() -> None:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    tp = SPEC.time_points[0]
    cts = ss.ct_datasets(SPEC, tp, "1.2.3", "1.2.3.4")
    for i, ds in enumerate(cts):  # highdicom wants the source images' required attributes
        ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[str(i)])
    ct = read_ct(cts)
    truth_ct = ss.object_masks(ct.image.grid)
    order = np.argsort([float(d.ImagePositionPatient[2]) for d in cts])
    label = np.stack([truth_ct["kidney_left"][k] for k in range(len(cts))]).astype(np.uint8)
    desc = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Kidney left",
        segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Kidney,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=[cts[i] for i in order],
        pixel_array=label[order],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[desc],
        series_instance_uid=hd.UID(),
        series_number=7,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    )
    grid = ss.spect_grid(SPEC, tp)
    notes: list[str] = []
    raw, source = masks_from_dataset(seg, grid, GridPolicy(), notes)
    assert source == "SEG" and any("resampled" in n for n in notes)
    named = map_names(raw, default_organ_table(), source, notes)
    got = named[0].mask.array
    truth = ss.object_masks(grid)["kidney_left"]
    assert named[0].entry.voi == "kidney_left"
    # nearest neighbour from 3 mm to 8 mm voxels: only the boundary voxels may differ
    dice = 2 * (got & truth).sum() / (got.sum() + truth.sum())
    assert dice >= 0.75 and abs(int(got.sum()) - int(truth.sum())) <= 0.2 * truth.sum()
    with pytest.raises(ValidationError, match="differs from the SPECT grid"):
        masks_from_dataset(seg, grid, GridPolicy("refuse"), [])


def test_organ_table_folds_names_and_refuses_two_rois_for_one_organ() -> None:
    table = default_organ_table()
    assert table.lookup("REIN_G").voi == "kidney_left"  # type: ignore[union-attr]
    assert table.lookup("Rein droit").voi == "kidney_right"  # type: ignore[union-attr]
    assert table.lookup("Lésion-2").voi == "lesion_2"  # type: ignore[union-attr]
    assert table.lookup("spinal cord") is None
    grid = ss.spect_grid(SPEC, SPEC.time_points[0])
    from reluth.dosimetry.image import Image

    m = Image(np.ones(grid.shape, bool), grid, "mask")
    with pytest.raises(ValidationError, match="one ROI per volume"):
        map_names({"Liver": (m, ""), "Foie": (m, "")}, table, "RTSTRUCT", [])
    notes: list[str] = []
    map_names({"Liver": (m, ""), "spinal cord": (m, "")}, table, "RTSTRUCT", notes)
    assert any("spinal cord" in n for n in notes)


def test_spect_on_another_voxel_size_in_one_frame_is_resampled() -> None:
    spec = replace(SPEC, time_points=(ss.TimePoint(24.0), ss.TimePoint(168.0, voxel_mm=8.6)))
    a = read_spect(ss.spect_dataset(spec, spec.time_points[1], "1", "2"), CAL)
    assert a.image.grid.spacing_mm[0] == pytest.approx(8.6)
