"""The one analysis-dataset layer: ADSL / ADRS / ADTTE / ADAE / ADQS-like DataFrames.

Every analysis reads these frames and nothing else. ``build_datasets`` derives them from typed
*source* frames and the subjects' tumour evaluations, which come either from CSV files
(``from_csv_dir``; shape in docs/analysis.md: the time-point responses are evaluated by the
RECIST engine) or from the trial database (``from_database``: the evaluation central review
stored with each read, through the review service's read model; eGFR, strata and
eligibility as screening and randomization stored them). Both doors share every derivation.

The endpoint derivations are named functions in :mod:`reluth.analysis.derivations`
(``derive_bor``, ``derive_dcr6``, ``derive_tte`` with the events and censoring of PFS, rPFS, OS
and QoL time to deterioration declared as data); every clinical decision in them is the
RECIST or QoL engine's. The rest is written here and in docs/analysis.md:

* Populations — ITT: randomized (by randomized arm). Safety: received at least one dose after
  inclusion. Per-protocol: eligible (no major violation), randomized, in the safety population,
  with at least two tumour evaluations (not NE) after randomization.
* Data cut-off: anything dated after the cut-off is ignored; censoring dates are capped at it.
* Times: ``AVAL`` in months (days / 30.4375, the protocol file) and ``ADY`` in days since
  randomization.

The arms' values (``ARM``, ``ARMCD``), the stratification variables and their source columns,
the month and the RECIST options are the protocol's (:class:`AnalysisDesign`): every door takes
the :class:`~reluth.protocol.definition.Protocol` of the trial it analyses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reluth.analysis import derivations as d
from reluth.analysis.design import AnalysisDesign
from reluth.csvout import frame_csv_text
from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import Word, invalid
from reluth.protocol.definition import Protocol
from reluth.qol.scoring import DETERIORATION_POINTS
from reluth.response import recist
from reluth.units import to_decimal

#: Overall responses a time point may have (the RECIST engine's vocabulary).
RESPONSES = tuple(r.value for r in recist.Response if r is not recist.Response.NA)
NEW_LESIONS = tuple(n.value for n in recist.NewLesions)
# EORTC QLQ-C30 scale codes → kind (functional/global: higher is better; symptom: higher worse).
QOL_SCALE_KINDS: dict[str, str] = {
    "QL2": "global",
    "PF2": "functional",
    "RF2": "functional",
    "EF": "functional",
    "CF": "functional",
    "SF": "functional",
    **{code: "symptom" for code in ("FA", "NV", "PA", "DY", "SL", "AP", "CO", "DI", "FI")},
}

# Source-frame columns: name → (required, kind). Kinds: str, date, decimal, int, flag. The
# subjects' stratification columns are the protocol's (:func:`subject_columns`).
_SUBJECT_BASE_COLUMNS: dict[str, tuple[bool, str]] = {
    "subject_id": (True, "str"),
    "site": (True, "str"),
    "included_on": (True, "date"),
    "arm": (False, "str"),
    "randomized_on": (False, "date"),
    "not_randomized_reason": (False, "str"),
    "eligible": (True, "flag"),
    "first_dose_on": (False, "date"),
    "age": (True, "int"),
    "sex": (True, "str"),
    "ecog": (True, "int"),
    "gfr_ml_min": (True, "decimal"),
    "grade": (False, "str"),
    "death_on": (False, "date"),
    "last_alive_on": (True, "date"),
}


def subject_columns(design: AnalysisDesign) -> dict[str, tuple[bool, str]]:
    """The columns of subjects.csv: the fixed ones, then one per stratification factor."""
    out = {k: v for k, v in _SUBJECT_BASE_COLUMNS.items() if k not in ("death_on", "last_alive_on")}
    out.update({s.source_column: (False, "str") for s in design.strata})
    out["death_on"] = _SUBJECT_BASE_COLUMNS["death_on"]
    out["last_alive_on"] = _SUBJECT_BASE_COLUMNS["last_alive_on"]
    return out


ASSESSMENT_COLUMNS: dict[str, tuple[bool, str]] = {
    "subject_id": (True, "str"),
    "assessed_on": (True, "date"),
    "overall_response": (True, "str"),  # may be empty on baseline rows (<= randomization)
    "target_sum_mm": (False, "decimal"),
    "new_lesions": (False, "str"),
    "read_id": (False, "str"),
}
AE_COLUMNS: dict[str, tuple[bool, str]] = {
    "subject_id": (True, "str"),
    "term": (True, "str"),  # the dictionary-derived term (the verbatim one when uncoded)
    "soc": (False, "str"),
    "verbatim": (False, "str"),  # as the site entered it (default: term)
    "llt_code": (False, "str"),  # MedDRA lowest level term code (empty: uncoded)
    "pt_code": (False, "str"),
    "grade": (True, "int"),
    "serious": (True, "flag"),
    "onset_on": (True, "date"),
    "record_id": (False, "str"),
}
QOL_COLUMNS: dict[str, tuple[bool, str]] = {
    "subject_id": (True, "str"),
    "assessed_on": (True, "date"),
    "scale": (True, "str"),
    "score": (True, "decimal"),  # blank only with a missing_code
    "kind": (False, "str"),
    "record_id": (False, "str"),
    "missing_code": (False, "str"),  # the form registry's missing-data code (ND, ASKU, ...)
    "missing_reason": (False, "str"),
}
CM_COLUMNS: dict[str, tuple[bool, str]] = {
    "subject_id": (True, "str"),
    "drug_name": (True, "str"),
    "atc_code": (False, "str"),
    "indication": (True, "str"),
    "dose": (False, "decimal"),
    "unit": (False, "str"),
    "route": (True, "str"),
    "start_on": (False, "date"),
    "stop_on": (False, "date"),
    "ongoing": (True, "flag"),
    "record_id": (False, "str"),
}
MH_COLUMNS: dict[str, tuple[bool, str]] = {
    "subject_id": (True, "str"),
    "condition": (True, "str"),
    "start_on": (False, "date"),
    "ongoing": (True, "flag"),
    "record_id": (False, "str"),
}
DV_COLUMNS: dict[str, tuple[bool, str]] = {
    "subject_id": (True, "str"),
    "category": (True, "str"),
    "severity": (True, "str"),
    "deviation_on": (True, "date"),
    "record_id": (False, "str"),
}
#: Optional sources (a directory without them has none): name → (file, columns).
OPTIONAL_SOURCES: dict[str, tuple[str, dict[str, tuple[bool, str]]]] = {
    "conmeds": ("conmeds.csv", CM_COLUMNS),
    "medical_history": ("medical_history.csv", MH_COLUMNS),
    "deviations": ("deviations.csv", DV_COLUMNS),
}


def empty_source(name: str) -> pd.DataFrame:
    return pd.DataFrame(columns=list(OPTIONAL_SOURCES[name][1]))


#: Source name → file name (the subjects' columns depend on the protocol).
SOURCE_FILES = {
    "subjects": "subjects.csv",
    "assessments": "assessments.csv",
    "adverse_events": "adverse_events.csv",
    "qol": "qol.csv",
}


def source_columns(design: AnalysisDesign) -> dict[str, dict[str, tuple[bool, str]]]:
    return {
        "subjects": subject_columns(design),
        "assessments": ASSESSMENT_COLUMNS,
        "adverse_events": AE_COLUMNS,
        "qol": QOL_COLUMNS,
    }


#: Columns that may be empty in some rows although the column itself is required.
_BLANK_ALLOWED = {("assessments", "overall_response"), ("qol", "score")}


@dataclass(frozen=True)
class DataIssue:
    """A stored value the database door could not use: the record is left out of the
    datasets and listed (``data_issues.csv`` of an export) for the data manager to correct."""

    source: str  # subjects, assessments, adverse_events, qol
    subject_id: str | None
    record: str
    field: str
    value: str
    problem: str


#: Columns of ``data_issues.csv``.
ISSUE_COLUMNS = ("source", "subject_id", "record", "field", "value", "problem")


@dataclass(frozen=True)
class Sources:
    subjects: pd.DataFrame
    adverse_events: pd.DataFrame
    qol: pd.DataFrame
    tumour: dict[str, d.TumourRecord]  # subject id -> tumour assessments and evaluation
    input_hash: str
    design: AnalysisDesign
    assessments: pd.DataFrame = field(default_factory=pd.DataFrame)
    issues: tuple[DataIssue, ...] = ()
    conmeds: pd.DataFrame = field(default_factory=lambda: empty_source("conmeds"))
    medical_history: pd.DataFrame = field(default_factory=lambda: empty_source("medical_history"))
    deviations: pd.DataFrame = field(default_factory=lambda: empty_source("deviations"))
    #: subject id -> the site investigator's local assessments and their evaluation (database
    #: door only: ADRS's INV* parameters, RSEVAL = INVESTIGATOR)
    local_tumour: dict[str, d.TumourRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalysisDatasets:
    adsl: pd.DataFrame
    adrs: pd.DataFrame
    adtte: pd.DataFrame
    adae: pd.DataFrame
    adqs: pd.DataFrame
    cutoff: dt.date
    input_hash: str
    design: AnalysisDesign
    #: Stored records left out because a value could not be used (database door only).
    issues: tuple[DataIssue, ...] = ()
    adcm: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ADCM_COLUMNS))
    admh: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ADMH_COLUMNS))

    @property
    def variables(self) -> dict[str, dict[str, tuple[str, str]]]:
        """Label and derivation of every variable (``variables.json``)."""
        return variables(self.design)

    def issues_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [[getattr(i, c) for c in ISSUE_COLUMNS] for i in self.issues],
            columns=list(ISSUE_COLUMNS),
        )

    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            "adsl": self.adsl,
            "adrs": self.adrs,
            "adtte": self.adtte,
            "adae": self.adae,
            "adqs": self.adqs,
            "adcm": self.adcm,
            "admh": self.admh,
        }


# ---------------------------------------------------------------------------------------------
# Source validation: text (CSV) or typed values (database) → typed values


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


_FLAGS = {
    "Y": True,
    "YES": True,
    "TRUE": True,
    "1": True,
    "1.0": True,
    "N": False,
    "NO": False,
    "FALSE": False,
    "0": False,
    "0.0": False,
}


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return _plausible(value.date())
    if isinstance(value, dt.date):
        return _plausible(value)
    text = str(value).strip()
    if len(text) != 10:
        raise ValueError(text)
    return _plausible(dt.date.fromisoformat(text))


#: Clinical dates start here (as at entry, ``patients.timeline``).
EARLIEST_DATE = dt.date(1900, 1, 1)


def _plausible(day: dt.date) -> dt.date:
    if day < EARLIEST_DATE:
        raise ValueError(day)
    return day


def _as_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    number = to_decimal(value, "")
    if number != number.to_integral_value():
        raise ValueError(value)
    return int(number)


def _as_flag(value: object) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    return _FLAGS[str(value).strip().upper()]


_PARSERS: dict[str, tuple[Callable[[object], Any], str, str]] = {
    "date": (_as_date, N_("not a date from 1900-01-01"), N_("YYYY-MM-DD")),
    "decimal": (lambda v: to_decimal(v, ""), N_("not a number"), N_("a number")),
    "int": (_as_int, N_("not a whole number"), N_("an integer")),
    "flag": (_as_flag, N_("not a flag"), N_("Y, N")),
    "str": (lambda v: str(v).strip(), N_("not text"), N_("text")),
}


def _record_of(name: str, row: Mapping[str, Any], line: int) -> str:
    for key in ("record_id", "read_id"):
        if not _blank(row.get(key)):
            return str(row[key])
    if name == "subjects" and not _blank(row.get("subject_id")):
        return f"subject {row['subject_id']}"
    return f"{SOURCE_FILES[name]} line {line}"


def _issue(
    issues: list[DataIssue], name: str, row: Mapping[str, Any], line: int, col: str, problem: str
) -> None:
    sid = row.get("subject_id")
    issues.append(
        DataIssue(
            name,
            None if _blank(sid) else str(sid),
            _record_of(name, row, line),
            col,
            "" if _blank(row.get(col)) else str(row.get(col))[:200],
            problem,
        )
    )


def normalize_source(
    name: str,
    frame: pd.DataFrame,
    columns: dict[str, tuple[bool, str]],
    issues: list[DataIssue] | None = None,
) -> pd.DataFrame:
    """Check the columns and values of one source frame, text or already typed: dates become
    ``datetime.date``, decimals ``Decimal`` (exact, from their text), integers ``int``, flags
    ``bool``; empty is None (flags: False). A bad value is named with its CSV line; with
    ``issues`` (the database door) its row is left out and the value listed there instead."""
    frame = frame.reset_index(drop=True)
    records = frame.to_dict("records")
    bad: set[int] = set()
    out = pd.DataFrame(index=range(len(frame)))
    for col, (required, kind) in columns.items():
        if col not in frame.columns:
            if required:
                raise invalid(
                    f"{name}.{col}",
                    "missing_column",
                    N_("missing column"),
                    N_("{value}"),
                    value=", ".join(c for c in columns),
                )
            out[col] = pd.Series([False if kind == "flag" else None] * len(frame), dtype=object)
            continue
        parse, problem, accepted = _PARSERS[kind]
        values: list[Any] = []
        for i, raw in enumerate(frame[col].tolist()):
            line = i + 2
            if _blank(raw):
                if required and (name, col) not in _BLANK_ALLOWED:
                    if issues is None:
                        raise invalid(
                            f"{name}.{col}",
                            "empty_value_line",
                            N_("empty value at line {line}"),
                            N_("a value"),
                            line=str(line),
                        )
                    _issue(issues, name, records[i], line, col, "empty value")
                    bad.add(i)
                values.append(False if kind == "flag" else None)
                continue
            try:
                values.append(parse(raw))
            except (ValueError, KeyError, ValidationError, ArithmeticError, OverflowError):
                if issues is None:
                    raise invalid(
                        f"{name}.{col}",
                        "not_parsed_at_line",
                        N_("{problem_name} at line {line}: {raw}"),
                        N_("{accepted_name}"),
                        problem_name=Word(problem),
                        line=str(line),
                        raw=repr(raw),
                        accepted_name=Word(accepted),
                    ) from None
                _issue(issues, name, records[i], line, col, f"{problem} (accepted: {accepted})")
                bad.add(i)
                values.append(None)
        out[col] = pd.Series(values, dtype=bool if kind == "flag" else object)
    if bad:
        out = out.drop(index=sorted(bad)).reset_index(drop=True)
    return out


def _hash_frames(frames: dict[str, pd.DataFrame]) -> str:
    h = hashlib.sha256()
    for name in sorted(frames):
        h.update(name.encode())
        h.update(frame_csv_text(frames[name]).encode())
    return h.hexdigest()


def _response_code(value: object) -> str:
    """Overall response as stored anywhere (``NON_CR_NON_PD``, ``non-CR/non-PD``) → our code."""
    text = str(value).strip().upper()
    squashed = "".join(ch for ch in text if ch.isalnum())
    return "NON-CR/NON-PD" if squashed == "NONCRNONPD" else text


class _Refusals:
    """How ``_validated`` treats a row that breaks a rule: the CSV door raises on the first
    (one message naming the field), the database door leaves the row out and lists it."""

    def __init__(self, norm: dict[str, pd.DataFrame], issues: list[DataIssue] | None) -> None:
        self.norm = norm
        self.issues = issues

    def refuse(
        self,
        name: str,
        mask: pd.Series,
        col: str,
        problem: Callable[[Mapping[str, Any]], str],
        accepted: str,
    ) -> None:
        frame = self.norm[name]
        mask = mask.fillna(False).astype(bool).reset_index(drop=True)
        if not mask.any():
            return
        rows = frame[mask.to_numpy()].to_dict("records")
        if self.issues is None:
            raise ValidationError(f"{name}.{col}", problem(rows[0]), accepted)
        positions = [int(i) for i in np.flatnonzero(mask.to_numpy())]
        for pos, row in zip(positions, rows, strict=True):
            _issue(self.issues, name, row, pos + 2, col, f"{problem(row)} (accepted: {accepted})")
        self.norm[name] = frame[~mask.to_numpy()].reset_index(drop=True)


def _validated(
    design: AnalysisDesign,
    subjects: pd.DataFrame,
    assessments: pd.DataFrame,
    adverse_events: pd.DataFrame,
    qol: pd.DataFrame,
    issues: list[DataIssue] | None = None,
) -> dict[str, pd.DataFrame]:
    raw = {
        "subjects": subjects,
        "assessments": assessments,
        "adverse_events": adverse_events,
        "qol": qol,
    }
    columns = source_columns(design)
    norm = {n: normalize_source(n, raw[n], columns[n], issues) for n in raw}
    aliases = design.arm_aliases
    r = _Refusals(norm, issues)
    r.refuse(
        "subjects",
        norm["subjects"]["subject_id"].duplicated(),
        "subject_id",
        lambda row: f"duplicate {row['subject_id']!r}",
        "one row per subject",
    )
    arm = norm["subjects"]["arm"].map(lambda a: None if a is None else aliases.get(a.lower(), "?"))
    r.refuse(
        "subjects", arm == "?", "arm", lambda row: f"unknown {row['arm']!r}", ", ".join(aliases)
    )
    subj = norm["subjects"]
    subj["arm"] = (
        subj["arm"].map(lambda a: None if a is None else aliases[a.lower()]).astype(object)
    )
    r.refuse(
        "subjects",
        subj["arm"].notna() & subj["randomized_on"].isna(),
        "randomized_on",
        lambda row: "missing for a randomized subject",
        "a date",
    )
    a = norm["assessments"]
    a["overall_response"] = a["overall_response"].map(
        lambda v: None if v is None else _response_code(v)
    )
    r.refuse(
        "assessments",
        a["overall_response"].notna() & ~a["overall_response"].isin(RESPONSES),
        "overall_response",
        lambda row: f"unknown {row['overall_response']!r}",
        ", ".join(RESPONSES),
    )
    a = norm["assessments"]
    a["new_lesions"] = a["new_lesions"].map(lambda v: "no" if v is None else v.lower())
    r.refuse(
        "assessments",
        ~a["new_lesions"].isin(NEW_LESIONS),
        "new_lesions",
        lambda row: f"unknown {row['new_lesions']!r}",
        ", ".join(NEW_LESIONS),
    )
    r.refuse(
        "adverse_events",
        ~norm["adverse_events"]["grade"].isin([1, 2, 3, 4, 5]),
        "grade",
        lambda row: "not a CTCAE grade",
        "1, 2, 3, 4, 5",
    )
    known = set(norm["subjects"]["subject_id"])
    left_out = set(raw["subjects"].get("subject_id", pd.Series(dtype=object))) - known

    def _unknown(row: Mapping[str, Any]) -> str:
        if row["subject_id"] in left_out:
            return "its subject is left out (see the subject's issue)"
        return f"unknown subject {row['subject_id']!r}"

    for name in ("assessments", "adverse_events", "qol"):
        r.refuse(
            name,
            ~norm[name]["subject_id"].isin(known),
            "subject_id",
            _unknown,
            "a subject_id listed in subjects",
        )
    q = norm["qol"]
    q["kind"] = [
        k if k else QOL_SCALE_KINDS.get(s) for s, k in zip(q["scale"], q["kind"], strict=True)
    ]
    r.refuse(
        "qol",
        ~q["kind"].isin(["functional", "global", "symptom"]),
        "kind",
        lambda row: f"unknown kind for scale {row['scale']!r}",
        "functional, global, symptom",
    )
    q = norm["qol"]
    r.refuse(
        "qol",
        q["score"].isna() & q["missing_code"].isna(),
        "score",
        lambda row: f"empty score for scale {row['scale']!r} without a missing_code",
        "a score, or a missing_code (ND, NA, UNK, ASKU) saying why it is absent",
    )
    q = norm["qol"]
    q["record_id"] = [
        rid or f"qol.csv line {line}" for line, rid in enumerate(q["record_id"], start=2)
    ]
    return norm


def tumour_from_assessments(
    subjects: pd.DataFrame, assessments: pd.DataFrame, options: recist.RecistOptions
) -> dict[str, d.TumourRecord]:
    """The CSV door: each randomized subject's rows after randomization are its time points
    (the response as the reader scored it and the new-lesion call), evaluated by the RECIST
    engine from the randomization date; the last row on or before randomization is the
    baseline (its target sum is the reference of the percent change)."""
    randomized = {
        sid: day
        for sid, day in zip(subjects["subject_id"], subjects["randomized_on"], strict=True)
        if day is not None
    }
    by_subject: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for line, row in enumerate(assessments.to_dict("records"), start=2):
        by_subject.setdefault(str(row["subject_id"]), []).append((line, row))
    out: dict[str, d.TumourRecord] = {}
    for sid, rows in by_subject.items():
        rand = randomized.get(sid)
        if rand is None:
            continue
        rows.sort(key=lambda r: r[1]["assessed_on"])
        before = [(line, r) for line, r in rows if r["assessed_on"] <= rand]
        base_line, base = before[-1] if before else (None, None)
        base_sum = None if base is None else base["target_sum_mm"]
        points = []
        for line, r in rows:
            if r["assessed_on"] <= rand:
                continue
            if r["overall_response"] is None:
                raise invalid(
                    "assessments.overall_response",
                    "empty_value_line_after_randomization",
                    N_("empty value at line {line} (after randomization)"),
                    N_("{responses}"),
                    line=str(line),
                    responses=", ".join(RESPONSES),
                )
            tsum = r["target_sum_mm"]
            points.append(
                d.TumourTimePoint(
                    source=r["read_id"] or f"assessments.csv line {line}",
                    date=r["assessed_on"],
                    as_read=recist.Response(r["overall_response"]),
                    new_lesions=recist.NewLesions(r["new_lesions"]),
                    sum_mm=tsum,
                    change_from_baseline_pct=(
                        None
                        if tsum is None or base_sum is None
                        else recist.percent_change(tsum, base_sum)
                    ),
                )
            )
        baseline_source = None
        if base is not None:
            baseline_source = base["read_id"] or f"assessments.csv line {base_line}"
        out[sid] = d.evaluate_time_points(sid, rand, points, options, baseline_source, base_sum)
    return out


def make_sources(
    subjects: pd.DataFrame,
    assessments: pd.DataFrame,
    adverse_events: pd.DataFrame,
    qol: pd.DataFrame,
    *,
    protocol: Protocol,
) -> Sources:
    """Validated typed sources of the CSV door (the tumour responses evaluated by the engine
    with the protocol's options)."""
    design = AnalysisDesign.of(protocol)
    raw = {
        "subjects": subjects,
        "assessments": assessments,
        "adverse_events": adverse_events,
        "qol": qol,
    }
    norm = _validated(design, **raw)
    tumour = tumour_from_assessments(norm["subjects"], norm["assessments"], design.recist_options)
    return Sources(
        norm["subjects"],
        norm["adverse_events"],
        norm["qol"],
        tumour,
        _hash_frames(raw),
        design,
        norm["assessments"],
    )


def _source_csv(file: Path) -> pd.DataFrame:
    """One source file read as text (every value kept as written); refused when unreadable."""
    try:
        return pd.read_csv(file, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise invalid(
            str(file),
            "unreadable_csv",
            N_("unreadable CSV: {exc_name}"),
            N_("UTF-8 CSV"),
            exc_name=str(exc),
        ) from None


def from_csv_dir(
    path: Path | str, cutoff: dt.date | None = None, *, protocol: Protocol
) -> AnalysisDatasets:
    """Read subjects.csv, assessments.csv, adverse_events.csv and qol.csv from a directory."""
    base = Path(path)
    if not base.is_dir():
        raise invalid(
            "--data",
            "not_directory_3",
            N_("{base} is not a directory"),
            N_("a directory of CSV files"),
            base=str(base),
        )
    frames: dict[str, pd.DataFrame] = {}
    for name, fname in SOURCE_FILES.items():
        file = base / fname
        if not file.exists():
            raise invalid(
                "--data",
                "missing",
                N_("{fname} missing in {base}"),
                N_("{values}"),
                fname=str(fname),
                base=str(base),
                values=", ".join(SOURCE_FILES.values()),
            )
        frames[name] = _source_csv(file)
    sources = make_sources(**frames, protocol=protocol)
    extra: dict[str, pd.DataFrame] = {}
    for name, (fname, columns) in OPTIONAL_SOURCES.items():
        file = base / fname
        if not file.exists():
            continue
        raw = _source_csv(file)
        extra[name] = _checked_optional(name, normalize_source(name, raw, columns), sources, None)
    if extra:
        sources = dataclasses.replace(sources, **extra)
    return build_datasets(sources, cutoff)


def _checked_optional(
    name: str, frame: pd.DataFrame, sources: Sources, issues: list[DataIssue] | None
) -> pd.DataFrame:
    """An optional source's rows of known subjects, with its coded values checked (the CSV
    door refuses the first bad row; the database door lists it and leaves it out)."""
    norm = {name: frame}
    r = _Refusals(norm, issues)
    known = set(sources.subjects["subject_id"])
    r.refuse(
        name,
        ~norm[name]["subject_id"].isin(known),
        "subject_id",
        lambda row: f"unknown subject {row['subject_id']!r}",
        "a subject_id listed in subjects",
    )
    if name == "deviations":
        r.refuse(
            name,
            ~norm[name]["severity"].isin(["major", "minor"]),
            "severity",
            lambda row: f"unknown {row['severity']!r}",
            "major, minor",
        )
    out = norm[name]
    out["record_id"] = [
        rid or f"{OPTIONAL_SOURCES[name][0]} line {line}"
        for line, rid in enumerate(out["record_id"], start=2)
    ]
    return out


# ---------------------------------------------------------------------------------------------
# Derivations


def _days(a: object, b: object) -> float:
    if a is None or b is None or pd.isna(a) or pd.isna(b):
        return float("nan")
    return float((b - a).days)  # type: ignore[operator]


def _cap(day: dt.date | None, cutoff: dt.date) -> dt.date | None:
    return None if day is None else min(day, cutoff)


def _default_cutoff(s: Sources) -> dt.date:
    dates: list[dt.date] = []
    for col in ("included_on", "randomized_on", "death_on", "last_alive_on"):
        dates += [x for x in s.subjects[col] if x is not None]
    dates += [tp.date for record in s.tumour.values() for tp in record.time_points]
    dates += list(s.qol["assessed_on"])
    if not dates:
        raise invalid(
            "cutoff",
            "no_dated_record_for_cutoff",
            N_("no dated record to derive a cut-off from"),
            N_("data of included patients"),
        )
    return max(dates)


def build_datasets(sources: Sources, cutoff: dt.date | None = None) -> AnalysisDatasets:
    """Derive the five analysis datasets from validated sources."""
    if sources.subjects.empty:
        raise invalid(
            "subjects",
            "no_included_patient",
            N_("no included patient"),
            N_("data of included patients"),
        )
    cut = cutoff or _default_cutoff(sources)
    design = sources.design
    adsl = derive_adsl(sources, cut)
    adrs = derive_adrs(adsl, sources.tumour, cut, design)
    adrs = with_local_assessments(adrs, adsl, sources.local_tumour, cut, design)
    adsl = adsl.merge(
        adrs.loc[adrs["PARAMCD"] == "DCR6", ["USUBJID", "AVALC"]].rename(columns={"AVALC": "DCR6"}),
        on="USUBJID",
        how="left",
    )
    n_eval = (
        adrs[(adrs["PARAMCD"] == "OVRLRESP") & (adrs["ADY"] > 0) & (adrs["AVALC"] != "NE")]
        .groupby("USUBJID")
        .size()
    )
    adsl["NEVAL"] = adsl["USUBJID"].map(n_eval).fillna(0).astype(int)
    dv = sources.deviations
    major = set(dv.loc[(dv["severity"] == "major") & (dv["deviation_on"] <= cut), "subject_id"])
    adsl["MAJDVFL"] = np.where(adsl["USUBJID"].isin(major), "Y", "N")
    adsl["PPROTFL"] = np.where(
        (adsl["ITTFL"] == "Y")
        & (adsl["ELIGFL"] == "Y")
        & (adsl["SAFFL"] == "Y")
        & (adsl["NEVAL"] >= 2)
        & (adsl["MAJDVFL"] == "N"),
        "Y",
        "N",
    )
    adqs = derive_adqs(adsl, sources.qol, cut, design)
    adtte = derive_adtte(adsl, adrs, adqs, design)
    adae = derive_adae(adsl, sources.adverse_events, cut)
    return AnalysisDatasets(
        adsl,
        adrs,
        adtte,
        adae,
        adqs,
        cut,
        sources.input_hash,
        design,
        sources.issues,
        adcm=derive_adcm(adsl, sources.conmeds, cut),
        admh=derive_admh(adsl, sources.medical_history, cut),
    )


def derive_adsl(s: Sources, cut: dt.date) -> pd.DataFrame:
    sub = s.subjects[s.subjects["included_on"] <= cut].reset_index(drop=True)
    rand = sub["arm"].notna() & sub["randomized_on"].map(lambda x: x is not None and x <= cut)
    strata = {v.variable: sub[v.source_column] for v in s.design.strata}
    adsl = pd.DataFrame(
        {
            "USUBJID": sub["subject_id"],
            "SITEID": sub["site"],
            "INCLDT": sub["included_on"],
            "RANDDT": sub["randomized_on"].where(rand, None),
            "ARM": sub["arm"].where(rand, None),
            "ARMCD": sub["arm"].where(rand, None).map(s.design.arm_codes),
            "NRANDRS": sub["not_randomized_reason"],
            "TRTSDT": sub["first_dose_on"].map(lambda x: x if x is not None and x <= cut else None),
            "AGE": sub["age"],
            "SEX": sub["sex"],
            "ECOG": sub["ecog"],
            "GFR": sub["gfr_ml_min"],
            "GRADE": sub["grade"],
            **strata,
            "DTHDT": sub["death_on"].map(lambda x: x if x is not None and x <= cut else None),
            "LSTALVDT": sub["last_alive_on"].map(lambda x: _cap(x, cut)),
        }
    )
    adsl["RANDFL"] = np.where(rand, "Y", "N")
    adsl["ITTFL"] = adsl["RANDFL"]
    adsl["SAFFL"] = np.where(adsl["TRTSDT"].notna(), "Y", "N")
    adsl["ELIGFL"] = np.where(sub["eligible"], "Y", "N")
    adsl["DTHFL"] = np.where(adsl["DTHDT"].notna(), "Y", "N")
    return adsl


ADRS_COLUMNS = [
    "USUBJID",
    "PARAMCD",
    "PARAM",
    "ADT",
    "ADY",
    "AVISIT",
    "AVALC",
    "AVAL",
    "READRSP",
    "RDTSRCID",
    "TSUM",
    "BTSUM",
    "PCHG",
    "BORRULE",
    "DCRRSN",
    "SRCID",
    "ARM",
    "RSEVAL",
]

#: Evaluator of an ADRS record (CDISC controlled terminology EVAL): central review's records
#: keep their parameters; the site investigator's local assessments are the INV* parameters.
CENTRAL_EVAL, LOCAL_EVAL = "INDEPENDENT ASSESSOR", "INVESTIGATOR"
LOCAL_PARAMS = {
    "OVRLRESP": "INVRESP",
    "BOR": "INVBOR",
    "PD": "INVPD",
    "LSTA": "INVLSTA",
    "DCR6": "INVDCR6",
}


def with_local_assessments(
    adrs: pd.DataFrame,
    adsl: pd.DataFrame,
    local: Mapping[str, d.TumourRecord],
    cut: dt.date,
    design: AnalysisDesign,
) -> pd.DataFrame:
    """ADRS with the evaluator of each record (RSEVAL) and, for the ITT subjects with local
    assessments, the same parameters derived from the investigator's reads by the same engine
    as separate parameters (``INVRESP``, ``INVBOR``, ...; PARAM says "by the investigator"), so
    every analysis of central review reads exactly the records it read before."""
    adrs = adrs.assign(RSEVAL=CENTRAL_EVAL)
    if not local:
        return adrs[ADRS_COLUMNS]
    subset = adsl[adsl["USUBJID"].isin(list(local))]
    inv = derive_adrs(subset, local, cut, design)
    if inv.empty:
        return adrs[ADRS_COLUMNS]
    inv = inv.assign(
        PARAMCD=inv["PARAMCD"].map(LOCAL_PARAMS),
        PARAM=inv["PARAM"].str.replace("by central review", "by the investigator", regex=False),
        RSEVAL=LOCAL_EVAL,
    )
    return pd.concat([adrs, inv[ADRS_COLUMNS]], ignore_index=True)


def derive_adrs(
    adsl: pd.DataFrame,
    tumour: Mapping[str, d.TumourRecord],
    cut: dt.date,
    design: AnalysisDesign,
) -> pd.DataFrame:
    """Per ITT subject: the engine's evaluation at the cut-off (:func:`derivations.outcome_at`),
    then one ``OVRLRESP`` record per time point and the ``BOR``, ``PD``, ``LSTA`` and ``DCR6``
    records (:mod:`reluth.analysis.derivations`)."""
    rows: list[dict[str, Any]] = []
    for s in adsl[adsl["ITTFL"] == "Y"].to_dict("records"):
        sid, arm = str(s["USUBJID"]), str(s["ARM"])
        record, outcome = d.outcome_at(
            sid, tumour.get(sid), s["RANDDT"], cut, design.recist_options
        )
        rows += d.derive_ovrlresp(record, outcome, arm, design.days_per_month)
        rows.append(d.derive_bor(record, outcome, arm))
        rows.append(d.derive_pd(record, outcome, arm))
        last = d.derive_lsta(record, outcome, arm)
        if last is not None:
            rows.append(last)
        rows.append(d.derive_dcr6(record, outcome, arm, s["DTHDT"]))
    return pd.DataFrame(rows, columns=ADRS_COLUMNS[:-1])


def derive_adtte(
    adsl: pd.DataFrame, adrs: pd.DataFrame, adqs: pd.DataFrame, design: AnalysisDesign
) -> pd.DataFrame:
    """PFS, rPFS and OS (:data:`derivations.TTE_PARAMETERS`), then per QoL scale the time to
    deterioration and its sensitivity analysis (:func:`derivations.qol_parameters`), each by
    :func:`derivations.derive_tte`; the randomization strata are added from ADSL."""
    frames = {"adsl": adsl, "adrs": adrs, "adqs": adqs}
    per_month = design.days_per_month
    parts = [
        d.derive_tte(param, events, censoring, frames, days_per_month=per_month)
        for param, (events, censoring) in d.TTE_PARAMETERS.items()
    ]
    for scale in sorted(adqs.loc[adqs["ANL01FL"] == "Y", "PARAMCD"].unique()):
        for param, events, censoring, population in d.qol_parameters(str(scale)):
            parts.append(
                d.derive_tte(param, events, censoring, frames, population, days_per_month=per_month)
            )
    parts = [p for p in parts if not p.empty]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=d.TTE_COLUMNS)
    return out.merge(adsl[["USUBJID", *design.strata_variables]], on="USUBJID", how="left")


def derive_adae(adsl: pd.DataFrame, aes: pd.DataFrame, cut: dt.date) -> pd.DataFrame:
    """AEs of the safety population with onset up to the cut-off; TRTEMFL on/after first dose,
    APERIOD says whether onset was before or after randomization."""
    saf = adsl[adsl["SAFFL"] == "Y"].set_index("USUBJID")
    a = aes[aes["subject_id"].isin(saf.index) & (aes["onset_on"] <= cut)].copy()
    out = pd.DataFrame(
        {
            "USUBJID": a["subject_id"],
            "AETERM": [
                v if isinstance(v, str) and v else t
                for v, t in zip(a["verbatim"], a["term"], strict=True)
            ],
            "AEDECOD": a["term"],
            "AESOC": a["soc"],
            "AELLTCD": a["llt_code"],
            "AEPTCD": a["pt_code"],
            "AETOXGR": a["grade"].astype(int),
            "AESER": np.where(a["serious"], "Y", "N"),
            "ASTDT": a["onset_on"],
        }
    )
    out["ARM"] = out["USUBJID"].map(saf["ARM"])
    out["TRTEMFL"] = [
        "Y" if x >= saf.loc[s, "TRTSDT"] else "N"
        for s, x in zip(out["USUBJID"], out["ASTDT"], strict=True)
    ]
    rand = out["USUBJID"].map(saf["RANDDT"])
    out["APERIOD"] = [
        "post-randomization" if r is not None and not pd.isna(r) and x >= r else "pre-randomization"
        for r, x in zip(rand, out["ASTDT"], strict=True)
    ]
    return out.reset_index(drop=True)


ADCM_COLUMNS: list[str] = [
    "USUBJID",
    "CMSEQ",
    "CMTRT",
    "CMCLASCD",
    "CMINDC",
    "CMDOSE",
    "CMDOSU",
    "CMROUTE",
    "ASTDT",
    "AENDT",
    "CMONGO",
    "PREFL",
    "ONTRTFL",
    "ARM",
    "SRCID",
]
ADMH_COLUMNS: list[str] = ["USUBJID", "MHSEQ", "MHTERM", "ASTDT", "MHONGO", "ARM", "SRCID"]


def _plain(value: object) -> object:
    """A stored dose without the column's trailing zeros (``5.0000`` → ``5``), exact."""
    if not isinstance(value, Decimal):
        return value
    text = format(value, "f")
    return Decimal(text.rstrip("0").rstrip(".") if "." in text else text)


def _before(day: object, ref: object) -> bool:
    return _known(day) and _known(ref) and day < ref  # type: ignore[operator]


def _known(day: object) -> bool:
    return day is not None and not (isinstance(day, float) and pd.isna(day))


def derive_adcm(adsl: pd.DataFrame, cm: pd.DataFrame, cut: dt.date) -> pd.DataFrame:
    """Concomitant medications of the included subjects started on or before the cut-off
    (or without a start date); PREFL: started before the first dose; ONTRTFL: taken on or after
    the first dose (ongoing, or stopped on or after it). ADaM OCCDS v1.1 §3."""
    subj = adsl.set_index("USUBJID")
    keep = cm["subject_id"].isin(subj.index) & cm["start_on"].map(
        lambda d: not _known(d) or d <= cut
    )
    c = cm[keep].sort_values(["subject_id", "start_on", "record_id"], na_position="first")
    rows = []
    for sid, group in c.groupby("subject_id", sort=True):
        first = subj.loc[sid, "TRTSDT"]
        for seq, r in enumerate(group.to_dict("records"), start=1):
            stop = r["stop_on"] if _known(r["stop_on"]) and r["stop_on"] <= cut else None
            on_treatment = _known(first) and (
                bool(r["ongoing"]) or (_known(r["stop_on"]) and not _before(r["stop_on"], first))
            )
            rows.append(
                {
                    "USUBJID": sid,
                    "CMSEQ": seq,
                    "CMTRT": r["drug_name"],
                    "CMCLASCD": r["atc_code"],
                    "CMINDC": r["indication"],
                    "CMDOSE": _plain(r["dose"]),
                    "CMDOSU": r["unit"],
                    "CMROUTE": r["route"],
                    "ASTDT": r["start_on"] if _known(r["start_on"]) else None,
                    "AENDT": stop,
                    "CMONGO": "Y"
                    if r["ongoing"] or (_known(r["stop_on"]) and stop is None)
                    else "N",
                    "PREFL": "Y" if _before(r["start_on"], first) else "N",
                    "ONTRTFL": "Y" if on_treatment else "N",
                    "ARM": subj.loc[sid, "ARM"],
                    "SRCID": r["record_id"],
                }
            )
    return pd.DataFrame(rows, columns=ADCM_COLUMNS)


def derive_admh(adsl: pd.DataFrame, mh: pd.DataFrame, cut: dt.date) -> pd.DataFrame:
    """Medical history of the included subjects (conditions starting on or before the cut-off,
    or undated); MHONGO: ongoing at the time it was recorded."""
    subj = adsl.set_index("USUBJID")
    keep = mh["subject_id"].isin(subj.index) & mh["start_on"].map(
        lambda d: not _known(d) or d <= cut
    )
    m = mh[keep].sort_values(["subject_id", "start_on", "record_id"], na_position="first")
    rows = []
    for sid, group in m.groupby("subject_id", sort=True):
        for seq, r in enumerate(group.to_dict("records"), start=1):
            rows.append(
                {
                    "USUBJID": sid,
                    "MHSEQ": seq,
                    "MHTERM": r["condition"],
                    "ASTDT": r["start_on"] if _known(r["start_on"]) else None,
                    "MHONGO": "Y" if r["ongoing"] else "N",
                    "ARM": subj.loc[sid, "ARM"],
                    "SRCID": r["record_id"],
                }
            )
    return pd.DataFrame(rows, columns=ADMH_COLUMNS)


def derive_adqs(
    adsl: pd.DataFrame, qol: pd.DataFrame, cut: dt.date, design: AnalysisDesign
) -> pd.DataFrame:
    """One record per ITT subject, scale and questionnaire up to the cut-off. ``BASE``: the last
    score on or before randomization; ``ANL01FL``: a later score of a subject with a baseline
    (analysed for deterioration); ``CRIT1FL``: deteriorated by the QoL engine's rule
    (:func:`derivations.derive_deterioration`). Scores (``AVAL``, ``BASE``, ``CHG``) are floats for
    the summaries; the deterioration is decided on the exact scores."""
    itt = adsl[adsl["ITTFL"] == "Y"].set_index("USUBJID")
    q = qol[qol["subject_id"].isin(itt.index) & (qol["assessed_on"] <= cut)].copy()
    q = q.sort_values(["subject_id", "scale", "assessed_on"], kind="stable")
    q["RANDDT"] = q["subject_id"].map(itt["RANDDT"])
    q["ADY"] = [_days(r, x) for r, x in zip(q["RANDDT"], q["assessed_on"], strict=True)]
    scored = q["score"].notna()
    base = q[(q["ADY"] <= 0) & scored].groupby(["subject_id", "scale"])["score"].last()
    keys = list(zip(q["subject_id"], q["scale"], strict=True))
    exact_base = [base.get(k) for k in keys]
    analysed = [
        b is not None and ady > 0 and ok
        for b, ady, ok in zip(exact_base, q["ADY"], scored, strict=True)
    ]
    out = pd.DataFrame(
        {
            "USUBJID": q["subject_id"],
            "ARM": q["subject_id"].map(itt["ARM"]),
            "PARAMCD": q["scale"],
            "PARCAT": q["kind"],
            "ADT": q["assessed_on"],
            "ADY": q["ADY"],
            "AVISIT": [d.visit_label(x, design.days_per_month) for x in q["ADY"]],
            "AVAL": [np.nan if x is None else float(x) for x in q["score"]],
            "BASE": [np.nan if b is None else float(b) for b in exact_base],
        }
    )
    out["CHG"] = np.where(out["ADY"] > 0, out["AVAL"] - out["BASE"], np.nan)
    out["ANL01FL"] = ["Y" if a else None for a in analysed]
    out["CRIT1"] = f"Worse than baseline by >= {DETERIORATION_POINTS} points"
    out["CRIT1FL"] = [
        d.derive_deterioration(b, x, kind, a)
        for b, x, kind, a in zip(exact_base, q["score"], q["kind"], analysed, strict=True)
    ]
    out["MISSCD"] = list(q["missing_code"])
    out["MISSRSN"] = list(q["missing_reason"])
    out["SRCID"] = list(q["record_id"])
    return out.reset_index(drop=True)


# Variable descriptions: dataset → name → (label, derivation in one sentence). Labels <= 40
# characters (xpt). ``variables.json`` carries both.
VARIABLES: dict[str, dict[str, tuple[str, str]]] = {
    "adsl": {
        "USUBJID": ("Unique subject identifier", "The pseudonymous patient code."),
        "SITEID": ("Site identifier", "The code of the patient's centre."),
        "INCLDT": ("Date of inclusion", "The inclusion date."),
        "RANDDT": ("Date of randomization", "The randomization date, if on or before the cut-off."),
        "ARM": ("Randomized arm", "The arm allocated by randomization (ITT: as randomized)."),
        "ARMCD": ("Randomized arm code", "The protocol's code of the arm (arms[].analysis)."),
        "NRANDRS": (
            "Reason not randomized",
            "Progression at the pre-randomization assessment, or the end-of-study reason.",
        ),
        "TRTSDT": (
            "Date of first dose after inclusion",
            "The earliest administration of the trial's treatment, if on or before the cut-off.",
        ),
        "AGE": ("Age at inclusion (years)", "The age screening stored with the patient file."),
        "SEX": ("Sex", "The registered sex (else the screening file's)."),
        "ECOG": ("ECOG performance status", "The ECOG status screening stored."),
        "GFR": (
            "GFR at inclusion (mL/min)",
            "The eGFR screening computed and stored (MDRD-175, mL/min/1.73 m2), never recomputed.",
        ),
        "GRADE": ("Tumour grade", "The histological grade screening stored."),
        "DTHDT": ("Date of death", "The date of death, if on or before the cut-off."),
        "LSTALVDT": (
            "Date last known alive",
            "The latest dated record of the patient (the death date if dead), capped at the cut-off.",
        ),
        "RANDFL": ("Randomized flag", "Y if randomized on or before the cut-off."),
        "ITTFL": ("Intention-to-treat population flag", "Equal to RANDFL (SAP: all randomized)."),
        "SAFFL": ("Safety population flag", "Y if a dose was received after inclusion (SAP)."),
        "ELIGFL": (
            "Eligible (no major violation) flag",
            "Y if the last screening's eligibility status is eligible.",
        ),
        "DTHFL": ("Death flag", "Y if DTHDT is present."),
        "DCR6": ("Disease control at month 6", "The AVALC of the subject's ADRS DCR6 record."),
        "NEVAL": (
            "Tumour evaluations after randomization",
            "The number of ADRS OVRLRESP records after randomization whose AVALC is not NE.",
        ),
        "MAJDVFL": (
            "Major protocol deviation flag",
            "Y if the deviations log holds a major deviation dated on or before the cut-off.",
        ),
        "PPROTFL": (
            "Per-protocol population flag",
            "Y if ITTFL, ELIGFL and SAFFL are Y, NEVAL >= 2 and MAJDVFL is N (SAP per-protocol "
            "definition; ICH E9 §5.2.2: no major protocol deviation).",
        ),
    },
    "adrs": {
        "USUBJID": ("Unique subject identifier", "ADSL.USUBJID."),
        "PARAMCD": (
            "Parameter code",
            "OVRLRESP per time point; BOR, PD, LSTA and DCR6 once per ITT subject.",
        ),
        "PARAM": ("Parameter", "The parameter's description."),
        "ADT": (
            "Analysis date",
            "The assessment date; BOR: of the best response; PD: of the first PD; LSTA: of the "
            "last evaluable assessment; DCR6: of the landmark assessment.",
        ),
        "ADY": ("Days since randomization", "ADT - ADSL.RANDDT in days."),
        "AVISIT": (
            "Analysis visit",
            "Month round(ADY / 30.4375), or Baseline when ADY <= 0.",
        ),
        "AVALC": (
            "Response / flag",
            "OVRLRESP: the RECIST engine's overall response after re-dating PD by a confirmed "
            "equivocal new lesion; BOR: the engine's best overall response; PD: Y if the engine "
            "found a PD; LSTA: the response then; DCR6: Y if the engine found disease control at "
            "the month-6 landmark.",
        ),
        "AVAL": ("Numeric value", "DCR6: 1 for disease control, 0 for failure."),
        "READRSP": (
            "Response as read at the time point",
            "The RECIST engine's overall response at that read, before any re-dating.",
        ),
        "RDTSRCID": (
            "Read confirming a re-dated PD",
            "The read whose confirmed new lesion re-dated PD to this time point.",
        ),
        "TSUM": ("Sum of target diameters (mm)", "The engine's sum of target diameters (exact)."),
        "BTSUM": ("Baseline sum of diameters (mm)", "The engine's baseline sum (exact)."),
        "PCHG": (
            "Percent change of target sum",
            "The engine's 100 (TSUM - BTSUM) / BTSUM rounded to 0.01; BOR: the lowest after "
            "randomization.",
        ),
        "BORRULE": (
            "Rule of the best overall response",
            "The engine's BOR rule in words, with the protocol file's minimum SD duration.",
        ),
        "DCRRSN": (
            "Reason for DCR6 value",
            "The engine's reason for the month-6 decision (with the death date when it decided).",
        ),
        "SRCID": (
            "Source record",
            "The central read (or CSV line) the record comes from: the time point's read, the "
            "BOR's read, the first PD's read, the landmark read; INV* parameters: the local "
            "assessment.",
        ),
        "RSEVAL": (
            "Evaluator",
            "INDEPENDENT ASSESSOR for central review's records; INVESTIGATOR for the INV* "
            "parameters (INVRESP, INVBOR, INVPD, INVLSTA, INVDCR6), the same derivations from "
            "the site investigator's local assessments by the same RECIST engine.",
        ),
        "ARM": ("Randomized arm", "ADSL.ARM."),
    },
    "adtte": {
        "USUBJID": ("Unique subject identifier", "ADSL.USUBJID."),
        "ARM": ("Randomized arm", "ADSL.ARM."),
        "PARAMCD": (
            "Parameter code",
            "PFS, RPFS, OS, TTD<scale> and TTDS<scale>, each derived by derive_tte.",
        ),
        "PARAM": ("Parameter", "The parameter's description."),
        "STARTDT": ("Time origin (randomization)", "ADSL.RANDDT."),
        "ADT": (
            "Event or censoring date",
            "The earliest date of the parameter's event sources, else the latest date of its "
            "censoring sources (docs/analysis.md lists both).",
        ),
        "ADY": ("Time to event (days)", "ADT - STARTDT in days (never negative)."),
        "AVAL": ("Time to event (months)", "ADY / 30.4375."),
        "CNSR": ("Censored (1) or event (0)", "0 if ADT is an event, 1 if a censoring date."),
        "EVNTDESC": (
            "Event or censoring description",
            "The description of the source that gave ADT.",
        ),
        "SRCDOM": (
            "Source dataset",
            "The analysis dataset of the source record (ADRS, ADSL, ADQS).",
        ),
        "SRCVAR": ("Source variable", "The date variable of the source record."),
        "SRCID": (
            "Source record",
            "The central read or QoL questionnaire of the source record (empty for ADSL).",
        ),
    },
    "adae": {
        "USUBJID": ("Unique subject identifier", "ADSL.USUBJID."),
        "AETERM": ("Reported term", "The term as the site entered it."),
        "AEDECOD": (
            "Dictionary-derived term",
            "The CTCAE v5.0 / MedDRA term the event is coded to; the reported term while uncoded"
            " (AELLTCD empty).",
        ),
        "AESOC": ("System organ class", "MedDRA SOC of the coded term (empty while uncoded)."),
        "AELLTCD": ("MedDRA LLT code", "Lowest level term code (CTCAE v5.0 terms are LLTs)."),
        "AEPTCD": ("MedDRA PT code", "Preferred term code, when the coder recorded it."),
        "AETOXGR": ("CTCAE v5.0 grade", "The recorded grade."),
        "AESER": ("Serious event", "Y if recorded serious."),
        "ASTDT": ("Onset date", "The onset date."),
        "ARM": ("Randomized arm", "ADSL.ARM (empty if not randomized)."),
        "TRTEMFL": ("Treatment-emergent flag", "Y if the onset is on or after TRTSDT."),
        "APERIOD": (
            "Period of onset",
            "post-randomization if the onset is on or after RANDDT, else pre-randomization.",
        ),
    },
    "adqs": {
        "USUBJID": ("Unique subject identifier", "ADSL.USUBJID."),
        "ARM": ("Randomized arm", "ADSL.ARM."),
        "PARAMCD": ("QoL scale code", "The EORTC scale code."),
        "PARCAT": ("Scale kind", "functional, global or symptom."),
        "ADT": ("Assessment date", "The date the questionnaire was completed."),
        "ADY": ("Days since randomization", "ADT - ADSL.RANDDT in days."),
        "AVISIT": ("Analysis visit", "As ADRS.AVISIT."),
        "AVAL": ("Score (0-100)", "The QoL engine's score of the scale."),
        "BASE": ("Baseline score", "The last score on or before randomization."),
        "CHG": ("Change from baseline", "AVAL - BASE after randomization."),
        "ANL01FL": (
            "Analysed for deterioration",
            "Y for a score after randomization of a subject with a baseline score.",
        ),
        "CRIT1": ("Analysis criterion 1", "Worse than baseline by >= 10 points."),
        "CRIT1FL": (
            "Criterion 1 met (deterioration)",
            "Y if the QoL engine finds the score worse than BASE by >= 10 points (lower for "
            "functional and global scales, higher for symptom scales).",
        ),
        "MISSCD": (
            "Missing-data code",
            "Why the score is absent (ND not done, NA not applicable, UNK unknown, ASKU asked "
            "but unknown), as recorded on the form; AVAL is then missing.",
        ),
        "MISSRSN": ("Missing-data reason", "The reason recorded with the missing-data code."),
        "SRCID": ("Source record", "The QoL questionnaire (or CSV line) of the score."),
    },
    "adcm": {
        "USUBJID": ("Unique subject identifier", "ADSL.USUBJID."),
        "CMSEQ": ("Sequence number", "Per subject, by start date (undated first)."),
        "CMTRT": ("Reported name of drug", "The drug name as recorded (CM form)."),
        "CMCLASCD": ("ATC code", "The WHO ATC code recorded with the drug (shape-checked)."),
        "CMINDC": ("Indication", "As recorded."),
        "CMDOSE": ("Dose per administration", "As recorded (exact)."),
        "CMDOSU": ("Dose unit", "As recorded."),
        "CMROUTE": ("Route of administration", "As recorded."),
        "ASTDT": ("Analysis start date", "The start date recorded, if any."),
        "AENDT": ("Analysis end date", "The stop date, if on or before the cut-off."),
        "CMONGO": ("Ongoing at cut-off", "Y if recorded ongoing or stopped after the cut-off."),
        "PREFL": ("Prior medication flag", "Y if started before ADSL.TRTSDT."),
        "ONTRTFL": (
            "On-treatment flag",
            "Y if taken on or after ADSL.TRTSDT (ongoing, or stopped on or after it).",
        ),
        "ARM": ("Randomized arm", "ADSL.ARM (empty if not randomized)."),
        "SRCID": ("Source record", "The concomitant medication record (or CSV line)."),
    },
    "admh": {
        "USUBJID": ("Unique subject identifier", "ADSL.USUBJID."),
        "MHSEQ": ("Sequence number", "Per subject, by start date (undated first)."),
        "MHTERM": ("Reported term", "The condition as recorded (MH form)."),
        "ASTDT": ("Analysis start date", "The start date recorded, if any."),
        "MHONGO": ("Ongoing", "Y if recorded ongoing."),
        "ARM": ("Randomized arm", "ADSL.ARM (empty if not randomized)."),
        "SRCID": ("Source record", "The medical history record (or CSV line)."),
    },
}


def variables(design: AnalysisDesign) -> dict[str, dict[str, tuple[str, str]]]:
    """:data:`VARIABLES` with the protocol's stratification variables in ADSL and ADTTE."""
    out = {name: dict(meta) for name, meta in VARIABLES.items()}
    for v in design.strata:
        what = f"{v.description}; the protocol's factor {v.factor}"
        out["adsl"][v.variable] = (v.label, f"The stratum level randomization stored ({what}).")
        out["adtte"][v.variable] = (v.label, f"ADSL.{v.variable} ({what}).")
    return out


# ---------------------------------------------------------------------------------------------
# The trial database (read only): the store's tables and the stored RECIST evaluations → the
# typed source frames and tumour records.

DB_TABLES = (
    "centres",
    "patients",
    "screenings",
    "inclusions",
    "randomizations",
    "administrations",
    "pre_randomization_assessments",
    "tumour_assessments",
    "recist_evaluations",
    "adverse_events",
    "qol_questionnaires",
    "deaths",
    "end_of_study",
)
OPTIONAL_DB_TABLES = (
    "visits",
    "missing_data",
    "concomitant_medications",
    "medical_history",
    "protocol_deviations",
)
# EORTC scoring keys as stored → analysis scale code and kind.
_C30_CODES = {"QL": "QL2", "PF": "PF2", "RF": "RF2"}


def _qol_scale(instrument: str, key: str) -> tuple[str, str | None]:
    if instrument.upper().replace("-", "").startswith("QLQC30"):
        code = _C30_CODES.get(key, key)
        return code, QOL_SCALE_KINDS.get(code)
    # GI.NET21: every scale is scored so that higher means more problems.
    return f"N{key}"[:8], "symptom"


@dataclass(frozen=True)
class StoreSnapshot:
    """What the analysis reads from the store: its tables (typed, SELECTs only) and the
    current RECIST evaluation of each patient's central reads (the review service's model)."""

    tables: dict[str, pd.DataFrame]
    evaluations: dict[str, Any]  # patient code -> response.service.EvaluationView
    #: the same for the site investigator's local assessments
    local_evaluations: dict[str, Any] = field(default_factory=dict)


def _read_tables(url: str, protocol: Protocol) -> StoreSnapshot:
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from reluth.db.engine import make_engine

    try:
        engine = make_engine(url)
        inspect(engine).get_table_names()
    except (SQLAlchemyError, ValueError) as exc:
        raise invalid(
            "--db",
            "cannot_open",
            N_("cannot open {url}: {exc_name}"),
            N_("a database URL"),
            url=repr(url),
            exc_name=str(exc),
        ) from None
    try:
        return _read_engine_tables(engine, protocol)
    finally:
        engine.dispose()


def _read_engine_tables(engine: Any, protocol: Protocol) -> StoreSnapshot:
    """The store's tables as typed frames and the central-review evaluations, read with
    SELECTs only in one read-only session (one snapshot of the database)."""
    from sqlalchemy import MetaData, inspect, select

    from reluth.db.session import read_session
    from reluth.response import service as review

    present = set(inspect(engine).get_table_names())
    missing = [t for t in DB_TABLES if t not in present]
    if missing:
        raise invalid(
            "--db",
            "not_reluth_trial_database_current",
            N_("not a reluth trial database at the current revision (missing tables: {missing})"),
            N_("a database created or upgraded by `reluth db upgrade`"),
            missing=", ".join(missing),
        )
    md = MetaData()
    names = [t for t in (*DB_TABLES, *OPTIONAL_DB_TABLES) if t in present]
    md.reflect(engine, only=names)
    frames: dict[str, pd.DataFrame] = {}
    with read_session(engine) as session:
        for name in names:
            columns, converters = _lenient_columns(md.tables[name], engine.dialect.name)
            rows = session.execute(select(*columns)).mappings().all()
            frame = pd.DataFrame([dict(r) for r in rows], columns=list(md.tables[name].c.keys()))
            for col, convert in converters.items():
                frame[col] = frame[col].map(convert).astype(object)
            frames[name] = frame
        evaluations = review.current_evaluations(session, protocol)
        local = _local_evaluations(session, protocol)
    return StoreSnapshot(frames, evaluations, local)


def _local_evaluations(session: Any, protocol: Protocol) -> dict[str, Any]:
    """The current evaluation of each patient's local assessments; a patient whose local
    assessments the engine cannot evaluate (e.g. entered as free responses without the
    lesions RECIST needs) is left out of the INV* parameters rather than stopping the export."""
    from sqlalchemy import select

    from reluth.response import service as review
    from reluth.response.models import TumourAssessment

    try:
        return review.current_evaluations(session, protocol, review.LOCAL)
    except ValidationError:
        pass
    out: dict[str, Any] = {}
    ids = session.scalars(
        select(TumourAssessment.patient_id)
        .where(TumourAssessment.reader == review.LOCAL)
        .distinct()
    )
    for pid in list(ids):
        try:
            out.update(review.current_evaluations(session, protocol, review.LOCAL, [pid]))
        except ValidationError:
            continue
    return out


def _lenient_columns(table: Any, dialect: str) -> tuple[list[Any], dict[str, Any]]:
    """The columns to select, and per column a converter: on SQLite a date column may hold
    any text, which SQLAlchemy's own conversion would raise on for the whole table; it is read
    as text and converted here, an unreadable value kept as text for its record's issue."""
    from sqlalchemy import Date, DateTime, String, type_coerce

    if dialect != "sqlite":
        return list(table.c), {}
    columns: list[Any] = []
    converters: dict[str, Any] = {}
    for c in table.c:
        if isinstance(c.type, Date | DateTime):
            parse = (
                dt.datetime.fromisoformat if isinstance(c.type, DateTime) else dt.date.fromisoformat
            )
            columns.append(type_coerce(c, String).label(c.name))
            converters[c.name] = lambda v, parse=parse: _or_text(parse, v)
        else:
            columns.append(c)
    return columns, converters


def _or_text(parse: Callable[[str], Any], value: object) -> object:
    if value is None or not isinstance(value, str):
        return value
    try:
        return parse(value)
    except ValueError:
        return value


def _date_of(value: object) -> dt.date | None:
    """A stored date as a date (its plausibility is normalize_source's to judge)."""
    if _blank(value):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value).strip()[:10])


