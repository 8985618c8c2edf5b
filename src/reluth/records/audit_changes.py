"""The audit trail of one patient in plain words: each saved change as one entry (who, when,
why, on which form and record) with its field-level changes labelled as the form registry
labels the field, old value → new value decoded from the trail's JSON (ICH E6(R3) 4.2.2 and
Appendix C: the audit trail readable by the people who review it; EU GCP guideline on
computerised systems EMA/INS/GCP/112288/2023 §6.2: changes shown with who, when and why).

The rows are those :func:`reluth.records.views.audit_history` lets the reader see (centre scope,
concealed allocation fields); this module only groups and labels them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.forms.registry import SOURCE_LANGUAGE, Registry
from reluth.i18n import N_, format_day, format_moment, get_locale, gettext
from reluth.i18n.messages import field_label
from reluth.i18n.reasons import Field, Reason, Translated, Word
from reluth.records.views import AuditRow, audit_history

#: A placeholder of a label the record's values do not fill (`` ({unit})``): left out.
_UNRESOLVED = re.compile(r"\s*\(\{\w+\}\)")
#: A number as a Numeric column keeps it (``74.0000``), in a column the registry does not type.
_NUMBER = re.compile(r"-?\d+\.\d+")
#: An ISO 8601 moment as the trail keeps timestamps (``2025-03-12T09:00:00+00:00``).
_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
#: Columns every record has that say nothing a reader needs (the record is named already).
_PLUMBING = frozenset({"id", "patient_id", "protocol_version"})


@dataclass(frozen=True)
class FieldChange:
    """One field of a record: its label, the value before and after (None: no value)."""

    field: str
    label: str
    old: Any
    new: Any


@dataclass(frozen=True)
class AuditChange:
    """One saved change of one record: the audit rows written together by one person."""

    first_seq: int
    last_seq: int
    at: dt.datetime  # UTC; pages show it in the site's time
    username: str
    role: str
    action: str  # insert | update | delete
    table_name: str
    record_id: str
    form: str  # the registry's form label, else the table name
    reason: str | None
    changes: tuple[FieldChange, ...]


def _decode(text: str | None) -> Any:
    """A value of the trail (JSON text) as Python; text that is itself JSON (a stored patient
    file, a verdict) decoded too, so that nobody reads escaped JSON."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return _inner(value)


