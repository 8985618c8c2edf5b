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


#: pydantic's error types (pydantic_core ``ErrorType``) -> the stable code of the message people
#: read (:mod:`reluth.i18n.messages` has one template per code) and the ``ctx`` entry holding
#: the limit the value broke, if any. A type not listed keeps its own name as code (a
#: ``PydanticCustomError`` raised by a form's validator carries a code of ours).
PYDANTIC_CODES: dict[str, tuple[str, str | None]] = {
    "missing": ("required", None),
    "string_too_short": ("required", None),
    "string_too_long": ("too_long", "max_length"),
    "too_long": ("too_many", "max_length"),
    "literal_error": ("not_accepted", "expected"),
    "enum": ("not_accepted", "expected"),
    "string_pattern_mismatch": ("not_accepted", "pattern"),
    "decimal_parsing": ("not_a_number", None),
    "decimal_type": ("not_a_number", None),
    "float_parsing": ("not_a_number", None),
    "float_type": ("not_a_number", None),
    "finite_number": ("not_a_number", None),
    "decimal_max_digits": ("too_many_digits", None),
    "decimal_max_places": ("too_many_digits", None),
    "decimal_whole_digits": ("too_many_digits", None),
    "int_parsing": ("not_an_integer", None),
    "int_type": ("not_an_integer", None),
    "int_from_float": ("not_an_integer", None),
    "date_parsing": ("not_a_date", None),
    "date_from_datetime_parsing": ("not_a_date", None),
    "date_from_datetime_inexact": ("not_a_date", None),
    "date_type": ("not_a_date", None),
    "datetime_parsing": ("not_a_moment", None),
    "datetime_from_date_parsing": ("not_a_moment", None),
    "datetime_type": ("not_a_moment", None),
    "time_parsing": ("not_a_time", None),
    "time_type": ("not_a_time", None),
    "bool_parsing": ("not_a_boolean", None),
    "bool_type": ("not_a_boolean", None),
    "greater_than": ("greater_than", "gt"),
    "greater_than_equal": ("at_least", "ge"),
    "less_than": ("less_than", "lt"),
    "less_than_equal": ("at_most", "le"),
    "extra_forbidden": ("not_a_field", None),
    "string_type": ("not_text", None),
    "list_type": ("not_a_list", None),
    "tuple_type": ("not_a_list", None),
    "model_type": ("not_an_object", None),
    "dict_type": ("not_an_object", None),
    "model_attributes_type": ("not_an_object", None),
    "value_error": ("not_valid", None),
    "assertion_error": ("not_valid", None),
    "json_invalid": ("not_json", None),
}


def _accepted_of(kind: str, ctx: Mapping[str, Any]) -> str | None:
    """What a pydantic check accepts, as the machine writes it (codes, limits)."""
    if "expected" in ctx:
        return str(ctx["expected"])
    pattern = str(ctx.get("pattern", ""))
    if pattern.startswith("^(") and pattern.endswith(")$"):  # reluth.web.api.one_of
        return ", ".join(p.replace("\\", "") for p in pattern[2:-2].split("|"))
    return None


def from_pydantic(error: Mapping[str, Any], field: str) -> ValidationError:
    """One pydantic error (an item of ``ValidationError.errors()``) as a :class:`ValidationError`
    naming ``field``, with a stable ``code`` and the ``params`` its translated message is built
    from (the value given and the limit); ``message`` keeps pydantic's English for logs and
    ``--json``. Every path that validates with pydantic (forms, the API's request bodies) reads
    a refusal through here, so people never read pydantic's own English."""
    kind = str(error.get("type", ""))
    ctx = dict(error.get("ctx") or {})
    code, limit = PYDANTIC_CODES.get(kind, (kind or "not_valid", None))
    given = error.get("input")
    problem = str(error.get("msg", "")).removeprefix("Value error, ")
    if kind == "missing":
        problem = "missing"
    elif kind == "extra_forbidden":
        problem = "not a field of this form"
    elif given is not None and not isinstance(given, dict | list):
        problem = f"{given!r:.40}: {problem}"
    params: dict[str, Any] = {}
    if isinstance(given, int | float) and not isinstance(given, bool):
        params["value"] = given  # a number is shown as the reader's language writes it
    elif given is not None and not isinstance(given, dict | list):
        params["value"] = str(given)[:40]
    if limit is not None and limit in ctx:
        params["limit"] = ctx[limit]
    accepted = _accepted_of(kind, ctx)
    if accepted is not None:
        params["accepted"] = accepted
    return ValidationError(field, problem, accepted, code=code, params=params)
