"""Cumulative absorbed dose and BED per organ over all cycles of a patient (first PRRT, second
PRRT, randomized cycles: at most eight), with warnings against configurable limits.

Region names are mapped to organs by the organ-name table (``organs.py``), so "Reins",
"kidneys" and a left/right pair all cumulate as the organ ``kidneys``. A cycle that has the
parts of a combined organ but not the organ itself (``kidney_left`` and ``kidney_right``, no
``kidneys``) gets the combined organ derived: absorbed dose = energy over mass (the
mass-weighted mean of the parts; equal weights, with a note, when a mass is missing), BED = the
mass-weighted mean of the parts' BED (the mean BED over the volume for a uniform dose per part).

Limits (data/limits.yaml) state their source. A limit stated for an organ is checked on the
organ and on each of its parts (a kidney alone reaching the kidney limit is warned: with
asymmetric uptake the hotter kidney reaches it first). A warning is raised when a cumulative
value reaches or exceeds a limit; the comparison is exact on the decimal value as reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from importlib import resources

import yaml

from reluth.dosimetry.bed import BedParameters, bed_gy
from reluth.dosimetry.notes import Note, note, rounded
from reluth.dosimetry.notes import organ as organ_word
from reluth.dosimetry.organs import OrganNames, default_organ_names
from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import Quantity, invalid

MAX_CYCLES = 8


@dataclass(frozen=True)
class Limit:
    organ: str
    quantity: str  # "absorbed_dose_gy" or "bed_gy"
    limit_gy: Decimal
    source: str
    applies_to: str = "all"  # "all", "risk_factors", "no_risk_factors"


@dataclass(frozen=True)
class OrganCycleDose:
    """One organ's dose in one cycle. ``bed_gy`` is given only when it cannot be computed from
    the dose and one effective half-life (a combined organ); ``mass_g`` weights the parts of a
    combined organ."""

    absorbed_dose_gy: float
    effective_half_life_h: float | None = None
    mass_g: float | None = None
    bed_gy: float | None = None


@dataclass(frozen=True)
class CycleDoses:
    label: str
    doses: Mapping[str, OrganCycleDose]


@dataclass(frozen=True)
class LimitWarning:
    organ: str
    quantity: str
    value_gy: float
    limit_gy: float
    source: str
    message: str


@dataclass(frozen=True)
class OrganCumulative:
    organ: str
    cycles: list[str]
    absorbed_dose_gy: list[float]
    bed_gy: list[float | None] | None
    cumulative_absorbed_dose_gy: float
    cumulative_bed_gy: float | None


@dataclass(frozen=True)
class CumulativeResult:
    organs: dict[str, OrganCumulative]
    warnings: list[LimitWarning] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # Note: English carrying its key


@lru_cache(maxsize=1)
def default_limits() -> tuple[Limit, ...]:
    text = (
        resources.files("reluth.dosimetry")
        .joinpath("data")
        .joinpath("limits.yaml")
        .read_text("utf-8")
    )
    return tuple(parse_limits(yaml.safe_load(text)))


def parse_limits(doc: object) -> list[Limit]:
    if not isinstance(doc, dict) or not isinstance(doc.get("limits"), list):
        raise invalid(
            "limits",
            "expected_mapping_limits_list",
            N_("expected a mapping with a 'limits' list"),
            N_("see limits.yaml"),
        )
    out = []
    for i, item in enumerate(doc["limits"]):
        try:
            lim = Limit(
                str(item["organ"]),
                str(item["quantity"]),
                Decimal(str(item["limit_gy"])),
                str(item.get("source", "unstated")),
                str(item.get("applies_to", "all")),
            )
        except (KeyError, TypeError, ArithmeticError):
            raise invalid(
                f"limits[{i}]",
                "needs_organ_quantity_limit_gy",
                N_("needs organ, quantity, limit_gy"),
                N_("see limits.yaml"),
            ) from None
        if lim.quantity not in ("absorbed_dose_gy", "bed_gy"):
            raise ValidationError(f"limits[{i}].quantity", lim.quantity, "absorbed_dose_gy, bed_gy")
        out.append(lim)
    return out


def reaches(value_gy: float, limit_gy: Decimal, decimals: int = 2) -> bool:
    """True when the value, rounded as reported (``decimals`` places), reaches the limit."""
    value = Decimal(repr(float(value_gy)))
    if not value.is_finite():
        raise invalid(
            "dose_gy",
            "non_finite_value",
            N_("non-finite value {value_gy}"),
            N_("a finite dose in Gy"),
            value_gy=repr(value_gy),
        )
    if value >= limit_gy + 1:  # clearly above or below: no rounding needed (none overflows)
        return True
    if value <= limit_gy - 1:
        return False
    return value.quantize(Decimal(1).scaleb(-decimals)) >= limit_gy


def canonical_cycle(
    cycle: CycleDoses,
    names: OrganNames,
    bed_parameters: Mapping[str, BedParameters],
    notes: list[str],
) -> CycleDoses:
    """A cycle keyed by organ (aliases mapped) with the combined organs derived from their
    parts when the cycle lacks them."""
    doses: dict[str, OrganCycleDose] = {}
    source: dict[str, str] = {}
    for name, dose in cycle.doses.items():
        organ = names.canonical(name)
        if organ in doses:
            raise invalid(
                f"cycles.{cycle.label}",
                "both_name_organ",
                N_("{source} and {name} both name the organ {organ}"),
                N_("one dose per organ and cycle"),
                source=repr(source[organ]),
                name=repr(name),
                organ=str(organ),
            )
        doses[organ] = dose
        source[organ] = name
    for parent, parts in names.combined.items():
        if parent in doses or not all(p in doses for p in parts):
            continue
        members = [doses[p] for p in parts]
        masses = [m.mass_g for m in members]
        mass_known = all(m is not None and m > 0 for m in masses)
        if not mass_known:
            weights = [1.0] * len(members)
            notes.append(
                note(
                    "dosimetry.combined_equal_weights",
                    N_(
                        "{organ} ({cycle}): derived from {parts} with equal weights (a part's "
                        "mass is missing)"
                    ),
                    organ=organ_word(parent),
                    cycle=cycle.label,
                    parts=[organ_word(p) for p in parts],
                )
            )
        else:
            weights = [float(m) for m in masses if m is not None]
        total = sum(weights)
        mean_dose = sum(w * m.absorbed_dose_gy for w, m in zip(weights, members, strict=True))
        params = _bed_params(parent, names, bed_parameters)
        bed = None
        if params is not None:
            beds = [_cycle_bed(m, params) for m in members]
            if all(b is not None for b in beds):
                bed = sum(w * b for w, b in zip(weights, beds, strict=True) if b is not None)
                bed /= total
        doses[parent] = OrganCycleDose(mean_dose / total, None, total if mass_known else None, bed)
    return CycleDoses(cycle.label, doses)


def _bed_params(
    organ: str, names: OrganNames, bed_parameters: Mapping[str, BedParameters]
) -> BedParameters | None:
    if organ in bed_parameters:
        return bed_parameters[organ]
    parent = names.parent_of(organ)
    return None if parent is None else bed_parameters.get(parent)


def _cycle_bed(dose: OrganCycleDose, params: BedParameters) -> float | None:
    if dose.bed_gy is not None:
        return dose.bed_gy
    if dose.effective_half_life_h is None:
        return None
    return bed_gy(dose.absorbed_dose_gy, dose.effective_half_life_h, params)


def _limit_reached(organ: str, lim: Limit, value: float) -> Note:
    """The warning of a limit reached (by the organ it is stated for, or by one of its parts)."""
    values = {
        "organ": organ_word(organ),
        "value": rounded(value, "Gy", 2),
        "limit": Quantity(lim.limit_gy, "Gy"),
        "stated_for": organ_word(lim.organ),
    }
    if lim.quantity == "absorbed_dose_gy":
        if organ == lim.organ:
            return note(
                "dosimetry.limit_reached",
                N_("cumulative {organ} absorbed dose {value} reaches the {limit} limit"),
                **values,
            )
        return note(
            "dosimetry.limit_reached_by_part",
            N_(
                "cumulative {organ} absorbed dose {value} reaches the {limit} limit stated "
                "for {stated_for}"
            ),
            **values,
        )
    if organ == lim.organ:
        return note(
            "dosimetry.bed_limit_reached",
            N_("cumulative {organ} BED {value} reaches the {limit} limit"),
            **values,
        )
    return note(
        "dosimetry.bed_limit_reached_by_part",
        N_("cumulative {organ} BED {value} reaches the {limit} limit stated for {stated_for}"),
        **values,
    )


def cumulate(
    cycles: Sequence[CycleDoses],
    bed_parameters: Mapping[str, BedParameters] | None = None,
    limits: Sequence[Limit] | None = None,
    risk_factors: bool = False,
    names: OrganNames | None = None,
) -> CumulativeResult:
    """Per-organ doses per cycle (region names mapped to organs, combined organs derived),
    BED where parameters are given (kidneys and their parts by default), sums, and limit
    warnings."""
    if not cycles:
        raise invalid(
            "cycles",
            "no_cycle_given",
            N_("no cycle given"),
            N_("1 to {max_cycles} cycles"),
            max_cycles=str(MAX_CYCLES),
        )
    if len(cycles) > MAX_CYCLES:
        raise invalid(
            "cycles",
            "cycles",
            N_("{n_cycles} cycles"),
            N_("at most {max_cycles}"),
            n_cycles=len(cycles),
            max_cycles=str(MAX_CYCLES),
        )
    labels = [c.label for c in cycles]
    if len(set(labels)) != len(labels):
        raise invalid(
            "cycles",
            "duplicate_cycle_labels",
            N_("duplicate cycle labels {labels}"),
            N_("unique labels"),
            labels=str(labels),
        )
    table = default_organ_names() if names is None else names
    params = {"kidneys": BedParameters()} if bed_parameters is None else dict(bed_parameters)
    lims = default_limits() if limits is None else tuple(limits)
    notes: list[str] = []
    cycles = [canonical_cycle(c, table, params, notes) for c in cycles]
    organ_names = sorted({o for c in cycles for o in c.doses})
    result: dict[str, OrganCumulative] = {}
    for organ in organ_names:
        present = [(c.label, c.doses[organ]) for c in cycles if organ in c.doses]
        doses = [d.absorbed_dose_gy for _, d in present]
        beds: list[float | None] | None = None
        organ_params = _bed_params(organ, table, params)
        if organ_params is not None:
            beds = [_cycle_bed(d, organ_params) for _, d in present]
            missing_bed = [lbl for (lbl, _), b in zip(present, beds, strict=True) if b is None]
            if missing_bed:
                notes.append(
                    note(
                        "dosimetry.cumulative_bed_missing",
                        N_(
                            "{organ}: cumulative BED not computed, no effective half-life for "
                            "cycle(s) {cycles}"
                        ),
                        organ=organ_word(organ),
                        cycles=missing_bed,
                    )
                )
        if len(present) < len(cycles) and table.parent_of(organ) is not None:
            missing = [c.label for c in cycles if organ not in c.doses]
            notes.append(
                note(
                    "dosimetry.cumulative_cycle_missing",
                    N_("{organ}: no dose for cycle(s) {cycles}; sum over the others"),
                    organ=organ_word(organ),
                    cycles=missing,
                )
            )
        known = None if beds is None or None in beds else sum(b for b in beds if b is not None)
        result[organ] = OrganCumulative(
            organ,
            [lbl for lbl, _ in present],
            doses,
            beds,
            sum(doses),
            known,
        )
    warnings: list[LimitWarning] = []
    for lim in lims:
        if lim.applies_to == "risk_factors" and not risk_factors:
            continue
        if lim.applies_to == "no_risk_factors" and risk_factors:
            continue
        for organ in table.family(lim.organ):
            oc = result.get(organ)
            if oc is None:
                continue
            value = (
                oc.cumulative_absorbed_dose_gy
                if lim.quantity == "absorbed_dose_gy"
                else oc.cumulative_bed_gy
            )
            if value is None or not reaches(value, lim.limit_gy):
                continue
            warnings.append(
                LimitWarning(
                    organ,
                    lim.quantity,
                    value,
                    float(lim.limit_gy),
                    lim.source,
                    _limit_reached(organ, lim, value),
                )
            )
    return CumulativeResult(result, warnings, notes)
