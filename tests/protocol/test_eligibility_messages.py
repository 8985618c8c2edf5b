"""The eligibility engine's reasons are message keys with their values, written in the
reader's language where shown (issue 18): each criterion on both sides of its threshold, in
French and English, numbers and days as each language writes them, no internal field name."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reluth.i18n import use_locale
from reluth.i18n.reasons import Reason, render_stored
from reluth.protocol.definition import load_protocol
from reluth.protocol.eligibility import CriterionResult, check_eligibility
from reluth.protocol.patient import parse_patient

PROTOCOL = load_protocol()


def crit(data: dict[str, Any], cid: str) -> CriterionResult:
    result = check_eligibility(parse_patient(data), PROTOCOL, stage="randomization")
    return next(c for c in result.criteria if c.id == cid)


def said(c: CriterionResult, lang: str) -> str:
    """The reason in ``lang``, Babel's (narrow) no-break spaces read as spaces."""
    assert c.message is not None
    with use_locale(lang):
        return c.message.render().replace("\u202f", " ").replace("\xa0", " ")


def keys(reason: Reason) -> set[str]:
    """Every message key of a reason and of the reasons it is made of."""
    out = {reason.key}
    for value in reason.params.values():
        items = getattr(value, "items", value if isinstance(value, list) else [value])
        for item in items if not callable(items) else []:
            if isinstance(item, Reason):
                out |= keys(item)
    return out


CASES = [
    # (criterion, changes, passes, a key, English, French)
    (
        "I1",
        {"age": 18},
        True,
        "eligibility.age_ok",
        "age 18 years (at least 18)",
        "âge 18 ans (au moins 18)",
    ),
    (
        "I1",
        {"age": 17},
        False,
        "eligibility.age_low",
        "age 17 years — the patient must be at least 18 (criterion I1)",
        "âge 17 ans — il faut au moins 18 ans (critère I1)",
    ),
    (
        "I4",
        {"first_prrt__disease_control_months": 12},
        True,
        "eligibility.disease_control_ok",
        "disease control 12 months (at least 12)",
        "contrôle de la maladie 12 mois (au moins 12)",
    ),
    (
        "I4",
        {"first_prrt__disease_control_months": 11.99},
        False,
        "eligibility.disease_control_low",
        "disease control 11.99 months — at least 12 are required (criterion I4)",
        "contrôle de la maladie 11,99 mois — il faut au moins 12 mois (critère I4)",
    ),
    ("I7", {"ecog": 2}, True, "eligibility.ecog_ok", "ECOG 2 (at most 2)", "ECOG 2 (au plus 2)"),
    (
        "I7",
        {"ecog": 3},
        False,
        "eligibility.ecog_high",
        "ECOG 3 — it must be at most 2 (criterion I7)",
        "ECOG 3 — il faut au plus 2 (critère I7)",
    ),
    (
        "I8",
        {"life_expectancy_months": 6},
        True,
        "eligibility.life_expectancy_ok",
        "life expectancy 6 months (at least 6)",
        "espérance de vie 6 mois (au moins 6)",
    ),
    (
        "I8",
        {"life_expectancy_months": 5.9},
        False,
        "eligibility.life_expectancy_low",
        "life expectancy 5.9 months — at least 6 are required (criterion I8)",
        "espérance de vie 5,9 mois — il faut au moins 6 mois (critère I8)",
    ),
    (
        "I9",
        {"sstr_imaging__date": "2024-11-10"},
        True,
        "eligibility.sstr_timing_ok",
        "SSTR imaging on 2024-11-10 (within 4 months before the planned randomization on "
        "2025-03-10, i.e. from 2024-11-10)",
        "imagerie SSTR du 10/11/2024 (dans les 4 mois précédant la randomisation prévue le "
        "10/03/2025, soit à partir du 10/11/2024)",
    ),
    (
        "I9",
        {"sstr_imaging__date": "2024-11-09"},
        False,
        "eligibility.sstr_timing_out",
        "SSTR imaging on 2024-11-09 — it must be within 4 months before the planned "
        "randomization on 2025-03-10, i.e. from 2024-11-10 (criterion I9)",
        "imagerie SSTR du 09/11/2024 — elle doit dater des 4 mois précédant la randomisation "
        "prévue le 10/03/2025, soit à partir du 10/11/2024 (critère I9)",
    ),
    (
        "I9",
        {"sstr_imaging__positive_lesion_fraction": 0.9},
        True,
        "eligibility.sstr_uptake_ok",
        "90 % of lesions positive (at least 90 %)",
        "90 % des lésions positives (au moins 90 %)",
    ),
    (
        "I9",
        {"sstr_imaging__positive_lesion_fraction": 0.89},
        False,
        "eligibility.sstr_uptake_low",
        "89 % of lesions positive — at least 90 % are required (criterion I9)",
        "89 % des lésions positives — il en faut au moins 90 % (critère I9)",
    ),
    (
        "I11",
        {"labs__platelets": {"value": 80000, "unit": "/mm3"}},
        True,
        "eligibility.lab_at_least",
        "Platelets: 80000 /mm³ (at least 80000 /mm³)",
        "Plaquettes : 80 000 /mm³ (au moins 80 000 /mm³)",
    ),
    (
        "I11",
        {"labs__platelets": {"value": 79999, "unit": "/mm3"}},
        False,
        "eligibility.lab_below",
        "Platelets: 79999 /mm³ — it must be at least 80000 /mm³ (criterion I11)",
        "Plaquettes : 79 999 /mm³ — il faut au moins 80 000 /mm³ (critère I11)",
    ),
    (
        "I11",
        {"labs__hemoglobin": {"value": "8.01", "unit": "g/dL"}},
        True,
        "eligibility.lab_above",
        "Haemoglobin: 8.01 g/dL (more than 8 g/dL)",
        "Hémoglobine : 8,01 g/dL (plus de 8 g/dL)",
    ),
    (
        "I11",
        {"labs__hemoglobin": {"value": 8, "unit": "g/dL"}},
        False,
        "eligibility.lab_not_above",
        "Haemoglobin: 8 g/dL — it must be more than 8 g/dL (criterion I11)",
        "Hémoglobine : 8 g/dL — il faut plus de 8 g/dL (critère I11)",
    ),
    (
        "I11",
        {"labs__neutrophils": {"value": 1.5, "unit": "10^9/L"}},
        True,
        "eligibility.lab_at_least",
        "Neutrophils: 1.5 ×10⁹/L (at least 1.5 ×10⁹/L)",
        "1,5 ×10⁹/L",
    ),
    (
        "I11",
        {"labs__neutrophils": {"value": 1499, "unit": "/mm3"}},
        False,
        "eligibility.lab_below",
        "Neutrophils: 1499 /mm³ — it must be at least 1500 /mm³",
        "1 499 /mm³ — il faut au moins 1 500 /mm³ (critère I11)",
    ),
    (
        "I12",
        {"consent": {"signed": False}},
        False,
        "eligibility.consent_not_signed",
        "informed consent not signed (criterion I12)",
        "consentement éclairé non signé (critère I12)",
    ),
    (
        "E7",
        {"history__ebrt_marrow_fraction": 0.25},
        True,
        "eligibility.ebrt_ok",
        "external beam radiotherapy to 25 % of the bone marrow (at most 25 %)",
        "radiothérapie externe sur 25 % de la moelle osseuse (au plus 25 %)",
    ),
    (
        "E7",
        {"history__ebrt_marrow_fraction": 0.26},
        False,
        "eligibility.ebrt_over",
        "external beam radiotherapy to 26 % of the bone marrow — more than 25 % excludes "
        "(criterion E7)",
        "radiothérapie externe sur 26 % de la moelle osseuse — au-delà de 25 %, exclusion "
        "(critère E7)",
    ),
    (
        "E9",
        {"labs__bilirubin": {"value": 42.5, "unit": "µmol/L", "uln": 17}},
        True,
        "eligibility.liver_ok",
        "Bilirubin: 42.5 µmol/L = 2.50 × ULN (at most 2.5 × ULN)",
        "Bilirubine : 42,5 µmol/L = 2,50 × LSN (au plus 2,5 × LSN)",
    ),
    (
        "E9",
        {"labs__bilirubin": {"value": 42.6, "unit": "µmol/L", "uln": 17}},
        False,
        "eligibility.liver_over",
        "Bilirubin: 42.6 µmol/L = 2.51 × ULN — more than 2.5 × ULN excludes (criterion E9)",
        "Bilirubine : 42,6 µmol/L = 2,51 × LSN — au-delà de 2,5 × LSN, exclusion (critère E9)",
    ),
    (
        "E11",
        {"history__brain_metastases": {"present": True, "treated": False}},
        False,
        "eligibility.untreated_brain_metastases",
        "untreated brain metastases",
        "métastases cérébrales non traitées",
    ),
]


