"""Registration of a time point's CT to the reference time point's CT (SimpleITK), so that
VOIs drawn once apply to every time point: rigid (Euler 3-D) or affine, Mattes mutual
squares of the Hounsfield units (both images are CT of one patient, in one calibrated unit),
regular-step gradient descent over two resolutions, the fixed image sampled whole (small
volumes) or at 32 768 random points with a fixed seed (deterministic), inside the body's
bounding box (air around the patient carries no information).

The fixed image is the reference CT on the reference SPECT grid (what the dose is computed
on), the moving image the other CT on its own grid. The transform maps reference points to
moving points (SimpleITK's convention), so ``image.resample(moving_spect, reference_grid,
transform)`` puts the moving SPECT on the reference grid. The metric before and after and the
transform parameters go into the results, with an overlay image for visual QC.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from reluth.dosimetry.image import Grid, Image, resample
from reluth.dosimetry.notes import messages, note
from reluth.i18n import N_
from reluth.i18n.reasons import invalid

REGISTRATION_KINDS = ("rigid", "affine", "none")
#: Above these the result is flagged for review (not refused): a patient repositioned on the
#: couch moves centimetres, not decimetres.
REVIEW_TRANSLATION_MM = 50.0
REVIEW_ROTATION_DEG = 10.0
#: Fixed images up to this many voxels are sampled whole; larger ones at this many random
#: points (after cropping the fixed image to the body).
SAMPLE_ALL_BELOW = 32_768


@dataclass(frozen=True)
class Registration:
    kind: str
    transform: Any  # SimpleITK transform, reference → moving points
    metric: str
    metric_before: float
    metric_after: float
    translation_mm: tuple[float, float, float]
    rotation_deg: tuple[float, float, float] | None
    iterations: int
    stop_condition: str
    review: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "metric": self.metric,
            "metric_before": self.metric_before,
            "metric_after": self.metric_after,
            "translation_mm": list(self.translation_mm),
            "rotation_deg": None if self.rotation_deg is None else list(self.rotation_deg),
            "iterations": self.iterations,
            "stop_condition": self.stop_condition,
            "review": self.review,
            "review_message": messages([self.review])[0] if self.review else None,
            "parameters": list(self.transform.GetParameters()),
        }


def identity() -> Any:
    import SimpleITK as sitk

    return sitk.Euler3DTransform()


def register(
    reference_ct: Image,
    reference_grid: Grid,
    moving_ct: Image,
    kind: str = "rigid",
    moving_grid: Grid | None = None,
) -> Registration:
    """Transform taking reference points to the moving CT (module docstring). Both CTs are
    first put on SPECT grids (the reference's, and ``moving_grid``, the moving time point's
    SPECT grid in the moving CT's frame): the dose is computed at that resolution, and it
    keeps the registration at a few seconds for 512² CTs."""
    import SimpleITK as sitk

    if kind not in ("rigid", "affine"):
        raise invalid(
            "registration",
            "unaccepted_registration_2",
            N_("{kind}"),
            N_("rigid, affine, none"),
            kind=repr(kind),
        )
    fixed_img = resample(reference_ct, reference_grid)
    fixed = _crop_to_body(sitk.Cast(fixed_img.to_sitk(), sitk.sitkFloat32))
    moving_img = moving_ct if moving_grid is None else resample(moving_ct, moving_grid)
    moving = sitk.Cast(moving_img.to_sitk(), sitk.sitkFloat32)
    centre = fixed.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2.0 for s in fixed.GetSize()])
    initial: Any = sitk.Euler3DTransform() if kind == "rigid" else sitk.AffineTransform(3)
    initial.SetCenter(centre)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    if fixed.GetNumberOfPixels() > SAMPLE_ALL_BELOW:
        # a fixed number of random samples (fixed seed: deterministic) for a large volume
        method.SetMetricSamplingStrategy(method.RANDOM)
        method.SetMetricSamplingPercentage(SAMPLE_ALL_BELOW / fixed.GetNumberOfPixels(), 1)
    else:
        method.SetMetricSamplingStrategy(method.NONE)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0,
        minStep=0.001,
        numberOfIterations=200,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(initial, inPlace=False)
    before = _metric(fixed, moving, initial)
    try:
        result = method.Execute(fixed, moving)
    except RuntimeError as exc:
        raise invalid(
            "registration",
            "simpleitk_failed",
            N_("SimpleITK failed: {exc_name}"),
            N_("overlapping CTs"),
            exc_name=str(exc),
        ) from None
    after = _metric(fixed, moving, result)
    final = result.GetNthTransform(0) if hasattr(result, "GetNthTransform") else result
    translation, rotation = _describe(final, kind)
    review = None
    if max(abs(t) for t in translation) > REVIEW_TRANSLATION_MM or (
        rotation is not None and max(abs(r) for r in rotation) > REVIEW_ROTATION_DEG
    ):
        x, y, z = (Decimal(f"{t:.1f}") for t in translation)
        review = note(
            "dosimetry.registration_large_motion",
            N_("large motion (translation {x}, {y}, {z} mm): check the overlay"),
            x=x,
            y=y,
            z=z,
        )
    if after > before * 1.5:  # clearly worse than where it started
        review = note(
            "dosimetry.registration_worse",
            N_("the metric got worse ({before} → {after}): check the overlay"),
            before=Decimal(f"{before:.4f}"),
            after=Decimal(f"{after:.4f}"),
        )
    return Registration(
        kind,
        final,
        "mean squares of HU differences (HU², lower is better)",
        before,
        after,
        translation,
        rotation,
        int(method.GetOptimizerIteration()),
        method.GetOptimizerStopConditionDescription(),
        review,
    )


def _crop_to_body(img: Any, margin_mm: float = 20.0) -> Any:
    """The fixed image cropped to the patient (voxels above −500 HU) plus a margin: the air
    around the body carries no information and most of a SPECT field of view is air."""
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(img)
    inside = np.argwhere(arr > -500.0)
    if inside.size == 0:
        return img
    spacing = np.array(img.GetSpacing())[::-1]
    pad = np.ceil(margin_mm / spacing).astype(int)
    lo = np.maximum(inside.min(axis=0) - pad, 0)
    hi = np.minimum(inside.max(axis=0) + pad + 1, arr.shape)
    size = (hi - lo)[::-1]
    return sitk.RegionOfInterest(img, [int(x) for x in size], [int(x) for x in lo[::-1]])


def _metric(fixed: Any, moving: Any, transform: Any) -> float:
    import SimpleITK as sitk

    m = sitk.ImageRegistrationMethod()
    m.SetMetricAsMeanSquares()
    m.SetMetricSamplingStrategy(m.NONE)  # every voxel: before and after compare exactly
    m.SetInterpolator(sitk.sitkLinear)
    m.SetInitialTransform(transform)
    return float(m.MetricEvaluate(fixed, moving))


def _describe(
    t: Any, kind: str
) -> tuple[tuple[float, float, float], tuple[float, float, float] | None]:
    import SimpleITK as sitk

    if kind == "rigid":
        e = sitk.Euler3DTransform(t)
        tr = e.GetTranslation()
        ang = tuple(float(np.degrees(a)) for a in (e.GetAngleX(), e.GetAngleY(), e.GetAngleZ()))
        return (float(tr[0]), float(tr[1]), float(tr[2])), (ang[0], ang[1], ang[2])
    a = sitk.AffineTransform(t)
    tr = a.GetTranslation()
    return (float(tr[0]), float(tr[1]), float(tr[2])), None


def overlay_png(
    reference: Image, moving_before: Image, moving_after: Image, path: Path, title: str
) -> None:
    """Reference CT in grey with the moving CT's edges in magenta, before and after, on the
    three central planes (all on the reference grid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def planes(a: np.ndarray) -> list[np.ndarray]:
        k, j, i = (s // 2 for s in a.shape)
        return [a[k], a[:, j, :][::-1], a[:, :, i][::-1]]

    def edges(a: np.ndarray) -> np.ndarray:
        gy, gx = np.gradient(a.astype(np.float32))
        g = np.hypot(gx, gy)
        return g > 0.25 * float(g.max()) if g.size else g > 0  # tissue edges, not noise

    fig, axes = plt.subplots(2, 3, figsize=(9, 6), dpi=80)
    for row, (label, mov) in enumerate((("before", moving_before), ("after", moving_after))):
        for col, (ref_p, mov_p) in enumerate(
            zip(planes(reference.array), planes(mov.array), strict=True)
        ):
            ax = axes[row, col]
            ax.imshow(np.clip(ref_p, -400, 600), cmap="gray")
            e = np.ma.masked_where(~edges(mov_p), np.ones_like(mov_p))
            ax.imshow(e, cmap="spring", alpha=0.8, interpolation="nearest")
            ax.set_title(f"{label} ({('axial', 'coronal', 'sagittal')[col]})", fontsize=8)
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
