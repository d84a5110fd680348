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
        └── TeacherRejectedError      the teacher refused the request (never retried)
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
    `wire_bytes` what the attempts put on the wire (a failed call still costs bytes).
    """

    def __init__(
        self,
        message: str,
        *,
        retries: int = 0,
        latency_ms: float = 0.0,
        wire_bytes: int = 0,
    ) -> None:
        super().__init__(message)
        self.retries = retries
        self.latency_ms = latency_ms
        self.wire_bytes = wire_bytes


class TeacherUnavailableError(TeacherCallError):
    """The teacher could not answer in time (unreachable, overloaded, deadline)."""


class CircuitOpenError(TeacherUnavailableError):
    """The call was not made: the circuit breaker is open after repeated failures."""


class TeacherRejectedError(TeacherCallError):
    """The teacher refused the request as invalid or unauthorized; retrying cannot help."""
