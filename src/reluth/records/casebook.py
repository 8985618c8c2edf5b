"""The per-patient casebook: every record of one patient as the actor may read it, printed to
PDF for the investigator site file and the archive (ICH E6(R3) 8.3 essential records; the
sponsor's copy of the eCRF at the end of the trial).

What a section shows is decided here, once, by the policy: the sections built on the read
models of :mod:`reluth.records.views` (registration, screening, inclusion, cycles, visits,
labs, adverse events, QoL, queries, the randomization with the arm only for readers of the
arm) keep those models' rules, and every other section needs the resource of
:data:`SECTION_NEEDS`. A section the actor may not read is absent from the document (``None``
here), so the template cannot leak it. The PDF is rendered by WeasyPrint from the Jinja2
templates ``casebook.html`` and ``_casebook_sections.html`` of the web app's templates (one
macro per record section, reusable by a blank annotated CRF). Every casebook handed out is an
audit event (``casebook`` on ``casebooks``/patient ID), sealed by :func:`record_casebook` in the
adapter's unit of work before the file leaves (as the statistician's exports are): building
reads only, so the seconds of rendering hold no write lock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any

from sqlalchemy import select

from reluth import __version__
from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.core.trial import Trial
from reluth.db.base import as_utc
from reluth.dosimetry import service as dosimetry
from reluth.errors import PreconditionFailed
from reluth.forms.registry import Registry
from reluth.i18n import N_, format_day, format_moment, format_number, get_locale, gettext
from reluth.i18n.reasons import Joined, Reason, refusal, shown, shown_reason
from reluth.lifecycle import sdv_service, signature_service
from reluth.patients import service as patients
from reluth.patients.models import (
    Death,
    EndOfStudy,
    Inclusion,
    PreRandomizationAssessment,
    Screening,
)
from reluth.queries.models import DataQuery
from reluth.randomization.models import Randomization
from reluth.records import audit_changes, views
from reluth.response import service as review
from reluth.response.models import LesionMeasurement, TumourAssessment
from reluth.safety.models import AdverseEvent, LabResult

#: The audit trail's table name for casebook events (no data table of that name exists); the
#: record id is the patient ID, so the patient's history lists every casebook handed out.
AUDIT_TABLE = "casebooks"
AUDIT_ACTION = "casebook"
MEDIA_TYPE = "application/pdf"

#: What reading a section needs beyond ``read patient`` (sections not listed follow the read
#: models of ``records.views``). Central reads are tumour assessments: they are read with the
#: site's, by whoever may read tumour assessments (the audit page already shows them to
#: readers of the audit trail); the dosimetry reveals the arm and is read as its page is.
SECTION_NEEDS: dict[str, Resource] = {
    "tumour_assessments": Resource.LOCAL_ASSESSMENT,
    "central_review": Resource.LOCAL_ASSESSMENT,
    "dosimetry": Resource.DOSIMETRY,
    "audit": Resource.AUDIT,
    "labs": Resource.LAB,
    "adverse_events": Resource.ADVERSE_EVENT,
    "queries": Resource.QUERY,
    "sdv": Resource.SDV,
    "signatures": Resource.SIGNATURE,
}


@dataclass(frozen=True)
class ScreeningView:
    """One eligibility check as captured: the engine's verdict per criterion and the values
    of the patient file it was made on (flattened to ``labs.platelets.value``-style names)."""

    id: int
    assessment_date: dt.date
    stage: str
    status: str
    stratum: str | None
    screened_at: dt.datetime
    protocol_version: str
    criteria: list[views.CriterionView]
    values: list[tuple[str, Any]]  # shown by the ``shown`` filter in the reader's language


@dataclass(frozen=True)
class LabView:
    id: int
    sample_date: dt.date
    analyte: str
    value: Decimal
    unit: str
    value_canonical: Decimal
    canonical_unit: str
    uln: Decimal | None
    grade: int | None


@dataclass(frozen=True)
class AdverseEventView:
    """An adverse event with every stored field and, when serious, the 24-hour clock and
    pharmacovigilance's receipt as the AE list shows them."""

    row: views.AeRow
    resolution_date: dt.date | None
    awareness_time: dt.time | None
    description: str | None


@dataclass(frozen=True)
class LesionView:
    lesion_id: str
    kind: str
    organ: str
    lymph_node: bool
    diameter_mm: Decimal | None
    status: str | None


@dataclass(frozen=True)
class TumourRead:
    id: int
    assessment_date: dt.date
    timepoint: str
    reader: str
    modality: str
    overall_response: str | None
    target_sum_mm: Decimal | None
    lesions: list[LesionView]


