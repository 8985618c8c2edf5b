"""The derivations of the ReLUTH endpoints, one named function each (admiral's style).

Every clinical decision is the engine's: the RECIST 1.1 rules (time-point response, re-dating of
PD by a confirmed equivocal new lesion, BOR, month-6 landmark) are
:mod:`reluth.response.recist`, read from what central review stored or asked of the same engine
on the same time points; QoL deterioration is :func:`reluth.qol.scoring.deteriorated`. What
is written here is the SAP's bookkeeping around them: which records, which population, which
dates, and the events and censoring of each time-to-event parameter, declared as data
(:data:`TTE_PARAMETERS`) and applied by one function, :func:`derive_tte`.

SAP definitions cited below (Deshayes E, et al. BMC Cancer 2022;22:1346, "Statistical
analysis"): the primary endpoint is the disease control rate at 6 months from randomization
(CR, PR, SD by RECIST 1.1, evaluation every 2 months); non-evaluable patients count as
failures; ITT = all randomized patients by randomized arm; PP = eligible, randomized, treated,
with at least two evaluations; PFS = randomization to progression by independent central review;
rPFS = progression by central review or death, whichever first; OS = death from any cause.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd

from reluth.qol.scoring import deteriorated
from reluth.response import recist

# The engine's options (``recist.RecistOptions.from_protocol``: the protocol file's month-6
# landmark, week 24 +/- 28 days, and minimum SD duration, 42 days) and the days in a month
# (30.4375) are the protocol's, passed in from :class:`reluth.analysis.design.AnalysisDesign`.


# ---------------------------------------------------------------------------------------------
# Tumour response: the engine's evaluation of one subject's time points


@dataclass(frozen=True)
class TumourTimePoint:
    """One follow-up of a subject: the response as read and its source record."""

    source: str  # "central read 12", "assessments.csv line 7", or the CSV's read_id
    date: dt.date
    as_read: recist.Response
    new_lesions: recist.NewLesions
    sum_mm: Decimal | None
    change_from_baseline_pct: Decimal | None


@dataclass(frozen=True)
class TumourRecord:
    """A subject's tumour assessments and the engine's evaluation of them (``outcome``: what
    central review stored, or what the engine gave on the CSV's time points; None when the
    assessments were evaluated before randomization)."""

    subject_id: str
    baseline_source: str | None
    baseline_sum_mm: Decimal | None
    time_points: tuple[TumourTimePoint, ...]
    outcome: recist.PatientOutcome | None

    def source_on(self, date: dt.date | None) -> str | None:
        return next((tp.source for tp in self.time_points if tp.date == date), None)


def evaluate_time_points(
    subject_id: str,
    randomization_date: dt.date,
    time_points: Sequence[TumourTimePoint],
    options: recist.RecistOptions,
    baseline_source: str | None = None,
    baseline_sum_mm: Decimal | None = None,
) -> TumourRecord:
    """A subject's time-point responses as read, evaluated by the RECIST engine
    (:func:`reluth.response.recist.patient_outcome`) with the protocol's ``options`` from the
    randomization date."""
    ordered = tuple(sorted(time_points, key=lambda tp: tp.date))
    outcome = recist.patient_outcome(
        [recist.TimePointResponse(tp.date, tp.as_read, tp.new_lesions) for tp in ordered],
        randomization_date,
        options,
    )
    return TumourRecord(subject_id, baseline_source, baseline_sum_mm, ordered, outcome)


def outcome_at(
    subject_id: str,
    record: TumourRecord | None,
    randomization_date: dt.date,
    cutoff: dt.date,
    options: recist.RecistOptions,
) -> tuple[TumourRecord, recist.PatientOutcome]:
    """The engine's evaluation of a subject at the data cut-off.

    1. Keep the time points dated on or before the cut-off.
    2. When none was cut, and the evaluation was made from this randomization date with the
       protocol file's options, it is the stored one (central review) as it stands.
    3. Otherwise ask the engine again on the kept time points as read
       (:func:`reluth.response.recist.patient_outcome`): a new lesion confirmed after the
       cut-off was not known at the cut-off, so it re-dates nothing.
    """
    if record is None:  # no assessment: the engine's BOR is NE, DCR6 a failure
        record = TumourRecord(subject_id, None, None, (), None)
    kept = tuple(tp for tp in record.time_points if tp.date <= cutoff)
    stored = record.outcome
    if (
        stored is not None
        and len(kept) == len(record.time_points)
        and stored.randomization_date == randomization_date
        and stored.options == options
    ):
        return record, stored
    again = evaluate_time_points(
        record.subject_id,
        randomization_date,
        kept,
        options,
        record.baseline_source,
        record.baseline_sum_mm,
    )
    assert again.outcome is not None
    return again, again.outcome


def _day(start: dt.date, when: dt.date | None) -> float:
    return float("nan") if when is None else float((when - start).days)


def visit_label(ady: float, days_per_month: float) -> str:
    """``Baseline`` on or before randomization, else ``Month n`` (n = ADY / the protocol's
    days per month, 30.4375, rounded)."""
    if pd.isna(ady) or ady <= 0:
        return "Baseline"
    return f"Month {round(ady / days_per_month)}"


def derive_ovrlresp(
    record: TumourRecord, outcome: recist.PatientOutcome, arm: str, days_per_month: float
) -> list[dict[str, Any]]:
    """ADRS ``OVRLRESP``: one record per time point of the engine's evaluation.

    1. ``READRSP``: the overall response the engine gave at that time point as read
       (RECIST 1.1 Tables 1-2), ``AVALC``: after the patient-level rules (PD re-dated by a
       new lesion confirmed at ``RDTSRCID``, RECIST 1.1 §4.3.2).
    2. ``TSUM``, ``BTSUM``, ``PCHG``: the sums of target diameters and the engine's percent
       change from baseline (Decimals).
    3. ``SRCID``: the read (or CSV line) the time point comes from.
    """
    start = outcome.randomization_date
    rows = []
    for tp, point in zip(record.time_points, outcome.time_points, strict=True):
        ady = _day(start, tp.date)
        rows.append(
            {
                "USUBJID": record.subject_id,
                "PARAMCD": "OVRLRESP",
                "PARAM": "Overall response by central review (RECIST 1.1)",
                "ADT": tp.date,
                "ADY": ady,
                "AVISIT": visit_label(ady, days_per_month),
                "AVALC": point.overall.value,
                "READRSP": point.as_read.value,
                "RDTSRCID": record.source_on(point.redated_by),
                "TSUM": tp.sum_mm,
                "BTSUM": record.baseline_sum_mm,
                "PCHG": tp.change_from_baseline_pct,
                "SRCID": tp.source,
                "ARM": arm,
            }
        )
    return rows


def derive_bor(record: TumourRecord, outcome: recist.PatientOutcome, arm: str) -> dict[str, Any]:
    """ADRS ``BOR``: the best overall response, as the RECIST engine decided it.

    1. ``AVALC``, ``ADT``: :attr:`PatientOutcome.best_overall_response` and its date (engine:
       :func:`reluth.response.recist.best_overall_response` — up to and including the first
       PD; SD and NON-CR/NON-PD only from the protocol file's minimum SD duration after
       randomization, earlier ones NE; no confirmation in this randomized trial, RECIST 1.1
       §4.4).
    2. ``BORRULE``: that rule in words, with the minimum SD duration used.
    3. ``SRCID``: the read of the best response; ``PCHG``: the best (lowest) percent change of
       the target sum after randomization (for the waterfall plot).
    Population: ITT (SAP). No assessment gives NE.
    """
    start = outcome.randomization_date
    changes = [
        tp.change_from_baseline_pct
        for tp in record.time_points
        if tp.change_from_baseline_pct is not None and tp.date > start
    ]
    when = outcome.best_overall_response_date
    return {
        "USUBJID": record.subject_id,
        "PARAMCD": "BOR",
        "PARAM": "Best overall response by central review (RECIST 1.1)",
        "ADT": when,
        "ADY": _day(start, when),
        "AVALC": outcome.best_overall_response.value,
        "BORRULE": outcome.bor_rule,
        "PCHG": min(changes) if changes else None,
        "SRCID": record.source_on(when),
        "ARM": arm,
    }


def derive_pd(record: TumourRecord, outcome: recist.PatientOutcome, arm: str) -> dict[str, Any]:
    """ADRS ``PD``: the first progression by central review (``AVALC`` Y/N, ``ADT``): the
    engine's :attr:`PatientOutcome.first_pd_date`, after re-dating; ``SRCID`` is that read."""
    start, when = outcome.randomization_date, outcome.first_pd_date
    return {
        "USUBJID": record.subject_id,
        "PARAMCD": "PD",
        "PARAM": "Disease progression by central review (RECIST 1.1)",
        "ADT": when,
        "ADY": _day(start, when),
        "AVALC": "N" if when is None else "Y",
        "SRCID": record.source_on(when),
        "ARM": arm,
    }


