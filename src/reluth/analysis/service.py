"""Exports for the unblinded statistician: the analysis datasets (ADSL, ADRS, ADTTE, ADAE,
ADQS) of the trial database as one zip in a chosen format, and the randomization report as
CSV or JSON, each recorded in the audit trail (who exported what, when, and the SHA-256 of
the file handed out).

Building reads the database with SELECTs only (``datasets.from_engine``); the export event is
then sealed into the audit chain by the caller's unit of work (``UnitOfWork.record_event``).
Both downloads reveal the arm: the permission layer grants them to unblinded roles only, and
this module refuses any other role again.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reluth.analysis import datasets, exports
from reluth.auth.policy import Action, Resource, allowed
from reluth.cli_support import to_jsonable
from reluth.db.session import Actor, UnitOfWork
from reluth.errors import PermissionDenied, ValidationError
from reluth.randomization import service as randomization

FORMATS = exports.FORMATS
REPORT_FORMATS = ("csv", "json")
MEDIA_TYPES = {"zip": "application/zip", "csv": "text/csv", "json": "application/json"}
#: The audit trail's table name for export events (no data table of that name exists).
AUDIT_TABLE = "exports"


@dataclass(frozen=True)
class Download:
    """A file to hand out, with what the audit trail records about it."""

    filename: str
    media_type: str
    content: bytes
    what: str  # the audit record id: "adam-datasets" | "randomization-report"
    detail: dict[str, Any]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def _require(actor: Actor, resource: Resource) -> None:
    if not allowed(actor.role, Action.READ, resource):
        raise PermissionDenied(f"{actor.role} may not read {resource.value.replace('_', ' ')}")


def _choice(value: str, field: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise ValidationError(field, f"{value!r}", ", ".join(accepted))
    return value


def datasets_zip(engine: Engine, actor: Actor, fmt: str, cutoff: dt.date | None = None) -> Download:
    """The five analysis datasets in ``fmt`` (csv, xpt, dta) and ``variables.json`` as a zip."""
    _require(actor, Resource.EXPORT)
    _choice(fmt, "format", FORMATS)
    started = time.perf_counter()
    ds = datasets.from_engine(engine, cutoff)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="reluth-export-") as tmp:
        written = exports.export_all(ds, Path(tmp), (fmt,))
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in written:
                archive.write(path, path.name)
    rows = {name: len(frame) for name, frame in ds.frames().items()}
    return Download(
        filename=f"reluth-adam-{fmt}-cutoff-{ds.cutoff.isoformat()}.zip",
        media_type=MEDIA_TYPES["zip"],
        content=buffer.getvalue(),
        what="adam-datasets",
        detail={
            "format": fmt,
            "cutoff": ds.cutoff.isoformat(),
            "rows": rows,
            "input_sha256": ds.input_hash,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )


def report_rows(rep: randomization.Report) -> list[dict[str, Any]]:
    """The randomization report as long rows (section, group, arm, n) for a CSV file."""
    rows: list[dict[str, Any]] = [
        {"section": "method", "group": rep.method or "not set up", "arm": "", "n": ""},
        {"section": "allocation list intact", "group": str(rep.list_intact), "arm": "", "n": ""},
    ]
    rows += [
        {"section": "overall", "group": "all", "arm": a, "n": n} for a, n in rep.by_arm.items()
    ]
    for section, table in (
        ("stratum", rep.by_stratum),
        ("centre", rep.by_centre),
        ("factor level", rep.by_factor_level),
    ):
        for group, counts in table.items():
            rows += [
                {"section": section, "group": group, "arm": a, "n": n} for a, n in counts.items()
            ]
    rows += [
        {"section": "max imbalance", "group": level, "arm": "", "n": n}
        for level, n in rep.max_imbalance.items()
    ]
    return rows


def randomization_report(session: Session, actor: Actor, fmt: str) -> Download:
    """The randomization report (``randomization.service.report``) as CSV or JSON."""
    _require(actor, Resource.RANDOMIZATION_REPORT)
    _choice(fmt, "format", REPORT_FORMATS)
    rep = randomization.report(session, actor)
    if fmt == "json":
        content = json.dumps(to_jsonable(rep), indent=2).encode("utf-8")
    else:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=["section", "group", "arm", "n"])
        writer.writeheader()
        writer.writerows(report_rows(rep))
        content = text.getvalue().encode("utf-8")
    return Download(
        filename=f"reluth-randomization-report.{fmt}",
        media_type=MEDIA_TYPES[fmt],
        content=content,
        what="randomization-report",
        detail={"format": fmt, "randomized": rep.total, "method": rep.method},
    )


def record_download(uow: UnitOfWork, download: Download) -> None:
    """Seal the export into the audit trail: who (the unit of work's actor), when, what."""
    uow.record_event(
        "export",
        AUDIT_TABLE,
        download.what,
        {**download.detail, "file": download.filename, "sha256": download.sha256},
    )
