"""The named derivations (reluth.analysis.derivations): the cut-off on the engine's evaluation,
derive_tte on declared events and censoring, traceability of ADTTE to ADRS and the reads, and a
one-sentence derivation for every variable of every dataset."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from reluth.analysis import derivations as d
from reluth.analysis.datasets import build_datasets, make_sources
from reluth.analysis.exports import describe, write_dataset
from reluth.analysis.synthetic import write_synthetic_csv
from reluth.protocol.definition import load_protocol

PROTOCOL = load_protocol()
PER_MONTH = float(PROTOCOL.schedule.days_per_month)
RAND = dt.date(2023, 1, 2)


def _day(n: int) -> dt.date:
    return RAND + dt.timedelta(days=n)


def _subject(sid: str, death: int | None = None) -> dict[str, object]:
    return {
        "subject_id": sid,
        "site": "C01",
        "included_on": "2022-09-01",
        "arm": "Lutathera",
        "randomized_on": RAND.isoformat(),
        "eligible": "Y",
        "first_dose_on": "2022-09-05",
        "age": "60",
        "sex": "F",
        "ecog": "0",
        "gfr_ml_min": "80.5",
        "death_on": "" if death is None else _day(death).isoformat(),
        "last_alive_on": _day(death or 400).isoformat(),
    }


def _datasets(
    subjects: list[dict[str, object]],
    visits: list[tuple[str, int, str, str]],
    cutoff: dt.date,
):
    a = pd.DataFrame(
        [
            {
                "subject_id": s,
                "assessed_on": _day(day).isoformat(),
                "overall_response": r,
                "new_lesions": new,
                "read_id": f"{s}-{day}",
            }
            for s, day, r, new in visits
        ],
        columns=["subject_id", "assessed_on", "overall_response", "new_lesions", "read_id"],
    )
    ae = pd.DataFrame(columns=["subject_id", "term", "soc", "grade", "serious", "onset_on"])
    q = pd.DataFrame(columns=["subject_id", "assessed_on", "scale", "score"])
    return build_datasets(make_sources(pd.DataFrame(subjects), a, ae, q, protocol=PROTOCOL), cutoff)


EQUIVOCAL_CONFIRMED = [
    ("E", 56, "SD", "no"),
    ("E", 168, "SD", "equivocal"),
    ("E", 224, "PD", "yes"),
]


def _adrs(ds, param: str) -> pd.Series:
    return ds.adrs[ds.adrs["PARAMCD"] == param].set_index("USUBJID").iloc[0]


def test_a_lesion_confirmed_after_the_cutoff_redates_nothing() -> None:
    """At a cut-off before the confirming read, the equivocal lesion is not yet PD: the engine
    is asked again on the time points up to the cut-off."""
    early = _datasets([_subject("E")], EQUIVOCAL_CONFIRMED, _day(200))
    assert _adrs(early, "DCR6")["AVALC"] == "Y" and _adrs(early, "PD")["AVALC"] == "N"
    pfs = early.adtte.set_index("PARAMCD").loc["PFS"]
    assert (pfs["ADY"], pfs["CNSR"], pfs["SRCID"]) == (168, 1, "E-168")
    late = _datasets([_subject("E")], EQUIVOCAL_CONFIRMED, _day(300))
    assert _adrs(late, "DCR6")["AVALC"] == "N"
    pd_row = _adrs(late, "PD")
    assert (pd_row["ADT"], pd_row["SRCID"]) == (_day(168), "E-168")
    ovr = late.adrs[late.adrs["PARAMCD"] == "OVRLRESP"]
    assert list(zip(ovr["AVALC"], ovr["READRSP"], ovr["RDTSRCID"].fillna(""), strict=True)) == [
        ("SD", "SD", ""),
        ("PD", "SD", "E-224"),
        ("PD", "PD", ""),
    ]
    pfs = late.adtte.set_index("PARAMCD").loc["PFS"]
    assert (pfs["ADY"], pfs["CNSR"], pfs["SRCDOM"], pfs["SRCID"]) == (168, 0, "ADRS", "E-168")


def test_a_death_decides_dcr6_through_the_engine() -> None:
    visits = [("A", 56, "SD", "no"), ("A", 168, "SD", "no"), ("B", 56, "SD", "no")]
    visits += [("B", 168, "SD", "no")]
    ds = _datasets([_subject("A", death=300), _subject("B", death=160)], visits, _day(400))
    dcr = ds.adrs[ds.adrs["PARAMCD"] == "DCR6"].set_index("USUBJID")
    assert dcr.loc["A", "AVALC"] == "Y"  # alive at the landmark assessment
    assert dcr.loc["B", "AVALC"] == "N"  # an assessment after death cannot count
    assert "death on 2023-06-11, before the landmark assessment" in dcr.loc["B", "DCRRSN"]
    os_ = ds.adtte[ds.adtte["PARAMCD"] == "OS"].set_index("USUBJID")
    assert (os_.loc["B", "CNSR"], os_.loc["B", "SRCDOM"], os_.loc["B", "SRCVAR"]) == (
        0,
        "ADSL",
        "DTHDT",
    )


def test_derive_tte_takes_the_first_event_else_the_last_censoring() -> None:
    adsl = pd.DataFrame(
        {
            "USUBJID": ["E", "C", "N", "X"],
            "ARM": ["Lutathera"] * 4,
            "ITTFL": ["Y", "Y", "Y", "N"],
            "RANDDT": [RAND] * 4,
            "DTHDT": [_day(50), None, None, None],
            "DTHFL": ["Y", "N", "N", "N"],
        }
    )
    adrs = pd.DataFrame(
        {
            "USUBJID": ["E", "E", "C", "C", "X"],
            "PARAMCD": ["EV", "EV", "LAST", "LAST", "EV"],
            "ADT": [_day(80), _day(50), _day(30), _day(90), _day(10)],
            "SRCID": ["r1", "r2", "r3", "r4", "r5"],
        }
    )
    frames = {"adsl": adsl, "adrs": adrs, "adqs": pd.DataFrame()}
    event = d.Source("adrs", "ADT", "event", (("PARAMCD", "EV"),))
    death = d.Source("adsl", "DTHDT", "death", (("DTHFL", "Y"),), srcid=None)
    last = d.Source("adrs", "ADT", "last", (("PARAMCD", "LAST"),))
    out = d.derive_tte(
        d.TteParameter("T", "test"), (event, death), (last,), frames, days_per_month=PER_MONTH
    )
    rows = out.set_index("USUBJID")
    assert list(rows.index) == ["E", "C"]  # N has neither; X is not ITT
    # E: the event on day 50 and a death on day 50: the source declared first wins.
    assert (rows.loc["E", "ADY"], rows.loc["E", "CNSR"], rows.loc["E", "SRCID"]) == (50, 0, "r2")
    assert rows.loc["E", "EVNTDESC"] == "event"
    assert (rows.loc["C", "ADY"], rows.loc["C", "CNSR"], rows.loc["C", "SRCID"]) == (90, 1, "r4")
    only = d.derive_tte(
        d.TteParameter("T", "t"),
        (event,),
        (last,),
        frames,
        population=last,
        days_per_month=PER_MONTH,
    )
    assert list(only["USUBJID"]) == ["C"]


def test_tte_parameters_are_declared_as_data() -> None:
    by_code = {p.code: (events, censoring) for p, (events, censoring) in d.TTE_PARAMETERS.items()}
    assert by_code["PFS"] == ((d.PD_EVENT,), (d.LAST_ASSESSMENT, d.RANDOMIZATION))
    assert by_code["RPFS"] == ((d.PD_EVENT, d.DEATH), (d.LAST_ASSESSMENT, d.RANDOMIZATION))
    assert by_code["OS"] == ((d.DEATH,), (d.LAST_ALIVE, d.RANDOMIZATION))
    (ttd, worse, last, analysed), (ttds, sens, last_s, _) = d.qol_parameters("QL2")
    assert (ttd.code, ttds.code) == ("TTDQL2", "TTDSQL2")
    assert ("CRIT1FL", "Y") in worse[0].where and sens == (*worse, d.PD_EVENT, d.DEATH)
    assert last == last_s == (analysed,) and ("ANL01FL", "Y") in analysed.where


def test_every_variable_has_a_label_and_a_one_sentence_derivation(tmp_path: Path) -> None:
    write_synthetic_csv(tmp_path, n_included=30, seed=4, protocol=PROTOCOL)
    from reluth.analysis.datasets import from_csv_dir

    ds = from_csv_dir(tmp_path, protocol=PROTOCOL)
    desc = describe(ds)
    json.dumps(desc)  # variables.json is JSON
    for name, frame in ds.frames().items():
        described = {v["name"]: v for v in desc["datasets"][name]["variables"]}
        for col in frame.columns:
            label, derivation = ds.variables[name][col]
            assert 0 < len(label) <= 40, (name, col)
            assert derivation.endswith(".") and derivation.count(". ") == 0, (name, col)
            assert described[col]["derivation"] == derivation


@pytest.mark.parametrize("param", ["PFS", "RPFS"])
def test_adtte_tumour_records_name_the_adrs_record_they_come_from(param: str) -> None:
    visits = [("P", 56, "SD", "no"), ("P", 112, "PD", "no"), ("C", 56, "SD", "no")]
    visits += [("C", 112, "NE", "no")]
    ds = _datasets([_subject("P"), _subject("C")], visits, _day(400))
    tte = ds.adtte[ds.adtte["PARAMCD"] == param].set_index("USUBJID")
    assert (tte.loc["P", "CNSR"], tte.loc["P", "SRCID"]) == (0, _adrs(ds, "PD")["SRCID"])
    lsta = ds.adrs[(ds.adrs["PARAMCD"] == "LSTA") & (ds.adrs["USUBJID"] == "C")].iloc[0]
    assert (tte.loc["C", "CNSR"], tte.loc["C", "ADT"], tte.loc["C", "SRCID"]) == (
        1,
        lsta["ADT"],
        "C-56",
    )


def test_xpt_refuses_text_longer_than_sas_transport_v5_holds(tmp_path: Path) -> None:
    frame = pd.DataFrame({"USUBJID": ["A"], "DCRRSN": ["x" * 201]})
    with pytest.raises(ValueError, match=r"adrs\.DCRRSN: a value of 201 bytes"):
        write_dataset("adrs", frame, "xpt", tmp_path)
    assert write_dataset("adrs", frame.assign(DCRRSN="x" * 200), "xpt", tmp_path).exists()
