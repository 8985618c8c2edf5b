"""Who is acting: an authenticated person in one role, at some centres, and how they proved it.

Every service call carries an :class:`Actor`; the one policy (:mod:`reluth.auth.policy`)
decides from it what may be read or written, and the audit trail records its username, role
and authentication method (21 CFR 11.10(d),(g); ICH E6(R3) attributability). Actors are made
only by :mod:`reluth.auth.service` from a checked password, a web session, an API token or a
CLI login token — or, once, for the bootstrap of an empty database.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from reluth.auth.policy import allowed, require
from reluth.auth.roles import BLINDED_ROLES, CENTRE_SCOPED_ROLES, Role
from reluth.errors import PermissionDenied
from reluth.i18n import N_
from reluth.i18n.reasons import refusal


class AuthMethod(enum.StrEnum):
    """How the actor authenticated (recorded on every audit row)."""

    PASSWORD = "password"  # a password checked just now (login, e-signature, scripted demo)
    WEB_SESSION = "web_session"  # a browser session opened by a password login
    API_TOKEN = "api_token"  # a script's bearer token
    CLI_TOKEN = "cli_token"  # the token `reluth login` stores after a password check
    BOOTSTRAP = "bootstrap"  # the operator on a database without any account yet
    SYSTEM = "system"  # a job of the server itself (the web app's e-mail drain), no login


#: Methods that rest on a password typed in this login (not on a token a script holds): only
#: these may create tokens (a token cannot mint tokens).
PASSWORD_LOGINS: frozenset[AuthMethod] = frozenset(
    {AuthMethod.PASSWORD, AuthMethod.WEB_SESSION, AuthMethod.CLI_TOKEN, AuthMethod.BOOTSTRAP}
)


@dataclass(frozen=True)
class Actor:
    """An authenticated user acting in ``role``; ``login_id`` is the web session or CLI login
    token this actor came through (tokens it creates are revoked with it)."""

    username: str
    role: Role
    centre_ids: frozenset[int] = frozenset()
    via: AuthMethod = AuthMethod.PASSWORD
    user_id: int | None = None
    login_id: int | None = None
    login_kind: str | None = None  # "web_session" | "cli_login" | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))
        object.__setattr__(self, "via", AuthMethod(self.via))
        object.__setattr__(self, "centre_ids", frozenset(self.centre_ids))
        if not self.username:
            raise refusal(PermissionDenied, "actor_unnamed", N_("an actor needs a username"))

    # --- the policy, asked through the actor ------------------------------------------------

    @property
    def all_centres(self) -> bool:
        return self.role not in CENTRE_SCOPED_ROLES

    @property
    def blinded(self) -> bool:
        return self.role in BLINDED_ROLES

    @property
    def password_login(self) -> bool:
        return self.via in PASSWORD_LOGINS

    def can(self, action: object, resource: object) -> bool:
        return allowed(self.role, action, resource)  # type: ignore[arg-type]

    def sees_centre(self, centre_id: int | None) -> bool:
        return self.all_centres or (centre_id is not None and centre_id in self.centre_ids)

    def may(self, action: object, resource: object, centre_id: int | None = None) -> bool:
        """Role permission and, for centre-scoped roles, the record's centre."""
        if not self.can(action, resource):
            return False
        return centre_id is None or self.sees_centre(centre_id)

    def require(self, action: object, resource: object, centre_id: int | None = None) -> None:
        require(self, action, resource, centre_id)  # type: ignore[arg-type]

    def visible_centres(self, all_ids: Iterable[int]) -> list[int]:
        """The centre ids among ``all_ids`` this actor may see."""
        return [c for c in all_ids if self.sees_centre(c)]
