"""A client that goes away mid-answer, a full queue, and SIGTERM, against a real `relay-edge
serve`. The teacher call to cancel is a real one held in flight: a TCP proxy in front of a
real SmolLM2 teacher stalls it."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from edge_client.ledger.store import Ledger
from tests.edge_client.faults.tcp_proxy import Mode, TcpProxy
from tests.edge_client.serve.conftest import Served, start_serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

QUESTION = "Describe a sunny day at the beach."
_WAIT_S = 120.0  # generous: a busy 2-core machine


def body(model: str, **fields: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": QUESTION}], **fields}


def wait_for_answer(ledger_path, session_id: str, *, reason: str) -> Ledger:
    """Waits until the session's last answer finished with `reason`; returns the ledger."""
    deadline = time.monotonic() + _WAIT_S
    while time.monotonic() < deadline:
        ledger = Ledger(ledger_path)
        answers = ledger.answers(session_id)
        if answers and answers[-1].finish_reason == reason:
            return ledger
        ledger.close()
        time.sleep(0.2)
    pytest.fail(f"session {session_id}: no answer finished with {reason!r} in {_WAIT_S} s")


@pytest.fixture(scope="module")
def proxy(smollm2_teacher):
    running = TcpProxy(upstream=smollm2_teacher)
    yield running
    running.close()


@pytest.fixture(scope="module")
def served(serve_process, proxy) -> Served:
    # The teacher writes every span; no request waits: a second one at once gets 429.
    return serve_process(
        "--teacher", proxy.address, "--policy", "always", "--span", "4", "--queue", "0",
    )  # fmt: skip


def test_a_client_gone_mid_stream_cancels_the_teacher_call_and_the_next_is_served(served, proxy):
    proxy.mode = Mode.STALL
    with httpx.Client(timeout=_WAIT_S) as client:
        stream = client.stream(
            "POST",
            f"{served.url}/v1/chat/completions",
            json=body(served.model, stream=True, max_tokens=40),
            headers={"x-relay-session": "gone-mid-stream"},
        )
        response = stream.__enter__()
        assert response.status_code == 200
        # The answer's first span is a teacher call, held by the proxy.
        assert proxy.wait_for_held_bytes(timeout_s=_WAIT_S)

        # Meanwhile the student is busy and no request may wait: 429, with Retry-After.
        busy = client.post(f"{served.url}/v1/chat/completions", json=body(served.model))
        assert busy.status_code == 429
        assert int(busy.headers["retry-after"]) >= 1
        assert busy.json()["error"]["code"] == "queue_full"

        stream.__exit__(None, None, None)  # the client goes away

    ledger = wait_for_answer(served.ledger_path, "gone-mid-stream", reason="cancelled")
    with ledger:
        [answer] = ledger.answers("gone-mid-stream")
        [call] = ledger.teacher_calls("gone-mid-stream")
    assert answer.status == "complete" and answer.usage.cancelled_calls == 1
    assert call.outcome.value == "cancelled"
    assert answer.usage.teacher_tokens == 0 and answer.usage.fallback_spans == 0

    # The student is free at once: the next request is answered, the teacher writing again.
    proxy.mode = Mode.FORWARD
    answered = httpx.post(
        f"{served.url}/v1/chat/completions",
        json=body(served.model, max_tokens=8),
        timeout=_WAIT_S,
    )
    assert answered.status_code == 200, answered.text
    relay = answered.json()["usage"]["relay"]
    assert relay["teacher_tokens"] > 0 and relay["finish_reason"] in {"max_tokens", "end_of_answer"}


def test_sigterm_cancels_the_answer_in_flight_and_exits_0(tmp_path):
    served = start_serve(tmp_path, "--teacher-free", "--grace", "0")
    chunks: list[dict] = []
    done = False
    try:
        with httpx.stream(
            "POST",
            f"{served.url}/v1/chat/completions",
            json=body(
                served.model,
                stream=True,
                max_tokens=2000,
                stream_options={"include_usage": True},
            ),
            headers={"x-relay-session": "stopped-by-sigterm"},
            timeout=_WAIT_S,
        ) as response:
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    break
                chunks.append(json.loads(line.removeprefix("data: ")))
                contents = [
                    c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")
                ]
                if len(contents) == 3:
                    served.process.terminate()  # SIGTERM, mid-answer
    finally:
        status = served.stop()
    assert status == 0, served.output()
    assert done  # the stream still ends properly
    relay = chunks[-1]["usage"]["relay"]
    assert relay["finish_reason"] == "cancelled" and relay["student_tokens"] >= 3
    with Ledger(served.ledger_path) as ledger:
        [answer] = ledger.answers("stopped-by-sigterm")
    assert answer.finish_reason == "cancelled"
    assert answer.usage.student_tokens == relay["student_tokens"]
