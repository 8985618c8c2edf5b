"""The language of the person being answered: gettext catalogues (``src/reluth/locale``), the
current locale of a request or a command, and locale-aware display of numbers, dates and times.

The locale is a context variable: the web app sets it per request (account setting, else the
``reluth_lang`` cookie, else ``Accept-Language``), the CLI from ``LC_ALL``/``LC_MESSAGES``/
``LANG``. Machine outputs (``--json``, API field names and codes, datasets, exports) never go
through here. Catalogues are GNU gettext ``.po`` files compiled to ``.mo`` by ``make install``;
a missing or older ``.mo`` is compiled in memory from its ``.po`` so a fresh checkout works.
"""

from __future__ import annotations

import datetime as dt
import gettext as _gettext
import io
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "messages"
#: The languages shipped, the first is the default (and the language of the source strings).
LANGUAGES: tuple[str, ...] = ("en", "fr")
DEFAULT = LANGUAGES[0]
#: Each language's own name, as the header's switch shows it.
LANGUAGE_NAMES: dict[str, str] = {"en": "English", "fr": "Français"}

_current: ContextVar[str] = ContextVar("reluth_locale", default=DEFAULT)


def normalise(code: str | None) -> str | None:
    """``fr``, ``fr-FR``, ``fr_FR.UTF-8`` -> ``fr``; None for a language not shipped."""
    if not code:
        return None
    base = code.strip().replace("-", "_").split(".")[0].split("@")[0].split("_")[0].lower()
    return base if base in LANGUAGES else None


def get_locale() -> str:
    return _current.get()


def set_locale(code: str | None) -> Token[str]:
    return _current.set(normalise(code) or DEFAULT)


@contextmanager
def use_locale(code: str | None) -> Iterator[str]:
    """Within the block, messages and formats follow ``code`` (default language if unknown)."""
    token = set_locale(code)
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def negotiate(accept_language: str | None) -> str | None:
    """The shipped language a browser prefers most (RFC 9110 §12.5.4 quality values), or None."""
    if not accept_language:
        return None
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        pieces = part.strip().split(";")
        quality = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        code = normalise(pieces[0])
        if code and quality > 0:
            ranked.append((-quality, index, code))
    return min(ranked)[2] if ranked else None


def from_environment(env: Mapping[str, str] | None = None) -> str:
    """The CLI's language, as POSIX orders it: ``LC_ALL``, then ``LC_MESSAGES``, then ``LANG``
    (``LANGUAGE`` lists first when set); the default for C/POSIX or a language not shipped."""
    env = os.environ if env is None else env
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if not value:
            continue
        for candidate in value.split(":"):
            code = normalise(candidate)
            if code:
                return code
        if name != "LANGUAGE":
            return DEFAULT  # set but not shipped (C, POSIX, de_DE): the default, not a later one
    return DEFAULT


@cache
def translations(code: str) -> _gettext.NullTranslations:
    """The compiled catalogue of ``code`` (the source language has none needed)."""
    po = LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"
    mo = po.with_suffix(".mo")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as handle:
            return _gettext.GNUTranslations(handle)
    if not po.exists():
        return _gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as handle:
        catalog = read_po(handle, locale=code)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return _gettext.GNUTranslations(buffer)


