"""The engine contract (engines/base.py), run against every engine: llama.cpp and vLLM, each on
SmolLM2-135M (vLLM on its GGUF converted to HF format).

Called directly on the teacher's event loop, without gRPC: info and fingerprint, pieces then
one SpanEnd, the finish reasons, usage, prefix reuse within a session, concurrent sessions,
stopping when the consumer stops, refusing bad requests, and checking a student's draft.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cloud_teacher.engines.base import Engine
from cloud_teacher.errors import ContextTooLongError
from cloud_teacher.requests import Draft, SpanRequest, TextContext
from cloud_teacher.spans import FinishReason, Piece, SpanEnd
from relay_common.chat import ChatMessage
from relay_common.gguf import GgufModel
from relay_common.sampling import SamplingParams
from tests.cloud_teacher.teacher_helpers import span

RunningTeacher = Any  # tests/cloud_teacher/conftest.py: a teacher serving on its own loop


@pytest.fixture(params=["llama.cpp", "vllm"])
def teacher(request: pytest.FixtureRequest) -> RunningTeacher:
    """A SmolLM2 teacher on each engine (session-scoped: each engine starts once)."""
    fixture = {"llama.cpp": "smollm_teacher", "vllm": "vllm_teacher"}[request.param]
    return request.getfixturevalue(fixture)


async def events_of(engine: Engine, request: SpanRequest) -> list[Piece | SpanEnd]:
    return [event async for event in engine.generate(request)]


def collect(teacher: RunningTeacher, request: SpanRequest) -> tuple[list[Piece], SpanEnd]:
    *pieces, end = teacher.run(events_of(teacher.engine, request))
    assert isinstance(end, SpanEnd)
    assert all(isinstance(p, Piece) for p in pieces)
    return pieces, end  # type: ignore[return-value]


def tokens_of(pieces: list[Piece]) -> list[int]:
    return [t for p in pieces for t in p.token_ids]


def test_info_describes_the_model(teacher: RunningTeacher, smollm_tokenizer: GgufModel) -> None:
    info = teacher.engine.info
    assert info.engine == teacher.settings.engine
    assert info.model_name == smollm_tokenizer.name
    # The same fingerprint on both engines: a llama.cpp student and a vLLM teacher on the same
    # model talk in token mode.
    assert info.tokenizer_fingerprint == smollm_tokenizer.fingerprint
    assert info.vocab_size == smollm_tokenizer.n_vocab
    assert info.context_window >= teacher.settings.n_ctx


def test_a_span_stops_at_max_tokens_with_length_and_reports_usage(
    teacher: RunningTeacher, smollm_tokenizer: GgufModel
) -> None:
    ids = smollm_tokenizer.tokenize("Once upon a time, there was", add_bos=True)
    pieces, end = collect(teacher, span(ids, session="a", max_tokens=5, temperature=1.0, seed=3))
    tokens = tokens_of(pieces)

    assert end.finish_reason is FinishReason.LENGTH
    assert len(tokens) == 5
    assert end.prompt_tokens == len(ids)
    assert 0 <= end.cached_prompt_tokens < len(ids)
    assert end.compute_time_ms > 0
    expected = smollm_tokenizer.detokenize(tokens).decode("utf-8", "replace")
    assert "".join(p.text for p in pieces) + end.tail_text == expected


def test_an_end_of_generation_token_ends_the_answer_and_is_left_out(
    teacher: RunningTeacher, smollm_tokenizer: GgufModel
) -> None:
    ids = smollm_tokenizer.render_chat([ChatMessage("user", "Say only the word: yes")])
    pieces, end = collect(teacher, span(ids, session="b", max_tokens=32))
    tokens = tokens_of(pieces)

    assert end.finish_reason is FinishReason.END_OF_ANSWER
    assert 0 < len(tokens) < 32
    assert not any(smollm_tokenizer.is_end(t) for t in tokens)
    assert "yes" in "".join(p.text for p in pieces).lower()


def test_a_span_asked_to_stop_at_line_end_is_its_first_line(
    teacher: RunningTeacher, smollm_tokenizer: GgufModel
) -> None:
    ids = smollm_tokenizer.render_chat(
        [ChatMessage("user", "List four fruits, one per line, as a numbered list.")]
    )
    whole, _ = collect(teacher, span(ids, session="w", max_tokens=48))
    line, end = collect(teacher, span(ids, session="l", max_tokens=48, stop_at_line_end=True))
    text = "".join(p.text for p in line)

    assert end.finish_reason is FinishReason.LINE_END
    assert text.strip() and text.rstrip(" ").endswith("\n") and "\n" not in text.strip()
    # The greedy answer, cut after its first line.
    assert 0 < len(tokens_of(line)) < len(tokens_of(whole))
    assert tokens_of(line) == tokens_of(whole)[: len(tokens_of(line))]


def test_a_tiny_temperature_samples_like_greedy(
    teacher: RunningTeacher, smollm_tokenizer: GgufModel
) -> None:
    ids = smollm_tokenizer.tokenize("The capital of France is", add_bos=True)
    greedy, _ = collect(teacher, span(ids, session="t", max_tokens=4))
    tiny, end = collect(teacher, span(ids, session="t", max_tokens=4, temperature=1e-6, seed=1))

    assert end.finish_reason is FinishReason.LENGTH
    assert tokens_of(tiny)[:1] == tokens_of(greedy)[:1]


def test_a_later_call_in_a_session_reuses_its_prefix(
    teacher: RunningTeacher, smollm_tokenizer: GgufModel
) -> None:
    sentence = "The river runs past the old mill, under the bridge and out to the sea. "
    ids = smollm_tokenizer.tokenize(sentence * 20, add_bos=True)[:300]
    pieces, first = collect(teacher, span(ids, session="c", max_tokens=6))
    longer = ids + tokens_of(pieces) + smollm_tokenizer.tokenize(" and")
    _, later = collect(teacher, span(longer, session="c", max_tokens=2))

    assert first.prompt_tokens == 300
    assert later.prompt_tokens == len(longer)
    assert later.cached_prompt_tokens >= 0.9 * len(longer)


# A draft check: a story of 62 tokens, so that on vLLM (32-token cache blocks on a CPU) the
# third accepted draft token completes a block the session's next call finds cached.
STORY = "The river runs past the old mill, under the bridge and out to the sea. " * 8
UNLIKELY = 50  # a token id SmolLM2 gives next to no probability in a story


def test_a_draft_the_teacher_would_write_itself_is_accepted_whole(
    teacher: RunningTeacher, smollm_tokenizer: GgufModel
) -> None:
    ids = smollm_tokenizer.tokenize(STORY, add_bos=True)[:62]
    own = tokens_of(collect(teacher, span(ids, session="own-1", max_tokens=6))[0])
    draft = Draft(token_ids=tuple(own), min_prob=0.1, accept_top_token=True)
    pieces, end = collect(teacher, span(ids, session="g", max_tokens=4, draft=draft))

    assert pieces == []
    assert end.finish_reason is FinishReason.DRAFT_ACCEPTED
    assert (end.accepted_draft_tokens, end.draft_tokens) == (6, 6)
    assert end.prompt_tokens == 62  # the draft is read, not counted as context


def test_a_draft_is_cut_at_its_first_rejected_token_and_the_span_follows_it(
    teacher: RunningTeacher, smollm_tokenizer: GgufModel
) -> None:
    ids = smollm_tokenizer.tokenize(STORY, add_bos=True)[:62]
    own = tokens_of(collect(teacher, span(ids, session="own-2", max_tokens=6))[0])
    draft = Draft(token_ids=(*own[:3], UNLIKELY, *own[4:]), min_prob=0.1, accept_top_token=True)
    pieces, end = collect(teacher, span(ids, session="h", max_tokens=2, draft=draft))
    written = tokens_of(pieces)

    assert end.accepted_draft_tokens == 3
    assert end.finish_reason is FinishReason.LENGTH
    assert len(written) == 2 and written[0] != UNLIKELY
    assert (end.draft_tokens, end.prompt_tokens) == (6, 62)
    # The session's next call, over the answer so far, finds the accepted draft cached.
    _, later = collect(teacher, span([*ids, *own[:3], *written], session="h", max_tokens=1))
    assert later.cached_prompt_tokens > 62


def test_eight_sessions_at_once_each_get_their_own_answer(
    teacher: RunningTeacher, smollm_tokenizer: GgufModel
) -> None:
    starts = [3, 11, 20, 31, 42, 50, 61, 70]

    def counting(start: int) -> list[int]:
        numbers = ", ".join(str(n) for n in range(start, start + 6))
        return smollm_tokenizer.tokenize(f"Counting up: {numbers},", add_bos=True)

    async def all_at_once() -> list[list[Piece | SpanEnd]]:
        requests = [
            span(counting(start), session=f"count-{start}", max_tokens=3) for start in starts
        ]
        return await asyncio.gather(*(events_of(teacher.engine, r) for r in requests))

    answers = teacher.run(all_at_once(), timeout=300)
    for start, events in zip(starts, answers, strict=True):
        text = "".join(e.text for e in events if isinstance(e, Piece))
        assert text.startswith(f" {start + 6}"), (start, text)
        assert isinstance(events[-1], SpanEnd)


def test_the_engine_stops_when_the_consumer_stops(
    teacher: RunningTeacher, smollm_tokenizer: GgufModel
) -> None:
    ids = smollm_tokenizer.tokenize("Once upon a time,", add_bos=True)

    async def stop_early_then_run_again() -> tuple[Piece | SpanEnd, int, list[Piece | SpanEnd]]:
        events = teacher.engine.generate(
            span(ids, session="d", max_tokens=32, temperature=1.0, seed=1)
        )
        first = await anext(events)
        await events.aclose()
        # The engine notices within one step; a busy machine may make a step slow.
        for _ in range(1200):
            if teacher.engine.unfinished_requests == 0:
                break
            await asyncio.sleep(0.05)
        still_running = teacher.engine.unfinished_requests
        again = await events_of(teacher.engine, span(ids, session="d", max_tokens=3))
        return first, still_running, again

    first, still_running, again = teacher.run(stop_early_then_run_again())
    assert isinstance(first, Piece)
    assert still_running == 0
    assert isinstance(again[-1], SpanEnd)
    assert again[-1].finish_reason is FinishReason.LENGTH


def test_a_context_over_the_limit_is_refused_after_rendering(teacher: RunningTeacher) -> None:
    long_message = ChatMessage("user", "Tell me more about rivers. " * 400)
    request = SpanRequest(
        session_id="e",
        request_id="r",
        context=TextContext(messages=(long_message,), assistant_prefix=""),
        max_tokens=4,
        sampling=SamplingParams(),
    )
    with pytest.raises(ContextTooLongError, match="over the limit"):
        teacher.run(events_of(teacher.engine, request))
    # A refused request harms nothing: the next one is served.
    _, end = collect(teacher, span([1, 504, 3458], session="e", max_tokens=2))
    assert end.finish_reason is FinishReason.LENGTH


def test_text_mode_continues_the_assistant_prefix(teacher: RunningTeacher) -> None:
    request = SpanRequest(
        session_id="f",
        request_id="r",
        context=TextContext(
            messages=(ChatMessage("user", "What is the capital of France?"),),
            assistant_prefix="The capital of France is",
        ),
        max_tokens=3,
        sampling=SamplingParams(),
    )
    pieces, end = collect(teacher, request)
    assert "Paris" in "".join(p.text for p in pieces)
    assert end.prompt_tokens > 10
