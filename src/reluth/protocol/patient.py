"""The patient file read by the eligibility engine: its schema, parsing and validation.

Units are converted once, here, into canonical units (``reluth.units``). Every problem is a
``ValidationError`` naming the field path (``labs.platelets.unit``) and what is accepted.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from reluth.errors import ValidationError, ValidationErrors, from_pydantic
from reluth.i18n import N_
from reluth.i18n.reasons import invalid
from reluth.units import LabValue, check_plausible, to_decimal, unit_factor

#: No date in a patient file before this (a typing error, e.g. 0001-01-01).
EARLIEST_DATE = dt.date(1900, 1, 1)

PATIENT_ID_PATTERN = r"^C\d{2}-\d{4}$"
LAB_TESTS = (
    "hemoglobin",
    "neutrophils",
    "platelets",
    "wbc",
    "lymphocytes",
    "creatinine",
    "egfr",
    "alt",
    "ast",
    "bilirubin",
    "alp",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Lab(_Model):
    value: Decimal = Field(description="The result, in `unit`.")
    unit: str = Field(description="Unit of value (and of uln/lln), e.g. g/dL, /mm3, µmol/L, U/L.")
    uln: Decimal | None = Field(None, gt=0, description="Upper limit of normal, same unit.")
    lln: Decimal | None = Field(None, ge=0, description="Lower limit of normal, same unit.")
    date: dt.date | None = None


class Histology(_Model):
    primary_site: str | None = Field(
        None, description="small_intestine, ileum, jejunum, duodenum, colon, rectum, pancreas, ..."
    )
    grade: Literal["G1", "G2", "G3"] | None = None
    differentiation: Literal["well", "poor"] | None = None
    tumour_type: Literal["NET", "NEC"] | None = Field(None, description="NET or carcinoma (NEC)")


class FirstPrrt(_Model):
    cycles: int | None = Field(None, ge=0, le=20)
    disease_control_months: Decimal | None = Field(
        None, ge=0, le=600, description="Duration of disease control after first PRRT, months."
    )
    best_response: Literal["CR", "PR", "SD", "PD"] | None = None
    g4_hematotoxicity: bool | None = None
    g4_nephrotoxicity: bool | None = None
    end_date: dt.date | None = None


class Progression(_Model):
    date: dt.date | None = None
    radiological: bool | None = None
    clinical: bool | None = None
    biological: bool | None = None


class SecondPrrt(_Model):
    tumour_board_decision: bool | None = Field(
        None, description="Retreatment decided by RENATEN / a multidisciplinary tumour board."
    )
    cycles_completed: int | None = Field(None, ge=0, le=4)
    cycle_dates: tuple[dt.date, ...] = ()
    assessment_date: dt.date | None = Field(
        None, description="Pre-randomization radiological assessment after the two cycles."
    )
    radiological_progression: bool | None = Field(
        None, description="RECIST 1.1 progression at the pre-randomization assessment."
    )


class SstrImaging(_Model):
    date: dt.date | None = None
    modality: str | None = Field(
        None, description="68Ga-PET, 111In-pentetreotide, 99mTc-octreotide"
    )
    positive_lesion_fraction: Decimal | None = Field(None, ge=0, le=1)


class Lesion(_Model):
    id: str
    organ: str
    nodal: bool = False
    longest_diameter_mm: Decimal | None = Field(None, ge=0, le=1000)
    short_axis_mm: Decimal | None = Field(None, ge=0, le=1000)


class AdverseEvent(_Model):
    term: str
    grade: int = Field(ge=1, le=5)
    resolved: bool = False


class BrainMetastases(_Model):
    present: bool
    treated: bool | None = None
    stable_since: dt.date | None = None
    stability_imaging_documented: bool | None = None


class OtherCancer(_Model):
    site: str = Field(description="cervix, basal_cell_skin, squamous_cell_skin, or another site")
    diagnosis_date: dt.date
    treated_controlled: bool | None = None


class History(_Model):
    intercurrent_treatment: bool | None = Field(
        None, description="A treatment line between first and second PRRT (stratum)."
    )
    ebrt_marrow_fraction: Decimal | None = Field(
        None, ge=0, le=1, description="Fraction of bone marrow treated by external beam RT."
    )
    nephrotic_syndrome: bool | None = None
    uncontrolled_concomitant_disease: bool | None = None
    brain_metastases: BrainMetastases | None = None
    other_cancers: tuple[OtherCancer, ...] | None = Field(
        None, description="Other cancers; [] means none; absent means not recorded."
    )


class Consent(_Model):
    signed: bool
    date: dt.date | None = None


class PatientFile(_Model):
    """Inputs of the ReLUTH eligibility check. Absent values give `unknown` criteria."""

    patient_id: str = Field(pattern=PATIENT_ID_PATTERN, description="Pseudonymous ID, C07-0012")
    assessment_date: dt.date
    planned_randomization_date: dt.date | None = None
    age: int | None = Field(None, ge=1, le=120, description="Age in whole years")
    sex: Literal["male", "female"] | None = None
    ecog: int | None = Field(None, ge=0, le=5)
    life_expectancy_months: Decimal | None = Field(None, ge=0, le=600)
    histology: Histology = Histology()
    labs: dict[str, Lab] = Field(default_factory=dict)
    first_prrt: FirstPrrt = FirstPrrt()
    progression: Progression = Progression()
    second_prrt: SecondPrrt = SecondPrrt()
    sstr_imaging: SstrImaging = SstrImaging()
    lesions: tuple[Lesion, ...] | None = None
    unresolved_adverse_events: tuple[AdverseEvent, ...] | None = None
    history: History = History()
    consent: Consent | None = None


def _loc(parts: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in parts) or "patient"


def _pydantic_errors(exc: PydanticError) -> ValidationErrors:
    """Every problem pydantic found in a patient file, each a coded error naming its field
    (:func:`reluth.errors.from_pydantic`: the message people read is translated by its code)."""
    return ValidationErrors([from_pydantic(err, _loc(err["loc"])) for err in exc.errors()])


def _dates(obj: Any, path: str) -> list[tuple[str, dt.date]]:
    out: list[tuple[str, dt.date]] = []
    if isinstance(obj, dt.date):
        out.append((path, obj))
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            out.extend(_dates(getattr(obj, name), f"{path}.{name}" if path else name))
    elif isinstance(obj, tuple | list):
        for i, item in enumerate(obj):
            out.extend(_dates(item, f"{path}.{i}"))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(_dates(v, f"{path}.{k}"))
    return out


def parse_patient(data: Any, as_of: dt.date | None = None) -> PatientFile:
    """Validate a patient file (a dict from JSON). Dates after ``as_of`` are refused,
    except ``planned_randomization_date``; lab units must be known for their test."""
    if not isinstance(data, dict):
        raise invalid(
            "patient",
            "not_an_object",
            N_("expected a JSON object, got {kind}"),
            kind=type(data).__name__,
        )
    try:
        patient = PatientFile.model_validate(data)
    except PydanticError as exc:
        raise _pydantic_errors(exc) from None
    problems: list[ValidationError] = []
    for name, lab in patient.labs.items():
        if name not in LAB_TESTS:
            problems.append(ValidationError(f"labs.{name}", "unknown test", ", ".join(LAB_TESTS)))
            continue
        try:
            LabValue.parse(name, lab.value, lab.unit, f"labs.{name}")
            for key in ("uln", "lln"):
                limit = getattr(lab, key)
                if limit is not None:
                    field = f"labs.{name}.{key}"
                    _unit, factor = unit_factor(name, lab.unit, f"labs.{name}.unit")
                    check_plausible(name, to_decimal(limit, field) * factor, field, "limit")
        except ValidationError as exc:
            problems.append(exc)
    if patient.lesions is not None:
        seen: set[str] = set()
        for i, lesion in enumerate(patient.lesions):
            if lesion.id in seen:
                problems.append(
                    ValidationError(f"lesions.{i}.id", f"duplicate lesion id {lesion.id!r}")
                )
            seen.add(lesion.id)
    dates = _dates(patient, "")  # walked once for both checks
    for path, value in dates:
        if value < EARLIEST_DATE:
            problems.append(
                ValidationError(
                    path, f"{value} is implausibly early", f"a date from {EARLIEST_DATE}"
                )
            )
    if as_of is not None:
        for path, value in dates:
            if path == "planned_randomization_date":
                continue
            if value > as_of:
                problems.append(
                    ValidationError(path, f"date {value} is in the future", f"a date <= {as_of}")
                )
    if problems:
        raise ValidationErrors(problems) if len(problems) > 1 else problems[0]
    return patient


def stored_patient(data: Any) -> PatientFile:
    """A patient file as a screening stored it: checked by :func:`parse_patient` when it was
    captured and frozen since (under the audit trail), so only read into its model here, not
    checked again (the randomization re-evaluates its time-bound criteria from it)."""
    try:
        return PatientFile.model_validate(data)
    except PydanticError as exc:
        raise _pydantic_errors(exc) from None


def lab(patient: PatientFile, name: str) -> LabValue | None:
    """The canonical value of a lab test, or None if not recorded."""
    entry = patient.labs.get(name)
    if entry is None:
        return None
    return LabValue.parse(name, entry.value, entry.unit, f"labs.{name}")


def patient_json_schema() -> dict[str, Any]:
    return PatientFile.model_json_schema()
