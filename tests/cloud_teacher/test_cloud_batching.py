"""The llama.cpp engine under load, called directly (no gRPC): sessions decoded together,
prefix reuse with many interleaved sessions, eviction, tenancy, a cancelled prefill, and exact
mode. Real SmolLM2 through llama.cpp throughout."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest

from cloud_teacher.engines.llama_cpp.engine import STEP_TOKENS, LlamaCppEngine, create_engine
from cloud_teacher.requests import SpanRequest
from cloud_teacher.settings import TeacherSettings
from cloud_teacher.spans import Piece, SpanEnd
from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel
from tests.cloud_teacher.teacher_helpers import span

pytestmark = pytest.mark.timeout(600)

TOPICS = [
    "rivers", "volcanoes", "bees", "trains", "glaciers", "violins", "comets", "tea",
    "owls", "deserts", "bridges", "coral", "clocks", "maps", "wolves", "salt",
]  # fmt: skip


def build_engine(**overrides: Any) -> LlamaCppEngine:
    settings = TeacherSettings(model=smollm2_path(), max_span_tokens=32, **overrides)
    return create_engine(settings)


@pytest.fixture(scope="module")
def engine16() -> Iterator[LlamaCppEngine]:
    """16 cached sessions, 8 generated at once."""
    engine = build_engine(kv_sessions=16, slots=8, n_ctx=512)
    yield engine
    asyncio.run(engine.close())


async def run_span(engine: LlamaCppEngine, request: SpanRequest) -> tuple[list[int], SpanEnd]:
    tokens: list[int] = []
    async for event in engine.generate(request):
        if isinstance(event, Piece):
            tokens.extend(event.token_ids)
        else:
            return tokens, event
    raise AssertionError("the span ended without a SpanEnd")


def test_sixteen_interleaved_sessions_serve_later_prompts_from_cache(
    engine16: LlamaCppEngine, smollm_tokenizer: GgufModel
) -> None:
    contexts = {
        topic: smollm_tokenizer.render_chat([ChatMessage("user", f"Tell me about {topic}.")])
        for topic in TOPICS
    }
    student_words = smollm_tokenizer.tokenize(" Then")

    async def round_of_calls() -> list[SpanEnd]:
        order = list(TOPICS)
        random.Random(len(contexts[order[0]])).shuffle(order)  # interleaved, not in turn
        results = await asyncio.gather(
            *(run_span(engine16, span(contexts[topic], session=topic)) for topic in order)
        )
        for topic, (tokens, _) in zip(order, results, strict=True):
            contexts[topic] = contexts[topic] + tokens + student_words  # the answer goes on
        return [end for _, end in results]

    asyncio.run(round_of_calls())  # each session's first call: nothing cached yet
    before = engine16.evaluated_tokens
    later = [end for _ in range(2) for end in asyncio.run(round_of_calls())]  # 2nd and 3rd

    prompt = sum(end.prompt_tokens for end in later)
    cached = sum(end.cached_prompt_tokens for end in later)
    assert cached >= 0.9 * prompt
    # Cached tokens really were not evaluated again: besides the new prompt tokens, only the
    # spans' own tokens were (at most max_tokens each).
    evaluated = engine16.evaluated_tokens - before
    assert evaluated <= (prompt - cached) + 8 * len(later)


def test_sampling_is_per_request_within_one_batch(
    engine16: LlamaCppEngine, smollm_tokenizer: GgufModel
) -> None:
    prompt = smollm_tokenizer.render_chat([ChatMessage("user", "Name a colour.")])
    seeds = [1, 1, 2, 3, 4, 5]  # the first two are the same request in two sessions

    async def together() -> list[tuple[list[int], SpanEnd]]:
        return await asyncio.gather(
            *(
                run_span(
                    engine16,
                    span(prompt, session=f"sampled-{i}", max_tokens=8, temperature=1.5, seed=seed),
                )
                for i, seed in enumerate(seeds)
            )
        )

    spans = [tuple(tokens) for tokens, _ in asyncio.run(together())]
    assert spans[0] == spans[1]  # same seed and inputs: the same span, batched or not
    assert len(set(spans)) > 2  # each request samples with its own generator


def test_the_least_recently_used_session_is_evicted_and_counted_honestly(
    smollm_tokenizer: GgufModel,
) -> None:
    engine = build_engine(kv_sessions=2, slots=1, n_ctx=256)
    prompts = {
        name: smollm_tokenizer.tokenize(f"A story about {name}: once upon a time", add_bos=True)
        for name in ("a", "b", "c")
    }

    async def run() -> dict[str, SpanEnd]:
        for name in ("a", "b", "c"):  # c evicts a, the least recently used
            await run_span(engine, span(prompts[name], session=name, max_tokens=2))
        ends = {}
        for name in ("c", "a"):
            _, ends[name] = await run_span(engine, span(prompts[name], session=name))
        return ends

    try:
        ends = asyncio.run(run())
    finally:
        asyncio.run(engine.close())
    assert ends["c"].cached_prompt_tokens == len(prompts["c"]) - 1
    assert ends["a"].cached_prompt_tokens == 0


def test_another_tenant_never_reads_a_session_s_cached_prefix(
    engine16: LlamaCppEngine, smollm_tokenizer: GgufModel
) -> None:
    ids = smollm_tokenizer.tokenize("Shared words that both tenants send, exactly", add_bos=True)

    async def run() -> tuple[SpanEnd, SpanEnd, SpanEnd]:
        _, first = await run_span(engine16, span(ids, session="same-id", tenant="tenant-a"))
        _, other = await run_span(engine16, span(ids, session="same-id", tenant="tenant-b"))
        _, again = await run_span(engine16, span(ids, session="same-id", tenant="tenant-a"))
        return first, other, again

    first, other, again = asyncio.run(run())
    assert first.cached_prompt_tokens == 0
    assert other.cached_prompt_tokens == 0
    assert again.cached_prompt_tokens == len(ids) - 1


def test_a_call_cancelled_during_a_long_prefill_frees_its_sequence_within_one_step(
    smollm_tokenizer: GgufModel,
) -> None:
    # One sequence: the next session runs only once the cancelled one let go of it.
    engine = build_engine(kv_sessions=1, slots=1, n_ctx=2048)
    sentence = smollm_tokenizer.tokenize(" The quick brown fox jumps over the lazy dog.")
    long_prompt = (sentence * 200)[: 4 * STEP_TOKENS - 100]  # four steps of prefill
    short_prompt = smollm_tokenizer.tokenize("Hello there", add_bos=True)

    async def run() -> tuple[int, int, SpanEnd]:
        task = asyncio.create_task(run_span(engine, span(long_prompt, session="long")))
        while engine.evaluated_tokens == 0:  # its first prompt chunk is evaluated
            await asyncio.sleep(0.005)
        at_cancel = engine.evaluated_tokens
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        _, end = await run_span(engine, span(short_prompt, session="short", max_tokens=4))
        return at_cancel, engine.evaluated_tokens, end

    try:
        at_cancel, at_end, end = asyncio.run(asyncio.wait_for(run(), timeout=300))
    finally:
        asyncio.run(engine.close())
    assert at_cancel < len(long_prompt)  # cancelled while prefilling
    # After the cancel, at most the step in flight, then the short span alone.
    assert at_end - at_cancel <= STEP_TOKENS + len(short_prompt) + 4
    assert end.cached_prompt_tokens == 0


def test_exact_mode_spans_equal_the_model_alone(smollm_tokenizer: GgufModel) -> None:
    engine = build_engine(kv_sessions=4, slots=4, n_ctx=512, exact=True)
    alone = GgufModel(smollm2_path(), n_ctx=512, n_ubatch=1)
    prompts = [
        smollm_tokenizer.render_chat([ChatMessage("user", f"Explain {topic} briefly.")])
        for topic in TOPICS[:3]
    ]

    def greedy_alone(prompt: list[int], n: int) -> list[int]:
        alone.sync(prompt)
        tokens = []
        for _ in range(n):
            tokens.append(int(alone.next_logits().argmax()))
            alone.append(tokens[-1:])
        return tokens

    async def relayed() -> list[tuple[list[int], list[int], list[int]]]:
        async def session(index: int, prompt: list[int]):
            first, _ = await run_span(engine, span(prompt, session=f"exact-{index}", max_tokens=6))
            longer = prompt + first + smollm_tokenizer.tokenize(" So")
            second, end = await run_span(engine, span(longer, session=f"exact-{index}"))
            assert end.cached_prompt_tokens >= len(prompt)
            return longer, first, second

        return await asyncio.gather(*(session(i, p) for i, p in enumerate(prompts)))

    try:
        results = asyncio.run(relayed())
        for prompt, (longer, first, second) in zip(prompts, results, strict=True):
            assert first == greedy_alone(prompt, 6)
            assert second == greedy_alone(longer, 8)
    finally:
        alone.close()
        asyncio.run(engine.close())
