"""The permission policy itself: a literal role × action × resource table, written out here
independently of the implementation, and the blinding invariant."""

from __future__ import annotations

import pytest

from reluth.auth.actor import Actor
from reluth.auth.policy import (
    ARM_REVEALING,
    POLICY,
    UNBLINDED_ROLES,
    Action,
    Resource,
    allowed,
    check_role_grant,
)
from reluth.auth.roles import BLINDED_ROLES, Role
from reluth.errors import PermissionDenied

R, W = Action.READ, Action.WRITE
X = Resource

# Expected grants, resource -> "r" (read only) / "rw"; anything absent is denied.
EXPECTED: dict[Role, dict[Resource, str]] = {
    Role.INVESTIGATOR: {
        X.DASHBOARD: "r",
        X.AUDIT: "r",
        X.QUERY: "r",
        X.QUERY_ANSWER: "rw",
        X.PATIENT: "rw",
        X.SCREENING: "rw",
        X.ARM: "rw",
        X.TREATMENT: "rw",
        X.VISIT: "rw",
        X.LAB: "rw",
        X.ADVERSE_EVENT: "rw",
        X.LOCAL_ASSESSMENT: "rw",
        X.QOL: "rw",
        X.RANDOMIZATION: "rw",
        X.RANDOMIZATION_IMPORT: "rw",
        X.ODM_IMPORT: "rw",
        X.DOSIMETRY: "r",
        X.LOCK: "r",
        X.SIGNATURE: "rw",
        X.SDV: "r",
        X.CONMED: "rw",
        X.MEDICAL_HISTORY: "rw",
        X.DEVIATION: "rw",
        X.OWN_TOKENS: "rw",
    },
    Role.RESEARCH_NURSE: {
        X.DASHBOARD: "r",
        X.AUDIT: "r",
        X.QUERY: "r",
        X.QUERY_ANSWER: "rw",
        X.ARM: "r",
        X.PATIENT: "rw",
        X.SCREENING: "rw",
        X.TREATMENT: "rw",
        X.VISIT: "rw",
        X.LAB: "rw",
        X.ADVERSE_EVENT: "rw",
        X.LOCAL_ASSESSMENT: "rw",
        X.QOL: "rw",
        X.DOSIMETRY: "r",
        X.LOCK: "r",
        X.SIGNATURE: "r",
        X.SDV: "r",
        X.CONMED: "rw",
        X.MEDICAL_HISTORY: "rw",
        X.DEVIATION: "rw",
        X.ODM_IMPORT: "rw",
        X.OWN_TOKENS: "rw",
    },
    Role.MONITOR: {
        X.DASHBOARD: "r",
        X.AUDIT: "r",
        X.QUERY: "rw",
        X.PATIENT: "r",
        X.SCREENING: "r",
        X.ARM: "r",
        X.TREATMENT: "r",
        X.VISIT: "r",
        X.LAB: "r",
        X.ADVERSE_EVENT: "r",
        X.LOCAL_ASSESSMENT: "r",
        X.QOL: "r",
        X.DOSIMETRY: "r",
        X.LOCK: "r",
        X.SIGNATURE: "r",
        X.SDV: "rw",
        X.CONMED: "r",
        X.MEDICAL_HISTORY: "r",
        X.DEVIATION: "rw",
        X.OWN_TOKENS: "rw",
    },
    Role.DATA_MANAGER: {
        X.DASHBOARD: "r",
        X.AUDIT: "r",
        X.QUERY: "rw",
        X.ARM_COUNTS: "r",
        X.PATIENT: "r",
        X.SCREENING: "r",
        X.ARM: "r",
        X.TREATMENT: "r",
        X.VISIT: "r",
        X.LAB: "r",
        X.ADVERSE_EVENT: "r",
        X.LOCAL_ASSESSMENT: "r",
        X.QOL: "r",
        X.DOSIMETRY: "r",
        X.LOCK: "rw",
        X.SIGNATURE: "r",
        X.SDV: "r",
        X.CONMED: "r",
        X.MEDICAL_HISTORY: "r",
        X.DEVIATION: "rw",
        X.NOTIFICATION_DIGEST: "rw",
        X.OWN_TOKENS: "rw",
    },
    Role.CENTRAL_REVIEWER: {X.CENTRAL_REVIEW: "rw", X.ODM_IMPORT: "rw", X.OWN_TOKENS: "rw"},
    Role.MEDICAL_PHYSICIST: {
        X.PATIENT: "r",
        X.ARM: "r",
        X.TREATMENT: "r",
        X.DOSIMETRY: "rw",
        X.IMAGING: "rw",
        X.ODM_IMPORT: "rw",
        X.OWN_TOKENS: "rw",
    },
    Role.PHARMACOVIGILANCE: {
        X.DASHBOARD: "r",
        X.PATIENT: "r",
        X.ARM: "r",
        X.ADVERSE_EVENT: "r",
        X.TREATMENT: "r",
        X.AUDIT: "r",
        X.QUERY: "rw",
        X.SAE_RECEIPT: "rw",
        X.CONMED: "r",
        X.MEDICAL_HISTORY: "r",
        X.SAE_ASSESSMENT: "rw",
        X.OWN_TOKENS: "rw",
    },
    Role.STATISTICIAN: {
        X.DASHBOARD: "r",
        X.ARM_COUNTS: "r",
        X.EXPORT: "r",
        X.RANDOMIZATION_REPORT: "r",
        X.PATIENT: "r",
        X.SCREENING: "r",
        X.ARM: "r",
        X.TREATMENT: "r",
        X.VISIT: "r",
        X.LAB: "r",
        X.ADVERSE_EVENT: "r",
        X.LOCAL_ASSESSMENT: "r",
        X.QOL: "r",
        X.AUDIT: "r",
        X.DOSIMETRY: "r",
        X.RANDOMIZATION_SETUP: "rw",
        X.ALLOCATION_LIST: "rw",
        X.AUDIT_VERIFY: "r",
        X.LOCK: "r",
        X.SIGNATURE: "r",
        X.SDV: "r",
        X.CONMED: "r",
        X.MEDICAL_HISTORY: "r",
        X.DEVIATION: "r",
        X.RANDOMIZATION_BACKUP: "rw",
        X.OWN_TOKENS: "rw",
    },
    Role.CODER: {
        X.ADVERSE_EVENT: "r",
        X.CODING: "rw",
        X.OWN_TOKENS: "rw",
    },
    Role.ADMIN: {
        X.USER: "rw",
        X.CENTRE: "rw",
        X.OPERATIONS: "rw",
        X.RANDOMIZATION_SETUP: "rw",
        X.AUDIT_VERIFY: "r",
        X.NOTIFICATION: "rw",
        X.OWN_TOKENS: "rw",
    },
}


