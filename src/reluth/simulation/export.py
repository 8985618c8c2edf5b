"""Writing the synthetic cohort to files, in the input shapes of the other commands.

Layout under the output directory::

    cohort.json                          config, centres, one summary row per patient
    patients/<ID>/inclusion.json         eligibility patient file at inclusion
    patients/<ID>/randomization.json     eligibility patient file at the randomization gate
    patients/<ID>/dosimetry.json         kinetics of cycles 1-2 (dosimetry centres only)
    patients/<ID>/<arm>/recist.json      `reluth recist evaluate` input under <arm>; both arms are
                                         written (potential outcomes: the randomization service
                                         decides which one applies)
    patients/<ID>/<arm>/labs.json        `reluth ctcae grade` input
    patients/<ID>/<arm>/qol.json         questionnaires: `reluth qol score` inputs per visit
    patients/<ID>/<arm>/outcome.json     the intended truth (disease control, dates)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reluth.i18n import N_
from reluth.i18n.reasons import invalid
from reluth.protocol.definition import Protocol
from reluth.simulation.cohort import SyntheticCohort, SyntheticPatient, stratum_code
from reluth.values import to_jsonable


def _write(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(to_jsonable(obj), indent=1, ensure_ascii=False), encoding="utf-8")


def patient_summary(p: SyntheticPatient, protocol: Protocol) -> dict[str, Any]:
    row: dict[str, Any] = {
        "patient_id": p.patient_id,
        "centre": p.centre,
        "screening_date": p.screening_date,
        "intended_inclusion_status": p.intended_inclusion_status,
        "intended_randomization_status": p.intended_randomization_status,
        "screen_failure_reason": p.screen_failure_reason,
        "randomization_request_date": p.randomization_request_date,
        "stratum": stratum_code(p, protocol) if p.randomized else None,
        "simulated_arm": p.simulated_arm,
        "dosimetry_cycles": len(p.dosimetry),
    }
    for arm, outcome in p.outcomes.items():
        row[f"{arm}_disease_control_month6"] = outcome.disease_control_month6
        row[f"{arm}_progression_date"] = outcome.progression_date
        row[f"{arm}_death_date"] = outcome.death_date
    return row


def write_cohort(
    cohort: SyntheticCohort, out: Path, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Write every file; returns the summary also written to ``cohort.json``."""
    try:
        (out / "patients").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise invalid(
            "--out",
            "cannot_create",
            N_("cannot create {out}: {exc_name}"),
            N_("a writable directory"),
            out=str(out),
            exc_name=str(exc),
        ) from None
    rows = []
    for p in cohort.patients:
        folder = out / "patients" / p.patient_id
        folder.mkdir(exist_ok=True)
        _write(folder / "inclusion.json", p.inclusion_file)
        if p.randomization_file is not None:
            _write(folder / "randomization.json", p.randomization_file)
        if p.dosimetry:
            _write(folder / "dosimetry.json", p.dosimetry)
        for arm, outcome in p.outcomes.items():
            arm_dir = folder / arm
            arm_dir.mkdir(exist_ok=True)
            _write(arm_dir / "recist.json", outcome.recist)
            _write(arm_dir / "labs.json", list(outcome.labs))
            _write(
                arm_dir / "qol.json",
                [
                    {
                        "date": q.date,
                        "day": q.day,
                        "QLQ-C30": {"instrument": "QLQ-C30", "items": q.c30},
                        "QLQ-GINET21": {"instrument": "QLQ-GINET21", "items": q.ginet21},
                    }
                    for q in outcome.qol
                ],
            )
            truth = {
                k: getattr(outcome, k)
                for k in (
                    "arm",
                    "disease_control_month6",
                    "true_disease_control_month6",
                    "true_progression_day",
                    "progression_date",
                    "death_date",
                    "dropout_date",
                    "last_assessment_date",
                    "treatment_dates",
                    "missed_assessment_dates",
                    "dosimetry",
                    "adverse_events",
                )
            }
            _write(arm_dir / "outcome.json", truth)
        rows.append(patient_summary(p, cohort.config.protocol))
        if progress:
            progress(1)
    example = next((p.patient_id for p in cohort.randomized), cohort.patients[0].patient_id)
    summary = {
        "seed": cohort.config.seed,
        "data_cutoff": cohort.data_cutoff,
        "screened": len(cohort.patients),
        "included": len(cohort.included),
        "randomized": len(cohort.randomized),
        "example_patient": example,
        "config": cohort.config.settings(),
        "centres": cohort.centres,
    }
    _write(out / "cohort.json", {**summary, "patients": rows})
    result: dict[str, Any] = to_jsonable(summary)
    return result
