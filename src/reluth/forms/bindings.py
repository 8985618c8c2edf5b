"""Where each registered form meets its domain: the domain's read service (policy, centre
scope), its correction service (the domain's own invariants: entry rules, timeline, RECIST
re-evaluation, QoL re-scoring, CTCAE re-grading) and how its saved values read as text.

This is the only per-form code of the correction mechanism, and it holds no page, route or
model: labels, input kinds, code lists and help come from the registry (``forms.yaml``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from reluth.auth.policy import Action
from reluth.clinical import forms as clinical_forms
from reluth.clinical import service as clinical
from reluth.core.context import Ctx
from reluth.errors import NotFound, ReluthError
from reluth.i18n import N_, format_day, format_number, vocabulary
from reluth.i18n import gettext as _
from reluth.i18n.messages import describe
from reluth.i18n.reasons import refusal
from reluth.patients import service as patients
from reluth.qol import scoring
from reluth.qol import service as qol
from reluth.records import views
from reluth.response import service as review
from reluth.safety import service as safety
from reluth.treatment import service as treatment
from reluth.treatment.models import Visit
from reluth.values import to_jsonable


@dataclass(frozen=True)
class Input:
    """One input of a correction form (presentation: the domain service validates)."""

    name: str
    label: str
    kind: str = "text"  # text | date | time | decimal | select | checkbox | textarea
    options: tuple[tuple[str, str], ...] = ()
    hint: str = ""
    field: str = ""  # the registry field it belongs to (items, lesions: several inputs)


def options(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((v, v.replace("_", " ")) for v in values)


@dataclass(frozen=True)
class Binding:
    """A registered form's domain services. ``key`` is what the domain services take to name
    the record (its id, a cycle number, a visit code, nothing for a patient's one inclusion)."""

    form: str
    read: Callable[..., Any]
    write: Callable[..., Any]
    key: Callable[[Any], tuple[Any, ...]]
    saved: Callable[[Any], dict[str, str]]  # the correctable values as a form shows them
    result: Callable[[Ctx, Any], dict[str, Any]]  # what the API answers after a correction
    #: the page's heading, from the record and a code field's label (``code("kind")``: the
    #: registry's label of the record's code, in the reader's language)
    heading: Callable[[Any, Callable[[str], str]], str]
    facts: Callable[[Any], list[str]] = lambda _row: []
    anchor: str = ""  # where the patient page shows the form
    back: Callable[[str, Any], str] | None = None  # page after saving (default: the patient)
    parse_key: Callable[[str], tuple[Any, ...]] = lambda text: (text,)
    #: inputs of a group field (items, lesions) for one record
    group_inputs: Callable[[Any], list[Input]] | None = None
    #: form text of the group inputs -> the domain's change of the group field(s)
    group_changes: Callable[[Any, Mapping[str, str]], dict[str, Any]] | None = None
    group_values: Callable[[Any], dict[str, str]] | None = None
    error_input: Callable[[str], str | None] | None = None
    preview: Callable[[Ctx, str, Any, Mapping[str, str]], dict[str, Any]] | None = None
    patient_link: Callable[[str], str] | None = None
    #: fields a record does not offer (a baseline read has no new-lesion call)
    hidden: Callable[[Any], frozenset[str]] = lambda _row: frozenset()
    #: the URLs the correction page and API had before the registry (kept); the record's key
    #: is the path's parameter after ``{code}``, if any
    legacy_page: str | None = None
    legacy_api: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def legacy_key(self, path_params: Mapping[str, Any]) -> str:
        """The record's key in a former URL's path parameters ('' when it has none)."""
        keys = [str(v) for k, v in path_params.items() if k != "code"]
        return keys[0] if keys else ""

    def fetch(self, ctx: Ctx, code: str, key: tuple[Any, ...]) -> Any:
        return self.read(ctx, code, *key)

    def correct(self, ctx: Ctx, code: str, row: Any, changes: Mapping[str, Any]) -> Any:
        out = self.write(ctx, code, *self.key(row), changes)
        return out[0] if isinstance(out, tuple) else out


def _int_key(text: str) -> tuple[int]:
    from reluth.forms.refs import record_id

    return (record_id(text),)


def _by_id(row: Any) -> tuple[int]:
    return (int(row.id),)


def _none(_row: Any) -> tuple[()]:
    return ()


# --- laboratory -------------------------------------------------------------------------------


def _lab_preview(ctx: Ctx, code: str, row: Any, form: Mapping[str, str]) -> dict[str, Any]:
    changes = {k: form.get(k, "") for k in safety.LAB_EDITABLE}
    try:
        return {"graded": safety.preview_lab_edit(ctx, code, row.id, changes)}
    except ReluthError as exc:
        return {"error": describe(exc)}


def _lab_result(_ctx: Ctx, row: Any) -> dict[str, Any]:
    saved = safety.lab_edit_form(row)
    return {
        "id": row.id,
        "test": row.analyte,
        "value": saved["value"],
        "date": saved["date"],
        "uln": saved["uln"] or None,
        "ctcae_grade": row.ctcae_grade,
    }


# --- adverse events ---------------------------------------------------------------------------


def _ae_saved(row: Any) -> dict[str, str]:
    saved = safety.adverse_event_form(row)
    out = {k: "" if v is None else str(v) for k, v in saved.items()}
    out["serious"] = "yes" if saved.get("serious") else ""
    return out


def _ae_result(_ctx: Ctx, row: Any) -> dict[str, Any]:
    out: dict[str, Any] = to_jsonable({"id": row.id, **safety.adverse_event_form(row)})
    return out


# --- visits -----------------------------------------------------------------------------------


def _visit_row(ctx: Ctx, code: str, visit_code: str) -> Visit:
    patient, _visit = views.visible_visit(ctx, code, visit_code, Action.WRITE)
    row = ctx.session.scalars(
        select(Visit).where(Visit.patient_id == patient.id, Visit.visit_code == visit_code)
    ).first()
    if row is None:
        raise refusal(
            NotFound,
            "visit_not_recorded",
            N_("visit {visit} of {patient} is not recorded"),
            visit=visit_code,
            patient=code,
        )
    return row


def _visit_result(ctx: Ctx, row: Visit) -> dict[str, Any]:
    from reluth.patients.models import Patient

    patient = ctx.session.get(Patient, row.patient_id)
    assert patient is not None
    code = patient.patient_code
    status = treatment.visit_status(ctx, code, row.visit_code)
    v = status.visit
    return {
        "visit_code": v.code,
        "visit_date": None if status.actual_date is None else status.actual_date.isoformat(),
        "target_date": v.target_date.isoformat(),
        "window_start": v.window_start.isoformat(),
        "window_end": v.window_end.isoformat(),
        "status": status.status,
        "days_from_target": status.days_from_target,
    }


# --- QoL questionnaires -----------------------------------------------------------------------


def _qol_inputs(row: Any) -> list[Input]:
    inst = scoring.instrument(row.instrument)
    out = []
    for number, item in sorted(inst.items.items()):
        answers = tuple((str(a), str(a)) for a in range(item.min, item.max + 1))
        out.append(
            Input(
                f"item_{number}",
                _("Item {n}: {label} ({lo}-{hi})").format(
                    n=number, label=item.label, lo=item.min, hi=item.max
                ),
                "select",
                (("", _("missing")), *answers),
                field="items",
            )
        )
    return out


def _qol_values(row: Any) -> dict[str, str]:
    items: Mapping[str, int] = qol.questionnaire_edit_form(row)["items"]
    return {f"item_{n}": str(a) for n, a in items.items()}


def _qol_changes(row: Any, posted: Mapping[str, str]) -> dict[str, Any]:
    return {
        "items": {
            i.name.removeprefix("item_"): posted.get(i.name, "").strip() or None
            for i in _qol_inputs(row)
            if i.name in posted
        }
    }


def _qol_error_input(field_name: str) -> str | None:
    """The engine names an item ``items.29``; its input is ``item_29``."""
    if field_name.startswith("items."):
        return "item_" + field_name.removeprefix("items.")
    return None


def _qol_result(_ctx: Ctx, row: Any) -> dict[str, Any]:
    shown = views.qol_row(row)
    out: dict[str, Any] = to_jsonable(
        {
            "id": row.id,
            **qol.questionnaire_edit_form(row),
            "scales": shown.scales,
            "summary": shown.summary,
        }
    )
    return out


def _qol_facts(row: Any) -> list[str]:
    shown = views.qol_row(row)
    scores = " · ".join(
        f"{k} {'–' if v is None else format_number(v)}" for k, v in shown.scales.items()
    )
    return [
        _("completed {day}").format(day=format_day(row.completed_on)),
        _("saved scores: {scores}").format(scores=scores),
    ]


# --- central reads (blinded: nothing about the arm or treatment) ------------------------------


def _read_inputs(read: Any) -> list[Input]:
    from reluth.response import recist

    statuses = (
        ("", _("measured (diameter)")),
        *((str(s), vocabulary.label("lesion_status", s)) for s in recist.LesionStatus),
    )
    out: list[Input] = []
    for m in read.lesions:
        if m.kind == "new":
            continue
        node = ", " + _("node") if m.lymph_node else ""
        kind = vocabulary.label("lesion_kind", m.kind)
        what = f"{m.lesion_id} ({m.organ}, {kind}{node})"
        out.append(
            Input(
                f"diameter_{m.lesion_id}",
                _("{lesion}: diameter (mm)").format(lesion=what),
                "decimal",
                field="lesions",
            )
        )
        out.append(
            Input(
                f"status_{m.lesion_id}",
                _("{lesion}: status").format(lesion=m.lesion_id),
                "select",
                statuses,
                field="lesions",
            )
        )
    return out


def _read_values(read: Any) -> dict[str, str]:
    saved = review.read_edit_form(read)
    values = {}
    for lid, m in saved["lesions"].items():
        values[f"diameter_{lid}"] = m["diameter_mm"] or ""
        values[f"status_{lid}"] = m["status"] or ""
    return values


def _read_changes(read: Any, posted: Mapping[str, str]) -> dict[str, Any]:
    lesions: dict[str, dict[str, str | None]] = {}
    for lid in review.read_edit_form(read)["lesions"]:
        keys = (f"diameter_{lid}", f"status_{lid}")
        if any(k in posted for k in keys):
            lesions[lid] = {
                "diameter_mm": posted.get(keys[0], "").strip() or None,
                "status": posted.get(keys[1], "").strip() or None,
            }
    return {"lesions": lesions}


def _read_error_input(field_name: str) -> str | None:
    """``lesions.T1.diameter_mm`` -> ``diameter_T1``; ``lesions.T1`` -> ``diameter_T1``."""
    if field_name.startswith("lesions."):
        lid, _, attr = field_name.removeprefix("lesions.").partition(".")
        return f"status_{lid}" if attr == "status" else f"diameter_{lid}"
    return None


def _read_saved(read: Any) -> dict[str, str]:
    return {"new_lesions": str(review.read_edit_form(read)["new_lesions"])}


def _read_result(ctx: Ctx, read: Any) -> dict[str, Any]:
    from reluth.patients.models import Patient

    patient = ctx.session.get(Patient, read.patient_id)
    assert patient is not None
    reads = review.central_reads(ctx.session, patient)
    out: dict[str, Any] = to_jsonable(
        {
            "id": read.id,
            **review.read_edit_form(read),
            "reads": [
                {
                    "id": r.id,
                    "timepoint": r.timepoint,
                    "overall_response": r.overall_response,
                    "target_sum_mm": r.target_sum_mm,
                }
                for r in reads
            ],
        }
    )
    return out


def _read_facts(read: Any) -> list[str]:
    saved = _("baseline") if read.timepoint == "baseline" else read.overall_response or ""
    if read.target_sum_mm is not None:
        saved += ", " + _("sum {mm} mm").format(mm=format_number(read.target_sum_mm))
    return [
        _("{modality} of {day}").format(
            modality=read.modality, day=format_day(read.assessment_date)
        ),
        _("saved: {value}").format(value=saved),
    ]


def _pre_facts(row: Any) -> list[str]:
    progression = (
        _("radiological progression") if row.radiological_progression else _("no progression")
    )
    return [
        _("saved {day}: {response} ({progression})").format(
            day=format_day(row.assessment_date),
            response=row.overall_response or "",
            progression=progression,
        )
    ]


def _lab_facts(row: Any) -> list[str]:
    if row.ctcae_grade is None:
        grade = _("no CTCAE grade")
    else:
        grade = _("CTCAE grade {grade}").format(grade=row.ctcae_grade)
    value = safety.lab_edit_form(row)["value"]
    return [
        _("{test} of {day}").format(
            test=vocabulary.label("lab", row.analyte), day=format_day(row.sample_date)
        ),
        _("saved value {value} {unit}").format(
            value=format_number(Decimal(value)) if value else "", unit=row.unit
        ),
        grade,
    ]


# --- the clinical forms (one schema each: reluth.clinical.forms) ------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _clinical(
    form_id: str,
    read: Callable[..., Any],
    write: Callable[..., Any],
    heading: Callable[[Any, Callable[[str], str]], str],
    single: bool = False,
) -> Binding:
    """A clinical form's binding: its saved values as text from its one schema, corrected
    through its domain's correction service, back to its entry page after saving."""
    schema = clinical_forms.FORMS[form_id]

    def saved(row: Any) -> dict[str, str]:
        return {k: _text(v) for k, v in clinical.as_dict(row, schema).items() if k != "id"}

    def result(_ctx: Ctx, row: Any) -> dict[str, Any]:
        out: dict[str, Any] = to_jsonable(clinical.as_dict(row, schema))
        return out

    return Binding(
        form_id,
        read=read,
        write=write,
        key=_none if single else _by_id,
        parse_key=(lambda _text: ()) if single else _int_key,
        saved=saved,
        result=result,
        heading=heading,
        back=lambda code, _row: f"/patients/{code}/forms/{form_id}",
    )


