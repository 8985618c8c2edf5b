"""The registry carries its texts in English and French: every form, field label and help text,
every missing-data code and every code of a code list has a French text (a registered form or
field without one fails here), the pages read them in the person's language, and a text
without its English source is refused."""

from __future__ import annotations

import copy

import pytest
import yaml

from reluth.errors import ValidationError
from reluth.forms.registry import DEFAULT_PATH, Registry, load_registry, parse_registry

REGISTRY = load_registry()
RAW = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))


def untranslated(registry: Registry) -> list[str]:
    """Each text of ``registry`` that has no French."""
    missing = []
    for form in registry.forms:
        if "fr" not in form.texts.get("label", {}):
            missing.append(f"{form.id}: label")
        for f in form.fields:
            if "fr" not in f.texts.get("label", {}):
                missing.append(f"{form.id}.{f.name}: label")
            if f.help and "fr" not in f.texts.get("help", {}):
                missing.append(f"{form.id}.{f.name}: help")
    for code in registry.missing_codes:
        if "fr" not in registry.missing_texts.get(code, {}):
            missing.append(f"missing_codes.{code}")
    for list_id, codes in registry.code_lists.items():
        for code in codes:
            if "fr" not in registry.code_texts.get(list_id, {}).get(code, {}):
                missing.append(f"code_lists.{list_id}.{code}")
    return missing


def test_every_registered_text_has_a_french_text() -> None:
    assert untranslated(REGISTRY) == []


def test_french_clinical_vocabulary_as_sites_write_it() -> None:
    response = {
        c: REGISTRY.code_label("recist_response", c, "fr") for c in ("CR", "PR", "SD", "PD")
    }
    assert response == {
        "CR": "réponse complète",
        "PR": "réponse partielle",
        "SD": "maladie stable",
        "PD": "progression",
    }
    assert REGISTRY.code_label("overall_response", "PD", "fr") == "progression"
    lab = REGISTRY.form("lab")
    assert lab.label_in("fr") == "Résultat biologique"
    assert lab.field("uln").label_in("fr") == "Limite supérieure de la normale ({canonical_unit})"
    assert REGISTRY.missing_label("ND", "fr") == "non fait"


def test_the_language_falls_back_to_english_and_keeps_the_record_values() -> None:
    value = REGISTRY.form("lab").field("value")

    class Row:
        unit = "g/dL"

    assert value.label == "Value ({unit})"  # the English source (CLI, exports)
    assert value.label_for(Row(), "fr") == "Valeur (g/dL)"
    assert value.label_for(Row()) == value.label_for(Row(), "de") == "Value (g/dL)"
    assert REGISTRY.code_label("sex", "F", "en") == "female"
    assert REGISTRY.code_label("sex", "X", "fr") == "X"  # a code without a label as it is


def test_the_stored_codes_do_not_change_with_their_labels() -> None:
    assert REGISTRY.codes("yes_no") == ("yes", "no")
    assert REGISTRY.codes("ae_grade") == ("1", "2", "3", "4", "5")
    assert REGISTRY.codes("overall_response")[-1] == "NON-CR/NON-PD"


def test_a_text_without_its_english_source_is_refused() -> None:
    data = copy.deepcopy(RAW)
    data["forms"][0]["fields"][0]["label"] = {"fr": "Numéro patient"}
    with pytest.raises(ValidationError, match="needs an 'en' text"):
        parse_registry(data)


def test_a_text_without_french_is_found() -> None:
    data = copy.deepcopy(RAW)
    data["forms"][0]["fields"][1]["label"] = "Sex"  # English only
    data["code_lists"]["modality"] = ["CT", "MRI"]  # codes without labels
    registry = parse_registry(data)
    assert registry.form("registration").field("sex").label_in("fr") == "Sex"  # falls back
    assert untranslated(registry) == [
        "registration.sex: label",
        "code_lists.modality.CT",
        "code_lists.modality.MRI",
    ]


def test_the_french_pages_show_the_registry_in_french() -> None:
    """The correction form is laid out from the registry in the reader's language."""
    from reluth.forms.corrections import _input
    from reluth.i18n import use_locale

    field = REGISTRY.form("adverse_event").field("outcome")
    with use_locale("fr"):
        shown = _input(REGISTRY, field, None)
    assert shown.label == "Évolution"
    assert ("recovered_with_sequelae", "résolu avec séquelles") in shown.options
    with use_locale("en"):
        assert _input(REGISTRY, field, None).label == "Outcome"


def test_an_edit_check_question_reads_in_the_reader_s_language() -> None:
    """A system query stores its check's English; it is shown in French with the same values
    written the French way, in English as stored, and a question that is not the check's
    English (edited since) as it is."""
    registry = load_registry()
    check = next(c for c in registry.edit_checks if c.id == "platelets_before_cycle")
    stored = check.message.format_map(
        {
            "cycle": "3",
            "administered_on": "2025-03-05",
            "lab_value": "74.5",
            "lab_date": "2025-03-01",
        }
    )
    french = registry.question_in(check.id, stored, "fr")
    assert french.startswith("Le cycle 3 a été administré le 05/03/2025")
    assert "74,5 x 10^9/L le 01/03/2025" in french
    assert registry.question_in(check.id, stored, "en") == stored
    assert registry.question_in(check.id, stored + " (edited)", "fr") == stored + " (edited)"
    assert registry.question_in(None, "Is this right?", "fr") == "Is this right?"
    for c in registry.edit_checks:
        assert c.message_in("fr") != c.message, c.id


def test_an_edit_check_message_with_other_placeholders_is_refused() -> None:
    with DEFAULT_PATH.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    data = copy.deepcopy(data)
    data["edit_checks"][0]["message"]["fr"] = "Le cycle {numero} est à vérifier."
    with pytest.raises((ValueError, ValidationError)) as refused:
        parse_registry(data)
    assert "other placeholders than in English" in str(refused.value)
