"""The SAE page, the clinical form pages, the timeline's disposition and the casebook in
French, for a seeded patient: no English of their own templates is left (every catalogue
message the template uses reads as its French translation), the registry's French form, field
and code labels are shown, and validation messages (pydantic's defaults, the token lifetime,
a refused inclusion's criteria) are French with a stable machine code beside them."""

from __future__ import annotations

import html as html_lib
import re
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po
from test_web_sae_reports import _sae
from test_web_trial_flow import randomized_patient
from web_support import Site, eligible_file, included_via_api

from reluth.i18n import use_locale
from reluth.records import casebook

FR = {"Accept-Language": "fr-FR,fr;q=0.9"}
ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "src" / "reluth" / "locale" / "fr" / "LC_MESSAGES" / "messages.po"
_PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w*\}")
#: The English the pages showed before they were translated (their own words, never data).
KNOWN_ENGLISH = re.compile(
    r"\b(Serious adverse event|Reports to pharmacovigilance|Seriousness criteria|Narrative|"
    r"Action taken with Lutathera|Treatment of the event|Send initial report|"
    r"Investigator's causality|24-hour clock|No report sent yet|Withdrawals, death and end of "
    r"study|Record a withdrawal|Record the death|Record the end of study|None recorded|"
    r"Drug name|Indication is|Route|Start date|Ongoing|Save concomitant medication|"
    r"Saved: |Casebook|Registration|Screening|Randomization|Laboratory results|"
    r"Adverse events and SAEs|Appendix: audit trail|Printed by|Input should|accepted:|"
    r"from follow-up visits|is not a number|days\))\b"
)


@cache
def _catalogue() -> dict[str, tuple[str, tuple[str, ...]]]:
    """msgid -> (French msgstr, the files using it)."""
    with PO.open("rb") as handle:
        catalog = read_po(handle)
    return {
        str(m.id): (str(m.string), tuple(f for f, _line in m.locations))
        for m in catalog
        if m.id and isinstance(m.id, str)
    }


def _english_left(text: str, *sources: str) -> list[str]:
    """Pieces of the catalogue's English messages used by ``sources`` that ``text`` (a French
    page) still shows: each literal piece of a message (its text between placeholders) of two
    words or more, when the French translation differs from it."""
    found = []
    for msgid, (msgstr, files) in _catalogue().items():
        if not any(f.endswith(s) for f in files for s in sources) or msgstr == msgid:
            continue
        for piece in _PLACEHOLDER.split(msgid):
            piece = piece.strip(" .,:;()—-")
            if len(piece.split()) >= 2 and piece not in msgstr and piece in text:
                found.append(piece)
    return found


def _text(page: str) -> str:
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", body)))


def _french(client: object, path: str, *sources: str, status: int = 200) -> str:
    page = client.get(path, headers=FR)  # type: ignore[attr-defined]
    assert page.status_code == status, (path, page.text[:400])
    return _checked(page.text, path, *sources)


def _checked(page: str, where: str, *sources: str) -> str:
    text = _text(page)
    assert _english_left(text, *sources) == [], where
    found = KNOWN_ENGLISH.search(text)
    assert found is None, (where, found.group(0), text[max(0, found.start() - 80) :][:200])
    return text


def _post(client: object, path: str, data: dict[str, str]) -> object:
    return client.post(path, data=data, headers=FR)  # type: ignore[attr-defined]


