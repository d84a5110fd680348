"""OpenAI's chat-completion objects, plus the relay's own fields (pure functions over dicts).

    completion(ids, text, summary)        # "chat.completion": the whole answer
    chunk(ids, delta={"content": "…", "relay": {"source": "teacher"}})  # "chat.completion.chunk"
    usage(summary)                         # prompt/completion/total tokens and `relay`

Extension fields: each content delta has `relay.source` (student, teacher or fallback), and
`usage.relay` holds the answer's relay counts, the session's (as the ledger holds them), the
teacher's state and the ledger session id.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from edge_client.relay.events import AnswerEndReason
from edge_client.relay.usage import Usage
from edge_client.serve.worker import AnswerSummary

# OpenAI's finish reasons: "length" where the answer was cut by a token limit.
_FINISH_REASONS = {
    AnswerEndReason.END_OF_ANSWER: "stop",
    AnswerEndReason.STOP_STRING: "stop",
    AnswerEndReason.MAX_TOKENS: "length",
    AnswerEndReason.CONTEXT_FULL: "length",
    AnswerEndReason.CANCELLED: "stop",  # a server shutting down; relay.finish_reason says so
}
# The relay counts shown for the answer and for the session.
_RELAY_COUNTS = (
    "student_tokens",
    "teacher_tokens",
    "teacher_calls",
    "teacher_failures",
    "fallback_spans",
    "fallback_tokens",
    "command_tokens",
    "cancelled_calls",
)


@dataclass(frozen=True, slots=True)
class CompletionIds:
    """What every object of one completion repeats."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


def finish_reason(summary: AnswerSummary, *, stopped: bool) -> str:
    return "stop" if stopped else _FINISH_REASONS[summary.reason]


def relay_counts(usage: Usage) -> dict[str, Any]:
    counts: dict[str, Any] = {name: getattr(usage, name) for name in _RELAY_COUNTS}
    counts["offload_ratio"] = round(usage.offload_ratio, 6)
    return counts


def usage(summary: AnswerSummary) -> dict[str, Any]:
    completion_tokens = summary.answer.generated_tokens
    return {
        "prompt_tokens": summary.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": summary.prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": summary.cached_tokens},
        "relay": {
            **relay_counts(summary.answer),
            "session_id": summary.session_id,
            "session": relay_counts(summary.session),
            "teacher": summary.teacher,
            "teacher_state": summary.teacher_state,
            "mode": summary.mode,
            "finish_reason": summary.reason.value,
        },
    }


def completion(
    ids: CompletionIds, text: str, summary: AnswerSummary, *, stopped: bool
) -> dict[str, Any]:
    return {
        "id": ids.id,
        "object": "chat.completion",
        "created": ids.created,
        "model": ids.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason(summary, stopped=stopped),
            }
        ],
        "usage": usage(summary),
    }


def chunk(
    ids: CompletionIds,
    *,
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    usage_object: dict[str, Any] | None = None,
    with_usage: bool = False,
) -> dict[str, Any]:
    """One streamed chunk: a delta (or the finish reason) of choice 0; with `usage_object`,
    the closing usage chunk, which has no choices (as OpenAI sends it)."""
    body: dict[str, Any] = {
        "id": ids.id,
        "object": "chat.completion.chunk",
        "created": ids.created,
        "model": ids.model,
        "choices": []
        if usage_object is not None
        else [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}],
    }
    if with_usage:
        body["usage"] = usage_object
    return body


def model_list(model: str, *, created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": created, "owned_by": "relay-edge"}],
    }
