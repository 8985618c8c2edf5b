"""Recording laboratory results (graded with the CTCAE v5.0 engine) and adverse events from
JSON documents (the CLI and import path), with the same rules as the per-result services."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.db import validate as v
from reluth.i18n import N_
from reluth.i18n.reasons import DAY, Reason, Word, invalid, too_long
from reluth.i18n.vocabulary import AE_OUTCOMES
from reluth.notify import outbox
from reluth.patients import service as patients
from reluth.protocol.definition import Protocol
from reluth.safety import coding, ctcae, seriousness
from reluth.safety.models import AdverseEvent, LabResult
from reluth.units import canonical_unit, convert, to_canonical

RELATEDNESS = ("not_related", "unlikely", "possible", "probable", "definite")
OUTCOMES = (
    "recovered",
    "recovering",
    "not_recovered",
    "recovered_with_sequelae",
    "fatal",
    "unknown",
)


@service(Action.WRITE, Resource.LAB)
def record_labs(ctx: Ctx, data: Any) -> list[LabResult]:
    """``{"patient_id", "date", "results": [{test, value, unit, uln?, lln?}]}``; each result is
    converted to its canonical unit and graded by CTCAE v5.0 — for an included patient, dated
    in the trial's order, as on every other path (one rule, :func:`safety.service.record_lab`'s)."""
    session, today = ctx.session, ctx.today()
    body = v.obj(data, "labs")
    patient = patients.get_patient(ctx, str(body.get("patient_id")))
    # read once: the batch's own rows change none of the dates a lab entry is checked against
    known = patients.included_milestones(session, patient)
    sample_date = v.date(body, "date", "labs", today)
    assert sample_date is not None
    parsed = ctcae.parse_results({"results": v.items(body.get("results"), "results")})
    version = ctx.protocol.label
    rows = []
    for i, result in enumerate(parsed):
        day = result.date or sample_date
        patients.check_date(ctx, patient, "lab", day, f"results[{i}].date", known=known)
        graded = ctcae.grade(result)
        canonical = to_canonical(result.test, result.value, result.unit, f"results[{i}].unit")
        uln = None
        if result.uln is not None:
            uln = to_canonical(result.test, result.uln.value, result.uln.unit, f"results[{i}].uln")
        lln = None  # in the value's unit, as typed with it
        if result.lln is not None:
            lln = result.lln.value
            if result.lln.unit != result.unit:
                lln = convert(result.test, lln, result.lln.unit, result.unit, f"results[{i}].lln")
        row = LabResult(
            patient_id=patient.id,
            sample_date=day,
            analyte=result.test,
            value=result.value,
            unit=result.unit,
            value_canonical=canonical,
            canonical_unit=canonical_unit(result.test),
            lln=lln,
            uln=uln,
            ctcae_grade=graded.grade,
            protocol_version=version,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


#: The fields of an adverse event, as the entry service takes them (and an edit may change).
AE_FIELDS = (
    "term",
    "grade",
    "serious",
    "relatedness",
    "outcome",
    "onset_date",
    "resolution_date",
    "awareness_date",
    "awareness_time",
    "description",
    "seriousness",
)
TERM_MAX = 120  # adverse_events.term


def adverse_event_fields(
    ae: Mapping[str, Any], today: dt.date, protocol: Protocol
) -> dict[str, Any]:
    """The validated column values of one adverse event: the rules of entry and of every later
    correction. Grade 5 if and only if fatal; no date in the future; resolution not before
    onset; a serious event needs the date the site became aware of it (it starts the 24-hour
    clock to pharmacovigilance), which cannot precede the onset; ICH E2A seriousness criteria
    only for a serious event (death only with a fatal outcome). The criteria may follow in the
    SAE report, which requires at least one."""
    w = "adverse_event"
    term = v.text(ae, "term", w)
    assert term is not None
    if len(term) > TERM_MAX:
        raise too_long(f"{w}.term", len(term), TERM_MAX)
    grade = v.integer(ae, "grade", w, 1, 5)
    outcome = v.choice(ae, "outcome", w, OUTCOMES)
    serious = v.boolean(ae, "serious", w)
    onset = v.date(ae, "onset_date", w, today)
    resolved = v.date(ae, "resolution_date", w, today, optional=True)
    aware = v.date(ae, "awareness_date", w, today, optional=True)
    assert onset is not None
    if resolved is not None and resolved < onset:
        raise invalid(
            f"{w}.resolution_date",
            "resolution_before_onset",
            N_("{day} is before onset {onset}"),
            day=resolved,
            onset=onset,
        )
    if (grade == 5) != (outcome == "fatal"):
        raise invalid(
            f"{w}.outcome",
            "outcome_contradicts_grade",
            N_("{outcome} with grade {grade}"),
            N_("grade 5 = fatal"),
            outcome=Word(AE_OUTCOMES.get(outcome, outcome)),
            grade=grade,
        )
    if serious and aware is None:
        raise invalid(
            f"{w}.awareness_date",
            "awareness_date_required",
            N_("required for a serious adverse event (it starts the {hours}-hour reporting clock)"),
            N_("the date the site became aware, {placeholder}"),
            hours=protocol.safety.sae_reporting_hours,
            placeholder=DAY,
        )
    if aware is not None and aware < onset:
        raise invalid(
            f"{w}.awareness_date",
            "awareness_before_onset",
            N_("{day} is before onset {onset}"),
            day=aware,
            onset=onset,
        )
    criteria = seriousness.parse_criteria(ae.get("seriousness"), f"{w}.seriousness")
    if criteria and not serious:
        raise invalid(
            f"{w}.seriousness",
            "criteria_without_seriousness",
            N_("seriousness criteria for an event not marked serious"),
            N_("serious: true, or no criteria"),
        )
    if "death" in criteria and outcome != "fatal":
        raise invalid(
            f"{w}.seriousness",
            "death_without_fatal_outcome",
            N_("criterion death with outcome {outcome}"),
            N_("outcome fatal"),
            outcome=Word(AE_OUTCOMES.get(outcome, outcome)),
        )
    aware_time = v.time_of_day(ae, "awareness_time", w)
    if aware_time is not None and aware is None:
        raise invalid(
            f"{w}.awareness_time",
            "time_without_awareness_date",
            N_("a time without the awareness date"),
            N_("the date too, or no time"),
        )
    return {
        "term": term,
        "grade": grade,
        "serious": serious,
        "relatedness": v.choice(ae, "relatedness", w, RELATEDNESS),
        "outcome": outcome,
        "onset_date": onset,
        "resolution_date": resolved,
        "awareness_date": aware,
        "awareness_time": aware_time,
        "description": v.text(ae, "description", w, optional=True),
        "seriousness": seriousness.stored(criteria),
    }


@service(Action.WRITE, Resource.ADVERSE_EVENT)
def record_adverse_event(ctx: Ctx, data: Any) -> AdverseEvent:
    """``{"patient_id", "term", "grade" 1-5, "serious", "relatedness", "outcome",
    "onset_date", "resolution_date"?, "awareness_date"? (required if serious),
    "description"?, "seriousness"?}`` for an included patient, onset in the trial's order; a
    CTCAE v5.0 term is coded at once (MedDRA LLT code and SOC), any other is left for the coder."""
    ae = v.obj(data, "adverse_event")
    patient = patients.get_patient(ctx, str(ae.get("patient_id")))
    patients.require_included(ctx.session, patient)
    values = adverse_event_fields(ae, ctx.today(), ctx.protocol)
    patients.check_date(ctx, patient, "adverse_event", values["onset_date"], "onset_date")
    row = AdverseEvent(
        patient_id=patient.id,
        protocol_version=ctx.protocol.label,
        **values,
        **coding.coded(values["term"]),
    )
    ctx.session.add(row)
    ctx.session.flush()
    if row.serious:
        outbox.notify(
            ctx,
            "sae",
            outbox.pharmacovigilance(ctx),
            Reason(
                "mail.sae_subject",
                N_("SAE entered: {patient}, {term} grade {grade}"),
                {"patient": patient.patient_code, "term": row.term, "grade": row.grade},
            ),
            Reason(
                "mail.sae",
                N_(
                    "A serious adverse event was entered for patient {patient} (centre "
                    "{centre}) by {user}.\nEvent: {term}, CTCAE grade {grade}, onset {onset}, "
                    "site aware {aware}.\nAcknowledge receipt and assess it: /adverse-events/{id}"
                ),
                {
                    "patient": patient.patient_code,
                    "centre": patient.centre.code,
                    "user": ctx.actor.username,
                    "term": row.term,
                    "grade": row.grade,
                    "onset": row.onset_date,
                    "aware": row.awareness_date,
                    "id": str(row.id),
                },
            ),
        )
    return row
