"""The thread that owns the runtime: one student context answers one request at a time.

    worker = AnswerWorker(settings)
    worker.start()                          # loads the student, reaches the teacher (or raises)
    job = worker.submit(AnswerRequest(...)) # in the event loop; ApiError 429 when the queue is full
    output = await job.next()               # RelayEvents, then an AnswerSummary; or an ApiError
    worker.cancel(job)                      # the client went away: stop within one token
    worker.drain(grace_s=10)                # SIGTERM: refuse new requests, cancel late answers
    worker.close()

Everything that touches the student, the teacher client and the ledger runs on this one
thread (the ledger's SQLite connection belongs to the thread that opened it); the event loop
only hands requests in and reads outputs back.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from dataclasses import dataclass

from edge_client.cli.prompt_input import ensure_prompt_fits
from edge_client.errors import PromptTooLongError
from edge_client.relay.events import AnswerEndReason, AnswerFinished, AnswerStarted, RelayEvent
from edge_client.relay.loop import RelayOptions
from edge_client.relay.usage import Usage
from edge_client.runtime import EdgeRuntime, open_runtime
from edge_client.serve.errors import ApiError
from edge_client.settings import EdgeSettings
from relay_common.chat import ChatMessage
from relay_common.errors import ChatTemplateError

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT_S = 60.0  # closing the runtime stops a local teacher (15 s at most)


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    session_id: str
    messages: tuple[ChatMessage, ...]
    options: RelayOptions


@dataclass(frozen=True, slots=True)
class AnswerSummary:
    """The last output of an answer: its counts and the session's, as the ledger holds them."""

    session_id: str
    reason: AnswerEndReason
    prompt_tokens: int  # the whole prompt
    cached_tokens: int  # of those, already in the student's KV cache (not evaluated again)
    answer: Usage
    session: Usage
    teacher: str
    teacher_state: str | None  # None: teacher-free
    mode: str | None


Output = RelayEvent | AnswerSummary | ApiError


