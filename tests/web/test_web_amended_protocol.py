"""The screening page of an app built on an amended copy of the protocol (platelets 80 000 ->
100 000/mm3) judges, explains and words criterion I11 with the copy's threshold, both sides of
the boundary; the app on the shipped protocol keeps 80 000. Accounts and the patient are made
through the services (tests.store.storekit); the page is reached through a web session."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.protocol.amended import amended_copy
from tests.store.storekit import INVESTIGATOR, NURSE, add_users, work

from reluth.auth import service as auth
from reluth.patients import service as patients
from reluth.protocol.definition import Protocol, load_protocol
from reluth.web import screening_form as sf
from reluth.web.app import create_app
from reluth.web.deps import SESSION_COOKIE

NOW = dt.datetime(2025, 3, 12, 9, 0, tzinfo=dt.UTC)  # after the example's examination
CODE = "C01-0001"
ELIGIBLE = json.loads(
    (Path(__file__).resolve().parents[2] / "examples" / "patients" / "eligible.json").read_text()
)


@dataclass(frozen=True)
class Page:
    client: TestClient  # logged in as the investigator at C01
    csrf: str


def _page(tmp_path: Path, protocol: Protocol) -> Iterator[Page]:
    app = create_app(f"sqlite:///{tmp_path / 'web.db'}", clock=lambda: NOW, protocol=protocol)
    engine = app.state.engine
    add_users(engine)
    with work(engine, NURSE) as ctx:
        patients.register_patient(ctx, "C01", CODE)
    with app.state.sessionmaker() as db:
        opened = auth.open_session(db, auth.get_user(db, INVESTIGATOR), NOW)
        db.commit()
    client = TestClient(app, follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, opened.cookie_token)
    client.headers["X-CSRF-Token"] = opened.csrf_token
    yield Page(client, opened.csrf_token)
    engine.dispose()


@pytest.fixture
def amended_page(tmp_path: Path) -> Iterator[Page]:
    yield from _page(tmp_path, load_protocol(amended_copy(tmp_path, "100")))


@pytest.fixture
def shipped_page(tmp_path: Path) -> Iterator[Page]:
    yield from _page(tmp_path, load_protocol())


def _check(page: Page, platelets_per_mm3: str, lang: str = "en") -> tuple[str, str, str]:
    """The live eligibility of the example with that platelet count: the overall status, and
    the I11 row's criterion text (its title) and reason, as the page shows them."""
    data = {**ELIGIBLE, "patient_id": CODE}
    data["labs"] = {**data["labs"], "platelets": {"value": platelets_per_mm3, "unit": "/mm3"}}
    form = {**sf.to_form(data), "csrf_token": page.csrf}
    form.pop("patient_id")
    r = page.client.post(
        f"/patients/{CODE}/screening/check", data=form, headers={"Accept-Language": lang}
    )
    assert r.status_code == 200, r.text
    status = re.search(r'data-testid="eligibility-status">([^<]+)<', r.text)
    row = re.search(
        r'<td data-testid="criterion-I11"><strong>I11</strong> ([^<]*)</td><td class="[^"]+">[^<]*</td>'
        r"<td>([^<]*)</td>",
        r.text,
    )
    assert status is not None and row is not None, r.text
    return status.group(1), html.unescape(row.group(1)), html.unescape(row.group(2))


def test_the_page_judges_and_words_i11_with_the_amended_threshold(
    amended_page: Page,
) -> None:
    status, text, reason = _check(amended_page, "99999")
    assert status == "not eligible"
    assert text.endswith("platelets >= 100 000/mm3") and "80 000" not in text
    assert "it must be at least 100000 /mm³ (criterion I11)" in reason
    status, text, reason = _check(amended_page, "100000")
    assert status == "eligible"
    assert "Platelets: 100000 /mm³ (at least 100000 /mm³)" in reason
    assert _check(amended_page, "80000")[0] == "not eligible"  # the shipped boundary


def test_the_shipped_protocol_page_keeps_80000(shipped_page: Page) -> None:
    status, text, reason = _check(shipped_page, "99999")
    assert status == "eligible"
    assert text.endswith("platelets >= 80 000/mm3")
    assert "Platelets: 99999 /mm³ (at least 80000 /mm³)" in reason
    assert _check(shipped_page, "80000")[0] == "eligible"
    assert _check(shipped_page, "79999")[0] == "not eligible"


def test_the_reason_is_in_the_readers_language(shipped_page: Page) -> None:
    """Issue 18: the French reader sees the French reason, the number grouped the French way
    and the unit as entered; no internal field name."""
    _status, _text, reason = _check(shipped_page, "79999", lang="fr")
    shown = reason.replace("\u202f", " ")
    assert "Plaquettes : 79 999 /mm³ — il faut au moins 80 000 /mm³ (critère I11)" in shown
    assert "labs." not in shown and "platelets" not in shown
