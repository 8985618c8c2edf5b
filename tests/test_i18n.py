"""French and English: number and date parsing on both sides of each format, display by locale,
translated error messages built from codes, the CLI's language from LANG, and the catalogue
check of ``make lint`` (on a temporary catalogue)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po, write_po
from hypothesis import given
from hypothesis import strategies as st
from tools import i18n as tool

from reluth.db import validate as v
from reluth.errors import ValidationError
from reluth.i18n import (
    GROUPED,
    format_day,
    format_moment,
    format_number,
    from_environment,
    gettext,
    negotiate,
    use_locale,
)
from reluth.i18n.messages import describe, field_label
from reluth.units import to_decimal
from reluth.values import day_from_text, number_from_text, parse_date, parse_number

ROOT = Path(__file__).resolve().parent.parent

# --- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10,2", "10.2"),
        ("10.2", "10.2"),
        (" 10,2 ", "10.2"),
        ("-0,5", "-0.5"),
        (",5", "0.5"),
        ("5,", "5"),
        ("184 000", "184000"),
        ("1 234,5", "1234.5"),
        ("1\u202f234,5", "1234.5"),  # the narrow no-break space Babel writes in French
        ("79999", "79999"),
        ("1,5e3", "1500"),
    ],
)
def test_decimal_comma_and_point_are_the_same_number(text: str, expected: str) -> None:
    assert number_from_text(text) == Decimal(expected)


@pytest.mark.parametrize(
    "text", ["", ",", "1,2,3", "1.2,3", "1,234.5", "12 34", "abc", "1 2", "NaN", "Infinity", "--1"]
)
def test_ambiguous_or_malformed_numbers_are_refused(text: str) -> None:
    assert number_from_text(text) is None
    with pytest.raises(ValidationError) as caught:
        parse_number(text, "labs.hemoglobin.value")
    assert caught.value.code == "not_a_number"


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**9), max_value=10**9
    )
)
def test_comma_and_point_store_the_same_decimal(value: Decimal) -> None:
    """Whatever separator was typed, the stored Decimal is the same, digits kept."""
    point = format(value, "f")
    comma = point.replace(".", ",")
    assert parse_number(point, "x") == parse_number(comma, "x") == value
    assert to_decimal(comma, "x") == value
    row = v.decimal({"x": comma}, "x", "labs", Decimal(-(10**10)), Decimal(10**10))
    assert row == value and str(row) == str(Decimal(point))


@given(st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=0, max_value=10**7))
def test_french_display_reads_back_as_the_same_number(value: Decimal) -> None:
    with use_locale("fr"):
        shown = format_number(value)
    assert "." not in shown
    assert parse_number(shown, "x") == value


def _babel_number(value: Any, digits: int | None, code: str = "en") -> str:
    """What Babel renders for the patterns format_number uses (the reference the source
    language's own formatter must equal)."""
    from babel import Locale
    from babel.numbers import parse_pattern

    whole = "#,##0" if code in GROUPED else "0"
    if digits is None and isinstance(value, Decimal) and value.is_finite():
        exponent = int(value.as_tuple().exponent)
        digits = -exponent if exponent < 0 else None  # the decimals recorded are kept
    if digits is not None:
        number = Decimal(str(value)).quantize(Decimal(1).scaleb(-digits))
        pattern = whole + ("." + "0" * digits if digits else "")
        return str(parse_pattern(pattern).apply(number, Locale.parse(code)))
    return str(
        parse_pattern(whole + ".###").apply(value, Locale.parse(code), decimal_quantization=False)
    )


def _outcome(call: Any) -> str:
    try:
        return str(call())
    except Exception as exc:  # both sides must fail alike (e.g. more digits than the context)
        return f"raised {type(exc).__name__}"


_NUMBERS = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**12), max_value=10**12
    ),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e6, max_value=1e6),
    st.integers(min_value=-(10**40), max_value=10**40),
)


@given(_NUMBERS, st.one_of(st.none(), st.integers(min_value=0, max_value=6)))
def test_english_numbers_are_what_babel_writes(value: Any, digits: int | None) -> None:
    """English numbers are formatted without loading Babel's locale data (start-up of the CLI,
    issue 20); the text must stay exactly Babel's."""
    if isinstance(value, Decimal) and value.is_zero() and value.is_signed():
        value = abs(value)  # -0 is not a measured value
    with use_locale("en"):
        mine = _outcome(lambda: format_number(value, digits))
    assert mine == _outcome(lambda: _babel_number(value, digits)), (value, digits)


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (Decimal("79999"), None, "79999"),
        (Decimal("7.40"), None, "7.40"),
        (Decimal("-0.5"), None, "-0.5"),
        (184000, None, "184000"),
        (10.25, None, "10.25"),
        (2 / 3, None, "0.6666666666666666"),
        (1.5, 0, "2"),
        (2.5, 0, "2"),
        (Decimal("12.345"), 2, "12.34"),
        (Decimal("1E+3"), None, "1000"),
        (Decimal("Infinity"), None, "\u221e"),
    ],
)
def test_english_numbers_by_example(value: Any, digits: int | None, expected: str) -> None:
    with use_locale("en"):
        assert format_number(value, digits) == expected
    assert _babel_number(value, digits) == expected


