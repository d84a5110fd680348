"""Client fixtures: a real `relay-teacher serve` on loopback, a proxy in front of it that
records the metadata clients send, the C++ client built with CMake, the Node client with its
packages, and a checker for what a client run printed and sent.

A missing toolchain skips the tests that need it, saying what to install; under CI (the `CI`
environment variable set, as `.ci/run` runs) it fails them instead, since `.ci/run` installs
every toolchain and nothing may silently skip there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import grpc
import pytest

from edge_client.teacher.local import LocalTeacher, start_local_teacher
from relay_proto import relay_pb2, relay_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
CPP_SOURCE = ROOT / "clients" / "cpp"
NODE_CLIENT = ROOT / "clients" / "node"
# Builds and runs on a loaded 2-core machine: generous, never tight.
BUILD_TIMEOUT_S = 900
RUN_TIMEOUT_S = 600

# What a client prints for each whole span: its text, token count and finish reason.
_SPAN_LINE = re.compile(
    r'^  text="(?P<text>.*)"(?: token_ids=\d+)? '
    r"finish_reason=(?P<reason>FINISH_REASON_\w+)$",
    re.MULTILINE,
)
_SESSION_ID = re.compile(r"^session_id=(\S+)$", re.MULTILINE)
_TALLY = re.compile(r"^(\d+) checks held, (\d+) failed$", re.MULTILINE)


def missing_toolchain(reason: str) -> NoReturn:
    """Skips the test, or fails it under CI where every toolchain must be there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it in .ci/run: check that step)")
    pytest.skip(reason)


def run_program(
    command: list[str], *, cwd: Path = ROOT, timeout_s: float = RUN_TIMEOUT_S, **env: str
) -> subprocess.CompletedProcess[str]:
    """Runs a program to its end, its output captured; `env` adds environment variables."""
    return subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


RunProgram = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def run() -> RunProgram:
    """`run_program`: runs a client program to its end with its output captured."""
    return run_program


@pytest.fixture(scope="session")
def teacher() -> Iterator[LocalTeacher]:
    """`relay-teacher serve` on the embedded Gemma (text mode), on a free loopback port."""
    with start_local_teacher() as running:
        yield running


@dataclass(frozen=True, slots=True)
class ObservedCall:
    """One call as a client sent it: the method and its metadata."""

    method: str  # e.g. "GenerateSpan"
    metadata: dict[str, str]


class RecordingProxy(grpc.GenericRpcHandler):
    """Forwards every call, bytes unchanged, to the real teacher, and records what metadata the
    client sent; the teacher cannot show that, nor is it changed to."""

    def __init__(self, teacher_address: str) -> None:
        self.calls: list[ObservedCall] = []
        self._channel = grpc.insecure_channel(teacher_address)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        # Only what the client chose to send; gRPC's own headers are not the contract.
        metadata = {
            key: value
            for key, value in handler_call_details.invocation_metadata
            if not key.startswith("grpc-") and key != "user-agent"
        }
        self.calls.append(ObservedCall(method=method.rsplit("/", 1)[-1], metadata=metadata))
        forwarded = tuple(metadata.items())
        if method.endswith("/StreamSpan"):
            return grpc.unary_stream_rpc_method_handler(self._stream(method, forwarded))
        return grpc.unary_unary_rpc_method_handler(self._unary(method, forwarded))

    def _unary(self, method: str, metadata: tuple[tuple[str, str], ...]):
        forward = self._channel.unary_unary(method)

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            try:
                return forward(request, metadata=metadata, timeout=context.time_remaining())
            except grpc.RpcError as exc:
                context.abort(exc.code(), exc.details())

        return handle

    def _stream(self, method: str, metadata: tuple[tuple[str, str], ...]):
        forward = self._channel.unary_stream(method)

        def handle(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            call = forward(request, metadata=metadata, timeout=context.time_remaining())
            # A client that cancels cancels the teacher's call too, as without the proxy.
            context.add_callback(call.cancel)
            try:
                yield from call
            except grpc.RpcError as exc:
                context.abort(exc.code(), exc.details())

        return handle

    def close(self) -> None:
        self._channel.close()


@pytest.fixture
def recording_proxy(teacher: LocalTeacher) -> Iterator[tuple[str, RecordingProxy]]:
    """A loopback proxy in front of `teacher`; yields its address and the calls it saw."""
    proxy = RecordingProxy(teacher.address)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[proxy])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", proxy
    finally:
        server.stop(grace=None)
        proxy.close()


