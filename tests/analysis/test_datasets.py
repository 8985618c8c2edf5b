"""Analysis datasets: derivation rules at their boundaries, populations, validation of CSV input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from reluth.analysis.datasets import build_datasets, from_csv_dir, make_sources
from reluth.analysis.design import AnalysisDesign
from reluth.analysis.synthetic import synthetic_sources, write_synthetic_csv
from reluth.errors import ValidationError
from reluth.protocol.definition import load_protocol

PROTOCOL = load_protocol()
DESIGN = AnalysisDesign.of(PROTOCOL)
MONTH6_DAY, MONTH6_WINDOW_DAYS = DESIGN.month6_day, DESIGN.month6_window_days

RAND = dt.date(2023, 1, 2)


def _day(n: int) -> str:
    return (RAND + dt.timedelta(days=n)).isoformat()


def _subject(sid: str, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "subject_id": sid,
        "site": "C01",
        "included_on": "2022-09-01",
        "arm": "Lutathera",
        "randomized_on": RAND.isoformat(),
        "not_randomized_reason": "",
        "eligible": "Y",
        "first_dose_on": "2022-09-05",
        "age": 60,
        "sex": "F",
        "ecog": 0,
        "gfr_ml_min": 80,
        "grade": "G1",
        "strat_prior_pfs": "ge18",
        "strat_progression": "rad",
        "strat_gfr": "ge60",
        "strat_intercurrent": "no",
        "death_on": "",
        "last_alive_on": _day(400),
    }
    row.update(kw)
    return row


def _build(
    subjects: list[dict],
    assessments: list[tuple[str, int, str]],
    cutoff: dt.date | None = None,
    qol: list[tuple[str, int, str, float]] = (),
):
    a = pd.DataFrame(
        [
            {"subject_id": s, "assessed_on": _day(d), "overall_response": r, "target_sum_mm": 50.0}
            for s, d, r in assessments
        ],
        columns=["subject_id", "assessed_on", "overall_response", "target_sum_mm"],
    )
    empty_ae = pd.DataFrame(columns=["subject_id", "term", "soc", "grade", "serious", "onset_on"])
    q = pd.DataFrame(
        [{"subject_id": s, "assessed_on": _day(d), "scale": c, "score": v} for s, d, c, v in qol],
        columns=["subject_id", "assessed_on", "scale", "score"],
    )
    src = make_sources(
        pd.DataFrame(subjects).astype(str),
        a.astype(str),
        empty_ae,
        q.astype(str),
        protocol=PROTOCOL,
    )
    return build_datasets(src, cutoff or dt.date(2025, 1, 1))


def _dcr(ds) -> dict[str, str]:
    r = ds.adrs[ds.adrs["PARAMCD"] == "DCR6"]
    return dict(zip(r["USUBJID"], r["AVALC"], strict=True))


def test_landmark_comes_from_the_protocol_file() -> None:
    assert (MONTH6_DAY, MONTH6_WINDOW_DAYS) == (168, 28)


def test_dcr6_window_boundaries_both_sides() -> None:
    lo, hi = MONTH6_DAY - MONTH6_WINDOW_DAYS, MONTH6_DAY + MONTH6_WINDOW_DAYS
    subjects = [_subject(s) for s in ("A", "B", "C", "D")]
    ds = _build(
        subjects, [("A", lo, "SD"), ("B", lo - 1, "SD"), ("C", hi, "PR"), ("D", hi + 1, "PR")]
    )
    assert _dcr(ds) == {"A": "Y", "B": "N", "C": "Y", "D": "N"}


def test_dcr6_failures_and_tie_rule() -> None:
    subjects = [_subject(s) for s in ("PD", "NE", "TIE", "DEAD", "LATEPD", "NONE")]
    subjects[3]["death_on"] = _day(165)
    subjects[3]["last_alive_on"] = _day(165)
    ds = _build(
        subjects,
        [
            ("PD", 60, "PD"),
            ("PD", 168, "SD"),
            ("NE", 168, "NE"),
            ("TIE", 160, "PD"),
            ("TIE", 176, "SD"),  # equidistant: later chosen, but PD before it
            ("DEAD", 170, "SD"),
            ("LATEPD", 168, "SD"),
            ("LATEPD", 180, "PD"),
        ],
    )
    dcr = _dcr(ds)
    assert dcr == {"PD": "N", "NE": "N", "TIE": "N", "DEAD": "N", "LATEPD": "Y", "NONE": "N"}
    reasons = ds.adrs[ds.adrs["PARAMCD"] == "DCR6"].set_index("USUBJID")["DCRRSN"]
    assert "only NE" in reasons["NE"] and "no assessment" in reasons["NONE"]


def test_tie_picks_the_later_assessment() -> None:
    ds = _build([_subject("T")], [("T", 160, "NON-CR/NON-PD"), ("T", 176, "SD")])
    row = ds.adrs[(ds.adrs["PARAMCD"] == "DCR6")].iloc[0]
    assert row["AVALC"] == "Y" and row["DCRRSN"] == f"SD on {_day(176)}"


def test_censoring_rules_pfs_rpfs_os() -> None:
    dead = _subject("D", death_on=_day(300), last_alive_on=_day(300))
    prog = _subject("P")
    ds = _build(
        [dead, prog], [("D", 61, "SD"), ("D", 122, "PR"), ("P", 61, "SD"), ("P", 122, "PD")]
    )
    tte = ds.adtte.set_index(["USUBJID", "PARAMCD"])
    assert (tte.loc[("D", "RPFS"), "CNSR"], tte.loc[("D", "RPFS"), "ADY"]) == (0, 300)
    assert (tte.loc[("D", "PFS"), "CNSR"], tte.loc[("D", "PFS"), "ADY"]) == (1, 122)
    assert (tte.loc[("D", "OS"), "CNSR"], tte.loc[("D", "OS"), "ADY"]) == (0, 300)
    assert (tte.loc[("P", "PFS"), "CNSR"], tte.loc[("P", "PFS"), "ADY"]) == (0, 122)
    assert (tte.loc[("P", "OS"), "CNSR"], tte.loc[("P", "OS"), "ADY"]) == (1, 400)
    assert tte.loc[("P", "OS"), "AVAL"] == pytest.approx(400 / 30.4375)


def test_cutoff_ignores_later_data() -> None:
    s = _subject("P", death_on=_day(500), last_alive_on=_day(500))
    ds = _build([s], [("P", 61, "SD"), ("P", 122, "PD")], cutoff=RAND + dt.timedelta(days=100))
    tte = ds.adtte.set_index("PARAMCD")
    assert tte.loc["PFS", "CNSR"] == 1 and tte.loc["PFS", "ADY"] == 61
    assert tte.loc["OS", "CNSR"] == 1 and tte.loc["OS", "ADY"] == 100


def test_subjects_included_after_the_cutoff_are_left_out() -> None:
    late = _subject("LATE", included_on="2024-06-01", randomized_on="2024-10-01")
    ds = _build([_subject("EARLY"), late], [], cutoff=dt.date(2024, 5, 31))
    assert list(ds.adsl["USUBJID"]) == ["EARLY"]


def test_populations() -> None:
    subjects = [
        _subject("ITT"),
        _subject("INELIG", eligible="N"),
        _subject("NR", arm="", randomized_on="", not_randomized_reason="progression"),
        _subject("UNTREATED", first_dose_on=""),
        _subject("ONEEVAL"),
    ]
    ds = _build(
        subjects,
        [(s, d, "SD") for s in ("ITT", "INELIG", "UNTREATED") for d in (61, 122)]
        + [("ONEEVAL", 61, "SD")],
    )
    adsl = ds.adsl.set_index("USUBJID")
    assert list(adsl["ITTFL"]) == ["Y", "Y", "N", "Y", "Y"]
    assert adsl.loc["ITT", "PPROTFL"] == "Y"
    assert adsl.loc[["INELIG", "NR", "UNTREATED", "ONEEVAL"], "PPROTFL"].eq("N").all()
    assert adsl.loc["UNTREATED", "SAFFL"] == "N"


def test_protocol_arm_codes_are_accepted() -> None:
    ds = _build([_subject("E", arm="experimental"), _subject("C", arm="control")], [])
    assert list(ds.adsl["ARM"]) == ["Lutathera", "Surveillance"]


def test_csv_round_trip_of_synthetic_trial(tmp_path: Path) -> None:
    write_synthetic_csv(tmp_path, n_included=40, seed=3, protocol=PROTOCOL)
    ds = from_csv_dir(tmp_path, protocol=PROTOCOL)
    assert len(ds.adsl) == 40
    assert set(ds.adtte["PARAMCD"]) >= {"PFS", "RPFS", "OS", "TTDQL2"}
    assert len(ds.input_hash) == 64
    # The hash changes with the input.
    (tmp_path / "qol.csv").write_text(
        (tmp_path / "qol.csv").read_text().replace(",QL2,", ",PF2,", 1)
    )
    assert from_csv_dir(tmp_path, protocol=PROTOCOL).input_hash != ds.input_hash


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        ("subjects.csv", lambda df: df.drop(columns=["site"]), "subjects.site: missing column"),
        (
            "subjects.csv",
            lambda df: df.assign(arm=df["arm"].where(df["arm"] == "", "Placebo")),
            "subjects.arm",
        ),
        ("assessments.csv", lambda df: df.assign(assessed_on="2023-13-01"), "not a date"),
        ("assessments.csv", lambda df: df.assign(overall_response="MR"), "overall_response"),
        ("adverse_events.csv", lambda df: df.assign(grade="6"), "CTCAE grade"),
        ("qol.csv", lambda df: df.assign(subject_id="ZZZ"), "unknown subject"),
        ("qol.csv", lambda df: df.assign(scale="XYZ"), "unknown kind"),
    ],
)
def test_bad_csv_input_is_named(tmp_path: Path, file: str, edit, message: str) -> None:
    write_synthetic_csv(tmp_path, n_included=12, seed=1, protocol=PROTOCOL)
    df = pd.read_csv(tmp_path / file, dtype=str, keep_default_na=False)
    edit(df).to_csv(tmp_path / file, index=False)
    with pytest.raises(ValidationError, match=message):
        from_csv_dir(tmp_path, protocol=PROTOCOL)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a directory"):
        from_csv_dir(tmp_path / "nope", protocol=PROTOCOL)
    with pytest.raises(ValidationError, match=r"subjects\.csv missing"):
        from_csv_dir(tmp_path, protocol=PROTOCOL)


def test_synthetic_generator_is_seeded() -> None:
    a = synthetic_sources(30, seed=5, protocol=PROTOCOL)
    b = synthetic_sources(30, seed=5, protocol=PROTOCOL)
    assert all(a[k].equals(b[k]) for k in a)


def test_qol_time_to_deterioration_and_sensitivity() -> None:
    subjects = [_subject("P"), _subject("Q"), _subject("NOBASE")]
    qol = [
        # P: global health 70 → 61 (−9: not yet) → 60 (−10: deterioration); PD at day 122.
        ("P", -3, "QL2", 70.0),
        ("P", 61, "QL2", 61.0),
        ("P", 180, "QL2", 60.0),
        # P: fatigue (symptom, higher is worse) 20 → 29.9 (+9.9: not yet) → 30 (+10: deterioration).
        ("P", -3, "FA", 20.0),
        ("P", 61, "FA", 29.9),
        ("P", 180, "FA", 30.0),
        # Q: stable, no progression: censored at the last QoL assessment.
        ("Q", -3, "QL2", 50.0),
        ("Q", 61, "QL2", 45.0),
        ("Q", 122, "QL2", 55.0),
        # No baseline: not analysed.
        ("NOBASE", 61, "QL2", 50.0),
    ]
    ds = _build(subjects, [("P", 61, "SD"), ("P", 122, "PD"), ("Q", 61, "SD")], qol=qol)
    tte = ds.adtte.set_index(["USUBJID", "PARAMCD"])
    assert (tte.loc[("P", "TTDQL2"), "CNSR"], tte.loc[("P", "TTDQL2"), "ADY"]) == (0, 180)
    assert (tte.loc[("P", "TTDFA"), "CNSR"], tte.loc[("P", "TTDFA"), "ADY"]) == (0, 180)
    assert (tte.loc[("P", "TTDSQL2"), "CNSR"], tte.loc[("P", "TTDSQL2"), "ADY"]) == (0, 122)
    assert (tte.loc[("Q", "TTDQL2"), "CNSR"], tte.loc[("Q", "TTDQL2"), "ADY"]) == (1, 122)
    assert (tte.loc[("Q", "TTDSQL2"), "CNSR"], tte.loc[("Q", "TTDSQL2"), "ADY"]) == (1, 122)
    assert ("NOBASE", "TTDQL2") not in tte.index


@pytest.mark.parametrize("spelling", ["NON_CR_NON_PD", "non-CR/non-PD", "NON-CR/NON-PD"])
def test_non_cr_non_pd_spellings_count_as_disease_control(spelling: str) -> None:
    ds = _build([_subject("N")], [("N", 168, spelling)])
    assert _dcr(ds) == {"N": "Y"}
    assert "NON-CR/NON-PD" in set(ds.adrs["AVALC"])
