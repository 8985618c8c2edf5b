"""JSON API of the form registry (mounted under ``/api/v1``): the registered forms, and the one
correction route of every form, ``PUT /forms/{form}/{record_id}``.

A correction's body carries a ``reason`` and only the fields to change (fields left out keep
their saved value; ``null`` clears an optional one). The registry refuses a field the form
does not let change, the domain service checks the rules of entry again, and the audited unit
of work keeps old value, new value, who and why. The correction URLs the API had before the
registry (``PUT /patients/{code}/adverse-events/{id}``, ``/cycles/{n}``, ``/visits/{code}``,
``/inclusion``, ``/pre-randomization``, ``/qol/{id}``, ``/review/{code}/reads/{id}``) are
served by the same handler, registered from the bindings. Recording a visit's date is here too.
"""

from __future__ import annotations

import inspect
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from reluth.auth.policy import Action
from reluth.core.context import Ctx
from reluth.errors import ValidationError
from reluth.forms import corrections
from reluth.forms import service as forms_service
from reluth.forms.bindings import BINDINGS, Binding
from reluth.i18n import N_
from reluth.records import views
from reluth.treatment import service as treatment
from reluth.values import parse_date
from reluth.web.api import ApiIn
from reluth.web.deps import READ, WHO, Auth, RecordId, Visible, audited, calls, visible

router = APIRouter(tags=["api"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    403: {"description": "Not allowed for this role or centre"},
    404: {"description": "Not found"},
    409: {"description": "Contradicts the stored state (e.g. progression after randomization)"},
    422: {"description": "Invalid input (names the field and what is accepted)"},
}

PatientCode = Annotated[str, Path(pattern=r"^C\d{2}-\d{4}$", max_length=8)]
VisitCode = Annotated[str, Path(pattern=r"^[A-Z0-9-]{1,16}$", description="e.g. TA-W08")]
CycleNumber = Annotated[
    int, Path(ge=1, le=99, description="cycle number (the protocol says which)")
]
FormId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="a registered form")]
Reason = Annotated[
    str, Field(min_length=1, max_length=500, description="why the saved data change")
]