@pytest.fixture(scope="session")
def teacher_stub(teacher: LocalTeacher) -> Iterator[relay_pb2_grpc.TeacherServiceStub]:
    """A Python stub on the same teacher, to check independently what a client did."""
    with grpc.insecure_channel(teacher.address) as channel:
        yield relay_pb2_grpc.TeacherServiceStub(channel)


@pytest.fixture(scope="session")
def cpp_client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C++ client, built by CMake into pytest's cache dir (later runs rebuild only what
    changed), or into a temporary dir where there is no cache (`-p no:cacheprovider`, as on a
    read-only checkout)."""
    install = "apt-get install -y libgrpc++-dev libprotobuf-dev protobuf-compiler-grpc cmake"
    for tool in ("cmake", "pkg-config", "protoc", "grpc_cpp_plugin", "c++"):
        if shutil.which(tool) is None:
            missing_toolchain(f"{tool} is missing: {install}")
    if run_program(["pkg-config", "--exists", "grpc++", "protobuf"]).returncode != 0:
        missing_toolchain(f"the gRPC C++ headers and libraries are missing: {install}")
    cache = getattr(request.config, "cache", None)
    build = (
        cache.mkdir("relay-client-cpp")
        if cache is not None
        else tmp_path_factory.mktemp("relay-client-cpp")
    )
    for step in (
        ["cmake", "-S", str(CPP_SOURCE), "-B", str(build)],
        ["cmake", "--build", str(build), "--parallel", "2"],
    ):
        done = run_program(step, timeout_s=BUILD_TIMEOUT_S)
        assert done.returncode == 0, f"{' '.join(step)} failed:\n{done.stdout}\n{done.stderr}"
    return build / "relay_client"


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable, with the Node client's packages installed."""
    executable = shutil.which("node")
    if executable is None:
        missing_toolchain("node is missing: apt-get install -y nodejs npm")
    if not (NODE_CLIENT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        missing_toolchain("the Node client's packages are missing: run `npm ci` in clients/node")
    return executable


# What the clients send as their API key (RELAY_API_KEY); this teacher requires none.
API_KEY = "relay-test-key"
_SESSION_CALLS = {"GenerateSpan", "StreamSpan", "GetSessionUsage"}

ClientRunCheck = Callable[[subprocess.CompletedProcess[str], RecordingProxy], str]


@pytest.fixture
def run_client(
    teacher: LocalTeacher, recording_proxy: tuple[str, RecordingProxy]
) -> Callable[..., tuple[subprocess.CompletedProcess[str], RecordingProxy]]:
    """Runs a client program on the teacher's address (through the recording proxy) with
    RELAY_API_KEY set; returns the run and the proxy."""
    address, proxy = recording_proxy

    def run_it(command: list[str], *, cwd: Path = ROOT):
        return run_program([*command, address], cwd=cwd, RELAY_API_KEY=API_KEY), proxy

    return run_it


@pytest.fixture
def check_client_run(teacher_stub: relay_pb2_grpc.TeacherServiceStub) -> ClientRunCheck:
    """Checks a client program's run against the teacher; returns its session id.

    The program exited 0 with every check held; it printed whole spans with text and a finish
    reason; the teacher, asked from Python, counts two spans for its session although the
    client received three (the retried request id was replayed, counted once); and every call
    carried the API key, every span and usage call the session header.
    """

    def check(run: subprocess.CompletedProcess[str], proxy: RecordingProxy) -> str:
        output = f"{run.stdout}\n{run.stderr}"
        assert run.returncode == 0, output
        tally = _TALLY.search(run.stdout)
        assert tally is not None, output
        assert int(tally[1]) > 0 and tally[2] == "0", output
        spans = list(_SPAN_LINE.finditer(run.stdout))
        assert len(spans) >= 3, output  # the span, its replay and the stream
        for span in spans:
            assert span["text"] != "", output
            assert span["reason"] != "FINISH_REASON_UNSPECIFIED", output
        assert run.stdout.count("replayed=true") == 1, output
        found = _SESSION_ID.search(run.stdout)
        assert found is not None, output
        session_id = found[1]
        usage = teacher_stub.GetSessionUsage(
            relay_pb2.GetSessionUsageRequest(session_id=session_id), timeout=30
        ).usage
        assert usage.spans == 2
        assert usage.generated_tokens > 0
        assert f"session: spans=2 prompt_tokens={usage.prompt_tokens} " in run.stdout

        assert {call.method for call in proxy.calls} >= {"GetInfo", *_SESSION_CALLS}
        for call in proxy.calls:
            assert call.metadata.get("authorization") == f"Bearer {API_KEY}", call
            if call.method in _SESSION_CALLS:
                assert call.metadata.get("x-relay-session") == session_id, call
        return session_id

    return check
