"""Errors as people read them, in their language: built from the error's stable ``code`` and its
``params`` (never by translating formatted English), with the field's label instead of its
internal path ("Plaquettes", not ``labs.platelets.value``). The machine keeps ``code`` and
``field`` (the JSON API returns both, untranslated, beside the translated ``message``)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from reluth.errors import ReluthError, ValidationError, ValidationErrors
from reluth.i18n import DEFAULT, N_, format_day, format_number, get_locale, gettext

#: Labels of the fields people fill in, by the last part of the field path (``labs.x.value``
#: is labelled by ``x``). A path with no label here is shown as it is.
FIELD_LABELS: dict[str, str] = {
    "platelets": N_("Platelets"),
    "hemoglobin": N_("Haemoglobin"),
    "neutrophils": N_("Neutrophils"),
    "wbc": N_("White blood cells"),
    "lymphocytes": N_("Lymphocytes"),
    "creatinine": N_("Creatinine"),
    "bilirubin": N_("Bilirubin"),
    "albumin": N_("Albumin"),
    "alt": N_("ALT"),
    "ast": N_("AST"),
    "alp": N_("Alkaline phosphatase"),
    "egfr": N_("eGFR"),
    "date": N_("Date"),
    "birth_year": N_("Year of birth"),
    "sex": N_("Sex"),
    "patient_id": N_("Patient ID"),
    "consent_date": N_("Consent date"),
    "inclusion_date": N_("Inclusion date"),
    "screening_date": N_("Screening date"),
    "onset_date": N_("Onset date"),
    "resolution_date": N_("Resolution date"),
    "awareness_date": N_("Awareness date"),
    "awareness_time": N_("Awareness time"),
    "assessment_date": N_("Assessment date"),
    "completed_on": N_("Completion date"),
    "administration_date": N_("Administration date"),
    "visit_date": N_("Visit date"),
    "term": N_("Adverse event term"),
    "grade": N_("Grade"),
    "outcome": N_("Outcome"),
    "serious": N_("Serious"),
    "relatedness": N_("Relationship to treatment"),
    "description": N_("Description"),
    "diameter_mm": N_("Diameter (mm)"),
    "lesion_id": N_("Lesion"),
    "organ": N_("Organ"),
    "kind": N_("Lesion type"),
    "status": N_("Status"),
    "overall_response": N_("Overall response"),
    "modality": N_("Imaging modality"),
    "timepoint": N_("Time point"),
    "ecog": N_("ECOG performance status"),
    "activity_gbq": N_("Administered activity (GBq)"),
    "username": N_("Username"),
    "password": N_("Password"),
    "current_password": N_("Current password"),
    "new_password": N_("New password"),
    "language": N_("Language"),
    "reason": N_("Reason"),
}

#: One template per error code; ``{field}`` is the field's label.
TEMPLATES: dict[str, str] = {
    "not_a_number": N_(
        "{field}: “{value}” is not a number — type a decimal number (comma or point)"
    ),
    "out_of_range": N_("{field}: {value} — it must be between {lo} and {hi}"),
    "not_a_date": N_("{field}: “{value}” is not a date — type it as {placeholder}"),
    "date_in_future": N_("{field}: {value} is in the future (today is {today})"),
    "not_a_time": N_("{field}: “{value}” is not a time — type it as HH:MM"),
    "not_an_integer_in_range": N_("{field}: “{value}” — type a whole number from {lo} to {hi}"),
    "not_accepted": N_("{field}: “{value}” is not one of the accepted answers ({accepted})"),
    "required": N_("{field}: this field is required"),
    "not_a_boolean": N_("{field}: answer yes or no"),
}


def field_label(path: str) -> str:
    """The label of a field path (``labs.platelets.value`` -> "Platelets"), translated."""
    parts = [p for p in re.split(r"[.\[\]]", path) if p and not p.isdigit()]
    for part in reversed(parts):
        if part in FIELD_LABELS:
            return gettext(FIELD_LABELS[part])
        if part not in {"value", "unit", "lln", "uln"}:
            break
    return path


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, int | float | Decimal):
        return format_number(value)
    if isinstance(value, dt.date):
        return format_day(value)
    return "" if value is None else str(value)


def describe(exc: ReluthError) -> str:
    """The message of ``exc`` for a person, in the current language."""
    if isinstance(exc, ValidationErrors):
        return "; ".join(describe(e) for e in exc.errors)
    template = TEMPLATES.get(exc.code)
    if isinstance(exc, ValidationError):
        label = field_label(exc.field)
        if template is not None:
            from reluth.i18n import day_placeholder

            values = {k: _shown(v) for k, v in exc.params.items()}
            values.setdefault("value", "")
            values.setdefault("accepted", exc.accepted or "")
            try:
                return gettext(template).format(
                    field=label, placeholder=day_placeholder(), **values
                )
            except (KeyError, IndexError, ValueError):
                pass
        if get_locale() == DEFAULT:
            return exc.message  # no template yet: the source wording, field path included
        text = gettext(N_("{field}: {problem}")).format(field=label, problem=gettext(exc.problem))
        if exc.accepted:
            accepted = gettext(exc.accepted)  # a marked constant translates; values stay
            text += " " + gettext("(accepted: {accepted})").format(accepted=accepted)
        return text
    return gettext(exc.message)
