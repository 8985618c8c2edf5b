"""from_database: the store's tables give the same analysis datasets as the CSV path."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.store.storekit import (
    INVESTIGATOR,
    NURSE,
    STAT,
    add_account,
    add_users,
    at,
    ready_patients,
    work,
)

from reluth.analysis.datasets import (
    SOURCE_FILES,
    _read_tables,
    from_csv_dir,
    from_database,
    sources_from_tables,
)
from reluth.analysis.design import AnalysisDesign
from reluth.auth.roles import Role
from reluth.db.engine import make_engine
from reluth.db.migrate import upgrade
from reluth.errors import ValidationError
from reluth.patients import service as patients
from reluth.protocol.definition import load_protocol
from reluth.protocol.schedule import qol_timepoints
from reluth.qol.service import record_questionnaire
from reluth.randomization import service as rnd
from reluth.response import service as review
from reluth.response.records import record_assessment
from reluth.safety.records import record_adverse_event

PROTOCOL = load_protocol()
DESIGN = AnalysisDesign.of(PROTOCOL)
RAND_AT = dt.datetime(2025, 3, 5, 10, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 1, 1)  # "today" for the services: every recorded date is in the past
REVIEWER = "rev1"
BASELINE = [{"id": "T1", "organ": "liver", "kind": "target", "diameter_mm": "80"}]
#: One target of 80 mm at baseline: 76 mm is SD, 50 mm PR, 100 mm PD (from nadir 76).
MEASURED = {
    "SD": {"diameter_mm": "76"},
    "PR": {"diameter_mm": "50"},
    "PD": {"diameter_mm": "100"},
    "NE": {"status": "not_evaluated"},
}


def _populate(url: str) -> list[str]:
    engine = make_engine(url)
    upgrade(engine)
    add_users(engine)
    add_account(engine, REVIEWER, Role.CENTRAL_REVIEWER)
    codes = ready_patients(engine, 6)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, "analysis-test-seed", 4)
    for code in codes[:5]:
        with work(engine, INVESTIGATOR, trial=at(RAND_AT)) as ctx:
            rnd.randomize(ctx, code, f"req-{code}")
    day0 = RAND_AT.date()
    plan = {
        codes[0]: ["SD", "SD", "PR"],
        codes[1]: ["SD", "PD"],
        codes[2]: ["SD", "SD", "SD"],
        codes[3]: ["NE", "SD", "SD"],
        codes[4]: ["SD"],
    }
    for code, responses in plan.items():
        with work(engine, REVIEWER, today=TODAY) as ctx:
            review.record_central_read(
                ctx, code, "baseline", day0 - dt.timedelta(days=9), "CT", BASELINE, "no"
            )
            for k, resp in enumerate(responses, 1):
                review.record_central_read(
                    ctx,
                    code,
                    f"week{8 * k}",
                    day0 + dt.timedelta(days=56 * k),
                    "CT",
                    [{"id": "T1", **MEASURED[resp]}],
                    "no",
                )
    with work(engine, NURSE, today=TODAY) as ctx:
        for code in plan:
            # A local read that must be ignored: the endpoints are central review's.
            record_assessment(
                ctx,
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
            )
            serious = code == codes[1]
            record_adverse_event(
                ctx,
                {
                    "patient_id": code,
                    "term": "Nausea",
                    "grade": 2 + serious,
                    "serious": serious,
                    "relatedness": "probable",
                    "outcome": "recovered",
                    "onset_date": (day0 + dt.timedelta(days=10)).isoformat(),
                    "awareness_date": (day0 + dt.timedelta(days=10)).isoformat()
                    if serious
                    else None,
                },
            )
            for k in range(3):
                # Items 29-30 (global health): 5 → QL 66.67; 4 → 50 (a 16.7-point deterioration).
                gh = 4 if (code == codes[0] and k == 2) else 5
                items = {str(i): 1 for i in range(1, 29)} | {"29": gh, "30": gh}
                record_questionnaire(
                    ctx,
                    {
                        "patient_id": code,
                        "instrument": "QLQ-C30",
                        "timepoint": qol_timepoints(ctx.protocol)[k],
                        "completed_on": (day0 + dt.timedelta(days=-3 + 56 * k)).isoformat(),
                        "items": items,
                    },
                )
        patients.record_death(ctx, codes[1], day0 + dt.timedelta(days=200), "disease")
    engine.dispose()
    return codes


def test_database_gives_the_same_datasets_as_csv(db_url: str, tmp_path: Path) -> None:
    codes = _populate(db_url)
    ds = from_database(db_url, cutoff=dt.date(2025, 12, 31), protocol=PROTOCOL)
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
    # coded at entry from the CTCAE v5.0 dictionary: dictionary term, MedDRA LLT code, SOC
    assert set(ds.adae["AEDECOD"]) == {"Nausea"} and set(ds.adae["AETERM"]) == {"Nausea"}
    assert set(ds.adae["AESOC"]) == {"Gastrointestinal disorders"}
    assert set(ds.adae["AELLTCD"]) == {"10028813"}
    # The CSV path on the same source rows gives identical datasets.
    for name, frame in sources_from_tables(_read_tables(db_url, PROTOCOL), DESIGN).items():
        frame.to_csv(tmp_path / SOURCE_FILES[name], index=False)
    via_csv = from_csv_dir(tmp_path, cutoff=dt.date(2025, 12, 31), protocol=PROTOCOL)
    for name, frame in ds.frames().items():
        other = via_csv.frames()[name]
        assert frame.shape == other.shape, name
        assert frame.astype(str).equals(other.astype(str)), name
    # Typed: dates are dates and sums, eGFR and scores Decimals, on both doors.
    assert all(isinstance(x, dt.date) for x in ds.adsl["RANDDT"].dropna())
    assert all(isinstance(x, Decimal) for x in ds.adsl["GFR"])
    assert all(isinstance(x, Decimal) for x in ds.adrs["TSUM"].dropna())
    # eGFR is what screening stored, not recomputed from the stored patient file.
    engine = make_engine(db_url)
    with engine.begin() as conn:
        stored = {
            pid: Decimal(json.loads(r)["derived"]["egfr_ml_min_1_73m2"])
            for pid, r in conn.execute(text("SELECT patient_id, result_json FROM screenings"))
        }
        for sid, raw in conn.execute(text("SELECT id, input_json FROM screenings")).all():
            changed = json.loads(raw)
            changed["labs"]["creatinine"]["value"] = 300  # would give an eGFR near 15
            conn.execute(
                text("UPDATE screenings SET input_json = :j WHERE id = :i"),
                {"j": json.dumps(changed), "i": sid},
            )
        codes_by_pid = dict(conn.execute(text("SELECT id, patient_code FROM patients")).all())
    engine.dispose()
    again = from_database(db_url, cutoff=dt.date(2025, 12, 31), protocol=PROTOCOL).adsl.set_index(
        "USUBJID"
    )
    assert {c: again.loc[c, "GFR"] for c in codes} == {
        codes_by_pid[pid]: value for pid, value in stored.items()
    }


def test_not_a_trial_database(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a reluth trial database"):
        from_database(f"sqlite:///{tmp_path / 'empty.db'}", protocol=PROTOCOL)
