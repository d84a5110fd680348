"""Session affinity through a real proxy: two real teacher replicas (`relay-teacher serve`
processes on SmolLM2, token mode) behind real HAProxy running the committed
deploy/haproxy/haproxy.cfg, rendered with loopback addresses. The edge's own client and relay
loop send the calls, so what is routed is the `x-relay-session` header the edge really sends.

- each session's calls land on one replica, which serves >= 90 % of its later prompt tokens
  from that session's cache;
- 16 sessions spread over both replicas;
- stopping a replica moves its sessions to the other, and an answer in progress completes.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from edge_client.policies.baselines import AlwaysPolicy
from edge_client.relay.events import AnswerFinished, TeacherCall
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.student.llama_student import LlamaStudent
from edge_client.teacher.client import SpanQuery
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.local import LocalTeacher, start_local_teacher
from edge_client.teacher.settings import TeacherClientSettings
from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path
from relay_common.sampling import SamplingParams
from relay_proto import relay_pb2, relay_pb2_grpc

HAPROXY = shutil.which("haproxy")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        HAPROXY is None,
        reason="haproxy is not installed (apt-get install haproxy; .ci/run installs it)",
    ),
]

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"
SESSIONS = [f"session-{i:02d}" for i in range(16)]
CALLS_PER_SESSION = 3
SPAN_TOKENS = 4


def render_config(*, bind_port: int, replicas: list[str]) -> str:
    """The committed config with loopback addresses: the frontend on `bind_port`, and one
    server per replica in place of the headless Service's DNS slots, with the same options."""
    text = CONFIG.read_text()
    text, binds = re.subn(r"^(\s*)bind \S+", rf"\1bind 127.0.0.1:{bind_port}", text, flags=re.M)
    template = re.search(r"^(\s*)server-template \S+ \d+ \S+ (.*)$", text, flags=re.M)
    assert binds == 1 and template is not None, "deploy/haproxy/haproxy.cfg changed its shape"
    indent, options = template.groups()
    options = re.sub(r"\b(resolvers \S+|init-addr \S+) ?", "", options)
    servers = "\n".join(
        f"{indent}server teacher{i} {address} {options}" for i, address in enumerate(replicas)
    )
    text = text[: template.start()] + servers + text[template.end() :]
    # No cluster DNS on loopback.
    return re.sub(r"^resolvers .*?\n\n", "", text, flags=re.M | re.S)


@contextlib.contextmanager
def running_haproxy(config: str, *, port: int, workdir: Path) -> Iterator[str]:
    config_path = workdir / "haproxy.cfg"
    config_path.write_text(config)
    log_path = workdir / "haproxy.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(config_path)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"haproxy exited:\n{log_path.read_text()}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, f"haproxy is not listening:\n{log_path.read_text()}"
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def replicas() -> Iterator[list[LocalTeacher]]:
    with contextlib.ExitStack() as stack:
        # Exactness does not matter here; prompt evaluation in large batches is faster.
        fast = ("--n-ubatch", "512")
        yield [
            stack.enter_context(start_local_teacher(model=smollm2_path(), extra_args=fast))
            for _ in range(2)
        ]


@pytest.fixture(scope="module")
def proxy(replicas, tmp_path_factory, free_port) -> Iterator[str]:
    port = free_port()
    config = render_config(bind_port=port, replicas=[r.address for r in replicas])
    with running_haproxy(config, port=port, workdir=tmp_path_factory.mktemp("haproxy")) as address:
        yield address


@pytest.fixture(scope="module")
def student() -> Iterator[LlamaStudent]:
    model = LlamaStudent(n_ctx=1024)
    yield model
    model.close()


@pytest.fixture(scope="module")
def client(proxy) -> Iterator[GrpcTeacherClient]:
    # Patient: a replica that was just stopped costs the proxy a retry, the client maybe one.
    settings = TeacherClientSettings(deadline_s=60, attempts=4, latency_budget_s=180)
    teacher = GrpcTeacherClient(proxy, settings=settings)
    yield teacher
    teacher.close()


