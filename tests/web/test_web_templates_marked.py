"""Every user-visible text of the translated page templates is marked for translation: the
templates' literal text (between tags, and the ``title``/``aria-label``/``placeholder``/``alt``
attributes a person reads) holds no word outside a small list of names that are the same in
every language (units, standards, product names). A page whose text is marked reads in French
once the catalogue translates it (``tools/i18n.py check``)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import Environment

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "reluth" / "web" / "templates"

#: The templates whose every text is marked (the others are translated by other changes).
MARKED = (
    "users.html",
    "tokens.html",
    "access_review.html",
    "exports.html",
    "review.html",
    "review_patient.html",
    "dosimetry.html",
    "dosimetry_report.html",
    "_dosimetry_job.html",
    "api_docs.html",
    "record.html",
    "edit.html",
    "_form_records.html",
    "error.html",
    "base.html",
    "patients.html",
    "dashboard.html",
    "_patient_rows.html",
    "login.html",
    "password.html",
    "sae.html",
    "clinical_form.html",
    "_clinical_forms.html",
    "casebook.html",
    "_casebook_sections.html",
    "_casebook_manifestations.html",
)

#: Words that read the same in every language: names, units, standards, file formats.
SAME_IN_EVERY_LANGUAGE = frozenset(
    [
        "ReLUTH",
        "reluth",
        "CSV",
        "JSON",
        "SAS",
        "Stata",
        "xpt",
        "dta",
        "zip",
        "SHA",
        "VOI",
        "VOIs",
        "mm",
        "mL",
        "Gy",
        "MBq",
        "GBq",
        "Bq",
        "TIA",
        "SD",
        "BED",
        "CT",
        "MRI",
        "RECIST",
        "CTCAE",
        "SPECT",
        "LPS",
        "RTSTRUCT",
        "SEG",
        "DICOM",
        "UID",
        "API",
        "Bearer",
        "eff",
        "rep",
        "sub",
        "DOTATATE",
        "Lu",
        "PRRT",
        "ROI",
        "PDF",
        "SUSAR",
        "MedDRA",
        "Lutathera",
    ]
)
_READ_ATTRIBUTES = {"title", "aria-label", "placeholder", "alt"}
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]+")
#: An attribute nobody reads (a macro may write one outside a tag): taken out before reading.
_MACHINE_ATTRIBUTE = re.compile(r"""\s(?!(?:title|aria-label|placeholder|alt)=)[\w-]+="[^"]*"?""")


class _Text(HTMLParser):
    """The literal text a person reads in a template with its Jinja2 parts taken out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script"):
            self._skip += 1
        self.found += [v for k, v in attrs if k in _READ_ATTRIBUTES and v]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.found.append(data)


def literal_text(source: str) -> list[str]:
    """The template's text outside every ``{{ }}``, ``{% %}`` and ``{# #}`` (as Jinja2's lexer
    splits it), read as HTML."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    parts = [value for _line, kind, value in env.lex(source) if kind == "data"]
    parser = _Text()
    parser.feed(_MACHINE_ATTRIBUTE.sub(" ", " ".join(parts)))
    parser.close()
    return parser.found


def unmarked_words(source: str) -> list[str]:
    words = [w for text in literal_text(source) for w in _WORD.findall(text)]
    return [w for w in words if w not in SAME_IN_EVERY_LANGUAGE]


@pytest.mark.parametrize("name", MARKED)
def test_template_has_no_unmarked_text(name: str) -> None:
    assert unmarked_words((TEMPLATES / name).read_text(encoding="utf-8")) == []


def test_the_check_finds_unmarked_text() -> None:
    """The check sees a sentence between tags and in a title, not one inside ``_()``."""
    source = (
        '<h1>Central read</h1><p title="Saved value">{{ _("Marked text") }}</p>'
        "{% if x %}<td>none</td>{% endif %}<style>td{color:red}</style>"
    )
    assert unmarked_words(source) == ["Central", "read", "Saved", "value", "none"]
