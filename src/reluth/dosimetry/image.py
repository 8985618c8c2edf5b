"""Images as physical objects: a voxel array with its grid (a 4×4 affine from voxel index to
patient coordinates, in mm) and its unit.

Conventions, those of DICOM and SimpleITK: the array is indexed ``[k, j, i]`` (slice, row,
column; what ``SimpleITK.GetArrayFromImage`` returns) and the affine maps the column vector
``(i, j, k, 1)`` to patient coordinates ``(x, y, z, 1)`` in the DICOM patient system (LPS: x
to the patient's left, y posterior, z head; PS3.3 C.7.6.2.1.1). NIfTI stores RAS, converted on
reading and writing. Resampling is SimpleITK's (``sitk.Resample``; nearest neighbour for masks,
linear for images): nothing here interpolates by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reluth.dosimetry.notes import note, quantity
from reluth.i18n import N_
from reluth.i18n.reasons import Word, invalid

#: The tolerance, in mm, under which two grids are the same (voxel centres that far apart at
#: most, anywhere in the volume). A hundredth of a millimetre absorbs the rounding of DICOM
#: decimal strings (16 characters) without hiding any real difference in voxel size or position.
SAME_GRID_TOLERANCE_MM = 0.01
_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
UNITS = ("Bq/mL", "counts", "HU", "mask", "Gy", "Bq·h/mL", "g/mL", "1")


@dataclass(frozen=True)
class Grid:
    """Voxel grid: ``shape`` in array order (nk, nj, ni) and the index→LPS-mm affine."""

    shape: tuple[int, int, int]
    affine: NDArray[np.float64]

    def __post_init__(self) -> None:
        a = np.asarray(self.affine, dtype=np.float64)
        if a.shape != (4, 4) or not np.all(np.isfinite(a)) or abs(np.linalg.det(a[:3, :3])) < 1e-9:
            raise invalid(
                "affine",
                "not_invertible_matrix",
                N_("not an invertible 4×4 matrix"),
                N_("an image affine"),
            )
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise invalid(
                "shape",
                "unaccepted_shape",
                N_("{shape}"),
                N_("three positive sizes"),
                shape=str(self.shape),
            )
        object.__setattr__(self, "affine", a)
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    @classmethod
    def from_geometry(
        cls,
        shape: tuple[int, int, int],
        spacing_mm: tuple[float, float, float],
        origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
        direction: NDArray[np.float64] | None = None,
    ) -> Grid:
        """From spacing along (i, j, k), the centre of voxel (0, 0, 0) and the direction
        cosines (columns: the i, j, k axes in LPS; identity by default)."""
        d = np.eye(3) if direction is None else np.asarray(direction, dtype=np.float64)
        a = np.eye(4)
        a[:3, :3] = d @ np.diag(spacing_mm)
        a[:3, 3] = origin_mm
        return cls(shape, a)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        s = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(s[0]), float(s[1]), float(s[2]))

    @property
    def origin_mm(self) -> tuple[float, float, float]:
        o = self.affine[:3, 3]
        return (float(o[0]), float(o[1]), float(o[2]))

    @property
    def direction(self) -> NDArray[np.float64]:
        return np.asarray(self.affine[:3, :3] / np.array(self.spacing_mm), dtype=np.float64)

    @property
    def voxel_volume_ml(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    def corners_mm(self) -> NDArray[np.float64]:
        """Patient coordinates of the eight corner voxel centres (rows)."""
        nk, nj, ni = self.shape
        idx = np.array(
            [[i, j, k, 1.0] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)]
        )
        return np.asarray((self.affine @ idx.T).T[:, :3], dtype=np.float64)

    def difference_mm(self, other: Grid) -> float | None:
        """Largest distance between corresponding corner voxel centres; None if the shapes
        differ (then no voxel corresponds)."""
        if self.shape != other.shape:
            return None
        return float(np.max(np.linalg.norm(self.corners_mm() - other.corners_mm(), axis=1)))

    def same_as(self, other: Grid, tolerance_mm: float = SAME_GRID_TOLERANCE_MM) -> bool:
        d = self.difference_mm(other)
        return d is not None and d <= tolerance_mm

    def describe(self) -> str:
        sp = ", ".join(f"{s:.4g}" for s in self.spacing_mm)
        org = ", ".join(f"{o:.4g}" for o in self.origin_mm)
        return f"{self.shape[::-1]} voxels of ({sp}) mm at ({org}) mm"

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape_kji": list(self.shape),
            "affine_lps_mm": [[float(x) for x in row] for row in self.affine],
            "spacing_mm": list(self.spacing_mm),
        }

    def check_orthonormal(self, what: str) -> None:
        """SimpleITK (and every viewer) needs orthogonal axes; a sheared grid is refused."""
        d = self.direction
        if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
            raise invalid(
                what,
                "sheared_non_orthogonal_voxel_axes",
                N_("sheared or non-orthogonal voxel axes"),
                N_("orthogonal axes"),
            )


@dataclass(frozen=True)
class Image:
    """A 3-D image in physical space with its unit (one of ``UNITS``)."""

    array: NDArray[Any]
    grid: Grid
    unit: str

    def __post_init__(self) -> None:
        if tuple(self.array.shape) != self.grid.shape:
            raise invalid(
                "image",
                "array_vs_grid",
                N_("array {shape} vs grid {shape2}"),
                shape=str(self.array.shape),
                shape2=str(self.grid.shape),
            )
        if self.unit not in UNITS:
            raise invalid(
                "unit",
                "unaccepted_unit",
                N_("{unit}"),
                N_("{units}"),
                unit=repr(self.unit),
                units=", ".join(UNITS),
            )

    def with_array(self, array: NDArray[Any], unit: str | None = None) -> Image:
        return Image(array, self.grid, unit or self.unit)

    def to_sitk(self) -> Any:
        import SimpleITK as sitk

        self.grid.check_orthonormal(self.unit)
        arr = self.array.astype(np.uint8) if self.array.dtype == bool else self.array
        img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
        img.SetSpacing(self.grid.spacing_mm)
        img.SetOrigin(self.grid.origin_mm)
        img.SetDirection(tuple(float(x) for x in self.grid.direction.ravel()))
        return img

    @classmethod
    def from_sitk(cls, img: Any, unit: str) -> Image:
        import SimpleITK as sitk

        arr = sitk.GetArrayFromImage(img)
        direction = np.array(img.GetDirection(), dtype=np.float64).reshape(3, 3)
        grid = Grid.from_geometry(
            tuple(arr.shape), tuple(img.GetSpacing()), tuple(img.GetOrigin()), direction
        )
        if unit == "mask":
            arr = arr > 0
        return cls(arr, grid, unit)


def grid_to_sitk_reference(grid: Grid) -> Any:
    import SimpleITK as sitk

    grid.check_orthonormal("reference grid")
    ref = sitk.Image(grid.shape[2], grid.shape[1], grid.shape[0], sitk.sitkUInt8)
    ref.SetSpacing(grid.spacing_mm)
    ref.SetOrigin(grid.origin_mm)
    ref.SetDirection(tuple(float(x) for x in grid.direction.ravel()))
    return ref


def resample(image: Image, target: Grid, transform: Any = None) -> Image:
    """``image`` on ``target`` by SimpleITK: nearest neighbour for masks, linear otherwise;
    outside the source, 0 (and -1000 HU for CT). ``transform`` maps target points to source
    points (SimpleITK's convention; a registration result)."""
    import SimpleITK as sitk

    mask = image.unit == "mask"
    interp = sitk.sitkNearestNeighbor if mask else sitk.sitkLinear
    default = -1000.0 if image.unit == "HU" else 0.0
    src = image.to_sitk()
    if not mask:
        src = sitk.Cast(src, sitk.sitkFloat32)
    out = sitk.Resample(
        src,
        grid_to_sitk_reference(target),
        transform if transform is not None else sitk.Transform(),
        interp,
        default,
    )
    res = Image.from_sitk(out, image.unit)
    # the reference grid is kept exactly (SimpleITK stores it as doubles but rebuilds it)
    return Image(res.array, target, image.unit)


@dataclass(frozen=True)
class GridPolicy:
    """What to do with an input whose grid differs from its time point's SPECT: resample it
    (and say so in the results) or refuse it. Never use it as is."""

    on_mismatch: str = "resample"  # resample | refuse

    def __post_init__(self) -> None:
        if self.on_mismatch not in ("resample", "refuse"):
            raise invalid(
                "geometry.on_mismatch",
                "unaccepted_geometry_on_mismatch",
                N_("{on_mismatch}"),
                N_("resample, refuse"),
                on_mismatch=repr(self.on_mismatch),
            )


def onto(
    image: Image,
    target: Grid,
    what: str,
    policy: GridPolicy,
    notes: list[str],
) -> Image:
    """``image`` on ``target``: itself when the grids agree, else resampled (noted) or refused
    (ValidationError naming ``what``), as ``policy`` says."""
    if image.grid.same_as(target):
        return Image(image.array, target, image.unit)
    diff = image.grid.difference_mm(target)
    apart = (
        note("dosimetry.grid_other_shape", N_("a different shape"))
        if diff is None
        else note(
            "dosimetry.grid_apart",
            N_("corner voxels {distance} apart"),
            distance=quantity(diff, "mm"),
        )
    )
    if policy.on_mismatch == "refuse":
        raise invalid(
            what,
            "grid_differs_from_spect_grid",
            N_("grid {describe} differs from the SPECT grid {describe2} ({how})"),
            N_("an input on its time point's SPECT grid, or geometry.on_mismatch: resample"),
            describe=image.grid.describe(),
            describe2=target.describe(),
            how=apart.reason,
        )
    notes.append(
        note(
            "dosimetry.resampled",
            N_("{what}: resampled onto the SPECT grid ({interpolation}; {how})"),
            what=what,
            interpolation=Word(N_("nearest neighbour") if image.unit == "mask" else N_("linear")),
            how=apart.reason,
        )
    )
    return resample(image, target)


# ---------------------------------------------------------------------------- NIfTI (nibabel)


def read_nifti(path: Path, unit: str, what: str) -> Image:
    """A NIfTI image with its sform/qform affine (RAS, converted to LPS)."""
    import nibabel as nib

    try:
        img: Any = nib.load(str(path))
        data = np.asarray(img.dataobj)
        affine_ras = np.asarray(img.affine, dtype=np.float64)
    except (OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise invalid(
            what,
            "cannot_read",
            N_("cannot read {name}: {exc_name}"),
            N_("NIfTI"),
            name=Path(path).name,
            exc_name=str(exc),
        ) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise invalid(what, "d_image", N_("{ndim}-D image"), N_("a 3-D image"), ndim=data.ndim)
    arr = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    if unit == "mask":
        arr = arr > 0.5
    grid = Grid(tuple(arr.shape), _LPS_FROM_RAS @ affine_ras)
    return Image(arr, grid, unit)


def nifti_affine(grid: Grid) -> NDArray[np.float64]:
    """The RAS affine NIfTI wants for a grid."""
    return np.asarray(_LPS_FROM_RAS @ grid.affine, dtype=np.float64)


def write_nifti(image: Image, path: Path) -> None:
    import nibabel as nib

    data = np.transpose(np.asarray(image.array), (2, 1, 0))
    if data.dtype == bool:
        data = data.astype(np.uint8)
    elif data.dtype.kind == "f":
        data = data.astype(np.float32)
    img = nib.Nifti1Image(data, nifti_affine(image.grid))
    img.set_sform(nifti_affine(image.grid), code=1)
    img.set_qform(nifti_affine(image.grid), code=1)
    nib.save(img, str(path))
