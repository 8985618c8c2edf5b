"""A seeded synthetic ReLUTH cohort, as pure data (no database, no clock).

22 centres open over the first 6 months and include patients for 3 years. Each screened patient
comes with the eligibility patient file (the shape of ``reluth.protocol.patient``) at inclusion
and, for those who reach the pre-randomization gate after two cycles of second PRRT, a second file
at that gate. Screen failures are of two kinds: not eligible at inclusion, and failures at the
gate (radiological progression during the two retreatment cycles, or another criterion no longer
met). Everything downstream — eligibility service, randomization service, eCRF, central review —
consumes this data; nothing here writes anywhere.

**Arms are not decided here.** The randomization service allocates them. So every randomized
patient carries *potential outcomes* for both arms (``outcomes["experimental"]`` and
``outcomes["control"]`` with ReLUTH's arm codes), generated with common random numbers (a patient
in disease control under control is also in disease control under the experimental arm). The caller picks the outcome of
the arm the service allocated. ``simulated_arm`` is a stratified permuted-block allocation for use
without the service (tests, quick checks).

Outcome model (per arm, configurable): disease control at the month-6 (week-24) assessment with
probability ``dcr_*``; PFS piecewise exponential — a constant hazard up to the week-24 assessment
(set by the DCR) and, after it, the control hazard giving the configured median and the
experimental hazard × ``pfs_hazard_ratio``. With ``pfs_hazard_ratio=None`` (default) the hazard
ratio is the one implied by the DCRs, ln(dcr_e)/ln(dcr_c), and hazards are proportional
throughout. Tumour measurements (RECIST input shape of ``reluth.response.recist``) are built so
the time-point responses follow that truth; laboratory results (CTCAE input shape) and QoL item
answers (QLQ-C30 items 1–30, GI.NET21 items 31–51) follow treatment and progression.

Everything the trial defines — the arms and their codes, the cycle numbers, the schedule in days,
the sample size and the thresholds the screen failures fall short of — comes from the protocol
in :class:`CohortConfig` (:class:`CohortPlan`), never from a file read here.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from reluth.i18n import N_
from reluth.i18n.reasons import invalid
from reluth.protocol.definition import Protocol

Arm = str  # an arm code of the protocol
ScreenStatus = Literal["eligible", "not_eligible"]
SAMPLING_TIMES_H = (4.0, 24.0, 96.0, 168.0)


def _per_mm3(count_10e9_l: float) -> str:
    """A count in 10^9/L as the protocol prints it per mm3: 1500, 80 000."""
    n = round(count_10e9_l * 1000)
    return f"{n:,}".replace(",", " ") if n >= 10000 else str(n)


@dataclass(frozen=True)
class CohortPlan:
    """What the cohort takes from the protocol: the treated and the untreated arm, the cycle
    numbers, the schedule in days, and the thresholds the screen failures fall short of."""

    experimental: Arm  # the arm that gives cycles after randomization
    control: Arm  # the arm that gives none
    arm_cycles: tuple[int, ...]  # cycle numbers of the experimental arm (3, 4)
    pre_cycles: tuple[int, ...]  # second-PRRT cycle numbers, before randomization (1, 2)
    first_prrt_cycles: int
    days_per_month: float
    landmark_day: int  # week 24
    landmark_window: tuple[int, int]  # day 140 to day 196
    assessment_days: tuple[int, ...]  # to the landmark: 56, 112, 168
    follow_up_interval_days: int  # 12 weeks
    late_interval_days: int  # 6 months
    month_24_day: int
    max_follow_up_days: int  # 60 months
    lab_days: tuple[int, ...]  # every 4 weeks to week 24
    qol_days: tuple[int, ...]  # weeks 0, 8, 16, 24
    cycle_interval_days: int  # 8 weeks
    activity_mbq: float
    centres: int
    included: int
    dcr_control: float
    dcr_experimental: float
    neutrophils_min: float  # 10^9/L
    platelets_min: float  # 10^9/L
    egfr_min: float
    disease_control_min_months: float
    transaminases_max_x_uln: float
    transaminases_max_x_uln_liver: float
    other_cancer_years: int

    @property
    def arms(self) -> tuple[Arm, Arm]:
        return (self.experimental, self.control)

    @classmethod
    def from_protocol(cls, protocol: Protocol) -> CohortPlan:
        treated = [a for a in protocol.arms if protocol.arm_cycles(a.code)]
        untreated = [a for a in protocol.arms if not protocol.arm_cycles(a.code)]
        if len(treated) != 1 or len(untreated) != 1:
            raise invalid(
                "arms",
                "synthetic_cohort_simulates_one_treated",
                N_("the synthetic cohort simulates one treated and one untreated arm"),
            )
        sch = protocol.schedule
        e = protocol.eligibility
        days_per_month = float(sch.days_per_month)
        tumour = sch.tumour_assessment
        follow = sch.follow_up_assessment
        labs = sch.laboratory
        landmark = 7 * sch.landmark_month6.week
        window = sch.landmark_month6.window_days
        return cls(
            experimental=treated[0].code,
            control=untreated[0].code,
            arm_cycles=protocol.arm_cycles(treated[0].code),
            pre_cycles=protocol.pre_randomization_cycles,
            first_prrt_cycles=e.first_prrt_cycles,
            days_per_month=days_per_month,
            landmark_day=landmark,
            landmark_window=(landmark - window, landmark + window),
            assessment_days=tuple(
                range(
                    7 * tumour.interval_weeks, 7 * tumour.until_week + 1, 7 * tumour.interval_weeks
                )
            ),
            follow_up_interval_days=7 * follow.interval_weeks,
            late_interval_days=round(follow.then_interval_months * days_per_month),
            month_24_day=round(follow.until_month * days_per_month),
            max_follow_up_days=round(sch.follow_up_months * days_per_month),
            lab_days=tuple(range(0, 7 * labs.until_week + 1, 7 * labs.interval_weeks)),
            qol_days=tuple(7 * w for w in sch.qol.weeks),
            cycle_interval_days=7 * sch.treatment_cycles.interval_weeks,
            activity_mbq=float(protocol.second_prrt.activity_gbq) * 1000,
            centres=protocol.centres_planned,
            included=protocol.sample_size.included,
            dcr_control=float(protocol.sample_size.dcr_control),
            dcr_experimental=float(protocol.sample_size.dcr_experimental),
            neutrophils_min=float(e.neutrophils_min_10e9_l),
            platelets_min=float(e.platelets_min_10e9_l),
            egfr_min=float(e.egfr_min_ml_min_1_73m2),
            disease_control_min_months=float(e.first_prrt_disease_control_min_months),
            transaminases_max_x_uln=float(e.transaminases_max_x_uln),
            transaminases_max_x_uln_liver=float(e.transaminases_max_x_uln_liver_metastases),
            other_cancer_years=e.other_cancer_lookback_years,
        )

    @property
    def not_included_reasons(self) -> tuple[str, ...]:
        """The screen failures at inclusion, each just past one protocol threshold."""
        return (
            "pancreatic primary",
            f"disease control after first PRRT < {self.disease_control_min_months:g} months",
            f"neutrophils < {_per_mm3(self.neutrophils_min)}/mm3",
            f"ALT > {self.transaminases_max_x_uln_liver:g} x ULN",
            f"other cancer within {self.other_cancer_years} years",
        )

    @property
    def gate_failures(self) -> tuple[str, ...]:
        """The failures at the pre-randomization gate other than progression."""
        n = len(self.pre_cycles)
        return (
            f"platelets < {_per_mm3(self.platelets_min)}/mm3 after {_count_words(n)} cycles",
            f"eGFR < {self.egfr_min:g} after {_count_words(n)} cycles",
            "ECOG 3",
        )


def _count_words(n: int) -> str:
    words = ("zero", "one", "two", "three", "four", "five", "six")
    return words[n] if n < len(words) else str(n)


@dataclass(frozen=True)
class CohortConfig:
    #: the trial simulated (arms, cycles, schedule, sample size, thresholds)
    protocol: Protocol = field(repr=False)
    seed: int = 2021
    start_date: dt.date = dt.date(2021, 10, 1)  # recruitment began in October 2021 (protocol)
    n_centres: int | None = None  # None: the protocol's (22)
    centre_opening_months: float = 6.0
    accrual_months: float = 36.0
    n_included: int | None = None  # None: the protocol's (176)
    n_not_included: int = 12  # screened but not eligible at inclusion
    p_progression_during_retreatment: float = 0.12
    p_other_failure_before_randomization: float = 0.05
    dcr_control: float | None = None  # None: the protocol's (0.65)
    dcr_experimental: float | None = None  # None: the protocol's (0.85)
    pfs_median_control_months: float = 15.0
    #: Hazard ratio after the week-24 assessment; None = implied by the DCRs (proportional).
    pfs_hazard_ratio: float | None = None
    #: Median survival after progression, and death hazard before progression (per month).
    post_progression_survival_months: float = 30.0
    pre_progression_death_per_month: float = 0.002
    followup_months_after_accrual: float = 24.0
    dropout_per_year: float = 0.04
    p_missed_assessment: float = 0.03
    p_missing_questionnaire: float = 0.08
    n_dosimetry: int = 50
    n_dosimetry_centres: int = 7
    #: False skips laboratory results and questionnaires (fast, for large statistical checks).
    clinical_detail: bool = True

    def __post_init__(self) -> None:
        plan = self.plan
        for name, value in (
            ("n_centres", plan.centres),
            ("n_included", plan.included),
            ("dcr_control", plan.dcr_control),
            ("dcr_experimental", plan.dcr_experimental),
        ):
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.seed < 0:
            raise invalid(
                "seed", "unaccepted_seed", N_("{seed}"), N_("an integer >= 0"), seed=str(self.seed)
            )
        for name in (
            "p_progression_during_retreatment",
            "p_other_failure_before_randomization",
            "p_missed_assessment",
            "p_missing_questionnaire",
        ):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise invalid(
                    name,
                    "unaccepted_name",
                    N_("{value}"),
                    N_("a probability in [0, 1)"),
                    value=repr(value),
                )
        for name in ("dcr_control", "dcr_experimental"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise invalid(
                    name,
                    "unaccepted_name",
                    N_("{value}"),
                    N_("a probability in (0, 1)"),
                    value=repr(value),
                )
        if self.dcr_c <= 0.5 and self.pfs_median_control_months * plan.days_per_month > 0:
            # S(week 24) = DCR must exceed 0.5 for the median to lie after the landmark.
            raise invalid(
                "dcr_control",
                "unaccepted_dcr_control",
                N_("{dcr_control}"),
                N_("> 0.5 (median after week 24)"),
                dcr_control=str(self.dcr_control),
            )
        if self.pfs_median_control_months * plan.days_per_month <= plan.landmark_day:
            months = plan.landmark_day / plan.days_per_month
            raise invalid(
                "pfs_median_control_months",
                "unaccepted_pfs_median_control_months",
                N_("{pfs_median_control_months}"),
                N_("> {months} (the month-6 landmark, day {landmark_day})"),
                pfs_median_control_months=str(self.pfs_median_control_months),
                months=format(months, ".2f"),
                landmark_day=str(plan.landmark_day),
            )
        if self.pfs_hazard_ratio is not None and not self.pfs_hazard_ratio > 0:
            raise invalid(
                "pfs_hazard_ratio",
                "unaccepted_pfs_hazard_ratio",
                N_("{pfs_hazard_ratio}"),
                N_("> 0"),
                pfs_hazard_ratio=str(self.pfs_hazard_ratio),
            )
        if self.included_n < 1 or self.centres_n < 1 or self.n_not_included < 0:
            raise invalid(
                "n_included",
                "empty_cohort",
                N_("empty cohort"),
                N_("n_included >= 1, n_centres >= 1"),
            )

    @functools.cached_property
    def plan(self) -> CohortPlan:
        return CohortPlan.from_protocol(self.protocol)

    # The protocol's values where the config left them open (set in __post_init__).
    @property
    def centres_n(self) -> int:
        assert self.n_centres is not None
        return self.n_centres

    @property
    def included_n(self) -> int:
        assert self.n_included is not None
        return self.n_included

    @property
    def dcr_c(self) -> float:
        assert self.dcr_control is not None
        return self.dcr_control

    @property
    def dcr_e(self) -> float:
        assert self.dcr_experimental is not None
        return self.dcr_experimental

    def settings(self) -> dict[str, Any]:
        """The configuration as data: every setting, and the protocol's label."""
        out: dict[str, Any] = {"protocol": self.protocol.label}
        for name in self.__dataclass_fields__:
            if name != "protocol":
                out[name] = getattr(self, name)
        return out

    @property
    def hazard_ratio(self) -> float:
        """Hazard ratio after the week-24 assessment (the implied one when not set)."""
        if self.pfs_hazard_ratio is not None:
            return self.pfs_hazard_ratio
        return math.log(self.dcr_e) / math.log(self.dcr_c)

    @property
    def data_cutoff(self) -> dt.date:
        months = self.accrual_months + self.followup_months_after_accrual
        return self.start_date + dt.timedelta(days=round(months * self.plan.days_per_month))


