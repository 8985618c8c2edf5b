"""The one correction page of every registered form: ``/forms/{form}/{record}/edit``, laid out
from the registry (``forms.yaml``) and saved through the generic correction mechanism
(:mod:`reluth.forms.corrections`), which calls the form's domain correction service.

The correction URLs the pages had before the registry (``/patients/C01-0001/labs/17/edit``,
``/review/C01-0001/reads/3/edit``...) are served by the same handlers, registered from the
bindings, not written per form. Every correction needs a reason: a refused form comes back
with every typed value and the message next to the input it names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup, escape

from reluth.core.context import Ctx
from reluth.errors import NotFound, ReluthError
from reluth.forms import corrections
from reluth.forms.bindings import BINDINGS, Binding
from reluth.forms.refs import record_id
from reluth.i18n import N_, get_locale, gettext
from reluth.i18n.reasons import refusal
from reluth.i18n.vocabulary import FORM_STATUSES
from reluth.web.deps import READ, WHO, Auth, audited
from reluth.web.pages import render
from reluth.web.trial_pages import _remember_form

router = APIRouter(include_in_schema=False)

#: Opens the instance in a context: (ctx) -> Instance.
Opener = Callable[[Ctx], corrections.Instance]


def _page(
    request: Request,
    who: Auth,
    ctx: Ctx,
    inst: corrections.Instance,
    values: Mapping[str, str],
    error: ReluthError | None = None,
) -> HTMLResponse:
    b, code = inst.binding, inst.ref.patient_code
    inputs = corrections.inputs(ctx, inst)
    base = f"/forms/{inst.form.id}/{inst.ref.record_id}"
    preview: dict[str, Any] = {}
    if b.preview is not None:
        preview = b.preview(ctx, code, inst.row, values)
    field = getattr(error, "field", None)
    return render(
        request,
        "edit.html",
        {
            "who": who,
            "code": code,
            "heading": corrections.heading(ctx, inst),
            "facts": b.facts(inst.row),
            "action": f"{base}/edit",
            "back": _back(inst),
            "fields": inputs,
            "field_names": [i.name for i in inputs] + ["reason"],
            "values": values,
            "error": error,
            "error_field": corrections.error_input(inst, field if isinstance(field, str) else None),
            "patient_link": None if b.patient_link is None else b.patient_link(code),
            "preview_url": f"{base}/preview" if b.preview is not None else None,
            "preview": preview,
            "form_id": inst.form.id,
            "record_id": inst.ref.record_id,
            "can_query": _may_query(who),
        },
        status_code=error.http_status if error else 200,
    )


def _may_query(who: Auth) -> bool:
    from reluth.queries import service as queries
    from reluth.web.deps import may_call

    return may_call(who, queries.open_query)


def _back(inst: corrections.Instance) -> str:
    b, code = inst.binding, inst.ref.patient_code
    if b.back is not None:
        return b.back(code, inst.row)
    # the patient's page says what was saved (trial_pages.saved_note)
    return f"/patients/{code}?saved={inst.form.id}-{inst.ref.record_id}{b.anchor}"


def _show(request: Request, who: Auth, ctx: Ctx, open_: Opener) -> HTMLResponse:
    inst = open_(ctx)
    return _page(request, who, ctx, inst, corrections.saved_values(inst))


def _save(request: Request, who: Auth, ctx: Ctx, open_: Opener) -> Response:
    inst = open_(ctx)  # 403 / 404 before anything else
    posted: dict[str, str] = request.state.posted
    names = [i.name for i in corrections.inputs(ctx, inst)]
    typed = {n: posted.get(n, "") for n in names} | {"reason": posted.get("reason", "")}
    try:
        with audited(request, who, reason=posted.get("reason")) as w:
            current = open_(w)
            changes = corrections.changes_from_form(w, current, posted)
            row = corrections.correct(w, current, changes)
            back = _back(corrections.Instance(current.form, current.binding, current.ref, row))
    except ReluthError as exc:
        return _page(request, who, ctx, inst, typed, exc)
    return RedirectResponse(back, status_code=303)


async def _preview(request: Request, who: Auth, ctx: Ctx, open_: Opener) -> HTMLResponse:
    """What the correction would derive, as the value is typed (nothing stored)."""
    inst = open_(ctx)
    if inst.binding.preview is None:
        raise refusal(
            NotFound, "no_preview", N_("form {form} has no live preview"), form=inst.form.named()
        )
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    shown = inst.binding.preview(ctx, inst.ref.patient_code, inst.row, form)
    return render(request, "_lab_grade.html", {"graded": None, "error": None, **shown})


def _generic(form_id: str, record: str) -> Opener:
    rid = record_id(record)
    return lambda ctx: corrections.open_instance(ctx, form_id, rid)


@router.get("/forms/{form_id}/{record}/edit", response_class=HTMLResponse)
def correction_form(
    request: Request, form_id: str, record: str, who: Auth = WHO, ctx: Ctx = READ
) -> HTMLResponse:
    """The correction page of any registered form's saved record."""
    return _show(request, who, ctx, _generic(form_id, record))