def test_english_numbers_load_no_babel() -> None:
    code = (
        "import json, sys\n"
        "from decimal import Decimal\n"
        "from reluth.i18n import format_number, use_locale\n"
        "with use_locale('en'):\n"
        "    shown = [format_number(Decimal('79999')), format_number(10.25), format_number(3, 2)]\n"
        "print(json.dumps([shown, sorted(m for m in sys.modules if m.split('.')[0] == 'babel')]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    shown, babel_modules = json.loads(done.stdout)
    assert shown == ["79999", "10.25", "3.00"]
    assert babel_modules == []


def test_booleans_and_none_are_not_numbers() -> None:
    for bad in (True, None, [1]):
        with pytest.raises(ValidationError):
            parse_number(bad, "x")


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("05/03/2025", dt.date(2025, 3, 5)),  # day first: 5 March, never 3 May
        ("5/3/2025", dt.date(2025, 3, 5)),
        ("2025-03-05", dt.date(2025, 3, 5)),
        ("31/12/2024", dt.date(2024, 12, 31)),
        ("01/01/2025", dt.date(2025, 1, 1)),
        ("29/02/2024", dt.date(2024, 2, 29)),  # leap day
        ("28/02/2025", dt.date(2025, 2, 28)),
    ],
)
def test_iso_and_day_first_dates(text: str, expected: dt.date) -> None:
    assert day_from_text(text) == expected
    assert parse_date(text, "inclusion_date") == expected


@pytest.mark.parametrize(
    "text",
    [
        "29/02/2025",
        "31/04/2025",
        "00/01/2025",
        "32/01/2025",
        "13/13/2025",
        "2025/03/05",
        "05-03-2025",
        "05/03/25",
        "2025-3-5",
        "",
    ],
)
def test_impossible_or_other_dates_are_refused(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_date(text, "inclusion_date")
    assert caught.value.code == "not_a_date"


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31)))
def test_a_day_shown_in_either_language_reads_back(day: dt.date) -> None:
    for lang in ("fr", "en"):
        with use_locale(lang):
            shown = format_day(day)
        assert parse_date(shown, "d") == day
    with use_locale("fr"):
        assert format_day(day) == day.strftime("%d/%m/%Y")


def test_edge_dates_either_side_of_today() -> None:
    today = dt.date(2025, 3, 12)
    assert v.date({"date": "12/03/2025"}, "date", "labs", today) == today
    assert v.date({"date": "2025-03-12"}, "date", "labs", today) == today
    with pytest.raises(ValidationError) as caught:
        v.date({"date": "13/03/2025"}, "date", "labs", today)
    assert caught.value.code == "date_in_future"
    with use_locale("fr"):
        assert describe(caught.value) == (
            "Date : le 13/03/2025 est dans le futur (nous sommes le 12/03/2025)"
        )


def test_moments_are_shown_in_the_site_zone_with_its_name() -> None:
    moment = dt.datetime(2025, 3, 12, 23, 0, tzinfo=dt.UTC)
    with use_locale("fr"):
        assert format_moment(moment, "Europe/Paris") == "13/03/2025 00:00 Europe/Paris"
    with use_locale("en"):
        assert format_moment(moment, "Europe/Paris") == "2025-03-13 00:00 Europe/Paris"
        assert format_moment(moment, dt.UTC) == "2025-03-12 23:00 UTC"


# --- messages ------------------------------------------------------------------------------


def test_plain_language_message_without_internal_names() -> None:
    with pytest.raises(ValidationError) as caught:
        v.decimal({"value": "79999"}, "value", "labs.platelets", Decimal(80000), Decimal(10**6))
    error = caught.value
    assert error.code == "out_of_range" and error.field == "labs.platelets.value"
    with use_locale("fr"):
        text = describe(error)
    assert text.startswith(
        "Plaquettes : 79\u202f999 — la valeur doit être comprise entre 80\u202f000"
    )
    assert "labs." not in text
    with use_locale("en"):
        assert describe(error).startswith("Platelets: 79999 — it must be between 80000")


def test_not_a_number_message_in_french() -> None:
    with pytest.raises(ValidationError) as caught:
        v.decimal({"value": "dix"}, "value", "labs.hemoglobin", Decimal(0), Decimal(30))
    with use_locale("fr"):
        assert describe(caught.value) == (
            "Hémoglobine : « dix » n’est pas un nombre — saisissez un nombre décimal "
            "(virgule ou point)"
        )


