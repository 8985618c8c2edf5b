"""RECIST 1.1 engine: reference tables, worked cases and boundaries from clinical-rules.md §1."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from reluth.errors import ValidationError, ValidationErrors
from reluth.response.recist import (
    NewLesions,
    RecistOptions,
    Response,
    best_overall_response,
    evaluate,
    meets_pd,
    meets_pr,
    overall_response,
    parse_patient,
)

R = Response
RAND = dt.date(2024, 1, 1)


def day(n: int) -> str:
    return (RAND + dt.timedelta(days=n)).isoformat()


def patient(
    target_mm: list[float | str],
    visits: list[dict[str, Any]],
    non_targets: int = 0,
    nodal: list[bool] | None = None,
) -> dict[str, Any]:
    """Targets T1..Tn in distinct organs; visits: {'day', 'sizes', 'nt', 'new'}."""
    nodal = nodal or [False] * len(target_mm)
    lesions: list[dict[str, Any]] = [
        {
            "id": f"T{i + 1}",
            "organ": "lymph node" if nodal[i] else f"organ{i}",
            "kind": "target",
            "nodal": nodal[i],
            "diameter_mm": mm,
        }
        for i, mm in enumerate(target_mm)
    ]
    lesions += [
        {"id": f"N{i + 1}", "organ": "bone", "kind": "non_target"} for i in range(non_targets)
    ]
    followups = []
    for v in visits:
        obs: list[dict[str, Any]] = []
        for i, size in enumerate(v.get("sizes", [])):
            if size is None:
                continue
            if isinstance(size, dict):
                obs.append({"id": f"T{i + 1}", **size})
            elif isinstance(size, str) and not size[0].isdigit():
                obs.append({"id": f"T{i + 1}", "status": size})
            else:
                obs.append({"id": f"T{i + 1}", "diameter_mm": size})
        for i, status in enumerate(v.get("nt", ["present"] * non_targets)):
            if status is not None:
                obs.append({"id": f"N{i + 1}", "status": status})
        followups.append({"date": day(v["day"]), "lesions": obs, "new_lesions": v.get("new", "no")})
    return {
        "randomization_date": RAND.isoformat(),
        "baseline": {"date": day(-7), "lesions": lesions},
        "followups": followups,
    }


def run(data: dict[str, Any], **options: Any) -> Any:
    return evaluate(parse_patient(data), RecistOptions(**options))


def targets_over(sizes_per_visit: list[list[Any]], baseline: list[Any], **options: Any) -> list[R]:
    visits = [{"day": 56 * (i + 1), "sizes": s} for i, s in enumerate(sizes_per_visit)]
    return [tp.target for tp in run(patient(baseline, visits), **options).time_points]


# ---- Tables A and B (overall response per time point) ---------------------------------------

TABLE_A = [
    (R.CR, R.CR, NewLesions.NO, R.CR),
    (R.CR, R.NA, NewLesions.NO, R.CR),
    (R.CR, R.NON_CR_NON_PD, NewLesions.NO, R.PR),
    (R.CR, R.NE, NewLesions.NO, R.PR),
    (R.PR, R.NON_CR_NON_PD, NewLesions.NO, R.PR),
    (R.PR, R.NE, NewLesions.NO, R.PR),
    (R.PR, R.CR, NewLesions.NO, R.PR),
    (R.SD, R.NON_CR_NON_PD, NewLesions.NO, R.SD),
    (R.SD, R.NE, NewLesions.NO, R.SD),
    (R.SD, R.CR, NewLesions.NO, R.SD),
    (R.NE, R.NON_CR_NON_PD, NewLesions.NO, R.NE),
    (R.NE, R.CR, NewLesions.NO, R.NE),
    (R.NE, R.NE, NewLesions.NO, R.NE),
    (R.PD, R.CR, NewLesions.NO, R.PD),
    (R.PD, R.NE, NewLesions.YES, R.PD),
    (R.CR, R.PD, NewLesions.NO, R.PD),
    (R.SD, R.PD, NewLesions.NO, R.PD),
    (R.CR, R.CR, NewLesions.YES, R.PD),
    (R.PR, R.NON_CR_NON_PD, NewLesions.YES, R.PD),
    (R.NE, R.NE, NewLesions.YES, R.PD),
    (R.SD, R.NON_CR_NON_PD, NewLesions.EQUIVOCAL, R.SD),
]


@pytest.mark.parametrize(("target", "non_target", "new", "expected"), TABLE_A)
def test_table_a_with_targets(target: R, non_target: R, new: NewLesions, expected: R) -> None:
    assert overall_response(target, non_target, new, has_targets=True) is expected


TABLE_B = [
    (R.CR, NewLesions.NO, R.CR),
    (R.NON_CR_NON_PD, NewLesions.NO, R.NON_CR_NON_PD),
    (R.NE, NewLesions.NO, R.NE),
    (R.PD, NewLesions.NO, R.PD),
    (R.PD, NewLesions.YES, R.PD),
    (R.CR, NewLesions.YES, R.PD),
    (R.NON_CR_NON_PD, NewLesions.YES, R.PD),
    (R.NE, NewLesions.YES, R.PD),
    (R.NON_CR_NON_PD, NewLesions.EQUIVOCAL, R.NON_CR_NON_PD),
]


@pytest.mark.parametrize(("non_target", "new", "expected"), TABLE_B)
def test_table_b_non_target_only(non_target: R, new: NewLesions, expected: R) -> None:
    assert overall_response(R.NA, non_target, new, has_targets=False) is expected


def test_non_target_only_patient_end_to_end() -> None:
    data = patient(
        [],
        [
            {"day": 56, "nt": ["present", "absent"]},
            {"day": 112, "nt": ["absent", "absent"]},
            {"day": 168, "nt": ["absent", "not_evaluated"]},
            {"day": 224, "nt": ["unequivocal_progression", "absent"]},
        ],
        non_targets=2,
    )
    result = run(data)
    overall = [tp.overall for tp in result.time_points]
    assert overall == [R.NON_CR_NON_PD, R.CR, R.NE, R.PD]
    assert result.time_points[0].target is R.NA and result.baseline_sum_mm is None
    assert result.best_overall_response is R.CR
    assert result.first_pd_date == RAND + dt.timedelta(days=224)
    # the day-168 assessment is NE and no other is in the window: failure, says why
    assert result.disease_control_month6 is False
    assert "only NE" in result.disease_control_month6_reason


# ---- Exact thresholds (§1.10) ----------------------------------------------------------------


def test_exactly_minus_30_percent_is_pr_and_just_above_is_sd() -> None:
    assert meets_pr(Decimal("23.1"), Decimal(33))
    assert not meets_pr(Decimal("23.2"), Decimal(33))
    assert targets_over([["23.1"]], ["33"]) == [R.PR]
    assert targets_over([["23.2"]], ["33"]) == [R.SD]
    # float arithmetic would get this one wrong
    assert (23.1 - 33) / 33 * 100 > -30


def test_exactly_plus_20_percent_needs_5_mm_too() -> None:
    # nadir 21: +20 % is 25.2 but only +4.2 mm -> not PD
    assert not meets_pd(Decimal("25.2"), Decimal(21))
    # nadir 25: 30 is exactly +20 % and exactly +5 mm -> PD; 29.9 is not
    assert meets_pd(Decimal(30), Decimal(25))
    assert not meets_pd(Decimal("29.9"), Decimal(25))
    # nadir 50: 60 is +20 % (+10 mm) -> PD, 59.9 is +19.8 % -> not
    assert meets_pd(Decimal(60), Decimal(50))
    assert not meets_pd(Decimal("59.9"), Decimal(50))
    # nadir 10: 15 is +50 % and +5 mm -> PD; 14.9 is +4.9 mm -> not
    assert meets_pd(Decimal(15), Decimal(10))
    assert not meets_pd(Decimal("14.9"), Decimal(10))


def test_pyrecist_synthetic_sequence() -> None:
    # 10/10/10 (30) -> 24 SD -> 21 PR (-30 % exactly) -> 25.2 PR (+20 % but +4.2 mm) -> 26 PD
    visits = [[8, 8, 8], [7, 7, 7], ["8.4", "8.4", "8.4"], [9, 9, 8]]
    assert targets_over(visits, [10, 10, 10]) == [R.SD, R.PR, R.PR, R.PD]


def test_pd_is_judged_against_nadir_not_baseline() -> None:
    # baseline 100, nadir 50; 60 is still -40 % vs baseline but +20 %/+10 mm vs nadir -> PD
    assert targets_over([[50], [60]], [100]) == [R.PR, R.PD]
    assert targets_over([[50], ["59.9"]], [100]) == [R.PR, R.PR]


# ---- EORTC FAQ: PR persists until PD ----------------------------------------------------------


def test_eortc_faq_pr_continues() -> None:
    sizes = [[70], [70], [80], [80], [80]]
    assert targets_over(sizes, [100]) == [R.PR] * 5
    strict = targets_over(sizes, [100], pr_persists_until_pd=False)
    assert strict == [R.PR, R.PR, R.SD, R.SD, R.SD]


def test_eortc_faq_second_example() -> None:
    assert targets_over([[63], [65]], [165]) == [R.PR, R.PR]


# ---- Measurement rules -------------------------------------------------------------------------


def test_too_small_counts_5_mm_and_absent_counts_0() -> None:
    result = run(patient([20, 20], [{"day": 56, "sizes": ["too_small", "absent"]}]))
    tp = result.time_points[0]
    assert tp.sum_mm == 5 and tp.target is R.PR
    assert tp.change_from_baseline_pct == Decimal("-87.50")


def test_cr_with_nodes_below_10_mm_despite_positive_sum() -> None:
    data = patient([30, 20], [{"day": 56, "sizes": ["absent", "9.9"]}], nodal=[False, True])
    tp = run(data).time_points[0]
    assert tp.sum_mm == Decimal("9.9") and tp.target is R.CR and tp.overall is R.CR


def test_node_at_10_mm_is_not_cr() -> None:
    data = patient([30, 20], [{"day": 56, "sizes": ["absent", 10]}], nodal=[False, True])
    assert run(data).time_points[0].target is R.PR


def test_cr_checked_before_pd_for_sub_10_mm_nodes() -> None:
    # nadir 10 (5 + 5 mm nodes); now 9 + 8 = 17 (+70 %, +7 mm) but every node < 10 mm
    data = patient(
        [20, 20],
        [{"day": 56, "sizes": [5, 5]}, {"day": 112, "sizes": [9, 8]}],
        nodal=[True, True],
    )
    assert [tp.target for tp in run(data).time_points] == [R.CR, R.CR]


def test_split_lesion_fragments_are_added_and_merged_lesion_counts_zero() -> None:
    visits = [
        {"day": 56, "sizes": [{"fragments_mm": [12, 8]}, 20]},
        {"day": 112, "sizes": [{"merged_into": "T2"}, 45]},
    ]
    result = run(patient([30, 20], visits))
    assert [tp.sum_mm for tp in result.time_points] == [40, 45]
    assert [tp.target for tp in result.time_points] == [R.SD, R.SD]


def test_missing_lesion_gives_ne_unless_partial_sum_proves_pd() -> None:
    # baseline 50 mm in 3 lesions; two measured lesions already sum to 80 -> PD
    pd = run(patient([20, 20, 10], [{"day": 56, "sizes": [40, 40, None]}])).time_points[0]
    assert pd.target is R.PD and pd.sum_mm is None and pd.partial_sum_mm == 80
    ne = run(patient([20, 20, 10], [{"day": 56, "sizes": [15, 15, None]}])).time_points[0]
    assert ne.target is R.NE and ne.overall is R.NE
    nev = run(patient([20, 20], [{"day": 56, "sizes": [15, "not_evaluated"]}])).time_points[0]
    assert nev.target is R.NE


def test_nadir_ignores_incomplete_sums() -> None:
    # partial sum 10 at visit 1 must not become the nadir
    data = patient([20, 20], [{"day": 56, "sizes": [10, None]}, {"day": 112, "sizes": [20, 20]}])
    tps = run(data).time_points
    assert tps[1].nadir_mm == 40 and tps[1].target is R.SD


# ---- Non-target and new lesions -----------------------------------------------------------------


def test_non_target_rules_with_targets() -> None:
    base = [30]
    cases = [
        (["absent"], ["absent"], R.CR),
        (["absent"], ["present"], R.PR),
        (["absent"], ["not_evaluated"], R.PR),
        (["absent"], [None], R.PR),  # a non-target not reported at all is NE
        ([20], ["unequivocal_progression"], R.PD),
        ([20], ["too_small"], R.PR),
    ]
    for sizes, nt, expected in cases:
        data = patient(base, [{"day": 56, "sizes": sizes, "nt": nt}], non_targets=1)
        assert run(data).time_points[0].overall is expected, (sizes, nt)


def test_tumour_markers_above_normal_block_cr() -> None:
    data = patient([30], [{"day": 56, "sizes": ["absent"], "nt": ["absent"]}], non_targets=1)
    data["followups"][0]["tumour_markers_normal"] = False
    tp = run(data).time_points[0]
    assert tp.non_target is R.NON_CR_NON_PD and tp.overall is R.PR


def test_nodal_non_target_below_10_mm_counts_as_normalised() -> None:
    data = patient([30], [{"day": 56, "sizes": ["absent"]}])
    data["baseline"]["lesions"].append(
        {"id": "N9", "organ": "node", "kind": "non_target", "nodal": True, "diameter_mm": 12}
    )
    data["followups"][0]["lesions"].append({"id": "N9", "diameter_mm": "9.9"})
    assert run(data).time_points[0].overall is R.CR
    data["followups"][0]["lesions"][-1]["diameter_mm"] = 10
    assert run(data).time_points[0].overall is R.PR


def test_new_lesion_is_pd_even_with_shrinking_targets() -> None:
    tp = run(patient([50], [{"day": 56, "sizes": [10], "new": "yes"}])).time_points[0]
    assert tp.target is R.PR and tp.overall is R.PD


def test_equivocal_new_lesion_confirmed_later_redates_pd() -> None:
    visits = [
        {"day": 56, "sizes": [40]},
        {"day": 168, "sizes": [40], "new": "equivocal"},
        {"day": 224, "sizes": [40], "new": "yes"},
    ]
    result = run(patient([40], visits))
    assert [tp.overall for tp in result.time_points] == [R.SD, R.PD, R.PD]
    assert result.first_pd_date == RAND + dt.timedelta(days=168)
    assert result.disease_control_month6 is False
    kept = run(patient([40], visits), backdate_confirmed_equivocal=False)
    assert kept.first_pd_date == RAND + dt.timedelta(days=224)
    assert kept.disease_control_month6 is True


def test_unconfirmed_equivocal_new_lesion_is_not_pd() -> None:
    visits = [{"day": 168, "sizes": [40], "new": "equivocal"}, {"day": 224, "sizes": [40]}]
    result = run(patient([40], visits))
    assert result.first_pd_date is None and result.disease_control_month6 is True


# ---- Best overall response ------------------------------------------------------------------


def seq(*items: tuple[str, str]) -> list[tuple[dt.date, R]]:
    return [(dt.date.fromisoformat(d), R(r)) for d, r in items]


def test_bor_paper_examples() -> None:
    ref = dt.date(2020, 1, 1)
    sd_pr_pd = seq(("2020-03-01", "SD"), ("2020-05-01", "PR"), ("2020-07-01", "PD"))
    assert best_overall_response(sd_pr_pd, ref) == (R.PR, dt.date(2020, 5, 1))
    early_sd_then_pd = seq(("2020-01-20", "SD"), ("2020-03-01", "PD"))
    assert best_overall_response(early_sd_then_pd, ref)[0] is R.PD
    early_sd_then_lost = seq(("2020-01-20", "SD"))
    assert best_overall_response(early_sd_then_lost, ref)[0] is R.NE
    # exactly 42 days from randomization counts; 41 does not
    assert best_overall_response(seq(("2020-02-12", "SD")), ref)[0] is R.SD
    assert best_overall_response(seq(("2020-02-11", "SD")), ref)[0] is R.NE
    # nothing after the first PD counts
    after_pd = seq(("2020-03-01", "PD"), ("2020-05-01", "CR"))
    assert best_overall_response(after_pd, ref) == (R.PD, dt.date(2020, 3, 1))
    assert best_overall_response([], ref) == (R.NE, None)


ADMIRAL = {
    # subject: (reference date, sequence)
    1: ("2020-01-01", [("2020-01-01", "PR"), ("2020-02-01", "CR"), ("2020-02-16", "NE"),
                       ("2020-03-01", "CR"), ("2020-04-01", "SD")]),
    2: ("2019-12-12", [("2020-01-01", "SD"), ("2020-02-01", "PR"), ("2020-03-01", "SD"),
                       ("2020-03-13", "CR")]),
    3: ("2019-11-11", [("2019-11-12", "CR"), ("2019-12-02", "CR"), ("2020-01-01", "SD")]),
    4: ("2019-12-30", [("2020-01-01", "PR"), ("2020-03-01", "SD"), ("2020-04-01", "SD"),
                       ("2020-05-01", "PR"), ("2020-05-15", "NON-CR/NON-PD")]),
    5: ("2020-01-01", [("2020-01-01", "PR"), ("2020-01-10", "SD"), ("2020-01-20", "PR"),
                       ("2020-05-15", "NON-CR/NON-PD")]),
    6: ("2020-02-02", [("2020-02-06", "PR"), ("2020-02-16", "CR"), ("2020-03-30", "PR")]),
    7: ("2020-02-02", [("2020-02-06", "PR"), ("2020-02-16", "CR"), ("2020-04-01", "NE")]),
    8: ("2020-04-01", []),
    9: ("2020-02-01", [("2020-02-16", "PD"), ("2020-03-06", "SD")]),
}  # fmt: skip

CONFIRMED_TEST_1 = {
    1: ("CR", "2020-02-01"), 2: ("SD", "2020-02-01"), 3: ("SD", "2020-01-01"),
    4: ("SD", "2020-03-01"), 5: ("NON-CR/NON-PD", "2020-05-15"), 6: ("SD", "2020-03-30"),
    7: ("NE", "2020-02-06"), 8: ("NE", None), 9: ("PD", "2020-02-16"),
}  # fmt: skip
CONFIRMED_TEST_2 = {
    1: ("PR", "2020-01-01"), 2: ("PR", "2020-02-01"), 3: ("CR", "2019-11-12"),
    4: ("SD", "2020-03-01"), 5: ("PR", "2020-01-01"), 6: ("SD", "2020-03-30"),
    8: ("NE", None), 9: ("PD", "2020-02-16"),
}  # fmt: skip
UNCONFIRMED = {
    1: ("CR", "2020-02-01"), 2: ("CR", "2020-03-13"), 3: ("CR", "2019-11-12"),
    4: ("PR", "2020-01-01"), 5: ("PR", "2020-01-01"), 6: ("CR", "2020-02-16"),
    7: ("CR", "2020-02-16"), 8: ("NE", None),
}  # fmt: skip


def _check(expected: dict[int, tuple[str, str | None]], options: RecistOptions) -> None:
    for subject, (want, want_date) in expected.items():
        ref, items = ADMIRAL[subject]
        got = best_overall_response(seq(*items), dt.date.fromisoformat(ref), options)
        wanted_date = None if want_date is None else dt.date.fromisoformat(want_date)
        assert got == (R(want), wanted_date), f"subject {subject}"


def test_admiralonco_confirmed_bor_test_1() -> None:
    options = RecistOptions(
        confirmation_required=True,
        min_sd_duration_days=28,
        confirmation_min_days=28,
        confirmation_max_ne=1,
        confirmation_accept_sd=False,
    )
    _check(CONFIRMED_TEST_1, options)


def test_admiralonco_confirmed_bor_test_2() -> None:
    options = RecistOptions(
        confirmation_required=True,
        min_sd_duration_days=28,
        confirmation_min_days=14,
        confirmation_max_ne=0,
        confirmation_accept_sd=True,
    )
    _check(CONFIRMED_TEST_2, options)


def test_admiralonco_unconfirmed_bor() -> None:
    _check(UNCONFIRMED, RecistOptions(min_sd_duration_days=28))


def test_recist_table_3_pr_then_sd_is_sd_and_cr_then_pd() -> None:
    options = RecistOptions(confirmation_required=True)
    ref = dt.date(2020, 1, 1)
    pr_sd = seq(("2020-03-01", "PR"), ("2020-05-01", "SD"))
    assert best_overall_response(pr_sd, ref, options)[0] is R.SD
    pr_pr = seq(("2020-03-01", "PR"), ("2020-05-01", "PR"))
    assert best_overall_response(pr_pr, ref, options)[0] is R.PR
    cr_pd_early = seq(("2020-01-20", "CR"), ("2020-03-01", "PD"))
    assert best_overall_response(cr_pd_early, ref, options)[0] is R.PD
    cr_pd_late = seq(("2020-03-01", "CR"), ("2020-05-01", "PD"))
    assert best_overall_response(cr_pd_late, ref, options)[0] is R.SD
    cr_ne_early = seq(("2020-01-20", "CR"), ("2020-03-01", "NE"))
    assert best_overall_response(cr_ne_early, ref, options)[0] is R.NE


# ---- Month-6 landmark -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("landmark_day", "expected"),
    [(139, False), (140, True), (168, True), (196, True), (197, False)],
)
def test_landmark_window_edges(landmark_day: int, expected: bool) -> None:
    visits = [{"day": 56, "sizes": [40]}, {"day": landmark_day, "sizes": [40]}]
    result = run(patient([40], visits))
    assert result.disease_control_month6 is expected
    if not expected:
        assert "no assessment in the landmark window" in result.disease_control_month6_reason


def test_landmark_failure_after_earlier_pd_even_if_sd_in_window() -> None:
    visits = [{"day": 56, "sizes": [50]}, {"day": 112, "sizes": [40]}, {"day": 168, "sizes": [40]}]
    result = run(patient([40], visits))
    assert result.first_pd_date == RAND + dt.timedelta(days=56)
    assert result.disease_control_month6 is False
    assert "before the landmark" in result.disease_control_month6_reason


def test_landmark_uses_assessment_closest_to_day_168() -> None:
    visits = [
        {"day": 56, "sizes": [40]},
        {"day": 165, "sizes": [40]},
        {"day": 175, "sizes": [50]},
    ]
    result = run(patient([40], visits))
    assert result.landmark_date == RAND + dt.timedelta(days=165)
    assert result.disease_control_month6 is True
    visits[2]["day"] = 170
    result = run(patient([40], visits))
    assert result.landmark_date == RAND + dt.timedelta(days=170)
    assert result.disease_control_month6 is False


def test_landmark_ne_assessment_skipped_for_an_evaluable_one() -> None:
    visits = [{"day": 160, "sizes": [40]}, {"day": 168, "sizes": [None]}]
    result = run(patient([40], visits))
    assert result.disease_control_month6 is True
    assert result.landmark_date == RAND + dt.timedelta(days=160)


def test_landmark_window_is_an_option() -> None:
    visits = [{"day": 182, "sizes": [40]}]
    assert run(patient([40], visits)).disease_control_month6 is True
    narrow = run(patient([40], visits), landmark_window_days=7)
    assert narrow.disease_control_month6 is False
    assert RecistOptions.for_landmark(week=24, window_days=28) == RecistOptions()
    later = RecistOptions.for_landmark(week=26, window_days=7)
    assert evaluate(parse_patient(patient([40], visits)), later).disease_control_month6 is True


# ---- Bad input ----------------------------------------------------------------------------------


def _lesion(lid: str, organ: str, mm: Any, nodal: bool = False, **kw: Any) -> dict[str, Any]:
    return {"id": lid, "organ": organ, "kind": "target", "nodal": nodal, "diameter_mm": mm, **kw}


def _with_baseline(lesions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "randomization_date": "2024-01-01",
        "baseline": {"date": "2023-12-20", "lesions": lesions},
        "followups": [],
    }


@pytest.mark.parametrize(
    ("lesion", "ok"),
    [
        (_lesion("A", "liver", 10), True),
        (_lesion("A", "liver", "9.9"), False),
        (_lesion("A", "node", 15, nodal=True), True),
        (_lesion("A", "node", "14.9", nodal=True), False),
        (_lesion("A", "liver", 12, slice_thickness_mm=6), True),
        (_lesion("A", "liver", "11.9", slice_thickness_mm=6), False),
        (_lesion("A", "liver", 10, slice_thickness_mm=5), True),
    ],
)
def test_measurability_at_baseline(lesion: dict[str, Any], ok: bool) -> None:
    if ok:
        parse_patient(_with_baseline([lesion]))
    else:
        with pytest.raises(ValidationError, match=r"baseline lesion A\.diameter_mm"):
            parse_patient(_with_baseline([lesion]))


def test_at_most_five_targets_and_two_per_organ() -> None:
    six = [_lesion(f"T{i}", f"organ{i}", 20) for i in range(6)]
    with pytest.raises(ValidationError, match="at most 5 targets"):
        parse_patient(_with_baseline(six))
    lungs = [
        _lesion("L1", "left lung", 20),
        _lesion("L2", "right lung", 20),
        _lesion("L3", "Lung", 20),
    ]
    with pytest.raises(ValidationError, match="organ 'lung' has 3 targets"):
        parse_patient(_with_baseline(lungs))
    nodes = [
        _lesion("N1", "iliac", 20, nodal=True),
        _lesion("N2", "mesenteric", 20, nodal=True),
        _lesion("N3", "axillary", 20, nodal=True),
    ]
    with pytest.raises(ValidationError, match="lymph nodes"):
        parse_patient(_with_baseline(nodes))
    parse_patient(_with_baseline(lungs[:2] + nodes[:2] + [_lesion("H", "liver", 20)]))


def test_several_violations_are_reported_together() -> None:
    bad = [_lesion("A", "liver", 5), _lesion("B", "node", 12, nodal=True)]
    with pytest.raises(ValidationErrors) as info:
        parse_patient(_with_baseline(bad))
    assert "baseline lesion A" in info.value.message and "baseline lesion B" in info.value.message


def test_nodal_non_target_below_10_mm_is_rejected() -> None:
    node = {"id": "N", "organ": "node", "kind": "non_target", "nodal": True, "diameter_mm": 9}
    with pytest.raises(ValidationError, match="not pathological"):
        parse_patient(_with_baseline([_lesion("A", "liver", 20), node]))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["followups"][0]["lesions"].append({"id": "X9", "diameter_mm": 3}), "X9"),
        (lambda d: d["followups"][0]["lesions"].append({"id": "T1", "diameter_mm": 3}),
         "duplicate"),
        (lambda d: d["baseline"]["lesions"].append(dict(d["baseline"]["lesions"][0])),
         "baseline lesion T1: duplicate"),
        (lambda d: d["followups"][0].update(date="2023-12-01"), "not after the baseline"),
        (lambda d: d["followups"][0]["lesions"][0].update(diameter_mm=-1), "negative diameter"),
        (lambda d: d["baseline"]["lesions"][0].update(diameter_mm=-1), "negative diameter"),
        (lambda d: d["followups"][0]["lesions"][0].update(status="present"),
         "both diameter_mm and status"),
        (lambda d: d["followups"][0].update(new_lesions="maybe"), "new_lesions"),
        (lambda d: d["baseline"]["lesions"][0].update(kind="main"), "kind"),
        (lambda d: d.pop("randomization_date"), "randomization_date"),
        (lambda d: d["followups"][0]["lesions"][0].update(diameter_mm="abc"), "T1.diameter_mm"),
    ],
)  # fmt: skip
def test_bad_input_names_the_lesion_and_field(mutate: Any, message: str) -> None:
    data = patient([30], [{"day": 56, "sizes": [20]}])
    mutate(data)
    with pytest.raises((ValidationError, ValidationErrors), match=message):
        parse_patient(data)


def test_target_status_present_is_refused() -> None:
    data = patient([30], [{"day": 56, "sizes": ["present"]}])
    with pytest.raises(ValidationError, match="not a measurement of a target"):
        parse_patient(data)


# ---- Notes in the reader's language (issue 18) --------------------------------------------


def _notes(tp: Any, lang: str) -> list[str]:
    from reluth.i18n import use_locale

    with use_locale(lang):
        return [m.render().replace("\u202f", " ") for m in tp.messages]


def test_the_notes_are_keys_shown_in_french_and_english() -> None:
    pd = run(patient([20, 20, 10], [{"day": 56, "sizes": ["40.5", 40, None]}])).time_points[0]
    assert [m.key for m in pd.messages] == ["recist.partial_sum_pd"]
    assert (
        _notes(pd, "en")
        == list(pd.notes)
        == [
            "targets not evaluated (T3) but the partial sum 80.5 mm already meets PD against "
            "nadir 50 mm"
        ]
    )
    assert _notes(pd, "fr") == [
        "cibles non évaluées (T3) mais la somme partielle de 80,5 mm atteint déjà la "
        "progression par rapport au nadir de 50 mm"
    ]
    ne = run(patient([20, 20, 10], [{"day": 56, "sizes": [15, 15, None]}])).time_points[0]
    assert _notes(ne, "fr") == ["cibles non évaluées : T3"]
    assert _notes(ne, "en") == ["targets not evaluated: T3"]
    kept = run(patient([100], [{"day": 56, "sizes": [70]}, {"day": 112, "sizes": [80]}]))
    assert [m.key for m in kept.time_points[0].messages] == []  # -30 %: PR on its own
    assert _notes(kept.time_points[1], "fr") == [
        "réponse partielle maintenue : réponse déjà atteinte et pas de progression depuis "
        "(FAQ EORTC)"
    ]