def _stored_egfr(result_json: object) -> Decimal | None:
    """The eGFR screening computed and stored with its verdict (never recomputed here)."""
    import json

    if _blank(result_json):
        return None
    derived = json.loads(str(result_json)).get("derived", {})
    value = derived.get("egfr_ml_min_1_73m2")
    return None if _blank(value) else to_decimal(value, "screenings.result_json.egfr")


def _central_read(read_id: int) -> str:
    return f"central read {read_id}"


def _local_read(read_id: int) -> str:
    return f"local assessment {read_id}"


def tumour_from_evaluations(
    evaluations: Mapping[str, Any], source: Callable[[int], str] = _central_read
) -> dict[str, d.TumourRecord]:
    """The database door: each patient's evaluation as central review (or, with ``source``
    naming local assessments, the site investigator) stored it (read ids as sources, the
    stored patient-level outcome)."""
    out = {}
    for code, ev in evaluations.items():
        points = tuple(
            d.TumourTimePoint(
                source=source(tp.read_id),
                date=tp.date,
                as_read=tp.as_read,
                new_lesions=tp.new_lesions,
                sum_mm=tp.sum_mm,
                change_from_baseline_pct=tp.change_from_baseline_pct,
            )
            for tp in ev.time_points
        )
        out[code] = d.TumourRecord(
            code, source(ev.baseline_read_id), ev.baseline_sum_mm, points, ev.outcome
        )
    return out