def test_every_role_has_a_policy() -> None:
    assert set(POLICY) == set(Role) == set(EXPECTED)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("resource", list(Resource))
@pytest.mark.parametrize("action", list(Action))
def test_matrix(role: Role, resource: Resource, action: Action) -> None:
    grant = EXPECTED[role].get(resource, "")
    expected = ("r" in grant) if action is R else ("w" in grant)
    assert allowed(role, action, resource) is expected


@pytest.mark.parametrize("role", sorted(BLINDED_ROLES))
def test_blinded_roles_never_get_anything_that_reveals_the_arm(role: Role) -> None:
    for resource in ARM_REVEALING:
        for action in Action:
            assert not allowed(role, action, resource)


def test_unknown_role_is_denied_everything() -> None:
    assert not any(allowed("superuser", a, r) for a in Action for r in Resource)


def test_centre_scoping() -> None:
    inv = Actor("inv", Role.INVESTIGATOR, frozenset({7}), user_id=1)
    dm = Actor("dm", Role.DATA_MANAGER, frozenset(), user_id=2)
    assert inv.may(R, X.PATIENT, centre_id=7)
    assert not inv.may(R, X.PATIENT, centre_id=8)
    assert not inv.sees_centre(None)
    assert dm.may(R, X.PATIENT, centre_id=8)
    assert not dm.may(W, X.PATIENT, centre_id=8)
    assert inv.visible_centres([6, 7, 8]) == [7]
    with pytest.raises(PermissionDenied, match="of this centre"):
        inv.require(R, X.PATIENT, centre_id=8)
    with pytest.raises(PermissionDenied, match="may not write patient"):
        dm.require(W, X.PATIENT, centre_id=8)


@pytest.mark.parametrize("role", list(Role))
def test_whoever_reads_dosimetry_already_sees_the_arm_and_the_treatment(role: Role) -> None:
    """Dosimetry of cycles 3/4 reveals the arm: only roles that see the arm may read it."""
    if allowed(role, R, X.DOSIMETRY):
        assert role not in BLINDED_ROLES
        assert allowed(role, R, X.ARM) and allowed(role, R, X.TREATMENT)


def test_only_the_medical_physicist_writes_dosimetry() -> None:
    assert {r for r in Role if allowed(r, W, X.DOSIMETRY)} == {Role.MEDICAL_PHYSICIST}


def test_only_the_statistician_is_unblinded_and_sees_the_allocation_list() -> None:
    assert frozenset({Role.STATISTICIAN}) == UNBLINDED_ROLES
    assert {r for r in Role if allowed(r, R, X.ALLOCATION_LIST)} == {Role.STATISTICIAN}


def test_an_administrator_cannot_grant_themselves_an_unblinded_role() -> None:
    admin = Actor("boss", Role.ADMIN, user_id=1)
    with pytest.raises(PermissionDenied, match="grant yourself the statistician role"):
        check_role_grant(admin, "boss", Role.STATISTICIAN)
    check_role_grant(admin, "someone-else", Role.STATISTICIAN)  # another account: allowed
    check_role_grant(admin, "boss", Role.DATA_MANAGER)  # not an unblinded role: allowed
