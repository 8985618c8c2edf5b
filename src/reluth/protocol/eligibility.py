"""The ReLUTH eligibility engine: every published inclusion (I..) and exclusion (E..) criterion
as a named, pure rule.

Result convention (as CDISC IE): an inclusion criterion is ``met`` when the patient satisfies it;
an exclusion criterion is ``met`` when it applies to the patient (so the patient is excluded).
``passes`` says in one word whether the criterion lets the patient through. ``unknown`` means an
input is missing; the reason names it. Overall status: ``not_eligible`` if any criterion fails,
else ``incomplete`` if any is unknown, else ``eligible``.

Stages: criteria of the pre-randomization gate (two cycles of second PRRT completed without
radiological progression) are evaluated only at ``stage="randomization"``; screening at
inclusion uses ``stage="inclusion"``.

The engine holds one rule per criterion id; the protocol passed in holds the thresholds and
the criteria's texts (``eligibility.criteria`` in ``reluth.yaml``), so an amended protocol
changes the verdicts, the reasons and the texts together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from reluth.errors import ValidationError
from reluth.protocol.definition import Protocol
from reluth.protocol.egfr import EQUATIONS, reported
from reluth.protocol.patient import PatientFile, lab
from reluth.units import LabValue

Result = Literal["met", "not_met", "unknown"]
Kind = Literal["inclusion", "exclusion"]
Stage = Literal["inclusion", "randomization"]
Status = Literal["eligible", "not_eligible", "incomplete"]


@dataclass(frozen=True)
class CriterionResult:
    id: str
    kind: Kind
    text: str
    result: Result
    passes: bool | None
    reason: str
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class EligibilityResult:
    patient_id: str
    status: Status
    stage: Stage
    protocol_version: str
    criteria: tuple[CriterionResult, ...]
    derived: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> tuple[CriterionResult, ...]:
        return tuple(c for c in self.criteria if c.passes is False)

    @property
    def unknown(self) -> tuple[CriterionResult, ...]:
        return tuple(c for c in self.criteria if c.result == "unknown")


@dataclass(frozen=True)
class _Ctx:
    patient: PatientFile
    protocol: Protocol
    egfr: Decimal | None
    egfr_reason: str

    @property
    def reference_date(self) -> dt.date:
        p = self.patient
        return p.planned_randomization_date or p.assessment_date


# A rule returns (result, reason).
Outcome = tuple[Result, str]
Rule = Callable[[_Ctx], Outcome]


@dataclass(frozen=True)
class CriterionRule:
    """What the engine knows of a criterion: its kind, the patient-file fields it reads, its
    rule and the stage that evaluates it. Its text is the protocol's."""

    kind: Kind
    inputs: tuple[str, ...]
    rule: Rule
    stage: Stage = "inclusion"


@dataclass(frozen=True)
class Criterion:
    id: str
    kind: Kind
    text: str
    inputs: tuple[str, ...]
    rule: Rule
    stage: Stage = "inclusion"


def _fmt(d: Decimal) -> str:
    text = format(d.normalize(), "f")
    return text


def _lab_text(v: LabValue) -> str:
    canonical = f"{_fmt(v.value)} {v.unit}"
    entered = f"{_fmt(v.entered_value)} {v.entered_unit}"
    return canonical if canonical == entered else f"{canonical} (entered {entered})"


def _missing(*names: str) -> Outcome:
    return "unknown", "missing: " + ", ".join(names)


def _bool(value: bool) -> Result:
    return "met" if value else "not_met"


#: A lymph node is measurable with a short axis >= 15 mm (RECIST 1.1, Eisenhauer 2009, 3.1.1):
#: RECIST's definition, not a protocol threshold.
NODAL_MEASURABLE_SHORT_AXIS_MM = Decimal(15)


# ---------------------------------------------------------------------------------------------
# Inclusion criteria


def _age(c: _Ctx) -> Outcome:
    age, minimum = c.patient.age, c.protocol.eligibility.age_min_years
    if age is None:
        return _missing("age")
    return _bool(age >= minimum), f"age {age} years {'>=' if age >= minimum else '<'} {minimum}"


