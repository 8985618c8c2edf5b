"""A reason an engine gives (an eligibility verdict, a RECIST note, a CTCAE rule, a refusal) as
a stable message key, its source-language template and the values it was built from, so it is
written in the reader's language where it is shown, never by translating formatted English.

Engines stay pure: they build a :class:`Reason` and need no catalogue. Values keep their type
(numbers are formatted by Babel in the reader's language, days as dd/mm/yyyy in French, field
paths are shown by their labels but kept for highlighting). ``as_dict``/``from_dict`` give the
JSON stored with a screening and returned by ``--json`` (keys and values, untranslated).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

from reluth.errors import PreconditionFailed, ReluthError, ValidationError
from reluth.i18n import (
    DEFAULT,
    N_,
    day_placeholder,
    format_number,
    get_locale,
    gettext,
    use_locale,
)
from reluth.i18n.messages import _shown as plain_value
from reluth.i18n.messages import field_label

E = TypeVar("E", bound=ReluthError)

#: Findings one after the other (French sets a space before the semicolon).
SEMICOLON = N_("; ")


@dataclass(frozen=True)
class Quantity:
    """A measured value with its unit (``79999 /mm3``), shown ``79 999 /mm³`` in French."""

    value: Decimal
    unit: str


@dataclass(frozen=True)
class Field:
    """An input named by its path (``labs.platelets``): shown by its label, kept for the form
    to highlight it."""

    path: str


@dataclass(frozen=True)
class Word:
    """A word of the trial's vocabulary (``radiological``, ``intestinal``), marked with ``N_``
    where it is made and translated where it is shown."""

    text: str


@dataclass(frozen=True)
class Visit:
    """A planned visit by its code and the schedule's English name (``FU-M6``), shown by its
    name in the reader's language (:func:`reluth.i18n.vocabulary.visit_name`)."""

    code: str
    english: str


@dataclass(frozen=True)
class Translated:
    """A text a file gives in several languages (a protocol criterion's wording: the protocol
    file carries each language), shown in the reader's, else in the source language."""

    texts: tuple[tuple[str, str], ...]

    def text(self) -> str:
        found = dict(self.texts)
        return found.get(get_locale()) or found.get(DEFAULT) or next(iter(found.values()), "")


@dataclass(frozen=True)
class Joined:
    """Several values shown one after the other with ``separator`` (a list is shown with
    commas)."""

    items: tuple[Any, ...]
    separator: str = SEMICOLON


@dataclass(frozen=True)
class Reason:
    """``key`` is stable (tests and clients branch on it); ``template`` is the source-language
    wording, marked with ``N_`` where the reason is made, with ``{name}`` placeholders."""

    key: str
    template: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        """The reason in the current language."""
        return render(self)

    def english(self) -> str:
        """The reason in the source language (what ``reason`` strings and logs carry)."""
        with use_locale(DEFAULT):
            return render(self)

    def fields(self) -> tuple[str, ...]:
        """Every field path the reason names, nested reasons included (to highlight them)."""
        return tuple(dict.fromkeys(_fields(self)))

    def __json__(self) -> dict[str, Any]:
        return self.as_dict()

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "template": self.template,
            "params": {k: _encode(v) for k, v in self.params.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reason:
        return cls(
            str(data["key"]),
            str(data["template"]),
            {k: _decode(v) for k, v in dict(data.get("params") or {}).items()},
        )


#: How units are written for people (the stored unit is kept as entered).
UNIT_DISPLAY = {
    "/mm3": "/mm³",
    "cells/mm3": "cells/mm³",
    "10^9/L": "×10⁹/L",
    "mL/min/1.73m2": "mL/min/1.73 m²",
}


def _unit(unit: str) -> str:
    return UNIT_DISPLAY.get(unit, unit)


def shown(value: Any) -> str:
    """One value as the reader's language writes it."""
    if isinstance(value, Reason):
        return render(value)
    if isinstance(value, Quantity):
        return f"{format_number(value.value)} {_unit(value.unit)}"
    if isinstance(value, Field):
        return field_label(value.path)
    if isinstance(value, DayFormat):
        return day_placeholder()
    if isinstance(value, Word):
        return gettext(value.text)
    if isinstance(value, Visit):
        from reluth.i18n.vocabulary import visit_name

        return visit_name(value.code, value.english)
    if isinstance(value, Translated):
        return value.text()
    if isinstance(value, Joined):
        return gettext(value.separator).join(shown(v) for v in value.items)
    if isinstance(value, list | tuple):
        return ", ".join(shown(v) for v in value)
    return plain_value(value)  # yes/no, numbers and days as the error messages show them


def render(reason: Reason) -> str:
    values = {k: shown(v) for k, v in reason.params.items()}
    template = gettext(reason.template)
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):  # a catalogue entry out of step: the source
        return reason.template.format(**values)