@dataclass(frozen=True)
class Centre:
    code: str  # "C07"
    name: str
    opening_date: dt.date
    dosimetry: bool  # takes part in the ancillary dosimetry study


@dataclass(frozen=True)
class Covariates:
    age: int
    sex: Literal["male", "female"]
    ecog: int
    disease_control_first_prrt_months: float
    radiological_progression: bool
    egfr_target: float  # the eGFR the creatinine was drawn for (mL/min/1.73 m²)
    creatinine_umol_l: int
    intercurrent_treatment: bool


@dataclass(frozen=True)
class VoiKinetics:
    """Mono-exponential washout of one volume of interest, with the sampled activities."""

    name: str  # "kidneys", "tumour_1", ...
    mass_g: float
    uptake_fraction: float  # of the administered activity, at t = 0 (extrapolated)
    effective_half_life_h: float
    activity_mbq: tuple[float, ...]  # at SAMPLING_TIMES_H, with measurement noise


@dataclass(frozen=True)
class DosimetryCycle:
    cycle: int  # the protocol's numbers: second PRRT (1-2), then the arm's cycles (3-4)
    injection_date: dt.date
    administered_activity_mbq: float
    sampling_times_h: tuple[float, ...]
    volumes: tuple[VoiKinetics, ...]
    blood_activity_kbq_per_ml: tuple[float, ...]


@dataclass(frozen=True)
class QolAssessment:
    date: dt.date
    day: int  # from randomization
    c30: dict[str, int]  # items "1".."30" (absent = missing answer)
    ginet21: dict[str, int]  # items "31".."51"


@dataclass(frozen=True)
class AdverseEventRecord:
    """A clinical adverse event as an investigator reports it (CTCAE v5.0 term and grade).

    Laboratory abnormalities are not repeated here: they come from grading ``labs``.
    """

    term: str
    grade: int
    onset_date: dt.date
    end_date: dt.date | None  # None: ongoing at the last contact
    serious: bool
    related_to_treatment: bool


@dataclass(frozen=True)
class ArmOutcome:
    arm: Arm
    disease_control_month6: bool  # what the RECIST engine must find (NE counts as failure)
    true_disease_control_month6: bool  # the tumour truth, before missed visits and dropouts
    true_progression_day: float
    progression_date: dt.date | None  # first assessment showing PD (observed)
    death_date: dt.date | None
    dropout_date: dt.date | None
    last_assessment_date: dt.date | None
    treatment_dates: tuple[dt.date, ...]  # the experimental arm's cycles (3 and 4)
    recist: dict[str, Any]  # input of reluth.response.recist.parse_patient
    labs: tuple[dict[str, Any], ...]  # CTCAE input results
    qol: tuple[QolAssessment, ...]
    missed_assessment_dates: tuple[dt.date, ...]
    dosimetry: tuple[DosimetryCycle, ...] = ()
    adverse_events: tuple[AdverseEventRecord, ...] = ()