def test_the_sae_page_reads_in_french_for_the_site_and_pharmacovigilance(site: Site) -> None:
    code = randomized_patient(site)
    ae_id = _sae(site, code)
    inv, pv = site.client("inv1"), site.client("pv")
    sources = ("sae.html", "sae_pages.py")
    page = _french(inv, f"/adverse-events/{ae_id}", *sources)
    assert "EI grave" in page and "Envoyer le rapport initial" in page
    assert re.search("hospitalisation ou (la )?prolongation d’(une )?hospitalisation", page, re.I)
    assert "10/03/2025" in page  # the onset, dd/mm/yyyy
    refused = _post(inv, f"/adverse-events/{ae_id}/reports", {"narrative": ""})
    assert refused.status_code == 422  # type: ignore[attr-defined]
    text = _checked(refused.text, "refused report", *sources)  # type: ignore[attr-defined]
    assert "Description narrative : ce champ est obligatoire" in text
    report = {
        "narrative": "Hospitalisé pour transfusion de plaquettes.",
        "action_taken": "drug_interrupted",
        "outcome": "recovering",
        "sae_hospitalisation": "yes",
    }
    sent = _post(inv, f"/adverse-events/{ae_id}/reports", report)
    assert sent.status_code == 303  # type: ignore[attr-defined]
    saved = _french(inv, sent.headers["location"], *sources)  # type: ignore[attr-defined]
    assert "Enregistré : rapport initial." in saved
    assert "Envoyer le rapport de suivi 1" in saved
    assessing = _french(pv, f"/adverse-events/{ae_id}", *sources)
    assert "Imputabilité" in assessing and "inattendu" in assessing
    assessed = _post(
        pv,
        f"/adverse-events/{ae_id}/reports/0/assessment",
        {"causality": "related", "expectedness": "unexpected"},
    )
    assert assessed.status_code == 303  # type: ignore[attr-defined]
    susar = _french(pv, f"/adverse-events/{ae_id}", *sources)
    assert "SUSAR" in susar and "Référence de la déclaration" in susar


def test_every_clinical_form_page_reads_in_french_from_the_registry(site: Site) -> None:
    code = included_via_api(site)
    nurse = site.client("nurse1")
    sources = ("clinical_form.html", "clinical_pages.py", "_form_records.html")
    registry = site.trial.forms
    for form_id in (
        "conmed",
        "medical_history",
        "deviation",
        "pregnancy_test",
        "childbearing",
        "withdrawal",
        "death",
        "end_of_study",
    ):
        page = _french(nurse, f"/patients/{code}/forms/{form_id}", *sources)
        form = registry.form(form_id)
        assert form.label_in("fr") in page, form_id
        for field in form.fields:
            assert field.label_in("fr") in page, (form_id, field.name)
            if field.label_in("fr") != field.label_in("en"):
                assert f">{field.label_in('en')}<" not in page, (form_id, field.name)
    conmed = _french(nurse, f"/patients/{code}/forms/conmed", *sources)
    assert "sous-cutanée" in conmed and "Enregistrer" in conmed
    refused = _post(
        nurse,
        f"/patients/{code}/forms/conmed",
        {"drug_name": "Lanréotide", "indication": "syndrome carcinoïde", "dose": "beaucoup",
         "unit": "mg", "route": "subcutaneous", "ongoing": "true"},
    )  # fmt: skip
    assert refused.status_code == 422  # type: ignore[attr-defined]
    text = _checked(refused.text, "refused conmed", *sources)  # type: ignore[attr-defined]
    assert "Dose : « beaucoup » n’est pas un nombre" in text
    saved = _post(
        nurse,
        f"/patients/{code}/forms/conmed",
        {"drug_name": "Lanréotide", "indication": "syndrome carcinoïde", "dose": "120,5",
         "unit": "mg", "route": "subcutaneous", "start_date": "10/01/2023", "ongoing": "true"},
    )  # fmt: skip
    assert saved.status_code == 303, saved.text  # type: ignore[attr-defined]
    shown = _french(nurse, saved.headers["location"], *sources)  # type: ignore[attr-defined]
    assert "Enregistré : traitement concomitant (fiche" in shown
    assert "120,5" in shown and "10/01/2023" in shown