class Job:
    """One request's answer; its outputs go to the event loop that submitted it."""

    def __init__(self, request: AnswerRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.cancelled = False
        self._outputs: asyncio.Queue[Output] = asyncio.Queue()
        self._loop = loop

    async def next(self) -> Output:
        return await self._outputs.get()

    def emit(self, output: Output) -> None:
        """From the worker's thread."""
        try:
            self._loop.call_soon_threadsafe(self._outputs.put_nowait, output)
        except RuntimeError:  # the event loop is gone: no one reads this answer any more
            self.cancelled = True


class AnswerWorker:
    def __init__(self, settings: EdgeSettings) -> None:
        self._settings = settings
        self._capacity = settings.serve.queue
        self._waiting: collections.deque[Job] = collections.deque()
        self._running: Job | None = None
        self._closing = False
        self._changed = threading.Condition()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._runtime: EdgeRuntime | None = None
        self._last_answer_s = 1.0
        self._thread = threading.Thread(target=self._main, name="relay-answers", daemon=True)

    # -- the event loop's side -------------------------------------------------------------

    def start(self) -> None:
        """Opens the runtime on the worker's thread; raises what opening it raised."""
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    @property
    def runtime(self) -> EdgeRuntime:
        """For reading its description (model, teacher, state); answers go through submit."""
        assert self._runtime is not None, "start() first"
        return self._runtime

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def busy(self) -> bool:
        return self._running is not None

    def submit(self, request: AnswerRequest) -> Job:
        job = Job(request, asyncio.get_running_loop())
        with self._changed:
            if self._closing:
                raise _shutting_down()
            if len(self._waiting) + (self._running is not None) > self._capacity:
                retry_after = max(1, math.ceil(self._last_answer_s))
                raise ApiError(
                    429,
                    f"the student is answering and {len(self._waiting)} requests wait (the "
                    f"queue holds {self._capacity}); retry in {retry_after} s",
                    code="queue_full",
                    headers={"Retry-After": str(retry_after)},
                )
            self._waiting.append(job)
            self._changed.notify_all()
        return job

    def cancel(self, job: Job) -> None:
        """Stops `job`: a waiting one never starts, a running one stops within one token (a
        teacher call in flight is cancelled)."""
        with self._changed:
            job.cancelled = True
            if job in self._waiting:
                self._waiting.remove(job)
            elif job is self._running and self._runtime is not None:
                self._runtime.cancel.set()

    def drain(self, *, grace_s: float) -> None:
        """Refuses new requests and the waiting ones; the running answer gets `grace_s` to
        finish, then it is cancelled. Safe to call from a signal handler, and more than once."""
        with self._changed:
            if self._closing:
                return
            self._closing = True
            refused = list(self._waiting)
            self._waiting.clear()
            self._changed.notify_all()
        for job in refused:
            job.emit(_shutting_down())
        timer = threading.Timer(grace_s, self._cancel_running)
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        """Cancels what still runs, closes the runtime (and a local teacher) and joins."""
        self.drain(grace_s=0)
        self._cancel_running()
        self._thread.join(timeout=_CLOSE_TIMEOUT_S)

    def _cancel_running(self) -> None:
        with self._changed:
            if self._running is not None:
                self.cancel(self._running)

    # -- the worker's thread -----------------------------------------------------------------

    def _main(self) -> None:
        try:
            with open_runtime(self._settings) as runtime:
                self._runtime = runtime
                self._ready.set()
                while (job := self._next_job()) is not None:
                    started = time.monotonic()
                    try:
                        self._answer(runtime, job)
                    finally:
                        with self._changed:
                            self._running = None
                            self._last_answer_s = time.monotonic() - started
        except BaseException as exc:
            if self._ready.is_set():
                log.exception("the answer worker stopped")
            self._startup_error = exc
            self._ready.set()
        finally:
            with self._changed:
                self._closing = True
                refused = list(self._waiting)
                self._waiting.clear()
            for job in refused:
                job.emit(_shutting_down())

    def _next_job(self) -> Job | None:
        with self._changed:
            while not self._waiting and not self._closing:
                self._changed.wait()
            if not self._waiting:
                return None
            self._running = self._waiting.popleft()
            return self._running

    def _answer(self, runtime: EdgeRuntime, job: Job) -> None:
        request = job.request
        try:
            runtime.use_session(request.session_id)
            prompt_tokens = ensure_prompt_fits(
                runtime.session.student, request.messages, n_ctx=self._settings.n_ctx
            )
            answer = runtime.answer(request.messages, options=request.options)
            evaluated, reason = prompt_tokens, AnswerEndReason.CANCELLED
            while True:
                try:
                    event = next(answer)
                except StopIteration as done:
                    answer_usage: Usage = done.value
                    break
                if job.cancelled:  # also set at once by cancel(); answer() clears it first
                    runtime.cancel.set()
                if isinstance(event, AnswerStarted):
                    evaluated = event.prompt_tokens
                elif isinstance(event, AnswerFinished):
                    reason = event.reason
                job.emit(event)
            record = runtime.ledger.session(request.session_id)
            state = runtime.teacher_state
            job.emit(
                AnswerSummary(
                    session_id=request.session_id,
                    reason=reason,
                    prompt_tokens=prompt_tokens,
                    cached_tokens=prompt_tokens - evaluated,
                    answer=answer_usage,
                    session=record.usage if record is not None else answer_usage,
                    teacher=runtime.teacher_label,
                    teacher_state=state.value if state is not None else None,
                    mode=runtime.mode,
                )
            )
        except PromptTooLongError as exc:
            job.emit(ApiError(400, str(exc), param="messages", code="context_length_exceeded"))
        except ChatTemplateError as exc:
            job.emit(ApiError(400, str(exc), param="messages"))
        except Exception as exc:  # the answer fails, the server goes on; the log has the trace
            log.exception("answer failed")
            job.emit(ApiError(500, f"the answer failed: {exc}"))


def _shutting_down() -> ApiError:
    return ApiError(503, "the server is shutting down; try again later", code="shutting_down")
