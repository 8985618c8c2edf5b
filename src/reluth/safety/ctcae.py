"""CTCAE v5.0 laboratory grading: a pure engine driven by ``ctcae_v5_labs.yaml``.

A result is graded in the unit it was entered in when the definition has a cut-off in that
unit (haemoglobin: g/dL, g/L and mmol/L are separate CTCAE cut-offs, 10.0 g/dL ≙ 6.2 mmol/L),
otherwise in the analyte's canonical unit (``reluth.units``). Every comparison is on
:class:`decimal.Decimal`, so ``value > 3.0 × ULN`` is exact.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any, Literal

import yaml

from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import DAY, Field, Reason, Word, invalid
from reluth.units import (
    analytes,
    canonical_unit,
    check_plausible,
    convert,
    same_unit,
    to_decimal,
    unit_factor,
)
from reluth.values import parse_date

Ref = Literal["absolute", "lln", "uln", "baseline"]
_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Criterion:
    grade: int
    op: str
    ref: Ref
    factor: Decimal = Decimal(1)
    values: tuple[tuple[str, Decimal], ...] = ()  # absolute cut-offs per unit
    optional: bool = False


@dataclass(frozen=True)
class TermDefinition:
    test: str
    term: str
    meddra_code: str
    source: str
    verified: bool
    criteria: tuple[Criterion, ...]
    baseline_abnormal: tuple[Criterion, ...] = ()

    @property
    def max_grade(self) -> int:
        return max(c.grade for c in self.criteria)


def _criterion(raw: Mapping[str, Any]) -> Criterion:
    values = tuple((str(u), Decimal(str(v))) for u, v in (raw.get("value") or {}).items())
    return Criterion(
        grade=int(raw["grade"]),
        op=str(raw["op"]),
        ref=raw["ref"],
        factor=Decimal(str(raw.get("factor", "1"))),
        values=values,
        optional=bool(raw.get("optional", False)),
    )


@functools.cache
def definitions() -> dict[str, TermDefinition]:
    """The shipped CTCAE v5.0 definitions, keyed by test name (``hemoglobin``, ``alt``, ...)."""
    text = resources.files("reluth.safety").joinpath("ctcae_v5_labs.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    out: dict[str, TermDefinition] = {}
    for test, raw in data["terms"].items():
        out[test] = TermDefinition(
            test=test,
            term=raw["term"],
            meddra_code=str(raw["meddra_code"]),
            source=str(raw["source"]).strip(),
            verified=bool(raw["verified"]),
            criteria=tuple(_criterion(c) for c in raw["criteria"]),
            baseline_abnormal=tuple(_criterion(c) for c in raw.get("baseline_abnormal", [])),
        )
    return out


# --------------------------------------------------------------------------------------------
# Input


@dataclass(frozen=True)
class Amount:
    value: Decimal
    unit: str


@dataclass(frozen=True)
class LabResult:
    """One laboratory result; each limit and the baseline carry their own unit."""

    test: str
    value: Decimal
    unit: str
    lln: Amount | None = None
    uln: Amount | None = None
    baseline: Amount | None = None
    date: dt.date | None = None

    @classmethod
    def of(
        cls,
        test: str,
        value: Decimal | str | int,
        unit: str,
        *,
        lln: Decimal | str | int | None = None,
        uln: Decimal | str | int | None = None,
        baseline: Decimal | str | int | None = None,
        date: dt.date | None = None,
    ) -> LabResult:
        """Convenience constructor: limits and baseline in the value's unit."""

        def amount(x: Decimal | str | int | None) -> Amount | None:
            return None if x is None else Amount(Decimal(str(x)), unit)

        return cls(
            test, Decimal(str(value)), unit, amount(lln), amount(uln), amount(baseline), date
        )


def _nonneg(value: Any, field: str) -> Decimal:
    number = to_decimal(value, field)
    if number < 0:
        raise invalid(
            field, "negative_value", N_("negative value {value}"), N_("a value >= 0"), value=value
        )
    return number


