"""The llama.cpp engine (CPU): any GGUF file, many sessions decoded together, as llama-server.

One llama.cpp context holds one sequence per session (`kv_sessions` of them, each its own
window of KV cells). A worker thread (`step_loop`) runs one `llama_decode` per step over the
next token of every generating session plus prompt chunks of sessions still prefilling
(`scheduler`), so the weights are read once per step for all of them. A session's later call
goes back to its own sequence and evaluates only the tokens new since its previous one; when
all sequences are taken, the least recently used idle session's is evicted (`sequence_pool`).

Exact mode (`exact`) evaluates one token per llama.cpp micro-batch and one session per step:
logits are then bit-identical to the same model's in a context of its own, however the
prompt was split into calls and whoever else is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from cloud_teacher.engines.base import EngineInfo, SpanEvent
from cloud_teacher.engines.llama_cpp.batch_runner import BatchRunner
from cloud_teacher.engines.llama_cpp.scheduler import Scheduler
from cloud_teacher.engines.llama_cpp.sequence_pool import SequencePool
from cloud_teacher.engines.llama_cpp.span_job import JobEvent, SpanJob
from cloud_teacher.engines.llama_cpp.step_loop import StepLoop
from cloud_teacher.engines.span_writer import SpanWriter
from cloud_teacher.errors import ConfigError, EngineDeadError, InvalidRequestError, TeacherError
from cloud_teacher.requests import (
    Limits,
    SpanRequest,
    TextContext,
    TokenContext,
    check_context_length,
)
from cloud_teacher.settings import TeacherSettings
from cloud_teacher.spans import SpanEnd
from relay_common.echo import clipped
from relay_common.embedded import gemma3_path
from relay_common.errors import RelayCommonError
from relay_common.gguf import GgufModel, usable_cores
from relay_common.sampling import Sampler

ENGINE_NAME = "llama.cpp"
# The model's own context serves only tokenizing and templates; decoding uses the batch context.
_TOKENIZER_CTX = 64
# Tokens one step evaluates at most (llama.cpp's n_batch).
STEP_TOKENS = 512


def create_engine(settings: TeacherSettings) -> LlamaCppEngine:
    """Loads the model (the embedded Gemma-3-270M by default) and its batch context."""
    threads = settings.threads or usable_cores()
    model: GgufModel | None = None
    try:
        model = GgufModel(
            settings.model or gemma3_path(),
            n_ctx=_TOKENIZER_CTX,
            n_threads=threads,
            chat_template=settings.read_chat_template(),
        )
        runner = BatchRunner(
            model,
            n_sequences=settings.kv_sessions,
            n_ctx=settings.n_ctx,
            n_ubatch=1 if settings.exact else settings.n_ubatch,
            threads=threads,
            exact=settings.exact,
            step_tokens=STEP_TOKENS,
        )
    except RelayCommonError as exc:
        if model is not None:
            model.close()
        raise ConfigError(str(exc)) from exc
    return LlamaCppEngine(
        model,
        runner,
        limits=settings.limits,
        max_running=settings.slots,
        exact=settings.exact,
    )


class LlamaCppEngine:
    def __init__(
        self,
        model: GgufModel,
        runner: BatchRunner,
        *,
        limits: Limits,
        max_running: int,
        exact: bool,
    ) -> None:
        self._info = EngineInfo(
            engine=ENGINE_NAME,
            model_name=model.name,
            tokenizer_fingerprint=model.fingerprint,
            vocab_size=model.n_vocab,
            context_window=runner.n_ctx,
        )
        self._model = model
        self._limits = limits
        self.runner = runner
        self._steps = StepLoop(
            runner,
            pool=SequencePool(runner.n_sequences),
            scheduler=Scheduler(step_tokens=runner.step_tokens, one_job_per_step=exact),
            max_running=min(max_running, runner.n_sequences),
        )

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def model(self) -> GgufModel:
        """The model's tokenizer and chat template (decoding runs in the batch context)."""
        return self._model

    @property
    def unfinished_requests(self) -> int:
        """Spans admitted and not yet finished: a cancelled call must not stay among them."""
        return self._steps.unfinished

    @property
    def evaluated_tokens(self) -> int:
        """Tokens llama.cpp evaluated so far, over all sessions."""
        return self.runner.evaluated_tokens

    async def generate(self, request: SpanRequest) -> AsyncIterator[SpanEvent]:
        if self._steps.dead is not None:
            raise EngineDeadError(str(self._steps.dead)) from self._steps.dead
        queued = time.perf_counter()
        if isinstance(request.context, TokenContext):
            # The ids as sent: nothing to render, so no hop to a worker thread.
            prompt = _checked_prompt(self._model, request, self._limits)
        else:  # rendering a chat template takes a while: off the event loop
            prompt = await asyncio.to_thread(_checked_prompt, self._model, request, self._limits)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[JobEvent] = asyncio.Queue()

        def emit(event: JobEvent) -> None:  # called on the step loop's thread
            # RuntimeError: the caller's event loop is gone, so nobody is listening.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(events.put_nowait, event)

        job = SpanJob(
            request=request,
            prompt=prompt,
            writer=SpanWriter(self._model, request),
            sampler=Sampler(request.sampling),
            emit=emit,
            queued_at=queued,
        )
        self._steps.submit(job)
        try:
            while True:
                event = await events.get()
                if event is None:  # stopped unfinished: the engine is closing
                    return
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, SpanEnd):
                    return
        finally:
            # The caller stopped early (a cancelled call) or the span ended: a finished job
            # is no longer known to the loop, so this is a no-op then.
            self._steps.cancel(job)

    async def close(self) -> None:
        await asyncio.to_thread(self._steps.close)
        self.runner.close()
        self._model.close()


def _checked_prompt(model: GgufModel, request: SpanRequest, limits: Limits) -> list[int]:
    """The prompt's tokens; anything wrong with building them is the request's fault
    (`InvalidRequestError`), never the engine's, so it cannot mark the engine dead."""
    try:
        prompt = _prompt_tokens(model, request.context)
    except TeacherError:
        raise
    except RelayCommonError as exc:  # a chat template refusing the conversation
        raise InvalidRequestError(str(exc)) from exc
    except Exception as exc:  # e.g. a tokenizer that cannot take the text
        raise InvalidRequestError(
            "cannot build the prompt from this request "
            f"({type(exc).__name__}: {clipped(str(exc))}); change the context"
        ) from exc
    check_context_length(len(prompt), limits)
    return prompt


def _prompt_tokens(model: GgufModel, context: TokenContext | TextContext) -> list[int]:
    if isinstance(context, TokenContext):
        return list(context.token_ids)
    # The teacher's own chat template opens the assistant turn; the partial answer is
    # continued from there (plain text: no BOS, no special tokens).
    return model.render_continuation(context.messages, context.assistant_prefix)
