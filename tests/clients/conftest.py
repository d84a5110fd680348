"""Client fixtures: a real `relay-teacher serve` on loopback, the C++ client built with CMake,
the Node client with its packages, and a checker for what a client run printed.

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


@pytest.fixture(scope="session")
def teacher_stub(teacher: LocalTeacher) -> Iterator[relay_pb2_grpc.TeacherServiceStub]:
    """A Python stub on the same teacher, to check independently what a client did."""
    with grpc.insecure_channel(teacher.address) as channel:
        yield relay_pb2_grpc.TeacherServiceStub(channel)


@pytest.fixture(scope="session")
def cpp_client(request: pytest.FixtureRequest) -> Path:
    """The C++ client, built by CMake into pytest's cache dir (later runs rebuild only what
    changed)."""
    install = "apt-get install -y libgrpc++-dev protobuf-compiler-grpc cmake"
    for tool in ("cmake", "pkg-config", "protoc", "grpc_cpp_plugin", "c++"):
        if shutil.which(tool) is None:
            missing_toolchain(f"{tool} is missing: {install}")
    if run_program(["pkg-config", "--exists", "grpc++", "protobuf"]).returncode != 0:
        missing_toolchain(f"the gRPC C++ headers and libraries are missing: {install}")
    build = request.config.cache.mkdir("relay-client-cpp")
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


ClientRunCheck = Callable[[subprocess.CompletedProcess[str]], str]


@pytest.fixture
def check_client_run(teacher_stub: relay_pb2_grpc.TeacherServiceStub) -> ClientRunCheck:
    """Checks a client program's run against the teacher; returns its session id.

    The program exited 0 with every check held; it printed whole spans with text and a finish
    reason; and the teacher, asked from Python, counts two spans for its session although the
    client received three (the retried request id was replayed, counted once).
    """

    def check(run: subprocess.CompletedProcess[str]) -> str:
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
        session_id = _SESSION_ID.search(run.stdout)
        assert session_id is not None, output
        usage = teacher_stub.GetSessionUsage(
            relay_pb2.GetSessionUsageRequest(session_id=session_id[1]), timeout=30
        ).usage
        assert usage.spans == 2
        assert usage.generated_tokens > 0
        assert f"session: spans=2 prompt_tokens={usage.prompt_tokens} " in run.stdout
        return session_id[1]

    return check
