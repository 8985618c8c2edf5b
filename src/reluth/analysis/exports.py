"""Exports of the analysis datasets: CSV, SAS transport v5 (.xpt, names <= 8 characters, labels
<= 40), Stata .dta (with variable labels), and a JSON description of every variable.

Exact values (Decimal sums, integer ages) are written as their text in CSV and as doubles in
.xpt/.dta, the only numeric type of SAS transport files."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyreadstat

from reluth.analysis.datasets import ISSUE_COLUMNS, VARIABLES, AnalysisDatasets, DataIssue
from reluth.csvout import frame_to_csv


def _sas_ready(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Dates → datetime64, objects → str, and a format per date column."""
    out = pd.DataFrame(index=frame.index)
    formats: dict[str, str] = {}
    for col in frame.columns:
        s = frame[col]
        non_null = s.dropna()
        if len(non_null) and all(isinstance(v, dt.date) for v in non_null):
            out[col] = s.astype(object).where(s.notna(), None)  # datetime.date → SAS/Stata date
            formats[col] = "DATE9."
        elif (
            s.dtype == object
            and len(non_null)
            and all(isinstance(v, Decimal | int) and not isinstance(v, bool) for v in non_null)
        ):
            out[col] = s.map(lambda v: np.nan if v is None else float(v)).astype(float)
        elif s.dtype == object:
            out[col] = s.where(s.notna(), "").astype(str)
        elif s.dtype == bool:
            out[col] = s.astype(int)
        else:
            out[col] = s.astype(float) if s.dtype.kind in "fi" else s
    return out, formats


def describe(ds: AnalysisDatasets) -> dict[str, Any]:
    """Machine-readable description: dataset → variables (name, label, type, derivation)."""
    out: dict[str, Any] = {
        "cutoff": ds.cutoff.isoformat(),
        "input_sha256": ds.input_hash,
        "datasets": {},
    }
    described = ds.variables
    for name, frame in ds.frames().items():
        ready, formats = _sas_ready(frame)
        meta = described.get(name, {})
        out["datasets"][name] = {
            "rows": len(frame),
            "variables": [
                {
                    "name": col,
                    "label": meta.get(col, (col, ""))[0],
                    "type": "date"
                    if col in formats
                    else ("numeric" if ready[col].dtype.kind in "fi" else "character"),
                    "derivation": meta.get(col, ("", ""))[1],
                }
                for col in frame.columns
            ],
        }
    return out


#: The longest character value a SAS transport version 5 file holds (bytes).
XPT_TEXT_MAX = 200
#: The longest character value per binary format, in bytes (SAS transport v5: SAS "Record
#: Layout of a SAS Version 5 or 6 Data Set in SAS Transport (XPORT) Format"; Stata 13+
#: ``str#`` variables: 2045 bytes, Stata dta-117 specification).
TEXT_MAX = {"xpt": XPT_TEXT_MAX, "dta": 2045}

#: File formats of the dataset exports, by file extension.
FORMATS = ("csv", "xpt", "dta")


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes on a character boundary."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def write_dataset(
    name: str,
    frame: pd.DataFrame,
    fmt: str,
    out_dir: Path,
    truncated: list[DataIssue] | None = None,
    variables: Mapping[str, Mapping[str, tuple[str, str]]] = VARIABLES,
) -> Path:
    """Write one dataset as ``<name>.<fmt>`` (csv, SAS transport v5 or Stata) in ``out_dir``,
    its variables labelled by ``variables`` (the datasets' own, :attr:`AnalysisDatasets.variables`).
    A text longer than the binary format holds is refused, or, with ``truncated`` (an
    export of stored data), cut to fit and listed there (the CSV keeps the whole text)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    for col in frame.columns:
        if len(col) > 8:
            raise ValueError(f"{name}.{col}: SAS transport names are limited to 8 characters")
    path = out_dir / f"{name}.{fmt}"
    if fmt == "csv":
        frame_to_csv(frame, path)
        return path
    labels = [variables.get(name, {}).get(c, (c, ""))[0][:40] for c in frame.columns]
    ready, formats = _sas_ready(frame)
    limit = TEXT_MAX[fmt]
    for col in ready.columns:
        if ready[col].dtype != object:
            continue
        sizes = [len(str(v).encode()) for v in ready[col]]
        longest = max(sizes, default=0)
        if longest <= limit:
            continue
        if truncated is None:
            raise ValueError(
                f"{name}.{col}: a value of {longest} bytes; the {fmt} format holds at most {limit}"
            )
        for row, size in zip(frame.itertuples(index=False), sizes, strict=True):
            if size > limit:
                truncated.append(
                    DataIssue(
                        name, str(getattr(row, "USUBJID", "") or "") or None, f"{name}.{fmt}",
                        col, f"{size} bytes", f"cut to the {limit} bytes the {fmt} format holds "
                        "(the CSV export has the whole text)",
                    )
                )  # fmt: skip
        ready[col] = [v if not isinstance(v, str) else _cut(v, limit) for v in ready[col]]
    if fmt == "xpt":
        pyreadstat.write_xport(
            ready,
            str(path),
            file_label=name.upper(),
            column_labels=labels,
            table_name=name.upper()[:8],
            variable_format=formats,
            file_format_version=5,
        )
    else:
        pyreadstat.write_dta(
            ready,
            str(path),
            file_label=name.upper(),
            column_labels=labels,
            variable_format={c: "%td" for c in formats},
        )
    return path


def export_all(
    ds: AnalysisDatasets, out_dir: Path, formats: tuple[str, ...] = FORMATS
) -> list[Path]:
    """Write every dataset in each of ``formats``, variables.json and data_issues.csv (the
    stored records left out or cut, with why; header only when there are none); returns the
    paths. A stored value never stops the export."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    issues = list(ds.issues)
    for name, frame in ds.frames().items():
        written += [
            write_dataset(name, frame, fmt, out_dir, issues, ds.variables) for fmt in formats
        ]
    desc = out_dir / "variables.json"
    desc.write_text(json.dumps(describe(ds), indent=2), encoding="utf-8")
    written.append(desc)
    report = out_dir / "data_issues.csv"
    frame_to_csv(
        pd.DataFrame(
            [[getattr(i, c) for c in ISSUE_COLUMNS] for i in issues], columns=list(ISSUE_COLUMNS)
        ),
        report,
    )
    written.append(report)
    return written
