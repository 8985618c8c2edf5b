"""The statistics.md reference values on lung.csv, to the printed precision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.conftest import EXAMPLES

from reluth.analysis.survival import cox_ph, group_design, kaplan_meier, logrank

# A copy of shared/data/lung.csv (NCCTG lung cancer data from R's survival package).
LUNG = EXAMPLES / "analysis" / "lung.csv"


@pytest.fixture(scope="module")
def lung() -> pd.DataFrame:
    return pd.read_csv(LUNG)


def _te(d: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return d["time"].to_numpy(float), (d["status"] == 2).to_numpy(float)


def test_median_all_patients_log_transform_matches_r(lung: pd.DataFrame) -> None:
    q = kaplan_meier(*_te(lung), conf_type="log").median
    assert (q.estimate, q.ci) == (310.0, (285.0, 363.0))


def test_median_all_patients_log_log_transform(lung: pd.DataFrame) -> None:
    q = kaplan_meier(*_te(lung)).median  # default: log-log as SAS
    assert (q.estimate, q.ci) == (310.0, (284.0, 361.0))


@pytest.mark.parametrize(
    ("sex", "conf", "expected"),
    [
        (1, "log", (270.0, (212.0, 310.0))),
        (2, "log", (426.0, (348.0, 550.0))),
        (1, "log-log", (270.0, (210.0, 306.0))),
        (2, "log-log", (426.0, (345.0, 524.0))),
    ],
)
def test_median_by_sex(lung: pd.DataFrame, sex: int, conf: str, expected: tuple) -> None:
    q = kaplan_meier(*_te(lung[lung["sex"] == sex]), conf_type=conf).median
    assert (q.estimate, q.ci) == expected


def test_survival_at_365_days(lung: pd.DataFrame) -> None:
    lm = kaplan_meier(*_te(lung)).survival_at(365)
    assert round(lm.survival, 3) == 0.409
    assert round(lm.std_err, 4) == 0.0358


def test_logrank_by_sex(lung: pd.DataFrame) -> None:
    res = logrank(*_te(lung), lung["sex"].to_numpy())
    assert round(res.chisq, 4) == 10.3267
    assert res.df == 1
    assert round(res.p, 5) == 0.00131


def test_cox_efron_by_sex(lung: pd.DataFrame) -> None:
    x, names, ref = group_design(lung["sex"].to_numpy())
    assert ref == "1" and names == ["2 vs 1"]
    term = cox_ph(*_te(lung), x, names, ties="efron").terms[0]
    assert round(term.coef, 4) == -0.5310
    assert round(term.hr, 4) == 0.5880
    assert round(term.se, 4) == 0.1672
    assert round(term.p, 5) == 0.00149


def test_cox_breslow_is_default_and_matches(lung: pd.DataFrame) -> None:
    x, names, _ = group_design(lung["sex"].to_numpy())
    res = cox_ph(*_te(lung), x, names)
    assert res.ties == "breslow"
    assert round(res.terms[0].coef, 4) == -0.5304
