"""A CIOMS-I-like report of one SAE report, as HTML and PDF (WeasyPrint).

The layout follows the CIOMS I form's sections (I reaction information, II suspect drug, III
concomitant drugs and history, IV manufacturer information); the patient is named by the trial
pseudonym only (the CIOMS "initials" box) with sex and birth year, never a name or hospital
number. The HTML is built from values only (escaped), so a narrative cannot inject markup.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape

from reluth.db.base import as_utc
from reluth.protocol.definition import Protocol
from reluth.safety import seriousness
from reluth.safety.dossier import Dossier, ReportView


@dataclass(frozen=True)
class CiomsForm:
    """The boxes of the form, as text."""

    title: str
    boxes: list[tuple[str, list[tuple[str, str]]]]  # section -> (label, value)
    criteria: list[tuple[str, bool]]  # ICH E2A criterion wording -> ticked


def _when(moment: dt.datetime | None, protocol: Protocol) -> str:
    if moment is None:
        return "-"
    local = as_utc(moment).astimezone(protocol.safety.zone)
    return f"{as_utc(moment):%Y-%m-%d %H:%M} UTC ({local:%Y-%m-%d %H:%M} {protocol.safety.site_timezone})"


def form(d: Dossier, view: ReportView, protocol: Protocol) -> CiomsForm:
    """The CIOMS-like boxes of ``view`` (one report of the SAE ``d``)."""
    ae, r, a = d.event, view.report, view.assessment
    rsi = protocol.safety.reference_safety_information
    cycles = "; ".join(f"cycle {c}: {day} ({gbq} GBq)" for c, day, gbq in d.cycles) or "-"
    reaction = [
        ("1. Patient (trial pseudonym)", d.patient_code),
        ("1a. Centre", d.centre),
        ("2. Birth year", "-" if d.birth_year is None else str(d.birth_year)),
        ("3. Sex", d.sex or "-"),
        ("4-6. Reaction onset", ae.onset_date.isoformat()),
        ("7. Event (CTCAE v5.0 term, grade)", f"{ae.term}, grade {ae.grade}"),
        (
            "7a. MedDRA LLT code / SOC",
            f"{ae.meddra_llt_code or 'uncoded'} / {ae.meddra_soc or '-'}",
        ),
        ("7b. Narrative", r.narrative),
        ("7c. Treatment of the event", r.treatment or "-"),
        ("7d. Outcome", r.outcome.replace("_", " ")),
        ("Site became aware", f"{ae.awareness_date or '-'} {ae.awareness_time or ''}".strip()),
    ]
    drug = [
        ("14. Suspect drug", protocol.safety.suspect_product),
        ("15-19. Administrations", cycles),
        ("17. Indication", "progressive well-differentiated intestinal neuroendocrine tumour"),
        ("20. Action taken with Lutathera", seriousness.ACTIONS[r.action_taken]),
        ("Investigator's causality", ae.relatedness.replace("_", " ")),
    ]
    history = [("22-23. Concomitant drugs and relevant history", "see the patient's eCRF")]
    sponsor = [
        ("24a. Sponsor", protocol.sponsor),
        ("24b. Trial / control number", f"{protocol.id} ({protocol.registration}) AE-{ae.id}"),
        ("24d. Report source", "study"),
        ("25a. Report type", view.label),
        ("Reported by / at", f"{r.reported_by}, {_when(r.reported_at, protocol)}"),
        (
            "24c. Received by pharmacovigilance",
            "-"
            if d.receipt is None
            else f"{d.receipt.received_by}, {_when(d.receipt.received_at, protocol)}",
        ),
    ]
    if a is None:
        sponsor.append(("Sponsor's assessment", "not yet assessed"))
    else:
        sponsor += [
            ("Sponsor's causality", a.causality.replace("_", " ")),
            ("Expectedness", f"{a.expectedness} (against {a.rsi_document}, {a.rsi_version})"),
            ("SUSAR", "yes" if a.susar else "no"),
            ("Assessed by / at", f"{a.assessed_by}, {_when(a.assessed_at, protocol)}"),
        ]
        if view.susar_clock is not None:
            c = view.susar_clock
            sponsor.append(
                (
                    "Expedited report",
                    f"{c.days}-day clock from day 0 {c.day0}; due before "
                    f"{_when(c.due_before, protocol)}"
                    + (
                        f"; submitted {_when(c.submitted_at, protocol)} ({a.submission_reference})"
                        if c.submitted_at
                        else ""
                    ),
                )
            )
        if a.comment:
            sponsor.append(("Assessment comment", a.comment))
    sponsor.append(("Reference safety information in force", f"{rsi.document}, {rsi.version}"))
    return CiomsForm(
        title=f"Suspect adverse reaction report (CIOMS-I layout) — {d.patient_code}, "
        f"AE {ae.id}, {view.label}",
        boxes=[
            ("I. Reaction information", reaction),
            ("II. Suspect drug information", drug),
            ("III. Concomitant drugs and history", history),
            ("IV. Sponsor information", sponsor),
        ],
        criteria=[(text, code in view.criteria) for code, text in seriousness.CRITERIA.items()],
    )


_CSS = """
@page { size: A4; margin: 14mm; @bottom-right { content: "page " counter(page) " of " counter(pages); font-size: 8pt; } }
body { font-family: sans-serif; font-size: 9.5pt; }
h1 { font-size: 12pt; border-bottom: 2px solid #000; padding-bottom: 3pt; }
h2 { font-size: 10pt; background: #ddd; padding: 2pt 4pt; margin: 8pt 0 0; }
table { width: 100%; border-collapse: collapse; }
td { border: 1px solid #444; padding: 3pt 4pt; vertical-align: top; }
td.label { width: 32%; font-weight: bold; }
td.value { white-space: pre-wrap; }
ul.criteria { list-style: none; padding: 0; margin: 4pt 0; columns: 2; }
"""


def html(f: CiomsForm) -> str:
    """The form as a standalone HTML document (every value escaped)."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(f.title)}</title><style>{_CSS}</style></head><body>",
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
            parts.append("<h2>8-12. Seriousness (ICH E2A)</h2><ul class='criteria'>")
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
