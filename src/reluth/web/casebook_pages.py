"""The casebook PDF of a patient, from the patient page and the JSON API. Both call
``reluth.records.casebook.casebook_pdf`` as the person asking (the PDF of what they may read)
and seal the download into the audit trail (``record_casebook``) before it is handed out.
The blank annotated CRF (``/forms/blank-crf.pdf``) holds no patient data and is not sealed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from reluth.core.context import Ctx
from reluth.forms import crf_service
from reluth.records import casebook
from reluth.web.api import ERRORS
from reluth.web.deps import READ, Auth, audited, calls

router = APIRouter(include_in_schema=False)
api_router = APIRouter(tags=["patients"])

#: The patient ID in the path, as the other patient routes take it.
CODE = Path(pattern=r"^C\d{2}-\d{4}$", max_length=8, description="patient ID, e.g. C01-0001")

#: The person asking, refused (403) before anything is read unless they may call the service.
MAY_PRINT: Any = Depends(calls(casebook.casebook_pdf))

_PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {casebook.MEDIA_TYPE: {}}, "description": "the casebook as a PDF"}
}


def deliver(request: Request, who: Auth, ctx: Ctx, code: str) -> Response:
    """Build the casebook as the person asking (read only), record it in the audit trail, and
    only then hand it out."""
    file = casebook.casebook_pdf(ctx, code)
    with audited(request, who) as w:
        casebook.record_casebook(w, file)
    return attachment(file)


def attachment(file: Any) -> Response:
    """A rendered PDF handed out as a download, with its SHA-256."""
    return Response(
        file.content,
        media_type=file.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{file.filename}"',
            "X-Content-SHA256": file.sha256,
        },
    )


@router.get("/patients/{code}/casebook.pdf")
def casebook_page(
    request: Request, code: str = CODE, who: Auth = MAY_PRINT, ctx: Ctx = READ
) -> Response:
    return deliver(request, who, ctx, code)


@api_router.get(
    "/patients/{code}/casebook.pdf", response_class=Response, responses={**ERRORS, **_PDF}
)
def api_casebook(
    request: Request, code: str = CODE, who: Auth = MAY_PRINT, ctx: Ctx = READ
) -> Response:
    """Every record of the patient as the caller may read them, with the audit trail as an
    appendix, as a PDF (recorded in the audit trail)."""
    return deliver(request, who, ctx, code)


# --- the blank annotated CRF (no patient data) -------------------------------------------------

MAY_PRINT_BLANK: Any = Depends(calls(crf_service.blank_crf_pdf))
_BLANK_PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {crf_service.MEDIA_TYPE: {}}, "description": "the blank annotated CRF"}
}


def _blank(ctx: Ctx) -> Response:
    return attachment(crf_service.blank_crf_pdf(ctx))


@router.get("/forms/blank-crf.pdf")
def blank_crf_page(who: Auth = MAY_PRINT_BLANK, ctx: Ctx = READ) -> Response:
    return _blank(ctx)


@api_router.get("/forms/blank-crf.pdf", response_class=Response, responses={**ERRORS, **_BLANK_PDF})
def api_blank_crf(who: Auth = MAY_PRINT_BLANK, ctx: Ctx = READ) -> Response:
    """Every registered form and field (label, type, unit, range, code list, missing-data
    codes, the table and column it is stored in, the visits where the form is due) as a PDF."""
    return _blank(ctx)
