"""A French user sees French pages: the account's language, the header's switch, the browser's
Accept-Language; a lab typed with a decimal comma is stored as the same Decimal; dates typed as
dd/mm/yyyy; the JSON API keeps its machine code and field and translates only the message."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select
from test_web_trial_flow import randomized_patient
from web_support import Site

from reluth.auth.models import User
from reluth.safety.models import LabResult


def _french(site: Site, username: str) -> None:
    client = site.client(username)
    r = client.post("/language", data={"lang": "fr", "next": "/dashboard"})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard"
    assert r.cookies.get("reluth_lang") == "fr"


def test_account_language_makes_every_page_french(site: Site) -> None:
    _french(site, "inv1")
    with site.db() as db:
        assert db.scalar(select(User.language).where(User.username == "inv1")) == "fr"
    fresh = site.client("inv1")  # another browser: no cookie, the account decides
    page = fresh.get("/dashboard", headers={"Accept-Language": "en-GB"})
    assert page.status_code == 200
    assert '<html lang="fr">' in page.text
    assert "Tableau de bord" in page.text and "Recrutement" in page.text
    assert "Se déconnecter" in page.text and "investigateur" in page.text
    assert ">Dashboard<" not in page.text
    patients = fresh.get("/patients").text
    assert "Rechercher par numéro patient" in patients and "Enregistrer un patient" in patients


def test_the_switch_is_audited_and_goes_back(site: Site) -> None:
    _french(site, "nurse1")
    client = site.client("nurse1")
    back = client.post("/language", data={"lang": "en", "next": "/patients"})
    assert back.status_code == 303 and back.headers["location"] == "/patients"
    with site.db() as db:
        assert db.scalar(select(User.language).where(User.username == "nurse1")) == "en"
    refused = client.post("/language", data={"lang": "xx", "next": "/patients"})
    assert refused.status_code == 422


def test_login_page_follows_accept_language_then_the_cookie(site: Site) -> None:
    anonymous = site.client()
    french = anonymous.get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert "Se connecter" in french.text and "Identifiant" in french.text
    assert french.headers["content-language"] == "fr"
    english = anonymous.get("/login", headers={"Accept-Language": "en-US"})
    assert "Log in" in english.text and "Se connecter" not in english.text
    switched = anonymous.post("/language", data={"lang": "fr", "next": "/login"})
    assert switched.status_code == 303
    assert "Se connecter" in anonymous.get("/login", headers={"Accept-Language": "en"}).text


def test_french_lab_with_decimal_comma_and_french_date(site: Site) -> None:
    code = randomized_patient(site)
    _french(site, "inv1")
    inv = site.client("inv1")
    saved = inv.post(
        f"/patients/{code}/labs",
        data={
            "date": "11/03/2025",
            "test": "hemoglobin",
            "value": "10,2",
            "unit": "g/dL",
            "lln": "12",
        },
    )
    assert saved.status_code == 303, saved.text
    with site.db() as db:
        row = db.scalars(select(LabResult).where(LabResult.analyte == "hemoglobin")).one()
    assert row.value == Decimal("10.2")  # the same Decimal as "10.2" typed with a point
    assert str(row.sample_date) == "2025-03-11"
    page = inv.get(f"/patients/{code}").text
    assert "Résultats biologiques" in page and "hémoglobine" in page
    assert "10,2 g/dL" in page and "11/03/2025" in page
    # the live grade preview reads the comma too
    live = inv.post(
        f"/patients/{code}/labs/grade",
        data={"test": "hemoglobin", "value": "7,9", "unit": "g/dL", "lln": "12"},
    )
    assert re.search(r'data-testid="ctcae-grade">grade \d<', live.text)


def test_api_error_has_a_stable_code_and_a_translated_message(site: Site) -> None:
    code = randomized_patient(site)
    inv = site.client("inv1")
    lab = {"date": "2025-03-11", "test": "platelets", "value": "beaucoup", "unit": "/mm3"}
    answers = {
        lang: inv.post(f"/api/v1/patients/{code}/labs", json=lab, headers={"Accept-Language": lang})
        for lang in ("fr", "en")
    }
    fr, en = answers["fr"].json(), answers["en"].json()
    assert answers["fr"].status_code == answers["en"].status_code == 422
    assert fr["code"] == en["code"] == "not_a_number"
    assert fr["field"] == en["field"]  # the machine's names never translate
    assert "« beaucoup » n’est pas un nombre" in fr["error"]
    assert "“beaucoup” is not a number" in en["error"]


def test_api_dates_and_numbers_stay_iso_and_plain_in_french(site: Site) -> None:
    code = randomized_patient(site)
    inv = site.client("inv1")
    body = inv.get(f"/api/v1/patients/{code}", headers={"Accept-Language": "fr"}).json()
    text = str(body)
    assert re.search(r"\d{4}-\d{2}-\d{2}", text)
    assert not re.search(r"\b\d{2}/\d{2}/\d{4}\b", text)
