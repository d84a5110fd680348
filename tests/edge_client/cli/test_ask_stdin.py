"""`relay-edge ask -`: the prompt from standard input, through the real CLI and student."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(240)

RELAY_EDGE = str(Path(sys.executable).with_name("relay-edge"))
QUESTION = "Tom has 3 apples and buys 5 more. How many apples does he have now?"


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text("")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    return clean | {"RELAY_LEDGER_PATH": str(tmp_path / "ledger.db"), "RELAY_CONFIG": str(config)}


def ask(env, prompt_args, stdin: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [RELAY_EDGE, "ask", *prompt_args, "--json", "--teacher-free", "--max-tokens", "12"]
    return subprocess.run(
        [*command, *extra], env=env, input=stdin, capture_output=True, text=True, timeout=200
    )


def test_a_prompt_from_stdin_answers_as_the_argument_does(env):
    piped = ask(env, ["-"], QUESTION + "\n")
    given = ask(env, [QUESTION + "\n"], "")
    assert piped.returncode == 0, piped.stderr
    assert given.returncode == 0, given.stderr
    piped_answer, given_answer = json.loads(piped.stdout), json.loads(given.stdout)
    assert piped_answer["text"] and piped_answer["text"] == given_answer["text"]
    assert piped_answer["usage"]["prompt_tokens"] == given_answer["usage"]["prompt_tokens"]


def test_empty_stdin_is_one_clear_line(env):
    done = ask(env, ["-"], "  \n")
    assert done.returncode == 2
    assert "standard input held no prompt" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_prompt_the_context_cannot_hold_is_an_error(env):
    long_prompt = "Count the apples in this long list: " + "apple, " * 400
    done = subprocess.run(
        [RELAY_EDGE, "ask", "-", "--teacher-free", "--max-tokens", "4"],
        env=env | {"RELAY_N_CTX": "256"},
        input=long_prompt,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert done.returncode == 1
    assert "the student's context holds 256" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
