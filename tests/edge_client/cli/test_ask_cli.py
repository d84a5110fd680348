"""`relay-edge ask` and `relay-edge usage` as a user runs them: real processes, a real teacher
on loopback, a real ledger file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_client.teacher.local import start_local_teacher
from relay_common.embedded import smollm2_path

pytestmark = pytest.mark.timeout(240)

RELAY_EDGE = str(Path(sys.executable).with_name("relay-edge"))
QUESTION = "Tom has 3 apples and buys 5 more. How many apples does he have now?"


@pytest.fixture(scope="module")
def edge_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("edge-home")
    config = home / "config.toml"
    config.write_text("")  # hermetic: no user config file applies
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env |= {"RELAY_LEDGER_PATH": str(home / "ledger.db"), "RELAY_CONFIG": str(config)}
    # Deadlines sized for a busy shared 2-core machine: a failed call would fall back.
    env |= {
        "RELAY_TEACHER_CLIENT__DEADLINE_S": "120",
        "RELAY_TEACHER_CLIENT__LATENCY_BUDGET_S": "300",
    }
    return env


def relay_edge(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RELAY_EDGE, *args], env=env, capture_output=True, text=True, timeout=200, check=False
    )


def ask_json(env: dict[str, str], *args: str) -> dict:
    done = relay_edge(
        env, "ask", QUESTION, "--json", "--temperature", "0", "--max-tokens", "40", *args
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_consistent(result: dict) -> None:
    usage = result["usage"]
    spans = result["spans"]
    assert result["text"] == "".join(span["text"] for span in spans)
    by_source = {
        source: sum(s["tokens"] for s in spans if s["source"] == source)
        for source in ("student", "teacher", "fallback")
    }
    assert usage["teacher_tokens"] == by_source["teacher"]
    assert usage["student_tokens"] == by_source["student"] + by_source["fallback"]
    assert usage["fallback_tokens"] == by_source["fallback"]
    generated = usage["student_tokens"] + usage["teacher_tokens"]
    assert usage["offload_ratio"] == pytest.approx(usage["teacher_tokens"] / generated, abs=1e-6)


def test_ask_relays_equals_teacher_free_and_lands_in_the_ledger(edge_env, smollm2_teacher):
    # Exact mode on the student (the teacher runs --exact too): relaying changes nothing.
    relayed = ask_json(
        edge_env,
        "--exact",
        "--teacher",
        smollm2_teacher,
        "--policy",
        "confidence",
        "--threshold",
        "0.6",
    )
    assert_consistent(relayed)
    usage = relayed["usage"]
    assert usage["teacher_calls"] >= 1
    assert usage["teacher_tokens"] >= 1
    assert usage["student_tokens"] >= 1
    assert usage["teacher_failures"] == 0
    assert any(span["source"] == "teacher" for span in relayed["spans"])

    alone = ask_json(edge_env, "--exact", "--teacher-free")
    assert alone["usage"]["teacher_calls"] == 0
    # The teacher serves the student's own GGUF: greedy relaying changes nothing.
    assert relayed["text"] == alone["text"]

    listed = relay_edge(edge_env, "usage", "--json")
    assert listed.returncode == 0, listed.stderr
    sessions = {s["session_id"]: s for s in json.loads(listed.stdout)["sessions"]}
    for result in (relayed, alone):
        assert sessions[result["session_id"]]["usage"] == result["usage"]
    assert sessions[relayed["session_id"]]["mode"] == "token"  # same tokenizer: token ids
    assert sessions[alone["session_id"]]["mode"] == "teacher-free"


def test_ask_with_verify_counts_the_tokens_the_teacher_read(edge_env, smollm2_teacher):
    verified = ask_json(
        edge_env,
        "--exact",
        "--teacher",
        smollm2_teacher,
        "--policy",
        "verify",
        "--accept-prob",
        "0.1",
        "--draft",
        "8",
        "--span",
        "2",
    )
    assert_consistent(verified)
    usage = verified["usage"]
    assert usage["teacher_calls"] >= 2 and usage["teacher_failures"] == 0
    assert usage["draft_tokens"] >= usage["student_tokens"] >= 1  # each token was checked
    generated = usage["student_tokens"] + usage["teacher_tokens"]
    assert usage["read_ratio"] == pytest.approx(usage["draft_tokens"] / generated, abs=1e-6)

    listed = relay_edge(edge_env, "usage", "--session", verified["session_id"], "--json")
    assert listed.returncode == 0, listed.stderr
    [session] = json.loads(listed.stdout)["sessions"]
    assert session["usage"] == usage and session["policy"] == "verify"
    table = relay_edge(edge_env, "usage", "--session", verified["session_id"])
    assert str(usage["draft_tokens"]) in table.stdout


def test_ask_with_verify_and_a_text_mode_teacher_says_what_decides_instead(edge_env, gemma_teacher):
    done = relay_edge(
        edge_env,
        "ask",
        QUESTION,
        "--json",
        "--max-tokens",
        "16",
        "--teacher",
        gemma_teacher,
        "--policy",
        "verify",
    )
    assert done.returncode == 0, done.stderr
    assert "text mode" in done.stderr and "confidence policy decides" in done.stderr
    assert json.loads(done.stdout)["usage"]["draft_tokens"] == 0


def test_ask_with_the_teacher_stopped_still_answers(edge_env):
    with start_local_teacher(model=smollm2_path()) as teacher:
        address = teacher.address
    result = ask_json(
        edge_env,
        "--teacher",
        address,
        "--policy",
        "always",
        "--span",
        "4",
    )
    assert_consistent(result)
    usage = result["usage"]
    assert result["text"].strip()
    assert usage["teacher_failures"] >= 1
    assert usage["fallback_spans"] >= 1
    assert usage["fallback_tokens"] >= 1
    assert usage["teacher_tokens"] == 0

    one = relay_edge(edge_env, "usage", "--session", result["session_id"], "--json")
    assert one.returncode == 0, one.stderr
    [session] = json.loads(one.stdout)["sessions"]
    assert session["usage"] == usage


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--teacher", "nowhere"], "HOST:PORT"),
        (["--teacher-free", "--threshold", "3"], "threshold"),
        (["--teacher-free", "--student", "/no/such/model.gguf"], "/no/such/model.gguf"),
        (["--teacher-free", "--config", "/no/such/config.toml"], "config file not found"),
    ],
)
def test_bad_input_is_one_clear_line(edge_env, args, message):
    done = relay_edge(edge_env, "ask", "hi", *args)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> Path:
    """Files a user might point the edge at by mistake."""
    folder = tmp_path_factory.mktemp("bad-input")
    (folder / "empty.gguf").write_bytes(b"")
    (folder / "noise.gguf").write_bytes(bytes(range(256)) * 64)
    (folder / "truncated.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 20)
    (folder / "broken.toml").write_text("teacher = \n[unclosed")
    (folder / "wrong-types.toml").write_text('max_tokens = "many"\n')
    (folder / "no-threads.toml").write_text("threads = 0\n")
    (folder / "a-file").write_text("not a directory")
    return folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--teacher-free", "--student", "{dir}/empty.gguf"], "empty.gguf"),
        (["--teacher-free", "--student", "{dir}/noise.gguf"], "noise.gguf"),
        (["--teacher-free", "--student", "{dir}/truncated.gguf"], "truncated.gguf"),
        (["--teacher-free", "--student", "{dir}"], "give the path of a .gguf file"),
        (["--teacher", "no-such-host.invalid:50051"], "does not exist"),
        (["--teacher", "[not an address]:1"], "HOST:PORT"),
        (["--teacher", "host:99999"], "port"),
        (["--teacher-free", "--config", "{dir}/broken.toml"], "not valid TOML"),
        (["--teacher-free", "--config", "{dir}/wrong-types.toml"], "max_tokens"),
        (["--teacher-free", "--max-tokens", "0"], "max_tokens"),
        (["--teacher-free", "--top-p", "2"], "top_p"),
        (["--teacher-free", "--temperature", "-1"], "temperature"),
        (["--teacher-free", "--span", "0"], "span"),
        (["--teacher-free", "--config", "{dir}/no-threads.toml"], "threads"),
    ],
)
def test_bad_input_on_the_edge_is_one_line_and_a_failure(edge_env, bad_files, args, message):
    done = relay_edge(edge_env, "ask", "hi", *(arg.format(dir=bad_files) for arg in args))
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_an_unwritable_ledger_is_one_line_and_a_failure(edge_env, bad_files):
    env = edge_env | {"RELAY_LEDGER_PATH": str(bad_files / "a-file" / "ledger.db")}
    done = relay_edge(env, "ask", "hi", "--teacher-free")
    assert done.returncode != 0
    assert "cannot open the ledger" in done.stderr and "RELAY_LEDGER_PATH" in done.stderr
    assert "Traceback" not in done.stderr
