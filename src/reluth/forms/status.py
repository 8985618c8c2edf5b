"""The status of each form at each visit (pure): from what is stored for the visit, its window
and the missing-data codes, never from a visit date alone.

A form expected at a visit (registry ``matrix``) is *complete* when its data is saved (every
QoL instrument, both second-PRRT cycles), *incomplete* when only part is, *queried* while a
query on it is open or answered, *missing* when a missing-data code says why it is absent,
*overdue* only when the visit's window has closed and nothing was entered for the visit and no
code says why, else *not started*. The visit's own status is the most urgent of its forms'.

Extension point: :data:`LAYER_SOURCES` build, once per grid and from one query per table, a
layer applied to each form's status after :data:`LAYERS`; the lifecycle adds SDV done, signed
and locked there (:mod:`reluth.lifecycle.grid`), so this module knows no lifecycle table.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class FormStatus(enum.StrEnum):
    NOT_STARTED = "not_started"
    INCOMPLETE = "incomplete"
    COMPLETE = "complete"
    QUERIED = "queried"
    MISSING = "missing"  # absent with a missing-data code (not done, not applicable, ...)
    OVERDUE = "overdue"
    NOT_EXPECTED = "not_expected"  # after death or end of study
    # the lifecycle's later states (SDV, e-signatures, locks), set by a layer
    SDV_DONE = "sdv_done"  # complete, every record verified against the source
    SIGNED = "signed"  # complete, every record under a valid investigator signature
    LOCKED = "locked"  # under a lock or freeze of the record, patient, centre or study


#: How urgent a status is for the visit's summary (highest first wins).
URGENCY: dict[FormStatus, int] = {
    FormStatus.OVERDUE: 60,
    FormStatus.QUERIED: 50,
    FormStatus.INCOMPLETE: 40,
    FormStatus.NOT_STARTED: 30,
    FormStatus.MISSING: 20,
    FormStatus.COMPLETE: 10,
    FormStatus.SDV_DONE: 8,
    FormStatus.SIGNED: 6,
    FormStatus.LOCKED: 4,
    FormStatus.NOT_EXPECTED: 0,
}
#: Statuses that say a form needs nothing more from the site.
DONE = frozenset(
    {
        FormStatus.COMPLETE,
        FormStatus.MISSING,
        FormStatus.SDV_DONE,
        FormStatus.SIGNED,
        FormStatus.LOCKED,
    }
)


class FormFacts(NamedTuple):
    """What is known of one form at one visit of one patient (a named tuple: the grid makes one
    per form and visit when a layer applies)."""

    form: str
    record_ids: tuple[int, ...] = ()
    table: str = ""  # the form's table (its records are ``table``/``record_id``)
    patient_id: int = 0
    complete: bool = False  # every part expected is saved
    queried: bool = False
    missing_code: str | None = None
    window_closed: bool = False
    visit_has_data: bool = False
    expected: bool = True


class FormCell(NamedTuple):
    """One form at one visit (a named tuple: the grid makes one per form and visit)."""

    form: str
    status: FormStatus
    record_ids: tuple[int, ...] = ()
    missing_code: str | None = None


#: Later lifecycle states: (facts, status so far) -> a new status, or None to keep it.
Layer = Callable[[FormFacts, FormStatus], FormStatus | None]
LAYERS: list[Layer] = []
#: Builds one grid's layer: (session, {patient id: centre id} of the grid) -> a layer, or None
#: when it has nothing to say. It reads what it needs for all those patients at once (one query
#: per table, never one per patient).
LayerSource = Callable[[Any, Mapping[int, int]], Layer | None]
LAYER_SOURCES: list[LayerSource] = []


def register_layer_source(source: LayerSource) -> None:
    """Add ``source`` to the layers of every grid (once; idempotent)."""
    if source not in LAYER_SOURCES:
        LAYER_SOURCES.append(source)


def grid_layers(session: Any, patients: Mapping[int, int]) -> list[Layer]:
    """The layers of one grid: the static ones, then one per registered source."""
    built = (source(session, patients) for source in LAYER_SOURCES)
    return [*LAYERS, *(layer for layer in built if layer is not None)]


def base_status(
    expected: bool,
    queried: bool,
    entered: bool,
    complete: bool,
    missing_code: str | None,
    window_closed: bool,
    visit_has_data: bool,
) -> FormStatus:
    """A form's status before the layers, from its facts (see the module docstring)."""
    if not expected:
        return FormStatus.NOT_EXPECTED
    if queried:
        return FormStatus.QUERIED
    if entered:
        return FormStatus.COMPLETE if complete else FormStatus.INCOMPLETE
    if missing_code is not None:
        return FormStatus.MISSING
    if window_closed and not visit_has_data:
        return FormStatus.OVERDUE
    return FormStatus.NOT_STARTED


def form_status(facts: FormFacts, layers: Sequence[Layer] | None = None) -> FormStatus:
    """The status of one form at one visit, then each layer (default :data:`LAYERS`)."""
    status = base_status(
        facts.expected,
        facts.queried,
        bool(facts.record_ids),
        facts.complete,
        facts.missing_code,
        facts.window_closed,
        facts.visit_has_data,
    )
    for layer in LAYERS if layers is None else layers:
        status = layer(facts, status) or status
    return status


def visit_status(cells: list[FormCell]) -> FormStatus:
    """The visit's summary: its most urgent form status (complete when every form is)."""
    return summary(frozenset(c.status for c in cells))


@functools.cache
def summary(statuses: frozenset[FormStatus]) -> FormStatus:
    """The visit's summary of its forms' statuses (the set of them; memoized, a pure function
    of at most 2^10 sets): the most urgent, complete when every form is."""
    statuses = statuses - {FormStatus.NOT_EXPECTED}
    if not statuses:
        return FormStatus.NOT_EXPECTED
    top = max(statuses, key=lambda s: URGENCY[s])
    if top is FormStatus.NOT_STARTED and statuses & DONE:
        return FormStatus.INCOMPLETE
    if top is FormStatus.MISSING and statuses - {FormStatus.MISSING}:
        # all entered or explained: the least advanced of the entered forms
        return max(statuses - {FormStatus.MISSING}, key=lambda s: URGENCY[s])
    return top


def dated_by_data(rest: Sequence[FormStatus]) -> FormStatus | None:
    """A visit with no visit row of its own, dated by the data entered for it, is as far in its
    lifecycle (SDV done, signed, locked) as the least advanced of those forms (``rest``: the
    statuses of its other forms); None: it stays complete."""
    shown = [s for s in rest if s is not FormStatus.NOT_EXPECTED]
    entered = [s for s in shown if s is not FormStatus.MISSING]
    if not entered or not set(shown) <= DONE:
        return None
    return max(entered, key=lambda s: URGENCY[s])


class VisitCell(NamedTuple):
    """One visit of one patient: its status and its forms'."""

    visit_code: str
    status: FormStatus
    forms: tuple[FormCell, ...]
    window_end: dt.date | None = None


@dataclass(frozen=True)
class PatientStatus:
    patient_code: str
    centre: str
    visits: dict[str, VisitCell] = field(default_factory=dict)
