"""The engine contract: what the teacher needs from a model server.

    engine = create_engine(settings)               # engines/registry.py
    engine.info.tokenizer_fingerprint              # what token mode must match
    async for event in engine.generate(request):   # Piece, Piece, ..., then one SpanEnd
        ...
    await engine.close()

`generate` stops when its consumer stops iterating (a cancelled call): the engine frees the
session's sequence within one step, prefill included. It raises `InvalidRequestError` for a
context the engine finds too long after rendering, and `EngineDeadError` once the engine cannot
serve any more (a failure of the model runtime itself, never one bad request).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from cloud_teacher.requests import SpanRequest
from cloud_teacher.spans import Piece, SpanEnd

SpanEvent = Piece | SpanEnd


@dataclass(frozen=True, slots=True)
class EngineInfo:
    engine: str  # "llama.cpp", "vllm"
    model_name: str
    tokenizer_fingerprint: str
    vocab_size: int
    context_window: int  # tokens the model holds: context plus span


class Engine(Protocol):
    @property
    def info(self) -> EngineInfo: ...

    @property
    def unfinished_requests(self) -> int:
        """Spans admitted and not yet ended; a cancelled call's leaves within one step."""
        ...

    def generate(self, request: SpanRequest) -> AsyncIterator[SpanEvent]: ...

    async def close(self) -> None: ...
