"""The statistician's exports page: the analysis datasets as a zip in a chosen format and the
randomization report (shown, and downloadable as CSV or JSON). Downloads go through
``api_exports.deliver``: built by the analysis service, recorded in the audit trail."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from reluth.analysis import service as exports
from reluth.core.context import Ctx
from reluth.errors import ReluthError
from reluth.web.api_exports import datasets_download, report_download
from reluth.web.deps import READ, WHO, Auth
from reluth.web.pages import render

router = APIRouter(include_in_schema=False)


def _page(
    request: Request,
    who: Auth,
    ctx: Ctx,
    form: dict[str, str],
    error: ReluthError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    view = exports.exports_view(ctx)
    return render(
        request,
        "exports.html",
        {
            "who": who,
            "formats": view.formats,
            "report_formats": view.report_formats,
            "report": view.report,
            "form": form,
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/exports", response_class=HTMLResponse)
def exports_page(request: Request, who: Auth = WHO, ctx: Ctx = READ) -> HTMLResponse:
    return _page(request, who, ctx, {"format": "xpt", "cutoff": ""})


@router.get("/exports/datasets")
def exports_datasets(
    request: Request,
    format: str = Query("csv", max_length=8),
    cutoff: str = Query("", max_length=10),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    try:
        return datasets_download(request, who, ctx, format, cutoff)
    except ReluthError as exc:
        if exc.http_status == 403:
            raise
        form = {"format": format, "cutoff": cutoff}
        return _page(request, who, ctx, form, exc, exc.http_status)


@router.get("/exports/randomization-report")
def exports_randomization_report(
    request: Request,
    format: str = Query("csv", max_length=8),
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    return report_download(request, who, ctx, format)
