"""The loop tells policies the answer's current line (what the step policy keys on), with the
real student writing a multi-line answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edge_client.policies.base import Policy, Step
from edge_client.relay.events import TokensAppended
from edge_client.relay.loop import RelayOptions, RelaySession
from edge_client.student.llama_student import LlamaStudent
from relay_common.chat import ChatMessage


@pytest.fixture(scope="module")
def own_student() -> Iterator[LlamaStudent]:
    """A student of its own: the shared one's KV cache would hold this test's prompt, and
    other tests count the prompt tokens a fresh student evaluates."""
    model = LlamaStudent(n_ctx=1024)
    yield model
    model.close()


class _Recorder(Policy):
    """Never calls; notes, before each token, the line the policy was told of."""

    name = "recorder"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def decide(self, step: Step) -> int:
        self.lines.append(step.line_so_far)
        return 0


def test_the_line_so_far_follows_the_answer_text(own_student):
    policy = _Recorder()
    session = RelaySession(
        student=own_student, teacher=None, policy=policy, options=RelayOptions(max_tokens=40)
    )
    messages = [ChatMessage("user", "List four fruits, one per line, as a numbered list.")]
    texts = [e.text for e in session.answer(messages) if isinstance(e, TokensAppended)]
    expected = ["".join(texts[:i]).rpartition("\n")[2] for i in range(len(texts))]
    assert policy.lines[: len(expected)] == expected
    assert expected.count("") >= 2, "the answer should span several lines"
    assert any(line.strip() for line in expected), "and its lines should hold text"
