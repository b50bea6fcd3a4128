"""Error kinds and exit codes: the one table every layer agrees on.

Drivers raise a `PipelinectlError` subclass; the CLI's main function turns it
into one line on stderr and `err.exit_code`. The control-plane API speaks the
same taxonomy through canonical codes (`INVALID_ARGUMENT`, `NOT_FOUND`, ...),
mapped both ways by `CANONICAL`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit-code contract (README, `man pipelinectl`); pinned by tests."""

    OK = 0
    INTERNAL = 1  # a bug or an unexpected answer: report it
    USAGE = 2  # bad arguments or input; nothing was sent
    NOT_FOUND = 3  # pipeline, stage, item, saga, job or context does not exist
    CONFLICT = 4  # stale version, wrong state, already running
    PERMISSION = 5  # unauthenticated or forbidden
    UNAVAILABLE = 6  # connection refused, timeout, 5xx, throttled past the deadline
    UNSUPPORTED = 7  # this control plane's driver cannot do this verb
    CONDITION_NOT_MET = 8  # `wait` timed out; a drill's hypothesis did not hold
    DRILL_FAILED = 9  # a drill step errored (its rollbacks still ran)
    ABORTED = 10  # the operator declined a confirmation
    INTERRUPTED = 130  # Ctrl-C


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.INTERNAL: "internal error (a bug, or an answer the tool did not understand)",
    ExitCode.USAGE: "usage or validation error; nothing was changed",
    ExitCode.NOT_FOUND: "the named pipeline, stage, item, saga, job or context does not exist",
    ExitCode.CONFLICT: "conflict: stale version, wrong state, or already in progress",
    ExitCode.PERMISSION: "unauthenticated, or the token's role may not do this",
    ExitCode.UNAVAILABLE: "control plane unavailable or timed out (retries exhausted)",
    ExitCode.UNSUPPORTED: "the verb is not supported by this control plane's driver",
    ExitCode.CONDITION_NOT_MET: "a wait condition or drill hypothesis was not met in time",
    ExitCode.DRILL_FAILED: "a drill step failed (rollbacks were run)",
    ExitCode.ABORTED: "the operator declined the confirmation; nothing was changed",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


class PipelinectlError(Exception):
    """Base of every error the tool expects; carries its exit code and API code.

    `message` is one line for the operator; `hint` says what to do next.
    `request_id` is the plane's id for the failing request, when there was one.
    """

    exit_code: ExitCode = ExitCode.INTERNAL
    code: str = "INTERNAL"  # canonical API code
    http_status: int = 500

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        detail: object = None,
        request_id: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail
        self.request_id = request_id
        if code is not None:
            self.code = code

    def one_line(self) -> str:
        text = self.message.strip().replace("\n", " ")
        if self.hint:
            text = f"{text} ({self.hint.strip()})"
        return text


class UsageError(PipelinectlError):
    exit_code = ExitCode.USAGE
    code = "INVALID_ARGUMENT"
    http_status = 400


class UnprocessableError(UsageError):
    """Well-formed input that breaks a rule no schema can state.

    A reversed range, a time that is not in the future, a value outside the target's own bounds, an
    idempotency key reused for another request: HTTP 422, so that a 400 always means "does not match the
    API document". Same code and exit code as any usage error.
    """

    http_status = 422


class NotFoundError(PipelinectlError):
    exit_code = ExitCode.NOT_FOUND
    code = "NOT_FOUND"
    http_status = 404


class ConflictError(PipelinectlError):
    """The target's state or version does not allow the change right now."""

    exit_code = ExitCode.CONFLICT
    code = "FAILED_PRECONDITION"
    http_status = 409


class StaleVersionError(ConflictError):
    """A write carried a version (If-Match) that is no longer current."""

    code = "ABORTED"
    http_status = 412


class AlreadyExistsError(ConflictError):
    code = "ALREADY_EXISTS"
    http_status = 409


class UnauthenticatedError(PipelinectlError):
    exit_code = ExitCode.PERMISSION
    code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDeniedError(PipelinectlError):
    exit_code = ExitCode.PERMISSION
    code = "PERMISSION_DENIED"
    http_status = 403


