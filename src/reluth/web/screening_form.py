"""The screening form, laid out from the eligibility engine's own patient-file model.

Pure functions, no I/O: :func:`sections` walks :class:`reluth.protocol.patient.PatientFile`
(field types, choices, bounds, descriptions) into labelled inputs whose names are the field
paths the engine reports errors on (``labs.platelets.unit``, ``lesions.0.longest_diameter_mm``),
so a message lands next to its field. :func:`to_patient_file` turns the posted form back into
the patient file the engine reads: empty inputs are left out (the criterion stays *unknown*),
yes/no choices become booleans, and numbers and dates stay text for the engine to parse
exactly (Decimal). Adding a field to the model adds it to the form.
"""

from __future__ import annotations

import datetime as dt
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from reluth.errors import ReluthError, ValidationError, ValidationErrors
from reluth.i18n import N_
from reluth.i18n.messages import describe
from reluth.protocol.patient import LAB_TESTS, Lab, PatientFile
from reluth.units import display_units
from reluth.values import parse_number

#: Rows offered for repeated entries (lesions, adverse events, ...); blank rows are ignored.
ROWS = {"lesions": 6, "unresolved_adverse_events": 4, "other_cancers": 2, "cycle_dates": 4}
#: Marker input of a list where "none" differs from "not recorded" (``[]`` vs absent).
NONE_SUFFIX = ".none"
YES, NO = "yes", "no"


@dataclass(frozen=True)
class Input:
    name: str  # field path, also the form field name
    label: str
    kind: Literal["text", "integer", "decimal", "date", "yesno", "choice"]
    choices: tuple[str, ...] = ()
    help: str | None = None
    required: bool = False
    minimum: str | None = None
    maximum: str | None = None

    @property
    def html_id(self) -> str:
        return "f-" + self.name.replace(".", "-")


@dataclass(frozen=True)
class Section:
    title: str
    inputs: tuple[Input, ...] = ()
    rows: tuple[tuple[Input, ...], ...] = ()  # repeated entries, one tuple per row
    none_option: str | None = None  # name of the "none" marker input, if any
    help: str | None = None
    row_labels: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(_label(i.name.rsplit(".", 1)[-1]) for i in self.rows[0]) if self.rows else ()


_WORDS = {
    "ecog": "ECOG",
    "prrt": "PRRT",
    "sstr": "SSTR",
    "uln": "ULN",
    "lln": "LLN",
    "mm": "(mm)",
    "wbc": "WBC",
    "egfr": "eGFR",
    "alt": "ALT",
    "ast": "AST",
    "alp": "ALP",
    "g4": "grade 4",
    "ebrt": "EBRT",
}


def _label(name: str) -> str:
    words = [_WORDS.get(w, w) for w in name.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type without ``| None``, whether None was allowed)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else annotation), True
    return annotation, False


def _bounds(info: FieldInfo) -> tuple[str | None, str | None]:
    low = high = None
    for m in info.metadata:
        for attr in ("ge", "gt"):
            if getattr(m, attr, None) is not None:
                low = str(getattr(m, attr))
        for attr in ("le", "lt"):
            if getattr(m, attr, None) is not None:
                high = str(getattr(m, attr))
    return low, high


def _input(name: str, annotation: Any, info: FieldInfo, label: str | None = None) -> Input:
    kind_of, optional = _unwrap(annotation)
    low, high = _bounds(info)
    kind: Literal["text", "integer", "decimal", "date", "yesno", "choice"] = "text"
    choices: tuple[str, ...] = ()
    if typing.get_origin(kind_of) is Literal:
        kind, choices = "choice", tuple(map(str, typing.get_args(kind_of)))
    elif kind_of is bool:
        kind = "yesno"
    elif kind_of is int:
        kind = "integer"
    elif kind_of is Decimal or kind_of is float:
        kind = "decimal"
    elif kind_of is dt.date:
        kind = "date"
    return Input(
        name=name,
        label=label or _label(name.rsplit(".", 1)[-1]),
        kind=kind,
        choices=choices,
        help=info.description,
        required=info.is_required() and not optional and "." not in name,
        minimum=low,
        maximum=high,
    )


def _model_inputs(model: type[BaseModel], prefix: str, within: str = "") -> list[Input]:
    """Inputs of ``model``'s fields; ``within`` names an enclosing sub-record in the labels."""
    out: list[Input] = []
    for field, info in model.model_fields.items():
        kind_of, _ = _unwrap(info.annotation)
        path = f"{prefix}{field}"
        if isinstance(kind_of, type) and issubclass(kind_of, BaseModel):
            out.extend(_model_inputs(kind_of, f"{path}.", f"{_label(field)}: "))
        elif typing.get_origin(kind_of) is tuple:
            (item, *_rest) = typing.get_args(kind_of)
            out.extend(
                _input(f"{path}.{i}", item, info, f"{_label(field)} {i + 1}")
                for i in range(ROWS.get(field, 2))
            )
        else:
            label = f"{within}{_label(field).lower()}" if within else None
            out.append(_input(path, info.annotation, info, label))
    return out


