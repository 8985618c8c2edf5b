"""One table of patient histories (tests/analysis/histories.py), two doors: central reads entered
through the central review service and read back by ``from_database`` (SQLite and PostgreSQL),
and the CSV files of ``reluth analyze --data``. Both must give the table's BOR, DCR6, PFS and
rPFS date and censoring."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine
from tests.analysis.histories import HISTORIES, History
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
from typer.testing import CliRunner

from reluth.analysis.datasets import AnalysisDatasets, from_csv_dir, from_database
from reluth.auth.roles import Role
from reluth.cli import app
from reluth.db.engine import make_engine
from reluth.db.migrate import upgrade
from reluth.db.session import read_session
from reluth.patients import service as patients
from reluth.protocol.definition import load_protocol
from reluth.randomization import service as rnd
from reluth.response import service as review

REVIEWER = "rev1"
RAND_AT = dt.datetime(2025, 3, 5, 10, 0, tzinfo=dt.UTC)
RAND = RAND_AT.date()
BASELINE_DAY = -7
TODAY = dt.date(2026, 6, 1)
CUTOFF = dt.date(2026, 5, 31)
PROTOCOL = load_protocol()


def _on(day: int) -> dt.date:
    return RAND + dt.timedelta(days=day)


def _lesions(measured: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for lid, value in measured.items():
        key = "diameter_mm" if value[0].isdigit() else "status"
        out.append({"id": lid, key: value})
    return out


def _baseline(history: History) -> list[dict[str, Any]]:
    return [{k: v for k, v in lesion.items()} for lesion in history.baseline]


# --- the database door ------------------------------------------------------------------------


def _populate(engine: Engine) -> dict[str, str]:
    """Randomize one patient per history on RAND, enter its central reads through the review
    service, and record its death; returns history name -> patient code."""
    upgrade(engine)
    add_users(engine)
    add_account(engine, REVIEWER, Role.CENTRAL_REVIEWER)
    codes = ready_patients(engine, len(HISTORIES))
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, "derivation-table-seed", 4)
    for code in codes:
        with work(engine, INVESTIGATOR, trial=at(RAND_AT)) as ctx:
            rnd.randomize(ctx, code, f"req-{code}")
    by_name = {}
    for history, code in zip(HISTORIES, codes, strict=True):
        by_name[history.name] = code
        with work(engine, REVIEWER, today=TODAY) as ctx:
            review.record_central_read(
                ctx, code, "baseline", _on(BASELINE_DAY), "CT", _baseline(history), "no"
            )
            for visit in history.visits:
                review.record_central_read(
                    ctx,
                    code,
                    f"d{visit.day}",
                    _on(visit.day),
                    "CT",
                    _lesions(visit.lesions),
                    visit.new_lesions,
                )
        if history.death_day is not None:
            with work(engine, NURSE, today=TODAY) as ctx:
                patients.record_death(ctx, code, _on(history.death_day), "disease")
    return by_name


@pytest.fixture(scope="module")
def database(module_db_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    engine = make_engine(module_db_url)
    try:
        yield module_db_url, _populate(engine)
    finally:
        engine.dispose()


# --- the CSV door -------------------------------------------------------------------------------


def _write_csv(directory: Path) -> dict[str, str]:
    subjects, assessments = [], []
    by_name = {}
    for i, history in enumerate(HISTORIES, 1):
        sid = f"S{i:03d}"
        by_name[history.name] = sid
        death = "" if history.death_day is None else _on(history.death_day).isoformat()
        last = max([v.day for v in history.visits] + [history.death_day or 0])
        subjects.append(
            {
                "subject_id": sid,
                "site": "C01",
                "included_on": "2024-10-30",
                "arm": "Lutathera" if i % 2 else "Surveillance",
                "randomized_on": RAND.isoformat(),
                "eligible": "Y",
                "first_dose_on": "2024-11-04",
                "age": 64,
                "sex": "F",
                "ecog": 1,
                "gfr_ml_min": "72.4",
                "death_on": death,
                "last_alive_on": _on(last).isoformat(),
            }
        )
        assessments.append(
            {
                "subject_id": sid,
                "assessed_on": _on(BASELINE_DAY).isoformat(),
                "overall_response": "NE",
                "target_sum_mm": "80" if history.baseline[0]["kind"] == "target" else "",
                "new_lesions": "no",
            }
        )
        for visit in history.visits:
            assessments.append(
                {
                    "subject_id": sid,
                    "assessed_on": _on(visit.day).isoformat(),
                    "overall_response": visit.response,
                    "target_sum_mm": "",
                    "new_lesions": visit.new_lesions,
                }
            )
    pd.DataFrame(subjects).to_csv(directory / "subjects.csv", index=False)
    pd.DataFrame(assessments).to_csv(directory / "assessments.csv", index=False)
    pd.DataFrame(columns=["subject_id", "term", "soc", "grade", "serious", "onset_on"]).to_csv(
        directory / "adverse_events.csv", index=False
    )
    pd.DataFrame(columns=["subject_id", "assessed_on", "scale", "score"]).to_csv(
        directory / "qol.csv", index=False
    )
    return by_name


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("table")
    return directory, _write_csv(directory)


# --- the table, checked on each door ------------------------------------------------------------


def _endpoints(adrs: pd.DataFrame, adtte: pd.DataFrame, sid: str) -> dict[str, Any]:
    rs = adrs[adrs["USUBJID"] == sid].set_index("PARAMCD")
    tte = adtte[adtte["USUBJID"] == sid].set_index("PARAMCD")
    return {
        "bor": rs.loc["BOR", "AVALC"],
        "dcr6": rs.loc["DCR6", "AVALC"],
        "pfs": (int(tte.loc["PFS", "ADY"]), int(tte.loc["PFS", "CNSR"])),
        "rpfs": (int(tte.loc["RPFS", "ADY"]), int(tte.loc["RPFS", "CNSR"])),
    }


def _expected(history: History) -> dict[str, Any]:
    return {"bor": history.bor, "dcr6": history.dcr6, "pfs": history.pfs, "rpfs": history.rpfs}


def _check_table(ds: AnalysisDatasets, by_name: dict[str, str]) -> None:
    got = {h.name: _endpoints(ds.adrs, ds.adtte, by_name[h.name]) for h in HISTORIES}
    assert got == {h.name: _expected(h) for h in HISTORIES}
    adsl = ds.adsl.set_index("USUBJID")
    for h in HISTORIES:
        assert adsl.loc[by_name[h.name], "DCR6"] == h.dcr6, h.name


def test_the_table_through_the_csv_door(csv_dir: tuple[Path, dict[str, str]]) -> None:
    directory, by_name = csv_dir
    _check_table(from_csv_dir(directory, CUTOFF, protocol=PROTOCOL), by_name)


def test_the_table_through_reluth_analyze_data(
    csv_dir: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    directory, by_name = csv_dir
    result = CliRunner().invoke(
        app, ["analyze", "--data", str(directory), "--out", str(tmp_path), "--cutoff", "2026-05-31"]
    )
    assert result.exit_code == 0, result.output
    adrs = pd.read_csv(tmp_path / "datasets" / "adrs.csv", dtype={"AVALC": str})
    adtte = pd.read_csv(tmp_path / "datasets" / "adtte.csv")
    got = {h.name: _endpoints(adrs, adtte, by_name[h.name]) for h in HISTORIES}
    assert got == {h.name: _expected(h) for h in HISTORIES}


def test_the_table_through_the_database_door(database: tuple[str, dict[str, str]]) -> None:
    url, by_name = database
    _check_table(from_database(url, CUTOFF, protocol=PROTOCOL), by_name)


def test_both_doors_give_the_same_time_point_responses(
    database: tuple[str, dict[str, str]], csv_dir: tuple[Path, dict[str, str]]
) -> None:
    """Per time point: the engine's response as read and after re-dating, on both doors."""
    url, db_codes = database
    directory, csv_codes = csv_dir
    db, csv = (
        from_database(url, CUTOFF, protocol=PROTOCOL).adrs,
        from_csv_dir(directory, CUTOFF, protocol=PROTOCOL).adrs,
    )
    for h in HISTORIES:
        rows = []
        for frame, sid in ((db, db_codes[h.name]), (csv, csv_codes[h.name])):
            o = frame[(frame["USUBJID"] == sid) & (frame["PARAMCD"] == "OVRLRESP")]
            rows.append(list(zip(o["ADY"].astype(int), o["AVALC"], strict=True)))
        expected = [
            (v.day, "PD" if v.day in h.redated else (v.engine or v.response)) for v in h.visits
        ]
        assert rows[0] == expected, h.name
        csv_expected = [(v.day, "PD" if v.day in h.redated else v.response) for v in h.visits]
        assert rows[1] == csv_expected, h.name


