"""Faults between the edge and a real teacher (`relay-teacher serve` subprocesses on
loopback): connections stalled and reset by a TCP proxy, a teacher stopped, killed and
overloaded, the edge itself interrupted and killed. In each case the answer completes (on the
student where it must), the ledger holds every call exactly once, and where the teacher
survives, its own accounting equals the ledger's record of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest
from tcp_proxy import Mode

from edge_client.ledger.store import Ledger, RecordedTeacherUsage
from edge_client.policies.baselines import AlwaysPolicy, NeverPolicy
from edge_client.policies.verify import VerifyPolicy
from edge_client.relay.events import (
    AnswerEndReason,
    AnswerFinished,
    AnswerStarted,
    CallOutcome,
    Source,
    TeacherCall,
    TokensAppended,
)
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.runtime import EdgeRuntime
from edge_client.student.llama_student import LlamaStudent
from edge_client.teacher.client import SpanQuery, SpanReply
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.local import start_local_teacher
from edge_client.teacher.settings import TeacherClientSettings
from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path
from relay_common.sampling import SamplingParams
from relay_proto import relay_pb2, relay_pb2_grpc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

QUESTION = [ChatMessage("user", "Describe a sunny day at the beach.")]
RELAY_EDGE = str(Path(sys.executable).with_name("relay-edge"))

# A deadline long enough for a busy machine (a stalled call waits it out once: one attempt);
# a breaker that opens at the first failure and probes at the next call.
PATIENT = TeacherClientSettings(
    deadline_s=60.0,
    attempts=1,
    latency_budget_s=120.0,
    breaker_threshold=1,
    breaker_cooldown_s=0.0,
)


def recorded_answer(student, address, ledger: Ledger, *, on_event=lambda event: None, **kwargs):
    """One answer through the product's runtime path (events recorded before they are seen)."""
    client = GrpcTeacherClient(address, settings=kwargs.get("settings", PATIENT))
    session = RelaySession(
        student=student,
        teacher=client,
        policy=kwargs.get("policy") or AlwaysPolicy(span=kwargs.get("span", 3)),
        options=RelayOptions(max_tokens=kwargs.get("max_tokens", 30)),
    )
    ledger.start_session(session.session_id, student_model="s", teacher=address, policy="always")
    runtime = EdgeRuntime(
        session=session,
        ledger=ledger,
        teacher_label=address,
        mode="token",
        policy="always",
        cancel=session.cancel,
        _teacher=client,
    )
    events = []
    try:
        for event in runtime.answer(QUESTION):
            events.append(event)
            on_event(event)
    finally:
        client.close()
    return session, events


def assert_ledger_matches(ledger: Ledger, session, events) -> None:
    """The ledger holds the session's counts and every call, once, in order."""
    record = ledger.session(session.session_id)
    assert record.usage == session.usage
    assert record.status == "complete"
    calls = [event for event in events if isinstance(event, TeacherCall)]
    assert ledger.teacher_calls(session.session_id) == calls
    sent = [call.request_id for call in calls if call.sent]
    assert len(set(sent)) == len(sent)  # one row per call, retries included in it
    assert isinstance(events[-1], AnswerFinished)
    assert session.usage.generated_tokens == sum(
        len(event.token_ids) for event in events if isinstance(event, TokensAppended)
    )


def assert_reconciled(ledger: Ledger, session_id: str, teacher_usage) -> None:
    theirs = teacher_usage(session_id)
    assert ledger.teacher_usage(session_id) == RecordedTeacherUsage(
        spans=theirs.spans,
        prompt_tokens=theirs.prompt_tokens,
        cached_prompt_tokens=theirs.cached_prompt_tokens,
        generated_tokens=theirs.generated_tokens,
        draft_tokens=theirs.draft_tokens,
    )