def _assessment_rows(evaluations: Mapping[str, Any]) -> pd.DataFrame:
    """The central reads in the shape of ``assessments.csv`` (baseline row without a response,
    then each time point as read with its new-lesion call and read id)."""
    rows: list[dict[str, Any]] = []
    for code, ev in evaluations.items():
        rows.append(
            {
                "subject_id": code,
                "assessed_on": ev.baseline_date,
                "overall_response": None,
                "target_sum_mm": ev.baseline_sum_mm,
                "new_lesions": "no",
                "read_id": _central_read(ev.baseline_read_id),
            }
        )
        rows += [
            {
                "subject_id": code,
                "assessed_on": tp.date,
                "overall_response": tp.as_read.value,
                "target_sum_mm": tp.sum_mm,
                "new_lesions": tp.new_lesions.value,
                "read_id": _central_read(tp.read_id),
            }
            for tp in ev.time_points
        ]
    return pd.DataFrame(rows, columns=list(ASSESSMENT_COLUMNS))


def sources_from_tables(
    snapshot: StoreSnapshot,
    design: AnalysisDesign,
    issues: list[DataIssue] | None = None,
    *,
    protocol: Protocol | None = None,
) -> dict[str, pd.DataFrame]:
    """Map the store onto the CSV source shape, typed (pure; no database access): dates as
    dates, decimals as Decimals; eGFR, strata and eligibility as screening and randomization
    stored them; the tumour responses as central review's engine stored them. With
    ``issues``, a patient or questionnaire whose stored values cannot be read is left out and
    listed there (an export never fails on one stored value)."""

    t = snapshot.tables
    centre = dict(zip(t["centres"]["id"], t["centres"]["code"], strict=True))
    by_pid = {
        name: t[name].set_index("patient_id")
        for name in (
            "inclusions",
            "randomizations",
            "pre_randomization_assessments",
            "deaths",
            "end_of_study",
        )
    }
    screens = t["screenings"].sort_values(["patient_id", "assessment_date", "id"])
    last_screen = screens.groupby("patient_id").last()
    # by label, never by position (an empty frame's index is not integer-typed)
    first_dose = t["administrations"].groupby("patient_id")["administered_on"].min().to_dict()
    dates: dict[int, list[dt.date]] = {}
    for name, col in (
        ("administrations", "administered_on"),
        ("tumour_assessments", "assessment_date"),
        ("qol_questionnaires", "completed_on"),
        ("adverse_events", "onset_date"),
        ("visits", "visit_date"),
        ("end_of_study", "end_date"),
        ("inclusions", "inclusion_date"),
    ):
        if name in t:
            for pid, when in zip(t[name]["patient_id"], t[name][col], strict=True):
                try:
                    day = _date_of(when)
                except ValueError:  # the record's own row names it
                    continue
                if day is not None and day >= EARLIEST_DATE:
                    dates.setdefault(int(pid), []).append(day)
    code = dict(zip(t["patients"]["id"], t["patients"]["patient_code"], strict=True))
    subjects = []
    for _, p in t["patients"].iterrows():
        pid = int(p["id"])
        if pid not in by_pid["inclusions"].index:
            continue  # screened, never included
        try:
            subjects.append(
                _subject_row(p, pid, t, by_pid, last_screen, first_dose, dates, centre, design)
            )
        except (ValueError, TypeError, KeyError, ArithmeticError, ValidationError) as exc:
            if issues is None:
                raise
            issues.append(
                DataIssue(
                    "subjects", str(p["patient_code"]), f"patient {pid}", "patient record", "",
                    f"cannot be read: {_reason(exc)}",
                )
            )  # fmt: skip
    included = {s["subject_id"] for s in subjects}
    evaluations = {c: ev for c, ev in snapshot.evaluations.items() if c in included}
    ae = t["adverse_events"]
    aes = pd.DataFrame(
        {
            "subject_id": ae["patient_id"].map(code),
            "term": [
                d if isinstance(d, str) and d else t
                for d, t in zip(ae["meddra_term"], ae["term"], strict=True)
            ],
            "soc": ae["meddra_soc"],
            "verbatim": ae["term"],
            "llt_code": ae["meddra_llt_code"],
            "pt_code": ae["meddra_pt_code"],
            "grade": ae["grade"],
            "serious": ae["serious"].map(bool),
            "onset_on": ae["onset_date"],
            "record_id": ae["id"].map(lambda i: f"adverse event {i}"),
        },
        columns=list(AE_COLUMNS),
    )
    qol_rows = []
    for _, q in t["qol_questionnaires"].iterrows():
        try:
            qol_rows += _qol_rows(q, code)
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
            if issues is None:
                raise
            issues.append(
                DataIssue(
                    "qol", code.get(q["patient_id"]), f"qol questionnaire {q['id']}",
                    "scores_json", "", f"cannot be read: {_reason(exc)}",
                )
            )  # fmt: skip
    if protocol is not None and "missing_data" in t:
        qol_rows += _missing_qol_rows(t, code, protocol)
    return {
        "subjects": pd.DataFrame(subjects, columns=list(subject_columns(design))),
        "assessments": _assessment_rows(evaluations),
        "adverse_events": aes,
        "qol": pd.DataFrame(qol_rows, columns=list(QOL_COLUMNS)),
    }


