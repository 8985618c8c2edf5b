"""Service entry points declare the permission they need; the policy is asked before the body
runs, whichever adapter called (page, API, CLI, import, demo, batch).

    @service(Action.WRITE, Resource.LAB)
    def record_lab(ctx: Ctx, patient_code: str, raw: dict) -> LabResult: ...

Inside, :meth:`Ctx.require_centre` / the domain's record loaders scope the record to the actor's
centres with the same declared permission. Every declared entry point is listed in
:data:`SERVICES`, which the policy × service test enumerates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.errors import PermissionDenied
from reluth.i18n import N_
from reluth.i18n.reasons import refusal

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class ServiceEntry:
    name: str  # module.function
    action: Action
    resource: Resource
    writes: bool
    func: Callable[..., Any]


#: Every declared service entry point, by ``module.function``.
SERVICES: dict[str, ServiceEntry] = {}


def service(
    action: Action, resource: Resource, *, writes: bool | None = None
) -> Callable[[Callable[Concatenate[Ctx, P], R]], Callable[Concatenate[Ctx, P], R]]:
    """Declare a service entry point needing ``action`` on ``resource``. ``writes`` (default:
    ``action is WRITE``) also requires a write context (an audited unit of work)."""
    needs_uow = action is Action.WRITE if writes is None else writes

    def decorate(fn: Callable[Concatenate[Ctx, P], R]) -> Callable[Concatenate[Ctx, P], R]:
        @functools.wraps(fn)
        def entry(ctx: Ctx, *args: P.args, **kwargs: P.kwargs) -> R:
            if not isinstance(ctx, Ctx):
                raise TypeError(f"{fn.__qualname__} takes a service context (Ctx) first")
            with ctx.acting(action, resource):
                if needs_uow and ctx.uow is None:
                    raise refusal(
                        PermissionDenied,
                        "unit_of_work_required",
                        N_("{service} writes: it needs a unit of work"),
                        service=fn.__name__,
                    )
                return fn(ctx, *args, **kwargs)

        name = f"{fn.__module__}.{fn.__qualname__}"
        SERVICES[name] = ServiceEntry(name, action, resource, needs_uow, entry)
        entry.__reluth_service__ = SERVICES[name]  # type: ignore[attr-defined]
        return entry

    return decorate


def load_service_modules() -> dict[str, ServiceEntry]:
    """Import every domain service module so that :data:`SERVICES` is complete."""
    import importlib
    import pkgutil

    import reluth

    for info in pkgutil.walk_packages(reluth.__path__, "reluth."):
        last = info.name.rsplit(".", 1)[-1]
        if last in SERVICE_MODULE_NAMES or last.endswith("_service"):
            importlib.import_module(info.name)
    return SERVICES


#: The module names that hold service entry points in a domain package.
SERVICE_MODULE_NAMES = frozenset(
    {
        "service",
        "views",
        "dashboard",
        "records",
        "sae",
        "store",
        "operations",
        "integrity",
        "casebook",
    }
)
