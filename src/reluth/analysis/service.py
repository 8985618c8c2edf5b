"""Exports for the unblinded statistician: the analysis datasets (ADSL, ADRS, ADTTE, ADAE,
ADQS) of the trial database as one zip in a chosen format, and the randomization report as
CSV or JSON, each recorded in the audit trail (who exported what, when, and the SHA-256 of
the file handed out).

Building reads the database with SELECTs only (``datasets.from_engine``); the export event is
then sealed into the audit chain by the caller's unit of work (``UnitOfWork.record_event``).
Both downloads reveal the arm: the services are declared for the export and report
permissions, which the policy grants to unblinded roles only.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from reluth.analysis import datasets, exports
from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx

# The exports' file and its audit event, shared with the ODM export (names kept here).
from reluth.core.download import Download
from reluth.core.download import record_download as record_download
from reluth.core.service import service
from reluth.csvout import rows_to_csv
from reluth.i18n import N_
from reluth.i18n.reasons import invalid
from reluth.randomization import service as randomization
from reluth.values import to_jsonable

FORMATS = exports.FORMATS
REPORT_FORMATS = ("csv", "json")
MEDIA_TYPES = {"zip": "application/zip", "csv": "text/csv", "json": "application/json"}


def _choice(value: str, field: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise invalid(
            field,
            "unaccepted_field",
            N_("{value}"),
            N_("{accepted_name}"),
            value=repr(value),
            accepted_name=", ".join(accepted),
        )
    return value


def _engine(ctx: Ctx) -> Engine:
    bind = ctx.session.get_bind()
    if not isinstance(bind, Engine):
        raise invalid(
            "database",
            "no_engine_behind_this_session",
            N_("no engine behind this session"),
            N_("an engine"),
        )
    return bind


@service(Action.READ, Resource.EXPORT)
def analysis_datasets(ctx: Ctx, cutoff: dt.date | None = None) -> datasets.AnalysisDatasets:
    """The analysis datasets (ADSL, ADRS, ADTTE, ADAE, ADQS) of the trial database, for the
    unblinded statistician (they hold the arm)."""
    return datasets.from_engine(_engine(ctx), cutoff, protocol=ctx.protocol)


@service(Action.READ, Resource.EXPORT)
def datasets_zip(ctx: Ctx, fmt: str, cutoff: dt.date | None = None) -> Download:
    """The five analysis datasets in ``fmt`` (csv, xpt, dta) and ``variables.json`` as a zip."""
    _choice(fmt, "format", FORMATS)
    started = time.perf_counter()
    ds = analysis_datasets(ctx, cutoff)
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


@dataclass(frozen=True)
class ExportsView:
    """What the exports page offers: the dataset formats, and the randomization report when
    the actor may read it."""

    formats: tuple[str, ...]
    report_formats: tuple[str, ...]
    report: randomization.Report | None


@service(Action.READ, Resource.EXPORT)
def exports_view(ctx: Ctx) -> ExportsView:
    report = None
    if ctx.actor.can(Action.READ, Resource.RANDOMIZATION_REPORT):
        report = randomization.report(ctx)
    return ExportsView(FORMATS, REPORT_FORMATS, report)


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


@service(Action.READ, Resource.RANDOMIZATION_REPORT)
def randomization_report(ctx: Ctx, fmt: str) -> Download:
    """The randomization report (``randomization.service.report``) as CSV or JSON."""
    _choice(fmt, "format", REPORT_FORMATS)
    rep = randomization.report(ctx)
    if fmt == "json":
        content = json.dumps(to_jsonable(rep), indent=2).encode("utf-8")
    else:
        content = rows_to_csv(["section", "group", "arm", "n"], report_rows(rep)).encode("utf-8")
    return Download(
        filename=f"reluth-randomization-report.{fmt}",
        media_type=MEDIA_TYPES[fmt],
        content=content,
        what="randomization-report",
        detail={"format": fmt, "randomized": rep.total, "method": rep.method},
    )
