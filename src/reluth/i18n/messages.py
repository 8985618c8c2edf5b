"""Errors as people read them, in their language: built from the error's stable ``code`` and its
``params`` (never by translating formatted English), with the field's label instead of its
internal path ("Plaquettes", not ``labs.platelets.value``). The machine keeps ``code`` and
``field`` (the JSON API returns both, untranslated, beside the translated ``message``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
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
    "administered_on": N_("Administration date"),
    "sample_date": N_("Sample date"),
    "end_date": N_("End date"),
    "death_date": N_("Date of death"),
    "withdrawal_date": N_("Withdrawal date"),
    "test_date": N_("Test date"),
    "start_date": N_("Start date"),
    "stop_date": N_("Stop date"),
    "randomization_date": N_("Randomization date"),
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
    "expires_in_days": N_("Expires after (days)"),
    # the SAE report and the sponsor's assessment (reluth.safety.sae)
    "seriousness": N_("Seriousness criteria (ICH E2A)"),
    "narrative": N_("Narrative"),
    # no treatment name: a blinded reader's refused request names this field too
    "action_taken": N_("Action taken with the study drug"),
    "treatment": N_("Treatment of the event"),
    "causality": N_("Causality"),
    "expectedness": N_("Expectedness"),
    "comment": N_("Comment"),
    "reference": N_("Submission reference"),
    "dose": N_("Dose"),
    "items": N_("Answers"),
    "baseline_items": N_("Baseline answers"),
    # the clinical services' refusals (treatment, pregnancy testing, coding, RECIST, strata)
    "cycle": N_("Cycle"),
    "lot": N_("Batch number"),
    "visit_code": N_("Visit"),
    "childbearing_potential": N_("Childbearing potential"),
    "pregnancy_test": N_("Pregnancy test"),
    "instrument": N_("Questionnaire"),
    "meddra_term": N_("MedDRA term"),
    "llt_code": N_("MedDRA LLT code"),
    "pt_code": N_("MedDRA PT code"),
    "soc": N_("System organ class"),
    "new_lesions": N_("New lesions"),
    "lymph_node": N_("Lymph node"),
    "stratum": N_("Stratum"),
}

#: Labels of the patient file's inputs by their whole path (the eligibility engine names them
#: when one is missing); looked up before the last part of the path.
PATH_LABELS: dict[str, str] = {
    "age": N_("Age"),
    "histology.primary_site": N_("Primary tumour site"),
    "histology.grade": N_("Tumour grade"),
    "histology.differentiation": N_("Differentiation"),
    "histology.tumour_type": N_("Tumour type (NET/NEC)"),
    "first_prrt.cycles": N_("Cycles of first PRRT"),
    "first_prrt.disease_control_months": N_("Disease control after first PRRT (months)"),
    "first_prrt.best_response": N_("Best response to first PRRT"),
    "first_prrt.g4_hematotoxicity": N_("Grade 4 haematotoxicity during first PRRT"),
    "first_prrt.g4_nephrotoxicity": N_("Grade 4 nephrotoxicity during first PRRT"),
    "progression.radiological": N_("Radiological progression"),
    "progression.clinical": N_("Clinical progression"),
    "progression.biological": N_("Biological progression"),
    "second_prrt.tumour_board_decision": N_("Tumour board decision to retreat"),
    "second_prrt.cycles_completed": N_("Cycles of second PRRT completed"),
    "second_prrt.radiological_progression": N_("Progression at the pre-randomization assessment"),
    "life_expectancy_months": N_("Life expectancy (months)"),
    "sstr_imaging.date": N_("SSTR imaging date"),
    "sstr_imaging.positive_lesion_fraction": N_("Fraction of SSTR-positive lesions"),
    "lesions": N_("Lesions"),
    "consent": N_("Informed consent"),
    "unresolved_adverse_events": N_("Unresolved adverse events"),
    "history.ebrt_marrow_fraction": N_(
        "Bone marrow fraction treated by external beam radiotherapy"
    ),
    "history.nephrotic_syndrome": N_("Nephrotic syndrome"),
    "history.uncontrolled_concomitant_disease": N_("Uncontrolled concomitant disease"),
    "history.brain_metastases": N_("Brain metastases"),
    "history.brain_metastases.treated": N_("Brain metastases treated"),
    "history.brain_metastases.stable_since": N_("Brain metastases stable since"),
    "history.brain_metastases.stability_imaging_documented": N_(
        "Brain metastases stability imaging documented"
    ),
    "history.other_cancers": N_("Other cancers"),
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
    # pydantic's checks (reluth.errors.PYDANTIC_CODES)
    "too_long": N_("{field}: at most {limit} characters"),
    "too_many": N_("{field}: at most {limit} items"),
    "too_many_digits": N_("{field}: {value} has too many digits"),
    "not_an_integer": N_("{field}: “{value}” is not a whole number"),
    "not_a_moment": N_("{field}: “{value}” is not a date and time"),
    "greater_than": N_("{field}: {value} — it must be greater than {limit}"),
    "at_least": N_("{field}: {value} — it must be at least {limit}"),
    "less_than": N_("{field}: {value} — it must be less than {limit}"),
    "at_most": N_("{field}: {value} — it must be at most {limit}"),
    "not_a_field": N_("{field}: not a field that can be given here"),
    "not_text": N_("{field}: a text is expected"),
    "not_a_list": N_("{field}: a list is expected"),
    "not_an_object": N_("{field}: an object is expected"),
    "not_valid": N_("{field}: “{value}” is not accepted"),
    "not_json": N_("{field}: the request is not valid JSON"),
    # the clinical forms' own checks (reluth.clinical.forms)
    "not_an_atc_code": N_(
        "{field}: “{value}” is not an ATC code (accepted: A, A02, A02B, A02BC or A02BC01)"
    ),
    "before_start_date": N_("{field}: {value} is before the start date ({first})"),
}


#: A reference limit of a laboratory value (``labs.alt.uln``), named after its analyte.
LIMIT_LABELS: dict[str, str] = {
    "uln": N_("{field} (upper limit of normal)"),
    "lln": N_("{field} (lower limit of normal)"),
}


def field_label(path: str) -> str:
    """The label of a field path (``labs.platelets.value`` -> "Platelets"), translated."""
    parts = [p for p in re.split(r"[.\[\]]", path) if p and not p.isdigit()]
    whole = ".".join(parts)
    if whole in PATH_LABELS:
        return gettext(PATH_LABELS[whole])
    if len(parts) > 1 and parts[-1] in LIMIT_LABELS:
        return gettext(LIMIT_LABELS[parts[-1]]).format(field=field_label(".".join(parts[:-1])))
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


def describe(exc: ReluthError, labels: Mapping[str, str] | None = None) -> str:
    """The message of ``exc`` for a person, in the current language; ``labels`` (a form's own
    field labels from the registry, by field name) name its fields before the general ones."""
    if isinstance(exc, ValidationErrors):
        return "; ".join(describe(e, labels) for e in exc.errors)
    render = getattr(exc.params.get("reason"), "render", None)
    if callable(render):  # a reluth.i18n.reasons.Reason
        return str(render())
    template = TEMPLATES.get(exc.code)
    if isinstance(exc, ValidationError):
        label = (labels or {}).get(exc.field) or field_label(exc.field)
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
