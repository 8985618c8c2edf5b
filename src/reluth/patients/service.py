"""Use cases for a patient before randomization: register, screen, include, the
pre-randomization assessment; and deaths and end of study.

Each service takes a :class:`~reluth.core.context.Ctx` (the authenticated actor, the audited
transaction, the trial), is declared with the permission it needs (the policy is asked before
it runs), scopes the patient to the actor's centres, and checks the trial's order of dates
(:mod:`reluth.patients.timeline`) before writing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import BindParameter, Date, Integer, Select, bindparam, func, select
from sqlalchemy.orm import Session, defer, lazyload

from reluth.auth.policy import Action, Resource
from reluth.clinical import forms
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.db import edits
from reluth.db.session import require_reason
from reluth.errors import Conflict, NotFound, PreconditionFailed, ValidationError
from reluth.i18n import LANGUAGES, N_
from reluth.i18n.reasons import (
    Joined,
    Reason,
    Translated,
    Word,
    invalid,
    refusal,
    render_stored,
    too_long,
    unmet,
)
from reluth.i18n.vocabulary import ELIGIBILITY, SEXES
from reluth.patients import timeline
from reluth.patients.models import (
    Death,
    EndOfStudy,
    Inclusion,
    Patient,
    PreRandomizationAssessment,
    Screening,
    Withdrawal,
)
from reluth.protocol.definition import Protocol
from reluth.protocol.eligibility import check_eligibility
from reluth.protocol.patient import PATIENT_ID_PATTERN, PatientFile, parse_patient
from reluth.protocol.strata import derive_strata
from reluth.sites import service as sites

_M = TypeVar("_M")
RESPONSES = ("CR", "PR", "SD", "PD", "NE")
DEATH_CAUSES = forms.DEATH_CAUSES
END_REASONS = forms.END_REASONS
WITHDRAWAL_KINDS = forms.WITHDRAWAL_KINDS
#: Free-text limits shared by every path (the columns are Text; this is the rule).
COMMENT_MAX = 2000
DETAILS_MAX = 2000


#: The kinds of withdrawal as refusals name them (``reluth.clinical.forms.WITHDRAWAL_KINDS``).
_WITHDRAWAL_WORDS = {
    "treatment": N_("treatment"),
    "follow_up": N_("follow-up"),
    "objection": N_("objection"),
}


def patient_not_found(code: str) -> NotFound:
    """The patient ``code`` is unknown, or not in a centre the actor sees."""
    return refusal(NotFound, "patient_not_found", N_("patient {patient} not found"), patient=code)


def not_included(code: str) -> PreconditionFailed:
    """Trial data is recorded for included patients only."""
    return refusal(
        PreconditionFailed, "not_included", N_("patient {patient} is not included"), patient=code
    )


def _choice(field: str, value: str, accepted: tuple[str, ...]) -> str:
    if value not in accepted:
        raise invalid(
            field, "not_accepted", N_("{value} is not accepted"), accepted, value=repr(value)
        )
    return value


def optional_text(value: Any, field: str, limit: int) -> str | None:
    """Free text as stored: trimmed, None when blank, at most ``limit`` printable characters
    (new lines allowed)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(
            field,
            "not_text",
            N_("expected text, got {value}"),
            N_("free text"),
            value=repr(value),
        )
    text = value.strip()
    if len(text) > limit:
        raise too_long(field, len(text), limit)
    if any(not (ch.isprintable() or ch in "\n\r\t") for ch in text):
        raise invalid(
            field, "control_characters", N_("contains control characters"), N_("printable text")
        )
    return text or None


_BY_PATIENT: dict[type[Any], Any] = {}


def sex_of(session: Session, patient: Patient) -> str | None:
    """The patient's sex (``F``/``M``): as registered, else as the latest screening gave it.
    Registration leaves it optional; the rules that depend on it (the pregnancy testing
    before a cycle, CTFG 2020 §4) must not be skipped because it was left out there."""
    if patient.sex is not None:
        return patient.sex
    latest = session.scalars(
        select(Screening.input_json)
        .where(Screening.patient_id == patient.id)
        .order_by(Screening.id.desc())
        .limit(1)
    ).first()
    screened = json.loads(latest).get("sex") if latest else None
    return screened[0].upper() if isinstance(screened, str) and screened else None


def first_for_patient(session: Session, model: type[_M], patient_id: int) -> _M | None:
    """The first row of ``model`` for a patient (statement built once per model)."""
    stmt = _BY_PATIENT.get(model)
    if stmt is None:
        stmt = _BY_PATIENT[model] = select(model).where(
            model.patient_id == bindparam("pid")  # type: ignore[attr-defined]
        )
    row: _M | None = session.scalars(stmt, {"pid": patient_id}).first()
    return row


def patient_statement(*columns: Any, centre: bool = True) -> Select[Any]:
    """The statement of :func:`get_patient_row`: the patient by its code, with ``columns``
    (scalar subqueries) read in the same round trip; ``centre=False`` leaves its centre to a
    lazy load (a hot write path that needs only the patient's ``centre_id`` loads one entity,
    not two). Build it once, at import."""
    stmt = select(Patient, *columns).where(Patient.patient_code == bindparam("code"))
    return stmt if centre else stmt.options(lazyload(Patient.centre))


_PATIENT_BY_CODE = patient_statement()
_PATIENT_ALONE = patient_statement(centre=False)


def _patient_row(session: Session, code: str, stmt: Select[Any]) -> Any:
    if not isinstance(code, str) or not re.match(PATIENT_ID_PATTERN, code):
        raise invalid(
            "patient_id",
            "not_a_patient_id",
            N_("{value} is not a patient ID"),
            N_("e.g. {example}"),
            value=repr(code),
            example="C07-0012",
        )
    row = session.execute(stmt, {"code": code}).first()
    if row is None:
        raise patient_not_found(code)
    return row


