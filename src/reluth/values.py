"""Plain values at the boundaries: JSON-able forms of typed results, and the one place numbers and
dates typed by people are parsed (a message naming the field). Shared by services and adapters
(no I/O).

People type numbers with a decimal comma (French) or point (English) and dates as dd/mm/yyyy
(French) or ISO YYYY-MM-DD; both forms are accepted in every language, so the value stored is
the same whoever typed it. A slash date is always day first: mm/dd/yyyy is never read."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from reluth.errors import ValidationError


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, pydantic models, dates, Decimals and enums as plain JSON values; a number
    that is not finite (a statistic that is not estimable) is null, which JSON has (RFC 8259
    has no NaN or Infinity)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "__json__"):  # a type that says how it is written (reluth.i18n.reasons)
        return to_jsonable(obj.__json__())
    if hasattr(obj, "model_dump"):
        return to_jsonable(obj.model_dump())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            return None
        return int(obj) if obj == obj.to_integral_value() and abs(obj) < 2**53 else float(obj)
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    return obj


#: A number as text: optional sign, digits with an optional decimal comma or point (one), or
#: digits grouped by thousands with spaces (French "184 000", "1 234,5"; also the no-break and
#: narrow no-break spaces Babel writes), then an optional exponent. No comma or point grouping:
#: "1,234" is one point two three four, never a thousand.
_NUMBER_TEXT = re.compile(
    r"(?P<sign>[+-]?)"
    r"(?P<int>[0-9]{1,3}(?:[ \u00a0\u202f][0-9]{3})+|[0-9]*)"
    r"(?:[.,](?P<frac>[0-9]*))?"
    r"(?P<exp>[eE][+-]?[0-9]{1,4})?"
)


def number_from_text(text: str) -> Decimal | None:
    """The Decimal a person meant by ``text`` (``"10,2"`` and ``"10.2"`` are the same number),
    or None when it is not a number. The digits are kept as typed (no float)."""
    stripped = text.strip()
    match = _NUMBER_TEXT.fullmatch(stripped)
    if match is None:
        return None
    whole = re.sub(r"[ \u00a0\u202f]", "", match["int"])
    frac = match["frac"]
    if not whole and not frac:
        return None
    plain = f"{match['sign']}{whole or '0'}" + (f".{frac}" if frac else "") + (match["exp"] or "")
    try:
        return Decimal(plain)
    except InvalidOperation:
        return None


def parse_number(value: object, field: str) -> Decimal:
    """A finite number from a form, a file or JSON: Decimal, int, float (by its shortest text,
    so 0.1 stays 0.1) or text with a decimal comma or point. Booleans and None are refused."""
    number: Decimal | None
    if isinstance(value, bool) or value is None:
        number = None
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | float):
        number = number_from_text(str(value)) if math.isfinite(value) else None
    elif isinstance(value, str):
        number = number_from_text(value)
    else:
        number = None
    if number is None or not number.is_finite():
        raise ValidationError(
            field,
            f"expected a number, got {value!r}",
            "a decimal number (comma or point)",
            code="not_a_number",
            params={"value": value},
        )
    return number


#: A day as people write it in French: dd/mm/yyyy (one or two digits for day and month).
_DAY_FIRST = re.compile(r"(?P<d>[0-9]{1,2})/(?P<m>[0-9]{1,2})/(?P<y>[0-9]{4})")


def day_from_text(text: str) -> dt.date | None:
    """The calendar day in ``text``: ISO ``YYYY-MM-DD`` or day-first ``dd/mm/yyyy``; None if it
    is neither or names no real day (31/02)."""
    stripped = text.strip()
    match = _DAY_FIRST.fullmatch(stripped)
    try:
        if match:
            return dt.date(int(match["y"]), int(match["m"]), int(match["d"]))
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", stripped):
            return dt.date.fromisoformat(stripped)
    except ValueError:
        return None
    return None


def parse_date(text: object, field: str) -> dt.date:
    """A calendar day typed by a person or sent by a machine (ISO, or dd/mm/yyyy)."""
    if isinstance(text, dt.datetime):
        text = text.isoformat()
    if isinstance(text, dt.date) and not isinstance(text, dt.datetime):
        return text
    day = day_from_text(text) if isinstance(text, str) else None
    if day is None:
        raise ValidationError(
            field,
            f"not a date: {text!r}",
            "YYYY-MM-DD or dd/mm/yyyy",
            code="not_a_date",
            params={"value": text},
        )
    return day
