"""Malformed requests, field by field and on the wire, against a real teacher: each gets the
right status code and a message naming the problem, never UNKNOWN or INTERNAL, and the teacher
keeps serving. Then property-based fuzzing of the same surface (bounded in examples)."""

from __future__ import annotations

import math
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay_common.gguf import GgufModel
from relay_proto import relay_pb2
from tests.cloud_teacher.teacher_helpers import token_span

GENERATE = "/relay.v1.TeacherService/GenerateSpan"
STREAM = "/relay.v1.TeacherService/StreamSpan"
USAGE = "/relay.v1.TeacherService/GetSessionUsage"
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}


def text(*messages: tuple[int, str], prefix: str = "") -> relay_pb2.TextContext:
    return relay_pb2.TextContext(
        messages=[relay_pb2.ChatMessage(role=role, content=body) for role, body in messages],
        assistant_prefix=prefix,
    )


def wire(span: relay_pb2.SpanRequest) -> bytes:
    return relay_pb2.GenerateSpanRequest(span=span).SerializeToString()


def wrapped(span_bytes: bytes) -> bytes:
    """A GenerateSpanRequest whose field 1 (span) holds `span_bytes` as they are."""
    return b"\x0a" + _varint(len(span_bytes)) + span_bytes


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def call_raw(channel: grpc.Channel, method: str, payload: bytes) -> tuple[grpc.StatusCode, str]:
    """Sends bytes as they are (no client-side serialization); the status and its message."""
    try:
        if method == STREAM:
            list(channel.unary_stream(method)(payload, timeout=60))
        else:
            channel.unary_unary(method)(payload, timeout=60)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


Case = tuple[Callable[[GgufModel], bytes], grpc.StatusCode, str]
INVALID = grpc.StatusCode.INVALID_ARGUMENT
BIG = "x" * (5 << 20)