def find_patient(session: Session, code: str) -> Patient:
    """The patient ``code`` without any permission check (NotFound); services use
    :func:`get_patient`, which scopes it to the actor."""
    patient: Patient = _patient_row(session, code, _PATIENT_BY_CODE)[0]
    return patient


def get_patient(ctx: Ctx, code: str, centre: bool = True) -> Patient:
    """The patient ``code`` if the running service's permission covers its centre for this
    actor; otherwise the same NotFound as an unknown ID (cross-centre guessing learns nothing).
    ``centre=False``: its centre is loaded only if used (:func:`patient_statement`)."""
    stmt = _PATIENT_BY_CODE if centre else _PATIENT_ALONE
    patient: Patient = get_patient_row(ctx, code, stmt)[0]
    return patient


def get_patient_row(ctx: Ctx, code: str, stmt: Select[Any]) -> Any:
    """:func:`get_patient` with the extra columns of ``stmt`` (:func:`patient_statement`): the
    row ``(patient, *columns)``, scoped to the actor alike (a hot write path saves a round
    trip)."""
    row = _patient_row(ctx.session, code, stmt)
    if not ctx.sees_centre(row[0].centre_id):
        raise patient_not_found(code)
    return row


def milestones(
    session: Session, patient: Patient, without: Withdrawal | None = None
) -> timeline.Milestones:
    """The dates a new record of this patient is checked against (``without``: a withdrawal
    being corrected, whose saved date is not a milestone of its own correction), read in one
    statement (every dated record pays this check: one round trip instead of one per source)."""
    single: dict[str, Any] = {}
    cycles: dict[int, dt.date] = {}
    withdrawals: dict[str, dt.date] = {}
    latest: dict[str, dt.date | None] = {}
    params = {"pid": patient.id, "without": -1 if without is None else without.id}
    for kind, key, day, moment in session.execute(_milestones_statement(), params):
        if kind == "cycle":
            cycles.setdefault(int(key), day)
        elif kind == "withdrawal":
            withdrawals.setdefault(key, day)
        elif kind.startswith("max:"):
            latest[kind[4:]] = day
        else:
            single.setdefault(kind, moment if kind == "randomization" else day)
    rand = single.get("randomization")
    latest_all, what = _latest_of(latest, _CLINICAL_SOURCES)
    latest_fu, what_fu = _latest_of(latest, _FOLLOW_UP_SOURCES)
    return timeline.Milestones(
        consent=single.get("consent"),
        inclusion=single.get("inclusion"),
        cycles=cycles,
        pre_randomization=single.get("pre_randomization"),
        randomization=None if rand is None else rand.date(),
        death=single.get("death"),
        latest_clinical=latest_all,
        latest_clinical_what=what,
        withdrawals=withdrawals,
        end_of_study=single.get("end_of_study"),
        latest_follow_up=latest_fu,
        latest_follow_up_what=what_fu,
    )


#: The dated clinical records, in the order ties are resolved: what a death, an end of study or
#: an objection may not precede (all of them), and a withdrawal from follow-up (the visit-bound
#: ones, :data:`_FOLLOW_UP_SOURCES`).
_CLINICAL_SOURCES = (
    N_("laboratory result"),
    N_("adverse event onset"),
    N_("visit"),
    N_("questionnaire"),
    N_("tumour assessment"),
    N_("administration"),
    N_("pregnancy test"),
    N_("medication start"),
    N_("medication stop"),
)
_FOLLOW_UP_SOURCES = tuple(
    s
    for s in _CLINICAL_SOURCES
    if s not in ("adverse event onset", "administration", "medication start", "medication stop")
)


def _latest_of(
    latest: Mapping[str, dt.date | None], sources: tuple[str, ...]
) -> tuple[dt.date | None, str | None]:
    best: tuple[dt.date | None, str | None] = (None, None)
    for what in sources:
        day = latest.get(what)
        if day is not None and (best[0] is None or day > best[0]):
            best = (day, what)
    return best


_MILESTONES: list[Any] = []


def _milestones_statement() -> Any:
    """One UNION ALL of every milestone source as rows ``(kind, key, date, moment)``: the
    single dates, the cycles and withdrawals by number and kind, and the latest date of each
    clinical record (built once)."""
    if _MILESTONES:
        return _MILESTONES[0]
    from sqlalchemy import DateTime, String, cast, literal_column, null, union_all

    from reluth.clinical.models import ConcomitantMedication, PregnancyTest
    from reluth.qol.models import QolQuestionnaire
    from reluth.randomization.models import Randomization
    from reluth.response.models import TumourAssessment
    from reluth.safety.models import AdverseEvent, LabResult
    from reluth.treatment.models import Administration, Visit

    pid: BindParameter[int] = bindparam("pid", type_=Integer())

    def row(kind: str, key: Any, day: Any, moment: Any, owner: Any) -> Any:
        return select(literal_column(f"'{kind}'", String()), key, day, moment).where(owner == pid)

    no_key, no_day = cast(null(), String(16)), cast(null(), Date())
    no_moment = cast(null(), DateTime(timezone=True))
    parts = [
        # first: its column types type the whole union's result
        row("randomization", no_key, no_day, Randomization.randomized_at, Randomization.patient_id),
        row("consent", no_key, Inclusion.consent_date, no_moment, Inclusion.patient_id),
        row("inclusion", no_key, Inclusion.inclusion_date, no_moment, Inclusion.patient_id),
        row(
            "pre_randomization",
            no_key,
            PreRandomizationAssessment.assessment_date,
            no_moment,
            PreRandomizationAssessment.patient_id,
        ),
        row("death", no_key, Death.death_date, no_moment, Death.patient_id),
        row("end_of_study", no_key, EndOfStudy.end_date, no_moment, EndOfStudy.patient_id),
        row(
            "cycle",
            cast(Administration.cycle, String(16)),
            Administration.administered_on,
            no_moment,
            Administration.patient_id,
        ),
        row(
            "withdrawal",
            Withdrawal.kind,
            Withdrawal.withdrawal_date,
            no_moment,
            Withdrawal.patient_id,
        ).where(Withdrawal.id != bindparam("without", type_=Integer())),
    ]
    latest = (
        ("laboratory result", LabResult.sample_date, LabResult.patient_id),
        ("adverse event onset", AdverseEvent.onset_date, AdverseEvent.patient_id),
        ("visit", Visit.visit_date, Visit.patient_id),
        ("questionnaire", QolQuestionnaire.completed_on, QolQuestionnaire.patient_id),
        ("tumour assessment", TumourAssessment.assessment_date, TumourAssessment.patient_id),
        ("administration", Administration.administered_on, Administration.patient_id),
        ("pregnancy test", PregnancyTest.test_date, PregnancyTest.patient_id),
        ("medication start", ConcomitantMedication.start_date, ConcomitantMedication.patient_id),
        ("medication stop", ConcomitantMedication.stop_date, ConcomitantMedication.patient_id),
    )
    assert tuple(w for w, _c, _o in latest) == _CLINICAL_SOURCES
    parts += [
        row(f"max:{what}", no_key, func.max(col), no_moment, owner) for what, col, owner in latest
    ]
    _MILESTONES.append(union_all(*parts))
    return _MILESTONES[0]


