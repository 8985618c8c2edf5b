"""Load the versioned protocol definition (``reluth.yaml``) into typed, immutable objects.

Nothing here is a global: the composition roots (the CLI's ``command_trial()``, the web app
factory, the demo and replays, :meth:`reluth.core.trial.Trial.default`) load a file and pass
the :class:`Protocol` on; services read it from ``ctx.trial.protocol`` and engines take it as a
parameter, so an amended copy of the file changes every rule, text and page that uses it.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic import ValidationError as PydanticError

from reluth.errors import ReluthError, ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import invalid
from reluth.protocol.egfr import EQUATIONS
from reluth.units import canonical_unit, convert

DEFAULT_PATH = Path(__file__).with_name("reluth.yaml")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ArmAnalysis(_Frozen):
    """The arm in the analysis datasets: ``ARM`` (report label) and ``ARMCD``."""

    arm: str
    armcd: str


class Arm(_Frozen):
    code: str
    label: str
    treatment: str
    cycles: int
    first_cycle_number: int | None
    activity_gbq: Decimal | None
    cycle_interval_weeks: int | None
    analysis: ArmAnalysis


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


class FactorAnalysis(_Frozen):
    """The factor in the analysis datasets: its variable (ADSL, ADTTE), the variable's label,
    a description of the levels, a short label for tables and its source-CSV column."""

    variable: str = Field(pattern=r"^[A-Z][A-Z0-9]{0,7}$")  # SAS transport v5 names
    label: str = Field(max_length=40)
    description: str
    short_label: str
    source_column: str = Field(pattern=r"^[a-z][a-z0-9_]*$")


class StratificationFactor(_Frozen):
    code: str
    label: str
    #: the factor's part of the stratum code: ``DC`` + ``ge18`` in ``DCge18-PRrad-...``
    prefix: str = Field(pattern=r"^[A-Z]+$")
    levels: dict[str, str]
    labels: dict[str, str]
    analysis: FactorAnalysis
    threshold: Decimal | None = None
    unit: str | None = None

    @model_validator(mode="after")
    def _labelled_levels(self) -> StratificationFactor:
        if set(self.labels) != set(self.levels.values()):
            raise ValueError(
                f"labels of {self.code} must name exactly its levels "
                f"({', '.join(sorted(self.levels.values()))})"
            )
        return self


class CriteriaTexts(_Frozen):
    """The criteria's English templates by id, and their other languages' (``I1: {en: ..,
    fr: ..}`` in the YAML; a plain string is English only)."""

    inclusion: dict[str, str]
    exclusion: dict[str, str]
    #: language -> criterion id -> template (English is ``inclusion``/``exclusion``)
    translations: dict[str, dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _languages(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "translations" in data:
            return data
        data = dict(data)
        other: dict[str, dict[str, str]] = {}
        for kind in ("inclusion", "exclusion"):
            texts = data.get(kind)
            if not isinstance(texts, dict):
                continue
            english = {}
            for cid, text in texts.items():
                if isinstance(text, dict):
                    if "en" not in text:
                        raise ValueError(f"criteria.{kind}.{cid}: needs an 'en' text")
                    for lang, value in text.items():
                        if lang != "en":
                            other.setdefault(lang, {})[cid] = value
                    text = text["en"]
                english[cid] = text
            data[kind] = english
        data["translations"] = other
        return data

    @property
    def ids(self) -> tuple[str, ...]:
        return (*self.inclusion, *self.exclusion)

    def template(self, criterion: str, lang: str | None = None) -> str | None:
        """The criterion's template in ``lang`` (English when it has none in that language)."""
        if lang and lang != "en" and criterion in self.translations.get(lang, {}):
            return self.translations[lang][criterion]
        return {**self.inclusion, **self.exclusion}.get(criterion)


_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _number(value: Decimal | int) -> str:
    return str(value) if isinstance(value, int) else format(value.normalize(), "f")


def _grouped(value: Decimal) -> str:
    """A number as the protocol prints it: 80 000 (a space between thousands from 10 000)."""
    text = _number(value)
    whole, _, frac = text.partition(".")
    if len(whole.lstrip("-")) > 4:
        whole = f"{int(whole):,}".replace(",", " ")
    return whole + (f".{frac}" if frac else "")


def _joined(items: Sequence[object], last: str) -> str:
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


class _Thresholds(Mapping[str, Any]):
    """The eligibility thresholds by name, for the criteria's text templates."""

    def __init__(self, eligibility: BaseModel) -> None:
        self._e = eligibility

    def __getitem__(self, key: str) -> Any:
        if key == "criteria" or key not in type(self._e).model_fields:
            raise invalid(
                "text",
                "unknown_threshold",
                N_("{placeholder} names no eligibility threshold"),
                placeholder=f"{{{key}}}",
            )
        return getattr(self._e, key)

    def __iter__(self) -> Any:
        return iter(type(self._e).model_fields)

    def __len__(self) -> int:
        return len(type(self._e).model_fields)


