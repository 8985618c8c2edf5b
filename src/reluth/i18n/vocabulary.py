"""Clinical and trial vocabulary shown to people, by stored code: the codes stay as they are in
the database, the API and the datasets; only their labels are translated.

French terms are those French sites use: RECIST 1.1 responses as French oncology reports
write them (réponse complète, réponse partielle, maladie stable, progression); the CTCAE v5.0
general grade definitions (léger, modéré, sévère, menace du pronostic vital, décès). The
per-term CTCAE wording stays as the protocol file gives it (no French term table is shipped)."""

from __future__ import annotations

import re

from reluth.i18n import N_, gettext

ROLES: dict[str, str] = {
    "investigator": N_("investigator"),
    "research_nurse": N_("research nurse"),
    "monitor": N_("monitor"),
    "data_manager": N_("data manager"),
    "central_reviewer": N_("central reviewer"),
    "medical_physicist": N_("medical physicist"),
    "pharmacovigilance": N_("pharmacovigilance"),
    "statistician": N_("statistician"),
    "admin": N_("administrator"),
}

#: RECIST 1.1 (Eisenhauer 2009, §4.3) responses by code.
RESPONSES: dict[str, str] = {
    "CR": N_("complete response"),
    "PR": N_("partial response"),
    "SD": N_("stable disease"),
    "PD": N_("progressive disease"),
    "NE": N_("not evaluable"),
    "NON-CR/NON-PD": N_("non-CR/non-PD"),
    "NON_CR_NON_PD": N_("non-CR/non-PD"),
    "NA": N_("not applicable"),
}

#: CTCAE v5.0 general grade definitions (NCI 2017, "Grades").
CTCAE_GRADES: dict[int, str] = {
    1: N_("grade 1 — mild"),
    2: N_("grade 2 — moderate"),
    3: N_("grade 3 — severe"),
    4: N_("grade 4 — life-threatening"),
    5: N_("grade 5 — death"),
}

AE_OUTCOMES: dict[str, str] = {
    "recovered": N_("recovered"),
    "recovering": N_("recovering"),
    "not_recovered": N_("not recovered"),
    "recovered_with_sequelae": N_("recovered with sequelae"),
    "fatal": N_("fatal"),
    "unknown": N_("unknown"),
}

#: ICH E2A II.B seriousness criteria by code, short (an e-mail's, a list's words; the CIOMS-like
#: report prints the full wording of reluth.safety.seriousness.CRITERIA).
SAE_CRITERIA: dict[str, str] = {
    "death": N_("death"),
    "life_threatening": N_("life-threatening"),
    "hospitalisation": N_("hospitalisation or prolongation of hospitalisation"),
    "disability": N_("persistent or significant disability or incapacity"),
    "congenital_anomaly": N_("congenital anomaly or birth defect"),
    "medically_important": N_("other important medical event"),
}

#: The sponsor's assessment of an SAE (reluth.safety.seriousness.CAUSALITY, EXPECTEDNESS).
SAE_CAUSALITY: dict[str, str] = {"related": N_("related"), "not_related": N_("not related")}
EXPECTEDNESS: dict[str, str] = {"expected": N_("expected"), "unexpected": N_("unexpected")}

RELATEDNESS: dict[str, str] = {
    "not_related": N_("not related"),
    "unlikely": N_("unlikely"),
    "possible": N_("possible"),
    "probable": N_("probable"),
    "definite": N_("definite"),
}

#: A follow-up's new-lesion call (RECIST 1.1 §4.3.2).
NEW_LESIONS: dict[str, str] = {"yes": N_("yes"), "no": N_("no"), "equivocal": N_("equivocal")}

LESION_KINDS: dict[str, str] = {
    "target": N_("target"),
    "non_target": N_("non-target"),
    "new": N_("new"),
}

LESION_STATUSES: dict[str, str] = {
    "present": N_("present"),
    "absent": N_("absent"),
    "too_small": N_("too small to measure"),
    "unequivocal_progression": N_("unequivocal progression"),
    "not_evaluated": N_("not evaluated"),
}

ELIGIBILITY: dict[str, str] = {
    "eligible": N_("eligible"),
    "not_eligible": N_("not eligible"),
    "incomplete": N_("incomplete"),
    "pass": N_("met"),
    "fail": N_("not met"),
    # a criterion's own result, as the engine stores it (reluth.protocol.eligibility.Result)
    "met": N_("met"),
    "not_met": N_("not met"),
    "unknown": N_("unknown"),
}