def render_stored(data: Any, fallback: str = "") -> str:
    """A stored reason (``as_dict``) in the current language; ``fallback`` (the English text
    stored before reasons had keys) when there is none."""
    if isinstance(data, Reason):
        return render(data)
    if isinstance(data, Mapping) and "key" in data and "template" in data:
        return render(Reason.from_dict(data))
    return fallback


def shown_reason(item: Any) -> str:
    """The reason of a verdict (a criterion's, stored as a dict or fresh) in the reader's
    language: its ``message``, else the English ``reason`` stored with it (the ``reason``
    filter of the pages and the casebook)."""
    if isinstance(item, Mapping):
        return render_stored(item.get("message"), str(item.get("reason", "")))
    return render_stored(getattr(item, "message", None), str(getattr(item, "reason", "")))


def _fields(value: Any) -> list[str]:
    if isinstance(value, Field):
        return [value.path]
    if isinstance(value, Reason):
        return [p for v in value.params.values() for p in _fields(v)]
    if isinstance(value, Joined):
        return _fields(value.items)
    if isinstance(value, list | tuple):
        return [p for v in value for p in _fields(v)]
    return []


def _encode(value: Any) -> Any:
    if isinstance(value, Reason):
        return {"reason": value.as_dict()}
    if isinstance(value, Quantity):
        return {"quantity": [str(value.value), value.unit]}
    if isinstance(value, Field):
        return {"field": value.path}
    if isinstance(value, Word):
        return {"word": value.text}
    if isinstance(value, Visit):
        return {"visit": [value.code, value.english]}
    if isinstance(value, Translated):
        return {"texts": dict(value.texts)}
    if isinstance(value, Joined):
        return {"joined": [value.separator, [_encode(v) for v in value.items]]}
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, Decimal | float):
        return {"number": str(value)}
    if isinstance(value, dt.date):
        return {"day": value.isoformat()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return str(value)


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, Mapping) or len(value) != 1:
        return value
    ((kind, inner),) = value.items()
    if kind == "reason":
        return Reason.from_dict(inner)
    if kind == "quantity":
        return Quantity(Decimal(inner[0]), inner[1])
    if kind == "field":
        return Field(inner)
    if kind == "word":
        return Word(inner)
    if kind == "visit":
        return Visit(inner[0], inner[1])
    if kind == "texts":
        return Translated(tuple(dict(inner).items()))
    if kind == "joined":
        return Joined(tuple(_decode(v) for v in inner[1]), inner[0])
    if kind == "number":
        return Decimal(inner)
    if kind == "day":
        return dt.date.fromisoformat(inner)
    return value


#: How a value written in English by :func:`shown` is read back, by kind (``from_english``).
READERS: dict[str, Callable[[str], Any]] = {
    "day": dt.date.fromisoformat,
    "number": Decimal,
    "list": lambda text: text.split(", "),
    "text": str,
}


@cache
def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{([a-z_]+)\}", template)
    out = []
    for i, part in enumerate(parts):
        out.append(f"(?P<{part}>.+?)" if i % 2 else re.escape(part))
    return re.compile("".join(out), re.DOTALL)


def read_back(template: str, text: str) -> dict[str, str] | None:
    """The values that filled ``template`` (``{name}`` placeholders) to give ``text``, as text;
    None unless writing them back into ``template`` gives ``text`` exactly."""
    found = _pattern(template).fullmatch(text)
    if found is None:
        return None
    values = found.groupdict()
    return values if template.format_map(values) == text else None


def from_english(
    text: str, known: Iterable[tuple[str, str]], kinds: Mapping[str, str] | None = None
) -> Reason | None:
    """The reason whose English is ``text`` (a row stored before reasons had keys): the first
    of ``known`` (key, source template) that ``text`` fills, its values read back by the kind
    ``kinds`` gives their name (a key of :data:`READERS`; text when not named). None when no
    template fits: the caller shows the stored English."""
    kinds = kinds or {}
    for key, template in known:
        found = _pattern(template).fullmatch(text)
        if found is None:
            continue
        try:
            params = {
                name: READERS[kinds.get(name, "text")](value)
                for name, value in found.groupdict().items()
            }
        except (ValueError, ArithmeticError):
            continue
        reason = Reason(key, template, params)
        if reason.english() == text:  # the values read back write the same English
            return reason
    return None