#: Optional source → (stored table, source column → stored column, record name).
_OPTIONAL_TABLES: dict[str, tuple[str, dict[str, str], str]] = {
    "conmeds": (
        "concomitant_medications",
        {"drug_name": "drug_name", "atc_code": "atc_code", "indication": "indication",
         "dose": "dose", "unit": "unit", "route": "route", "start_on": "start_date",
         "stop_on": "stop_date", "ongoing": "ongoing"},
        "concomitant medication",
    ),
    "medical_history": (
        "medical_history",
        {"condition": "condition", "start_on": "start_date", "ongoing": "ongoing"},
        "medical history",
    ),
    "deviations": (
        "protocol_deviations",
        {"category": "category", "severity": "severity", "deviation_on": "deviation_date"},
        "protocol deviation",
    ),
}  # fmt: skip


def optional_from_tables(snapshot: StoreSnapshot) -> dict[str, pd.DataFrame]:
    """The optional sources (conmeds, medical history, deviations) from the stored tables, in
    their source shape (an older database without the tables has none)."""
    t = snapshot.tables
    code = dict(zip(t["patients"]["id"], t["patients"]["patient_code"], strict=True))
    out = {}
    for name, (table, columns, what) in _OPTIONAL_TABLES.items():
        if table not in t:
            out[name] = empty_source(name)
            continue
        stored = t[table]
        frame = pd.DataFrame(
            {
                "subject_id": stored["patient_id"].map(code),
                **{col: stored[src] for col, src in columns.items()},
                "record_id": stored["id"].map(lambda i, w=what: f"{w} {i}"),
            },
            columns=list(OPTIONAL_SOURCES[name][1]),
        )
        out[name] = frame
    return out


