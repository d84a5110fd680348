"""API keys, tenancy, TLS and per-key quota on a real teacher over loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from relay_common.embedded import smollm2_path
from relay_common.gguf import GgufModel
from relay_proto import relay_pb2, relay_pb2_grpc

ALICE = "alice-0123456789abcdef0123456789"
BOB = "bob-fedcba9876543210fedcba987654"


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def token_span(tokenizer: GgufModel, *, session: str, request: str = "r1", max_tokens: int = 4):
    return relay_pb2.GenerateSpanRequest(
        span=relay_pb2.SpanRequest(
            session_id=session,
            request_id=request,
            max_tokens=max_tokens,
            tokens=relay_pb2.TokenContext(
                token_ids=tokenizer.tokenize("The capital of France is", add_bos=True),
                tokenizer_fingerprint=tokenizer.fingerprint,
            ),
        )
    )


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text(f"# teacher keys\nalice:{ALICE}\n\n{BOB}\n")
    return path


@pytest.fixture
def keyed_teacher(start_teacher, key_file: Path):
    return start_teacher(model=smollm2_path(), slots=1, api_key_file=key_file)


def test_a_call_without_a_valid_key_is_unauthenticated(keyed_teacher) -> None:
    stub = keyed_teacher.stub
    for metadata, expected in (
        ((), "needs an API key"),
        (bearer("not-a-key-of-this-teacher"), "not valid"),
        ((("authorization", ALICE),), "not valid"),  # no "Bearer " scheme
    ):
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetInfo(relay_pb2.GetInfoRequest(), metadata=metadata, timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert expected in raised.value.details()
        assert "Bearer" in raised.value.details()  # says what to send

    assert stub.GetInfo(relay_pb2.GetInfoRequest(), metadata=bearer(ALICE), timeout=10).vocab_size
    assert stub.GetInfo(relay_pb2.GetInfoRequest(), metadata=bearer(BOB), timeout=10).vocab_size
    # Health stays open: a load balancer probes it without a key.
    health = health_pb2_grpc.HealthStub(keyed_teacher.channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_one_key_cannot_see_or_replay_another_key_s_session(
    keyed_teacher, smollm_tokenizer: GgufModel
) -> None:
    stub, session = keyed_teacher.stub, uuid.uuid4().hex
    alice = stub.GenerateSpan(
        token_span(smollm_tokenizer, session=session), metadata=bearer(ALICE), timeout=60
    )
    assert not alice.usage.replayed

    with pytest.raises(grpc.RpcError) as raised:
        stub.GetSessionUsage(
            relay_pb2.GetSessionUsageRequest(session_id=session), metadata=bearer(BOB), timeout=10
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    # Bob's identical request is his own: generated, not alice's span replayed, and nothing of
    # alice's prompt comes from the cache (the one slot held her tokens).
    bob = stub.GenerateSpan(
        token_span(smollm_tokenizer, session=session), metadata=bearer(BOB), timeout=60
    )
    assert not bob.usage.replayed
    assert bob.usage.cached_prompt_tokens == 0
    assert bob.session_usage.spans == 1  # his session, not added to alice's
    streamed = list(
        stub.StreamSpan(
            relay_pb2.StreamSpanRequest(
                span=token_span(smollm_tokenizer, session=session, request="r2").span
            ),
            metadata=bearer(BOB),
            timeout=60,
        )
    )
    assert streamed[-1].session_usage.spans == 2  # streamed calls are scoped to the key too

    alice_usage = stub.GetSessionUsage(
        relay_pb2.GetSessionUsageRequest(session_id=session), metadata=bearer(ALICE), timeout=10
    ).usage
    assert alice_usage.spans == 1
    assert alice_usage.generated_tokens == alice.usage.generated_tokens

    keys = {
        key: stub.GetKeyUsage(relay_pb2.GetKeyUsageRequest(), metadata=bearer(key), timeout=10)
        for key in (ALICE, BOB)
    }
    assert keys[ALICE].usage.key_name == "alice"
    assert keys[ALICE].usage.generated_tokens == alice.usage.generated_tokens
    assert keys[BOB].usage.spans == 2
    assert keys[BOB].usage.key_name not in ("", "alice")


def test_the_quota_refuses_with_a_retry_delay_per_key(
    start_teacher, key_file: Path, smollm_tokenizer: GgufModel
) -> None:
    teacher = start_teacher(
        model=smollm2_path(), slots=1, api_key_file=key_file, key_tokens_per_minute=6
    )
    info = teacher.stub.GetInfo(relay_pb2.GetInfoRequest(), metadata=bearer(ALICE), timeout=10)
    assert info.limits.key_tokens_per_minute == 6
    session = uuid.uuid4().hex
    for request in ("r1", "r2"):  # 4 tokens, then 8: over the quota after the second
        teacher.stub.GenerateSpan(
            token_span(smollm_tokenizer, session=session, request=request),
            metadata=bearer(ALICE),
            timeout=60,
        )
    with pytest.raises(grpc.RpcError) as raised:
        teacher.stub.GenerateSpan(
            token_span(smollm_tokenizer, session=session, request="r3"),
            metadata=bearer(ALICE),
            timeout=60,
        )
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "quota is 6" in raised.value.details()
    status = rpc_status.from_call(raised.value)
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert 0 < retry.retry_delay.ToTimedelta().total_seconds() <= 60

    # A retry of an answered request is a replay: free, so not refused.
    replay = teacher.stub.GenerateSpan(
        token_span(smollm_tokenizer, session=session, request="r1"),
        metadata=bearer(ALICE),
        timeout=60,
    )
    assert replay.usage.replayed
    # Another key has its own quota.
    teacher.stub.GenerateSpan(
        token_span(smollm_tokenizer, session=session), metadata=bearer(BOB), timeout=60
    )


def _channel_with(pki, *, ca: Path, client: bool, port: int) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=pki.client_key.read_bytes() if client else None,
        certificate_chain=pki.client_cert.read_bytes() if client else None,
    )
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials)


def _get_info(channel: grpc.Channel) -> relay_pb2.GetInfoResponse:
    return relay_pb2_grpc.TeacherServiceStub(channel).GetInfo(
        relay_pb2.GetInfoRequest(), timeout=10
    )


def _port(teacher) -> int:
    return int(teacher.address.rpartition(":")[2])


def test_a_tls_teacher_is_reachable_only_with_the_right_ca(start_teacher, pki) -> None:
    teacher = start_teacher(
        model=smollm2_path(), slots=1, tls_cert=pki.server_cert, tls_key=pki.server_key
    )
    port = _port(teacher)
    with _channel_with(pki, ca=pki.ca, client=False, port=port) as channel:
        assert _get_info(channel).vocab_size > 0
    with _channel_with(pki, ca=pki.other_ca, client=False, port=port) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            _get_info(channel)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.RpcError):  # plaintext gets nothing from a TLS port
        _get_info(teacher.channel)


def test_mutual_tls_refuses_a_client_without_a_certificate(start_teacher, pki) -> None:
    teacher = start_teacher(
        model=smollm2_path(),
        slots=1,
        tls_cert=pki.server_cert,
        tls_key=pki.server_key,
        tls_client_ca=pki.ca,
    )
    port = _port(teacher)
    with _channel_with(pki, ca=pki.ca, client=False, port=port) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            _get_info(channel)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    with _channel_with(pki, ca=pki.ca, client=True, port=port) as channel:
        assert _get_info(channel).vocab_size > 0


def _relay_teacher(*args: str) -> list[str]:
    return [sys.executable, "-c", "from cloud_teacher.cli import main; main()", *args]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RELAY_TEACHER_")}


def test_plaintext_on_a_non_loopback_address_is_refused_before_loading() -> None:
    result = subprocess.run(
        _relay_teacher("serve", "--host", "0.0.0.0", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--tls-cert" in result.stderr and "--allow-insecure" in result.stderr


def test_sighup_reloads_the_keys(tmp_path: Path) -> None:
    keys, ready = tmp_path / "keys.txt", tmp_path / "ready"
    keys.write_text(f"{ALICE}\n")
    process = subprocess.Popen(
        _relay_teacher(
            "serve", "--port", "0", "--ready-file", str(ready), "--model", str(smollm2_path()),
            "--slots", "1", "--n-ctx", "256", "--max-span-tokens", "16",
            "--api-key-file", str(keys),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_clean_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the teacher did not start"
            time.sleep(0.1)
        with grpc.insecure_channel(ready.read_text()) as channel:
            stub = relay_pb2_grpc.TeacherServiceStub(channel)

            def accepted(key: str) -> bool:
                try:
                    stub.GetInfo(relay_pb2.GetInfoRequest(), metadata=bearer(key), timeout=10)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
                    return False
                return True

            assert accepted(ALICE) and not accepted(BOB)
            keys.write_text(f"{BOB}\n")
            process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while not accepted(BOB):
                assert time.monotonic() < deadline, "SIGHUP did not reload the keys"
                time.sleep(0.1)
            assert not accepted(ALICE)

            keys.write_text("# nothing left\n")  # a broken file keeps the previous keys
            process.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            assert process.poll() is None and accepted(BOB)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "API keys not reloaded" in stderr


def test_a_refused_request_does_not_leave_another_tenant_s_prefix_behind(
    keyed_teacher, smollm_tokenizer: GgufModel
) -> None:
    stub = keyed_teacher.stub  # one slot: every request lands on it
    stub.GenerateSpan(token_span(smollm_tokenizer, session="s"), metadata=bearer(ALICE), timeout=60)
    too_long = relay_pb2.SpanRequest(  # refused by the engine, after it took the slot
        session_id="s",
        request_id="long",
        max_tokens=4,
        text=relay_pb2.TextContext(
            messages=[relay_pb2.ChatMessage(role=relay_pb2.ROLE_USER, content="word " * 2100)]
        ),
    )
    with pytest.raises(grpc.RpcError) as raised:
        stub.GenerateSpan(
            relay_pb2.GenerateSpanRequest(span=too_long), metadata=bearer(BOB), timeout=60
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    bob = stub.GenerateSpan(
        token_span(smollm_tokenizer, session="s"), metadata=bearer(BOB), timeout=60
    )
    assert bob.usage.cached_prompt_tokens == 0
