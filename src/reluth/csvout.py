"""Every CSV the product writes goes through here, with spreadsheet formulas neutralised.

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel, LibreOffice and Google Sheets when the file is opened (CSV injection, OWASP
"CSV Injection"; CWE-1236). Such a cell is written with a leading apostrophe, which every one
of them shows as text. Numbers are not text: a numeric value, or a text cell that is a plain
number such as ``-1.5``, is written unchanged so the data reads back the same.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

#: First characters that make a spreadsheet evaluate a cell.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralise(value: Any) -> Any:
    """``value`` as a cell no spreadsheet evaluates (text only; numbers unchanged)."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_STARTS)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with text cells neutralised (and the column names)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralise)
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def frame_to_csv(frame: pd.DataFrame, path: Path) -> None:
    """``frame.to_csv(path)`` (no index) with formulas neutralised."""
    safe_frame(frame).to_csv(path, index=False)


def frame_csv_text(frame: pd.DataFrame) -> str:
    """The CSV text of ``frame`` as :func:`frame_to_csv` writes it."""
    return str(safe_frame(frame).to_csv(index=False))


def rows_to_csv(fieldnames: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """Dict rows as CSV text with a header, formulas neutralised."""
    text = io.StringIO()
    write_rows(text, fieldnames, rows)
    return text.getvalue()


def write_rows(fh: Any, fieldnames: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Dict rows written to an open text file with a header, formulas neutralised."""
    writer = csv.DictWriter(fh, fieldnames=[neutralise(f) for f in fieldnames])
    writer.writeheader()
    for row in rows:
        writer.writerow({neutralise(k): neutralise(v) for k, v in row.items()})
