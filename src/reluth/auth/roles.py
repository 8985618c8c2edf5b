"""The roles of the trial and what each may see (the permission layer builds on these)."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    INVESTIGATOR = "investigator"
    RESEARCH_NURSE = "research_nurse"
    MONITOR = "monitor"
    DATA_MANAGER = "data_manager"
    CENTRAL_REVIEWER = "central_reviewer"
    MEDICAL_PHYSICIST = "medical_physicist"
    PHARMACOVIGILANCE = "pharmacovigilance"
    STATISTICIAN = "statistician"
    CODER = "coder"  # medical coder: codes and recodes adverse-event terms (MedDRA)
    ADMIN = "admin"


#: Roles that must never see the randomized arm or anything from which it can be inferred.
BLINDED_ROLES: frozenset[Role] = frozenset({Role.CENTRAL_REVIEWER})

#: Roles whose access is limited to the centres they are assigned to.
CENTRE_SCOPED_ROLES: frozenset[Role] = frozenset(
    {Role.INVESTIGATOR, Role.RESEARCH_NURSE, Role.MONITOR}
)

#: Roles allowed to read the allocation list and per-arm reports.
UNBLINDED_STATISTICS_ROLES: frozenset[Role] = frozenset({Role.STATISTICIAN})