@dataclass(frozen=True)
class QueryView:
    id: int
    field: str
    status: str
    question: str
    opened_by: str
    opened_at: dt.datetime
    answer: str | None
    answered_by: str | None
    answered_at: dt.datetime | None
    closed_by: str | None
    closed_at: dt.datetime | None
    on: str | None = None  # the form instance and item queried ("lab 12 value"), when named
    reopened_by: str | None = None
    reopened_at: dt.datetime | None = None
    reopen_reason: str | None = None
    edit_check: str | None = None  # the registry's edit check that raised it (system query)


@dataclass(frozen=True)
class AuditLine:
    """One audit row in plain words: the change of one field (old → new), or the values of an
    inserted or deleted record, or an event's detail."""

    seq: int
    at_utc: str
    username: str
    role: str
    action: str
    record: Any  # the form's label and the record's number (a reasons.Reason)
    field: Any  # the field's label (shown in the reader's language)
    old: Any  # the value, or a record's values by label (reasons.Joined)
    new: Any
    reason: str | None


@dataclass(frozen=True)
class Manifestation:
    """One form instance's source-data verifications and electronic signatures as the casebook
    prints them (21 CFR 11.50: the signer's printed name, the date and time, the meaning;
    ICH E6(R3) 3.11.4: who verified which data against source, when)."""

    form: str  # the form's label (the registry's), or the table for a whole-casebook scope
    record: str  # table/record_id, or the visit code, or "casebook"
    sdv: tuple[sdv_service.SdvView, ...]
    signatures: tuple[signature_service.SignatureView, ...]


def _manifestations(
    ctx: Ctx, code: str, sdv_views: list[Any] | None, signature_views: list[Any] | None
) -> list[Manifestation]:
    """The SDV marks and signatures of a patient grouped by the form instance they cover, in
    the order they were made."""
    registry = ctx.trial.forms
    keys: dict[tuple[str, str], tuple[list[Any], list[Any]]] = {}
    for m in sdv_views or []:
        keys.setdefault((m.table_name, m.record_id), ([], []))[0].append(m)
    for sig in signature_views or []:
        table, _, rid = sig.what.removeprefix("form ").partition("/")
        key = ("casebook", "") if sig.scope == "patient" else (table, rid)
        if sig.scope == "visit":
            key = ("visits", sig.what.rsplit("/", 1)[-1])
        keys.setdefault(key, ([], []))[1].append(sig)
    out = []
    for (table, rid), (marks, sigs) in keys.items():
        forms = registry.forms_of_table(table) if table not in ("casebook", "visits") else ()
        label = (
            forms[0].label_in(get_locale())
            if forms
            else {"casebook": gettext("Casebook"), "visits": gettext("Visit")}.get(table, table)
        )
        record = f"{table}/{rid}" if rid and table != "visits" else (rid or "casebook")
        out.append(Manifestation(label, record, tuple(marks), tuple(sigs)))
    return out


@dataclass(frozen=True)
class Casebook:
    """Everything of one patient the actor may read; ``None``: a section they may not read."""

    code: str
    timeline: views.Timeline
    registered_at: dt.datetime
    protocol_version: str
    screenings: list[ScreeningView]
    consent_signed: bool | None
    pre_randomization_comment: str | None
    randomized_at: dt.datetime | None
    randomized_by: str | None
    labs: list[LabView] | None
    adverse_events: list[AdverseEventView] | None
    local_reads: list[TumourRead] | None
    central_reads: list[TumourRead] | None
    central_evaluation: review.EvaluationView | None
    death: dict[str, Any] | None
    end_of_study: dict[str, Any] | None
    dosimetry: dosimetry.PatientDosimetry | None
    queries: list[QueryView] | None
    audit: list[AuditLine] | None
    generated_at: dt.datetime
    generated_by: str
    generated_role: str
    software: str
    #: SDV and signature manifestations per form instance (None: the reader may read neither)
    manifestations: list[Manifestation] | None = None