@dataclass(frozen=True)
class SyntheticPatient:
    index: int
    patient_id: str
    centre: str
    screening_date: dt.date
    covariates: Covariates
    inclusion_file: dict[str, Any]
    intended_inclusion_status: ScreenStatus
    randomization_file: dict[str, Any] | None
    intended_randomization_status: ScreenStatus | None
    screen_failure_reason: str | None
    randomization_request_date: dt.date | None
    outcomes: dict[str, ArmOutcome] = field(default_factory=dict)
    dosimetry: tuple[DosimetryCycle, ...] = ()  # the second-PRRT cycles (1-2)
    simulated_arm: Arm | None = None

    @property
    def randomized(self) -> bool:
        return self.intended_randomization_status == "eligible"


@dataclass(frozen=True)
class SyntheticCohort:
    config: CohortConfig
    centres: tuple[Centre, ...]
    patients: tuple[SyntheticPatient, ...]
    data_cutoff: dt.date

    @property
    def included(self) -> tuple[SyntheticPatient, ...]:
        return tuple(p for p in self.patients if p.intended_inclusion_status == "eligible")

    @property
    def randomized(self) -> tuple[SyntheticPatient, ...]:
        return tuple(p for p in self.patients if p.randomized)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _days(day: dt.date, n: float | np.integer[Any]) -> dt.date:
    return day + dt.timedelta(days=round(float(n)))


def _creatinine_for_egfr(egfr: float, age: int, female: bool) -> int:
    """Creatinine (µmol/L, integer) whose MDRD-175 eGFR is close to ``egfr``."""
    factor = 175 * age**-0.203 * (0.742 if female else 1.0)
    scr_mg_dl = (egfr / factor) ** (-1 / 1.154)
    return max(30, round(scr_mg_dl * 88.4))


def _egfr(creatinine_umol_l: float, age: int, female: bool) -> float:
    return float(
        175 * (creatinine_umol_l / 88.4) ** -1.154 * age**-0.203 * (0.742 if female else 1.0)
    )


def _r1(x: float) -> float:
    return round(float(x), 1)


# ---------------------------------------------------------------------------------------------
# Centres and accrual
# ---------------------------------------------------------------------------------------------

_CITIES = (
    "Montpellier", "Paris Gustave Roussy", "Lyon", "Marseille", "Toulouse", "Bordeaux", "Lille",
    "Nantes", "Strasbourg", "Rennes", "Nancy", "Dijon", "Clermont-Ferrand", "Grenoble", "Nice",
    "Angers", "Tours", "Rouen", "Caen", "Reims", "Saint-Etienne", "Brest", "Limoges", "Amiens",
)  # fmt: skip


def _centres(config: CohortConfig, rng: np.random.Generator) -> tuple[Centre, ...]:
    n_centres = config.centres_n
    offsets = np.sort(
        rng.uniform(0, config.centre_opening_months * config.plan.days_per_month, n_centres)
    )
    offsets[0] = 0.0  # the coordinating centre opens on day 0
    dosimetry = set(
        rng.choice(n_centres, min(config.n_dosimetry_centres, n_centres), replace=False).tolist()
    )
    dosimetry.add(0)
    return tuple(
        Centre(
            code=f"C{i + 1:02d}",
            name=f"{_CITIES[i % len(_CITIES)]} (centre {i + 1})",
            opening_date=_days(config.start_date, offsets[i]),
            dosimetry=i in dosimetry,
        )
        for i in range(n_centres)
    )


def _arrivals(
    config: CohortConfig, centres: tuple[Centre, ...], n: int, rng: np.random.Generator
) -> list[tuple[dt.date, int]]:
    """Screening dates and centres: each centre recruits at its own rate from its opening."""
    end = config.start_date + dt.timedelta(
        days=round(config.accrual_months * config.plan.days_per_month)
    )
    rates = rng.gamma(2.0, 1.0, len(centres))
    open_days = np.array([(end - c.opening_date).days for c in centres], dtype=float)
    weights = rates * open_days
    which = rng.choice(len(centres), n, p=weights / weights.sum())
    out = []
    for c in which:
        day = rng.uniform(0, open_days[c] - 120)  # leave time for the two retreatment cycles
        out.append((_days(centres[c].opening_date, max(day, 0.0)), int(c)))
    out.sort()
    return out


# ---------------------------------------------------------------------------------------------
# Patient files (eligibility JSON shape)
# ---------------------------------------------------------------------------------------------

_LAB_UNITS = {
    # centre convention -> (hemoglobin unit, count unit, creatinine unit)
    "si": ("g/L", "10^9/L", "µmol/L"),
    "conventional": ("g/dL", "/mm3", "µmol/L"),
}


def _count(value_1e9_l: float, convention: str, platelets: bool = False) -> float:
    """A cell count as a centre reports it: /mm3 rounded to 10 (platelets to 1000), or 10^9/L."""
    if convention == "conventional":
        step = 1000 if platelets else 10
        return int(round(value_1e9_l * 1000 / step) * step)
    return round(value_1e9_l) if platelets else round(value_1e9_l, 2)


def _hb(value_g_dl: float, convention: str) -> float:
    return round(value_g_dl * 10) if convention == "si" else round(value_g_dl, 1)


_COUNTS = ("platelets", "neutrophils", "wbc", "lymphocytes")


def _lab_unit(test: str, convention: str) -> str:
    hb_unit, count_unit, _ = _LAB_UNITS[convention]
    if test == "hemoglobin":
        return hb_unit
    if test in _COUNTS:
        return count_unit
    return "µmol/L" if test in ("creatinine", "bilirubin") else "U/L"


def _reported(test: str, value: float, convention: str) -> float:
    """A value (Hb g/dL, counts 10^9/L, others in their unit) as the centre reports it."""
    if test == "hemoglobin":
        return _hb(value, convention)
    if test in _COUNTS:
        return _count(value, convention, platelets=test == "platelets")
    return _r1(value) if test == "bilirubin" else round(value)


def _covariates(rng: np.random.Generator) -> Covariates:
    age = int(np.clip(round(rng.normal(66, 9)), 38, 86))
    sex: Literal["male", "female"] = "female" if rng.random() < 0.48 else "male"
    ecog = int(rng.choice([0, 1, 2], p=[0.45, 0.45, 0.10]))
    dc = float(np.clip(12 + rng.lognormal(math.log(12), 0.6), 12, 96))
    egfr = float(np.clip(rng.normal(74, 17), 44, 125))
    return Covariates(
        age=age,
        sex=sex,
        ecog=ecog,
        disease_control_first_prrt_months=round(dc, 1),
        radiological_progression=bool(rng.random() < 0.72),
        egfr_target=egfr,
        creatinine_umol_l=_creatinine_for_egfr(egfr, age, sex == "female"),
        intercurrent_treatment=bool(rng.random() < 0.3),
    )


@dataclass(frozen=True)
class _Lesion:
    id: str
    organ: str
    nodal: bool
    kind: Literal["target", "non_target"]
    size_mm: float | None  # long axis (non-nodal) or short axis (nodal); None: not measurable