class CorrectionIn(ApiIn):
    """``{"reason": "...", "<field>": value, ...}``: the form's fields to change."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})
    reason: Reason

    def changes(self) -> dict[str, Any]:
        extra = dict(self.model_extra or {})
        _no_nul(extra, "")
        return extra


def _no_nul(value: Any, where: str) -> None:
    """PostgreSQL cannot store NUL: refused as 422 naming the field, not a server error."""
    if isinstance(value, str) and "\x00" in value:
        raise ValidationError(where or "body", N_("contains a NUL character"), N_("printable text"))
    if isinstance(value, dict):
        for k, v in value.items():
            _no_nul(v, f"{where}.{k}" if where else str(k))


class FieldOut(BaseModel):
    name: str
    label: str
    type: str
    column: str | None
    unit: str | None
    required: bool
    codes: list[str] | None
    missing: list[str]
    help: str
    correctable: bool


class FormOut(BaseModel):
    id: str
    label: str
    table: str
    correctable: bool
    fields: list[FieldOut]


@router.get("/forms", response_model=list[FormOut], responses=ERRORS)
def forms_list(ctx: Ctx = READ) -> list[FormOut]:
    """The registered case report forms the caller may read: fields, units, code lists,
    missing-data codes."""
    registry = corrections.registry_of(ctx)
    return [
        FormOut(
            id=f.id,
            label=f.label,
            table=f.table,
            correctable=f.id in BINDINGS and bool(f.correctable),
            fields=[
                FieldOut(
                    name=x.name,
                    label=x.label,
                    type=x.type,
                    column=x.column,
                    unit=x.unit,
                    required=x.required,
                    codes=None if x.codes is None else list(registry.codes(x.codes)),
                    missing=list(x.missing),
                    help=x.help,
                    correctable=f.editable and x.correctable,
                )
                for x in f.fields
            ],
        )
        for f in registry.forms
        if _may_read(ctx, f.resource, f.treatment)
    ]


def _may_read(ctx: Ctx, resource: str, treatment: bool) -> bool:
    """Only the forms of data the caller may read (a treatment form names the treatment)."""
    from reluth.auth.policy import Resource

    if treatment and not ctx.actor.can(Action.READ, Resource.TREATMENT):
        return False
    return ctx.actor.can(Action.READ, Resource(resource))


def _correct(request: Request, who: Auth, body: CorrectionIn, open_: Any) -> dict[str, Any]:
    changes = body.changes()
    if not changes:
        raise ValidationError(
            "body", N_("nothing to correct"), N_("the fields to change and a reason")
        )
    with audited(request, who, reason=body.reason) as w:
        inst = open_(w)
        row = corrections.correct(w, inst, changes)
        return corrections.result(w, inst, row)


def _generic_target(form_id: FormId, record_id: RecordId, ctx: Ctx = READ) -> Any:
    """403 unless the actor may correct the form, 404 for a record they do not see — both
    before the body is validated."""
    corrections.open_instance(ctx, form_id, record_id)
    return lambda w: corrections.open_instance(w, form_id, record_id)


@router.put("/forms/{form_id}/{record_id}", responses=ERRORS)
def form_correct(
    body: CorrectionIn,
    request: Request,
    who: Auth = WHO,
    open_: Any = Depends(_generic_target),
) -> dict[str, Any]:
    """Correct a saved record of any registered form; answers with its corrected values (and
    what the domain derived again: CTCAE grade, QoL scores, RECIST responses)."""
    return _correct(request, who, body, open_)


def _with_key(fn: Any, b: Binding, path: str) -> Any:
    """``fn`` declaring the record key of a former URL as a path parameter (so the OpenAPI
    document and the validation know it: a number for ids and cycles, a visit code)."""
    names = re.findall(r"\{(\w+)\}", path)
    extra = [n for n in names if n != "code"]
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    for name in extra:
        if name == "visit_code":
            annotation: Any = VisitCode
        elif name == "cycle":
            annotation = CycleNumber
        else:
            annotation = RecordId
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
        )
    fn.__signature__ = sig.replace(parameters=params)
    return fn


def _legacy(b: Binding) -> None:
    assert b.legacy_api is not None

    def target(request: Request, code: PatientCode, ctx: Ctx = READ, **_key: Any) -> Any:
        key = b.legacy_key(request.path_params)
        corrections.open_by_key(ctx, b.form, code, key)
        return lambda w: corrections.open_by_key(w, b.form, code, key)

    def put(
        body: CorrectionIn,
        request: Request,
        who: Auth = WHO,
        open_: Any = Depends(_with_key(target, b, b.legacy_api)),
        **_key: Any,
    ) -> dict[str, Any]:
        return _correct(request, who, body, open_)

    target.__name__ = f"{b.form}_target"
    put.__name__ = f"{b.form}_correct"
    put.__doc__ = f"Correct a saved {b.form.replace('_', ' ')} (as PUT /forms/{b.form}/{{id}})."
    router.add_api_route(
        b.legacy_api, _with_key(put, b, b.legacy_api), methods=["PUT"], responses=ERRORS
    )


for _binding in BINDINGS.values():
    if _binding.legacy_api is not None:
        _legacy(_binding)


# --- visits: record the actual date -----------------------------------------------------------


class VisitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visit_code: str = Field(pattern=r"^[A-Z0-9-]{1,16}$", description="e.g. TA-W08")
    visit_date: str = Field(max_length=10, description="YYYY-MM-DD")


class VisitOut(BaseModel):
    visit_code: str
    visit_date: str | None
    target_date: str
    window_start: str
    window_end: str
    status: str
    days_from_target: int | None


@router.post("/patients/{code}/visits", status_code=201, response_model=VisitOut, responses=ERRORS)
def visit_record(
    code: PatientCode,
    body: VisitIn,
    request: Request,
    who: Auth = Depends(calls(treatment.record_visit)),
    ctx: Ctx = READ,
) -> VisitOut:
    """Record the actual date of a planned visit; answers with its window status."""
    patient, _visit = views.visible_visit(ctx, code, body.visit_code, Action.WRITE)
    day = parse_date(body.visit_date, "visit_date")
    with audited(request, who) as w:
        _row, status = treatment.record_visit(w, patient.patient_code, body.visit_code, day)
    v = status.visit
    return VisitOut(
        visit_code=v.code,
        visit_date=None if status.actual_date is None else status.actual_date.isoformat(),
        target_date=v.target_date.isoformat(),
        window_start=v.window_start.isoformat(),
        window_end=v.window_end.isoformat(),
        status=status.status,
        days_from_target=status.days_from_target,
    )


# --- status grid ------------------------------------------------------------------------------


class FormStatusOut(BaseModel):
    status: str
    records: list[int]
    missing_code: str | None


class VisitStatusOut(BaseModel):
    status: str
    window_end: str | None
    forms: dict[str, FormStatusOut]


class PatientStatusOut(BaseModel):
    patient: str
    centre: str
    visits: dict[str, VisitStatusOut]


class StatusOut(BaseModel):
    as_of: str
    visits: list[str]
    counts: dict[str, int]
    by_centre: dict[str, dict[str, int]]
    patients: list[PatientStatusOut]


@router.get("/status", response_model=StatusOut, responses=ERRORS)
def status_grid(
    centre: str | None = Query(None, pattern=r"^C\d{2}$", description="a centre code, e.g. C01"),
    visit: str | None = Query(None, pattern=r"^[A-Z0-9-]{1,16}$", description="a visit code"),
    status: str | None = Query(None, max_length=16, description="a visit status"),
    ctx: Ctx = READ,
) -> JSONResponse:
    """Patients x visits with each form's status: not_started, incomplete, complete, queried,
    missing (a missing-data code), overdue (window closed, nothing entered, no code),
    not_expected (after death or end of study)."""
    from reluth.forms import service as forms

    grid = forms.status_grid(ctx, centre, visit, status)
    # The body as StatusOut serializes it, built directly: 5 851 visits x their forms as
    # pydantic models, validated again on the way out, were most of this request's CPU.
    body = {
        "as_of": grid.as_of.isoformat(),
        "visits": [c.code for c in grid.columns],
        "counts": grid.counts,
        "by_centre": grid.by_centre,
        "patients": [
            {
                "patient": r.patient_code,
                "centre": r.centre,
                "visits": {
                    code: {
                        "status": cell.status.value,
                        "window_end": None
                        if cell.window_end is None
                        else cell.window_end.isoformat(),
                        "forms": {
                            f.form: {
                                "status": f.status.value,
                                "records": list(f.record_ids),
                                "missing_code": f.missing_code,
                            }
                            for f in cell.forms
                        },
                    }
                    for code, cell in r.visits.items()
                },
            }
            for r in grid.rows
        ],
    }
    return JSONResponse(body)


# --- missing-data codes -------------------------------------------------------------------------


class MissingIn(ApiIn):
    """A field of a saved record (``record_id`` + ``field``) or a whole form at a visit
    (``visit_code``): why it is absent."""

    model_config = ConfigDict(extra="forbid")
    form: str = Field(max_length=40, description="a registered form, e.g. qol")
    code: str = Field(max_length=8, description="ND, NA, UNK or ASKU (as the field allows)")
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    record_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    field: str | None = Field(default=None, max_length=60)
    visit_code: str | None = Field(default=None, pattern=r"^[A-Z0-9-]{1,16}$")


class MissingOut(BaseModel):
    id: int
    form: str
    record_id: int | None
    visit_code: str | None
    field: str | None
    code: str
    reason: str
    recorded_by: str


@router.post(
    "/patients/{code}/missing", status_code=201, response_model=MissingOut, responses=ERRORS
)
def missing_record(
    body: MissingIn,
    request: Request,
    to: Visible = Depends(visible(forms_service.record_missing)),
) -> MissingOut:
    """Record a missing-data code with its reason (e.g. QoL not done at QOL-W24, the patient
    too ill: ``{"form": "qol", "visit_code": "QOL-W24", "code": "ND", "reason": "..."}``)."""
    who, patient = to.who, to.patient
    with audited(request, who) as w:
        row = forms_service.record_missing(
            w,
            body.form,
            body.code,
            body.reason,
            record_id=body.record_id,
            item=body.field,
            patient_code=patient.patient_code,
            visit_code=body.visit_code,
        )
        if row.patient_id != patient.id:
            raise ValidationError(
                "record_id", N_("a record of another patient"), N_("this patient's")
            )
        return MissingOut(
            id=row.id,
            form=row.form_id,
            record_id=row.record_id,
            visit_code=row.visit_code,
            field=row.item,
            code=row.code,
            reason=row.reason,
            recorded_by=row.recorded_by,
        )
