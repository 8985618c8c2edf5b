"""The blank annotated CRF: every registered form (``forms.yaml``) with each field's label,
type, unit, range, code list and allowed missing-data codes, annotated with the variable it
is stored as (table and column), and the visits of the schedule where the form is due, printed
to PDF by WeasyPrint as the casebook is. Data collection tools are specified before use and
kept in the trial master file (ICH E6(R3) Appendix C); the annotation maps each item to its
storage as an annotated CRF maps CRF items to datasets (CDISC, "Metadata Submission
Guidelines" for SDTM, aCRF).

Built from the registry and the protocol's schedule alone: no patient data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from reluth import __version__
from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.forms.registry import BASELINE, FieldDef, FormDef, Registry
from reluth.protocol.definition import Protocol
from reluth.protocol.schedule import planned_visits

MEDIA_TYPE = "application/pdf"
_TIMING = {
    "baseline": "between screening and randomization (BASELINE)",
    "event": "when the event happens (not tied to a visit)",
    "cycle": "at each cycle of treatment",
    "date": "at the visit whose window holds its date",
    "column": "at the visit its time point names",
}


@dataclass(frozen=True)
class BlankField:
    """One item as the blank CRF prints it."""

    name: str
    label: str
    type: str
    unit: str
    range: str
    codes: tuple[str, ...]
    missing: tuple[tuple[str, str], ...]  # (code, meaning)
    annotation: str  # table.column the value is stored in ("not stored" if none)
    required: bool
    derived: bool
    help: str


@dataclass(frozen=True)
class BlankForm:
    id: str
    label: str
    table: str
    timing: str
    visits: tuple[str, ...]  # visit codes of the schedule where the form is due
    fields: tuple[BlankField, ...]


@dataclass(frozen=True)
class BlankCrf:
    registry_id: str
    version: str
    protocol: str
    missing_codes: dict[str, str]
    forms: tuple[BlankForm, ...]
    generated_at: dt.datetime
    generated_by: str
    software: str


@dataclass(frozen=True)
class BlankCrfFile:
    filename: str
    content: bytes
    media_type: str = MEDIA_TYPE

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def due_visits(registry: Registry, protocol: Protocol) -> dict[str, tuple[str, ...]]:
    """Form id -> the visit codes of the schedule (either arm) whose visit kind expects it
    (``BASELINE``: screening to randomization), in the schedule's order."""
    by_kind: dict[str, dict[str, int]] = {}
    for arm in protocol.arm_codes:
        for v in planned_visits(dt.date(2000, 1, 1), arm, protocol):
            by_kind.setdefault(v.kind, {}).setdefault(v.code, v.day)
    out: dict[str, list[str]] = {}
    for kind, form_ids in registry.matrix.items():
        codes = (
            [BASELINE]
            if kind == BASELINE
            else sorted(by_kind.get(kind, {}), key=lambda c: (by_kind[kind][c], c))
        )
        for fid in form_ids:
            seen = out.setdefault(fid, [])
            seen += [c for c in codes if c not in seen]
    return {fid: tuple(codes) for fid, codes in out.items()}


def _field(registry: Registry, form: FormDef, f: FieldDef) -> BlankField:
    lo = "" if f.min is None else str(f.min)
    hi = "" if f.max is None else str(f.max)
    if f.column is None:
        annotation = "not stored (given again at correction)"
    elif "." in f.column:
        annotation = f.column
    else:
        annotation = f"{form.table}.{f.column}"
    return BlankField(
        name=f.name,
        label=f.label,
        type=f.type,
        unit=f.unit or "",
        range=f"{lo} to {hi}" if lo or hi else "",
        codes=() if f.codes is None else registry.codes(f.codes),
        missing=tuple((c, registry.missing_codes.get(c, "")) for c in f.missing),
        annotation=annotation,
        required=f.required,
        derived=f.derived,
        help=f.help,
    )


def blank_crf(registry: Registry, protocol: Protocol, by: str, at: dt.datetime) -> BlankCrf:
    """The blank CRF of every registered form, in the registry's order (pure)."""
    due = due_visits(registry, protocol)
    forms = tuple(
        BlankForm(
            id=form.id,
            label=form.label,
            table=form.table,
            timing=_TIMING.get(form.visits.by, form.visits.by),
            visits=due.get(form.id, ()),
            fields=tuple(_field(registry, form, f) for f in form.fields),
        )
        for form in registry.forms
    )
    return BlankCrf(
        registry_id=registry.id,
        version=registry.version,
        protocol=f"{registry.protocol.get('id', '')} {registry.protocol.get('version', '')}",
        missing_codes=dict(registry.missing_codes),
        forms=forms,
        generated_at=at,
        generated_by=by,
        software=f"reluth {__version__}",
    )


def render_html(crf: BlankCrf) -> str:
    """The blank CRF as one HTML document (template ``blank_crf.html``)."""
    from reluth.records.casebook import environment

    return str(environment().get_template("blank_crf.html").render(c=crf))


@service(Action.READ, Resource.DASHBOARD)
def blank_crf_pdf(ctx: Ctx) -> BlankCrfFile:
    """The blank annotated CRF of the trial as a PDF (no patient data: any trial staff)."""
    from reluth.records.casebook import pdf_of

    registry = ctx.trial.forms
    crf = blank_crf(registry, ctx.protocol, ctx.actor.username, ctx.now())
    name = f"{registry.id}-{registry.version}-blank-annotated.pdf"
    return BlankCrfFile(name, pdf_of(render_html(crf)))
