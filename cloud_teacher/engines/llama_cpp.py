"""The llama.cpp engine (CPU): any GGUF file, `slots` contexts serving sessions concurrently.

Each slot is its own `GgufModel` (own llama.cpp context and KV cache; the weights are
memory-mapped, so slots share them). A span runs in a worker thread so the event loop keeps
serving; `GgufModel.sync` reuses the slot's longest shared prefix, so a session's later call
evaluates only the tokens new since its previous one.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from cloud_teacher.engines.base import EngineInfo, SpanEvent
from cloud_teacher.engines.slots import Slot, SlotPool
from cloud_teacher.errors import (
    ConfigError,
    EngineDeadError,
    InvalidRequestError,
    TeacherError,
)
from cloud_teacher.requests import (
    Limits,
    SpanRequest,
    TextContext,
    TokenContext,
    check_context_length,
)
from cloud_teacher.settings import TeacherSettings
from cloud_teacher.spans import FinishReason, Piece, SpanEnd
from cloud_teacher.stop_strings import StopScanner
from relay_common.embedded import gemma3_path
from relay_common.errors import RelayCommonError
from relay_common.gguf import PLAIN_TURN_MARKERS, GgufModel
from relay_common.sampling import Sampler

ENGINE_NAME = "llama.cpp"


def create_engine(settings: TeacherSettings) -> LlamaCppEngine:
    """Loads `settings.slots` contexts of the model (the embedded Gemma-3-270M by default)."""
    threads = settings.threads or max(1, _usable_cores() // settings.slots)
    models: list[GgufModel] = []
    try:
        path = settings.model or gemma3_path()
        chat_template = settings.read_chat_template()
        for _ in range(settings.slots):
            models.append(
                GgufModel(
                    path,
                    n_ctx=settings.n_ctx,
                    n_threads=threads,
                    n_ubatch=settings.n_ubatch,
                    chat_template=chat_template,
                )
            )
    except RelayCommonError as exc:
        for model in models:
            model.close()
        raise ConfigError(str(exc)) from exc
    return LlamaCppEngine(models, limits=settings.limits)


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # the cores this process may run on (containers)
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class LlamaCppEngine:
    def __init__(self, models: Sequence[GgufModel], *, limits: Limits) -> None:
        first = models[0]
        self._info = EngineInfo(
            engine=ENGINE_NAME,
            model_name=first.name,
            tokenizer_fingerprint=first.fingerprint,
            vocab_size=first.n_vocab,
            context_window=first.n_ctx,
        )
        self._models = list(models)
        self._limits = limits
        self._pool = SlotPool(self._models)
        self._executor = ThreadPoolExecutor(len(models), thread_name_prefix="llama-slot")
        self._dead: EngineDeadError | None = None

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def slots(self) -> Sequence[GgufModel]:
        return self._models

    async def generate(self, request: SpanRequest) -> AsyncIterator[SpanEvent]:
        if self._dead is not None:
            raise EngineDeadError(str(self._dead)) from self._dead
        loop = asyncio.get_running_loop()
        queued = time.perf_counter()
        slot = await self._pool.acquire(request.session_id)
        # A slot holding another tenant's prefix is emptied first, so that neither its cache
        # hits nor `cached_prompt_tokens` tell anything about that tenant's prompts.
        other_tenant = slot.tenant != request.tenant
        slot.tenant = request.tenant
        pieces: asyncio.Queue[Piece | None] = asyncio.Queue()
        stop = threading.Event()
        job = loop.run_in_executor(
            self._executor,
            functools.partial(
                _run_span,
                slot.item,
                request,
                limits=self._limits,
                queue_time_ms=(time.perf_counter() - queued) * 1000,
                reset_first=other_tenant,
                stop=stop,
                emit=lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece),
            ),
        )
        try:
            while (piece := await pieces.get()) is not None:
                yield piece
            try:
                end = await job
            except TeacherError:
                raise
            except Exception as exc:
                # llama.cpp failed mid-decode: the context's state is unknown, so no later
                # span can be trusted from this engine.
                self._dead = EngineDeadError(
                    f"the llama.cpp engine failed ({type(exc).__name__}: {exc}); "
                    "restart the teacher"
                )
                raise self._dead from exc
        finally:
            stop.set()
            self._release_when_done(job, slot)
        if end is not None:
            yield end

    def _release_when_done(
        self, job: asyncio.Future[SpanEnd | None], slot: Slot[GgufModel]
    ) -> None:
        """Frees the slot once its thread is done with it: now after a finished span, else
        (a cancelled call) when the thread notices, after at most one more token."""

        def release(done: asyncio.Future[SpanEnd | None]) -> None:
            if not done.cancelled():
                done.exception()  # the caller is gone; nobody else would read it
            self._pool.release(slot)

        if job.done():
            release(job)
        else:
            job.add_done_callback(release)

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        for model in self._models:
            model.close()


def _run_span(
    model: GgufModel,
    request: SpanRequest,
    *,
    limits: Limits,
    queue_time_ms: float,
    reset_first: bool,
    stop: threading.Event,
    emit: Callable[[Piece | None], None],
) -> SpanEnd | None:
    """Generates one span on a worker thread, emitting each piece, then None.

    Returns how it ended, or None when stopped (the call was cancelled). Only failures after
    the prompt is built are the engine's; those before it are the request's.
    """
    try:
        started = time.perf_counter()
        if reset_first:  # first of all: the slot is already marked as the new tenant's
            model.reset()
        prompt = _checked_prompt(model, request, limits)
        cached = model.sync(prompt)
        sampler = Sampler(request.sampling)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        scanner = _turn_scanner(model, request.context)
        at_answer_start = isinstance(request.context, TextContext) and not (
            request.context.assistant_prefix
        )
        finish = FinishReason.LENGTH
        for position in range(request.max_tokens):
            if stop.is_set():
                return None
            token = sampler.sample(model.next_logits())
            if model.is_end(token):
                finish = FinishReason.END_OF_ANSWER
                break
            text = decoder.decode(model.piece(token))
            if at_answer_start:  # an answer does not begin with white space
                text = text.lstrip()
                at_answer_start = not text
            released, stopped = scanner.feed(token, text) if scanner else ([(token, text)], False)
            for token_id, piece_text in released:
                emit(Piece(token_ids=(token_id,), text=piece_text))
            if stopped:
                finish = FinishReason.END_OF_ANSWER
                break
            # The last token needs no logits; the next call evaluates it with the new tokens.
            if position + 1 < request.max_tokens:
                model.append([token])
        for token_id, piece_text in scanner.flush() if scanner else []:
            emit(Piece(token_ids=(token_id,), text=piece_text))
        return SpanEnd(
            finish_reason=finish,
            tail_text=_tail_text(decoder, request.context),
            prompt_tokens=len(prompt),
            cached_prompt_tokens=cached,
            queue_time_ms=queue_time_ms,
            compute_time_ms=(time.perf_counter() - started) * 1000,
        )
    finally:
        emit(None)


def _tail_text(decoder: codecs.IncrementalDecoder, context: TokenContext | TextContext) -> str:
    """Text of the bytes still pending at the span's end (a character cut by max_tokens).

    In text mode the edge continues from the text alone, so a cut character would become
    U+FFFD for good: it is left out, and the next span, continuing the text, writes it whole.
    In token mode the edge reads the token ids; the text is for display only.
    """
    if isinstance(context, TextContext):
        return ""
    return decoder.decode(b"", final=True)


def _turn_scanner(model: GgufModel, context: TokenContext | TextContext) -> StopScanner | None:
    """Text mode on a base model: a new turn marker ends the answer (see stop_strings)."""
    if isinstance(context, TokenContext) or model.has_chat_template:
        return None
    return StopScanner(PLAIN_TURN_MARKERS, primed_with=context.assistant_prefix)


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
            f"cannot build the prompt from this request ({type(exc).__name__}: {exc}); "
            "change the context"
        ) from exc
    check_context_length(len(prompt), limits)
    return prompt


def _prompt_tokens(model: GgufModel, context: TokenContext | TextContext) -> list[int]:
    if isinstance(context, TokenContext):
        return list(context.token_ids)
    # The teacher's own chat template opens the assistant turn; the partial answer is
    # continued from there (plain text: no BOS, no special tokens).
    return model.render_continuation(context.messages, context.assistant_prefix)
