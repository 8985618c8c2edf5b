"""Small input checks shared by the record services (one clear message per bad field)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from reluth.errors import ValidationError


def obj(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationError(where, f"expected an object, got {type(data).__name__}", "{...}")
    return data


def items(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list) or not data:
        raise ValidationError(where, "expected a non-empty list", "[...]")
    return data


def text(data: Mapping[str, Any], key: str, where: str, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{where}.{key}", f"expected text, got {value!r}", "a string")
    return value.strip()


def choice(data: Mapping[str, Any], key: str, where: str, accepted: tuple[str, ...]) -> str:
    value = data.get(key)
    if value not in accepted:
        raise ValidationError(f"{where}.{key}", f"{value!r} is not accepted", ", ".join(accepted))
    return str(value)


def date(
    data: Mapping[str, Any], key: str, where: str, today: dt.date, optional: bool = False
) -> dt.date | None:
    value = data.get(key)
    if value is None and optional:
        return None
    try:
        day = dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(f"{where}.{key}", f"not a date: {value!r}", "YYYY-MM-DD") from None
    if day > today:
        raise ValidationError(f"{where}.{key}", f"date {day} is in the future", f"<= {today}")
    return day


def time_of_day(data: Mapping[str, Any], key: str, where: str) -> dt.time | None:
    """An optional wall-clock time ``HH:MM`` (seconds, if given, are kept; no time zone)."""
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.time) and value.tzinfo is None:
        return value
    text = str(value).strip()
    try:
        moment = dt.time.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is not None or len(text) < 5:
        raise ValidationError(f"{where}.{key}", f"not a time of day: {value!r}", "HH:MM") from None
    return moment


def boolean(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise ValidationError(f"{where}.{key}", f"expected true or false, got {value!r}")
    return value


#: An integer as text (a form field, a CLI option): ASCII digits only (not "²" or "٣"), at
#: most 18 of them (no 5000-digit conversion).
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,18}")


def integer(data: Mapping[str, Any], key: str, where: str, lo: int, hi: int) -> int:
    """An integer in ``lo..hi``, given as a number or as its digits (pages and CLI send text)."""
    value = data.get(key)
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValidationError(f"{where}.{key}", f"{value!r}", f"an integer {lo}-{hi}")
    return value


def decimal(
    data: Mapping[str, Any], key: str, where: str, lo: Decimal, hi: Decimal, optional: bool = False
) -> Decimal | None:
    value = data.get(key)
    if value is None and optional:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError(f"{where}.{key}", f"not a number: {value!r}", "a number") from None
    if not number.is_finite() or not lo <= number <= hi:
        raise ValidationError(f"{where}.{key}", f"{value!r}", f"a number from {lo} to {hi}")
    return number