def _plausible(test: str, number: Decimal, unit: str, field: str, kind: str) -> Decimal:
    """The number, once its canonical value is physically plausible (``reluth.units``)."""
    if test in analytes():
        _key, factor = unit_factor(test, unit, field)
        check_plausible(test, number * factor, field, kind)
    return number


def _limit(raw: Any, test: str, unit: str, field: str) -> Amount | None:
    """A limit given as a number (same unit as the value) or as {"value": x, "unit": u}; a
    reference limit or a baseline within the analyte's plausible range."""
    if raw is None:
        return None
    kind = "value" if field.endswith("baseline") else "limit"
    if isinstance(raw, Mapping):
        number = _nonneg(raw.get("value"), f"{field}.value")
        own = raw.get("unit")
        if own is None:
            return Amount(_plausible(test, number, unit, field, kind), unit)
        unit_factor(test, own, f"{field}.unit")
        own_unit = str(own).strip()
        return Amount(_plausible(test, number, own_unit, field, kind), own_unit)
    return Amount(_plausible(test, _nonneg(raw, field), unit, field, kind), unit)


def parse_result(raw: Any, where: str = "result") -> LabResult:
    if not isinstance(raw, Mapping):
        raise invalid(where, "not_an_object", N_("expected an object"))
    test = raw.get("test")
    tests = definitions()
    if not isinstance(test, str) or test.strip().lower() not in tests:
        raise invalid(
            f"{where}.test",
            "unknown_test",
            N_("unknown CTCAE test {value}"),
            tuple(tests),
            value=repr(test),
        )
    test = test.strip().lower()
    unit = raw.get("unit")
    unit_factor(test, unit, f"{where}.unit")  # refuses unknown units, naming the accepted ones
    assert isinstance(unit, str)
    date_raw = raw.get("date")
    date = None
    if date_raw is not None:
        date = parse_date(str(date_raw), f"{where}.date")  # ISO or dd/mm/yyyy
    return LabResult(
        test=test,
        value=_plausible(
            test, _nonneg(raw.get("value"), f"{where}.value"), unit, f"{where}.value", "value"
        ),
        unit=unit.strip(),
        lln=_limit(raw.get("lln"), test, unit, f"{where}.lln"),
        uln=_limit(raw.get("uln"), test, unit, f"{where}.uln"),
        baseline=_limit(raw.get("baseline"), test, unit, f"{where}.baseline"),
        date=date,
    )


def parse_results(data: Any) -> list[LabResult]:
    """A list of results, or ``{"results": [...]}``; each error names ``results[i].field``."""
    items = data.get("results") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise invalid(
            "results",
            "not_a_list",
            N_("expected a list of results"),
            ("[{test, value, unit, ...}]",),
        )
    return [parse_result(raw, f"results[{i}]") for i, raw in enumerate(items)]


# --------------------------------------------------------------------------------------------
# Grading


@dataclass(frozen=True)
class GradedResult:
    test: str
    term: str
    meddra_code: str
    grade: int
    rule: str
    date: dt.date | None
    value: Decimal
    unit: str  # the unit the grade was computed in
    threshold: Decimal | None  # the cut-off that fired (None for grade 0)
    baseline_abnormal: bool
    max_gradable: int  # highest grade a lab value alone can give for this term
    #: ``rule`` as a message key and its values, shown in the reader's language.
    message: Reason | None = None


def _fmt(d: Decimal) -> str:
    """For the rule text only (decisions use the unrounded numbers)."""
    if d.as_tuple().exponent < -4:  # type: ignore[operator]
        d = d.quantize(Decimal("0.0001"))
    return format(d.normalize(), "f")


def _num(d: Decimal) -> Decimal:
    """A number of a rule's text: at most 4 decimals, no trailing zeros, never 8E+4."""
    if d.as_tuple().exponent < -4:  # type: ignore[operator]
        d = d.quantize(Decimal("0.0001"))
    n = d.normalize()
    return n.quantize(Decimal(1)) if n == n.to_integral_value() else n


