"""Load with API keys: many edge sessions at once against one teacher, each key's accounting
reconciled with the edges' ledgers.

Starts `relay-teacher serve` (SmolLM2, token mode) with `--keys` API keys, then runs
`--sessions` full edge sessions at once (`RelaySession`, each with its own student, ledger and
`GrpcTeacherClient`, keys assigned round-robin). Then compares, per key, the teacher's
GetKeyUsage with the sum of that key's ledgers, and per session GetSessionUsage with its ledger.
Prints one JSON line: sessions held, errors, p50/p99 span latency, reconciliation.

    python -m benchmarks.load_with_keys [--sessions 16] [--keys 2] [--max-tokens 24] [--span 8]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import numpy as np

from edge_client.ledger.store import Ledger
from edge_client.policies.baselines import AlwaysPolicy
from edge_client.relay.events import TeacherCall
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.student.llama_student import LlamaStudent
from edge_client.teacher.channel import ChannelSecurity
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.settings import TeacherClientSettings
from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path
from relay_proto import relay_pb2, relay_pb2_grpc


@dataclass(slots=True)
class KeyReport:
    name: str
    sessions: int = 0
    ledger_teacher_tokens: int = 0
    ledger_teacher_calls: int = 0
    teacher_generated_tokens: int = 0
    teacher_spans: int = 0

    @property
    def reconciled(self) -> bool:
        return (self.ledger_teacher_tokens, self.ledger_teacher_calls) == (
            self.teacher_generated_tokens,
            self.teacher_spans,
        )


@dataclass(slots=True)
class LoadReport:
    sessions: int
    keys: int
    sessions_completed: int = 0
    errors: int = 0  # failed teacher calls plus sessions that raised
    spans: int = 0
    span_latency_p50_ms: float = 0.0
    span_latency_p99_ms: float = 0.0
    sessions_unreconciled: int = 0
    wall_s: float = 0.0
    per_key: list[KeyReport] = field(default_factory=list)

    @property
    def reconciled(self) -> bool:
        return self.sessions_unreconciled == 0 and all(key.reconciled for key in self.per_key)


@dataclass(slots=True)
class _SessionOutcome:
    key: str
    session_id: str
    latencies_ms: list[float]
    failed: bool


@contextmanager
def keyed_teacher(folder: Path, keys: dict[str, str], *, slots: int) -> Iterator[str]:
    """`relay-teacher serve` on SmolLM2 with `keys` (name -> key); yields HOST:PORT."""
    key_file, ready = folder / "keys.txt", folder / "ready"
    key_file.write_text("".join(f"{name}:{key}\n" for name, key in keys.items()))
    command = [
        sys.executable, "-c", "from cloud_teacher.cli import main; main()", "serve",
        "--port", "0", "--ready-file", str(ready), "--model", str(smollm2_path()),
        "--slots", str(slots), "--api-key-file", str(key_file), "--log-level", "warning",
        "--max-calls-per-key", "1000",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_TEACHER_")}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            if process.poll() is not None:
                raise RuntimeError(f"relay-teacher exited: {process.communicate()[1][-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("relay-teacher did not start within 180 s")
            time.sleep(0.1)
        yield ready.read_text()
    finally:
        process.terminate()
        process.communicate(timeout=60)


def run_load(*, sessions: int, keys: int, max_tokens: int, span: int, slots: int = 4) -> LoadReport:
    report = LoadReport(sessions=sessions, keys=keys)
    names = [f"key{index}" for index in range(keys)]
    secret = {name: secrets.token_hex(16) for name in names}
    with tempfile.TemporaryDirectory(prefix="relay-load-") as folder_name:
        folder = Path(folder_name)
        with keyed_teacher(folder, secret, slots=slots) as address, ExitStack() as stack:
            # Loaded one by one in this thread: llama.cpp's quiet loading redirects the
            # process's stdout for a moment, which is not safe from several threads.
            relays = [
                _open_session(
                    index,
                    stack,
                    address=address,
                    key=secret[names[index % keys]],
                    key_name=names[index % keys],
                    ledger_path=folder / f"ledger-{index}.db",
                    max_tokens=max_tokens,
                    span=span,
                )
                for index in range(sessions)
            ]
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=sessions) as pool:
                outcomes = list(pool.map(_answer, relays))  # every session held at once
            report.wall_s = round(time.perf_counter() - started, 2)
            _reconcile(report, relays, outcomes, address=address, secret=secret)
    latencies = [latency for outcome in outcomes for latency in outcome.latencies_ms]
    report.spans = len(latencies)
    if latencies:
        report.span_latency_p50_ms = round(float(np.percentile(latencies, 50)), 1)
        report.span_latency_p99_ms = round(float(np.percentile(latencies, 99)), 1)
    report.sessions_completed = sum(not outcome.failed for outcome in outcomes)
    report.errors += sum(outcome.failed for outcome in outcomes)
    return report


@dataclass(slots=True)
class _Session:
    index: int
    key_name: str
    relay: RelaySession
    ledger_path: Path  # opened by the session's own thread: SQLite connections stay in theirs


def _open_session(
    index: int,
    stack: ExitStack,
    *,
    address: str,
    key: str,
    key_name: str,
    ledger_path: Path,
    max_tokens: int,
    span: int,
) -> _Session:
    student = LlamaStudent(n_ctx=1024)
    stack.callback(student.close)
    client = GrpcTeacherClient(
        address,
        settings=TeacherClientSettings(deadline_s=120, latency_budget_s=240),
        security=ChannelSecurity(api_key=key),
    )
    stack.callback(client.close)
    relay = RelaySession(
        student=student,
        teacher=client,
        # The teacher writes every span: the most load per session.
        policy=AlwaysPolicy(span=span),
        options=RelayOptions(max_tokens=max_tokens),
    )
    return _Session(index, key_name, relay, ledger_path)


def _answer(session: _Session) -> _SessionOutcome:
    relay, latencies, failed = session.relay, [], False
    ledger = Ledger(session.ledger_path)
    try:
        ledger.start_session(
            relay.session_id, student_model="smollm2", teacher=session.key_name, policy="always"
        )
        question = [ChatMessage("user", f"Tell me fact number {session.index} about the sea.")]
        for event in relay.answer(question):
            ledger.record(relay.session_id, event)
            if isinstance(event, TeacherCall) and event.error is None:
                latencies.append(event.latency_ms)
    except Exception as exc:  # a benchmark counts failures rather than stopping at the first
        print(f"session {session.index} failed: {exc!r}", file=sys.stderr)
        failed = True
    finally:
        ledger.close()
    return _SessionOutcome(session.key_name, relay.session_id, latencies, failed)


def _reconcile(
    report: LoadReport,
    sessions: list[_Session],
    outcomes: list[_SessionOutcome],
    *,
    address: str,
    secret: dict[str, str],
) -> None:
    keys = {name: KeyReport(name=name) for name in secret}
    with grpc.insecure_channel(address) as channel:
        stub = relay_pb2_grpc.TeacherServiceStub(channel)
        for session, outcome in zip(sessions, outcomes, strict=True):
            ledger = Ledger(session.ledger_path)
            record = ledger.session(outcome.session_id)
            ledger.close()
            if record is None:
                raise RuntimeError(f"session {outcome.session_id} is missing from its ledger")
            usage, key = record.usage, keys[outcome.key]
            report.errors += usage.teacher_failures
            key.sessions += 1
            key.ledger_teacher_tokens += usage.teacher_tokens
            key.ledger_teacher_calls += usage.teacher_calls - usage.teacher_failures
            served = _session_usage(stub, outcome.session_id, secret[outcome.key])
            if (served.generated_tokens, served.spans) != (
                usage.teacher_tokens,
                usage.teacher_calls - usage.teacher_failures,
            ):
                report.sessions_unreconciled += 1
        for name, key in keys.items():
            totals = stub.GetKeyUsage(
                relay_pb2.GetKeyUsageRequest(),
                metadata=(("authorization", f"Bearer {secret[name]}"),),
                timeout=30,
            ).usage
            key.teacher_generated_tokens = totals.generated_tokens
            key.teacher_spans = totals.spans
    report.per_key = list(keys.values())


def _session_usage(
    stub: relay_pb2_grpc.TeacherServiceStub, session_id: str, key: str
) -> relay_pb2.SessionUsage:
    """The teacher's totals for the session; zeros when it served the session nothing."""
    try:
        return stub.GetSessionUsage(
            relay_pb2.GetSessionUsageRequest(session_id=session_id),
            metadata=(("authorization", f"Bearer {key}"),),
            timeout=30,
        ).usage
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return relay_pb2.SessionUsage(session_id=session_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--keys", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--span", type=int, default=8)
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args()
    report = run_load(
        sessions=args.sessions,
        keys=args.keys,
        max_tokens=args.max_tokens,
        span=args.span,
        slots=args.slots,
    )
    print(json.dumps({**asdict(report), "reconciled": report.reconciled}))


if __name__ == "__main__":
    main()