def derive_lsta(
    record: TumourRecord, outcome: recist.PatientOutcome, arm: str
) -> dict[str, Any] | None:
    """ADRS ``LSTA``: the last evaluable (not NE) assessment after randomization, the date
    PFS and rPFS are censored at; None when there is none."""
    start = outcome.randomization_date
    evaluable = [
        (tp, point)
        for tp, point in zip(record.time_points, outcome.time_points, strict=True)
        if tp.date > start and point.overall is not recist.Response.NE
    ]
    if not evaluable:
        return None
    tp, point = evaluable[-1]
    return {
        "USUBJID": record.subject_id,
        "PARAMCD": "LSTA",
        "PARAM": "Last evaluable tumour assessment by central review",
        "ADT": tp.date,
        "ADY": _day(start, tp.date),
        "AVALC": point.overall.value,
        "SRCID": tp.source,
        "ARM": arm,
    }


def derive_dcr6(
    record: TumourRecord,
    outcome: recist.PatientOutcome,
    arm: str,
    death_date: dt.date | None,
) -> dict[str, Any]:
    """ADRS ``DCR6``: disease control at the month-6 landmark, the primary endpoint.

    1. Without a death by the cut-off: the engine's decision as it stands
       (:attr:`PatientOutcome.disease_control_month6`, i.e. what central review stored).
    2. After a death: the engine's
       :func:`reluth.response.recist.disease_control_at_landmark` with the death date (a
       patient who died before the landmark assessment cannot be evaluated at month 6).
    3. ``AVALC`` Y/N, ``AVAL`` 1/0, ``DCRRSN`` the engine's reason, ``ADT`` the landmark
       assessment and ``SRCID`` its read (or the first PD's read when PD decided it).
    SAP: disease control = CR, PR, SD (NON-CR/NON-PD for non-target disease only) at 6 months
    from randomization; the landmark window is the protocol file's ``landmark_month6``;
    non-evaluable patients count as failures. Population: ITT and PP.
    """
    control = outcome.disease_control_month6
    reason = outcome.disease_control_month6_reason
    landmark = outcome.landmark_date
    if death_date is not None:
        control, reason, landmark = recist.disease_control_at_landmark(
            outcome.time_points,
            outcome.randomization_date,
            outcome.first_pd_date,
            outcome.options,
            death_date,
        )
    source = record.source_on(landmark) or record.source_on(outcome.first_pd_date)
    return {
        "USUBJID": record.subject_id,
        "PARAMCD": "DCR6",
        "PARAM": "Disease control at 6 months by central review (CR, PR, SD)",
        "ADT": landmark,
        "ADY": _day(outcome.randomization_date, landmark),
        "AVALC": "Y" if control else "N",
        "AVAL": 1.0 if control else 0.0,
        "DCRRSN": reason,
        "SRCID": source,
        "ARM": arm,
    }


