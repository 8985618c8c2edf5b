"""Small synthetic Lu-177 SPECT/CT exports (32x32 SPECT, a few 32x32 CT slices) for the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from reluth.imaging.deid import DeidSettings
from reluth.imaging.profile import RELUTH_OPTIONS
from reluth.imaging.synthetic import SyntheticOptions, SyntheticPatient, write_patient

KEY = b"test-site-key-0123456789abcdef-not-a-real-secret"
PATIENT = "C07-0012"
OTHER_PATIENT = "C03-0101"
IDENTIFIERS = ("DUPONT", "IPP0048213", "NULLEPART", "MARTIN", "BERNARD", "PETIT", "LILAS")


def small_options(**kw: object) -> SyntheticOptions:
    base: dict[str, object] = dict(matrix=32, ct_slices=3, ct_size=32, timepoints_h=(4.0, 24.0))
    base.update(kw)
    return SyntheticOptions(**base)  # type: ignore[arg-type]


def settings(patient_id: str = PATIENT, key: bytes = KEY, cycle: int | None = 3) -> DeidSettings:
    return DeidSettings(key=key, patient_id=patient_id, options=RELUTH_OPTIONS, cycle=cycle)


@pytest.fixture(scope="session")
def raw_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("raw") / "export"
    write_patient(root, SyntheticPatient(), small_options())
    return root
