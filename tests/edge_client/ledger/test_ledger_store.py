"""Ledger on a temporary SQLite file: counting, durability, bad paths."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge_client.errors import LedgerError
from edge_client.ledger.migrations import MIGRATIONS
from edge_client.ledger.store import Ledger, RecordedTeacherUsage, default_ledger_path
from edge_client.relay.events import (
    AnswerEndReason,
    AnswerFinished,
    AnswerStarted,
    CallOutcome,
    Source,
    TeacherCall,
    TokensAppended,
)
from edge_client.relay.usage import Usage
from edge_client.teacher.client import TeacherUsage

ANSWER = [
    AnswerStarted(prompt_tokens=20),
    TokensAppended(Source.STUDENT, (1, 2, 3), "abc"),
    TokensAppended(Source.STUDENT, (4, 5), "", command_tokens=2),
    TeacherCall(requested=4, received=4, retries=1, latency_ms=12.5, wire_bytes=300),
    TokensAppended(Source.TEACHER, (6, 7, 8, 9), "defg"),
    TeacherCall(
        requested=4,
        received=0,
        retries=2,
        latency_ms=40.0,
        wire_bytes=240,
        error="UNAVAILABLE",
        outcome=CallOutcome.UNAVAILABLE,
    ),
    TokensAppended(Source.FALLBACK, (10, 11, 12, 13), "hijk"),
    AnswerFinished(AnswerEndReason.END_OF_ANSWER),
]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


def start(ledger: Ledger, session_id: str = "s1") -> None:
    ledger.start_session(
        session_id, student_model="smollm2", teacher="127.0.0.1:5", policy="confidence"
    )


def test_events_add_up_to_the_session_usage(path: Path) -> None:
    with Ledger(path) as ledger:
        start(ledger)
        for event in ANSWER:
            ledger.record("s1", event)

        record = ledger.session("s1")

    assert record is not None
    assert record.usage == Usage(
        prompt_tokens=20,
        student_tokens=9,  # 3 + 2 (command) + 4 (fallback)
        teacher_tokens=4,
        command_tokens=2,
        teacher_calls=2,
        teacher_failures=1,
        retries=3,
        fallback_spans=1,
        fallback_tokens=4,
        teacher_latency_ms=52.5,
        wire_bytes=540,
    )
    assert record.usage.offload_ratio == pytest.approx(4 / 13)
    assert (record.student_model, record.teacher, record.policy) == (
        "smollm2",
        "127.0.0.1:5",
        "confidence",
    )


def test_every_teacher_call_has_its_row(path: Path) -> None:
    with Ledger(path) as ledger:
        start(ledger)
        for event in ANSWER:
            ledger.record("s1", event)

        calls = ledger.teacher_calls("s1")

    assert calls == [event for event in ANSWER if isinstance(event, TeacherCall)]


def test_data_survives_reopening(path: Path) -> None:
    with Ledger(path) as ledger:
        start(ledger)
        for event in ANSWER[:4]:
            ledger.record("s1", event)
    # A new process, say, resumes the session after the first one ended mid-answer.
    with Ledger(path) as ledger:
        start(ledger)  # already there: kept, not reset
        for event in ANSWER[4:]:
            ledger.record("s1", event)
    with Ledger(path) as ledger:
        record = ledger.session("s1")
        calls = ledger.teacher_calls("s1")

    assert record is not None
    assert record.usage.teacher_calls == 2
    assert record.usage.generated_tokens == 13
    assert len(calls) == 2


def test_each_event_is_committed_when_recorded(path: Path) -> None:
    with Ledger(path) as ledger:
        start(ledger)
        ledger.record("s1", ANSWER[1])
        # Read through another connection while this one is still open.
        other = sqlite3.connect(path)
        try:
            (student_tokens,) = other.execute(
                "SELECT student_tokens FROM sessions WHERE id = 's1'"
            ).fetchone()
        finally:
            other.close()

    assert student_tokens == 3


def test_sessions_newest_first_and_totals(path: Path) -> None:
    with Ledger(path) as ledger:
        for session_id in ("old", "mid", "new"):
            start(ledger, session_id)
            ledger.record(session_id, TokensAppended(Source.TEACHER, (1, 2), "xy"))
        ledger.record("new", TokensAppended(Source.STUDENT, (3,), "z"))

        sessions = ledger.sessions()
        totals = ledger.totals()

    assert [s.session_id for s in sessions] == ["new", "mid", "old"]
    assert totals.teacher_tokens == 6
    assert totals.student_tokens == 1


def test_unknown_session_is_refused(path: Path) -> None:
    with Ledger(path) as ledger:
        with pytest.raises(LedgerError, match="start_session"):
            ledger.record("nobody", ANSWER[1])
        assert ledger.session("nobody") is None


def test_migrations_are_applied_once_and_recorded(path: Path) -> None:
    Ledger(path).close()
    Ledger(path).close()  # opening again applies nothing twice

    db = sqlite3.connect(path)
    try:
        names = [name for (name,) in db.execute("SELECT name FROM _migrations")]
        columns = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
    finally:
        db.close()
    assert names == [function.__name__ for function in MIGRATIONS]
    assert names[0].startswith("m001_")
    # The counters are stored under Usage's field names; a new counter needs a migration.
    assert set(Usage.__dataclass_fields__) <= columns


def test_directory_as_path_is_a_ledger_error(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match=str(tmp_path)) as raised:
        Ledger(tmp_path)
    assert "RELAY_LEDGER_PATH" in str(raised.value)
    assert isinstance(raised.value.__cause__, sqlite3.Error)


def test_path_under_a_file_is_a_ledger_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")

    with pytest.raises(LedgerError, match="cannot open the ledger"):
        Ledger(blocker / "ledger.db")


def test_file_that_is_not_a_database_is_a_ledger_error(path: Path) -> None:
    path.write_bytes(b"this is not sqlite" * 100)

    with pytest.raises(LedgerError, match="not a database"):
        Ledger(path)


def test_default_path_follows_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RELAY_LEDGER_PATH", str(tmp_path / "elsewhere.db"))
    assert default_ledger_path() == tmp_path / "elsewhere.db"
    monkeypatch.delenv("RELAY_LEDGER_PATH")
    assert default_ledger_path().name == "ledger.db"
    assert "relay-edge" in str(default_ledger_path())


def test_default_path_is_used_when_none_is_given(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RELAY_LEDGER_PATH", str(tmp_path / "sub" / "env.db"))
    with Ledger() as ledger:
        start(ledger)
    assert (tmp_path / "sub" / "env.db").is_file()


def answered(request_id: str, *, generated: int, replayed: bool = False) -> TeacherCall:
    return TeacherCall(
        requested=4,
        received=generated,
        retries=0,
        latency_ms=3.0,
        wire_bytes=90,
        request_id=request_id,
        teacher_usage=TeacherUsage(
            prompt_tokens=30, cached_prompt_tokens=20, generated_tokens=generated, replayed=replayed
        ),
    )


def test_calls_keep_their_request_id_and_the_teachers_own_usage(path: Path) -> None:
    calls = [
        answered("r1", generated=4),
        answered("r2", generated=2, replayed=True),
        TeacherCall(4, 0, 2, 9.0, 80, "DEADLINE_EXCEEDED", CallOutcome.UNAVAILABLE, "r3"),
        TeacherCall(4, 0, 0, 0.0, 0, "breaker open", CallOutcome.NOT_SENT),
    ]
    with Ledger(path) as ledger:
        start(ledger)
        for call in calls:
            ledger.record("s1", call)

        assert ledger.teacher_calls("s1") == calls
        # Only answered calls carry the teacher's counts: these are what GetSessionUsage sums.
        assert ledger.teacher_usage("s1") == RecordedTeacherUsage(
            spans=2, prompt_tokens=60, cached_prompt_tokens=40, generated_tokens=6
        )
        usage = ledger.session("s1").usage
    # A call the breaker held back is not a teacher call, nor a teacher failure.
    assert (usage.teacher_calls, usage.teacher_failures, usage.calls_not_sent) == (3, 1, 1)
    assert usage.fallback_spans == 2


def test_an_answer_is_incomplete_until_it_finishes(path: Path) -> None:
    with Ledger(path) as ledger:
        start(ledger)
        ledger.record("s1", AnswerStarted(prompt_tokens=5))
        ledger.record("s1", TokensAppended(Source.STUDENT, (1,), "a"))
        assert ledger.session("s1").status == "incomplete"
        ledger.record("s1", AnswerFinished(AnswerEndReason.MAX_TOKENS))
        assert ledger.session("s1").status == "complete"

        ledger.record("s1", AnswerStarted(prompt_tokens=5))  # and then the edge dies

    with Ledger(path) as reopened:
        assert reopened.session("s1").status == "incomplete"
        assert reopened.answer_statuses("s1") == [
            ("complete", "max_tokens"),
            ("incomplete", None),
        ]


def test_events_recorded_together_commit_together(path: Path) -> None:
    """A call and its span's tokens are one transaction: if the second cannot be stored,
    neither is (here its request_id is something SQLite cannot store)."""
    unstorable = answered(object(), generated=1)  # type: ignore[arg-type]
    with Ledger(path) as ledger:
        start(ledger)
        ledger.record("s1", answered("r1", generated=1), TokensAppended(Source.TEACHER, (7,), "y"))
        with pytest.raises(LedgerError):
            ledger.record("s1", answered("r2", generated=1), unstorable)
        assert [call.request_id for call in ledger.teacher_calls("s1")] == ["r1"]
        assert ledger.session("s1").usage.teacher_calls == 1


def test_a_first_version_ledger_is_migrated(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    migrate_first_only(db)
    db.execute(
        "INSERT INTO sessions (id, started_at, student_model, teacher, policy, teacher_calls, "
        "teacher_failures) VALUES ('old', '2026-01-01T00:00:00+00:00', 'm', 't', 'p', 1, 1)"
    )
    db.execute(
        "INSERT INTO teacher_calls (session_id, recorded_at, requested, received, retries, "
        "latency_ms, wire_bytes, error) VALUES ('old', 'x', 4, 0, 2, 9.0, 80, 'UNAVAILABLE')"
    )
    db.close()

    with Ledger(path) as ledger:
        record = ledger.session("old")
        [call] = ledger.teacher_calls("old")
    assert record.status == "complete" and record.usage.teacher_failures == 1
    assert call.outcome is CallOutcome.UNAVAILABLE


def migrate_first_only(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    first = MIGRATIONS[0]
    first(db)
    db.execute("INSERT INTO _migrations VALUES (?, 'then')", (first.__name__,))


def test_draft_checks_count_what_the_teacher_read_and_what_it_rejected(path: Path) -> None:
    checked = TeacherCall(
        requested=2,
        received=2,
        retries=0,
        latency_ms=30.0,
        wire_bytes=200,
        request_id="c1",
        teacher_usage=TeacherUsage(prompt_tokens=50, generated_tokens=2, draft_tokens=8),
        draft_tokens=8,
        accepted_draft_tokens=5,
    )
    unchecked = TeacherCall(
        requested=2,
        received=0,
        retries=0,
        latency_ms=9.0,
        wire_bytes=100,
        error="UNAVAILABLE",
        outcome=CallOutcome.UNAVAILABLE,
        request_id="c2",
        draft_tokens=8,
    )
    answer = [
        AnswerStarted(prompt_tokens=50),
        TokensAppended(Source.STUDENT, (1, 2, 3, 4, 5), "abcde"),  # the accepted draft
        checked,
        TokensAppended(Source.TEACHER, (6, 7), "fg"),  # the correction
        unchecked,
        TokensAppended(Source.FALLBACK, (8, 9, 10, 11, 12, 13, 14, 15), "hijklmno"),  # stands
        AnswerFinished(AnswerEndReason.MAX_TOKENS),
    ]
    with Ledger(path) as ledger:
        start(ledger)
        for event in answer:
            ledger.record("s1", event)
        usage = ledger.session("s1").usage
        assert ledger.answers("s1")[0].usage == usage  # the answer's own counts too
        assert ledger.teacher_calls("s1") == [checked, unchecked]
        assert ledger.teacher_usage("s1").draft_tokens == 8  # what GetSessionUsage reports

    # Only the answered check's draft was read; its 3 rejected tokens left the answer.
    assert (usage.draft_tokens, usage.rejected_draft_tokens) == (8, 3)
    assert (usage.student_tokens, usage.teacher_tokens, usage.fallback_tokens) == (13, 2, 8)
    assert usage.fallback_spans == 1
    assert usage.offload_ratio == pytest.approx(2 / 15)
    assert usage.read_ratio == pytest.approx(8 / 15)


def test_each_answer_keeps_its_own_counts_a_cancelled_one_too(path: Path) -> None:
    with Ledger(path) as ledger:
        start(ledger)
        for event in ANSWER:
            ledger.record("s1", event)
        # The second answer is stopped during a teacher call: it keeps the tokens it had.
        ledger.record("s1", AnswerStarted(prompt_tokens=7))
        ledger.record("s1", TokensAppended(Source.STUDENT, (1, 2), "ab"))
        cancelled = TeacherCall(
            requested=8,
            received=0,
            retries=0,
            latency_ms=3.0,
            wire_bytes=90,
            error="the call was cancelled",
            outcome=CallOutcome.CANCELLED,
        )
        ledger.record("s1", cancelled)
        ledger.record("s1", AnswerFinished(AnswerEndReason.CANCELLED))
        answers = ledger.answers("s1")
        session = ledger.session("s1")

    assert [(a.status, a.finish_reason) for a in answers] == [
        ("complete", "end_of_answer"),
        ("complete", "cancelled"),
    ]
    first, second = (answer.usage for answer in answers)
    assert (first.prompt_tokens, first.student_tokens, first.teacher_tokens) == (20, 9, 4)
    assert (second.prompt_tokens, second.student_tokens, second.cancelled_calls) == (7, 2, 1)
    assert second.teacher_calls == 1 and second.fallback_spans == 0
    assert all(answer.finished_at is not None for answer in answers)
    total = Usage()
    for answer in (first, second):
        total.merge(answer)
    assert total == session.usage


def test_a_ledger_from_before_answer_counts_opens_with_them_at_zero(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_client.ledger import migrations

    older = [m for m in MIGRATIONS if m.__name__ != "m003_answer_usage"]
    monkeypatch.setattr(migrations, "MIGRATIONS", older)
    db = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(db)
    db.execute(
        "INSERT INTO sessions (id, started_at, student_model, teacher, policy) "
        "VALUES ('s1', '2026-01-01T00:00:00+00:00', 'smollm2', 'none', 'never')"
    )
    db.execute(
        "INSERT INTO answers (session_id, started_at, status, finish_reason) "
        "VALUES ('s1', '2026-01-01T00:00:00+00:00', 'complete', 'cancelled')"
    )
    db.close()
    monkeypatch.undo()

    with Ledger(path) as ledger:
        [answer] = ledger.answers("s1")
    assert (answer.status, answer.finish_reason, answer.usage) == ("complete", "cancelled", Usage())
