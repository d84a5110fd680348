"""`relay-edge usage` rendering over a real ledger file."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from edge_client.cli.usage_view import print_usage
from edge_client.errors import ConfigError
from edge_client.ledger.store import Ledger
from edge_client.relay.events import AnswerStarted, Source, TeacherCall, TokensAppended
from edge_client.relay.usage import Usage


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path / "ledger.db")
    for session_id, teacher_tokens in (("first-1a", 2), ("first-2b", 6)):
        ledger.start_session(
            session_id, student_model="smollm2", teacher="local", policy="confidence"
        )
        ledger.record(session_id, AnswerStarted(prompt_tokens=10))
        ledger.record(session_id, TokensAppended(Source.STUDENT, (1, 2, 3, 4), "abcd"))
        ledger.record(session_id, TeacherCall(4, teacher_tokens, 1, 5.0, 100))
        ledger.record(session_id, TokensAppended(Source.TEACHER, tuple(range(teacher_tokens)), "x"))
    yield ledger
    ledger.close()


def render(ledger: Ledger, **options: object) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    print_usage(ledger, console=console, **options)
    return console.file.getvalue()


def test_json_usage_has_the_keys_of_usage_as_dict(ledger: Ledger) -> None:
    document = json.loads(render(ledger, session_id=None, as_json=True))

    assert [s["session_id"] for s in document["sessions"]] == ["first-2b", "first-1a"]
    for session in document["sessions"]:
        assert session.keys() >= {"started_at", "student_model", "teacher", "policy"}
        assert session["usage"].keys() == Usage().as_dict().keys()
    assert document["totals"].keys() == Usage().as_dict().keys()
    assert document["totals"]["teacher_tokens"] == 8
    assert document["totals"]["student_tokens"] == 8
    assert document["totals"]["offload_ratio"] == 0.5
    assert document["sessions"][0]["usage"]["offload_ratio"] == 0.6


@pytest.mark.parametrize("given", ["first-1a", "first-1"])
def test_json_for_one_session_by_id_or_unique_prefix(ledger: Ledger, given: str) -> None:
    document = json.loads(render(ledger, session_id=given, as_json=True))

    [session] = document["sessions"]
    assert session["session_id"] == "first-1a"
    # One session's answers are listed, each with its own counts.
    [answer] = session["answers"]
    assert answer["status"] == "incomplete" and answer["finish_reason"] is None
    assert answer["usage"] == session["usage"]
    assert document["totals"] == session["usage"]


def test_table_has_a_row_per_session_and_totals(ledger: Ledger) -> None:
    text = render(ledger, session_id=None, as_json=False)

    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    # Ids are cut to their first 8 characters.
    assert "33.33%" in rows["first-1a"]  # 2 of 6 tokens
    assert "60.00%" in rows["first-2b"]
    assert "50.00%" in rows["total"]
    assert rows["total"].split()[1:4] == ["8", "8", "0"]  # student, teacher, command tokens


@pytest.mark.parametrize(
    ("given", "message"), [("nope", "no session 'nope'"), ("first", "2 sessions start with")]
)
def test_unknown_or_ambiguous_session_is_a_config_error(
    ledger: Ledger, given: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        render(ledger, session_id=given, as_json=False)


def test_empty_ledger_says_so(tmp_path: Path) -> None:
    with Ledger(tmp_path / "empty.db") as empty:
        text = render(empty, session_id=None, as_json=False)
        document = json.loads(render(empty, session_id=None, as_json=True))

    assert "no sessions yet" in text
    assert document == {"sessions": [], "totals": Usage().as_dict()}
