"""One span being generated: its prompt, where it stands, and where its events go.

A job waits for a sequence, then prefills (`pending` holds the prompt tokens its sequence does
not hold yet), then decodes (`pending` holds the one token sampled last). The step loop owns
every field but `cancelled`, which the caller's side sets.
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

    @property
    def owner(self) -> Owner:
        return (self.request.tenant, self.request.session_id)
