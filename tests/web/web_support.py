"""Fixtures for the web tests: an app on a fresh database with a movable clock, one user per
role at centre C01 (plus a second investigator at C02), and clients logged in as any of them."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from reluth.auth import service as auth
from reluth.auth.actor import Actor, AuthMethod
from reluth.auth.roles import Role
from reluth.core.context import Ctx, reading, writing
from reluth.core.trial import Trial
from reluth.db.session import exempt_transaction, read_session
from reluth.sites import service as sites
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
    "coder": (Role.CODER, ()),
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
    Role.CODER: "coder",
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

    @property
    def trial(self) -> Trial:
        """The app's trial: the shipped protocol on this site's clock."""
        value: Trial = self.app.state.trial
        return value

    def db(self) -> Session:
        """A read-only session (writes go through :meth:`as_user`)."""
        session: Session = self.app.state.sessionmaker()
        session.info["reluth_read_only"] = True
        return session

    def actor(self, username: str) -> Actor:
        return actor_of(self.app, username)

    @contextmanager
    def as_user(self, username: str, reason: str | None = None) -> Iterator[Ctx]:
        """An audited write context as ``username`` (password-authenticated)."""
        with writing(self.app.state.engine, self.actor(username), self.trial, reason) as ctx:
            yield ctx

    @contextmanager
    def reading_as(self, username: str) -> Iterator[Ctx]:
        with reading(self.app.state.engine, self.actor(username), self.trial) as ctx:
            yield ctx

    def token(self, username: str, name: str = "tests", days: int | None = 90) -> str:
        """A new API token of ``username``, created from a password login."""
        with self.as_user(username) as ctx:
            _row, plain = auth.create_token(ctx, name, days)
        return plain

    def client(self, username: str | None = None) -> TestClient:
        """A client logged in as ``username`` (session opened through the auth service)."""
        client = TestClient(self.app, follow_redirects=False)
        if username is None:
            return client
        with exempt_transaction(self.app.state.engine) as db:
            opened = auth.open_session(db, auth.get_user(db, username), self.clock())
        client.cookies.set(SESSION_COOKIE, opened.cookie_token)
        client.headers["X-CSRF-Token"] = opened.csrf_token
        self.csrf[username] = opened.csrf_token
        return client


def actor_of(app: FastAPI, username: str) -> Actor:
    """``username`` as a password-authenticated actor (as after a login)."""
    with read_session(app.state.engine) as db:
        return auth.actor_for(auth.get_user(db, username), AuthMethod.PASSWORD)


def seed_users(app: FastAPI) -> None:
    """The first administrator by the bootstrap of the empty database, then, as that
    administrator, the two centres and one account per role (all through the services)."""
    engine, trial = app.state.engine, app.state.trial
    with read_session(engine) as db:
        operator = auth.bootstrap_actor(db, "web-tests")
    with writing(engine, operator, trial) as ctx:
        auth.create_user(ctx, "admin", Role.ADMIN.value, PASSWORD)
    admin = actor_of(app, "admin")
    with writing(engine, admin, trial) as ctx:
        sites.add_centre(ctx, "C01", "Centre One")
        sites.add_centre(ctx, "C02", "Centre Two")
    with writing(engine, admin, trial) as ctx:
        for username, (role, centres) in USERS.items():
            if username != "admin":
                auth.create_user(ctx, username, role.value, PASSWORD, centres)


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


#: (disease control months, radiological progression, creatinine µmol/L, intercurrent treatment)
#: -> the 16 strata: DC lt18/ge18 x PR rad/nonrad x GFR lt60/ge60 x IT yes/no
STRATA_INPUTS = list(itertools.product((14, 26), (True, False), (97, 78), (True, False)))

#: who enters a centre's data in ``ready_patients``
SITE_USER = {"C01": "nurse1", "C02": "inv2"}

#: the second-PRRT dates of ``ready_patients`` (after the example's screening of 2025-03-03 and
#: before the site clock's today, 2025-03-12): inclusion, cycle 1, cycle 2, assessment
READY_DATES = tuple(
    dt.date.fromisoformat(d) for d in ("2025-03-04", "2025-03-05", "2025-03-06", "2025-03-10")
)


def patient_file(code: str, variant: int = 0) -> dict[str, Any]:
    """The eligible example patient, renamed, in one of the 16 strata."""
    import copy

    dc, rad, creat, inter = STRATA_INPUTS[variant % 16]
    data = copy.deepcopy(eligible_file(code, T0.date()))
    data["first_prrt"]["disease_control_months"] = dc  # type: ignore[index]
    data["progression"]["radiological"] = rad  # type: ignore[index]
    data["labs"]["creatinine"]["value"] = creat  # type: ignore[index]
    data["history"]["intercurrent_treatment"] = inter  # type: ignore[index]
    return data


def ready_patients(
    site: Site, n: int, centres: tuple[str, ...] = ("C01", "C02"), start: int = 0
) -> list[str]:
    """Register, screen, include, give both second-PRRT cycles and record a pre-randomization
    assessment without progression for ``n`` patients spread over all strata and ``centres``,
    through the services as each centre's site user (``SITE_USER``)."""
    from decimal import Decimal

    from tests.store.storekit import not_childbearing

    from reluth.patients import service as patients
    from reluth.treatment import service as treatment

    included, cycle1, cycle2, assessed = READY_DATES
    codes = []
    for i in range(start, start + n):
        centre = centres[i % len(centres)]
        code = f"{centre}-{i + 1:04d}"
        with site.as_user(SITE_USER[centre]) as ctx:
            patients.register_patient(ctx, centre, code)
            outcome = patients.screen_patient(ctx, patient_file(code, i))
            assert outcome.status == "eligible", outcome
            patients.include_patient(ctx, code, dt.date(2024, 10, 28), included)
            not_childbearing(ctx, code, included.isoformat())
            treatment.record_cycle(ctx, code, 1, cycle1, Decimal("7.4"), "L1")
            treatment.record_cycle(ctx, code, 2, cycle2, Decimal("7.4"), "L2")
            patients.record_pre_randomization(ctx, code, assessed, False, "SD", None)
        codes.append(code)
    return codes


