"""Prometheus metrics: a real teacher with --metrics-port, real calls, then a scrape of
/metrics whose counts must match the calls made; and every metric is documented."""

from __future__ import annotations

import re
import socket
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cloud_teacher.errors import ConfigError
from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel
from relay_common.routing import SESSION_HEADER
from relay_proto import relay_pb2

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def exposition(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        return response.read().decode()


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample at /metrics, by name and labels."""
    text = exposition(port)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    """The sum over every sample of the metric whose labels include `labels`."""
    wanted = frozenset(labels.items())
    return sum(
        sample
        for (sample_name, sample_labels), sample in samples.items()
        if sample_name == f"relay_teacher_{name}" and wanted <= sample_labels
    )


def span_request(tokenizer: GgufModel, *, session_id: str, request_id: str, max_tokens: int):
    return relay_pb2.SpanRequest(
        session_id=session_id,
        request_id=request_id,
        max_tokens=max_tokens,
        tokens=relay_pb2.TokenContext(
            token_ids=tokenizer.tokenize("Once upon a time, in a small village,", add_bos=True),
            tokenizer_fingerprint=tokenizer.fingerprint,
        ),
    )


def test_scraped_counts_match_the_calls_made(start_teacher, smollm_tokenizer):
    teacher = start_teacher(model=smollm2_path(), slots=1, metrics_port=0)
    assert teacher.server.metrics_port
    stub, port = teacher.stub, teacher.server.metrics_port
    sessions = [uuid.uuid4().hex, uuid.uuid4().hex]
    usages: list[relay_pb2.SpanUsage] = []
    reasons: list[int] = []

    # Three whole spans, in two sessions.
    for session_id, request_id in [(sessions[0], "r1"), (sessions[0], "r2"), (sessions[1], "r1")]:
        request = span_request(
            smollm_tokenizer, session_id=session_id, request_id=request_id, max_tokens=3
        )
        response = stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=request), timeout=240)
        usages.append(response.usage)
        reasons.append(response.finish_reason)

    # One streamed span; while it is written (32 tokens take a while), it is in flight.
    request = span_request(smollm_tokenizer, session_id=sessions[1], request_id="r2", max_tokens=32)
    stream = stub.StreamSpan(relay_pb2.StreamSpanRequest(span=request), timeout=240)
    pieces = [next(stream)]
    assert value(scrape(port), "spans_in_flight") == 1
    pieces.extend(stream)
    usages.append(pieces[-1].usage)
    reasons.append(pieces[-1].finish_reason)

    # A retry (replayed, not counted again), two refusals and an unknown session.
    request = span_request(smollm_tokenizer, session_id=sessions[0], request_id="r1", max_tokens=3)
    replay = stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=request), timeout=240)
    assert replay.usage.replayed
    for metadata, max_tokens in [((), 0), (((SESSION_HEADER, "another-session"),), 3)]:
        bad = span_request(
            smollm_tokenizer, session_id=sessions[0], request_id="r9", max_tokens=max_tokens
        )
        with pytest.raises(grpc.RpcError) as raised:
            stub.GenerateSpan(
                relay_pb2.GenerateSpanRequest(span=bad), metadata=metadata, timeout=240
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetSessionUsage(relay_pb2.GetSessionUsageRequest(session_id="nobody"), timeout=30)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    samples = scrape(port)
    assert value(samples, "spans_started_total") == 7
    for reason in (relay_pb2.FINISH_REASON_LENGTH, relay_pb2.FINISH_REASON_END_OF_ANSWER):
        label = relay_pb2.FinishReason.Name(reason).removeprefix("FINISH_REASON_").lower()
        assert value(samples, "spans_finished_total", finish_reason=label) == reasons.count(reason)
    assert value(samples, "spans_replayed_total") == 1
    assert value(samples, "prompt_tokens_total") == sum(u.prompt_tokens for u in usages)
    assert value(samples, "cached_prompt_tokens_total") == sum(
        u.cached_prompt_tokens for u in usages
    )
    assert value(samples, "cached_prompt_tokens_total") > 0  # later spans reuse the prefix
    assert value(samples, "generated_tokens_total") == sum(u.generated_tokens for u in usages)
    assert value(samples, "queue_seconds_count") == 4
    assert value(samples, "compute_seconds_count") == 4
    assert value(samples, "compute_seconds_sum") == pytest.approx(
        sum(u.compute_time_ms for u in usages) / 1000
    )
    assert value(samples, "errors_total", method="GenerateSpan", code="INVALID_ARGUMENT") == 2
    assert value(samples, "errors_total", method="GetSessionUsage", code="NOT_FOUND") == 1
    assert value(samples, "spans_in_flight") == 0
    assert value(samples, "sessions") == 2
    # started = finished + replayed + refused + in flight
    finished = sum(v for (name, _), v in samples.items() if name.endswith("spans_finished_total"))
    assert value(samples, "spans_started_total") == finished + 1 + 2 + 0


def test_no_metrics_port_serves_no_metrics(smollm_teacher):
    assert smollm_teacher.server.metrics_port is None


def test_every_metric_is_documented(start_teacher):
    teacher = start_teacher(model=smollm2_path(), slots=1, metrics_port=0)
    helped = re.findall(r"^# HELP (\S+) ", exposition(teacher.server.metrics_port), re.M)
    # prometheus-client adds a "_created" timestamp beside each unlabelled counter.
    exported = [name for name in helped if not name.endswith("_created")]
    assert len(exported) == 13
    documented = DOCS.read_text()
    assert [name for name in exported if f"`{name}`" not in documented] == []


def test_a_metrics_port_in_use_is_a_clear_config_error(start_teacher):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            start_teacher(model=smollm2_path(), slots=1, metrics_port=port)


def test_calls_refused_for_want_of_a_valid_key_count_as_errors(
    start_teacher, smollm_tokenizer, tmp_path
):
    key = "carol-0123456789abcdef0123456789"
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"carol:{key}\n")
    teacher = start_teacher(model=smollm2_path(), slots=1, api_key_file=key_file, metrics_port=0)
    stub = teacher.stub
    for metadata in [(), (("authorization", "Bearer not-a-key-of-this-teacher"),)]:
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetInfo(relay_pb2.GetInfoRequest(), metadata=metadata, timeout=30)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    request = relay_pb2.GenerateSpanRequest(
        span=span_request(smollm_tokenizer, session_id="s", request_id="r1", max_tokens=2)
    )
    with pytest.raises(grpc.RpcError) as raised:
        stub.GenerateSpan(request, timeout=240)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    stub.GenerateSpan(request, metadata=(("authorization", f"Bearer {key}"),), timeout=240)

    samples = scrape(teacher.server.metrics_port)
    refused = {"key": "", "code": "UNAUTHENTICATED"}
    assert value(samples, "errors_total", method="GetInfo", **refused) == 2
    assert value(samples, "errors_total", method="GenerateSpan", **refused) == 1
    assert value(samples, "errors_total") == 3
    # The refused span call was received, and ended; carol's was generated.
    assert value(samples, "spans_started_total", key="") == 1
    assert value(samples, "spans_started_total", key="carol") == 1
    assert value(samples, "spans_finished_total", key="carol") == 1
    assert value(samples, "spans_in_flight") == 0
