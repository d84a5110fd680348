"""Errors of the edge. Library errors (grpc.RpcError, llama.cpp, sqlite3) are mapped to these
once, where they arise, and chained `from exc`.

    EdgeError                      the message says what is wrong and what to do
    ├── ConfigError                bad settings or flags
    ├── StudentError               the student model cannot be loaded or run
    │   └── PromptTooLongError     the prompt does not fit the student's context
    ├── LedgerError                the ledger database cannot be opened or written
    ├── DatasetError               an evaluation dataset that cannot be read
    └── TeacherCallError               a teacher call did not produce a span
        ├── TeacherUnavailableError   unreachable, overloaded or too slow, after retries
        │   └── CircuitOpenError      not tried: the circuit breaker is open
        ├── TeacherRejectedError      the teacher refused the request (never retried)
        │   └── TeacherCredentialsError   refused our credentials: no later call is made
        └── CallCancelledError        the caller stopped the call in flight

Only TeacherUnavailableError counts against the teacher's health (the circuit breaker): a
refusal shows that the teacher is up.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of the edge's errors."""


class ConfigError(EdgeError):
    """Settings or flags that cannot work."""


class StudentError(EdgeError):
    """The student model cannot be loaded or run."""


class PromptTooLongError(StudentError):
    """The prompt leaves no room for an answer in the student's context window."""


class LedgerError(EdgeError):
    """The ledger database cannot be opened or written."""


class DatasetError(EdgeError):
    """An evaluation dataset that is missing or malformed."""


class TeacherCallError(EdgeError):
    """A teacher call did not produce a span.

    `retries` counts the extra attempts made before giving up; `latency_ms` the time spent;
    `wire_bytes` what the attempts put on the wire (a failed call still costs bytes);
    `sent` is False when no call was made at all.
    """

    def __init__(
        self,
        message: str,
        *,
        retries: int = 0,
        latency_ms: float = 0.0,
        wire_bytes: int = 0,
        sent: bool = True,
    ) -> None:
        super().__init__(message)
        self.retries = retries
        self.latency_ms = latency_ms
        self.wire_bytes = wire_bytes
        self.sent = sent


class TeacherUnavailableError(TeacherCallError):
    """The teacher could not answer in time (unreachable, overloaded, deadline).

    `retry_after_s` is the delay the teacher asked for (gRPC RetryInfo), if it named one.
    """

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, sent: bool = True
    ) -> None:
        super().__init__(message, sent=sent)
        self.retry_after_s = retry_after_s


class CircuitOpenError(TeacherUnavailableError):
    """The call was not made: the circuit breaker is open after repeated failures."""

    def __init__(self, message: str) -> None:
        super().__init__(message, sent=False)


class TeacherRejectedError(TeacherCallError):
    """The teacher refused the request as invalid or unauthorized; retrying cannot help."""


class TeacherCredentialsError(TeacherRejectedError):
    """The teacher refused the edge's credentials (UNAUTHENTICATED, PERMISSION_DENIED). Every
    later call would be refused the same way, so the client makes none for the session."""


class CallCancelledError(TeacherCallError):
    """The caller cancelled the call while it was in flight; the teacher is not to blame."""
