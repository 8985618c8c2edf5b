"""Small input checks shared by the record services (one clear message per bad field).

Each error carries a stable ``code`` and the values it was built from (``params``), so the
person reading it gets it in their language (``reluth.i18n.messages``); numbers and dates are
parsed by :mod:`reluth.values` (decimal comma or point, ISO or dd/mm/yyyy)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from reluth.errors import ValidationError
from reluth.values import parse_date, parse_number


def obj(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationError(
            where, f"expected an object, got {type(data).__name__}", "{...}", code="not_an_object"
        )
    return data


def items(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list) or not data:
        raise ValidationError(where, "expected a non-empty list", "[...]", code="empty_list")
    return data


def text(data: Mapping[str, Any], key: str, where: str, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f"{where}.{key}", f"expected text, got {value!r}", "a string", code="required"
        )
    return value.strip()


def choice(data: Mapping[str, Any], key: str, where: str, accepted: tuple[str, ...]) -> str:
    value = data.get(key)
    if value not in accepted:
        raise ValidationError(
            f"{where}.{key}",
            f"{value!r} is not accepted",
            ", ".join(accepted),
            code="not_accepted",
            params={"value": value, "accepted": ", ".join(accepted)},
        )
    return str(value)


def date(
    data: Mapping[str, Any], key: str, where: str, today: dt.date, optional: bool = False
) -> dt.date | None:
    value = data.get(key)
    if value is None and optional:
        return None
    day = parse_date(value, f"{where}.{key}")
    if day > today:
        raise ValidationError(
            f"{where}.{key}",
            f"date {day} is in the future",
            f"<= {today}",
            code="date_in_future",
            params={"value": day, "today": today},
        )
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
        raise ValidationError(
            f"{where}.{key}",
            f"not a time of day: {value!r}",
            "HH:MM",
            code="not_a_time",
            params={"value": value},
        ) from None
    return moment


def boolean(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise ValidationError(
            f"{where}.{key}", f"expected true or false, got {value!r}", code="not_a_boolean"
        )
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
        raise ValidationError(
            f"{where}.{key}",
            f"{value!r}",
            f"an integer {lo}-{hi}",
            code="not_an_integer_in_range",
            params={"value": value, "lo": lo, "hi": hi},
        )
    return value


def decimal(
    data: Mapping[str, Any], key: str, where: str, lo: Decimal, hi: Decimal, optional: bool = False
) -> Decimal | None:
    value = data.get(key)
    if value is None and optional:
        return None
    number = parse_number(value, f"{where}.{key}")
    if not lo <= number <= hi:
        raise ValidationError(
            f"{where}.{key}",
            f"{value!r}",
            f"a number from {lo} to {hi}",
            code="out_of_range",
            params={"value": number, "lo": lo, "hi": hi},
        )
    return number
