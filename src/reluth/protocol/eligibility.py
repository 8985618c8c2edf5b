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
from typing import Any, Literal

from reluth.i18n import N_
from reluth.i18n.reasons import Field, Joined, Quantity, Reason, Word, invalid
from reluth.protocol.definition import Protocol
from reluth.protocol.egfr import EQUATIONS, reported
from reluth.protocol.patient import PatientFile, lab
from reluth.units import LabValue, convert

Result = Literal["met", "not_met", "unknown"]
Kind = Literal["inclusion", "exclusion"]
Stage = Literal["inclusion", "randomization"]
Status = Literal["eligible", "not_eligible", "incomplete"]


@dataclass(frozen=True)
class CriterionResult:
    """One criterion's verdict. ``message`` is the reason as a key and its values, written in
    the reader's language where shown; ``reason`` is the same in English (``--json``, logs)."""

    id: str
    kind: Kind
    text: str
    result: Result
    passes: bool | None
    reason: str
    inputs: tuple[str, ...]
    message: Reason | None = None

    @classmethod
    def of(
        cls, crit: Criterion, result: Result, passes: bool | None, message: Reason
    ) -> CriterionResult:
        return cls(
            crit.id, crit.kind, crit.text, result, passes, message.english(), crit.inputs, message
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (the stored screening result): the message as its key and values."""
        return {
            "id": self.id,
            "kind": self.kind,
            "text": self.text,
            "result": self.result,
            "passes": self.passes,
            "reason": self.reason,
            "inputs": list(self.inputs),
            "message": self.message.as_dict() if self.message else None,
        }

    def __json__(self) -> dict[str, Any]:
        return self.as_dict()


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
    egfr_reason: Reason

    @property
    def reference_date(self) -> dt.date:
        p = self.patient
        return p.planned_randomization_date or p.assessment_date


# A rule returns (result, reason).
Outcome = tuple[Result, Reason]
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


def _plain(d: Decimal) -> Decimal:
    """``d`` without trailing zeros and never in exponent form (80000, not 8E+4)."""
    n = d.normalize()
    return n.quantize(Decimal(1)) if n == n.to_integral_value() else n


def _r(key: str, template: str, **params: Any) -> Reason:
    return Reason(f"eligibility.{key}", template, params)


def _missing(*names: str) -> Outcome:
    return "unknown", _missing_reason(*names)


def _missing_reason(*names: str) -> Reason:
    return _r("missing", N_("missing: {fields}"), fields=[Field(n) for n in names])


def _bool(value: bool) -> Result:
    return "met" if value else "not_met"


def _lab(v: LabValue) -> Quantity:
    """The value as it was entered (its unit included), as the site reads it."""
    return Quantity(_plain(v.entered_value), v.entered_unit)


def _limit(v: LabValue, canonical_limit: Decimal) -> Quantity:
    """A protocol limit (in the canonical unit) in the unit the value was entered in."""
    shown = convert(v.analyte, canonical_limit, v.unit, v.entered_unit, f"labs.{v.analyte}")
    return Quantity(_plain(shown), v.entered_unit)


#: A lymph node is measurable with a short axis >= 15 mm (RECIST 1.1, Eisenhauer 2009, 3.1.1):
#: RECIST's definition, not a protocol threshold.
NODAL_MEASURABLE_SHORT_AXIS_MM = Decimal(15)


# ---------------------------------------------------------------------------------------------
# Inclusion criteria


def _age(c: _Ctx) -> Outcome:
    age, minimum = c.patient.age, c.protocol.eligibility.age_min_years
    if age is None:
        return _missing("age")
    if age >= minimum:
        return "met", _r(
            "age_ok", N_("age {age} years (at least {minimum})"), age=age, minimum=minimum
        )
    return "not_met", _r(
        "age_low",
        N_("age {age} years — the patient must be at least {minimum} (criterion {criterion})"),
        age=age,
        minimum=minimum,
        criterion="I1",
    )


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
    reason = _r(
        "histology",
        N_(
            "primary site {site} ({intestinal}), {differentiation} {tumour_type} {grade}; "
            "accepted: intestinal well-differentiated NET {grades}"
        ),
        site=h.primary_site,
        intestinal=Word(N_("intestinal") if ok_site else N_("not intestinal")),
        differentiation=Word(_DIFFERENTIATION.get(h.differentiation, h.differentiation)),
        tumour_type=h.tumour_type,
        grade=h.grade,
        grades="/".join(e.histology_grades_accepted),
    )
    return _bool(ok), reason


_DIFFERENTIATION = {"well": N_("well-differentiated"), "poor": N_("poorly differentiated")}


def _first_prrt_cycles(c: _Ctx) -> Outcome:
    n, required = c.patient.first_prrt.cycles, c.protocol.eligibility.first_prrt_cycles
    if n is None:
        return _missing("first_prrt.cycles")
    return _bool(n == required), _r(
        "first_prrt_cycles",
        N_("{n} cycles of first PRRT (required: {required})"),
        n=n,
        required=required,
    )


def _at_least(
    key: str, ok: bool, value: Decimal, minimum: Any, ok_text: str, low_text: str, cid: str
) -> Outcome:
    return _bool(ok), _r(
        key + ("_ok" if ok else "_low"),
        ok_text if ok else low_text,
        value=_plain(value),
        minimum=minimum,
        criterion=cid,
    )


def _first_prrt_control(c: _Ctx) -> Outcome:
    months = c.patient.first_prrt.disease_control_months
    minimum = c.protocol.eligibility.first_prrt_disease_control_min_months
    if months is None:
        return _missing("first_prrt.disease_control_months")
    return _at_least(
        "disease_control",
        months >= minimum,
        months,
        minimum,
        N_("disease control {value} months (at least {minimum})"),
        N_(
            "disease control {value} months — at least {minimum} are required (criterion {criterion})"
        ),
        "I4",
    )


_PROGRESSION = {
    "radiological": N_("radiological"),
    "clinical": N_("clinical"),
    "biological": N_("biological"),
}


def _progression(c: _Ctx) -> Outcome:
    p = c.patient.progression
    flags = {"radiological": p.radiological, "clinical": p.clinical, "biological": p.biological}
    present = [k for k, v in flags.items() if v]
    if present:
        return "met", _r(
            "progression",
            N_("progression after first PRRT: {kinds}"),
            kinds=[Word(_PROGRESSION[k]) for k in present],
        )
    if all(v is False for v in flags.values()):
        return "not_met", _r(
            "no_progression", N_("no clinical, biological or radiological progression recorded")
        )
    return _missing(*(f"progression.{k}" for k, v in flags.items() if v is None))


def _tumour_board(c: _Ctx) -> Outcome:
    d = c.patient.second_prrt.tumour_board_decision
    if d is None:
        return _missing("second_prrt.tumour_board_decision")
    return _bool(d), _r(
        "tumour_board", N_("retreatment decision by tumour board: {decision}"), decision=d
    )


def _ecog(c: _Ctx) -> Outcome:
    ecog, maximum = c.patient.ecog, c.protocol.eligibility.ecog_max
    if ecog is None:
        return _missing("ecog")
    if ecog <= maximum:
        return "met", _r(
            "ecog_ok", N_("ECOG {ecog} (at most {maximum})"), ecog=ecog, maximum=maximum
        )
    return "not_met", _r(
        "ecog_high",
        N_("ECOG {ecog} — it must be at most {maximum} (criterion {criterion})"),
        ecog=ecog,
        maximum=maximum,
        criterion="I7",
    )


def _life_expectancy(c: _Ctx) -> Outcome:
    m, minimum = c.patient.life_expectancy_months, c.protocol.eligibility.life_expectancy_min_months
    if m is None:
        return _missing("life_expectancy_months")
    return _at_least(
        "life_expectancy",
        m >= minimum,
        m,
        minimum,
        N_("life expectancy {value} months (at least {minimum})"),
        N_(
            "life expectancy {value} months — at least {minimum} are required (criterion {criterion})"
        ),
        "I8",
    )


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
    planned = c.patient.planned_randomization_date is not None
    timing = _r(
        "sstr_timing_ok" if in_time else "sstr_timing_out",
        (
            (
                N_(
                    "SSTR imaging on {date} (within {months} months before the planned randomization on {reference}, i.e. from {earliest})"
                )
                if in_time
                else N_(
                    "SSTR imaging on {date} — it must be within {months} months before the planned randomization on {reference}, i.e. from {earliest} (criterion {criterion})"
                )
            )
            if planned
            else (
                N_(
                    "SSTR imaging on {date} (within {months} months before the assessment on {reference}, i.e. from {earliest})"
                )
                if in_time
                else N_(
                    "SSTR imaging on {date} — it must be within {months} months before the assessment on {reference}, i.e. from {earliest} (criterion {criterion})"
                )
            )
        ),
        date=s.date,
        months=e.sstr_imaging_max_months_before_randomization,
        reference=ref,
        earliest=earliest,
        criterion="I9",
    )
    uptake = _r(
        "sstr_uptake_ok" if positive else "sstr_uptake_low",
        N_("{percent} % of lesions positive (at least {minimum} %)")
        if positive
        else N_(
            "{percent} % of lesions positive — at least {minimum} % are required (criterion {criterion})"
        ),
        percent=_plain(s.positive_lesion_fraction * 100),
        minimum=_plain(e.sstr_positive_fraction_min * 100),
        criterion="I9",
    )
    return _bool(in_time and positive), _parts([timing, uptake])


def _parts(parts: list[Reason]) -> Reason:
    """Several findings of one criterion, shown one after the other (``; ``)."""
    return _r("parts", "{parts}", parts=Joined(tuple(parts), "; "))


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
    reason = _r(
        "lesions",
        N_(
            "{count} lesion(s) (at least {minimum} required); measurable (longest diameter "
            "at least {diameter} mm, or a node's short axis at least {nodal} mm): {measurable}"
        ),
        count=len(lesions),
        minimum=e.lesions_min_count,
        diameter=e.measurable_lesion_min_diameter_mm,
        nodal=nodal_min,
        measurable=measurable if measurable else Word(N_("none")),
    )
    return _bool(ok), reason


def _marrow(c: _Ctx) -> Outcome:
    e = c.protocol.eligibility
    parts: list[Reason] = []
    results: list[bool] = []
    missing: list[str] = []
    for name, limit, exclusive in (
        ("hemoglobin", e.hemoglobin_min_exclusive_g_dl, True),
        ("neutrophils", e.neutrophils_min_10e9_l, False),
        ("platelets", e.platelets_min_10e9_l, False),
    ):
        value = lab(c.patient, name)
        if value is None:
            missing.append(f"labs.{name}")
            continue
        ok = value.value > limit if exclusive else value.value >= limit
        results.append(ok)
        if exclusive:
            key, text = (
                ("lab_above", N_("{field}: {value} (more than {limit})"))
                if ok
                else (
                    "lab_not_above",
                    N_("{field}: {value} — it must be more than {limit} (criterion {criterion})"),
                )
            )
        else:
            key, text = (
                ("lab_at_least", N_("{field}: {value} (at least {limit})"))
                if ok
                else (
                    "lab_below",
                    N_("{field}: {value} — it must be at least {limit} (criterion {criterion})"),
                )
            )
        parts.append(
            _r(
                key,
                text,
                field=Field(f"labs.{name}"),
                value=_lab(value),
                limit=_limit(value, limit),
                criterion="I11",
            )
        )
    if not all(results):
        return "not_met", _parts(parts)
    if missing:
        return "unknown", _parts([*parts, _missing_reason(*missing)])
    return "met", _parts(parts)


def _consent(c: _Ctx) -> Outcome:
    if c.patient.consent is None:
        return _missing("consent")
    signed, on = c.patient.consent.signed, c.patient.consent.date
    if signed and on:
        return "met", _r("consent_signed_on", N_("informed consent signed on {date}"), date=on)
    if signed:
        return "met", _r("consent_signed", N_("informed consent signed"))
    return "not_met", _r(
        "consent_not_signed",
        N_("informed consent not signed (criterion {criterion})"),
        criterion="I12",
    )


def _second_prrt_done(c: _Ctx) -> Outcome:
    n = c.patient.second_prrt.cycles_completed
    required = c.protocol.eligibility.second_prrt_cycles_before_randomization
    if n is None:
        return _missing("second_prrt.cycles_completed")
    return _bool(n >= required), _r(
        "second_prrt_cycles",
        N_("{n} cycle(s) of second PRRT completed (required: {required})"),
        n=n,
        required=required,
    )


# ---------------------------------------------------------------------------------------------
# Exclusion criteria (met = the patient is excluded)


def _no_response(c: _Ctx) -> Outcome:
    r = c.patient.first_prrt.best_response
    accepted = c.protocol.eligibility.first_prrt_response_accepted
    if r is None:
        return _missing("first_prrt.best_response")
    return _bool(r not in accepted), _r(
        "best_response",
        N_("best response to first PRRT {response} (a response is {accepted})"),
        response=r,
        accepted="/".join(accepted),
    )


def _progression_after_second(c: _Ctx) -> Outcome:
    s = c.patient.second_prrt
    if s.radiological_progression is None:
        return _missing("second_prrt.radiological_progression")
    on = s.assessment_date
    if s.radiological_progression:
        if on:
            return "met", _r(
                "progression_second_on",
                N_("RECIST 1.1 progression at the pre-randomization assessment on {date}"),
                date=on,
            )
        return "met", _r(
            "progression_second",
            N_("RECIST 1.1 progression at the pre-randomization assessment"),
        )
    if on:
        return "not_met", _r(
            "no_progression_second_on",
            N_("no radiological progression at the pre-randomization assessment on {date}"),
            date=on,
        )
    return "not_met", _r(
        "no_progression_second",
        N_("no radiological progression at the pre-randomization assessment"),
    )


_TOXICITY = {"haematotoxicity": N_("haematotoxicity"), "nephrotoxicity": N_("nephrotoxicity")}


def _g4_toxicity(c: _Ctx) -> Outcome:
    f = c.patient.first_prrt
    flags = {"haematotoxicity": f.g4_hematotoxicity, "nephrotoxicity": f.g4_nephrotoxicity}
    present = [k for k, v in flags.items() if v]
    if present:
        return "met", _r(
            "g4_toxicity",
            N_("grade 4 {toxicities} during first PRRT"),
            toxicities=[Word(_TOXICITY[k]) for k in present],
        )
    if all(v is False for v in flags.values()):
        return "not_met", _r(
            "no_g4_toxicity", N_("no grade 4 haemato- or nephrotoxicity during first PRRT")
        )
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
        _r("ae_grade", N_("{term} grade {grade}"), term=ae.term, grade=ae.grade)
        for ae in aes
        if not ae.resolved
        and ae.grade > e.unresolved_ae_max_grade
        and ae.term.strip().lower() not in exceptions
    ]
    worst = e.unresolved_ae_max_grade + 1
    if offending:
        return "met", _r(
            "unresolved_ae",
            N_("unresolved adverse event(s) of grade {grade} or more: {events}"),
            grade=worst,
            events=offending,
        )
    return "not_met", _r(
        "no_unresolved_ae",
        N_("no unresolved adverse event of grade {grade} or more ({exceptions} excepted)"),
        grade=worst,
        exceptions=", ".join(e.unresolved_ae_exceptions),
    )


def _pancreatic(c: _Ctx) -> Outcome:
    site = c.patient.histology.primary_site
    if site is None:
        return _missing("histology.primary_site")
    is_pancreas = "pancrea" in site.lower()
    return _bool(is_pancreas), _r("primary_site", N_("primary site {site}"), site=site)


def _nec(c: _Ctx) -> Outcome:
    h = c.patient.histology
    if h.tumour_type == "NEC" or h.differentiation == "poor":
        return "met", _r(
            "tumour",
            N_("{differentiation} {tumour_type}"),
            differentiation=Word(
                _DIFFERENTIATION.get(h.differentiation or "", h.differentiation or "")
            ),
            tumour_type=h.tumour_type or "",
        )
    if h.tumour_type is None or h.differentiation is None:
        return _missing(
            *(f"histology.{n}" for n in ("tumour_type", "differentiation") if getattr(h, n) is None)
        )
    return "not_met", _r(
        "tumour",
        N_("{differentiation} {tumour_type}"),
        differentiation=Word(_DIFFERENTIATION.get(h.differentiation, h.differentiation)),
        tumour_type=h.tumour_type,
    )


def _ebrt(c: _Ctx) -> Outcome:
    fraction = c.patient.history.ebrt_marrow_fraction
    limit = c.protocol.eligibility.ebrt_marrow_max_fraction
    if fraction is None:
        return _missing("history.ebrt_marrow_fraction")
    over = fraction > limit
    return _bool(over), _r(
        "ebrt_over" if over else "ebrt_ok",
        N_(
            "external beam radiotherapy to {percent} % of the bone marrow — more than {limit} % excludes (criterion {criterion})"
        )
        if over
        else N_("external beam radiotherapy to {percent} % of the bone marrow (at most {limit} %)"),
        percent=_plain(fraction * 100),
        limit=_plain(limit * 100),
        criterion="E7",
    )


def _renal(c: _Ctx) -> Outcome:
    nephrotic = c.patient.history.nephrotic_syndrome
    limit = c.protocol.eligibility.egfr_min_ml_min_1_73m2
    parts: list[Reason] = []
    low: bool | None = None
    if c.egfr is not None:
        low = c.egfr < limit
        parts.append(
            _r(
                "egfr_low" if low else "egfr_ok",
                N_("eGFR {egfr} — below {limit} excludes (criterion {criterion}); {method}")
                if low
                else N_("eGFR {egfr} (at least {limit}); {method}"),
                egfr=Quantity(_plain(c.egfr), "mL/min/1.73m2"),
                limit=Quantity(_plain(limit), "mL/min/1.73m2"),
                criterion="E8",
                method=c.egfr_reason,
            )
        )
    if nephrotic:
        parts.append(_r("nephrotic", N_("nephrotic syndrome")))
    elif nephrotic is False:
        parts.append(_r("no_nephrotic", N_("no nephrotic syndrome")))
    if low or nephrotic:
        return "met", _parts(parts)
    if low is None or nephrotic is None:
        missing = []
        if low is None:
            missing.append(c.egfr_reason)
        if nephrotic is None:
            missing.append(_missing_reason("history.nephrotic_syndrome"))
        return "unknown", _parts([*parts, *missing])
    return "not_met", _parts(parts)


def _liver_metastases(p: PatientFile) -> bool | None:
    if p.lesions is None:
        return None
    return any(les.organ.strip().lower() == "liver" for les in p.lesions)


def _hepatic(c: _Ctx) -> Outcome:
    e = c.protocol.eligibility
    liver_mets = _liver_metastases(c.patient)
    parts: list[Reason] = []
    flags: list[bool] = []
    missing: list[str] = []
    undecided: list[Reason] = []
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
            undecided.append(
                _r(
                    "liver_metastases_unknown",
                    N_(
                        "missing: {field} (liver metastases decide the {limit} or {limit_liver} × ULN limit)"
                    ),
                    field=Field("lesions"),
                    limit=e.transaminases_max_x_uln,
                    limit_liver=e.transaminases_max_x_uln_liver_metastases,
                )
            )
            continue
        else:
            limit = (
                e.transaminases_max_x_uln_liver_metastases
                if liver_mets
                else e.transaminases_max_x_uln
            )
        ratio = (entry.value / entry.uln).quantize(Decimal("0.01"))
        over = entry.value > limit * entry.uln
        flags.append(over)
        liver = name != "bilirubin" and bool(liver_mets)
        if over:
            text = (
                N_(
                    "{field}: {value} = {ratio} × ULN — more than {limit} × ULN with liver metastases excludes (criterion {criterion})"
                )
                if liver
                else N_(
                    "{field}: {value} = {ratio} × ULN — more than {limit} × ULN excludes (criterion {criterion})"
                )
            )
        else:
            text = (
                N_("{field}: {value} = {ratio} × ULN (at most {limit} × ULN with liver metastases)")
                if liver
                else N_("{field}: {value} = {ratio} × ULN (at most {limit} × ULN)")
            )
        parts.append(
            _r(
                "liver_over" if over else "liver_ok",
                text,
                field=Field(f"labs.{name}"),
                value=Quantity(_plain(entry.value), entry.unit),
                ratio=ratio,
                limit=limit,
                criterion="E9",
            )
        )
    if any(flags):
        return "met", _parts(parts)
    if missing or undecided:
        extra = [_missing_reason(*missing)] if missing else []
        return "unknown", _parts([*parts, *extra, *undecided])
    return "not_met", _parts(parts)


def _uncontrolled(c: _Ctx) -> Outcome:
    v = c.patient.history.uncontrolled_concomitant_disease
    if v is None:
        return _missing("history.uncontrolled_concomitant_disease")
    if v:
        return "met", _r("uncontrolled", N_("uncontrolled concomitant disease"))
    return "not_met", _r("controlled", N_("no uncontrolled concomitant disease"))


def _brain(c: _Ctx) -> Outcome:
    b = c.patient.history.brain_metastases
    weeks_min = c.protocol.eligibility.brain_metastases_stable_min_weeks
    if b is None:
        return _missing("history.brain_metastases")
    if not b.present:
        return "not_met", _r("no_brain_metastases", N_("no brain metastases"))
    if b.treated is False:
        return "met", _r("untreated_brain_metastases", N_("untreated brain metastases"))
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
    reason = _r(
        "brain_metastases",
        N_(
            "treated brain metastases stable since {since} ({days} days; at least {weeks} "
            "weeks = {min_days} days required); stability imaging {documented}"
        ),
        since=b.stable_since,
        days=days,
        weeks=weeks_min,
        min_days=weeks_min * 7,
        documented=Word(
            N_("documented") if b.stability_imaging_documented else N_("not documented")
        ),
    )
    return _bool(not ok), reason


def _other_cancer(c: _Ctx) -> Outcome:
    cancers, e = c.patient.history.other_cancers, c.protocol.eligibility
    if cancers is None:
        return _missing("history.other_cancers")
    since = add_months(c.patient.assessment_date, -12 * e.other_cancer_lookback_years)
    offending: list[Reason] = []
    for k in cancers:
        if k.diagnosis_date < since:
            continue
        if _excepted_cancer(k.site, k.treated_controlled, e.other_cancer_exceptions):
            continue
        offending.append(
            _r("cancer", N_("{site} diagnosed on {date}"), site=k.site, date=k.diagnosis_date)
        )
    if offending:
        return "met", _r(
            "other_cancer",
            N_("other cancer within {years} years (since {since}): {cancers}"),
            years=e.other_cancer_lookback_years,
            since=since,
            cancers=offending,
        )
    return "not_met", _r(
        "no_other_cancer",
        N_("no other cancer since {since} apart from the exceptions ({exceptions})"),
        since=since,
        exceptions=", ".join(x.replace("_", " ") for x in e.other_cancer_exceptions),
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
            raise invalid(
                f"eligibility.criteria.{kind}.{cid}",
                "no_rule",
                N_("no rule evaluates it"),
                tuple(RULES),
            )
        if rule.kind != kind:
            raise invalid(
                f"eligibility.criteria.{kind}.{cid}",
                "rule_of_other_kind",
                N_("the rule of {criterion} is an {kind} rule"),
                criterion=cid,
                kind=rule.kind,
            )
        out.append(Criterion(cid, kind, e.text(cid), rule.inputs, rule.rule, rule.stage))
    return tuple(out)


def estimate_egfr(patient: PatientFile, protocol: Protocol) -> tuple[Decimal | None, str]:
    """The eGFR used by the protocol (its ``egfr_equation`` from creatinine, MDRD-IDMS-175 for
    ReLUTH; a reported eGFR if no creatinine), rounded to 0.1, and a sentence saying how it
    was obtained (English; :func:`egfr_estimate` gives it as a :class:`Reason`)."""
    value, how = egfr_estimate(patient, protocol)
    return value, how.english()


def egfr_estimate(patient: PatientFile, protocol: Protocol) -> tuple[Decimal | None, Reason]:
    """:func:`estimate_egfr` with the sentence as a reason (key and values)."""
    creat = lab(patient, "creatinine")
    if creat is not None:
        missing = [n for n in ("age", "sex") if getattr(patient, n) is None]
        if missing:
            return None, _r(
                "egfr_missing",
                N_("missing for eGFR: {fields}"),
                fields=[Field(n) for n in missing],
            )
        if creat.value == 0:
            return None, _r("egfr_zero", N_("creatinine of 0 cannot give an eGFR"))
        assert patient.age is not None
        equation = protocol.eligibility.egfr_equation
        # The race factor is refused at load (the patient file records no race).
        value = EQUATIONS[equation](
            creat.value, Decimal(patient.age), female=patient.sex == "female"
        )
        return reported(value), _r(
            "egfr_equation",
            N_("{equation} from creatinine {creatinine}, age {age}, {sex}"),
            equation=equation,
            creatinine=_lab(creat),
            age=patient.age,
            sex=Word(_SEX.get(patient.sex or "", patient.sex or "")),
        )
    given = lab(patient, "egfr")
    if given is not None:
        return reported(given.value), _r("egfr_reported", N_("eGFR as reported"))
    return None, _r(
        "egfr_no_creatinine",
        N_("missing: {creatinine} (or {egfr})"),
        creatinine=Field("labs.creatinine"),
        egfr=Field("labs.egfr"),
    )


_SEX = {"female": N_("female"), "male": N_("male")}


def recheck_time_bound(
    patient: PatientFile, on: dt.date, protocol: Protocol
) -> tuple[CriterionResult, ...]:
    """The criteria the protocol file names as time-bound
    (``eligibility.time_bound_criteria``, e.g. I9: SSTR imaging within 4 months before
    randomization) evaluated again with ``on`` — the actual randomization date — as the
    reference date; pure. Returns the ones that no longer pass."""
    wanted = set(protocol.eligibility.time_bound_criteria)
    moved = patient.model_copy(update={"planned_randomization_date": on})
    egfr, egfr_reason = egfr_estimate(moved, protocol)
    ctx = _Ctx(patient=moved, protocol=protocol, egfr=egfr, egfr_reason=egfr_reason)
    failed = []
    for crit in criteria(protocol):
        if crit.id not in wanted:
            continue
        result, reason = crit.rule(ctx)
        passes = (result == "met") if crit.kind == "inclusion" else (result == "not_met")
        if not passes:
            failed.append(CriterionResult.of(crit, result, passes, reason))
    return tuple(failed)


def check_eligibility(
    patient: PatientFile,
    protocol: Protocol,
    stage: Stage = "randomization",
) -> EligibilityResult:
    """Evaluate every criterion of ``protocol`` for ``stage``; pure (the reference date comes
    from the file)."""
    egfr, egfr_reason = egfr_estimate(patient, protocol)
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
        results.append(CriterionResult.of(crit, result, passes, reason))
    if any(r.passes is False for r in results):
        status: Status = "not_eligible"
    elif any(r.passes is None for r in results):
        status = "incomplete"
    else:
        status = "eligible"
    derived = {
        "egfr_ml_min_1_73m2": _fmt(egfr) if egfr is not None else "",
        "egfr_method": egfr_reason.english(),
    }
    return EligibilityResult(
        patient_id=patient.patient_id,
        status=status,
        stage=stage,
        protocol_version=protocol.label,
        criteria=tuple(results),
        derived=derived,
    )
