"""The one analysis-dataset layer: ADSL / ADRS / ADTTE / ADAE / ADQS-like DataFrames.

Every analysis reads these frames and nothing else. They are derived by ``build_datasets`` from
four *source* frames (subjects, tumour assessments, adverse events, QoL scores) that come either
from CSV files (``from_csv_dir``; shape documented in docs/analysis.md) or from the trial database
(``from_database``), so both paths share every derivation.

Derivation rules (written down here and in docs/analysis.md):

* Populations — ITT: randomized (by randomized arm). Safety: received at least one dose after
  inclusion. Per-protocol: eligible (no major violation), randomized, in the safety population,
  with at least two tumour evaluations after randomization.
* Month-6 disease control (primary endpoint), the same rule as the RECIST engine's
  ``disease_control_at_landmark``: the landmark is the protocol's ``landmark_month6`` (week 24,
  accepted ±28 days — an assumption of the protocol file); the landmark assessment is the
  evaluable (not NE) assessment in the window closest to the landmark day (the later one on a
  tie). Success when it is CR, PR, SD or non-CR/non-PD and no PD was recorded on or before it.
  No evaluable assessment in the window counts as failure ("non-evaluable patients will be
  considered as failure"), as does a death before the landmark assessment.
* rPFS: randomization → first PD or death, whichever first; otherwise censored at the last
  evaluable (CR/PR/SD) assessment, or at day 0 if there is none.
* PFS (protocol: progression only): randomization → first PD; deaths without PD and patients
  without PD are censored at the last evaluable assessment.
* OS: randomization → death from any cause; otherwise censored at the last date known alive.
* QoL time to deterioration (per scale, as NETTER-1): patients with a baseline and at least one
  post-baseline score; event = first score at least 10 points worse than baseline (lower for
  functional/global scales, higher for symptom scales); otherwise censored at the last QoL
  assessment. Sensitivity (TTDS<scale>): progression or death also counts as deterioration.
* Data cut-off: anything dated after the cut-off is ignored; censoring dates are capped at it.
* Times: ``AVAL`` in months (days / 30.4375) and ``ADY`` in days since randomization.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reluth.errors import ValidationError
from reluth.protocol.definition import load_protocol

_PROTOCOL = load_protocol()
PROTOCOL_VERSION = _PROTOCOL.version
DAYS_PER_MONTH = float(_PROTOCOL.schedule.days_per_month)
MONTH6_DAY = 7 * _PROTOCOL.schedule.landmark_month6.week
MONTH6_WINDOW_DAYS = _PROTOCOL.schedule.landmark_month6.window_days
QOL_DETERIORATION_POINTS = 10.0
RESPONSES = ("CR", "PR", "SD", "NON-CR/NON-PD", "PD", "NE")
DISEASE_CONTROL = ("CR", "PR", "SD", "NON-CR/NON-PD")
ARMS = ("Lutathera", "Surveillance")  # experimental, control (report labels)
# Accepted spellings of the arms in sources: report label or protocol arm code.
ARM_ALIASES = {
    "lutathera": ARMS[0],
    "experimental": ARMS[0],
    "surveillance": ARMS[1],
    "control": ARMS[1],
}

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

STRATA = {
    "STRPFS": "Disease control after first PRRT (<18 vs >=18 months)",
    "STRPROG": "Type of progression (radiologic vs non-radiologic)",
    "STRGFR": "GFR (<60 vs >=60 mL/min)",
    "STRLINE": "Intercurrent line of treatment between PRRTs (Y/N)",
}

STRATA_SHORT = {
    "STRPFS": "Control after 1st PRRT",
    "STRPROG": "Progression",
    "STRGFR": "GFR",
    "STRLINE": "Intercurrent line",
}

# Source-frame columns: name → (required, kind). Kinds: str, date, num, flag.
SUBJECT_COLUMNS: dict[str, tuple[bool, str]] = {
    "subject_id": (True, "str"),
    "site": (True, "str"),
    "included_on": (True, "date"),
    "arm": (False, "str"),
    "randomized_on": (False, "date"),
    "not_randomized_reason": (False, "str"),
    "eligible": (True, "flag"),
    "first_dose_on": (False, "date"),
    "age": (True, "num"),
    "sex": (True, "str"),
    "ecog": (True, "num"),
    "gfr_ml_min": (True, "num"),
    "grade": (False, "str"),
    "strat_prior_pfs": (False, "str"),
    "strat_progression": (False, "str"),
    "strat_gfr": (False, "str"),
    "strat_intercurrent": (False, "str"),
    "death_on": (False, "date"),
    "last_alive_on": (True, "date"),
}
ASSESSMENT_COLUMNS: dict[str, tuple[bool, str]] = {
    "subject_id": (True, "str"),
    "assessed_on": (True, "date"),
    "overall_response": (True, "str"),
    "target_sum_mm": (False, "num"),
}
AE_COLUMNS: dict[str, tuple[bool, str]] = {
    "subject_id": (True, "str"),
    "term": (True, "str"),
    "soc": (False, "str"),
    "grade": (True, "num"),
    "serious": (True, "flag"),
    "onset_on": (True, "date"),
}
QOL_COLUMNS: dict[str, tuple[bool, str]] = {
    "subject_id": (True, "str"),
    "assessed_on": (True, "date"),
    "scale": (True, "str"),
    "score": (True, "num"),
    "kind": (False, "str"),
}
SOURCE_FILES = {
    "subjects": ("subjects.csv", SUBJECT_COLUMNS),
    "assessments": ("assessments.csv", ASSESSMENT_COLUMNS),
    "adverse_events": ("adverse_events.csv", AE_COLUMNS),
    "qol": ("qol.csv", QOL_COLUMNS),
}


@dataclass(frozen=True)
class Sources:
    subjects: pd.DataFrame
    assessments: pd.DataFrame
    adverse_events: pd.DataFrame
    qol: pd.DataFrame
    input_hash: str


@dataclass(frozen=True)
class AnalysisDatasets:
    adsl: pd.DataFrame
    adrs: pd.DataFrame
    adtte: pd.DataFrame
    adae: pd.DataFrame
    adqs: pd.DataFrame
    cutoff: dt.date
    input_hash: str

    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            "adsl": self.adsl,
            "adrs": self.adrs,
            "adtte": self.adtte,
            "adae": self.adae,
            "adqs": self.adqs,
        }


# ---------------------------------------------------------------------------------------------
# Source validation


def normalize_source(
    name: str, frame: pd.DataFrame, columns: dict[str, tuple[bool, str]]
) -> pd.DataFrame:
    """Check columns and types of one source frame; dates become ``datetime.date`` objects."""
    out = pd.DataFrame(index=frame.index)
    for col, (required, kind) in columns.items():
        if col not in frame.columns:
            if required:
                raise ValidationError(
                    f"{name}.{col}", "missing column", ", ".join(c for c in columns)
                )
            out[col] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
            continue
        s = frame[col]
        blank = s.isna() | (s.astype(str).str.strip() == "")
        if required and blank.any():
            row = int(np.argmax(blank.to_numpy())) + 2
            raise ValidationError(f"{name}.{col}", f"empty value at line {row}", "a value")
        if kind == "date":
            parsed = pd.to_datetime(s.where(~blank), format="%Y-%m-%d", errors="coerce")
            bad = parsed.isna() & ~blank
            if bad.any():
                row = int(np.argmax(bad.to_numpy())) + 2
                raise ValidationError(
                    f"{name}.{col}", f"not a date at line {row}: {s[bad].iloc[0]!r}", "YYYY-MM-DD"
                )
            out[col] = [d.date() if not pd.isna(d) else None for d in parsed]
        elif kind == "num":
            num = pd.to_numeric(s.where(~blank), errors="coerce")
            bad = num.isna() & ~blank
            if bad.any():
                raise ValidationError(
                    f"{name}.{col}", f"not a number: {s[bad].iloc[0]!r}", "a number"
                )
            out[col] = num.astype(float)
        elif kind == "flag":
            text = s.astype(str).str.strip().str.upper()
            mapped = text.map(
                {
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
            )
            bad = mapped.isna() & ~blank
            if bad.any():
                raise ValidationError(f"{name}.{col}", f"not a flag: {s[bad].iloc[0]!r}", "Y, N")
            out[col] = mapped.where(~blank, False).astype(bool)
        else:
            out[col] = [None if b else str(v).strip() for v, b in zip(s, blank, strict=True)]
    return out.reset_index(drop=True)


def _hash_frames(frames: dict[str, pd.DataFrame]) -> str:
    h = hashlib.sha256()
    for name in sorted(frames):
        h.update(name.encode())
        h.update(frames[name].to_csv(index=False).encode())
    return h.hexdigest()


def make_sources(
    subjects: pd.DataFrame,
    assessments: pd.DataFrame,
    adverse_events: pd.DataFrame,
    qol: pd.DataFrame,
) -> Sources:
    raw = {
        "subjects": subjects,
        "assessments": assessments,
        "adverse_events": adverse_events,
        "qol": qol,
    }
    norm = {n: normalize_source(n, raw[n], SOURCE_FILES[n][1]) for n in raw}
    subj = norm["subjects"]
    if subj["subject_id"].duplicated().any():
        dup = subj.loc[subj["subject_id"].duplicated(), "subject_id"].iloc[0]
        raise ValidationError("subjects.subject_id", f"duplicate {dup!r}", "one row per subject")
    arm = subj["arm"].map(lambda a: None if a is None else ARM_ALIASES.get(a.lower(), "?"))
    bad_arm = arm == "?"
    if bad_arm.any():
        raise ValidationError(
            "subjects.arm", f"unknown {subj['arm'][bad_arm].iloc[0]!r}", ", ".join(ARM_ALIASES)
        )
    subj["arm"] = arm
    if (subj["arm"].notna() & subj["randomized_on"].isna()).any():
        raise ValidationError(
            "subjects.randomized_on", "missing for a randomized subject", "a date"
        )
    resp = norm["assessments"]["overall_response"].map(_response_code).astype(object)
    if (~resp.isin(RESPONSES)).any():
        raise ValidationError(
            "assessments.overall_response",
            f"unknown {resp[~resp.isin(RESPONSES)].iloc[0]!r}",
            ", ".join(RESPONSES),
        )
    norm["assessments"]["overall_response"] = resp
    grades = norm["adverse_events"]["grade"]
    if (~grades.isin([1, 2, 3, 4, 5])).any():
        raise ValidationError("adverse_events.grade", "not a CTCAE grade", "1, 2, 3, 4, 5")
    known = set(subj["subject_id"])
    for name in ("assessments", "adverse_events", "qol"):
        unknown = ~norm[name]["subject_id"].isin(known)
        if unknown.any():
            raise ValidationError(
                f"{name}.subject_id",
                f"unknown subject {norm[name]['subject_id'][unknown].iloc[0]!r}",
                "a subject_id listed in subjects",
            )
    q = norm["qol"]
    kinds = [k if k else QOL_SCALE_KINDS.get(s) for s, k in zip(q["scale"], q["kind"], strict=True)]
    missing = [
        s
        for s, k in zip(q["scale"], kinds, strict=True)
        if k not in ("functional", "global", "symptom")
    ]
    if missing:
        raise ValidationError(
            "qol.kind", f"unknown kind for scale {missing[0]!r}", "functional, global, symptom"
        )
    q["kind"] = kinds
    return Sources(
        norm["subjects"], norm["assessments"], norm["adverse_events"], q, _hash_frames(raw)
    )


def _response_code(value: object) -> str:
    """Overall response as stored anywhere (``NON_CR_NON_PD``, ``non-CR/non-PD``) → our code."""
    text = str(value).strip().upper()
    squashed = "".join(ch for ch in text if ch.isalnum())
    return "NON-CR/NON-PD" if squashed == "NONCRNONPD" else text


def from_csv_dir(path: Path | str, cutoff: dt.date | None = None) -> AnalysisDatasets:
    """Read subjects.csv, assessments.csv, adverse_events.csv and qol.csv from a directory."""
    base = Path(path)
    if not base.is_dir():
        raise ValidationError("--data", f"{base} is not a directory", "a directory of CSV files")
    frames: dict[str, pd.DataFrame] = {}
    for name, (fname, _cols) in SOURCE_FILES.items():
        file = base / fname
        if not file.exists():
            raise ValidationError(
                "--data",
                f"{fname} missing in {base}",
                ", ".join(f for f, _ in SOURCE_FILES.values()),
            )
        try:
            frames[name] = pd.read_csv(file, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise ValidationError(str(file), f"unreadable CSV: {exc}", "UTF-8 CSV") from None
    sources = make_sources(**frames)
    return build_datasets(sources, cutoff)


# ---------------------------------------------------------------------------------------------
# Derivations


def _days(a: object, b: object) -> float:
    if a is None or b is None or pd.isna(a) or pd.isna(b):
        return float("nan")
    return float((b - a).days)  # type: ignore[operator]


def _cap(d: dt.date | None, cutoff: dt.date) -> dt.date | None:
    return None if d is None else min(d, cutoff)


def _default_cutoff(s: Sources) -> dt.date:
    dates: list[dt.date] = []
    for col in ("included_on", "randomized_on", "death_on", "last_alive_on"):
        dates += [d for d in s.subjects[col] if d is not None]
    dates += list(s.assessments["assessed_on"]) + list(s.qol["assessed_on"])
    if not dates:
        raise ValidationError(
            "cutoff", "no dated record to derive a cut-off from", "data of included patients"
        )
    return max(dates)


def build_datasets(sources: Sources, cutoff: dt.date | None = None) -> AnalysisDatasets:
    """Derive the five analysis datasets from validated source frames."""
    if sources.subjects.empty:
        raise ValidationError("subjects", "no included patient", "data of included patients")
    cut = cutoff or _default_cutoff(sources)
    adsl = derive_adsl(sources, cut)
    adrs = derive_adrs(adsl, sources.assessments, cut)
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
    adsl["PPROTFL"] = np.where(
        (adsl["ITTFL"] == "Y")
        & (adsl["ELIGFL"] == "Y")
        & (adsl["SAFFL"] == "Y")
        & (adsl["NEVAL"] >= 2),
        "Y",
        "N",
    )
    adqs = derive_adqs(adsl, sources.qol, cut)
    adtte = derive_adtte(adsl, adrs, adqs, cut)
    adae = derive_adae(adsl, sources.adverse_events, cut)
    return AnalysisDatasets(adsl, adrs, adtte, adae, adqs, cut, sources.input_hash)


def derive_adsl(s: Sources, cut: dt.date) -> pd.DataFrame:
    sub = s.subjects[s.subjects["included_on"] <= cut].reset_index(drop=True)
    rand = sub["arm"].notna() & sub["randomized_on"].map(lambda d: d is not None and d <= cut)
    adsl = pd.DataFrame(
        {
            "USUBJID": sub["subject_id"],
            "SITEID": sub["site"],
            "INCLDT": sub["included_on"],
            "RANDDT": sub["randomized_on"].where(rand, None),
            "ARM": sub["arm"].where(rand, None),
            "ARMCD": sub["arm"].where(rand, None).map({"Lutathera": "LUT", "Surveillance": "SURV"}),
            "NRANDRS": sub["not_randomized_reason"],
            "TRTSDT": sub["first_dose_on"].map(lambda d: d if d is not None and d <= cut else None),
            "AGE": sub["age"],
            "SEX": sub["sex"],
            "ECOG": sub["ecog"],
            "GFR": sub["gfr_ml_min"],
            "GRADE": sub["grade"],
            "STRPFS": sub["strat_prior_pfs"],
            "STRPROG": sub["strat_progression"],
            "STRGFR": sub["strat_gfr"],
            "STRLINE": sub["strat_intercurrent"],
            "DTHDT": sub["death_on"].map(lambda d: d if d is not None and d <= cut else None),
            "LSTALVDT": sub["last_alive_on"].map(lambda d: _cap(d, cut)),
        }
    )
    adsl["RANDFL"] = np.where(rand, "Y", "N")
    adsl["ITTFL"] = adsl["RANDFL"]
    adsl["SAFFL"] = np.where(adsl["TRTSDT"].notna(), "Y", "N")
    adsl["ELIGFL"] = np.where(sub["eligible"], "Y", "N")
    adsl["DTHFL"] = np.where(adsl["DTHDT"].notna(), "Y", "N")
    return adsl


def derive_adrs(adsl: pd.DataFrame, assessments: pd.DataFrame, cut: dt.date) -> pd.DataFrame:
    """One OVRLRESP row per assessment (with % change of the target sum from baseline), one
    BOR row (best overall response after randomization) and one DCR6 row per randomized subject."""
    itt = adsl[adsl["ITTFL"] == "Y"].set_index("USUBJID")
    a = assessments[assessments["assessed_on"] <= cut].copy()
    a = a[a["subject_id"].isin(itt.index)]
    a["RANDDT"] = a["subject_id"].map(itt["RANDDT"])
    a["ADY"] = [_days(r, d) for r, d in zip(a["RANDDT"], a["assessed_on"], strict=True)]
    a = a.sort_values(["subject_id", "assessed_on"])
    base = a[a["ADY"] <= 0].groupby("subject_id")["target_sum_mm"].last()
    rows = pd.DataFrame(
        {
            "USUBJID": a["subject_id"],
            "PARAMCD": "OVRLRESP",
            "PARAM": "Overall response (RECIST 1.1)",
            "ADT": a["assessed_on"],
            "ADY": a["ADY"],
            "AVISIT": [_visit(d) for d in a["ADY"]],
            "AVALC": a["overall_response"],
            "TSUM": a["target_sum_mm"],
            "BTSUM": a["subject_id"].map(base),
        }
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        rows["PCHG"] = 100.0 * (rows["TSUM"] - rows["BTSUM"]) / rows["BTSUM"]
    rows["ARM"] = rows["USUBJID"].map(itt["ARM"])
    extra = []
    post_rows = rows[rows["ADY"] > 0][["USUBJID", "ADY", "AVALC", "ADT", "PCHG"]]
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for rec in post_rows.to_dict("records"):
        by_subject.setdefault(str(rec["USUBJID"]), []).append(rec)
    for sid, arm, death in zip(itt.index, itt["ARM"], itt["DTHDT"], strict=True):
        post = by_subject.get(str(sid), [])
        extra.append(_bor_row(str(sid), post, str(arm)))
        extra.append(_dcr6_row(str(sid), post, death, str(arm)))
    out = pd.concat([rows, pd.DataFrame(extra)], ignore_index=True)
    return out.reset_index(drop=True)


def _visit(ady: float) -> str:
    if np.isnan(ady) or ady <= 0:
        return "Baseline"
    return f"Month {round(ady / DAYS_PER_MONTH)}"


_BOR_ORDER = {"CR": 0, "PR": 1, "SD": 2, "NON-CR/NON-PD": 2, "PD": 3, "NE": 4}


def _bor_row(sid: str, post: list[dict[str, Any]], arm: str) -> dict[str, object]:
    vals = [r["AVALC"] for r in post]
    best = min(vals, key=lambda v: _BOR_ORDER[v]) if vals else "NE"
    pch = [r["PCHG"] for r in post if not pd.isna(r["PCHG"])]
    return {
        "USUBJID": sid,
        "PARAMCD": "BOR",
        "PARAM": "Best overall response after randomization",
        "AVALC": best,
        "PCHG": float(min(pch)) if pch else np.nan,
        "ARM": arm,
    }


def _dcr6_row(
    sid: str, post: list[dict[str, Any]], death: dt.date | None, arm: str
) -> dict[str, object]:
    lo, hi = MONTH6_DAY - MONTH6_WINDOW_DAYS, MONTH6_DAY + MONTH6_WINDOW_DAYS
    pd_days = [r["ADY"] for r in post if r["AVALC"] == "PD"]
    first_pd = float(min(pd_days)) if pd_days else None
    window = [r for r in post if lo <= r["ADY"] <= hi]
    evaluable = [r for r in window if r["AVALC"] != "NE"]
    success = False
    adt = None
    if first_pd is not None and first_pd < lo:
        reason = f"progression at day {first_pd:g}, before the landmark window"
    elif not evaluable:
        if first_pd is not None and first_pd <= hi:
            reason = f"progression at day {first_pd:g}, in the window"
        else:
            what = "only NE assessments" if window else "no assessment"
            reason = f"{what} in days {lo}-{hi} (non-evaluable counts as failure)"
    else:
        pick = min(evaluable, key=lambda r: (abs(r["ADY"] - MONTH6_DAY), -r["ADY"]))
        adt = pick["ADT"]
        died_before = death is not None and not pd.isna(death) and death < adt
        if first_pd is not None and first_pd <= pick["ADY"]:
            reason = f"progression at day {first_pd:g}, on or before the landmark assessment"
        elif died_before:
            reason = "death before the landmark assessment"
        else:
            success = pick["AVALC"] in DISEASE_CONTROL
            reason = f"{pick['AVALC']} at day {int(pick['ADY'])}"
    return {
        "USUBJID": sid,
        "PARAMCD": "DCR6",
        "PARAM": "Disease control at 6 months (CR, PR or SD)",
        "ADT": adt,
        "AVALC": "Y" if success else "N",
        "AVAL": 1.0 if success else 0.0,
        "DCRRSN": reason,
        "ARM": arm,
    }


def _tte_row(
    sid: str, arm: str, code: str, label: str, start: dt.date, end: dt.date, event: bool, desc: str
) -> dict[str, object]:
    days = float(max((end - start).days, 0))
    return {
        "USUBJID": sid,
        "ARM": arm,
        "PARAMCD": code,
        "PARAM": label,
        "STARTDT": start,
        "ADT": end,
        "ADY": days,
        "AVAL": days / DAYS_PER_MONTH,
        "CNSR": 0 if event else 1,
        "EVNTDESC": desc,
    }


def derive_adtte(
    adsl: pd.DataFrame, adrs: pd.DataFrame, adqs: pd.DataFrame, cut: dt.date
) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    ovr = adrs[(adrs["PARAMCD"] == "OVRLRESP") & (adrs["ADY"] > 0)]
    first_pds = ovr[ovr["AVALC"] == "PD"].groupby("USUBJID")["ADT"].min().to_dict()
    last_evals = ovr[ovr["AVALC"].isin(DISEASE_CONTROL)].groupby("USUBJID")["ADT"].max().to_dict()
    for s in adsl[adsl["ITTFL"] == "Y"].to_dict("records"):
        sid, arm, start = str(s["USUBJID"]), str(s["ARM"]), s["RANDDT"]
        last_eval = last_evals.get(sid, start)
        first_pd = first_pds.get(sid)
        death = s["DTHDT"]
        # rPFS: PD or death.
        if first_pd is not None and (death is None or first_pd <= death):
            rows.append(
                _tte_row(
                    sid,
                    arm,
                    "RPFS",
                    "Radiological PFS (months)",
                    start,
                    first_pd,
                    True,
                    "progression",
                )
            )
        elif death is not None:
            rows.append(
                _tte_row(sid, arm, "RPFS", "Radiological PFS (months)", start, death, True, "death")
            )
        else:
            rows.append(
                _tte_row(
                    sid,
                    arm,
                    "RPFS",
                    "Radiological PFS (months)",
                    start,
                    last_eval,
                    False,
                    "last evaluable assessment",
                )
            )
        # PFS: PD only.
        if first_pd is not None:
            rows.append(
                _tte_row(sid, arm, "PFS", "PFS (months)", start, first_pd, True, "progression")
            )
        else:
            rows.append(
                _tte_row(
                    sid,
                    arm,
                    "PFS",
                    "PFS (months)",
                    start,
                    last_eval,
                    False,
                    "last evaluable assessment",
                )
            )
        # OS.
        if death is not None:
            rows.append(
                _tte_row(sid, arm, "OS", "Overall survival (months)", start, death, True, "death")
            )
        else:
            last = s["LSTALVDT"] or start
            rows.append(
                _tte_row(
                    sid,
                    arm,
                    "OS",
                    "Overall survival (months)",
                    start,
                    max(last, start),
                    False,
                    "last known alive",
                )
            )
    rpfs_events = {
        r["USUBJID"]: r["ADT"] for r in rows if r["PARAMCD"] == "RPFS" and r["CNSR"] == 0
    }
    rows += _ttd_rows(adsl, adqs, rpfs_events)
    out = pd.DataFrame(rows)
    if out.empty:
        out = pd.DataFrame(
            columns=[
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
            ]
        )
    out = out.merge(adsl[["USUBJID", *STRATA]], on="USUBJID", how="left")
    return out


def _ttd_rows(
    adsl: pd.DataFrame, adqs: pd.DataFrame, rpfs_events: dict[object, object]
) -> list[dict[str, object]]:
    """TTD<scale>: first >=10-point deterioration. TTDS<scale> (sensitivity): the earliest of
    deterioration, progression or death. Both censored at the last QoL assessment."""
    itt = adsl[adsl["ITTFL"] == "Y"].set_index("USUBJID")
    q = adqs[adqs["BASE"].notna() & (adqs["ADY"] > 0) & adqs["USUBJID"].isin(itt.index)]
    q = q.sort_values(["USUBJID", "PARAMCD", "ADT"])
    symptom = q["PARCAT"] == "symptom"
    worse = np.where(
        symptom, q["CHG"] >= QOL_DETERIORATION_POINTS, q["CHG"] <= -QOL_DETERIORATION_POINTS
    )
    keys = ["USUBJID", "PARAMCD"]
    first_worse = q[worse].groupby(keys)["ADT"].first().to_dict()
    last = q.groupby(keys)["ADT"].last()
    rows: list[dict[str, object]] = []
    for (sid, scale), last_date in last.items():
        start, arm = itt.loc[sid, "RANDDT"], str(itt.loc[sid, "ARM"])
        worse_on = first_worse.get((sid, scale))
        main = f"Time to QoL deterioration, {scale} (months)"
        if worse_on is not None:
            ev = (worse_on, True, ">=10-point deterioration")
        else:
            ev = (last_date, False, "last QoL assessment")
        rows.append(_tte_row(str(sid), arm, f"TTD{scale}", main, start, *ev))
        progression = rpfs_events.get(sid)
        if progression is not None and (worse_on is None or progression < worse_on):
            ev = (progression, True, "progression or death")
        sens = f"Time to QoL deterioration, progression or death, {scale} (months)"
        rows.append(_tte_row(str(sid), arm, f"TTDS{scale}", sens, start, *ev))
    return rows


def derive_adae(adsl: pd.DataFrame, aes: pd.DataFrame, cut: dt.date) -> pd.DataFrame:
    """AEs of the safety population with onset up to the cut-off; TRTEMFL on/after first dose,
    APERIOD says whether onset was before or after randomization."""
    saf = adsl[adsl["SAFFL"] == "Y"].set_index("USUBJID")
    a = aes[aes["subject_id"].isin(saf.index) & (aes["onset_on"] <= cut)].copy()
    out = pd.DataFrame(
        {
            "USUBJID": a["subject_id"],
            "AEDECOD": a["term"],
            "AESOC": a["soc"],
            "AETOXGR": a["grade"].astype(int),
            "AESER": np.where(a["serious"], "Y", "N"),
            "ASTDT": a["onset_on"],
        }
    )
    out["ARM"] = out["USUBJID"].map(saf["ARM"])
    out["TRTEMFL"] = [
        "Y" if d >= saf.loc[s, "TRTSDT"] else "N"
        for s, d in zip(out["USUBJID"], out["ASTDT"], strict=True)
    ]
    rand = out["USUBJID"].map(saf["RANDDT"])
    out["APERIOD"] = [
        "post-randomization" if r is not None and not pd.isna(r) and d >= r else "pre-randomization"
        for r, d in zip(rand, out["ASTDT"], strict=True)
    ]
    return out.reset_index(drop=True)


def derive_adqs(adsl: pd.DataFrame, qol: pd.DataFrame, cut: dt.date) -> pd.DataFrame:
    itt = adsl[adsl["ITTFL"] == "Y"].set_index("USUBJID")
    q = qol[qol["subject_id"].isin(itt.index) & (qol["assessed_on"] <= cut)].copy()
    q = q.sort_values(["subject_id", "scale", "assessed_on"])
    q["RANDDT"] = q["subject_id"].map(itt["RANDDT"])
    q["ADY"] = [_days(r, d) for r, d in zip(q["RANDDT"], q["assessed_on"], strict=True)]
    base = q[q["ADY"] <= 0].groupby(["subject_id", "scale"])["score"].last()
    out = pd.DataFrame(
        {
            "USUBJID": q["subject_id"],
            "ARM": q["subject_id"].map(itt["ARM"]),
            "PARAMCD": q["scale"],
            "PARCAT": q["kind"],
            "ADT": q["assessed_on"],
            "ADY": q["ADY"],
            "AVISIT": [_visit(d) for d in q["ADY"]],
            "AVAL": q["score"],
        }
    )
    keys = list(zip(q["subject_id"], q["scale"], strict=True))
    out["BASE"] = [base.get(k, np.nan) for k in keys]
    out["CHG"] = np.where(out["ADY"] > 0, out["AVAL"] - out["BASE"], np.nan)
    return out.reset_index(drop=True)


# Variable descriptions: dataset → name → (label, derivation). Labels <= 40 characters (xpt).
VARIABLES: dict[str, dict[str, tuple[str, str]]] = {
    "adsl": {
        "USUBJID": ("Unique subject identifier", "subjects.subject_id (pseudonymous)"),
        "SITEID": ("Site identifier", "subjects.site"),
        "INCLDT": ("Date of inclusion", "subjects.included_on"),
        "RANDDT": ("Date of randomization", "subjects.randomized_on if <= cut-off"),
        "ARM": ("Randomized arm", "subjects.arm (ITT: as randomized)"),
        "ARMCD": ("Randomized arm code", "LUT = Lutathera, SURV = Surveillance"),
        "NRANDRS": ("Reason not randomized", "subjects.not_randomized_reason"),
        "TRTSDT": ("Date of first dose after inclusion", "subjects.first_dose_on"),
        "AGE": ("Age at inclusion (years)", "subjects.age"),
        "SEX": ("Sex", "subjects.sex"),
        "ECOG": ("ECOG performance status", "subjects.ecog"),
        "GFR": ("GFR at inclusion (mL/min)", "subjects.gfr_ml_min"),
        "GRADE": ("Tumour grade", "subjects.grade"),
        "STRPFS": ("Strat: control after 1st PRRT", STRATA["STRPFS"]),
        "STRPROG": ("Strat: type of progression", STRATA["STRPROG"]),
        "STRGFR": ("Strat: GFR group", STRATA["STRGFR"]),
        "STRLINE": ("Strat: intercurrent line", STRATA["STRLINE"]),
        "DTHDT": ("Date of death", "subjects.death_on if <= cut-off"),
        "LSTALVDT": ("Date last known alive", "min(subjects.last_alive_on, cut-off)"),
        "RANDFL": ("Randomized flag", "Y if randomized by the cut-off"),
        "ITTFL": ("Intention-to-treat population flag", "= RANDFL"),
        "SAFFL": ("Safety population flag", "Y if a dose was received after inclusion"),
        "ELIGFL": ("Eligible (no major violation) flag", "subjects.eligible"),
        "DTHFL": ("Death flag", "Y if DTHDT present"),
        "DCR6": ("Disease control at month 6", "ADRS PARAMCD=DCR6 AVALC"),
        "NEVAL": (
            "Tumour evaluations after randomization",
            "count of ADRS OVRLRESP, ADY>0, not NE",
        ),
        "PPROTFL": ("Per-protocol population flag", "ITT, eligible, safety, NEVAL >= 2"),
    },
    "adrs": {
        "USUBJID": ("Unique subject identifier", ""),
        "PARAMCD": ("Parameter code", "OVRLRESP, BOR, DCR6"),
        "PARAM": ("Parameter", ""),
        "ADT": ("Assessment date", "assessments.assessed_on"),
        "ADY": ("Days since randomization", "ADT - RANDDT"),
        "AVISIT": ("Analysis visit", "Month round(ADY/30.4375); Baseline if ADY <= 0"),
        "AVALC": ("Response / flag", "assessments.overall_response; BOR best; DCR6 Y/N"),
        "AVAL": ("Numeric value", "DCR6: 1 = disease control"),
        "TSUM": ("Sum of target diameters (mm)", "assessments.target_sum_mm"),
        "BTSUM": ("Baseline sum of diameters (mm)", "last TSUM on or before randomization"),
        "PCHG": ("Percent change of target sum", "100 (TSUM - BTSUM) / BTSUM; BOR: best"),
        "DCRRSN": ("Reason for DCR6 value", "see docs/analysis.md"),
        "ARM": ("Randomized arm", "ADSL.ARM"),
    },
    "adtte": {
        "USUBJID": ("Unique subject identifier", ""),
        "ARM": ("Randomized arm", "ADSL.ARM"),
        "PARAMCD": ("Parameter code", "PFS, RPFS, OS, TTD<scale>, TTDS<scale>"),
        "PARAM": ("Parameter", ""),
        "STARTDT": ("Time origin (randomization)", "ADSL.RANDDT"),
        "ADT": ("Event or censoring date", "see censoring rules"),
        "ADY": ("Time to event (days)", "ADT - STARTDT"),
        "AVAL": ("Time to event (months)", "ADY / 30.4375"),
        "CNSR": ("Censored (1) or event (0)", "CDISC ADTTE convention"),
        "EVNTDESC": ("Event or censoring description", ""),
        **{k: (f"Strat: {k[3:].lower()}", STRATA[k]) for k in STRATA},
    },
    "adae": {
        "USUBJID": ("Unique subject identifier", ""),
        "AEDECOD": ("Adverse event term", "adverse_events.term"),
        "AESOC": ("System organ class", "adverse_events.soc"),
        "AETOXGR": ("CTCAE v5.0 grade", "adverse_events.grade"),
        "AESER": ("Serious event", "adverse_events.serious"),
        "ASTDT": ("Onset date", "adverse_events.onset_on"),
        "ARM": ("Randomized arm", "ADSL.ARM (empty if not randomized)"),
        "TRTEMFL": ("Treatment-emergent flag", "onset >= TRTSDT"),
        "APERIOD": ("Period of onset", "pre-/post-randomization"),
    },
    "adqs": {
        "USUBJID": ("Unique subject identifier", ""),
        "ARM": ("Randomized arm", "ADSL.ARM"),
        "PARAMCD": ("QoL scale code", "qol.scale (EORTC code)"),
        "PARCAT": ("Scale kind", "functional, global or symptom"),
        "ADT": ("Assessment date", "qol.assessed_on"),
        "ADY": ("Days since randomization", "ADT - RANDDT"),
        "AVISIT": ("Analysis visit", "as ADRS"),
        "AVAL": ("Score (0-100)", "qol.score"),
        "BASE": ("Baseline score", "last score on or before randomization"),
        "CHG": ("Change from baseline", "AVAL - BASE after randomization"),
    },
}


# ---------------------------------------------------------------------------------------------
# The trial database (read only): the store's tables → the same four source frames.

DB_TABLES = (
    "centres",
    "patients",
    "screenings",
    "inclusions",
    "randomizations",
    "administrations",
    "pre_randomization_assessments",
    "tumour_assessments",
    "adverse_events",
    "qol_questionnaires",
    "deaths",
    "end_of_study",
)
OPTIONAL_DB_TABLES = ("visits",)
# EORTC scoring keys as stored → analysis scale code and kind.
_C30_CODES = {"QL": "QL2", "PF": "PF2", "RF": "RF2"}


def _qol_scale(instrument: str, key: str) -> tuple[str, str | None]:
    if instrument.upper().replace("-", "").startswith("QLQC30"):
        code = _C30_CODES.get(key, key)
        return code, QOL_SCALE_KINDS.get(code)
    # GI.NET21: every scale is scored so that higher means more problems.
    return f"N{key}"[:8], "symptom"


def _read_tables(url: str) -> dict[str, pd.DataFrame]:
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from reluth.db.engine import make_engine

    try:
        engine = make_engine(url)
        inspect(engine).get_table_names()
    except (SQLAlchemyError, ValueError) as exc:
        raise ValidationError("--db", f"cannot open {url!r}: {exc}", "a database URL") from None
    try:
        return _read_engine_tables(engine)
    finally:
        engine.dispose()


def _read_engine_tables(engine: Any) -> dict[str, pd.DataFrame]:
    """The store's tables as frames, read with SELECTs only on one connection."""
    from sqlalchemy import MetaData, inspect, select

    present = set(inspect(engine).get_table_names())
    missing = [t for t in DB_TABLES if t not in present]
    if missing:
        raise ValidationError(
            "--db",
            f"not a reluth trial database (missing tables: {', '.join(missing)})",
            "a database created by `reluth db upgrade`",
        )
    md = MetaData()
    names = [t for t in (*DB_TABLES, *OPTIONAL_DB_TABLES) if t in present]
    md.reflect(engine, only=names)
    frames: dict[str, pd.DataFrame] = {}
    with engine.connect() as conn:
        for name in names:
            rows = conn.execute(select(md.tables[name])).mappings().all()
            frames[name] = pd.DataFrame(
                [dict(r) for r in rows], columns=list(md.tables[name].c.keys())
            )
    return frames


