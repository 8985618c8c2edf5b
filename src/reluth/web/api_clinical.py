"""JSON API of the clinical forms under ``/api/v1/patients/{code}/...``: concomitant
medications, medical history, protocol deviations, pregnancy tests, childbearing potential,
withdrawals, death and end of study. Each POST takes the form's one schema
(:mod:`reluth.clinical.forms`) and calls its service in an audited unit of work; each GET lists
the patient's records. Same permission checks as the pages (the services' declarations)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request

from reluth.clinical import forms
from reluth.clinical import service as clinical
from reluth.core.context import Ctx
from reluth.patients import service as patients
from reluth.values import to_jsonable
from reluth.web.api import ERRORS
from reluth.web.deps import READ, Visible, audited, visible

router = APIRouter(tags=["api"])


def _list_route(path: str, lister: Callable[..., Any], summary: str) -> None:
    def list_records(to: Visible = Depends(visible(lister)), ctx: Ctx = READ) -> Any:
        return to_jsonable(lister(ctx, to.patient.patient_code))

    list_records.__name__ = f"list_{path.replace('-', '_')}"
    router.get(f"/patients/{{code}}/{path}", responses=ERRORS, summary=summary)(list_records)


def _post_route(
    path: str,
    schema: type[forms.FormSchema],
    recorder: Callable[..., Any],
    out: Callable[[Any], dict[str, Any]],
) -> None:
    def create(body: schema, request: Request, to: Visible = Depends(visible(recorder))) -> Any:  # type: ignore[valid-type]
        with audited(request, to.who) as w:
            row = recorder(w, to.patient.patient_code, body.model_dump())  # type: ignore[attr-defined]
            return to_jsonable(out(row))

    create.__annotations__["body"] = schema  # the form's schema is the request body
    create.__name__ = f"record_{path.replace('-', '_')}"
    router.post(
        f"/patients/{{code}}/{path}", status_code=201, responses=ERRORS, summary=schema.title
    )(create)


def _fields(schema: type[forms.FormSchema]) -> Callable[[Any], dict[str, Any]]:
    return lambda row: clinical.as_dict(row, schema)


def _death(w: Any, code: str, data: dict[str, Any]) -> Any:
    return patients.record_death(w, code, data["death_date"], data["cause"], data["details"])


def _end(w: Any, code: str, data: dict[str, Any]) -> Any:
    return patients.record_end_of_study(w, code, data["end_date"], data["reason"], data["details"])


_death.__reluth_service__ = patients.record_death.__reluth_service__  # type: ignore[attr-defined]
_end.__reluth_service__ = patients.record_end_of_study.__reluth_service__  # type: ignore[attr-defined]

for _path, _schema, _recorder, _lister in (
    ("conmeds", forms.ConmedForm, clinical.record_conmed, clinical.conmeds),
    (
        "medical-history",
        forms.MedicalHistoryForm,
        clinical.record_medical_history,
        clinical.medical_history,
    ),
    ("deviations", forms.DeviationForm, clinical.record_deviation, clinical.deviations),
    (
        "pregnancy-tests",
        forms.PregnancyTestForm,
        clinical.record_pregnancy_test,
        clinical.pregnancy_tests,
    ),
    ("childbearing", forms.ChildbearingForm, clinical.record_childbearing, clinical.childbearing),
):
    _post_route(_path, _schema, _recorder, _fields(_schema))
    _list_route(_path, _lister, f"{_schema.title}: the patient's records")

_post_route(
    "withdrawals", forms.WithdrawalForm, patients.record_withdrawal, _fields(forms.WithdrawalForm)
)
_post_route("death", forms.DeathForm, _death, _fields(forms.DeathForm))
_post_route("end-of-study", forms.EndOfStudyForm, _end, _fields(forms.EndOfStudyForm))
_list_route("disposition", patients.disposition, "Death, end of study and withdrawals")
