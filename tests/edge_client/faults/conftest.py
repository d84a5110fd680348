"""Fault-injection fixtures: a TCP proxy in front of the real teacher, the teacher's own
accounting, and `relay-edge` as a user runs it."""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from tcp_proxy import TcpProxy

from edge_client.student.llama_student import LlamaStudent
from relay_proto import relay_pb2, relay_pb2_grpc

RELAY_EDGE = str(Path(sys.executable).with_name("relay-edge"))


@pytest.fixture(scope="module")
def student() -> Iterator[LlamaStudent]:
    """A student of these tests' own: the shared one's KV cache stays as other tests expect."""
    model = LlamaStudent(n_ctx=2048)
    yield model
    model.close()


@pytest.fixture
def proxy(smollm2_teacher: str) -> Iterator[TcpProxy]:
    """A proxy in front of the SmolLM2 teacher (token mode), forwarding."""
    running = TcpProxy(upstream=smollm2_teacher)
    yield running
    running.close()


@pytest.fixture
def teacher_usage(smollm2_teacher: str) -> Iterator[Callable[[str], relay_pb2.SessionUsage]]:
    """The teacher's own totals for a session (GetSessionUsage), asked directly."""
    channel = grpc.insecure_channel(smollm2_teacher)
    stub = relay_pb2_grpc.TeacherServiceStub(channel)

    def usage(session_id: str) -> relay_pb2.SessionUsage:
        request = relay_pb2.GetSessionUsageRequest(session_id=session_id)
        return stub.GetSessionUsage(request, timeout=60).usage

    yield usage
    channel.close()


@pytest.fixture
def edge_home(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Environment for `relay-edge`: its own ledger and a patient teacher client."""
    config = tmp_path / "config.toml"
    config.write_text("[teacher_client]\ndeadline_s = 300.0\nlatency_budget_s = 600.0\n")
    ledger = tmp_path / "ledger.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env |= {"RELAY_LEDGER_PATH": str(ledger), "RELAY_CONFIG": str(config)}
    return env, ledger


def wait_for_row(ledger: Path, query: str, *, timeout_s: float = 180.0) -> sqlite3.Row:
    """Polls the ledger (written by another process) until `query` returns a row."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ledger.exists():
            db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=30)
            db.row_factory = sqlite3.Row
            try:
                row = db.execute(query).fetchone()
            except sqlite3.OperationalError:  # tables not created yet
                row = None
            finally:
                db.close()
            if row is not None:
                return row
        time.sleep(0.1)
    raise AssertionError(f"the ledger never answered {query!r}")


@pytest.fixture
def ledger_row() -> Callable[..., sqlite3.Row]:
    return wait_for_row
