"""Every key of the protocol file is read: the model consumes it, and code outside the model
reads the field it becomes.

Two checks over the key paths of ``reluth.yaml``:

1. *Consumed*: walking the YAML beside the :class:`Protocol` model, every key names a field of
   the model at that place (keys of dict-valued fields, e.g. a factor's ``levels``, are data).
   A key nobody consumes fails here (and the loader refuses it: ``extra="forbid"``).
2. *Read*: every field a key becomes is read somewhere in ``src/reluth`` — an attribute access
   (``protocol.eligibility.platelets_min_10e9_l``), a name given as a string (``getattr``), an
   attribute in a page template (``protocol.all_cycles``) or a ``{placeholder}`` of the
   criteria's texts. A key the model consumes but nothing uses fails here. The check is by
   name, so a field whose name is also used for something else passes; it cannot pass a name
   that appears nowhere.

Both checks are shown to fail on a copy of the file with one extra key.
"""

from __future__ import annotations

import ast
import re
import string
import types
import typing
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, create_model

from reluth.errors import ValidationError
from reluth.protocol.definition import DEFAULT_PATH, Eligibility, Protocol, load_protocol

SRC = Path(__file__).resolve().parents[2] / "src" / "reluth"

#: (model, field) pairs a key path ends in, and the key paths nothing consumes
Consumed = set[tuple[type[BaseModel], str]]


def _unwrap(annotation: Any) -> list[Any]:
    """The types a field annotation may hold (``X | None`` -> [X])."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _walk(data: Any, annotation: Any, path: str, consumed: Consumed, unconsumed: list[str]) -> None:
    for kind in _unwrap(annotation):
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel) and isinstance(data, dict):
            for key, value in data.items():
                where = f"{path}.{key}" if path else str(key)
                field = kind.model_fields.get(str(key))
                if field is None:
                    unconsumed.append(where)
                    continue
                consumed.add((kind, str(key)))
                _walk(value, field.annotation, where, consumed, unconsumed)
        elif origin in (tuple, list) and isinstance(data, list):
            item = args[0] if args else Any
            for value in data:
                _walk(value, item, f"{path}[]", consumed, unconsumed)
        elif origin is dict and isinstance(data, dict):
            for key, value in data.items():  # keys are data: levels, labels, criterion ids
                _walk(value, args[1], f"{path}.{key}", consumed, unconsumed)


def key_paths(data: Any, model: type[BaseModel] = Protocol) -> tuple[Consumed, list[str]]:
    """The model fields the YAML's keys become, and the key paths no field consumes."""
    consumed: Consumed = set()
    unconsumed: list[str] = []
    _walk(data, model, "", consumed, unconsumed)
    return consumed, unconsumed


def _names_in_python(source: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def read_names(files: Iterable[Path], data: Any) -> set[str]:
    """Every name the code reads: attributes and string constants in Python, attributes in
    templates, and the placeholders of the criteria's texts in the protocol ``data``."""
    names: set[str] = set()
    for f in files:
        text = f.read_text(encoding="utf-8")
        if f.suffix == ".py":
            names.update(_names_in_python(text))
        else:
            names.update(part.split(".")[-1] for part in _template_attributes(text))
    for texts in data.get("eligibility", {}).get("criteria", {}).values():
        for written in texts.values():  # a template, or one per language ({en: .., fr: ..})
            for template in written.values() if isinstance(written, dict) else [written]:
                names.update(f for _, f, _, _ in string.Formatter().parse(template) if f)
    return names


def _template_attributes(text: str) -> Iterator[str]:
    yield from re.findall(r"\b[a-z_]\w*(?:\.[a-z_]\w*)+", text)


def unread_fields(consumed: Consumed, names: set[str]) -> list[str]:
    return sorted(f"{model.__name__}.{field}" for model, field in consumed if field not in names)


def _source_files() -> list[Path]:
    return sorted([*SRC.rglob("*.py"), *SRC.rglob("*.html")])


def _shipped() -> Any:
    return yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))


def _copy_with_extra_key(tmp_path: Path) -> Path:
    """The shipped file plus ``eligibility.platelets_max_10e9_l``, which nothing reads."""
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    anchor = '  platelets_min_10e9_l: "80"\n'
    assert text.count(anchor) == 1
    copy = tmp_path / "reluth-extra-key.yaml"
    copy.write_text(
        text.replace(anchor, anchor + '  platelets_max_10e9_l: "900"\n'), encoding="utf-8"
    )
    return copy


def test_every_key_of_the_shipped_protocol_is_consumed_by_the_model() -> None:
    consumed, unconsumed = key_paths(_shipped())
    assert unconsumed == []
    assert (Eligibility, "platelets_min_10e9_l") in consumed  # the walk reaches the leaves
    assert len(consumed) > 100


def test_every_field_of_the_shipped_protocol_is_read_by_the_code() -> None:
    data = _shipped()
    consumed, _ = key_paths(data)
    assert unread_fields(consumed, read_names(_source_files(), data)) == []


def test_an_extra_key_in_a_copy_of_the_file_is_found_and_refused(tmp_path: Path) -> None:
    copy = _copy_with_extra_key(tmp_path)
    data = yaml.safe_load(copy.read_text(encoding="utf-8"))
    _, unconsumed = key_paths(data)
    assert unconsumed == ["eligibility.platelets_max_10e9_l"]
    with pytest.raises(ValidationError, match=r"eligibility\.platelets_max_10e9_l"):
        load_protocol(copy)


def test_an_extra_key_the_model_consumes_but_no_code_reads_is_found(tmp_path: Path) -> None:
    # A model amended to consume the extra key (the loader then accepts the copy), while no
    # code reads it: the second check names it.
    amended_eligibility = create_model(
        "AmendedEligibility", __base__=Eligibility, platelets_max_10e9_l=(Decimal, ...)
    )
    amended_protocol = create_model(
        "AmendedProtocol", __base__=Protocol, eligibility=(amended_eligibility, ...)
    )
    data = yaml.safe_load(_copy_with_extra_key(tmp_path).read_text(encoding="utf-8"))
    amended_protocol.model_validate(data)  # consumed: the amended model loads the copy
    consumed, unconsumed = key_paths(data, amended_protocol)
    assert unconsumed == []
    assert unread_fields(consumed, read_names(_source_files(), data)) == [
        "AmendedEligibility.platelets_max_10e9_l"
    ]


def test_a_field_read_in_one_place_only_is_unread_without_that_place() -> None:
    # The reader check looks at the code: without the eligibility engine, the thresholds only
    # its rules read are unread.
    data = _shipped()
    consumed, _ = key_paths(data)
    others = [f for f in _source_files() if f.name != "eligibility.py"]
    missing = unread_fields(consumed, read_names(others, data))
    assert "Eligibility.other_cancer_exceptions" in missing
    assert "Eligibility.unresolved_ae_exceptions" in missing
