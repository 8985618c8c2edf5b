"""Recording EORTC questionnaires, scored by the QoL engine at entry."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reluth.cli_support import to_jsonable
from reluth.db import edits
from reluth.db import validate as v
from reluth.db.session import require_reason
from reluth.errors import Conflict, NotFound, ValidationError
from reluth.patients.service import get_patient
from reluth.protocol.definition import Protocol, load_protocol
from reluth.qol import scoring
from reluth.qol.models import QolQuestionnaire


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
        "answers_json": json.dumps(items, sort_keys=True),
        "scores_json": json.dumps(
            to_jsonable({"scales": scored.scales, "summary": scored.summary}), sort_keys=True
        ),
    }


def record_questionnaire(
    session: Session,
    data: Any,
    today: dt.date | None = None,
    protocol: Protocol | None = None,
) -> QolQuestionnaire:
    """``{"patient_id", "instrument": QLQ-C30|QLQ-GINET21, "timepoint", "completed_on",
    "items": {"1": 2, ...}}``; answers are validated and scored by the engine."""
    today = today or dt.date.today()
    w = "questionnaire"
    body = v.obj(data, w)
    patient = get_patient(session, str(body.get("patient_id")))
    inst = scoring.instrument(str(body.get("instrument")))
    values = questionnaire_values(inst, body, today)
    timepoint = v.text(body, "timepoint", w)
    assert timepoint is not None
    if session.scalars(
        select(QolQuestionnaire).where(
            QolQuestionnaire.patient_id == patient.id,
            QolQuestionnaire.instrument == inst.name,
            QolQuestionnaire.timepoint == timepoint,
        )
    ).first():
        raise Conflict(f"{inst.name} at {timepoint} is already recorded for {patient.patient_code}")
    row = QolQuestionnaire(
        patient_id=patient.id,
        instrument=inst.name,
        timepoint=timepoint,
        protocol_version=(protocol or load_protocol()).label,
        **values,
    )
    session.add(row)
    session.flush()
    return row


#: What a correction of a saved questionnaire may change (instrument and time point stay).
QOL_EDITABLE = ("items", "completed_on")


def get_questionnaire(session: Session, patient_code: str, qol_id: int) -> QolQuestionnaire:
    patient = get_patient(session, patient_code)
    row = session.get(QolQuestionnaire, qol_id)
    if row is None or row.patient_id != patient.id:
        raise NotFound(f"questionnaire {qol_id} of {patient_code} not found")
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
    return str(int(text)) if text.isascii() and text.isdigit() else text


def edit_questionnaire(
    session: Session,
    patient_code: str,
    qol_id: int,
    changes: Mapping[str, Any],
    today: dt.date,
) -> QolQuestionnaire:
    """Correct item answers (``{"items": {"3": 2, "4": null}}``: null or blank = missing; items
    left out keep their answer) or the completion date of a saved questionnaire, re-scored by
    the QoL engine with the entry rules (:func:`questionnaire_values`). Needs a reason."""
    require_reason(session, "a saved questionnaire")
    edits.only(changes, QOL_EDITABLE)
    row = get_questionnaire(session, patient_code, qol_id)
    inst = scoring.instrument(row.instrument)
    saved = questionnaire_edit_form(row)
    items: dict[str, Any] = dict(saved["items"])
    given = changes.get("items", {})
    if not isinstance(given, Mapping):
        raise ValidationError("items", "expected an object of item number -> answer", None)
    for key, answer in given.items():
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            items.pop(_item_key(key), None)
        else:
            items[_item_key(key)] = answer
    values = questionnaire_values(
        inst,
        {"items": items, "completed_on": changes.get("completed_on", saved["completed_on"])},
        today,
    )
    answers = scoring.parse_items(inst, items)
    if answers == saved_answers(row):  # same answers: keep them and their scores as saved
        values.update(answers_json=row.answers_json, scores_json=row.scores_json)
    else:
        canonical = {str(n): a for n, a in answers.items()}
        values["answers_json"] = json.dumps(canonical, sort_keys=True)
    edits.apply(row, values, "questionnaire")
    session.flush()
    return row
