"""Requests that are the caller's fault never mark the engine dead: a chat template that refuses
the conversation and a tiny temperature get INVALID_ARGUMENT or a span, and the teacher stays
SERVING. A template override (`chat_template`) serves SmolLM2 with a Qwen3-style template."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel
from relay_proto import relay_pb2

# ChatML like SmolLM2's own, refusing a conversation without a user message as Qwen3's does.
NEEDS_A_USER_TEMPLATE = (
    "{%- set ns = namespace(has_user=false) -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{%- set ns.has_user = true -%}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if not ns.has_user -%}{{ raise_exception('No user query found in messages.') }}"
    "{%- endif -%}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def serving(channel: grpc.Channel) -> bool:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "relay.v1.TeacherService"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
        if status != health_pb2.HealthCheckResponse.SERVING:
            return False
    return True


def text_span(*messages: tuple[int, str], **fields: object) -> relay_pb2.SpanRequest:
    return relay_pb2.SpanRequest(
        session_id=uuid.uuid4().hex,
        request_id="r1",
        max_tokens=4,
        text=relay_pb2.TextContext(
            messages=[relay_pb2.ChatMessage(role=role, content=text) for role, text in messages]
        ),
        **fields,
    )


@pytest.fixture(scope="module")
def template_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("templates") / "needs-a-user.jinja"
    path.write_text(NEEDS_A_USER_TEMPLATE)
    return path


def test_a_template_refusal_is_invalid_argument_and_the_teacher_keeps_serving(
    start_teacher, template_file: Path
) -> None:
    teacher = start_teacher(model=smollm2_path(), slots=1, chat_template=template_file)
    no_user = text_span((relay_pb2.ROLE_SYSTEM, "You are terse."))
    for method, wrap in (
        (teacher.stub.GenerateSpan, relay_pb2.GenerateSpanRequest),
        (lambda request, timeout: list(teacher.stub.StreamSpan(request, timeout=timeout)), None),
    ):
        request = wrap(span=no_user) if wrap else relay_pb2.StreamSpanRequest(span=no_user)
        with pytest.raises(grpc.RpcError) as raised:
            method(request, timeout=60)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "No user query found in messages" in raised.value.details()
        assert "user message" in raised.value.details()  # what to fix

    assert serving(teacher.channel)
    # The override is really in use, and the engine still answers.
    with_user = text_span((relay_pb2.ROLE_USER, "Name a colour."))
    reply = teacher.stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=with_user), timeout=60)
    assert reply.usage.generated_tokens >= 1
    assert teacher.engine.model.has_chat_template


def test_an_invalid_template_file_is_a_config_error(tmp_path: Path) -> None:
    from cloud_teacher.engines.llama_cpp.engine import create_engine
    from cloud_teacher.errors import ConfigError
    from cloud_teacher.settings import TeacherSettings

    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for message in messages %}")
    settings = TeacherSettings(
        model=smollm2_path(), slots=1, n_ctx=256, max_span_tokens=16, chat_template=broken
    )
    with pytest.raises(ConfigError, match="not valid Jinja"):
        create_engine(settings)


@pytest.mark.parametrize("temperature", [1e-30, 1e-45])
def test_a_tiny_temperature_is_greedy_not_a_dead_engine(
    temperature: float, smollm_teacher, smollm_tokenizer: GgufModel
) -> None:
    ids = smollm_tokenizer.tokenize("The capital of France is", add_bos=True)

    def span(sampling: relay_pb2.Sampling) -> relay_pb2.GenerateSpanResponse:
        request = relay_pb2.SpanRequest(
            session_id=uuid.uuid4().hex,
            request_id="r1",
            max_tokens=6,
            sampling=sampling,
            tokens=relay_pb2.TokenContext(
                token_ids=ids, tokenizer_fingerprint=smollm_tokenizer.fingerprint
            ),
        )
        return smollm_teacher.stub.GenerateSpan(
            relay_pb2.GenerateSpanRequest(span=request), timeout=60
        )

    tiny = span(relay_pb2.Sampling(temperature=temperature, seed=3))
    greedy = span(relay_pb2.Sampling())
    assert list(tiny.token_ids) == list(greedy.token_ids)
    assert serving(smollm_teacher.channel)
