"""A teacher that dies in the middle of an answer: the answer completes on the student, and
the ledger, written as the answer goes, holds the same accounting as the session."""

from __future__ import annotations

import pytest

from edge_client.ledger.store import Ledger
from edge_client.policies.baselines import AlwaysPolicy
from edge_client.relay.events import AnswerFinished, Source, TeacherCall, TokensAppended
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.teacher.grpc_client import GrpcTeacherClient
from edge_client.teacher.local import start_local_teacher
from relay_common.chat import ChatMessage
from relay_common.embedded import smollm2_path


@pytest.mark.timeout(600)
def test_teacher_killed_mid_answer(student, tmp_path, patient_settings):
    ledger = Ledger(tmp_path / "ledger.db")
    teacher = start_local_teacher(model=smollm2_path())
    # Patient for the first span; once the teacher is gone, calls fail at once (refused).
    client = GrpcTeacherClient(teacher.address, settings=patient_settings)
    session = RelaySession(
        student=student,
        teacher=client,
        policy=AlwaysPolicy(span=3),
        options=RelayOptions(max_tokens=30),
    )
    ledger.start_session(
        session.session_id, student_model=student.model_name, teacher="test", policy="always"
    )
    events = []
    try:
        for event in session.answer([ChatMessage("user", "Describe a sunny day at the beach.")]):
            ledger.record(session.session_id, event)
            events.append(event)
            if isinstance(event, TeacherCall) and not event.failed and teacher.running:
                teacher.close()  # the teacher dies after its first span
    finally:
        client.close()
        teacher.close()

    calls = [e for e in events if isinstance(e, TeacherCall)]
    sources = [e.source for e in events if isinstance(e, TokensAppended)]
    assert not calls[0].failed and calls[-1].failed
    assert Source.TEACHER in sources and Source.FALLBACK in sources
    assert isinstance(events[-1], AnswerFinished)
    usage = session.usage
    # Every span the teacher did not write fell back: failed calls, and calls not sent once the
    # breaker opened.
    assert usage.teacher_failures >= 1
    assert usage.fallback_spans == usage.teacher_failures + usage.calls_not_sent
    assert usage.generated_tokens == sum(
        len(e.token_ids) for e in events if isinstance(e, TokensAppended)
    )

    recorded = ledger.session(session.session_id)
    ledger.close()
    assert recorded is not None
    assert recorded.usage == usage
