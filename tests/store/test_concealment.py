"""Allocation concealment (issue 14): after a randomization, no response or page that an
investigator, research nurse, monitor, data manager, pharmacovigilance or medical physicist can
see holds the block, the position or the slot — neither the randomization's answer (page, API,
CLI) nor the audit rows (page, API, ``audit show``). The unblinded statistician sees them."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from storekit import (
    INVESTIGATOR,
    NURSE,
    STAT,
    add_account,
    add_users,
    read,
    ready_patients,
    work,
)
from typer.testing import CliRunner

from reluth.auth import service as auth
from reluth.auth.roles import Role
from reluth.db.engine import make_engine
from reluth.db.migrate import upgrade
from reluth.db.session import exempt_transaction, read_session
from reluth.randomization import service as rnd
from reluth.randomization.models import Randomization
from reluth.records import views
from reluth.web.deps import SESSION_COOKIE

#: the site roles and the other blinded-to-the-list readers of issue 14, with their accounts
READERS = {
    "inv1": Role.INVESTIGATOR,
    "nurse1": Role.RESEARCH_NURSE,
    "mon1": Role.MONITOR,
    "dm1": Role.DATA_MANAGER,
    "pv1": Role.PHARMACOVIGILANCE,
    "phys1": Role.MEDICAL_PHYSICIST,
}
#: what would tell the list: the words themselves, whatever their case or form
# at the start of a word: "disposition" (the withdrawal section) is not a position
LEAK = re.compile(r"\b(?:slot|block|position|details_json)", re.IGNORECASE)


@dataclass
class Trial:
    engine: Engine
    url: str
    code: str  # randomized through the API
    other: str  # randomized through the page
    answers: dict[str, str]  # what randomizing answered: API JSON, result page, CLI


def _client(app: object, engine: Engine, username: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)  # type: ignore[arg-type]
    with exempt_transaction(engine) as db:
        opened = auth.open_session(
            db, auth.get_user(db, username), dt.datetime(2025, 3, 5, 11, tzinfo=dt.UTC)
        )
    client.cookies.set(SESSION_COOKIE, opened.cookie_token)
    client.headers["X-CSRF-Token"] = opened.csrf_token
    return client


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trial]:
    from reluth.web.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('conceal') / 'trial.db'}"
    engine = make_engine(url)
    upgrade(engine)
    add_users(engine, ("C01",))
    for name, role in READERS.items():
        add_account(engine, name, role, ("C01",) if role is Role.MONITOR else ())
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, "concealment-test-seed-0123456789", 8)
    first, second, third = ready_patients(engine, 3, centres=("C01",), stratum=0)
    app = create_app(url, clock=lambda: dt.datetime(2025, 3, 5, 11, tzinfo=dt.UTC))
    inv = _client(app, engine, INVESTIGATOR)
    api = inv.post(f"/api/v1/patients/{first}/randomize", json={"request_id": "api-1"})
    assert api.status_code == 200, api.text
    form = inv.get(f"/patients/{second}/randomize")
    assert form.status_code == 200, form.text
    request_id = re.search(r'name="request_id" value="([^"]+)"', form.text)
    assert request_id is not None
    page = inv.post(
        f"/patients/{second}/randomize",
        data={
            "confirm": "yes",
            "request_id": request_id.group(1),
            "csrf_token": inv.headers["X-CSRF-Token"],
        },
    )
    assert page.status_code == 200 and "Arm:" in page.text, page.text
    with work(engine, INVESTIGATOR) as ctx:
        cli_like = rnd.randomize(ctx, third, "cli-1")
    answers = {
        "api": api.text,
        "page": page.text,
        "service": json.dumps(cli_like.__dict__, default=str),
    }
    yield Trial(engine, url, first, second, answers)
    app.state.engine.dispose()
    engine.dispose()


def test_randomizing_answers_the_arm_and_nothing_of_the_list(trial: Trial) -> None:
    body = json.loads(trial.answers["api"])
    assert set(body) == {"patient_id", "request_id", "arm", "stratum", "randomized_at", "replayed"}
    for where, text in trial.answers.items():
        assert not LEAK.search(text), (where, LEAK.search(text))


def test_the_randomize_command_prints_no_block_or_position(
    trial: Trial, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storekit import cli_token

    from reluth.cli import app as cli

    codes = ready_patients(trial.engine, 1, centres=("C01",), start=10, stratum=0)
    monkeypatch.setenv("RELUTH_DATABASE_URL", trial.url)
    monkeypatch.setenv("RELUTH_TOKEN", cli_token(trial.engine, INVESTIGATOR))
    from unittest import mock

    from reluth.core.trial import Trial as Clocked

    moment = dt.datetime(2025, 3, 5, 11, tzinfo=dt.UTC)
    for extra in ((), ("--json",)):
        with mock.patch("reluth.cli_support.command_trial", lambda: Clocked.default().at(moment)):
            out = CliRunner().invoke(cli, ["randomize", codes[0], "--request-id", "cli-2", *extra])
        assert out.exit_code == 0, out.output
        assert "randomized to" in out.output or '"arm"' in out.output
        assert not LEAK.search(out.output), out.output


def _pages(code: str) -> list[str]:
    return [
        f"/patients/{code}",
        f"/patients/{code}/audit",
        f"/api/v1/patients/{code}",
        f"/api/v1/patients/{code}/audit",
        "/",
        "/patients",
        "/api/v1/patients",
    ]


@pytest.mark.parametrize("username", sorted(READERS))
def test_no_page_or_response_of_a_blinded_reader_tells_the_list(
    trial: Trial, username: str
) -> None:
    from reluth.web.app import create_app

    app = create_app(trial.url, clock=lambda: dt.datetime(2025, 3, 5, 11, tzinfo=dt.UTC))
    client = _client(app, trial.engine, username)
    seen = 0
    for code in (trial.code, trial.other):
        for path in _pages(code):
            response = client.get(path)
            if response.status_code != 200:
                continue  # a page this role may not open shows nothing at all
            seen += 1
            match = LEAK.search(response.text)
            assert match is None, (
                username,
                path,
                response.text[max(0, match.start() - 80) : match.end() + 80],
            )
    assert seen >= 3, f"{username} saw almost nothing: the test would prove nothing"
    with read(trial.engine, username) as ctx:
        if ctx.actor.can(views.Action.READ, views.Resource.AUDIT):
            rows = views.record_history(ctx, trial.code)  # what `reluth audit show` prints
            assert any(r.table_name == "randomizations" for r in rows) or not ctx.actor.can(
                views.Action.READ, views.Resource.ARM
            )
            text = json.dumps([r.__dict__ for r in rows])
            assert not LEAK.search(text), text
            assert "allocation (concealed)" in text or "randomizations" not in text
    app.state.engine.dispose()


def test_the_statistician_sees_slot_block_and_position(trial: Trial) -> None:
    with read(trial.engine, STAT) as ctx:
        rows = views.record_history(ctx, trial.code)
        listing = rnd.allocation_list(ctx)
    inserted = [r for r in rows if r.table_name == "randomizations" and r.action == "insert"]
    assert len(inserted) == 1 and json.loads(inserted[0].new_value or "{}")["slot_id"] is not None
    with read_session(trial.engine) as s:
        pid = s.scalars(select(Randomization.patient_id)).first()
    used = [r for r in listing if r["patient_id"] == trial.code]
    assert pid is not None and len(used) == 1
    assert {"block", "block_size", "position", "arm"} <= set(used[0])


def test_block_sizes_are_random_from_the_configured_set_and_hidden_from_sites(trial: Trial) -> None:
    with read(trial.engine, STAT) as ctx:
        sizes = {r["block_size"] for r in rnd.allocation_list(ctx)}
    assert sizes <= {2, 4} and len(sizes) == 2  # both sizes drawn (seeded list, 16 strata)
    with read(trial.engine, NURSE) as ctx, pytest.raises(views.PermissionDenied):
        rnd.report(ctx)
    # and the settings' audit rows (block sizes) are not the nurse's either
    with read(trial.engine, NURSE) as ctx, pytest.raises(views.PermissionDenied):
        views.data_history(ctx, "randomization_settings", "1")