# ---------------------------------------------------------------------------------------------
# QoL


def derive_deterioration(
    base: Decimal | None, score: Decimal, kind: str, analysed: bool
) -> str | None:
    """ADQS ``CRIT1FL``: Y when a post-randomization score is worse than the subject's baseline
    by at least 10 points (the QoL engine's :func:`reluth.qol.scoring.deteriorated`: lower for
    functional and global scales, higher for symptom scales; NETTER-1, Strosberg 2018);
    None for records not analysed (baseline, or no baseline)."""
    if not analysed or base is None:
        return None
    return "Y" if deteriorated(base, score, higher_is_better=kind != "symptom") else "N"


# ---------------------------------------------------------------------------------------------
# Time to event: events and censoring declared as data (admiral's event_source/censor_source)


@dataclass(frozen=True)
class Source:
    """Records of an analysis dataset that give an event or a censoring date.

    ``where``: variable == value conditions; ``date``: the date variable; ``srcid``: the
    variable naming the source record (None: the dataset's record is the source)."""

    dataset: str  # "adsl" | "adrs" | "adqs"
    date: str
    description: str
    where: tuple[tuple[str, str], ...] = ()
    srcid: str | None = "SRCID"


@dataclass(frozen=True)
class TteParameter:
    code: str
    label: str


