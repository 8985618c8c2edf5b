"""An export never fails because of one stored value (issue 13): whatever sits in the trial
database — an absurd date, a grade outside CTCAE, an unknown arm, unreadable JSON, a text
longer than SAS transport holds — the statistician's export is written; the record that
cannot be used is left out and listed in ``data_issues.csv`` naming its source, record, field
and value. Values the services refuse today reached the database through older versions or
direct edits, which is what the UPDATEs below stand for. The CSV door (a file given on the
command line) still refuses a bad value with one message."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text
from tests.analysis.test_from_database import _populate
from tests.store.storekit import STAT, read

from reluth.analysis import service as analysis
from reluth.analysis.datasets import from_csv_dir, from_database
from reluth.db.engine import make_engine
from reluth.errors import ValidationError
from reluth.protocol.definition import load_protocol

CUTOFF = dt.date(2025, 12, 31)
PROTOCOL = load_protocol()
FIRST_AE = "(SELECT min(id) FROM adverse_events)"
FIRST_QOL = "(SELECT min(id) FROM qol_questionnaires)"
FIRST_RAND = "(SELECT min(id) FROM randomizations)"

#: name -> (table, column, row, stored value, expected issue source and field)
CASES = {
    "AE onset in year 1": ("adverse_events", "onset_date", FIRST_AE, "0001-01-01",
                           ("adverse_events", "onset_on")),
    "AE grade 7": ("adverse_events", "grade", FIRST_AE, 7, ("adverse_events", "grade")),
    "death in year 1": ("deaths", "death_date", "(SELECT min(id) FROM deaths)", "0001-01-01",
                        ("subjects", "death_on")),
    "questionnaire in year 1": ("qol_questionnaires", "completed_on", FIRST_QOL, "0001-01-01",
                                ("qol", "assessed_on")),
    "randomized in year 1": ("randomizations", "randomized_at", FIRST_RAND,
                             "0001-01-01 10:00:00", ("subjects", "randomized_on")),
    "unknown arm": ("randomizations", "arm", FIRST_RAND, "zzz", ("subjects", "arm")),
    "unreadable scores": ("qol_questionnaires", "scores_json", FIRST_QOL, "{not json",
                          ("qol", "scores_json")),
    "screening verdict without eGFR": ("screenings", "result_json",
                                       "(SELECT min(id) FROM screenings)", "{}",
                                       ("subjects", "gfr_ml_min")),
}  # fmt: skip


@pytest.fixture(scope="module")
def populated(module_db_url: str) -> Iterator[tuple[str, list[str]]]:
    yield module_db_url, _populate(module_db_url)


@contextmanager
def _tampered(url: str, table: str, column: str, row: str, value: object) -> Iterator[None]:
    engine = make_engine(url)
    with engine.begin() as conn:
        rid = conn.execute(text(f"SELECT {row}")).scalar_one()
        old = conn.execute(text(f"SELECT {column} FROM {table} WHERE id = :i"), {"i": rid}).scalar()
        conn.execute(
            text(f"UPDATE {table} SET {column} = :v WHERE id = :i"), {"v": value, "i": rid}
        )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(
                text(f"UPDATE {table} SET {column} = :v WHERE id = :i"), {"v": old, "i": rid}
            )
        engine.dispose()


def _export(url: str) -> dict[str, pd.DataFrame]:
    engine = make_engine(url)
    try:
        with read(engine, STAT, dt.date(2026, 1, 1)) as ctx:
            download = analysis.datasets_zip(ctx, "xpt", CUTOFF)
    finally:
        engine.dispose()
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        names = set(archive.namelist())
        assert {"adsl.xpt", "adae.xpt", "variables.json", "data_issues.csv"} <= names
        return {"issues": pd.read_csv(archive.open("data_issues.csv"), dtype=str)}


def test_the_untouched_database_exports_without_issues(populated: tuple[str, list[str]]) -> None:
    url, _codes = populated
    assert _export(url)["issues"].empty
    assert from_database(url, cutoff=CUTOFF, protocol=PROTOCOL).issues == ()


@pytest.mark.parametrize("case", list(CASES))
def test_one_stored_value_never_stops_the_export(
    populated: tuple[str, list[str]], case: str
) -> None:
    url, codes = populated
    table, column, row, value, (source, field) = CASES[case]
    with _tampered(url, table, column, row, value):
        before = len(from_database(url, cutoff=CUTOFF, protocol=PROTOCOL).adsl)
        issues = _export(url)["issues"]
    assert not issues.empty, case
    first = issues.iloc[0]
    assert (first["source"], first["field"]) == (source, field), issues.to_dict("records")
    assert first["subject_id"] in codes
    assert before >= len(codes) - 1  # at most the one subject is left out


def test_a_bad_date_text_on_sqlite_is_an_issue_not_a_crash(
    populated: tuple[str, list[str]],
) -> None:
    """SQLite lets any text into a DATE column; SQLAlchemy would raise on the whole table."""
    url, _codes = populated
    if not url.startswith("sqlite"):
        pytest.skip("PostgreSQL refuses the text itself")
    with _tampered(url, "adverse_events", "onset_date", FIRST_AE, "not a date"):
        ds = from_database(url, cutoff=CUTOFF, protocol=PROTOCOL)
    assert [(i.source, i.field, i.value) for i in ds.issues] == [
        ("adverse_events", "onset_on", "not a date")
    ]


def test_a_text_too_long_for_sas_transport_is_cut_and_listed(
    populated: tuple[str, list[str]],
) -> None:
    url, _codes = populated
    term = "é" * 120  # 240 bytes in UTF-8: within the column's 120 characters, over XPT's 200
    with _tampered(url, "adverse_events", "term", FIRST_AE, term):
        issues = _export(url)["issues"]
    row = issues[issues["field"] == "AETERM"].iloc[0]  # the verbatim term; AEDECOD is coded
    assert row["source"] == "adae" and row["value"] == "240 bytes" and "200" in row["problem"]


def test_the_csv_door_still_refuses_a_bad_value(tmp_path: Path) -> None:
    from reluth.analysis.synthetic import write_synthetic_csv

    write_synthetic_csv(tmp_path, n_included=12, seed=3, protocol=PROTOCOL)
    ae = pd.read_csv(tmp_path / "adverse_events.csv", dtype=str)
    ae.loc[0, "onset_on"] = "0001-01-01"
    ae.to_csv(tmp_path / "adverse_events.csv", index=False)
    with pytest.raises(ValidationError, match=r"adverse_events\.onset_on.*line 2"):
        from_csv_dir(tmp_path, protocol=PROTOCOL)
