"""One schema per case report form (the fields, their types and limits), read by every path
that records the form (service, page, API, CLI import) and by the forms registry.

Pure: pydantic models and the cross-field rules of each form; the dates are checked against
the patient's timeline by the services (:mod:`reluth.patients.timeline`). Sources: CDISC CDASH
v2.3 domains CM (concomitant medications), MH (medical history), DV (protocol deviations),
DS (disposition: death, end of study, withdrawal); ICH E3 §10.2 (protocol deviations); CTFG
"Recommendations related to contraception and pregnancy testing in clinical trials" (2020) §4
(women of childbearing potential, pregnancy test before exposure); CNIL MR-001 and the French
Code de la santé publique art. L1122-1-1 (the participant may withdraw consent to the research
and object to further use of their data; data collected before remain usable).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any, ClassVar, Literal, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from reluth.errors import ValidationError, from_pydantic
from reluth.i18n import N_
from reluth.i18n.reasons import invalid
from reluth.values import parse_date, parse_number

#: Free-text limit of every long text field.
TEXT_MAX = 2000

#: WHO ATC code, levels 1 to 5 (A, A02, A02B, A02BC, A02BC01): the shape only, the code list
#: is the coding helper's (WHO Collaborating Centre for Drug Statistics Methodology, "Guidelines
#: for ATC classification and DDD assignment", 2024, §1).
ATC_PATTERN = r"^[A-Z](\d{2}([A-Z]([A-Z](\d{2})?)?)?)?$"

ROUTES = (
    "oral",
    "intravenous",
    "subcutaneous",
    "intramuscular",
    "topical",
    "transdermal",
    "inhalation",
    "rectal",
    "sublingual",
    "other",
)
DEVIATION_CATEGORIES = (
    "informed_consent",
    "eligibility",
    "randomization",
    "study_treatment",
    "visit_schedule",
    "assessments",
    "safety_reporting",
    "prohibited_medication",
    "data_protection",
    "other",
)
WITHDRAWAL_KINDS = ("treatment", "follow_up", "objection")
DEATH_CAUSES = ("disease", "toxicity", "other", "unknown")
END_REASONS = (
    "completed",
    "death",
    "withdrawal",
    "objection",
    "lost_to_follow_up",
    "screen_failure",
    "investigator_decision",
    "other",
)
NOT_CHILDBEARING_REASONS = ("postmenopausal", "surgically_sterile", "premenarchal", "other")


class FormSchema(BaseModel):
    """Base of every form schema: unknown fields refused, text trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    #: Identifier and title of the form (the registry and the pages show them).
    form_id: ClassVar[str]
    title: ClassVar[str]

    def check(self) -> None:
        """Cross-field rules (one :class:`ValidationError` naming the field)."""


Text = Field(min_length=1, max_length=200)
LongText = Field(default=None, max_length=TEXT_MAX)


