"""The administration, central review, exports, dosimetry, record and correction pages in
French: their own words, the registry's labels and codes in French, numbers and days written
the French way; and a central read typed with a decimal comma is stored, not a server error."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select
from test_web_trial_flow import randomized_patient
from web_support import Site

from reluth.response.models import LesionMeasurement
from reluth.safety.models import LabResult

FR = {"Accept-Language": "fr-FR,fr;q=0.9"}
#: English left on a French page (whole words of the pages' own text, never data).
ENGLISH = re.compile(
    r">\s*(Users|Username|Role|Reason|Save read|Scan date|Time point|Saved value|Field|"
    r"Queries|Cancel|Save correction|Download datasets|Token name|"
    r"Create token|Central review worklist|Access review|Dosimetry of|Cycle to compute|"
    r"No token\.|yes|no|measured)\s*<"
)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _french_page(client: object, path: str) -> str:
    page = client.get(path, headers=FR)  # type: ignore[attr-defined]
    assert page.status_code == 200, (path, page.text[:300])
    assert '<html lang="fr">' in page.text
    found = ENGLISH.search(page.text)
    assert found is None, (path, found.group(0))
    return str(page.text)


def test_administration_pages_in_french(site: Site) -> None:
    admin = site.client("admin")
    users = _text(_french_page(admin, "/admin/users"))
    assert "Utilisateurs" in users and "Ajouter un utilisateur" in users
    assert "attaché de recherche clinique" in users or "infirmier" in users or "moniteur" in users
    assert "Revue des accès (rôles non aveugles)" in users
    review = _text(_french_page(admin, "/admin/access-review"))
    assert "Revue des accès : rôles non aveugles" in review and "compte créé" in review
    changed = admin.post(
        "/admin/users/nurse1/deactivate", data={"reason": "a quitté l’essai"}, headers=FR
    )
    assert "Utilisateur nurse1 : désactivé." in _text(changed.text)
    tokens = _text(_french_page(site.client("inv1"), "/account/tokens"))
    assert "Jetons d’API" in tokens or "Nom du jeton" in tokens
    refused = site.client("inv1").post(
        "/account/tokens", data={"name": "t", "expires_in_days": "abc"}, headers=FR
    )
    assert refused.status_code == 422
    assert "nombre entier de 1 à 366" in _text(refused.text)


def test_central_review_record_and_correction_pages_in_french(site: Site) -> None:
    code = randomized_patient(site)
    rev = site.client("rev")
    worklist = _text(_french_page(rev, "/review"))
    assert "Relectures centralisées à faire" in worklist
    read = _french_page(rev, f"/review/{code}")
    assert "Lecture initiale" in _text(read) and "Enregistrer la lecture" in read
    assert ">TDM<" in read and ">cible<" in read and ">trop petite pour être mesurée<" in read

    # a baseline read typed the French way: decimal comma, dd/mm/yyyy
    saved = rev.post(
        f"/review/{code}",
        data={
            "timepoint": "baseline",
            "assessment_date": "01/03/2025",
            "modality": "CT",
            "id_0": "T1", "organ_0": "foie", "kind_0": "target", "diameter_0": "40",
            "id_1": "T2", "organ_1": "foie", "kind_1": "target", "diameter_1": "20,5",
        },
        headers=FR,
    )  # fmt: skip
    assert saved.status_code == 303, _text(saved.text)[:400]
    with site.db() as db:
        stored = db.scalars(select(LesionMeasurement).where(LesionMeasurement.lesion_id == "T2"))
        assert stored.one().diameter_mm == Decimal("20.5")
    reads = _text(_french_page(rev, f"/review/{code}"))
    assert "60,5" in reads and "01/03/2025" in reads and "Lecture de suivi" in reads

    # the record page and correction page of a laboratory result, laid out from the registry
    inv = site.client("inv1")
    lab = {"date": "11/03/2025", "test": "hemoglobin", "value": "10,2", "unit": "g/dL"}
    assert inv.post(f"/patients/{code}/labs", data=lab | {"lln": "12"}).status_code == 303
    with site.db() as db:
        lab_id = db.scalars(select(LabResult.id)).one()
    record = _text(_french_page(inv, f"/forms/lab/{lab_id}"))
    assert "Résultat biologique" in record and "Valeur enregistrée" in record
    assert "Valeur (g/dL)" in record and "Date du prélèvement" in record
    assert "10,2" in record and "11/03/2025" in record
    edit = _text(_french_page(inv, f"/forms/lab/{lab_id}/edit"))
    assert "Corriger le résultat biologique : hémoglobine" in edit
    assert "Motif de la correction (obligatoire)" in edit and "Valeur (g/dL)" in edit
    assert "hémoglobine du 11/03/2025" in edit and "valeur enregistrée 10,2 g/dL" in edit
    refused = inv.post(
        f"/forms/lab/{lab_id}/edit", data={"value": "9,8", "date": "2025-03-11"}, headers=FR
    )
    assert refused.status_code == 422
    assert "Enregistrer la correction" in refused.text


def test_exports_and_dosimetry_pages_in_french(site: Site) -> None:
    code = randomized_patient(site)
    exports = _text(_french_page(site.client("stat"), "/exports"))
    assert "Jeux de données d’analyse" in exports and "Rapport de randomisation" in exports
    assert "Télécharger les jeux de données" in exports
    dosimetry = _text(_french_page(site.client("phys"), f"/patients/{code}/dosimetry"))
    assert "Doses cumulées et limites" in dosimetry
    assert "Aucun résultat de dosimétrie enregistré pour ce patient." in dosimetry
    assert "Enregistrer les résultats de dosimétrie" in dosimetry


def test_the_same_pages_stay_english_in_english(site: Site) -> None:
    admin = site.client("admin")
    page = admin.get("/admin/users", headers={"Accept-Language": "en-GB"}).text
    assert "Add a user" in page and "Ajouter" not in page
    assert ">research nurse<" in page  # the role's label, not its code


def test_every_planned_visit_is_named_in_french_and_unchanged_in_english() -> None:
    import datetime as dt

    from reluth.i18n import use_locale
    from reluth.protocol.definition import load_protocol
    from reluth.protocol.schedule import planned_visits
    from reluth.web.labels import visit_name

    protocol = load_protocol()
    visits = [
        v for arm in protocol.arms for v in planned_visits(dt.date(2025, 3, 12), arm.code, protocol)
    ]
    kinds = {v.kind for v in visits}
    assert kinds == {
        "treatment",
        "tumour_assessment",
        "follow_up",
        "laboratory",
        "qol",
        "end_of_study",
    }
    with use_locale("en"):
        assert [visit_name(v.code, v.label) for v in visits] == [v.label for v in visits]
    with use_locale("fr"):
        french = {v.code: visit_name(v.code, v.label) for v in visits}
    same = {v.code for v in visits if french[v.code] == v.label}
    assert all(re.fullmatch(r"QOL-[WM]\d+", c) for c in same)  # "QLQ-C30 + GI.NET21 W36"
    assert french["QOL-W08"] == "QLQ-C30 + GI.NET21 semaine 8"
    assert french["LAB-W04"] == "Bilan biologique (NFS, rénal, hépatique) semaine 4"
    assert french["TA-W24"].endswith(" - critère principal à 6 mois")
    assert french["EOS"].startswith("Fin d’étude (mois 60)")


def test_every_criterion_is_worded_in_french_with_the_protocol_thresholds() -> None:
    from reluth.protocol.definition import load_protocol

    eligibility = load_protocol().eligibility
    for cid in eligibility.criteria.ids:
        assert cid in eligibility.criteria.translations["fr"], cid
        assert eligibility.text(cid, "fr") != eligibility.text(cid), cid
    assert eligibility.text("I11", "fr") == (
        "Réserve médullaire suffisante : Hb > 8 g/dL, polynucléaires neutrophiles ≥ 1500 /mm3, "
        "plaquettes ≥ 80 000 /mm3"
    )
    assert eligibility.text("E9", "fr").startswith("Insuffisance hépatique : ALAT/ASAT > 2,5 x LSN")
    assert eligibility.text("I11", "de") == eligibility.text("I11")  # no German: English