def _baseline_lesions(rng: np.random.Generator) -> tuple[_Lesion, ...]:
    """2–5 targets (<= 2 per organ, all nodes one organ) and 1–3 non-targets."""
    targets: list[_Lesion] = []
    for _ in range(int(rng.integers(1, 3))):
        targets.append(
            _Lesion(f"T{len(targets) + 1}", "liver", False, "target", float(rng.uniform(14, 65)))
        )
    for _ in range(int(rng.integers(0, 3))):
        targets.append(
            _Lesion(
                f"T{len(targets) + 1}", "lymph node", True, "target", float(rng.uniform(16, 32))
            )
        )
    if rng.random() < 0.5:
        targets.append(
            _Lesion(
                f"T{len(targets) + 1}", "mesentery", False, "target", float(rng.uniform(15, 45))
            )
        )
    if len(targets) < 2:
        targets.append(
            _Lesion(
                f"T{len(targets) + 1}", "mesentery", False, "target", float(rng.uniform(15, 40))
            )
        )
    targets = targets[:5]
    non_targets: list[_Lesion] = [_Lesion("N1", "liver", False, "non_target", None)]
    if rng.random() < 0.5:
        non_targets.append(_Lesion("N2", "peritoneum", False, "non_target", None))
    if rng.random() < 0.4:
        non_targets.append(
            _Lesion(
                f"N{len(non_targets) + 1}",
                "lymph node",
                True,
                "non_target",
                float(rng.uniform(10.5, 14)),
            )
        )
    if rng.random() < 0.25:
        non_targets.append(_Lesion(f"N{len(non_targets) + 1}", "bone", False, "non_target", None))
    return tuple(targets + non_targets)


def _eligibility_lesions(lesions: tuple[_Lesion, ...], scale: float) -> list[dict[str, Any]]:
    out = []
    for les in lesions:
        entry: dict[str, Any] = {"id": les.id, "organ": les.organ, "nodal": les.nodal}
        if les.size_mm is not None:
            size = round(les.size_mm * scale) if les.kind == "target" else round(les.size_mm)
            if les.kind == "target":
                size = max(size, 15 if les.nodal else 10)
            entry["short_axis_mm" if les.nodal else "longest_diameter_mm"] = size
        out.append(entry)
    return out


def _patient_file(
    patient_id: str,
    cov: Covariates,
    assessment_date: dt.date,
    *,
    convention: str,
    hb_g_dl: float,
    neutrophils: float,
    platelets: float,
    creatinine: int,
    alt_x_uln: float,
    lesions: list[dict[str, Any]],
    sstr_date: dt.date,
    first_prrt: dict[str, Any],
    progression_date: dt.date,
    second_prrt: dict[str, Any],
    consent_date: dt.date,
    primary_site: str = "ileum",
    ecog: int | None = None,
    other_cancers: list[dict[str, Any]] | None = None,
    planned_randomization_date: dt.date | None = None,
) -> dict[str, Any]:
    hb_unit, count_unit, creat_unit = _LAB_UNITS[convention]
    data: dict[str, Any] = {
        "patient_id": patient_id,
        "assessment_date": assessment_date.isoformat(),
        "age": cov.age,
        "sex": cov.sex,
        "ecog": cov.ecog if ecog is None else ecog,
        "life_expectancy_months": 24,
        "histology": {
            "primary_site": primary_site,
            "grade": "G2" if cov.disease_control_first_prrt_months < 24 else "G1",
            "differentiation": "well",
            "tumour_type": "NET",
        },
        "labs": {
            "hemoglobin": {"value": _hb(hb_g_dl, convention), "unit": hb_unit},
            "neutrophils": {"value": _count(neutrophils, convention), "unit": count_unit},
            "platelets": {"value": _count(platelets, convention, True), "unit": count_unit},
            "creatinine": {"value": creatinine, "unit": creat_unit},
            "alt": {"value": round(40 * alt_x_uln), "unit": "U/L", "uln": 40},
            "ast": {"value": round(38 * alt_x_uln * 0.9), "unit": "U/L", "uln": 40},
            "bilirubin": {"value": 9, "unit": "µmol/L", "uln": 17},
        },
        "first_prrt": first_prrt,
        "progression": {
            "date": progression_date.isoformat(),
            "radiological": cov.radiological_progression,
            "clinical": not cov.radiological_progression,
            "biological": True,
        },
        "second_prrt": second_prrt,
        "sstr_imaging": {
            "date": sstr_date.isoformat(),
            "modality": "68Ga-DOTATOC PET",
            "positive_lesion_fraction": 0.95,
        },
        "lesions": lesions,
        "unresolved_adverse_events": [{"term": "Fatigue", "grade": 1}],
        "history": {
            "intercurrent_treatment": cov.intercurrent_treatment,
            "ebrt_marrow_fraction": 0,
            "nephrotic_syndrome": False,
            "uncontrolled_concomitant_disease": False,
            "brain_metastases": {"present": False},
            "other_cancers": other_cancers or [],
        },
        "consent": {"signed": True, "date": consent_date.isoformat()},
    }
    if planned_randomization_date is not None:
        data["planned_randomization_date"] = planned_randomization_date.isoformat()
    return data


# ---------------------------------------------------------------------------------------------
# Outcomes under one arm
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shared:
    """Per-patient random numbers shared by both arms (common random numbers)."""

    u_dc: float
    u_time: float
    u_death_pre: float
    u_pps: float
    u_dropout: float
    pd_mode: str
    responder_u: float
    jitter: tuple[int, ...]
    missed: tuple[bool, ...]
    marrow_sensitivity: float
    qol_baseline: float


def _assessment_days(plan: CohortPlan, total_days: int, jitter: tuple[int, ...]) -> list[int]:
    days = list(plan.assessment_days)
    d = plan.landmark_day
    while d < total_days:
        d += plan.follow_up_interval_days if d < plan.month_24_day else plan.late_interval_days
        days.append(d)
    return [
        day + jitter[i % len(jitter)]
        for i, day in enumerate(days)
        if day <= plan.max_follow_up_days
    ]


def _progression_day(
    config: CohortConfig, arm: Arm, sh: _Shared, landmark_day: int
) -> tuple[bool, float]:
    plan = config.plan
    dcr = config.dcr_e if arm == plan.experimental else config.dcr_c
    controlled = sh.u_dc < dcr
    median_day = config.pfs_median_control_months * plan.days_per_month
    # Control hazard after the landmark so that S(median) = 1/2 given S(landmark) = dcr_control.
    lam2 = math.log(2 * config.dcr_c) / (median_day - plan.landmark_day)
    if arm == plan.experimental:
        lam2 *= config.hazard_ratio
    if controlled:
        return True, landmark_day - math.log(1 - sh.u_time) / lam2
    # Truncated exponential on (0, landmark] with the phase-1 hazard -ln(dcr)/landmark.
    day = landmark_day * math.log(1 - sh.u_time * (1 - dcr)) / math.log(dcr)
    return False, max(1.0, min(day, landmark_day - 1.0))