def _missing_qol_rows(
    t: Mapping[str, pd.DataFrame], code: Mapping[Any, str], protocol: Protocol
) -> list[dict[str, Any]]:
    """A QoL visit not done, with its missing-data code (registry form ``qol`` at a visit):
    one row per scale of each instrument, dated at the visit's target date, score missing."""
    from reluth.protocol.schedule import planned_visits
    from reluth.qol import scoring

    m = t["missing_data"]
    m = m[(m["form_id"] == "qol") & m["record_id"].isna() & m["visit_code"].notna()]
    if m.empty:
        return []
    rand = t["randomizations"].set_index("patient_id")
    rows: list[dict[str, Any]] = []
    for _, miss in m.iterrows():
        pid = miss["patient_id"]
        if pid not in rand.index:
            continue
        at = rand.loc[pid, "randomized_at"]
        day = _date_of(at)
        if day is None:
            continue
        planned = {v.code: v for v in planned_visits(day, str(rand.loc[pid, "arm"]), protocol)}
        visit = planned.get(str(miss["visit_code"]))
        if visit is None:
            continue
        for instrument in ("QLQ-C30", "QLQ-GINET21"):
            for key in scoring.instrument(instrument).scales:
                scale, kind = _qol_scale(instrument, str(key))
                if kind is None:
                    continue
                rows.append(
                    {
                        "subject_id": code[pid],
                        "assessed_on": visit.target_date,
                        "scale": scale,
                        "score": None,
                        "kind": kind,
                        "record_id": f"missing data {miss['id']}",
                        "missing_code": miss["code"],
                        "missing_reason": miss["reason"],
                    }
                )
    return rows


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, ValidationError) else f"{exc.__class__.__name__}: {exc}"


