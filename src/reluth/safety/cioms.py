"""A CIOMS-I-like report of one SAE report, as HTML and PDF (WeasyPrint).

The layout follows the CIOMS I form's sections (I reaction information, II suspect drug, III
concomitant drugs and history, IV manufacturer information); the patient is named by the trial
pseudonym only (the CIOMS "initials" box) with sex and birth year, never a name or hospital
number. The HTML is built from values only (escaped), so a narrative cannot inject markup.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from html import escape

from reluth.db.base import as_utc
from reluth.i18n import DEFAULT, N_, format_day, format_moment, format_number, get_locale, gettext
from reluth.i18n.vocabulary import label as vocabulary_label
from reluth.protocol.definition import Protocol
from reluth.safety import seriousness
from reluth.safety.dossier import Dossier, ReportView


@dataclass(frozen=True)
class CiomsForm:
    """The boxes of the form, as text."""

    title: str
    boxes: list[tuple[str, list[tuple[str, str]]]]  # section -> (label, value)
    criteria: list[tuple[str, bool]]  # ICH E2A criterion wording -> ticked
    seriousness_title: str = "8-12. Seriousness (ICH E2A)"
    page: tuple[str, str] = ("page", "of")  # the page footer's words
    lang: str = "en"


def _when(moment: dt.datetime | None, protocol: Protocol) -> str:
    if moment is None:
        return "-"
    utc = as_utc(moment)
    local = utc.astimezone(protocol.safety.zone)
    return f"{format_moment(utc, dt.UTC)} ({format_moment(local, protocol.safety.zone)})"


def box(number: str, title: str) -> str:
    """A box of the form: its number and official English title (CIOMS I is an international
    form; the regulator and the sponsor's safety database read these), and in another
    language the reader's translation beside it: ``7. Event (...) / Événement (...)``."""
    english = f"{number} {title}".strip()
    if get_locale() == DEFAULT:
        return english
    return f"{english} / {gettext(title)}"


def official(text: str) -> str:
    """A term of the form's own vocabulary (ICH E2A criteria, CIOMS/E2B actions): the English
    wording, with the reader's translation beside it."""
    if get_locale() == DEFAULT:
        return text
    return f"{text} / {gettext(text)}"


def _word(table: str, code: str) -> str:
    return vocabulary_label(table, code) if code else "-"


#: The suspect product's indication in this trial.
INDICATION = N_("progressive well-differentiated intestinal neuroendocrine tumour")


def form(d: Dossier, view: ReportView, protocol: Protocol) -> CiomsForm:
    """The CIOMS-like boxes of ``view`` (one report of the SAE ``d``), in the current language
    with the official English box titles kept (see :func:`box`)."""
    ae, r, a = d.event, view.report, view.assessment
    rsi = protocol.safety.reference_safety_information
    report = seriousness.report_name(r.sequence).render()
    cycles = (
        gettext("; ").join(
            gettext("cycle {cycle}: {day} ({gbq} GBq)").format(
                cycle=c, day=format_day(day), gbq=format_number(gbq)
            )
            for c, day, gbq in d.cycles
        )
        or "-"
    )
    aware = f"{format_day(ae.awareness_date) or '-'} {ae.awareness_time or ''}".strip()
    reaction = [
        (box("1.", N_("Patient (trial pseudonym)")), d.patient_code),
        (box("1a.", N_("Centre")), d.centre),
        (box("2.", N_("Birth year")), "-" if d.birth_year is None else str(d.birth_year)),
        (box("3.", N_("Sex")), d.sex or "-"),
        (box("4-6.", N_("Reaction onset")), format_day(ae.onset_date)),
        (
            box("7.", N_("Event (CTCAE v5.0 term, grade)")),
            gettext("{term}, grade {grade}").format(term=ae.term, grade=ae.grade),
        ),
        (
            box("7a.", N_("MedDRA LLT code / SOC")),
            f"{ae.meddra_llt_code or gettext('uncoded')} / {ae.meddra_soc or '-'}",
        ),
        (box("7b.", N_("Narrative")), r.narrative),
        (box("7c.", N_("Treatment of the event")), r.treatment or "-"),
        (box("7d.", N_("Outcome")), _word("outcome", r.outcome)),
        (box("", N_("Site became aware")), aware),
    ]
    drug = [
        (box("14.", N_("Suspect drug")), protocol.safety.suspect_product),
        (box("15-19.", N_("Administrations")), cycles),
        (box("17.", N_("Indication")), gettext(INDICATION)),
        (
            box("20.", N_("Action taken with Lutathera")),
            official(seriousness.ACTIONS[r.action_taken]),
        ),
        (box("", N_("Investigator's causality")), _word("relatedness", ae.relatedness)),
    ]
    history = [
        (
            box("22-23.", N_("Concomitant drugs and relevant history")),
            gettext("see the patient's eCRF"),
        )
    ]
    sponsor = [
        (box("24a.", N_("Sponsor")), protocol.sponsor),
        (
            box("24b.", N_("Trial / control number")),
            f"{protocol.id} ({protocol.registration}) AE-{ae.id}",
        ),
        (box("24d.", N_("Report source")), official(N_("study"))),
        (box("25a.", N_("Report type")), report),
        (box("", N_("Reported by / at")), f"{r.reported_by}, {_when(r.reported_at, protocol)}"),
        (
            box("24c.", N_("Received by pharmacovigilance")),
            "-"
            if d.receipt is None
            else f"{d.receipt.received_by}, {_when(d.receipt.received_at, protocol)}",
        ),
    ]
    if a is None:
        sponsor.append((box("", N_("Sponsor's assessment")), gettext("not yet assessed")))
    else:
        sponsor += [
            (box("", N_("Sponsor's causality")), _word("sae_causality", a.causality)),
            (
                box("", N_("Expectedness")),
                gettext("{expectedness} (against {document}, {version})").format(
                    expectedness=_word("expectedness", a.expectedness),
                    document=a.rsi_document,
                    version=a.rsi_version,
                ),
            ),
            (box("", N_("SUSAR")), gettext("yes") if a.susar else gettext("no")),
            (box("", N_("Assessed by / at")), f"{a.assessed_by}, {_when(a.assessed_at, protocol)}"),
        ]
        if view.susar_clock is not None:
            c = view.susar_clock
            clock = gettext("{days}-day clock from day 0 {day0}; due before {due}").format(
                days=c.days, day0=format_day(c.day0), due=_when(c.due_before, protocol)
            )
            if c.submitted_at:
                clock += gettext("; submitted {at} ({reference})").format(
                    at=_when(c.submitted_at, protocol), reference=a.submission_reference
                )
            sponsor.append((box("", N_("Expedited report")), clock))
        if a.comment:
            sponsor.append((box("", N_("Assessment comment")), a.comment))
    sponsor.append(
        (box("", N_("Reference safety information in force")), f"{rsi.document}, {rsi.version}")
    )
    return CiomsForm(
        title=gettext(
            "Suspect adverse reaction report (CIOMS-I layout) — {patient}, AE {id}, {report}"
        ).format(patient=d.patient_code, id=ae.id, report=report),
        boxes=[
            (box("I.", N_("Reaction information")), reaction),
            (box("II.", N_("Suspect drug information")), drug),
            (box("III.", N_("Concomitant drugs and history")), history),
            (box("IV.", N_("Sponsor information")), sponsor),
        ],
        criteria=[
            (official(text), code in view.criteria) for code, text in seriousness.CRITERIA.items()
        ],
        seriousness_title=box("8-12.", N_("Seriousness (ICH E2A)")),
        page=(gettext("page"), gettext("of")),
        lang=get_locale(),
    )


_CSS = """
@page { size: A4; margin: 14mm; @bottom-right { content: "%(page)s " counter(page) " %(of)s " counter(pages); font-size: 8pt; } }
body { font-family: sans-serif; font-size: 9.5pt; }
h1 { font-size: 12pt; border-bottom: 2px solid #000; padding-bottom: 3pt; }
h2 { font-size: 10pt; background: #ddd; padding: 2pt 4pt; margin: 8pt 0 0; }
table { width: 100%; border-collapse: collapse; }
td { border: 1px solid #444; padding: 3pt 4pt; vertical-align: top; }
td.label { width: 32%; font-weight: bold; }
td.value { white-space: pre-wrap; }
ul.criteria { list-style: none; padding: 0; margin: 4pt 0; columns: 2; }
"""


def _css(f: CiomsForm) -> str:
    """The style sheet with the page footer's words (quotes and backslashes left out: they sit
    in a CSS string)."""
    page, of = (re.sub(r"[\"\\\\<>]", "", w) for w in f.page)
    return _CSS.replace("%(page)s", page).replace("%(of)s", of)


def html(f: CiomsForm) -> str:
    """The form as a standalone HTML document (every value escaped)."""
    parts = [
        f"<!doctype html><html lang='{escape(f.lang)}'><head><meta charset='utf-8'>",
        f"<title>{escape(f.title)}</title><style>{_css(f)}</style></head><body>",
        f"<h1>{escape(f.title)}</h1>",
    ]
    for i, (section, rows) in enumerate(f.boxes):
        parts.append(f"<h2>{escape(section)}</h2><table>")
        for label, value in rows:
            parts.append(
                f"<tr><td class='label'>{escape(label)}</td>"
                f"<td class='value'>{escape(value)}</td></tr>"
            )
        parts.append("</table>")
        if i == 0:
            parts.append(f"<h2>{escape(f.seriousness_title)}</h2><ul class='criteria'>")
            for text, ticked in f.criteria:
                mark = "[X]" if ticked else "[ ]"
                parts.append(f"<li>{mark} {escape(text)}</li>")
            parts.append("</ul>")
    parts.append("</body></html>")
    return "".join(parts)


def render_pdf(f: CiomsForm) -> bytes:
    """The form as PDF bytes (WeasyPrint; no network: the HTML references nothing external)."""
    from weasyprint import HTML

    pdf = HTML(string=html(f)).write_pdf()
    assert pdf is not None
    return bytes(pdf)
