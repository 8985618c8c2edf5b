"""Load the versioned protocol definition (``reluth.yaml``) into typed, immutable objects."""

from __future__ import annotations

import functools
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticError

from reluth.errors import ValidationError

DEFAULT_PATH = Path(__file__).with_name("reluth.yaml")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Arm(_Frozen):
    code: str
    label: str
    treatment: str
    cycles: int
    first_cycle_number: int | None
    activity_gbq: Decimal | None
    cycle_interval_weeks: int | None


class SampleSize(_Frozen):
    randomized: int
    per_arm: int
    included: int
    dcr_control: Decimal
    dcr_experimental: Decimal
    alpha_two_sided: Decimal
    power: Decimal
    non_evaluable_counts_as_failure: bool


class SecondPrrt(_Frozen):
    cycles_before_randomization: int
    activity_gbq: Decimal
    cycle_interval_weeks: int


class StratificationFactor(_Frozen):
    code: str
    label: str
    levels: dict[str, str]
    labels: dict[str, str]
    threshold: Decimal | None = None
    unit: str | None = None


class Eligibility(_Frozen):
    age_min_years: int
    age_max_plausible_years: int
    ecog_max: int
    life_expectancy_min_months: int
    first_prrt_cycles: int
    first_prrt_disease_control_min_months: Decimal
    first_prrt_response_accepted: tuple[str, ...]
    histology_grades_accepted: tuple[str, ...]
    intestinal_sites: tuple[str, ...]
    sstr_imaging_max_months_before_randomization: int
    sstr_positive_fraction_min: Decimal
    measurable_lesion_min_diameter_mm: Decimal
    lesions_min_count: int
    hemoglobin_min_exclusive_g_dl: Decimal
    neutrophils_min_10e9_l: Decimal
    platelets_min_10e9_l: Decimal
    egfr_min_ml_min_1_73m2: Decimal
    egfr_equation: str
    egfr_race_factor: bool
    transaminases_max_x_uln: Decimal
    transaminases_max_x_uln_liver_metastases: Decimal
    bilirubin_max_x_uln: Decimal
    ebrt_marrow_max_fraction: Decimal
    brain_metastases_stable_min_weeks: int
    other_cancer_lookback_years: int
    other_cancer_exceptions: tuple[str, ...]
    unresolved_ae_max_grade: int
    unresolved_ae_exceptions: tuple[str, ...]
    second_prrt_cycles_before_randomization: int


class Periodic(_Frozen):
    interval_weeks: int
    until_week: int
    window_days: int
    assumption: bool = False


class Landmark(_Frozen):
    week: int
    window_days: int
    assumption: bool = False
    note: str = ""


class TreatmentCycles(_Frozen):
    first_cycle_day: int
    first_cycle_window_days: tuple[int, int]
    interval_weeks: int
    window_days: int
    assumption: bool = False


class FollowUp(_Frozen):
    interval_weeks: int
    until_month: int
    then_interval_months: int
    window_days: int
    assumption: bool = False


class QolSchedule(_Frozen):
    weeks: tuple[int, ...]
    then_with_follow_up: bool
    window_days: int
    assumption: bool = False


class Schedule(_Frozen):
    primary_endpoint_month: int
    follow_up_months: int
    tumour_assessment: Periodic
    landmark_month6: Landmark
    treatment_cycles: TreatmentCycles
    follow_up_assessment: FollowUp
    laboratory: Periodic
    qol: QolSchedule
    days_per_month: Decimal


class Safety(_Frozen):
    """Serious adverse events go to pharmacovigilance within ``sae_reporting_hours`` of the site
    becoming aware; awareness times are the site's wall-clock time in ``site_timezone``."""

    sae_reporting_hours: int = Field(gt=0, le=168)
    site_timezone: str

    @field_validator("site_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. Europe/Paris)"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.site_timezone)


class Protocol(_Frozen):
    id: str
    title: str
    version: str
    version_note: str
    registration: str
    sponsor: str
    centres_planned: int
    arms: tuple[Arm, ...]
    allocation_ratio: dict[str, int]
    sample_size: SampleSize
    second_prrt: SecondPrrt
    stratification: tuple[StratificationFactor, ...]
    eligibility: Eligibility
    schedule: Schedule
    safety: Safety

    @property
    def label(self) -> str:
        """``RELUTH v1.0``: what every stored record keeps as its protocol version."""
        return f"{self.id} v{self.version}"

    def arm(self, code: str) -> Arm:
        for arm in self.arms:
            if arm.code == code:
                return arm
        raise ValidationError("arm", f"unknown arm {code!r}", ", ".join(self.arm_codes))

    @property
    def arm_codes(self) -> tuple[str, ...]:
        return tuple(a.code for a in self.arms)

    def factor(self, code: str) -> StratificationFactor:
        for f in self.stratification:
            if f.code == code:
                return f
        raise KeyError(code)

    def assumptions(self) -> list[str]:
        """Dotted paths of schedule entries that are assumptions, not published values."""
        out = []
        for name in type(self.schedule).model_fields:
            value = getattr(self.schedule, name)
            if getattr(value, "assumption", False):
                out.append(f"schedule.{name}")
        return out


def parse_protocol(data: Any, source: str = "protocol") -> Protocol:
    try:
        return Protocol.model_validate(data)
    except PydanticError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ValidationError(f"{source}: {loc}", first["msg"]) from None


@functools.cache
def _load_cached(path: str) -> Protocol:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(
            path, "protocol file not found", "a YAML protocol definition"
        ) from None
    except yaml.YAMLError as exc:
        raise ValidationError(path, f"malformed YAML: {exc}", "YAML") from None
    return parse_protocol(data, source=path)


def load_protocol(path: str | Path | None = None) -> Protocol:
    """The protocol definition; the shipped ReLUTH one unless ``path`` names another file."""
    return _load_cached(str(path or DEFAULT_PATH))
