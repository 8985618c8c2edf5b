"""Issue 18: the refusals of the trial's operations (permissions, locks, queries, the store's
limits, SDV and signatures) reach a French reader in French on the JSON API and the pages,
with the same stable ``code`` an English reader gets beside an unchanged English message."""

from __future__ import annotations

from typing import Any

from web_support import Site, included_via_api

from reluth.db.session import check_storable
from reluth.errors import ReluthError, ValidationError
from reluth.i18n import use_locale
from reluth.i18n.messages import describe
from reluth.queries.models import DataQuery

FR = {"Accept-Language": "fr-FR,fr;q=0.9"}
EN = {"Accept-Language": "en"}
LAB = {"test": "alt", "value": "30", "unit": "U/L", "date": "2025-03-11", "uln": "40"}


def _both(client: Any, method: str, path: str, **kwargs: Any) -> tuple[dict[str, Any], ...]:
    """The same refused request read in French, then in English."""
    return tuple(getattr(client, method)(path, headers=lang, **kwargs).json() for lang in (FR, EN))


def test_a_lock_refuses_a_nurse_in_french_naming_who_and_why(site: Site) -> None:
    code = included_via_api(site)
    dm, inv = site.client("dm"), site.client("inv1")
    assert dm.post(f"/api/v1/patients/{code}/lock", json={"reason": "revue"}).status_code == 200
    fr, en = _both(inv, "post", f"/api/v1/patients/{code}/labs", json=LAB)
    assert fr["code"] == en["code"] == "locked" and fr["status"] == 423
    assert f"patient {code} : verrouillé (par dm le" in fr["error"], fr
    assert "revue" in fr["error"] and "nouvelle fiche « Résultat biologique »" in fr["error"]
    assert "locked" not in fr["error"] and "lab_results" not in fr["error"]
    assert f"patient {code} is locked (by dm on" in en["error"]
    again_fr, again_en = _both(dm, "post", f"/api/v1/patients/{code}/lock", json={"reason": "x"})
    assert again_fr["code"] == again_en["code"] == "already_locked"
    assert again_fr["error"] == f"patient {code} : déjà verrouillé"
    assert again_en["error"] == f"patient {code} is already locked"


def test_a_role_without_the_permission_is_refused_in_french(site: Site) -> None:
    code = included_via_api(site)
    mon = site.client("mon1")
    fr, en = _both(mon, "post", f"/api/v1/patients/{code}/labs", json=LAB)
    assert fr["code"] == en["code"] == "not_permitted" and fr["status"] == 403
    assert "ne permet pas de saisir ou modifier : biologie" in fr["error"], fr
    assert "attaché de recherche clinique" in fr["error"] and "may not" not in fr["error"]
    assert "may not write lab" in en["error"]


def test_query_refusals_in_french(site: Site) -> None:
    code = included_via_api(site)
    inv, mon = site.client("inv1"), site.client("mon1")
    lab = inv.post(f"/api/v1/patients/{code}/labs", json=LAB).json()["id"]
    fr, en = _both(
        mon,
        "post",
        f"/api/v1/patients/{code}/queries",
        json={"field": f"lab {lab} nope", "question": "?"},
    )
    assert fr["code"] == en["code"] == "not_a_form_field", (fr, en)
    assert "« nope » n’est pas un champ du formulaire Résultat biologique" in fr["error"]
    assert "'nope' is not a field of form lab (accepted:" in en["error"]
    asked = {"field": f"lab {lab} value", "question": "Valeur ?"}
    assert mon.post(f"/api/v1/patients/{code}/queries", json=asked).status_code == 201
    audit = mon.get(f"/patients/{code}/audit", headers=FR).text
    assert "Requête" in audit and "Data query" not in audit  # a table of no form, in words
    missing_fr, missing_en = _both(mon, "post", "/api/v1/queries/999999/close")
    assert missing_fr["code"] == missing_en["code"] == "query_not_found", missing_fr
    assert missing_fr["error"] == "requête 999999 introuvable"
    assert missing_en["error"] == "query 999999 not found"


def _refused(call: Any) -> ReluthError:
    try:
        call()
    except ReluthError as exc:
        return exc
    raise AssertionError("not refused")


def test_the_store_limits_are_refused_in_french_with_the_field_label() -> None:
    """The one write door's checks (reluth.db.session.check_storable), which every path
    meets: a text over its column's length, a control character."""
    too_long = _refused(lambda: check_storable(DataQuery(patient_id=1, field="f" * 130)))
    assert isinstance(too_long, ValidationError) and too_long.code == "text_too_long"
    assert too_long.message == "field: 130 characters (accepted: at most 120)"
    control = _refused(lambda: check_storable(DataQuery(patient_id=1, field="a\x00b")))
    assert control.code == "control_character"
    with use_locale("fr"):
        assert describe(too_long) == "Champ : 130 caractères — au plus 120"
        assert describe(control).startswith("Champ : contient le caractère de contrôle")
    with use_locale("en"):
        assert describe(too_long) == "Field: 130 characters — at most 120"