#: A patient's place in the trial (the patient list) and a visit's window status.
PATIENT_STATUSES: dict[str, str] = {
    "registered": N_("registered"),
    "included": N_("included"),
    "randomized": N_("randomized"),
    "screened: eligible": N_("screened: eligible"),
    "screened: not_eligible": N_("screened: not eligible"),
    "screened: incomplete": N_("screened: incomplete"),
}

VISIT_STATUSES: dict[str, str] = {
    "in_window": N_("in window"),
    "early": N_("early"),
    "late": N_("late"),
    "missed": N_("missed"),
    "due": N_("due"),
    "upcoming": N_("upcoming"),
}

#: A planned visit's kind (reluth.protocol.schedule.VisitKind).
VISIT_KINDS: dict[str, str] = {
    "treatment": N_("treatment"),
    "tumour_assessment": N_("tumour assessment"),
    "follow_up": N_("follow-up"),
    "laboratory": N_("laboratory"),
    "qol": N_("quality of life"),
    "end_of_study": N_("end of study"),
}

#: A form's status at a visit in the status grid (reluth.forms.status.FormStatus).
FORM_STATUSES: dict[str, str] = {
    "not_started": N_("not started"),
    "incomplete": N_("incomplete"),
    "complete": N_("complete"),
    "queried": N_("queried"),
    "missing": N_("missing (coded)"),
    "overdue": N_("overdue"),
    "not_expected": N_("not expected"),
    "sdv_done": N_("SDV done"),
    "signed": N_("signed"),
    "locked": N_("locked"),
}

#: What an audit row records (reluth.db.audit; ``casebook``: a casebook handed out).
AUDIT_ACTIONS: dict[str, str] = {
    "insert": N_("created"),
    "update": N_("changed"),
    "delete": N_("deleted"),
    "casebook": N_("casebook printed"),
}

#: A data query's state.
QUERY_STATUSES: dict[str, str] = {
    "open": N_("open"),
    "answered": N_("answered"),
    "closed": N_("closed"),
}

#: Laboratory tests by analyte code (French names as French laboratory reports write them).
LAB_TESTS: dict[str, str] = {
    "hemoglobin": N_("haemoglobin"),
    "platelets": N_("platelets"),
    "neutrophils": N_("neutrophils"),
    "lymphocytes": N_("lymphocytes"),
    "leukocytes": N_("white blood cells"),
    "wbc": N_("white blood cells"),
    "creatinine": N_("creatinine"),
    "egfr": N_("eGFR"),
    "alt": N_("ALT"),
    "ast": N_("AST"),
    "bilirubin": N_("bilirubin"),
    "alp": N_("alkaline phosphatase"),
    "albumin": N_("albumin"),
}

SEXES: dict[str, str] = {
    "female": N_("female"),
    "male": N_("male"),
    "F": N_("female"),
    "M": N_("male"),
}

#: A volume of interest's kind in the dosimetry (reluth.dosimetry.vois) and the dose
#: quantities its limits are set on (reluth.dosimetry.cumulative, limits.yaml).
VOI_KINDS: dict[str, str] = {
    "organ": N_("organ"),
    "tumour": N_("tumour"),
    "remainder": N_("remainder of body"),
    "marrow": N_("red marrow"),
}
DOSE_QUANTITIES: dict[str, str] = {
    "absorbed_dose_gy": N_("absorbed dose"),
    "bed_gy": N_("biologically effective dose (BED)"),
    "absorbed_dose": N_("absorbed dose"),
    "bed": N_("biologically effective dose (BED)"),
}
#: Whom a dose limit applies to (reluth.dosimetry data/limits.yaml ``applies_to``).
LIMIT_APPLIES: dict[str, str] = {
    "all": N_("all patients"),
    "risk_factors": N_("patients with renal risk factors"),
    "no_risk_factors": N_("patients without renal risk factors"),
}

#: The planned visits' names by their code and English name (reluth.protocol.schedule writes
#: the same English; a QoL visit of the weekly schedule and one of follow-up share a code form).
VISIT_NAMES: tuple[tuple[re.Pattern[str], re.Pattern[str], str], ...] = tuple(
    (re.compile(code), re.compile(english), template)
    for code, english, template in (
        (r"^C(?P<n>\d+)$", "", N_("Cycle {n}: {detail}")),
        (r"^TA-W0*(?P<week>\d+)$", "", N_("Tumour assessment week {week} (RECIST 1.1)")),
        (r"^FU-(?P<tag>[WM]\d+)$", "", N_("Follow-up {tag} (tumour assessment, survival)")),
        (r"^LAB-W0*(?P<week>\d+)$", "", N_("Laboratory (CBC, renal, liver) week {week}")),
        (r"^QOL-W0*(?P<week>\d+)$", r" week \d+$", N_("QLQ-C30 + GI.NET21 week {week}")),
        (r"^QOL-(?P<tag>[WM]\d+)$", "", N_("QLQ-C30 + GI.NET21 {tag}")),
        (r"^EOS$", "", N_("End of study (month {month}): tumour assessment, survival, QoL")),
    )
)
_PRIMARY = re.compile(r" - month (?P<month>\d+) primary endpoint$")
_MONTH = re.compile(r"\(month (?P<month>\d+)\)")


