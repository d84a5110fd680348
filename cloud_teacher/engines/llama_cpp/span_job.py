"""One span being generated: its prompt, where it stands, and where its events go.

A job waits for a sequence, then prefills (`pending` holds the prompt tokens its sequence does
not hold yet), then decodes (`pending` holds the one token sampled last). The step loop owns
every field but `cancelled`, which the caller's side sets.

A job with a draft prefills the draft after its prompt, keeping the logits of every position
that predicts a draft token; the check ends at the first rejected token (the span is then
written from there) or with the whole draft accepted (no span).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cloud_teacher.engines.base import SpanEvent
from cloud_teacher.engines.llama_cpp.sequence_pool import CachedSequence, Owner
from cloud_teacher.engines.span_writer import SpanWriter
from cloud_teacher.requests import SpanRequest
from relay_common.sampling import Sampler

# What a job emits: its events, an error that ends it, or None once it stopped unfinished.
JobEvent = SpanEvent | BaseException | None


@dataclass(slots=True, eq=False)
class SpanJob:
    request: SpanRequest
    prompt: list[int]
    writer: SpanWriter
    sampler: Sampler
    emit: Callable[[JobEvent], None]
    queued_at: float
    sequence: CachedSequence | None = None
    pending: list[int] = field(default_factory=list)
    cached_prompt_tokens: int = 0
    started_at: float = 0.0
    prefilled: bool = False  # the whole prompt was evaluated
    cancelled: bool = False
    accepted_draft_tokens: int | None = None  # set when the draft check is over

    @property
    def owner(self) -> Owner:
        return (self.request.tenant, self.request.session_id)

    @property
    def draft(self) -> tuple[int, ...]:
        """The draft to check after the prompt; empty for a plain span."""
        draft = self.request.draft
        return () if draft is None else draft.token_ids

    @property
    def checking(self) -> bool:
        """True while the draft's verdict is not known yet."""
        return bool(self.draft) and self.accepted_draft_tokens is None

    def draft_rows(self, position: int, n_tokens: int) -> int | None:
        """For `n_tokens` evaluated from `position` on, the offset of the first one whose
        logits predict a draft token (the prompt's last token predicts the first), or None."""
        if not self.checking:
            return None
        first_row = len(self.prompt) - 1
        if position + n_tokens <= first_row:
            return None
        return max(0, first_row - position)