def _histology(c: _Ctx) -> Outcome:
    h, e = c.patient.histology, c.protocol.eligibility
    if (
        h.primary_site is None
        or h.grade is None
        or h.differentiation is None
        or h.tumour_type is None
    ):
        missing = [
            f"histology.{n}"
            for n in ("primary_site", "grade", "differentiation", "tumour_type")
            if getattr(h, n) is None
        ]
        return _missing(*missing)
    site = h.primary_site.strip().lower()
    ok_site = site in e.intestinal_sites
    ok = ok_site and h.grade in e.histology_grades_accepted and h.differentiation == "well"
    ok = ok and h.tumour_type == "NET"
    reason = (
        f"primary site {h.primary_site} ({'intestinal' if ok_site else 'not intestinal'}), "
        f"{h.differentiation}-differentiated {h.tumour_type} {h.grade}; "
        f"accepted: intestinal well-differentiated NET {'/'.join(e.histology_grades_accepted)}"
    )
    return _bool(ok), reason


def _first_prrt_cycles(c: _Ctx) -> Outcome:
    n, required = c.patient.first_prrt.cycles, c.protocol.eligibility.first_prrt_cycles
    if n is None:
        return _missing("first_prrt.cycles")
    return _bool(n == required), f"{n} cycles of first PRRT (required: {required})"


def _first_prrt_control(c: _Ctx) -> Outcome:
    months = c.patient.first_prrt.disease_control_months
    minimum = c.protocol.eligibility.first_prrt_disease_control_min_months
    if months is None:
        return _missing("first_prrt.disease_control_months")
    ok = months >= minimum
    return _bool(ok), f"disease control {_fmt(months)} months {'>=' if ok else '<'} {minimum}"


def _progression(c: _Ctx) -> Outcome:
    p = c.patient.progression
    flags = {"radiological": p.radiological, "clinical": p.clinical, "biological": p.biological}
    present = [k for k, v in flags.items() if v]
    if present:
        return "met", "progression after first PRRT: " + ", ".join(present)
    if all(v is False for v in flags.values()):
        return "not_met", "no clinical, biological or radiological progression recorded"
    return _missing(*(f"progression.{k}" for k, v in flags.items() if v is None))


def _tumour_board(c: _Ctx) -> Outcome:
    d = c.patient.second_prrt.tumour_board_decision
    if d is None:
        return _missing("second_prrt.tumour_board_decision")
    return _bool(d), f"retreatment decision by tumour board: {'yes' if d else 'no'}"


def _ecog(c: _Ctx) -> Outcome:
    ecog, maximum = c.patient.ecog, c.protocol.eligibility.ecog_max
    if ecog is None:
        return _missing("ecog")
    return _bool(ecog <= maximum), f"ECOG {ecog} ({'<=' if ecog <= maximum else '>'} {maximum})"


def _life_expectancy(c: _Ctx) -> Outcome:
    m, minimum = c.patient.life_expectancy_months, c.protocol.eligibility.life_expectancy_min_months
    if m is None:
        return _missing("life_expectancy_months")
    ok = m >= minimum
    return _bool(ok), f"life expectancy {_fmt(m)} months {'>=' if ok else '<'} {minimum}"


