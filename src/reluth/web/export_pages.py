"""The statistician's exports page: the analysis datasets as a zip in a chosen format and the
randomization report (shown, and downloadable as CSV or JSON). Downloads go through
``api_exports.deliver``: built by the analysis service, recorded in the audit trail."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from reluth.analysis import service as exports
from reluth.auth.policy import Action, Resource
from reluth.errors import ReluthError
from reluth.randomization import service as randomization
from reluth.web.api_exports import datasets_download, report_download
from reluth.web.deps import DB_SESSION, Auth, actor_of, require
from reluth.web.pages import render

router = APIRouter(include_in_schema=False)


def _page(
    request: Request,
    who: Auth,
    db: Session,
    form: dict[str, str],
    error: ReluthError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    report = None
    if who.principal.can(Action.READ, Resource.RANDOMIZATION_REPORT):
        report = randomization.report(db, actor_of(who))
    return render(
        request,
        "exports.html",
        {
            "who": who,
            "formats": exports.FORMATS,
            "report_formats": exports.REPORT_FORMATS,
            "report": report,
            "form": form,
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/exports", response_class=HTMLResponse)
def exports_page(
    request: Request,
    who: Auth = Depends(require(Action.READ, Resource.EXPORT)),
    db: Session = DB_SESSION,
) -> HTMLResponse:
    return _page(request, who, db, {"format": "xpt", "cutoff": ""})


@router.get("/exports/datasets")
def exports_datasets(
    request: Request,
    format: str = Query("csv", max_length=8),
    cutoff: str = Query("", max_length=10),
    who: Auth = Depends(require(Action.READ, Resource.EXPORT)),
    db: Session = DB_SESSION,
) -> Response:
    try:
        return datasets_download(request, who, format, cutoff)
    except ReluthError as exc:
        form = {"format": format, "cutoff": cutoff}
        return _page(request, who, db, form, exc, exc.http_status)


@router.get("/exports/randomization-report")
def exports_randomization_report(
    request: Request,
    format: str = Query("csv", max_length=8),
    who: Auth = Depends(require(Action.READ, Resource.RANDOMIZATION_REPORT)),
    db: Session = DB_SESSION,
) -> Response:
    return report_download(request, who, db, format)
