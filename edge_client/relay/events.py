"""What the relay loop yields, in answer order. Front ends render them; the ledger records them.

AnswerStarted    the first event of an answer: the prompt was evaluated
TokensAppended   tokens added to the answer (student, teacher or fallback)
TeacherCall      one teacher span asked for: answered, or not (then a fallback span follows,
                 unless the answer was cancelled); with a draft, the teacher's check of it
AnswerFinished   the last event of an answer
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from edge_client.errors import CallCancelledError, TeacherCallError, TeacherUnavailableError
from edge_client.teacher.client import TeacherUsage


class Source(enum.Enum):
    STUDENT = "student"  # the student chose these tokens itself
    TEACHER = "teacher"  # a teacher span
    FALLBACK = "fallback"  # the student wrote a span the teacher could not


@dataclass(frozen=True, slots=True)
class TokensAppended:
    """Tokens appended to the answer. `text` is what the user sees of them (command tags and
    text held back while a tag may be starting are not in it); `command_tokens` counts those
    among `token_ids` that belong to a `<call>` command."""

    source: Source
    token_ids: tuple[int, ...]
    text: str
    command_tokens: int = 0


class CallOutcome(enum.Enum):
    """How a teacher span asked for ended. Only UNAVAILABLE counts against the teacher's
    health (the circuit breaker); NOT_SENT is no teacher call at all."""

    ANSWERED = "answered"  # the span came back
    UNAVAILABLE = "unavailable"  # unreachable, overloaded or too slow after retries
    REFUSED = "refused"  # the teacher answered with a refusal (bad request, credentials)
    NOT_SENT = "not_sent"  # not called: breaker open, over the teacher's limits, refused before
    CANCELLED = "cancelled"  # the user stopped the answer while the call was in flight


@dataclass(frozen=True, slots=True)
class TeacherCall:
    """One teacher span asked for (retries included). Unless ANSWERED, `error` says why and
    the span of `requested` tokens is written by the student instead. `request_id` is the
    call's idempotency key; `teacher_usage` is the teacher's own count (ANSWERED only).

    A draft check (the verify policy) sent `draft_tokens` student tokens for the teacher to
    read; answered, the first `accepted_draft_tokens` of them follow the call as student
    tokens, then the teacher's `received` tokens. Unanswered, the draft stands: its tokens
    follow as a fallback span."""

    requested: int
    received: int
    retries: int
    latency_ms: float
    wire_bytes: int
    error: str | None = None
    outcome: CallOutcome = CallOutcome.ANSWERED
    request_id: str = ""
    teacher_usage: TeacherUsage = field(default_factory=TeacherUsage)  # zeros unless ANSWERED
    draft_tokens: int = 0
    accepted_draft_tokens: int = 0

    def __post_init__(self) -> None:
        if (self.error is None) != (self.outcome is CallOutcome.ANSWERED):
            raise ValueError(f"a {self.outcome.value} call has an error message iff not answered")

    @property
    def failed(self) -> bool:
        """True when the call produced no span."""
        return self.outcome is not CallOutcome.ANSWERED

    @property
    def sent(self) -> bool:
        """True when the call went to the teacher (whatever came back)."""
        return self.outcome is not CallOutcome.NOT_SENT


def call_outcome(error: TeacherCallError) -> CallOutcome:
    """What a teacher call that raised `error` counts as."""
    if isinstance(error, CallCancelledError):
        return CallOutcome.CANCELLED
    if not error.sent:
        return CallOutcome.NOT_SENT
    if isinstance(error, TeacherUnavailableError):
        return CallOutcome.UNAVAILABLE
    # A refusal, or an answer the edge cannot use (e.g. token ids outside its vocabulary).
    return CallOutcome.REFUSED


class AnswerEndReason(enum.Enum):
    END_OF_ANSWER = "end_of_answer"  # the student or a teacher span ended the answer
    MAX_TOKENS = "max_tokens"  # the answer reached its token limit
    CONTEXT_FULL = "context_full"  # the student's context window is full
    STOP_STRING = "stop_string"  # the answer's text reached one of its stop strings
    CANCELLED = "cancelled"  # the caller stopped the answer


@dataclass(frozen=True, slots=True)
class AnswerStarted:
    """The prompt (the new turn, in chat) is in the student's context: `prompt_tokens` of it
    were evaluated (the rest was already cached from earlier turns)."""

    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class AnswerFinished:
    reason: AnswerEndReason


RelayEvent = AnswerStarted | TokensAppended | TeacherCall | AnswerFinished
