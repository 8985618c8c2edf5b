"""The context of one service call: who acts (an authenticated :class:`Actor`), in which
transaction (an audited unit of work for writes, a read-only session for reads) and for which
:class:`Trial`. Services take it as their first argument; the unit of work records the same
actor on every audit row that the policy checked, so the two can never disagree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

import reluth.lifecycle.grid
import reluth.lifecycle.guard
import reluth.queries.edit_checks  # noqa: F401  (the registry's edit checks raise auto-queries)
from reluth.auth.actor import Actor
from reluth.core.trial import Trial
from reluth.db.session import SessionSource, UnitOfWork, read_session, unit_of_work
from reluth.errors import PermissionDenied
from reluth.i18n import N_
from reluth.i18n.reasons import refusal

if TYPE_CHECKING:
    from reluth.auth.policy import Action, Resource
    from reluth.protocol.definition import Protocol


@dataclass
class Ctx:
    """Session, actor and trial of one call; ``uow`` is None in a read-only context."""

    session: Session
    actor: Actor
    trial: Trial
    uow: UnitOfWork | None = None
    #: the permissions of the services running in this context (innermost last), set by
    #: :func:`reluth.core.service.service` and used to scope records to the actor's centres
    grants: list[tuple[Action, Resource]] = field(default_factory=list)

    @property
    def protocol(self) -> Protocol:
        return self.trial.protocol

    def today(self) -> dt.date:
        return self.trial.today()

    def now(self) -> dt.datetime:
        return self.trial.now()

    @property
    def reason(self) -> str | None:
        return None if self.uow is None else self.uow.reason

    def default_reason(self, text: str) -> None:
        """The audit reason of a change whose why is the service's own act (a revocation, a
        password change), unless the caller gave one."""
        if self.writing.reason is None:
            self.writing.reason = text

    @property
    def writing(self) -> UnitOfWork:
        """The unit of work; refused in a read-only context."""
        if self.uow is None:
            raise refusal(
                PermissionDenied,
                "read_only_context",
                N_("this is a read-only context; writes go through a unit of work"),
            )
        return self.uow

    def require_centre(self, centre_id: int | None) -> None:
        """The running service's permission for a record of ``centre_id`` (PermissionDenied)."""
        action, resource = self.current_grant()
        self.actor.require(action, resource, centre_id)

    def sees_centre(self, centre_id: int | None) -> bool:
        action, resource = self.current_grant()
        return self.actor.may(action, resource, centre_id)

    @contextmanager
    def acting(self, action: Action, resource: Resource) -> Iterator[Ctx]:
        """Ask the policy for ``action`` on ``resource`` (PermissionDenied) and scope the
        records loaded inside to the actor's centres with that permission."""
        self.actor.require(action, resource)
        self.grants.append((action, resource))
        try:
            yield self
        finally:
            self.grants.pop()

    def current_grant(self) -> tuple[Action, Resource]:
        if not self.grants:
            raise refusal(
                PermissionDenied,
                "no_declared_permission",
                N_("no service declared the permission of this call"),
            )
        return self.grants[-1]

    def record_event(self, action: str, table_name: str, record_id: str, detail: Any) -> None:
        self.writing.record_event(action, table_name, record_id, detail)


@contextmanager
def writing(
    source: SessionSource, actor: Actor, trial: Trial, reason: str | None = None
) -> Iterator[Ctx]:
    """One audited transaction as ``actor`` (commit on success, roll back on any error)."""
    with unit_of_work(source, actor, reason=reason, clock=trial.now) as uow:
        uow.session.info["reluth_trial"] = trial  # the registry of the commit's edit checks
        yield Ctx(uow.session, actor, trial, uow)


@contextmanager
def reading(source: SessionSource, actor: Actor, trial: Trial) -> Iterator[Ctx]:
    """A read-only session as ``actor``."""
    with read_session(source) as session:
        yield Ctx(session, actor, trial, None)


def read_context(session: Session, actor: Actor, trial: Trial) -> Ctx:
    """A read-only context on a session the caller owns (a web request's read session)."""
    return Ctx(session, actor, trial, None)
