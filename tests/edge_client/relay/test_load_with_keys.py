"""Several edge sessions at once against one teacher with two API keys: no errors, and each
key's teacher-side totals equal the sum of its sessions' ledgers (the benchmark, smaller)."""

from __future__ import annotations

from benchmarks.load_with_keys import run_load


def test_concurrent_sessions_with_keys_have_no_errors_and_reconcile() -> None:
    report = run_load(sessions=6, keys=2, max_tokens=8, span=4, slots=2)

    assert (report.sessions_completed, report.errors) == (6, 0)
    assert report.sessions_unreconciled == 0
    assert [key.sessions for key in report.per_key] == [3, 3]
    for key in report.per_key:
        assert key.teacher_generated_tokens == key.ledger_teacher_tokens > 0
        assert key.teacher_spans == key.ledger_teacher_calls > 0
    assert report.reconciled