def _tumour_course(
    lesions: tuple[_Lesion, ...],
    baseline_sizes: dict[str, float],
    n_before_pd: int,
    pd_mode: str | None,
    responder: bool,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Lesion observations for ``n_before_pd`` non-PD assessments, then one PD assessment."""
    targets = [le for le in lesions if le.kind == "target"]
    base_sum = sum(round(baseline_sizes[t.id]) for t in targets)
    nadir = base_sum
    factor = 1.0
    out: list[dict[str, Any]] = []
    for k in range(n_before_pd + (1 if pd_mode else 0)):
        is_pd = pd_mode is not None and k == n_before_pd
        if responder and not is_pd:
            factor = float(rng.uniform(0.45, 0.62)) if k >= 1 else float(rng.uniform(0.7, 0.85))
        elif not is_pd:
            factor = float(np.clip(factor + rng.normal(-0.01, 0.04), 0.74, 1.12))
        sizes = {
            t.id: max(1, round(baseline_sizes[t.id] * factor * rng.uniform(0.97, 1.03)))
            for t in targets
        }
        # Guarantee no PD before the PD assessment: stay below 1.2 x nadir or within +4 mm.
        total = sum(sizes.values())
        if not is_pd and total * 10 >= nadir * 12 and total - nadir >= 5:
            scale = nadir * 1.1 / total
            sizes = {k2: max(1, math.floor(v * scale)) for k2, v in sizes.items()}
            total = sum(sizes.values())
        new_lesions = "no"
        non_target_status: dict[str, str] = {}
        if is_pd:
            if pd_mode == "target":
                need = max(math.ceil(nadir * 1.25), nadir + 6)
                biggest = max(sizes, key=lambda key: sizes[key])
                grow = max(0, need - sum(sizes.values()))
                sizes[biggest] += grow + int(rng.integers(0, 4))
            elif pd_mode == "new":
                new_lesions = "yes"
            else:
                nt = next(le for le in lesions if le.kind == "non_target")
                non_target_status[nt.id] = "unequivocal_progression"
        obs: list[dict[str, Any]] = []
        for le in lesions:
            if le.kind == "target":
                obs.append({"id": le.id, "diameter_mm": sizes[le.id]})
            elif le.id in non_target_status:
                obs.append({"id": le.id, "status": non_target_status[le.id]})
            elif le.size_mm is not None:
                obs.append(
                    {
                        "id": le.id,
                        "diameter_mm": _r1(max(10.0, le.size_mm * rng.uniform(0.95, 1.05))),
                    }
                )
            else:
                obs.append({"id": le.id, "status": "present"})
        out.append({"new_lesions": new_lesions, "lesions": obs})
        if not is_pd:
            nadir = min(nadir, sum(sizes.values()))
    return out


def _labs(
    plan: CohortPlan,
    randomization: dt.date,
    days: list[int],
    arm: Arm,
    cov: Covariates,
    convention: str,
    sh: _Shared,
    progression_day: float,
    rng: np.random.Generator,
) -> tuple[dict[str, Any], ...]:
    female = cov.sex == "female"
    base = {
        "hemoglobin": rng.normal(12.4 if female else 13.4, 1.0),
        "platelets": rng.normal(190, 45),
        "neutrophils": rng.normal(3.6, 0.9),
        "wbc": rng.normal(5.8, 1.2),
        "lymphocytes": rng.normal(1.05, 0.3),
        "creatinine": float(cov.creatinine_umol_l),
        "alt": rng.normal(26, 7),
        "ast": rng.normal(28, 7),
        "bilirubin": rng.normal(9, 3),
        "alp": rng.normal(95, 25),
    }
    base = {k: max(v, 0.3 if k == "lymphocytes" else 1.0) for k, v in base.items()}
    limits: dict[str, tuple[float | None, float]] = {
        "hemoglobin": (12.0 if female else 13.0, 16.0 if female else 17.5),
        "platelets": (150.0, 400.0),
        "neutrophils": (1.8, 7.5),
        "wbc": (4.0, 10.0),
        "lymphocytes": (1.0, 4.0),
        "creatinine": (45.0, 90.0 if female else 110.0),
        "alt": (None, 40.0),
        "ast": (None, 40.0),
        "bilirubin": (None, 17.0),
        "alp": (None, 120.0),
    }

    def depression(day: int, depth: float, nadir_after: int, recovery: int) -> float:
        """Multiplicative drop after each randomized cycle (days 0 and 56), experimental only."""
        if arm != plan.experimental:
            return 1.0
        f = 1.0
        for k in range(len(plan.arm_cycles)):
            cycle_day = k * plan.cycle_interval_days
            t = day - cycle_day
            if t <= 0:
                continue
            shape = t / nadir_after * math.exp(1 - t / nadir_after)  # peaks at nadir_after
            f *= 1 - depth * shape * math.exp(-max(0, t - nadir_after) / recovery)
        return max(f, 0.05)

    s = sh.marrow_sensitivity
    results: list[dict[str, Any]] = []
    for day in days:
        date = _days(randomization, day)
        progressed = day >= progression_day
        values = {
            "hemoglobin": base["hemoglobin"] * depression(day, 0.10 * s, 35, 60)
            - (0.4 if progressed else 0),
            "platelets": base["platelets"] * depression(day, 0.35 * s, 28, 30),
            "neutrophils": base["neutrophils"] * depression(day, 0.25 * s, 35, 30),
            "wbc": base["wbc"] * depression(day, 0.25 * s, 35, 30),
            "lymphocytes": base["lymphocytes"] * depression(day, 0.35 * s, 28, 120),
            "creatinine": base["creatinine"]
            * (1 + (0.00014 if arm == plan.experimental else 0.00007) * day),
            "alt": base["alt"] * (1.6 if progressed else 1.0),
            "ast": base["ast"] * (1.5 if progressed else 1.0),
            "bilirubin": base["bilirubin"],
            "alp": base["alp"] * (1.8 if progressed else 1.0),
        }
        for test, value in values.items():
            noisy = max(value * rng.normal(1, 0.05), 0.01)
            lln, uln = limits[test]
            unit = _lab_unit(test, convention)
            entry: dict[str, Any] = {
                "test": test,
                "value": _reported(test, noisy, convention),
                "unit": unit,
                "uln": _reported(test, uln, convention),
                "baseline": _reported(test, base[test], convention),
                "date": date.isoformat(),
            }
            if lln is not None:
                entry["lln"] = _reported(test, lln, convention)
            results.append(entry)
    return tuple(results)


def _qol(
    randomization: dt.date,
    days: list[int],
    arm: Arm,
    sh: _Shared,
    progression_day: float,
    config: CohortConfig,
    rng: np.random.Generator,
) -> tuple[QolAssessment, ...]:
    out = []
    for day in days:
        if day > 0 and rng.random() < config.p_missing_questionnaire:
            continue
        burden = sh.qol_baseline
        if arm == config.plan.experimental and 0 < day <= 112:
            burden += 0.06  # transient fatigue/nausea around the cycles
        if day >= progression_day:
            burden += 0.15 + 0.0002 * (day - progression_day)
        burden = min(max(burden, 0.02), 0.95)
        # Items 1-28 and 31-51: 1-4, higher = more problems; items 29-30: 1-7, higher = better.
        noise = rng.normal(0, 0.08, 51)
        p_items = np.clip(
            np.concatenate(
                [burden + noise[:28], 1 - burden + noise[28:30], 0.8 * burden + noise[30:]]
            ),
            0.0,
            1.0,
        )
        n_steps = np.array([3] * 28 + [6, 6] + [3] * 21)
        answers = 1 + rng.binomial(n_steps, p_items)
        answered = rng.random(51) >= 0.02  # a few skipped items
        c30 = {str(i + 1): int(answers[i]) for i in range(30) if answered[i]}
        gi = {str(i + 1): int(answers[i]) for i in range(30, 51) if answered[i]}
        out.append(QolAssessment(_days(randomization, day), day, c30, gi))
    return tuple(out)


def _dosimetry_cycle(
    plan: CohortPlan, cycle: int, injection: dt.date, tumour_count: int, rng: np.random.Generator
) -> DosimetryCycle:
    activity = float(rng.normal(plan.activity_mbq, 120))  # 7.4 GBq per cycle
    volumes = []
    specs = [("kidneys", rng.normal(310, 45), rng.normal(0.015, 0.003), rng.normal(52, 9))]
    for k in range(tumour_count):
        specs.append(
            (
                f"tumour_{k + 1}",
                rng.lognormal(math.log(25), 0.7),
                rng.lognormal(math.log(0.004), 0.5),
                rng.normal(85, 15),
            )
        )
    for name, mass, frac, teff in specs:
        teff = float(max(teff, 20.0))
        frac = float(max(frac, 0.0005))
        true = [activity * frac * math.exp(-math.log(2) * t / teff) for t in SAMPLING_TIMES_H]
        noisy = tuple(round(a * float(rng.normal(1, 0.05)), 3) for a in true)
        volumes.append(
            VoiKinetics(name, round(float(mass), 1), round(frac, 5), round(teff, 1), noisy)
        )
    blood = tuple(
        round(
            activity * 1000 / 5000 * 0.2 * math.exp(-t / 20) * float(rng.normal(1, 0.05)) + 0.01, 4
        )
        for t in SAMPLING_TIMES_H
    )
    return DosimetryCycle(
        cycle, injection, round(activity, 1), SAMPLING_TIMES_H, tuple(volumes), blood
    )


def _arm_outcome(
    config: CohortConfig,
    arm: Arm,
    randomization: dt.date,
    baseline_date: dt.date,
    lesions: tuple[_Lesion, ...],
    baseline_sizes: dict[str, float],
    cov: Covariates,
    convention: str,
    sh: _Shared,
    cutoff: dt.date,
    dosimetry_tumours: int | None,
    rng: np.random.Generator,
) -> ArmOutcome:
    plan = config.plan
    total_days = (cutoff - randomization).days
    days = [d for d in _assessment_days(plan, total_days, sh.jitter) if d <= total_days]
    n_to_landmark = len(plan.assessment_days)
    landmark_day = days[n_to_landmark - 1] if len(days) >= n_to_landmark else plan.landmark_day
    controlled, prog_day = _progression_day(config, arm, sh, landmark_day)
    # Death: before progression (rare) or after it.
    pre_death = -math.log(1 - sh.u_death_pre) / (
        config.pre_progression_death_per_month / plan.days_per_month
    )
    pps = (
        -math.log(1 - sh.u_pps)
        * config.post_progression_survival_months
        * plan.days_per_month
        / math.log(2)
    )
    death_day = min(pre_death, prog_day + pps)
    dropout_day = (
        -math.log(1 - sh.u_dropout) / (config.dropout_per_year / 365.25)
        if config.dropout_per_year > 0
        else math.inf
    )
    end_day = min(death_day, dropout_day, total_days, plan.max_follow_up_days)
    done_days: list[int] = []
    missed: list[dt.date] = []
    pd_day: int | None = None
    for i, day in enumerate(days):
        if day > end_day:
            break
        if day >= prog_day:
            pd_day = day
            done_days.append(day)
            break
        if sh.missed[i % len(sh.missed)]:
            missed.append(_days(randomization, day))
            continue
        done_days.append(day)
    n_before = len(done_days) - (1 if pd_day is not None else 0)
    course = _tumour_course(
        lesions,
        baseline_sizes,
        n_before,
        sh.pd_mode if pd_day is not None else None,
        responder=sh.responder_u < (0.25 if arm == plan.experimental else 0.05),
        rng=rng,
    )
    followups = [
        {"date": _days(randomization, day).isoformat(), **obs}
        for day, obs in zip(done_days, course, strict=True)
    ]
    recist = {
        "randomization_date": randomization.isoformat(),
        "baseline": {
            "date": baseline_date.isoformat(),
            "lesions": [
                {
                    "id": le.id,
                    "organ": le.organ,
                    "kind": le.kind,
                    "nodal": le.nodal,
                    **(
                        {"diameter_mm": round(baseline_sizes[le.id])} if le.kind == "target" else {}
                    ),
                    **(
                        {"diameter_mm": _r1(le.size_mm)}
                        if le.kind == "non_target" and le.size_mm is not None
                        else {}
                    ),
                }
                for le in lesions
            ],
        },
        "followups": followups,
    }
    window_start, window_end = plan.landmark_window
    landmark_done = any(window_start <= d <= window_end for d in done_days)
    pd_before_window = pd_day is not None and pd_day < window_start
    intended = controlled and landmark_done and not pd_before_window
    if pd_day is not None and pd_day <= window_end and controlled:
        intended = False  # cannot happen by construction; kept explicit
    lab_days = [d for d in plan.lab_days if d <= end_day] + [
        d for d in done_days if d > plan.landmark_day
    ]
    qol_days = [d for d in plan.qol_days if d <= end_day] + [
        d for d in done_days if d > plan.landmark_day
    ]
    treatment: tuple[dt.date, ...] = ()
    if arm == plan.experimental:
        treatment = tuple(
            _days(randomization, int(rng.integers(1, 8)))
            if k == 0
            else _days(randomization, k * plan.cycle_interval_days + int(rng.integers(-3, 4)))
            for k in range(len(plan.arm_cycles))
        )
    dosimetry: tuple[DosimetryCycle, ...] = ()
    if arm == plan.experimental and dosimetry_tumours is not None:
        dosimetry = tuple(
            _dosimetry_cycle(plan, plan.arm_cycles[k], day, dosimetry_tumours, rng)
            for k, day in enumerate(treatment)
            if (day - randomization).days <= end_day
        )
    return ArmOutcome(
        arm=arm,
        disease_control_month6=intended,
        true_disease_control_month6=controlled,
        true_progression_day=round(prog_day, 2),
        progression_date=_days(randomization, pd_day) if pd_day is not None else None,
        death_date=_days(randomization, death_day) if death_day <= end_day else None,
        dropout_date=_days(randomization, dropout_day)
        if dropout_day < min(death_day, total_days)
        else None,
        last_assessment_date=_days(randomization, done_days[-1]) if done_days else None,
        treatment_dates=tuple(d for d in treatment if (d - randomization).days <= end_day),
        recist=recist,
        labs=_labs(plan, randomization, lab_days, arm, cov, convention, sh, prog_day, rng)
        if config.clinical_detail
        else (),
        qol=_qol(randomization, qol_days, arm, sh, prog_day, config, rng)
        if config.clinical_detail
        else (),
        missed_assessment_dates=tuple(missed),
        dosimetry=dosimetry,
        adverse_events=_adverse_events(randomization, treatment, prog_day, end_day, death_day, rng)
        if config.clinical_detail
        else (),
    )


# Per randomized cycle (experimental arm): (term, probability, P(grade 2 | event), duration days).
_CYCLE_EVENTS = (
    ("Nausea", 0.35, 0.25, 3),
    ("Vomiting", 0.10, 0.3, 2),
    ("Fatigue", 0.30, 0.3, 21),
    ("Abdominal pain", 0.10, 0.3, 7),
)
# After progression, either arm.
_DISEASE_EVENTS = (
    ("Diarrhea", 0.25, 0.35, 30),
    ("Abdominal pain", 0.25, 0.4, 21),
    ("Flushing", 0.15, 0.2, 30),
)


def _adverse_events(
    randomization: dt.date,
    treatment: tuple[dt.date, ...],
    progression_day: float,
    end_day: float,
    death_day: float,
    rng: np.random.Generator,
) -> tuple[AdverseEventRecord, ...]:
    events: list[AdverseEventRecord] = []

    def add(term: str, start: float, p_g2: float, duration: int, related: bool) -> None:
        if start > end_day:
            return
        grade = 2 if rng.random() < p_g2 else 1
        serious = False
        if rng.random() < 0.04:  # an occasional hospitalisation: grade 3, serious
            grade, serious = 3, True
        stop = start + duration * float(rng.uniform(0.5, 1.5))
        events.append(
            AdverseEventRecord(
                term=term,
                grade=grade,
                onset_date=_days(randomization, start),
                end_date=_days(randomization, stop) if stop <= end_day else None,
                serious=serious,
                related_to_treatment=related,
            )
        )

    for cycle in treatment:
        day = (cycle - randomization).days
        for term, p, p_g2, duration in _CYCLE_EVENTS:
            if rng.random() < p:
                add(term, day + float(rng.uniform(0, 3)), p_g2, duration, related=True)
    if progression_day <= end_day:
        for term, p, p_g2, duration in _DISEASE_EVENTS:
            if rng.random() < p:
                add(term, progression_day + float(rng.uniform(0, 60)), p_g2, duration, False)
    if death_day <= end_day:
        events.append(
            AdverseEventRecord("Death NOS", 5, _days(randomization, death_day), None, True, False)
        )
    return tuple(sorted(events, key=lambda e: e.onset_date))


# ---------------------------------------------------------------------------------------------
# The cohort
# ---------------------------------------------------------------------------------------------


def _patient(
    config: CohortConfig,
    index: int,
    patient_id: str,
    centre: Centre,
    screening: dt.date,
    not_included_reason: str | None,
    dosimetry: bool,
    cutoff: dt.date,
) -> SyntheticPatient:
    plan = config.plan
    reasons, gate_failures = plan.not_included_reasons, plan.gate_failures
    rng = np.random.default_rng([config.seed, index, 0])
    cov = _covariates(rng)
    convention = "si" if int(centre.code[1:]) % 2 else "conventional"
    lesions = _baseline_lesions(rng)
    # History before inclusion.
    progression = _days(screening, -rng.uniform(30, 120))
    first_end = _days(progression, -cov.disease_control_first_prrt_months * plan.days_per_month)
    first_prrt = {
        "cycles": plan.first_prrt_cycles,
        "disease_control_months": cov.disease_control_first_prrt_months,
        "best_response": str(rng.choice(["PR", "SD"], p=[0.35, 0.65])),
        "g4_hematotoxicity": False,
        "g4_nephrotoxicity": False,
        "end_date": first_end.isoformat(),
    }
    hb, neut, plt = rng.normal(12.8, 1.1), rng.normal(3.4, 0.8), rng.normal(195, 45)
    hb, neut, plt = max(hb, 9.5), max(neut, 1.8), max(plt, 110)
    primary_site, other_cancers, alt = "ileum", None, 0.7
    dc_first = cov
    # Each failure falls just short of its protocol threshold (ReLUTH: 9.5 < 12 months,
    # 1200 < 1500/mm3, 5.6 > 5 x ULN).
    if not_included_reason == reasons[0]:
        primary_site = "pancreas"
    elif not_included_reason == reasons[1]:
        short = round(plan.disease_control_min_months - 2.5, 1)
        dc_first = Covariates(**{**cov.__dict__, "disease_control_first_prrt_months": short})
        first_prrt["disease_control_months"] = short
    elif not_included_reason == reasons[2]:
        neut = round(plan.neutrophils_min * 0.8, 2)
    elif not_included_reason == reasons[3]:
        # above the liver-metastases limit: excluded with or without liver metastases
        alt = round(plan.transaminases_max_x_uln_liver * 1.12, 2)
    elif not_included_reason == reasons[4]:
        other_cancers = [
            {
                "site": "colon",
                "diagnosis_date": _days(screening, -700).isoformat(),
                "treated_controlled": True,
            }
        ]
    if not_included_reason is not None:
        lesions_liver_free = all(le.organ != "liver" for le in lesions)
        assert not lesions_liver_free or alt < plan.transaminases_max_x_uln
    cycle1 = _days(screening, rng.integers(7, 21))
    inclusion_file = _patient_file(
        patient_id,
        dc_first,
        screening,
        convention=convention,
        hb_g_dl=hb,
        neutrophils=neut,
        platelets=plt,
        creatinine=cov.creatinine_umol_l,
        alt_x_uln=alt,
        lesions=_eligibility_lesions(lesions, 0.92),
        sstr_date=_days(screening, -rng.uniform(10, 60)),
        first_prrt=first_prrt,
        progression_date=progression,
        second_prrt={"tumour_board_decision": True, "cycles_completed": 0},
        consent_date=_days(screening, -rng.uniform(0, 5)),
        primary_site=primary_site,
        other_cancers=other_cancers,
    )
    base = dict(
        index=index,
        patient_id=patient_id,
        centre=centre.code,
        screening_date=screening,
        covariates=cov,
        inclusion_file=inclusion_file,
    )
    if not_included_reason is not None:
        return SyntheticPatient(
            **base,  # type: ignore[arg-type]
            intended_inclusion_status="not_eligible",
            randomization_file=None,
            intended_randomization_status=None,
            screen_failure_reason=not_included_reason,
            randomization_request_date=None,
        )
    # Second PRRT: its cycles 8 weeks apart, then the pre-randomization assessment.
    pre_dates = [cycle1]
    for _ in plan.pre_cycles[1:]:
        pre_dates.append(_days(pre_dates[-1], plan.cycle_interval_days + rng.integers(-3, 4)))
    assessment = _days(pre_dates[-1], 49 + rng.integers(0, 10))
    request = _days(assessment, rng.integers(3, 12))
    tumour_count = int(rng.integers(1, 4))
    pre_dosimetry = (
        tuple(
            _dosimetry_cycle(plan, number, d, tumour_count, rng)
            for number, d in zip(plan.pre_cycles, pre_dates, strict=True)
        )
        if dosimetry
        else ()
    )
    u = rng.random()
    gate_failure: str | None = None
    progressed = u < config.p_progression_during_retreatment
    if (
        not progressed
        and u
        < config.p_progression_during_retreatment + config.p_other_failure_before_randomization
    ):
        gate_failure = str(rng.choice(gate_failures))
    # eligible unless the failure says not (ReLUTH: >= 85 10^9/L, the limit being 80)
    plt_gate = max(plt * rng.uniform(0.7, 0.9), plan.platelets_min + 5)
    creat_gate = cov.creatinine_umol_l * rng.uniform(1.0, 1.08)
    ecog_gate = cov.ecog
    female = cov.sex == "female"
    if gate_failure == gate_failures[0]:
        plt_gate = plan.platelets_min * 0.775  # 62 for a limit of 80
    elif gate_failure == gate_failures[1]:
        creat_gate = max(creat_gate, _creatinine_for_egfr(plan.egfr_min - 6, cov.age, female))
    elif gate_failure == gate_failures[2]:
        ecog_gate = 3
    # Keep the eGFR of eligible patients comfortably above the limit after the creatinine drift.
    if gate_failure != gate_failures[1] and _egfr(creat_gate, cov.age, female) < plan.egfr_min + 1:
        creat_gate = float(cov.creatinine_umol_l)
    baseline_sizes = {le.id: le.size_mm for le in lesions if le.size_mm is not None}
    randomization_file = _patient_file(
        patient_id,
        cov,
        assessment,
        convention=convention,
        hb_g_dl=hb * rng.uniform(0.9, 0.98),
        neutrophils=max(neut * rng.uniform(0.8, 0.95), 1.6),
        platelets=plt_gate,
        creatinine=round(creat_gate),
        alt_x_uln=alt,
        lesions=_eligibility_lesions(lesions, 1.0),
        sstr_date=_days(assessment, -rng.integers(0, 7)),
        first_prrt=first_prrt,
        progression_date=progression,
        second_prrt={
            "tumour_board_decision": True,
            "cycles_completed": len(plan.pre_cycles),
            "cycle_dates": [d.isoformat() for d in pre_dates],
            "assessment_date": assessment.isoformat(),
            "radiological_progression": progressed,
        },
        consent_date=_days(screening, -rng.uniform(0, 5)),
        ecog=ecog_gate,
        planned_randomization_date=request,
    )
    reason = (
        "radiological progression during the two retreatment cycles" if progressed else gate_failure
    )
    common = dict(
        **base,
        intended_inclusion_status="eligible",
        randomization_file=randomization_file,
        dosimetry=pre_dosimetry,
    )
    if reason is not None:
        return SyntheticPatient(
            **common,  # type: ignore[arg-type]
            intended_randomization_status="not_eligible",
            screen_failure_reason=reason,
            randomization_request_date=None,
        )
    sh = _Shared(
        u_dc=float(rng.random()),
        u_time=float(rng.random()),
        u_death_pre=float(rng.random()),
        u_pps=float(rng.random()),
        u_dropout=float(rng.random()),
        pd_mode=str(rng.choice(["target", "new", "non_target"], p=[0.6, 0.3, 0.1])),
        responder_u=float(rng.random()),
        jitter=tuple(int(x) for x in rng.integers(-3, 4, 40)),
        missed=tuple(bool(x) for x in rng.random(40) < config.p_missed_assessment),
        marrow_sensitivity=min(float(rng.lognormal(0, 0.35)), 1.8),
        qol_baseline=float(rng.beta(2, 5)),
    )
    outcomes: dict[str, ArmOutcome] = {
        arm: _arm_outcome(
            config,
            arm,
            request,
            assessment,
            lesions,
            baseline_sizes,
            cov,
            convention,
            sh,
            cutoff,
            tumour_count if dosimetry else None,
            np.random.default_rng([config.seed, index, 1 + k]),
        )
        for k, arm in enumerate(plan.arms)
    }
    return SyntheticPatient(
        **common,  # type: ignore[arg-type]
        intended_randomization_status="eligible",
        screen_failure_reason=None,
        randomization_request_date=request,
        outcomes=outcomes,
    )


def stratum_code(patient: SyntheticPatient, protocol: Protocol) -> str | None:
    """The randomization stratum the protocol engine derives from the gate patient file."""
    from reluth.protocol.patient import parse_patient
    from reluth.protocol.strata import derive_strata

    if patient.randomization_file is None:
        return None
    return derive_strata(parse_patient(patient.randomization_file), protocol).code


def generate_cohort(config: CohortConfig) -> SyntheticCohort:
    """The whole synthetic trial for ``config`` (same seed, same cohort)."""
    reasons = config.plan.not_included_reasons
    rng = np.random.default_rng([config.seed, 10**6])
    centres = _centres(config, rng)
    n_total = config.included_n + config.n_not_included
    arrivals = _arrivals(config, centres, n_total, rng)
    not_included = set(rng.choice(n_total, config.n_not_included, replace=False).tolist())
    cutoff = config.data_cutoff
    per_centre: dict[str, int] = {}
    dosimetry_left = config.n_dosimetry
    patients: list[SyntheticPatient] = []
    for index, (date, c) in enumerate(arrivals):
        centre = centres[c]
        per_centre[centre.code] = per_centre.get(centre.code, 0) + 1
        patient_id = f"{centre.code}-{per_centre[centre.code]:04d}"
        reason = (
            reasons[len([i for i in not_included if i < index]) % len(reasons)]
            if index in not_included
            else None
        )
        dosimetry = reason is None and centre.dosimetry and dosimetry_left > 0
        patient = _patient(config, index, patient_id, centre, date, reason, dosimetry, cutoff)
        if patient.dosimetry:
            dosimetry_left -= 1
        patients.append(patient)
    patients = _allocate(patients, config)
    return SyntheticCohort(config, centres, tuple(patients), cutoff)


def _allocate(patients: list[SyntheticPatient], config: CohortConfig) -> list[SyntheticPatient]:
    """Stratified permuted blocks of 4 in order of randomization request (service stand-in)."""
    rng = np.random.default_rng([config.seed, 10**6 + 1])
    experimental, control = config.plan.arms
    blocks: dict[str | None, list[Arm]] = {}
    order = sorted(
        (p for p in patients if p.randomized),
        key=lambda p: (p.randomization_request_date, p.index),
    )
    arms: dict[int, Arm] = {}
    for p in order:
        key = stratum_code(p, config.protocol)
        if not blocks.get(key):
            block: list[Arm] = [experimental, experimental, control, control]
            blocks[key] = [block[i] for i in rng.permutation(4)]
        arms[p.index] = blocks[key].pop()
    out = []
    for p in patients:
        if p.index in arms:
            p = SyntheticPatient(**{**p.__dict__, "simulated_arm": arms[p.index]})
        out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# The clinical forms of a synthetic patient (concomitant medications, medical history,
# childbearing potential, protocol deviations). Drawn from a generator of their own, seeded by
# the cohort's seed and the patient's index, so that the cohort's other draws are unchanged.

#: (drug, ATC code, indication, dose, unit, route) of the long-term medications drawn.
_LONG_TERM_MEDICATIONS = (
    ("Octreotide LAR", "H01CB02", "carcinoid syndrome", "30", "mg", "intramuscular"),
    ("Lanreotide", "H01CB03", "carcinoid syndrome", "120", "mg", "subcutaneous"),
    ("Metformin", "A10BA02", "type 2 diabetes mellitus", "1000", "mg", "oral"),
    ("Ramipril", "C09AA05", "hypertension", "5", "mg", "oral"),
    ("Pancrelipase", "A09AA02", "exocrine pancreatic insufficiency", "25000", "U", "oral"),
    ("Loperamide", "A07DA03", "diarrhoea", "2", "mg", "oral"),
)
#: (condition, years before screening it started, ongoing)
_HISTORY = (
    ("Hypertension", 8, True),
    ("Type 2 diabetes mellitus", 6, True),
    ("Cholecystectomy", 3, False),
    ("Carcinoid heart disease", 1, True),
    ("Appendicectomy", 30, False),
)
#: A woman of this age or older is counted postmenopausal (CTFG 2020 §2: 12 months of
#: amenorrhoea without another cause; a synthetic simplification).
POSTMENOPAUSAL_AGE = 52


@dataclass(frozen=True)
class ClinicalHistory:
    """A synthetic patient's clinical forms, as the form schemas take them (without the
    patient code)."""

    conmeds: tuple[dict[str, Any], ...]
    medical_history: tuple[dict[str, Any], ...]
    childbearing: dict[str, Any] | None  # None for a man
    deviations: tuple[dict[str, Any], ...]


def clinical_history(p: SyntheticPatient, seed: int) -> ClinicalHistory:
    """The clinical forms of ``p``: one to three long-term medications started before the
    screening, an antiemetic around the first cycle, a medical history, the childbearing
    potential of a woman (by age), and for a few patients a protocol deviation (a minor visit
    delay; rarely a major one)."""
    rng = np.random.default_rng([seed, 7919, p.index])
    screened = p.screening_date
    meds = []
    for i in sorted(rng.choice(len(_LONG_TERM_MEDICATIONS), int(rng.integers(1, 4)), False)):
        drug, atc, indication, dose, unit, route = _LONG_TERM_MEDICATIONS[int(i)]
        start = screened - dt.timedelta(days=int(rng.integers(60, 2000)))
        meds.append(
            {
                "drug_name": drug,
                "atc_code": atc,
                "indication": indication,
                "dose": dose,
                "unit": unit,
                "route": route,
                "start_date": start.isoformat(),
                "ongoing": True,
            }
        )
    cycles = ((p.randomization_file or {}).get("second_prrt") or {}).get("cycle_dates") or ()
    if cycles:
        first = dt.date.fromisoformat(cycles[0])
        meds.append(
            {
                "drug_name": "Ondansetron",
                "atc_code": "A04AA01",
                "indication": "prevention of nausea (amino-acid infusion)",
                "dose": "8",
                "unit": "mg",
                "route": "intravenous",
                "start_date": first.isoformat(),
                "stop_date": (first + dt.timedelta(days=1)).isoformat(),
                "ongoing": False,
            }
        )
    history = []
    for i in sorted(rng.choice(len(_HISTORY), int(rng.integers(0, 3)), False)):
        condition, years, ongoing = _HISTORY[int(i)]
        start = screened - dt.timedelta(days=365 * years + int(rng.integers(0, 300)))
        history.append(
            {"condition": condition, "start_date": start.isoformat(), "ongoing": ongoing}
        )
    childbearing = None
    if p.covariates.sex == "female":
        fertile = p.covariates.age < POSTMENOPAUSAL_AGE
        childbearing = {
            "childbearing_potential": fertile,
            "reason": None if fertile else "postmenopausal",
            "assessed_on": screened.isoformat(),
        }
    deviations = []
    draw = rng.random()
    if draw < 0.08:
        major = draw < 0.015
        deviations.append(
            {
                "category": "eligibility" if major else "visit_schedule",
                "severity": "major" if major else "minor",
                "deviation_date": screened.isoformat(),
                "description": "Screening laboratory values older than the protocol allows"
                if major
                else "Screening visit done outside its planned window",
                "corrective_action": "Site retrained on the protocol's windows",
            }
        )
    return ClinicalHistory(tuple(meds), tuple(history), childbearing, tuple(deviations))
