"""One correction mechanism for every registered form: open a saved form instance (policy
first, then the record scoped to the actor's centres), lay out its correction form from the
registry, turn what a page, the API or the CLI typed into the domain's changes, and correct it
through the domain's own correction service — which re-checks its invariants and re-derives
what depends on the value (CTCAE grade, QoL scores, RECIST evaluation) in the same audited
unit of work, whose reason the audit trail keeps beside old and new value (ICH E6(R3) 4.2.4;
21 CFR 11.10(e)).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reluth.core.context import Ctx
from reluth.errors import ValidationError
from reluth.forms import refs
from reluth.forms.bindings import Binding, Input, binding
from reluth.forms.registry import FieldDef, FormDef, Registry
from reluth.i18n import N_, get_locale
from reluth.i18n.reasons import invalid_worded
from reluth.values import parse_date

_KINDS = {
    "date": "date",
    "time": "time",
    "decimal": "decimal",
    "integer": "text",
    "code": "select",
    "boolean": "checkbox",
    "textarea": "textarea",
    "text": "text",
}
_GROUPS = ("items", "lesions")


def registry_of(ctx: Ctx) -> Registry:
    return ctx.trial.forms


@dataclass(frozen=True)
class Instance:
    """A saved form instance opened for correction."""

    form: FormDef
    binding: Binding
    ref: refs.RecordRef
    row: Any


def _require_write(ctx: Ctx, b: Binding) -> None:
    entry = b.write.__reluth_service__  # type: ignore[attr-defined]
    ctx.actor.require(entry.action, entry.resource)


def open_instance(ctx: Ctx, form_id: str, record_id: int) -> Instance:
    """Form ``form_id``'s saved record ``record_id`` for correction: 403 unless the actor may
    correct that form at all, 404 for a record of a centre they do not see (as unknown)."""
    registry = registry_of(ctx)
    form = registry.form(form_id)
    b = binding(form.id)
    _require_write(ctx, b)
    ref = refs.ref_of(ctx.session, registry, form.id, record_id)
    stored = refs.load_row(ctx.session, registry, ref)
    row = b.fetch(ctx, ref.patient_code, b.key(stored))
    return Instance(form, b, ref, row)


def open_by_key(ctx: Ctx, form_id: str, patient_code: str, key: str) -> Instance:
    """The same, named as the domain names it (a cycle number, a visit code; nothing for a
    patient's inclusion): the correction URLs pages and the API had before the registry."""
    registry = registry_of(ctx)
    form = registry.form(form_id)
    b = binding(form.id)
    _require_write(ctx, b)
    row = b.fetch(ctx, patient_code, b.parse_key(key))
    return Instance(form, b, refs.ref_of_row(ctx.session, form, row), row)


def _input(registry: Registry, f: FieldDef, row: Any) -> Input:
    """The input of field ``f``, labelled in the reader's language (the registry's texts)."""
    lang = get_locale()
    kind = _KINDS.get(f.type, "text")
    opts: tuple[tuple[str, str], ...] = ()
    if kind == "select" and f.codes is not None:
        codes = f.codes
        opts = tuple((c, registry.code_label(codes, c, lang)) for c in registry.codes(codes))
    return Input(f.name, f.label_for(row, lang), kind, opts, f.help_in(lang), f.name)


def heading(ctx: Ctx, inst: Instance) -> str:
    """The correction page's heading in the reader's language; a code of the record it names
    (a withdrawal's kind) is shown by its registry label, never as the stored code."""
    registry, lang = registry_of(ctx), get_locale()

    def code(name: str) -> str:
        value = getattr(inst.row, name)
        codes = inst.form.field(name).codes
        if value is None or codes is None:
            return "" if value is None else str(value)
        return registry.code_label(codes, str(value), lang)

    return inst.binding.heading(inst.row, code)


def inputs(ctx: Ctx, inst: Instance) -> list[Input]:
    """The correction form's inputs, in the registry's order (a group field such as the QoL
    items or the lesions of a read expands to its record's inputs)."""
    registry = registry_of(ctx)
    hidden = inst.binding.hidden(inst.row)
    out: list[Input] = []
    for f in inst.form.correctable:
        if f.name in hidden:
            continue
        if f.type in _GROUPS:
            if inst.binding.group_inputs is not None:
                out.extend(inst.binding.group_inputs(inst.row))
            continue
        out.append(_input(registry, f, inst.row))
    return out


def saved_values(inst: Instance) -> dict[str, str]:
    """The saved values as the correction form shows them (text)."""
    values = dict(inst.binding.saved(inst.row))
    if inst.binding.group_values is not None:
        values.update(inst.binding.group_values(inst.row))
    return values


def error_input(inst: Instance, field_name: str | None) -> str | None:
    """The input an error belongs to: the last part of the field it names
    (``adverse_event.grade`` -> ``grade``), or the group input (``items.29`` -> ``item_29``)."""
    if not field_name:
        return None
    if inst.binding.error_input is not None:
        found = inst.binding.error_input(field_name)
        if found is not None:
            return found
    return field_name.rsplit(".", 1)[-1]


def _numeric_code(registry: Registry, f: FieldDef) -> bool:
    return f.type == "integer" or (
        f.codes is not None and all(c.isdigit() for c in registry.codes(f.codes))
    )


def _typed(registry: Registry, f: FieldDef, text: str) -> Any:
    """Typed text as the domain takes it: a number for a numeric code, a boolean, None for a
    blank optional field; the domain parses the rest (dates, decimals) with its own rules."""
    value = text.strip()
    if f.type == "boolean":
        return value.lower() in ("yes", "true", "1", "on")
    if not value:
        return "" if f.required else None
    if _numeric_code(registry, f) and value.isascii() and value.isdigit():
        return int(value)
    if f.type == "date":  # read as entry reads it: ISO or dd/mm/yyyy (reluth.values)
        return parse_date(value, f.name)
    return value


def changes_from_form(ctx: Ctx, inst: Instance, posted: Mapping[str, str]) -> dict[str, Any]:
    """What a correction page posted, as the domain's changes: only the inputs posted (a
    checkbox is posted only when ticked, so it counts as answered)."""
    registry = registry_of(ctx)
    hidden = inst.binding.hidden(inst.row)
    changes: dict[str, Any] = {}
    for f in inst.form.correctable:
        if f.name in hidden or f.type in _GROUPS:
            continue
        if f.type == "boolean" or f.name in posted:
            changes[f.name] = _typed(registry, f, posted.get(f.name, ""))
    if inst.binding.group_changes is not None:
        changes.update(inst.binding.group_changes(inst.row, posted))
    return changes


def changes_from_pairs(ctx: Ctx, inst: Instance, pairs: Iterable[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs (the CLI) as the domain's changes; a dotted name reaches into a
    group field (``items.29=3``, ``lesions.T1.diameter_mm=14``). An empty value clears."""
    registry = registry_of(ctx)
    changes: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValidationError(
                "field",
                f"{pair!r} is not NAME=VALUE",
                "e.g. value=45000",
                code="not_a_pair",
                params={"value": pair[:80]},
            )
        head, *rest = name.split(".")
        f = _correctable(inst.form, head)
        if not rest:
            changes[head] = _typed(registry, f, value)
            continue
        target = changes.setdefault(head, {})
        for part in rest[:-1]:
            target = target.setdefault(part, {})
        target[rest[-1]] = value.strip() or None
    return changes


def _correctable(form: FormDef, name: str) -> FieldDef:
    f = form.field(name) if name in form.field_names else None
    if f is None or f not in form.correctable:
        names = ", ".join(x.name for x in form.correctable)
        raise invalid_worded(
            name,
            "not_correctable",
            N_("{field}: cannot be changed on form {form} (accepted: {accepted})"),
            f"cannot be changed on form {form.id}",
            names,
            form=form.cited(),
            accepted=names,
        )
    return f


def check_fields(inst: Instance, changes: Mapping[str, Any]) -> None:
    """Refuse a change of a field the form does not let change, naming it (the registry is the
    first check; the domain checks again)."""
    for name in changes:
        _correctable(inst.form, name)


def correct(ctx: Ctx, inst: Instance, changes: Mapping[str, Any]) -> Any:
    """Correct the instance through its domain's correction service (the unit of work carries
    the reason); the corrected row."""
    check_fields(inst, changes)
    return inst.binding.correct(ctx, inst.ref.patient_code, inst.row, changes)


def result(ctx: Ctx, inst: Instance, row: Any) -> dict[str, Any]:
    """What the API and the CLI answer after a correction: the form instance and its values."""
    return {"form": inst.form.id, "record_id": inst.ref.record_id, **inst.binding.result(ctx, row)}