def test_reset_connections_fall_back_then_recover(student, proxy, tmp_path, teacher_usage):
    ledger = Ledger(tmp_path / "ledger.db")
    retrying = PATIENT.model_copy(update={"attempts": 3, "backoff_initial_s": 0.01})
    answered = []

    def inject(event) -> None:
        if isinstance(event, TeacherCall) and not event.failed:
            answered.append(event)
            if len(answered) == 1:
                proxy.mode = Mode.RESET  # after the first span: every connection is reset
        elif isinstance(event, TeacherCall) and event.outcome is CallOutcome.UNAVAILABLE:
            proxy.mode = Mode.FORWARD  # the call failed: the network comes back

    session, events = recorded_answer(
        student, proxy.address, ledger, on_event=inject, settings=retrying
    )

    calls = [event for event in events if isinstance(event, TeacherCall)]
    outcomes = [call.outcome for call in calls]
    assert outcomes[0] is CallOutcome.ANSWERED, calls[0].error
    assert CallOutcome.UNAVAILABLE in outcomes
    assert outcomes[-1] is CallOutcome.ANSWERED  # the breaker's probe reached the teacher
    assert session.usage.fallback_spans >= 2 and session.usage.retries >= 2
    assert_ledger_matches(ledger, session, events)
    assert_reconciled(ledger, session.session_id, teacher_usage)
    ledger.close()


def test_a_stalled_connection_times_out_and_the_answer_goes_on(
    student, proxy, tmp_path, teacher_usage
):
    ledger = Ledger(tmp_path / "ledger.db")

    def inject(event) -> None:
        if isinstance(event, TeacherCall) and event.outcome is CallOutcome.ANSWERED:
            if proxy.mode is Mode.FORWARD and not getattr(inject, "stalled", False):
                inject.stalled = True
                proxy.mode = Mode.STALL
        elif isinstance(event, TeacherCall) and event.outcome is CallOutcome.UNAVAILABLE:
            proxy.mode = Mode.FORWARD

    session, events = recorded_answer(student, proxy.address, ledger, on_event=inject)

    calls = [event for event in events if isinstance(event, TeacherCall)]
    assert any("DEADLINE_EXCEEDED" in (call.error or "") for call in calls)
    assert session.usage.fallback_tokens >= 1
    assert_ledger_matches(ledger, session, events)
    ledger.close()


def verify_policy(*, window: int) -> VerifyPolicy:
    return VerifyPolicy(accept_prob=0.1, draft=8, span=2, window=window, fallback=NeverPolicy())


def test_drafts_stand_when_the_teacher_goes_away_mid_answer(
    student, proxy, tmp_path, teacher_usage
):
    """Checks answered, then every connection reset: the student's drafts stand as it wrote
    them (fallback spans), and the checks that were answered are counted alike on both sides."""
    ledger = Ledger(tmp_path / "ledger.db")

    def inject(event) -> None:
        if isinstance(event, TeacherCall) and event.outcome is CallOutcome.ANSWERED:
            proxy.mode = Mode.RESET  # after the first check: the teacher is gone

    session, events = recorded_answer(
        student,
        proxy.address,
        ledger,
        on_event=inject,
        policy=verify_policy(window=8),
        max_tokens=40,
    )

    calls = [event for event in events if isinstance(event, TeacherCall)]
    assert calls[0].outcome is CallOutcome.ANSWERED
    assert len(calls) >= 2 and all(call.failed for call in calls[1:])
    usage = session.usage
    assert usage.fallback_spans == len(calls) - 1 and usage.fallback_tokens >= 1
    assert usage.draft_tokens == calls[0].draft_tokens  # only the answered check was read
    assert events[-1].reason is not AnswerEndReason.CANCELLED
    # Each draft that stood is the student's own continuation of the answer before it.
    prompt = student.render_prompt(QUESTION)
    answer: list[int] = []
    for event in events:
        if isinstance(event, TokensAppended):
            if event.source is Source.FALLBACK:
                student.sync([*prompt, *answer])
                assert [greedy_next(student) for _ in event.token_ids] == list(event.token_ids)
            answer += event.token_ids
    assert_ledger_matches(ledger, session, events)
    assert_reconciled(ledger, session.session_id, teacher_usage)
    ledger.close()


def greedy_next(student) -> int:
    token = int(student.next_logits().argmax())
    student.append([token])
    return token