def test_central_review_stores_the_engines_evaluation(
    database: tuple[str, dict[str, str]],
) -> None:
    """The stored evaluation holds each time point as read and after re-dating, BOR with its
    rule, first PD and the month-6 decision, each naming the read it comes from."""
    url, by_name = database
    engine = make_engine(url)
    try:
        with read_session(engine) as s:
            for h in HISTORIES:
                patient = patients.find_patient(s, by_name[h.name])
                reads = review.central_reads(s, patient)
                ev = review.current_evaluation(s, patient, load_protocol())
                assert ev is not None and ev.stored, h.name
                assert ev.reference_date == RAND
                assert [tp.read_id for tp in ev.time_points] == [r.id for r in reads[1:]]
                assert [tp.as_read.value for tp in ev.time_points] == [
                    v.as_read for v in h.visits
                ], h.name
                redated = [(tp.date - RAND).days for tp in ev.time_points if tp.redated_by]
                assert redated == list(h.redated), h.name
                out = ev.outcome
                assert out is not None
                assert out.best_overall_response.value == h.bor, h.name
                assert "42 days" in out.bor_rule  # the protocol file's minimum SD duration
                # the stored month-6 decision is RECIST only; the death is added by ADRS DCR6
                if h.death_day is None:
                    assert ("Y" if out.disease_control_month6 else "N") == h.dcr6, h.name
    finally:
        engine.dispose()


