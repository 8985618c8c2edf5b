"""The stratification factors of the protocol, derived from the patient file (pure).

The factors, their levels, thresholds and stratum-code prefixes are the protocol's
(``stratification`` in ``reluth.yaml``: for ReLUTH disease control after first PRRT, type of
progression, renal function and intercurrent treatment); the engine holds one rule per factor
code, saying which level a patient file gives.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import invalid
from reluth.protocol.definition import Protocol, StratificationFactor
from reluth.protocol.eligibility import egfr_estimate
from reluth.protocol.patient import PatientFile


@dataclass(frozen=True)
class Strata:
    """A patient's level of each factor, in the protocol's order, and its stratum code."""

    levels: tuple[tuple[str, str], ...]  # (factor code, level)
    code: str  # e.g. ``DCge18-PRrad-GFRge60-ITno``

    def as_dict(self) -> dict[str, str]:
        return dict(self.levels)

    def level(self, factor: str) -> str:
        return self.as_dict()[factor]


def make_strata(levels: Mapping[str, str], protocol: Protocol) -> Strata:
    """The stratum of the given factor levels (every factor of the protocol, a known level)."""
    ordered: list[tuple[str, str]] = []
    for f in protocol.stratification:
        level = levels.get(f.code)
        if level is None or level not in f.levels.values():
            raise invalid(
                f"strata.{f.code}",
                "unknown_level",
                N_("unknown level {value}"),
                tuple(f.levels.values()),
                value=repr(level),
            )
        ordered.append((f.code, level))
    code = "-".join(
        f"{f.prefix}{level}"
        for f, (_c, level) in zip(protocol.stratification, ordered, strict=True)
    )
    return Strata(tuple(ordered), code)


def _not_a_stratum(code: str, example: str) -> ValidationError:
    return invalid(
        "stratum",
        "not_a_stratum",
        N_("not a stratum code: {value}"),
        N_("e.g. {example}"),
        value=repr(code),
        example=example,
    )


def parse_stratum(code: str, protocol: Protocol) -> Strata:
    """The stratum of a stratum code (``DCge18-PRrad-GFRge60-ITno``)."""
    parts = code.split("-")
    factors = protocol.stratification
    example = "-".join(f"{f.prefix}{sorted(f.levels.values())[0]}" for f in factors)
    if len(parts) != len(factors) or not all(
        p.startswith(f.prefix) for p, f in zip(parts, factors, strict=False)
    ):
        raise _not_a_stratum(code, example)
    try:
        return make_strata(
            {f.code: p.removeprefix(f.prefix) for p, f in zip(parts, factors, strict=True)},
            protocol,
        )
    except ValidationError:
        raise _not_a_stratum(code, example) from None


def _threshold_level(f: StratificationFactor, value: Decimal) -> str:
    if f.threshold is None:
        raise invalid(
            f"stratification.{f.code}.threshold", "required", N_("needed for this factor")
        )
    return f.levels["at_or_above" if value >= f.threshold else "below"]


def _disease_control(p: PatientFile, f: StratificationFactor, protocol: Protocol) -> str:
    months = p.first_prrt.disease_control_months
    if months is None:
        raise invalid("first_prrt.disease_control_months", "required", N_("needed for the stratum"))
    return _threshold_level(f, months)


def _progression(p: PatientFile, f: StratificationFactor, protocol: Protocol) -> str:
    if p.progression.radiological is None:
        raise invalid(
            "progression.radiological",
            "required",
            N_("needed for the stratum"),
            N_("true or false"),
        )
    return f.levels["radiological" if p.progression.radiological else "non_radiological"]


def _renal(p: PatientFile, f: StratificationFactor, protocol: Protocol) -> str:
    egfr, how = egfr_estimate(p, protocol)
    if egfr is None:
        raise invalid(
            "labs.creatinine", "required", N_("eGFR needed for the stratum ({how})"), how=how
        )
    return _threshold_level(f, egfr)


def _intercurrent(p: PatientFile, f: StratificationFactor, protocol: Protocol) -> str:
    value = p.history.intercurrent_treatment
    if value is None:
        raise invalid(
            "history.intercurrent_treatment",
            "required",
            N_("needed for the stratum"),
            N_("true or false"),
        )
    return f.levels["yes" if value else "no"]


#: One rule per factor code: the level a patient file gives.
LEVEL_RULES: dict[str, Callable[[PatientFile, StratificationFactor, Protocol], str]] = {
    "disease_control_first_prrt": _disease_control,
    "progression_type": _progression,
    "renal_function": _renal,
    "intercurrent_treatment": _intercurrent,
}


def derive_strata(patient: PatientFile, protocol: Protocol) -> Strata:
    """The patient's stratum; a missing input is a ValidationError naming the field."""
    levels = {}
    for f in protocol.stratification:
        rule = LEVEL_RULES.get(f.code)
        if rule is None:
            raise invalid(
                f"stratification.{f.code}",
                "no_rule",
                N_("no rule derives this factor"),
                tuple(LEVEL_RULES),
            )
        levels[f.code] = rule(patient, f, protocol)
    return make_strata(levels, protocol)


def all_strata(protocol: Protocol) -> list[Strata]:
    """Every combination of factor levels (16 for ReLUTH), in a stable order."""
    codes = protocol.factor_codes
    levels = [sorted(set(protocol.factor(code).levels.values())) for code in codes]
    return [
        make_strata(dict(zip(codes, combo, strict=True)), protocol)
        for combo in itertools.product(*levels)
    ]
