"""`relay-edge chat` driven in a real pseudo-terminal, as a person uses it."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pexpect
import pytest

from edge_client.ledger.store import Ledger

pytestmark = pytest.mark.timeout(300)

RELAY_EDGE = str(Path(sys.executable).with_name("relay-edge"))
PROMPT = "you>"
ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def chat_env(tmp_path) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env |= {
        "RELAY_LEDGER_PATH": str(tmp_path / "ledger.db"),
        "RELAY_CONFIG": str(config),
        "TERM": "xterm-256color",
        "COLUMNS": "160",
    }
    return env


def spawn_chat(env: dict[str, str], *args: str) -> pexpect.spawn:
    chat = pexpect.spawn(
        RELAY_EDGE, ["chat", *args], env=env, encoding="utf-8", timeout=120, dimensions=(40, 160)
    )
    chat.expect(PROMPT)
    return chat


def ask(chat: pexpect.spawn, text: str, *, styled: bool = False) -> str:
    """Sends one message; returns what was printed up to the next prompt (styles removed
    unless `styled`)."""
    chat.sendline(text)
    chat.expect(PROMPT)
    return chat.before if styled else ANSI_STYLE.sub("", chat.before)


def test_chat_relays_marks_spans_and_obeys_commands(chat_env, smollm2_teacher):
    chat = spawn_chat(
        chat_env,
        "--teacher",
        smollm2_teacher,
        "--policy",
        "confidence",
        "--threshold",
        "0.9",
        "--max-tokens",
        "24",
    )
    try:
        shown = ask(chat, "What is 2+3?", styled=True)
        assert "\x1b[1;4;36m" in shown  # a teacher span, bold cyan underlined
        shown = ANSI_STYLE.sub("", shown)
        assert "teacher online" in shown
        assert "calls 0" not in shown

        shown = ask(chat, "/stats")
        assert "teacher_tokens" in shown and "offload_ratio" in shown

        ask(chat, "/offline")
        shown = ask(chat, "And what is 4+4?")
        assert "teacher offline" in shown

        assert "back on" in ask(chat, "/online")

        # Ctrl-C stops the answer, not the program.
        chat.sendline("Write a very long story about a dragon who learns to count.")
        chat.expect("relay>")
        chat.sendintr()
        chat.expect(PROMPT)
        assert "(stopped)" in ANSI_STYLE.sub("", chat.before)
        assert "new conversation" in ask(chat, "/reset")

        chat.sendline("/quit")
        chat.expect(pexpect.EOF)
    finally:
        chat.close()
    assert chat.exitstatus == 0


def test_chat_with_no_flags_relays_to_the_embedded_local_teacher(chat_env):
    chat_env["RELAY_MAX_TOKENS"] = "32"  # keep the answer short; the teacher is the default
    # Every call must succeed (no failures below): deadlines for a busy 2-core machine, as
    # patient_settings gives the tests that build their settings.
    chat_env["RELAY_TEACHER_CLIENT__DEADLINE_S"] = "120"
    chat_env["RELAY_TEACHER_CLIENT__LATENCY_BUDGET_S"] = "300"
    chat = spawn_chat(chat_env)
    try:
        banner = ANSI_STYLE.sub("", chat.before)
        assert "teacher local (127.0.0.1:" in banner
        assert "(text mode)" in banner  # Gemma's tokenizer is not the student's
        shown = ask(
            chat, "Natalia sold 48 clips in April and half as many in May. How many in all?"
        )
        assert "teacher online" in shown or "teacher degraded" in shown
        chat.sendline("/quit")
        chat.expect(pexpect.EOF)
    finally:
        chat.close()
    assert chat.exitstatus == 0
    ledger = Ledger(Path(chat_env["RELAY_LEDGER_PATH"]))
    try:
        [session] = ledger.sessions()
    finally:
        ledger.close()
    assert session.teacher.startswith("local")
    assert session.usage.teacher_calls >= 1
    assert session.usage.teacher_failures == 0
    assert session.usage.teacher_tokens >= 1
