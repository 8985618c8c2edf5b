"""Fixtures for the web tests: an app on a fresh database with a movable clock, one user per
role at centre C01 (plus a second investigator at C02), and clients logged in as any of them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from reluth.auth import service as auth
from reluth.auth.models import Centre
from reluth.auth.roles import Role
from reluth.web.app import create_app
from reluth.web.deps import SESSION_COOKIE

PASSWORD = "correct horse battery"
T0 = dt.datetime(2025, 3, 12, 9, 0, tzinfo=dt.UTC)  # just after the example screening

#: username -> (role, centres)
USERS: dict[str, tuple[Role, tuple[str, ...]]] = {
    "inv1": (Role.INVESTIGATOR, ("C01",)),
    "inv2": (Role.INVESTIGATOR, ("C02",)),
    "nurse1": (Role.RESEARCH_NURSE, ("C01",)),
    "mon1": (Role.MONITOR, ("C01",)),
    "dm": (Role.DATA_MANAGER, ()),
    "rev": (Role.CENTRAL_REVIEWER, ()),
    "phys": (Role.MEDICAL_PHYSICIST, ()),
    "pv": (Role.PHARMACOVIGILANCE, ()),
    "stat": (Role.STATISTICIAN, ()),
    "admin": (Role.ADMIN, ()),
}
#: one representative user per role (site roles at C01)
ROLE_USER: dict[Role, str] = {
    Role.INVESTIGATOR: "inv1",
    Role.RESEARCH_NURSE: "nurse1",
    Role.MONITOR: "mon1",
    Role.DATA_MANAGER: "dm",
    Role.CENTRAL_REVIEWER: "rev",
    Role.MEDICAL_PHYSICIST: "phys",
    Role.PHARMACOVIGILANCE: "pv",
    Role.STATISTICIAN: "stat",
    Role.ADMIN: "admin",
}


@dataclass
class Clock:
    now: dt.datetime = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now = self.now + dt.timedelta(**kwargs)


@dataclass
class Site:
    app: FastAPI
    clock: Clock
    csrf: dict[str, str] = field(default_factory=dict)

    def db(self) -> Session:
        session: Session = self.app.state.sessionmaker()
        return session

    def client(self, username: str | None = None) -> TestClient:
        """A client logged in as ``username`` (session opened through the auth service)."""
        client = TestClient(self.app, follow_redirects=False)
        if username is None:
            return client
        with self.db() as db:
            opened = auth.open_session(db, auth.get_user(db, username), self.clock())
            db.commit()
        client.cookies.set(SESSION_COOKIE, opened.cookie_token)
        client.headers["X-CSRF-Token"] = opened.csrf_token
        self.csrf[username] = opened.csrf_token
        return client


def seed_users(app: FastAPI) -> None:
    session: Session = app.state.sessionmaker()
    with session as db:
        db.add_all([Centre(code="C01", name="Centre One"), Centre(code="C02", name="Centre Two")])
        db.flush()
        for username, (role, centres) in USERS.items():
            auth.create_user(db, username, role.value, PASSWORD, centres)
        db.commit()


def make_site(db_url: str) -> Site:
    clock = Clock()
    app = create_app(db_url, clock=clock)
    seed_users(app)
    return Site(app=app, clock=clock)


@pytest.fixture(autouse=True, scope="session")
def _cheap_argon2() -> Iterator[None]:
    """argon2id with small cost parameters so that the suite stays fast on 2 cores; the
    production parameters are checked in test_web_auth.py::test_production_hasher."""
    saved = auth._HASHER
    auth._HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    auth._HASHER = saved


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = make_site(f"sqlite:///{tmp_path / 'web.db'}")
    yield s
    s.app.state.engine.dispose()


@pytest.fixture(scope="module")
def shared_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One site for read-only tests of a module (the permission matrix)."""
    s = make_site(f"sqlite:///{tmp_path_factory.mktemp('web') / 'web.db'}")
    yield s
    s.app.state.engine.dispose()


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def eligible_file(code: str, today: dt.date) -> dict[str, object]:
    """The eligible example patient, renamed to ``code`` (dates are all before ``today``)."""
    import json

    data: dict[str, object] = json.loads((EXAMPLES / "patients" / "eligible.json").read_text())
    data["patient_id"] = code
    assert dt.date.fromisoformat(str(data["assessment_date"])) <= today
    return data


def setup_randomization(app: FastAPI) -> None:
    """The statistician fixes the method and generates the list (through the services)."""
    from reluth.db.session import Actor, unit_of_work
    from reluth.randomization import service as randomization

    stat = Actor("stat", Role.STATISTICIAN.value)
    with unit_of_work(app.state.engine, actor=stat) as uow:
        randomization.configure(uow.session, stat, "blocks")
    with unit_of_work(app.state.engine, actor=stat) as uow:
        randomization.generate_list(uow.session, stat, "web-test-seed-0123456789", 8)


def randomize_experimental(app: FastAPI, code: str, now: dt.datetime) -> dt.date:
    """Randomize a ready patient through the randomization service, on a fresh trial, so that
    the arm is the experimental one: minimization with no one randomized yet is a tie, broken by
    the generator's first draw (0.13 with seed 1 picks the first arm, experimental). Returns the
    randomization date. Cycle 3/4 visits are planned only in that arm."""
    import random

    from reluth.db.session import Actor, unit_of_work
    from reluth.randomization import service as randomization

    stat = Actor("stat", Role.STATISTICIAN.value)
    with unit_of_work(app.state.engine, actor=stat) as uow:
        randomization.configure(uow.session, stat, "minimization")
    inv = Actor("inv1", Role.INVESTIGATOR.value)
    with unit_of_work(app.state.engine, actor=inv) as uow:
        result = randomization.randomize(
            uow.session, inv, code, f"exp-{code}", now=now, rng=random.Random(1)
        )
    assert result.arm == "experimental", result
    return now.date()


def randomized_via_api(site: Site, username: str = "inv1", centre: str = "C01") -> str:
    """Register, screen, include, give cycles 1-2, record the pre-randomization assessment and
    randomize one patient through the JSON API (``setup_randomization`` must have run)."""
    import uuid

    api = site.client(username)
    code = str(api.post("/api/v1/patients", json={"centre": centre}).json()["patient_id"])
    steps: list[tuple[str, dict[str, object]]] = [
        ("screening", eligible_file(code, site.clock().date())),
        ("inclusion", {"consent_date": "2024-10-28", "inclusion_date": "2025-03-04"}),
        (
            "cycles",
            {"cycle": 1, "administered_on": "2025-03-05", "activity_gbq": "7.4", "lot": "L1"},
        ),
        ("cycles", {"cycle": 2, "administered_on": "2025-03-06", "activity_gbq": 7.4, "lot": "L2"}),
        ("pre-randomization", {"assessment_date": "2025-03-10", "overall_response": "SD"}),
    ]
    for step, body in steps:
        response = api.post(f"/api/v1/patients/{code}/{step}", json=body)
        assert response.status_code == 201, (step, response.text)
    done = api.post(f"/api/v1/patients/{code}/randomize", json={"request_id": str(uuid.uuid4())})
    assert done.status_code == 200, done.text
    return code


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every FastAPI route of the app, pages and API, with router prefixes."""
    from fastapi.routing import APIRoute, iter_route_contexts

    return sorted(
        (method, str(context.path))
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.methods or ()
    )
