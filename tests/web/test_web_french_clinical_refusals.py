"""The clinical services' refusals reach a French nurse through the JSON API in French, with
the same stable ``code`` as in English (issue 18): a cycle out of order, a cycle given twice,
an SAE report whose outcome contradicts its seriousness criteria, a date in the wrong order."""

from __future__ import annotations

from test_web_sae_reports import _sae
from test_web_trial_flow import randomized_patient
from web_support import Site, included_via_api

CYCLE = {"administered_on": "2025-03-05", "activity_gbq": "7.4", "lot": "L1"}


def _both(client: object, path: str, body: dict[str, object]) -> tuple[dict, dict]:  # type: ignore[type-arg]
    answers = [
        client.post(path, json=body, headers={"Accept-Language": lang})  # type: ignore[attr-defined]
        for lang in ("fr", "en")
    ]
    return answers[0].json(), answers[1].json()


def test_a_cycle_out_of_order_and_a_repeated_cycle_are_refused_in_french(site: Site) -> None:
    code = included_via_api(site)
    api = site.client("inv1")
    path = f"/api/v1/patients/{code}/cycles"
    fr, en = _both(api, path, {"cycle": 2, **CYCLE})
    assert fr["code"] == en["code"] == "previous_cycle_missing", fr
    assert fr["error"] == "le cycle 1 doit être enregistré avant le cycle 2"
    assert en["error"] == "cycle 1 must be recorded before cycle 2"
    assert api.post(path, json={"cycle": 1, **CYCLE}).status_code == 201
    fr, en = _both(api, path, {"cycle": 1, **CYCLE})
    assert fr["code"] == en["code"] == "cycle_already_recorded"
    assert fr["error"] == f"le cycle 1 du patient {code} est déjà enregistré"
    assert en["error"] == f"cycle 1 of patient {code} is already recorded"


def test_an_sae_outcome_contradicting_its_criteria_is_refused_in_french(site: Site) -> None:
    ae_id = _sae(site, randomized_patient(site))
    api = site.client("inv1")
    body = {
        "seriousness": ["death"],
        "narrative": "Thrombopénie grade 4.",
        "action_taken": "dose_not_changed",
        "outcome": "recovering",
    }
    fr, en = _both(api, f"/api/v1/adverse-events/{ae_id}/reports", body)
    assert fr["code"] == en["code"] == "outcome_contradicts_criteria", fr
    assert "critère décès = évolution « décès »" in fr["error"], fr
    assert "with criteria" not in fr["error"] and "recovering" not in fr["error"]
    assert "recovering with criteria death (accepted: death = fatal)" in en["error"], en


def test_a_consent_after_the_inclusion_is_refused_in_french_with_french_days(site: Site) -> None:
    from web_support import eligible_file

    api = site.client("inv1")
    code = str(api.post("/api/v1/patients", json={"centre": "C01"}).json()["patient_id"])
    screening = api.post(
        f"/api/v1/patients/{code}/screening", json=eligible_file(code, site.clock().date())
    )
    assert screening.status_code == 201, screening.text
    body = {"consent_date": "2025-03-05", "inclusion_date": "2025-03-04"}
    fr, en = _both(api, f"/api/v1/patients/{code}/inclusion", body)
    assert fr["code"] == en["code"] == "consent_after_inclusion", fr
    assert "le 05/03/2025 est postérieur à l’inclusion" in fr["error"], fr
    assert "(accepté : ≤ 04/03/2025)" in fr["error"]
    assert "is after inclusion" in en["error"] and "2025-03-05" in en["error"]
