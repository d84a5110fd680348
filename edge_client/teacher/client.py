"""The interface the relay loop uses to ask a teacher for a span."""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from relay_common.chat import ChatMessage
from relay_common.sampling import SamplingParams


class TeacherState(enum.Enum):
    """What the user is shown about the teacher."""

    ONLINE = "online"  # calls succeed
    DEGRADED = "degraded"  # recent calls failed or needed retries; still trying
    OFFLINE = "offline"  # circuit open, or teacher-free by choice: no calls are made
    REFUSED = "refused"  # the teacher refuses our credentials: no calls for this session


@dataclass(frozen=True, slots=True)
class TeacherInfo:
    model_name: str
    tokenizer_fingerprint: str
    max_span_tokens: int
    max_context_tokens: int


@dataclass(frozen=True, slots=True)
class Draft:
    """The student's draft after the context, for the teacher to check (token mode only). The
    teacher accepts it up to the first token it gives less than `min_prob`, a token that is
    its own top choice excepted when `accept_top_token`; it writes the span from there."""

    token_ids: Sequence[int]
    min_prob: float
    accept_top_token: bool = True


@dataclass(frozen=True, slots=True)
class SpanQuery:
    """One span to ask for. Exactly one of `token_ids` (token mode) or `messages` (text mode);
    with `draft` (token mode), the teacher checks the draft first."""

    session_id: str
    request_id: str
    max_tokens: int
    sampling: SamplingParams
    token_ids: Sequence[int] | None = None
    tokenizer_fingerprint: str = ""
    messages: Sequence[ChatMessage] | None = None
    assistant_prefix: str = ""
    stop_at_line_end: bool = False  # end the span with its first non-empty line
    draft: Draft | None = None


@dataclass(frozen=True, slots=True)
class TeacherUsage:
    """What the teacher itself reported for a span (its `SpanUsage`), for reconciling the
    edge's ledger with the teacher's `GetSessionUsage`."""

    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    generated_tokens: int = 0
    replayed: bool = False  # an answer to an earlier attempt with this request_id
    draft_tokens: int = 0  # draft tokens the teacher read to check them


@dataclass(frozen=True, slots=True)
class SpanReply:
    """A teacher span. `token_ids` are in the teacher's vocabulary (the student's in token
    mode); `ended_answer` is True when the teacher finished the answer. After a draft check,
    the span follows the draft's first `accepted_draft_tokens` tokens (all of them and no span
    when the teacher accepted the whole draft)."""

    token_ids: list[int]
    text: str
    ended_answer: bool
    retries: int = 0
    latency_ms: float = 0.0
    compute_ms: float = 0.0
    wire_bytes: int = 0
    teacher_usage: TeacherUsage = TeacherUsage()
    accepted_draft_tokens: int = 0


class TeacherClient(Protocol):
    """A teacher the relay loop can call.

        info = client.info()                     # raises TeacherCallError when unreachable
        reply = client.generate_span(request)    # raises TeacherCallError subclasses
        client.generate_span(request, cancel=ev) # ev.set() from another thread or a signal
                                                 # handler stops it: CallCancelledError
        client.state                             # TeacherState for the user

    `GrpcTeacherClient` is the production one; tests may pass any object with these members.
    """

    @property
    def state(self) -> TeacherState: ...

    def info(self) -> TeacherInfo: ...

    def generate_span(
        self, request: SpanQuery, *, cancel: threading.Event | None = None
    ) -> SpanReply: ...

    def close(self) -> None: ...