def test_the_disposition_and_its_correction_read_in_french(site: Site) -> None:
    code = included_via_api(site)
    nurse = site.client("nurse1")
    withdrawal = {"kind": "follow_up", "withdrawal_date": "11/03/2025", "decided_by": "patient"}
    assert _post(nurse, f"/patients/{code}/forms/withdrawal", withdrawal).status_code == 303  # type: ignore[attr-defined]
    death = {"death_date": "12/03/2025", "cause": "disease"}
    assert _post(nurse, f"/patients/{code}/forms/death", death).status_code == 303  # type: ignore[attr-defined]
    timeline = nurse.get(f"/patients/{code}", headers=FR).text
    section = timeline[
        timeline.index('id="disposition"') : timeline.index(
            "</section>", timeline.index('id="disposition"')
        )
    ]
    text = _checked(section, "disposition", "_clinical_forms.html")
    assert "Retrait (arrêt du suivi) le 11/03/2025" in text and "Décès le 12/03/2025" in text
    assert "Enregistrer la fin d’étude" in text
    with site.db() as db:
        from sqlalchemy import select

        from reluth.patients.models import Withdrawal

        wid = db.scalars(select(Withdrawal.id)).one()
    edit = _text(nurse.get(f"/forms/withdrawal/{wid}/edit", headers=FR).text)
    assert "Corriger le retrait (arrêt du suivi)" in edit
    assert "follow up" not in edit and "follow_up" not in edit
    english = _text(nurse.get(f"/forms/withdrawal/{wid}/edit").text)
    assert "Correct withdrawal (from follow-up)" in english


def test_the_casebook_reads_in_french(site: Site) -> None:
    code = randomized_patient(site)
    _sae(site, code)
    with site.reading_as("inv1") as ctx:
        book = casebook.casebook(ctx, code)
        with use_locale("fr"):
            page = casebook.render_html(book, site.trial)
        with use_locale("en"):
            english = casebook.render_html(book, site.trial)
    sources = ("casebook.html", "_casebook_sections.html", "_casebook_manifestations.html")
    # a query's question is stored text (an automatic edit check writes it), and the audit
    # trail holds the stored values: data, not the template's words
    queries = re.search(r'<section class="record" id="queries">.*?</section>', page, re.S)
    assert queries is not None and "Requêtes" in queries.group(0)
    audit = re.search(r'<table class="audit">.*?</thead>(.*?)</table>', page, re.S)
    assert audit is not None and "créé" in audit.group(1)
    # each record by its form's label and number, never its table (the stored row keeps it)
    assert "Enregistrement (pseudonymisé) n°" in audit.group(1)
    assert "patients #" not in audit.group(1) and "lab_results" not in audit.group(1)
    words = page.replace(queries.group(0), "").replace(audit.group(1), "")
    text = _checked(words, "casebook", *sources)
    assert '<html lang="fr">' in page and "Cahier d’observation — patient" in text
    assert "Annexe : piste d’audit" in text and "Enregistrement" in text
    assert "12/03/2025 09:00:00" in page and "2025-03-12" not in words  # ISO only in data
    assert "<th>Enregistrement</th><th>Modification</th>" in page
    assert "Casebook — patient" in _text(english) and '<html lang="en">' in english


def test_pydantic_defaults_reach_people_in_french_with_a_machine_code(site: Site) -> None:
    code = included_via_api(site)
    api = site.client("inv1")
    body = {"drug_name": "X", "indication": "Y", "dose": "beaucoup", "route": "oral", "unit": "mg"}
    answers = {
        lang: api.post(
            f"/api/v1/patients/{code}/conmeds", json=body, headers={"Accept-Language": lang}
        )
        for lang in ("fr", "en")
    }
    fr, en = answers["fr"].json(), answers["en"].json()
    assert fr["code"] == en["code"] == "invalid_request"  # FastAPI's check of the body
    assert fr["problems"][0]["code"] == en["problems"][0]["code"] == "not_a_number"
    assert fr["problems"][0]["field"] == en["problems"][0]["field"] == "dose"
    assert "« beaucoup » n’est pas un nombre" in fr["error"] and "Input" not in fr["error"]
    assert "“beaucoup” is not a number" in en["error"]
    # the eligibility engine's patient file: pydantic's checks of a screening, in French too
    screened = str(api.post("/api/v1/patients", json={"centre": "C01"}).json()["patient_id"])
    data = eligible_file(screened, site.clock().date()) | {"ecog": "deux", "extra": 1}
    refused_file = api.post(
        f"/api/v1/patients/{screened}/screening", json=data, headers={"Accept-Language": "fr"}
    ).json()
    assert refused_file["code"] == "invalid_values", refused_file
    assert "« deux » n’est pas un nombre entier" in refused_file["error"], refused_file
    assert (
        "Input should" not in refused_file["error"] and "Extra inputs" not in refused_file["error"]
    )
    # the request model's own checks (FastAPI's 422): each problem has a code and French words
    ae_id = _sae(site, randomized_patient(site))
    bad = {"narrative": "x", "action_taken": "nothing", "outcome": "recovering"}
    refused = api.post(
        f"/api/v1/adverse-events/{ae_id}/reports", json=bad, headers={"Accept-Language": "fr"}
    ).json()
    assert refused["code"] == "invalid_request"
    problem = refused["problems"][0]
    assert problem["field"] == "action_taken" and problem["code"] == "not_accepted"
    assert "ne fait pas partie des réponses acceptées" in problem["problem"]
    assert "String should" not in refused["error"] and "Input should" not in refused["error"]


