"""A patient's dosimetry page: per-cycle organ, tumour and marrow doses and the cumulative
kidney and marrow figures against the limits, read from the dosimetry service; the medical
physicist stores a cycle's results by pasting the case's ``results.json`` (or a list of
records), or computes them from the cycle's series in the DICOM store (``reluth dosimetry
from-store`` in a background thread, its progress polled by htmx). The policy and centre scoping decide who sees and who writes."""

from __future__ import annotations

import json
import re
import secrets
import threading
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from reluth.auth.actor import Actor
from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.trial import Trial
from reluth.dosimetry import notes
from reluth.dosimetry import service as dosimetry
from reluth.errors import ReluthError, ValidationError
from reluth.i18n import N_, gettext
from reluth.i18n.messages import describe
from reluth.records import views
from reluth.web.deps import READ, WHO, Auth, audited, trial
from reluth.web.pages import render
from reluth.web.trial_pages import _remember_form

router = APIRouter(include_in_schema=False)


def _page(
    request: Request,
    who: Auth,
    ctx: Ctx,
    code: str,
    form: dict[str, str],
    error: ReluthError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    patient = views.visible_patient(ctx, code, Resource.DOSIMETRY)
    return render(
        request,
        "dosimetry.html",
        {
            "who": who,
            "code": patient.patient_code,
            "d": dosimetry.patient_dosimetry(ctx, patient.patient_code),
            "shown_note": notes.shown,
            "method_label": notes.method_label,
            "can_write": who.actor.may(Action.WRITE, Resource.DOSIMETRY, patient.centre_id),
            "posted": form,
            "error": error,
            "job": request.query_params.get("job")
            if request.query_params.get("job") in _JOBS
            else None,
        },
        status_code=status_code,
    )


@router.get("/patients/{code}/dosimetry", response_class=HTMLResponse)
def dosimetry_page(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    return _page(request, who, ctx, code, {})


def _cycle(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 2) or not 1 <= int(text) <= 8:
        raise ValidationError(
            "cycle",
            f"{text!r}",
            "an administered cycle number",
            code="not_an_integer_in_range",
            params={"value": text, "lo": 1, "hi": 8},
        )
    return int(text)


def _document(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            "records",
            f"not JSON: {exc.msg} (line {exc.lineno})",
            N_("a JSON document"),
            code="malformed_json",
            params={"line": exc.lineno, "column": exc.colno, "problem": exc.msg},
        ) from None


@router.post("/patients/{code}/dosimetry", dependencies=[Depends(_remember_form)])
def dosimetry_save(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = views.visible_patient(ctx, code, Resource.DOSIMETRY, Action.WRITE)
    form: dict[str, str] = request.state.posted
    replace = form.get("replace") == "yes"
    try:
        cycle = _cycle(form.get("cycle", ""))
        records = dosimetry.records_from_document(_document(form.get("records", "")))
        case_id = form.get("case_id", "").strip() or None
        with audited(request, who, reason=form.get("reason") if replace else None) as w:
            dosimetry.store_cycle(
                w,
                patient.patient_code,
                cycle,
                records,
                case_id=case_id,
                replace=replace,
            )
    except ReluthError as exc:
        ctx.session.expire_all()
        return _page(request, who, ctx, code, form, exc, exc.http_status)
    return Response(
        status_code=303, headers={"Location": f"/patients/{code}/dosimetry#cycle-{cycle}"}
    )


# --- from the DICOM store, in the background with progress ---------------------------------

#: Jobs of this process: id → {"state": running | done | failed, "step", "message", "code",
#: "error", "params"}. The step and message are source strings (translated when the page polls,
#: in the language of the person polling: the thread has no request language).
_JOBS: dict[str, dict[str, Any]] = {}
#: The steps a computation reports (reluth.dosimetry.runner's progress texts among them).
STEPS = (
    N_("starting"),
    N_("computing doses"),
    N_("writing outputs"),
    N_("storing the results"),
    N_("done"),
)
_SERIES_UID = re.compile(r"^[0-9.]{1,64}$")


def _from_store_job(app: Any, actor: Actor, trial: Trial, code: str, cycle: int,
                    vois: str | None, reason: str | None, job: str) -> None:  # fmt: skip
    """``reluth dosimetry from-store`` for the page, as the person who asked: read, compute
    (no transaction held), then store in one audited unit of work."""
    from reluth.config import get_settings
    from reluth.core.context import reading, writing
    from reluth.dosimetry.dicom_images import load_calibrations
    from reluth.dosimetry.runner import run_from_store
    from reluth.dosimetry.vois import default_organ_table

    state = _JOBS[job]
    try:
        cfg = get_settings()
        out = cfg.data_dir / "dosimetry" / f"{code}-C{cycle}"
        with reading(app.state.engine, actor, trial) as ctx:
            doc = run_from_store(
                ctx, cfg.image_store, code, cycle, out, vois=vois,
                calibrations=load_calibrations(cfg.calibrations) if cfg.calibrations else (),
                organ_table=default_organ_table(),
                on_progress=lambda text: state.update(step=text),
            )  # fmt: skip
        state["step"] = STEPS[3]
        records = dosimetry.records_from_document(doc)
        with writing(app.state.engine, actor, trial, reason=reason) as w:
            rows = dosimetry.store_cycle(w, code, cycle, records, replace=reason is not None)
        state.update(
            state="done",
            step=STEPS[4],
            message=N_("stored {n} dose records; outputs in {folder}"),
            params={"n": len(rows), "folder": str(out)},
        )
    except ReluthError as exc:
        state.update(state="failed", error=exc)
    except Exception as exc:  # shown on the page, never a 5xx from the poll
        state.update(
            state="failed",
            message=N_("internal error: {kind}"),
            params={"kind": exc.__class__.__name__},
        )


@router.post("/patients/{code}/dosimetry/from-store", dependencies=[Depends(_remember_form)])
def dosimetry_from_store(
    request: Request,
    code: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> Response:
    patient = views.visible_patient(ctx, code, Resource.DOSIMETRY, Action.WRITE)
    form: dict[str, str] = request.state.posted
    try:
        cycle = _cycle(form.get("cycle", ""))
        vois = form.get("vois", "").strip() or None
        if vois is not None and not _SERIES_UID.match(vois):
            raise ValidationError(
                "vois",
                f"{vois!r}",
                N_("the series UID of a stored RTSTRUCT/SEG"),
                code="not_a_series_uid",
                params={"value": vois[:80]},
            )
        replace = form.get("replace") == "yes"
        reason = form.get("reason", "").strip() or None
        if replace and reason is None:
            raise ValidationError(
                "reason", "missing", "why the stored results are replaced", code="required"
            )
    except ReluthError as exc:
        return _page(request, who, ctx, code, form, exc, exc.http_status)
    job = secrets.token_urlsafe(9)
    _JOBS[job] = {
        "state": "running",
        "step": STEPS[0],
        "message": "",
        "code": patient.patient_code,
    }
    threading.Thread(
        target=_from_store_job,
        args=(
            request.app,
            who.actor,
            trial(request),
            patient.patient_code,
            cycle,
            vois,
            reason if replace else None,
            job,
        ),
        daemon=True,
    ).start()
    return Response(status_code=303, headers={"Location": f"/patients/{code}/dosimetry?job={job}"})


@router.get("/patients/{code}/dosimetry/jobs/{job}", response_class=HTMLResponse)
def dosimetry_job(
    request: Request,
    code: str,
    job: str,
    who: Auth = WHO,
    ctx: Ctx = READ,
) -> HTMLResponse:
    patient = views.visible_patient(ctx, code, Resource.DOSIMETRY, Action.WRITE)
    state = _JOBS.get(job)
    if state is None or state["code"] != patient.patient_code:
        state = {"state": "failed", "step": "", "message": N_("no such computation"), "code": code}
    return render(
        request,
        "_dosimetry_job.html",
        {"code": patient.patient_code, "job": job, "s": state, "message": _job_message(state)},
    )


def _job_message(state: dict[str, Any]) -> str:
    """The job's outcome in the language of the person polling."""
    error = state.get("error")
    if isinstance(error, ReluthError):
        return describe(error)
    text = state.get("message") or ""
    return gettext(text).format(**state.get("params", {})) if text else ""
