"""End to end: `relay-edge ask` with the embedded llama.cpp student (SmolLM2-135M Q4) against a
vLLM teacher on SmolLM2's HF weights. Same tokenizer fingerprint, so the relay runs in token
mode; the accounting adds up on the edge and matches the teacher's.

bf16 and Q4 numerics differ, so the relayed answer is not expected to equal the student's
alone (that identity holds for llama.cpp against llama.cpp: tests/edge_client/cli).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay_proto import relay_pb2

pytestmark = pytest.mark.timeout(300)

RELAY_EDGE = str(Path(sys.executable).with_name("relay-edge"))
QUESTION = "Tom has 3 apples and buys 5 more. How many apples does he have now?"


def relay_edge(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [RELAY_EDGE, *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_ask_relays_to_a_vllm_teacher_in_token_mode(tmp_path: Path, vllm_teacher) -> None:
    config = tmp_path / "config.toml"
    config.write_text("")  # hermetic: no user config file applies
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env |= {"RELAY_LEDGER_PATH": str(tmp_path / "ledger.db"), "RELAY_CONFIG": str(config)}

    answer = relay_edge(
        env,
        "ask",
        QUESTION,
        "--json",
        "--teacher",
        vllm_teacher.address,
        "--temperature",
        "0",
        "--max-tokens",
        "40",
        "--policy",
        "confidence",
        "--threshold",
        "0.6",
    )

    usage, spans = answer["usage"], answer["spans"]
    assert answer["text"] == "".join(span["text"] for span in spans)
    teacher_spans = [span for span in spans if span["source"] == "teacher"]
    assert teacher_spans, spans
    assert usage["teacher_failures"] == 0
    assert usage["fallback_tokens"] == 0
    assert usage["teacher_tokens"] == sum(span["tokens"] for span in teacher_spans)
    assert usage["student_tokens"] == sum(s["tokens"] for s in spans if s["source"] == "student")
    generated = usage["student_tokens"] + usage["teacher_tokens"]
    assert usage["offload_ratio"] == pytest.approx(usage["teacher_tokens"] / generated, abs=1e-6)

    (session,) = relay_edge(env, "usage", "--json")["sessions"]
    assert session["mode"] == "token"
    assert session["session_id"] == answer["session_id"]

    # The teacher's own books for the session agree with the edge's.
    teacher_usage = vllm_teacher.stub.GetSessionUsage(
        relay_pb2.GetSessionUsageRequest(session_id=answer["session_id"]), timeout=10
    ).usage
    assert teacher_usage.spans == usage["teacher_calls"]
    assert teacher_usage.generated_tokens == usage["teacher_tokens"]
    if teacher_usage.spans > 1:  # later calls reuse the session's prefix
        assert teacher_usage.cached_prompt_tokens > 0
