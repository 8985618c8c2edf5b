"""The allocation service: set-up, the concealed list, and ``randomize`` — atomic under
concurrency and idempotent per request id.

Concurrency. Inside the caller's unit of work:
* SQLite: the transaction began with ``BEGIN IMMEDIATE``, so randomizations run one at a time.
* PostgreSQL: permuted blocks lock the patient's stratum cursor row (``FOR UPDATE``), so two
  patients of one stratum take consecutive slots and different strata run in parallel;
  minimization locks the settings row, because every decision depends on all earlier ones.
After taking the lock, the service re-reads whether the request or the patient was already
served. Unique constraints (one randomization per patient, per request id, per slot; one
patient per slot) are the last line of defence.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import secrets
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import BindParameter, Integer, Select, bindparam, false, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reluth import sealing
from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.db.base import as_utc
from reluth.errors import Conflict, PreconditionFailed, ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import refusal
from reluth.patients import service as patients
from reluth.patients.models import Inclusion, Patient, PreRandomizationAssessment, Screening
from reluth.patients.service import (
    get_patient,
    get_patient_row,
    latest_screening,
    patient_statement,
)
from reluth.protocol.eligibility import recheck_time_bound
from reluth.protocol.patient import stored_patient
from reluth.protocol.strata import all_strata
from reluth.randomization import integrity, methods
from reluth.randomization.models import (
    AllocationList,
    AllocationSlot,
    AllocationStratum,
    BackupRandomization,
    Randomization,
    RandomizationSettings,
)
from reluth.sites.models import Centre
from reluth.treatment.models import Administration

METHODS = ("blocks", "minimization")


# Statements of the randomize hot path are built once (building them costs more CPU than
# running them on SQLite); parameters are bound at execution.
_SETTINGS = select(RandomizationSettings).where(RandomizationSettings.id == 1)
_SETTINGS_BY_LOCK = {
    None: _SETTINGS,
    "update": _SETTINGS.with_for_update().execution_options(populate_existing=True),
    "share": _SETTINGS.with_for_update(read=True).execution_options(populate_existing=True),
}


def get_settings(session: Session, lock: str | None = None) -> RandomizationSettings | None:
    return session.scalars(_SETTINGS_BY_LOCK[lock]).first()


#: The patient with, share-locked, whether the settings stratify by centre if the method is
#: permuted blocks (strata run in parallel under their own locks). A minimization's settings
#: match no row here (and take no lock): they are then read with the exclusive lock at once,
#: since taking a shared lock first and upgrading it would deadlock two concurrent requests on
#: PostgreSQL; the method may change only before the first randomization, under the exclusive
#: lock :func:`configure` takes.
_PATIENT_AND_BLOCKS = patient_statement(
    select(RandomizationSettings.stratify_by_centre)
    .where(RandomizationSettings.id == 1, RandomizationSettings.method == "blocks")
    .with_for_update(read=True)
    .scalar_subquery(),
    # the centre's code (the strata's and the record's), not the centre entity
    select(Centre.code).where(Centre.id == Patient.centre_id).scalar_subquery(),
    centre=False,
)


#: The method of an allocation recorded from a migrated trial's source system
#: (:func:`import_randomization`): it consumed no slot of reluth's list and no decision here.
IMPORTED = "imported"


def _any_randomized(session: Session) -> bool:
    """Whether reluth has allocated a patient itself (imported allocations do not count: they
    were decided by the source system, before reluth's method applied)."""
    stmt = select(Randomization.id).where(Randomization.method != IMPORTED).limit(1)
    return session.scalars(stmt).first() is not None


def parse_block_sizes(text: str) -> tuple[int, ...]:
    """Block sizes from their text (each is checked against the protocol's arms when used)."""
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise _bad_block_sizes(text) from None
    if not sizes or min(sizes) <= 0:
        raise _bad_block_sizes(text)
    return sizes


def _bad_block_sizes(text: str) -> ValidationError:
    return ValidationError(
        "block_sizes",
        f"{text!r}",
        "comma-separated even sizes, 2,4",
        code="not_block_sizes",
        params={"value": str(text)[:40]},
    )


def _not_one_of(field: str, value: object, accepted: Sequence[str]) -> ValidationError:
    return ValidationError(
        field,
        f"{value!r}",
        ", ".join(accepted),
        code="not_accepted",
        params={"value": str(value)[:40], "accepted": ", ".join(accepted)},
    )


def _moment(field: str, value: object, now: dt.datetime) -> dt.datetime:
    """A moment with its UTC offset, not after ``now`` (a backup or imported randomization)."""
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValidationError(
            field,
            f"{value!r}",
            "a date and time with its UTC offset",
            code="not_a_moment",
            params={"value": str(value)[:40]},
        )
    if value > now:
        raise ValidationError(
            field,
            f"{value.isoformat()} is in the future",
            code="moment_in_future",
            params={"value": value.isoformat()},
        )
    return value


@service(Action.WRITE, Resource.RANDOMIZATION_SETUP)
def configure(
    ctx: Ctx,
    method: str,
    stratify_by_centre: bool = False,
    block_sizes: Sequence[int] = (2, 4),
    p: Decimal = Decimal("0.8"),
) -> RandomizationSettings:
    """Fix the trial's method; refused once a patient has been randomized."""
    session = ctx.session
    if method not in METHODS:
        raise _not_one_of("method", method, METHODS)
    if len(set(ctx.protocol.allocation_ratio.values())) != 1:
        raise ValidationError(
            "allocation_ratio",
            f"the protocol allocates {ctx.protocol.allocation}; both methods allocate equally",
            "equal weights",
            code="unequal_allocation",
            params={"value": str(ctx.protocol.allocation)},
        )
    methods.validate_block_sizes(block_sizes, ctx.protocol.arm_codes)
    if not Decimal("0.5") < p <= 1:
        raise ValidationError("p", str(p), N_("a probability above 0.5 and at most 1"))
    settings = get_settings(session, lock="update")
    if _any_randomized(session):
        raise refusal(
            Conflict,
            "method_fixed",
            N_("the randomization method is fixed: patients have already been randomized"),
        )
    if session.scalars(select(AllocationList.id)).first() is not None and settings is not None:
        raise refusal(
            Conflict,
            "setup_fixed",
            N_("an allocation list exists: the set-up can no longer change"),
        )
    values = {
        "method": method,
        "stratify_by_centre": stratify_by_centre,
        "block_sizes": ",".join(str(s) for s in block_sizes),
        "minimization_p": p,
        "protocol_version": ctx.protocol.label,
    }
    if settings is None:
        settings = RandomizationSettings(id=1, **values)
        session.add(settings)
    else:
        for key, value in values.items():
            setattr(settings, key, value)
    session.flush()
    return settings


def stratum_key(strata_code: str, centre_code: str, by_centre: bool) -> str:
    return f"{centre_code}|{strata_code}" if by_centre else strata_code


@service(Action.WRITE, Resource.ALLOCATION_LIST)
def generate_list(ctx: Ctx, seed: str, per_stratum: int) -> AllocationList:
    """Generate the whole permuted-block list from a secret seed (unblinded statistician).

    The seed itself is not stored; its SHA-256 is, so the list can be regenerated and proved.
    """
    session, actor, proto = ctx.session, ctx.actor, ctx.protocol
    if len(seed) < 16:
        raise ValidationError("seed", N_("too short to be secret"), N_("at least 16 characters"))
    if not 1 <= per_stratum <= 5000:
        raise ValidationError("per_stratum", str(per_stratum), "1..5000")
    settings = get_settings(session, lock="update")
    if settings is None:
        settings = configure(ctx, "blocks")
    if settings.method != "blocks":
        raise refusal(
            Conflict,
            "no_list_for_method",
            N_("the trial uses {method}: no allocation list to generate"),
            method=settings.method,
        )
    if session.scalars(select(AllocationList.id)).first() is not None:
        raise refusal(
            Conflict,
            "list_exists",
            N_("an allocation list already exists (one list per trial)"),
        )
    sizes = parse_block_sizes(settings.block_sizes)
    sealer = sealing.require_key(ctx.trial.settings).sealer()
    codes = [s.code for s in all_strata(proto)]
    if settings.stratify_by_centre:
        centres = sorted(session.scalars(select(Centre.code).where(Centre.active)).all())
        if not centres:
            raise refusal(
                PreconditionFailed,
                "no_active_centre",
                N_("no active centre: add centres before generating the list"),
            )
        keys = [stratum_key(c, centre, True) for centre in centres for c in codes]
    else:
        keys = codes
    digest = hashlib.sha256()
    per_key: dict[str, list[methods.Slot]] = {}
    for key in keys:
        slots = methods.permuted_blocks(
            seed.encode("utf-8"), key, per_stratum, sizes, arms=proto.arm_codes
        )
        per_key[key] = slots
        digest.update(methods.list_digest(key, slots).encode())
    alloc = AllocationList(
        created_at=ctx.now(),
        created_by=actor.username,
        seed_sha256=hashlib.sha256(seed.encode("utf-8")).hexdigest(),
        block_sizes=settings.block_sizes,
        per_stratum=per_stratum,
        stratify_by_centre=settings.stratify_by_centre,
        content_sha256=digest.hexdigest(),
        protocol_version=proto.label,
    )
    session.add(alloc)
    session.flush()
    session.execute(
        insert(AllocationStratum),
        [
            {"list_id": alloc.id, "stratum_key": k, "size": len(v), "next_position": 1}
            for k, v in per_key.items()
        ],
    )
    session.execute(
        insert(AllocationSlot),
        [
            {
                "list_id": alloc.id,
                "stratum_key": k,
                "position": s.position,
                "sealed": sealer.seal(
                    {"arm": s.arm, "block": s.block_no, "block_size": s.block_size},
                    sealing.slot_place(alloc.id, k, s.position),
                ),
            }
            for k, v in per_key.items()
            for s in v
        ],
    )
    return alloc


# ------------------------------------------------------------------------------- randomize


@dataclass(frozen=True)
class RandomizationResult:
    """What a site is told: the arm, and nothing of the list (no block, position, slot or
    list id, no minimization scores) — RTSM practice; ICH E9 section 2.3.1 on not disclosing
    block lengths to investigators."""

    patient_id: str
    request_id: str
    arm: str
    stratum: str  # the patient's own stratification (on the patient's page already)
    randomized_at: dt.datetime
    replayed: bool = False


def _result(r: Randomization, patient_code: str, replayed: bool) -> RandomizationResult:
    at = as_utc(r.randomized_at)
    return RandomizationResult(patient_code, r.request_id, r.arm, r.stratum_key, at, replayed)


_BY_REQUEST = select(Randomization).where(Randomization.request_id == bindparam("request_id"))


def _replay(session: Session, request_id: str, patient: Patient) -> RandomizationResult | None:
    prior = session.scalars(_BY_REQUEST, {"request_id": request_id}).first()
    if prior is None:
        return None
    if prior.patient_id != patient.id:
        raise refusal(
            Conflict,
            "request_reused",
            N_("request id '{request}' was already used for another patient"),
            request=request_id,
        )
    return _result(prior, patient.patient_code, True)


_PID: BindParameter[int] = bindparam("pid", type_=Integer())
#: The patient's own randomization (its request id), then whom the request id served (a retry).
_PRIOR_REQUEST = (
    select(Randomization.request_id).where(Randomization.patient_id == _PID).scalar_subquery()
)
_SERVED = (
    select(Randomization.patient_id)
    .where(Randomization.request_id == bindparam("request_id"))
    .scalar_subquery()
)
_FACT_STATEMENTS: dict[tuple[int, ...], tuple[Select[Any], Select[Any]]] = {}
_SCREENING_COLUMNS: tuple[Any, ...] = tuple(Screening.__table__.c)


def _fact_statements(cycles: tuple[int, ...]) -> tuple[Select[Any], Select[Any]]:
    """The facts' statement and the latest screening's with the facts, for the protocol's
    second-PRRT ``cycles``: built once per protocol, the cycles as plain parameters (an
    expanding ``IN`` is re-rendered at every execution)."""
    found = _FACT_STATEMENTS.get(cycles)
    if found is not None:
        return found
    columns = (
        _PRIOR_REQUEST,
        select(Inclusion.consent_date)
        .where(Inclusion.patient_id == _PID, Inclusion.consent_signed)
        .scalar_subquery(),
        select(func.count(func.distinct(Administration.cycle)))
        .where(
            Administration.patient_id == _PID,
            or_(false(), *(Administration.cycle == c for c in cycles)),
        )
        .scalar_subquery(),
        select(PreRandomizationAssessment.assessment_date)
        .where(PreRandomizationAssessment.patient_id == _PID)
        .scalar_subquery(),
        select(PreRandomizationAssessment.radiological_progression)
        .where(PreRandomizationAssessment.patient_id == _PID)
        .scalar_subquery(),
        # the patient a request id already served (a retry), in the same round trip
        _SERVED,
    )
    # the latest screening (whole: the preconditions read its frozen input; its columns by
    # name, not an entity: it is read, never changed) with the facts, in one round trip; no
    # row when the patient was never screened
    with_screening: Select[Any] = (
        select(*_SCREENING_COLUMNS, *columns)
        .where(Screening.patient_id == _PID)
        .order_by(Screening.id.desc())
        .limit(1)
    )
    facts: Select[Any] = select(*columns)
    found = _FACT_STATEMENTS[cycles] = (facts, with_screening)
    return found


def _facts(ctx: Ctx, patient: Patient, request_id: str | None = None) -> Any:
    """The preconditions' facts of ``patient`` and whom ``request_id`` served, in one row."""
    stmt = _fact_statements(tuple(ctx.protocol.pre_randomization_cycles))[0]
    return ctx.session.execute(stmt, {"pid": patient.id, "request_id": request_id}).one()


def _screening_and_facts(ctx: Ctx, patient: Patient, request_id: str) -> tuple[Any, Any]:
    """The latest screening (a row with the columns of :class:`Screening` by name) and
    :func:`_facts`, in one statement (two without a screening)."""
    stmt = _fact_statements(tuple(ctx.protocol.pre_randomization_cycles))[1]
    row = ctx.session.execute(stmt, {"pid": patient.id, "request_id": request_id}).first()
    if row is None:
        return None, _facts(ctx, patient, request_id)
    return row, tuple(row[len(_SCREENING_COLUMNS) :])


def _already_randomized(code: str, request: str) -> Conflict:
    return refusal(
        Conflict,
        "already_randomized",
        N_("patient {patient} is already randomized (request {request})"),
        patient=code,
        request=request,
    )


def _check_preconditions(
    ctx: Ctx, patient: Patient, screening: Any = None, facts: Any = None
) -> tuple[str, dict[str, str]]:
    """The stratum code and factor levels, if every protocol precondition holds: eligible at
    the latest screening captured, the time-bound criteria (I9) still met on today's date,
    consent, both second-PRRT cycles, the pre-randomization assessment without progression,
    and a randomization date in the trial's order."""
    session = ctx.session
    code = patient.patient_code
    facts = facts if facts is not None else _facts(ctx, patient)
    prior_request, consent_date, n_cycles, pre_date, progression, _served = facts
    if prior_request is not None:
        raise _already_randomized(code, prior_request)
    screening = screening or latest_screening(session, patient)
    if screening is None:
        raise refusal(
            PreconditionFailed,
            "not_screened",
            N_("patient {patient} has not been screened"),
            patient=code,
        )
    if screening.status != "eligible":
        bad = [c for c in json.loads(screening.result_json)["criteria"] if c["passes"] is not True]
        raise refusal(
            PreconditionFailed,
            "not_eligible",
            N_("patient {patient} is not eligible: {criteria}")
            if screening.status == "not_eligible"
            else N_("patient {patient}: eligibility incomplete at screening: {criteria}"),
            patient=code,
            criteria=patients.criteria_reasons(bad[:3]),
        )
    if consent_date is None:
        raise refusal(
            PreconditionFailed,
            "consent_missing",
            N_("patient {patient}: signed informed consent not recorded"),
            patient=code,
        )
    needed = len(ctx.protocol.pre_randomization_cycles)
    if n_cycles != needed:
        raise refusal(
            PreconditionFailed,
            "second_prrt_cycles_missing",
            N_(
                "patient {patient}: {needed} second-PRRT cycles are required before "
                "randomization ({recorded} recorded)"
            ),
            patient=code,
            needed=needed,
            recorded=n_cycles,
        )
    if pre_date is None:
        raise refusal(
            PreconditionFailed,
            "pre_randomization_missing",
            N_("patient {patient}: the pre-randomization assessment is missing"),
            patient=code,
        )
    if progression:
        raise refusal(
            PreconditionFailed,
            "progression_before_randomization",
            N_(
                "patient {patient}: radiological progression at the pre-randomization "
                "assessment ({date}); screen failure"
            ),
            patient=code,
            date=pre_date,
        )
    if screening.strata_code is None or screening.strata_json is None:
        raise refusal(
            PreconditionFailed,
            "strata_incomplete",
            N_("patient {patient}: stratification factors incomplete at screening"),
            patient=code,
        )
    today = ctx.today()
    patients.check_date(ctx, patient, "randomization", today, "randomization_date")
    stale = recheck_time_bound(
        stored_patient(json.loads(screening.input_json)),
        today,
        ctx.protocol,
    )
    if stale:
        raise refusal(
            PreconditionFailed,
            "no_longer_eligible",
            N_(
                "patient {patient}: no longer eligible on the randomization date {date} "
                "({criteria}); repeat the examination and screen again"
            ),
            patient=code,
            date=today,
            criteria=patients.criteria_reasons([c.as_dict() for c in stale]),
        )
    return screening.strata_code, json.loads(screening.strata_json)


@service(Action.WRITE, Resource.RANDOMIZATION, writes=False)
def precheck(ctx: Ctx, patient_code: str) -> str:
    """The stratum the patient would be randomized in, if every precondition holds today
    (PreconditionFailed naming the first that does not): the confirmation page's check."""
    patient = get_patient(ctx, patient_code)
    stratum, _levels = _check_preconditions(ctx, patient)
    return stratum


@service(Action.WRITE, Resource.RANDOMIZATION)
def randomize(
    ctx: Ctx,
    patient_code: str,
    request_id: str,
    rng: Any = None,
) -> RandomizationResult:
    """Allocate an arm to ``patient_code`` (see module docstring for the guarantees)."""
    session, actor = ctx.session, ctx.actor
    if (
        not isinstance(request_id, str)
        or not request_id
        or len(request_id) > 80
        or not request_id.isprintable()
    ):
        raise ValidationError(
            "request_id",
            f"{request_id!r}",
            "1-80 printable characters",
            code="not_a_request_id",
            params={"value": str(request_id)[:40]},
        )
    patient, blocks_by_centre, centre = get_patient_row(ctx, patient_code, _PATIENT_AND_BLOCKS)
    # permuted blocks: the settings share-locked in the patient's statement (strata then run
    # in parallel under their own locks); else (minimization) exclusively, at once
    settings = None if blocks_by_centre is not None else get_settings(session, lock="update")
    if blocks_by_centre is None and settings is None:
        replay = _replay(session, request_id, patient)
        if replay is not None:
            return replay
        _check_preconditions(ctx, patient)  # the patient's own problems first
        raise _not_set_up()
    method = "blocks" if settings is None else settings.method
    by_centre = bool(blocks_by_centre) if settings is None else settings.stratify_by_centre
    # Before the stratum lock (held to the commit): its waiters queue only behind the slot,
    # the writes and the commit. The facts are read again under the lock where they can
    # change concurrently (whom the request or the patient was served); a minimization holds
    # the settings' exclusive lock already.
    screening, facts = _screening_and_facts(ctx, patient, request_id)
    if facts[-1] is not None:
        replay = _replay(session, request_id, patient)
        if replay is not None:
            return replay
    strata_code, levels = _check_preconditions(ctx, patient, screening, facts)
    key = stratum_key(strata_code, centre, by_centre)
    if settings is not None and method == "minimization":
        arm, slot_id, details = _minimize(
            session, settings, levels, centre, rng, ctx.protocol.arm_codes
        )
    else:
        cursor = _lock_cursor(session, key)
        # Under the lock, fresh: was this request (a retry) or this patient served meanwhile?
        slot, prior_request, served = _next_slot(ctx, cursor, patient, request_id)
        if served is not None:
            replay = _replay(session, request_id, patient)
            if replay is not None:
                return replay
        if prior_request is not None:
            raise _already_randomized(patient.patient_code, prior_request)
        arm, slot_id, details = _use_slot(ctx, cursor, slot, patient)
    record = Randomization(
        patient_id=patient.id,
        request_id=request_id,
        arm=arm,
        method=method,
        stratum_key=key,
        strata_json=json.dumps({**levels, "centre": centre}, sort_keys=True),
        slot_id=slot_id,
        details_json=None if details is None else json.dumps(details, sort_keys=True),
        randomized_at=ctx.now(),
        randomized_by=actor.username,
        protocol_version=ctx.protocol.label,
    )
    session.add(record)
    try:
        session.flush()
    except IntegrityError:
        raise refusal(
            Conflict,
            "randomized_concurrently",
            N_("patient {patient} or request '{request}' was randomized concurrently"),
            patient=patient_code,
            request=request_id,
        ) from None
    return _result(record, patient.patient_code, False)


def _not_set_up() -> PreconditionFailed:
    return refusal(
        PreconditionFailed,
        "randomization_not_set_up",
        N_("randomization is not set up (reluth randomization setup)"),
    )


def _concurrent(patient_code: str) -> Conflict:
    return refusal(
        Conflict,
        "randomized_concurrently",
        N_("patient {patient} was randomized concurrently"),
        patient=patient_code,
    )


BACKUP_TEXT_MAX, BACKUP_REFERENCE_MAX = 2000, 80


def _backup_text(value: str, field: str, limit: int) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > limit or not text.isprintable():
        raise ValidationError(
            field,
            "empty" if not text else f"{value!r}",
            f"1-{limit} characters",
            code="printable_text",
            params={"limit": limit},
        )
    return text


@service(Action.WRITE, Resource.RANDOMIZATION_BACKUP)
def record_backup_randomization(
    ctx: Ctx,
    patient_code: str,
    arm: str,
    performed_at: dt.datetime,
    reason: str,
    reference: str,
) -> RandomizationResult:
    """Record a randomization performed by the backup procedure while the system was down
    (statistician only): the arm the envelope or backup list gave, when, why, and the envelope
    or list reference. It goes through the same path as :func:`randomize`, with every
    precondition checked as of ``performed_at``: with permuted blocks it consumes the next slot
    of the patient's stratum and is refused (Conflict, nothing written) if that slot's arm is
    not the recorded one, since the backup envelopes are the list's next slots; with
    minimization it counts in the totals of the next decisions."""
    if arm not in ctx.protocol.arm_codes:
        raise _not_one_of("arm", arm, ctx.protocol.arm_codes)
    why = _backup_text(reason, "reason", BACKUP_TEXT_MAX)
    ref = _backup_text(reference, "reference", BACKUP_REFERENCE_MAX)
    now = ctx.now()
    performed_at = _moment("performed_at", performed_at, now)
    session = ctx.session
    request_id = f"backup:{ref}"
    if session.scalars(_BY_REQUEST, {"request_id": request_id}).first() is not None:
        raise refusal(
            Conflict,
            "backup_recorded",
            N_("backup reference '{reference}' is already recorded"),
            reference=ref,
        )
    patient = get_patient(ctx, patient_code)
    settings = get_settings(session)
    if settings is None:
        raise _not_set_up()
    settings = get_settings(
        session, lock="update" if settings.method == "minimization" else "share"
    )
    assert settings is not None
    then = dataclasses.replace(ctx, trial=ctx.trial.at(performed_at.astimezone(dt.UTC)))
    screening = latest_screening(session, patient)
    strata_code, levels = _check_preconditions(then, patient, screening)
    centre = patient.centre.code
    key = stratum_key(strata_code, centre, settings.stratify_by_centre)
    slot_id: int | None = None
    details: dict[str, Any] = {"backup": True}
    if settings.method == "blocks":
        cursor = _lock_cursor(session, key)
        listed, slot_id, _ = _take_slot(ctx, cursor, patient)
        if listed != arm:
            raise refusal(
                Conflict,
                "backup_arm_mismatch",
                N_(
                    "the backup record gives {arm} but the next slot of stratum {stratum} "
                    "(#{position}) is {listed}: check the envelope or list reference; nothing "
                    "was recorded"
                ),
                arm=arm,
                stratum=key,
                position=str(cursor.next_position - 1),
                listed=listed,
            )
    record = Randomization(
        patient_id=patient.id,
        request_id=request_id,
        arm=arm,
        method=settings.method,
        stratum_key=key,
        strata_json=json.dumps({**levels, "centre": centre}, sort_keys=True),
        slot_id=slot_id,
        details_json=json.dumps(details, sort_keys=True),
        randomized_at=performed_at.astimezone(dt.UTC),
        randomized_by=ctx.actor.username,
        protocol_version=ctx.protocol.label,
    )
    session.add(record)
    try:
        session.flush()
    except IntegrityError:
        raise _concurrent(patient_code) from None
    session.add(
        BackupRandomization(
            randomization_id=record.id,
            performed_at=performed_at.astimezone(dt.UTC),
            reason=why,
            reference=ref,
            recorded_at=now,
            recorded_by=ctx.actor.username,
        )
    )
    session.flush()
    return _result(record, patient.patient_code, False)


@service(Action.WRITE, Resource.RANDOMIZATION_IMPORT)
def import_randomization(
    ctx: Ctx,
    patient_code: str,
    arm: str,
    randomized_at: dt.datetime,
    source: str,
) -> RandomizationResult:
    """Record the allocation that a migrated trial's source system made (the investigator,
    during the migration): the arm as it was, at its original time, never re-randomized.

    The guarantees of the list stay whole (ICH E9 2.3.1, ICH E6(R3) 4.2.5 on data transfer):
    the import is refused once reluth has allocated a patient itself (Conflict), so no arm can
    be slipped in beside live allocations; it consumes no slot of reluth's list and reads none
    (the source system's list is not reluth's); every precondition is checked as of
    ``randomized_at`` as for a backup randomization; the record is audited with the import's
    reason. Minimization counts imported allocations in the totals of every later decision
    (:func:`minimization_counts` reads every randomization), and the report counts them."""
    if arm not in ctx.protocol.arm_codes:
        raise _not_one_of("arm", arm, ctx.protocol.arm_codes)
    randomized_at = _moment("randomized_at", randomized_at, ctx.now())
    src = _backup_text(source, "source", BACKUP_REFERENCE_MAX)
    session = ctx.session
    settings = get_settings(session, lock="update")  # serialized with minimization decisions
    if _any_randomized(session):
        raise refusal(
            Conflict,
            "import_after_randomization",
            N_(
                "allocations are imported only before reluth randomizes: patients have "
                "already been randomized here; nothing was recorded"
            ),
        )
    patient = get_patient(ctx, patient_code)
    when = randomized_at.astimezone(dt.UTC)
    then = dataclasses.replace(ctx, trial=ctx.trial.at(when))
    screening = latest_screening(session, patient)
    strata_code, levels = _check_preconditions(then, patient, screening)
    centre = patient.centre.code
    by_centre = settings.stratify_by_centre if settings is not None else False
    record = Randomization(
        patient_id=patient.id,
        request_id=f"import:{patient.patient_code}"[:80],
        arm=arm,
        method=IMPORTED,
        stratum_key=stratum_key(strata_code, centre, by_centre),
        strata_json=json.dumps({**levels, "centre": centre}, sort_keys=True),
        slot_id=None,
        details_json=json.dumps({"imported": src}, sort_keys=True),
        randomized_at=when,
        randomized_by=ctx.actor.username,
        protocol_version=ctx.protocol.label,
    )
    session.add(record)
    try:
        session.flush()
    except IntegrityError:
        raise _concurrent(patient_code) from None
    return _result(record, patient.patient_code, False)


_CURSOR = (
    select(AllocationStratum)
    .join(AllocationList, AllocationList.id == AllocationStratum.list_id)
    .where(AllocationStratum.stratum_key == bindparam("key"))
    .with_for_update(of=AllocationStratum)
    .execution_options(populate_existing=True)
)


def _lock_cursor(session: Session, key: str) -> AllocationStratum:
    cursor = session.scalars(_CURSOR, {"key": key}).first()
    if cursor is None:
        raise refusal(
            PreconditionFailed,
            "no_allocation_list",
            N_(
                "no allocation list for stratum {stratum} (the statistician runs "
                "`reluth randomization generate-list`)"
            ),
            stratum=key,
        )
    return cursor


_SLOT_WHERE = (
    AllocationSlot.list_id == bindparam("list_id"),
    AllocationSlot.stratum_key == bindparam("key"),
    AllocationSlot.position == bindparam("position"),
)
#: The cursor's next slot, with (fresh, under the stratum lock) the patient's randomization
#: and whom the request id served: one round trip.
_SLOT_AND_SERVED = select(AllocationSlot, _PRIOR_REQUEST, _SERVED).where(*_SLOT_WHERE)


def _next_slot(
    ctx: Ctx, cursor: AllocationStratum, patient: Patient, request_id: str | None
) -> tuple[AllocationSlot | None, str | None, int | None]:
    """Read under the stratum's lock: the slot at the cursor (None when the stratum's list is
    used up), the request id of the patient's randomization and the patient ``request_id``
    served, if any."""
    params = {"pid": patient.id, "request_id": request_id}
    if cursor.next_position > cursor.size:
        facts = ctx.session.execute(select(_PRIOR_REQUEST, _SERVED), params).one()
        return None, facts[0], facts[1]
    place = {"list_id": cursor.list_id, "key": cursor.stratum_key, "position": cursor.next_position}
    row = ctx.session.execute(_SLOT_AND_SERVED, {**params, **place}).one()
    return row[0], row[1], row[2]


def _use_slot(
    ctx: Ctx, cursor: AllocationStratum, slot: AllocationSlot | None, patient: Patient
) -> tuple[str, int | None, dict[str, Any] | None]:
    """Open ``slot`` (the cursor's next) for ``patient`` and move the cursor past it."""
    key = cursor.stratum_key
    if slot is None:
        raise refusal(
            PreconditionFailed,
            "list_exhausted",
            N_("the allocation list of stratum {stratum} is exhausted"),
            stratum=key,
        )
    if slot.patient_id is not None:  # would mean the cursor and slots disagree
        raise refusal(
            Conflict,
            "slot_used",
            N_("slot {stratum}#{position} is already used"),
            stratum=key,
            position=str(slot.position),
        )
    arm = open_slot(sealing.require_key(ctx.trial.settings).sealer(), slot)["arm"]
    slot.patient_id = patient.id
    cursor.next_position += 1
    return arm, slot.id, None


def _take_slot(
    ctx: Ctx, cursor: AllocationStratum, patient: Patient
) -> tuple[str, int | None, dict[str, Any] | None]:
    slot, _prior, _served = _next_slot(ctx, cursor, patient, None)
    return _use_slot(ctx, cursor, slot, patient)


def open_slot(sealer: sealing.Sealer, slot: AllocationSlot) -> dict[str, Any]:
    """A slot's arm, block and block size; Conflict if it does not open (another key, or the
    slot was altered or moved)."""
    try:
        if slot.sealed is None:
            raise sealing.SealBroken("no sealed content")
        return sealer.open(
            slot.sealed, sealing.slot_place(slot.list_id, slot.stratum_key, slot.position)
        )
    except sealing.SealBroken:
        raise refusal(
            Conflict,
            "slot_sealed",
            N_(
                "allocation slot {stratum}#{position} does not open with the configured "
                "allocation key (another key, or the slot was altered): run "
                "`reluth audit verify`"
            ),
            stratum=slot.stratum_key,
            position=str(slot.position),
        ) from None


def minimization_counts(
    session: Session,
    levels: dict[str, str],
    centre: str,
    by_centre: bool,
    arms: Sequence[str],
) -> dict[str, dict[str, int]]:
    """For each factor, the allocations so far by arm among patients at this patient's level."""
    factors = dict(levels)
    if by_centre:
        factors["centre"] = centre
    counts: dict[str, dict[str, int]] = {f: dict.fromkeys(arms, 0) for f in factors}
    for arm, strata_json in session.execute(select(Randomization.arm, Randomization.strata_json)):
        other = json.loads(strata_json)
        for f, level in factors.items():
            if other.get(f) == level:
                counts[f][arm] = counts[f].get(arm, 0) + 1
    return counts


def _minimize(
    session: Session,
    settings: RandomizationSettings,
    levels: dict[str, str],
    centre: str,
    rng: Any,
    arms: Sequence[str],
) -> tuple[str, int | None, dict[str, Any] | None]:
    factors = dict(levels)
    if settings.stratify_by_centre:
        factors["centre"] = centre
    counts = minimization_counts(session, levels, centre, settings.stratify_by_centre, arms)
    decision = methods.minimize(
        factors, counts, rng or secrets.SystemRandom(), Decimal(settings.minimization_p), arms=arms
    )
    details = {
        "scores": decision.scores,
        "counts_before": decision.counts,
        "preferred": list(decision.preferred),
        "p": str(decision.probability_preferred),
        "draw": decision.draw,
        "tie": decision.tie,
    }
    return decision.arm, None, details


# ---------------------------------------------------------------------------- list, report


@service(Action.READ, Resource.ALLOCATION_LIST)
def allocation_list(ctx: Ctx) -> list[dict[str, Any]]:
    """The full list with used and upcoming slots: unblinded statistician only."""
    session = ctx.session
    codes = {pid: code for pid, code in session.execute(select(Patient.id, Patient.patient_code))}
    rows = session.scalars(
        select(AllocationSlot).order_by(AllocationSlot.stratum_key, AllocationSlot.position)
    )
    sealer = sealing.require_key(ctx.trial.settings).sealer()
    out = []
    for s in rows:
        content = open_slot(sealer, s)
        out.append(
            {
                "stratum": s.stratum_key,
                "position": s.position,
                "block": content["block"],
                "block_size": content["block_size"],
                "arm": content["arm"],
                "patient_id": codes.get(s.patient_id) if s.patient_id else None,
            }
        )
    return out


@dataclass(frozen=True)
class Report:
    method: str | None
    total: int
    by_arm: dict[str, int]
    by_stratum: dict[str, dict[str, int]]
    by_centre: dict[str, dict[str, int]]
    by_factor_level: dict[str, dict[str, int]]
    max_imbalance: dict[str, int]
    #: every allocation check holds (:func:`reluth.randomization.integrity.check_allocations`):
    #: the list's content hash, each randomization's arm equal to its slot's, slots consumed in
    #: order without gaps, each used slot belonging to exactly one randomization
    list_intact: bool

    def tables(self) -> dict[str, list[tuple[str, list[int], int]]]:
        """Per centre, stratum and factor level: (group, counts in arm order, imbalance)."""
        arms = list(self.by_arm)
        return {
            title: [
                (group, [counts.get(a, 0) for a in arms], imbalance(counts, arms))
                for group, counts in table.items()
            ]
            for title, table in (
                ("stratum", self.by_stratum),
                ("centre", self.by_centre),
                ("factor level", self.by_factor_level),
            )
        }


def imbalance(counts: dict[str, int], arms: Sequence[str]) -> int:
    """The absolute difference between the two arms' counts."""
    return abs(counts.get(arms[0], 0) - counts.get(arms[1], 0))


@service(Action.READ, Resource.RANDOMIZATION_REPORT)
def report(ctx: Ctx) -> Report:
    """Counts by arm overall, per stratum, per centre and per factor level, with imbalance
    (unblinded statistician: per-stratum counts with small blocks let a site predict arms)."""
    session = ctx.session
    settings = get_settings(session)
    rows = session.execute(
        select(Randomization.arm, Randomization.stratum_key, Randomization.strata_json)
    ).all()
    arms = ctx.protocol.arm_codes
    total: Counter[str] = Counter()
    by_stratum: dict[str, Counter[str]] = defaultdict(Counter)
    by_centre: dict[str, Counter[str]] = defaultdict(Counter)
    by_level: dict[str, Counter[str]] = defaultdict(Counter)
    for arm, key, strata_json in rows:
        levels = json.loads(strata_json)
        total[arm] += 1
        by_stratum[key][arm] += 1
        by_centre[levels.get("centre", "?")][arm] += 1
        for f in ctx.protocol.factor_codes:
            by_level[f"{f}={levels.get(f)}"][arm] += 1

    def table(d: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
        return {k: {a: v[a] for a in arms} for k, v in sorted(d.items())}

    def worst(d: dict[str, Counter[str]]) -> int:
        return max((imbalance(v, arms) for v in d.values()), default=0)

    return Report(
        method=settings.method if settings else None,
        total=sum(total.values()),
        by_arm={a: total[a] for a in arms},
        by_stratum=table(by_stratum),
        by_centre=table(by_centre),
        by_factor_level=table(by_level),
        max_imbalance={
            "overall": abs(total[arms[0]] - total[arms[1]]),
            "stratum": worst(by_stratum),
            "centre": worst(by_centre),
            "factor_level": worst(by_level),
        },
        list_intact=not integrity.check_allocations(
            session.connection(), sealing.configured_key(ctx.trial.settings)
        ).findings,
    )
