"""A seeded synthetic ReLUTH-shaped trial in the CSV source shape (for tests, examples and
benchmarks only — never a stand-in for real data). The arm labels and the strata columns are
the protocol's (its :class:`~reluth.analysis.design.AnalysisDesign`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from reluth.analysis.datasets import QOL_SCALE_KINDS, SOURCE_FILES
from reluth.analysis.design import AnalysisDesign
from reluth.csvout import frame_to_csv
from reluth.protocol.definition import Protocol

_TERMS = [
    ("Nausea", "Gastrointestinal disorders"),
    ("Fatigue", "General disorders"),
    ("Anaemia", "Blood and lymphatic system disorders"),
    ("Platelet count decreased", "Investigations"),
    ("Lymphocyte count decreased", "Investigations"),
    ("Diarrhoea", "Gastrointestinal disorders"),
    ("Abdominal pain", "Gastrointestinal disorders"),
    ("Creatinine increased", "Investigations"),
]
_QOL_SCALES = ["QL2", "PF2", "FA", "DI"]


def synthetic_sources(
    n_included: int = 176,
    seed: int = 20211001,
    start: dt.date = dt.date(2021, 10, 1),
    *,
    protocol: Protocol,
) -> dict[str, pd.DataFrame]:
    """Subjects, assessments, adverse events and QoL scores of a made-up trial."""
    design = AnalysisDesign.of(protocol)
    arms = design.arms
    column = {v.factor: v.source_column for v in design.strata}
    rng = np.random.default_rng(seed)
    subjects, assessments, aes, qol = [], [], [], []
    for i in range(n_included):
        sid = f"S{i + 1:04d}"
        incl = start + dt.timedelta(days=int(rng.integers(0, 3 * 365)))
        randomized = rng.random() > 0.17
        arm = arms[int(rng.integers(0, 2))] if randomized else None
        rand_on = incl + dt.timedelta(days=int(rng.integers(110, 130))) if randomized else None
        dose_on = (
            incl + dt.timedelta(days=int(rng.integers(1, 15))) if rng.random() > 0.02 else None
        )
        p_ctrl = 0.85 if arm == arms[0] else 0.65
        # Exponential PFS with median chosen so that P(PFS > 6 months) ~ p_ctrl.
        rate = -np.log(p_ctrl) / 183
        pfs_days = int(rng.exponential(1 / rate)) + 1
        os_days = pfs_days + int(rng.exponential(700))
        follow = int(rng.integers(200, 1400))
        origin = rand_on or incl
        death_on = origin + dt.timedelta(days=os_days) if os_days < follow else None
        last_alive = origin + dt.timedelta(days=min(os_days, follow))
        gfr = float(np.round(rng.normal(72, 15), 1))
        subjects.append(
            {
                "subject_id": sid,
                "site": f"FR{int(rng.integers(1, 23)):02d}",
                "included_on": incl.isoformat(),
                "arm": arm or "",
                "randomized_on": rand_on.isoformat() if rand_on else "",
                "not_randomized_reason": "" if randomized else "progression after 2 cycles",
                "eligible": "Y" if rng.random() > 0.05 else "N",
                "first_dose_on": dose_on.isoformat() if dose_on else "",
                "age": int(rng.integers(40, 85)),
                "sex": "F" if rng.random() < 0.45 else "M",
                "ecog": int(rng.choice([0, 1, 2], p=[0.5, 0.4, 0.1])),
                "gfr_ml_min": gfr,
                "grade": "G1" if rng.random() < 0.4 else "G2",
                column["disease_control_first_prrt"]: ">=18" if rng.random() < 0.6 else "<18",
                column["progression_type"]: "radiologic"
                if rng.random() < 0.7
                else "non-radiologic",
                column["renal_function"]: ">=60" if gfr >= 60 else "<60",
                column["intercurrent_treatment"]: "Y" if rng.random() < 0.3 else "N",
                "death_on": death_on.isoformat() if death_on else "",
                "last_alive_on": last_alive.isoformat(),
            }
        )
        if not randomized or rand_on is None:
            continue
        base_sum = float(rng.uniform(30, 150))
        shrink = -0.25 if arm == arms[0] else 0.02
        assessments.append(
            {
                "subject_id": sid,
                "assessed_on": (rand_on - dt.timedelta(days=7)).isoformat(),
                "overall_response": "SD",
                "target_sum_mm": round(base_sum, 1),
            }
        )
        for k in range(1, 31):
            day = 61 * k + int(rng.integers(-5, 6))
            if day > min(follow, os_days):
                break
            progressed = day >= pfs_days
            change = shrink * min(k, 3) / 3 + rng.normal(0, 0.06)
            tsum = base_sum * (1 + (0.25 if progressed else change))
            resp = "PD" if progressed else ("PR" if change <= -0.3 else "SD")
            if rng.random() < 0.03:
                resp = "NE"
            assessments.append(
                {
                    "subject_id": sid,
                    "assessed_on": (rand_on + dt.timedelta(days=day)).isoformat(),
                    "overall_response": resp,
                    "target_sum_mm": round(tsum, 1),
                }
            )
            if progressed:
                break
        for term, soc in _TERMS:
            if rng.random() < (0.35 if arm == arms[0] else 0.2):
                grade = int(rng.choice([1, 2, 3, 4], p=[0.55, 0.3, 0.12, 0.03]))
                onset = rand_on + dt.timedelta(days=int(rng.integers(-100, 300)))
                aes.append(
                    {
                        "subject_id": sid,
                        "term": term,
                        "soc": soc,
                        "grade": grade,
                        "serious": "Y" if grade >= 3 and rng.random() < 0.5 else "N",
                        "onset_on": onset.isoformat(),
                    }
                )
        for scale in _QOL_SCALES:
            kind = QOL_SCALE_KINDS[scale]
            base = float(rng.uniform(40, 90)) if kind != "symptom" else float(rng.uniform(5, 40))
            drift = (-1.5 if kind != "symptom" else 1.5) * (0.6 if arm == arms[0] else 1.0)
            for m in range(0, 13, 2):
                day = -7 if m == 0 else int(m * 30.4375)
                if day > min(follow, os_days):
                    break
                score = base + drift * m + rng.normal(0, 8)
                qol.append(
                    {
                        "subject_id": sid,
                        "assessed_on": (rand_on + dt.timedelta(days=day)).isoformat(),
                        "scale": scale,
                        "score": round(float(np.clip(score, 0, 100)), 1),
                    }
                )
    return {
        "subjects": pd.DataFrame(subjects),
        "assessments": pd.DataFrame(assessments),
        "adverse_events": pd.DataFrame(
            aes, columns=["subject_id", "term", "soc", "grade", "serious", "onset_on"]
        ),
        "qol": pd.DataFrame(qol),
    }


def write_synthetic_csv(
    out_dir: Path, n_included: int = 176, seed: int = 20211001, *, protocol: Protocol
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in synthetic_sources(n_included, seed, protocol=protocol).items():
        frame_to_csv(frame, out_dir / SOURCE_FILES[name])
    return out_dir
