"""The set-based status grid gives every cell exactly the status the cell-by-cell computation
gave (frozen in ``grid_reference``), on both backends: a small synthetic trial replayed through
the services (visits, labs, QoL, central reads, deaths and ends of study), then queries (open,
answered, closed, on a record and on a visit), missing-data codes, SDV of whole forms and of
single fields, e-signatures (valid and invalidated by a correction), form, patient and centre
locks and a study freeze, each compared on several days (windows open and closed), for the
data manager and an investigator (and the central reviewer, whom both refuse alike), with the
centre, visit and status filters; the dashboard's counts and overdue list equal the grid's."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine
from tests.forms import grid_reference

from reluth.auth.policy import Action, Resource
from reluth.core.context import reading, writing
from reluth.core.trial import Trial
from reluth.errors import PermissionDenied
from reluth.forms import service as forms
from reluth.forms.status import FormStatus
from reluth.lifecycle import sdv_service as sdv
from reluth.lifecycle import service as lifecycle
from reluth.lifecycle import signature_service as signatures
from reluth.protocol.definition import load_protocol
from reluth.queries import service as queries
from reluth.records import dashboard
from reluth.safety import service as safety
from reluth.safety.models import LabResult
from reluth.simulation.cohort import CohortConfig, generate_cohort
from reluth.simulation.replay import Replayer, events, play

DM, ADMIN, MONITOR, REVIEWER = "datamanager", "admin", "monitor", "reviewer"
PASSWORD_PREFIX = "reluth-demo-"


def _shape(grid: forms.Grid) -> dict[str, Any]:
    return {
        "as_of": grid.as_of,
        "columns": grid.columns,
        "counts": grid.counts,
        "by_centre": grid.by_centre,
        "rows": [
            (
                r.patient_code,
                r.centre,
                {
                    code: (
                        c.status,
                        c.window_end,
                        [(f.form, f.status, sorted(f.record_ids), f.missing_code) for f in c.forms],
                    )
                    for code, c in r.visits.items()
                },
            )
            for r in grid.rows
        ],
    }


class _Trial:
    def __init__(self, engine: Engine, replayer: Replayer, cutoff: dt.date) -> None:
        self.engine, self.replayer, self.cutoff = engine, replayer, cutoff
        self.protocol = replayer.protocol

    def on(self, day: dt.date) -> Trial:
        return Trial(self.protocol).on(day)

    def write(self, username: str, reason: str | None = None) -> Any:
        return writing(self.engine, self.replayer.actor(username), self.on(self.cutoff), reason)

    def compare(self, stage: str, statuses: Counter[str]) -> None:
        """New against old, for each reader, day and filter; counts what was seen."""
        days = (self.cutoff, self.cutoff - dt.timedelta(days=200), self.cutoff + dt.timedelta(400))
        centres = sorted({p.centre for p in self.replayer.cohort.patients})
        investigator = f"investigator-{centres[0].lower()}"
        for username in (DM, investigator, REVIEWER):
            for day in days:
                with reading(self.engine, self.replayer.actor(username), self.on(day)) as ctx:
                    filters: list[dict[str, str | None]] = [{}]
                    filters += [{"centre": c} for c in centres if username == DM]
                    filters += [{"visit": "BASELINE"}, {"visit": "QOL-W24"}]
                    filters += [{"status": s.value} for s in FormStatus]
                    for f in filters:
                        try:
                            old = grid_reference.build_grid(ctx, **f)
                        except PermissionDenied:
                            with pytest.raises(PermissionDenied):
                                forms.status_grid(ctx, **f)
                            continue
                        new = forms.status_grid(ctx, **f)
                        assert _shape(new) == _shape(old), (stage, username, day, f)
                        if not f:
                            statuses.update(
                                s
                                for r in new.rows
                                for c in r.visits.values()
                                for s in (c.status, *(f.status for f in c.forms))
                            )
                    if ctx.actor.can(Action.READ, Resource.DASHBOARD):
                        counts = dashboard.build(ctx)
                        full = grid_reference.build_grid(ctx)
                        assert counts.status_counts == full.counts, (stage, username, day)
                        assert counts.status_by_centre == full.by_centre, (stage, username, day)
                        assert [
                            (v.patient_code, v.visit_code) for v in counts.overdue_visits
                        ] == sorted(
                            (
                                (r.patient_code, code)
                                for r in full.rows
                                for code, c in r.visits.items()
                                if c.status == FormStatus.OVERDUE
                            ),
                            key=lambda pv: (
                                next(r.centre for r in full.rows if r.patient_code == pv[0]),
                                full.rows[[r.patient_code for r in full.rows].index(pv[0])]
                                .visits[pv[1]]
                                .window_end,
                                pv[0],
                                pv[1],
                            ),
                        ), (stage, username, day)


def _replayed(engine: Engine) -> _Trial:
    protocol = load_protocol()
    cohort = generate_cohort(
        CohortConfig(
            protocol,
            seed=2021,
            n_centres=2,
            n_included=8,
            n_not_included=1,
            n_dosimetry=0,
            accrual_months=12.0,
            centre_opening_months=1.0,
            followup_months_after_accrual=18.0,
            p_missing_questionnaire=0.3,
            p_missed_assessment=0.2,
            dropout_per_year=0.6,
        )
    )
    replayer = Replayer(engine, cohort, 2021, Trial(protocol))
    replayer.setup()
    for _day, _order, kind, patient in events(cohort):
        play(replayer, kind, patient)
    return _Trial(engine, replayer, cohort.data_cutoff)


def _cells(t: _Trial) -> list[tuple[str, str, str, list[forms.FormCell]]]:
    """(patient, centre, visit, forms) of every visit cell, as the data manager sees them."""
    with reading(t.engine, t.replayer.actor(DM), t.on(t.cutoff)) as ctx:
        grid = grid_reference.build_grid(ctx)
    return [
        (r.patient_code, r.centre, code, list(c.forms))
        for r in grid.rows
        for code, c in r.visits.items()
    ]


def _table(form: str) -> str:
    return {
        "visit": "visits",
        "qol": "qol_questionnaires",
        "lab": "lab_results",
        "central_read": "tumour_assessments",
        "cycle": "administrations",
        "screening": "screenings",
        "inclusion": "inclusions",
        "pre_randomization": "pre_randomization_assessments",
        "randomization": "randomizations",
    }[form]


def test_the_new_grid_equals_the_old_at_every_lifecycle_stage(engine: Engine) -> None:
    t = _replayed(engine)
    seen: Counter[str] = Counter()
    t.compare("replayed", seen)  # no lifecycle yet: the layer is not built

    cells = _cells(t)
    done = [
        c
        for c in cells
        if c[2] != "BASELINE"
        and any(f.record_ids for f in c[3] if f.form in ("lab", "qol", "visit"))
        and all(f.record_ids for f in c[3] if f.form != "visit")
    ]
    overdue = [
        c
        for c in cells
        if any(f.status == FormStatus.OVERDUE and f.form in ("qol", "lab") for f in c[3])
    ]
    assert done and overdue, "the replayed trial has complete and overdue visits"
    # queries: open on a record, answered on a record, closed, and on a form at a visit
    with t.write(DM) as ctx:
        opened = []
        for code, _centre, _visit, fcs in done[:3]:
            f = next(f for f in fcs if f.record_ids and f.form in ("lab", "qol", "visit"))
            field = {"lab": "value", "visit": "visit_date"}.get(f.form, "completed_on")
            question = "Please check against the source."
            opened.append(
                queries.open_query(
                    ctx, code, field, question, form_id=f.form, record_id=f.record_ids[0]
                )
            )
        code, _c, visit, _f = overdue[0]
        queries.open_query(
            ctx, code, "visit_date", "Was this visit done?", form_id="visit", visit_code=visit
        )
    with t.write(f"nurse-{done[1][1].lower()}", queries.answer_reason(opened[1].id)) as ctx:
        queries.answer_query(ctx, opened[1].id, "Checked: as in the source.")
    with t.write(DM, queries.close_reason(opened[2].id)) as ctx:
        queries.close_query(ctx, opened[2].id)
    # missing-data codes of a whole form at overdue visits (one with, one without a code)
    for code, centre, visit, fcs in overdue[1:3]:
        f = next(f for f in fcs if f.status == FormStatus.OVERDUE and f.form in ("qol", "lab"))
        with t.write(f"nurse-{centre.lower()}") as ctx:
            forms.record_missing(
                ctx,
                f.form,
                "ND",
                "not done: patient too ill",
                patient_code=code,
                visit_code=visit,
            )
    t.compare("queries and missing codes", seen)

    # SDV: whole forms of several visits, one record of a two-record form, one field only
    with t.write(MONITOR) as ctx:
        monitored = [c for c in done if c[1] in {x.code for x in t.replayer.cohort.centres[:5]}]
        for code, _centre, _visit, fcs in monitored[3:9]:
            for f in fcs:
                for rid in f.record_ids:
                    sdv.verify(ctx, code, _table(f.form), rid)
        for code, _centre, _visit, fcs in monitored[9:14]:
            for f in fcs:
                if len(f.record_ids) > 1:
                    sdv.verify(ctx, code, _table(f.form), f.record_ids[0])
                elif f.record_ids and f.form == "lab":
                    sdv.verify(ctx, code, _table(f.form), f.record_ids[0], "value")
    t.compare("sdv", seen)

    # signatures: a casebook and a visit, then a correction invalidates the casebook's
    first = done[0]
    second = next(
        c
        for c in done
        if c[0] != first[0] and any(f.form == "visit" and f.record_ids for f in c[3])
    )
    with t.write(ADMIN) as ctx:
        for centre in sorted({first[1], second[1]}):
            signatures.designate_principal_investigator(
                ctx, f"investigator-{centre.lower()}", centre, f"Dr {centre}"
            )
    with t.write(f"investigator-{first[1].lower()}") as ctx:
        signatures.sign(
            ctx, first[0], "patient", f"{PASSWORD_PREFIX}investigator-{first[1].lower()}"
        )
    with t.write(f"investigator-{second[1].lower()}") as ctx:
        signatures.sign(
            ctx,
            second[0],
            "visit",
            f"{PASSWORD_PREFIX}investigator-{second[1].lower()}",
            visit_code=second[2],
        )
    t.compare("signed", seen)
    lab = next(
        f.record_ids[0]
        for c in cells
        if c[0] == first[0]
        for f in c[3]
        if f.form == "lab" and f.record_ids
    )
    with t.write(f"nurse-{first[1].lower()}", "transcription error") as ctx:
        row = ctx.session.get(LabResult, lab)
        assert row is not None
        safety.edit_lab(ctx, first[0], lab, {"value": str(row.value + Decimal("0.1"))})
    t.compare("signature invalidated", seen)

    # locks: a form, a patient, a centre; then the study frozen
    with t.write(DM) as ctx:
        code, _c, _v, fcs = done[4]
        f = next(f for f in fcs if f.record_ids)
        lifecycle.lock(ctx, "form", f"{_table(f.form)}/{f.record_ids[0]}", "reviewed")
        lifecycle.lock(ctx, "patient", done[5][0], "casebook reviewed")
    t.compare("form and patient locks", seen)
    with t.write(DM) as ctx:
        lifecycle.lock(ctx, "centre", done[0][1], "centre closed out")
    t.compare("centre lock", seen)
    with t.write(DM) as ctx:
        lifecycle.lock(ctx, "study", None, "interim analysis", kind="freeze")
    t.compare("study freeze", seen)

    wanted = {s.value for s in FormStatus}
    assert wanted <= set(seen), f"statuses never seen: {wanted - set(seen)}"
