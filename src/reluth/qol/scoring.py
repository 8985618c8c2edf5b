"""Generic EORTC questionnaire scoring driven by instrument definition files (pure).

Raw score RS = mean of the answered items of a scale, used when at least half of the items
are answered (EORTC half-items rule); ``range`` = max - min item response;
functional ``(1 - (RS - min)/range) x 100``, symptom and global ``(RS - min)/range x 100``.
Scores are kept as exact fractions; ``scales`` shows them rounded to 2 decimals and every
comparison (deterioration >= 10 points) uses the exact values.
Sources: EORTC QLQ-C30 Scoring Manual (3rd ed.) and the EORTC SAS macro; see the YAML files.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from importlib import resources
from typing import Any

import yaml

from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import Field, Reason, invalid


class ScaleType(enum.StrEnum):
    FUNCTIONAL = "functional"
    SYMPTOM = "symptom"
    GLOBAL = "global"


@dataclass(frozen=True)
class Item:
    number: int
    label: str
    min: int
    max: int


@dataclass(frozen=True)
class Scale:
    code: str
    name: str
    type: ScaleType
    items: tuple[int, ...]
    verified: bool = True

    @property
    def higher_is_better(self) -> bool:
        return self.type is not ScaleType.SYMPTOM


@dataclass(frozen=True)
class SummaryDefinition:
    code: str
    name: str
    components: tuple[str, ...]


@dataclass(frozen=True)
class Instrument:
    name: str
    version: str
    verified: bool
    items: dict[int, Item]
    scales: dict[str, Scale]
    summary: SummaryDefinition | None = None


_FILES = {"QLQ-C30": "qlq_c30.yaml", "QLQ-GINET21": "qlq_ginet21.yaml"}
_ALIASES = {"QLQC30": "QLQ-C30", "C30": "QLQ-C30", "QLQGINET21": "QLQ-GINET21"}


def load_instrument_text(text: str) -> Instrument:
    """Parse an instrument definition (YAML text) and check it is self-consistent."""
    data = yaml.safe_load(text)
    items = {
        int(n): Item(int(n), str(raw["label"]), int(raw["min"]), int(raw["max"]))
        for n, raw in data["items"].items()
    }
    scales: dict[str, Scale] = {}
    for code, raw in data["scales"].items():
        numbers = tuple(int(i) for i in raw["items"])
        unknown = [i for i in numbers if i not in items]
        if unknown or not numbers:
            raise ValueError(f"{data['instrument']} scale {code}: unknown items {unknown}")
        if len({(items[i].min, items[i].max) for i in numbers}) != 1:
            raise ValueError(f"{data['instrument']} scale {code}: items with different ranges")
        scales[str(code)] = Scale(
            str(code),
            str(raw["name"]),
            ScaleType(raw["type"]),
            numbers,
            bool(raw.get("verified", True)),
        )
    summary = None
    if data.get("summary"):
        raw = data["summary"]
        summary = SummaryDefinition(str(raw["code"]), str(raw["name"]), tuple(raw["components"]))
        missing = [c for c in summary.components if c not in scales]
        if missing:
            raise ValueError(f"{data['instrument']} summary: unknown scales {missing}")
    return Instrument(
        str(data["instrument"]),
        str(data["version"]),
        bool(data["verified"]),
        items,
        scales,
        summary,
    )


@functools.cache
def instrument(name: str) -> Instrument:
    """A shipped instrument: ``QLQ-C30`` or ``QLQ-GINET21`` (case and dashes ignored)."""
    key = name.strip().upper().replace(".", "")
    key = _ALIASES.get(key.replace("-", ""), key)
    if key not in _FILES:
        raise invalid(
            "instrument",
            "unknown_instrument",
            N_("unknown instrument {value}"),
            tuple(_FILES),
            value=repr(name),
        )
    text = resources.files("reluth.qol").joinpath(_FILES[key]).read_text("utf-8")
    return load_instrument_text(text)


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QolScore:
    instrument: str
    scales: dict[str, Decimal | None]  # rounded to 0.01 for display; None = cannot be scored
    summary: Decimal | None
    exact: dict[str, Fraction | None] = field(repr=False)
    exact_summary: Fraction | None = field(repr=False)
    answered: dict[str, int] = field(default_factory=dict)
    unverified_scales: tuple[str, ...] = ()
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    summary_code: str | None = None


def _round(x: Fraction | None) -> Decimal | None:
    if x is None:
        return None
    return (Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _items_range(lo: int, hi: int) -> Reason:
    return Reason("qol.items", N_("items {lo}-{hi}"), {"lo": lo, "hi": hi})


def _refused(field: str, problem: Reason, accepted: Reason, code: str) -> ValidationError:
    """A refused answer: English in the message, in the reader's language where shown. The
    item is named by its number and English label: the licensed French wording of the EORTC
    items is not shipped (docs/i18n.md)."""
    shown = Reason(
        "qol.refused",
        N_("{field}: {problem} (accepted: {accepted})"),
        {"field": Field(field.rsplit(".", 1)[0]), "problem": problem, "accepted": accepted},
    )
    return ValidationError(
        field, problem.english(), accepted.english(), code=code, params={"reason": shown}
    )


def _bad_answer(field: str, number: int, item: Item, value: object) -> ValidationError:
    problem = Reason(
        "qol.bad_answer",
        N_("answer {value} out of range (item {item}, {label})"),
        {"item": number, "label": item.label, "value": str(value)},
    )
    accepted = Reason(
        "qol.answer_range",
        N_("a whole number from {lo} to {hi}, or blank"),
        {"lo": item.min, "hi": item.max},
    )
    return _refused(field, problem, accepted, "answer_out_of_range")


def parse_items(inst: Instrument, raw: Any, where: str = "items") -> dict[int, int]:
    """Answers keyed by item number; ``null``/absent = missing; out of range is an error."""
    if not isinstance(raw, Mapping):
        raise invalid(where, "not_an_object", N_("expected an object of item number -> answer"))
    answers: dict[int, int] = {}
    lo, hi = min(inst.items), max(inst.items)
    for key, value in raw.items():
        try:
            number = int(str(key).strip())
        except ValueError:
            raise invalid(
                where,
                "bad_item_number",
                N_("bad item number {value}"),
                N_("{lo}-{hi}"),
                value=repr(key),
                lo=lo,
                hi=hi,
            ) from None
        if number not in inst.items:
            problem = Reason(
                "qol.no_item",
                N_("no item {item} in {instrument}"),
                {"instrument": inst.name, "item": str(key)},
            )
            raise _refused(f"{where}.{key}", problem, _items_range(lo, hi), "no_such_item")
        if value is None:
            continue
        item = inst.items[number]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _bad_answer(f"{where}.{key}", number, item, value)
        try:
            answer = Fraction(str(value).strip())
        except ValueError:
            raise _bad_answer(f"{where}.{key}", number, item, value) from None
        if answer.denominator != 1 or not item.min <= answer <= item.max:
            raise _bad_answer(f"{where}.{key}", number, item, value)
        answers[number] = int(answer)
    return answers


def _scale_score(inst: Instrument, scale: Scale, answers: Mapping[int, int]) -> Fraction | None:
    given = [answers[i] for i in scale.items if i in answers]
    if 2 * len(given) < len(scale.items):
        return None
    item = inst.items[scale.items[0]]
    raw = Fraction(sum(given), len(given))
    position = (raw - item.min) / (item.max - item.min)
    if scale.type is ScaleType.FUNCTIONAL:
        return (1 - position) * 100
    return position * 100


def score(instrument_name: str | Instrument, items: Mapping[Any, Any]) -> QolScore:
    """Score one questionnaire. ``items`` maps item number (int or str) to the answer."""
    inst = (
        instrument_name if isinstance(instrument_name, Instrument) else instrument(instrument_name)
    )
    answers = parse_items(inst, items)
    exact = {code: _scale_score(inst, s, answers) for code, s in inst.scales.items()}
    summary = None
    if inst.summary is not None:
        parts = [exact[c] for c in inst.summary.components]
        if all(p is not None for p in parts):
            adjusted = [
                p if inst.scales[c].higher_is_better else 100 - p
                for c, p in zip(inst.summary.components, parts, strict=True)
                if p is not None
            ]
            summary = sum(adjusted, Fraction(0)) / len(adjusted)
    return QolScore(
        instrument=inst.name,
        scales={code: _round(v) for code, v in exact.items()},
        summary=_round(summary),
        exact=exact,
        exact_summary=summary,
        answered={code: sum(1 for i in s.items if i in answers) for code, s in inst.scales.items()},
        unverified_scales=tuple(c for c, s in inst.scales.items() if not s.verified),
        higher_is_better={c: s.higher_is_better for c, s in inst.scales.items()},
        summary_code=None if inst.summary is None else inst.summary.code,
    )


# --------------------------------------------------------------------------------------------
# Change from baseline


@dataclass(frozen=True)
class ScaleChange:
    change: Decimal | None  # follow-up minus baseline, rounded to 0.01 (None if either missing)
    deteriorated: bool | None  # >= threshold in the worse direction (exact comparison)
    improved: bool | None


#: Minimal important difference: a change of at least 10 points (Osoba D, et al. J Clin Oncol
#: 1998;16:139-144), the deterioration threshold of NETTER-1's QoL analysis (Strosberg 2018).
DETERIORATION_POINTS = 10


def worse_by(
    baseline: Fraction | Decimal, score: Fraction | Decimal, higher_is_better: bool
) -> Fraction:
    """How many points ``score`` is worse than ``baseline`` (negative: better), exactly: a drop
    for functional and global scales and the summary score, a rise for symptom scales."""
    delta = Fraction(score) - Fraction(baseline)
    return -delta if higher_is_better else delta


def deteriorated(
    baseline: Fraction | Decimal,
    score: Fraction | Decimal,
    higher_is_better: bool,
    threshold: Decimal | int = DETERIORATION_POINTS,
) -> bool:
    """Deterioration from baseline: worse by at least ``threshold`` points (exact)."""
    return worse_by(baseline, score, higher_is_better) >= Fraction(str(threshold))


def change_from_baseline(
    baseline: QolScore, follow_up: QolScore, threshold: Decimal | int = DETERIORATION_POINTS
) -> dict[str, ScaleChange]:
    """Change per scale (and the summary score), direction-aware.

    Deterioration is a drop of at least ``threshold`` points for functional and global scales
    and the summary score, a rise of at least ``threshold`` for symptom scales.
    """
    if baseline.instrument != follow_up.instrument:
        raise invalid(
            "instrument",
            "different_instruments",
            N_("{baseline} vs {follow_up}"),
            N_("the same instrument"),
            baseline=baseline.instrument,
            follow_up=follow_up.instrument,
        )
    limit = Fraction(str(threshold))
    pairs: dict[str, tuple[Fraction | None, Fraction | None, bool]] = {
        code: (baseline.exact[code], follow_up.exact[code], better)
        for code, better in follow_up.higher_is_better.items()
    }
    if follow_up.summary_code is not None:
        pairs[follow_up.summary_code] = (baseline.exact_summary, follow_up.exact_summary, True)
    out: dict[str, ScaleChange] = {}
    for code, (before, after, higher_better) in pairs.items():
        if before is None or after is None:
            out[code] = ScaleChange(None, None, None)
            continue
        worse = worse_by(before, after, higher_better)
        out[code] = ScaleChange(_round(after - before), worse >= limit, -worse >= limit)
    return out
