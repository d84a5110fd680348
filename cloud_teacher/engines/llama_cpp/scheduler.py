"""What one llama.cpp step evaluates: the next token of every decoding job, then prompt chunks
of jobs still prefilling, up to the step's token budget (chunked prefill: a long prompt takes
several steps and never stalls the others for long). Pure bookkeeping.

In exact mode a step serves one job only: llama.cpp's logits then do not depend on which other
sessions happen to share the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cloud_teacher.engines.llama_cpp.span_job import SpanJob


@dataclass(frozen=True, slots=True)
class Chunk:
    job: SpanJob
    tokens: list[int]
    wants_logits: bool  # the chunk ends the job's pending tokens: it samples next


class Scheduler:
    def __init__(self, *, step_tokens: int, one_job_per_step: bool) -> None:
        if step_tokens < 1:
            raise ValueError("a step must evaluate at least one token")
        self.step_tokens = step_tokens
        self.one_job_per_step = one_job_per_step
        self._turn = 0

    def plan(self, running: Sequence[SpanJob]) -> list[Chunk]:
        """Chunks for the next step; `running` in admission order (earliest first)."""
        if not running:
            return []
        if self.one_job_per_step:
            self._turn = (self._turn + 1) % len(running)  # each job gets its turn
            return [self._chunk(running[self._turn], self.step_tokens)]
        decoding = [job for job in running if job.prefilled]
        prefilling = [job for job in running if not job.prefilled]
        chunks = [self._chunk(job, 1) for job in decoding[: self.step_tokens]]
        budget = self.step_tokens - len(chunks)
        for job in prefilling:
            if budget <= 0:
                break
            chunk = self._chunk(job, budget)
            chunks.append(chunk)
            budget -= len(chunk.tokens)
        return chunks

    @staticmethod
    def _chunk(job: SpanJob, budget: int) -> Chunk:
        tokens = job.pending[:budget]
        return Chunk(job=job, tokens=tokens, wants_logits=len(tokens) == len(job.pending))