def _inner(value: Any) -> Any:
    """A text column holding JSON (``input_json``, ``answers_json``) as its object."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


#: The words of the columns and tables the registry does not label (the trail's own, the
#: lifecycle's and the engines' records), marked for translation; any other column is
#: shown in words from its name.
COLUMN_LABELS: dict[str, str] = {
    "action_taken": N_("Action taken"),
    "administration_id": N_("Administration id"),
    "adverse_event_id": N_("Adverse event id"),
    "answered_at": N_("Answered at"),
    "answered_by": N_("Answered by"),
    "assessed_at": N_("Assessed at"),
    "assessed_by": N_("Assessed by"),
    "assessment_id": N_("Assessment id"),
    "baseline_assessment_id": N_("Baseline assessment id"),
    "baseline_sum_mm": N_("Baseline sum mm"),
    "bor_date": N_("Best overall response date"),
    "bor_rule": N_("Best overall response rule"),
    "canonical_unit": N_("Canonical unit"),
    "centre_id": N_("Centre id"),
    "change_from_baseline_pct": N_("Change from baseline (%)"),
    "closed_at": N_("Closed at"),
    "closed_by": N_("Closed by"),
    "code": N_("Code"),
    "coding_dictionary": N_("Coding dictionary"),
    "covered": N_("Covered"),
    "dcr6_message": N_("Month-6 disease control (key)"),
    "dcr6_reason": N_("Month-6 disease control reason"),
    "details_json": N_("Details"),
    "diameter_mm": N_("Diameter mm"),
    "disease_control_month6": N_("Disease control at month 6"),
    "edit_check": N_("Edit check"),
    "evaluation_id": N_("Evaluation id"),
    "first_pd_date": N_("First progression date"),
    "form_id": N_("Form id"),
    "item": N_("Item"),
    "label": N_("Label"),
    "landmark_date": N_("Landmark date"),
    "landmark_day": N_("Landmark day"),
    "landmark_end": N_("Landmark end"),
    "landmark_start": N_("Landmark start"),
    "landmark_window_days": N_("Landmark window days"),
    "lesion_id": N_("Lesion id"),
    "list_id": N_("List id"),
    "locked_at": N_("Locked at"),
    "locked_by": N_("Locked by"),
    "meddra_llt_code": N_("MedDRA LLT code"),
    "meddra_pt_code": N_("MedDRA PT code"),
    "meddra_soc": N_("MedDRA SOC"),
    "meddra_term": N_("MedDRA term"),
    "min_sd_duration_days": N_("Minimum stable disease duration days"),
    "nadir_mm": N_("Nadir mm"),
    "non_target": N_("Non-target"),
    "note_messages": N_("Notes (keys)"),
    "opened_at": N_("Opened at"),
    "opened_by": N_("Opened by"),
    "options_json": N_("Options"),
    "overall_as_read": N_("Overall response as read"),
    "patient_id": N_("Patient id"),
    "position": N_("Position"),
    "printed_name": N_("Printed name"),
    "question": N_("Question"),
    "randomized_by": N_("Randomized by"),
    "reader": N_("Reader"),
    "received_at": N_("Received at"),
    "received_by": N_("Received by"),
    "recorded_at": N_("Recorded at"),
    "recorded_by": N_("Recorded by"),
    "redated_by_assessment_id": N_("Redated by assessment id"),
    "reference_date": N_("Reference date"),
    "registered_at": N_("Registered at"),
    "reopen_reason": N_("Reopen reason"),
    "reopened_at": N_("Reopened at"),
    "reopened_by": N_("Reopened by"),
    "report_id": N_("Report id"),
    "reported_at": N_("Reported at"),
    "reported_by": N_("Reported by"),
    "request_id": N_("Request id"),
    "rsi_document": N_("Reference safety information"),
    "rsi_version": N_("Reference safety information version"),
    "scope": N_("Scope"),
    "screened_at": N_("Screened at"),
    "screening_id": N_("Screening id"),
    "sealed": N_("Sealed"),
    "sequence": N_("Sequence"),
    "signed_at": N_("Signed at"),
    "slot_id": N_("Slot id"),
    "strata_json": N_("Strata"),
    "stratum_key": N_("Stratum key"),
    "submitted_at": N_("Submitted at"),
    "sum_mm": N_("Sum mm"),
    "susar": N_("SUSAR"),
    "table_name": N_("Table name"),
    "treatment": N_("Treatment"),
    "trigger_assessment_id": N_("Trigger assessment id"),
    "unlock_reason": N_("Unlock reason"),
    "unlocked_at": N_("Unlocked at"),
    "unlocked_by": N_("Unlocked by"),
    "user_id": N_("User id"),
    "value_canonical": N_("Value in the canonical unit"),
    "values_sha256": N_("Values SHA-256"),
    "verified_at": N_("Verified at"),
    "verified_by": N_("Verified by"),
    "version": N_("Version"),
    "visit_code": N_("Visit code"),
}
#: Tables of a patient's audit trail that hold no form of the registry, by what they keep.
TABLE_LABELS: dict[str, str] = {
    "allocation_slots": N_("Allocation slots"),
    "casebooks": N_("Casebook"),
    "data_queries": N_("Data query"),
    "lesion_measurements": N_("Lesion measurement"),
    "missing_data": N_("Missing data"),
    "recist_evaluations": N_("RECIST evaluations"),
    "recist_time_points": N_("RECIST time points"),
    "record_locks": N_("Record locks"),
    "sae_assessments": N_("SAE assessments"),
    "sae_receipts": N_("SAE receipt"),
    "sae_reports": N_("SAE reports"),
    "sdv_marks": N_("SDV marks"),
    "signatures": N_("Signatures"),
}


def _humanize(column: str) -> str:
    """A column the registry does not label, in words (``result_json`` -> ``Result``): its
    marked label when it has one (the page translates it)."""
    if column in COLUMN_LABELS:
        return COLUMN_LABELS[column]
    if column in TABLE_LABELS:
        return TABLE_LABELS[column]
    name = column.removesuffix("_json").removesuffix("_utc")
    return name.replace("_", " ").strip().capitalize()


class _Labels:
    """Field labels of a table's columns from the registry, with the record's own values in
    place of ``{unit}``-like placeholders."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def form(self, table: str) -> str:
        """The form a table holds by its label in the reader's language (a table of no form:
        what it keeps; the stored name is never shown)."""
        forms = self.registry.forms_of_table(table)
        if forms:
            return forms[0].label_in(get_locale())
        return gettext(TABLE_LABELS[table]) if table in TABLE_LABELS else _humanize(table)

    def record(self, table: str, record_id: str) -> str:
        """A record by its form's label and its number (``Laboratory result #17092``)."""
        return self.record_named(table, record_id).render()

    def form_named(self, table: str) -> Translated | Word | str:
        """:meth:`form` as a value shown in the language of whoever reads it (a casebook is
        built once and written in the reader's language)."""
        forms = self.registry.forms_of_table(table)
        if forms:
            return forms[0].named()
        return Word(TABLE_LABELS[table]) if table in TABLE_LABELS else _humanize(table)

    def record_named(self, table: str, record_id: str) -> Reason:
        return Reason(
            "audit.record",
            N_("{form} #{record}"),
            {"form": self.form_named(table), "record": record_id},
        )

    def field_named(self, table: str, column: str) -> Translated | Field | str:
        """:meth:`field` as a value shown in the reader's language (a label's placeholders,
        the record's own values, left out)."""
        for form in self.registry.forms_of_table(table):
            for f in form.fields:
                if f.column == column:
                    texts = f.texts.get("label", {SOURCE_LANGUAGE: f.label})
                    return Translated(
                        tuple((lang, _UNRESOLVED.sub("", t).strip()) for lang, t in texts.items())
                    )
        return Field(column) if field_label(column) != column else _humanize(column)

    def field(self, table: str, column: str, record: dict[str, Any]) -> tuple[str, str | None]:
        """(label, registry type or None) of ``column``: the registry's label, else the label
        people read it by elsewhere (reluth.i18n.messages), else the column in words."""
        for form in self.registry.forms_of_table(table):
            for f in form.fields:
                if f.column == column:
                    label = f.label_for(SimpleNamespace(**record), get_locale())
                    return _UNRESOLVED.sub("", label).strip(), f.type
        known = field_label(column)
        return (known if known != column else _humanize(column)), None


