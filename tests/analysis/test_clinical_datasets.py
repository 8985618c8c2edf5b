"""ADCM, ADMH and the per-protocol flag from the clinical forms: through the services into the
store (both backends) and out of the database door, and from optional CSV files (the CSV door);
each in the exports and ``variables.json``."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from tests.analysis.test_from_database import PROTOCOL, TODAY, _populate
from tests.store.storekit import NURSE, work

from reluth.analysis.datasets import from_csv_dir, from_database
from reluth.analysis.exports import export_all
from reluth.clinical import service as clinical
from reluth.db.engine import make_engine
from reluth.errors import ValidationError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "analysis" / "trial"
CUTOFF = dt.date(2025, 12, 31)


def _forms(url: str, codes: list[str]) -> None:
    engine = make_engine(url)
    with work(engine, NURSE, today=TODAY) as ctx:
        clinical.record_conmed(
            ctx,
            codes[0],
            {"drug_name": "Lanreotide", "atc_code": "H01CB03", "indication": "carcinoid",
             "dose": "120", "unit": "mg", "route": "subcutaneous", "start_date": "2023-01-10",
             "ongoing": True},
        )  # fmt: skip
        clinical.record_conmed(
            ctx,
            codes[0],
            {"drug_name": "Ondansetron", "indication": "nausea", "route": "oral",
             "start_date": "2026-01-01", "stop_date": "2026-01-01"},
        )  # fmt: skip  # after the cut-off: left out
        clinical.record_medical_history(
            ctx,
            codes[1],
            {"condition": "Hypertension", "start_date": "2012-05-01", "ongoing": True},
        )
        for code, severity, day in (
            (codes[2], "major", "2025-06-01"),
            (codes[3], "minor", "2025-06-01"),
            (codes[4], "major", "2026-01-01"),  # after the cut-off: not counted
        ):
            clinical.record_deviation(
                ctx,
                code,
                {"category": "eligibility", "severity": severity, "deviation_date": day,
                 "description": "Inclusion criterion not documented"},
            )  # fmt: skip
    engine.dispose()


def test_adcm_admh_and_pprotfl_from_the_database(db_url: str, tmp_path: Path) -> None:
    codes = _populate(db_url)
    before = from_database(db_url, cutoff=CUTOFF, protocol=PROTOCOL).adsl.set_index("USUBJID")
    _forms(db_url, codes)
    ds = from_database(db_url, cutoff=CUTOFF, protocol=PROTOCOL)
    (cm,) = ds.adcm.to_dict("records")
    assert cm["USUBJID"] == codes[0] and cm["CMTRT"] == "Lanreotide"
    assert cm["CMCLASCD"] == "H01CB03" and cm["CMDOSE"] == Decimal("120")
    assert cm["ASTDT"] == dt.date(2023, 1, 10) and cm["CMONGO"] == "Y"
    assert cm["PREFL"] == "Y" and cm["ONTRTFL"] == "Y"
    assert cm["SRCID"].startswith("concomitant medication ")
    (mh,) = ds.admh.to_dict("records")
    assert (mh["USUBJID"], mh["MHTERM"], mh["MHONGO"]) == (codes[1], "Hypertension", "Y")
    adsl = ds.adsl.set_index("USUBJID")
    assert adsl["MAJDVFL"].to_dict() == {c: "Y" if c == codes[2] else "N" for c in codes}
    # the major deviation takes its subject out of the per-protocol population; nobody else moves
    assert before.loc[codes[2], "PPROTFL"] == "Y" and adsl.loc[codes[2], "PPROTFL"] == "N"
    others = [c for c in codes if c != codes[2]]
    assert adsl.loc[others, "PPROTFL"].tolist() == before.loc[others, "PPROTFL"].tolist()
    out = tmp_path / "datasets"
    export_all(ds, out)
    for name in ("adcm", "admh"):
        assert (out / f"{name}.csv").exists() and (out / f"{name}.xpt").exists()
    described = json.loads((out / "variables.json").read_text(encoding="utf-8"))["datasets"]
    names = {name: {v["name"] for v in d["variables"]} for name, d in described.items()}
    assert {"CMTRT", "CMCLASCD", "ONTRTFL"} <= names["adcm"] and "MHTERM" in names["admh"]
    assert "MAJDVFL" in names["adsl"]
    assert described["adcm"]["rows"] == 1


def _csv_dir(tmp_path: Path) -> Path:
    base = tmp_path / "trial"
    shutil.copytree(EXAMPLE, base)
    return base


def test_optional_csv_sources_feed_adcm_admh_and_pprotfl(tmp_path: Path) -> None:
    base = _csv_dir(tmp_path)
    plain = from_csv_dir(base, protocol=PROTOCOL)
    assert plain.adcm.empty and plain.admh.empty  # no optional file: empty datasets
    pp = plain.adsl.loc[plain.adsl["PPROTFL"] == "Y", "USUBJID"].tolist()
    assert pp, "the example needs a per-protocol subject"
    subject = pp[0]
    pd.DataFrame(
        [{"subject_id": subject, "drug_name": "Metformin", "atc_code": "A10BA02",
          "indication": "diabetes", "dose": "500", "unit": "mg", "route": "oral",
          "start_on": "2019-01-01", "stop_on": "", "ongoing": "Y", "record_id": ""}]
    ).to_csv(base / "conmeds.csv", index=False)  # fmt: skip
    pd.DataFrame(
        [{"subject_id": subject, "condition": "Diabetes", "start_on": "", "ongoing": "N",
          "record_id": ""}]
    ).to_csv(base / "medical_history.csv", index=False)  # fmt: skip
    pd.DataFrame(
        [{"subject_id": subject, "category": "eligibility", "severity": "major",
          "deviation_on": "2020-01-01", "record_id": ""}]
    ).to_csv(base / "deviations.csv", index=False)  # fmt: skip
    ds = from_csv_dir(base, protocol=PROTOCOL)
    assert ds.adcm["CMTRT"].tolist() == ["Metformin"]
    assert ds.adcm["SRCID"].tolist() == ["conmeds.csv line 2"]
    assert ds.admh["ASTDT"].tolist() == [None] and ds.admh["MHONGO"].tolist() == ["N"]
    adsl = ds.adsl.set_index("USUBJID")
    assert adsl.loc[subject, "MAJDVFL"] == "Y" and adsl.loc[subject, "PPROTFL"] == "N"


def test_bad_optional_csv_is_refused_naming_the_field(tmp_path: Path) -> None:
    base = _csv_dir(tmp_path)
    pd.DataFrame(
        [{"subject_id": "NOBODY", "category": "x", "severity": "major",
          "deviation_on": "2020-01-01"}]
    ).to_csv(base / "deviations.csv", index=False)  # fmt: skip
    with pytest.raises(ValidationError) as info:
        from_csv_dir(base, protocol=PROTOCOL)
    assert info.value.field == "deviations.subject_id"
    pd.DataFrame(
        [{"subject_id": "S0001", "category": "x", "severity": "serious",
          "deviation_on": "2020-01-01"}]
    ).to_csv(base / "deviations.csv", index=False)  # fmt: skip
    subjects = pd.read_csv(base / "subjects.csv", dtype=str)
    first = subjects["subject_id"].iloc[0]
    frame = pd.read_csv(base / "deviations.csv", dtype=str)
    frame["subject_id"] = first
    frame.to_csv(base / "deviations.csv", index=False)
    with pytest.raises(ValidationError) as info:
        from_csv_dir(base, protocol=PROTOCOL)
    assert info.value.field == "deviations.severity"