def refusal(error: type[E], code: str, template: str, **params: Any) -> E:
    """A coded domain error (``error`` with the stable ``code``) whose message is ``template``
    with ``params``: English in ``message`` (logs, the CLI's ``--json``), in the reader's
    language where :func:`reluth.i18n.messages.describe` shows it."""
    reason = Reason(code, template, params)
    return error(reason.english(), code=code, params={"reason": reason})


@dataclass(frozen=True)
class DayFormat(Word):
    """How a person types a day in their language (``YYYY-MM-DD``, ``jj/mm/aaaa`` in French:
    :func:`reluth.i18n.day_placeholder`), unlike a file's ISO format (``AAAA-MM-JJ``)."""


#: A day as people type it, in the reader's language (``jj/mm/aaaa`` in French).
DAY = DayFormat("YYYY-MM-DD")


def invalid(
    field: str,
    code: str,
    problem: str,
    accepted: str | Reason | Sequence[str] | None = None,
    /,
    **params: Any,
) -> ValidationError:
    """A coded refusal of the input ``field`` (a path, an option such as ``--key``, a file):
    ``problem`` (a template marked with ``N_`` where the error is made) says what is wrong
    with ``params``; ``accepted`` what would do: a marked template filled with the same
    ``params``, a :class:`Reason`, or codes shown as they are. English in the error's
    ``problem`` and ``accepted`` (logs, ``--json``); in the reader's language where
    :func:`reluth.i18n.messages.describe` shows it, the field by its label."""
    said = Reason(code, problem, params)
    allowed: Reason | str | None
    if accepted is None or accepted == "":
        allowed, english = None, None
    elif isinstance(accepted, Reason):
        allowed, english = accepted, accepted.english()
    elif isinstance(accepted, str):
        allowed = Reason(f"{code}.accepted", accepted, params)
        english = allowed.english()
    else:
        allowed = english = ", ".join(accepted)
    parts: dict[str, Any] = {"field": Field(field), "problem": said}
    if allowed is None:
        shown = Reason("invalid", N_("{field}: {problem}"), parts)
    else:
        parts["accepted"] = allowed
        shown = Reason("invalid", N_("{field}: {problem} (accepted: {accepted})"), parts)
    return ValidationError(field, said.english(), english, code=code, params={"reason": shown})


def moved(exc: ReluthError, field: str) -> ValidationError:
    """``exc`` said of ``field`` (an input's path given by the caller: ``vois.liver.mass_g``,
    ``case PHANTOM-001: spect[0].file``), its code and reason kept."""
    reason = exc.params.get("reason")
    if isinstance(exc, ValidationError):
        problem, accepted = exc.problem, exc.accepted
        if isinstance(reason, Reason) and reason.key == "invalid":
            params = {**reason.params, "field": Field(field)}
            reason = Reason(reason.key, reason.template, params)
    else:
        problem, accepted = exc.message, None
        if isinstance(reason, Reason):
            reason = Reason(
                "invalid", N_("{field}: {problem}"), {"field": Field(field), "problem": reason}
            )
    params = {**exc.params, **({"reason": reason} if reason is not None else {})}
    return ValidationError(field, problem, accepted, code=exc.code, params=params)


def unmet(field: str, code: str, template: str, **params: Any) -> PreconditionFailed:
    """A protocol precondition that ``field`` breaks (a correction that would undo an earlier
    record's condition), with the stable ``code``: ``field: message``, the field by its label
    where shown, so a form can show the message next to it."""
    problem = Reason(code, template, params)
    reason = Reason(code, N_("{field}: {problem}"), {"field": Field(field), "problem": problem})
    message = f"{field}: {problem.english()}"  # the English names the field by its path
    return PreconditionFailed(message, field, code=code, params={"reason": reason})


def too_long(
    field: str, length: int, limit: int, within: str = N_("at most {limit}")
) -> ValidationError:
    """A text of ``length`` characters where ``field`` takes at most ``limit`` (``within`` says
    so, ``<= {limit}`` where the form writes it that way)."""
    return invalid(field, "too_long", N_("{length} characters"), within, length=length, limit=limit)


def invalid_worded(
    field: str,
    code: str,
    template: str,
    problem: str,
    accepted: str | None = None,
    /,
    **params: Any,
) -> ValidationError:
    """A refused input named by ``field`` whose message needs words of the vocabulary
    (:class:`Word`) or nested reasons: ``template`` (with ``{field}``, shown by its label) is
    rendered in the reader's language; ``problem`` and ``accepted`` keep the English the
    message has always had (logs, ``--json``)."""
    reason = Reason(code, template, {"field": Field(field), **params})
    return ValidationError(field, problem, accepted, code=code, params={"reason": reason})