def _subject_row(
    p: pd.Series,
    pid: int,
    t: Mapping[str, pd.DataFrame],
    by_pid: Mapping[str, pd.DataFrame],
    last_screen: pd.DataFrame,
    first_dose: dict[Any, Any],
    dates: Mapping[int, list[dt.date]],
    centre: Mapping[Any, Any],
    design: AnalysisDesign,
) -> dict[str, Any]:
    """One included patient's subjects row from the stored tables."""
    import json

    from reluth.protocol.patient import PatientFile

    incl = _date_of(by_pid["inclusions"].loc[pid, "inclusion_date"])
    scr = last_screen.loc[pid] if pid in last_screen.index else None
    pf = None
    if scr is not None:
        try:
            pf = PatientFile.model_validate(json.loads(scr["input_json"]))
        except (ValueError, TypeError):
            pf = None
    rnd = by_pid["randomizations"].loc[pid] if pid in by_pid["randomizations"].index else None
    strata: dict[str, str] = {}
    raw_strata = (
        rnd["strata_json"] if rnd is not None else (scr["strata_json"] if scr is not None else None)
    )
    if not _blank(raw_strata):
        strata = {k: str(v) for k, v in json.loads(str(raw_strata)).items()}
    reason = None
    if rnd is None:
        pra = by_pid["pre_randomization_assessments"]
        eos = by_pid["end_of_study"]
        if pid in pra.index and bool(pra.loc[pid, "radiological_progression"]):
            reason = (
                "radiological progression after the "
                f"{design.pre_randomization_cycles} second-PRRT cycles"
            )
        elif pid in eos.index:
            reason = str(eos.loc[pid, "reason"])
        else:
            reason = "not (yet) randomized"
    death = (
        _date_of(by_pid["deaths"].loc[pid, "death_date"]) if pid in by_pid["deaths"].index else None
    )
    rdate = _date_of(rnd["randomized_at"]) if rnd is not None else None
    known = [x for x in (*dates.get(pid, []), incl, rdate) if x is not None]
    return {
        "subject_id": p["patient_code"],
        "site": centre.get(p["centre_id"], str(p["centre_id"])),
        "included_on": incl,
        "arm": None if rnd is None else str(rnd["arm"]),
        "randomized_on": rdate,
        "not_randomized_reason": reason,
        "eligible": scr is not None and scr["status"] == "eligible",
        "first_dose_on": _date_of(first_dose.get(pid)),
        "age": None if pf is None else pf.age,
        "sex": p["sex"] or (None if pf is None or pf.sex is None else pf.sex[0].upper()),
        "ecog": None if pf is None else pf.ecog,
        "gfr_ml_min": None if scr is None else _stored_egfr(scr["result_json"]),
        "grade": None if pf is None else pf.histology.grade,
        **{v.source_column: strata.get(v.factor) for v in design.strata},
        "death_on": death,
        "last_alive_on": death or max(known),
    }