PD_EVENT = Source(
    "adrs", "ADT", "progression (central review)", (("PARAMCD", "PD"), ("AVALC", "Y"))
)
DEATH = Source("adsl", "DTHDT", "death", (("DTHFL", "Y"),), srcid=None)
LAST_ASSESSMENT = Source(
    "adrs", "ADT", "last evaluable assessment (central review)", (("PARAMCD", "LSTA"),)
)
RANDOMIZATION = Source("adsl", "RANDDT", "randomization (no evaluable assessment)", srcid=None)
LAST_ALIVE = Source("adsl", "LSTALVDT", "last known alive", srcid=None)

#: Parameter -> (events, censoring). The SAP's definitions: PFS is progression only; rPFS
#: progression or death, whichever first; both censored at the last evaluable assessment, or
#: at randomization without one; OS censored at the last date known alive.
TTE_PARAMETERS: dict[TteParameter, tuple[tuple[Source, ...], tuple[Source, ...]]] = {
    TteParameter("PFS", "PFS by central review (months)"): (
        (PD_EVENT,),
        (LAST_ASSESSMENT, RANDOMIZATION),
    ),
    TteParameter("RPFS", "Radiological PFS, central review or death (months)"): (
        (PD_EVENT, DEATH),
        (LAST_ASSESSMENT, RANDOMIZATION),
    ),
    TteParameter("OS", "Overall survival (months)"): ((DEATH,), (LAST_ALIVE, RANDOMIZATION)),
}


def qol_parameters(
    scale: str,
) -> list[tuple[TteParameter, tuple[Source, ...], tuple[Source, ...], Source]]:
    """Time to QoL deterioration of one scale (NETTER-1, Strosberg 2018) and its sensitivity
    analysis, as (parameter, events, censoring, population): both analyse the subjects with a
    baseline and a later score of the scale (ADQS ``ANL01FL``) and are censored at the last of
    those scores; TTD's event is the first deterioration (ADQS ``CRIT1FL``), TTDS also counts
    progression or death."""
    worse = Source(
        "adqs",
        "ADT",
        ">=10-point deterioration",
        (("PARAMCD", scale), ("CRIT1FL", "Y")),
    )
    last = Source("adqs", "ADT", "last QoL assessment", (("PARAMCD", scale), ("ANL01FL", "Y")))
    return [
        (
            TteParameter(f"TTD{scale}", f"Time to QoL deterioration, {scale} (months)"),
            (worse,),
            (last,),
            last,
        ),
        (
            TteParameter(
                f"TTDS{scale}",
                f"Time to QoL deterioration, progression or death, {scale} (months)",
            ),
            (worse, PD_EVENT, DEATH),
            (last,),
            last,
        ),
    ]