@router.post("/forms/{form_id}/{record}/edit", dependencies=[Depends(_remember_form)])
def correction_save(
    request: Request, form_id: str, record: str, who: Auth = WHO, ctx: Ctx = READ
) -> Response:
    return _save(request, who, ctx, _generic(form_id, record))


@router.post("/forms/{form_id}/{record}/preview", response_class=HTMLResponse)
async def correction_preview(
    request: Request, form_id: str, record: str, who: Auth = WHO, ctx: Ctx = READ
) -> HTMLResponse:
    return await _preview(request, who, ctx, _generic(form_id, record))


# --- the URLs the correction pages had before the registry, served by the handlers above ----


def _legacy(b: Binding) -> None:
    assert b.legacy_page is not None
    path = b.legacy_page

    def opener(request: Request, code: str) -> Opener:
        key = b.legacy_key(request.path_params)
        return lambda ctx: corrections.open_by_key(ctx, b.form, code, key)

    def show(request: Request, code: str, who: Auth = WHO, ctx: Ctx = READ) -> HTMLResponse:
        return _show(request, who, ctx, opener(request, code))

    def save(request: Request, code: str, who: Auth = WHO, ctx: Ctx = READ) -> Response:
        return _save(request, who, ctx, opener(request, code))

    async def preview(
        request: Request, code: str, who: Auth = WHO, ctx: Ctx = READ
    ) -> HTMLResponse:
        return await _preview(request, who, ctx, opener(request, code))

    for fn, kind in ((show, "page"), (save, "save"), (preview, "preview")):
        fn.__name__ = f"{b.form}_{kind}"
    router.add_api_route(f"{path}/edit", show, methods=["GET"], response_class=HTMLResponse)
    router.add_api_route(
        f"{path}/edit", save, methods=["POST"], dependencies=[Depends(_remember_form)]
    )
    if b.preview is not None:
        router.add_api_route(
            f"{path}/grade", preview, methods=["POST"], response_class=HTMLResponse
        )


for _binding in BINDINGS.values():
    if _binding.legacy_page is not None:
        _legacy(_binding)


# --- status grid ------------------------------------------------------------------------------

#: A form's or visit's status as people read it (the stored value stays in links and filters).
STATUS_LABELS = FORM_STATUSES  # every status of the grid, the lifecycle's included

#: One character per visit status in a grid cell (the colour says it too; the title lists forms).
ABBREV = {
    "not_started": "·",
    "incomplete": "½",
    "complete": "✓",
    "queried": "?",
    "missing": "–",
    "overdue": "!",
    "not_expected": "",
    "sdv_done": "☑",
    "signed": "✍",
    "locked": "▣",
}