def add_months(day: dt.date, months: int) -> dt.date:
    """Calendar month arithmetic, clamped to the month's last day (31 Mar - 1 month = 28/29 Feb)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _sstr(c: _Ctx) -> Outcome:
    s, e = c.patient.sstr_imaging, c.protocol.eligibility
    if s.date is None or s.positive_lesion_fraction is None:
        names = [
            f"sstr_imaging.{n}"
            for n in ("date", "positive_lesion_fraction")
            if getattr(s, n) is None
        ]
        return _missing(*names)
    ref = c.reference_date
    earliest = add_months(ref, -e.sstr_imaging_max_months_before_randomization)
    in_time = earliest <= s.date <= ref
    positive = s.positive_lesion_fraction >= e.sstr_positive_fraction_min
    ref_name = "planned randomization" if c.patient.planned_randomization_date else "assessment"
    reason = (
        f"SSTR imaging on {s.date} ({'within' if in_time else 'not within'} "
        f"{e.sstr_imaging_max_months_before_randomization} months before {ref_name} {ref}, "
        f"i.e. from {earliest}); {_fmt(s.positive_lesion_fraction * 100)}% of lesions positive "
        f"({'>=' if positive else '<'} {_fmt(e.sstr_positive_fraction_min * 100)}%)"
    )
    return _bool(in_time and positive), reason


def _measurable(c: _Ctx) -> Outcome:
    lesions, e = c.patient.lesions, c.protocol.eligibility
    if lesions is None:
        return _missing("lesions")
    nodal_min = NODAL_MEASURABLE_SHORT_AXIS_MM
    measurable = []
    for les in lesions:
        if les.nodal:
            if les.short_axis_mm is not None and les.short_axis_mm >= nodal_min:
                measurable.append(les.id)
        elif (
            les.longest_diameter_mm is not None
            and les.longest_diameter_mm >= e.measurable_lesion_min_diameter_mm
        ):
            measurable.append(les.id)
    ok = len(measurable) >= 1 and len(lesions) >= e.lesions_min_count
    reason = (
        f"{len(lesions)} lesion(s) (need >= {e.lesions_min_count}); measurable "
        f"(non-nodal longest diameter >= {e.measurable_lesion_min_diameter_mm} mm or nodal short "
        f"axis >= {nodal_min} mm): {', '.join(measurable) if measurable else 'none'}"
    )
    return _bool(ok), reason


def _marrow(c: _Ctx) -> Outcome:
    e = c.protocol.eligibility
    hb, neut, plt = (
        lab(c.patient, "hemoglobin"),
        lab(c.patient, "neutrophils"),
        lab(c.patient, "platelets"),
    )
    parts: list[str] = []
    results: list[bool] = []
    missing: list[str] = []
    for name, value, ok_fn, limit in (
        (
            "hemoglobin",
            hb,
            lambda v: v > e.hemoglobin_min_exclusive_g_dl,
            f"> {e.hemoglobin_min_exclusive_g_dl} g/dL",
        ),
        (
            "neutrophils",
            neut,
            lambda v: v >= e.neutrophils_min_10e9_l,
            f">= {e.neutrophils_min_10e9_l} 10^9/L",
        ),
        (
            "platelets",
            plt,
            lambda v: v >= e.platelets_min_10e9_l,
            f">= {e.platelets_min_10e9_l} 10^9/L",
        ),
    ):
        if value is None:
            missing.append(f"labs.{name}")
            continue
        ok = bool(ok_fn(value.value))
        results.append(ok)
        parts.append(f"{name} {_lab_text(value)} ({'meets' if ok else 'fails'} {limit})")
    if not all(results):
        return "not_met", "; ".join(parts)
    if missing:
        return "unknown", "; ".join([*parts, "missing: " + ", ".join(missing)])
    return "met", "; ".join(parts)


def _consent(c: _Ctx) -> Outcome:
    if c.patient.consent is None:
        return _missing("consent")
    signed = c.patient.consent.signed
    when = f" on {c.patient.consent.date}" if c.patient.consent.date else ""
    return _bool(signed), f"informed consent {'signed' + when if signed else 'not signed'}"


def _second_prrt_done(c: _Ctx) -> Outcome:
    n = c.patient.second_prrt.cycles_completed
    required = c.protocol.eligibility.second_prrt_cycles_before_randomization
    if n is None:
        return _missing("second_prrt.cycles_completed")
    return _bool(n >= required), f"{n} cycle(s) of second PRRT completed (required: {required})"


# ---------------------------------------------------------------------------------------------
# Exclusion criteria (met = the patient is excluded)


def _no_response(c: _Ctx) -> Outcome:
    r = c.patient.first_prrt.best_response
    accepted = c.protocol.eligibility.first_prrt_response_accepted
    if r is None:
        return _missing("first_prrt.best_response")
    return _bool(
        r not in accepted
    ), f"best response to first PRRT {r} (response: {'/'.join(accepted)})"


def _progression_after_second(c: _Ctx) -> Outcome:
    s = c.patient.second_prrt
    if s.radiological_progression is None:
        return _missing("second_prrt.radiological_progression")
    when = f" on {s.assessment_date}" if s.assessment_date else ""
    if s.radiological_progression:
        return "met", f"RECIST 1.1 progression at the pre-randomization assessment{when}"
    return "not_met", f"no radiological progression at the pre-randomization assessment{when}"


def _g4_toxicity(c: _Ctx) -> Outcome:
    f = c.patient.first_prrt
    flags = {"haematotoxicity": f.g4_hematotoxicity, "nephrotoxicity": f.g4_nephrotoxicity}
    present = [k for k, v in flags.items() if v]
    if present:
        return "met", "grade 4 " + " and ".join(present) + " during first PRRT"
    if all(v is False for v in flags.values()):
        return "not_met", "no grade 4 haemato- or nephrotoxicity during first PRRT"
    return _missing(
        *(
            f"first_prrt.g4_{'hematotoxicity' if k == 'haematotoxicity' else k}"
            for k, v in flags.items()
            if v is None
        )
    )


def _unresolved_ae(c: _Ctx) -> Outcome:
    aes, e = c.patient.unresolved_adverse_events, c.protocol.eligibility
    if aes is None:
        return _missing("unresolved_adverse_events")
    exceptions = {t.lower() for t in e.unresolved_ae_exceptions}
    offending = [
        f"{ae.term} grade {ae.grade}"
        for ae in aes
        if not ae.resolved
        and ae.grade > e.unresolved_ae_max_grade
        and ae.term.strip().lower() not in exceptions
    ]
    worst = f">= grade {e.unresolved_ae_max_grade + 1}"
    if offending:
        return "met", f"unresolved adverse event(s) {worst}: " + ", ".join(offending)
    return (
        "not_met",
        f"no unresolved adverse event {worst} ({', '.join(e.unresolved_ae_exceptions)} excepted)",
    )


def _pancreatic(c: _Ctx) -> Outcome:
    site = c.patient.histology.primary_site
    if site is None:
        return _missing("histology.primary_site")
    is_pancreas = "pancrea" in site.lower()
    return _bool(is_pancreas), f"primary site {site}"


def _nec(c: _Ctx) -> Outcome:
    h = c.patient.histology
    if h.tumour_type == "NEC" or h.differentiation == "poor":
        return "met", f"{h.differentiation or ''}-differentiated {h.tumour_type or ''}".strip("- ")
    if h.tumour_type is None or h.differentiation is None:
        return _missing(
            *(f"histology.{n}" for n in ("tumour_type", "differentiation") if getattr(h, n) is None)
        )
    return "not_met", f"{h.differentiation}-differentiated {h.tumour_type}"


def _ebrt(c: _Ctx) -> Outcome:
    fraction = c.patient.history.ebrt_marrow_fraction
    limit = c.protocol.eligibility.ebrt_marrow_max_fraction
    if fraction is None:
        return _missing("history.ebrt_marrow_fraction")
    over = fraction > limit
    return _bool(over), (
        f"external beam RT to {_fmt(fraction * 100)}% of bone marrow "
        f"({'>' if over else '<='} {_fmt(limit * 100)}%)"
    )


def _renal(c: _Ctx) -> Outcome:
    nephrotic = c.patient.history.nephrotic_syndrome
    limit = c.protocol.eligibility.egfr_min_ml_min_1_73m2
    parts = []
    low: bool | None = None
    if c.egfr is not None:
        low = c.egfr < limit
        parts.append(
            f"eGFR {_fmt(c.egfr)} mL/min/1.73m2 {'<' if low else '>='} {limit} ({c.egfr_reason})"
        )
    if nephrotic:
        parts.append("nephrotic syndrome")
    elif nephrotic is False:
        parts.append("no nephrotic syndrome")
    if low or nephrotic:
        return "met", "; ".join(parts)
    if low is None or nephrotic is None:
        missing = []
        if low is None:
            missing.append(c.egfr_reason)
        if nephrotic is None:
            missing.append("missing: history.nephrotic_syndrome")
        return "unknown", "; ".join([*parts, *missing])
    return "not_met", "; ".join(parts)


def _liver_metastases(p: PatientFile) -> bool | None:
    if p.lesions is None:
        return None
    return any(les.organ.strip().lower() == "liver" for les in p.lesions)


def _hepatic(c: _Ctx) -> Outcome:
    e = c.protocol.eligibility
    liver_mets = _liver_metastases(c.patient)
    parts: list[str] = []
    flags: list[bool] = []
    missing: list[str] = []
    for name in ("alt", "ast", "bilirubin"):
        entry = c.patient.labs.get(name)
        if entry is None:
            missing.append(f"labs.{name}")
            continue
        if entry.uln is None:
            missing.append(f"labs.{name}.uln")
            continue
        if name == "bilirubin":
            limit = e.bilirubin_max_x_uln
        elif liver_mets is None:
            missing.append(
                f"lesions (liver metastases decide the {e.transaminases_max_x_uln} or "
                f"{e.transaminases_max_x_uln_liver_metastases} x ULN limit)"
            )
            continue
        else:
            limit = (
                e.transaminases_max_x_uln_liver_metastases
                if liver_mets
                else e.transaminases_max_x_uln
            )
        ratio = entry.value / entry.uln
        over = entry.value > limit * entry.uln
        flags.append(over)
        parts.append(
            f"{name.upper() if name != 'bilirubin' else 'bilirubin'} {_fmt(entry.value)} {entry.unit} = "
            f"{_fmt(ratio.quantize(Decimal('0.01')))} x ULN ({'>' if over else '<='} {limit} x ULN"
            f"{', liver metastases' if name != 'bilirubin' and liver_mets else ''})"
        )
    if any(flags):
        return "met", "; ".join(parts)
    if missing:
        return "unknown", "; ".join([*parts, "missing: " + ", ".join(missing)])
    return "not_met", "; ".join(parts)


def _uncontrolled(c: _Ctx) -> Outcome:
    v = c.patient.history.uncontrolled_concomitant_disease
    if v is None:
        return _missing("history.uncontrolled_concomitant_disease")
    return _bool(
        v
    ), "uncontrolled concomitant disease" if v else "no uncontrolled concomitant disease"


def _brain(c: _Ctx) -> Outcome:
    b = c.patient.history.brain_metastases
    weeks_min = c.protocol.eligibility.brain_metastases_stable_min_weeks
    if b is None:
        return _missing("history.brain_metastases")
    if not b.present:
        return "not_met", "no brain metastases"
    if b.treated is False:
        return "met", "untreated brain metastases"
    if b.treated is None or b.stable_since is None or b.stability_imaging_documented is None:
        return _missing(
            *(
                f"history.brain_metastases.{n}"
                for n in ("treated", "stable_since", "stability_imaging_documented")
                if getattr(b, n) is None
            )
        )
    days = (c.reference_date - b.stable_since).days
    stable_enough = days >= weeks_min * 7
    ok = stable_enough and b.stability_imaging_documented
    reason = (
        f"treated brain metastases stable since {b.stable_since} ({days} days; need >= {weeks_min} "
        f"weeks = {weeks_min * 7} days); stability imaging "
        f"{'documented' if b.stability_imaging_documented else 'not documented'}"
    )
    return _bool(not ok), reason


def _other_cancer(c: _Ctx) -> Outcome:
    cancers, e = c.patient.history.other_cancers, c.protocol.eligibility
    if cancers is None:
        return _missing("history.other_cancers")
    since = add_months(c.patient.assessment_date, -12 * e.other_cancer_lookback_years)
    offending = []
    for k in cancers:
        if k.diagnosis_date < since:
            continue
        if _excepted_cancer(k.site, k.treated_controlled, e.other_cancer_exceptions):
            continue
        offending.append(f"{k.site} diagnosed {k.diagnosis_date}")
    if offending:
        return (
            "met",
            f"other cancer within {e.other_cancer_lookback_years} years (since {since}): "
            + ", ".join(offending),
        )
    return "not_met", (
        f"no other cancer since {since} apart from the exceptions "
        f"({', '.join(x.replace('_', ' ') for x in e.other_cancer_exceptions)})"
    )


def _excepted_cancer(
    site: str, treated_controlled: bool | None, exceptions: tuple[str, ...]
) -> bool:
    """Whether another cancer is one of the protocol's exceptions: its site is listed, or the
    list names ``<site>_treated`` and the cancer is treated and controlled (cervix)."""
    name = site.strip().lower()
    listed = {x.strip().lower() for x in exceptions}
    return name in listed or (bool(treated_controlled) and f"{name}_treated" in listed)


#: One rule per criterion id; the criterion's text and its kind are the protocol's
#: (``eligibility.criteria``), and a rule's kind must agree with it.
RULES: dict[str, CriterionRule] = {
    "I1": CriterionRule("inclusion", ("age",), _age),
    "I2": CriterionRule("inclusion", ("histology",), _histology),
    "I3": CriterionRule("inclusion", ("first_prrt.cycles",), _first_prrt_cycles),
    "I4": CriterionRule("inclusion", ("first_prrt.disease_control_months",), _first_prrt_control),
    "I5": CriterionRule("inclusion", ("progression",), _progression),
    "I6": CriterionRule("inclusion", ("second_prrt.tumour_board_decision",), _tumour_board),
    "I7": CriterionRule("inclusion", ("ecog",), _ecog),
    "I8": CriterionRule("inclusion", ("life_expectancy_months",), _life_expectancy),
    "I9": CriterionRule("inclusion", ("sstr_imaging", "planned_randomization_date"), _sstr),
    "I10": CriterionRule("inclusion", ("lesions",), _measurable),
    "I11": CriterionRule(
        "inclusion", ("labs.hemoglobin", "labs.neutrophils", "labs.platelets"), _marrow
    ),
    "I12": CriterionRule("inclusion", ("consent",), _consent),
    "I13": CriterionRule(
        "inclusion", ("second_prrt.cycles_completed",), _second_prrt_done, "randomization"
    ),
    "E1": CriterionRule("exclusion", ("first_prrt.best_response",), _no_response),
    "E2": CriterionRule(
        "exclusion",
        ("second_prrt.radiological_progression",),
        _progression_after_second,
        "randomization",
    ),
    "E3": CriterionRule(
        "exclusion", ("first_prrt.g4_hematotoxicity", "first_prrt.g4_nephrotoxicity"), _g4_toxicity
    ),
    "E4": CriterionRule("exclusion", ("unresolved_adverse_events",), _unresolved_ae),
    "E5": CriterionRule("exclusion", ("histology.primary_site",), _pancreatic),
    "E6": CriterionRule("exclusion", ("histology.tumour_type", "histology.differentiation"), _nec),
    "E7": CriterionRule("exclusion", ("history.ebrt_marrow_fraction",), _ebrt),
    "E8": CriterionRule(
        "exclusion", ("labs.creatinine", "age", "sex", "history.nephrotic_syndrome"), _renal
    ),
    "E9": CriterionRule(
        "exclusion", ("labs.alt", "labs.ast", "labs.bilirubin", "lesions"), _hepatic
    ),
    "E10": CriterionRule("exclusion", ("history.uncontrolled_concomitant_disease",), _uncontrolled),
    "E11": CriterionRule("exclusion", ("history.brain_metastases",), _brain),
    "E12": CriterionRule("exclusion", ("history.other_cancers",), _other_cancer),
}


def criteria(protocol: Protocol) -> tuple[Criterion, ...]:
    """The protocol's criteria, in its order, each with its text and the engine's rule.

    A criterion the protocol lists without a rule here, or whose kind disagrees with its
    rule's, is refused naming it (an amendment needs its rule written first)."""
    return protocol.memo(("eligibility.criteria",), lambda: _criteria(protocol))


