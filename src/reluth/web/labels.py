"""The registry's and the protocol's texts in the reader's language, for the templates: form
and field labels and code labels from ``forms.yaml``, the eligibility criteria's wording from
the protocol file, and the planned visits' names (the schedule names them in English; a page
shows the same name from the catalogue, by the visit's code)."""

from __future__ import annotations

import re
from typing import Any

from reluth.core.trial import Trial
from reluth.i18n import N_, get_locale, gettext

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


def install(templates: Any, trial: Trial) -> None:
    """The template helpers: ``form_label``, ``field_label`` (``fallback`` when the form or
    field is not registered), ``code_label`` (the label of a code a field stores, the code
    itself when its list gives none), ``criterion_text`` and ``visit_name``."""
    registry = trial.forms

    def form_label(form_id: str, fallback: str = "") -> str:
        if form_id not in registry.form_ids:
            return fallback or form_id
        return registry.form(form_id).label_in(get_locale())

    def field_label(form_id: str, name: str, fallback: str = "") -> str:
        if form_id in registry.form_ids:
            form = registry.form(form_id)
            if name in form.field_names:
                return form.field(name).label_in(get_locale())
        return fallback or name

    def code_label(form_id: str, name: str, code: Any) -> str:
        text = "" if code is None else str(getattr(code, "value", code))
        if form_id in registry.form_ids and name in registry.form(form_id).field_names:
            codes = registry.form(form_id).field(name).codes
            if codes is not None:
                return registry.code_label(codes, text, get_locale())
        return text.replace("_", " ")

    def criterion_text(criterion: str, fallback: str = "") -> str:
        eligibility = trial.protocol.eligibility
        if criterion not in eligibility.criteria.ids:
            return fallback or criterion
        return eligibility.text(criterion, get_locale())

    templates.env.globals.update(
        form_label=form_label,
        field_label=field_label,
        code_label=code_label,
        criterion_text=criterion_text,
        visit_name=visit_name,
    )
