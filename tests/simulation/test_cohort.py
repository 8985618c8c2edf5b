"""The synthetic cohort: reproducible by seed, eligibility files give the intended status, the
RECIST engine recovers the intended month-6 disease control and PD date, and on a large cohort
the DCR difference and the PFS hazard ratio recover the inputs."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import CoxPHFitter

from reluth.protocol.definition import load_protocol
from reluth.protocol.eligibility import check_eligibility
from reluth.protocol.patient import PATIENT_ID_PATTERN, parse_patient
from reluth.response import recist
from reluth.simulation.cohort import (
    CohortConfig,
    SyntheticCohort,
    generate_cohort,
    stratum_code,
)
from reluth.units import to_canonical

PROTOCOL = load_protocol()
ARMS = CohortConfig(PROTOCOL).plan.arms


@pytest.fixture(scope="module")
def cohort() -> SyntheticCohort:
    return generate_cohort(CohortConfig(PROTOCOL, seed=2021))


def test_reproducible_by_seed() -> None:
    config = CohortConfig(PROTOCOL, seed=7, n_included=25, n_not_included=3, n_dosimetry=5)
    a, b = generate_cohort(config), generate_cohort(config)
    assert a == b
    c = generate_cohort(
        CohortConfig(PROTOCOL, seed=8, n_included=25, n_not_included=3, n_dosimetry=5)
    )
    assert [p.inclusion_file for p in a.patients] != [p.inclusion_file for p in c.patients]


def test_trial_shape(cohort: SyntheticCohort) -> None:
    config = cohort.config
    assert len(cohort.centres) == 22
    last_opening = max(c.opening_date for c in cohort.centres)
    assert (last_opening - config.start_date).days <= 6 * 31
    assert len(cohort.included) == 176
    assert 130 <= len(cohort.randomized) <= 160
    accrual_end = config.start_date + dt.timedelta(days=round(36 * 30.4375))
    for p in cohort.patients:
        assert re.match(PATIENT_ID_PATTERN, p.patient_id)
        centre = next(c for c in cohort.centres if c.code == p.centre)
        assert centre.opening_date <= p.screening_date <= accrual_end
    assert len({p.patient_id for p in cohort.patients}) == len(cohort.patients)
    reasons = Counter(p.screen_failure_reason for p in cohort.included if not p.randomized)
    assert reasons["radiological progression during the two retreatment cycles"] >= 10
    assert 40 <= sum(1 for p in cohort.patients if p.dosimetry) <= 50
    arms = Counter(p.simulated_arm for p in cohort.randomized)
    assert abs(arms["experimental"] - arms["control"]) <= 8


def test_every_patient_file_gives_the_intended_eligibility(cohort: SyntheticCohort) -> None:
    for p in cohort.patients:
        inclusion = parse_patient(p.inclusion_file, as_of=cohort.data_cutoff)
        result = check_eligibility(inclusion, PROTOCOL, stage="inclusion")
        assert result.status == p.intended_inclusion_status, (p.patient_id, result.criteria)
        if p.randomization_file is None:
            assert p.intended_inclusion_status == "not_eligible"
            continue
        gate = parse_patient(p.randomization_file, as_of=cohort.data_cutoff)
        result = check_eligibility(gate, PROTOCOL, stage="randomization")
        assert result.status == p.intended_randomization_status, (
            p.patient_id,
            p.screen_failure_reason,
        )
        if p.randomized:
            assert stratum_code(p, PROTOCOL) is not None


def test_recist_engine_recovers_month6_disease_control(cohort: SyntheticCohort) -> None:
    seen = Counter()
    for p in cohort.randomized:
        for arm in ARMS:
            outcome = p.outcomes[arm]
            res = recist.evaluate(recist.parse_patient(outcome.recist))
            assert res.disease_control_month6 == outcome.disease_control_month6, (
                p.patient_id,
                arm,
                res.disease_control_month6_reason,
            )
            assert res.first_pd_date == outcome.progression_date, (p.patient_id, arm)
            seen[arm, outcome.disease_control_month6] += 1
            if outcome.disease_control_month6:
                assert not outcome.true_progression_day < 168
    # Both outcomes occur in both arms, and experimental control is never worse (coupling).
    assert all(seen[arm, dc] > 0 for arm in ARMS for dc in (True, False))
    for p in cohort.randomized:
        exp, ctl = p.outcomes["experimental"], p.outcomes["control"]
        assert exp.true_disease_control_month6 >= ctl.true_disease_control_month6


def test_dropouts_missed_visits_and_deaths_occur(cohort: SyntheticCohort) -> None:
    outcomes = [o for p in cohort.randomized for o in p.outcomes.values()]
    assert any(o.dropout_date for o in outcomes)
    assert any(o.missed_assessment_dates for o in outcomes)
    assert any(o.death_date for o in outcomes)
    # Non-evaluable at month 6 (missed landmark / dropout) counts as failure.
    assert any(o.true_disease_control_month6 and not o.disease_control_month6 for o in outcomes)
    for o in outcomes:
        if o.death_date:
            assert o.death_date <= cohort.data_cutoff


def test_labs_have_known_units_and_plausible_toxicity(cohort: SyntheticCohort) -> None:
    low_platelets = {"experimental": 0, "control": 0}
    for p in cohort.randomized:
        for arm in ARMS:
            for entry in p.outcomes[arm].labs:
                value = to_canonical(entry["test"], entry["value"], entry["unit"], "value")
                assert value >= 0
                for key in ("uln", "baseline"):
                    to_canonical(entry["test"], entry[key], entry["unit"], key)
                if entry["test"] == "platelets" and value < 75:  # grade >= 2 (10^9/L)
                    low_platelets[arm] += 1
    assert low_platelets["experimental"] > low_platelets["control"]


def test_ctcae_engine_grades_every_lab_result(cohort: SyntheticCohort) -> None:
    from reluth.safety import ctcae

    worst: dict[str, list[int]] = {"experimental": [], "control": []}
    for p in cohort.randomized:
        for arm in ARMS:
            graded = ctcae.grade_all(ctcae.parse_results(list(p.outcomes[arm].labs)))
            haem = [
                g.grade
                for g in graded
                if g.test in ("platelets", "neutrophils", "hemoglobin") and g.date is not None
            ]
            worst[arm].append(max(haem, default=0))
    n = len(cohort.randomized)
    g2_exp = sum(g >= 2 for g in worst["experimental"]) / n
    g2_ctl = sum(g >= 2 for g in worst["control"]) / n
    assert g2_exp > g2_ctl + 0.05  # two more cycles of PRRT: more haematological toxicity
    assert sum(g >= 3 for g in worst["experimental"]) / n < 0.15  # but grade 3-4 stays uncommon


def test_adverse_events(cohort: SyntheticCohort) -> None:
    related = {"experimental": 0, "control": 0}
    for p in cohort.randomized:
        for arm in ARMS:
            o = p.outcomes[arm]
            for ae in o.adverse_events:
                assert 1 <= ae.grade <= 5
                assert ae.onset_date >= p.randomization_request_date  # type: ignore[operator]
                assert ae.end_date is None or ae.end_date >= ae.onset_date
                related[arm] += ae.related_to_treatment
            deaths = [ae for ae in o.adverse_events if ae.grade == 5]
            assert len(deaths) == (1 if o.death_date else 0)
    assert related["control"] == 0
    assert related["experimental"] > 0.3 * len(cohort.randomized)


def test_qol_engine_scores_worse_after_progression(cohort: SyntheticCohort) -> None:
    from reluth.qol import scoring

    before, after = [], []
    for p in cohort.randomized:
        o = p.outcomes["control"]
        for q in o.qol:
            scoring.score("QLQ-GINET21", q.ginet21)
            summary = scoring.score("QLQ-C30", q.c30).summary
            if summary is not None:
                (after if q.day >= o.true_progression_day else before).append(float(summary))
    assert len(after) > 20
    assert sum(after) / len(after) < sum(before) / len(before) - 5


def test_qol_items_in_range_and_worse_after_progression(cohort: SyntheticCohort) -> None:
    before, after = [], []
    for p in cohort.randomized:
        o = p.outcomes["control"]
        for q in o.qol:
            assert set(q.c30) <= {str(i) for i in range(1, 31)}
            assert set(q.ginet21) <= {str(i) for i in range(31, 52)}
            for item, answer in [*q.c30.items(), *q.ginet21.items()]:
                assert 1 <= answer <= (7 if item in ("29", "30") else 4)
            symptoms = [q.c30[str(i)] for i in range(1, 29) if str(i) in q.c30]
            (after if q.day >= o.true_progression_day else before).append(
                sum(symptoms) / len(symptoms)
            )
    assert sum(after) / len(after) > sum(before) / len(before) + 0.2


def test_dosimetry_cases(cohort: SyntheticCohort) -> None:
    for p in cohort.patients:
        for cycle in p.dosimetry:
            assert cycle.cycle in (1, 2)
            assert 7000 < cycle.administered_activity_mbq < 7800
            kidneys = next(v for v in cycle.volumes if v.name == "kidneys")
            assert kidneys.activity_mbq[0] > kidneys.activity_mbq[-1] > 0
        if p.randomized and p.dosimetry:
            assert [c.cycle for c in p.outcomes["experimental"].dosimetry] in ([3, 4], [3], [])
            assert p.outcomes["control"].dosimetry == ()


def _analysis_frame(cohort: SyntheticCohort) -> pd.DataFrame:
    rows = []
    for p in cohort.randomized:
        assert p.simulated_arm is not None and p.randomization_request_date is not None
        o = p.outcomes[p.simulated_arm]
        start = p.randomization_request_date
        if o.progression_date is not None:
            days, event = (o.progression_date - start).days, 1
        else:
            days, event = ((o.last_assessment_date or start) - start).days, 0
        rows.append(
            {
                "arm": int(p.simulated_arm == "experimental"),
                "dc": o.disease_control_month6,
                "true_dc": o.true_disease_control_month6,
                "days": max(days, 1),
                "event": event,
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("dcr_experimental", "hazard_ratio"),
    [(0.85, None), (0.65**0.6, 0.6)],  # protocol DCRs (implied HR 0.377); and HR 0.6
)
def test_large_cohort_recovers_dcr_difference_and_hazard_ratio(
    dcr_experimental: float, hazard_ratio: float | None
) -> None:
    config = CohortConfig(
        PROTOCOL,
        seed=99,
        n_included=1300,
        n_not_included=0,
        n_dosimetry=0,
        dcr_experimental=dcr_experimental,
        pfs_hazard_ratio=hazard_ratio,
        clinical_detail=False,
    )
    df = _analysis_frame(generate_cohort(config))
    n_arm = df.groupby("arm").size()
    rates = df.groupby("arm")["true_dc"].mean()
    se = math.sqrt(sum(r * (1 - r) / n_arm[a] for a, r in rates.items()))
    assert abs((rates[1] - rates[0]) - (dcr_experimental - 0.65)) < 3.5 * se
    # What the analysis sees (non-evaluable = failure) keeps the difference within ~1 point.
    observed = df.groupby("arm")["dc"].mean()
    assert abs((observed[1] - observed[0]) - (dcr_experimental - 0.65)) < 3.5 * se + 0.02
    cox = CoxPHFitter().fit(df[["days", "event", "arm"]], "days", "event")
    log_hr = math.log(cox.hazard_ratios_["arm"])
    se_log_hr = float(cox.standard_errors_["arm"])
    assert abs(log_hr - math.log(config.hazard_ratio)) < 3.5 * se_log_hr


def test_bad_config() -> None:
    from reluth.errors import ValidationError

    with pytest.raises(ValidationError):
        CohortConfig(PROTOCOL, dcr_control=1.2)
    with pytest.raises(ValidationError):
        CohortConfig(PROTOCOL, pfs_median_control_months=3)


@settings(max_examples=6, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    p1=st.floats(0.66, 0.95),
    hr=st.one_of(st.none(), st.floats(0.3, 1.5)),
)
def test_any_seed_gives_files_and_recist_inputs_that_recover_the_truth(
    seed: int, p1: float, hr: float | None
) -> None:
    cohort = generate_cohort(
        CohortConfig(
            PROTOCOL, seed=seed, n_included=8, n_not_included=2, n_dosimetry=2, dcr_experimental=p1,
            pfs_hazard_ratio=hr,
        )
    )  # fmt: skip
    for p in cohort.patients:
        status = check_eligibility(
            parse_patient(p.inclusion_file), PROTOCOL, stage="inclusion"
        ).status
        assert status == p.intended_inclusion_status
        if p.randomization_file is not None:
            gate = check_eligibility(
                parse_patient(p.randomization_file), PROTOCOL, stage="randomization"
            )
            assert gate.status == p.intended_randomization_status
        for outcome in p.outcomes.values():
            res = recist.evaluate(recist.parse_patient(outcome.recist))
            assert res.disease_control_month6 == outcome.disease_control_month6
            assert res.first_pd_date == outcome.progression_date
