"""Plain values at the boundaries: JSON-able forms of typed results, and ISO dates parsed with
a message naming the field. Shared by services and adapters (no I/O)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

from reluth.errors import ValidationError


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, pydantic models, dates, Decimals and enums as plain JSON values; a number
    that is not finite (a statistic that is not estimable) is null, which JSON has (RFC 8259
    has no NaN or Infinity)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
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


def parse_date(text: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValidationError(field, f"not a date: {text!r}", "YYYY-MM-DD") from None
