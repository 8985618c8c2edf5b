"""RECIST 1.1 response assessment: a pure engine (no I/O, no clock).

Input is one patient's baseline and follow-up measurements; output is the per-time-point
target, non-target, new-lesion and overall responses, the best overall response, the date of
first progression and disease control at the month-6 landmark (the ReLUTH primary endpoint).

Every threshold is compared exactly on :class:`decimal.Decimal` millimetres with the
multiplied-out forms ``SOD*10 <= baseline*7`` (PR) and ``SOD*10 >= nadir*12 and
SOD - nadir >= 5`` (PD), so -30 % and +20 % are inclusive without float error.
Two layers: :func:`time_point_results` scores each follow-up from the lesions (RECIST 1.1
Tables 1 and 2); :func:`patient_outcome` takes those time-point responses (or the same responses
from any other source, e.g. a CRO's central review file) and applies the patient-level rules:
re-dating of PD by a confirmed equivocal new lesion, BOR, first PD and the month-6 landmark.
:func:`evaluate` is the two in a row. Every caller (central review, the analysis datasets, the
CLI) goes through these functions, so each rule is written once, here.
Sources: Eisenhauer EA et al., Eur J Cancer 2009;45:228-247 (RECIST 1.1); EORTC RECIST FAQ;
admiralonco ``derive_param_bor``; decisions: ``docs/engines.md``.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from reluth.errors import ValidationError, ValidationErrors
from reluth.i18n import N_
from reluth.i18n.reasons import Field, Joined, Reason, from_english, invalid
from reluth.units import to_decimal
from reluth.values import parse_date

if TYPE_CHECKING:
    from reluth.protocol.definition import Protocol as TrialProtocol

# --------------------------------------------------------------------------------------------
# Vocabulary


class Response(enum.StrEnum):
    CR = "CR"
    PR = "PR"
    SD = "SD"
    NON_CR_NON_PD = "NON-CR/NON-PD"
    PD = "PD"
    NE = "NE"
    NA = "NA"  # no lesion of that kind at baseline (target or non-target)


class NewLesions(enum.StrEnum):
    YES = "yes"
    NO = "no"
    EQUIVOCAL = "equivocal"


class LesionKind(enum.StrEnum):
    TARGET = "target"
    NON_TARGET = "non_target"


class LesionStatus(enum.StrEnum):
    ABSENT = "absent"
    TOO_SMALL = "too_small"
    PRESENT = "present"
    UNEQUIVOCAL_PROGRESSION = "unequivocal_progression"
    NOT_EVALUATED = "not_evaluated"


# Best-response ranking (RECIST 1.1 / admiralonco order): lower is better.
_RANK = {
    Response.CR: 0,
    Response.PR: 1,
    Response.SD: 2,
    Response.NON_CR_NON_PD: 3,
    Response.PD: 4,
    Response.NE: 5,
}
DISEASE_CONTROL = frozenset({Response.CR, Response.PR, Response.SD, Response.NON_CR_NON_PD})

TOO_SMALL_MM = Decimal(5)
NODE_TARGET_MIN_MM = Decimal(15)
NODE_PATHOLOGICAL_MIN_MM = Decimal(10)
NON_NODAL_MIN_MM = Decimal(10)
THIN_SLICE_MAX_MM = Decimal(5)
MAX_TARGETS = 5
MAX_TARGETS_PER_ORGAN = 2
PD_ABSOLUTE_MM = Decimal(5)

# --------------------------------------------------------------------------------------------
# Input types


@dataclass(frozen=True)
class BaselineLesion:
    id: str
    organ: str
    kind: LesionKind
    nodal: bool
    diameter_mm: Decimal | None  # long axis; short axis for nodes; optional for non-targets
    slice_thickness_mm: Decimal | None = None


@dataclass(frozen=True)
class LesionObservation:
    """One lesion at one follow-up: a diameter, fragments (split lesion), a merge, or a status."""

    id: str
    diameter_mm: Decimal | None = None
    status: LesionStatus | None = None
    fragments_mm: tuple[Decimal, ...] = ()
    merged_into: str | None = None


@dataclass(frozen=True)
class FollowUp:
    date: dt.date
    lesions: tuple[LesionObservation, ...]
    new_lesions: NewLesions = NewLesions.NO
    tumour_markers_normal: bool | None = None  # None: not assessed / not part of the protocol


@dataclass(frozen=True)
class PatientInput:
    randomization_date: dt.date
    baseline_date: dt.date
    baseline: tuple[BaselineLesion, ...]
    followups: tuple[FollowUp, ...]


@dataclass(frozen=True)
class RecistOptions:
    """Documented defaults: see docs/engines.md."""

    pr_persists_until_pd: bool = True  # EORTC RECIST FAQ
    min_sd_duration_days: int = 42  # 6 weeks from randomization
    confirmation_required: bool = False  # randomized trial: RECIST 1.1 does not require it
    confirmation_min_days: int = 28
    confirmation_max_ne: int = 1
    confirmation_accept_sd: bool = False
    backdate_confirmed_equivocal: bool = True  # PD dated to the first equivocal scan
    landmark_day: int = 168  # week 24 from randomization (protocol: every 8 weeks)
    landmark_window_days: int = 28  # accepted from day 140 to day 196 (assumption)

    @classmethod
    def for_landmark(cls, week: int, window_days: int, **others: Any) -> RecistOptions:
        """Options with the month-6 landmark as the protocol YAML states it (week, +/- days)."""
        return cls(landmark_day=7 * week, landmark_window_days=window_days, **others)

    @classmethod
    def from_protocol(cls, protocol: TrialProtocol, **others: Any) -> RecistOptions:
        """The trial's options: the month-6 landmark (``schedule.landmark_month6``) and the
        minimum SD duration (``schedule.sd_minimum_duration``) of the protocol file."""
        landmark = protocol.schedule.landmark_month6
        others.setdefault("min_sd_duration_days", protocol.schedule.sd_minimum_duration.days)
        others.setdefault("landmark_day", 7 * landmark.week)
        others.setdefault("landmark_window_days", landmark.window_days)
        return cls(**others)

    def bor_rule(self) -> str:
        """The best-overall-response rule these options apply, in one sentence (English: what
        ``recist_evaluations.bor_rule`` stores and the datasets' BORRULE carry)."""
        return self.bor_reason().english()

    def bor_reason(self) -> Reason:
        """The rule as a message key and its values, written in the reader's language where it
        is shown (the casebook)."""
        confirmation = (
            Reason(
                "recist.bor_confirmed",
                N_("CR/PR confirmed >= {days} days later"),
                {"days": self.confirmation_min_days},
            )
            if self.confirmation_required
            else Reason("recist.bor_unconfirmed", N_("CR/PR need no confirmation"))
        )
        return Reason(
            "recist.bor_rule",
            N_(
                "best of CR > PR > SD > NON-CR/NON-PD > PD > NE up to and including the first "
                "PD; SD and NON-CR/NON-PD count from {days} days after randomization (earlier: "
                "NE); {confirmation}"
            ),
            {"days": self.min_sd_duration_days, "confirmation": confirmation},
        )

    def as_dict(self) -> dict[str, int | bool]:
        """Every option by name (what a stored evaluation records it was made with)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __post_init__(self) -> None:
        for name in (
            "min_sd_duration_days",
            "confirmation_min_days",
            "confirmation_max_ne",
            "landmark_day",
            "landmark_window_days",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _invalid(
                    f"options.{name}",
                    "not_a_count",
                    N_("got {value}"),
                    N_("an integer >= 0"),
                    value=repr(value),
                )


# --------------------------------------------------------------------------------------------
# Output types


@dataclass(frozen=True)
class TimePointResult:
    date: dt.date
    day: int  # days from randomization
    sum_mm: Decimal | None  # None when a target was not evaluated
    partial_sum_mm: Decimal | None  # sum over the evaluated targets when some are missing
    nadir_mm: Decimal | None  # reference for PD: smallest complete sum before this time point
    change_from_baseline_pct: Decimal | None
    change_from_nadir_pct: Decimal | None
    target: Response
    non_target: Response
    new_lesions: NewLesions
    overall: Response
    #: The notes in English (stored with the evaluation, ``--json``).
    notes: tuple[str, ...] = ()
    #: The same notes as message keys and values, shown in the reader's language.
    messages: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class TimePointResponse:
    """One time point as the patient-level rules see it: the overall response as read at that
    time point (before any re-dating) and its new-lesion call."""

    date: dt.date
    overall: Response
    new_lesions: NewLesions = NewLesions.NO


@dataclass(frozen=True)
class OutcomeTimePoint:
    """A time point after the patient-level rules: ``overall`` is ``as_read`` unless PD was
    re-dated to it by the new lesion confirmed on ``redated_by``."""

    date: dt.date
    as_read: Response
    overall: Response
    new_lesions: NewLesions
    redated_by: dt.date | None = None


@dataclass(frozen=True)
class PatientOutcome:
    """The patient-level evaluation of a sequence of time-point responses."""

    randomization_date: dt.date
    time_points: tuple[OutcomeTimePoint, ...]
    best_overall_response: Response
    best_overall_response_date: dt.date | None
    bor_rule: str
    first_pd_date: dt.date | None
    disease_control_month6: bool
    disease_control_month6_reason: str
    landmark_window: tuple[dt.date, dt.date]
    landmark_date: dt.date | None
    death_date: dt.date | None
    options: RecistOptions
    #: The month-6 reason as a message key and values (the reader's language where shown);
    #: None for an evaluation stored before the keys whose English no template fits.
    disease_control_month6_message: Reason | None = None

    def bor_rule_text(self) -> str:
        """The BOR rule in the current language: the options' rule when the stored English is
        theirs, else the stored English (an evaluation made with other wording)."""
        if self.bor_rule == self.options.bor_rule():
            return self.options.bor_reason().render()
        return self.bor_rule

    def month6_reason(self) -> str:
        """The month-6 reason in the current language (the stored English without a key)."""
        message = self.disease_control_month6_message
        return self.disease_control_month6_reason if message is None else message.render()


@dataclass(frozen=True)
class PatientResponse:
    baseline_sum_mm: Decimal | None
    time_points: tuple[TimePointResult, ...]
    best_overall_response: Response
    best_overall_response_date: dt.date | None
    first_pd_date: dt.date | None
    disease_control_month6: bool
    disease_control_month6_reason: str
    landmark_window: tuple[dt.date, dt.date]
    landmark_date: dt.date | None
    options: RecistOptions = field(default_factory=RecistOptions)
    disease_control_month6_message: Reason | None = None

    def month6_reason(self) -> str:
        """The month-6 reason in the current language."""
        message = self.disease_control_month6_message
        return self.disease_control_month6_reason if message is None else message.render()


# --------------------------------------------------------------------------------------------
# Parsing from the JSON shape (one clear message per problem, naming the lesion and field)


def _require(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj or obj[key] is None:
        raise _invalid(f"{where}.{key}", "required", N_("missing"))
    return obj[key]


def _date(value: Any, where: str) -> dt.date:
    """A day as entry reads it (ISO or dd/mm/yyyy, :func:`reluth.values.parse_date`)."""
    return parse_date(value.strip() if isinstance(value, str) else value, where)


#: The longest diameter a lesion measured on CT or MRI can have (the engine refuses more: a
#: typing or unit error).
MAX_DIAMETER_MM = Decimal(1000)


_PLACE = re.compile(
    r"(?:baseline lesion (?P<lesion>[^.]+)|follow-up (?P<day>\d{4}-\d\d-\d\d)"
    r"(?: lesion (?P<observed>[^.]+))?)(?:\.(?P<rest>.+))?"
)


def _place(where: str) -> Any:
    """The input ``where`` names (``baseline lesion T1.organ``, ``follow-up 2025-03-01 lesion
    T1``) as the reader's language writes it: the lesion and the day, then the field's label."""
    found = _PLACE.fullmatch(where)
    if found is None:
        return Field(where)
    if found["lesion"] is not None:
        place = Reason(
            "recist.baseline_lesion", N_("baseline lesion {id}"), {"id": found["lesion"]}
        )
    elif found["observed"] is not None:
        place = Reason(
            "recist.follow_up_lesion",
            N_("follow-up {day}, lesion {id}"),
            {"day": dt.date.fromisoformat(found["day"]), "id": found["observed"]},
        )
    else:
        day = dt.date.fromisoformat(found["day"])
        place = Reason("recist.follow_up", N_("follow-up {day}"), {"day": day})
    if found["rest"] is None:
        return place
    return Reason(
        "recist.place", N_("{place}, {field}"), {"place": place, "field": Field(found["rest"])}
    )


def _invalid(
    where: str, code: str, problem: str, accepted: str | Sequence[str] | None = None, **params: Any
) -> ValidationError:
    """:func:`reluth.i18n.reasons.invalid`, the lesion or visit named in the reader's words."""
    error = invalid(where, code, problem, accepted, **params)
    shown = error.params["reason"]
    error.params["reason"] = Reason(
        shown.key, shown.template, {**shown.params, "field": _place(where)}
    )
    return error


def _mm(value: Any, where: str) -> Decimal:
    number = to_decimal(value, where)
    if number < 0:
        raise _invalid(
            where,
            "negative_value",
            N_("negative diameter {value}"),
            N_("a diameter in mm >= 0"),
            value=number,
        )
    if number > MAX_DIAMETER_MM:
        raise _invalid(
            where,
            "diameter_out_of_range",
            N_("diameter {value} mm"),
            N_("0 to {limit} mm"),
            value=number,
            limit=MAX_DIAMETER_MM,
        )
    return number


_E = TypeVar("_E", bound=enum.StrEnum)


def _enum(kind: type[_E], value: Any, where: str) -> _E:
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        accepted = "|".join(m.value for m in kind)
        raise _invalid(
            where, "not_accepted", N_("unknown value {value}"), (accepted,), value=repr(value)
        ) from None


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise _invalid(
        where,
        "not_a_boolean",
        N_("expected true or false, got {value}"),
        ("true|false",),
        value=repr(value),
    )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _invalid(
            where, "not_an_object", N_("expected an object, got {kind}"), kind=type(value).__name__
        )
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(
            where, "not_a_list", N_("expected a list, got {kind}"), kind=type(value).__name__
        )
    return value


def _lesion_id(raw: Mapping[str, Any], where: str) -> str:
    value = _require(raw, "id", where)
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise _invalid(
            f"{where}.id",
            "bad_lesion_id",
            N_("bad lesion id {value}"),
            N_("a non-empty string"),
            value=repr(value),
        )
    return str(value).strip()


def _parse_new_lesions(value: Any, where: str) -> NewLesions:
    if value is None:
        return NewLesions.NO
    if isinstance(value, bool):
        return NewLesions.YES if value else NewLesions.NO
    return _enum(NewLesions, value, where)


def parse_patient(data: Any) -> PatientInput:
    """Build a :class:`PatientInput` from the JSON dict shape, validating as it goes.

    Structural problems raise :class:`ValidationError` naming the field; baseline
    target-selection violations are collected and raised together (one per lesion).
    """
    root = _mapping(data, "input")
    randomization = _date(_require(root, "randomization_date", "input"), "randomization_date")
    base = _mapping(_require(root, "baseline", "input"), "baseline")
    baseline_date = _date(_require(base, "date", "baseline"), "baseline.date")
    lesions: list[BaselineLesion] = []
    seen: set[str] = set()
    for i, raw_any in enumerate(_list(_require(base, "lesions", "baseline"), "baseline.lesions")):
        raw = _mapping(raw_any, f"baseline.lesions[{i}]")
        lid = _lesion_id(raw, f"baseline.lesions[{i}]")
        where = f"baseline lesion {lid}"
        if lid in seen:
            raise _invalid(where, "duplicate_lesion", N_("duplicate lesion id"), N_("unique ids"))
        seen.add(lid)
        organ = _require(raw, "organ", where)
        if not isinstance(organ, str) or not organ.strip():
            raise _invalid(
                f"{where}.organ",
                "bad_organ",
                N_("bad organ {value}"),
                N_("a non-empty string"),
                value=repr(organ),
            )
        kind = _enum(LesionKind, _require(raw, "kind", where), f"{where}.kind")
        nodal = _bool(raw.get("nodal", False), f"{where}.nodal")
        diameter = raw.get("diameter_mm")
        d_mm = None if diameter is None else _mm(diameter, f"{where}.diameter_mm")
        if kind is LesionKind.TARGET and d_mm is None:
            raise _invalid(
                f"{where}.diameter_mm", "required", N_("missing for a target lesion"), N_("mm")
            )
        slice_raw = raw.get("slice_thickness_mm")
        slice_mm = None if slice_raw is None else _mm(slice_raw, f"{where}.slice_thickness_mm")
        lesions.append(BaselineLesion(lid, organ.strip(), kind, nodal, d_mm, slice_mm))
    if not lesions:
        raise _invalid(
            "baseline.lesions", "required", N_("no lesion recorded"), N_("at least one lesion")
        )
    kinds = {lesion.id: lesion.kind for lesion in lesions}

    followups: list[FollowUp] = []
    dates: set[dt.date] = set()
    for j, fu_any in enumerate(_list(root.get("followups", []), "followups")):
        fu = _mapping(fu_any, f"followups[{j}]")
        fu_date = _date(_require(fu, "date", f"followups[{j}]"), f"followups[{j}].date")
        where_fu = f"follow-up {fu_date.isoformat()}"
        if fu_date <= baseline_date:
            raise _invalid(
                f"{where_fu}.date",
                "follow_up_not_after_baseline",
                N_("not after the baseline date {baseline}"),
                N_("a date after baseline"),
                baseline=baseline_date,
            )
        if fu_date in dates:
            raise _invalid(
                f"{where_fu}.date", "duplicate_follow_up", N_("two follow-ups on the same date")
            )
        dates.add(fu_date)
        observations: list[LesionObservation] = []
        fu_seen: set[str] = set()
        for k, obs_any in enumerate(_list(fu.get("lesions", []), f"{where_fu}.lesions")):
            obs_raw = _mapping(obs_any, f"{where_fu}.lesions[{k}]")
            lid = _lesion_id(obs_raw, f"{where_fu}.lesions[{k}]")
            where = f"{where_fu} lesion {lid}"
            if lid not in kinds:
                raise _invalid(
                    where, "unknown_lesion", N_("unknown lesion id (not recorded at baseline)")
                )
            if lid in fu_seen:
                raise _invalid(
                    where,
                    "duplicate_lesion",
                    N_("duplicate lesion id"),
                    N_("each lesion once per visit"),
                )
            fu_seen.add(lid)
            observations.append(_parse_observation(obs_raw, lid, kinds, where))
        followups.append(
            FollowUp(
                date=fu_date,
                lesions=tuple(observations),
                new_lesions=_parse_new_lesions(fu.get("new_lesions"), f"{where_fu}.new_lesions"),
                tumour_markers_normal=(
                    None
                    if fu.get("tumour_markers_normal") is None
                    else _bool(fu["tumour_markers_normal"], f"{where_fu}.tumour_markers_normal")
                ),
            )
        )
    followups.sort(key=lambda f: f.date)
    patient = PatientInput(randomization, baseline_date, tuple(lesions), tuple(followups))
    problems = baseline_violations(patient.baseline)
    if problems:
        raise problems[0] if len(problems) == 1 else ValidationErrors(problems)
    return patient


def _parse_observation(
    raw: Mapping[str, Any], lid: str, kinds: Mapping[str, LesionKind], where: str
) -> LesionObservation:
    kind = kinds[lid]
    diameter = raw.get("diameter_mm")
    status_raw = raw.get("status")
    fragments_raw = raw.get("fragments_mm")
    merged_raw = raw.get("merged_into")
    given = [
        name
        for name, value in (
            ("diameter_mm", diameter),
            ("status", status_raw),
            ("fragments_mm", fragments_raw),
            ("merged_into", merged_raw),
        )
        if value is not None
    ]
    accepted = N_("exactly one of {fields}")
    fields = ("diameter_mm", "status", "fragments_mm", "merged_into")
    if len(given) != 1:
        if not given:
            raise _invalid(
                where, "one_observation", N_("nothing recorded"), accepted, fields=fields
            )
        raise _invalid(
            where,
            "one_observation",
            N_("both {given} given"),
            accepted,
            given=Joined(tuple(given), N_(" and ")),
            fields=fields,
        )
    if diameter is not None:
        return LesionObservation(lid, diameter_mm=_mm(diameter, f"{where}.diameter_mm"))
    if fragments_raw is not None:
        items = _list(fragments_raw, f"{where}.fragments_mm")
        if not items:
            raise _invalid(
                f"{where}.fragments_mm", "required", N_("empty"), N_("one diameter per fragment")
            )
        parts = tuple(_mm(v, f"{where}.fragments_mm[{n}]") for n, v in enumerate(items))
        if kind is not LesionKind.TARGET:
            raise _invalid(f"{where}.fragments_mm", "not_a_target", N_("only for target lesions"))
        return LesionObservation(lid, fragments_mm=parts)
    if merged_raw is not None:
        target = str(merged_raw).strip()
        if kind is not LesionKind.TARGET or kinds.get(target) is not LesionKind.TARGET:
            raise _invalid(
                f"{where}.merged_into",
                "not_a_target",
                N_("{value} is not a target lesion"),
                N_("a target id"),
                value=repr(merged_raw),
            )
        if target == lid:
            raise _invalid(
                f"{where}.merged_into",
                "merged_into_itself",
                N_("a lesion cannot merge into itself"),
            )
        return LesionObservation(lid, merged_into=target)
    status = _enum(LesionStatus, status_raw, f"{where}.status")
    if kind is LesionKind.TARGET and status in (
        LesionStatus.PRESENT,
        LesionStatus.UNEQUIVOCAL_PROGRESSION,
    ):
        raise _invalid(
            f"{where}.status",
            "not_a_target_measurement",
            N_("{value} is not a measurement of a target lesion"),
            N_("diameter_mm, or status {statuses}"),
            value=repr(status.value),
            statuses="absent|too_small|not_evaluated",
        )
    return LesionObservation(lid, status=status)


def organ_group(lesion: BaselineLesion) -> str:
    """Organ for the 2-per-organ rule: all nodes are one organ; paired organs are one organ."""
    if lesion.nodal:
        return "lymph nodes"
    words = re.sub(r"[^a-z0-9 ]+", " ", lesion.organ.lower()).split()
    kept = [w for w in words if w not in {"left", "right", "l", "r", "bilateral", "both"}]
    name = " ".join(kept) or lesion.organ.lower()
    return {"lungs": "lung", "kidneys": "kidney", "ovaries": "ovary", "adrenals": "adrenal"}.get(
        name, name
    )


def measurable_threshold_mm(lesion: BaselineLesion) -> Decimal:
    """Minimum baseline size for a target: nodes 15 mm SA; others 10 mm, or 2x slice if > 5 mm."""
    if lesion.nodal:
        return NODE_TARGET_MIN_MM
    if lesion.slice_thickness_mm is not None and lesion.slice_thickness_mm > THIN_SLICE_MAX_MM:
        return 2 * lesion.slice_thickness_mm
    return NON_NODAL_MIN_MM


def baseline_violations(lesions: Sequence[BaselineLesion]) -> list[ValidationError]:
    """Every target-selection rule broken at baseline, one error per lesion (or per organ)."""
    problems: list[ValidationError] = []
    targets = [lesion for lesion in lesions if lesion.kind is LesionKind.TARGET]
    for lesion in targets:
        threshold = measurable_threshold_mm(lesion)
        assert lesion.diameter_mm is not None  # enforced by the parser / constructor callers
        if lesion.diameter_mm < threshold:
            axis = "short axis" if lesion.nodal else "longest diameter"
            problems.append(
                ValidationError(
                    f"baseline lesion {lesion.id}.diameter_mm",
                    f"{axis} {lesion.diameter_mm} mm is not measurable as a target",
                    f">= {threshold} mm"
                    + ("; nodes 10 to <15 mm are non-target" if lesion.nodal else ""),
                )
            )
    for lesion in lesions:
        if (
            lesion.nodal
            and lesion.kind is LesionKind.NON_TARGET
            and lesion.diameter_mm is not None
            and lesion.diameter_mm < NODE_PATHOLOGICAL_MIN_MM
        ):
            problems.append(
                ValidationError(
                    f"baseline lesion {lesion.id}.diameter_mm",
                    f"node short axis {lesion.diameter_mm} mm is not pathological",
                    "nodes < 10 mm are normal and not recorded",
                )
            )
    if len(targets) > MAX_TARGETS:
        extra = ", ".join(t.id for t in targets[MAX_TARGETS:])
        problems.append(
            ValidationError(
                "baseline.lesions",
                f"{len(targets)} target lesions (extra: {extra})",
                f"at most {MAX_TARGETS} targets",
            )
        )
    per_organ: dict[str, list[str]] = {}
    for lesion in targets:
        per_organ.setdefault(organ_group(lesion), []).append(lesion.id)
    for organ, ids in per_organ.items():
        if len(ids) > MAX_TARGETS_PER_ORGAN:
            problems.append(
                ValidationError(
                    f"baseline lesion {ids[MAX_TARGETS_PER_ORGAN]}",
                    f"organ {organ!r} has {len(ids)} targets ({', '.join(ids)})",
                    f"at most {MAX_TARGETS_PER_ORGAN} per organ; paired organs and all nodes "
                    "count as one organ",
                )
            )
    return problems


# --------------------------------------------------------------------------------------------
# Per-time-point engine


def percent_change(value: Decimal, reference: Decimal) -> Decimal | None:
    """``100 (value - reference) / reference`` rounded half-up to 0.01 (display only: every
    decision compares the sums themselves); None when the reference is 0."""
    if reference == 0:
        return None
    return ((value - reference) * 100 / reference).quantize(Decimal("0.01"), ROUND_HALF_UP)


def meets_pr(sum_mm: Decimal, baseline_mm: Decimal) -> bool:
    """>= 30 % decrease from baseline, exactly: ``sum*10 <= baseline*7``."""
    return sum_mm * 10 <= baseline_mm * 7


def meets_pd(sum_mm: Decimal, nadir_mm: Decimal) -> bool:
    """>= 20 % and >= 5 mm increase from nadir, exactly: ``sum*10 >= nadir*12``."""
    return sum_mm * 10 >= nadir_mm * 12 and sum_mm - nadir_mm >= PD_ABSOLUTE_MM


@dataclass(frozen=True)
class _TargetMeasure:
    sum_mm: Decimal | None
    partial_sum_mm: Decimal
    missing: tuple[str, ...]
    all_cleared: bool  # every non-nodal target 0 mm and every nodal target < 10 mm


def _measure_targets(
    targets: Sequence[BaselineLesion], observed: Mapping[str, LesionObservation]
) -> _TargetMeasure:
    total = Decimal(0)
    missing: list[str] = []
    cleared = True
    for lesion in targets:
        obs = observed.get(lesion.id)
        if obs is None or obs.status is LesionStatus.NOT_EVALUATED:
            missing.append(lesion.id)
            cleared = False
            continue
        if obs.merged_into is not None:
            size = Decimal(0)  # the coalesced diameter is recorded on the lesion merged into
        elif obs.fragments_mm:
            size = sum(obs.fragments_mm, Decimal(0))
        elif obs.status is LesionStatus.ABSENT:
            size = Decimal(0)
        elif obs.status is LesionStatus.TOO_SMALL:
            size = TOO_SMALL_MM
        else:
            assert obs.diameter_mm is not None
            size = obs.diameter_mm
        total += size
        if lesion.nodal:
            cleared = cleared and size < NODE_PATHOLOGICAL_MIN_MM
        else:
            cleared = cleared and size == 0
    return _TargetMeasure(None if missing else total, total, tuple(missing), cleared)


def _non_target_response(
    non_targets: Sequence[BaselineLesion],
    observed: Mapping[str, LesionObservation],
    markers_normal: bool | None,
) -> Response:
    if not non_targets:
        return Response.NA
    statuses: list[str] = []
    for lesion in non_targets:
        obs = observed.get(lesion.id)
        if obs is None or obs.status is LesionStatus.NOT_EVALUATED:
            statuses.append("ne")
        elif obs.status is LesionStatus.UNEQUIVOCAL_PROGRESSION:
            statuses.append("pd")
        elif obs.status is LesionStatus.ABSENT:
            statuses.append("gone")
        elif obs.diameter_mm is not None:
            gone = obs.diameter_mm < NODE_PATHOLOGICAL_MIN_MM if lesion.nodal else False
            statuses.append("gone" if gone or obs.diameter_mm == 0 else "present")
        else:
            statuses.append("present")  # present, too_small
    if "pd" in statuses:
        return Response.PD
    if "ne" in statuses:
        return Response.NE
    if all(s == "gone" for s in statuses) and markers_normal is not False:
        return Response.CR
    return Response.NON_CR_NON_PD


def overall_response(
    target: Response, non_target: Response, new_lesions: NewLesions, has_targets: bool
) -> Response:
    """RECIST 1.1 Tables 1 (targets) and 2 (non-target disease only); PD dominates.

    An equivocal new lesion is not PD at that time point (it is re-dated if later confirmed).
    """
    if new_lesions is NewLesions.YES or target is Response.PD or non_target is Response.PD:
        return Response.PD
    if has_targets:
        if target is Response.NE:
            return Response.NE
        if target is Response.CR:
            return Response.CR if non_target in (Response.CR, Response.NA) else Response.PR
        if target in (Response.PR, Response.SD):
            return target
        raise ValueError(f"target response {target} is not possible with target lesions")
    if non_target is Response.CR:
        return Response.CR
    if non_target is Response.NON_CR_NON_PD:
        return Response.NON_CR_NON_PD
    return Response.NE


def _target_response(
    measure: _TargetMeasure,
    baseline_mm: Decimal,
    nadir_mm: Decimal,
    prior_response: bool,
    options: RecistOptions,
) -> tuple[Response, list[Reason]]:
    """Order: NE check (PD still possible on a partial sum) -> CR -> PD -> PR -> SD."""
    notes: list[Reason] = []
    if measure.sum_mm is None:
        if meets_pd(measure.partial_sum_mm, nadir_mm):
            notes.append(
                _note(
                    "recist.partial_sum_pd",
                    lesions=list(measure.missing),
                    partial=measure.partial_sum_mm,
                    nadir=nadir_mm,
                )
            )
            return Response.PD, notes
        notes.append(_note("recist.targets_not_evaluated", lesions=list(measure.missing)))
        return Response.NE, notes
    if measure.all_cleared:
        return Response.CR, notes
    if meets_pd(measure.sum_mm, nadir_mm):
        return Response.PD, notes
    if meets_pr(measure.sum_mm, baseline_mm):
        return Response.PR, notes
    if prior_response and options.pr_persists_until_pd:
        notes.append(_note("recist.pr_continued"))
        return Response.PR, notes
    return Response.SD, notes


def baseline_sum(patient: PatientInput) -> Decimal | None:
    """Sum of the baseline target diameters (the PR reference); None without targets."""
    targets = [lesion for lesion in patient.baseline if lesion.kind is LesionKind.TARGET]
    return sum((t.diameter_mm or Decimal(0) for t in targets), Decimal(0)) if targets else None


def time_point_results(
    patient: PatientInput, options: RecistOptions | None = None
) -> list[TimePointResult]:
    """Per-time-point responses, before any re-dating of confirmed equivocal new lesions."""
    options = options or RecistOptions()
    targets = [lesion for lesion in patient.baseline if lesion.kind is LesionKind.TARGET]
    non_targets = [lesion for lesion in patient.baseline if lesion.kind is LesionKind.NON_TARGET]
    has_targets = bool(targets)
    baseline_mm = sum((t.diameter_mm or Decimal(0) for t in targets), Decimal(0))
    nadir_mm = baseline_mm
    prior_response = False
    results: list[TimePointResult] = []
    for fu in patient.followups:
        observed = {obs.id: obs for obs in fu.lesions}
        notes: list[Reason] = []
        non_target = _non_target_response(non_targets, observed, fu.tumour_markers_normal)
        if has_targets:
            measure = _measure_targets(targets, observed)
            target, target_notes = _target_response(
                measure, baseline_mm, nadir_mm, prior_response, options
            )
            notes.extend(target_notes)
            sum_mm = measure.sum_mm
            partial = None if sum_mm is not None else measure.partial_sum_mm
            nadir_used: Decimal | None = nadir_mm
        else:
            target, sum_mm, partial, nadir_used = Response.NA, None, None, None
        if fu.new_lesions is NewLesions.EQUIVOCAL:
            notes.append(_note("recist.equivocal_new_lesion"))
        overall = overall_response(target, non_target, fu.new_lesions, has_targets)
        results.append(
            TimePointResult(
                date=fu.date,
                day=(fu.date - patient.randomization_date).days,
                sum_mm=sum_mm,
                partial_sum_mm=partial,
                nadir_mm=nadir_used,
                change_from_baseline_pct=(
                    None if sum_mm is None else percent_change(sum_mm, baseline_mm)
                ),
                change_from_nadir_pct=(
                    None
                    if sum_mm is None or nadir_used is None
                    else percent_change(sum_mm, nadir_used)
                ),
                target=target,
                non_target=non_target,
                new_lesions=fu.new_lesions,
                overall=overall,
                notes=tuple(n.english() for n in notes),
                messages=tuple(notes),
            )
        )
        if sum_mm is not None and sum_mm < nadir_mm:
            nadir_mm = sum_mm
        if target in (Response.PR, Response.CR):
            prior_response = True
    return results


def redate_confirmed_equivocal(
    responses: Sequence[TimePointResponse],
) -> list[OutcomeTimePoint]:
    """RECIST 1.1 §4.3.2: an equivocal new lesion later confirmed dates PD to the scan where
    it first appeared. A ``yes`` new lesion right after a run of ``equivocal`` ones makes each
    of them PD (the engine cannot know the lesions are the same: an assumption)."""
    ordered = sorted(responses, key=lambda r: r.date)
    out = [OutcomeTimePoint(r.date, r.overall, r.overall, r.new_lesions) for r in ordered]
    for i, tp in enumerate(out):
        if tp.new_lesions is not NewLesions.YES:
            continue
        j = i
        while j > 0 and out[j - 1].new_lesions is NewLesions.EQUIVOCAL:
            j -= 1
        for k in range(j, i):
            out[k] = replace(out[k], overall=Response.PD, redated_by=tp.date)
    return out


# --------------------------------------------------------------------------------------------
# Patient level: best overall response, first PD, month-6 disease control


def _best(
    candidates: Sequence[tuple[dt.date, Response]],
) -> tuple[Response, dt.date | None]:
    if not candidates:
        return Response.NE, None
    best = min(candidates, key=lambda c: (_RANK[c[1]], c[0]))
    return best[1], best[0]


def best_overall_response(
    responses: Sequence[tuple[dt.date, Response]],
    reference_date: dt.date,
    options: RecistOptions | None = None,
) -> tuple[Response, dt.date | None]:
    """Best overall response up to and including the first PD.

    SD and non-CR/non-PD count only at or after ``reference_date + min_sd_duration_days``
    (earlier ones count as NE). With ``confirmation_required`` CR/PR need a later
    confirming assessment at least ``confirmation_min_days`` later (RECIST Table 3, in the
    admiralonco operationalisation); unconfirmed CR/PR in the SD window count as SD.
    """
    options = options or RecistOptions()
    ordered = sorted(responses, key=lambda r: r[0])
    upto: list[tuple[dt.date, Response]] = []
    for date, resp in ordered:
        upto.append((date, resp))
        if resp is Response.PD:
            break
    sd_from = reference_date + dt.timedelta(days=options.min_sd_duration_days)

    def windowed(date: dt.date, resp: Response) -> Response:
        if resp in (Response.SD, Response.NON_CR_NON_PD) and date < sd_from:
            return Response.NE
        return resp

    if not options.confirmation_required:
        return _best([(d, windowed(d, r)) for d, r in upto])

    out: list[tuple[dt.date, Response]] = []
    for i, (date, resp) in enumerate(upto):
        if resp in (Response.CR, Response.PR):
            if _confirmed(upto, i, options):
                out.append((date, resp))
            else:
                out.append((date, Response.SD if date >= sd_from else Response.NE))
        else:
            out.append((date, windowed(date, resp)))
    return _best(out)


def _confirmed(seq: Sequence[tuple[dt.date, Response]], i: int, options: RecistOptions) -> bool:
    date, resp = seq[i]
    allowed_between = (
        {Response.CR, Response.NE}
        if resp is Response.CR
        else {Response.CR, Response.PR, Response.SD, Response.NE}
    )
    confirming = {Response.CR} if resp is Response.CR else {Response.CR, Response.PR}
    seen_cr = False
    n_ne = n_sd = 0
    for later_date, later in seq[i + 1 :]:
        if (
            later in confirming
            and (later_date - date).days >= options.confirmation_min_days
            and not (resp is Response.PR and seen_cr and later is Response.PR)
        ):
            return True
        if later not in allowed_between:
            return False
        if resp is Response.PR and seen_cr and later is Response.PR:
            return False  # a PR after a CR cannot confirm the first PR
        n_ne += later is Response.NE
        n_sd += later is Response.SD
        seen_cr = seen_cr or later is Response.CR
        if n_ne > options.confirmation_max_ne:
            return False
        if n_sd > (1 if options.confirmation_accept_sd else 0):
            return False
    return False


def landmark_window(
    randomization_date: dt.date, options: RecistOptions | None = None
) -> tuple[dt.date, dt.date]:
    options = options or RecistOptions()
    start = options.landmark_day - options.landmark_window_days
    end = options.landmark_day + options.landmark_window_days
    return (
        randomization_date + dt.timedelta(days=start),
        randomization_date + dt.timedelta(days=end),
    )


class _Assessed(Protocol):
    @property
    def date(self) -> dt.date: ...

    @property
    def overall(self) -> Response: ...


#: The month-6 reasons by message key (source templates), and the kind of each value.
MONTH6_REASONS: dict[str, str] = {
    "recist.month6.pd_before_window": N_("progression on {date}, before the landmark"),
    "recist.month6.death_before_window": N_("death on {date}, before the landmark window"),
    "recist.month6.pd_in_window": N_("progression on {date}, in the window"),
    "recist.month6.death_in_window": N_("death on {date}, in the landmark window"),
    "recist.month6.only_ne": N_(
        "only NE assessments in the landmark window {start} to {end} "
        "(non-evaluable counts as failure)"
    ),
    "recist.month6.no_assessment": N_(
        "no assessment in the landmark window {start} to {end} (non-evaluable counts as failure)"
    ),
    "recist.month6.pd_by_landmark": N_(
        "progression on {date}, on or before the landmark assessment of {landmark}"
    ),
    "recist.month6.death_before_landmark": N_(
        "death on {date}, before the landmark assessment of {landmark}"
    ),
    "recist.month6.not_randomized": N_("not randomized"),
}
#: The landmark assessment's response: one template per response, so that English keeps the
#: code (``SD on 2024-06-17``, as the datasets write it) and French the words.
MONTH6_RESPONSES: dict[Response, str] = {
    Response.CR: N_("CR on {date}"),
    Response.PR: N_("PR on {date}"),
    Response.SD: N_("SD on {date}"),
    Response.NON_CR_NON_PD: N_("NON-CR/NON-PD on {date}"),
    Response.PD: N_("PD on {date}"),
    Response.NA: N_("NA on {date}"),
}
_MONTH6_KINDS = {"date": "day", "start": "day", "end": "day", "landmark": "day"}


def _month6(key: str, **params: Any) -> Reason:
    return Reason(f"recist.month6.{key}", MONTH6_REASONS[f"recist.month6.{key}"], params)


def month6_not_randomized() -> Reason:
    """What an evaluation before randomization stores as its month-6 reason."""
    return _month6("not_randomized")


def month6_message_of(english: str) -> Reason | None:
    """The key of a month-6 reason stored in English only (before migration 0019)."""
    known = [*MONTH6_REASONS.items()]
    known += [(f"recist.month6.response.{r.name}", t) for r, t in MONTH6_RESPONSES.items()]
    return from_english(english, known, _MONTH6_KINDS)


#: The time-point notes by message key (those :func:`time_point_results` and
#: :func:`evaluate` write), and the kind of each value, to read stored English back.
NOTE_TEMPLATES: dict[str, str] = {
    "recist.partial_sum_pd": N_(
        "targets not evaluated ({lesions}) but the partial sum {partial} mm "
        "already meets PD against nadir {nadir} mm"
    ),
    "recist.targets_not_evaluated": N_("targets not evaluated: {lesions}"),
    "recist.pr_continued": N_("PR continued: response already reached and no PD since (EORTC FAQ)"),
    "recist.equivocal_new_lesion": N_("equivocal new lesion: not PD unless confirmed later"),
    "recist.pd_redated": N_("PD re-dated: equivocal new lesion confirmed on {date}"),
}
_NOTE_KINDS = {"lesions": "list", "partial": "number", "nadir": "number", "date": "day"}
#: How the notes of one time point are stored together (``recist_time_points.notes``).
NOTES_SEPARATOR = "; "


def _note(key: str, **params: Any) -> Reason:
    return Reason(key, NOTE_TEMPLATES[key], params)


def note_messages_of(stored: str) -> tuple[Reason | str, ...]:
    """The notes of a time point stored in English only (before migration 0019), each as its
    key and values, or as stored when no template fits."""
    if not stored:
        return ()
    out: list[Reason | str] = []
    for text in stored.split(NOTES_SEPARATOR):
        found = from_english(text, NOTE_TEMPLATES.items(), _NOTE_KINDS)
        out.append(text if found is None else found)
    return tuple(out)


def disease_control_at_landmark(
    time_points: Sequence[_Assessed],
    randomization_date: dt.date,
    first_pd_date: dt.date | None,
    options: RecistOptions | None = None,
    death_date: dt.date | None = None,
) -> tuple[bool, str, dt.date | None]:
    """:func:`month6_decision` with its reason in English (the datasets' ``DCRRSN``)."""
    control, reason, landmark = month6_decision(
        time_points, randomization_date, first_pd_date, options, death_date
    )
    return control, reason.english(), landmark


def month6_decision(
    time_points: Sequence[_Assessed],
    randomization_date: dt.date,
    first_pd_date: dt.date | None,
    options: RecistOptions | None = None,
    death_date: dt.date | None = None,
) -> tuple[bool, Reason, dt.date | None]:
    """Disease control (CR, PR, SD, non-CR/non-PD) at the month-6 landmark assessment, with
    its reason as a message key and values.

    The landmark assessment is the evaluable (not NE) assessment in the window closest to
    the landmark day (the later one on a tie). Failure: PD on or before it; no evaluable
    assessment in the window; death before the window, or before the landmark assessment
    (protocol: non-evaluable patients count as failures; a patient who died before month 6
    cannot be evaluated at month 6).
    """
    options = options or RecistOptions()
    start, end = landmark_window(randomization_date, options)
    target = randomization_date + dt.timedelta(days=options.landmark_day)
    window = [tp for tp in time_points if start <= tp.date <= end]
    if first_pd_date is not None and first_pd_date < start:
        return False, _month6("pd_before_window", date=first_pd_date), None
    if death_date is not None and death_date < start:
        return False, _month6("death_before_window", date=death_date), None
    evaluable = [tp for tp in window if tp.overall is not Response.NE]
    if not evaluable:
        if first_pd_date is not None and first_pd_date <= end:
            return False, _month6("pd_in_window", date=first_pd_date), None
        if death_date is not None and death_date <= end:
            return False, _month6("death_in_window", date=death_date), None
        what = "only_ne" if window else "no_assessment"
        return False, _month6(what, start=start, end=end), None
    chosen = min(evaluable, key=lambda tp: (abs((tp.date - target).days), -tp.date.toordinal()))
    if first_pd_date is not None and first_pd_date <= chosen.date:
        reason = _month6("pd_by_landmark", date=first_pd_date, landmark=chosen.date)
        return False, reason, chosen.date
    if death_date is not None and death_date < chosen.date:
        reason = _month6("death_before_landmark", date=death_date, landmark=chosen.date)
        return False, reason, chosen.date
    response = Reason(
        f"recist.month6.response.{chosen.overall.name}",
        MONTH6_RESPONSES[chosen.overall],
        {"date": chosen.date},
    )
    return chosen.overall in DISEASE_CONTROL, response, chosen.date


def patient_outcome(
    responses: Sequence[TimePointResponse],
    randomization_date: dt.date,
    options: RecistOptions | None = None,
    death_date: dt.date | None = None,
) -> PatientOutcome:
    """The patient-level RECIST 1.1 evaluation of time-point responses as read.

    1. Sort the time points by date; with ``backdate_confirmed_equivocal``, re-date PD to the
       first of a run of equivocal new lesions confirmed at the next time point
       (:func:`redate_confirmed_equivocal`).
    2. First PD: the earliest time point whose (re-dated) response is PD.
    3. BOR: :func:`best_overall_response` of the re-dated responses from the randomization date
       (the rule of ``options.bor_rule()``).
    4. Month-6 disease control: :func:`disease_control_at_landmark` with the first PD and, when
       known, the death date.
    """
    options = options or RecistOptions()
    if options.backdate_confirmed_equivocal:
        points = redate_confirmed_equivocal(responses)
    else:
        points = [
            OutcomeTimePoint(r.date, r.overall, r.overall, r.new_lesions)
            for r in sorted(responses, key=lambda r: r.date)
        ]
    first_pd = next((tp.date for tp in points if tp.overall is Response.PD), None)
    bor, bor_date = best_overall_response(
        [(tp.date, tp.overall) for tp in points], randomization_date, options
    )
    control, reason, landmark_date = month6_decision(
        points, randomization_date, first_pd, options, death_date
    )
    return PatientOutcome(
        randomization_date=randomization_date,
        time_points=tuple(points),
        best_overall_response=bor,
        best_overall_response_date=bor_date,
        bor_rule=options.bor_rule(),
        first_pd_date=first_pd,
        disease_control_month6=control,
        disease_control_month6_reason=reason.english(),
        landmark_window=landmark_window(randomization_date, options),
        landmark_date=landmark_date,
        death_date=death_date,
        options=options,
        disease_control_month6_message=reason,
    )


def responses_of(results: Sequence[TimePointResult]) -> list[TimePointResponse]:
    """The time-point responses :func:`patient_outcome` needs, from the lesion-level results."""
    return [TimePointResponse(tp.date, tp.overall, tp.new_lesions) for tp in results]


def _redated(tp: TimePointResult, overall: Response, confirmed: dt.date) -> TimePointResult:
    note = _note("recist.pd_redated", date=confirmed)
    return replace(
        tp,
        overall=overall,
        notes=(*tp.notes, note.english()),
        messages=(*tp.messages, note),
    )


def evaluate(
    patient: PatientInput, options: RecistOptions | None = None, death_date: dt.date | None = None
) -> PatientResponse:
    """The whole assessment of one patient: time points, BOR, first PD, month-6 control."""
    options = options or RecistOptions()
    problems = baseline_violations(patient.baseline)
    if problems:
        raise problems[0] if len(problems) == 1 else ValidationErrors(problems)
    read = time_point_results(patient, options)
    outcome = patient_outcome(responses_of(read), patient.randomization_date, options, death_date)
    results = [
        tp if point.redated_by is None else _redated(tp, point.overall, point.redated_by)
        for tp, point in zip(read, outcome.time_points, strict=True)
    ]
    return PatientResponse(
        baseline_sum_mm=baseline_sum(patient),
        time_points=tuple(results),
        best_overall_response=outcome.best_overall_response,
        best_overall_response_date=outcome.best_overall_response_date,
        first_pd_date=outcome.first_pd_date,
        disease_control_month6=outcome.disease_control_month6,
        disease_control_month6_reason=outcome.disease_control_month6_reason,
        landmark_window=outcome.landmark_window,
        landmark_date=outcome.landmark_date,
        options=options,
        disease_control_month6_message=outcome.disease_control_month6_message,
    )