def included_milestones(session: Session, patient: Patient) -> timeline.Milestones:
    """The patient's milestones, refused unless the patient is included (trial data is
    recorded for included patients): one statement for both checks of a dated entry."""
    known = milestones(session, patient)
    if known.inclusion is None:
        raise not_included(patient.patient_code)
    return known


def require_included(session: Session, patient: Patient) -> None:
    """Trial data (labs, adverse events, questionnaires, visits) is recorded for included
    patients."""
    if first_for_patient(session, Inclusion, patient.id) is None:
        raise not_included(patient.patient_code)


def check_date(
    ctx: Ctx,
    patient: Patient,
    kind: str,
    day: dt.date,
    field: str,
    cycle: int | None = None,
    withdrawal: str | None = None,
    known: timeline.Milestones | None = None,
    without: Withdrawal | None = None,
) -> dt.date:
    """The one door of every dated record: :func:`reluth.patients.timeline.check` against the
    patient's milestones (``known``: as the caller just read them) and today at the site."""
    return timeline.check(
        known or milestones(ctx.session, patient, without),
        kind,
        day,
        ctx.today(),
        field,
        cycle=cycle,
        pre_cycles=ctx.protocol.pre_randomization_cycles,
        withdrawal=withdrawal,
    )


# ----------------------------------------------------------------------------- registration


def _next_free_code(session: Session, centre: Any) -> str:
    """The centre's next automatic patient code: the counter is advanced under its row lock
    (race-free), past any number already given explicitly."""
    for _ in range(10_000):
        code = f"{centre.code}-{sites.next_patient_number(session, centre):04d}"
        if session.scalars(_PATIENT_BY_CODE, {"code": code}).first() is None:
            return code
    raise refusal(
        Conflict,
        "no_free_patient_number",
        N_("centre {centre} has no free patient number left"),
        centre=centre.code,
    )


def _birth_year(value: Any, today: dt.date, protocol_min_age: int, max_age: int) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid(
            "birth_year",
            "not_a_year",
            N_("{value}"),
            N_("a year, e.g. {example}"),
            value=repr(value),
            example="1961",
        )
    text = str(value).strip()
    if not (text.isascii() and text.isdigit() and len(text) == 4):
        raise invalid(
            "birth_year",
            "not_a_year",
            N_("{value}"),
            N_("a year of 4 digits, e.g. {example}"),
            value=repr(text[:12]),
            example="1961",
        )
    year = int(text)
    if not today.year - max_age <= year <= today.year - protocol_min_age:
        raise invalid(
            "birth_year",
            "birth_year_out_of_range",
            N_("{value}"),
            N_("{lo}..{hi} (adults)"),
            value=str(year),
            lo=str(today.year - max_age),
            hi=str(today.year - protocol_min_age),
        )
    return year


@service(Action.WRITE, Resource.PATIENT)
def register_patient(
    ctx: Ctx,
    centre_code: str,
    patient_code: str | None = None,
    sex: str | None = None,
    birth_year: int | str | None = None,
) -> Patient:
    """A new pseudonymous patient at a centre the actor works at; without ``patient_code`` the
    centre's next number (taken race-free under the centre's counter lock)."""
    session, today = ctx.session, ctx.today()
    centre = sites.centre_by_code(session, centre_code)
    ctx.require_centre(centre.id)
    if sex is not None:
        _choice("sex", sex, ("female", "male"))
    elig = ctx.protocol.eligibility
    year = _birth_year(birth_year, today, elig.age_min_years, elig.age_max_plausible_years)
    if patient_code is None:
        patient_code = _next_free_code(session, centre)
    if not isinstance(patient_code, str) or not re.match(PATIENT_ID_PATTERN, patient_code):
        raise invalid(
            "patient_id",
            "not_a_patient_id",
            N_("{value}"),
            N_("C<centre>-<4 digits>, {example}"),
            value=repr(patient_code),
            example="C07-0012",
        )
    if not patient_code.startswith(centre.code + "-"):
        raise invalid(
            "patient_id",
            "patient_of_another_centre",
            N_("{patient} does not belong to centre {centre}"),
            (centre.code,),
            patient=patient_code,
            centre=centre.code,
        )
    if session.scalars(_PATIENT_BY_CODE, {"code": patient_code}).first():
        raise refusal(
            Conflict,
            "already_registered",
            N_("patient {patient} is already registered"),
            patient=patient_code,
        )
    patient = Patient(
        patient_code=patient_code,
        centre_id=centre.id,
        sex=None if sex is None else sex[0].upper(),
        birth_year=year,
        registered_at=ctx.now(),
        protocol_version=ctx.protocol.label,
    )
    session.add(patient)
    session.flush()
    return patient


