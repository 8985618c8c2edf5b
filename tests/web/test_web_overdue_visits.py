"""Overdue visits on the dashboard: planned visits whose window closed with no visit recorded,
for the person's centres only, with the treatment-cycle visits (arm-revealing) left out for
anyone who may not read treatment."""

from __future__ import annotations

import datetime as dt

import pytest
from test_web_trial_flow import ready_patient
from web_support import Site, randomize_experimental

from reluth.auth.policy import POLICY, Action, Resource
from reluth.auth.roles import Role
from reluth.protocol.definition import load_protocol
from reluth.protocol.schedule import planned_visits
from reluth.records.dashboard import overdue_visits


def _experimental_patient(site: Site) -> tuple[str, dt.date]:
    """A patient prepared through the pages and randomized to the experimental arm by the
    randomization service, so that C3/C4 are planned."""
    code = ready_patient(site)
    return code, randomize_experimental(site.app, code)


def _codes(site: Site, username: str) -> set[tuple[str, str]]:
    rows = site.client(username).get("/api/v1/dashboard").json()["overdue_visits"]
    return {(r["patient_code"], r["visit_code"]) for r in rows}


def test_overdue_visits_window_boundary_recorded_visits_and_centres(site: Site) -> None:
    code, randomized_on = _experimental_patient(site)
    qol0 = next(
        v
        for v in planned_visits(randomized_on, "experimental", load_protocol())
        if v.code == "QOL-W00"
    )
    site.clock.now = dt.datetime.combine(qol0.window_end, dt.time(12), tzinfo=dt.UTC)
    assert (code, "QOL-W00") not in _codes(site, "inv1")  # last day of the window: still due
    site.clock.advance(days=1)
    assert (code, "QOL-W00") in _codes(site, "inv1")  # window closed, nothing recorded

    recorded = site.client("inv1").post(
        f"/api/v1/patients/{code}/visits",
        json={"visit_code": "LAB-W00", "visit_date": randomized_on.isoformat()},
    )
    assert recorded.status_code == 201 and recorded.json()["status"] == "in_window", recorded.text
    site.clock.advance(days=120)
    as_of = site.clock().date()
    expected = {
        (code, v.code)
        for v in planned_visits(randomized_on, "experimental", load_protocol())
        if v.window_end < as_of and v.code != "LAB-W00"
    }
    assert (code, "C3") in expected and (code, "TA-W08") in expected
    assert _codes(site, "inv1") == expected
    assert _codes(site, "dm") == expected  # all centres
    assert _codes(site, "inv2") == set()  # another centre's patient is not listed
    page = site.client("inv1").get("/dashboard").text
    assert "Overdue visits" in page and f'href="/patients/{code}"' in page


def test_blinded_person_never_sees_treatment_cycle_visits(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No role with the dashboard is blinded today; grant the central reviewer the dashboard to
    check that the read model itself drops C3/C4 for anyone who may not read treatment."""
    _experimental_patient(site)
    site.clock.advance(days=200)
    reviewer_grants = POLICY[Role.CENTRAL_REVIEWER] | {(Action.READ, Resource.DASHBOARD)}
    monkeypatch.setitem(POLICY, Role.CENTRAL_REVIEWER, reviewer_grants)
    with site.reading_as("rev") as ctx:
        assert not ctx.actor.can(Action.READ, Resource.TREATMENT)
        blind = {r.visit_code for r in overdue_visits(ctx)}
    with site.reading_as("inv1") as ctx:
        full = {r.visit_code for r in overdue_visits(ctx)}
    assert {"C3", "C4"} <= full
    assert blind == full - {"C3", "C4"} and "TA-W08" in blind
