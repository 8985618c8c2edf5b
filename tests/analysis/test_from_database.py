"""from_database: the store's tables give the same analysis datasets as the CSV path."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from tests.store.storekit import INVESTIGATOR, NURSE, STAT, add_users, ready_patients

from reluth.analysis.datasets import (
    SOURCE_FILES,
    _read_tables,
    from_csv_dir,
    from_database,
    sources_from_tables,
)
from reluth.db.engine import make_engine
from reluth.db.migrate import upgrade
from reluth.db.session import unit_of_work
from reluth.errors import ValidationError
from reluth.patients import service as patients
from reluth.qol.service import record_questionnaire
from reluth.randomization import service as rnd
from reluth.response.records import record_assessment
from reluth.safety.models import AdverseEvent

RAND_AT = dt.datetime(2025, 3, 5, 10, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 1, 1)  # "today" for the services: every recorded date is in the past


def _populate(url: str) -> list[str]:
    engine = make_engine(url)
    upgrade(engine)
    add_users(engine)
    codes = ready_patients(engine, 6)
    with unit_of_work(engine, STAT) as uow:
        rnd.configure(uow.session, STAT, "blocks")
        rnd.generate_list(uow.session, STAT, "analysis-test-seed", 4)
    for code in codes[:5]:
        with unit_of_work(engine, INVESTIGATOR) as uow:
            rnd.randomize(uow.session, INVESTIGATOR, code, f"req-{code}", now=RAND_AT)
    with unit_of_work(engine, NURSE) as uow:
        s = uow.session
        ids = {c: patients.get_patient(s, c).id for c in codes}
        day0 = RAND_AT.date()
        plan = {
            codes[0]: ["SD", "SD", "PR"],
            codes[1]: ["SD", "PD"],
            codes[2]: ["SD", "SD", "SD"],
            codes[3]: ["NE", "SD", "SD"],
            codes[4]: ["SD"],
        }
        for code, responses in plan.items():
            visits = [
                (-9, None, 80),
                *[(56 * k, r, 80 - 5 * k) for k, r in enumerate(responses, 1)],
            ]
            for day, resp, size in visits:
                record_assessment(
                    s,
                    {
                        "patient_id": code,
                        "assessment_date": (day0 + dt.timedelta(days=day)).isoformat(),
                        "timepoint": f"d{day}",
                        "reader": "central",
                        "modality": "CT",
                        "overall_response": resp,
                        "lesions": [
                            {
                                "lesion_id": "T1",
                                "kind": "target",
                                "organ": "liver",
                                "diameter_mm": size,
                            }
                        ],
                    },
                    today=TODAY,
                )
            # A local read that must be ignored because central reads exist.
            record_assessment(
                s,
                {
                    "patient_id": code,
                    "assessment_date": (day0 + dt.timedelta(days=50)).isoformat(),
                    "timepoint": "d50-local",
                    "reader": "local",
                    "modality": "CT",
                    "overall_response": "PD",
                    "lesions": [
                        {"lesion_id": "T1", "kind": "target", "organ": "liver", "diameter_mm": 99}
                    ],
                },
                today=TODAY,
            )
            s.add(
                AdverseEvent(
                    patient_id=ids[code],
                    term="Nausea",
                    grade=2 + (code == codes[1]),
                    serious=code == codes[1],
                    relatedness="related",
                    outcome="recovered",
                    onset_date=day0 + dt.timedelta(days=10),
                    protocol_version="1.0",
                )
            )
            for k in range(3):
                # Items 29-30 (global health): 5 → QL 66.67; 4 → 50 (a 16.7-point deterioration).
                gh = 4 if (code == codes[0] and k == 2) else 5
                items = {str(i): 1 for i in range(1, 29)} | {"29": gh, "30": gh}
                record_questionnaire(
                    s,
                    {
                        "patient_id": code,
                        "instrument": "QLQ-C30",
                        "timepoint": f"t{k}",
                        "completed_on": (day0 + dt.timedelta(days=-3 + 56 * k)).isoformat(),
                        "items": items,
                    },
                    today=TODAY,
                )
        patients.record_death(
            s, codes[1], day0 + dt.timedelta(days=200), "disease", today=dt.date(2026, 1, 1)
        )
    engine.dispose()
    return codes


def test_database_gives_the_same_datasets_as_csv(db_url: str, tmp_path: Path) -> None:
    codes = _populate(db_url)
    ds = from_database(db_url, cutoff=dt.date(2025, 12, 31))
    adsl = ds.adsl.set_index("USUBJID")
    assert list(adsl.index) == codes
    assert adsl["RANDFL"].tolist() == ["Y"] * 5 + ["N"]
    assert set(adsl["ARM"].dropna()) <= {"Lutathera", "Surveillance"}
    assert adsl.loc[codes[1], "DTHFL"] == "Y"
    assert adsl["STRPFS"].iloc[0] in ("lt18", "ge18")
    assert adsl["GFR"].notna().all() and adsl["AGE"].notna().all()
    dcr = ds.adrs[ds.adrs["PARAMCD"] == "DCR6"].set_index("USUBJID")["AVALC"].to_dict()
    # Week-24 central read SD/PR → control; PD at week 16 → failure; one read only → failure.
    assert dcr == {codes[0]: "Y", codes[1]: "N", codes[2]: "Y", codes[3]: "Y", codes[4]: "N"}
    assert "PD" not in set(ds.adrs.loc[ds.adrs["ADY"] == 50, "AVALC"])  # local read ignored
    assert set(ds.adtte["PARAMCD"]) >= {"PFS", "RPFS", "OS", "TTDQL2"}
    ttd = ds.adtte[ds.adtte["PARAMCD"] == "TTDQL2"].set_index("USUBJID")["CNSR"]
    assert ttd[codes[0]] == 0 and ttd[codes[2]] == 1
    assert (ds.adae["AETOXGR"] >= 2).all() and len(ds.adae) == 5
    # The CSV path on the same source rows gives identical datasets.
    for name, frame in sources_from_tables(_read_tables(db_url)).items():
        frame.to_csv(tmp_path / SOURCE_FILES[name][0], index=False)
    via_csv = from_csv_dir(tmp_path, cutoff=dt.date(2025, 12, 31))
    for name, frame in ds.frames().items():
        other = via_csv.frames()[name]
        assert frame.shape == other.shape, name
        assert frame.astype(str).equals(other.astype(str)), name


def test_not_a_trial_database(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a reluth trial database"):
        from_database(f"sqlite:///{tmp_path / 'empty.db'}")
