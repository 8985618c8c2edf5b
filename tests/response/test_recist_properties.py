"""Invariants of the RECIST engine on random patients (Hypothesis), checked against
an independent exact-rational reading of the thresholds."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reluth.response.recist import (
    DISEASE_CONTROL,
    NewLesions,
    RecistOptions,
    Response,
    best_overall_response,
    evaluate,
    parse_patient,
)

R = Response
RAND = dt.date(2024, 1, 1)

# What the overall response may be for a given target response (Table 1).
ALLOWED = {
    R.CR: {R.CR, R.PR, R.PD},
    R.PR: {R.PR, R.PD},
    R.SD: {R.SD, R.PD},
    R.NE: {R.NE, R.PD},
    R.PD: {R.PD},
}

tenths = st.integers(min_value=0, max_value=1500).map(lambda n: f"{n // 10}.{n % 10}")
baseline_mm = st.integers(min_value=100, max_value=1500).map(lambda n: f"{n // 10}.{n % 10}")
observation = st.one_of(
    tenths,
    st.sampled_from(["absent", "too_small", "not_evaluated", None]),
)


@st.composite
def patients(draw: st.DrawFn) -> dict[str, Any]:
    n_targets = draw(st.integers(min_value=1, max_value=5))
    n_non = draw(st.integers(min_value=0, max_value=2))
    targets = [draw(baseline_mm) for _ in range(n_targets)]
    lesions: list[dict[str, Any]] = [
        {"id": f"T{i}", "organ": f"organ{i}", "kind": "target", "diameter_mm": mm}
        for i, mm in enumerate(targets)
    ]
    lesions += [{"id": f"N{i}", "organ": "bone", "kind": "non_target"} for i in range(n_non)]
    days = sorted(set(draw(st.lists(st.integers(1, 400), min_size=1, max_size=7))))
    followups = []
    for d in days:
        obs: list[dict[str, Any]] = []
        for i in range(n_targets):
            value = draw(observation)
            if value is None:
                continue
            key = "diameter_mm" if value[0].isdigit() else "status"
            obs.append({"id": f"T{i}", key: value})
        for i in range(n_non):
            status = draw(
                st.sampled_from(["present", "absent", "not_evaluated", "unequivocal_progression"])
            )
            obs.append({"id": f"N{i}", "status": status})
        followups.append(
            {
                "date": (RAND + dt.timedelta(days=d)).isoformat(),
                "lesions": obs,
                "new_lesions": draw(st.sampled_from(["no", "no", "no", "equivocal", "yes"])),
            }
        )
    return {
        "randomization_date": RAND.isoformat(),
        "baseline": {"date": (RAND - dt.timedelta(days=7)).isoformat(), "lesions": lesions},
        "followups": followups,
    }


def _size(obs: dict[str, Any] | None) -> Fraction | None:
    if obs is None or obs.get("status") == "not_evaluated":
        return None
    if obs.get("status") == "absent":
        return Fraction(0)
    if obs.get("status") == "too_small":
        return Fraction(5)
    return Fraction(obs["diameter_mm"])


@settings(max_examples=150, deadline=None)
@given(patients())
def test_invariants(data: dict[str, Any]) -> None:
    result = evaluate(parse_patient(data))
    targets = [les for les in data["baseline"]["lesions"] if les["kind"] == "target"]
    baseline = sum(Fraction(t["diameter_mm"]) for t in targets)
    nadir = baseline
    for raw, tp in zip(data["followups"], result.time_points, strict=True):
        # a new lesion always gives PD
        if raw["new_lesions"] == "yes":
            assert tp.overall is R.PD
        # overall never better than the target response allows
        assert tp.overall in ALLOWED[tp.target]
        # PD judged exactly against the nadir, independently of the engine's Decimal code
        observed = {o["id"]: o for o in raw["lesions"]}
        sizes = [_size(observed.get(t["id"])) for t in targets]
        known = sum(s for s in sizes if s is not None)
        proves_pd = known >= Fraction(6, 5) * nadir and known - nadir >= 5
        if None in sizes:
            assert tp.target is (R.PD if proves_pd else R.NE)
            assert tp.sum_mm is None
        else:
            assert tp.sum_mm is not None and Fraction(tp.sum_mm) == known
            cleared = all(s == 0 for s in sizes)
            if cleared:
                assert tp.target is R.CR
            elif proves_pd:
                assert tp.target is R.PD
            else:
                assert tp.target in (R.PR, R.SD)
                if known <= Fraction(7, 10) * baseline:
                    assert tp.target is R.PR
            nadir = min(nadir, known)
    # first PD is the first PD time point (possibly re-dated to an equivocal new lesion)
    pd_dates = [tp.date for tp in result.time_points if tp.overall is R.PD]
    assert result.first_pd_date == (pd_dates[0] if pd_dates else None)
    # the best response is never better than the best time point up to the first PD
    upto = [
        tp.overall
        for tp in result.time_points
        if result.first_pd_date is None or tp.date <= result.first_pd_date
    ]
    rank = [R.CR, R.PR, R.SD, R.NON_CR_NON_PD, R.PD, R.NE]
    if upto:
        assert rank.index(result.best_overall_response) >= min(rank.index(r) for r in upto)
    # disease control at month 6 needs a controlled landmark assessment and no PD up to it
    if result.disease_control_month6:
        start, end = result.landmark_window
        assert result.landmark_date is not None and start <= result.landmark_date <= end
        chosen = next(tp for tp in result.time_points if tp.date == result.landmark_date)
        assert chosen.overall in DISEASE_CONTROL
        assert result.first_pd_date is None or result.first_pd_date > result.landmark_date


@settings(max_examples=60, deadline=None)
@given(patients())
def test_new_lesion_anywhere_means_pd_by_then(data: dict[str, Any]) -> None:
    result = evaluate(parse_patient(data))
    for tp in result.time_points:
        if tp.new_lesions is NewLesions.YES:
            assert result.first_pd_date is not None and result.first_pd_date <= tp.date


responses = st.sampled_from([R.CR, R.PR, R.SD, R.NON_CR_NON_PD, R.PD, R.NE])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), responses), max_size=8, unique_by=lambda t: t[0]))
def test_confirmation_can_only_lower_the_best_response(pairs: list[tuple[int, R]]) -> None:
    seq = [(RAND + dt.timedelta(days=d), r) for d, r in pairs]
    rank = [R.CR, R.PR, R.SD, R.NON_CR_NON_PD, R.PD, R.NE]
    plain = best_overall_response(seq, RAND, RecistOptions())[0]
    confirmed = best_overall_response(seq, RAND, RecistOptions(confirmation_required=True))[0]
    assert rank.index(confirmed) >= rank.index(plain)
    # a confirmed CR/PR is always backed by a later CR/PR at least 28 days on
    if confirmed in (R.CR, R.PR):
        ordered = sorted(seq)
        assert any(
            later in (R.CR, R.PR) and (d2 - d1).days >= 28
            for i, (d1, r1) in enumerate(ordered)
            if r1 is confirmed
            for d2, later in ordered[i + 1 :]
        )
