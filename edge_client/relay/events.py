"""What the relay loop yields, in answer order. Front ends render them; the ledger records them.

AnswerStarted    the first event of an answer: the prompt was evaluated
TokensAppended   tokens added to the answer (student, teacher or fallback)
TeacherCall      one teacher call: succeeded, or failed (then a fallback span follows)
AnswerFinished   the last event of an answer
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


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


@dataclass(frozen=True, slots=True)
class TeacherCall:
    """One teacher call (retries included). On failure `error` says why and the span of
    `requested` tokens is written by the student instead."""

    requested: int
    received: int
    retries: int
    latency_ms: float
    wire_bytes: int
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


class AnswerEndReason(enum.Enum):
    END_OF_ANSWER = "end_of_answer"  # the student or a teacher span ended the answer
    MAX_TOKENS = "max_tokens"  # the answer reached its token limit
    CONTEXT_FULL = "context_full"  # the student's context window is full
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
