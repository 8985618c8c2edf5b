"""Rules shared by every correction of saved data (lab results, adverse events, cycles, visits,
inclusions, pre-randomization assessments, QoL questionnaires, central reads).

A correction names only fields the record's service lets change, must change something (an
empty edit would leave an audit row with no content), and is made inside a unit of work that
carries a reason (:func:`reluth.db.session.require_reason`), so the audit trail keeps the old
value, the new value, who and why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.values import parse_date


def only(changes: Mapping[str, Any], editable: tuple[str, ...]) -> None:
    """Refuse a change of a field that is not editable, naming it and the editable ones."""
    for key in changes:
        if key not in editable:
            raise ValidationError(key, N_("cannot be changed"), ", ".join(editable))


def apply(row: Any, values: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Set the values that differ from the saved ones and return them; refuse an edit that
    changes nothing. Call it only once every value is validated (no partial write)."""
    changed = {k: v for k, v in values.items() if getattr(row, k) != v}
    if not changed:
        raise ValidationError(
            "edit",
            f"nothing to change: the {what} already holds these values",
            code="nothing_to_change",
            params={"what": what},
        )
    for key, value in changed.items():
        setattr(row, key, value)
    return changed


def as_date(value: Any, field: str) -> dt.date:
    """A date given as a date or as text, read as entry reads it (:func:`reluth.values.
    parse_date`: ISO or dd/mm/yyyy), so a correction accepts what entry accepts."""
    return parse_date(value.strip() if isinstance(value, str) else value, field)
