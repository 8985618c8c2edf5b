"""The ancillary dosimetry study of the synthetic trial, computed with the dosimetry engine.

For each dosimetry patient and cycle: time-activity fits (AICc) of kidneys and tumours,
kidney self-dose from S-values scaled to the patient's kidney mass, tumour dose by the sphere
model, red-marrow dose by the blood-based method, kidney BED; then cumulative doses over the
patient's cycles and the dose–effect analysis (tumour dose vs disease control at month 6,
kidney BED vs eGFR slope).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from reluth.auth.actor import Actor
from reluth.core.context import writing
from reluth.core.trial import Trial
from reluth.csvout import frame_to_csv
from reluth.dosimetry import bed, dose_effect, kinetics, marrow, sphere, svalues
from reluth.dosimetry import service as dosimetry
from reluth.dosimetry.cumulative import CycleDoses, OrganCycleDose, cumulate
from reluth.dosimetry.pipeline import DoseRecord
from reluth.errors import PreconditionFailed
from reluth.protocol.egfr import mdrd_175
from reluth.simulation.cohort import DosimetryCycle, SyntheticPatient
from reluth.values import to_jsonable


@dataclass(frozen=True)
class CycleResult:
    patient_id: str
    cycle: int
    kidney_dose_gy: float
    kidney_bed_gy: float
    kidney_half_life_h: float
    tumour_dose_gy: float  # mean over the patient's tumours
    marrow_dose_gy: float


def _cycle(p: SyntheticPatient, c: DosimetryCycle) -> CycleResult:
    sex = p.covariates.sex
    t = np.asarray(c.sampling_times_h, dtype=float)
    kidney_dose = kidney_teff = 0.0
    tumour_doses: list[float] = []
    remainder = 0.0
    for voi in c.volumes:
        fit = kinetics.fit_auto(t, np.asarray(voi.activity_mbq, dtype=float))
        if voi.name == "kidneys":
            kidney_dose = svalues.organ_self_dose_gy(fit.tia_mbq_h, "kidneys", sex, voi.mass_g)
            kidney_teff = fit.effective_half_life_h or 0.0
        elif voi.name.startswith("tumour"):
            dose, _ = sphere.sphere_dose_gy(fit.tia_mbq_h, voi.mass_g)
            tumour_doses.append(dose)
        else:
            remainder += fit.tia_mbq_h
    blood = np.asarray(c.blood_activity_kbq_per_ml, dtype=float) * 1000.0  # Bq/mL
    blood_tia = kinetics.fit_auto(t, blood).tia_mbq_h  # units follow the input: Bq·h/mL
    rm = marrow.marrow_dose(blood_tia, sex)
    return CycleResult(
        patient_id=p.patient_id,
        cycle=c.cycle,
        kidney_dose_gy=kidney_dose,
        kidney_bed_gy=bed.bed_gy(kidney_dose, kidney_teff) if kidney_teff else float("nan"),
        kidney_half_life_h=kidney_teff,
        tumour_dose_gy=float(np.mean(tumour_doses)) if tumour_doses else float("nan"),
        marrow_dose_gy=rm.total_gy,
    )


def cycle_records(r: CycleResult) -> list[DoseRecord]:
    """The cycle's results as the records the trial database stores (dosimetry service)."""
    case_id = f"DEMO-{r.patient_id}-C{r.cycle}"
    label = f"cycle {r.cycle}"
    candidates = [
        ("kidneys", "organ", "absorbed_dose", r.kidney_dose_gy, "Gy", "S-value"),
        ("kidneys", "organ", "effective_half_life", r.kidney_half_life_h, "h", "AICc fit"),
        ("kidneys", "organ", "bed", r.kidney_bed_gy, "Gy", "BED (α/β, T_rep)"),
        ("tumours (mean)", "tumour", "absorbed_dose", r.tumour_dose_gy, "Gy", "sphere model"),
        ("red_marrow", "marrow", "absorbed_dose", r.marrow_dose_gy, "Gy", "blood-based"),
    ]
    return [
        DoseRecord(case_id, label, region, quantity, float(value), None, unit, method, kind)
        for region, kind, quantity, value, unit, method in candidates
        if math.isfinite(value) and (quantity != "effective_half_life" or value > 0)
    ]