_CLINICAL = (
    _clinical(
        "conmed",
        clinical.get_conmed,
        clinical.edit_conmed,
        lambda row, _code: _("Correct concomitant medication: {name}").format(name=row.drug_name),
    ),
    _clinical(
        "medical_history",
        clinical.get_medical_history,
        clinical.edit_medical_history,
        lambda row, _code: _("Correct medical history: {name}").format(name=row.condition),
    ),
    _clinical(
        "deviation",
        clinical.get_deviation,
        clinical.edit_deviation,
        lambda row, _code: _("Correct protocol deviation of {day}").format(
            day=format_day(row.deviation_date)
        ),
    ),
    _clinical(
        "pregnancy_test",
        clinical.get_pregnancy_test,
        clinical.edit_pregnancy_test,
        lambda row, _code: _("Correct pregnancy test of {day}").format(
            day=format_day(row.test_date)
        ),
    ),
    _clinical(
        "childbearing",
        clinical.get_childbearing,
        clinical.edit_childbearing,
        lambda _row, _code: _("Correct the childbearing potential"),
        single=True,
    ),
    _clinical(
        "withdrawal",
        patients.get_withdrawal,
        patients.edit_withdrawal,
        lambda _row, code: _("Correct withdrawal ({kind})").format(kind=code("kind")),
    ),
    _clinical(
        "death",
        patients.get_death,
        patients.edit_death,
        lambda _row, _code: _("Correct the death record"),
        single=True,
    ),
    _clinical(
        "end_of_study",
        patients.get_end_of_study,
        patients.edit_end_of_study,
        lambda _row, _code: _("Correct the end of study"),
        single=True,
    ),
)


