"""Durable per-session accounting (DESIGN §6) in one SQLite file, written as the answer goes.

    with Ledger() as ledger:                       # RELAY_LEDGER_PATH or the user data dir
        ledger.start_session(session_id, student_model="SmolLM2", teacher="local",
                             policy="confidence")
        for event in relay_events:
            ledger.record(session_id, event)       # committed before it returns
        ledger.record(session_id, call, tokens)    # a call and its span: one transaction
        ledger.session(session_id).usage           # Usage, as `Usage.add` counted it
        ledger.teacher_usage(session_id)           # what the teacher counted, to reconcile

Every event commits on its own (a teacher call with its span's tokens), so a crash loses at
most the span in flight and never stores a call without its tokens. The counting is
`Usage.add`'s, not repeated here; each teacher call (failed and unsent ones too) also gets
its own row in `teacher_calls`, with its request_id and the teacher's own usage. Each answer
has a row in `answers` with its own counts, 'incomplete' until its AnswerFinished (whose
reason it keeps: 'cancelled' for an answer stopped part-way); a session is 'incomplete' while
one of its answers is. Journal mode WAL with synchronous=NORMAL keeps a commit per
token cheap (no fsync each time) while surviving a crash of the process; a power cut may lose
the last commits.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

import platformdirs

from edge_client.errors import LedgerError
from edge_client.ledger.migrations import migrate
from edge_client.relay.events import (
    AnswerFinished,
    AnswerStarted,
    CallOutcome,
    RelayEvent,
    TeacherCall,
)
from edge_client.relay.usage import Usage
from edge_client.teacher.client import TeacherUsage
from relay_common.echo import quoted

PATH_ENV_VAR = "RELAY_LEDGER_PATH"

# The sessions table has one column per Usage counter, with the same name.
_USAGE_COLUMNS = tuple(field.name for field in fields(Usage))
_SELECT_SESSIONS = (
    "SELECT id, started_at, student_model, teacher, policy, mode, status, "
    f"{', '.join(_USAGE_COLUMNS)} FROM sessions"
)
_SET_USAGE = ", ".join(f"{name} = ?" for name in _USAGE_COLUMNS)
_UPDATE_USAGE = f"UPDATE sessions SET {_SET_USAGE} WHERE id = ?"
_UPDATE_ANSWER_USAGE = f"UPDATE answers SET {_SET_USAGE} WHERE id = ?"


def default_ledger_path() -> Path:
    """$RELAY_LEDGER_PATH, else ledger.db in the user's data directory for relay-edge."""
    override = os.environ.get(PATH_ENV_VAR)
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir("relay-edge")) / "ledger.db"


@dataclass(slots=True)
class SessionRecord:
    """One session as the ledger holds it."""

    session_id: str
    started_at: datetime  # UTC
    student_model: str
    teacher: str
    policy: str
    mode: str | None
    usage: Usage
    status: str = "complete"  # "incomplete" while an answer has not finished (or never will)


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """One answer of a session as the ledger holds it."""

    started_at: datetime  # UTC
    finished_at: datetime | None  # None while (or if) it never finished
    status: str  # "complete" once finished, "incomplete" before
    finish_reason: str | None  # an AnswerEndReason value: "cancelled" when stopped part-way
    usage: Usage


@dataclass(frozen=True, slots=True)
class RecordedTeacherUsage:
    """The teacher's own counts summed over a session's answered calls: what its
    GetSessionUsage should report (each request_id is counted once on both sides)."""

    spans: int
    prompt_tokens: int
    cached_prompt_tokens: int
    generated_tokens: int
    draft_tokens: int = 0


def total_usage(records: Sequence[SessionRecord]) -> Usage:
    total = Usage()
    for record in records:
        total.merge(record.usage)
    return total


