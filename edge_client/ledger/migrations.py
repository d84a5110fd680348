"""The ledger's schema, as named, numbered migrations applied once each.

Each migration is a function decorated with `@migration`; its name is recorded in the
`_migrations` table when it has run, so opening a ledger of any age brings it up to date.
Never edit a migration that has shipped: add the next one.

    migrate(db)    # applies what is missing, in order, each in its own transaction
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone

Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: list[Migration] = []


def migration(function: Migration) -> Migration:
    MIGRATIONS.append(function)
    return function


def migrate(db: sqlite3.Connection) -> None:
    """Applies the migrations not yet recorded. `db` must be in autocommit mode
    (isolation_level=None): each migration commits with its record, or not at all."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    for function in MIGRATIONS:
        # Checked under the write lock: two processes opening a new ledger at once must not
        # both apply the same migration.
        db.execute("BEGIN IMMEDIATE")
        try:
            if not _applied(db, function.__name__):
                function(db)
                db.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                    (function.__name__, datetime.now(timezone.utc).isoformat()),
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


def _applied(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone() is not None


@migration
def m001_sessions_and_teacher_calls(db: sqlite3.Connection) -> None:
    # One row per session: its description and its running `Usage` counters (column names
    # are Usage's field names). Updated in place as each event arrives.
    db.execute(
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            started_at TEXT NOT NULL,
            student_model TEXT NOT NULL,
            teacher TEXT NOT NULL,
            policy TEXT NOT NULL,
            mode TEXT,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            student_tokens INTEGER NOT NULL DEFAULT 0,
            teacher_tokens INTEGER NOT NULL DEFAULT 0,
            command_tokens INTEGER NOT NULL DEFAULT 0,
            teacher_calls INTEGER NOT NULL DEFAULT 0,
            teacher_failures INTEGER NOT NULL DEFAULT 0,
            retries INTEGER NOT NULL DEFAULT 0,
            fallback_spans INTEGER NOT NULL DEFAULT 0,
            fallback_tokens INTEGER NOT NULL DEFAULT 0,
            teacher_latency_ms REAL NOT NULL DEFAULT 0,
            wire_bytes INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    # One row per teacher call (all its retries), failed ones included: the audit trail
    # behind the session's counters.
    db.execute(
        """
        CREATE TABLE teacher_calls (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions (id),
            recorded_at TEXT NOT NULL,
            requested INTEGER NOT NULL,
            received INTEGER NOT NULL,
            retries INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            wire_bytes INTEGER NOT NULL,
            error TEXT
        )
        """
    )
    db.execute("CREATE INDEX teacher_calls_session ON teacher_calls (session_id)")


@migration
def m002_call_reconciliation_and_answer_status(db: sqlite3.Connection) -> None:
    # Each call's idempotency key and what the teacher itself counted for it, so the ledger can
    # be reconciled with the teacher's GetSessionUsage; and what became of the call (only
    # calls that went out are teacher calls).
    for column in (
        "outcome TEXT NOT NULL DEFAULT 'answered'",
        "request_id TEXT",
        "teacher_prompt_tokens INTEGER NOT NULL DEFAULT 0",
        "teacher_cached_prompt_tokens INTEGER NOT NULL DEFAULT 0",
        "teacher_generated_tokens INTEGER NOT NULL DEFAULT 0",
        "teacher_replayed INTEGER NOT NULL DEFAULT 0",
    ):
        db.execute(f"ALTER TABLE teacher_calls ADD COLUMN {column}")
    # Earlier ledgers counted every failed call as the teacher being unavailable.
    db.execute("UPDATE teacher_calls SET outcome = 'unavailable' WHERE error IS NOT NULL")
    db.execute("CREATE INDEX teacher_calls_request ON teacher_calls (request_id)")
    # New Usage counters; and whether every answer of the session finished ('complete') or
    # one was cut short by the edge dying ('incomplete').
    for column in (
        "calls_not_sent INTEGER NOT NULL DEFAULT 0",
        "cancelled_calls INTEGER NOT NULL DEFAULT 0",
        "status TEXT NOT NULL DEFAULT 'complete'",
    ):
        db.execute(f"ALTER TABLE sessions ADD COLUMN {column}")
    # One row per answer: 'incomplete' from its first event until its last.
    db.execute(
        """
        CREATE TABLE answers (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions (id),
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,
            finish_reason TEXT
        )
        """
    )
    db.execute("CREATE INDEX answers_session ON answers (session_id)")


@migration
def m003_answer_usage(db: sqlite3.Connection) -> None:
    # Each answer's own counts (the same Usage counters as the session's), so an answer that
    # was cancelled (finish_reason 'cancelled': the user stopped it, or an HTTP client went
    # away) keeps the tokens it had. Answers recorded before stay at zero.
    for column in (
        "prompt_tokens INTEGER NOT NULL DEFAULT 0",
        "student_tokens INTEGER NOT NULL DEFAULT 0",
        "teacher_tokens INTEGER NOT NULL DEFAULT 0",
        "command_tokens INTEGER NOT NULL DEFAULT 0",
        "teacher_calls INTEGER NOT NULL DEFAULT 0",
        "teacher_failures INTEGER NOT NULL DEFAULT 0",
        "retries INTEGER NOT NULL DEFAULT 0",
        "fallback_spans INTEGER NOT NULL DEFAULT 0",
        "fallback_tokens INTEGER NOT NULL DEFAULT 0",
        "teacher_latency_ms REAL NOT NULL DEFAULT 0",
        "wire_bytes INTEGER NOT NULL DEFAULT 0",
        "calls_not_sent INTEGER NOT NULL DEFAULT 0",
        "cancelled_calls INTEGER NOT NULL DEFAULT 0",
    ):
        db.execute(f"ALTER TABLE answers ADD COLUMN {column}")


@migration
def m004_draft_checks(db: sqlite3.Connection) -> None:
    # The verify policy's checks: the student tokens each call sent as a draft, how many the
    # teacher accepted, and the teacher's own count of what it read; the new Usage counters
    # (draft tokens read, and rejected) of sessions and answers.
    for column in (
        "draft_tokens INTEGER NOT NULL DEFAULT 0",
        "accepted_draft_tokens INTEGER NOT NULL DEFAULT 0",
        "teacher_draft_tokens INTEGER NOT NULL DEFAULT 0",
    ):
        db.execute(f"ALTER TABLE teacher_calls ADD COLUMN {column}")
    for table in ("sessions", "answers"):
        for column in (
            "draft_tokens INTEGER NOT NULL DEFAULT 0",
            "rejected_draft_tokens INTEGER NOT NULL DEFAULT 0",
        ):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
