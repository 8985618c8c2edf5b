"""Missing-data codes reach the analysis datasets: a QoL visit not done (registry form `qol` at
a visit, code ND with its reason) gives ADQS rows with AVAL missing and the code in MISSCD and
its reason in MISSRSN, never a score, never a baseline; the CSV door refuses an empty score
without a code."""

from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from tests.analysis.test_from_database import PROTOCOL, TODAY, _populate
from tests.store.storekit import NURSE, work

from reluth.analysis.datasets import from_database
from reluth.db.engine import make_engine
from reluth.errors import ValidationError
from reluth.forms import service as forms


def test_qol_not_done_is_kept_as_missing_with_its_code(db_url: str) -> None:
    codes = _populate(db_url)
    engine = make_engine(db_url)
    with work(engine, NURSE, today=TODAY) as ctx:
        forms.record_missing(
            ctx, "qol", "ND", "patient too ill to answer", patient_code=codes[2],
            visit_code="QOL-W24",
        )  # fmt: skip
    engine.dispose()
    ds = from_database(db_url, cutoff=dt.date(2025, 12, 31), protocol=PROTOCOL)
    adqs = ds.adqs
    missing = adqs[adqs["MISSCD"].notna()]
    assert set(missing["USUBJID"]) == {codes[2]} and set(missing["MISSCD"]) == {"ND"}
    assert set(missing["MISSRSN"]) == {"patient too ill to answer"}
    assert missing["AVAL"].map(math.isnan).all() and missing["ANL01FL"].isna().all()
    assert {"QL2", "PF2"} <= set(missing["PARAMCD"]) and len(missing) > 15
    assert (missing["ADY"] == 168).all()  # dated at the visit's target day (week 24)
    scored = adqs[adqs["MISSCD"].isna()]
    assert scored["AVAL"].notna().all()
    assert "MISSCD" in ds.variables["adqs"] and "MISSRSN" in ds.variables["adqs"]


def test_csv_door_refuses_an_empty_score_without_a_code(tmp_path: Path) -> None:
    from reluth.analysis.datasets import from_csv_dir

    source = Path(__file__).resolve().parents[2] / "examples" / "analysis" / "trial"
    for f in source.iterdir():
        shutil.copy(f, tmp_path / f.name)
    qol = pd.read_csv(tmp_path / "qol.csv", dtype=str)
    qol.loc[0, "score"] = ""
    qol.to_csv(tmp_path / "qol.csv", index=False)
    with pytest.raises(ValidationError, match=r"qol\.score: empty"):
        from_csv_dir(tmp_path, protocol=PROTOCOL)
    qol["missing_code"] = ["ND"] + [""] * (len(qol) - 1)
    qol["missing_reason"] = ["not done"] + [""] * (len(qol) - 1)
    qol.to_csv(tmp_path / "qol.csv", index=False)
    adqs = from_csv_dir(tmp_path, protocol=PROTOCOL).adqs
    assert list(adqs.loc[adqs["MISSCD"].notna(), "MISSCD"]) == ["ND"]
