"""Errors of the teacher. Library errors (llama.cpp, pydantic, gRPC binding) are mapped to these
once, where they arise, and chained `from exc`; `rpc/interceptors.py` maps them to gRPC status
codes.

    TeacherError                         the message says what is wrong and what to do
    ├── ConfigError                      bad settings, flags or model file (CLI: one line, exit 2)
    │   └── EngineNotAvailableError      the chosen engine is not in this build
    ├── InvalidRequestError              bad input; never retried         → INVALID_ARGUMENT
    │   ├── TokenizerMismatchError       token mode with another tokenizer
    │   └── ContextTooLongError          context over max_context_tokens
    ├── UnauthenticatedError             no valid API key                  → UNAUTHENTICATED
    ├── SessionNotFoundError             no usage for that session (of this key) → NOT_FOUND
    ├── OverloadedError                  too many spans waiting            → RESOURCE_EXHAUSTED
    │   └── QuotaExceededError           the key's tokens per minute are spent; carries when to
    │                                    retry (google.rpc.RetryInfo)      → RESOURCE_EXHAUSTED
    ├── EngineDeadError                  the engine failed; health is NOT_SERVING → UNAVAILABLE
    └── SpanFailedError                  the engine could not compute this span (a bug of the
                                         teacher); other spans go on       → INTERNAL
"""

from __future__ import annotations


class TeacherError(Exception):
    """Base of the teacher's errors."""


class ConfigError(TeacherError):
    """Settings, flags or a model file that cannot work."""


class EngineNotAvailableError(ConfigError):
    """The engine named in the settings is not installed in this build."""


class InvalidRequestError(TeacherError):
    """A request that cannot be served as sent; the client must change it."""


class TokenizerMismatchError(InvalidRequestError):
    """Token-mode ids from a tokenizer other than the teacher's."""


class ContextTooLongError(InvalidRequestError):
    """The context (after rendering, in text mode) exceeds `max_context_tokens`."""


class UnauthenticatedError(TeacherError):
    """The call carries no API key, or one the teacher does not know."""


class SessionNotFoundError(TeacherError):
    """The teacher holds no usage for the session."""


class OverloadedError(TeacherError):
    """Too many span requests are admitted already; retry later."""


class EngineDeadError(TeacherError):
    """The engine failed and cannot serve any more spans; restart the teacher."""


class SpanFailedError(TeacherError):
    """The engine could not compute this one span, through no fault of the request; the
    engine and the other spans go on."""


class QuotaExceededError(OverloadedError):
    """The caller's key used its teacher tokens for the current minute; retry after a delay."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