class ConmedForm(FormSchema):
    """A concomitant (or prior) medication: CDASH CM."""

    form_id: ClassVar[str] = "conmed"
    title: ClassVar[str] = "Concomitant medication"

    drug_name: str = Field(
        min_length=1, max_length=120, description="as prescribed, e.g. Lanreotide"
    )
    atc_code: str | None = Field(
        default=None, max_length=7, description="WHO ATC code, level 1-5, e.g. A02BC01"
    )
    indication: str = Field(min_length=1, max_length=200, description="what it is taken for")
    dose: Decimal | None = Field(default=None, gt=0, max_digits=12, decimal_places=4)
    unit: str | None = Field(default=None, max_length=20, description="dose unit, e.g. mg")
    route: Literal[ROUTES] = Field(description="route of administration")  # type: ignore[valid-type]
    start_date: dt.date | None = None
    stop_date: dt.date | None = None
    ongoing: bool = False

    @pydantic.field_validator("atc_code", mode="before")
    @classmethod
    def _atc(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().upper()
            if not text:
                return None
            if not re.match(ATC_PATTERN, text):
                raise PydanticCustomError(
                    "not_an_atc_code", "not an ATC code (accepted: A, A02, A02B, A02BC or A02BC01)"
                )
            return text
        return value

    @pydantic.field_validator("unit", mode="before")
    @classmethod
    def _blank_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def check(self) -> None:
        if (self.dose is None) != (self.unit is None):
            missing = "unit" if self.unit is None else "dose"
            raise ValidationError(
                missing, N_("missing"), N_("a dose and its unit together, or neither")
            )
        if self.ongoing and self.stop_date is not None:
            raise ValidationError("stop_date", N_("given for an ongoing medication"), N_("blank"))
        if not self.ongoing and self.stop_date is None:
            raise ValidationError("stop_date", N_("missing"), N_("the stop date, or ongoing"))
        _ordered(self.start_date, self.stop_date, "stop_date", "start date")


class MedicalHistoryForm(FormSchema):
    """A condition of the patient's medical history: CDASH MH."""

    form_id: ClassVar[str] = "medical_history"
    title: ClassVar[str] = "Medical history"

    condition: str = Field(min_length=1, max_length=200, description="e.g. Hypertension")
    start_date: dt.date | None = None
    ongoing: bool = False


class WithdrawalForm(FormSchema):
    """A withdrawal as French practice splits it: from the study treatment (follow-up goes
    on), from the follow-up visits (no further visit), or objection to further use of the
    data (collection stops; what was collected before is kept)."""

    form_id: ClassVar[str] = "withdrawal"
    title: ClassVar[str] = "Withdrawal"

    kind: Literal[WITHDRAWAL_KINDS]  # type: ignore[valid-type]
    withdrawal_date: dt.date
    decided_by: Literal["patient", "investigator"] = "patient"
    details: str | None = LongText


class DeathForm(FormSchema):
    """Death: CDASH DS / the death details (cause as the protocol's SAE section asks)."""

    form_id: ClassVar[str] = "death"
    title: ClassVar[str] = "Death"

    death_date: dt.date
    cause: Literal[DEATH_CAUSES]  # type: ignore[valid-type]
    details: str | None = LongText

    def check(self) -> None:
        if self.cause == "other" and not self.details:
            raise ValidationError("details", N_("missing"), N_("the cause of death, in words"))


class EndOfStudyForm(FormSchema):
    """End of study (disposition): the reason and the date."""

    form_id: ClassVar[str] = "end_of_study"
    title: ClassVar[str] = "End of study"

    end_date: dt.date
    reason: Literal[END_REASONS]  # type: ignore[valid-type]
    details: str | None = LongText

    def check(self) -> None:
        if self.reason == "other" and not self.details:
            raise ValidationError("details", N_("missing"), N_("the reason, in words"))


class DeviationForm(FormSchema):
    """One entry of the protocol deviations log (ICH E3 §10.2; CDASH DV)."""

    form_id: ClassVar[str] = "deviation"
    title: ClassVar[str] = "Protocol deviation"

    category: Literal[DEVIATION_CATEGORIES]  # type: ignore[valid-type]
    severity: Literal["major", "minor"]
    deviation_date: dt.date
    description: str = Field(min_length=1, max_length=TEXT_MAX)
    corrective_action: str | None = LongText


class PregnancyTestForm(FormSchema):
    """A pregnancy test (CTFG 2020 §4: highly sensitive, before each exposure)."""

    form_id: ClassVar[str] = "pregnancy_test"
    title: ClassVar[str] = "Pregnancy test"

    test_date: dt.date
    method: Literal["serum", "urine"]
    result: Literal["negative", "positive"]


class ChildbearingForm(FormSchema):
    """Whether a woman is of childbearing potential (CTFG 2020 §2: fertile from menarche until
    postmenopausal unless permanently sterile)."""

    form_id: ClassVar[str] = "childbearing"
    title: ClassVar[str] = "Childbearing potential"

    childbearing_potential: bool
    reason: Literal[NOT_CHILDBEARING_REASONS] | None = None  # type: ignore[valid-type]
    assessed_on: dt.date

    def check(self) -> None:
        if self.childbearing_potential and self.reason is not None:
            raise ValidationError(
                "reason", N_("given for a woman of childbearing potential"), N_("blank")
            )
        if not self.childbearing_potential and self.reason is None:
            raise ValidationError(
                "reason", "missing", ", ".join(NOT_CHILDBEARING_REASONS), code="required"
            )


#: Every form schema of this module, by form id (what the registry reads).
FORMS: dict[str, type[FormSchema]] = {
    f.form_id: f
    for f in (
        ConmedForm,
        MedicalHistoryForm,
        WithdrawalForm,
        DeathForm,
        EndOfStudyForm,
        DeviationForm,
        PregnancyTestForm,
        ChildbearingForm,
    )
}

_F = TypeVar("_F", bound=FormSchema)


def _ordered(first: dt.date | None, then: dt.date | None, field: str, what: str) -> None:
    if first is not None and then is not None and then < first:
        raise ValidationError(
            field,
            f"{then} is before the {what} ({first})",
            f">= {first}",
            code="before_start_date",
            params={"value": then, "first": first},
        )


def _accepted(error: Any) -> str | None:
    ctx = error.get("ctx") or {}
    if "expected" in ctx:
        return str(ctx["expected"])
    kind = error.get("type", "")
    if kind.startswith("date"):
        return "YYYY-MM-DD"
    if kind.startswith("bool"):
        return "true or false"
    if kind.startswith("decimal") or kind in ("greater_than",):
        return "a positive number"
    return None


def parse(schema: type[_F], data: Any) -> _F:
    """``data`` (a JSON object, or a page's form) as ``schema``: the first problem raised as
    one :class:`ValidationError` naming the field and what is accepted."""
    if isinstance(data, BaseModel):
        data = data.model_dump()
    if not isinstance(data, dict):
        raise invalid(
            schema.form_id,
            "not_an_object",
            N_("expected an object, got {value}"),
            ("{...}",),
            value=f"{data!r:.40}",
        )
    try:
        form = schema.model_validate(data)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or schema.form_id
        refused = from_pydantic(error, field)
        refused.accepted = refused.accepted or _accepted(error)
        raise refused from None
    form.check()
    return form


def fields(schema: type[FormSchema]) -> list[dict[str, Any]]:
    """The fields of a form as a page renders them: name, label, kind, choices, required."""
    out = []
    for name, info in schema.model_fields.items():
        annotation = info.annotation
        args = getattr(annotation, "__args__", ())
        choices: tuple[str, ...] = ()
        literal = [a for a in (annotation, *args) if getattr(a, "__origin__", None) is Literal]
        if literal:
            choices = tuple(str(c) for c in literal[0].__args__)
        kind = "choice" if choices else "text"
        base = {a for a in (annotation, *args) if isinstance(a, type)}
        if dt.date in base:
            kind = "date"
        elif bool in base:
            kind = "bool"
        elif Decimal in base:
            kind = "number"
        big = any(getattr(m, "max_length", 0) == TEXT_MAX for m in info.metadata)
        if kind == "text" and big:
            kind = "textarea"
        out.append(
            {
                "name": name,
                "label": name.replace("_", " ").capitalize().replace("Atc", "ATC"),
                "kind": kind,
                "choices": choices,
                "required": info.is_required(),
                "help": info.description or "",
            }
        )
    return out


def _base_types(schema: type[FormSchema], name: str) -> set[Any]:
    annotation = schema.model_fields[name].annotation
    return {a for a in (annotation, *getattr(annotation, "__args__", ())) if isinstance(a, type)}


def _corrected_value(schema: type[FormSchema], name: str, value: Any) -> Any:
    """A changed value as the schema takes it: blank text is absent (None), a typed date
    ``dd/mm/yyyy`` or ISO and a typed decimal with a comma as people write them."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        if schema.model_fields[name].is_required():
            raise invalid(name, "required", N_("missing"), N_("a value (the field is required)"))
        return None
    return entered(schema, name, text)


def entered(schema: type[FormSchema], name: str, text: str) -> Any:
    """A value typed in a form's field as the schema takes it: a date ``dd/mm/yyyy`` or ISO,
    a decimal with a comma or a point, as people write them (:mod:`reluth.values`); other
    text as it is (the schema checks it)."""
    types = _base_types(schema, name)
    if dt.date in types:
        return parse_date(text, name)
    if Decimal in types:
        return parse_number(text, name)
    return text


def corrected(schema: type[_F], saved: Any, changes: Any) -> _F:
    """A saved form instance (``saved``: its row) with ``changes`` applied, checked again by the
    form's own rules (:func:`parse`), as a correction must be (ICH E6(R3) 4.2.4: a change keeps
    the data's validity). Refuses a name that is not a field of the form, naming it."""
    if not isinstance(changes, dict):
        raise invalid(
            "changes",
            "not_an_object",
            N_("expected an object, got {value}"),
            ("{...}",),
            value=f"{changes!r:.40}",
        )
    names = tuple(schema.model_fields)
    merged = {name: getattr(saved, name) for name in names}
    for name, value in changes.items():
        if name not in names:
            raise invalid(name, "not_a_field", N_("cannot be changed"), names)
        merged[name] = _corrected_value(schema, name, value)
    return parse(schema, merged)
