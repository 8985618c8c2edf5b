"""The one permission layer: a pure role × action × resource policy plus centre scoping.

Pages, the JSON API and exports all ask this module, and nothing else, whether a person may do
something. It holds no I/O: a :class:`Principal` is built once per request from the session or
API token and passed in.

Decisions taken where the protocol is silent (documented in docs/web.md):

* research nurses enter data but do not randomize (randomization is an investigator's act);
* monitors and data managers read and raise/close queries but never edit clinical data;
* the central reviewer is blinded: only the tumour-assessment worklist and lesion entry, never
  the arm, treatment administrations, cycle 3/4 visits, dosimetry or arm counts;
* the admin manages users and centres and sees no patient data;
* dosimetry results are written by the medical physicist and read, centre-scoped, by the
  site roles and by the data manager and statistician (all of whom already see the arm).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from reluth.auth.roles import BLINDED_ROLES, CENTRE_SCOPED_ROLES, Role
from reluth.errors import PermissionDenied


class Action(enum.StrEnum):
    READ = "read"
    WRITE = "write"  # create or edit (edits of saved data also need a reason)


class Resource(enum.StrEnum):
    DASHBOARD = "dashboard"
    PATIENT = "patient"  # pseudonymous registration, screening, inclusion, timeline
    SCREENING = "screening"
    RANDOMIZATION = "randomization"  # performing a randomization
    ARM = "arm"  # seeing the allocated arm of a patient
    ARM_COUNTS = "arm_counts"  # per-arm totals on the dashboard
    TREATMENT = "treatment"  # administrations, cycles 3/4
    VISIT = "visit"
    LAB = "lab"
    ADVERSE_EVENT = "adverse_event"
    SAE_RECEIPT = "sae_receipt"  # pharmacovigilance acknowledges receipt of an SAE
    LOCAL_ASSESSMENT = "local_assessment"  # site tumour assessments
    CENTRAL_REVIEW = "central_review"  # blinded worklist and lesion entry
    QOL = "qol"
    DOSIMETRY = "dosimetry"
    QUERY = "query"  # read, raise, close data queries
    QUERY_ANSWER = "query_answer"  # answer a query raised on one's data
    AUDIT = "audit"
    EXPORT = "export"
    RANDOMIZATION_REPORT = "randomization_report"
    USER = "user"
    CENTRE = "centre"
    OWN_TOKENS = "own_tokens"


R, W = Action.READ, Action.WRITE

_SITE_DATA = (
    Resource.PATIENT,
    Resource.SCREENING,
    Resource.ARM,
    Resource.TREATMENT,
    Resource.VISIT,
    Resource.LAB,
    Resource.ADVERSE_EVENT,
    Resource.LOCAL_ASSESSMENT,
    Resource.QOL,
)


def _grants(read: Iterable[Resource] = (), write: Iterable[Resource] = ()) -> frozenset:
    out = {(R, r) for r in read} | {(W, r) for r in write}
    out |= {(R, r) for r in write}  # whoever may write may read
    out |= {(R, Resource.OWN_TOKENS), (W, Resource.OWN_TOKENS)}
    return frozenset(out)


POLICY: dict[Role, frozenset[tuple[Action, Resource]]] = {
    Role.INVESTIGATOR: _grants(
        read=(Resource.DASHBOARD, Resource.AUDIT, Resource.QUERY, Resource.DOSIMETRY),
        write=(*_SITE_DATA, Resource.RANDOMIZATION, Resource.QUERY_ANSWER),
    ),
    Role.RESEARCH_NURSE: _grants(
        read=(
            Resource.DASHBOARD,
            Resource.AUDIT,
            Resource.QUERY,
            Resource.ARM,
            Resource.DOSIMETRY,
        ),
        write=(*(r for r in _SITE_DATA if r is not Resource.ARM), Resource.QUERY_ANSWER),
    ),
    Role.MONITOR: _grants(
        read=(Resource.DASHBOARD, Resource.AUDIT, Resource.DOSIMETRY, *_SITE_DATA),
        write=(Resource.QUERY,),
    ),
    Role.DATA_MANAGER: _grants(
        read=(
            Resource.DASHBOARD,
            Resource.AUDIT,
            Resource.ARM_COUNTS,
            Resource.DOSIMETRY,
            *_SITE_DATA,
        ),
        write=(Resource.QUERY,),
    ),
    Role.CENTRAL_REVIEWER: _grants(write=(Resource.CENTRAL_REVIEW,)),
    Role.MEDICAL_PHYSICIST: _grants(
        read=(Resource.PATIENT, Resource.ARM, Resource.TREATMENT), write=(Resource.DOSIMETRY,)
    ),
    Role.PHARMACOVIGILANCE: _grants(
        read=(
            Resource.DASHBOARD,
            Resource.PATIENT,
            Resource.ARM,
            Resource.ADVERSE_EVENT,
            Resource.TREATMENT,
            Resource.AUDIT,
        ),
        write=(Resource.QUERY, Resource.SAE_RECEIPT),
    ),
    Role.STATISTICIAN: _grants(
        read=(
            Resource.DASHBOARD,
            Resource.ARM_COUNTS,
            Resource.EXPORT,
            Resource.RANDOMIZATION_REPORT,
            *_SITE_DATA,
            Resource.DOSIMETRY,
            Resource.AUDIT,
        ),
    ),
    Role.ADMIN: _grants(write=(Resource.USER, Resource.CENTRE)),
}

#: Resources from which the arm can be inferred: never granted to a blinded role.
ARM_REVEALING: frozenset[Resource] = frozenset(
    {
        Resource.ARM,
        Resource.ARM_COUNTS,
        Resource.TREATMENT,
        Resource.DOSIMETRY,
        Resource.RANDOMIZATION,
        Resource.RANDOMIZATION_REPORT,
        Resource.EXPORT,
    }
)


def allowed(role: Role | str, action: Action, resource: Resource) -> bool:
    """Whether ``role`` may perform ``action`` on ``resource`` (ignoring centre scope)."""
    try:
        r = Role(role)
    except ValueError:
        return False
    return (action, resource) in POLICY.get(r, frozenset())


@dataclass(frozen=True)
class Principal:
    """Who is asking: built once per request from a session or an API token."""

    user_id: int
    username: str
    role: Role
    centre_ids: frozenset[int]

    @property
    def all_centres(self) -> bool:
        return self.role not in CENTRE_SCOPED_ROLES

    @property
    def blinded(self) -> bool:
        return self.role in BLINDED_ROLES

    def can(self, action: Action, resource: Resource) -> bool:
        return allowed(self.role, action, resource)

    def sees_centre(self, centre_id: int | None) -> bool:
        return self.all_centres or (centre_id is not None and centre_id in self.centre_ids)

    def may(self, action: Action, resource: Resource, centre_id: int | None = None) -> bool:
        """Role permission and, for centre-scoped roles, the record's centre."""
        if not self.can(action, resource):
            return False
        return centre_id is None or self.sees_centre(centre_id)

    def require(self, action: Action, resource: Resource, centre_id: int | None = None) -> None:
        if not self.may(action, resource, centre_id):
            raise PermissionDenied(
                f"{self.role.value} may not {action.value} {resource.value.replace('_', ' ')}"
                + (
                    " of this centre"
                    if centre_id is not None and self.can(action, resource)
                    else ""
                )
            )

    def visible_centres(self, all_ids: Iterable[int]) -> list[int]:
        """The centre ids among ``all_ids`` this principal may see."""
        return [c for c in all_ids if self.sees_centre(c)]
