"""A scripted relay.v1 teacher on a real loopback gRPC server, for failure injection.

The real teacher cannot be made to fail on cue; this one answers GenerateSpan from a script of
outcomes (a status code, a google.rpc.Status with details, SLOW, or a span) and records every
request it receives. Tests reach everything through fixtures (no imports from conftest).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
import pytest
from google.rpc import status_pb2
from grpc_status import rpc_status

from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.settings import TeacherClientSettings
from relay_proto import relay_pb2, relay_pb2_grpc

SPAN = relay_pb2.GenerateSpanResponse(
    token_ids=[11, 12, 13],
    text=" the span",
    finish_reason=relay_pb2.FINISH_REASON_LENGTH,
    usage=relay_pb2.SpanUsage(prompt_tokens=40, generated_tokens=3, compute_time_ms=7.5),
)

INFO = relay_pb2.GetInfoResponse(
    model_name="scripted-teacher",
    tokenizer_fingerprint="sha256:abc123",
    vocab_size=1000,
    limits=relay_pb2.Limits(max_span_tokens=64, max_context_tokens=2048),
    engine="script",
)

Outcome = grpc.StatusCode | status_pb2.Status | str | relay_pb2.GenerateSpanResponse


class ScriptedTeacher(relay_pb2_grpc.TeacherServiceServicer):
    """Plays `script` one outcome per GenerateSpan call, then answers `span`."""

    SLOW = "slow"  # an outcome: hold the call past any test deadline
    span = SPAN
    info_response = INFO

    def __init__(self) -> None:
        self.script: list[Outcome] = []
        self.span_requests: list[relay_pb2.GenerateSpanRequest] = []
        self.info_calls = 0
        self.release = threading.Event()  # set at teardown: frees handlers held by SLOW
        self.on_request: Callable[[], object] = lambda: None  # called as each span arrives

    def GetInfo(self, request, context):
        self.info_calls += 1
        return INFO

    def GenerateSpan(self, request, context):
        self.span_requests.append(request)
        self.on_request()
        outcome = self.script.pop(0) if self.script else SPAN
        if isinstance(outcome, grpc.StatusCode):
            context.abort(outcome, f"scripted {outcome.name}")
        if isinstance(outcome, status_pb2.Status):
            context.abort_with_status(rpc_status.to_status(outcome))
        if outcome == self.SLOW:
            self.release.wait(timeout=5)
            return SPAN
        return outcome


ServeTeacher = Callable[..., tuple[grpc.Server, str]]
MakeClient = Callable[..., GrpcTeacherClient]


@pytest.fixture
def teacher() -> Iterator[ScriptedTeacher]:
    servicer = ScriptedTeacher()
    yield servicer
    servicer.release.set()


@pytest.fixture
def serve_teacher(teacher: ScriptedTeacher) -> Iterator[ServeTeacher]:
    """Starts `teacher` on a loopback port (0: any free one); returns the server and
    "127.0.0.1:PORT". Every server started is stopped at teardown."""
    servers: list[grpc.Server] = []

    def serve(port: int = 0) -> tuple[grpc.Server, str]:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        relay_pb2_grpc.add_TeacherServiceServicer_to_server(teacher, server)
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        servers.append(server)
        return server, f"127.0.0.1:{bound}"

    yield serve
    teacher.release.set()
    for server in servers:
        server.stop(grace=None)


@pytest.fixture
def address(serve_teacher: ServeTeacher) -> str:
    """The address of `teacher`, serving."""
    return serve_teacher()[1]


class FakeClock:
    """Seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(fast_settings: TeacherClientSettings, clock: FakeClock) -> Iterator[MakeClient]:
    """Builds a GrpcTeacherClient on the fake clock with `fast_settings` plus overrides."""
    clients: list[GrpcTeacherClient] = []

    def make(address: str, **overrides: object) -> GrpcTeacherClient:
        settings = TeacherClientSettings(**{**fast_settings.model_dump(), **overrides})
        client = GrpcTeacherClient(address, settings=settings, clock=clock)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