def test_the_student_drafts_ahead_of_a_check_in_flight_up_to_its_window(proxy, tmp_path):
    """The second check is held on the wire: meanwhile the student drafts `window` tokens past
    it, no more, and the answer goes on once the check comes back."""
    # Exact, as the teacher: every draft is accepted, so the count below holds.
    student = LlamaStudent(n_ctx=2048, n_ubatch=1)
    window, draft = 8, 8
    seen: list = []
    stalled = threading.Event()

    def inject(event) -> None:
        seen.append(event)
        if isinstance(event, TeacherCall) and not stalled.is_set():
            stalled.set()
            proxy.mode = Mode.STALL  # the next check is held

    def answer() -> None:
        with Ledger(tmp_path / "ledger.db") as ledger:  # used on the thread that opens it
            policy = verify_policy(window=window)
            done.append(
                recorded_answer(
                    student, proxy.address, ledger, on_event=inject, policy=policy, max_tokens=60
                )
            )

    before = student.evaluated_tokens
    done: list = []
    worker = threading.Thread(target=answer)
    worker.start()
    try:
        assert stalled.wait(600) and proxy.wait_for_held_bytes()
        # The answer so far, the check held, and the window drafted past it: then it waits.
        released = sum(len(e.token_ids) for e in seen if isinstance(e, TokensAppended))
        prompt = next(e.prompt_tokens for e in seen if isinstance(e, AnswerStarted))
        expected = prompt + released + draft + window
        deadline = time.monotonic() + 300
        while student.evaluated_tokens - before < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert student.evaluated_tokens - before == expected
        time.sleep(1.0)  # it stays there: no token past the window
        assert student.evaluated_tokens - before == expected
    finally:
        proxy.mode = Mode.FORWARD
        worker.join(600)
        student.close()
    session, events = done[0]
    assert not any(e.failed for e in events if isinstance(e, TeacherCall))
    with Ledger(tmp_path / "ledger.db") as ledger:
        assert_ledger_matches(ledger, session, events)


def test_a_stopped_then_killed_teacher_and_its_restart(student, tmp_path):
    """SIGSTOP mid-session: calls time out and fall back; SIGKILL while stopped; a new
    teacher on the same port serves the same session's later spans."""
    ledger = Ledger(tmp_path / "ledger.db")
    first = start_local_teacher(model=smollm2_path())
    port = first.address.rsplit(":", 1)[1]
    replacement = []

    def inject(event) -> None:
        if not isinstance(event, TeacherCall):
            return
        if event.outcome is CallOutcome.ANSWERED and first.running and not replacement:
            os.kill(first.pid, signal.SIGSTOP)
        elif event.outcome is CallOutcome.UNAVAILABLE and not replacement:
            os.kill(first.pid, signal.SIGKILL)
            first.close()
            replacement.append(
                start_local_teacher(model=smollm2_path(), extra_args=["--port", port])
            )

    try:
        session, events = recorded_answer(
            student, first.address, ledger, on_event=inject, max_tokens=40
        )
    finally:
        first.close()
        for teacher in replacement:
            teacher.close()

    outcomes = [event.outcome for event in events if isinstance(event, TeacherCall)]
    assert outcomes[0] is CallOutcome.ANSWERED
    assert CallOutcome.UNAVAILABLE in outcomes
    assert outcomes[-1] is CallOutcome.ANSWERED  # served by the restarted teacher
    assert_ledger_matches(ledger, session, events)
    ledger.close()


