"""The loop tells policies where a line starts (what the step policy keys on), with the real
student writing a multi-line answer."""

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
    """Never calls; notes, before each token, whether the policy was told a line starts."""

    name = "recorder"

    def __init__(self) -> None:
        self.line_starts: list[bool] = []

    def decide(self, step: Step) -> int:
        self.line_starts.append(step.at_line_start)
        return 0


def test_at_line_start_follows_the_answer_text(own_student):
    policy = _Recorder()
    session = RelaySession(
        student=own_student, teacher=None, policy=policy, options=RelayOptions(max_tokens=40)
    )
    messages = [ChatMessage("user", "List four fruits, one per line, as a numbered list.")]
    texts = [e.text for e in session.answer(messages) if isinstance(e, TokensAppended)]
    expected = [True] + ["".join(texts[: i + 1]).endswith("\n") for i in range(len(texts) - 1)]
    assert policy.line_starts[: len(expected)] == expected
    assert any(expected[1:]), "the answer should span several lines"