def _needed(field: str, problem: Reason, accepted: str) -> ValidationError:
    """A reference the grade needs is missing: the field by its label in the reader's
    language (its path kept for highlighting)."""
    shown = Reason(
        "ctcae.needed",
        N_("{field}: {problem} (accepted: {accepted})"),
        {"field": Field(field), "problem": problem, "accepted": Word(accepted)},
    )
    return ValidationError(
        field, problem.english(), accepted, code="reference_required", params={"reason": shown}
    )


def _grading_unit(definition: TermDefinition, unit: str) -> str:
    """The value's own unit when the definition has cut-offs in it (or needs none)."""
    cut_units = [u for crit in definition.criteria for u, _ in crit.values]
    if not cut_units or any(same_unit(u, unit) for u in cut_units):
        return unit
    return canonical_unit(definition.test)


def _absolute(crit: Criterion, test: str, grading_unit: str) -> Decimal:
    for u, v in crit.values:
        if same_unit(u, grading_unit):
            return v
    u, v = crit.values[0]
    return convert(test, v, u, grading_unit, "definition")


def grade(result: LabResult) -> GradedResult:
    """CTCAE v5.0 grade of one result, with the rule that fired and the numbers used."""
    definition = definitions()[result.test]
    gunit = _grading_unit(definition, result.unit)

    def to_g(x: Amount | None) -> Decimal | None:
        return None if x is None else convert(result.test, x.value, x.unit, gunit, result.test)

    value = convert(result.test, result.value, result.unit, gunit, result.test)
    refs = {"lln": to_g(result.lln), "uln": to_g(result.uln), "baseline": to_g(result.baseline)}
    criteria = definition.criteria
    abnormal = False
    branch: Reason | str = ""
    if definition.baseline_abnormal:
        if refs["uln"] is None:
            raise _needed(
                f"{result.test}.uln",
                Reason("ctcae.uln_required", N_("required to grade this test")),
                N_("the upper limit of normal"),
            )
        if refs["baseline"] is not None and refs["baseline"] > refs["uln"]:
            abnormal = True
            criteria = definition.baseline_abnormal
            branch = Reason(
                "ctcae.baseline_abnormal", N_(" [baseline abnormal: graded against baseline]")
            )
        elif refs["baseline"] is None:
            branch = Reason(
                "ctcae.baseline_missing", N_(" [baseline not given: graded against ULN]")
            )
        else:
            branch = Reason("ctcae.baseline_normal", N_(" [baseline normal]"))

    best: tuple[int, Criterion, Decimal] | None = None
    needs: list[tuple[Criterion, str]] = []
    for crit in criteria:
        if crit.ref == "absolute":
            cut = _absolute(crit, result.test, gunit)
        else:
            reference = refs[crit.ref]
            if reference is None:
                if not crit.optional:
                    needs.append((crit, crit.ref))
                continue
            cut = crit.factor * reference
        if _OPS[crit.op](value, cut) and (best is None or crit.grade > best[0]):
            best = (crit.grade, crit, cut)
    known = 0 if best is None else best[0]
    for crit, ref in needs:
        if crit.grade > known:
            what = {"lln": N_("lower limit of normal"), "uln": N_("upper limit of normal")}
            raise _needed(
                f"{result.test}.{ref}",
                Reason(
                    "ctcae.limit_required",
                    N_("required to grade {test} {value} {unit} (it decides grade {grade})"),
                    {
                        "test": Field(result.test),
                        "value": _num(result.value),
                        "unit": result.unit,
                        "grade": crit.grade,
                    },
                ),
                what.get(ref, N_("the baseline value")),
            )
    g, fired = 0, None
    message = Reason(
        "ctcae.grade_0",
        N_("grade 0: no CTCAE v5.0 criterion met ({value} {unit}){branch}"),
        {"value": _num(value), "unit": gunit, "branch": branch},
    )
    if best is not None:
        g, crit, fired = best
        if crit.ref == "absolute":
            cut_text = Reason("ctcae.absolute", "{cut} {unit}", {"cut": _num(fired), "unit": gunit})
        else:
            name = {"lln": N_("LLN"), "uln": N_("ULN"), "baseline": N_("baseline")}[crit.ref]
            cut_text = Reason(
                "ctcae.relative",
                "{factor}{name} ({cut} {unit})",
                {
                    "factor": "" if crit.factor == 1 else f"{_fmt(crit.factor)} × ",
                    "name": Word(name),
                    "cut": _num(fired),
                    "unit": gunit,
                },
            )
        message = Reason(
            "ctcae.grade",
            N_("grade {grade}: {value} {unit} {op} {reference}{branch}"),
            {
                "grade": g,
                "value": _num(value),
                "unit": gunit,
                "op": crit.op,
                "reference": cut_text,
                "branch": branch,
            },
        )
    rule = message.english()
    return GradedResult(
        test=result.test,
        term=definition.term,
        meddra_code=definition.meddra_code,
        grade=g,
        rule=rule,
        date=result.date,
        value=value,
        unit=gunit,
        threshold=fired,
        baseline_abnormal=abnormal,
        max_gradable=definition.max_grade,
        message=message,
    )


