"""Exports of the analysis datasets: CSV, SAS transport v5 (.xpt, names <= 8 characters, labels
<= 40), Stata .dta (with variable labels), and a JSON description of every variable."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyreadstat

from reluth.analysis.datasets import VARIABLES, AnalysisDatasets


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
    for name, frame in ds.frames().items():
        ready, formats = _sas_ready(frame)
        meta = VARIABLES.get(name, {})
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


#: File formats of the dataset exports, by file extension.
FORMATS = ("csv", "xpt", "dta")


def write_dataset(name: str, frame: pd.DataFrame, fmt: str, out_dir: Path) -> Path:
    """Write one dataset as ``<name>.<fmt>`` (csv, SAS transport v5 or Stata) in ``out_dir``."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    for col in frame.columns:
        if len(col) > 8:
            raise ValueError(f"{name}.{col}: SAS transport names are limited to 8 characters")
    path = out_dir / f"{name}.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
        return path
    labels = [VARIABLES.get(name, {}).get(c, (c, ""))[0][:40] for c in frame.columns]
    ready, formats = _sas_ready(frame)
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
    """Write every dataset in each of ``formats`` plus variables.json; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, frame in ds.frames().items():
        written += [write_dataset(name, frame, fmt, out_dir) for fmt in formats]
    desc = out_dir / "variables.json"
    desc.write_text(json.dumps(describe(ds), indent=2), encoding="utf-8")
    written.append(desc)
    return written
