"""The engine's one worker thread: admits jobs to sequences, runs one batched llama.cpp step
after another, samples each job's next token and emits its pieces.

Between two steps it drops cancelled jobs (prefill included: a long prompt is fed in chunks,
so a cancelled call frees its sequence within one step) and admits waiting ones. A failed
llama_decode ends every job with `EngineDeadError`; an error in one job's own work (sampling,
text) ends that job only, and so does a batch the runner refuses before llama.cpp sees it
(`BatchRejectedError`): the jobs at fault fail with `SpanFailedError` and their sequences start
over empty, the others go on.

A job with a draft is checked as its rows come: at the first rejected draft token its sequence
forgets the rest of the draft (the accepted part stays cached for the session's next call) and
the span is sampled from the logits there; with the whole draft accepted the job ends without
a span.

    loop = StepLoop(runner, pool=pool, scheduler=scheduler, max_running=8)
    loop.submit(job)     # from any thread; events arrive through job.emit
    loop.cancel(job)     # from any thread; the job emits None once it stopped
    loop.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import numpy as np
import numpy.typing as npt

from cloud_teacher.drafts import rejects_logits
from cloud_teacher.engines.llama_cpp.batch_check import BatchRejectedError
from cloud_teacher.engines.llama_cpp.batch_runner import BatchRunner, SequenceInput
from cloud_teacher.engines.llama_cpp.scheduler import Chunk, Scheduler
from cloud_teacher.engines.llama_cpp.sequence_pool import SequencePool
from cloud_teacher.engines.llama_cpp.span_job import SpanJob
from cloud_teacher.errors import EngineDeadError, SpanFailedError
from cloud_teacher.spans import FinishReason, SpanEnd

log = logging.getLogger(__name__)


class StepLoop:
    def __init__(
        self,
        runner: BatchRunner,
        *,
        pool: SequencePool,
        scheduler: Scheduler,
        max_running: int,
    ) -> None:
        self.runner = runner
        self._pool = pool
        self._scheduler = scheduler
        self._max_running = max_running
        self._wake = threading.Condition()
        self._inbox: deque[SpanJob] = deque()
        self._waiting: deque[SpanJob] = deque()
        self._running: list[SpanJob] = []
        self._closing = False
        self.dead: EngineDeadError | None = None
        self._thread = threading.Thread(target=self._run, name="llama-steps", daemon=True)
        self._thread.start()

    def submit(self, job: SpanJob) -> None:
        with self._wake:
            if self.dead is not None or self._closing:
                job.emit(self.dead or EngineDeadError("the engine is shutting down"))
                return
            self._inbox.append(job)
            self._wake.notify()

    @property
    def unfinished(self) -> int:
        """Jobs submitted and not yet finished or dropped (queued, waiting or running)."""
        with self._wake:
            return len(self._inbox) + len(self._waiting) + len(self._running)

    def cancel(self, job: SpanJob) -> None:
        with self._wake:
            job.cancelled = True
            self._wake.notify()

    def close(self) -> None:
        """Stops after the current step; unfinished jobs emit None."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join()

    # -- the worker thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._next_round():
                self._step()
        except Exception as exc:  # a bug here would otherwise leave every caller waiting
            self._die(exc)
            return
        for job in [*self._inbox, *self._waiting, *self._running]:
            job.emit(None)

    def _step(self) -> None:
        self._drop_cancelled()
        self._admit()
        if not self._running:
            return
        chunks = self._scheduler.plan(self._running)
        inputs = [_input(chunk) for chunk in chunks]
        try:
            indices = self.runner.decode(inputs)
        except BatchRejectedError as exc:  # nothing was evaluated: the context is intact
            self._reject(chunks, exc)
            return
        self._advance(chunks, inputs, indices)

    def _next_round(self) -> bool:
        """Waits until there is work; False once closing."""
        with self._wake:
            # Waiting jobs count as work: with none running, the first of them fits.
            while not (self._closing or self._inbox or self._waiting or self._running):
                self._wake.wait()
            self._waiting.extend(self._inbox)
            self._inbox.clear()
            return not self._closing

    def _drop_cancelled(self) -> None:
        for job in [job for job in self._waiting if job.cancelled]:
            self._waiting.remove(job)
            job.emit(None)
        for job in [job for job in self._running if job.cancelled]:
            self._finish(job)  # what it evaluated stays cached for the session's next call
            job.emit(None)

    def _admit(self) -> None:
        for job in list(self._waiting):
            if len(self._running) >= self._max_running:
                return
            claim = self._pool.claim(owner=job.owner, prompt=job.prompt)
            if claim is None:
                continue  # its session's sequence is busy, or all are: try the next job
            sequence = claim.sequence
            if not self.runner.drop(seq_id=sequence.seq_id, from_position=claim.keep):
                # This cache cannot cut the sequence there: start it over.
                self.runner.drop(seq_id=sequence.seq_id, from_position=0)
                sequence.tokens.clear()
            job.sequence = sequence
            job.cached_prompt_tokens = len(sequence.tokens)
            # The claim keeps at most the prompt less its last token: the draft is read anew.
            job.pending = [*job.prompt[len(sequence.tokens) :], *job.draft]
            job.started_at = time.perf_counter()
            self._waiting.remove(job)
            self._running.append(job)

    def _advance(
        self, chunks: list[Chunk], inputs: list[SequenceInput], indices: list[int]
    ) -> None:
        rows = iter(indices)
        for chunk, step_input in zip(chunks, inputs, strict=True):
            job = chunk.job
            assert job.sequence is not None  # running jobs hold a sequence
            job.sequence.tokens.extend(chunk.tokens)
            del job.pending[: len(chunk.tokens)]
            if not step_input.wants_logits:
                continue
            last_row = next(rows)
            if step_input.logits_from is not None:
                self._check_draft(job, step_input, last_row, ends_prompt=chunk.wants_logits)
                continue
            job.prefilled = True
            self._write(job, self.runner.logits(last_row))

    def _write(self, job: SpanJob, logits: npt.NDArray[np.float32]) -> None:
        """Samples the job's next token from `logits` and emits what it completes."""
        try:
            token = job.sampler.sample(logits)
            pieces, finish = job.writer.take(token)
        except Exception as exc:  # this job's own failure: the others go on
            log.exception("span %s failed", job.request.request_id)
            self._finish(job)
            job.emit(exc)
            return
        for piece in pieces:
            job.emit(piece)
        if finish is None:
            job.pending = [token]
        else:
            self._end(job, finish)

    def _check_draft(
        self, job: SpanJob, step_input: SequenceInput, last_row: int, *, ends_prompt: bool
    ) -> None:
        """Checks the draft tokens this step's rows predict; at the first rejected one the
        span goes on from there, and with the whole draft read and accepted the job ends."""
        assert job.sequence is not None and job.request.draft is not None
        first_row = len(job.prompt) - 1  # predicts the draft's first token
        last_offset = len(step_input.tokens) - 1
        for offset in range(step_input.logits_from or 0, len(step_input.tokens)):
            index = step_input.position + offset - first_row  # the draft token it predicts
            if index >= len(job.draft):
                break  # the row after the draft: only a rejection writes a span
            logits = self.runner.logits(last_row - (last_offset - offset))
            try:
                rejected = rejects_logits(job.request.draft, logits, token=job.draft[index])
            except Exception as exc:  # this job's own failure: the others go on
                log.exception("draft check of span %s failed", job.request.request_id)
                self._finish(job)
                job.emit(exc)
                return
            if rejected:
                again = self._cut_draft(job, accepted=index)
                self._write(job, logits)
                if again and job.pending:  # still writing: evaluate them before its token
                    job.pending[:0] = again
                    job.prefilled = False
                return
        if ends_prompt:
            job.accepted_draft_tokens = len(job.draft)
            self._end(job, FinishReason.DRAFT_ACCEPTED)

    def _cut_draft(self, job: SpanJob, *, accepted: int) -> list[int]:
        """Forgets the draft from its first rejected token on; the span is written from
        there. The accepted tokens stay in the sequence, cached for the session. Returns the
        tokens to evaluate again first: none, unless this cache cannot cut the sequence."""
        assert job.sequence is not None
        job.accepted_draft_tokens = accepted
        job.prefilled = True
        job.pending = []
        cut = len(job.prompt) + accepted
        if self.runner.drop(seq_id=job.sequence.seq_id, from_position=cut):
            del job.sequence.tokens[cut:]
            return []
        self.runner.drop(seq_id=job.sequence.seq_id, from_position=0)
        job.sequence.tokens.clear()
        return [*job.prompt, *job.draft[:accepted]]

    def _reject(self, chunks: list[Chunk], error: BatchRejectedError) -> None:
        log.error("llama.cpp would refuse this step's batch: %s", error)
        jobs = [chunk.job for chunk in chunks]
        # The others are not at fault and go on in the next step; were none named, the same
        # batch would only be refused again.
        at_fault = [job for job in jobs if _seq_id(job) in error.seq_ids] or jobs
        for job in at_fault:
            sequence = job.sequence
            assert sequence is not None  # running jobs hold a sequence
            self._finish(job)
            # What the sequence holds is in doubt: the session's next call starts it over.
            self.runner.drop(seq_id=sequence.seq_id, from_position=0)
            self._pool.forget(sequence)
            job.emit(
                SpanFailedError(
                    f"the teacher could not evaluate this span ({error}); this is a bug of the "
                    "teacher: report it; the session's next call starts its context over"
                )
            )

    def _end(self, job: SpanJob, finish: FinishReason) -> None:
        # The last sampled token is not evaluated: the next call evaluates it with the
        # tokens new since.
        self._finish(job)
        pieces, tail_text = job.writer.close()
        for piece in pieces:
            job.emit(piece)
        now = time.perf_counter()
        job.emit(
            SpanEnd(
                finish_reason=finish,
                tail_text=tail_text,
                prompt_tokens=len(job.prompt),
                cached_prompt_tokens=job.cached_prompt_tokens,
                queue_time_ms=(job.started_at - job.queued_at) * 1000,
                compute_time_ms=(now - job.started_at) * 1000,
                draft_tokens=len(job.draft),
                accepted_draft_tokens=job.accepted_draft_tokens or 0,
            )
        )

    def _finish(self, job: SpanJob) -> None:
        self._running.remove(job)
        if job.sequence is not None:
            self._pool.release(job.sequence)

    def _die(self, exc: Exception) -> None:
        # llama.cpp failed mid-decode: the context's state is unknown, so no later span can
        # be trusted from this engine.
        dead = EngineDeadError(
            f"the llama.cpp engine failed ({type(exc).__name__}: {exc}); restart the teacher"
        )
        dead.__cause__ = exc
        log.error("%s", dead)
        with self._wake:
            self.dead = dead
            jobs = [*self._inbox, *self._waiting, *self._running]
            self._inbox.clear()
        for job in jobs:
            job.emit(dead)


def _input(chunk: Chunk) -> SequenceInput:
    assert chunk.job.sequence is not None  # running jobs hold a sequence
    position = len(chunk.job.sequence.tokens)
    draft_rows = chunk.job.draft_rows(position, len(chunk.tokens))
    return SequenceInput(
        seq_id=chunk.job.sequence.seq_id,
        position=position,
        tokens=chunk.tokens,
        wants_logits=chunk.wants_logits or draft_rows is not None,
        logits_from=draft_rows,
    )


def _seq_id(job: SpanJob) -> int | None:
    return None if job.sequence is None else job.sequence.seq_id
