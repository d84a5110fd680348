"""GrpcTeacherClient against a real gRPC server on a loopback port (scripted for failures)."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from edge_client.errors import (
    CallCancelledError,
    CircuitOpenError,
    ConfigError,
    TeacherCredentialsError,
    TeacherRejectedError,
    TeacherUnavailableError,
)
from edge_client.teacher.client import SpanQuery, TeacherInfo, TeacherState
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.wire import span_request_to_proto
from relay_common.chat import ChatMessage
from relay_common.sampling import SamplingParams
from relay_proto import relay_pb2


def text_request(request_id: str = "r1") -> SpanQuery:
    return SpanQuery(
        session_id="s1",
        request_id=request_id,
        max_tokens=8,
        sampling=SamplingParams(),
        messages=[
            ChatMessage("system", "Be brief."),
            ChatMessage("user", "What is 2 + 2?"),
        ],
        assistant_prefix="It is",
    )


def request_bytes(request: SpanQuery) -> int:
    return span_request_to_proto(request).ByteSize()


def test_text_mode_span_round_trip(teacher, address, make_client) -> None:
    client = make_client(address)
    answer = relay_pb2.GenerateSpanResponse(
        token_ids=[5, 6],
        text=" four.",
        finish_reason=relay_pb2.FINISH_REASON_END_OF_ANSWER,
        usage=relay_pb2.SpanUsage(compute_time_ms=12.0),
    )
    teacher.script = [answer]

    reply = client.generate_span(text_request())

    [sent] = teacher.span_requests
    assert sent.span.session_id == "s1"
    assert sent.span.request_id == "r1"
    assert sent.span.max_tokens == 8
    assert [(m.role, m.content) for m in sent.span.text.messages] == [
        (relay_pb2.ROLE_SYSTEM, "Be brief."),
        (relay_pb2.ROLE_USER, "What is 2 + 2?"),
    ]
    assert sent.span.text.assistant_prefix == "It is"
    assert not sent.span.HasField("sampling")  # temperature 0: absent means greedy
    assert reply.token_ids == [5, 6]
    assert reply.text == " four."
    assert reply.ended_answer is True
    assert reply.compute_ms == 12.0
    assert reply.retries == 0
    assert reply.latency_ms > 0
    assert reply.wire_bytes == sent.ByteSize() + answer.ByteSize()
    assert client.state is TeacherState.ONLINE


def test_token_mode_sends_ids_fingerprint_and_sampling(teacher, address, make_client) -> None:
    client = make_client(address)
    request = SpanQuery(
        session_id="s1",
        request_id="r2",
        max_tokens=4,
        sampling=SamplingParams(temperature=0.7, top_p=0.9, seed=42),
        token_ids=[1, 2, 3],
        tokenizer_fingerprint="sha256:abc123",
    )

    reply = client.generate_span(request)

    [sent] = teacher.span_requests
    assert list(sent.span.tokens.token_ids) == [1, 2, 3]
    assert sent.span.tokens.tokenizer_fingerprint == "sha256:abc123"
    assert sent.span.sampling.temperature == pytest.approx(0.7)
    assert sent.span.sampling.top_p == pytest.approx(0.9)
    assert sent.span.sampling.seed == 42
    assert reply.token_ids == list(teacher.span.token_ids)
    assert reply.ended_answer is False
    assert reply.wire_bytes == request_bytes(request) + teacher.span.ByteSize()


def test_info_is_fetched_once(teacher, address, make_client) -> None:
    client = make_client(address)

    first = client.info()
    second = client.info()

    assert (
        first
        == second
        == TeacherInfo(
            model_name="scripted-teacher",
            tokenizer_fingerprint="sha256:abc123",
            max_span_tokens=64,
            max_context_tokens=2048,
        )
    )
    assert teacher.info_calls == 1


def test_retryable_codes_are_retried_with_the_same_request_id(
    teacher, address, make_client
) -> None:
    client = make_client(address)
    teacher.script = [grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE]
    request = text_request("same-id")

    reply = client.generate_span(request)

    assert reply.retries == 2
    assert [r.span.request_id for r in teacher.span_requests] == ["same-id"] * 3
    assert reply.wire_bytes == 3 * request_bytes(request) + teacher.span.ByteSize()
    assert client.state is TeacherState.DEGRADED  # it worked, but needed retries


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
    ],
)
def test_refusals_are_tried_once(teacher, address, make_client, code) -> None:
    client = make_client(address)
    teacher.script = [code, code, code]
    request = text_request()

    with pytest.raises(TeacherRejectedError) as raised:
        client.generate_span(request)

    assert len(teacher.span_requests) == 1
    error = raised.value
    assert error.retries == 0
    assert error.wire_bytes == request_bytes(request)
    assert f"scripted {code.name}" in str(error)
    assert isinstance(error.__cause__, grpc.RpcError)
    # A refusal shows the teacher is up: it is not held against its health.
    refused_credentials = code in (
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert isinstance(error, TeacherCredentialsError) is refused_credentials
    expected = TeacherState.REFUSED if refused_credentials else TeacherState.ONLINE
    assert client.state is expected


def test_a_long_refusal_message_is_cut_short(teacher, address, make_client) -> None:
    # The edge records each failure's message in the ledger and may log it: a teacher's long
    # status message (bounded only by gRPC's metadata limit) must not go there whole.
    client = make_client(address)
    teacher.script = [
        status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message="m" * 4000)
    ]

    with pytest.raises(TeacherRejectedError) as raised:
        client.generate_span(text_request())

    message = str(raised.value)
    assert "INVALID_ARGUMENT" in message and "4,000 characters" in message
    assert len(message) < 1000


def test_refusals_never_open_the_breaker(teacher, address, make_client) -> None:
    client = make_client(address, attempts=1, breaker_threshold=2)
    teacher.script = [grpc.StatusCode.INVALID_ARGUMENT] * 5

    for _ in range(5):
        with pytest.raises(TeacherRejectedError) as raised:
            client.generate_span(text_request())
        assert raised.value.sent

    assert len(teacher.span_requests) == 5  # every one went out: no breaker in the way
    assert client.state is TeacherState.ONLINE
    assert client.generate_span(text_request()).token_ids == list(teacher.span.token_ids)


def test_refused_credentials_stop_calls_for_the_session(teacher, address, make_client) -> None:
    client = make_client(address)
    teacher.script = [grpc.StatusCode.UNAUTHENTICATED]
    with pytest.raises(TeacherCredentialsError):
        client.generate_span(text_request())

    with pytest.raises(TeacherCredentialsError) as again:
        client.generate_span(text_request())

    assert not again.value.sent
    assert "API key" in str(again.value) and "offline" not in str(again.value)
    assert len(teacher.span_requests) == 1  # the second call never left the edge
    assert client.state is TeacherState.REFUSED


def test_cancel_stops_a_call_in_flight_without_blaming_the_teacher(
    teacher, address, make_client
) -> None:
    client = make_client(address, deadline_s=60.0, latency_budget_s=120.0, breaker_threshold=1)
    teacher.script = [teacher.SLOW]
    cancel = threading.Event()
    arrived = threading.Event()
    teacher.on_request = arrived.set
    threading.Thread(target=lambda: arrived.wait(30) and cancel.set(), daemon=True).start()

    with pytest.raises(CallCancelledError):
        client.generate_span(text_request(), cancel=cancel)

    assert arrived.is_set() and len(teacher.span_requests) == 1
    assert client.state is TeacherState.ONLINE  # a threshold of 1 would have opened it
    teacher.release.set()
    assert client.generate_span(text_request("next")).token_ids == list(teacher.span.token_ids)


def retry_info_status(delay_s: float) -> status_pb2.Status:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=delay_s)))
    return status_pb2.Status(
        code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
        message="quota spent",
        details=[detail],
    )


def test_retry_waits_the_delay_the_teacher_names(teacher, address, make_client) -> None:
    # The client's own back-off is tiny (fast_settings); the teacher asks for a full second.
    client = make_client(address, latency_budget_s=30.0)
    teacher.script = [retry_info_status(1)]
    waits: list[float] = []
    teacher.on_request = lambda: waits.append(time.monotonic())

    reply = client.generate_span(text_request())

    assert reply.retries == 1
    assert waits[1] - waits[0] >= 1.0


def test_a_named_delay_beyond_the_budget_is_not_waited(teacher, address, make_client) -> None:
    client = make_client(address, latency_budget_s=2.0)
    teacher.script = [retry_info_status(3600)]

    with pytest.raises(TeacherUnavailableError, match="RESOURCE_EXHAUSTED") as raised:
        client.generate_span(text_request())

    assert raised.value.retry_after_s == 3600
    assert len(teacher.span_requests) == 1


def test_slow_teacher_exceeds_deadlines_then_is_unavailable(teacher, address, make_client) -> None:
    client = make_client(address, deadline_s=0.1)
    teacher.script = [teacher.SLOW] * 3

    with pytest.raises(TeacherUnavailableError) as raised:
        client.generate_span(text_request())

    error = raised.value
    assert not isinstance(error, CircuitOpenError)
    assert len(teacher.span_requests) == 3
    assert error.retries == 2
    assert error.latency_ms > 0
    assert "DEADLINE_EXCEEDED" in str(error)
    assert error.__cause__.code() is grpc.StatusCode.DEADLINE_EXCEEDED


def test_latency_budget_ends_retries_before_attempts_run_out(teacher, address, make_client) -> None:
    client = make_client(address, deadline_s=0.1, attempts=20, latency_budget_s=0.35)
    teacher.script = [teacher.SLOW] * 20

    with pytest.raises(TeacherUnavailableError) as raised:
        client.generate_span(text_request())

    assert 1 <= len(teacher.span_requests) < 20
    assert raised.value.retries == len(teacher.span_requests) - 1


def test_stopped_server_is_unavailable_after_retries(teacher, serve_teacher, make_client) -> None:
    server, address = serve_teacher()
    client = make_client(address)
    client.generate_span(text_request("before"))
    server.stop(grace=None).wait()

    with pytest.raises(TeacherUnavailableError) as raised:
        client.generate_span(text_request("after"))

    assert raised.value.retries == 2
    assert "UNAVAILABLE" in str(raised.value)
    assert [r.span.request_id for r in teacher.span_requests] == ["before"]


def test_no_server_is_unavailable_after_retries(make_client, free_port) -> None:
    client = make_client(f"127.0.0.1:{free_port()}")

    with pytest.raises(TeacherUnavailableError) as raised:
        client.info()

    assert raised.value.retries == 2
    assert client.state is TeacherState.DEGRADED


def test_breaker_opens_probes_after_cooldown_and_closes(
    teacher, address, make_client, clock
) -> None:
    client = make_client(address, attempts=1, breaker_threshold=2)
    teacher.script = [grpc.StatusCode.UNAVAILABLE] * 2

    for _ in range(2):
        with pytest.raises(TeacherUnavailableError):
            client.generate_span(text_request())
    assert client.state is TeacherState.OFFLINE

    with pytest.raises(CircuitOpenError) as raised:
        client.generate_span(text_request())
    assert len(teacher.span_requests) == 2  # refused without touching the network
    assert raised.value.retries == 0

    clock.advance(29.9)
    assert client.state is TeacherState.OFFLINE
    clock.advance(0.1)
    assert client.state is TeacherState.DEGRADED  # half-open: the next call is a probe

    reply = client.generate_span(text_request())

    assert reply.token_ids == list(teacher.span.token_ids)
    assert len(teacher.span_requests) == 3
    assert client.state is TeacherState.ONLINE


def test_failed_probe_opens_the_breaker_again(teacher, address, make_client, clock) -> None:
    client = make_client(address, attempts=1, breaker_threshold=1)
    teacher.script = [grpc.StatusCode.UNAVAILABLE] * 2
    with pytest.raises(TeacherUnavailableError):
        client.generate_span(text_request())
    clock.advance(30)

    with pytest.raises(TeacherUnavailableError) as probe:
        client.generate_span(text_request())

    assert not isinstance(probe.value, CircuitOpenError)  # the probe went out
    assert client.state is TeacherState.OFFLINE
    with pytest.raises(CircuitOpenError):
        client.generate_span(text_request())
    assert len(teacher.span_requests) == 2


def test_probes_reach_a_teacher_that_came_back(teacher, serve_teacher, make_client, clock) -> None:
    server, address = serve_teacher()
    port = int(address.rsplit(":", 1)[1])
    client = make_client(address, attempts=1, breaker_threshold=1)
    server.stop(grace=None).wait()
    with pytest.raises(TeacherUnavailableError):
        client.generate_span(text_request("down"))
    assert client.state is TeacherState.OFFLINE

    serve_teacher(port)
    # gRPC reconnects after its own short back-off; a probe may fail fast until then.
    for _ in range(50):
        clock.advance(30)
        try:
            reply = client.generate_span(text_request("up"))
            break
        except TeacherUnavailableError:
            time.sleep(0.05)
    else:
        pytest.fail("the teacher came back but no probe reached it")

    assert reply.token_ids == list(teacher.span.token_ids)
    assert client.state is TeacherState.ONLINE


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("localhost", "is not HOST:PORT"),
        ("host:", "is not HOST:PORT"),
        (":50051", "is not HOST:PORT"),
        ("a b:1", "is not HOST:PORT"),
        ("::1:80", "is not HOST:PORT"),
        ("host:70000", "use a port from 1 to 65535"),
        ("host:0", "use a port from 1 to 65535"),
    ],
)
def test_bad_address_is_a_config_error(bad: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GrpcTeacherClient(bad)


@pytest.mark.parametrize(
    ("given", "address"),
    [
        ("localhost:50051", "localhost:50051"),
        (" teacher.example.com:443 ", "teacher.example.com:443"),
        ("[::1]:50051", "[::1]:50051"),
    ],
)
def test_good_address_is_kept(given: str, address: str) -> None:
    client = GrpcTeacherClient(given)
    try:
        assert client.address == address
    finally:
        client.close()