# ------------------------------------------------------------------------------- screening


@dataclass(frozen=True)
class ScreeningOutcome:
    patient_id: str
    screening_id: int
    status: str
    stratum: str | None
    criteria: list[dict[str, Any]]


def _agrees_with_registration(patient: Patient, pf: PatientFile) -> None:
    """Registration and screening describe the same person: sex and age (from the birth year)
    agree, or the screening is refused naming the field."""
    if patient.sex is not None and pf.sex is not None and pf.sex[0].upper() != patient.sex:
        registered = "female" if patient.sex == "F" else "male"
        raise invalid(
            "sex",
            "sex_differs_from_registration",
            N_("{given} differs from the registration ({registered})"),
            N_("{registered}"),
            given=Word(SEXES.get(pf.sex, pf.sex)),
            registered=Word(SEXES[registered]),
        )
    if patient.birth_year is not None and pf.age is not None:
        low, high = timeline.age_on(patient.birth_year, pf.assessment_date)
        if pf.age not in (low, high):
            raise invalid(
                "age",
                "age_differs_from_registration",
                N_("{age} on {day} does not match the registered birth year {year}"),
                N_("{low} or {high}"),
                age=pf.age,
                day=pf.assessment_date,
                year=str(patient.birth_year),
                low=low,
                high=high,
            )


@service(Action.WRITE, Resource.SCREENING)
def screen_patient(ctx: Ctx, data: Any) -> ScreeningOutcome:
    """Check eligibility (inclusion stage) and freeze the input and per-criterion result."""
    proto, today = ctx.protocol, ctx.today()
    patient_file = parse_patient(data, as_of=today)
    patient = get_patient(ctx, patient_file.patient_id)
    timeline.in_range("assessment_date", patient_file.assessment_date, today)
    if _randomization_of(ctx.session, patient) is not None:
        raise refusal(
            Conflict,
            "already_randomized",
            N_("patient {patient} is already randomized"),
            patient=patient.patient_code,
        )
    _agrees_with_registration(patient, patient_file)
    result = check_eligibility(patient_file, proto, stage="inclusion")
    criteria = [c.as_dict() for c in result.criteria]
    try:
        strata = derive_strata(patient_file, proto)
        strata_code: str | None = strata.code
        strata_json: str | None = json.dumps(strata.as_dict(), sort_keys=True)
    except ValidationError:
        strata_code = strata_json = None
    record = Screening(
        patient_id=patient.id,
        assessment_date=patient_file.assessment_date,
        stage=result.stage,
        status=result.status,
        input_json=json.dumps(data, sort_keys=True, ensure_ascii=False),
        result_json=json.dumps(
            {"status": result.status, "criteria": criteria, "derived": result.derived},
            sort_keys=True,
            ensure_ascii=False,
        ),
        strata_code=strata_code,
        strata_json=strata_json,
        screened_at=ctx.now(),
        protocol_version=result.protocol_version,
    )
    ctx.session.add(record)
    ctx.session.flush()
    return ScreeningOutcome(patient.patient_code, record.id, result.status, strata_code, criteria)


#: The latest screening *captured* (by capture order), whatever its assessment date: an
#: inclusion or a randomization rests on what was entered last, never on an older record (a
#: re-screening at the pre-randomization gate is what the randomization then rests on; the
#: inclusion keeps the one it rested on, which may not be dated after it).
_LATEST_SCREENING = (
    select(Screening)
    .where(Screening.patient_id == bindparam("pid"))
    .order_by(Screening.id.desc())
    .limit(1)
)
_LATEST_SCREENING_LIGHT = _LATEST_SCREENING.options(
    defer(Screening.input_json), defer(Screening.result_json)
)


def latest_screening(session: Session, patient: Patient, light: bool = False) -> Screening | None:
    """The most recently captured screening; ``light`` leaves the frozen JSON unloaded."""
    stmt = _LATEST_SCREENING_LIGHT if light else _LATEST_SCREENING
    return session.scalars(stmt, {"pid": patient.id}).first()


def failed_criteria(screening: Screening, protocol: Protocol, limit: int = 4) -> Joined:
    """The criteria a screening failed or could not decide, each with its text (what it means,
    not only its code: the protocol file's wording in every language it gives) and the reason,
    shown in the reader's language."""
    result = json.loads(screening.result_json)
    bad = [c for c in result["criteria"] if c["passes"] is not True]
    eligibility = protocol.eligibility
    items = []
    for c in bad[:limit]:
        message = c.get("message")
        why: Any = Reason.from_dict(message) if message else c.get("reason", "")
        if c["id"] in eligibility.criteria.ids:
            text: Any = Translated(
                tuple((lang, eligibility.text(c["id"], lang)) for lang in LANGUAGES)
            )
        else:
            text = c.get("text") or ""
        if text:
            template = N_("{id} ({text}): {reason}")
            items.append(
                Reason("criterion", template, {"id": c["id"], "text": text, "reason": why})
            )
        else:
            items.append(Reason("criterion", N_("{id}: {reason}"), {"id": c["id"], "reason": why}))
    return Joined(tuple(items))


def criteria_reasons(criteria: list[dict[str, Any]]) -> Joined:
    """Stored criteria's verdicts as one reason per criterion (``I11: …``), for a refusal."""
    items = []
    for c in criteria:
        message = c.get("message")
        why: Any = Reason.from_dict(message) if message else c.get("reason", "")
        items.append(Reason("criterion", N_("{id}: {reason}"), {"id": c["id"], "reason": why}))
    return Joined(tuple(items), "; ")