def store_results(
    engine: Engine, results: list[CycleResult], physicist: Actor, trial: Trial
) -> dict[str, int]:
    """Store every computed cycle through the dosimetry service, as the (authenticated) demo
    physicist, in one audited unit of work. A cycle without a recorded administration (the
    service refuses it) is counted, not stored."""
    stored = not_administered = 0
    with writing(engine, physicist, trial) as ctx:
        for r in results:
            try:  # refused before anything is written, so the unit of work goes on
                dosimetry.store_cycle(ctx, r.patient_id, r.cycle, cycle_records(r))
            except PreconditionFailed:
                not_administered += 1
                continue
            stored += 1
    return {"cycles_stored": stored, "cycles_not_administered": not_administered}


def _egfr_slope(p: SyntheticPatient, labs: tuple[dict[str, Any], ...]) -> float:
    """eGFR change per year (MDRD from the creatinine results), by least squares."""
    from decimal import Decimal

    points = []
    for r in labs:
        if r.get("test") != "creatinine":
            continue
        value = Decimal(str(r["value"]))
        if str(r["unit"]).lower() == "mg/dl":
            value *= Decimal("88.4")
        egfr = float(mdrd_175(value, Decimal(p.covariates.age), p.covariates.sex == "female"))
        points.append((pd.Timestamp(r["date"]).toordinal() / 365.25, egfr))
    if len(points) < 2:
        return float("nan")
    x, y = np.array(points).T
    return float(np.polyfit(x, y, 1)[0])


def run_study(
    patients: list[SyntheticPatient], allocated: dict[str, str], out_dir: Path
) -> dict[str, Any]:
    """Compute every dosimetry patient's doses; write results and the dose-effect figures."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[CycleResult] = []
    summaries: list[dict[str, Any]] = []
    effect_rows: list[dict[str, Any]] = []
    for p in patients:
        arm = allocated.get(p.patient_id)
        cycles = list(p.dosimetry) + (list(p.outcomes[arm].dosimetry) if arm else [])
        if not cycles:
            continue
        results = [_cycle(p, c) for c in cycles]
        rows.extend(results)
        cum = cumulate(
            [
                CycleDoses(
                    f"cycle {r.cycle}",
                    {
                        "kidneys": OrganCycleDose(r.kidney_dose_gy, r.kidney_half_life_h or None),
                        "red_marrow": OrganCycleDose(r.marrow_dose_gy),
                    },
                )
                for r in results
            ]
        )
        summaries.append(
            {
                "patient_id": p.patient_id,
                "arm": arm or "not randomized",
                "cycles": [r.cycle for r in results],
                "cumulative": to_jsonable(cum),
            }
        )
        if arm:
            outcome = p.outcomes[arm]
            effect_rows.append(
                {
                    "patient_id": p.patient_id,
                    "tumour_dose_gy": float(np.nansum([r.tumour_dose_gy for r in results])),
                    "disease_control_m6": int(outcome.disease_control_month6),
                    "kidney_bed_gy": float(np.nansum([r.kidney_bed_gy for r in results])),
                    "egfr_slope_ml_min_1_73m2_per_year": _egfr_slope(p, outcome.labs),
                    "red_marrow_dose_gy": float(sum(r.marrow_dose_gy for r in results)),
                }
            )
    per_cycle = pd.DataFrame([r.__dict__ for r in rows])
    frame_to_csv(per_cycle, out_dir / "doses_per_cycle.csv")
    (out_dir / "cumulative.json").write_text(json.dumps(summaries, indent=2), encoding="utf-8")
    effect = pd.DataFrame(effect_rows).dropna()
    frame_to_csv(effect, out_dir / "dose_effect_input.csv")
    result = dose_effect.analyse(effect) if len(effect) >= 5 else None
    figures: list[str] = []
    if result is not None:
        figures = dose_effect.plot(effect, result, out_dir)
        (out_dir / "dose_effect.html").write_text(
            dose_effect.report_section(result), encoding="utf-8"
        )
    return {
        "per_cycle": rows,
        "patients": len(summaries),
        "cycles": len(rows),
        "median_kidney_dose_gy_per_cycle": float(per_cycle["kidney_dose_gy"].median())
        if rows
        else None,
        "median_marrow_dose_gy_per_cycle": float(per_cycle["marrow_dose_gy"].median())
        if rows
        else None,
        "limit_warnings": sum(len(s["cumulative"].get("warnings", [])) for s in summaries),
        "figures": figures,
    }