class Ledger:
    """The ledger in the SQLite file at `path` (default: `default_ledger_path()`), created
    and migrated on open. sqlite3 and file-system errors become LedgerError naming the path.
    One connection: use a Ledger from the thread that opened it."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_ledger_path()
        with self._mapped("open"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are explicit (`_transaction`), one per event.
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
            try:
                self._db.row_factory = sqlite3.Row
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
                self._db.execute("PRAGMA foreign_keys = ON")
                migrate(self._db)
            except BaseException:
                self._db.close()
                raise

    def start_session(
        self,
        session_id: str,
        *,
        student_model: str,
        teacher: str,
        policy: str,
        mode: str | None = None,
    ) -> None:
        """Adds a session with zero counts. Starting a session the ledger already holds
        keeps its record: a resumed conversation goes on counting where it stopped."""
        with self._mapped("write to"), self._transaction():
            self._db.execute(
                "INSERT INTO sessions (id, started_at, student_model, teacher, policy, mode) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (
                    session_id,
                    datetime.now(timezone.utc).isoformat(),
                    student_model,
                    teacher,
                    policy,
                    mode,
                ),
            )

    def record(self, session_id: str, *events: RelayEvent) -> None:
        """Counts `events` into the session and its answer in progress, and commits them
        together; each TeacherCall also gets its row, AnswerStarted and AnswerFinished open
        and close the answer's row."""
        with self._mapped("write to"), self._transaction():
            record = self._session(session_id)
            if record is None:
                raise LedgerError(
                    f"session {quoted(session_id)} is not in the ledger at {self.path}; "
                    "start_session() must come first"
                )
            usage = record.usage
            answer = self._open_answer(session_id)
            for event in events:
                usage.add(event)
                if isinstance(event, AnswerStarted):
                    answer = (self._start_answer(session_id), Usage())
                if answer is not None:
                    answer[1].add(event)
                self._record_event(session_id, event)
            self._db.execute(_UPDATE_USAGE, (*_counts(usage), session_id))
            if answer is not None:
                self._db.execute(_UPDATE_ANSWER_USAGE, (*_counts(answer[1]), answer[0]))

    def _open_answer(self, session_id: str) -> tuple[int, Usage] | None:
        """The row id and counts of the session's answer in progress, if any."""
        row = self._db.execute(
            f"SELECT id, {', '.join(_USAGE_COLUMNS)} FROM answers "
            "WHERE session_id = ? AND status = 'incomplete' ORDER BY id DESC LIMIT 1",
            (session_id,),
        ).fetchone()
        return None if row is None else (row["id"], _usage_of(row))

    def _start_answer(self, session_id: str) -> int:
        cursor = self._db.execute(
            "INSERT INTO answers (session_id, started_at, status) VALUES (?, ?, 'incomplete')",
            (session_id, datetime.now(timezone.utc).isoformat()),
        )
        self._db.execute("UPDATE sessions SET status = 'incomplete' WHERE id = ?", (session_id,))
        assert cursor.lastrowid is not None  # set by every INSERT
        return cursor.lastrowid

    def _record_event(self, session_id: str, event: RelayEvent) -> None:
        now = datetime.now(timezone.utc).isoformat()
        match event:
            case TeacherCall():
                teacher = event.teacher_usage
                self._db.execute(
                    "INSERT INTO teacher_calls (session_id, recorded_at, requested, received, "
                    "retries, latency_ms, wire_bytes, error, outcome, request_id, "
                    "teacher_prompt_tokens, teacher_cached_prompt_tokens, "
                    "teacher_generated_tokens, teacher_replayed, draft_tokens, "
                    "accepted_draft_tokens, teacher_draft_tokens) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        session_id,
                        now,
                        event.requested,
                        event.received,
                        event.retries,
                        event.latency_ms,
                        event.wire_bytes,
                        event.error,
                        event.outcome.value,
                        event.request_id or None,
                        teacher.prompt_tokens,
                        teacher.cached_prompt_tokens,
                        teacher.generated_tokens,
                        teacher.replayed,
                        event.draft_tokens,
                        event.accepted_draft_tokens,
                        teacher.draft_tokens,
                    ),
                )
            case AnswerFinished(reason=reason):
                self._db.execute(
                    "UPDATE answers SET status = 'complete', finished_at = ?, finish_reason = ? "
                    "WHERE id = (SELECT max(id) FROM answers WHERE session_id = ?)",
                    (now, reason.value, session_id),
                )
                self._db.execute(
                    "UPDATE sessions SET status = CASE WHEN EXISTS (SELECT 1 FROM answers "
                    "WHERE session_id = ?1 AND status = 'incomplete') THEN 'incomplete' "
                    "ELSE 'complete' END WHERE id = ?1",
                    (session_id,),
                )

    def session(self, session_id: str) -> SessionRecord | None:
        with self._mapped("read"):
            return self._session(session_id)

    def sessions(self, *, prefix: str = "") -> list[SessionRecord]:
        """Every session whose id starts with `prefix` (all by default), newest first."""
        with self._mapped("read"):
            rows = self._db.execute(
                f"{_SELECT_SESSIONS} WHERE substr(id, 1, length(?)) = ? "
                "ORDER BY started_at DESC, rowid DESC",
                (prefix, prefix),
            )
            return [_to_record(row) for row in rows]

    def teacher_calls(self, session_id: str) -> list[TeacherCall]:
        """The session's teacher calls, oldest first."""
        with self._mapped("read"):
            rows = self._db.execute(
                "SELECT requested, received, retries, latency_ms, wire_bytes, error, outcome, "
                "request_id, teacher_prompt_tokens, teacher_cached_prompt_tokens, "
                "teacher_generated_tokens, teacher_replayed, draft_tokens, "
                "accepted_draft_tokens, teacher_draft_tokens "
                "FROM teacher_calls WHERE session_id = ? ORDER BY id",
                (session_id,),
            )
            return [_to_call(row) for row in rows]

    def teacher_usage(self, session_id: str) -> RecordedTeacherUsage:
        """What the teacher reported over the session's answered calls, summed."""
        with self._mapped("read"):
            row = self._db.execute(
                "SELECT count(*), coalesce(sum(teacher_prompt_tokens), 0), "
                "coalesce(sum(teacher_cached_prompt_tokens), 0), "
                "coalesce(sum(teacher_generated_tokens), 0), "
                "coalesce(sum(teacher_draft_tokens), 0) "
                "FROM teacher_calls WHERE session_id = ? AND outcome = ?",
                (session_id, CallOutcome.ANSWERED.value),
            ).fetchone()
            return RecordedTeacherUsage(*row)

    def answers(self, session_id: str) -> list[AnswerRecord]:
        """The session's answers, oldest first, each with its own counts."""
        with self._mapped("read"):
            rows = self._db.execute(
                "SELECT started_at, finished_at, status, finish_reason, "
                f"{', '.join(_USAGE_COLUMNS)} FROM answers WHERE session_id = ? ORDER BY id",
                (session_id,),
            )
            return [
                AnswerRecord(
                    started_at=datetime.fromisoformat(row["started_at"]),
                    finished_at=(
                        datetime.fromisoformat(row["finished_at"]) if row["finished_at"] else None
                    ),
                    status=row["status"],
                    finish_reason=row["finish_reason"],
                    usage=_usage_of(row),
                )
                for row in rows
            ]

    def answer_statuses(self, session_id: str) -> list[tuple[str, str | None]]:
        """(status, finish reason) of each of the session's answers, oldest first."""
        with self._mapped("read"):
            rows = self._db.execute(
                "SELECT status, finish_reason FROM answers WHERE session_id = ? ORDER BY id",
                (session_id,),
            )
            return [(row["status"], row["finish_reason"]) for row in rows]

    def totals(self) -> Usage:
        """The sum over every session."""
        return total_usage(self.sessions())

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _session(self, session_id: str) -> SessionRecord | None:
        row = self._db.execute(f"{_SELECT_SESSIONS} WHERE id = ?", (session_id,)).fetchone()
        return None if row is None else _to_record(row)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front, so the read-modify-write of the counters
        # cannot interleave with another process writing the same session.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # a failed COMMIT can leave it open
                self._db.execute("ROLLBACK")
            raise

    @contextmanager
    def _mapped(self, action: str) -> Iterator[None]:
        """The one place where sqlite3 and file-system errors become LedgerError."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(
                f"cannot {action} the ledger at {self.path}: {exc}. Check that it is a "
                f"writable file in an existing directory, or set {PATH_ENV_VAR} to another path"
            ) from exc


def _to_record(row: sqlite3.Row) -> SessionRecord:
    return SessionRecord(
        session_id=row["id"],
        started_at=datetime.fromisoformat(row["started_at"]),
        student_model=row["student_model"],
        teacher=row["teacher"],
        policy=row["policy"],
        mode=row["mode"],
        usage=_usage_of(row),
        status=row["status"],
    )


def _usage_of(row: sqlite3.Row) -> Usage:
    return Usage(**{name: row[name] for name in _USAGE_COLUMNS})


def _counts(usage: Usage) -> tuple[int | float, ...]:
    return tuple(getattr(usage, name) for name in _USAGE_COLUMNS)


def _to_call(row: sqlite3.Row) -> TeacherCall:
    return TeacherCall(
        requested=row["requested"],
        received=row["received"],
        retries=row["retries"],
        latency_ms=row["latency_ms"],
        wire_bytes=row["wire_bytes"],
        error=row["error"],
        outcome=CallOutcome(row["outcome"]),
        request_id=row["request_id"] or "",
        teacher_usage=TeacherUsage(
            prompt_tokens=row["teacher_prompt_tokens"],
            cached_prompt_tokens=row["teacher_cached_prompt_tokens"],
            generated_tokens=row["teacher_generated_tokens"],
            replayed=bool(row["teacher_replayed"]),
            draft_tokens=row["teacher_draft_tokens"],
        ),
        draft_tokens=row["draft_tokens"],
        accepted_draft_tokens=row["accepted_draft_tokens"],
    )