def session_usage(replica: LocalTeacher, session_id: str) -> relay_pb2.SessionUsage | None:
    """The session's totals on that replica (asked directly, not through the proxy)."""
    with grpc.insecure_channel(replica.address) as channel:
        stub = relay_pb2_grpc.TeacherServiceStub(channel)
        try:
            request = relay_pb2.GetSessionUsageRequest(session_id=session_id)
            return stub.GetSessionUsage(request, timeout=30).usage
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise


def holders(replicas: list[LocalTeacher], session_id: str) -> dict[int, relay_pb2.SessionUsage]:
    """Which replicas hold the session (by index), and its totals there."""
    found = {i: session_usage(r, session_id) for i, r in enumerate(replicas) if r.running}
    return {i: usage for i, usage in found.items() if usage is not None}


def ask_span(client: GrpcTeacherClient, student: LlamaStudent, session_id: str, context: list[int]):
    reply = client.generate_span(
        SpanQuery(
            session_id=session_id,
            request_id=uuid.uuid4().hex,
            max_tokens=SPAN_TOKENS,
            sampling=SamplingParams(),
            token_ids=context,
            tokenizer_fingerprint=student.fingerprint,
        )
    )
    return reply


def test_sessions_stick_to_one_replica_spread_over_both_and_move_when_one_stops(
    replicas, client, student
):
    # 1. Each session's calls in a row (each replica has one slot: sessions do not interleave).
    home: dict[str, int] = {}
    contexts: dict[str, list[int]] = {}
    for n, session_id in enumerate(SESSIONS):
        question = (
            f"Session {n}. Please explain step by step, in plain words, why the number {n * 7} "
            "is or is not divisible by three, and then give one more example of your own."
        )
        context = student.render_prompt([ChatMessage("user", question)])
        reply = ask_span(client, student, session_id, context)
        (first_home, after_first), *others = holders(replicas, session_id).items()
        assert not others, f"{session_id}: its first call is held by two replicas"
        for _ in range(CALLS_PER_SESSION - 1):
            # The span, then the student's next words.
            context = context + reply.token_ids + student.tokenize(" And")
            reply = ask_span(client, student, session_id, context)
        (last_home, after_last), *others = holders(replicas, session_id).items()
        assert not others and last_home == first_home, f"{session_id} changed replicas"
        assert after_last.spans == after_first.spans + CALLS_PER_SESSION - 1
        later_prompt = after_last.prompt_tokens - after_first.prompt_tokens
        later_cached = after_last.cached_prompt_tokens - after_first.cached_prompt_tokens
        assert later_cached / later_prompt >= 0.9, (
            f"{session_id}: only {later_cached} of {later_prompt} later prompt tokens cached"
        )
        home[session_id], contexts[session_id] = first_home, context

    # 2. Both replicas have sessions.
    per_replica = [sorted(s for s, i in home.items() if i == r) for r in range(len(replicas))]
    assert all(per_replica), f"sessions per replica: {per_replica}"

    # 3. Stop replica 0 during an answer of one of its sessions: the answer completes.
    moved = per_replica[0]
    relay = RelaySession(
        student=student,
        teacher=client,
        policy=AlwaysPolicy(span=SPAN_TOKENS),
        options=RelayOptions(max_tokens=4 * SPAN_TOKENS),
        session_id=moved[0],
    )
    events = relay.answer([ChatMessage("user", "Name three colours of the rainbow.")])
    calls: list[TeacherCall] = []
    finished = None
    for event in events:
        if isinstance(event, TeacherCall):
            calls.append(event)
            if len(calls) == 1:
                replicas[0].close()  # SIGTERM: the replica drains and exits
        elif isinstance(event, AnswerFinished):
            finished = event
    assert finished is not None and len(calls) >= 2
    assert not [call for call in calls if call.failed], "a span fell back to the student"
    assert not replicas[0].running

    # Every session of the stopped replica now lives on the other one, which keeps its own.
    for session_id in [*moved, per_replica[1][0]]:
        ask_span(client, student, session_id, contexts[session_id])
        assert set(holders(replicas, session_id)) == {1}, f"{session_id} is not on replica 1"