@dataclass(frozen=True)
class CasebookFile:
    """A rendered casebook, with what its audit event records."""

    filename: str
    content: bytes
    patient_code: str
    sections: tuple[str, ...]  # what it holds beyond registration to randomization
    media_type: str = MEDIA_TYPE

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A patient file as ``(name, value)`` rows in the file's order (lists numbered from 1; an
    empty list is the value ``[]``); values keep their type, written where shown."""
    if isinstance(value, dict):
        rows: list[tuple[str, Any]] = []
        for key, item in value.items():
            rows += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list):
        if not value:
            return [(prefix, [])]
        rows = []
        for i, item in enumerate(value, 1):
            rows += _flatten(item, f"{prefix}[{i}]")
        return rows
    return [(prefix, value)]


def _screenings(ctx: Ctx, patient_id: int) -> list[ScreeningView]:
    out = []
    for s in ctx.session.scalars(
        select(Screening).where(Screening.patient_id == patient_id).order_by(Screening.id)
    ):
        result = json.loads(s.result_json)
        criteria = [
            views.CriterionView(c["id"], c["text"], c["result"], c["reason"], c.get("message"))
            for c in result.get("criteria", [])
        ]
        values = _flatten(json.loads(s.input_json))
        out.append(
            ScreeningView(
                s.id,
                s.assessment_date,
                s.stage,
                s.status,
                s.strata_code,
                as_utc(s.screened_at),
                s.protocol_version,
                criteria,
                values,
            )
        )
    return out


def _reads(ctx: Ctx, patient_id: int, reader: str) -> list[TumourRead]:
    reads = list(
        ctx.session.scalars(
            select(TumourAssessment)
            .where(TumourAssessment.patient_id == patient_id, TumourAssessment.reader == reader)
            .order_by(TumourAssessment.assessment_date, TumourAssessment.id)
        )
    )
    lesions: dict[int, list[LesionView]] = {}
    if reads:
        for m in ctx.session.scalars(
            select(LesionMeasurement)
            .where(LesionMeasurement.assessment_id.in_([r.id for r in reads]))
            .order_by(LesionMeasurement.id)
        ):
            lesions.setdefault(m.assessment_id, []).append(
                LesionView(m.lesion_id, m.kind, m.organ, m.lymph_node, m.diameter_mm, m.status)
            )
    return [
        TumourRead(
            r.id,
            r.assessment_date,
            r.timepoint,
            r.reader,
            r.modality,
            r.overall_response,
            r.target_sum_mm,
            lesions.get(r.id, []),
        )
        for r in reads
    ]


#: The longest audit value printed in full (a screening's patient file runs to pages; the
#: screening section prints it, and ``reluth audit show`` gives every character).
AUDIT_VALUE_MAX = 400


def _capped(text: str) -> str:
    if len(text) <= AUDIT_VALUE_MAX:
        return text
    more = gettext("(+{n} characters)").format(n=format_number(len(text) - AUDIT_VALUE_MAX))
    return f"{text[:AUDIT_VALUE_MAX]}… {more}"


def _plain(value: str | None, name: Callable[[str], Any] = str) -> Any:
    """An audit value (JSON) in plain words: ``label: value; ...`` for a record (each column
    by ``name``, its label, shown in the reader's language), the value for a field."""
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return value
    if isinstance(data, dict):
        return Joined(
            tuple(
                Reason("audit.value", N_("{name}: {value}"), {"name": name(k), "value": text})
                for k, v in data.items()
                for text in [_capped(_scalar(v))]
            )
        )
    return _capped(_scalar(data))


_DECIMAL = re.compile(r"-?\d+\.\d+")


def _scalar(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return _number(Decimal(value))  # 123000.0000 as stored reads 123000
    return str(value)


def _audit_lines(rows: list[views.AuditRow], registry: Registry) -> list[AuditLine]:
    """The rows in the reader's words: each record by its form's label and number, each field
    by its label, written in the language the casebook is rendered in (the stored rows keep
    the table and column names)."""
    labels = audit_changes.labels_of(registry)
    out = []
    for r in rows:

        def name(column: str, table: str = r.table_name) -> Any:
            return labels.field_named(table, column)

        out.append(
            AuditLine(
                r.seq,
                r.at_utc,
                r.username,
                r.role,
                r.action,
                labels.record_named(r.table_name, r.record_id),
                name(r.field) if r.field else None,
                _plain(r.old_value, name),
                _plain(r.new_value, name),
                r.reason,
            )
        )
    return out


def _first(ctx: Ctx, model: Any, patient_id: int) -> Any:
    return ctx.session.scalars(select(model).where(model.patient_id == patient_id)).first()


@service(Action.READ, Resource.PATIENT)
def casebook(ctx: Ctx, code: str) -> Casebook:
    """Every record of patient ``code`` the actor may read, in the order of the trial."""
    patient = patients.get_patient(ctx, code)
    t = views.timeline(ctx, code)
    actor = ctx.actor
    pid = patient.id

    def may(section: str) -> bool:
        return actor.can(Action.READ, SECTION_NEEDS[section])

    inclusion = _first(ctx, Inclusion, pid)
    pre = _first(ctx, PreRandomizationAssessment, pid)
    rand = _first(ctx, Randomization, pid)
    labs = None
    if may("labs"):
        labs = [
            LabView(
                r.id,
                r.sample_date,
                r.analyte,
                r.value,
                r.unit,
                r.value_canonical,
                r.canonical_unit,
                r.uln,
                r.ctcae_grade,
            )
            for r in ctx.session.scalars(
                select(LabResult)
                .where(LabResult.patient_id == pid)
                .order_by(LabResult.sample_date, LabResult.id)
            )
        ]
    aes = None
    if may("adverse_events") and t.adverse_events is not None:
        stored = {
            a.id: a
            for a in ctx.session.scalars(select(AdverseEvent).where(AdverseEvent.patient_id == pid))
        }
        aes = [
            AdverseEventView(
                row,
                stored[row.id].resolution_date,
                stored[row.id].awareness_time,
                stored[row.id].description,
            )
            for row in sorted(t.adverse_events, key=lambda r: (r.onset_date, r.id))
        ]
    central_reads = central_evaluation = None
    local_reads = None
    if may("tumour_assessments"):
        local_reads = _reads(ctx, pid, "local")
    if may("central_review"):
        central_reads = _reads(ctx, pid, review.CENTRAL)
        if central_reads:
            central_evaluation = review.current_evaluation(ctx.session, patient, ctx.protocol)
    death = _first(ctx, Death, pid)
    eos = _first(ctx, EndOfStudy, pid)
    queries = None
    if may("queries"):
        queries = [
            QueryView(
                q.id,
                q.field,
                q.status,
                q.question,
                q.opened_by,
                as_utc(q.opened_at),
                q.answer,
                q.answered_by,
                as_utc(q.answered_at) if q.answered_at else None,
                q.closed_by,
                as_utc(q.closed_at) if q.closed_at else None,
                on=" ".join(
                    str(x) for x in (q.form_id, q.record_id, q.item, q.visit_code) if x is not None
                )
                or None,
                reopened_by=q.reopened_by,
                edit_check=q.edit_check,
                reopened_at=as_utc(q.reopened_at) if q.reopened_at else None,
                reopen_reason=q.reopen_reason,
            )
            for q in ctx.session.scalars(
                select(DataQuery).where(DataQuery.patient_id == pid).order_by(DataQuery.id)
            )
        ]
    return Casebook(
        code=patient.patient_code,
        timeline=t,
        registered_at=as_utc(patient.registered_at),
        protocol_version=patient.protocol_version,
        screenings=_screenings(ctx, pid),
        consent_signed=inclusion.consent_signed if inclusion else None,
        pre_randomization_comment=pre.comment if pre else None,
        randomized_at=as_utc(rand.randomized_at) if rand else None,
        randomized_by=rand.randomized_by if rand else None,
        labs=labs,
        adverse_events=aes,
        local_reads=local_reads,
        central_reads=central_reads,
        central_evaluation=central_evaluation,
        death=None
        if death is None
        else {"date": death.death_date, "cause": death.cause, "details": death.details},
        end_of_study=None
        if eos is None
        else {"date": eos.end_date, "reason": eos.reason, "details": eos.details},
        dosimetry=dosimetry.patient_dosimetry(ctx, code) if may("dosimetry") else None,
        queries=queries,
        audit=_audit_lines(views.audit_history(ctx, code), ctx.trial.forms)
        if may("audit")
        else None,
        generated_at=ctx.now(),
        generated_by=actor.username,
        generated_role=actor.role.value,
        software=f"reluth {__version__}",
        manifestations=None
        if not (may("sdv") or may("signatures"))
        else _manifestations(
            ctx,
            code,
            sdv_service.sdv_marks(ctx, code) if may("sdv") else None,
            signature_service.signatures(ctx, code) if may("signatures") else None,
        ),
    )


# ------------------------------------------------------------------------------- rendering


def _number(value: Any) -> str:
    """A stored number as recorded, in the reader's language (Decimals without trailing
    zeros, floats to 4 significant digits; ``2,875`` and ``132 000`` in French)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _shown(value)
    if isinstance(value, Decimal):
        return format_number(value.normalize() + 0)
    if isinstance(value, float):
        return format_number(Decimal(f"{value:.4g}"))
    if isinstance(value, int):
        return format_number(value)
    return str(value)


def _when(value: dt.datetime | None) -> str:
    """A moment in UTC as the reader's language writes the day (``05/03/2025 10:00 UTC``)."""
    if value is None:
        return "—"
    return format_moment(as_utc(value), dt.UTC)


def _utc_text(value: str) -> str:
    """An audit row's ISO moment (UTC) to the second, as the reader's language writes days."""
    from reluth.i18n import format_stored_moment

    return format_stored_moment(value)


def _shown(value: Any) -> str:
    """A value of the patient file: yes/no, numbers and days in the reader's language."""
    if value is None or value == "":
        return "—"
    if isinstance(value, list) and not value:
        return gettext("none")
    if isinstance(value, Decimal | float) and not isinstance(value, bool):
        return _number(value)
    return shown(value)


def environment(trial: Trial | None = None) -> Any:
    """The print templates' environment: the casebook's filters and gettext of the current
    language (``_()`` in the print templates), the vocabulary (``label``), and with ``trial``
    its code lists (``code``) and criteria's wording (``criterion_text``)."""
    import jinja2

    from reluth.i18n import ngettext, pgettext
    from reluth.i18n.messages import field_label
    from reluth.i18n.vocabulary import label, visit_name

    folder = resources.files("reluth.web").joinpath("templates")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext, ngettext, newstyle=True, pgettext=pgettext
    )

    def code(list_id: str, value: Any) -> str:
        text = "" if value is None else str(getattr(value, "value", value))
        if trial is not None:
            shown_code = trial.forms.code_label(list_id, text, get_locale())
            if shown_code != text:
                return shown_code
        return text.replace("_", " ")

    def criterion_text(criterion: str, fallback: str = "") -> str:
        if trial is None or criterion not in trial.protocol.eligibility.criteria.ids:
            return fallback or criterion
        return trial.protocol.eligibility.text(criterion, get_locale())

    def query_question(q: Any) -> str:
        if trial is None:
            return str(q.question)
        return trial.forms.question_in(q.edit_check, q.question, get_locale())

    env.globals.update(
        locale=get_locale,
        label=label,
        code=code,
        criterion_text=criterion_text,
        query_question=query_question,
        visit_name=visit_name,
        field_name=field_label,
    )
    env.filters["num"] = _number
    env.filters["when"] = _when
    env.filters["day"] = format_day
    env.filters["utc_text"] = _utc_text
    env.filters["shown"] = _shown
    env.filters["words"] = lambda text: str(text).replace("_", " ")
    env.filters["reason"] = shown_reason
    return env


def render_html(book: Casebook, trial: Trial | None = None) -> str:
    """The casebook as one HTML document (template ``casebook.html``) in the current language
    (the person asking's: the web request's, the CLI's ``LANG``)."""
    template = environment(trial).get_template("casebook.html")
    return str(template.render(b=book, t=book.timeline))


def pdf_of(html: str) -> bytes:
    """The PDF of ``html`` by WeasyPrint (PreconditionFailed when its system libraries are
    missing, naming them)."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:
        raise refusal(
            PreconditionFailed,
            "pdf_unavailable",
            N_(
                "the casebook PDF needs WeasyPrint and Pango (Debian: apt-get install "
                "libpango-1.0-0 libpangoft2-1.0-0): {problem}"
            ),
            problem=f"{exc.__class__.__name__}: {exc}",
        ) from None
    content: bytes = weasyprint.HTML(string=html).write_pdf()
    return content


@service(Action.READ, Resource.PATIENT)
def casebook_pdf(ctx: Ctx, code: str) -> CasebookFile:
    """The casebook of patient ``code`` as a PDF, built with SELECTs only (rendering takes
    seconds, which no write transaction should wait for). Hand it out only after
    :func:`record_casebook` has sealed its audit event, as the exports do."""
    book = casebook(ctx, code)
    content = pdf_of(render_html(book, ctx.trial))
    sections = [
        name
        for name, present in (
            ("labs", book.labs is not None),
            ("adverse_events", book.adverse_events is not None),
            ("tumour_assessments", book.local_reads is not None),
            ("central_review", book.central_reads is not None),
            ("dosimetry", book.dosimetry is not None),
            ("queries", book.queries is not None),
            ("audit", book.audit is not None),
            ("arm", book.timeline.arm is not None),
        )
        if present
    ]
    return CasebookFile(f"{book.code}-casebook.pdf", content, book.code, tuple(sections))


@service(Action.READ, Resource.PATIENT, writes=True)
def record_casebook(ctx: Ctx, file: CasebookFile) -> None:
    """Seal a casebook handed out into the audit trail (who, when, the file's SHA-256 and the
    sections it holds): it exports patient data. The patient is looked up again as the actor,
    so a casebook of a patient they may not read cannot be recorded as theirs."""
    patient = patients.get_patient(ctx, file.patient_code)
    ctx.record_event(
        AUDIT_ACTION,
        AUDIT_TABLE,
        patient.patient_code,
        {
            "file": file.filename,
            "sha256": file.sha256,
            "bytes": len(file.content),
            "with": list(file.sections),
        },
    )