def setup_randomization(app: FastAPI) -> None:
    """The statistician fixes the method and generates the list (through the services)."""
    from reluth.randomization import service as randomization

    engine, trial, stat = app.state.engine, app.state.trial, actor_of(app, "stat")
    with writing(engine, stat, trial) as ctx:
        randomization.configure(ctx, "blocks")
    with writing(engine, stat, trial) as ctx:
        randomization.generate_list(ctx, "web-test-seed-0123456789", 8)


def randomize_experimental(app: FastAPI, code: str) -> dt.date:
    """Randomize a ready patient through the randomization service, today on the site's clock,
    on a fresh trial, so that the arm is the experimental one: minimization with no one
    randomized yet is a tie, broken by the generator's first draw (0.13 with seed 1 picks the
    first arm, experimental). Returns the randomization date. Cycle 3/4 visits are planned
    only in that arm."""
    import random

    from reluth.randomization import service as randomization

    engine, trial = app.state.engine, app.state.trial
    with writing(engine, actor_of(app, "stat"), trial) as ctx:
        randomization.configure(ctx, "minimization")
    with writing(engine, actor_of(app, "inv1"), trial) as ctx:
        result = randomization.randomize(ctx, code, f"exp-{code}", rng=random.Random(1))
    assert result.arm == "experimental", result
    return trial.today()


CONSENT = "2024-10-28"


#: The example patient file is a woman born in the 1950s: postmenopausal, no pregnancy test.
NOT_CHILDBEARING = {"childbearing_potential": False, "reason": "postmenopausal"}


def included_via_api(site: Site, username: str = "inv1", centre: str = "C01") -> str:
    """Register, screen and include one patient through the JSON API, with her childbearing
    potential (trial data such as adverse events, labs and questionnaires is recorded for
    included patients)."""
    api = site.client(username)
    code = str(api.post("/api/v1/patients", json={"centre": centre}).json()["patient_id"])
    steps: list[tuple[str, dict[str, object]]] = [
        ("screening", eligible_file(code, site.clock().date())),
        ("inclusion", {"consent_date": CONSENT, "inclusion_date": "2025-03-04"}),
        ("childbearing", {**NOT_CHILDBEARING, "assessed_on": "2025-03-04"}),  # the example woman
    ]
    for step, body in steps:
        response = api.post(f"/api/v1/patients/{code}/{step}", json=body)
        assert response.status_code == 201, (step, response.text)
    return code


