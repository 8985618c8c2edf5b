"""The registry's and the protocol's texts in the reader's language, for the templates: form
and field labels and code labels from ``forms.yaml``, the eligibility criteria's wording from
the protocol file, and the planned visits' names (the schedule names them in English; a page
shows the same name from the catalogue, by the visit's code:
:func:`reluth.i18n.vocabulary.visit_name`, which the e-mails use too)."""

from __future__ import annotations

from typing import Any

from reluth.core.trial import Trial
from reluth.i18n import get_locale, gettext
from reluth.i18n.vocabulary import visit_name


def install(templates: Any, trial: Trial) -> None:
    """The template helpers: ``form_label``, ``field_label`` (``fallback`` when the form or
    field is not registered), ``code_label`` (the label of a code a field stores, the code
    itself when its list gives none), ``criterion_text``, ``visit_name`` and ``sdv_reason``."""
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

    def sdv_reason(requirement: str) -> str:
        """Why a record needs SDV, as the monitoring plan words it (``sampled``: drawn)."""
        for req in registry.sdv.required:
            if req.label == requirement:
                return req.label_in(get_locale())
        return gettext("drawn in the sample") if requirement == "sampled" else requirement

    def query_question(q: Any) -> str:
        """A data query's question in the reader's language (a system query's from its edit
        check's message; a person's as asked)."""
        return registry.question_in(q.edit_check, q.question, get_locale())

    templates.env.globals.update(
        query_question=query_question,
        sdv_reason=sdv_reason,
        form_label=form_label,
        field_label=field_label,
        code_label=code_label,
        criterion_text=criterion_text,
        visit_name=visit_name,
    )
