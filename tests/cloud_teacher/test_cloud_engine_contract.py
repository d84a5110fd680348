"""The engine contract (engines/base.py), run against each engine this build has.

Called directly, without gRPC: info, pieces then one SpanEnd, the finish reasons, prefix reuse
within a session, and stopping when the consumer stops.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator

import pytest

from cloud_teacher.engines.base import Engine
from cloud_teacher.engines.registry import ENGINES, create_engine
from cloud_teacher.requests import SpanRequest, TokenContext
from cloud_teacher.settings import TeacherSettings
from cloud_teacher.spans import FinishReason, Piece, SpanEnd
from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel
from relay_common.sampling import SamplingParams


@pytest.fixture(scope="module", params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    name = request.param
    if importlib.util.find_spec(ENGINES[name]) is None:
        pytest.skip(f"the {name} engine is not implemented in this release (it needs a GPU)")
    settings = TeacherSettings(
        engine=name, model=smollm2_path(), slots=1, n_ctx=512, max_span_tokens=32
    )
    built = create_engine(settings)
    yield built
    asyncio.run(built.close())


def span(tokens: list[int], *, session: str, max_tokens: int, **sampling: float) -> SpanRequest:
    return SpanRequest(
        session_id=session,
        request_id="r",
        context=TokenContext(token_ids=tuple(tokens)),
        max_tokens=max_tokens,
        sampling=SamplingParams(**sampling),
    )


def collect(engine: Engine, request: SpanRequest) -> tuple[list[Piece], SpanEnd]:
    async def run() -> list[Piece | SpanEnd]:
        return [event async for event in engine.generate(request)]

    *pieces, end = asyncio.run(run())
    assert isinstance(end, SpanEnd)
    assert all(isinstance(p, Piece) for p in pieces)
    return pieces, end  # type: ignore[return-value]


def test_info_describes_the_model(engine: Engine, smollm_tokenizer: GgufModel) -> None:
    assert engine.info.model_name == smollm_tokenizer.name
    assert engine.info.tokenizer_fingerprint == smollm_tokenizer.fingerprint
    assert engine.info.vocab_size == smollm_tokenizer.n_vocab
    assert engine.info.context_window >= 512


def test_a_span_stops_at_max_tokens_with_length(engine: Engine, smollm_tokenizer) -> None:
    ids = smollm_tokenizer.tokenize("Once upon a time, there was", add_bos=True)
    pieces, end = collect(engine, span(ids, session="a", max_tokens=5, temperature=1.0, seed=3))
    tokens = [t for p in pieces for t in p.token_ids]

    assert end.finish_reason is FinishReason.LENGTH
    assert len(tokens) == 5
    assert end.prompt_tokens == len(ids)
    expected = smollm_tokenizer.detokenize(tokens).decode("utf-8", "replace")
    assert "".join(p.text for p in pieces) + end.tail_text == expected


def test_an_end_of_generation_token_ends_the_answer_and_is_left_out(
    engine: Engine, smollm_tokenizer
) -> None:
    ids = smollm_tokenizer.render_chat([ChatMessage("user", "Say only the word: yes")])
    pieces, end = collect(engine, span(ids, session="b", max_tokens=32))
    tokens = [t for p in pieces for t in p.token_ids]

    assert end.finish_reason is FinishReason.END_OF_ANSWER
    assert len(tokens) < 32
    assert not any(smollm_tokenizer.is_end(t) for t in tokens)


def test_a_later_call_in_a_session_reuses_its_prefix(engine: Engine, smollm_tokenizer) -> None:
    ids = smollm_tokenizer.tokenize("The three primary colours are", add_bos=True)
    pieces, _ = collect(engine, span(ids, session="c", max_tokens=6))
    longer = ids + [t for p in pieces for t in p.token_ids] + smollm_tokenizer.tokenize(" and")
    _, end = collect(engine, span(longer, session="c", max_tokens=2))

    assert end.cached_prompt_tokens >= len(ids)
    assert end.prompt_tokens == len(longer)


def test_the_engine_stops_when_the_consumer_stops(engine: Engine, smollm_tokenizer) -> None:
    ids = smollm_tokenizer.tokenize("Once upon a time,", add_bos=True)

    async def stop_early_then_run_again() -> tuple[Piece | SpanEnd, list[Piece | SpanEnd]]:
        events = engine.generate(span(ids, session="d", max_tokens=32, temperature=1.0, seed=1))
        first = await anext(events)
        await events.aclose()
        # The slot is free again once the span stopped: the next one runs to completion.
        again = [e async for e in engine.generate(span(ids, session="d", max_tokens=3))]
        return first, again

    first, again = asyncio.run(asyncio.wait_for(stop_early_then_run_again(), timeout=60))
    assert isinstance(first, Piece)
    assert isinstance(again[-1], SpanEnd)
    assert again[-1].finish_reason is FinishReason.LENGTH