def randomized_via_api(site: Site, username: str = "inv1", centre: str = "C01") -> str:
    """Register, screen, include, give cycles 1-2, record the pre-randomization assessment and
    randomize one patient through the JSON API (``setup_randomization`` must have run)."""
    import uuid

    code = included_via_api(site, username, centre)
    api = site.client(username)
    steps: list[tuple[str, dict[str, object]]] = [
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


def is_json_api(path: str) -> bool:
    """A JSON API route (the API's documentation under /api/v1/docs is a page)."""
    return path.startswith("/api/") and not path.startswith("/api/v1/docs")


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every FastAPI route of the app, pages and API, with router prefixes."""
    from fastapi.routing import APIRoute, iter_route_contexts

    return sorted(
        (method, str(context.path))
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.methods or ()
    )


def audit_entry(html: str, field: str) -> str:
    """The last row of the audit page that changes ``field``."""
    rows = re.findall(r'<tr id="audit-\d+".*?</tr>', html, re.S)
    found = [r for r in rows if f'data-field="{field}"' in r and 'class="audit-old"' in r]
    assert found, html
    return str(found[-1])


def audit_change(row: str, field: str) -> tuple[str, str, str]:
    """(label, old, new) of ``field`` in an audit row, as the page writes them."""
    found = re.search(
        rf'data-field="{field}"><dt>([^<]*)</dt>\s*<dd><span class="audit-old">([^<]*)</span>'
        r' → <span class="audit-new">([^<]*)</span>',
        row,
    )
    assert found, row
    return found.group(1), found.group(2), found.group(3)


def form_values(html: str, action: str) -> dict[str, str]:
    """The values the page's form (method post) to ``action`` shows (as a browser would post them):
    text inputs' value, the checked radio or checkbox, the selected option (the first when none
    is selected), a textarea's text; the CSRF token left out."""
    return form_controls(html, action)[0]


def form_controls(html: str, action: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """:func:`form_values` and each select's option values."""
    from html.parser import HTMLParser

    class Parser(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.depth = 0  # inside the form (nested forms do not occur)
            self.values: dict[str, str] = {}
            self.select: str | None = None
            self.first_option: dict[str, str] = {}
            self.options: dict[str, list[str]] = {}
            self.option: dict[str, str] | None = None
            self.textarea: str | None = None
            self.found = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = {k: v or "" for k, v in attrs}
            posts = a.get("method", "get").lower() == "post"
            if tag == "form" and a.get("action") == action and posts and not self.found:
                self.depth, self.found = 1, True
                return
            if not self.depth:
                return
            name = a.get("name", "")
            if tag == "input" and name and name != "csrf_token":
                kind = a.get("type", "text")
                if kind in ("radio", "checkbox"):
                    if "checked" in a:
                        self.values[name] = a.get("value", "on")
                elif kind not in ("submit", "button"):
                    self.values[name] = a.get("value", "")
            elif tag == "select" and name:
                self.select = name
            elif tag == "option" and self.select:
                self.option = {"value": a.get("value"), "selected": "selected" in a, "text": ""}  # type: ignore[dict-item]
            elif tag == "textarea" and name:
                self.textarea = name
                self.values[name] = ""

        def handle_data(self, data: str) -> None:
            if self.option is not None:
                self.option["text"] += data
            if self.textarea:
                self.values[self.textarea] += data

        def handle_endtag(self, tag: str) -> None:
            if not self.depth:
                return
            if tag == "form":
                self.depth = 0
            elif tag == "option" and self.option is not None and self.select:
                value = self.option["value"]
                value = self.option["text"].strip() if value is None else value
                self.first_option.setdefault(self.select, value)
                self.options.setdefault(self.select, []).append(value)
                if self.option["selected"]:
                    self.values[self.select] = value
                self.option = None
            elif tag == "select" and self.select:
                if self.select not in self.values and self.select in self.first_option:
                    self.values[self.select] = self.first_option[self.select]
                self.select = None
            elif tag == "textarea":
                self.textarea = None

    parser = Parser()
    parser.feed(html)
    assert parser.found, f"no form posting to {action}"
    return parser.values, parser.options


def audit_values(html: str, field: str, table: str | None = None) -> list[str]:
    """Every value the audit page shows ``field`` taking (created or changed to), oldest first."""
    rows = re.findall(r'<tr id="audit-\d+" data-table="([^"]*)".*?</tr>', html, re.S)
    found = []
    for row in re.finditer(r'<tr id="audit-\d+" data-table="([^"]*)".*?</tr>', html, re.S):
        if table is not None and row.group(1) != table:
            continue
        found += re.findall(
            rf'data-field="{field}"><dt>[^<]*</dt>\s*<dd>(?:<span class="audit-old">[^<]*</span> → )?'
            r'<span class="audit-new">([^<]*)</span>',
            row.group(0),
        )
    assert rows, html
    return found