def criterion_reason(criterion: dict[str, Any]) -> str:
    """A stored criterion's reason in the current language (its message key and values;
    the English text of a screening stored before reasons had keys)."""
    return render_stored(criterion.get("message"), criterion.get("reason", ""))


@service(Action.READ, Resource.SCREENING)
def last_patient_file(ctx: Ctx, patient_code: str) -> dict[str, Any] | None:
    """The patient file of the patient's latest screening, as captured (a re-screening starts
    from it); None before the first screening."""
    screening = latest_screening(ctx.session, get_patient(ctx, patient_code))
    if screening is None:
        return None
    data: dict[str, Any] = json.loads(screening.input_json)
    return data


# ------------------------------------------------------------------------------- inclusion


def inclusion_values(
    m: timeline.Milestones,
    consent_date: dt.date,
    inclusion_date: dt.date,
    today: dt.date,
    screening: Screening | None,
) -> dict[str, dt.date]:
    """The checked dates of an inclusion, at entry and at every correction: consent on or
    before inclusion, inclusion on or after the screening it rests on, before cycle 1 and the
    randomization (:mod:`reluth.patients.timeline`)."""
    timeline.in_range("inclusion_date", inclusion_date, today)
    timeline.in_range("consent_date", consent_date, today)
    if consent_date > inclusion_date:
        raise invalid(
            "consent_date",
            "consent_after_inclusion",
            N_("{day} is after inclusion"),
            N_("<= {inclusion}"),
            day=consent_date,
            inclusion=inclusion_date,
        )
    if screening is not None and screening.assessment_date > inclusion_date:
        raise invalid(
            "inclusion_date",
            "inclusion_before_screening",
            N_("{day} is before the screening it rests on ({screening})"),
            N_("a date >= {screening}"),
            day=inclusion_date,
            screening=screening.assessment_date,
        )
    without = timeline.Milestones(
        cycles=m.cycles,
        pre_randomization=m.pre_randomization,
        randomization=m.randomization,
        death=m.death,
    )
    timeline.check(without, "inclusion", inclusion_date, today, "inclusion_date", pre_cycles=())
    return {"consent_date": consent_date, "inclusion_date": inclusion_date}


@service(Action.WRITE, Resource.PATIENT)
def include_patient(
    ctx: Ctx,
    patient_code: str,
    consent_date: dt.date | None,
    inclusion_date: dt.date | None = None,
) -> Inclusion:
    """Include an eligible patient who signed the informed consent."""
    today = ctx.today()
    inclusion_date = inclusion_date or today
    patient = get_patient(ctx, patient_code)
    screening = latest_screening(ctx.session, patient)
    if screening is None:
        raise refusal(
            PreconditionFailed,
            "not_screened",
            N_("patient {patient} has not been screened"),
            patient=patient_code,
        )
    if screening.status != "eligible":
        reason = Reason(
            "not_eligible_at_screening",
            N_("patient {patient} is {status} at the latest screening ({day}): {criteria}"),
            {
                "patient": patient_code,
                "status": Word(ELIGIBILITY.get(screening.status, screening.status)),
                "day": screening.assessment_date,
                "criteria": failed_criteria(screening, ctx.protocol),
            },
        )
        raise PreconditionFailed(reason.english(), params={"reason": reason})
    if consent_date is None:
        raise refusal(
            PreconditionFailed,
            "consent_missing",
            N_("patient {patient}: informed consent not signed"),
            patient=patient_code,
        )
    if first_for_patient(ctx.session, Inclusion, patient.id):
        raise refusal(
            Conflict,
            "already_included",
            N_("patient {patient} is already included"),
            patient=patient_code,
        )
    m = milestones(ctx.session, patient)
    values = inclusion_values(m, consent_date, inclusion_date, today, screening)
    inclusion = Inclusion(
        patient_id=patient.id,
        screening_id=screening.id,
        consent_signed=True,
        protocol_version=ctx.protocol.label,
        **values,
    )
    ctx.session.add(inclusion)
    ctx.session.flush()
    return inclusion


#: What a correction of a saved inclusion may change (the screening it rests on stays).
INCLUSION_EDITABLE = ("consent_date", "inclusion_date")


def _inclusion_of(ctx: Ctx, patient_code: str) -> Inclusion:
    patient = get_patient(ctx, patient_code)
    row = first_for_patient(ctx.session, Inclusion, patient.id)
    if row is None:
        raise refusal(
            NotFound, "not_included", N_("patient {patient} is not included"), patient=patient_code
        )
    return row


@service(Action.READ, Resource.PATIENT)
def get_inclusion(ctx: Ctx, patient_code: str) -> Inclusion:
    return _inclusion_of(ctx, patient_code)


def inclusion_edit_form(row: Inclusion) -> dict[str, str]:
    """The editable fields of a saved inclusion as text, as a correction form shows them."""
    return {
        "consent_date": "" if row.consent_date is None else row.consent_date.isoformat(),
        "inclusion_date": row.inclusion_date.isoformat(),
    }


@service(Action.WRITE, Resource.PATIENT)
def edit_inclusion(ctx: Ctx, patient_code: str, changes: Mapping[str, Any]) -> Inclusion:
    """Correct the consent and inclusion dates with the entry rules
    (:func:`inclusion_values`). Allowed after randomization too (a date is corrected, not the
    decision to include), as long as inclusion still precedes the first cycle and the
    randomization. Needs a reason in the unit of work."""
    require_reason(ctx.session, "a saved inclusion")
    edits.only(changes, INCLUSION_EDITABLE)
    row = _inclusion_of(ctx, patient_code)
    merged: dict[str, Any] = {**inclusion_edit_form(row), **changes}
    patient = get_patient(ctx, patient_code)
    screening = ctx.session.get(Screening, row.screening_id)
    values = inclusion_values(
        milestones(ctx.session, patient),
        edits.as_date(merged["consent_date"], "consent_date"),
        edits.as_date(merged["inclusion_date"], "inclusion_date"),
        ctx.today(),
        screening,
    )
    edits.apply(row, values, "inclusion")
    ctx.session.flush()
    return row


