"""The records a teacher span is made of, shared by the engines, the bookkeeping and the API."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FinishReason(enum.Enum):
    LENGTH = "length"  # reached max_tokens; the answer goes on
    END_OF_ANSWER = "end_of_answer"  # the model emitted an end-of-generation token
    LINE_END = "line_end"  # a line ended and the request asked to stop there; the answer goes on
    DRAFT_ACCEPTED = "draft_accepted"  # the whole draft was accepted: no span; it goes on after it


@dataclass(frozen=True, slots=True)
class Piece:
    """New tokens of a span and the text they complete.

    `text` may be empty while a multi-byte character is incomplete; the pieces of a span,
    followed by its `SpanEnd.tail_text`, concatenate to the span's whole text.
    """

    token_ids: tuple[int, ...]
    text: str


@dataclass(frozen=True, slots=True)
class SpanEnd:
    """How an engine ended a span, and what it cost."""

    finish_reason: FinishReason
    tail_text: str  # text of bytes still pending at the end (a cut multi-byte character)
    prompt_tokens: int
    cached_prompt_tokens: int
    queue_time_ms: float
    compute_time_ms: float
    draft_tokens: int = 0  # draft tokens read to check them
    accepted_draft_tokens: int = 0  # of those, the accepted prefix: the span follows it


@dataclass(frozen=True, slots=True)
class SpanUsage:
    prompt_tokens: int
    cached_prompt_tokens: int
    generated_tokens: int
    queue_time_ms: float
    compute_time_ms: float
    replayed: bool = False
    draft_tokens: int = 0  # draft tokens read to check them (not in prompt_tokens)


@dataclass(frozen=True, slots=True)
class Span:
    """A finished span, as answered (and replayed for a retried `request_id`)."""

    token_ids: tuple[int, ...]
    text: str
    finish_reason: FinishReason
    usage: SpanUsage
    accepted_draft_tokens: int = 0  # with a draft: its tokens the span follows
