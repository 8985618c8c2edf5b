"""Policy × service: every declared service entry point, called by every role, asks the one
policy before anything else — whichever adapter would call it. Critical services are also
checked against the roles written out literally; and no public function of a service module
takes a context without being declared (so nothing escapes the matrix)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from sqlalchemy import Engine

import reluth
from reluth.auth.actor import Actor
from reluth.auth.policy import allowed
from reluth.auth.roles import Role
from reluth.core.context import Ctx, reading, writing
from reluth.core.service import (
    SERVICE_MODULE_NAMES,
    SERVICES,
    ServiceEntry,
    load_service_modules,
)
from reluth.core.trial import Trial
from reluth.errors import PermissionDenied
from reluth.protocol.definition import load_protocol

ENTRIES: list[ServiceEntry] = sorted(load_service_modules().values(), key=lambda e: e.name)
TRIAL = Trial(load_protocol())


def _actor(role: Role) -> Actor:
    return Actor(f"matrix-{role.value}", role, frozenset({1}))


def _outcome(engine: Engine, entry: ServiceEntry, role: Role) -> str:
    """``denied`` when the policy refused the call, ``allowed`` otherwise (the call then fails
    on its missing arguments, or runs on the empty database)."""
    opener = writing if entry.writes else reading
    try:
        with opener(engine, _actor(role), TRIAL) as ctx:
            entry.func(ctx)
    except PermissionDenied as exc:
        if "may not" in exc.message:
            return "denied"
        return "allowed"  # a rule inside the service (e.g. a password login) after the policy
    except Exception:
        return "allowed"
    return "allowed"


def test_there_are_declared_services_in_every_domain() -> None:
    modules = {e.name.rsplit(".", 1)[0] for e in ENTRIES}
    for domain in (
        "patients",
        "treatment",
        "randomization",
        "safety",
        "qol",
        "queries",
        "lifecycle",
    ):
        assert any(m.startswith(f"reluth.{domain}.") for m in modules), domain
    for name in ("response.service", "dosimetry.service", "auth.service", "sites.service"):
        assert f"reluth.{name}" in modules
    assert len(ENTRIES) >= 60


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name.removeprefix("reluth."))
def test_each_service_asks_the_policy_for_each_role(engine: Engine, entry: ServiceEntry) -> None:
    for role in Role:
        want = "allowed" if allowed(role, entry.action, entry.resource) else "denied"
        assert _outcome(engine, entry, role) == want, (entry.name, role.value)


#: Who may call the services that decide or reveal the allocation, unblind, or run the trial's
#: gates — written out, not read from the policy.
CRITICAL: dict[str, frozenset[Role]] = {
    "reluth.randomization.service.randomize": frozenset({Role.INVESTIGATOR}),
    "reluth.randomization.service.generate_list": frozenset({Role.STATISTICIAN}),
    "reluth.randomization.service.allocation_list": frozenset({Role.STATISTICIAN}),
    "reluth.randomization.service.report": frozenset({Role.STATISTICIAN}),
    "reluth.randomization.service.record_backup_randomization": frozenset({Role.STATISTICIAN}),
    # a migrated trial's allocations, recorded as they were: the investigator who randomizes
    "reluth.randomization.service.import_randomization": frozenset({Role.INVESTIGATOR}),
    "reluth.randomization.service.configure": frozenset({Role.STATISTICIAN, Role.ADMIN}),
    "reluth.analysis.service.datasets_zip": frozenset({Role.STATISTICIAN}),
    "reluth.analysis.service.analysis_datasets": frozenset({Role.STATISTICIAN}),
    "reluth.auth.service.create_user": frozenset({Role.ADMIN}),
    "reluth.auth.service.set_role": frozenset({Role.ADMIN}),
    "reluth.auth.service.access_review": frozenset({Role.ADMIN}),
    "reluth.sites.service.add_centre": frozenset({Role.ADMIN}),
    "reluth.response.service.record_central_read": frozenset({Role.CENTRAL_REVIEWER}),
    # the local assessment is the site's; never the blinded central reviewer's
    "reluth.response.service.record_local_assessment": frozenset(
        {Role.INVESTIGATOR, Role.RESEARCH_NURSE}
    ),
    "reluth.response.service.local_assessments": frozenset(
        {Role.INVESTIGATOR, Role.RESEARCH_NURSE, Role.MONITOR, Role.DATA_MANAGER, Role.STATISTICIAN}
    ),
    "reluth.safety.sae.acknowledge_receipt": frozenset({Role.PHARMACOVIGILANCE}),
    "reluth.safety.sae.assess_report": frozenset({Role.PHARMACOVIGILANCE}),
    "reluth.safety.sae.record_susar_submission": frozenset({Role.PHARMACOVIGILANCE}),
    "reluth.safety.sae.report_sae": frozenset({Role.INVESTIGATOR, Role.RESEARCH_NURSE}),
    "reluth.dosimetry.service.store_cycle": frozenset({Role.MEDICAL_PHYSICIST}),
    "reluth.notify.service.deliver": frozenset({Role.ADMIN}),
    "reluth.notify.service.log": frozenset({Role.ADMIN}),
    "reluth.notify.service.weekly_digest": frozenset({Role.DATA_MANAGER}),
    "reluth.core.operations.record_operation": frozenset({Role.ADMIN}),
    "reluth.patients.service.register_patient": frozenset({Role.INVESTIGATOR, Role.RESEARCH_NURSE}),
    "reluth.safety.service.record_lab": frozenset({Role.INVESTIGATOR, Role.RESEARCH_NURSE}),
    "reluth.safety.service.recode_adverse_event": frozenset({Role.CODER}),
    "reluth.lifecycle.service.lock": frozenset({Role.DATA_MANAGER}),
    "reluth.lifecycle.service.unlock": frozenset({Role.DATA_MANAGER}),
    "reluth.lifecycle.signature_service.sign": frozenset({Role.INVESTIGATOR}),
    "reluth.lifecycle.sdv_service.verify": frozenset({Role.MONITOR}),
    "reluth.lifecycle.sdv_service.verify_visit": frozenset({Role.MONITOR}),
    "reluth.lifecycle.signature_service.designate_principal_investigator": frozenset({Role.ADMIN}),
    # the ODM export holds what each reader may read (never the central reviewer's blinded
    # role); the import is run by each role whose forms the file holds (each form then asks
    # its own service's permission)
    "reluth.odm.service.odm_export": frozenset(Role)
    - {Role.CENTRAL_REVIEWER, Role.CODER, Role.ADMIN},
    "reluth.odm.service.odm_import": frozenset(
        {Role.INVESTIGATOR, Role.RESEARCH_NURSE, Role.CENTRAL_REVIEWER, Role.MEDICAL_PHYSICIST}
    ),
}


@pytest.mark.parametrize("name", sorted(CRITICAL), ids=lambda n: n.removeprefix("reluth."))
def test_critical_services_are_open_to_exactly_these_roles(engine: Engine, name: str) -> None:
    entry = SERVICES[name]
    got = frozenset(r for r in Role if _outcome(engine, entry, r) == "allowed")
    assert got == CRITICAL[name]


def test_no_blinded_role_may_call_an_arm_revealing_service() -> None:
    from reluth.auth.policy import ARM_REVEALING
    from reluth.auth.roles import BLINDED_ROLES

    for entry in ENTRIES:
        if entry.resource in ARM_REVEALING:
            assert not any(allowed(r, entry.action, entry.resource) for r in BLINDED_ROLES)


#: Public functions of service modules that take a context but are not entry points: each is
#: called only from inside a declared service (they use its declared permission) or is pure.
HELPERS = {
    "reluth.patients.service.get_patient",  # scopes a patient with the running service's grant
    "reluth.patients.service.get_patient_row",  # get_patient with extra columns, scoped alike
    "reluth.patients.service.check_date",  # the timeline rule, inside a service
    "reluth.safety.service.owned",  # a patient's record, inside a service
    "reluth.response.service.reviewed_patient",  # an included patient, inside a service
    "reluth.records.views.visible_patient",  # asks the policy for the permission it is given
    "reluth.records.views.visible_visit",  # the same, for a visit
    "reluth.records.views.centre_scoped",  # a query restricted to the actor's centres
    "reluth.records.views.query_row",  # presentation of a row already read by a service
    "reluth.records.views.record_history",  # dispatches to account_history / data_history
    "reluth.records.views.form_sections",  # calls each form's declared listing service
    "reluth.analysis.service.record_download",  # an audit event of a download built by a service
    "reluth.forms.service.build_grid",  # the status grid, inside a declared service
    "reluth.forms.service.grid_counts",  # the dashboard's counts of it, likewise
    "reluth.forms.service.columns",  # the schedule's visit columns the actor may see (no data)
    "reluth.lifecycle.service.form_row",  # a form instance, scoped with the running service's grant
}


def _public_ctx_functions() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(reluth.__path__, "reluth."):
        last = info.name.rsplit(".", 1)[-1]
        if last not in SERVICE_MODULE_NAMES:
            continue
        module = importlib.import_module(info.name)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or not inspect.isfunction(obj):
                continue
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            params = list(inspect.signature(obj).parameters.values())
            if params and params[0].name == "ctx" and params[0].annotation in (Ctx, "Ctx"):
                names.append(f"{module.__name__}.{attr}")
    return names


def test_no_context_taking_function_escapes_the_matrix() -> None:
    load_service_modules()
    escaped = [n for n in _public_ctx_functions() if n not in SERVICES and n not in HELPERS]
    assert escaped == []