def _randomization_of(session: Session, patient: Patient) -> Any:
    from reluth.randomization.models import Randomization

    return first_for_patient(session, Randomization, patient.id)


# -------------------------------------------------------------- pre-randomization assessment


def pre_randomization_values(
    assessment_date: dt.date,
    radiological_progression: bool | None,
    overall_response: str | None,
    today: dt.date,
) -> dict[str, Any]:
    """The checked assessment, at entry and at every correction: a RECIST response, and
    radiological progression if and only if the response is PD (derived from the response when
    not given). Dates are checked against the timeline by the callers."""
    timeline.in_range("assessment_date", assessment_date, today)
    if radiological_progression is None:
        if overall_response is None:
            raise invalid(
                "overall_response",
                "required",
                N_("missing"),
                N_("CR, PR, SD, PD or NE (or the progression flag)"),
            )
        radiological_progression = overall_response == "PD"
    if overall_response is not None:
        _choice("overall_response", overall_response, RESPONSES)
        if (overall_response == "PD") != radiological_progression:
            raise invalid(
                "overall_response",
                "response_contradicts_progression",
                N_("{response} contradicts radiological_progression={flag}"),
                N_("PD if and only if radiological progression"),
                response=overall_response,
                flag=str(radiological_progression).lower(),
            )
    return {
        "assessment_date": assessment_date,
        "radiological_progression": radiological_progression,
        "overall_response": overall_response,
    }