def _lab_section() -> Section:
    rows = []
    for test in LAB_TESTS:
        row = []
        for field, info in Lab.model_fields.items():
            entry = _input(f"labs.{test}.{field}", info.annotation, info, f"{_label(test)} {field}")
            if field == "unit":
                units = display_units(test)
                entry = Input(entry.name, entry.label, "choice", units, entry.help)
            row.append(entry)
        rows.append(tuple(row))
    return Section(
        "Laboratory (screening values)",
        rows=tuple(rows),
        row_labels=tuple(_label(t) for t in LAB_TESTS),
        help="Value in the chosen unit; ULN/LLN in the same unit. Leave a test blank if not done.",
    )


def _list_section(field: str, model: type[BaseModel], prefix: str = "") -> Section:
    info = PatientFile.model_fields.get(field) or model.model_fields.get(field)
    rows = tuple(
        tuple(_model_inputs(model, f"{prefix}{field}.{i}.")) for i in range(ROWS.get(field, 2))
    )
    return Section(
        _label(field),
        rows=rows,
        row_labels=tuple(str(n) for n in range(1, len(rows) + 1)),
        none_option=f"{prefix}{field}{NONE_SUFFIX}",
        help=info.description if info is not None else None,
    )


@functools.cache
def sections() -> tuple[Section, ...]:
    """The screening form's sections, in the order of the patient file."""
    from reluth.protocol.patient import AdverseEvent, Lesion, OtherCancer

    out: list[Section] = []
    general: list[Input] = []
    for field, info in PatientFile.model_fields.items():
        if field == "patient_id":
            continue  # fixed by the page's patient
        kind_of, _ = _unwrap(info.annotation)
        if field == "labs":
            out.append(_lab_section())
        elif field == "lesions":
            out.append(_list_section(field, Lesion))
        elif field == "unresolved_adverse_events":
            out.append(_list_section(field, AdverseEvent))
        elif field == "history":
            inputs = [
                i for i in _model_inputs(kind_of, "history.") if ".other_cancers" not in i.name
            ]
            out.append(Section(_label(field), tuple(inputs)))
            out.append(_list_section("other_cancers", OtherCancer, "history."))
        elif isinstance(kind_of, type) and issubclass(kind_of, BaseModel):
            out.append(Section(_label(field), tuple(_model_inputs(kind_of, f"{field}."))))
        else:
            general.append(_input(field, info.annotation, info))
    return (Section("Patient", tuple(general)), *out)


def all_inputs() -> list[Input]:
    found: list[Input] = []
    for s in sections():
        found.extend(s.inputs)
        for row in s.rows:
            found.extend(row)
    return found


def _put(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _listify(node: Any) -> Any:
    """Dicts keyed by row numbers become lists in row order (blank rows were never added)."""
    if not isinstance(node, dict):
        return node
    node = {k: _listify(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node


def to_patient_file(form: Mapping[str, str], patient_code: str) -> dict[str, Any]:
    """The patient file described by a posted screening form."""
    tree: dict[str, Any] = {"patient_id": patient_code}
    for entry in all_inputs():
        raw = (form.get(entry.name) or "").strip()
        if not raw:
            continue
        value: Any = raw
        if entry.kind == "decimal":  # a decimal comma or point, as every numeric field
            value = str(parse_number(raw, entry.name))
        if entry.kind == "yesno":
            if raw not in (YES, NO):
                raise ValidationError(
                    entry.name,
                    f"got {raw!r}",
                    "yes, no or blank (unknown)",
                    code="not_a_boolean",
                    params={"value": raw[:40]},
                )
            value = raw == YES
        _put(tree, entry.name.split("."), value)
    for s in sections():
        if s.none_option and form.get(s.none_option) == YES:
            path = s.none_option.removesuffix(NONE_SUFFIX).split(".")
            node: Any = tree
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if node:
                raise ValidationError(
                    s.none_option.removesuffix(NONE_SUFFIX),
                    N_("marked none but rows are filled in"),
                )
            _put(tree, path, [])
    result: dict[str, Any] = _listify(tree)
    return result


def to_form(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """The form values that show a patient file (the reverse of :func:`to_patient_file`)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(to_form(value, f"{name}."))
        elif isinstance(value, list | tuple):
            if not value:
                out[name + NONE_SUFFIX] = YES
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    out.update(to_form(item, f"{name}.{i}."))
                else:
                    out[f"{name}.{i}"] = str(item)
        elif isinstance(value, bool):
            out[name] = YES if value else NO
        elif value is not None:
            out[name] = str(value)
    return out


def field_errors(exc: ReluthError) -> dict[str, str]:
    """Messages by form field name, for those problems that name a field of the form."""
    problems = exc.errors if isinstance(exc, ValidationErrors) else [exc]
    names = {i.name for i in all_inputs()} | {
        s.none_option.removesuffix(NONE_SUFFIX) for s in sections() if s.none_option
    }
    out: dict[str, str] = {}
    for p in problems:
        field = getattr(p, "field", None) or ""
        for candidate in (field, f"{field}.value"):
            if candidate in names:
                out.setdefault(candidate, describe(p))
                break
    return out
