"""The clinical engines' and services' refusals of an input (issue 18): the stable ``code`` and
the English ``message`` as before, and French where a French nurse reads them (the field by its
label, days as dd/mm/yyyy, decimal commas, the trial's French words), never English."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from reluth.errors import ReluthError, ValidationError
from reluth.i18n import use_locale
from reluth.i18n.messages import describe
from reluth.patients import service as patients
from reluth.patients import timeline
from reluth.protocol.definition import load_protocol
from reluth.protocol.strata import parse_stratum
from reluth.qol import scoring
from reluth.response import recist
from reluth.safety import records, seriousness
from reluth.treatment import service as treatment
from reluth.units import to_canonical

TODAY = dt.date(2025, 6, 30)


def refused(call: Callable[[], Any]) -> tuple[ReluthError, str, str]:
    """The error ``call`` raises, described in French and in English."""
    with pytest.raises(ReluthError) as exc:
        call()
    with use_locale("fr"):
        fr = describe(exc.value)
    with use_locale("en"):
        en = describe(exc.value)
    return exc.value, fr, en


def _event(**changes: object) -> dict[str, object]:
    return {
        "term": "Nausea",
        "grade": 2,
        "outcome": "recovered",
        "serious": False,
        "relatedness": "possible",
        "onset_date": "2025-03-10",
    } | changes


def test_an_adverse_event_whose_outcome_contradicts_its_grade_or_criteria_in_french() -> None:
    protocol = load_protocol()
    error, fr, en = refused(lambda: records.adverse_event_fields(_event(grade=5), TODAY, protocol))
    assert error.code == "outcome_contradicts_grade"
    assert (
        error.message == "adverse_event.outcome: recovered with grade 5 (accepted: grade 5 = fatal)"
    )
    assert (
        fr
        == "Évolution : évolution « résolu » avec un grade 5 (accepté : grade 5 = évolution « décès »)"
    )
    assert en == "Outcome: recovered with grade 5 (accepted: grade 5 = fatal)"
    serious = _event(serious=True, awareness_date="2025-03-11", seriousness=["death"])
    error, fr, _ = refused(lambda: records.adverse_event_fields(serious, TODAY, protocol))
    assert error.code == "death_without_fatal_outcome"
    assert "critère décès avec l’évolution « résolu »" in fr and "outcome" not in fr
    error, fr, _ = refused(
        lambda: records.adverse_event_fields(_event(serious=True), TODAY, protocol)
    )
    assert error.code == "awareness_date_required"
    assert "obligatoire pour un EI grave" in fr and "24 heures" in fr and "jj/mm/aaaa" in fr
    assert "YYYY-MM-DD" in error.message
    late = _event(resolution_date="2025-03-09")
    error, fr, _ = refused(lambda: records.adverse_event_fields(late, TODAY, protocol))
    assert error.code == "resolution_before_onset"
    assert (
        fr
        == "Date de résolution : le 09/03/2025 est antérieur au début de l’événement (10/03/2025)"
    )


def test_an_unknown_seriousness_criterion_keeps_the_codes_accepted() -> None:
    error, fr, _ = refused(lambda: seriousness.parse_criteria(["fatal"], "sae_report.seriousness"))
    assert error.code == "unknown_criterion"
    assert fr.startswith(
        "Critères de gravité (ICH E2A) : critère inconnu 'fatal' (accepté : death,"
    )


def test_recist_input_errors_name_the_lesion_and_the_day_in_french() -> None:
    lesion = {"id": "T1", "organ": "liver", "kind": "target", "diameter_mm": "-3"}
    data = {
        "randomization_date": "2025-01-01",
        "baseline": {"date": "2024-12-20", "lesions": [lesion]},
        "followups": [],
    }
    error, fr, _ = refused(lambda: recist.parse_patient(data))
    assert isinstance(error, ValidationError) and error.code == "negative_value"
    assert error.field == "baseline lesion T1.diameter_mm"
    assert error.message == (
        "baseline lesion T1.diameter_mm: negative diameter -3 (accepted: a diameter in mm >= 0)"
    )
    assert fr == (
        "lésion initiale T1, Diamètre (mm) : diamètre négatif -3 (accepté : un diamètre en mm ≥ 0)"
    )
    lesion["diameter_mm"] = "30,5"
    data["followups"] = [{"date": "2024-12-01", "lesions": []}]
    error, fr, _ = refused(lambda: recist.parse_patient(data))
    assert error.code == "follow_up_not_after_baseline"
    assert "n’est pas postérieure à la date de l’évaluation initiale 20/12/2024" in fr
    data["followups"] = [{"date": "2025-03-01", "lesions": [{"id": "T9", "diameter_mm": 3}]}]
    error, fr, _ = refused(lambda: recist.parse_patient(data))
    assert error.code == "unknown_lesion"
    assert fr == (
        "suivi du 01/03/2025, lésion T9 : identifiant de lésion inconnu "
        "(non enregistré à l’évaluation initiale)"
    )


def test_qol_answers_refused_in_french() -> None:
    error, fr, _ = refused(lambda: scoring.instrument("QLQ-XX"))
    assert error.code == "unknown_instrument"
    assert fr == "Questionnaire : questionnaire inconnu 'QLQ-XX' (accepté : QLQ-C30, QLQ-GINET21)"
    inst = scoring.instrument("QLQ-C30")
    error, fr, _ = refused(lambda: scoring.parse_items(inst, {"un": 2}))
    assert error.code == "bad_item_number"
    assert fr == "Réponses : numéro de question invalide 'un' (accepté : 1 à 30)"
    error, fr, _ = refused(lambda: scoring.parse_items(inst, [1, 2]))
    assert error.code == "not_an_object" and "un objet numéro de question -> réponse" in fr


def test_cycle_and_activity_refusals_in_french_with_decimal_commas() -> None:
    day = dt.date(2025, 3, 5)
    error, fr, en = refused(lambda: treatment._cycle_values(day, Decimal("12.5"), "L1", TODAY))
    assert error.code == "activity_out_of_range"
    assert fr == "Activité administrée (GBq) : 12,5 GBq (accepté : 0,1 à 10 GBq (7,4 prévus))"
    assert en == "Administered activity (GBq): 12.5 GBq (accepted: 0.1 to 10 GBq (7.4 planned))"
    error, fr, _ = refused(lambda: treatment._cycle_values(day, Decimal("7.4"), " ", TODAY))
    assert error.code == "required" and "le numéro de lot inscrit sur le flacon" in fr
    error, fr, _ = refused(lambda: treatment._cycle_number(9, load_protocol()))
    assert error.code == "unknown_cycle"
    assert "(seconde PRRT)" in fr and "(après randomisation)" in fr


def test_the_inclusion_date_order_in_french() -> None:
    error, fr, en = refused(
        lambda: patients.inclusion_values(
            timeline.Milestones(), dt.date(2025, 3, 5), dt.date(2025, 3, 4), TODAY, None
        )
    )
    assert error.code == "consent_after_inclusion"
    assert error.message == "consent_date: 2025-03-05 is after inclusion (accepted: <= 2025-03-04)"
    assert (
        fr
        == "Date du consentement : le 05/03/2025 est postérieur à l’inclusion (accepté : ≤ 04/03/2025)"
    )
    assert en == "Consent date: 2025-03-05 is after inclusion (accepted: <= 2025-03-04)"


def test_units_and_strata_refused_in_french() -> None:
    error, fr, _ = refused(lambda: to_canonical("platelets", 100, "furlongs", "labs.platelets"))
    assert error.code == "unknown_unit"
    assert error.message.startswith("labs.platelets.unit: unknown unit 'furlongs' for platelets")
    assert fr.startswith("Plaquettes : unité inconnue 'furlongs' pour : plaquettes (accepté : ")
    error, fr, _ = refused(lambda: to_canonical("platelets", 9_000_000, "/mm3", "labs.platelets"))
    assert error.code == "implausible_value"
    assert "n’est pas un résultat plausible (plaquettes)" in fr and "vérifiez la valeur" in fr
    error, fr, _ = refused(lambda: parse_stratum("XX", load_protocol()))
    assert error.code == "not_a_stratum"
    assert fr.startswith("Strate : ce n’est pas un code de strate : 'XX' (accepté : p. ex. ")