def test_field_labels_skip_indices_and_value_parts() -> None:
    with use_locale("fr"):
        assert field_label("results[0].platelets.value") == "Plaquettes"
        assert field_label("labs.neutrophils.unit") == "Polynucléaires neutrophiles"
        assert field_label("something.unlabelled") == "something.unlabelled"


def test_clinical_vocabulary_in_french() -> None:
    from reluth.i18n.vocabulary import label

    with use_locale("fr"):
        assert [label("response", c) for c in ("CR", "PR", "SD", "PD")] == [
            "réponse complète",
            "réponse partielle",
            "maladie stable",
            "progression",
        ]
        assert label("grade", 3) == "grade 3 — sévère"
        assert label("response", "XX") == "XX"  # an unknown code is shown as it is


# --- language choice ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fr-FR,fr;q=0.9,en;q=0.8", "fr"),
        ("en-GB,en;q=0.9,fr;q=0.8", "en"),
        ("de-DE,fr;q=0.5", "fr"),
        ("de-DE", None),
        ("fr;q=0, en", "en"),
        ("", None),
        (None, None),
        ("fr;q=abc, en;q=0.1", "en"),
    ],
)
def test_accept_language_negotiation(header: str | None, expected: str | None) -> None:
    assert negotiate(header) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LANG": "fr_FR.UTF-8"}, "fr"),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "fr_FR.UTF-8"}, "fr"),
        ({"LC_ALL": "C", "LANG": "fr_FR.UTF-8"}, "en"),  # LC_ALL wins, even when it is C
        ({"LC_MESSAGES": "fr_CA.UTF-8"}, "fr"),
        ({"LANGUAGE": "fr:en", "LANG": "en_US.UTF-8"}, "fr"),
        ({}, "en"),
        ({"LANG": "C.UTF-8"}, "en"),
    ],
)
def test_cli_language_follows_the_environment(env: dict[str, str], expected: str) -> None:
    assert from_environment(env) == expected


def test_cli_errors_are_printed_in_the_language_of_lang(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from reluth.cli import app

    bad = tmp_path / "p.json"
    bad.write_text("{}")
    runner = CliRunner()
    french = runner.invoke(
        app,
        ["eligibility", "check", str(bad), "--as-of", "31/02/2025"],
        env={"LANG": "fr_FR.UTF-8", "LC_ALL": ""},
    )
    english = runner.invoke(
        app,
        ["eligibility", "check", str(bad), "--as-of", "31/02/2025"],
        env={"LANG": "C.UTF-8", "LC_ALL": ""},
    )
    assert french.exit_code == english.exit_code == 2
    assert "n’est pas une date" in french.output
    assert "is not a date" in english.output


# --- the catalogue check of make lint ----------------------------------------------------------


def test_shipped_french_catalogue_is_complete() -> None:
    assert tool.check(("fr",)) == 0


def test_catalogue_check_fails_on_untranslated_fuzzy_stale_or_bad_placeholders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locale_dir = tmp_path / "locale"
    shutil.copytree(ROOT / "src" / "reluth" / "locale", locale_dir)
    path = tool.po_path("fr", locale_dir)
    with path.open("rb") as handle:
        catalog = read_po(handle, locale="fr")
    catalog["Platelets"].string = ""  # untranslated
    catalog["Dashboard"].flags.add("fuzzy")  # fuzzy
    catalog["Patient %(code)s"].string = "Patient"  # placeholder lost
    catalog.delete("Log out")  # missing: the sources still use it
    catalog.add("A string no source uses", "Une chaîne qu’aucune source n’utilise")  # stale
    with path.open("wb") as handle:
        write_po(handle, catalog)
    assert tool.check(("fr",), locale_dir) == 1
    err = capsys.readouterr().err
    assert "untranslated: 'Platelets'" in err
    assert "fuzzy (check and remove the flag): 'Dashboard'" in err
    assert "placeholders differ from the source: 'Patient %(code)s'" in err
    assert "missing (run tools/i18n.py update): 'Log out'" in err
    assert "stale, no source uses it: 'A string no source uses'" in err
    assert "5 translation problem(s)" in err


def test_french_translations_are_french_not_copies() -> None:
    """A sample of what a research nurse reads first: each differs from the English source."""
    with use_locale("fr"):
        for source in ("Log in", "Dashboard", "Patients", "Adverse events", "Laboratory results"):
            assert gettext(source) != source or source == "Patients"


def test_every_criterion_result_the_engine_stores_reads_in_french() -> None:
    """A criterion's result (``met``, ``not_met``, ``unknown``) is shown in the reader's
    language on the eligibility panel and the patient page, never as the stored code."""
    from typing import get_args

    from reluth.i18n import use_locale
    from reluth.i18n.vocabulary import label
    from reluth.protocol.eligibility import Result

    with use_locale("fr"):
        shown = {code: label("eligibility", code) for code in get_args(Result)}
    assert shown == {"met": "rempli", "not_met": "non rempli", "unknown": "inconnu"}