@router.get("/status", response_class=HTMLResponse)
def status_page(
    request: Request,
    centre: str = "",
    visit: str = "",
    status: str = "",
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    """Patients x visits of the person's centres, each visit coloured by its forms' status."""
    from reluth.forms import service as forms
    from reluth.forms.status import FormStatus, VisitCell
    from reluth.sites import service as sites

    grid = forms.status_grid(ctx, centre or None, visit or None, status or None)
    registry, lang = corrections.registry_of(ctx), get_locale()

    parts: dict[tuple[str, str, str | None], str] = {}

    def part(form: str, value: str, missing: str | None) -> str:
        """A form's status in a cell's title, made once per (form, status, code) a page."""
        key = (form, value, missing)
        got = parts.get(key)
        if got is None:
            label = registry.form(form).label_in(lang) if form in registry.form_ids else form
            got = f"{label} {gettext(STATUS_LABELS.get(value, value))}"
            got = parts[key] = got + (f" ({missing})" if missing else "")
        return got

    # Each row's cells rendered here once, escaped, not by the template's loop: 176 patients x
    # 40 visits are 7 000 cells, most of the page's server time when Jinja loops over them.
    def td(code: str, cell: VisitCell | None) -> str:
        if cell is None:
            return "<td></td>"
        value = cell.status.value
        title = "; ".join(part(f.form, f.status.value, f.missing_code) for f in cell.forms)
        return f'<td class="s-{value}" title="{escape(code)}: {escape(title)}">{ABBREV[value]}</td>'

    cells = [
        (r.patient_code, Markup("".join([td(c.code, r.visits.get(c.code)) for c in grid.columns])))
        for r in grid.rows
    ]
    return render(
        request,
        "status.html",
        {
            "who": who,
            "g": grid,
            "cells": cells,
            "centre": centre,
            "visit": visit,
            "status": status,
            "centres": [
                c.code for c in sites.list_centres(ctx.session) if ctx.actor.sees_centre(c.id)
            ],
            "all_columns": forms.columns(ctx),
            "statuses": [s.value for s in FormStatus],
            "abbrev": ABBREV,
        },
    )


# --- one saved form instance: values, query buttons, missing-data codes -----------------------


def _record_page(
    request: Request,
    who: Auth,
    ctx: Ctx,
    form_id: str,
    record: str,
    queried: bool = False,
    error: ReluthError | None = None,
) -> HTMLResponse:
    from reluth.forms import service as forms
    from reluth.records import views
    from reluth.web.deps import may_call

    view = forms.record_view(ctx, form_id, record_id(record))
    registry = corrections.registry_of(ctx)
    binding = BINDINGS.get(view.form.id)
    return render(
        request,
        "record.html",
        {
            "who": who,
            "v": view,
            "queried": queried,
            "error": error,
            "can_query": _may_query(who),
            "can_correct": view.correctable
            and binding is not None
            and may_call(who, binding.write),
            "can_missing": may_call(who, forms.record_missing),
            "allowed": {f.name: f.missing for f in view.form.fields},
            "missing_codes": {
                c: registry.missing_label(c, get_locale()) for c in registry.missing_codes
            },
            "query_rows": [views.query_row(q, view.ref.patient_code, ctx) for q in view.queries],
        },
        status_code=error.http_status if error else 200,
    )


@router.get("/forms/{form_id}/{record}", response_class=HTMLResponse)
def record_page(
    request: Request,
    form_id: str,
    record: str,
    queried: bool = False,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    """A saved record of any registered form: each value with its query button and, where
    the registry allows one, its missing-data code."""
    return _record_page(request, who, ctx, form_id, record, queried)


@router.post("/forms/{form_id}/{record}/missing", dependencies=[Depends(_remember_form)])
def record_missing(
    request: Request, form_id: str, record: str, who: Auth = WHO, ctx: Ctx = READ
) -> Response:
    """Record why a field of the record is absent (a registry missing-data code and reason)."""
    from reluth.auth.policy import Action, Resource
    from reluth.forms import service as forms

    posted: dict[str, str] = request.state.posted
    who.actor.require(Action.WRITE, Resource.PATIENT)  # 403 before anything else
    rid = record_id(record)
    forms.record_view(ctx, form_id, rid)  # then 404 for a record the actor does not see
    try:
        with audited(request, who) as w:
            forms.record_missing(
                w,
                form_id,
                posted.get("code", ""),
                posted.get("reason", ""),
                record_id=rid,
                item=posted.get("item") or None,
            )
    except ReluthError as exc:
        return _record_page(request, who, ctx, form_id, record, error=exc)
    return RedirectResponse(f"/forms/{form_id}/{rid}", status_code=303)
