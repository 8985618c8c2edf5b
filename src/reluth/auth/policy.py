"""The one permission layer: a pure role × action × resource policy plus centre scoping.

Every domain service asks this module, and nothing else, whether its :class:`~reluth.auth.actor.Actor`
may do something (the services declare their permission with :func:`reluth.core.service.service`);
pages, the JSON API, the CLI, the demo and batch jobs only obtain the actor and call the service.
It holds no I/O.

Decisions taken where the protocol is silent (documented in docs/web.md):

* research nurses enter data but do not randomize (randomization is an investigator's act);
* monitors and data managers read and raise/close queries but never edit clinical data;
* the central reviewer is blinded: only the tumour-assessment worklist and lesion entry, never
  the arm, treatment administrations, cycle 3/4 visits, dosimetry or arm counts;
* the protocol deviations log is kept by the site (investigator, research nurse) and by the
  monitor and data manager who find deviations at monitoring or data review (ICH E6(R3) 3.11.4);
  the statistician reads it for the per-protocol population;
* concomitant medications and medical history are site data; pharmacovigilance reads them to
  assess serious adverse events;
* the admin manages users and centres and sees no patient data;
* the coder reads adverse events (terms, never the arm) and codes or recodes their MedDRA terms;
* dosimetry results are written by the medical physicist and read, centre-scoped, by the
  site roles and by the data manager and statistician (all of whom already see the arm);
* the data manager locks, freezes and unlocks (ICH E6(R3) data lock); investigators sign, and
  the service further requires the principal investigator of the patient's centre (21 CFR
  11.50); monitors verify source data; the site, the monitor, the data manager and the
  statistician see locks, signatures and SDV state;
* a trial migrated from another EDC brings its allocations: the investigator (who randomizes,
  sees the arm and enters the site data the allocation depends on) records them as they were
  (``import randomization``), through the randomization service, which refuses them once reluth
  has allocated a patient itself; an ODM import is run by each role whose forms the file holds
  (site data, the blinded central reads), every form entering through its own service.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Protocol

from reluth.auth.roles import Role
from reluth.errors import PermissionDenied
from reluth.i18n import N_
from reluth.i18n.reasons import Word, refusal
from reluth.i18n.vocabulary import ROLES


class Action(enum.StrEnum):
    READ = "read"
    WRITE = "write"  # create or edit (edits of saved data also need a reason)


class Resource(enum.StrEnum):
    DASHBOARD = "dashboard"
    PATIENT = "patient"  # pseudonymous registration, screening, inclusion, timeline
    SCREENING = "screening"
    RANDOMIZATION = "randomization"  # performing a randomization
    RANDOMIZATION_SETUP = "randomization_setup"  # fixing the method (before the first one)
    RANDOMIZATION_BACKUP = "randomization_backup"  # recording a backup-procedure randomization
    RANDOMIZATION_IMPORT = "randomization_import"  # recording a migrated trial's allocation
    ODM_IMPORT = "odm_import"  # running an ODM import (each form then asks its own permission)
    ALLOCATION_LIST = "allocation_list"  # generating and reading the concealed list
    ARM = "arm"  # seeing the allocated arm of a patient
    ARM_COUNTS = "arm_counts"  # per-arm totals on the dashboard
    TREATMENT = "treatment"  # administrations, cycles 3/4
    VISIT = "visit"
    LAB = "lab"
    ADVERSE_EVENT = "adverse_event"
    SAE_RECEIPT = "sae_receipt"  # pharmacovigilance acknowledges receipt of an SAE
    SAE_ASSESSMENT = "sae_assessment"  # the sponsor's causality/expectedness, SUSAR submission
    LOCAL_ASSESSMENT = "local_assessment"  # site tumour assessments
    CENTRAL_REVIEW = "central_review"  # blinded worklist and lesion entry
    QOL = "qol"
    CONMED = "conmed"  # concomitant medications
    MEDICAL_HISTORY = "medical_history"
    DEVIATION = "deviation"  # the protocol deviations log
    DOSIMETRY = "dosimetry"
    QUERY = "query"  # read, raise, close data queries
    QUERY_ANSWER = "query_answer"  # answer a query raised on one's data
    AUDIT = "audit"
    AUDIT_VERIFY = "audit_verify"  # checking the integrity of the whole trail
    OPERATIONS = "operations"  # schema migration, backup, restore
    IMAGING = "imaging"  # the central DICOM store and its catalogue
    EXPORT = "export"
    RANDOMIZATION_REPORT = "randomization_report"
    USER = "user"
    CENTRE = "centre"
    OWN_TOKENS = "own_tokens"
    CODING = "coding"  # MedDRA codes of adverse-event terms (the coder's worklist)
    NOTIFICATION = "notification"  # the e-mail outbox: delivery, retries, the log
    NOTIFICATION_DIGEST = "notification_digest"  # the weekly digest of overdue forms
    LOCK = "lock"  # lock, freeze and unlock forms, patients, centres, the study (data manager)
    SIGNATURE = "signature"  # investigator e-signatures (a principal investigator of the centre)
    SDV = "sdv"  # source-data verification (monitors)


#: The words a refusal names an action and a resource by (English: the value, as it always was).
ACTIONS: dict[Action, str] = {Action.READ: N_("read"), Action.WRITE: N_("write")}
RESOURCES: dict[Resource, str] = {
    Resource.DASHBOARD: N_("dashboard"),
    Resource.PATIENT: N_("patient"),
    Resource.SCREENING: N_("screening"),
    Resource.RANDOMIZATION: N_("randomization"),
    Resource.RANDOMIZATION_SETUP: N_("randomization setup"),
    Resource.RANDOMIZATION_BACKUP: N_("randomization backup"),
    Resource.RANDOMIZATION_IMPORT: N_("randomization import"),
    Resource.ODM_IMPORT: N_("odm import"),
    Resource.ALLOCATION_LIST: N_("allocation list"),
    Resource.ARM: N_("arm"),
    Resource.ARM_COUNTS: N_("arm counts"),
    Resource.TREATMENT: N_("treatment"),
    Resource.VISIT: N_("visit"),
    Resource.LAB: N_("lab"),
    Resource.ADVERSE_EVENT: N_("adverse event"),
    Resource.SAE_RECEIPT: N_("sae receipt"),
    Resource.SAE_ASSESSMENT: N_("sae assessment"),
    Resource.LOCAL_ASSESSMENT: N_("local assessment"),
    Resource.CENTRAL_REVIEW: N_("central review"),
    Resource.QOL: N_("qol"),
    Resource.CONMED: N_("conmed"),
    Resource.MEDICAL_HISTORY: N_("medical history"),
    Resource.DEVIATION: N_("deviation"),
    Resource.DOSIMETRY: N_("dosimetry"),
    Resource.QUERY: N_("query"),
    Resource.QUERY_ANSWER: N_("query answer"),
    Resource.AUDIT: N_("audit"),
    Resource.AUDIT_VERIFY: N_("audit verify"),
    Resource.OPERATIONS: N_("operations"),
    Resource.IMAGING: N_("imaging"),
    Resource.EXPORT: N_("export"),
    Resource.RANDOMIZATION_REPORT: N_("randomization report"),
    Resource.USER: N_("user"),
    Resource.CENTRE: N_("centre"),
    Resource.OWN_TOKENS: N_("own tokens"),
    Resource.CODING: N_("coding"),
    Resource.NOTIFICATION: N_("notification"),
    Resource.NOTIFICATION_DIGEST: N_("notification digest"),
    Resource.LOCK: N_("lock"),
    Resource.SIGNATURE: N_("signature"),
    Resource.SDV: N_("sdv"),
}


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
    Resource.CONMED,
    Resource.MEDICAL_HISTORY,
)


def _grants(read: Iterable[Resource] = (), write: Iterable[Resource] = ()) -> frozenset:
    out = {(R, r) for r in read} | {(W, r) for r in write}
    out |= {(R, r) for r in write}  # whoever may write may read
    out |= {(R, Resource.OWN_TOKENS), (W, Resource.OWN_TOKENS)}
    return frozenset(out)


POLICY: dict[Role, frozenset[tuple[Action, Resource]]] = {
    Role.INVESTIGATOR: _grants(
        read=(
            Resource.DASHBOARD,
            Resource.AUDIT,
            Resource.QUERY,
            Resource.DOSIMETRY,
            Resource.LOCK,
            Resource.SDV,
        ),
        write=(
            *_SITE_DATA,
            Resource.RANDOMIZATION,
            Resource.RANDOMIZATION_IMPORT,
            Resource.ODM_IMPORT,
            Resource.QUERY_ANSWER,
            Resource.SIGNATURE,
            Resource.DEVIATION,
        ),
    ),
    Role.RESEARCH_NURSE: _grants(
        read=(
            Resource.DASHBOARD,
            Resource.AUDIT,
            Resource.QUERY,
            Resource.ARM,
            Resource.DOSIMETRY,
            Resource.LOCK,
            Resource.SIGNATURE,
            Resource.SDV,
        ),
        write=(
            *(r for r in _SITE_DATA if r is not Resource.ARM),
            Resource.ODM_IMPORT,
            Resource.QUERY_ANSWER,
            Resource.DEVIATION,
        ),
    ),
    Role.MONITOR: _grants(
        read=(
            Resource.DASHBOARD,
            Resource.AUDIT,
            Resource.DOSIMETRY,
            *_SITE_DATA,
            Resource.LOCK,
            Resource.SIGNATURE,
        ),
        write=(Resource.QUERY, Resource.SDV, Resource.DEVIATION),
    ),
    Role.DATA_MANAGER: _grants(
        read=(
            Resource.DASHBOARD,
            Resource.AUDIT,
            Resource.ARM_COUNTS,
            Resource.DOSIMETRY,
            *_SITE_DATA,
            Resource.SIGNATURE,
            Resource.SDV,
        ),
        write=(Resource.QUERY, Resource.NOTIFICATION_DIGEST, Resource.LOCK, Resource.DEVIATION),
    ),
    Role.CENTRAL_REVIEWER: _grants(write=(Resource.CENTRAL_REVIEW, Resource.ODM_IMPORT)),
    Role.MEDICAL_PHYSICIST: _grants(
        read=(Resource.PATIENT, Resource.ARM, Resource.TREATMENT),
        write=(Resource.DOSIMETRY, Resource.IMAGING, Resource.ODM_IMPORT),
    ),
    Role.PHARMACOVIGILANCE: _grants(
        read=(
            Resource.DASHBOARD,
            Resource.PATIENT,
            Resource.ARM,
            Resource.ADVERSE_EVENT,
            Resource.TREATMENT,
            Resource.AUDIT,
            Resource.CONMED,
            Resource.MEDICAL_HISTORY,
        ),
        write=(Resource.QUERY, Resource.SAE_RECEIPT, Resource.SAE_ASSESSMENT),
    ),
    Role.STATISTICIAN: _grants(
        write=(
            Resource.RANDOMIZATION_SETUP,
            Resource.ALLOCATION_LIST,
            Resource.RANDOMIZATION_BACKUP,
        ),
        read=(
            Resource.AUDIT_VERIFY,
            Resource.DASHBOARD,
            Resource.ARM_COUNTS,
            Resource.EXPORT,
            Resource.RANDOMIZATION_REPORT,
            *_SITE_DATA,
            Resource.DOSIMETRY,
            Resource.AUDIT,
            Resource.LOCK,
            Resource.SIGNATURE,
            Resource.SDV,
            Resource.DEVIATION,
        ),
    ),
    Role.CODER: _grants(read=(Resource.ADVERSE_EVENT,), write=(Resource.CODING,)),
    Role.ADMIN: _grants(
        read=(Resource.AUDIT_VERIFY,),
        write=(
            Resource.USER,
            Resource.CENTRE,
            Resource.OPERATIONS,
            Resource.RANDOMIZATION_SETUP,
            Resource.NOTIFICATION,
        ),
    ),
}

#: Roles that see the allocation list (upcoming arms): never granted by an administrator to
#: themselves (:func:`check_role_grant`), and listed in the access review.
UNBLINDED_ROLES: frozenset[Role] = frozenset({Role.STATISTICIAN})

#: Resources from which the arm can be inferred: never granted to a blinded role.
ARM_REVEALING: frozenset[Resource] = frozenset(
    {
        Resource.ARM,
        Resource.ARM_COUNTS,
        Resource.TREATMENT,
        Resource.DOSIMETRY,
        Resource.RANDOMIZATION,
        Resource.RANDOMIZATION_REPORT,
        Resource.RANDOMIZATION_SETUP,
        Resource.RANDOMIZATION_BACKUP,
        Resource.RANDOMIZATION_IMPORT,
        Resource.ALLOCATION_LIST,
        Resource.EXPORT,
        Resource.IMAGING,
    }
)


def allowed(role: Role | str, action: Action, resource: Resource) -> bool:
    """Whether ``role`` may perform ``action`` on ``resource`` (ignoring centre scope)."""
    try:
        r = Role(role)
    except ValueError:
        return False
    return (action, resource) in POLICY.get(r, frozenset())


class Subject(Protocol):
    """What the policy needs of an actor (:class:`reluth.auth.actor.Actor`)."""

    @property
    def username(self) -> str: ...

    @property
    def role(self) -> Role: ...

    @property
    def password_login(self) -> bool: ...

    def can(self, action: object, resource: object) -> bool: ...

    def may(self, action: object, resource: object, centre_id: int | None = None) -> bool: ...


def require(
    actor: Subject, action: Action, resource: Resource, centre_id: int | None = None
) -> None:
    """Refuse (PermissionDenied) unless ``actor`` may ``action`` ``resource`` of ``centre_id``."""
    if not actor.may(action, resource, centre_id):
        raise refusal(
            PermissionDenied,
            "not_permitted",
            N_("{role} may not {action} {resource} of this centre")
            if centre_id is not None and actor.can(action, resource)
            else N_("{role} may not {action} {resource}"),
            role=Word(ROLES.get(actor.role.value, actor.role.value)),
            action=Word(ACTIONS[action]),
            resource=Word(RESOURCES.get(resource, resource.value.replace("_", " "))),
        )


def require_password_login(actor: Subject, what: str) -> None:
    """Tokens, e-signatures and account changes rest on a password typed in this login: an API
    token (held by a script) cannot create tokens, so no token outlives its login's revocation."""
    if not actor.password_login:
        raise refusal(
            PermissionDenied,
            "password_login_required",
            N_("{what} needs a password login (web session or `reluth login`), not an API token"),
            what=Word(what),
        )


def check_role_grant(actor: Subject, target_username: str, new_role: Role) -> None:
    """An administrator may not give themselves an unblinded role (separation of duties: the
    unblinded statistician is appointed by another administrator, and every such grant is listed
    in the access review)."""
    if new_role in UNBLINDED_ROLES and target_username == actor.username:
        raise refusal(
            PermissionDenied,
            "self_grant_unblinded",
            N_(
                "you may not grant yourself the {role} role (unblinded): another "
                "administrator must grant it"
            ),
            role=Word(ROLES.get(new_role.value, new_role.value)),
        )