def _as_date(v: object) -> dt.date | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v)[:10])


def _iso(v: object) -> str:
    d = _as_date(v)
    return d.isoformat() if d else ""


def sources_from_tables(t: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Map the store's tables onto the CSV source shape (pure; no database access)."""
    import json

    from reluth.protocol.eligibility import estimate_egfr
    from reluth.protocol.patient import PatientFile

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
    first_dose = t["administrations"].groupby("patient_id")["administered_on"].min()
    dates: dict[int, list[dt.date]] = {}

    def seen(pid: object, when: object) -> None:
        d = _as_date(when)
        if d is not None:
            dates.setdefault(int(pid), []).append(d)  # type: ignore[call-overload]

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
                seen(pid, when)
    code = dict(zip(t["patients"]["id"], t["patients"]["patient_code"], strict=True))
    subjects = []
    protocol = load_protocol()
    for _, p in t["patients"].iterrows():
        pid = int(p["id"])
        if pid not in by_pid["inclusions"].index:
            continue  # screened, never included
        incl = _as_date(by_pid["inclusions"].loc[pid, "inclusion_date"])
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
            rnd["strata_json"]
            if rnd is not None
            else (scr["strata_json"] if scr is not None else None)
        )
        if raw_strata:
            strata = {k: str(v) for k, v in json.loads(raw_strata).items()}
        gfr = estimate_egfr(pf, protocol)[0] if pf is not None else None
        reason = ""
        if rnd is None:
            pra = by_pid["pre_randomization_assessments"]
            eos = by_pid["end_of_study"]
            if pid in pra.index and bool(pra.loc[pid, "radiological_progression"]):
                reason = "radiological progression after the 2 second-PRRT cycles"
            elif pid in eos.index:
                reason = str(eos.loc[pid, "reason"])
            else:
                reason = "not (yet) randomized"
        death = (
            _as_date(by_pid["deaths"].loc[pid, "death_date"])
            if pid in by_pid["deaths"].index
            else None
        )
        rdate = _as_date(rnd["randomized_at"]) if rnd is not None else None
        known = [d for d in (*dates.get(pid, []), incl, rdate) if d is not None]
        subjects.append(
            {
                "subject_id": p["patient_code"],
                "site": centre.get(p["centre_id"], str(p["centre_id"])),
                "included_on": _iso(incl),
                "arm": "" if rnd is None else str(rnd["arm"]),
                "randomized_on": _iso(rdate),
                "not_randomized_reason": reason,
                "eligible": "Y" if scr is not None and scr["status"] == "eligible" else "N",
                "first_dose_on": _iso(first_dose.get(pid)),
                "age": "" if pf is None or pf.age is None else pf.age,
                "sex": p["sex"] or ("" if pf is None or pf.sex is None else pf.sex[0].upper()),
                "ecog": "" if pf is None or pf.ecog is None else pf.ecog,
                "gfr_ml_min": "" if gfr is None else float(gfr),
                "grade": "" if pf is None or pf.histology.grade is None else pf.histology.grade,
                "strat_prior_pfs": strata.get("disease_control_first_prrt", ""),
                "strat_progression": strata.get("progression_type", ""),
                "strat_gfr": strata.get("renal_function", ""),
                "strat_intercurrent": strata.get("intercurrent_treatment", ""),
                "death_on": _iso(death),
                "last_alive_on": _iso(death or max(known)),
            }
        )
    ta = t["tumour_assessments"]
    ta = ta[ta["overall_response"].notna() & ta["patient_id"].isin(code)]
    central = set(ta.loc[ta["reader"] == "central", "patient_id"])
    ta = ta[(ta["reader"] == "central") | ~ta["patient_id"].isin(central)]
    assessments = pd.DataFrame(
        {
            "subject_id": ta["patient_id"].map(code),
            "assessed_on": ta["assessment_date"].map(_iso),
            "overall_response": ta["overall_response"].astype(str),
            "target_sum_mm": ta["target_sum_mm"].map(lambda v: "" if v is None else float(v)),
        }
    )
    ae = t["adverse_events"]
    aes = pd.DataFrame(
        {
            "subject_id": ae["patient_id"].map(code),
            "term": ae["term"],
            "soc": "",
            "grade": ae["grade"],
            "serious": ae["serious"].map(lambda b: "Y" if b else "N"),
            "onset_on": ae["onset_date"].map(_iso),
        }
    )
    qol_rows = []
    for _, q in t["qol_questionnaires"].iterrows():
        if not q["scores_json"]:
            continue
        scores = json.loads(q["scores_json"])
        scores = scores.get("scales", scores) if isinstance(scores, dict) else {}
        for key, value in scores.items():
            if isinstance(value, dict):
                value = value.get("score")
            if value is None or isinstance(value, bool) or not isinstance(value, int | float | str):
                continue
            scale, kind = _qol_scale(str(q["instrument"]), str(key))
            if kind is None:
                continue
            qol_rows.append(
                {
                    "subject_id": code[q["patient_id"]],
                    "assessed_on": _iso(q["completed_on"]),
                    "scale": scale,
                    "score": float(value),
                    "kind": kind,
                }
            )
    return {
        "subjects": pd.DataFrame(subjects, columns=list(SUBJECT_COLUMNS)),
        "assessments": assessments,
        "adverse_events": aes,
        "qol": pd.DataFrame(qol_rows, columns=list(QOL_COLUMNS)),
    }


def from_database(url: str, cutoff: dt.date | None = None) -> AnalysisDatasets:
    """Read the trial database (SELECTs only) and derive the analysis datasets."""
    return _from_tables(_read_tables(url), cutoff)


def from_engine(engine: Any, cutoff: dt.date | None = None) -> AnalysisDatasets:
    """As :func:`from_database`, on an open SQLAlchemy engine (the web app's)."""
    return _from_tables(_read_engine_tables(engine), cutoff)


def _from_tables(tables: dict[str, pd.DataFrame], cutoff: dt.date | None) -> AnalysisDatasets:
    frames = sources_from_tables(tables)
    str_frames = {
        k: v.astype(str).replace({"None": "", "nan": "", "NaT": ""}) for k, v in frames.items()
    }
    return build_datasets(make_sources(**str_frames), cutoff)