class UnavailableError(PipelinectlError):
    """Transient: connection refused, reset, 502/503/504. Reads retry these."""

    exit_code = ExitCode.UNAVAILABLE
    code = "UNAVAILABLE"
    http_status = 503


class UnreachableError(UnavailableError):
    """The plane could not be connected to at all (refused, connect timeout, no route).

    Retried only briefly (`transport.UNREACHABLE_WITHIN`): a plane that is down answers
    fast and stays down, and an operator must hear so within two seconds.
    """


class ThrottledError(UnavailableError):
    code = "RESOURCE_EXHAUSTED"
    http_status = 429


class DeadlineExceededError(UnavailableError):
    code = "DEADLINE_EXCEEDED"
    http_status = 504


class UnsupportedError(PipelinectlError):
    exit_code = ExitCode.UNSUPPORTED
    code = "UNIMPLEMENTED"
    http_status = 501

    @classmethod
    def verb(cls, driver: str, verb: str, why: str | None = None) -> UnsupportedError:
        text = f"'{verb}' is not supported by the {driver} driver"
        return cls(f"{text}: {why}" if why else text)


class ConditionNotMetError(PipelinectlError):
    exit_code = ExitCode.CONDITION_NOT_MET
    code = "DEADLINE_EXCEEDED"
    http_status = 504


class DrillFailedError(PipelinectlError):
    exit_code = ExitCode.DRILL_FAILED


class AbortedError(PipelinectlError):
    """The operator said no at a confirmation prompt."""

    exit_code = ExitCode.ABORTED
    code = "CANCELLED"
    http_status = 499


class InternalError(PipelinectlError):
    exit_code = ExitCode.INTERNAL
    code = "INTERNAL"
    http_status = 500


# Canonical API code -> error class. The server raises by class; the HTTP
# driver maps a response body's `code` back to the same class.
CANONICAL: dict[str, type[PipelinectlError]] = {
    "INVALID_ARGUMENT": UsageError,
    "OUT_OF_RANGE": UsageError,
    "NOT_FOUND": NotFoundError,
    "ALREADY_EXISTS": AlreadyExistsError,
    "FAILED_PRECONDITION": ConflictError,
    "ABORTED": StaleVersionError,
    "UNAUTHENTICATED": UnauthenticatedError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "RESOURCE_EXHAUSTED": ThrottledError,
    "UNAVAILABLE": UnavailableError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
    "UNIMPLEMENTED": UnsupportedError,
    "CANCELLED": AbortedError,
    "INTERNAL": InternalError,
    "UNKNOWN": InternalError,
}


# HTTP status -> the error class that answers it, derived from the classes themselves:
# the first class in this order claiming a status wins (409 is a conflict, not "already exists").
_BY_STATUS_ORDER: tuple[type[PipelinectlError], ...] = (
    UsageError, UnprocessableError, UnauthenticatedError, PermissionDeniedError, NotFoundError, ConflictError,
    StaleVersionError, ThrottledError, UnsupportedError, UnavailableError, DeadlineExceededError,
)
HTTP_STATUS_ERRORS: dict[int, type[PipelinectlError]] = {}
for _cls in _BY_STATUS_ORDER:
    HTTP_STATUS_ERRORS.setdefault(_cls.http_status, _cls)
HTTP_STATUS_ERRORS.setdefault(502, UnavailableError)  # a proxy in front of a plane that is down
del _cls


def error_class_for_status(status: int) -> type[PipelinectlError]:
    """The error kind of an HTTP status that carries no body we understand (any 5xx is transient)."""
    cls = HTTP_STATUS_ERRORS.get(status)
    if cls is not None:
        return cls
    return UnavailableError if status >= 500 else InternalError


def from_canonical(code: str, message: str, **kwargs: object) -> PipelinectlError:
    """Build the error class for an API `code`, keeping the code it arrived with."""
    cls = CANONICAL.get(code, InternalError)
    return cls(message, code=code if code in CANONICAL else None, **kwargs)  # type: ignore[arg-type]