def test_an_overloaded_teacher_is_retried_and_serves_everyone(tmp_path):
    """One slot, one pending span: concurrent sessions meet RESOURCE_EXHAUSTED, retry, and
    each session's accounting equals the teacher's."""
    # Retries spread over minutes: the other sessions' spans are slow on a busy machine.
    patient = TeacherClientSettings(
        deadline_s=120.0,
        attempts=20,
        latency_budget_s=400.0,
        backoff_initial_s=1.0,
        backoff_max_s=10.0,
        breaker_threshold=20,
    )
    replies: dict[str, list[SpanReply]] = {}
    errors: list[BaseException] = []

    def session(session_id: str, address: str) -> None:
        client = GrpcTeacherClient(address, settings=patient)
        replies[session_id] = []
        try:
            for _ in range(3):
                text = "".join(reply.text for reply in replies[session_id])
                replies[session_id].append(
                    client.generate_span(
                        SpanQuery(
                            session_id=session_id,
                            request_id=uuid.uuid4().hex,
                            max_tokens=4,
                            sampling=SamplingParams(),
                            messages=[ChatMessage("user", "Count from one to twenty.")],
                            assistant_prefix=text,
                        )
                    )
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    with start_local_teacher(model=smollm2_path(), extra_args=["--max-pending", "1"]) as teacher:
        threads = [
            threading.Thread(target=session, args=(f"busy-{index}", teacher.address))
            for index in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        channel = grpc.insecure_channel(teacher.address)
        stub = relay_pb2_grpc.TeacherServiceStub(channel)
        for session_id, answered in replies.items():
            theirs = stub.GetSessionUsage(
                relay_pb2.GetSessionUsageRequest(session_id=session_id), timeout=60
            ).usage
            assert theirs.spans == len(answered) == 3
            assert theirs.generated_tokens == sum(
                reply.teacher_usage.generated_tokens for reply in answered
            )
        channel.close()
    assert sum(reply.retries for answered in replies.values() for reply in answered) >= 1


def test_ctrl_c_cancels_the_call_in_flight(proxy, edge_home, ledger_row):
    env, ledger_path = edge_home
    edge = subprocess.Popen(
        [
            RELAY_EDGE,
            "ask",
            "Describe a sunny day at the beach.",
            "--teacher",
            proxy.address,
            "--policy",
            "always",
            "--span",
            "4",
            "--max-tokens",
            "60",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ledger_row(ledger_path, "SELECT 1 FROM answers")
        proxy.mode = Mode.STALL
        assert proxy.wait_for_held_bytes()  # a span call is in flight, going nowhere
        edge.send_signal(signal.SIGINT)
        _, stderr = edge.communicate(timeout=120)  # the deadline is 300 s: it did not wait
    finally:
        proxy.mode = Mode.FORWARD
        edge.kill()
    assert edge.returncode == 0, stderr
    assert "Traceback" not in stderr
    with Ledger(ledger_path) as ledger:
        [record] = ledger.sessions()
        assert ledger.answer_statuses(record.session_id) == [("complete", "cancelled")]
        calls = ledger.teacher_calls(record.session_id)
    assert calls[-1].outcome is CallOutcome.CANCELLED
    assert record.usage.cancelled_calls == 1
    assert record.usage.teacher_failures == 0  # not held against the teacher


def test_an_edge_killed_mid_answer_leaves_an_honest_ledger(
    smollm2_teacher, edge_home, ledger_row, teacher_usage
):
    env, ledger_path = edge_home
    edge = subprocess.Popen(
        [
            RELAY_EDGE,
            "ask",
            "Describe a sunny day at the beach.",
            "--teacher",
            smollm2_teacher,
            "--policy",
            "always",
            "--span",
            "4",
            "--max-tokens",
            "400",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ledger_row(ledger_path, "SELECT 1 FROM sessions WHERE teacher_tokens >= 12")
    finally:
        edge.kill()
        edge.wait()
    with Ledger(ledger_path) as ledger:
        [record] = ledger.sessions()
        assert record.status == "incomplete"
        assert ledger.answer_statuses(record.session_id) == [("incomplete", None)]
        calls = ledger.teacher_calls(record.session_id)
        # Every stored call has its tokens: a call and its span commit together.
        assert sum(call.received for call in calls) == record.usage.teacher_tokens
        assert all(call.request_id for call in calls)
        mine = ledger.teacher_usage(record.session_id)
    theirs = teacher_usage(record.session_id)
    # The teacher may have answered one more span, in flight when the edge died.
    assert mine.spans <= theirs.spans <= mine.spans + 1
    if theirs.spans == mine.spans:
        assert theirs.generated_tokens == mine.generated_tokens
