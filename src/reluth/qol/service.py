"""Recording EORTC questionnaires, scored by the QoL engine at entry."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.db import edits
from reluth.db import validate as v
from reluth.db.session import require_reason
from reluth.errors import Conflict, NotFound
from reluth.i18n import N_
from reluth.i18n.reasons import invalid, refusal
from reluth.patients import service as patients
from reluth.protocol.schedule import qol_timepoints
from reluth.qol import scoring
from reluth.qol.models import QolQuestionnaire
from reluth.values import to_jsonable

TIMEPOINT_MAX = 32


def questionnaire_values(
    inst: scoring.Instrument, data: Mapping[str, Any], today: dt.date
) -> dict[str, Any]:
    """The checked answers, scores and completion date of one questionnaire, at entry and at
    every correction: each item answer in its range (the engine refuses it by item number),
    scored by :func:`reluth.qol.scoring.score`; the completion date not in the future."""
    w = "questionnaire"
    items = v.obj(data.get("items"), f"{w}.items")
    scored = scoring.score(inst, items)
    completed = v.date(data, "completed_on", w, today)
    assert completed is not None
    return {
        "completed_on": completed,
        # canonical answers (item number -> integer) whatever form they came in ("2" or 2)
        "answers_json": json.dumps(
            {str(n): a for n, a in scoring.parse_items(inst, items).items()}, sort_keys=True
        ),
        "scores_json": json.dumps(
            to_jsonable({"scales": scored.scales, "summary": scored.summary}), sort_keys=True
        ),
    }


@service(Action.WRITE, Resource.QOL)
def record_questionnaire(ctx: Ctx, data: Any) -> QolQuestionnaire:
    """``{"patient_id", "instrument": QLQ-C30|QLQ-GINET21, "timepoint", "completed_on",
    "items": {"1": 2, ...}}``; answers are validated and scored by the engine, for an included
    patient, completed in the trial's order."""
    session = ctx.session
    w = "questionnaire"
    body = v.obj(data, w)
    patient = patients.get_patient(ctx, str(body.get("patient_id")))
    patients.require_included(session, patient)
    inst = scoring.instrument(str(body.get("instrument")))
    values = questionnaire_values(inst, body, ctx.today())
    patients.check_date(ctx, patient, "qol", values["completed_on"], f"{w}.completed_on")
    timepoint = v.text(body, "timepoint", w)
    assert timepoint is not None
    if len(timepoint) > TIMEPOINT_MAX:
        raise invalid(
            f"{w}.timepoint",
            "too_long",
            N_("{length} characters"),
            N_("e.g. {example}"),
            length=len(timepoint),
            example="QOL-W08",
        )
    scheduled = qol_timepoints(ctx.protocol)
    if timepoint not in scheduled:
        raise invalid(
            f"{w}.timepoint",
            "not_a_qol_timepoint",
            N_("{value} is not a QoL time point of the schedule"),
            tuple(scheduled),
            value=repr(timepoint),
        )
    if session.scalars(
        select(QolQuestionnaire).where(
            QolQuestionnaire.patient_id == patient.id,
            QolQuestionnaire.instrument == inst.name,
            QolQuestionnaire.timepoint == timepoint,
        )
    ).first():
        raise refusal(
            Conflict,
            "questionnaire_already_recorded",
            N_("{instrument} at {timepoint} is already recorded for {patient}"),
            instrument=inst.name,
            timepoint=timepoint,
            patient=patient.patient_code,
        )
    row = QolQuestionnaire(
        patient_id=patient.id,
        instrument=inst.name,
        timepoint=timepoint,
        protocol_version=ctx.protocol.label,
        **values,
    )
    session.add(row)
    session.flush()
    return row


#: What a correction of a saved questionnaire may change (instrument and time point stay).
QOL_EDITABLE = ("items", "completed_on")


@service(Action.READ, Resource.QOL)
def get_questionnaire(ctx: Ctx, patient_code: str, qol_id: int) -> QolQuestionnaire:
    patient = patients.get_patient(ctx, patient_code)
    row = ctx.session.get(QolQuestionnaire, qol_id)
    if row is None or row.patient_id != patient.id:
        raise refusal(
            NotFound,
            "record_not_found",
            N_("questionnaire {id} of {patient} not found"),
            id=str(qol_id),
            patient=patient_code,
        )
    return row


def saved_answers(row: QolQuestionnaire) -> dict[int, int]:
    """The saved item answers by item number (missing items left out)."""
    inst = scoring.instrument(row.instrument)
    return scoring.parse_items(inst, json.loads(row.answers_json or "{}"))


def questionnaire_edit_form(row: QolQuestionnaire) -> dict[str, Any]:
    """The editable fields of a saved questionnaire: completion date and item answers."""
    return {
        "completed_on": row.completed_on.isoformat(),
        "items": {str(n): a for n, a in sorted(saved_answers(row).items())},
    }


def _item_key(key: Any) -> str:
    """``"01"``, ``1`` and ``" 1"`` name the same item; other text is kept for the engine to
    refuse by name."""
    text = str(key).strip()
    return str(int(text)) if text.isascii() and text.isdigit() and len(text) <= 6 else text


@service(Action.WRITE, Resource.QOL)
def edit_questionnaire(
    ctx: Ctx,
    patient_code: str,
    qol_id: int,
    changes: Mapping[str, Any],
) -> QolQuestionnaire:
    """Correct item answers (``{"items": {"3": 2, "4": null}}``: null or blank = missing; items
    left out keep their answer) or the completion date of a saved questionnaire, re-scored by
    the QoL engine with the entry rules (:func:`questionnaire_values`). Needs a reason."""
    require_reason(ctx.session, "a saved questionnaire")
    edits.only(changes, QOL_EDITABLE)
    row = get_questionnaire(ctx, patient_code, qol_id)
    inst = scoring.instrument(row.instrument)
    saved = questionnaire_edit_form(row)
    items: dict[str, Any] = dict(saved["items"])
    given = changes.get("items", {})
    if not isinstance(given, Mapping):
        raise invalid("items", "not_an_object", N_("expected an object of item number -> answer"))
    for key, answer in given.items():
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            items.pop(_item_key(key), None)
        else:
            items[_item_key(key)] = answer
    values = questionnaire_values(
        inst,
        {"items": items, "completed_on": changes.get("completed_on", saved["completed_on"])},
        ctx.today(),
    )
    patient = patients.get_patient(ctx, patient_code)
    patients.check_date(ctx, patient, "qol", values["completed_on"], "completed_on")
    answers = scoring.parse_items(inst, items)
    if answers == saved_answers(row):  # same answers: keep them and their scores as saved
        values.update(answers_json=row.answers_json, scores_json=row.scores_json)
    else:
        canonical = {str(n): a for n, a in answers.items()}
        values["answers_json"] = json.dumps(canonical, sort_keys=True)
    edits.apply(row, values, "questionnaire")
    ctx.session.flush()
    return row
