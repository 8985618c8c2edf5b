"""A query answered by correcting the value it is about: the correction goes through the
generic correction path (:mod:`reluth.forms.corrections`, the domain's own correction service
with its checks and derivations) with its reason, and the answer is recorded in the same audited
unit of work (ICH E6(R3) 4.2.4: a change to data is explained; 21 CFR 11.10(e)). Pages, the API
and the CLI all call :func:`answer_with_correction`.
"""

from __future__ import annotations

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.errors import ValidationError
from reluth.forms import corrections
from reluth.i18n import N_
from reluth.queries import service as queries
from reluth.queries.models import DataQuery

REASON_MAX = 2000


def correction_reason(query_id: int, reason: str) -> str:
    """The audit reason of the correction and the answer (one unit of work, one reason)."""
    return f"{reason.strip()} (answer to data query {query_id})"


@service(Action.WRITE, Resource.QUERY_ANSWER)
def answer_with_correction(
    ctx: Ctx, query_id: int, value: str, reason: str, answer: str | None = None
) -> DataQuery:
    """Answer query ``query_id`` by correcting its field to ``value`` (text, typed by the form's
    registry field as a correction form types it; empty clears an optional field), with
    ``reason``. The writer needs the form's own write permission too; a query on a form at a
    visit (no saved value) or a field that cannot be corrected is refused naming it."""
    text = (reason or "").strip() if isinstance(reason, str) else ""
    if not text or len(text) > REASON_MAX:
        raise ValidationError(
            "reason",
            "a reason for the correction is required",
            f"1-{REASON_MAX} characters",
            code="reason_missing",
            params={"limit": REASON_MAX},
        )
    if not isinstance(value, str) or len(value) > queries.TEXT_MAX:
        raise ValidationError(
            "correct", N_("expected the new value as text"), N_("the corrected value")
        )
    row = queries.get_query(ctx, query_id)
    if row.form_id is None or row.record_id is None or row.item is None:
        raise ValidationError(
            "correct",
            f"query {query_id} is on a form at a visit, not on a saved value",
            "answer it in words, then enter the form",
            code="query_on_visit_form",
            params={"query": str(query_id)},
        )
    ctx.writing.reason = correction_reason(query_id, text)
    inst = corrections.open_instance(ctx, row.form_id, row.record_id)
    changes = corrections.changes_from_pairs(ctx, inst, [f"{row.item}={value}"])
    corrections.correct(ctx, inst, changes)
    shown = value.strip() or "(empty)"
    said = answer.strip() if isinstance(answer, str) and answer.strip() else None
    return queries.answer_query(ctx, query_id, said or f"Corrected {row.item} to {shown}: {text}")