def _qol_rows(q: pd.Series, code: Mapping[Any, str]) -> list[dict[str, Any]]:
    """The scale rows of one stored questionnaire (none when it has no scores)."""
    import json

    rows: list[dict[str, Any]] = []
    if _blank(q["scores_json"]):
        return rows
    scores = json.loads(q["scores_json"], parse_float=Decimal, parse_int=Decimal)
    scores = scores.get("scales", scores) if isinstance(scores, dict) else {}
    for key, value in scores.items():
        if isinstance(value, dict):
            value = value.get("score")
        if value is None or isinstance(value, bool) or not isinstance(value, Decimal | str):
            continue
        scale, kind = _qol_scale(str(q["instrument"]), str(key))
        if kind is None:
            continue
        rows.append(
            {
                "subject_id": code[q["patient_id"]],
                "assessed_on": q["completed_on"],  # checked by normalize_source
                "scale": scale,
                "score": value,
                "kind": kind,
                "record_id": f"qol questionnaire {q['id']}",
            }
        )
    return rows


def from_database(
    url: str, cutoff: dt.date | None = None, *, protocol: Protocol
) -> AnalysisDatasets:
    """Read the trial database (SELECTs only) and derive the analysis datasets."""
    return _from_snapshot(_read_tables(url, protocol), protocol, cutoff)