def _criteria(protocol: Protocol) -> tuple[Criterion, ...]:
    e = protocol.eligibility
    out = []
    for cid in e.criteria.ids:
        rule = RULES.get(cid)
        kind = e.kind_of(cid)
        if rule is None:
            raise ValidationError(
                f"eligibility.criteria.{kind}.{cid}", "no rule evaluates it", ", ".join(RULES)
            )
        if rule.kind != kind:
            raise ValidationError(
                f"eligibility.criteria.{kind}.{cid}", f"the rule of {cid} is an {rule.kind} rule"
            )
        out.append(Criterion(cid, kind, e.text(cid), rule.inputs, rule.rule, rule.stage))
    return tuple(out)


def estimate_egfr(patient: PatientFile, protocol: Protocol) -> tuple[Decimal | None, str]:
    """The eGFR used by the protocol (its ``egfr_equation`` from creatinine, MDRD-IDMS-175 for
    ReLUTH; a reported eGFR if no creatinine), rounded to 0.1, and a sentence saying how it
    was obtained."""
    creat = lab(patient, "creatinine")
    if creat is not None:
        missing = [n for n in ("age", "sex") if getattr(patient, n) is None]
        if missing:
            return None, "missing for eGFR: " + ", ".join(missing)
        if creat.value == 0:
            return None, "creatinine of 0 cannot give an eGFR"
        assert patient.age is not None
        equation = protocol.eligibility.egfr_equation
        # The race factor is refused at load (the patient file records no race).
        value = EQUATIONS[equation](
            creat.value, Decimal(patient.age), female=patient.sex == "female"
        )
        return reported(
            value
        ), f"{equation} from creatinine {_lab_text(creat)}, age {patient.age}, {patient.sex}"
    given = lab(patient, "egfr")
    if given is not None:
        return reported(given.value), "eGFR as reported"
    return None, "missing: labs.creatinine (or labs.egfr)"