CASES: dict[str, Case] = {
    # The message itself.
    "empty request": (lambda tok: b"", INVALID, "session_id"),
    "garbage bytes": (lambda tok: b"\xff\xff\xff\xff\x0f", INVALID, "not a valid"),
    "truncated message": (lambda tok: wire(token_span(tok))[:-3], INVALID, "not a valid"),
    "invalid UTF-8 in session_id": (
        lambda tok: wrapped(b"\x0a\x02\xff\xfe" + wire(token_span(tok, session_id=""))[2:]),
        INVALID,
        "not a valid",
    ),
    "session_id on the wire as a number": (
        lambda tok: wrapped(token_span(tok, session_id="").SerializeToString() + b"\x08\x05"),
        INVALID,
        "session_id",
    ),
    "max_tokens on the wire as bytes": (
        lambda tok: wrapped(token_span(tok, max_tokens=0).SerializeToString() + b"\x2a\x01x"),
        INVALID,
        "max_tokens",
    ),
    "over the message size limit": (
        lambda tok: wire(token_span(tok, text=text((relay_pb2.ROLE_USER, BIG)))),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "larger than max",
    ),
    # Ids.
    "missing session_id": (lambda tok: wire(token_span(tok, session_id="")), INVALID, "session_id"),
    "oversized session_id": (
        lambda tok: wire(token_span(tok, session_id="s" * 129)),
        INVALID,
        "session_id must be 1 to 128",
    ),
    "missing request_id": (lambda tok: wire(token_span(tok, request_id="")), INVALID, "request_id"),
    # Context.
    "no context": (
        lambda tok: wire(relay_pb2.SpanRequest(session_id="s", request_id="r", max_tokens=1)),
        INVALID,
        "no context",
    ),
    "empty token ids": (
        lambda tok: wire(
            token_span(tok, tokens=relay_pb2.TokenContext(tokenizer_fingerprint=tok.fingerprint))
        ),
        INVALID,
        "empty",
    ),
    "largest token id": (
        lambda tok: wire(
            token_span(
                tok,
                tokens=relay_pb2.TokenContext(
                    token_ids=[1, 2**32 - 1], tokenizer_fingerprint=tok.fingerprint
                ),
            )
        ),
        INVALID,
        "token id 4294967295 at position 1",
    ),
    "missing fingerprint": (
        lambda tok: wire(token_span(tok, tokens=relay_pb2.TokenContext(token_ids=[1, 2]))),
        INVALID,
        "(empty)",
    ),
    "no messages": (lambda tok: wire(token_span(tok, text=text(prefix="Hi"))), INVALID, "empty"),
    "unknown role": (
        lambda tok: wire(token_span(tok, text=text((99, "Hi")))),
        INVALID,
        "no valid role (99)",
    ),
    "unset role": (
        lambda tok: wire(token_span(tok, text=text((0, "Hi")))),
        INVALID,
        "no valid role (0)",
    ),
    "text context over the limit": (
        lambda tok: wire(token_span(tok, text=text((relay_pb2.ROLE_USER, "word " * 2500)))),
        INVALID,
        "over the limit",
    ),
    # max_tokens.
    "max_tokens 0": (lambda tok: wire(token_span(tok, max_tokens=0)), INVALID, "max_tokens"),
    "largest max_tokens": (
        lambda tok: wire(token_span(tok, max_tokens=2**32 - 1)),
        INVALID,
        "got 4294967295",
    ),
    # Sampling.
    "NaN temperature": (
        lambda tok: wire(token_span(tok, sampling=relay_pb2.Sampling(temperature=math.nan))),
        INVALID,
        "temperature",
    ),
    "infinite temperature": (
        lambda tok: wire(token_span(tok, sampling=relay_pb2.Sampling(temperature=math.inf))),
        INVALID,
        "temperature",
    ),
    "negative infinite temperature": (
        lambda tok: wire(token_span(tok, sampling=relay_pb2.Sampling(temperature=-math.inf))),
        INVALID,
        "temperature",
    ),
    "NaN top_p": (
        lambda tok: wire(token_span(tok, sampling=relay_pb2.Sampling(top_p=math.nan))),
        INVALID,
        "top_p",
    ),
    "negative top_p": (
        lambda tok: wire(token_span(tok, sampling=relay_pb2.Sampling(top_p=-1e-30))),
        INVALID,
        "top_p",
    ),
    # Drafts.
    "draft in text mode": (
        lambda tok: wire(
            token_span(
                tok,
                text=text((relay_pb2.ROLE_USER, "Hi")),
                draft=relay_pb2.Draft(token_ids=[1, 2], min_prob=0.1),
            )
        ),
        INVALID,
        "a draft needs token mode",
    ),
    "empty draft": (
        lambda tok: wire(token_span(tok, draft=relay_pb2.Draft(min_prob=0.1))),
        INVALID,
        "draft.token_ids is empty",
    ),
    "NaN draft min_prob": (
        lambda tok: wire(token_span(tok, draft=relay_pb2.Draft(token_ids=[1], min_prob=math.nan))),
        INVALID,
        "draft.min_prob",
    ),
    "draft min_prob above 1": (
        lambda tok: wire(token_span(tok, draft=relay_pb2.Draft(token_ids=[1], min_prob=1.5))),
        INVALID,
        "draft.min_prob",
    ),
    "draft token outside the vocabulary": (
        lambda tok: wire(token_span(tok, draft=relay_pb2.Draft(token_ids=[1, 2**31]))),
        INVALID,
        "position 1 of the draft",
    ),
    "context and draft over the limit": (
        lambda tok: wire(token_span(tok, draft=relay_pb2.Draft(token_ids=[1] * 1990))),
        INVALID,
        "the context and the draft are",
    ),
    # Extreme but valid: served.
    "largest float temperature": (
        lambda tok: wire(token_span(tok, sampling=relay_pb2.Sampling(temperature=3.4e38, seed=1))),
        grpc.StatusCode.OK,
        "",
    ),
    "smallest float temperature": (
        lambda tok: wire(token_span(tok, sampling=relay_pb2.Sampling(temperature=1e-45, seed=1))),
        grpc.StatusCode.OK,
        "",
    ),
    "largest seed": (
        lambda tok: wire(
            token_span(tok, sampling=relay_pb2.Sampling(temperature=0.7, seed=2**64 - 1))
        ),
        grpc.StatusCode.OK,
        "",
    ),
}