def visit_name(code: str, english: str) -> str:
    """The name of planned visit ``code`` in the reader's language (``english``, the
    schedule's own name, gives the details the code does not: a cycle's activity and product,
    the primary endpoint's month); a visit of no known kind keeps its English name."""
    for pattern, name, template in VISIT_NAMES:
        found = pattern.match(code)
        if found is None or not name.search(english):
            continue
        params = dict(found.groupdict())
        params["detail"] = english.partition(": ")[2]
        month = _MONTH.search(english)
        params["month"] = month["month"] if month else ""
        text = gettext(template).format(**params)
        primary = _PRIMARY.search(english)
        if primary:
            text += gettext(" - month {month} primary endpoint").format(month=primary["month"])
        return text
    return english


#: The randomized arms by code (the protocol file's ``arms``): « bras expérimental », « bras
#: contrôle » as French protocols write them.
ARMS: dict[str, str] = {
    "experimental": N_("experimental"),
    "control": N_("control"),
}

#: The EORTC QLQ-C30 and QLQ-GI.NET21 scale names (the scoring manuals' names, not the
#: licensed item wording), by the English name the instrument files give.
QOL_SCALES: dict[str, str] = {
    "Global health status/QoL": N_("Global health status/QoL"),
    "Physical functioning": N_("Physical functioning"),
    "Role functioning": N_("Role functioning"),
    "Emotional functioning": N_("Emotional functioning"),
    "Cognitive functioning": N_("Cognitive functioning"),
    "Social functioning": N_("Social functioning"),
    "Fatigue": N_("Fatigue"),
    "Nausea and vomiting": N_("Nausea and vomiting"),
    "Pain": N_("Pain"),
    "Dyspnoea": N_("Dyspnoea"),
    "Insomnia": N_("Insomnia"),
    "Appetite loss": N_("Appetite loss"),
    "Constipation": N_("Constipation"),
    "Diarrhoea": N_("Diarrhoea"),
    "Financial difficulties": N_("Financial difficulties"),
    "Endocrine symptoms": N_("Endocrine symptoms"),
    "GI symptoms": N_("GI symptoms"),
    "Treatment-related symptoms": N_("Treatment-related symptoms"),
    "Weight gain": N_("Weight gain"),
    "Social function": N_("Social function"),
    "Disease-related worries": N_("Disease-related worries"),
    "Muscle/bone pain": N_("Muscle/bone pain"),
    "Sexual function": N_("Sexual function"),
    "Information/communication": N_("Information/communication"),
    "Body image": N_("Body image"),
}


_TABLES: dict[str, dict[str, str]] = {
    "patient_status": PATIENT_STATUSES,
    "visit_status": VISIT_STATUSES,
    "visit_kind": VISIT_KINDS,
    "form_status": FORM_STATUSES,
    "query_status": QUERY_STATUSES,
    "audit_action": AUDIT_ACTIONS,
    "sex": SEXES,
    "lab": LAB_TESTS,
    "role": ROLES,
    "response": RESPONSES,
    "outcome": AE_OUTCOMES,
    "sae_criterion": SAE_CRITERIA,
    "sae_causality": SAE_CAUSALITY,
    "voi_kind": VOI_KINDS,
    "dose_quantity": DOSE_QUANTITIES,
    "limit_applies": LIMIT_APPLIES,
    "expectedness": EXPECTEDNESS,
    "relatedness": RELATEDNESS,
    "lesion_kind": LESION_KINDS,
    "new_lesions": NEW_LESIONS,
    "lesion_status": LESION_STATUSES,
    "eligibility": ELIGIBILITY,
    "qol_scale": QOL_SCALES,
    "arm": ARMS,
}


def label(table: str, code: object) -> str:
    """The label of ``code`` in ``table``, translated; the code itself when it has none."""
    if table == "grade":
        try:
            return gettext(CTCAE_GRADES[int(str(code))])
        except (KeyError, ValueError):
            return str(code)
    key = getattr(code, "value", code)
    text = _TABLES.get(table, {}).get(str(key))
    return gettext(text) if text else str(key)