@service(Action.WRITE, Resource.LOCAL_ASSESSMENT)
def record_pre_randomization(
    ctx: Ctx,
    patient_code: str,
    assessment_date: dt.date,
    radiological_progression: bool | None,
    overall_response: str | None = None,
    comment: str | None = None,
) -> PreRandomizationAssessment:
    """The tumour assessment after the two second-PRRT cycles. ``radiological_progression``
    None means "as the overall response says" (progression if and only if PD)."""
    values = pre_randomization_values(
        assessment_date, radiological_progression, overall_response, ctx.today()
    )
    text = optional_text(comment, "comment", COMMENT_MAX)
    patient = get_patient(ctx, patient_code)
    if first_for_patient(ctx.session, PreRandomizationAssessment, patient.id):
        raise refusal(
            Conflict,
            "already_recorded",
            N_("the pre-randomization assessment of {patient} is already recorded"),
            patient=patient_code,
        )
    if first_for_patient(ctx.session, Inclusion, patient.id) is None:
        raise not_included(patient_code)
    check_date(ctx, patient, "pre_randomization", assessment_date, "assessment_date")
    row = PreRandomizationAssessment(
        patient_id=patient.id,
        comment=text,
        protocol_version=ctx.protocol.label,
        **values,
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


#: What a correction of the pre-randomization assessment may change; the progression flag
#: follows the response (PD if and only if progression).
PRE_RANDOMIZATION_EDITABLE = ("assessment_date", "overall_response", "comment")


def _pre_randomization_of(ctx: Ctx, patient_code: str) -> PreRandomizationAssessment:
    patient = get_patient(ctx, patient_code)
    row = first_for_patient(ctx.session, PreRandomizationAssessment, patient.id)
    if row is None:
        raise refusal(
            NotFound,
            "not_recorded",
            N_("the pre-randomization assessment of {patient} is not recorded"),
            patient=patient_code,
        )
    return row


@service(Action.READ, Resource.LOCAL_ASSESSMENT)
def get_pre_randomization(ctx: Ctx, patient_code: str) -> PreRandomizationAssessment:
    return _pre_randomization_of(ctx, patient_code)


def pre_randomization_edit_form(row: PreRandomizationAssessment) -> dict[str, str]:
    """The editable fields of the saved assessment as text, as a correction form shows them."""
    return {
        "assessment_date": row.assessment_date.isoformat(),
        "overall_response": row.overall_response or "",
        "comment": row.comment or "",
    }


@service(Action.WRITE, Resource.LOCAL_ASSESSMENT)
def edit_pre_randomization(
    ctx: Ctx, patient_code: str, changes: Mapping[str, Any]
) -> PreRandomizationAssessment:
    """Correct the pre-randomization assessment (date, overall response, comment) with the
    entry rules (:func:`pre_randomization_values`); the progression flag is derived from the
    corrected response. Once the patient is randomized, the correction may not make the
    randomization invalid after the fact: no progression (PD), and the assessment stays on or
    before the randomization date. Needs a reason in the unit of work."""
    require_reason(ctx.session, "a saved pre-randomization assessment")
    edits.only(changes, PRE_RANDOMIZATION_EDITABLE)
    row = _pre_randomization_of(ctx, patient_code)
    merged: dict[str, Any] = {**pre_randomization_edit_form(row), **changes}
    day = edits.as_date(merged["assessment_date"], "assessment_date")
    response = merged["overall_response"]
    if response is not None and not isinstance(response, str):
        raise invalid(
            "overall_response", "not_accepted", N_("{value}"), RESPONSES, value=repr(response)
        )
    response = (response or "").strip() or None
    if response is None and row.overall_response is not None:
        raise invalid("overall_response", "required", N_("missing"), RESPONSES)
    # a saved assessment without a response keeps its progression flag; a response decides it
    progression = row.radiological_progression if response is None else None
    values = pre_randomization_values(day, progression, response, ctx.today())
    comment = optional_text(merged["comment"], "comment", COMMENT_MAX)
    patient = get_patient(ctx, patient_code)
    rand = _randomization_of(ctx.session, patient)
    if rand is not None and values["radiological_progression"]:
        randomized_on = rand.randomized_at.date()
        raise unmet(
            "overall_response",
            "randomization_invalidated",
            N_(
                "patient {patient} was randomized on {day}; {finding} at the pre-randomization "
                "assessment would make that randomization invalid (progression is a screen "
                "failure)"
            ),
            patient=patient_code,
            day=randomized_on,
            finding=response or Word(N_("radiological progression")),
        )
    check_date(ctx, patient, "pre_randomization", day, "assessment_date")
    edits.apply(row, {**values, "comment": comment}, "pre-randomization assessment")
    ctx.session.flush()
    return row


# ------------------------------------------------------- death, end of study, withdrawals


@service(Action.WRITE, Resource.PATIENT)
def record_death(
    ctx: Ctx,
    patient_code: str,
    death_date: dt.date,
    cause: str,
    details: str | None = None,
) -> Death:
    """A patient's death (:class:`reluth.clinical.forms.DeathForm`; a cause ``other`` is
    told in words): on or after every clinical record already entered (nothing clinical may
    follow it), and not after an objection to further use of the data."""
    form = forms.parse(
        forms.DeathForm, {"death_date": death_date, "cause": cause, "details": details}
    )
    patient = get_patient(ctx, patient_code)
    if first_for_patient(ctx.session, Death, patient.id):
        raise refusal(
            Conflict,
            "already_recorded",
            N_("the death of {patient} is already recorded"),
            patient=patient_code,
        )
    _check_death(ctx, patient, form)
    row = Death(
        patient_id=patient.id,
        death_date=form.death_date,
        cause=form.cause,
        details=optional_text(form.details, "details", DETAILS_MAX),
        protocol_version=ctx.protocol.label,
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


def _check_death(ctx: Ctx, patient: Patient, form: forms.DeathForm) -> None:
    check_date(ctx, patient, "death", form.death_date, "death_date")
    eos = first_for_patient(ctx.session, EndOfStudy, patient.id)
    if eos is not None and eos.reason == "death" and form.death_date > eos.end_date:
        raise invalid(
            "death_date",
            "death_after_end_of_study",
            N_("{day} is after the end of study for this death ({end})"),
            N_("a date <= {end} (correct the end of study first)"),
            day=form.death_date,
            end=eos.end_date,
        )


def _disposition_row(ctx: Ctx, patient_code: str, model: type[_M], what: str) -> _M:
    patient = get_patient(ctx, patient_code)
    row = first_for_patient(ctx.session, model, patient.id)
    if row is None:
        raise refusal(
            NotFound,
            "not_recorded",
            N_("the {what} of {patient} is not recorded"),
            what=Word(what),
            patient=patient_code,
        )
    return row


@service(Action.READ, Resource.PATIENT)
def get_death(ctx: Ctx, patient_code: str) -> Death:
    return _disposition_row(ctx, patient_code, Death, N_("death"))


def _corrected_form(
    ctx: Ctx, schema: type[forms.FormSchema], row: Any, changes: Mapping[str, Any]
) -> tuple[Patient, Any]:
    """Reason first, then the saved row with ``changes`` as its form checks it."""
    require_reason(ctx.session, f"a saved {schema.title.lower()}")
    form = forms.corrected(schema, row, dict(changes))
    patient = ctx.session.get(Patient, row.patient_id)
    assert patient is not None
    return patient, form


def _set(ctx: Ctx, row: Any, form: forms.FormSchema) -> None:
    values = form.model_dump()
    values["details"] = optional_text(values.get("details"), "details", DETAILS_MAX)
    edits.apply(row, values, form.title.lower())
    ctx.session.flush()


@service(Action.WRITE, Resource.PATIENT)
def edit_death(ctx: Ctx, patient_code: str, changes: Mapping[str, Any]) -> Death:
    """Correct the death record with its entry rules (after every clinical record, not after
    an end of study recorded for this death)."""
    row = _disposition_row(ctx, patient_code, Death, N_("death"))
    patient, form = _corrected_form(ctx, forms.DeathForm, row, changes)
    _check_death(ctx, patient, form)
    _set(ctx, row, form)
    return row


@service(Action.WRITE, Resource.PATIENT)
def record_end_of_study(
    ctx: Ctx,
    patient_code: str,
    end_date: dt.date,
    reason: str,
    details: str | None = None,
) -> EndOfStudy:
    """The end of study (:class:`reluth.clinical.forms.EndOfStudyForm`): on or after every
    clinical record; for a death, the recorded death and on or after it; for an objection, the
    recorded objection. Nothing clinical but a death may be dated after it."""
    form = forms.parse(
        forms.EndOfStudyForm, {"end_date": end_date, "reason": reason, "details": details}
    )
    patient = get_patient(ctx, patient_code)
    if first_for_patient(ctx.session, EndOfStudy, patient.id):
        raise refusal(
            Conflict,
            "already_recorded",
            N_("the end of study of {patient} is already recorded"),
            patient=patient_code,
        )
    _check_end_of_study(ctx, patient, form)
    row = EndOfStudy(
        patient_id=patient.id,
        end_date=form.end_date,
        reason=form.reason,
        details=optional_text(form.details, "details", DETAILS_MAX),
        protocol_version=ctx.protocol.label,
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


def _check_end_of_study(ctx: Ctx, patient: Patient, form: forms.EndOfStudyForm) -> None:
    patient_code = patient.patient_code
    check_date(ctx, patient, "end_of_study", form.end_date, "end_date")
    if form.reason == "death":
        death = first_for_patient(ctx.session, Death, patient.id)
        if death is None:
            raise unmet(
                "reason",
                "death_not_recorded",
                N_("the death of {patient} is not recorded (record it first)"),
                patient=patient_code,
            )
        if form.end_date < death.death_date:
            raise invalid(
                "end_date",
                "end_before_death",
                N_("{day} is before the death"),
                N_(">= {death}"),
                day=form.end_date,
                death=death.death_date,
            )
    if form.reason == "objection" and "objection" not in _withdrawal_kinds(ctx, patient):
        raise unmet(
            "reason",
            "objection_not_recorded",
            N_("the objection of {patient} is not recorded (record it first)"),
            patient=patient_code,
        )


@service(Action.READ, Resource.PATIENT)
def get_end_of_study(ctx: Ctx, patient_code: str) -> EndOfStudy:
    return _disposition_row(ctx, patient_code, EndOfStudy, N_("end of study"))


@service(Action.WRITE, Resource.PATIENT)
def edit_end_of_study(ctx: Ctx, patient_code: str, changes: Mapping[str, Any]) -> EndOfStudy:
    """Correct the end of study with its entry rules (after every clinical record; a death or
    an objection as the reason needs that record, dated before it)."""
    row = _disposition_row(ctx, patient_code, EndOfStudy, N_("end of study"))
    patient, form = _corrected_form(ctx, forms.EndOfStudyForm, row, changes)
    _check_end_of_study(ctx, patient, form)
    _set(ctx, row, form)
    return row


def _withdrawal_kinds(ctx: Ctx, patient: Patient) -> set[str]:
    stmt = select(Withdrawal.kind).where(Withdrawal.patient_id == patient.id)
    return set(ctx.session.scalars(stmt))


@service(Action.WRITE, Resource.PATIENT)
def record_withdrawal(ctx: Ctx, patient_code: str, data: Any) -> Withdrawal:
    """A withdrawal (:class:`reluth.clinical.forms.WithdrawalForm`), once per kind, after the
    consent and every record it stops (:mod:`reluth.patients.timeline`); from then on the
    domain refuses what it stops and the schedule drops the visits after it."""
    form = forms.parse(forms.WithdrawalForm, data)
    patient = get_patient(ctx, patient_code)
    require_included(ctx.session, patient)
    _check_withdrawal(ctx, patient, form)
    row = Withdrawal(
        patient_id=patient.id,
        kind=form.kind,
        withdrawal_date=form.withdrawal_date,
        decided_by=form.decided_by,
        details=optional_text(form.details, "details", DETAILS_MAX),
        protocol_version=ctx.protocol.label,
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


def _check_withdrawal(
    ctx: Ctx, patient: Patient, form: forms.WithdrawalForm, row: Withdrawal | None = None
) -> None:
    """Once per kind, after the consent and every record it stops; ``row``: the withdrawal
    being corrected (its own saved date is no milestone then)."""
    kinds = _withdrawal_kinds(ctx, patient) - ({row.kind} if row is not None else set())
    if form.kind in kinds:
        raise refusal(
            Conflict,
            "already_recorded",
            N_("the withdrawal ({kind}) of {patient} is already recorded"),
            kind=Word(_WITHDRAWAL_WORDS.get(form.kind, form.kind)),
            patient=patient.patient_code,
        )
    check_date(
        ctx,
        patient,
        "withdrawal",
        form.withdrawal_date,
        "withdrawal_date",
        withdrawal=form.kind,
        without=row,
    )


@service(Action.READ, Resource.PATIENT)
def get_withdrawal(ctx: Ctx, patient_code: str, record_id: int) -> Withdrawal:
    """One withdrawal of a patient the actor sees (else NotFound)."""
    patient = get_patient(ctx, patient_code)
    row = ctx.session.get(Withdrawal, record_id)
    if row is None or row.patient_id != patient.id:
        raise refusal(
            NotFound,
            "record_not_found",
            N_("withdrawal {id} of {patient} not found"),
            id=str(record_id),
            patient=patient_code,
        )
    return row


@service(Action.WRITE, Resource.PATIENT)
def edit_withdrawal(
    ctx: Ctx, patient_code: str, record_id: int, changes: Mapping[str, Any]
) -> Withdrawal:
    """Correct a withdrawal with its entry rules (once per kind, after every record it stops);
    an objection an end of study names as its reason stays an objection."""
    row = get_withdrawal(ctx, patient_code, record_id)
    patient, form = _corrected_form(ctx, forms.WithdrawalForm, row, changes)
    eos = first_for_patient(ctx.session, EndOfStudy, patient.id)
    if row.kind == "objection" and form.kind != "objection" and eos and eos.reason == "objection":
        raise unmet(
            "kind",
            "objection_is_end_of_study_reason",
            N_(
                "the end of study of {patient} names this objection as its reason (correct the "
                "end of study first)"
            ),
            patient=patient_code,
        )
    _check_withdrawal(ctx, patient, form, row)
    _set(ctx, row, form)
    return row


@dataclass(frozen=True)
class Disposition:
    """A patient's death, end of study and withdrawals, as the timeline shows them."""

    death: dict[str, Any] | None
    end_of_study: dict[str, Any] | None
    withdrawals: list[dict[str, Any]]


@service(Action.READ, Resource.PATIENT)
def disposition(ctx: Ctx, patient_code: str) -> Disposition:
    """The death, end of study and withdrawals of a patient (None / empty when absent)."""
    patient = get_patient(ctx, patient_code)
    death = first_for_patient(ctx.session, Death, patient.id)
    eos = first_for_patient(ctx.session, EndOfStudy, patient.id)
    rows = ctx.session.scalars(
        select(Withdrawal)
        .where(Withdrawal.patient_id == patient.id)
        .order_by(Withdrawal.withdrawal_date, Withdrawal.id)
    )
    return Disposition(
        death=None
        if death is None
        else {"death_date": death.death_date, "cause": death.cause, "details": death.details},
        end_of_study=None
        if eos is None
        else {"end_date": eos.end_date, "reason": eos.reason, "details": eos.details},
        withdrawals=[
            {
                "id": w.id,
                "kind": w.kind,
                "withdrawal_date": w.withdrawal_date,
                "decided_by": w.decided_by,
                "details": w.details,
            }
            for w in rows
        ],
    )
