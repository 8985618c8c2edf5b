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
    # the trial's operations (accounts, centres, locks, queries, randomization)
    "name": N_("Name"),
    "email": N_("E-mail address"),
    "role": N_("Role"),
    "centre": N_("Centre"),
    "opened": N_("Opening date"),
    "printed_name": N_("Printed name"),
    "meaning": N_("Meaning of the signature"),
    "field": N_("Field"),
    "form": N_("Form"),
    "item": N_("Field"),
    "record_id": N_("Record"),
    "record": N_("Record"),
    "visit": N_("Visit"),
    "answer": N_("Answer"),
    "correct": N_("Corrected value"),
    "scope": N_("Scope"),
    "target": N_("Target"),
    "table": N_("Form"),
    "edit": N_("Change"),
    "arm": N_("Arm"),
    "method": N_("Randomization method"),
    "block_sizes": N_("Block sizes"),
    "per_stratum": N_("Slots per stratum"),
    "seed": N_("Seed"),
    "request_id": N_("Request ID"),
    "performed_at": N_("Performed at"),
    "randomized_at": N_("Randomized at"),
    "body": N_("Request"),
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
    # the trial's operations: the store's limits (reluth.db.session), accounts, centres, locks,
    # queries, randomization and the files the CLI reads
    "text_too_long": N_("{field}: {length} characters — at most {limit}"),
    "text_too_short": N_("{field}: too short ({length} characters) — at least {limit}"),
    "control_character": N_(
        "{field}: contains the control character {character} — type printable text"
    ),
    "not_finite": N_("{field}: {value} is not a finite number"),
    "too_large": N_("{field}: {value} is too large — at most {limit} digits"),
    "empty_list": N_("{field}: a non-empty list is expected"),
    "printable_text": N_("{field}: 1 to {limit} printable characters"),
    # the saved data named in ``message`` (logs, --json); people read it on its own form
    "reason_required": N_(
        "{field}: a reason is required to change saved data — a non-empty explanation, e.g. "
        "“transcription error corrected from source”"
    ),
    "reason_required_for_change": N_(
        "{field}: a reason is required to change or delete existing data — a non-empty "
        "explanation, e.g. “transcription error corrected from source”"
    ),
    "reason_missing": N_("{field}: a reason is required (1 to {limit} characters)"),
    "reason_not_storable": N_("{field}: too long or not printable (1 to {limit} characters)"),
    "nothing_to_change": N_("{field}: nothing to change: the record already holds these values"),
    "moment_in_future": N_("{field}: {value} is in the future"),
    "username_not_allowed": N_(
        "{field}: “{value}” is not allowed — 2 to 80 characters among a-z 0-9 . _ -, lower case"
    ),
    "not_an_email": N_("{field}: “{value}” — an address like name@hospital.fr"),
    "unknown_centre": N_("{field}: no centre “{value}” — an existing centre code"),
    "not_a_centre_code": N_("{field}: “{value}” is not a centre code — C followed by 2 digits"),
    "not_assigned_to_centre": N_("{field}: {user} is not assigned to {centre} — their centre"),
    "unknown_visit": N_("{field}: unknown visit “{value}” — a visit code of the schedule"),
    "not_a_record_id": N_("{field}: “{value}” is not a record id — a positive integer"),
    "not_a_registered_form": N_("{field}: “{value}” is not a registered form ({accepted})"),
    "not_a_form_table": N_("{field}: “{value}” is not a form table ({accepted})"),
    "not_a_form_item": N_(
        "{field}: “{value}” does not name a form instance and field — form, record_id and "
        "field (e.g. “lab 12 value”)"
    ),
    "not_a_pair": N_("{field}: “{value}” is not NAME=VALUE (e.g. value=45000)"),
    "form_without_resource": N_("{field}: {value} has no policy resource"),
    "query_on_visit_form": N_(
        "{field}: query {query} is on a form at a visit, not on a saved value — answer it in "
        "words, then enter the form"
    ),
    "unknown_table": N_(
        "{field}: unknown table “{value}” — TABLE:ID or a patient ID such as C07-0012"
    ),
    "not_an_account_table": N_("{field}: {value} is not an account table ({accepted})"),
    "not_block_sizes": N_("{field}: “{value}” — comma-separated even sizes, e.g. 2,4"),
    "block_not_balanced": N_(
        "{field}: a block of {value} cannot hold a 1:1 allocation — positive multiples of {arms}"
    ),
    "unequal_allocation": N_(
        "{field}: the protocol allocates {value}; both methods allocate equally"
    ),
    "not_a_request_id": N_("{field}: “{value}” — 1 to 80 printable characters"),
    "not_a_series_uid": N_("{field}: “{value}” — the series UID of a stored RTSTRUCT/SEG"),
    "file_not_found": N_("{field}: file not found — an existing JSON file"),
    "file_unreadable": N_("{field}: the file cannot be read — a UTF-8 JSON file"),
    "malformed_json": N_("{field}: malformed JSON at line {line} column {column}"),
    "malformed_yaml": N_("{field}: malformed YAML at line {line}"),
    "forms_of_another_protocol": N_(
        "{field}: written for {written}, the protocol is {protocol} — the forms file "
        "versioned with the protocol"
    ),
    "key_too_short": N_(
        "{field}: the key holds {length} bytes — at least {limit} bytes of secret (e.g. "
        "`head -c 48 /dev/urandom | base64 > FILE`)"
    ),
    "not_a_database_url": N_(
        "{field}: not a database URL: “{value}” — sqlite:///PATH or postgresql+psycopg://..."
    ),
    "not_an_smtp_url": N_("{field}: “{value}” — smtp://user:password@host:587 or smtps://…"),
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