def gettext(message: str) -> str:
    """``message`` in the current language."""
    return translations(get_locale()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(get_locale()).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    return translations(get_locale()).pgettext(context, message)


_ = gettext


def N_(message: str) -> str:
    """Marks a string for extraction without translating it now (module constants, tables):
    translate it with :func:`gettext` where it is shown."""
    return message


# --- display --------------------------------------------------------------------------------


def format_number(value: Any, digits: int | None = None) -> str:
    """A number as the current language writes it, by Babel's rules: ``184 000`` and ``10,2`` in
    French (thousands grouped, decimal comma); ``184000`` and ``10.2`` in English (ungrouped, as
    English clinical tables and the API show counts). A Decimal keeps the decimals it was
    recorded with, a float all of its own, unless ``digits`` fixes them. None shows as empty."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return str(value)
    locale = get_locale()
    whole = "#,##0" if locale in GROUPED else "0"
    if digits is None and isinstance(value, Decimal) and value.is_finite():
        exponent = int(value.as_tuple().exponent)
        if exponent < 0:
            digits = -exponent  # the decimals recorded are kept (7.40 stays 7,40)
    if digits is not None:
        number = Decimal(str(value)).quantize(Decimal(1).scaleb(-digits))
        if locale == DEFAULT:
            plain = _source_number(number, digits, digits)
            if plain is not None:
                return plain
        pattern = whole + ("." + "0" * digits if digits else "")
        return str(_number_pattern(pattern).apply(number, _babel_locale(locale)))
    if locale == DEFAULT:
        plain = _source_number(value, 0, None)
        if plain is not None:
            return plain
    return str(
        _number_pattern(whole + ".###").apply(
            value, _babel_locale(locale), decimal_quantization=False
        )
    )


def _source_number(value: Any, frac_min: int, frac_max: int | None) -> str | None:
    """The number as Babel's ``NumberPattern.apply`` writes it in the source language (English:
    decimal point, hyphen-minus, no grouping for the ``0`` patterns used above), with the same
    decimal operations in the same order, so without loading Babel and its locale data (the
    first load was a third of a CLI command's start-up, issue 20). ``frac_max`` None is the
    ``0.###`` pattern without quantization (at least the number's own decimals). None for what
    this does not cover (infinities, NaN, 1000+ integer digits, any decimal error): Babel then
    writes it. Equality with Babel is a property test (tests/test_i18n.py)."""
    try:
        number = (value if isinstance(value, Decimal) else Decimal(str(value))).scaleb(0)
        if not number.is_finite():
            return None
        negative = number.is_signed()
        number = abs(number).normalize()
        if frac_max is None:
            exponent = int(number.as_tuple().exponent)
            frac_max = max(3, -exponent if exponent < 0 else 0)
        whole, _, frac = f"{number.quantize(Decimal(10) ** -frac_max):f}".partition(".")
    except (ArithmeticError, ValueError):
        return None
    if len(whole) > 1000:  # Babel's "0" pattern groups by 1000 digits
        return None
    frac = (frac or "0").ljust(frac_min, "0")
    if frac_max == 0 or (frac_min == 0 and int(frac) == 0):
        frac = ""
    else:
        while len(frac) > frac_min and frac[-1] == "0":
            frac = frac[:-1]
        frac = "." + frac
    return ("-" if negative else "") + whole + frac


@cache
def _babel_locale(code: str) -> Any:
    """Babel's locale data of ``code``, parsed once (as ``format_decimal`` would at each call:
    a page of laboratory values formats hundreds of numbers)."""
    from babel import Locale

    return Locale.parse(code)


@cache
def _number_pattern(pattern: str) -> Any:
    """A Babel number pattern, parsed once (what ``format_decimal`` does at each call)."""
    from babel.numbers import parse_pattern

    return parse_pattern(pattern)


#: Languages whose tables group thousands (French writes 184 000 /mm³).
GROUPED = frozenset({"fr"})


#: How each language shows a calendar day (entry accepts both forms, see reluth.values).
DAY_FORMATS: dict[str, str] = {"en": "%Y-%m-%d", "fr": "%d/%m/%Y"}
#: What a date field's hint says the person may type.
DAY_PLACEHOLDERS: dict[str, str] = {"en": "YYYY-MM-DD", "fr": "jj/mm/aaaa"}


def format_day(value: dt.date | str | None) -> str:
    """A calendar day as the current language writes it (dd/mm/yyyy in French, ISO in English);
    an ISO text is read first, any other text is shown as it is."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value[:10])
        except ValueError:
            return str(value)
    if isinstance(value, dt.datetime):
        value = value.date()
    return value.strftime(DAY_FORMATS.get(get_locale(), DAY_FORMATS[DEFAULT]))


def format_moment(value: dt.datetime | None, zone: dt.tzinfo | str | None = None) -> str:
    """A moment in ``zone`` (the site's), as the current language writes day and time, with the
    zone's name so nobody mistakes UTC for local time: ``01/12/2026 14:05 Europe/Paris``."""
    if value is None:
        return ""
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    if tz is not None:
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(tz)
    name = getattr(tz, "key", None) or (value.tzname() or "")
    shown = f"{format_day(value)} {value.strftime('%H:%M')}"
    return f"{shown} {name}" if name else shown


def format_stored_moment(text: str) -> str:
    """A moment stored as ISO text (an audit row's, in UTC) to the second, the day as the
    current language writes it (``05/03/2025 10:00:00``); another text to its first 19
    characters."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text[:19].replace("T", " ")
    return f"{format_day(moment)} {moment:%H:%M:%S}"


def day_placeholder() -> str:
    return DAY_PLACEHOLDERS.get(get_locale(), DAY_PLACEHOLDERS[DEFAULT])