def test_adrs_and_adtte_name_the_central_reads(database: tuple[str, dict[str, str]]) -> None:
    """Traceability: each ADRS record and each tumour event or censoring of ADTTE names the
    central read it comes from."""
    url, by_name = database
    ds = from_database(url, CUTOFF, protocol=PROTOCOL)
    engine = make_engine(url)
    try:
        with read_session(engine) as s:
            read_ids = {
                h.name: [
                    r.id for r in review.central_reads(s, patients.find_patient(s, by_name[h.name]))
                ]
                for h in HISTORIES
            }
    finally:
        engine.dispose()
    for h in HISTORIES:
        sid, ids = by_name[h.name], read_ids[h.name]
        rs = ds.adrs[ds.adrs["USUBJID"] == sid]
        ovr = rs[rs["PARAMCD"] == "OVRLRESP"]
        assert list(ovr["SRCID"]) == [f"central read {i}" for i in ids[1:]], h.name
        by_day = dict(zip(ovr["ADY"].astype(int), ovr["SRCID"], strict=True))
        pfs = ds.adtte[(ds.adtte["USUBJID"] == sid) & (ds.adtte["PARAMCD"] == "PFS")].iloc[0]
        assert pfs["SRCDOM"] == "ADRS" and pfs["SRCID"] == by_day[h.pfs[0]], h.name
        bor = rs[rs["PARAMCD"] == "BOR"].iloc[0]
        if h.bor != "NE":
            assert bor["SRCID"] == by_day[int(bor["ADY"])], h.name
        assert "42 days" in bor["BORRULE"]
