"""Cumulative absorbed dose and BED per organ over all cycles of a patient (first PRRT, second
PRRT, randomized cycles: at most eight), with warnings against configurable limits.

Limits (data/limits.yaml) state their source. A warning is raised when a cumulative value
reaches or exceeds a limit; the comparison is exact on the decimal value as reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from importlib import resources

import yaml

from reluth.dosimetry.bed import BedParameters, bed_gy
from reluth.errors import ValidationError

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
    absorbed_dose_gy: float
    effective_half_life_h: float | None = None


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
    notes: list[str] = field(default_factory=list)


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
        raise ValidationError(
            "limits", "expected a mapping with a 'limits' list", "see limits.yaml"
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
            raise ValidationError(
                f"limits[{i}]", "needs organ, quantity, limit_gy", "see limits.yaml"
            ) from None
        if lim.quantity not in ("absorbed_dose_gy", "bed_gy"):
            raise ValidationError(f"limits[{i}].quantity", lim.quantity, "absorbed_dose_gy, bed_gy")
        out.append(lim)
    return out


def reaches(value_gy: float, limit_gy: Decimal, decimals: int = 2) -> bool:
    """True when the value, rounded as reported (``decimals`` places), reaches the limit."""
    value = Decimal(repr(float(value_gy)))
    if not value.is_finite():
        raise ValidationError("dose_gy", f"non-finite value {value_gy!r}", "a finite dose in Gy")
    if value >= limit_gy + 1:  # clearly above or below: no rounding needed (none overflows)
        return True
    if value <= limit_gy - 1:
        return False
    return value.quantize(Decimal(1).scaleb(-decimals)) >= limit_gy


def cumulate(
    cycles: Sequence[CycleDoses],
    bed_parameters: Mapping[str, BedParameters] | None = None,
    limits: Sequence[Limit] | None = None,
    risk_factors: bool = False,
) -> CumulativeResult:
    """Per-organ doses per cycle, BED where parameters are given (kidneys by default), sums,
    and limit warnings."""
    if not cycles:
        raise ValidationError("cycles", "no cycle given", f"1 to {MAX_CYCLES} cycles")
    if len(cycles) > MAX_CYCLES:
        raise ValidationError("cycles", f"{len(cycles)} cycles", f"at most {MAX_CYCLES}")
    labels = [c.label for c in cycles]
    if len(set(labels)) != len(labels):
        raise ValidationError("cycles", f"duplicate cycle labels {labels}", "unique labels")
    params = {"kidneys": BedParameters()} if bed_parameters is None else dict(bed_parameters)
    lims = default_limits() if limits is None else tuple(limits)
    organ_names = sorted({o for c in cycles for o in c.doses})
    notes: list[str] = []
    result: dict[str, OrganCumulative] = {}
    for organ in organ_names:
        present = [(c.label, c.doses[organ]) for c in cycles if organ in c.doses]
        doses = [d.absorbed_dose_gy for _, d in present]
        beds: list[float | None] | None = None
        if organ in params:
            beds = [
                None
                if d.effective_half_life_h is None
                else bed_gy(d.absorbed_dose_gy, d.effective_half_life_h, params[organ])
                for _, d in present
            ]
            missing_bed = [lbl for (lbl, _), b in zip(present, beds, strict=True) if b is None]
            if missing_bed:
                notes.append(
                    f"{organ}: cumulative BED not computed, no effective half-life for "
                    f"cycle(s) {', '.join(missing_bed)}"
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
        oc = result.get(lim.organ)
        if oc is None:
            continue
        value = (
            oc.cumulative_absorbed_dose_gy
            if lim.quantity == "absorbed_dose_gy"
            else oc.cumulative_bed_gy
        )
        if value is None or not reaches(value, lim.limit_gy):
            continue
        what = "absorbed dose" if lim.quantity == "absorbed_dose_gy" else "BED"
        warnings.append(
            LimitWarning(
                lim.organ,
                lim.quantity,
                value,
                float(lim.limit_gy),
                lim.source,
                f"cumulative {lim.organ} {what} {value:.2f} Gy reaches the {lim.limit_gy} Gy limit",
            )
        )
    return CumulativeResult(result, warnings, notes)