def labels_of(registry: Registry) -> _Labels:
    """The labels of forms, records and fields of the audit trail, from ``registry``."""
    return _Labels(registry)


def _typed(value: Any, kind: str | None) -> Any:
    """A number of a decimal field (or of a column the registry does not describe) as typed:
    ``74000.0000`` as the column keeps it -> 74000."""
    internal_number = kind is None and isinstance(value, str) and _NUMBER.fullmatch(value)
    decimal = kind == "decimal" and isinstance(value, str | int | float)
    if (decimal or internal_number) and not isinstance(value, bool):
        try:
            number = Decimal(str(value))
        except ArithmeticError:
            return value
        return format(number.normalize(), "f") if number.is_finite() else value
    return value


def plain(value: Any, zone: dt.tzinfo | None = None) -> str:
    """A decoded value as a person reads it: yes/no, numbers and text as they are, dates in the
    reader's format, moments in ``zone`` (the site's), a list comma-separated; an empty value
    as a dash."""
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, list):
        return ", ".join(plain(v, zone) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {plain(v, zone)}" for k, v in value.items())
    text = str(value)
    if len(text) == 10 and text[4:5] == "-" and text[7:8] == "-":
        return format_day(text)
    if _MOMENT.match(text):
        try:
            return format_moment(_at(text), zone or dt.UTC)
        except ValueError:
            return text
    return text


def flatten(value: Any, prefix: str = "", zone: dt.tzinfo | None = None) -> list[tuple[str, str]]:
    """A nested object (a stored patient file, a verdict) as (path, value) lines."""
    if isinstance(value, dict):
        lines: list[tuple[str, str]] = []
        for k, v in value.items():
            lines.extend(flatten(v, f"{prefix}{k}" if not prefix else f"{prefix} › {k}", zone))
        return lines
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        lines = []
        for i, v in enumerate(value, start=1):
            lines.extend(flatten(v, f"{prefix} {i}" if prefix else str(i), zone))
        return lines
    return [(prefix, plain(value, zone))]


def _natural(path: str) -> tuple[Any, ...]:
    """Item 2 before item 10."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path))


def _at(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def group_changes(rows: list[AuditRow], registry: Registry) -> list[AuditChange]:
    """Audit rows (oldest first) as entries: consecutive rows of one record, one person, one
    moment, one action and one reason are one saved change."""
    labels = _Labels(registry)
    known: dict[tuple[str, str], dict[str, Any]] = {}  # the record's values as the trail says
    out: list[AuditChange] = []
    pending: list[AuditRow] = []

    def key(r: AuditRow) -> tuple[Any, ...]:
        return (r.at_utc, r.username, r.action, r.table_name, r.record_id, r.reason)

    def close() -> None:
        if not pending:
            return
        first = pending[0]
        record = known.setdefault((first.table_name, first.record_id), {})
        changes: list[FieldChange] = []
        for r in pending:
            old, new = _decode(r.old_value), _decode(r.new_value)
            if r.field is None and isinstance(new if new is not None else old, dict):
                whole = new if new is not None else old
                record.update(whole)
                for column, text in whole.items():
                    value = _inner(text)
                    if column in _PLUMBING or column.endswith("_id") or value is None:
                        continue
                    label, kind = labels.field(r.table_name, column, record)
                    value = _typed(value, kind)
                    before, after = (None, value) if new is not None else (value, None)
                    changes.append(FieldChange(column, label, before, after))
            else:
                column = r.field or ""
                if column:
                    record[column] = new
                label, kind = labels.field(r.table_name, column, record) if column else ("", None)
                if isinstance(old, dict) and isinstance(new, dict):
                    # a JSON text of answers or scores: only the items that changed
                    before, after = dict(flatten(old)), dict(flatten(new))
                    for path in sorted(before.keys() | after.keys(), key=_natural):
                        if before.get(path) != after.get(path):
                            changes.append(
                                FieldChange(
                                    f"{column}.{path}",
                                    f"{label} › {path}",
                                    before.get(path),
                                    after.get(path),
                                )
                            )
                    continue
                changes.append(FieldChange(column, label, _typed(old, kind), _typed(new, kind)))
        out.append(
            AuditChange(
                first_seq=first.seq,
                last_seq=pending[-1].seq,
                at=_at(first.at_utc),
                username=first.username,
                role=first.role,
                action=first.action,
                table_name=first.table_name,
                record_id=first.record_id,
                form=labels.form(first.table_name),
                reason=first.reason,
                changes=tuple(changes),
            )
        )
        pending.clear()

    for r in rows:
        if pending and key(pending[-1]) != key(r):
            close()
        pending.append(r)
    close()
    return out


@service(Action.READ, Resource.AUDIT)
def audit_changes(ctx: Ctx, code: str) -> list[AuditChange]:
    """The patient's audit history as saved changes, oldest first (the rows
    :func:`audit_history` shows the reader)."""
    return group_changes(audit_history(ctx, code), ctx.trial.forms)
