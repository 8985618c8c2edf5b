"""Recording EORTC questionnaires, scored by the QoL engine at entry."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reluth.cli_support import to_jsonable
from reluth.db import validate as v
from reluth.errors import Conflict
from reluth.patients.service import get_patient
from reluth.protocol.definition import Protocol, load_protocol
from reluth.qol import scoring
from reluth.qol.models import QolQuestionnaire


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
    scored = scoring.score(inst, v.obj(body.get("items"), f"{w}.items"))
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
    completed = v.date(body, "completed_on", w, today)
    assert completed is not None
    row = QolQuestionnaire(
        patient_id=patient.id,
        instrument=inst.name,
        timepoint=timepoint,
        completed_on=completed,
        answers_json=json.dumps(body.get("items"), sort_keys=True),
        scores_json=json.dumps(
            to_jsonable({"scales": scored.scales, "summary": scored.summary}), sort_keys=True
        ),
        protocol_version=(protocol or load_protocol()).label,
    )
    session.add(row)
    session.flush()
    return row
