"""Issue 18: the refusals a physicist or a statistician meets (inputs, the case directory, the
DICOM calibration, VOIs, fits; analysis and simulation inputs) carry a stable code and are
written in the reader's language; their English (``message``, the CLI's ``--json``) is the
wording they had, and a refusal said of a wider input (``vois.liver``, ``case X``) keeps its
code and its translation."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reluth.analysis.survival import kaplan_meier, logrank
from reluth.dosimetry import kinetics
from reluth.dosimetry.case_dir import read_case_yaml
from reluth.dosimetry.dicom_images import Calibration, pick_calibration
from reluth.dosimetry.image import Grid, Image
from reluth.dosimetry.pipeline import Methods, voi_tia
from reluth.dosimetry.runner import run_case_dir
from reluth.dosimetry.vois import default_organ_table, map_names
from reluth.errors import ReluthError, ValidationError
from reluth.i18n import use_locale
from reluth.i18n.messages import describe


def _refused(call, *args, **kwargs) -> ReluthError:  # type: ignore[no-untyped-def]
    with pytest.raises(ReluthError) as info:
        call(*args, **kwargs)
    return info.value


def _in(lang: str, exc: ReluthError) -> str:
    with use_locale(lang):
        return describe(exc)


def test_a_fit_with_too_few_points_is_refused_in_french() -> None:
    exc = _refused(kinetics.fit_model, "bi", [4.0, 24.0], [10.0, 5.0])
    assert isinstance(exc, ValidationError) and exc.code == "model_needs_least_time_points"
    assert exc.message == (
        "times_h: model 'bi' needs at least 4 time points, got 2 (accepted: >= 4 time points)"
    )
    assert _in("en", exc) == exc.message
    assert _in("fr", exc) == (
        "times_h : le modèle 'bi' demande au moins 4 temps, 2 donnés (accepté : >= 4 temps)"
    )


def test_a_refusal_said_of_a_voi_keeps_its_code_and_french() -> None:
    """The pipeline names the VOI before the field (``vois.liver.…``): code and reason kept."""
    exc = _refused(voi_tia, "madsen", (96.0,), np.array([5.0]), Methods(), None, "vois.liver", None)
    assert isinstance(exc, ValidationError)
    assert exc.field == "vois.liver.madsen_effective_half_life_h" and exc.code == "missing"
    assert exc.message.startswith("vois.liver.madsen_effective_half_life_h: missing")
    french = _in("fr", exc)
    assert french.startswith("vois.liver.madsen_effective_half_life_h : manquant")
    assert "des heures > 0 pour madsen" in french


def test_a_case_directory_without_case_yaml_names_the_case_in_french(tmp_path: Path) -> None:
    exc = _refused(read_case_yaml, tmp_path)
    assert exc.code == "not_found" and "case.yaml: not found in" in exc.message
    assert _in("fr", exc).startswith("case.yaml : introuvable dans")
    wrapped = _refused(run_case_dir, tmp_path, tmp_path / "out")
    assert wrapped.code == "not_found"
    assert wrapped.message.startswith(f"case {tmp_path.name}: case.yaml: not found in")
    assert _in("fr", wrapped).startswith(f"case {tmp_path.name}: case.yaml : introuvable dans")


def test_a_camera_without_calibration_is_refused_in_french() -> None:
    cal = Calibration("CAM-1", "MEGP", Decimal("9.6"), dt.date(2026, 3, 1))
    exc = _refused(pick_calibration, (cal,), "CAM-2", "MEGP", dt.date(2026, 5, 4))
    assert exc.code == "no_calibration_camera_collimator_measured"
    assert exc.message == (
        "calibration: no calibration for camera CAM-2 with collimator MEGP measured on or "
        "before 2026-05-04 (known: CAM-1/MEGP) (accepted: the centre's calibration of that "
        "camera and collimator)"
    )
    french = _in("fr", exc)
    assert "aucun étalonnage de la caméra CAM-2 avec le collimateur MEGP" in french
    assert "l'étalonnage du centre pour cette caméra et ce collimateur" in french
    with use_locale("fr"):  # the calibration used is described in French too (the report)
        assert cal.describe().reason.render() == (
            "9,6 cps/MBq pour la caméra CAM-1 avec le collimateur MEGP, mesuré le 01/03/2026"
        )


def test_rois_that_name_no_organ_are_refused_in_french() -> None:
    grid = Grid.from_geometry((2, 2, 2), (4.0, 4.0, 4.0))
    mask = Image(np.ones((2, 2, 2)), grid, "mask")
    exc = _refused(map_names, {"spinal cord": (mask, "")}, default_organ_table(), "RTSTRUCT", [])
    assert exc.code == "no_roi_maps_organ_tumour"
    assert exc.message == (
        "RTSTRUCT: no ROI maps to an organ or tumour (accepted: ROI names in the organ table)"
    )
    assert _in("fr", exc) == (
        "RTSTRUCT : aucune ROI ne correspond à un organe ou une tumeur "
        "(accepté : des noms de ROI de la table des organes)"
    )


def test_survival_refusals_read_in_french() -> None:
    exc = _refused(logrank, [1.0, 2.0], [1, 0], ["A"])
    assert exc.code == "length_differs_from_time"
    assert exc.message == "group: length differs from time (accepted: one group per row)"
    assert "longueur différente de celle du temps" in _in("fr", exc)
    bad = _refused(kaplan_meier, [1.0], [1], conf_type="nope")
    assert "inconnu : 'nope'" in _in("fr", bad) and "unknown 'nope'" in bad.message


@given(st.integers(1, 4), st.sampled_from(["mono", "bi_uptake", "bi", "tri"]))
def test_too_few_points_is_refused_in_both_languages(n: int, model: str) -> None:
    """For any model and too few points, English keeps the engine's wording and French has none
    of it."""
    times = [4.0, 24.0, 96.0, 168.0][: min(n, kinetics.n_params(model) - 1)]
    with pytest.raises(ValidationError) as info:
        kinetics.fit_model(model, times, [10.0] * len(times))
    exc = info.value
    k = kinetics.n_params(model)
    assert exc.message == (
        f"times_h: model {model!r} needs at least {k} time points, got {len(times)} "
        f"(accepted: >= {k} time points)"
    )
    french = _in("fr", exc)
    assert "needs at least" not in french and f"demande au moins {k} temps" in french