class _ThresholdFormatter(string.Formatter):
    """``{name}``, ``{name:pct}``, ``{name:platelets /mm3}``, ``{name:or}``, ``{name:and}``
    (``{name:ou}``, ``{name:et}`` in French), ``{name:comma}`` (a decimal comma),
    ``{name:words}``, ``{name:Words}``, ``{name:next}`` (see the protocol YAML)."""

    def format_field(self, value: Any, format_spec: str) -> str:
        spec = format_spec.strip()
        if isinstance(value, tuple):
            if spec in ("or", "and", "ou", "et"):
                return _joined(value, spec)
            if not spec:
                return ", ".join(str(v) for v in value)
        elif isinstance(value, bool):
            pass
        elif isinstance(value, int | Decimal):
            if not spec:
                return _number(value)
            if spec == "pct":
                return _number(Decimal(value) * 100)
            if spec == "comma":  # a decimal comma (French)
                return _number(value).replace(".", ",")
            if spec == "next" and isinstance(value, int):
                return str(value + 1)
            if spec in ("words", "Words") and isinstance(value, int):
                word = _WORDS[value] if 0 <= value < len(_WORDS) else str(value)
                return word.capitalize() if spec == "Words" else word
            analyte, _, unit = spec.partition(" ")
            if unit:
                try:
                    unit_base = canonical_unit(analyte)
                except KeyError:
                    raise invalid(
                        "text",
                        "unknown_analyte",
                        N_("unknown analyte {analyte} in {placeholder}"),
                        analyte=repr(analyte),
                        placeholder=f"{{:{spec}}}",
                    ) from None
                return _grouped(convert(analyte, Decimal(value), unit_base, unit, "text"))
        raise invalid(
            "text",
            "format_does_not_apply",
            N_("format {spec} does not apply to {value}"),
            ("pct", "next", "words", "Words", "or", "and", "'<analyte> <unit>'"),
            spec=repr(spec),
            value=repr(value),
        )


_THRESHOLDS = _ThresholdFormatter()


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
    #: criteria evaluated again against the actual randomization date when randomizing
    time_bound_criteria: tuple[str, ...] = ()
    #: the criteria's texts by kind and id, with ``{threshold}`` placeholders (see the YAML)
    criteria: CriteriaTexts

    @model_validator(mode="after")
    def _texts_render(self) -> Eligibility:
        for kind, texts in (
            ("inclusion", self.criteria.inclusion),
            ("exclusion", self.criteria.exclusion),
        ):
            for cid in texts:
                for lang in ("en", *self.criteria.translations):
                    try:
                        self.text(cid, lang)
                    except ReluthError as exc:
                        where = f"criteria.{kind}.{cid}" + (f" ({lang})" if lang != "en" else "")
                        raise ValueError(f"{where}: {exc.message}") from None
        both = set(self.criteria.inclusion) & set(self.criteria.exclusion)
        if both:
            raise ValueError(f"criteria {', '.join(sorted(both))} are both inclusion and exclusion")
        if self.egfr_equation not in EQUATIONS:
            raise ValueError(
                f"egfr_equation {self.egfr_equation!r} is not implemented ({', '.join(EQUATIONS)})"
            )
        if self.egfr_race_factor:
            raise ValueError(
                "egfr_race_factor: the patient file records no race (NKF-ASN 2021: race-free "
                "estimation); only false is supported"
            )
        unknown = set(self.time_bound_criteria) - set(self.criteria.ids)
        if unknown:
            raise ValueError(
                f"time_bound_criteria names unknown criteria: {', '.join(sorted(unknown))}"
            )
        return self

    def kind_of(self, criterion: str) -> Literal["inclusion", "exclusion"]:
        if criterion in self.criteria.inclusion:
            return "inclusion"
        if criterion in self.criteria.exclusion:
            return "exclusion"
        raise invalid(
            "criterion",
            "unknown_criterion",
            N_("unknown criterion {value}"),
            tuple(self.criteria.ids),
            value=repr(criterion),
        )

    def text(self, criterion: str, lang: str | None = None) -> str:
        """The criterion's text with this protocol's thresholds filled in, in ``lang`` when the
        protocol words it in that language (English otherwise, and by default)."""
        template = self.criteria.template(criterion, lang)
        if template is None:
            self.kind_of(criterion)  # raises naming the known criteria
            raise AssertionError("unreachable")
        return _THRESHOLDS.vformat(template, (), _Thresholds(self))


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


class MinimumDuration(_Frozen):
    days: int = Field(ge=0)
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
    sd_minimum_duration: MinimumDuration
    treatment_cycles: TreatmentCycles
    follow_up_assessment: FollowUp
    laboratory: Periodic
    qol: QolSchedule
    days_per_month: Decimal


class ReferenceSafetyInformation(_Frozen):
    """The document (and its version) against which the sponsor judges whether a serious
    adverse reaction is expected (EU CT-3 section 7.2.3.2)."""

    document: str = Field(min_length=1, max_length=200)  # sae_assessments.rsi_document
    version: str = Field(min_length=1, max_length=60)  # sae_assessments.rsi_version
    assumption: bool = False


