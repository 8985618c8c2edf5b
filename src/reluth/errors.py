"""One small hierarchy of named errors, mapped to CLI exit codes and HTTP statuses in one place.

A person never sees a traceback for a mistake in their input: adapters catch ``ReluthError``
and print its ``message``, which names the field and what is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ReluthError(Exception):
    """Base of every error that is meant to be shown to a person."""

    exit_code: int = 2
    http_status: int = 400
    #: A stable machine code (the JSON API's ``code``): never translated, never reworded.
    code: str = "error"

    def __init__(
        self, message: str, *, code: str | None = None, params: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        #: The values a translated message is built from (``reluth.i18n.messages``).
        self.params: dict[str, Any] = dict(params or {})

    def __str__(self) -> str:
        return self.message


class ValidationError(ReluthError):
    """Bad input: names the field, what was given and what is accepted."""

    exit_code = 2
    http_status = 422
    code = "invalid_value"

    def __init__(
        self,
        field: str,
        problem: str,
        accepted: str | None = None,
        *,
        code: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.field = field
        self.problem = problem
        self.accepted = accepted
        text = f"{field}: {problem}"
        if accepted:
            text += f" (accepted: {accepted})"
        super().__init__(text, code=code, params=params)


class ValidationErrors(ReluthError):
    """Several validation problems found in one input, reported together."""

    exit_code = 2
    http_status = 422
    code = "invalid_values"

    def __init__(self, errors: Sequence[ValidationError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(e.message for e in self.errors))


class PermissionDenied(ReluthError):
    exit_code = 4
    http_status = 403
    code = "permission_denied"


class NotFound(ReluthError):
    exit_code = 5
    http_status = 404
    code = "not_found"


class Conflict(ReluthError):
    """The request contradicts the stored state (already randomized, method locked, ...)."""

    exit_code = 6
    http_status = 409
    code = "conflict"


class PreconditionFailed(ReluthError):
    """A protocol precondition does not hold (e.g. not eligible for randomization). ``field``
    names the input that breaks it, when one does (a correction that would undo a
    randomization's precondition), so a form can show the message next to it."""

    exit_code = 7
    http_status = 409
    code = "precondition_failed"
    field: str  # set only when a field is named (templates test ``error.field is defined``)

    def __init__(
        self,
        message: str,
        field: str | None = None,
        *,
        code: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, params=params)
        if field is not None:
            self.field = field


class NotConfigured(ReluthError):
    """Something the installation must provide is missing (a key file, a directory): names the
    setting and how to provide it."""

    exit_code = 8
    http_status = 503
    code = "not_configured"


class Locked(ReluthError):
    """The record is under a lock or a freeze (of its form, patient, centre or the study): the
    message names the lock, who set it, when and why (ICH E6(R3) 4.2.x, data lock)."""

    exit_code = 6
    http_status = 423
    code = "locked"
