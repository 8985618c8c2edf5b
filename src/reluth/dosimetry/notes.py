"""The dosimetry engine's warnings and notes (how a result was made, what to check) as message
keys with typed values, written in the reader's language in the report, the pages and the CLI,
while ``results.json`` keeps its English ``warnings`` for machines (docs/i18n.md, "The engines'
reasons").

A :class:`Note` is a ``str`` — the English text, so every list of warnings and notes stays a
list of strings — that carries its :class:`~reluth.i18n.reasons.Reason`; :func:`messages` gives
the keys stored beside the English (``warning_messages``), :func:`shown` writes one back.
:func:`method_label` names a method code of the results (``fit:biexp``, ``hanscheid``) as a
physicist reads it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from reluth.i18n import N_, gettext
from reluth.i18n.reasons import Quantity, Reason, Word, render_stored


class Note(str):
    """English text (what ``warnings`` stores and logs print) that keeps its reason."""

    reason: Reason

    def __new__(cls, reason: Reason) -> Note:
        self = super().__new__(cls, reason.english())
        self.reason = reason
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by the batch's worker processes
        return (Note, (self.reason,))


def note(key: str, template: str, **params: Any) -> Note:
    """A note: ``key`` stable, ``template`` the English marked with ``N_`` where it is made."""
    return Note(Reason(key, template, params))


def reason_of(text: str) -> Reason | str:
    """The reason a note carries; other text (already English, from outside) as it is."""
    return text.reason if isinstance(text, Note) else text


def spect(hours: float) -> Reason:
    """A time point's SPECT as notes name it (``SPECT 24.0 h``)."""
    return Reason("dosimetry.spect", N_("SPECT {time}"), {"time": rounded(hours, "h")})


def at(where: str | Reason, text: str) -> Note:
    """A note said of one input or result (``vois.liver: …``, ``SPECT 24.0 h: …``)."""
    return note("dosimetry.at", N_("{where}: {note}"), where=where, note=reason_of(text))


def quantity(value: float, unit: str, digits: int = 3) -> Quantity:
    """``value`` to ``digits`` significant digits with its unit (``1.23 g``, ``1 230 mL``)."""
    if not math.isfinite(value):
        return Quantity(Decimal(0), unit)
    number = Decimal(f"{value:.{digits}g}")
    if number.as_tuple().exponent > 0:  # type: ignore[operator]  # 1.23E+3: written 1230
        number = number.quantize(Decimal(1))
    return Quantity(number, unit)


def rounded(value: float, unit: str, decimals: int = 1) -> Quantity:
    """``value`` with ``decimals`` decimals and its unit (``24.0 h``)."""
    return Quantity(Decimal(f"{value:.{decimals}f}"), unit)


def messages(texts: Sequence[str]) -> list[dict[str, Any] | None]:
    """The keys and values of each warning (None for a text without a key), beside the English
    list in the results (``warning_messages``)."""
    return [t.reason.as_dict() if isinstance(t, Note) else None for t in texts]


def shown(text: Any, message: Any = None) -> str:
    """One warning in the current language: from its note, else its stored keys, else as
    written (results written before warnings had keys)."""
    if isinstance(text, Note):
        return text.reason.render()
    return render_stored(message, str(text))


def shown_all(doc: Mapping[str, Any]) -> list[str]:
    """The warnings of a results document (``warnings`` and ``warning_messages``) in the
    current language."""
    texts = list(doc.get("warnings") or [])
    stored = list(doc.get("warning_messages") or [])
    stored += [None] * (len(texts) - len(stored))
    return [shown(t, m) for t, m in zip(texts, stored, strict=False)]


#: The organs of the organ-name table by their code (``kidney_left``), named in warnings and
#: the report in the reader's language; another region (a tumour, a VOI) keeps its name.
ORGANS: dict[str, str] = {
    "kidneys": N_("kidneys"),
    "kidney_left": N_("kidney_left"),
    "kidney_right": N_("kidney_right"),
    "liver": N_("liver"),
    "spleen": N_("spleen"),
    "red_marrow": N_("red_marrow"),
}


def organ(name: str) -> Word | str:
    """An organ's code as a warning names it (its word in the reader's language)."""
    return Word(ORGANS[name]) if name in ORGANS else name


def organ_label(name: Any) -> str:
    """An organ's code in the current language (the report's tables)."""
    return gettext(ORGANS[name]) if name in ORGANS else str(name)


#: The single-time-point methods as a warning names them (the code, shown by its name).
STP_METHODS: dict[str, str] = {
    "hanscheid": N_("hanscheid"),
    "hanscheid (voxel)": N_("hanscheid (voxel)"),
    "madsen": N_("madsen"),
}

#: Words of the methods as the results name them (``results.json``'s codes stay as they are).
METHOD_WORDS: dict[str, str] = {
    "auto": N_("automatic (lowest AIC)"),
    "mono": N_("mono-exponential fit"),
    "bi_uptake": N_("bi-exponential fit with uptake phase"),
    "bi": N_("bi-exponential fit"),
    "tri": N_("tri-exponential fit"),
    "trapezoid": N_("trapezoid method"),
    "hanscheid": N_("single-time-point method (Hänscheid)"),
    "hanscheid (voxel)": N_("single-time-point method (Hänscheid), voxel-wise"),
    "madsen": N_("single-time-point method (Madsen)"),
    "voxel_fit": N_("voxel-wise mono-exponential fit"),
    "organ_scaled": N_("organ time-integrated activity scaled by the reference image"),
    "local": N_("local energy deposition"),
    "kernel": N_("dose deposition kernel"),
    "voxel local": N_("voxel, local energy deposition"),
    "voxel kernel": N_("voxel, dose deposition kernel"),
    "S-value": N_("S-value (self-dose, mass-scaled)"),
    "S-value self-dose (mass-scaled)": N_("S-value (self-dose, mass-scaled)"),
    "sphere model": N_("sphere model"),
    "blood-based": N_("blood-based"),
    "BED (α/β, T_rep)": N_("BED (α/β, T_rep)"),
}
#: What a method code may add in brackets or after a comma.
METHOD_SUFFIXES: dict[str, str] = {
    "first point dropped": N_("first point left out"),
    "too few points for AICc": N_("too few points for AICc"),
    "recovery-corrected": N_("partial-volume corrected"),
}
_SUFFIX = re.compile(r"^(?P<base>.*?)(?: \((?P<bracket>[^)]*)\))?(?:, (?P<comma>[^,]+))?$")


def method_label(method: Any) -> str:
    """A method code of the results (``fit:mono (first point dropped)``, ``sphere model,
    recovery-corrected``) in the current language; an unknown code as it is."""
    text = "" if method is None else str(method)
    if text in METHOD_WORDS:
        return gettext(METHOD_WORDS[text])
    found = _SUFFIX.match(text)
    if found is None:
        return text
    base = found["base"]
    if base.startswith("fit:"):
        base = base[4:]
    word = METHOD_WORDS.get(base)
    if word is None:
        return text
    out = gettext(word)
    for extra in (found["bracket"], found["comma"]):
        if extra is None:
            continue
        suffix = METHOD_SUFFIXES.get(extra)
        if suffix is None:
            return text
        out += f" ({gettext(suffix)})"
    return out