def recheck_time_bound(
    patient: PatientFile, on: dt.date, protocol: Protocol
) -> tuple[CriterionResult, ...]:
    """The criteria the protocol file names as time-bound
    (``eligibility.time_bound_criteria``, e.g. I9: SSTR imaging within 4 months before
    randomization) evaluated again with ``on`` — the actual randomization date — as the
    reference date; pure. Returns the ones that no longer pass."""
    wanted = set(protocol.eligibility.time_bound_criteria)
    moved = patient.model_copy(update={"planned_randomization_date": on})
    egfr, egfr_reason = estimate_egfr(moved, protocol)
    ctx = _Ctx(patient=moved, protocol=protocol, egfr=egfr, egfr_reason=egfr_reason)
    failed = []
    for crit in criteria(protocol):
        if crit.id not in wanted:
            continue
        result, reason = crit.rule(ctx)
        passes = (result == "met") if crit.kind == "inclusion" else (result == "not_met")
        if not passes:
            failed.append(
                CriterionResult(crit.id, crit.kind, crit.text, result, passes, reason, crit.inputs)
            )
    return tuple(failed)


def check_eligibility(
    patient: PatientFile,
    protocol: Protocol,
    stage: Stage = "randomization",
) -> EligibilityResult:
    """Evaluate every criterion of ``protocol`` for ``stage``; pure (the reference date comes
    from the file)."""
    egfr, egfr_reason = estimate_egfr(patient, protocol)
    ctx = _Ctx(patient=patient, protocol=protocol, egfr=egfr, egfr_reason=egfr_reason)
    results = []
    for crit in criteria(protocol):
        if crit.stage == "randomization" and stage == "inclusion":
            continue
        result, reason = crit.rule(ctx)
        if result == "unknown":
            passes: bool | None = None
        elif crit.kind == "inclusion":
            passes = result == "met"
        else:
            passes = result == "not_met"
        results.append(
            CriterionResult(crit.id, crit.kind, crit.text, result, passes, reason, crit.inputs)
        )
    if any(r.passes is False for r in results):
        status: Status = "not_eligible"
    elif any(r.passes is None for r in results):
        status = "incomplete"
    else:
        status = "eligible"
    derived = {
        "egfr_ml_min_1_73m2": _fmt(egfr) if egfr is not None else "",
        "egfr_method": egfr_reason,
    }
    return EligibilityResult(
        patient_id=patient.patient_id,
        status=status,
        stage=stage,
        protocol_version=protocol.label,
        criteria=tuple(results),
        derived=derived,
    )