def test_the_token_lifetime_is_refused_in_french(site: Site) -> None:
    inv = site.client("inv1")
    page = _post(inv, "/account/tokens", {"name": "t", "expires_in_days": "400"})
    assert page.status_code == 422  # type: ignore[attr-defined]
    text = _text(page.text)  # type: ignore[attr-defined]
    assert "Expire après (jours) : « 400 » — saisissez un nombre entier de 1 à 366" in text, text
    assert "1..366" not in text and "days" not in text
    refused = inv.post(
        "/api/v1/tokens", json={"name": "t", "expires_in_days": 400}, headers=FR
    ).json()
    assert refused["problems"][0]["code"] == "at_most", refused
    assert "1..366" not in str(refused) and "Input" not in refused["error"]
    assert "400 — la valeur doit être au plus 366" in refused["error"], refused


def test_a_refused_inclusion_names_its_criteria_in_french(site: Site) -> None:
    api = site.client("inv1")
    code = str(api.post("/api/v1/patients", json={"centre": "C01"}).json()["patient_id"])
    data = eligible_file(code, site.clock().date())
    data["labs"]["platelets"]["value"] = 50000  # type: ignore[index]
    assert api.post(f"/api/v1/patients/{code}/screening", json=data).status_code == 201
    inclusion = {"consent_date": "2025-03-01", "inclusion_date": "2025-03-04"}
    answers = {
        lang: api.post(
            f"/api/v1/patients/{code}/inclusion", json=inclusion, headers={"Accept-Language": lang}
        ).json()
        for lang in ("fr", "en")
    }
    fr, en = answers["fr"], answers["en"]
    assert fr["code"] == en["code"] == "precondition_failed"
    assert "I11 (Réserve médullaire suffisante" in fr["error"], fr
    assert "non éligible" in fr["error"] and "Adequate" not in fr["error"]
    assert "I11 (Adequate" in en["error"] and "not eligible" in en["error"]


def test_every_pydantic_code_has_a_translated_template() -> None:
    """A pydantic error type reaching people is worded by a template of its code, so a new
    mapping cannot fall back to pydantic's English."""
    from reluth.errors import PYDANTIC_CODES, from_pydantic
    from reluth.i18n.messages import TEMPLATES, describe

    assert {code for code, _limit in PYDANTIC_CODES.values()} <= set(TEMPLATES)
    error = {"type": "decimal_parsing", "loc": ("dose",), "msg": "Input should be a valid decimal",
             "input": "beaucoup"}  # fmt: skip
    refused = from_pydantic(error, "dose")
    assert refused.code == "not_a_number" and refused.field == "dose"
    with use_locale("fr"):
        assert describe(refused) == (
            "Dose : « beaucoup » n’est pas un nombre — saisissez un nombre décimal (virgule ou point)"
        )
    with use_locale("en"):
        assert "Input should" not in describe(refused)
