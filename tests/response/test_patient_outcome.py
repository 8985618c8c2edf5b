"""The patient-level RECIST rules on time-point responses (``patient_outcome``): the same result
as ``evaluate`` on lesions, the protocol file's options, the minimum SD duration on both sides,
re-dating, and the month-6 decision with a death date."""

from __future__ import annotations

import datetime as dt

import pytest

from reluth.protocol.definition import load_protocol
from reluth.response.recist import (
    NewLesions,
    RecistOptions,
    Response,
    TimePointResponse,
    disease_control_at_landmark,
    evaluate,
    parse_patient,
    patient_outcome,
    responses_of,
    time_point_results,
)

R = Response
RAND = dt.date(2024, 1, 1)
OPTIONS = RecistOptions.from_protocol(load_protocol())


def on(day: int) -> dt.date:
    return RAND + dt.timedelta(days=day)


def tps(*visits: tuple[int, Response] | tuple[int, Response, NewLesions]) -> list:
    return [TimePointResponse(on(v[0]), v[1], *v[2:]) for v in visits]


def test_options_come_from_the_protocol_file() -> None:
    schedule = load_protocol().schedule
    assert OPTIONS.min_sd_duration_days == schedule.sd_minimum_duration.days == 42
    assert OPTIONS.landmark_day == 7 * schedule.landmark_month6.week == 168
    assert OPTIONS.landmark_window_days == schedule.landmark_month6.window_days == 28
    assert "schedule.sd_minimum_duration" in load_protocol().assumptions()
    assert "42 days after randomization" in OPTIONS.bor_rule()
    assert RecistOptions.from_protocol(load_protocol(), landmark_day=170).landmark_day == 170


@pytest.mark.parametrize(("sd_day", "bor"), [(41, R.NE), (42, R.SD)])
def test_minimum_sd_duration_on_both_sides(sd_day: int, bor: Response) -> None:
    out = patient_outcome(tps((sd_day, R.SD)), RAND, OPTIONS)
    assert out.best_overall_response is bor


def test_sd_too_early_then_pd_then_pr_is_pd() -> None:
    """RECIST 1.1 §4.4.1: SD before the minimum duration then PD gives BOR PD; a PR after the
    first PD does not count."""
    out = patient_outcome(tps((35, R.SD), (98, R.PD), (154, R.PR)), RAND, OPTIONS)
    assert (out.best_overall_response, out.best_overall_response_date) == (R.PD, on(98))
    assert out.first_pd_date == on(98) and not out.disease_control_month6


def test_confirmed_equivocal_lesion_redates_pd_and_records_the_confirming_date() -> None:
    equivocal = NewLesions.EQUIVOCAL
    out = patient_outcome(
        tps(
            (56, R.SD), (112, R.SD, equivocal), (168, R.SD, equivocal), (224, R.PD, NewLesions.YES)
        ),
        RAND,
        OPTIONS,
    )
    assert [(tp.as_read, tp.overall) for tp in out.time_points] == [
        (R.SD, R.SD),
        (R.SD, R.PD),
        (R.SD, R.PD),
        (R.PD, R.PD),
    ]
    assert [tp.redated_by for tp in out.time_points] == [None, on(224), on(224), None]
    assert out.first_pd_date == on(112) and out.best_overall_response is R.SD
    kept = patient_outcome(
        tps((168, R.SD, equivocal), (224, R.PD, NewLesions.YES)),
        RAND,
        RecistOptions.from_protocol(load_protocol(), backdate_confirmed_equivocal=False),
    )
    assert kept.first_pd_date == on(224) and kept.disease_control_month6


def test_outcome_of_responses_equals_evaluate_on_lesions() -> None:
    data = {
        "randomization_date": RAND.isoformat(),
        "baseline": {
            "date": on(-7).isoformat(),
            "lesions": [{"id": "T1", "organ": "liver", "kind": "target", "diameter_mm": 50}],
        },
        "followups": [
            {"date": on(56).isoformat(), "lesions": [{"id": "T1", "diameter_mm": 30}]},
            {
                "date": on(168).isoformat(),
                "new_lesions": "equivocal",
                "lesions": [{"id": "T1", "diameter_mm": 31}],
            },
            {
                "date": on(224).isoformat(),
                "new_lesions": "yes",
                "lesions": [{"id": "T1", "diameter_mm": 31}],
            },
        ],
    }
    patient = parse_patient(data)
    whole = evaluate(patient, OPTIONS)
    out = patient_outcome(responses_of(time_point_results(patient, OPTIONS)), RAND, OPTIONS)
    assert [tp.overall for tp in whole.time_points] == [tp.overall for tp in out.time_points]
    assert (whole.best_overall_response, whole.first_pd_date) == (
        out.best_overall_response,
        out.first_pd_date,
    )
    assert whole.disease_control_month6 is out.disease_control_month6 is False
    assert "re-dated" in whole.time_points[1].notes[-1]


@pytest.mark.parametrize(
    ("death", "control", "reason"),
    [
        (139, False, "before the landmark window"),  # window opens on day 140
        (167, False, "before the landmark assessment"),  # assessed SD on day 168
        (168, True, "SD on"),  # alive at the landmark assessment
        (300, True, "SD on"),
    ],
)
def test_death_and_the_month6_decision(death: int, control: bool, reason: str) -> None:
    visits = tps((56, R.SD), (112, R.SD), (168, R.SD))
    got, why, _when = disease_control_at_landmark(visits, RAND, None, OPTIONS, on(death))
    assert got is control and reason in why


def test_death_in_the_window_without_an_assessment_and_pd_first() -> None:
    no_visit = tps((56, R.SD), (112, R.SD))
    got, why, _ = disease_control_at_landmark(no_visit, RAND, None, OPTIONS, on(150))
    assert not got and "death on" in why and "in the landmark window" in why
    with_pd = tps((56, R.SD), (112, R.PD))
    got, why, _ = disease_control_at_landmark(with_pd, RAND, on(112), OPTIONS, on(120))
    assert not got and why.startswith("progression on")


def test_no_time_point_is_ne_and_a_failure() -> None:
    out = patient_outcome([], RAND, OPTIONS)
    assert out.best_overall_response is R.NE and out.first_pd_date is None
    assert not out.disease_control_month6 and "no assessment" in out.disease_control_month6_reason