def _ae_facts(row: Any) -> list[str]:
    facts = [
        _("onset {day}").format(day=format_day(row.onset_date)),
        vocabulary.label("grade", row.grade),
    ]
    return facts + ([_("serious")] if row.serious else [])


BINDINGS: dict[str, Binding] = {
    b.form: b
    for b in (
        Binding(
            "lab",
            read=safety.get_lab,
            write=safety.edit_lab,
            key=_by_id,
            parse_key=_int_key,
            saved=safety.lab_edit_form,
            result=_lab_result,
            heading=lambda row, _code: _("Correct laboratory result: {test}").format(
                test=vocabulary.label("lab", row.analyte)
            ),
            facts=_lab_facts,
            anchor="#labs",
            preview=_lab_preview,
            legacy_page="/patients/{code}/labs/{lab_id}",
            legacy_api="/patients/{code}/labs/{lab_id}",
        ),
        Binding(
            "adverse_event",
            read=safety.get_adverse_event,
            write=safety.edit_adverse_event,
            key=_by_id,
            parse_key=_int_key,
            saved=_ae_saved,
            result=_ae_result,
            heading=lambda row, _code: _("Correct adverse event: {term}").format(term=row.term),
            facts=_ae_facts,
            anchor="#adverse-events",
            legacy_page="/patients/{code}/adverse-events/{ae_id}",
            legacy_api="/patients/{code}/adverse-events/{ae_id}",
        ),
        Binding(
            "cycle",
            read=treatment.get_cycle,
            write=treatment.edit_cycle,
            key=lambda row: (int(row.cycle),),
            parse_key=lambda text: (_cycle_number(text),),
            saved=treatment.cycle_edit_form,
            result=lambda _ctx, row: {"cycle": row.cycle, **treatment.cycle_edit_form(row)},
            heading=lambda row, _code: _("Correct Lutathera administration: cycle {n}").format(
                n=row.cycle
            ),
            anchor="#cycles",
            legacy_page="/patients/{code}/cycles/{cycle}",
            legacy_api="/patients/{code}/cycles/{cycle}",
        ),
        Binding(
            "visit",
            read=_visit_row,
            write=treatment.edit_visit,
            key=lambda row: (row.visit_code,),
            saved=lambda row: {"visit_date": row.visit_date.isoformat()},
            result=_visit_result,
            heading=lambda row, _code: _("Correct visit date: {visit}").format(
                visit=row.visit_code
            ),
            back=lambda code, row: f"/patients/{code}/visits/{row.visit_code}?saved=true",
            legacy_page="/patients/{code}/visits/{visit_code}",
            legacy_api="/patients/{code}/visits/{visit_code}",
        ),
        Binding(
            "inclusion",
            read=patients.get_inclusion,
            write=patients.edit_inclusion,
            key=_none,
            parse_key=lambda _text: (),
            saved=patients.inclusion_edit_form,
            result=lambda _ctx, row: patients.inclusion_edit_form(row),
            heading=lambda _row, _code: _("Correct the inclusion"),
            anchor="#inclusion",
            legacy_page="/patients/{code}/inclusion",
            legacy_api="/patients/{code}/inclusion",
        ),
        Binding(
            "pre_randomization",
            read=patients.get_pre_randomization,
            write=patients.edit_pre_randomization,
            key=_none,
            parse_key=lambda _text: (),
            saved=patients.pre_randomization_edit_form,
            result=lambda _ctx, row: {
                **patients.pre_randomization_edit_form(row),
                "radiological_progression": row.radiological_progression,
            },
            heading=lambda _row, _code: _("Correct the pre-randomization assessment"),
            facts=_pre_facts,
            anchor="#pre",
            legacy_page="/patients/{code}/pre-randomization",
            legacy_api="/patients/{code}/pre-randomization",
        ),
        Binding(
            "qol",
            read=qol.get_questionnaire,
            write=qol.edit_questionnaire,
            key=_by_id,
            parse_key=_int_key,
            saved=lambda row: {"completed_on": row.completed_on.isoformat()},
            result=_qol_result,
            heading=lambda row, _code: _(
                "Correct questionnaire: {instrument} at {timepoint}"
            ).format(instrument=row.instrument, timepoint=row.timepoint),
            facts=_qol_facts,
            anchor="#qol",
            group_inputs=_qol_inputs,
            group_values=_qol_values,
            group_changes=_qol_changes,
            error_input=_qol_error_input,
            legacy_page="/patients/{code}/qol/{qol_id}",
            legacy_api="/patients/{code}/qol/{qol_id}",
        ),
        Binding(
            "central_read",
            read=review.get_central_read,
            write=review.edit_central_read,
            key=_by_id,
            parse_key=_int_key,
            saved=_read_saved,
            result=_read_result,
            heading=lambda read, _code: _("Correct central read: {timepoint}").format(
                timepoint=read.timepoint
            ),
            facts=_read_facts,
            back=lambda code, _read: f"/review/{code}",
            patient_link=lambda code: f"/review/{code}",
            hidden=lambda read: frozenset({"new_lesions"} if read.timepoint == "baseline" else ()),
            group_inputs=_read_inputs,
            group_values=_read_values,
            group_changes=_read_changes,
            error_input=_read_error_input,
            legacy_page="/review/{code}/reads/{read_id}",
            legacy_api="/review/{code}/reads/{read_id}",
        ),
        *_CLINICAL,
    )
}


def _cycle_number(text: str) -> int:
    from reluth.forms.refs import record_id

    return record_id(text, "cycle")


def binding(form_id: str) -> Binding:
    """The domain services of a correctable form (NotFound naming the correctable ones)."""
    found = BINDINGS.get(form_id)
    if found is None:
        raise refusal(
            NotFound,
            "form_not_correctable",
            N_("form '{form}' cannot be corrected here (correctable: {forms})"),
            form=str(form_id),
            forms=", ".join(BINDINGS),
        )
    return found