# --------------------------------------------------------------------------------------------
# Patient level


@dataclass(frozen=True)
class TermSummary:
    test: str
    term: str
    meddra_code: str
    worst_grade: int
    worst_date: dt.date | None
    n_results: int
    baseline_grade: int | None  # grade of the baseline value itself (None if not given)
    shift: str  # e.g. "0->3"; "?->3" without baseline


def baseline_grade(result: LabResult) -> int | None:
    """The grade of the result's baseline value, graded against the same limits."""
    if result.baseline is None:
        return None
    base = result.baseline
    return grade(LabResult(result.test, base.value, base.unit, result.lln, result.uln)).grade


def summarize(
    results: Sequence[LabResult],
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[TermSummary]:
    """Worst grade per term over ``[start, end]`` and the shift from the baseline grade.

    With a period, every result needs a date. Ties for the worst grade keep the earliest.
    """
    kept: list[LabResult] = []
    for i, result in enumerate(results):
        if (start or end) and result.date is None:
            raise invalid(
                f"results[{i}].date",
                "required",
                N_("needed to filter by period"),
                N_("{placeholder}"),
                placeholder=DAY,
            )
        if start and result.date and result.date < start:
            continue
        if end and result.date and result.date > end:
            continue
        kept.append(result)
    chosen = list(zip(kept, grade_all(kept), strict=True))
    by_test: dict[str, list[tuple[LabResult, GradedResult]]] = {}
    for pair in chosen:
        by_test.setdefault(pair[0].test, []).append(pair)
    out: list[TermSummary] = []
    for test in definitions():
        pairs = by_test.get(test)
        if not pairs:
            continue
        worst = max(pairs, key=lambda p: (p[1].grade, -(p[1].date or dt.date.max).toordinal()))[1]
        with_base = [p[0] for p in pairs if p[0].baseline is not None]
        earliest = min(with_base, key=lambda r: r.date or dt.date.min) if with_base else None
        base = None if earliest is None else baseline_grade(earliest)
        out.append(
            TermSummary(
                test=test,
                term=worst.term,
                meddra_code=worst.meddra_code,
                worst_grade=worst.grade,
                worst_date=worst.date,
                n_results=len(pairs),
                baseline_grade=base,
                shift=f"{'?' if base is None else base}->{worst.grade}",
            )
        )
    return out


def grade_all(results: Iterable[LabResult]) -> list[GradedResult]:
    """Grade each result; an error names the result's position (``results[i]``)."""
    out: list[GradedResult] = []
    for i, result in enumerate(results):
        try:
            out.append(grade(result))
        except ValidationError as exc:
            field = exc.field.replace(f"{result.test}.", f"results[{i}].", 1)
            raise ValidationError(
                field, exc.problem, exc.accepted, code=exc.code, params=exc.params
            ) from None
    return out
