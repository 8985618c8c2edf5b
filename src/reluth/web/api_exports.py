"""JSON API of the statistician's exports: the analysis datasets as a zip and the
randomization report. Each download is built by ``reluth.analysis.service`` (read-only on the
database) as the person asking and sealed into the audit trail before it is handed out; the
pages reuse :func:`deliver`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from reluth.analysis import service as exports
from reluth.core.context import Ctx
from reluth.values import parse_date
from reluth.web.api import ERRORS
from reluth.web.deps import READ, WHO, Auth, audited

router = APIRouter(tags=["exports"])

FORMAT_HELP = "csv, xpt (SAS transport v5) or dta (Stata)"


def deliver(
    request: Request, who: Auth, ctx: Ctx, build: Callable[[Ctx], exports.Download]
) -> Response:
    """Build a download as the person asking, record it in the audit trail, hand it out."""
    download = build(ctx)
    with audited(request, who) as w:
        exports.record_download(w, download)
    return Response(
        download.content,
        media_type=download.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{download.filename}"',
            "X-Content-SHA256": download.sha256,
        },
    )


def datasets_download(request: Request, who: Auth, ctx: Ctx, fmt: str, cutoff: str) -> Response:
    when = parse_date(cutoff, "cutoff") if cutoff else None
    return deliver(request, who, ctx, lambda c: exports.datasets_zip(c, fmt, when))


def report_download(request: Request, who: Auth, ctx: Ctx, fmt: str) -> Response:
    return deliver(request, who, ctx, lambda c: exports.randomization_report(c, fmt))


_ZIP: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {}}, "description": "zip of the datasets"}
}


@router.get("/exports/datasets", response_class=Response, responses={**ERRORS, **_ZIP})
def api_datasets(
    request: Request,
    format: str = Query("csv", max_length=8, description=FORMAT_HELP),
    cutoff: str = Query(
        "", max_length=10, description="data cut-off YYYY-MM-DD (default: last date)"
    ),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    """ADSL, ADRS, ADTTE, ADAE, ADQS and variables.json as a zip (recorded in the audit trail)."""
    return datasets_download(request, who, ctx, format, cutoff)


@router.get("/exports/randomization-report", responses=ERRORS)
def api_randomization_report(request: Request, who: Auth = WHO, ctx: Ctx = READ) -> Any:
    """Allocations by arm, stratum, centre and factor level, the method, the imbalance and
    whether the allocation list is intact (recorded in the audit trail)."""
    return report_download(request, who, ctx, "json")


_XML: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/xml": {}}, "description": "CDISC ODM 1.3.2 document"}
}


@router.get("/exports/odm", response_class=Response, responses={**ERRORS, **_XML})
def api_odm(
    request: Request,
    audit: bool = Query(True, description="false: data only, without audit records"),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    """CDISC ODM 1.3.2: metadata from the form registry and the clinical data of every patient
    the caller may read, with audit records, e-signatures and locks (recorded in the audit
    trail as an export)."""
    from reluth.odm import service as odm

    return deliver(request, who, ctx, lambda c: odm.odm_export(c, audit))