def _records(source: Source, frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    frame = frames[source.dataset]
    keep = frame[source.date].notna()
    for variable, value in source.where:
        keep &= frame[variable] == value
    return frame[keep]


def derive_tte(
    param: TteParameter,
    events: Sequence[Source],
    censoring: Sequence[Source],
    frames: Mapping[str, pd.DataFrame],
    population: Source | None = None,
    *,
    days_per_month: float,
) -> pd.DataFrame:
    """One ADTTE parameter from its declared events and censoring (admiral
    ``derive_param_tte``).

    1. Subjects: the ITT population (ADSL ``ITTFL`` = Y, analysed as randomized, SAP),
       restricted to those with a record in ``population`` when given.
    2. Event: the earliest date among the records of ``events`` (on the same date, the
       source declared first); ``CNSR`` = 0.
    3. Otherwise censoring: the latest date among the records of ``censoring``; ``CNSR`` = 1.
       A subject with neither gets no record.
    4. ``STARTDT`` = randomization, ``ADY`` = days from it (never negative), ``AVAL`` =
       ADY / ``days_per_month`` (the protocol's 30.4375) months; ``EVNTDESC``, ``SRCDOM``, ``SRCVAR`` and ``SRCID`` name the
       source record.
    The analysis datasets are already cut at the data cut-off, so no date lies after it.
    """
    adsl = frames["adsl"]
    itt = adsl[adsl["ITTFL"] == "Y"]
    if population is not None:
        itt = itt[itt["USUBJID"].isin(set(_records(population, frames)["USUBJID"]))]

    def candidates(sources: Sequence[Source]) -> dict[str, list[tuple[dt.date, int, dict]]]:
        out: dict[str, list[tuple[dt.date, int, dict]]] = {}
        for rank, src in enumerate(sources):
            recs = _records(src, frames)
            ids = recs["SRCID"] if src.srcid and src.srcid in recs else [None] * len(recs)
            for sid, when, srcid in zip(recs["USUBJID"], recs[src.date], ids, strict=True):
                info = {
                    "EVNTDESC": src.description,
                    "SRCDOM": src.dataset.upper(),
                    "SRCVAR": src.date,
                    "SRCID": srcid,
                }
                out.setdefault(str(sid), []).append((when, rank, info))
        return out

    event_of = candidates(events)
    censor_of = candidates(censoring)
    rows = []
    for s in itt.to_dict("records"):
        sid = str(s["USUBJID"])
        if sid in event_of:
            when, _rank, info = min(event_of[sid], key=lambda c: (c[0], c[1]))
            cnsr = 0
        elif sid in censor_of:
            when, _rank, info = max(censor_of[sid], key=lambda c: (c[0], -c[1]))
            cnsr = 1
        else:
            continue
        start = s["RANDDT"]
        days = float(max((when - start).days, 0))
        rows.append(
            {
                "USUBJID": sid,
                "ARM": s["ARM"],
                "PARAMCD": param.code,
                "PARAM": param.label,
                "STARTDT": start,
                "ADT": when,
                "ADY": days,
                "AVAL": days / days_per_month,
                "CNSR": cnsr,
                **info,
            }
        )
    return pd.DataFrame(rows, columns=TTE_COLUMNS)


TTE_COLUMNS = [
    "USUBJID",
    "ARM",
    "PARAMCD",
    "PARAM",
    "STARTDT",
    "ADT",
    "ADY",
    "AVAL",
    "CNSR",
    "EVNTDESC",
    "SRCDOM",
    "SRCVAR",
    "SRCID",
]
