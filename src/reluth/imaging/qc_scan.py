"""Reading side of header QC: one header per series from a folder (pixel data not loaded)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pydicom

from reluth.imaging.batch import iter_files
from reluth.imaging.qc import QCConfig, SeriesHeader, SeriesQC, check_all, extract_header


def read_headers(root: Path) -> tuple[list[SeriesHeader], list[str]]:
    first: dict[str, SeriesHeader] = {}
    counts: Counter[str] = Counter()
    unreadable: list[str] = []
    for path in iter_files(Path(root)):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            unreadable.append(str(path.relative_to(root)))
            continue
        uid = str(ds.get("SeriesInstanceUID", "")) or f"(no series UID) {path.name}"
        counts[uid] += 1
        if uid not in first:
            first[uid] = extract_header(ds)
    headers = [SeriesHeader(**{**h.__dict__, "instances": counts[uid]}) for uid, h in first.items()]
    return headers, unreadable


def qc_tree(root: Path, cfg: QCConfig) -> tuple[list[SeriesQC], list[str]]:
    headers, unreadable = read_headers(root)
    results = check_all(headers, cfg)
    results.sort(key=lambda r: (r.patient_id, r.interval_h or 0, r.study_uid, r.modality != "NM"))
    return results, unreadable