def from_engine(
    engine: Any, cutoff: dt.date | None = None, *, protocol: Protocol
) -> AnalysisDatasets:
    """As :func:`from_database`, on an open SQLAlchemy engine (the web app's)."""
    return _from_snapshot(_read_engine_tables(engine, protocol), protocol, cutoff)


def _from_snapshot(
    snapshot: StoreSnapshot, protocol: Protocol, cutoff: dt.date | None
) -> AnalysisDatasets:
    """The database door: a stored value that cannot be used leaves its record out, listed in
    ``issues``, so one bad value never stops an export (the CSV door refuses instead)."""
    design = AnalysisDesign.of(protocol)
    issues: list[DataIssue] = []
    frames = sources_from_tables(snapshot, design, issues, protocol=protocol)
    norm = _validated(design, **frames, issues=issues)
    included = set(norm["subjects"]["subject_id"])
    tumour = tumour_from_evaluations(
        {c: ev for c, ev in snapshot.evaluations.items() if c in included}
    )
    optional = optional_from_tables(snapshot)
    sources = Sources(
        norm["subjects"],
        norm["adverse_events"],
        norm["qol"],
        tumour,
        _hash_frames({**frames, **optional}),
        design,
        norm["assessments"],
    )
    typed = {
        name: _checked_optional(
            name, normalize_source(name, frame, OPTIONAL_SOURCES[name][1], issues), sources, issues
        )
        for name, frame in optional.items()
    }
    local = tumour_from_evaluations(
        {c: ev for c, ev in snapshot.local_evaluations.items() if c in included}, _local_read
    )
    sources = dataclasses.replace(
        sources,
        issues=tuple(dict.fromkeys(issues)),  # one per record and field (a questionnaire has many)
        local_tumour=local,
        **typed,
    )
    return build_datasets(sources, cutoff)