class Safety(_Frozen):
    """Serious adverse events go to pharmacovigilance within ``sae_reporting_hours`` of the site
    becoming aware; awareness times are the site's wall-clock time in ``site_timezone``; the
    suspect product and the reference safety information the sponsor's assessment names."""

    sae_reporting_hours: int = Field(gt=0, le=168)
    site_timezone: str
    suspect_product: str = Field(min_length=1)
    reference_safety_information: ReferenceSafetyInformation

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


class PregnancyTesting(_Frozen):
    """When a pregnancy test is required: before each cycle, for a woman of childbearing
    potential, a negative test no more than ``window_days_before_cycle`` days before the cycle
    (the cycle's day included). Source: CTFG "Recommendations related to contraception and
    pregnancy testing in clinical trials" (2020) §4; the Lutathera SmPC §4.6 (pregnancy to be
    excluded before treatment)."""

    required_before_each_cycle: bool
    window_days_before_cycle: int = Field(ge=0, le=31)


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
    pregnancy_testing: PregnancyTesting
    #: per-instance memo of derived tables (the visit schedules), never part of the data
    _memo: dict[Any, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Protocol:
        codes = [a.code for a in self.arms]
        if len(set(codes)) != len(codes) or len(codes) < 2:
            raise ValueError("arms: at least two arms with distinct codes")
        if set(self.allocation_ratio) != set(codes) or min(self.allocation_ratio.values()) < 1:
            raise ValueError(
                f"allocation_ratio: a positive weight for each arm ({', '.join(codes)})"
            )
        for what in ("arm", "armcd"):
            values = [getattr(a.analysis, what) for a in self.arms]
            if len(set(values)) != len(values):
                raise ValueError(f"arms: analysis.{what} must differ between arms")
        prefixes = [f.prefix for f in self.stratification]
        variables = [f.analysis.variable for f in self.stratification]
        for name, values in (("prefix", prefixes), ("analysis.variable", variables)):
            if len(set(values)) != len(values):
                raise ValueError(f"stratification: {name} must differ between factors")
        return self

    def __eq__(self, other: object) -> bool:
        """Equal protocols hold the same data, whatever either has memoized."""
        if not isinstance(other, Protocol):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # a memo and dict fields: not hashable

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Protocol:
        """A copy (an amended protocol with ``update``) with its own, empty memo."""
        copy = super().model_copy(update=update, deep=deep)
        copy._memo = {}
        return copy

    def memo(self, key: Any, make: Any) -> Any:
        """``make()`` computed once for this protocol instance (it is immutable)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    @property
    def allocation(self) -> str:
        """The allocation ratio as the protocol states it, arms in order: ``1:1``."""
        return ":".join(str(self.allocation_ratio[a.code]) for a in self.arms)

    @property
    def label(self) -> str:
        """``RELUTH v1.0``: what every stored record keeps as its protocol version."""
        return f"{self.id} v{self.version}"

    def arm(self, code: str) -> Arm:
        for arm in self.arms:
            if arm.code == code:
                return arm
        raise invalid(
            "arm", "unknown_arm", N_("unknown arm {value}"), self.arm_codes, value=repr(code)
        )

    @property
    def arm_codes(self) -> tuple[str, ...]:
        return tuple(a.code for a in self.arms)

    @property
    def pre_randomization_cycles(self) -> tuple[int, ...]:
        """Cycle numbers of the second PRRT, given to every patient before randomization."""
        return tuple(range(1, self.second_prrt.cycles_before_randomization + 1))

    def arm_cycles(self, code: str) -> tuple[int, ...]:
        """Cycle numbers given after randomization in arm ``code`` (none in surveillance)."""
        arm = self.arm(code)
        if not arm.cycles or arm.first_cycle_number is None:
            return ()
        return tuple(range(arm.first_cycle_number, arm.first_cycle_number + arm.cycles))

    @property
    def all_cycles(self) -> tuple[int, ...]:
        """Every cycle number the trial may give (second PRRT, then any arm's cycles)."""
        numbers = set(self.pre_randomization_cycles)
        for arm in self.arms:
            numbers.update(self.arm_cycles(arm.code))
        return tuple(sorted(numbers))

    def factor(self, code: str) -> StratificationFactor:
        for f in self.stratification:
            if f.code == code:
                return f
        raise KeyError(code)

    @property
    def factor_codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.stratification)

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


#: libyaml's safe loader when PyYAML was built with it (the same safe constructors, parsed in C:
#: a few times faster on the protocol file, which every command reads), else the Python one.
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def _load_cached(path: str) -> Protocol:
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except FileNotFoundError:
        raise invalid(
            str(path),
            "file_not_found",
            N_("protocol file not found"),
            N_("a YAML protocol definition"),
        ) from None
    except yaml.YAMLError as exc:
        raise invalid(
            str(path), "malformed_yaml", N_("malformed YAML: {error}"), ("YAML",), error=str(exc)
        ) from None
    return parse_protocol(data, source=path)


def load_protocol(path: str | Path | None = None) -> Protocol:
    """The protocol definition; the shipped ReLUTH one unless ``path`` names another file."""
    return _load_cached(str(path or DEFAULT_PATH))
