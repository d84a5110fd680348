"""`relay-edge eval` as a user runs it: the real CLI, the embedded student, a real teacher on
loopback (the student's own GGUF: token mode, the cheapest real teacher), a few GSM8K items."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_client.eval.machine import machine_signature

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RELAY_EDGE = str(Path(sys.executable).with_name("relay-edge"))
DATASET = Path(__file__).parent / "data" / "gsm8k_test_sample.jsonl"
SETTINGS = ("never", "always:4", "confidence:0.3", "confidence:0.6", "verify:0.1:2:8")


@pytest.fixture
def eval_env(tmp_path) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text("")  # hermetic: no user config file applies
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    # A loaded machine may be slow: a generous deadline keeps every span the teacher's.
    return env | {
        "RELAY_LEDGER_PATH": str(tmp_path / "ledger.db"),
        "RELAY_CONFIG": str(config),
        "RELAY_TEACHER_CLIENT__DEADLINE_S": "300",
        "RELAY_TEACHER_CLIENT__LATENCY_BUDGET_S": "600",
    }


def run_eval(env, out: Path, teacher: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [RELAY_EDGE, "eval", "--dataset", str(DATASET), "--out", str(out)]
    command += ["--teacher", teacher, "--max-tokens", "16"]
    for setting in SETTINGS:
        command += ["--setting", setting]
    return subprocess.run(
        [*command, *extra], env=env, capture_output=True, text=True, timeout=800, check=False
    )


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_eval_writes_summary_and_plot_then_resumes(eval_env, smollm2_teacher, tmp_path):
    out = tmp_path / "run"
    first = run_eval(eval_env, out, smollm2_teacher, "--limit", "1")
    assert first.returncode == 0, first.stderr

    done = records(out)
    assert sorted((r["setting"], r["item_id"]) for r in done) == sorted(
        (setting, item) for setting in SETTINGS for item in ("1",)
    )
    summary = json.loads((out / "summary.json").read_text())
    by_setting = {s["setting"]: s for s in summary["settings"]}
    assert list(by_setting) == list(SETTINGS)
    assert all(s["items"] == 1 for s in by_setting.values())
    assert by_setting["never"]["teacher_token_ratio"] == 0
    assert by_setting["never"]["calls_per_answer"] == 0
    assert by_setting["always:4"]["teacher_token_ratio"] == 1.0  # no span fell back
    assert by_setting["always:4"]["fallback_spans"] == 0
    # The teacher read the verified answer's drafts (all but what its spans wrote).
    assert by_setting["verify:0.1:2:8"]["teacher_read_ratio"] > 0.5
    assert by_setting["never"]["teacher_read_ratio"] == 0
    for s in by_setting.values():
        assert 0 <= s["accuracy_low"] <= s["accuracy"] <= s["accuracy_high"] <= 1
    # Token mode with the student's own GGUF: whoever writes, the greedy answer is the same.
    assert len({r["text"] for r in done}) == 1
    assert (out / "accuracy_vs_teacher_tokens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "confidence:0.6" in first.stdout  # the printed table

    # Same --out, one more item: only the new item's answers run, the old records stay.
    before = (out / "records.jsonl").read_text()
    second = run_eval(eval_env, out, smollm2_teacher, "--limit", "2")
    assert second.returncode == 0, second.stderr
    assert "answers to run: 5; recorded: 5" in second.stderr
    after = (out / "records.jsonl").read_text()
    assert after.startswith(before)
    new = records(out)[len(done) :]
    assert sorted((r["setting"], r["item_id"]) for r in new) == sorted(
        (setting, "2") for setting in SETTINGS
    )
    summary = json.loads((out / "summary.json").read_text())
    assert {s["items"] for s in summary["settings"]} == {2}

    # Other options would mix incomparable records: refused in one line, before any model loads.
    refused = run_eval(eval_env, out, smollm2_teacher, "--limit", "2", "--span", "2")
    assert refused.returncode == 2
    assert "other options" in refused.stderr and "span" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert (out / "records.jsonl").read_text() == after


def test_eval_redoes_answers_that_fell_back_when_asked(eval_env, tmp_path):
    out = tmp_path / "run"
    command = [RELAY_EDGE, "eval", "--dataset", str(DATASET), "--out", str(out)]
    command += ["--max-tokens", "16", "--limit", "1", "--setting", "never"]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *extra], env=eval_env, capture_output=True, text=True, timeout=300
        )

    assert run().returncode == 0
    # As if the teacher had been late: the answer's usage counts a fallback span.
    (done,) = records(out)
    done["usage"]["fallback_spans"] = 1
    (out / "records.jsonl").write_text(json.dumps(done) + "\n")

    warned = run()
    assert warned.returncode == 0 and "answers to run" not in warned.stderr
    assert "answers with fallback spans: 1." in warned.stderr
    assert "--redo-fallbacks" in warned.stderr

    redone = run("--redo-fallbacks")
    assert redone.returncode == 0, redone.stderr
    assert "answers to run: 1;" in redone.stderr and "fallback spans" not in redone.stderr
    assert [r["usage"]["fallback_spans"] for r in records(out)] == [1, 0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"][0]["fallback_spans"] == 0


def test_eval_keeps_the_machine_and_warns_when_answers_mix_machines(eval_env, tmp_path):
    out = tmp_path / "run"
    command = [RELAY_EDGE, "eval", "--dataset", str(DATASET), "--out", str(out)]
    command += ["--max-tokens", "16", "--setting", "never"]

    def run(limit: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "--limit", str(limit)],
            env=eval_env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    alone = run(1)
    assert alone.returncode == 0, alone.stderr
    (done,) = records(out)
    assert done["machine"] == machine_signature()
    assert json.loads((out / "summary.json").read_text())["machines"] == [machine_signature()]
    assert "machines" not in alone.stderr

    # As if item 1 had been answered on another machine before this run was resumed here.
    done["machine"] = "Another CPU; llama.cpp 0.0.0: AVX2"
    (out / "records.jsonl").write_text(json.dumps(done) + "\n")
    mixed = run(2)
    assert mixed.returncode == 0, mixed.stderr
    assert "made on 2 machines" in " ".join(mixed.stderr.split())
    assert json.loads((out / "summary.json").read_text())["machines"] == sorted(
        [done["machine"], machine_signature()]
    )


def test_eval_names_a_bad_dataset_line(eval_env, tmp_path):
    dataset = tmp_path / "bad.jsonl"
    dataset.write_text('{"question": "1+1?", "answer": "#### 2"}\n{"question": "no answer"}\n')
    done = subprocess.run(
        [RELAY_EDGE, "eval", "--dataset", str(dataset), "--out", str(tmp_path / "o")],
        env=eval_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert f"{dataset}:2" in done.stderr and "answer" in done.stderr
    assert "Traceback" not in done.stderr