def assert_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("method", [GENERATE, STREAM], ids=["unary", "stream"])
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_malformed_request_gets_the_right_status_and_a_clear_message(
    case: str, method: str, smollm_teacher, smollm_tokenizer: GgufModel
) -> None:
    build, expected_code, expected_text = CASES[case]
    code, message = call_raw(smollm_teacher.channel, method, build(smollm_tokenizer))
    assert (code, code in NEVER) == (expected_code, False), message
    assert expected_text in message
    assert_serving(smollm_teacher.channel)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", "session_id must be 1 to 128"),
        (relay_pb2.GetSessionUsageRequest(session_id="s" * 200).SerializeToString(), "got 200"),
        (b"\x0a\x01\xff", "not a valid"),
    ],
    ids=["missing", "oversized", "invalid UTF-8"],
)
def test_a_malformed_usage_request_is_invalid_argument(
    payload: bytes, expected: str, smollm_teacher
) -> None:
    code, message = call_raw(smollm_teacher.channel, USAGE, payload)
    assert code == INVALID
    assert expected in message


def test_a_reused_request_id_with_another_body_is_refused(
    smollm_teacher, smollm_tokenizer: GgufModel
) -> None:
    first = token_span(smollm_tokenizer, max_tokens=1)
    assert call_raw(smollm_teacher.channel, GENERATE, wire(first))[0] == grpc.StatusCode.OK
    other = token_span(smollm_tokenizer, session_id=first.session_id, max_tokens=2)
    code, message = call_raw(smollm_teacher.channel, GENERATE, wire(other))
    assert code == INVALID
    assert "already used in this session" in message


# -- property-based fuzzing -------------------------------------------------------------------

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
floats32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


@st.composite
def span_requests(draw: st.DrawFn, fingerprint: str) -> relay_pb2.SpanRequest:
    span = relay_pb2.SpanRequest(
        session_id=draw(st.text(max_size=140)),
        request_id=draw(st.text(min_size=1, max_size=140)),
        # Small valid spans keep generation short; the rest exercise the refusals.
        max_tokens=draw(st.integers(0, 3) | st.sampled_from([65, 2**32 - 1])),
    )
    if draw(st.booleans()):
        span.tokens.token_ids.extend(draw(st.lists(st.integers(0, 2**32 - 1), max_size=12)))
        span.tokens.tokenizer_fingerprint = draw(st.sampled_from([fingerprint, "", "sha256:0"]))
    elif draw(st.booleans()):
        for role, content in draw(
            st.lists(st.tuples(st.integers(-3, 6), st.text(max_size=60)), max_size=4)
        ):
            span.text.messages.add(role=role, content=content)
        span.text.assistant_prefix = draw(st.text(max_size=30))
    if draw(st.booleans()):
        span.draft.token_ids.extend(draw(st.lists(st.integers(0, 2**32 - 1), max_size=6)))
        span.draft.min_prob = draw(floats32)
        span.draft.accept_top_token = draw(st.booleans())
    if draw(st.booleans()):
        span.sampling.temperature = draw(floats32)
        span.sampling.top_p = draw(floats32)
        if draw(st.booleans()):
            span.sampling.seed = draw(st.integers(0, 2**64 - 1))
    return span


def test_fuzzed_span_requests_never_fail_on_the_teacher_s_side(
    smollm_teacher, smollm_tokenizer: GgufModel
) -> None:
    @FUZZ
    @given(span=span_requests(smollm_tokenizer.fingerprint))
    def check(span: relay_pb2.SpanRequest) -> None:
        code, message = call_raw(smollm_teacher.channel, GENERATE, wire(span))
        assert code in {grpc.StatusCode.OK, INVALID}, (code, message)
        assert code == grpc.StatusCode.OK or message

    check()
    assert_serving(smollm_teacher.channel)


def test_fuzzed_bytes_never_fail_on_the_teacher_s_side(smollm_teacher) -> None:
    @FUZZ
    @given(payload=st.binary(max_size=80), method=st.sampled_from([GENERATE, STREAM, USAGE]))
    def check(payload: bytes, method: str) -> None:
        code, message = call_raw(smollm_teacher.channel, method, payload)
        assert code not in NEVER, (code, message)
        assert code == grpc.StatusCode.OK or message

    check()
    assert_serving(smollm_teacher.channel)