@pytest.mark.parametrize(("cid", "changes", "passes", "key", "english", "french"), CASES)
def test_each_reason_in_english_and_french(
    modified: Any,
    cid: str,
    changes: dict[str, Any],
    passes: bool,
    key: str,
    english: str,
    french: str,
) -> None:
    c = crit(modified(**changes), cid)
    assert c.passes is passes
    assert c.message is not None and key in keys(c.message)
    assert english in said(c, "en") and english in c.reason  # ``reason`` is the English
    assert french in said(c, "fr")
    assert "labs." not in said(c, "fr") + c.reason and "10^9" not in said(c, "fr")


def test_a_missing_input_is_named_by_its_label_and_kept_for_highlighting(modified: Any) -> None:
    data = modified(labs__alt={"value": 30, "unit": "U/L"}, ecog=None)
    e9, i7 = crit(data, "E9"), crit(data, "I7")
    assert "manquant : ALAT (limite supérieure de la normale)" in said(e9, "fr")
    assert "missing: ALT (upper limit of normal)" in said(e9, "en")
    assert e9.message is not None and "labs.alt.uln" in e9.message.fields()
    assert said(i7, "fr") == "manquant : Indice de performance ECOG"
    assert i7.message is not None and i7.message.fields() == ("ecog",)


def test_the_stored_reason_renders_in_the_readers_language(modified: Any) -> None:
    c = crit(modified(labs__platelets={"value": 79999, "unit": "/mm3"}), "I11")
    stored = json.loads(json.dumps(c.as_dict()))  # as the screening keeps it
    with use_locale("fr"):
        shown = render_stored(stored["message"]).replace("\u202f", " ")
        assert "Plaquettes : 79 999 /mm³ — il faut au moins 80 000 /mm³ (critère I11)" in shown
        assert "(plus de 8 g/dL) ; Polynucléaires" in shown
    with use_locale("en"):
        assert render_stored(stored["message"]) == c.reason
        assert render_stored(None, "stored before keys") == "stored before keys"
