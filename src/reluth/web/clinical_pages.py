"""Pages of the clinical forms: ``/patients/{code}/forms/{form_id}`` lists the patient's
records of the form and offers its entry, drawn from the form's one schema
(:mod:`reluth.clinical.forms`); the form's service records it in the audited unit of work. A
rejected form keeps every typed value and shows the message at its field; a saved one says what
was saved. Death and end of study (once per patient) and withdrawals are here too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from reluth.clinical import forms
from reluth.clinical import service as clinical
from reluth.core.context import Ctx
from reluth.errors import NotFound, ReluthError
from reluth.forms.registry import Registry
from reluth.i18n import N_, get_locale, gettext
from reluth.i18n.messages import describe
from reluth.i18n.reasons import refusal
from reluth.patients import service as patients
from reluth.records import views
from reluth.web.deps import READ, WHO, Auth, audited, patient_for
from reluth.web.pages import render
from reluth.web.trial_pages import _remember_form

router = APIRouter(include_in_schema=False)


def _death(ctx: Ctx, code: str, data: dict[str, Any]) -> Any:
    form = forms.parse(forms.DeathForm, data)
    return patients.record_death(ctx, code, form.death_date, form.cause, form.details)


def _end(ctx: Ctx, code: str, data: dict[str, Any]) -> Any:
    form = forms.parse(forms.EndOfStudyForm, data)
    return patients.record_end_of_study(ctx, code, form.end_date, form.reason, form.details)


#: form id -> (schema, the call recording it, the declared service it runs, its listing or None)
PAGES: dict[str, tuple[type[forms.FormSchema], Callable[..., Any], Any, Any]] = {
    **{k: (s, rec, rec, lister) for k, (s, rec, lister) in clinical.CATALOGUE.items()},
    "death": (forms.DeathForm, _death, patients.record_death, None),
    "end_of_study": (forms.EndOfStudyForm, _end, patients.record_end_of_study, None),
    "childbearing": (
        forms.ChildbearingForm,
        clinical.record_childbearing,
        clinical.record_childbearing,
        None,
    ),
}


def form_data(schema: type[forms.FormSchema], posted: dict[str, str]) -> dict[str, Any]:
    """A page's fields as the schema takes them: a blank field is absent, a checkbox is true
    when ticked and false otherwise (the schema converts and refuses the rest)."""
    data: dict[str, Any] = {}
    for field in forms.fields(schema):
        name = field["name"]
        text = posted.get(name, "").strip()
        if field["kind"] == "bool":
            data[name] = text in ("true", "on", "yes")
        elif text:
            data[name] = forms.entered(schema, name, text)
    return data


def labelled(
    registry: Registry, form_id: str, fields: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The schema's fields as the page shows them, in the reader's language: label, help and
    each choice's label from the registry (``forms.yaml``), whose texts are written in every
    language shipped; the codes stay the schema's."""
    form = registry.form(form_id)
    lang = get_locale()
    out = []
    for f in fields:
        defined = form.field(f["name"])
        codes = defined.codes
        out.append(
            f
            | {
                "label": defined.label_in(lang),
                "help": defined.help_in(lang),
                "options": [
                    (c, registry.code_label(codes, c, lang) if codes else c.replace("_", " "))
                    for c in f["choices"]
                ],
            }
        )
    return out


def form_title(registry: Registry, form_id: str) -> str:
    """The form's name in the reader's language, lower-cased as within a sentence."""
    label = registry.form(form_id).label_in(get_locale())
    return label[:1].lower() + label[1:]


def _spec(form_id: str) -> tuple[type[forms.FormSchema], Callable[..., Any], Any, Any]:
    if form_id not in PAGES:
        raise refusal(NotFound, "form_not_found", N_("no form '{form}'"), form=form_id[:80])
    return PAGES[form_id]


def _page(
    request: Request,
    who: Auth,
    ctx: Ctx,
    code: str,
    form_id: str,
    posted: dict[str, str],
    error: ReluthError | None = None,
    saved: str | None = None,
) -> HTMLResponse:
    schema, _call, declared, lister = _spec(form_id)
    patient = patient_for(ctx, code, declared)
    section = None
    if lister is not None:
        section = next((s for s in views.form_sections(ctx, patient) if s.form_id == form_id), None)
    registry = ctx.trial.forms
    fields = labelled(registry, form_id, forms.fields(schema))
    labels = {f["name"]: f["label"] for f in fields}
    return render(
        request,
        "clinical_form.html",
        {
            "who": who,
            "code": patient.patient_code,
            "form_id": form_id,
            "title": registry.form(form_id).label_in(get_locale()),
            "form_title": form_title(registry, form_id),
            "fields": fields,
            "field_names": [f["name"] for f in fields],
            "f": section,
            "posted": posted,
            "error": error,
            "error_message": describe(error, labels) if error is not None else "",
            "saved": saved,
        },
        status_code=200 if error is None else error.http_status,
    )


def _routes(form_id: str) -> None:
    """The entry page of one form, GET and POST (one literal path per form, so the permission
    matrix lists each)."""
    path = f"/patients/{{code}}/forms/{form_id}"

    def form_page(
        request: Request,
        code: str,
        saved: int | None = Query(None, ge=1),
        who: Auth = WHO,
        ctx: Ctx = READ,
    ) -> HTMLResponse:
        message = None
        if saved is not None:
            title = form_title(ctx.trial.forms, form_id)
            message = gettext("Saved: {form} (record {id}).").format(form=title, id=saved)
        return _page(request, who, ctx, code, form_id, {}, saved=message)

    def form_save(request: Request, code: str, who: Auth = WHO, ctx: Ctx = READ) -> Response:
        schema, call, declared, _lister = _spec(form_id)
        patient = patient_for(ctx, code, declared)
        posted: dict[str, str] = request.state.posted
        try:
            with audited(request, who) as w:
                row = call(w, patient.patient_code, form_data(schema, posted))
                record = row.id
        except ReluthError as exc:
            return _page(request, who, ctx, code, form_id, posted, error=exc)
        return RedirectResponse(
            f"/patients/{patient.patient_code}/forms/{form_id}?saved={record}", status_code=303
        )

    form_page.__name__ = f"form_page_{form_id}"
    form_save.__name__ = f"form_save_{form_id}"
    router.get(path, response_class=HTMLResponse)(form_page)
    router.post(path, dependencies=[Depends(_remember_form)])(form_save)


for _form_id in PAGES:
    _routes(_form_id)
