"""The router policy in the relay: the student's hidden state reaches the router at each
position, the teacher writes where the router scores high, and a router made for another
student is refused with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_client.errors import ConfigError
from edge_client.policies.base import Step
from edge_client.policies.baselines import NeverPolicy
from edge_client.policies.router import RouterPolicy
from edge_client.relay.events import TeacherCall
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.router.model import DenseLayer, RouterMeta, RouterModel
from edge_client.teacher.grpc_client import GrpcTeacherClient
from relay_common.chat import ChatMessage

pytestmark = pytest.mark.timeout(600)

RELAY_EDGE = str(Path(sys.executable).with_name("relay-edge"))
MESSAGES = [ChatMessage("user", "Write three short sentences about the sea.")]
MAX_TOKENS = 40
SHARPNESS = 8.0  # score = sigmoid(SHARPNESS * (logit - bound))


class _Recorded(NeverPolicy):
    """The student alone, noting its logit for one token at each position."""

    def __init__(self, token: int) -> None:
        self.token = token
        self.logits: list[float] = []

    def decide(self, step: Step) -> int:
        self.logits.append(float(step.logits[self.token]))
        return 0


class _RecordedRouter(RouterPolicy):
    """The router policy, noting at each position the logit it was built to read and
    whether it called."""

    def __init__(self, token: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.token = token
        self.seen: list[tuple[float, bool]] = []

    def decide(self, step: Step) -> int:
        wanted = super().decide(step)
        self.seen.append((float(step.logits[self.token]), wanted > 0))
        return wanted


def probe_router(output_matrix: np.ndarray, token: int, bound: float, fingerprint: str):
    """A router that reads the student's logit for `token` off its hidden state (the logits
    are the output matrix times the hidden state): it scores above 0.5 exactly where that
    logit is above `bound`."""
    weight = (SHARPNESS * output_matrix[token])[:, np.newaxis].astype(np.float32)
    bias = np.array([-SHARPNESS * bound], dtype=np.float32)
    meta = RouterMeta(fingerprint, output_matrix.shape[1], "SmolLM2-135M-Instruct.Q4_1")
    return RouterModel([DenseLayer(weight, bias)], meta)


def test_the_teacher_writes_where_the_router_scores_high(
    student, smollm2_teacher, smollm2_output_matrix, patient_settings
):
    token = student.tokenize(" the")[0]
    alone = _Recorded(token)
    session = RelaySession(
        student=student, teacher=None, policy=alone, options=RelayOptions(max_tokens=MAX_TOKENS)
    )
    for _ in session.answer(MESSAGES):
        pass
    bound = float(np.median(alone.logits))  # about half the positions score high

    router = probe_router(smollm2_output_matrix, token, bound, student.fingerprint)
    policy = _RecordedRouter(token, router=router, threshold=0.5, span=2)
    client = GrpcTeacherClient(smollm2_teacher, settings=patient_settings)
    try:
        session = RelaySession(
            student=student,
            teacher=client,
            policy=policy,
            options=RelayOptions(max_tokens=MAX_TOKENS),
        )
        calls = [event for event in session.answer(MESSAGES) if isinstance(event, TeacherCall)]
    finally:
        client.close()
    called = [decision for _, decision in policy.seen]
    assert any(called) and not all(called)
    assert len(calls) == sum(called)
    assert all(call.received > 0 for call in calls)
    # Each decision is the router's reading of this position's logit: a stale or pre-norm
    # hidden state would disagree at many positions (llama.cpp's quantized matmul leaves a
    # small margin around the bound).
    clear = [(logit, decision) for logit, decision in policy.seen if abs(logit - bound) > 0.1]
    assert {decision for _, decision in clear} == {True, False}
    for logit, decision in clear:
        assert decision == (logit > bound), (logit, bound)


def test_a_router_for_another_student_is_refused(student):
    router = RouterModel(
        [DenseLayer(np.zeros((student.hidden_size, 1), np.float32), np.zeros(1, np.float32))],
        RouterMeta("0" * 64, student.hidden_size, "Qwen2.5-Coder-0.5B"),
    )
    with pytest.raises(ConfigError, match=r"trained for Qwen2\.5-Coder-0\.5B"):
        router.check_student(fingerprint=student.fingerprint, hidden_size=student.hidden_size)
    wider = RouterModel(
        [DenseLayer(np.zeros((896, 1), np.float32), np.zeros(1, np.float32))],
        RouterMeta(student.fingerprint, 896, "a wider student"),
    )
    with pytest.raises(ConfigError, match="hidden size 896"):
        wider.check_student(fingerprint=student.fingerprint, hidden_size=student.hidden_size)


def test_a_router_file_round_trips(tmp_path, student):
    rng = np.random.default_rng(0)
    router = RouterModel(
        [
            DenseLayer(rng.normal(size=(576, 16)).astype(np.float32), np.zeros(16, np.float32)),
            DenseLayer(rng.normal(size=(16, 1)).astype(np.float32), np.ones(1, np.float32)),
        ],
        RouterMeta(student.fingerprint, 576, "SmolLM2", provenance={"auc": 0.5}),
    )
    path = tmp_path / "router.npz"
    router.save(path)
    loaded = RouterModel.load(path)
    assert loaded.meta == router.meta and len(loaded.digest) == 16
    hidden = rng.normal(size=(5, 576)).astype(np.float32)
    # float16 in the file: close to the float32 it was made from.
    assert np.allclose(loaded.scores(hidden), router.scores(hidden), atol=0.02)
    loaded.check_student(fingerprint=student.fingerprint, hidden_size=576)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "router file not found"), (b"not a zip", "is not a router file")],
)
def test_a_bad_router_file_is_named(tmp_path, content, message):
    path = tmp_path / "router.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        RouterModel.load(path)


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text("")  # hermetic: no user config file applies
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    return env | {"RELAY_LEDGER_PATH": str(tmp_path / "ledger.db"), "RELAY_CONFIG": str(config)}


def test_the_cli_refuses_a_router_for_another_student_in_one_line(cli_env, tmp_path):
    path = tmp_path / "qwen-router.npz"
    RouterModel(
        [DenseLayer(np.zeros((896, 1), np.float32), np.zeros(1, np.float32))],
        RouterMeta("0" * 64, 896, "qwen2.5-coder-0.5b-instruct-q4_k_m"),
    ).save(path)
    done = subprocess.run(
        [RELAY_EDGE, "ask", "hello", "--teacher-free", "--policy", "router", "--router", path],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "trained for qwen2.5-coder-0.5b-instruct-q4_k_m" in lines[0]


def test_the_cli_asks_for_a_router_file(cli_env):
    done = subprocess.run(
        [RELAY_EDGE, "ask", "hello", "--teacher-free", "--policy", "router"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2
    assert "needs a router file: give --router PATH" in done.stderr


def test_a_router_with_entropy_reads_the_students_entropy():
    """A router whose only weight is on the entropy input calls where the entropy is above
    1 nat, whatever the hidden state."""
    weight = np.zeros((5, 1), np.float32)
    weight[4, 0] = 20.0
    router = RouterModel(
        [DenseLayer(weight, np.array([-20.0], np.float32))],
        RouterMeta("f" * 64, 4, "test", with_entropy=True),
    )
    policy = RouterPolicy(router=router, threshold=0.5, span=2)
    hidden = np.ones(4, np.float32)
    sure = np.array([20.0, 0.0, 0.0, 0.0], np.float32)  # entropy ~ 0
    unsure = np.zeros(8, np.float32)  # entropy ln 8 ~ 2.08
    step = dict(position=0, tokens_since_call=None, teacher_tokens_used=0, hidden=hidden)
    assert policy.decide(Step(logits=sure, **step)) == 0
    assert policy.decide(Step(logits=unsure, **step)) == 2
    with pytest.raises(ValueError, match="entropy"):
        router.score(hidden)
